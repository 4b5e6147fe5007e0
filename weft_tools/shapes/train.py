"""Train the built-in shapes model (SD1.x layout) and its mask ControlNet on 2 CPU cores.

    python -m weft_tools.shapes.train                       # all stages, then export
    python -m weft_tools.shapes.train --quick --workdir /tmp/q --out /tmp/q/models   # a smoke run

Stages, each resumable (a checkpoint every ``--checkpoint-every`` steps in ``--workdir``; run the
same command again after an interruption and it goes on from the last one):

1. ``vae``: the autoencoder, on 32x32 crops first (a quarter of the cost per picture), then on
   whole pictures; reconstructions are decoded from the latent mean. Afterwards the latents are
   re-centred and rescaled inside the model (quant_conv/post_quant_conv) so that SD1's fixed
   scaling factor 0.18215 gives them unit variance: ComfyUI's latent conventions hold as they are.
2. ``bank``: the frozen encoder turns a seeded set of training pictures into latents once, so
   the diffusion stages never run the encoder.
3. ``unet``: UNet and text encoder together, epsilon prediction on SD1's noise schedule,
   min-SNR-5 loss weighting, 10 % empty captions (for classifier-free guidance) and 10 %
   shortened ones; an exponential moving average of the weights is what gets exported.
   Colours come first and easily; the layout (position, shape class) is decided at high noise,
   where epsilon's loss is SNR times the picture's error and so barely felt. From
   ``composition_from_step`` on, half the timesteps are drawn from the noisier half of the
   schedule and noisy steps are weighted by 1/SNR (capped), i.e. towards the picture's error.
4. ``controlnet``: a ControlNet copied from the UNet's encoder, trained on the shape's mask with
   the UNet and text encoder frozen; a quarter of its captions name a wrong position and a
   quarter none, so the hint wins where the two disagree.
5. ``decoder``: the decoder alone, sharpened on whole pictures with an edge (image-gradient)
   term and (``decoder_coverage_weight``) the shape-coverage term; the encoder stays frozen, so
   the latents the UNet learnt do not move.
6. ``widen`` (when the plan has ``widen_channels``): the autoencoder widened without changing
   what it computes (Net2Net, ``widen``), then its wider decoder sharpened as in stage 5 with
   more small shapes in each batch; the encoder's latents stay what the UNet learnt.
7. ``export``: the original-layout single file ``weft-shapes.safetensors`` (UNet, VAE and CLIP
   under SD1's key prefixes) and ``weft-shapes-controlnet-mask.safetensors``, stored in fp16.

With the plan's ``decoder_beside_unet`` (the shipped plan's), stages 5 and 6 run in a
second process while stage 3 runs, each with half the threads, and stage 4 after both
(``lanes``): on 2 cores a thread each gets more done than two threads one stage at a time.

Everything random is drawn from generators seeded by (seed, stage, step), so a resumed run
draws the same batches as an uninterrupted one; the held-out captions (``dataset.is_held_out``)
are never trained on.

This module is the command line and the export; the stages live in ``train_autoencoder`` (1, 5
and 6) and ``train_diffusion`` (2 to 4), what they share (seeding, checkpoints, step budgets, the
log) in ``plumbing``, the plans in ``plan``, and running the UNet beside the decoder in ``lanes``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from . import dataset as ds
from .lanes import train_side_by_side
from .plan import STAGE_IDS, STAGES, Plan
from .plumbing import Budget, Paused, log
from .train_autoencoder import train_decoder, train_vae, train_wide_decoder
from .train_diffusion import Captions, build_bank, train_controlnet, train_unet

__all__ = [
    "CHECKPOINT_NAME",
    "CONTROLNET_NAME",
    "DEFAULT_OUT",
    "PLANS",
    "ROOT",
    "STAGES",
    "STAGE_IDS",
    "Budget",
    "Captions",
    "Paused",
    "Plan",
    "export",
    "log",
    "main",
    "run",
]

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "models_builtin"
CHECKPOINT_NAME = "weft-shapes.safetensors"
CONTROLNET_NAME = "weft-shapes-controlnet-mask.safetensors"


# -- 7. export -----------------------------------------------------------------------------------
def export(plan: Plan, work: Path, out: Path, vae: Any, unet: Any, text: Any, controlnet: Any) -> dict[str, Path]:
    """Write the single-file checkpoint and the ControlNet in the original (LDM) key layout."""
    import torch
    from safetensors.torch import save_file

    from nodes.diffusion import single_file as sf

    meta = {
        "modelspec.title": "Weft shapes",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.prediction_type": "epsilon",
        "modelspec.resolution": "64x64",
        "weft.training": json.dumps(asdict(plan)),
        "weft.vocabulary": json.dumps(
            {
                "shapes": list(ds.SHAPES),
                "colours": list(ds.COLOURS),
                "sizes": list(ds.SIZES),
                "positions": list(ds.POSITION_PHRASES.values()),
            }
        ),
    }
    state = sf.unet_to_ldm(unet.state_dict(), unet.config)
    state.update(sf.vae_to_ldm(vae.state_dict(), vae.config))
    state.update(sf.clip_hf_to_ldm(text.state_dict(), sf.SD1_CLIP_PREFIX))
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "controlnet").mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoints" / CHECKPOINT_NAME
    save_file(half, str(checkpoint), metadata=meta)
    cn_state = {
        sf.CONTROLNET_PREFIX + sf.unet_ldm_name(k, controlnet.config): v.detach().to(torch.float16).contiguous()
        for k, v in controlnet.state_dict().items()
    }
    control = out / "controlnet" / CONTROLNET_NAME
    save_file(
        cn_state,
        str(control),
        metadata={"modelspec.title": "Weft shapes ControlNet (mask)", "weft.hint": "mask: white shape on black, 64x64"},
    )
    log(
        work,
        f"exported {checkpoint} ({checkpoint.stat().st_size / 1e6:.1f} MB) and {control} "
        f"({control.stat().st_size / 1e6:.1f} MB)",
    )
    return {"checkpoint": checkpoint, "controlnet": control}


def same_plan(recorded: dict[str, Any], plan: Plan) -> bool:
    """Whether a workdir's ``plan.json`` is ``plan``. A file written before a field existed ran
    with that field's default: every field added to :class:`Plan` defaults to what the code did
    before it, so those runs stay resumable."""
    defaults = json.loads(json.dumps({f.name: f.default for f in fields(Plan)}))
    return {**defaults, **recorded} == json.loads(json.dumps(asdict(plan)))


def run(
    plan: Plan, work: Path, out: Path, stop_after: str | None = None, max_steps: int | None = None
) -> dict[str, Path] | None:
    """Train what is not trained yet, then export; ``None`` when stopped early (``stop_after``,
    or ``max_steps`` optimiser steps taken in this call: run again to go on)."""
    import torch

    threads = int(os.environ.get("WEFT_TRAIN_THREADS", os.cpu_count() or 2))
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.json"
    if plan_file.exists() and not same_plan(json.loads(plan_file.read_text()), plan):
        raise SystemExit(f"{work} holds a run with another plan ({plan_file}); use another --workdir")
    plan_file.write_text(json.dumps(asdict(plan), indent=2))
    budget = Budget(max_steps)
    caller_threads = torch.get_num_threads()  # the thread count is the process's: put it back after
    torch.set_num_threads(threads)
    try:
        return _stages(plan, work, out, stop_after, budget, threads)
    except Paused:
        log(work, f"paused after {max_steps} steps; run again to go on")
        return None
    finally:
        torch.set_num_threads(caller_threads)


def _stages(
    plan: Plan, work: Path, out: Path, stop_after: str | None, budget: Budget, threads: int
) -> dict[str, Path] | None:
    last = STAGES.index(stop_after) if stop_after else len(STAGES) - 1

    def wanted(stage: str) -> bool:
        return STAGES.index(stage) <= last

    vae = train_vae(plan, work, budget)
    if not wanted("bank"):
        return None
    bank = build_bank(plan, work, vae)
    if not wanted("unet"):
        return None
    if plan.decoder_beside_unet:
        through = "widen" if wanted("widen") else "decoder" if wanted("decoder") else None
        unet, text, vae = train_side_by_side(plan, work, bank, vae, budget, threads, through)
    else:
        unet, text = train_unet(plan, work, bank, budget)
    if not wanted("controlnet"):
        return None
    controlnet = train_controlnet(plan, work, bank, unet, text, budget)
    if not plan.decoder_beside_unet:
        if not wanted("decoder"):
            return None
        vae = train_decoder(plan, work, bank, vae, budget)
        if not wanted("widen"):
            return None
        vae = train_wide_decoder(plan, work, bank, vae, budget)
    if stop_after is not None:
        return None
    return export(plan, work, out, vae, unet, text, controlnet)


PLANS = {"shipped": Plan.shipped, "one-lane": Plan.one_lane, "first": Plan, "shape-focused": Plan.shape_focused}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "training" / "shapes",
        help="checkpoints, logs and the latent bank (resumable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="models folder to export into")
    parser.add_argument("--quick", action="store_true", help="a few steps of each stage (smoke test)")
    parser.add_argument(
        "--plan",
        choices=sorted(PLANS),
        default="shipped",
        help="shipped: the plan the committed weights come from (1.9 h on 2 cores, the decoder stages beside"
        " the UNet); one-lane: the plan they came from before, one stage at a time (2.8 h); first: the"
        " first shipped run's (its decoder less sharp); shape-focused: a wider autoencoder, not shipped",
    )
    parser.add_argument("--stop-after", choices=STAGES[:-1], help="stop after this stage")
    parser.add_argument(
        "--max-steps",
        type=int,
        help="stop (resumably) after this many training steps (in each lane when the decoder trains beside the UNet)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan.quick() if args.quick else PLANS[args.plan]()
    written = run(plan, args.workdir, args.out, args.stop_after, args.max_steps)
    for name, path in (written or {}).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
