"""Several prompts' sampler and decoder calls made as one batch (``--batch-prompts``).

KSampler, KSamplerAdvanced, SamplerCustomAdvanced and VAEDecode have a ``run_batch`` (the
engine's batch capability, :mod:`engine.batch`): given the calls of prompts that differ in seed
and text, they sample (or decode) one concatenated batch and hand each prompt its own rows.
Each prompt gets exactly the noise it gets alone (drawn from its own seed for its own latent
shape, :class:`MemberNoise`) and its own conditioning rows; the UNet, CFG and a deterministic
sampler's update treat the rows of a batch independently, so each prompt's slice is the image it
gets alone, up to the rounding of batched matrix products (about 1e-6 relative in float32).

``run_batch`` answers ``None`` (then each prompt runs alone) for what it cannot batch so:

* different models, VAEs, samplers, schedules, steps, CFG, denoise or latent sizes;
* samplers that draw noise along the way (ancestral, SDE, LCM, DDPM, ...: one generator would
  draw it for the whole batch) or adapt their steps to the batch (``dpm_adaptive``): only
  :data:`DETERMINISTIC_SAMPLERS` batch;
* latents with anything besides ``samples`` (an inpainting ``noise_mask``, a ``batch_index``);
* conditioning other than one plain entry per input: areas, masks, strength, timestep ranges,
  ControlNets, inpainting-model inputs; or text encodings of different token lengths
  (prompts longer than 75 tokens beside shorter ones);
* MODELs with call wrappers or guidance hooks (feature caches, SAG, PerpNeg...), guiders other
  than CFGGuider/BasicGuider's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: samplers whose result depends on the initial noise only: no step noise, no adaptive steps
DETERMINISTIC_SAMPLERS = frozenset(
    {"euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ddim", "uni_pc", "uni_pc_bh2", "deis", "ipndm"}
)

#: options a text encoder sets that are the same for every row of a batch (SDXL's size conditioning)
_PLAIN_OPTIONS = frozenset(
    {"pooled_output", "width", "height", "crop_w", "crop_h", "target_width", "target_height", "aesthetic_score"}
)
_SCALARS = (int, float, str, bool, type(None))


class MemberNoise:
    """NOISE for a concatenated batch: each prompt's own noise, drawn as it is when it runs alone."""

    def __init__(self, sources: Sequence[Any], latents: Sequence[Mapping[str, Any]]) -> None:
        self.sources, self.latents = list(sources), list(latents)
        self.seed = getattr(self.sources[0], "seed", None)

    def generate_noise(self, latent: Mapping[str, Any] | None = None) -> torch.Tensor:
        import torch

        return torch.cat([s.generate_noise(lat) for s, lat in zip(self.sources, self.latents, strict=True)])


def same_settings(calls: Sequence[Mapping[str, Any]], varying: frozenset[str]) -> bool:
    """Every input outside ``varying`` is the same in every call: the same object (a MODEL, a
    SAMPLER), an equal constant, or an equal tensor (SIGMAS)."""
    first = calls[0]
    for call in calls[1:]:
        if call.keys() != first.keys():
            return False
        for name, value in first.items():
            if name not in varying and not _same(value, call[name]):
                return False
    return True


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, _SCALARS) and isinstance(b, _SCALARS):
        return type(a) is type(b) and a == b
    import torch

    return torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and bool(torch.equal(a, b))


def latent_sizes(latents: Sequence[Any], plain: bool = True) -> list[int] | None:
    """Each LATENT's batch size, or ``None`` when they cannot be concatenated (``plain``: nothing
    but ``samples``, so no inpainting mask or batch index)."""
    import torch

    shape = None
    sizes = []
    for latent in latents:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        if not torch.is_tensor(samples) or samples.dim() != 4 or (plain and set(latent) != {"samples"}):
            return None
        if shape is None:
            shape = (tuple(samples.shape[1:]), samples.dtype)
        elif (tuple(samples.shape[1:]), samples.dtype) != shape:
            return None
        sizes.append(int(samples.shape[0]))
    return sizes


def merge_conditioning(conds: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]] | None:
    """One CONDITIONING whose rows are each prompt's (repeated over its latent batch), or ``None``
    when one is not a single plain entry or their token lengths or options differ."""
    import torch

    entries = []
    for cond in conds:
        if not (isinstance(cond, list) and len(cond) == 1 and len(cond[0]) == 2):
            return None
        tensor, options = cond[0]
        if not (torch.is_tensor(tensor) and tensor.dim() == 3 and tensor.shape[0] == 1):
            return None
        if not isinstance(options, dict) or not set(options) <= _PLAIN_OPTIONS:
            return None
        entries.append((tensor, options))
    if all(c is conds[0] for c in conds):
        return conds[0]  # shared (a negative prompt): the guider repeats it over the batch as alone
    first, options = entries[0]
    rest = {k: v for k, v in options.items() if k != "pooled_output"}
    for tensor, other in entries[1:]:
        if tensor.shape != first.shape or {k: v for k, v in other.items() if k != "pooled_output"} != rest:
            return None
    rows = torch.cat([t.expand(n, -1, -1) for (t, _), n in zip(entries, sizes, strict=True)])
    pooled = [o.get("pooled_output") for _, o in entries]
    if all(p is None for p in pooled):
        return [[rows, dict(rest)]]
    if not all(torch.is_tensor(p) and p.dim() == 2 and p.shape == pooled[0].shape == (1, p.shape[1]) for p in pooled):
        return None
    pooled_rows = torch.cat([p.expand(n, -1) for p, n in zip(pooled, sizes, strict=True)])
    return [[rows, {**rest, "pooled_output": pooled_rows}]]


