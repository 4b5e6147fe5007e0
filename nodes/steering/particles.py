"""Steering SAMPLERs: several particles per picture through one sampling run, judged by a REWARD.

Both samplers here are SAMPLERs with their own loop (``sample_loop``, see
:mod:`nodes.diffusion.loops`), so they plug into SamplerCustomAdvanced like any sampler and
keep its noise, guider (CFG, guidance hooks, ControlNets), sigmas and inpainting mask:

* :class:`ParticleSampler` with ``steering`` settings is **Feynman-Kac steering** (Singhal et
  al., "A General Framework for Inference-time Scaling and Steering of Diffusion Models",
  arXiv 2501.06848): ``k`` particles from ``k`` noises; at chosen steps each particle's clean
  prediction is decoded through the VAE and scored, the scores become potentials
  (:mod:`.resampling`) and the particles are resampled by them, so compute moves to the
  promising ones while they are still noisy (with a deterministic base sampler the copies are
  re-noised from their clean prediction, see :func:`_renoise_copies`);
* without ``steering`` it is **best-of-N**, the baseline: the same ``N`` particles, never
  resampled, the best picked at the end.

Both return the particle with the best reward on the finished picture (or all of them, best
first), and report the guided model evaluations they spent (``steps * k``: the UNet budget
the two are compared at) and the reward evaluations (pictures decoded and scored).

How the particles go through the loop: the LoopRun's sample is particle 0 (so one particle is
exactly the plain sampler with the same seed), the others start from fresh noise drawn from
this sampler's seed mixed with the run's. All particles are one batch ``[k * B]`` (particle-
major: rows ``j * B .. j * B + B - 1`` are particle ``j`` of each picture), which
:meth:`LoopRun.denoise` accepts because the guider's predictor is compiled for the shape of
its first call, and this loop's first call is already ``k * B`` wide. That needs every
conditioning to be one prompt for the whole batch (the usual case); a conditioning with a
batch of its own (one prompt per picture) would not line up with ``k * B`` rows, so then
the loop calls the denoiser once per particle with the LATENT's own batch instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base_steps import BASE_SAMPLERS, make_base_step
from .resampling import POTENTIALS, RESAMPLING, Potentials, draw, effective_sample_size, normalised
from .reward import RewardContext, reward_name, score_images

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.loops import LoopRun

OUTPUTS = ("best", "all")
#: how many pictures the VAE decodes at once when scoring particles (bounds its memory)
DECODE_CHUNK = 8


@dataclass(frozen=True)
class SteeringSettings:
    """Feynman-Kac steering's knobs (the paper's names in brackets).

    ``potential`` (max / difference / sum), ``scale`` (lambda: potentials are
    ``exp(lambda * v)``), ``every`` (resampling interval, in steps; the first is at step
    ``every``, never at step 0 where every prediction is the same blur), ``method``
    (systematic or multinomial), ``ess_threshold`` (resample only when the effective sample
    size is below this fraction of k; 1 = at every resampling step).
    """

    potential: str = "max"
    scale: float = 10.0
    every: int = 5
    method: str = "systematic"
    ess_threshold: float = 1.0

    def __post_init__(self) -> None:
        if self.potential not in POTENTIALS:
            raise ValueError(f"potential {self.potential!r} is not one of {', '.join(POTENTIALS)}")
        if self.method not in RESAMPLING:
            raise ValueError(f"resampling {self.method!r} is not one of {', '.join(RESAMPLING)}")
        if self.every < 1:
            raise ValueError("the resampling interval must be at least 1 step")

    def resamples_at(self, i: int, steps: int) -> bool:
        """Whether the particles are scored (and maybe resampled) before step ``i`` (0-based)."""
        return 0 < i < steps and i % self.every == 0


class ParticleSampler:
    """SAMPLER: ``particles`` particles per picture; Feynman-Kac steering when ``steering`` is
    given, best-of-N otherwise. See the module's docstring."""

    def __init__(
        self,
        *,
        base: str,
        vae: Any,
        reward: Any,
        particles: int,
        seed: int = 0,
        output: str = "best",
        steering: SteeringSettings | None = None,
    ) -> None:
        if base not in BASE_SAMPLERS:
            raise ValueError(
                f"base sampler {base!r} is not available for steering; choose one of {', '.join(BASE_SAMPLERS)}"
            )
        if particles < 1:
            raise ValueError("there must be at least one particle")
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r} is not one of {', '.join(OUTPUTS)}")
        self.base, self.vae, self.reward = base, vae, reward
        self.particles, self.seed, self.output, self.steering = int(particles), int(seed), output, steering
        self.name = "FKSteering" if steering is not None else "BestOfN"
        #: the last run's final rewards ``[k, B]`` (particle-major), for scripts and tests
        self.last_rewards: torch.Tensor | None = None
        self._stats: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<SAMPLER {self.name} base={self.base} k={self.particles} reward={reward_name(self.reward)}>"

    # -- the run protocol -----------------------------------------------------------------------
    def begin_run(self, sigmas: Any) -> None:
        self._stats = {}
        self.last_rewards = None

    def report(self) -> dict[str, Any]:
        if not self._stats:
            return {}
        return {"name": self.name, **self._stats}

    # -- the loop ---------------------------------------------------------------------------------
    def sample_loop(self, run: LoopRun) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        k, batch = self.particles, int(run.x.shape[0])
        generator = torch.Generator().manual_seed(_mix_seeds(self.seed, run.seed))
        x = torch.cat([run.x, *(_start_from(run, _fresh_noise(run, generator)) for _ in range(k - 1))])
        denoise = _denoiser(run, k, batch)
        base = make_base_step(self.base, run.sigmas, run.noise_like)
        steering = self.steering if k > 1 else None
        potentials = Potentials(steering.potential, steering.scale, k, batch) if steering is not None else None
        steps = run.steps
        evaluations, scored, resamples = 0, 0, 0
        denoised = x
        for i in range(steps):
            sigma = float(run.sigmas[i])
            denoised = denoise(x, sigma)
            evaluations += k
            if steering is not None and potentials is not None and steering.resamples_at(i, steps):
                rewards = self._score(run, denoised, RewardContext(i, steps, sigma, final=False), k, batch)
                scored += k * batch
                potentials.update(rewards)
                due = effective_sample_size(potentials.log_weights) < steering.ess_threshold * k - 1e-6
                if steering.ess_threshold >= 1.0:
                    due = torch.ones(batch, dtype=torch.bool)
                if bool(due.any()):
                    rows = draw(normalised(potentials.log_weights), steering.method, generator)
                    rows = torch.where(due[None, :], rows, torch.arange(k)[:, None].expand(k, batch))
                    flat = (rows * batch + torch.arange(batch)[None, :]).flatten().to(x.device)
                    x, denoised = x[flat], denoised[flat]
                    base.select(flat)
                    potentials.select(rows, due)
                    resamples += 1
                    if not base.stochastic:
                        x = _renoise_copies(x, denoised, rows, sigma, generator)
            x = base.step(i, x, denoised)
            x = run.step_done(i + 1, x.view(k, batch, *x.shape[1:]), denoised[:batch]).reshape(x.shape)
        finished = x if float(run.sigmas[-1]) == 0.0 else denoised
        rewards = self._score(run, finished, RewardContext(steps, steps, float(run.sigmas[-1]), final=True), k, batch)
        scored += k * batch
        self.last_rewards = rewards
        best = rewards.max(dim=0).values
        self._stats = {
            "particles" if self.steering is not None else "candidates": k,
            "base": self.base,
            **(
                {"potential": self.steering.potential, "lambda": self.steering.scale, "resamples": resamples}
                if self.steering is not None
                else {}
            ),
            "model_evaluations": evaluations,
            "reward_evaluations": scored,
            "reward": reward_name(self.reward),
            "best_reward": round(float(best.mean()), 4),
            "mean_reward": round(
                float(rewards[torch.isfinite(rewards)].mean()) if torch.isfinite(rewards).any() else float("nan"), 4
            ),
        }
        return self._select(run, x, denoised, rewards, k, batch)

    def _score(self, run: LoopRun, latents: torch.Tensor, context: RewardContext, k: int, batch: int) -> torch.Tensor:
        """The reward of each particle's picture, ``[k, B]``: decoded through the VAE (outside
        inference mode, so a VAE loaded here has ordinary weights), then scored."""
        import torch

        with torch.inference_mode(False):
            raw = run.model.process_out(latents).clone()
            images = torch.cat(
                [self.vae.decode(raw[i : i + DECODE_CHUNK]) for i in range(0, raw.shape[0], DECODE_CHUNK)]
            )
            scores = score_images(self.reward, images, context)
        return scores.view(k, batch)

    def _select(
        self, run: LoopRun, x: torch.Tensor, denoised: torch.Tensor, rewards: torch.Tensor, k: int, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The best particle of each picture (``output == "best"``) or all of them, each picture's
        particles together and best first (``"all"``: a batch of ``B * k``)."""
        import torch

        shape = x.shape[1:]
        xs, ds = x.view(k, batch, *shape), denoised.view(k, batch, *shape)
        columns = torch.arange(batch)
        if self.output == "best":
            best = rewards.argmax(dim=0).to(x.device)
            return run.finish(xs[best, columns.to(x.device)], ds[best, columns.to(x.device)])
        order = rewards.argsort(dim=0, descending=True).to(x.device)  # [k, B]
        x_out, d_out = run.finish(xs[order, columns.to(x.device)[None, :]], ds[order, columns.to(x.device)[None, :]])
        return x_out.transpose(0, 1).reshape(-1, *shape), d_out.transpose(0, 1).reshape(-1, *shape)


def _renoise_copies(
    x: torch.Tensor, denoised: torch.Tensor, rows: torch.Tensor, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """With a deterministic base sampler, the second and later copies of a resampled particle are
    re-noised from their shared clean prediction, ``x = x0 + sigma * fresh noise`` (what an
    ancestral step does), so that they explore instead of staying identical (which would make
    resampling mere pruning). The first copy keeps its exact state."""
    import torch

    k, batch = rows.shape
    copies = torch.zeros(k, batch, dtype=torch.bool)
    for j in range(1, k):
        copies[j] = (rows[:j] == rows[j]).any(dim=0)
    flat = copies.flatten().to(x.device)
    if not bool(flat.any()):
        return x
    noise = torch.randn(tuple(x.shape), generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return torch.where(flat[:, None, None, None], denoised + noise * sigma, x)


def _mix_seeds(seed: int, run_seed: int | None) -> int:
    """This sampler's seed combined with the run's noise seed: a new noise seed gives a new set of
    particles, as a user changing the seed expects."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(run_seed or 0)) % (2**63)


def _fresh_noise(run: LoopRun, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise for one more particle; none when the run adds none (DisableNoise:
    the particles then differ only through a stochastic base sampler)."""
    import torch

    if not bool(run.noise.any()):
        return torch.zeros_like(run.noise)
    return torch.randn(tuple(run.noise.shape), generator=generator, dtype=torch.float32).to(run.noise.device)


def _start_from(run: LoopRun, noise: torch.Tensor) -> torch.Tensor:
    """The starting sample for ``noise``, exactly as the run computed its own (``LoopRun.x``:
    ComfyUI's sqrt(1 + sigma^2) scaling from the top noise level), by asking a LoopRun."""
    from nodes.diffusion.loops import LoopRun as _LoopRun

    return _LoopRun(run.guider, run.sigmas, run.latent, noise, None, None, None, None).x


def _per_picture_conditioning(guider: Any) -> bool:
    """Whether a conditioning carries a batch of its own (a prompt, pooled embedding or region
    mask per picture), or the guider is not Weft's and we cannot tell: then particles go through
    the denoiser one LATENT-sized batch at a time."""
    import torch

    conds = getattr(guider, "conds", None)
    if not isinstance(conds, dict):
        return True
    for conditioning in conds.values():
        for entry in conditioning or ():
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            for value, dims in ((entry[0], 3), (options.get("pooled_output"), 2), (options.get("mask"), 3)):
                if torch.is_tensor(value) and value.dim() >= dims and value.shape[0] > 1:
                    return True
    return False


def _denoiser(run: LoopRun, k: int, batch: int) -> Any:
    """``denoise(x [k * B], sigma)``: one batched model call, or ``k`` calls of the LATENT's batch."""
    import torch

    if k == 1 or not _per_picture_conditioning(run.guider):
        return run.denoise

    def per_particle(x: torch.Tensor, sigma: float) -> torch.Tensor:
        return torch.cat([run.denoise(part, sigma) for part in x.split(batch)])

    return per_particle
