"""ComfyUI's rule for the timestep a discrete-time model (SD1.x/SD2.x/SDXL) is called at, written
out for test references: ``ModelSamplingDiscrete.timestep`` in ComfyUI 0.8.0.

The whole training timestep whose log sigma is nearest the call's, computed in float32 as ComfyUI
computes it; an equal distance goes to the lower timestep (``argmin`` answers the first).
"""

from __future__ import annotations

from typing import Any


def comfy_timesteps(sigmas: Any, log_sigmas: Any) -> Any:
    """The rule for each of ``sigmas`` (a tensor), given the model's training ``log_sigmas``
    (ascending with the timestep): an int64 tensor of whole timesteps."""
    distances = (sigmas.float().log().reshape(1, -1) - log_sigmas.float().reshape(-1, 1)).abs()
    nearest = distances == distances.min(dim=0).values
    return nearest.float().argmax(dim=0)  # argmax answers the first of equal maxima: the lower timestep


def comfy_timestep(sigma: float, log_sigmas: Any) -> int:
    """The rule for one sigma."""
    import torch

    return int(comfy_timesteps(torch.tensor([float(sigma)]), log_sigmas)[0])