def plain_model(model: Any) -> bool:
    """A MODEL without call wrappers or guidance hooks (weight patches such as LoRA are fine)."""
    return not getattr(model, "wrappers", ()) and not getattr(model, "model_options", {})


def split(samples: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    """Each prompt's rows, as tensors of their own (a later node may change them in place)."""
    return [part.clone() for part in samples.split(list(sizes))]


def concat_latents(latents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    import torch

    return {"samples": torch.cat([latent["samples"] for latent in latents])}


def ksampler_batch(calls: Sequence[Mapping[str, Any]], seed_input: str) -> list[Any] | None:
    """KSampler (``seed``) and KSamplerAdvanced (``noise_seed``) for several prompts at once."""
    from .noise import NoNoise, RandomNoiseSource
    from .sampler_nodes import _out_latent, _with_reports, common_ksampler

    first = calls[0]
    if not same_settings(calls, frozenset({seed_input, "positive", "negative", "latent_image"})):
        return None
    if first.get("sampler_name") not in DETERMINISTIC_SAMPLERS or not plain_model(first.get("model")):
        return None
    latents = [c["latent_image"] for c in calls]
    sizes = latent_sizes(latents)
    if sizes is None:
        return None
    positive = merge_conditioning([c["positive"] for c in calls], sizes)
    negative = merge_conditioning([c["negative"] for c in calls], sizes)
    if positive is None or negative is None:
        return None
    disable = first.get("add_noise") == "disable"
    noise = MemberNoise([NoNoise() if disable else RandomNoiseSource(c[seed_input]) for c in calls], latents)
    options: dict[str, Any] = {"denoise": first["denoise"]} if seed_input == "seed" else _advanced(first)
    reports: list[dict[str, Any]] = []
    out = common_ksampler(
        first["model"],
        first[seed_input],
        first["steps"],
        first["cfg"],
        first["sampler_name"],
        first["scheduler"],
        positive,
        negative,
        concat_latents(latents),
        reports=reports,
        noise_source=noise,
        **options,
    )
    parts = split(out["samples"], sizes)
    return [_with_reports(reports, _out_latent(latent, part)) for latent, part in zip(latents, parts, strict=True)]


def _advanced(call: Mapping[str, Any]) -> dict[str, Any]:
    """KSamplerAdvanced's inputs as ``common_ksampler`` takes them."""
    return {
        "disable_noise": call["add_noise"] == "disable",
        "start_step": call["start_at_step"],
        "last_step": call["end_at_step"],
        "force_full_denoise": call["return_with_leftover_noise"] != "enable",
    }


def custom_batch(calls: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """SamplerCustomAdvanced for several prompts: the guiders' conditionings merged row by row."""
    from .guidance import Guider
    from .noise import NoNoise, RandomNoiseSource
    from .sampler_nodes import _out_latent, _with_reports
    from .samplers import SamplerSpec
    from .sampling import run_sampler

    first = calls[0]
    sampler, guiders = first["sampler"], [c["guider"] for c in calls]
    if not same_settings(calls, frozenset({"noise", "guider", "latent_image"})):
        return None
    if not isinstance(sampler, SamplerSpec) or sampler.name not in DETERMINISTIC_SAMPLERS:
        return None
    if not all(type(n) in (RandomNoiseSource, NoNoise) for n in (c["noise"] for c in calls)):
        return None
    model = guiders[0].model if type(guiders[0]) is Guider else None
    if model is None or not plain_model(model):
        return None
    if any(type(g) is not Guider or g.model is not model or g.cfg != guiders[0].cfg for g in guiders):
        return None
    if any(g.conds.keys() != guiders[0].conds.keys() for g in guiders):
        return None
    latents = [c["latent_image"] for c in calls]
    sizes = latent_sizes(latents)
    if sizes is None:
        return None
    guider = Guider(model, guiders[0].cfg)
    for name in guiders[0].conds:
        merged = merge_conditioning([g.conds[name] for g in guiders], sizes)
        if merged is None:
            return None
        guider.conds[name] = merged
    noise = MemberNoise([c["noise"] for c in calls], latents)
    result = run_sampler(
        model, sampler, first["sigmas"], concat_latents(latents), noise.generate_noise(), guider, noise.seed
    )
    outs = zip(latents, split(result.samples, sizes), split(result.denoised, sizes), strict=True)
    return [_with_reports(result.reports, _out_latent(lat, x), _out_latent(lat, d)) for lat, x, d in outs]


def decode_batch(calls: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """VAEDecode for several prompts: one decode of the concatenated latents."""
    vae = calls[0]["vae"]
    if any(c["vae"] is not vae for c in calls) or not hasattr(vae, "decode"):
        return None
    latents = [c["samples"] for c in calls]
    sizes = latent_sizes(latents, plain=False)
    if sizes is None:
        return None
    images = vae.decode(concat_latents(latents)["samples"])
    return [(image,) for image in split(images, sizes)]
