"""ModelSamplingDiscrete: how a MODEL's output is read and which noise schedule it was trained on.

ComfyUI's node swaps the model's sampling object; in Weft the same facts live on the MODEL as
``prediction_type`` (what the UNet predicts) and ``scheduler_config`` (the diffusers form of the
training schedule), which every sampler, guider hook and ControlNet reads. So:

* ``eps`` -> ``prediction_type="epsilon"``; ``v_prediction`` -> ``"v_prediction"``;
* ``zsnr`` -> ``rescale_betas_zero_snr`` in the schedule (zero terminal SNR, Lin et al. 2023:
  the last training step is pure noise). diffusers puts the last alpha-bar at 2^-24 (sigma
  about 4096) where ComfyUI uses 4.9e-8 (about 4519); the other sigmas are identical.

``lcm`` (LCM's distilled 50-step schedule with its boundary-condition output), ``x0`` and
``img_to_img`` need output conversions Weft's samplers do not have; they are refused with
an error rather than sampled wrongly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.api import Boolean, Combo, Input, Node, Output

if TYPE_CHECKING:
    from nodes.diffusion.types import DiffusionModel

SAMPLING = ["eps", "v_prediction", "lcm", "x0", "img_to_img"]
PREDICTION = {"eps": "epsilon", "v_prediction": "v_prediction"}
UNSUPPORTED = {
    "lcm": "LCM's distilled 50-step schedule and its boundary-condition output are not implemented",
    "x0": "Weft's samplers read epsilon or v predictions only",
    "img_to_img": "it is a sampling mode of other model families (not SD1/SD2/SDXL)",
}


class ModelSamplingDiscrete(Node):
    category = "advanced/model"
    description = (
        "Overrides what the model predicts (eps or v_prediction) and, with zsnr, uses the zero terminal "
        "SNR schedule: for v-prediction finetunes whose files do not say so."
    )
    inputs = (Input("model", "MODEL"), Combo("sampling", SAMPLING), Boolean("zsnr", False))
    outputs = (Output("MODEL"),)

    @classmethod
    def validate(cls, **inputs: Any) -> bool | str:
        sampling = inputs.get("sampling")
        if sampling in UNSUPPORTED:
            return f"sampling {sampling!r} is not supported in Weft: {UNSUPPORTED[sampling]}"
        return True

    def run(self, model: DiffusionModel, sampling: str, zsnr: bool) -> tuple:
        if sampling not in PREDICTION:
            reason = UNSUPPORTED.get(sampling, "unknown value")
            raise ValueError(
                f"input 'sampling': {sampling!r} is not supported in Weft: {reason}. Use eps or v_prediction"
            )
        prediction = PREDICTION[sampling]
        config = {**model.scheduler_config, "prediction_type": prediction, "rescale_betas_zero_snr": bool(zsnr)}
        return (model.clone(prediction_type=prediction, scheduler_config=config),)


NODES = [ModelSamplingDiscrete]
