"""The values that flow between diffusion nodes: MODEL, CLIP, VAE (:mod:`.vae_model`) and the data conventions.

Conventions (ComfyUI's, so plugins and workflows travel):

* ``LATENT`` is a dict ``{"samples": Tensor[B, C, H/8, W/8], "noise_mask"?: Tensor, "batch_index"?: list[int]}``.
  ``samples`` are the *raw* VAE latents, not scaled. The sampler calls
  :meth:`DiffusionModel.process_in` (multiply by the latent scaling factor) going in and
  :meth:`DiffusionModel.process_out` coming out. The MODEL carries the latent format because
  KSampler gets no VAE.
* ``IMAGE`` is a float32 CPU tensor ``[B, H, W, C]`` in 0..1; ``MASK`` is ``[B, H, W]`` in 0..1.
* ``CONDITIONING`` is a list of ``[cond, options]`` pairs: ``cond`` is ``Tensor[1, 77*k, dim]`` and
  ``options`` a dict with ``"pooled_output"`` (``Tensor[1, P]`` or ``None``) and optionally
  ``"area"`` ``(h, w, y, x)`` in latent pixels, ``"strength"``, ``"mask"`` ``Tensor[1, H, W]``,
  ``"mask_strength"``, ``"set_area_to_bounds"``, and for SDXL ``"width"``, ``"height"``,
  ``"crop_w"``, ``"crop_h"``, ``"target_width"``, ``"target_height"``.

Model objects are *handles*: the weights belong to the model manager
(:mod:`nodes.diffusion.model_manager`), which loads them lazily, moves them between devices
and may drop them (POST /free). That is why every type here reports a small
``__weft_cache_size__``: the output cache must not count weights it does not own.

torch is imported inside methods only; importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .vae_model import HANDLE_SIZE, VAEModel

if TYPE_CHECKING:
    import torch

    from .model_manager import ModuleHandle

FAMILIES: tuple[str, ...] = ("sd1", "sd2", "sdxl")
PREDICTION_TYPES: tuple[str, ...] = ("epsilon", "v_prediction")


def default_scheduler_config(family: str, prediction_type: str) -> dict[str, Any]:
    """The training noise schedule of the Stable Diffusion families, as a diffusers scheduler config.

    SD1.x, SD2.x and SDXL were all trained with 1000 "scaled_linear" steps between betas
    0.00085 and 0.012; only the prediction target differs. Any diffusers scheduler accepts
    this dict through ``SchedulerClass.from_config(cfg)``.
    """
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": prediction_type,
        "steps_offset": 1,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "timestep_spacing": "leading",
    }


@dataclass(frozen=True)
class LatentFormat:
    """How a family's latents are scaled for the UNet, and how to preview them cheaply.

    ``rgb_factors`` (``channels`` rows of 3) and ``rgb_bias`` give a linear latent-to-RGB
    approximation for previews when known; ``None`` lets the previewer fall back to its own.
    """

    channels: int = 4
    scale_factor: float = 0.18215
    shift_factor: float = 0.0
    rgb_factors: tuple[tuple[float, float, float], ...] | None = None
    rgb_bias: tuple[float, float, float] | None = None

    def process_in(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents -> the UNet's scaled latent space."""
        return (raw - self.shift_factor) * self.scale_factor

    def process_out(self, scaled: torch.Tensor) -> torch.Tensor:
        """The UNet's scaled latents -> raw VAE latents (what a LATENT dict stores)."""
        return scaled / self.scale_factor + self.shift_factor


#: Scaling factors of the families' VAEs (their published configs).
LATENT_FORMATS: dict[str, LatentFormat] = {
    "sd1": LatentFormat(4, 0.18215),
    "sd2": LatentFormat(4, 0.18215),
    "sdxl": LatentFormat(4, 0.13025),
}


@dataclass(frozen=True)
class UNetCall:
    """One call of the UNet, as seen by a wrapper in :attr:`DiffusionModel.wrappers`.

    A wrapper is ``wrapper(apply, call) -> Tensor`` where ``apply(call)`` runs the next wrapper
    (or the UNet). Wrappers implement things like feature caching or attention changes without
    touching the weights; they may build a changed call with ``dataclasses.replace``.
    ``timestep`` is what the UNet receives: whole training timesteps, as ComfyUI calls the model
    (the sampler's fractional one rounded, :func:`.schedules.whole_timestep`).
    """

    x: Any
    timestep: Any
    cond: Any
    pooled: Any = None
    added_time_ids: Any = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    model: DiffusionModel | None = None


