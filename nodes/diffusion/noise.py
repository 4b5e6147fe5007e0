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
    """NOISE that adds nothing: the latent is sampled as it is (a second pass, a refiner)."""

    seed = 0

    def generate_noise(self, latent: Mapping[str, Any]) -> torch.Tensor:
        import torch

        samples = latent["samples"]
        return torch.zeros(samples.shape, dtype=torch.float32, device="cpu")

    def __repr__(self) -> str:
        return "<NOISE disabled>"
