"""Module handles: what MODEL, CLIP and VAE values hold instead of ``torch.nn.Module`` objects.

A handle knows how to (re)load its module and which weight patches it carries, so the
manager (:mod:`.model_manager`) may drop or move weights at any time and a later use
loads them again. torch is imported lazily; this module is cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .model_manager import ModelManager

#: Kinds of module and the dtype policy group they fall in.
KINDS = ("unet", "vae", "clip", "controlnet", "tokenizer", "other")


class ModuleHandle:
    """A lazily loaded module owned by the manager. Small; safe to keep in output caches.

    ``loader()`` builds the module on CPU in float32 (or whatever the file holds); the manager
    casts and moves it. ``target`` names the module for weight patches.
    """

    def __init__(
        self,
        manager: ModelManager,
        key: Hashable,
        kind: str,
        loader: Callable[[], Any],
        *,
        name: str = "",
        target: str | None = None,
        dtype: str | None = None,
        size_hint: int = 0,
        device: str | None = None,
    ) -> None:
        self.manager = manager
        self.key = key
        self.kind = kind
        self.loader = loader
        self.name = name
        self.target = target or kind
        self.dtype_override = dtype
        #: "cpu" keeps this module on the CPU whatever the compute device (CLIPLoader's device=cpu)
        self.device_override = device
        self.size_hint = size_hint
        self.module: Any = None
        self.location: str = "unloaded"  # "unloaded" | "cpu" | "device"
        self.applied: tuple[Any, ...] = ()
        self._backup: dict[str, torch.Tensor] = {}
        self.loads = 0

    def __weft_cache_size__(self) -> int:
        return 256

    def __repr__(self) -> str:
        return f"<ModuleHandle {self.kind} {self.name!r} {self.location}>"

    @property
    def device(self) -> torch.device:
        """Where this module computes: the manager's device, or the CPU when pinned there."""
        if self.device_override == "cpu" or (self.kind == "vae" and self.manager.settings.vae_on_cpu):
            import torch

            return torch.device("cpu")
        return self.manager.compute_device()

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.manager.dtype_for(self.kind, self.dtype_override, self.device)

    @property
    def size_bytes(self) -> int:
        if self.module is None:
            return self.size_hint
        return module_size(self.module)

    def load(self) -> Any:
        """The module, loaded into memory (on CPU or the device, wherever it is now)."""
        return self.manager.ensure_loaded(self)

    def on_device(self) -> Any:
        """The module on the compute device in its compute dtype, evicting others if needed."""
        return self.manager.ensure_on_device(self)

    # -- weight patches ------------------------------------------------------------------
    def apply_patches(self, patches: Sequence[Any]) -> None:
        """Make the loaded weights equal base + ``patches``; cheap when already so.

        A patch (LoRA, ...) has ``deltas(module, target)`` yielding ``(parameter name, delta)``
        pairs; each delta is added to its parameter after the original is backed up. ``target``
        names the module this handle holds ("unet", "clip_l", "clip_g", ...), so one patch
        object can carry weights for several.
        """
        patches = tuple(patches)
        if len(patches) == len(self.applied) and all(a is b for a, b in zip(patches, self.applied, strict=True)):
            return
        with self.manager.lock:
            module = self.load()
            self.restore()
            if not patches:
                return
            import torch

            params = dict(module.named_parameters())
            with torch.no_grad():
                for patch in patches:
                    for name, delta in patch.deltas(module, self.target):
                        param = params[name]
                        if name not in self._backup:
                            self._backup[name] = param.detach().to("cpu", copy=True)
                        updated = param.detach().float() + delta.to(device=param.device, dtype=torch.float32)
                        param.data.copy_(updated.to(param.dtype))
            self.applied = patches

    def restore(self) -> None:
        """Undo all weight patches (copy the backups back)."""
        if self.module is not None and self._backup:
            import torch

            params = dict(self.module.named_parameters())
            with torch.no_grad():
                for name, original in self._backup.items():
                    params[name].data.copy_(original.to(device=params[name].device, dtype=params[name].dtype))
        self._backup.clear()
        self.applied = ()

    def _forget(self) -> None:
        self.module = None
        self.location = "unloaded"
        self._backup.clear()
        self.applied = ()


def module_size(module: Any) -> int:
    """Bytes held by a module's parameters and buffers (0 for non-modules such as tokenizers)."""
    total = 0
    for attr in ("parameters", "buffers"):
        get = getattr(module, attr, None)
        if get is None:
            continue
        for tensor in get():
            total += tensor.numel() * tensor.element_size()
    return total