UNetWrapper = Callable[[Callable[[UNetCall], Any], UNetCall], Any]


class DiffusionModel:
    """``MODEL``: a denoising UNet (diffusers ``UNet2DConditionModel``) and how to drive it.

    Attributes the sampler reads:

    * ``family``: ``"sd1"``, ``"sd2"`` or ``"sdxl"``.
    * ``prediction_type``: ``"epsilon"`` or ``"v_prediction"``; what :meth:`predict_noise` returns.
    * ``scheduler_config``: a dict for ``DiffusersScheduler.from_config`` (training betas,
      ``num_train_timesteps``, ``prediction_type``...). Always consistent with ``prediction_type``.
    * ``latent_format`` / ``latent_channels``: see :class:`LatentFormat`.
    * ``patches``: weight patches (LoRA...) applied to the shared UNet in place, with backups,
      when this clone runs; another clone with other patches swaps them. Base weights are never
      copied.
    * ``wrappers``: :data:`UNetWrapper` callables around each UNet call, outermost first.
      One may also replace the UNet's forward itself (``replace_unet``, see :meth:`_unet_runner`).
    * ``model_options``: free-form dict for plugins (ComfyUI's ``transformer_options`` idea).

    Clones (:meth:`clone`) share the UNet handle; only the small fields are copied.
    """

    TYPE = "MODEL"

    def __init__(
        self,
        unet: ModuleHandle,
        *,
        family: str,
        prediction_type: str = "epsilon",
        scheduler_config: Mapping[str, Any] | None = None,
        latent_format: LatentFormat | None = None,
        patches: Sequence[Any] = (),
        wrappers: Sequence[UNetWrapper] = (),
        model_options: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {prediction_type!r}")
        self.unet = unet
        self.family = family
        self.prediction_type = prediction_type
        config = dict(scheduler_config or default_scheduler_config(family, prediction_type))
        config["prediction_type"] = prediction_type
        self.scheduler_config: dict[str, Any] = config
        self.latent_format = latent_format or LATENT_FORMATS[family]
        self.patches: tuple[Any, ...] = tuple(patches)
        self.wrappers: tuple[UNetWrapper, ...] = tuple(wrappers)
        self.model_options: dict[str, Any] = dict(model_options or {})
        self.name = name

    # -- identity and copies -------------------------------------------------------------
    def clone(self, **changes: Any) -> DiffusionModel:
        """A new MODEL sharing the UNet weights; ``changes`` override constructor arguments.

        ``clone(patches=model.patches + (p,))`` adds a patch; ``clone(prediction_type="v_prediction")``
        reinterprets the output (the scheduler config follows).
        """
        args: dict[str, Any] = {
            "family": self.family,
            "prediction_type": self.prediction_type,
            "scheduler_config": self.scheduler_config,
            "latent_format": self.latent_format,
            "patches": self.patches,
            "wrappers": self.wrappers,
            "model_options": self.model_options,
            "name": self.name,
        }
        args.update(changes)
        if "prediction_type" in changes and "scheduler_config" not in changes:
            args["scheduler_config"] = {**self.scheduler_config, "prediction_type": changes["prediction_type"]}
        return DiffusionModel(changes.pop("unet", self.unet), **{k: v for k, v in args.items() if k != "unet"})

    def with_patch(self, patch: Any) -> DiffusionModel:
        """A clone with one more weight patch (applied after the existing ones)."""
        return self.clone(patches=self.patches + (patch,))

    def with_wrapper(self, wrapper: UNetWrapper) -> DiffusionModel:
        """A clone with one more call wrapper (innermost)."""
        return self.clone(wrappers=self.wrappers + (wrapper,))

    def with_guidance_hook(self, key: str, fn: Any, disable_cfg1_optimization: bool = False) -> DiffusionModel:
        """A clone whose guider calls ``fn`` (see :mod:`.cfg_hooks` for ``key`` and the arguments)."""
        from .cfg_hooks import add_hook

        return self.clone(model_options=add_hook(self.model_options, key, fn, disable_cfg1_optimization))

    # ComfyUI's ModelPatcher names (they change this clone in place), so ported patches run.
    def set_model_sampler_cfg_function(self, fn: Any, disable_cfg1_optimization: bool = False) -> None:
        from .cfg_hooks import CFG, add_hook

        self.model_options = add_hook(self.model_options, CFG, fn, disable_cfg1_optimization)

    def set_model_sampler_pre_cfg_function(self, fn: Any, disable_cfg1_optimization: bool = False) -> None:
        from .cfg_hooks import PRE_CFG, add_hook

        self.model_options = add_hook(self.model_options, PRE_CFG, fn, disable_cfg1_optimization)

    def set_model_sampler_post_cfg_function(self, fn: Any, disable_cfg1_optimization: bool = False) -> None:
        from .cfg_hooks import POST_CFG, add_hook

        self.model_options = add_hook(self.model_options, POST_CFG, fn, disable_cfg1_optimization)

    def __weft_cache_size__(self) -> int:
        return HANDLE_SIZE

    def __repr__(self) -> str:
        return f"<MODEL {self.family} {self.prediction_type} {self.name!r} patches={len(self.patches)}>"

    # -- latents ---------------------------------------------------------------------------
    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    def process_in(self, raw: torch.Tensor) -> torch.Tensor:
        """LATENT["samples"] (raw VAE latents) -> the space the UNet denoises."""
        return self.latent_format.process_in(raw)

    def process_out(self, scaled: torch.Tensor) -> torch.Tensor:
        """Denoised latents -> raw VAE latents for LATENT["samples"]."""
        return self.latent_format.process_out(scaled)

    # -- device ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """The compute device the UNet runs on (the model manager's choice)."""
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the UNet computes in on :attr:`device` (fp32 on CPU, fp16/bf16 on GPUs)."""
        return self.unet.compute_dtype

    def prepare(self) -> Any:
        """Load the UNet on the compute device with this clone's patches applied; return it.

        Call once before a sampling loop (it may move weights and evict other models);
        :meth:`predict_noise` calls it too, where it costs a couple of attribute checks.
        """
        module = self.unet.on_device()
        self.unet.apply_patches(self.patches)
        return module

    # -- inference ---------------------------------------------------------------------------
    @property
    def needs_pooled(self) -> bool:
        """SDXL's UNet also takes the pooled text embedding and the size/crop "time ids"."""
        return self.family == "sdxl"

    def time_ids(self, options: Mapping[str, Any] | None, latent_height: int, latent_width: int) -> list[float]:
        """SDXL's six size conditioning numbers for one CONDITIONING entry.

        ``[orig_h, orig_w, crop_top, crop_left, target_h, target_w]`` from the entry's
        ``height``/``width``/``crop_h``/``crop_w``/``target_height``/``target_width`` options
        (CLIPTextEncodeSDXL sets them), defaulting to the image size and no crop; the target
        size defaults to the original size given (ComfyUI's rule: CLIPTextEncodeSDXLRefiner
        sets only ``width``/``height``).
        """
        options = options or {}
        h = float(options.get("height", latent_height * 8))
        w = float(options.get("width", latent_width * 8))
        return [
            h,
            w,
            float(options.get("crop_h", 0)),
            float(options.get("crop_w", 0)),
            float(options.get("target_height", h)),
            float(options.get("target_width", w)),
        ]

    def predict_noise(
        self,
        latents_scaled: torch.Tensor,
        timestep: torch.Tensor | float | int,
        cond: torch.Tensor,
        pooled: torch.Tensor | None = None,
        added_time_ids: torch.Tensor | None = None,
        **unet_kwargs: Any,
    ) -> torch.Tensor:
        """Run the UNet once; return its raw prediction (noise or v, see :attr:`prediction_type`).

        * ``latents_scaled``: ``[B, C, h, w]`` already through :meth:`process_in` (and through
          the scheduler's ``scale_model_input``). Any device/dtype; the result comes back in
          the same device and dtype.
        * ``timestep``: a training timestep (number or ``[B]`` tensor), fractional from a sampler;
          the UNet and :attr:`UNetCall.timestep` get its :func:`~.schedules.whole_timestep`.
        * ``cond``: ``[B, T, dim]`` text embeddings. For CFG, stack uncond and cond along the
          batch; their token lengths must match (repeat the shorter to the lcm of 77-chunks).
        * ``pooled``: ``[B, P]`` pooled text embedding; SDXL only (required there).
        * ``added_time_ids``: ``[B, 6]`` SDXL size conditioning; ``None`` uses
          :meth:`time_ids` defaults for the latent size.
        * ``concat``: ``[B or 1, k, h, w]`` extra input channels appended to the latent (the
          mask and masked-image latents of 9-channel inpainting models); a latent plus
          ``concat`` must give the UNet's ``in_channels``, else a clear error.
        * other ``unet_kwargs``: passed to ``UNet2DConditionModel.forward`` (ControlNet's
          ``down_block_additional_residuals`` / ``mid_block_additional_residual``,
          ``cross_attention_kwargs``...).
        """
        import torch

        unet = self.prepare()
        device, dtype = self.device, self.dtype
        out_device, out_dtype = latents_scaled.device, latents_scaled.dtype
        batch = latents_scaled.shape[0]
        concat = unet_kwargs.pop("concat", None)
        self._check_in_channels(unet, latents_scaled, concat)
        x = latents_scaled.to(device=device, dtype=dtype)
        t = _timesteps(timestep, batch, device)
        c = cond.to(device=device, dtype=dtype)
        kwargs: dict[str, Any] = dict(unet_kwargs)
        if self.needs_pooled:
            if pooled is None:
                raise ValueError("an SDXL model needs the pooled text embedding: use a CLIP from an SDXL checkpoint")
            if added_time_ids is None:
                added_time_ids = torch.tensor([self.time_ids(None, x.shape[-2], x.shape[-1])] * batch)
            kwargs["added_cond_kwargs"] = {
                "text_embeds": pooled.to(device=device, dtype=dtype),
                "time_ids": added_time_ids.to(device=device, dtype=dtype),
            }
        _residuals_to(kwargs, device, dtype)
        if concat is not None:
            concat = concat.to(device=device, dtype=dtype)
            if concat.shape[0] != batch:
                concat = concat.repeat(batch // concat.shape[0], 1, 1, 1)
        apply = self._call_chain(unet, concat)
        # no_grad rather than inference_mode: outputs stay ordinary tensors that callers (and
        # plugins) may modify in place; the speed difference is negligible next to the UNet.
        with torch.no_grad():
            out = apply(UNetCall(x, t, c, pooled, added_time_ids, kwargs, self))
        return out.to(device=out_device, dtype=out_dtype)

    def _check_in_channels(self, unet: Any, latents: torch.Tensor, concat: torch.Tensor | None) -> None:
        extra_channels = 0 if concat is None else concat.shape[1]
        expected = unet.config.in_channels
        if latents.shape[1] + extra_channels != expected:
            kind = "an inpainting model" if expected == 9 else f"a model with {expected} input channels"
            raise ValueError(
                f"{self.name or 'this MODEL'} is {kind}, given {latents.shape[1]} latent channels "
                f"and {extra_channels} extra (pass the mask and masked-image latents as concat=)"
            )

    def _call_chain(self, unet: Any, concat: torch.Tensor | None) -> Callable[[UNetCall], Any]:
        """The UNet call inside this MODEL's :attr:`wrappers` (outermost first)."""
        import torch

        run = self._unet_runner(unet)

        def call_unet(call: UNetCall) -> torch.Tensor:
            extra = dict(call.kwargs)
            x_in = call.x if concat is None else torch.cat([call.x, concat], dim=1)
            return run(x_in, call.timestep, encoder_hidden_states=call.cond, return_dict=False, **extra)[0]

        apply: Callable[[UNetCall], Any] = call_unet
        for wrapper in reversed(self.wrappers):
            apply = _bind(wrapper, apply)
        return apply

    def _unet_runner(self, unet: Any) -> Callable[..., Any]:
        """What the innermost call runs: the module, or a stand-in with its signature.

        The hook for replacing the module's forward (torch.compile): a wrapper with a
        ``replace_unet(module)`` method (TorchCompileModel's) supplies the callable, else the
        ``--compile-unet`` setting does (:mod:`.unet_compile`), else the module runs as it is.
        """
        for wrapper in reversed(self.wrappers):
            replace = getattr(wrapper, "replace_unet", None)
            if replace is not None:
                return replace(unet)
        backend = getattr(getattr(getattr(self.unet, "manager", None), "settings", None), "compile_unet", "")
        if backend:
            from .unet_compile import compiled_runner

            return compiled_runner(unet, backend, owner="--compile-unet")
        return unet


def _timesteps(timestep: Any, batch: int, device: Any) -> torch.Tensor:
    """A number or tensor of timesteps as the UNet's float32 ``[B]`` tensor of whole timesteps."""
    import torch

    from .schedules import whole_timestep

    if not torch.is_tensor(timestep):
        timestep = torch.tensor([float(timestep)], device=device)
    t = whole_timestep(timestep.to(device=device, dtype=torch.float32).reshape(-1))
    if t.numel() == 1 and batch > 1:
        t = t.expand(batch)
    return t


def _residuals_to(kwargs: dict[str, Any], device: Any, dtype: Any) -> None:
    """ControlNet residuals in ``kwargs`` moved to the UNet's device and dtype (in place)."""
    if kwargs.get("down_block_additional_residuals") is not None:
        kwargs["down_block_additional_residuals"] = tuple(
            r.to(device=device, dtype=dtype) for r in kwargs["down_block_additional_residuals"]
        )
    if kwargs.get("mid_block_additional_residual") is not None:
        kwargs["mid_block_additional_residual"] = kwargs["mid_block_additional_residual"].to(device=device, dtype=dtype)


def _bind(wrapper: UNetWrapper, inner: Callable[[UNetCall], Any]) -> Callable[[UNetCall], Any]:
    return lambda call: wrapper(inner, call)


@dataclass(frozen=True)
class ClipPart:
    """One text encoder of a CLIP: SD1/SD2 have one, SDXL two (CLIP-L, then OpenCLIP bigG).

    * ``default_layer``: the hidden layer used when no CLIPSetLastLayer is applied, as a
      negative index (``-1`` last, ``-2`` penultimate: SD2 and SDXL).
    * ``layer_offset``: top layers missing from the loaded weights. diffusers' SD2 folders
      store 23 of OpenCLIP's 24 layers (their "last" is the original penultimate), so
      ``-2`` there means hidden_states[-1]; layer indices stay the same as for single files.
    * ``final_norm_on_hidden``: whether the chosen hidden state goes through the final layer
      norm (SD1/SD2 yes, SDXL no).
    * ``pad_token``: ``"end"`` pads with <|endoftext|> (OpenAI CLIP-L); ``"!"`` with token 0
      (OpenCLIP).
    * ``pooled``: ``"pooler"`` (the EOS token's final state), ``"projection"`` (SDXL's
      bigG ``text_embeds``) or ``"none"``.
    """

    handle: ModuleHandle
    tokenizer: ModuleHandle
    default_layer: int = -1
    layer_offset: int = 0
    final_norm_on_hidden: bool = True
    pad_token: str = "end"
    pooled: str = "pooler"


class TextEncoder:
    """``CLIP``: tokenizer(s) and CLIP text encoder(s) of a family, plus ``clip_skip``.

    ``clip_skip`` is ComfyUI's CLIPSetLastLayer value: ``None`` (the family default), or a
    negative layer index (``-1`` last layer, ``-2`` penultimate...). ``patches`` are weight
    patches (LoRA) for the encoders, applied in place with backups like the UNet's.
    :meth:`encode` returns ``(cond [1, 77*k, dim], pooled [1, P] or None)``; prompt weighting
    and chunking live in :mod:`nodes.diffusion.clip_text`.
    """

    TYPE = "CLIP"

    def __init__(
        self,
        family: str,
        parts: Sequence[ClipPart],
        *,
        clip_skip: int | None = None,
        patches: Sequence[Any] = (),
        name: str = "",
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown CLIP family {family!r}")
        self.family = family
        self.parts: tuple[ClipPart, ...] = tuple(parts)
        self.clip_skip = clip_skip
        self.patches: tuple[Any, ...] = tuple(patches)
        self.name = name

    def clone(self, **changes: Any) -> TextEncoder:
        """A new CLIP sharing the encoders' weights with some fields changed."""
        args: dict[str, Any] = {"clip_skip": self.clip_skip, "patches": self.patches, "name": self.name}
        args.update(changes)
        return TextEncoder(
            changes.pop("family", self.family),
            changes.pop("parts", self.parts),
            **{k: v for k, v in args.items() if k not in ("family", "parts")},
        )

    def with_patch(self, patch: Any) -> TextEncoder:
        return self.clone(patches=self.patches + (patch,))

    def __weft_cache_size__(self) -> int:
        return HANDLE_SIZE

    def __repr__(self) -> str:
        return f"<CLIP {self.family} {self.name!r} skip={self.clip_skip} patches={len(self.patches)}>"

    def encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encode a prompt with ComfyUI's weighting syntax; float32 CPU tensors."""
        from .clip_text import encode_prompt

        return encode_prompt(self, text)

    def encode_conditioning(self, text: str) -> list[list[Any]]:
        """The CONDITIONING list CLIPTextEncode outputs for ``text``."""
        cond, pooled = self.encode(text)
        return [[cond, {"pooled_output": pooled}]]

    # -- ComfyUI's CLIP methods, for plugins written against ComfyUI ------------------------
    def tokenize(self, text: str, return_word_ids: bool = False, **_: Any) -> dict[str, list[list[tuple[Any, float]]]]:
        """``{"l": [[(token, weight) x 77], ...]}`` (``"g"`` for SDXL's bigG, ``"h"`` for SD2)."""
        from .clip_text import tokenize_comfy

        return tokenize_comfy(self, text)

    def encode_from_tokens(
        self, tokens: dict[str, Any], return_pooled: bool | str = False, return_dict: bool = False
    ) -> Any:
        """ComfyUI's ``encode_from_tokens``: cond, ``(cond, pooled)`` or ``{"cond", "pooled_output"}``."""
        from .clip_text import encode_comfy_tokens

        cond, pooled = encode_comfy_tokens(self, tokens)
        if return_dict:
            return {"cond": cond, "pooled_output": pooled}
        return (cond, pooled) if return_pooled else cond

    def encode_from_tokens_scheduled(
        self, tokens: dict[str, Any], unprojected: bool = False, add_dict: Mapping[str, Any] | None = None
    ) -> list[list[Any]]:
        """ComfyUI's newer CLIPTextEncode path: the CONDITIONING list for ``tokens``."""
        result = self.encode_from_tokens(tokens, return_dict=True)
        return [[result["cond"], {"pooled_output": result["pooled_output"], **dict(add_dict or {})}]]

    def clip_layer(self, layer_idx: int) -> None:
        """ComfyUI's in-place CLIPSetLastLayer (plugins call it on a ``clone()``)."""
        self.clip_skip = layer_idx


class MissingComponentError(AttributeError):
    """A CLIP or VAE output of a checkpoint that has none was used."""


class MissingComponent:
    """Stands in for a CLIP or VAE that a checkpoint does not contain.

    ComfyUI's loader returns ``None`` there, so a workflow that takes the model from one file
    and the VAE/CLIP from others still runs; using the placeholder raises its message (naming
    the loader input and the file), which ``None`` could not say.
    """

    def __init__(self, type_name: str, message: str) -> None:
        object.__setattr__(self, "type_name", type_name)
        object.__setattr__(self, "message", message)

    def __getattr__(self, name: str) -> Any:
        raise MissingComponentError(self.message)

    def __bool__(self) -> bool:
        return False

    def __weft_cache_size__(self) -> int:
        return 64

    def __repr__(self) -> str:
        return f"<missing {self.type_name}: {self.message}>"


__all__ = [
    "FAMILIES",
    "PREDICTION_TYPES",
    "LatentFormat",
    "LATENT_FORMATS",
    "UNetCall",
    "UNetWrapper",
    "DiffusionModel",
    "ClipPart",
    "TextEncoder",
    "VAEModel",
    "default_scheduler_config",
    "MissingComponent",
    "MissingComponentError",
]
