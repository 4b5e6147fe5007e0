"""NOISE: the seeded source of the initial noise (ComfyUI's RandomNoise / DisableNoise).

Noise is drawn on the CPU with ``torch.manual_seed(seed)``-style generators for the whole
batch at once, as ComfyUI does, so the same seed gives the same image on any device and a
ComfyUI user's seeds keep their meaning. A latent with ``batch_index`` (LatentFromBatch,
RepeatLatentBatch) gets the noise each index would have had in the full batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def seeded_noise(shape: tuple[int, ...], seed: int, batch_index: list[int] | None = None) -> torch.Tensor:
    """Standard normal noise of ``shape`` [B, C, H, W] from ``seed`` (float32, CPU)."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(int(seed) % (2**64))
    if not batch_index:
        return torch.randn(shape, dtype=torch.float32, generator=generator, device="cpu")
    # Draw the full run of per-image noises up to the highest index, keep the ones asked for.
    per_image = shape[1:]
    drawn: dict[int, torch.Tensor] = {}
    for i in range(max(batch_index) + 1):
        sample = torch.randn((1, *per_image), dtype=torch.float32, generator=generator, device="cpu")
        if i in batch_index:
            drawn[i] = sample
    return torch.cat([drawn[i] for i in batch_index], dim=0)


def step_noise_generator(seed: int | None, device: Any) -> torch.Generator | None:
    """The generator ancestral and SDE samplers draw their per-step noise from.

    Seeded as ComfyUI's ``default_noise_sampler`` (comfy/k_diffusion/sampling.py, 0.8.0): a
    generator on the device the sample is on, seeded with the sampler's seed, plus one on the
    CPU. So the same seed gives ComfyUI's picture on the CPU and on a GPU (whose generators
    draw other numbers than the CPU's, there as here). ``None`` without a seed.
    """
    import torch

    if seed is None:
        return None
    device = torch.device(device)
    seed = int(seed) + (1 if device.type == "cpu" else 0)
    return torch.Generator(device=device).manual_seed(seed % (2**64))


def step_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn where and as ``x`` is (ComfyUI's rule)."""
    import torch

    return torch.randn(x.size(), dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)


class RandomNoiseSource:
    """NOISE from a seed. ``generate_noise(latent)`` is ComfyUI's method name, kept for plugins."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def generate_noise(self, latent: Mapping[str, Any]) -> torch.Tensor:
        samples = latent["samples"]
        return seeded_noise(tuple(samples.shape), self.seed, latent.get("batch_index"))

    def __repr__(self) -> str:
        return f"<NOISE seed={self.seed}>"


class NoNoise:
    """NOISE that adds nothing: the latent is sampled as it is (a second pass, a refiner).

    ``seed`` still seeds what the sampler adds along the way (ancestral and SDE noise): 0 for
    DisableNoise, the node's ``noise_seed`` for SamplerCustom with ``add_noise`` off, as in ComfyUI.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def generate_noise(self, latent: Mapping[str, Any]) -> torch.Tensor:
        import torch

        samples = latent["samples"]
        return torch.zeros(samples.shape, dtype=torch.float32, device="cpu")

    def __repr__(self) -> str:
        return "<NOISE disabled>"
