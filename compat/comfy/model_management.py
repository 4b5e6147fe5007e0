"""ComfyUI's ``comfy.model_management`` for custom node packs: devices, interruption, memory.

Devices and memory come from Weft's model manager (``nodes.diffusion.model_manager``) when
it is present, else from torch directly. Interruption maps onto the running node's Weft
execution context: ``throw_exception_if_processing_interrupted()`` raises Weft's
``Interrupted``, which is also exported as ``InterruptProcessingException`` so a pack's
``except`` clauses keep working. Loading ComfyUI model objects (``load_models_gpu``,
``LoadedModel``...) has no Weft equivalent and raises "not supported in Weft".
"""

from __future__ import annotations

import enum
import gc
from typing import Any

from engine.context import Interrupted, current_context
from nodes.plugins.support import NotSupportedInWeft, unsupported_attribute

InterruptProcessingException = Interrupted


class VRAMState(enum.Enum):
    DISABLED = 0
    NO_VRAM = 1
    LOW_VRAM = 2
    NORMAL_VRAM = 3
    HIGH_VRAM = 4
    SHARED = 5


class CPUState(enum.Enum):
    GPU = 0
    CPU = 1
    MPS = 2


def _manager() -> Any:
    try:
        from nodes.diffusion.model_manager import get_manager
    except ImportError:
        return None
    return get_manager()


def __getattr__(name: str) -> Any:
    if name == "vram_state":
        return _vram_state()
    if name == "cpu_state":
        return CPUState.GPU if _torch().cuda.is_available() else CPUState.CPU
    if name == "OOM_EXCEPTION":
        return _torch().cuda.OutOfMemoryError
    if name.startswith("__"):
        raise AttributeError(name)
    raise unsupported_attribute("comfy.model_management", name)


_VRAM_STATES = {
    "gpu_only": VRAMState.HIGH_VRAM,
    "high": VRAMState.HIGH_VRAM,
    "normal": VRAMState.NORMAL_VRAM,
    "low": VRAMState.LOW_VRAM,
    "none": VRAMState.NO_VRAM,
}


def _vram_state() -> VRAMState:
    """ComfyUI's VRAM state from the launcher's memory mode (``--lowvram``...), DISABLED on the CPU."""
    manager = _manager()
    if manager is not None:
        if manager.settings.force_cpu or manager.compute_device().type == "cpu":
            return VRAMState.DISABLED
        return _VRAM_STATES.get(manager.settings.vram_mode, VRAMState.NORMAL_VRAM)
    return VRAMState.NORMAL_VRAM if _torch().cuda.is_available() else VRAMState.DISABLED


def _torch() -> Any:
    import torch

    return torch


# -- devices ---------------------------------------------------------------------------
def get_torch_device() -> Any:
    """Where models compute: the model manager's device, else CUDA if present, else CPU."""
    manager = _manager()
    if manager is not None:
        return manager.compute_device()
    torch = _torch()
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def intermediate_device() -> Any:
    """Where IMAGE/MASK tensors live between nodes: always the CPU in Weft."""
    return _torch().device("cpu")


def unet_offload_device() -> Any:
    return _torch().device("cpu")


def text_encoder_offload_device() -> Any:
    return _torch().device("cpu")


def vae_offload_device() -> Any:
    return _torch().device("cpu")


def text_encoder_device() -> Any:
    return get_torch_device()


def vae_device() -> Any:
    return get_torch_device()


def unet_inital_load_device(parameters: int = 0, dtype: Any = None) -> Any:
    return get_torch_device()


def get_autocast_device(dev: Any) -> str:
    return getattr(dev, "type", "cuda")


def is_device_cpu(device: Any) -> bool:
    return getattr(device, "type", str(device)) == "cpu"


def is_device_mps(device: Any) -> bool:
    return getattr(device, "type", str(device)) == "mps"


