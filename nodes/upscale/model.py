"""UPSCALE_MODEL: an upscale network held by the model manager, and how a file becomes one.

Loading reads only the file's header (keys and shapes; a pickle is read whole, and only if the
user trusts it, see ``models/trusted_pickles.txt``), recognises the network (:mod:`.detect`) and
checks every tensor against the network it would build, so a wrong file fails in the loader
node. The weights themselves load the first time the model runs, through a model-manager
handle keyed on the file, like every other Weft model: the manager places it on the compute
device, keeps it while it fits and drops it when memory is short (a later use reloads it).

Upscale networks compute in float32, as in ComfyUI (which never casts them): their outputs
go straight to pixels, and RRDBNet's unnormalised trunk can overflow float16.
torch is imported inside functions; importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .detect import UnsupportedUpscaleModel, UpscaleSpec, canonical_key, detect, strip_wrapper

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.module_handle import ModuleHandle


class UpscaleModel:
    """``UPSCALE_MODEL``: call it on ``[B, C, H, W]`` 0..1 pixels to get ``scale`` times larger ones.

    ``scale``, ``model`` and calling the value are what ComfyUI plugins use of spandrel's
    ``ImageModelDescriptor``.
    """

    def __init__(self, handle: ModuleHandle, spec: UpscaleSpec, name: str) -> None:
        self.handle = handle
        self.spec = spec
        self.name = name

    def __weft_cache_size__(self) -> int:
        return 1024

    def __repr__(self) -> str:
        return f"<UpscaleModel {self.name!r} {self.spec.describe()}>"

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def architecture(self) -> str:
        return self.spec.architecture

    @property
    def input_channels(self) -> int:
        return self.spec.in_channels

    @property
    def output_channels(self) -> int:
        return self.spec.out_channels

    @property
    def model(self) -> torch.nn.Module:
        """The network, loaded (wherever the manager has it now)."""
        return self.handle.load()

    @property
    def device(self) -> torch.device:
        return self.handle.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """One forward pass on the compute device, clamped to 0..1 as spandrel's models are.

        Real-ESRGAN's x2/x1 networks pixel-unshuffle their input, so its sides must be
        multiples of 4 (:attr:`UpscaleSpec.pad_to`): such an input is padded at the bottom and
        right by reflection (repetition when too small to reflect) and the output cropped back.
        """
        import torch.nn.functional as F

        module = self.handle.on_device()
        height, width = x.shape[-2:]
        multiple, minimum = self.spec.pad_to
        pad_h, pad_w = max(-height % multiple, minimum - height), max(-width % multiple, minimum - width)
        x = x.to(device=self.device, dtype=self.handle.compute_dtype)
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = module(x)
        return out[..., : height * self.scale, : width * self.scale].clamp(0.0, 1.0)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors; pickles through Weft's trust list, always ``weights_only``-loaded or refused."""
    from nodes.diffusion import single_file as sf

    if path.suffix.lower() in sf.PICKLE_SUFFIXES:
        state = sf.load_pickle(path)
    else:
        from safetensors.torch import load_file

        state = load_file(str(path))
    prefix = strip_wrapper(state)
    return {k[len(prefix) :]: v for k, v in state.items()}


def build_module(path: Path, spec: UpscaleSpec) -> torch.nn.Module:
    """The network of ``spec`` with the file's weights (float32, on the CPU)."""
    from .architectures import build

    state = {canonical_key(spec, k): v for k, v in read_state_dict(path).items()}
    module = build(spec)
    module.load_state_dict(state, strict=True)
    return module.eval()


def check_shapes(spec: UpscaleSpec, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse a file whose tensors are not exactly those of the network ``spec`` describes."""
    import torch

    from .architectures import build

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build(spec).state_dict().items()}
    found = {canonical_key(spec, k): tuple(v) for k, v in shapes.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or extra or wrong:
        groups = (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
        problems = [f"{label}: {', '.join(keys[:3])}" for label, keys in groups if keys]
        raise UnsupportedUpscaleModel(
            f"looks like {spec.describe()} but its tensors do not fit that network ({'; '.join(problems)}); "
            "it may be a variant Weft does not implement"
        )


def load_upscale_model(path: Path, name: str) -> UpscaleModel:
    """An :class:`UpscaleModel` for the file (header read and checked now, weights on first use)."""
    from nodes.diffusion.model_files import file_info, file_key
    from nodes.diffusion.model_manager import get_manager

    info = file_info(path)
    prefix = strip_wrapper(info.shapes)
    shapes = {k[len(prefix) :]: v for k, v in info.shapes.items()}
    spec = detect(shapes)
    check_shapes(spec, shapes)
    handle = get_manager().handle(
        ("upscale_model", *file_key(path)),
        "other",
        lambda: build_module(path, spec),
        name=name,
        dtype="fp32",
        size_hint=info.nbytes(),
    )
    return UpscaleModel(handle, spec, name)


def upscale_image(model: UpscaleModel, image: torch.Tensor, progress: Any = None) -> torch.Tensor:
    """ImageUpscaleWithModel's work: IMAGE ``[B, H, W, C]`` in, ``scale`` times larger IMAGE out, 0..1.

    The image goes to the model's device whole, the tiles are cut there and blended on the CPU
    (:mod:`.tiling`); out of memory, the tile is halved, down to 128 pixels.
    """
    import torch

    from .tiling import OVERLAP, halving_on_oom, tiled_scale

    model.handle.on_device()  # placed before no_grad, so its weights stay ordinary tensors
    x = image.movedim(-1, 1).to(device=model.device, dtype=model.handle.compute_dtype)

    def run(tile: int) -> torch.Tensor:
        with torch.no_grad():
            return tiled_scale(x, model, model.scale, tile, OVERLAP, model.output_channels, progress)

    return torch.clamp(halving_on_oom(run).movedim(1, -1), 0.0, 1.0)
