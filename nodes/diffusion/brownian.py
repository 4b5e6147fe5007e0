"""Brownian-tree noise: the per-step noise of ComfyUI's SDE samplers, a function of the seed alone.

An SDE sampler (``dpmpp_sde``, ``dpmpp_2m_sde``, ``dpmpp_3m_sde``) adds at every step the
increment of one Brownian motion ``W`` between the step's two noise levels, standardised:
``(W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)``. ComfyUI draws ``W`` from a
Brownian tree (torchsde's ``BrownianTree``: a virtual Brownian tree, Li et al. 2020, arXiv
2001.01328, over ``[lowest nonzero sigma, highest sigma]``, bisected at halfway points with
seeds split from the entropy). Its values depend on the seed and the query times only, not on
which or how many steps ask, so a schedule with more steps refines the same path, and the
same seed gives the same picture in ComfyUI and in Weft.

The tree is built exactly as ComfyUI 0.8.0 builds it (``comfy/k_diffusion/sampling.py``,
``BrownianTreeNoiseSampler``): ``entropy`` the noise seed, the sample's shape and dtype (one
tree for the whole batch), torchsde's ``BrownianTree`` defaults, and on the CPU for the plain
sampler names or on the sample's device for the ``_gpu`` ones (whose generators draw other
numbers: there, as here, the picture then depends on the device). torchsde rounds query times
to its tolerance (1e-6), so a sampler must pass the very float32 noise levels ComfyUI computes
(:class:`BrownianTreeNoise` takes tensors for that reason).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: torchsde's ``BrownianTree`` default, which ComfyUI keeps: query times are resolved to this
TOLERANCE = 1e-6


class BrownianTreeNoise:
    """Standard normal noise for a step from ``sigma`` to ``sigma_next``, drawn from a Brownian tree.

    ``like``: the sample (shape, dtype, and the device the noise is returned on). ``sigmas``:
    the run's schedule; the tree spans its lowest nonzero to its highest value. ``seed``: the
    noise seed (``None``: a random one). ``on_cpu``: build the tree on the CPU (the plain
    sampler names) rather than on ``like``'s device (``_gpu``).
    """

    def __init__(self, like: torch.Tensor, sigmas: torch.Tensor, seed: int | None, on_cpu: bool = True) -> None:
        import torch
        import torchsde

        sigmas = torch.as_tensor(sigmas).flatten()
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, ()).item())
        where = torch.device("cpu") if on_cpu else like.device
        origin = torch.zeros(like.shape, dtype=like.dtype, device=where)
        self.device, self.dtype = like.device, like.dtype
        self.seed = int(seed)
        # A lone nonzero sigma gives an empty span (low == high): no step then asks for noise.
        self._tree = torchsde.BrownianTree(float(low), origin, float(high), entropy=self.seed, tol=TOLERANCE)
        # torchsde rounds its span's ends to the tolerance and clamps a query outside them, with a
        # warning per step (the schedule's own lowest sigma is often just outside): clamping first
        # gives the very same numbers, quietly.
        digits = -int(math.log10(TOLERANCE))
        self._span = (round(float(low), digits), round(float(high), digits))

    def __call__(self, sigma: Any, sigma_next: Any) -> torch.Tensor:
        """``(W(sigma_next) - W(sigma)) / sqrt(|sigma_next - sigma|)``: standard normal per element.

        ``sigma``/``sigma_next`` are the float32 noise levels (0-d tensors or floats) the
        sampler steps between; the division runs in their precision, on their device.
        """
        import torch

        a, b = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        lo, hi = (a, b) if a < b else (b, a)
        start, end = self._span
        lo, hi = min(max(float(lo), start), end), min(max(float(hi), start), end)
        increment = self._tree(lo, hi).to(device=self.device, dtype=self.dtype)
        if a > b:
            increment = -increment  # the tree answers W(hi) - W(lo); a step down in sigma wants the reverse
        return increment / (b - a).abs().sqrt().to(self.device)
