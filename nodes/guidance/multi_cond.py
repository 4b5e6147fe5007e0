"""Several conditionings evaluated at one model call: what the guiders with three prompts share.

DualCFGGuider (two prompts and a negative) and PerpNegGuider (positive, negative and an empty
prompt) need three predictions at every call. When each conditioning is one plain entry (no area,
mask, timestep range, inpainting input or ControlNet) they are stacked into one UNet call of three
times the batch, as ComfyUI's ``calc_cond_batch`` batches them; otherwise each gets a
single-conditioning guider of its own (every feature of the base guider, one UNet call each).
The predictions are bare: the MODEL's guidance hooks are the calling guider's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nodes.diffusion.guidance import Guider, _entries, bare_predictor_factory

if TYPE_CHECKING:
    import torch

#: ``predict_all(x_in, t) -> {name: raw model output}``
PredictAll = Callable[["torch.Tensor", "torch.Tensor"], dict[str, "torch.Tensor"]]


def predictions(guider: Guider, named: Mapping[str, Any], shape: Sequence[int], device: Any) -> PredictAll:
    """``predict_all`` for the conditionings in ``named`` (keyed by the node input that gave each,
    which error messages name) on latents of ``shape`` under ``guider.model``."""
    import torch

    batch, _, height, width = (int(s) for s in shape)
    entries = {name: _entries(name, cond, height, width) for name, cond in named.items()}
    if all(len(found) == 1 and found[0].plain and found[0].control is None for found in entries.values()):
        names = list(entries)
        cond, pooled, time_ids = guider._stack([entries[n][0] for n in names], batch, height, width, device)
        model, count = guider.model, len(names)

        def predict_stacked(x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
            out = model.predict_noise(torch.cat([x] * count), t, cond, pooled, time_ids)
            return dict(zip(names, out.chunk(count), strict=True))

        return predict_stacked
    make = bare_predictor_factory(shape, device)
    separate = {name: make(guider.model, cond) for name, cond in named.items()}
    return lambda x, t: {name: predict(x, t) for name, predict in separate.items()}