def is_device_cuda(device: Any) -> bool:
    return getattr(device, "type", str(device)) == "cuda"


def cpu_mode() -> bool:
    return is_device_cpu(get_torch_device())


def mps_mode() -> bool:
    return is_device_mps(get_torch_device())


def is_nvidia() -> bool:
    torch = _torch()
    return torch.cuda.is_available() and torch.version.cuda is not None


def is_intel_xpu() -> bool:
    return False


def xformers_enabled() -> bool:
    return False


def xformers_enabled_vae() -> bool:
    return False


def pytorch_attention_enabled() -> bool:
    return True


def should_use_fp16(
    device: Any = None, model_params: int = 0, prioritize_performance: bool = True, manual_cast: bool = False
) -> bool:
    device = device if device is not None else get_torch_device()
    return is_device_cuda(device)


def should_use_bf16(
    device: Any = None, model_params: int = 0, prioritize_performance: bool = True, manual_cast: bool = False
) -> bool:
    device = device if device is not None else get_torch_device()
    torch = _torch()
    return is_device_cuda(device) and torch.cuda.is_bf16_supported()


def unet_dtype(device: Any = None, model_params: int = 0, supported_dtypes: Any = None) -> Any:
    torch = _torch()
    return torch.float16 if should_use_fp16(device) else torch.float32


def vae_dtype(device: Any = None, allowed_dtypes: Any = None) -> Any:
    return _torch().float32


def text_encoder_dtype(device: Any = None) -> Any:
    torch = _torch()
    return torch.float16 if should_use_fp16(device) else torch.float32


# -- memory ----------------------------------------------------------------------------
def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> Any:
    torch = _torch()
    dev = dev if dev is not None else get_torch_device()
    if is_device_cuda(dev):
        total = torch.cuda.get_device_properties(dev).total_memory
    else:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return (total, total) if torch_total_too else total


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> Any:
    torch = _torch()
    dev = dev if dev is not None else get_torch_device()
    if is_device_cuda(dev):
        free, _ = torch.cuda.mem_get_info(dev)
    else:
        import os

        free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return (free, free) if torch_free_too else free


def soft_empty_cache(force: bool = False) -> None:
    """Return cached allocator blocks to the driver; models stay loaded."""
    gc.collect()
    torch = _torch()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def unload_all_models() -> None:
    """Ask Weft's model manager to drop every loaded model (what POST /free does)."""
    manager = _manager()
    if manager is not None:
        manager.free(unload_models=True)
    soft_empty_cache()


def cleanup_models(keep_clone_weights_loaded: bool = False) -> None:
    gc.collect()


def free_memory(memory_required: int, device: Any, keep_loaded: Any = ()) -> list[Any]:
    manager = _manager()
    if manager is not None:
        manager.free(unload_models=False)
    soft_empty_cache()
    return []


def load_models_gpu(*args: Any, **kwargs: Any) -> None:
    raise NotSupportedInWeft(
        "comfy.model_management.load_models_gpu",
        hint="Weft's model manager places its own models; ComfyUI ModelPatcher objects do not exist in Weft.",
    )


def load_model_gpu(*args: Any, **kwargs: Any) -> None:
    raise NotSupportedInWeft("comfy.model_management.load_model_gpu")


# -- interruption ----------------------------------------------------------------------
def processing_interrupted() -> bool:
    ctx = current_context()
    return ctx is not None and ctx.interrupt.is_set()


def throw_exception_if_processing_interrupted() -> None:
    """Raise :class:`InterruptProcessingException` if the user pressed "cancel"."""
    ctx = current_context()
    if ctx is not None:
        ctx.check_interrupted()


def interrupt_current_processing(value: bool = True) -> None:
    """Set (or clear) the interrupt flag of the run this node belongs to."""
    ctx = current_context()
    if ctx is None:
        return
    if value:
        ctx.interrupt.set()
    else:
        ctx.interrupt.clear()
