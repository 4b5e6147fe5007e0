"""The guidance hook: how MODEL patches change the way CFG combines two predictions.

ComfyUI lets a MODEL patch change guidance through three entries of ``model_options``, and a
large share of guidance research (APG, CFG rescale, PAG, guidance intervals, and many
plugins) is written against them. Weft keeps the same names and argument dictionaries so such
functions port unchanged:

* ``sampler_pre_cfg_function`` (list): ``fn(args) -> conds_out``; ``args["conds_out"]`` is
  ``[cond_denoised, uncond_denoised]``; returns the (changed) list.
* ``sampler_cfg_function`` (one): ``fn(args) -> x - guided_denoised``; ``args`` has ``cond``
  and ``uncond`` as ``x - denoised`` ("noise" in k-diffusion's sense), ``cond_scale``,
  ``input`` (x) and ``sigma``. Default: ``uncond + (cond - uncond) * cond_scale``.
* ``sampler_post_cfg_function`` (list): ``fn(args) -> denoised``; ``args["denoised"]`` is the
  guided result, with ``cond_denoised`` / ``uncond_denoised`` beside it.

Everything here is in ComfyUI's k-diffusion space: ``x = x0 + sigma * eps`` (``input``) and
``sigma`` a ``[B]`` tensor. Weft's loop feeds the UNet the scaled input ``x / sqrt(1 + sigma^2)``
and a training timestep, and the UNet returns noise or v; :class:`CallSpace` converts both ways.
Only a model with hooks pays for the conversion; plain CFG stays a single ``lerp``.

Weft adds two keys to the args of every hook, for the hooks that need one more evaluation of the
model at the step's noise level (:class:`HookArgs`):

* ``weft_predict_cond(model) -> denoised``: the positive conditioning's denoised prediction
  under another MODEL (for example one whose attention is perturbed: PAG), on the same input;
* ``weft_predict(conditioning, x=None, model=None) -> denoised``: any CONDITIONING's denoised
  prediction, on another k-diffusion input ``x`` if given (ComfyUI's hooks call
  ``calc_cond_batch`` for this: PerpNeg's empty prompt, SelfAttentionGuidance's blurred input).

Both are bare predictions (no guidance hooks) and build their predictor once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PRE_CFG = "sampler_pre_cfg_function"
CFG = "sampler_cfg_function"
POST_CFG = "sampler_post_cfg_function"
#: ComfyUI's flag: run the unconditional branch even at cfg 1 (a hook may need it)
DISABLE_CFG1_OPTIMIZATION = "disable_cfg1_optimization"
#: Weft's: a list of ``fn(sigma: float, model) -> bool``; when any says ``False`` for a step, the
#: guider evaluates only the positive half there and the hooks see ``uncond_denoised`` as the very
#: same tensor as ``cond_denoised`` (a guidance interval, a CFG cut-off). Honoured on the guider's
#: fast path (one positive and one negative entry, no areas, masks or ControlNets); elsewhere both
#: halves are evaluated and the hooks decide as usual.
UNCOND_NEEDED = "weft_uncond_needed"

#: ``mix(x_in, t, uncond_out, cond_out) -> out``: the guider's combination of one call's halves
Mix = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def uncond_gate(model: Any) -> Callable[[Any], bool] | None:
    """``needed(t)`` for the MODEL's :data:`UNCOND_NEEDED` functions, or ``None`` without any."""
    gates = list(model.model_options.get(UNCOND_NEEDED) or ())
    if not gates:
        return None
    space = CallSpace(model.prediction_type, model.scheduler_config)

    def needed(t: Any) -> bool:
        sigma = float(space.sigma(t, 1)[0])
        return all(gate(sigma, model) for gate in gates)

    return needed


def has_hooks(model_options: Mapping[str, Any]) -> bool:
    return bool(model_options.get(PRE_CFG) or model_options.get(CFG) or model_options.get(POST_CFG))


