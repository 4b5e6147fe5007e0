"""Samplers that bring their own loop: the k-diffusion-style interface of :func:`sampling.sample`.

Most SAMPLERs are a diffusers scheduler (or a rule of Weft's own) driven call by call (:class:`.steppers.Stepper`).
Some cannot be: an error-controlled adaptive solver decides how many model calls it makes,
momentum variants keep their own history, inversion runs the loop backwards. Such a SAMPLER
defines ``sample_loop(run: LoopRun) -> (x, denoised)`` and the sampling loop hands it a
:class:`LoopRun`: the model as a denoiser in k-diffusion's space (``x = x0 + sigma * eps``),
the sigmas, the starting sample, and the per-step bookkeeping (inpainting mask, progress,
previews, interruption) so that every such sampler behaves like the built-in ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .noise import step_noise, step_noise_generator

if TYPE_CHECKING:
    import torch


class LoopRun:
    """One sampling run as seen by a SAMPLER with its own loop.

    * :attr:`sigmas`: float32 CPU tensor, descending (SIGMAS convention, usually ending in 0).
    * :attr:`x`: the starting sample, ``latent + noise * sigma_0`` (scaled latent space).
    * :meth:`denoise`: the guided model's clean estimate at ``(x, sigma)``; every call is
      one guided model evaluation (counted in :attr:`model_calls`).
    * :meth:`step_done`: call after each completed step; reports progress and previews, and is
      where an interrupt from the user stops the run.
    * Inpainting (a LATENT with ``noise_mask``) happens inside :meth:`denoise`, at every call, as
      ComfyUI does it (:mod:`.inpainting`); :meth:`finish` puts the kept area back exactly.
    * :attr:`generator`: the seeded generator for the noise an SDE sampler adds.
    * :meth:`denoise_with_uncond`: the guided and the unconditional clean estimate of one call,
      for CFG++ samplers; only on a run built with ``uncond=True`` (a SAMPLER asks for that
      with ``needs_uncond = True``).
    """

    def __init__(
        self,
        guider: Any,
        sigmas: torch.Tensor,
        latent: torch.Tensor,
        noise: torch.Tensor,
        mask: torch.Tensor | None,
        seed: int | None,
        on_step: Callable[[int, int, Any], None] | None,
        wants_preview: Callable[[int], bool] | None,
        mask_at: Callable[[float], Any] | None = None,
        uncond: bool = False,
        keep_noise: torch.Tensor | None = None,
    ) -> None:
        import torch

        from .cfg_hooks import CallSpace
        from .inpainting import Inpainting

        #: the unconditional estimate of the last call (runs with ``uncond=True``)
        self._uncond: torch.Tensor | None = None
        self.keeps_uncond = bool(uncond)
        self.guider = keeping_uncond(guider, self._keep_uncond) if uncond else guider
        self.model = self.guider.model
        self.sigmas = sigmas.detach().to("cpu", torch.float32).flatten()
        self.latent, self.noise, self.mask = latent, noise, mask
        #: the mask in force at a noise level (see sampling.step_mask); the mask itself by default
        self.mask_at = mask_at or (lambda sigma: mask)
        self._inpainting = (
            None if mask is None else Inpainting(latent, noise if keep_noise is None else keep_noise, self.mask_at)
        )
        self._last_sigma = float(self.sigmas[0])
        self.device = latent.device
        self.seed = seed
        self.generator = step_noise_generator(seed, self.device)
        self._space = CallSpace(self.model.prediction_type, self.model.scheduler_config)
        self._predict: Callable[[Any, Any], Any] | None = None
        self._on_step, self._wants_preview = on_step, wants_preview
        self.model_calls = 0
        sigma0 = float(self.sigmas[0])
        at_top = sigma0 >= self._space.ms.sigma_max * (1 - 1e-5)
        # from the model's top noise level the noise is scaled by sqrt(1 + sigma^2), as ComfyUI does
        self.x = latent + noise * (math.sqrt(1.0 + sigma0 * sigma0) if at_top else sigma0)

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """The guided clean estimate of ``x`` at noise level ``sigma`` (k-diffusion space)."""
        import torch

        if self._predict is None:
            self._predict = self.guider.predictor(tuple(x.shape), self.device)
        s = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)[:1].cpu()
        t = self._space.ms.call_timestep(s)
        mask = None
        if self._inpainting is not None:
            self._last_sigma = float(s)
            x, mask = self._inpainting.model_input(x, float(s))
        x_in = x / math.sqrt(1.0 + float(s) ** 2)
        out = self._predict(x_in, t.to(self.device))
        self.model_calls += 1
        denoised = self._space.denoised(out, x_in, s.expand(x.shape[0]))
        return denoised if mask is None else self._inpainting.estimate(denoised, mask)

    def denoise_with_uncond(self, x: torch.Tensor, sigma: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(guided, unconditional)`` clean estimates of ``x`` at ``sigma`` from one guided
        model call: CFG++ (Chung et al. 2024, arXiv 2406.08070) steps with the guided estimate
        and re-noises with the unconditional one. Where the guider evaluates no unconditional
        half (no negative conditioning, a guidance interval's unguided steps) the two are the
        same tensor, so CFG++ samplers become their plain bases there."""
        if not self.keeps_uncond:
            raise RuntimeError("this run does not keep the unconditional estimate: the SAMPLER must set needs_uncond")
        self._uncond = None
        denoised = self.denoise(x, sigma)
        if self._uncond is None:
            raise RuntimeError(
                f"the GUIDER {type(self.guider).__name__} did not run the MODEL's post-CFG hooks, "
                "so a CFG++ sampler cannot see its unconditional estimate; use CFGGuider or KSampler"
            )
        return denoised, self._uncond

    def _keep_uncond(self, args: dict[str, Any]) -> Any:
        self._uncond = args["uncond_denoised"]
        return args["denoised"]

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        """Fresh standard normal noise from the run's seeded generator (ComfyUI's rule:
        :func:`.noise.step_noise_generator`)."""
        return step_noise(x, self.generator)

    def step_done(
        self,
        step: int,
        x: torch.Tensor,
        denoised: torch.Tensor | None = None,
        total: int | None = None,
        sigma: float | None = None,
    ) -> torch.Tensor:
        """Bookkeeping after step ``step`` (1-based) left the sample at ``sigmas[step]``.

        Samplers whose steps are not the schedule's (adaptive step size) pass their own
        (estimated) ``total``; ``sigma``, the noise level the sample is at, is accepted for them
        and no longer needed (inpainting happens per model call, in :meth:`denoise`).
        """
        total = self.steps if total is None else total
        if self._on_step is not None:
            due = self._wants_preview is not None and self._wants_preview(step)
            self._on_step(step, total, denoised if due else None)
        return x

    def finish(self, x: torch.Tensor, denoised: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The final (sample, clean estimate); after inpainting down to sigma 0, exactly the
        source latent where the last call's mask is 0 (:meth:`.inpainting.Inpainting.finish`)."""
        if self._inpainting is not None and float(self.sigmas[-1]) == 0.0:
            last = self._last_sigma
            return self._inpainting.finish(x, last), self._inpainting.finish(denoised, last)
        return x, denoised


def keeping_uncond(guider: Any, keep: Callable[[dict[str, Any]], Any]) -> Any:
    """A shallow copy of ``guider`` whose MODEL hands every call's post-CFG arguments to ``keep``.

    ComfyUI's CFG++ samplers do the same for one run: they add a ``sampler_post_cfg_function``
    that stores ``uncond_denoised`` and set ``disable_cfg1_optimization``, so the negative is
    evaluated even at cfg 1. The hook is appended after the MODEL's own (as ComfyUI appends
    it), sees the same call's estimates (no second model call), and returns ``denoised``
    unchanged. The original guider and MODEL are left as they were (they may be cached outputs).
    """
    import copy

    from .cfg_hooks import POST_CFG, add_hook

    model = guider.model
    options = add_hook(model.model_options, POST_CFG, keep, disable_cfg1_optimization=True)
    other = copy.copy(guider)
    other.model = model.clone(model_options=options)
    if hasattr(other, "model_patcher"):
        other.model_patcher = other.model
    return other
