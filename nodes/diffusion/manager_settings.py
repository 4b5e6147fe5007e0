"""The model manager's settings: what the launcher's device and memory flags decide.

Plain data, kept apart from the bookkeeping in :mod:`.model_manager` that applies it: the
launcher fills it in, the manager reads it whenever it places or casts a module.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 1 << 30

#: ``vram_mode`` values, from ComfyUI's memory flags (``--gpu-only``, ``--highvram``, default,
#: ``--lowvram``, ``--novram``).
VRAM_MODES = ("gpu_only", "high", "normal", "low", "none")


@dataclass
class ManagerSettings:
    """User-facing knobs, set from the launcher's flags (``--cpu``, ``--lowvram``, ``--fp16-vae``...).

    ComfyUI's memory modes map onto the budget rather than onto partial loading (diffusers
    modules move whole): ``high``/``gpu_only`` may fill the whole GPU (less ``vram_reserve``
    when one is given); ``normal`` keeps what fits ``total - vram_reserve``; ``low`` keeps only
    the module in use on the GPU; ``none`` is ``low`` plus everything back to the CPU after
    each run. Modes only matter on an accelerator.
    """

    force_cpu: bool = False
    #: bytes of accelerator memory models may use; ``None``: decided by ``vram_mode``
    vram_budget: int | None = None
    #: bytes of accelerator memory left to other programs (``--reserve-vram``); ``None``: 1 GiB
    #: in normal mode, nothing in high/gpu_only mode
    vram_reserve: int | None = None
    vram_mode: str = "normal"
    #: move every module off the accelerator after each run (``--novram``, ``--disable-smart-memory``)
    offload_after_run: bool = False
    #: bytes of CPU memory models may use; ``None``: 60% of the machine's RAM
    ram_budget: int | None = None
    #: "auto", "fp32", "fp16" or "bf16" for UNet/text encoders; VAE follows ``vae_dtype``
    dtype: str = "auto"
    vae_dtype: str = "auto"
    #: per-kind overrides of ``dtype`` ("auto": follow ``dtype``) for the UNet (and ControlNets)
    #: and the text encoders
    unet_dtype: str = "auto"
    text_encoder_dtype: str = "auto"
    #: "fp8_e4m3fn" / "fp8_e5m2": store weights in 8 bits, upcast per layer ("auto": as loaded)
    unet_storage: str = "auto"
    text_encoder_storage: str = "auto"
    #: run VAEs on the CPU whatever the compute device (``--cpu-vae``)
    vae_on_cpu: bool = False
    #: ``torch.use_deterministic_algorithms`` (``--deterministic``), applied when torch is first used
    deterministic: bool = False
    #: ``--compile-unet [BACKEND]``: every UNet runs through torch.compile with this backend
    #: ("": not compiled; :mod:`.unet_compile`)
    compile_unet: str = ""