def hook_functions(model_options: Mapping[str, Any]) -> list[Any]:
    """Every hook function of ``model_options`` (for the run protocol: begin_run/report)."""
    found = list(model_options.get(PRE_CFG) or ()) + list(model_options.get(POST_CFG) or ())
    if model_options.get(CFG) is not None:
        found.append(model_options[CFG])
    return found


def without_hooks(model_options: Mapping[str, Any]) -> dict:
    return {k: v for k, v in model_options.items() if k not in (PRE_CFG, CFG, POST_CFG)}


def add_hook(model_options: Mapping[str, Any], key: str, fn: Any, disable_cfg1_optimization: bool = False) -> dict:
    """A copy of ``model_options`` with ``fn`` set (``CFG``) or appended (the two lists)."""
    options = dict(model_options)
    if key == CFG:
        options[CFG] = fn
    else:
        options[key] = list(options.get(key) or ()) + [fn]
    if disable_cfg1_optimization:
        options[DISABLE_CFG1_OPTIMIZATION] = True
    return options


class CallSpace:
    """Conversions between one UNet call's raw output and k-diffusion's denoised estimate.

    The UNet sees ``x_in = x / sqrt(1 + sigma^2)`` (VP scaling) at timestep ``t``. With
    ``a = 1/sqrt(1 + sigma^2)``: epsilon models give ``x0 = x - sigma * eps``; v models give
    ``x0 = a * x_in - sigma * a * v``. Both are affine in the output, so the inverse is exact
    up to rounding.
    """

    def __init__(self, prediction_type: str, scheduler_config: Mapping[str, Any]) -> None:
        from .samplers import model_sigmas

        self.v = prediction_type == "v_prediction"
        self.ms = model_sigmas(scheduler_config)

    def sigma(self, t: torch.Tensor, batch: int) -> torch.Tensor:

        t = t.detach().float().cpu().reshape(-1)
        sigma = self.ms.t_to_sigma(t)
        return sigma.expand(batch) if sigma.numel() == 1 else sigma.reshape(batch)

    @staticmethod
    def _b(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(device=like.device, dtype=like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))

    def x(self, x_in: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The k-diffusion sample (``input`` of the hooks)."""
        return x_in * self._b((1 + sigma * sigma).sqrt(), x_in)

    def x_in(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The UNet's input for the k-diffusion sample ``x`` (the inverse of :meth:`x`)."""
        return x * self._b((1 + sigma * sigma).rsqrt(), x)

    def denoised(self, out: torch.Tensor, x_in: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = self._b(sigma, out)
        a = self._b((1 + sigma * sigma).rsqrt(), out)
        if self.v:
            return a * x_in - s * a * out
        return x_in / a - s * out

    def output(self, denoised: torch.Tensor, x_in: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = self._b(sigma, denoised)
        a = self._b((1 + sigma * sigma).rsqrt(), denoised)
        if self.v:
            return (a * x_in - denoised) / (s * a)
        return (x_in / a - denoised) / s


def _run_hooks(
    common: dict[str, Any],
    cond_lists: list[Any],
    pre: list[Any],
    cfg_fn: Any,
    post: list[Any],
    x: torch.Tensor,
    cfg: float,
    cond_d: torch.Tensor,
    uncond_d: torch.Tensor,
) -> torch.Tensor:
    """One step's guided denoised estimate: the pre-CFG hooks, the combination, the post-CFG hooks.

    Each hook gets ``common`` plus its own keys under ComfyUI's names (see the module docstring).
    """
    outs = [cond_d, uncond_d]
    for fn in pre:
        outs = list(fn({**common, "conds": cond_lists, "conds_out": outs}))
    cond_d, uncond_d = outs[0], outs[1]
    if cfg_fn is not None:
        guided = x - cfg_fn(
            {
                **common,
                "cond": x - cond_d,
                "uncond": x - uncond_d,
                "cond_denoised": cond_d,
                "uncond_denoised": uncond_d,
                "input_cond": cond_lists[0],
                "input_uncond": cond_lists[1],
            }
        )
    else:
        guided = uncond_d + (cond_d - uncond_d) * cfg
    for fn in post:
        guided = fn(
            {
                **common,
                "denoised": guided,
                "cond": cond_lists[0],
                "uncond": cond_lists[1],
                "cond_denoised": cond_d,
                "uncond_denoised": uncond_d,
            }
        )
    return guided


class HookArgs:
    """The arguments every hook gets at one model call of a run, built once per run by a guider.

    ``predict_with(other_model, conditioning)`` returns a raw ``predict(x_in, t)`` of
    ``conditioning`` alone under ``other_model`` (no guidance hooks); it is called once per
    (model, conditioning) pair of the run, when a hook first asks.
    """

    def __init__(
        self,
        model: Any,
        cfg: float,
        conds: Mapping[str, Any],
        predict_with: Callable[[Any, Any], Callable[[Any, Any], Any]],
    ) -> None:
        self.model, self.cfg, self.conds = model, cfg, conds
        self.space = CallSpace(model.prediction_type, model.scheduler_config)
        self._predict_with = predict_with
        self._predictors: list[tuple[Any, Any, Callable[[Any, Any], Any]]] = []

    def _predictor(self, model: Any, conditioning: Any) -> Callable[[Any, Any], Any]:
        for known_model, known_cond, predict in self._predictors:
            if known_model is model and known_cond is conditioning:
                return predict
        predict = self._predict_with(model, conditioning)
        self._predictors.append((model, conditioning, predict))
        return predict

    def at(self, x_in: torch.Tensor, t: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
        """The common args at the call ``(x_in, t)``, and that call's sigmas (``[B]``, CPU)."""
        space = self.space
        sigma = space.sigma(t, x_in.shape[0])
        sigma_dev = sigma.to(x_in.device)

        def predict(conditioning: Any, x: torch.Tensor | None = None, model: Any = None) -> torch.Tensor:
            unet_in = x_in if x is None else space.x_in(x, sigma)
            out = self._predictor(self.model if model is None else model, conditioning)(unet_in, t)
            return space.denoised(out, unet_in, sigma)

        positive = self.conds.get("positive")
        common = {
            "model": self.model,
            "model_options": self.model.model_options,
            "sigma": sigma_dev,
            "timestep": sigma_dev,
            "input": space.x(x_in, sigma),
            "cond_scale": self.cfg,
            "weft_predict_cond": lambda other: predict(positive, None, other),
            "weft_predict": predict,
        }
        return common, sigma


def make_mix(
    model: Any, cfg: float, conds: Mapping[str, Any], predict_with: Callable[[Any, Any], Callable[[Any, Any], Any]]
) -> Mix:
    """The hooked combination for ``model``'s ``model_options`` (see the module docstring);
    ``predict_with`` as for :class:`HookArgs`."""
    options = model.model_options
    pre = list(options.get(PRE_CFG) or ())
    cfg_fn = options.get(CFG)
    post = list(options.get(POST_CFG) or ())
    hook_args = HookArgs(model, cfg, conds, predict_with)
    space = hook_args.space
    cond_lists = [conds.get("positive"), conds.get("negative")]

    def mix(x_in: torch.Tensor, t: torch.Tensor, uncond_out: torch.Tensor, cond_out: torch.Tensor) -> torch.Tensor:
        common, sigma = hook_args.at(x_in, t)
        cond_d = space.denoised(cond_out, x_in, sigma)
        # one tensor for both when the unconditional half was not evaluated (UNCOND_NEEDED, cfg 1)
        uncond_d = cond_d if uncond_out is cond_out else space.denoised(uncond_out, x_in, sigma)
        guided = _run_hooks(common, cond_lists, pre, cfg_fn, post, common["input"], cfg, cond_d, uncond_d)
        return space.output(guided, x_in, sigma)

    return mix
