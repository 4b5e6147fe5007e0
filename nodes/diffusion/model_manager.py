"""The model manager: owns every model's weights, their device and their lifetime.

Nodes never hold ``torch.nn.Module`` objects directly; they hold :class:`ModuleHandle` objects
(inside MODEL, CLIP and VAE values). A handle knows how to (re)load its module, so the manager
may drop weights at any time (memory budget, POST /free) and a later use loads them again.

* Lazy: a loader node returns handles at once; weights load on first use.
* One load per file: handles are keyed by (path, mtime, size, component, options), so two
  loader nodes naming the same file share weights, and a changed file loads afresh.
* Device: cuda > mps > cpu, ``force_cpu`` for ``--cpu``. Compute dtype fp16 (UNet, text
  encoders) and bf16-or-fp32 (VAE, whose fp16 decode overflows) on GPUs, fp32 on CPU.
* Budget: modules on the compute device are kept least-recently-used within the VRAM budget;
  evicted ones are offloaded to CPU. CPU copies are kept within the RAM budget; beyond it the
  least recently used are dropped (reloaded from file when needed again).
* Weight patches (LoRA) are applied in place with a backup of the touched weights, so clones
  with different patches share one copy of the base weights.

The settings live in :mod:`.manager_settings` and the handles in :mod:`.module_handle`;
both stay importable from here. torch is imported lazily; this module is cheap to import.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any

from .manager_settings import VRAM_MODES, GiB, ManagerSettings
from .module_handle import KINDS, ModuleHandle, module_size

if TYPE_CHECKING:
    import torch

log = logging.getLogger("weft.models")


class ModelManager:
    """See the module docstring. One per process (:func:`get_manager`); thread-safe."""

    def __init__(self, settings: ManagerSettings | None = None) -> None:
        self.settings = settings or ManagerSettings()
        self.lock = threading.RLock()
        self._handles: dict[Hashable, ModuleHandle] = {}
        self._lru: OrderedDict[Hashable, ModuleHandle] = OrderedDict()  # loaded ones, oldest first
        self._device: torch.device | None = None
        self._mru: ModuleHandle | None = None
        self.evictions = 0

    # -- configuration ---------------------------------------------------------------------
    def configure(self, **changes: Any) -> None:
        """Change settings (``force_cpu=True``...); a device change offloads everything first."""
        with self.lock:
            for name, value in changes.items():
                if not hasattr(self.settings, name):
                    raise TypeError(f"unknown model manager setting {name!r}")
                if name == "vram_mode" and value not in VRAM_MODES:
                    raise ValueError(f"vram_mode must be one of {', '.join(VRAM_MODES)}, not {value!r}")
                setattr(self.settings, name, value)
            if "force_cpu" in changes:
                # everything goes back to the CPU; the next use places it on the new device
                for handle in list(self._lru.values()):
                    if handle.module is not None and handle.kind != "tokenizer":
                        self._cast_to_cpu(handle)
                self._device = None
                self._mru = None

    def compute_device(self) -> torch.device:
        """cuda > mps > cpu (cpu when ``force_cpu``); decided on first call (imports torch)."""
        if self._device is None:
            import torch

            if self.settings.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            if self.settings.force_cpu:
                self._device = torch.device("cpu")
            elif torch.cuda.is_available():
                self._device = torch.device("cuda", torch.cuda.current_device())
            elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                self._device = torch.device("mps")
            else:
                self._device = torch.device("cpu")
        return self._device

    def dtype_for(self, kind: str, override: str | None = None, device: torch.device | None = None) -> torch.dtype:
        """The compute dtype for a kind of module on ``device`` (default: the compute device)."""
        import torch

        names = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if override in names:
            return names[override]  # type: ignore[index]
        device = device if device is not None else self.compute_device()
        choice = self._dtype_choice(kind)
        if choice in names:
            return names[choice]
        if device.type == "cpu" or kind == "tokenizer":
            return torch.float32
        if kind == "vae":
            if device.type == "cuda" and torch.cuda.is_bf16_supported():
                return torch.bfloat16
            return torch.float32
        return torch.float16

    def _dtype_choice(self, kind: str) -> str:
        """The configured dtype name for a kind of module ("auto" when none is set)."""
        settings = self.settings
        if kind == "vae":
            return settings.vae_dtype
        if kind == "clip" and settings.text_encoder_dtype != "auto":
            return settings.text_encoder_dtype
        if kind in ("unet", "controlnet") and settings.unet_dtype != "auto":
            return settings.unet_dtype
        return settings.dtype

    def storage_for(self, handle: ModuleHandle) -> str | None:
        """The 8-bit storage format of a module's weights, if any: the node's choice, else the launcher's."""
        if handle.dtype_override:
            return handle.dtype_override
        if handle.kind in ("unet", "controlnet") and self.settings.unet_storage != "auto":
            return self.settings.unet_storage
        if handle.kind == "clip" and self.settings.text_encoder_storage != "auto":
            return self.settings.text_encoder_storage
        return None

    # -- handles ---------------------------------------------------------------------------
    def handle(
        self,
        key: Hashable,
        kind: str,
        loader: Callable[[], Any],
        *,
        name: str = "",
        target: str | None = None,
        dtype: str | None = None,
        size_hint: int = 0,
        device: str | None = None,
    ) -> ModuleHandle:
        """The handle for ``key``, created (not loaded) on first request."""
        if kind not in KINDS:
            raise ValueError(f"unknown module kind {kind!r}")
        with self.lock:
            existing = self._handles.get(key)
            if existing is not None:
                return existing
            created = ModuleHandle(
                self, key, kind, loader, name=name, target=target, dtype=dtype, size_hint=size_hint, device=device
            )
            self._handles[key] = created
            return created

    def handles(self) -> Iterator[ModuleHandle]:
        return iter(list(self._handles.values()))

    def ensure_loaded(self, handle: ModuleHandle) -> Any:
        with self.lock:
            if handle.module is None:
                expected = handle.size_hint
                self._make_room_ram(expected, keep=handle)
                log.info("loading %s %s", handle.kind, handle.name)
                module = handle.loader()
                if hasattr(module, "eval"):
                    module.eval()
                    module.requires_grad_(False)
                handle.module = module
                handle.location = "cpu"
                handle.loads += 1
                if handle.kind != "tokenizer" and handle.device.type == "cpu":
                    self._cast(handle, handle.device)
                    handle.location = "device"
            self._touch(handle)
            return handle.module

    def ensure_on_device(self, handle: ModuleHandle) -> Any:
        module = handle.module
        if module is not None and handle.location == "device":
            if self._mru is not handle:  # the common case in a sampling loop: nothing to do
                with self.lock:
                    self._touch(handle)
            return module
        with self.lock:
            module = self.ensure_loaded(handle)
            if handle.location != "device" and handle.kind != "tokenizer":
                device = handle.device
                if device.type != "cpu":
                    self._make_room_device(handle.size_bytes, keep=handle)
                self._cast(handle, device)
                handle.location = "device"
            self._touch(handle)
            return module

    def _cast(self, handle: ModuleHandle, device: torch.device) -> None:
        import torch

        dtype = handle.compute_dtype
        module = handle.module
        if not isinstance(module, torch.nn.Module):
            return
        first = next(module.parameters(), None)
        if (
            first is None
            or first.device != device
            or (first.dtype != dtype and not getattr(module, "_weft_fp8", False))
        ):
            # nn.Module.to, not diffusers' override: that one only adds a warning about fp32
            # modules that these models do not have.
            torch.nn.Module.to(module, device=device, dtype=dtype)
        fp8 = {"fp8_e4m3fn": "float8_e4m3fn", "fp8_e4m3fn_fast": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2"}
        storage = fp8.get(self.storage_for(handle) or "")
        if storage and hasattr(module, "enable_layerwise_casting") and not getattr(module, "_weft_fp8", False):
            # Weights stored in 8 bits, each layer upcast to the compute dtype while it runs.
            module.enable_layerwise_casting(storage_dtype=getattr(torch, storage), compute_dtype=dtype)
            module._weft_fp8 = True

    def _touch(self, handle: ModuleHandle) -> None:
        self._lru[handle.key] = handle
        self._lru.move_to_end(handle.key)
        self._mru = handle

    # -- budgets ---------------------------------------------------------------------------
    def vram_budget(self) -> int:
        """Bytes of modules the compute device may hold; see :class:`ManagerSettings` for the modes."""
        settings = self.settings
        if settings.vram_budget is not None:
            return settings.vram_budget
        device = self.compute_device()
        if device.type == "cpu":
            return self.ram_budget()
        if settings.vram_mode in ("low", "none"):
            return 0  # every other module leaves before the next one comes
        total = self._device_total(device)
        if settings.vram_mode in ("high", "gpu_only"):
            return max(total - (settings.vram_reserve or 0), 0)
        if device.type != "cuda":
            return total  # mps: unified memory, the RAM budget
        reserve = settings.vram_reserve if settings.vram_reserve is not None else 1 * GiB
        return max(total - reserve, total // 4)

    def _device_total(self, device: torch.device) -> int:
        """Total memory of an accelerator (the RAM budget for devices torch cannot measure)."""
        if device.type == "cuda":
            import torch

            return int(torch.cuda.get_device_properties(device).total_memory)
        return self.ram_budget()

    def after_run(self) -> None:
        """The end of a prompt: with ``offload_after_run`` (``--novram``, ``--disable-smart-memory``)
        every module goes back to the CPU, so the GPU is free between runs."""
        if self.settings.offload_after_run or self.settings.vram_mode == "none":
            self.free(unload_models=False, collect=False)

    def ram_budget(self) -> int:
        if self.settings.ram_budget is not None:
            return self.settings.ram_budget
        import psutil

        return int(psutil.virtual_memory().total * 0.6)

    def _make_room_device(self, needed: int, keep: ModuleHandle) -> None:
        budget = self.vram_budget()
        on_device = [
            h for h in self._lru.values() if h.location == "device" and h is not keep and h.device_override != "cpu"
        ]
        used = sum(h.size_bytes for h in on_device)
        for victim in on_device:  # oldest first
            if used + needed <= budget:
                break
            log.info("offloading %s %s to CPU", victim.kind, victim.name)
            self._cast_to_cpu(victim)
            used -= victim.size_bytes
            self.evictions += 1
        if self.compute_device().type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _cast_to_cpu(self, handle: ModuleHandle) -> None:
        import torch

        if hasattr(handle.module, "to"):
            handle.module.to(device=torch.device("cpu"))
        handle.location = "cpu"

    def _make_room_ram(self, needed: int, keep: ModuleHandle) -> None:
        budget = self.ram_budget()
        resident = [h for h in self._lru.values() if h.module is not None and h is not keep]
        # what occupies CPU memory: everything on a CPU-only machine, else offloaded or CPU-pinned modules
        resident = [h for h in resident if h.location == "cpu" or h.device.type == "cpu"]
        used = sum(h.size_bytes for h in resident)
        for victim in resident:
            if used + needed <= budget:
                break
            log.info("unloading %s %s", victim.kind, victim.name)
            used -= victim.size_bytes
            self._drop(victim)
            self.evictions += 1

    def _drop(self, handle: ModuleHandle) -> None:
        handle._forget()
        self._lru.pop(handle.key, None)
        if self._mru is handle:
            self._mru = None

    # -- server hooks ----------------------------------------------------------------------
    def free(self, unload_models: bool = True, *, collect: bool = True) -> None:
        """POST /free: offload everything from the accelerator; with ``unload_models`` drop it all.

        Dropped modules reload from their files on next use, so MODEL/CLIP/VAE values held by
        the output cache stay valid. ``collect=False`` skips the garbage collector pass.
        """
        with self.lock:
            dropped = 0
            for handle in list(self._lru.values()):
                if unload_models:
                    dropped += handle.module is not None and handle.kind != "tokenizer"
                    self._drop(handle)
                elif handle.location == "device" and handle.device.type != "cpu":
                    self._cast_to_cpu(handle)
            if dropped and collect:
                import gc

                gc.collect()  # modules can sit in reference cycles; a full pass is ~0.3 s, so only when useful
            if self._device is not None and self._device.type == "cuda":
                import torch

                torch.cuda.empty_cache()

    def stats(self) -> dict[str, Any]:
        """For GET /system_stats: devices in ComfyUI's shape plus the loaded models."""
        device = self.compute_device()
        entry: dict[str, Any] = {
            "name": str(device),
            "type": device.type,
            "index": device.index,
            "vram_total": 0,
            "vram_free": 0,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
        if device.type == "cuda":
            import torch

            free, total = torch.cuda.mem_get_info(device)
            reserved = torch.cuda.memory_reserved(device)
            allocated = torch.cuda.memory_allocated(device)
            entry.update(
                name=f"{device} {torch.cuda.get_device_name(device)}",
                vram_total=total,
                vram_free=free,
                torch_vram_total=reserved,
                torch_vram_free=reserved - allocated,
            )
        else:
            import psutil

            memory = psutil.virtual_memory()
            entry.update(vram_total=memory.total, vram_free=memory.available)
        models = [
            {
                "name": h.name,
                "kind": h.kind,
                "location": h.location,
                "bytes": h.size_bytes,
                "loads": h.loads,
                "patches": len(h.applied),
            }
            for h in self._lru.values()
            if h.module is not None
        ]
        return {
            "devices": [entry],
            "models": models,
            "vram_budget": self.vram_budget(),
            "ram_budget": self.ram_budget(),
            "evictions": self.evictions,
            "force_cpu": self.settings.force_cpu,
            "vram_mode": self.settings.vram_mode,
        }


_manager: ModelManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> ModelManager:
    """The process-wide manager (created with default settings on first use).

    Creating it registers with :mod:`nodes.memory`, through which the server's POST /free
    and GET /system_stats reach the manager without importing torch themselves.
    """
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = ModelManager()
                _register_server_hooks()
    return _manager


def _free_hook(unload_models: bool) -> None:
    if _manager is not None:
        _manager.free(unload_models=unload_models)


def _stats_hook() -> list[dict[str, Any]]:
    return get_manager().stats()["devices"]


def _run_end_hook() -> None:
    if _manager is not None:
        _manager.after_run()


def _register_server_hooks() -> None:
    from nodes.memory import register_free_hook, register_run_end_hook, register_stats_hook

    register_free_hook(_free_hook)
    register_stats_hook(_stats_hook)
    register_run_end_hook(_run_end_hook)


def configure(**settings: Any) -> ModelManager:
    """Set process-wide manager settings (``force_cpu=True`` for ``--cpu``...); returns it."""
    manager = get_manager()
    manager.configure(**settings)
    return manager


def reset_manager(settings: ManagerSettings | None = None, *, collect: bool = True) -> ModelManager:
    """Replace the process-wide manager (tests; a server restart in-process)."""
    global _manager
    with _manager_lock:
        if _manager is not None:
            _manager.free(unload_models=True, collect=collect)
        _manager = ModelManager(settings)
    _register_server_hooks()
    return _manager


__all__ = [
    "KINDS",
    "VRAM_MODES",
    "GiB",
    "ManagerSettings",
    "ModelManager",
    "ModuleHandle",
    "configure",
    "get_manager",
    "module_size",
    "reset_manager",
]
