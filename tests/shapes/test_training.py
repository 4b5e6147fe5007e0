"""The training script (a few steps of each stage): resumable to the bit, and its output loads.

CI never trains the real model; this runs ``Plan.quick()`` (a handful of steps per stage on a
few pictures) twice: once straight through, once in slices of three steps, each slice a new
call that must pick up from the checkpoints on disk. Both must export identical files, and
those files must load through the ordinary checkpoint and ControlNet loaders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from weft_tools.shapes import train


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("straight")
    written = train.run(train.Plan.quick(), root / "work", root / "models")
    assert written is not None
    return written


def test_a_run_in_slices_exports_what_a_straight_run_does(straight: dict[str, Path], tmp_path: Path) -> None:
    import torch

    calls, written, threads = 0, None, torch.get_num_threads()
    while written is None:
        calls += 1
        assert calls < 20, "the sliced run does not progress"
        written = train.run(train.Plan.quick(), tmp_path / "work", tmp_path / "models", max_steps=3)
        assert torch.get_num_threads() == threads  # the run's own thread count does not outlive it
    assert calls > 3  # it really was interrupted in every stage
    log = (tmp_path / "work" / "train.log").read_text()
    assert all(f"{stage}: resuming at step" in log for stage in ("unet", "controlnet", "decoder", "widen"))
    for key in ("checkpoint", "controlnet"):
        a, b = tensors(straight[key]), tensors(written[key])
        assert a.keys() == b.keys()
        assert all((a[k] == b[k]).all() for k in a), f"{key}: resumed run differs"


def done(path: Path) -> bool:
    import torch

    return path.exists() and bool(torch.load(path, weights_only=False).get("done"))


def beside() -> train.Plan:
    """The quick plan with the decoder stages in a second process beside the UNet (:mod:`lanes`)."""
    import dataclasses

    return dataclasses.replace(train.Plan.quick(), decoder_beside_unet=True)


def from_the_bank(straight: dict[str, Path], work: Path) -> Path:
    """A new workdir holding the straight run's finished autoencoder and latent bank: the lanes
    begin after them, and they are what these plans (the quick plan's stages 1-2) would train."""
    import shutil

    work.mkdir(parents=True)
    for name in ("vae.pt", "bank.pt"):
        shutil.copy(straight["checkpoint"].parents[2] / "work" / name, work / name)
    return work


def test_beside_the_unet_stop_after_holds_and_a_run_in_slices_exports_the_same(
    straight: dict[str, Path], tmp_path: Path
) -> None:
    """The decoder stages run in a second process during the UNet stage. ``--stop-after`` still
    means "this stage and every one before it in STAGES"; and since each lane spends its own copy
    of the step budget and keeps its thread count whatever the other lane does, a run stopped
    after stages exports what one sliced every two steps does."""
    plan, work, models = beside(), from_the_bank(straight, tmp_path / "by-stage"), tmp_path / "by-stage-models"
    assert train.run(plan, work, models, stop_after="unet") is None
    assert done(work / "unet.pt")
    assert not (work / "decoder.pt").exists() and not (work / "controlnet.pt").exists()
    assert train.run(plan, work, models, stop_after="decoder") is None
    assert done(work / "decoder.pt") and done(work / "controlnet.pt")
    assert not (work / "widen.pt").exists() and not models.exists()
    by_stage = train.run(plan, work, models)
    assert by_stage is not None

    calls, written, work = 0, None, from_the_bank(straight, tmp_path / "work")
    while written is None:
        calls += 1
        assert calls < 20, "the sliced run does not progress"
        written = train.run(beside(), work, tmp_path / "models", max_steps=2)
    log = (work / "train.log").read_text()
    assert [stage for stage in ("unet", "decoder", "widen") if f"{stage}: resuming at step" not in log] == []
    assert "decoder lane paused" in log  # the second process really was interrupted and resumed
    assert "decoder lane failed" not in log
    for key in ("checkpoint", "controlnet"):
        a, b = tensors(by_stage[key]), tensors(written[key])
        assert all((a[k] == b[k]).all() for k in a), f"{key}: resumed run differs"


def test_a_failing_decoder_lane_names_its_error_and_keeps_the_unet(straight: dict[str, Path], tmp_path: Path) -> None:
    import dataclasses

    plan = dataclasses.replace(beside(), widen_channels=(32, 32, 96, 96))  # widen refuses these
    work = from_the_bank(straight, tmp_path / "work")
    with pytest.raises(RuntimeError, match=r"decoder lane .*exit status 1: ValueError: each level must keep or double"):
        train.run(plan, work, tmp_path / "models")
    assert done(work / "unet.pt") and done(work / "decoder.pt")  # nothing either lane finished is lost
    assert not (work / "controlnet.pt").exists()


def test_the_text_encoder_learns_at_its_own_rate(straight: dict[str, Path], tmp_path: Path) -> None:
    """``text_lr`` scales the text encoder's steps only: at the UNet's own rate the stage is the
    one-rate stage to the bit, and at 0 the text encoder ends where it began while the UNet moves."""
    import dataclasses

    import torch

    from weft_tools.shapes import models as sm

    def unet_stage(work: str, **change: float) -> dict:
        plan = dataclasses.replace(train.Plan.quick(), **change)
        assert train.run(plan, from_the_bank(straight, tmp_path / work), tmp_path / "models", stop_after="unet") is None
        return torch.load(tmp_path / work / "unet.pt", weights_only=False)

    one_rate = torch.load(straight["checkpoint"].parents[2] / "work" / "unet.pt", weights_only=False)
    same = unet_stage("same", text_lr=train.Plan.quick().unet_lr)
    still = unet_stage("still", text_lr=0.0)
    for key in ("ema_unet", "ema_text"):
        assert all(torch.equal(one_rate[key][k], same[key][k]) for k in one_rate[key]), key
    with torch.random.fork_rng():
        torch.manual_seed(train.Plan.quick().seed + 1)  # as the stage builds its models
        first_unet, first_text = sm.make_unet().state_dict(), sm.make_text_encoder().state_dict()
    assert all(torch.equal(first_text[k], still["ema_text"][k]) for k in first_text)
    assert not all(torch.equal(first_unet[k], still["ema_unet"][k]) for k in first_unet)


def test_another_plan_in_the_same_workdir_is_refused(straight: dict[str, Path]) -> None:
    other = train.Plan.quick()
    other.unet_steps += 1
    with pytest.raises(SystemExit, match="another plan"):
        train.run(other, straight["checkpoint"].parents[2] / "work", straight["checkpoint"].parents[1])


def test_a_plan_file_from_before_a_field_existed_is_the_same_plan() -> None:
    """Fields added to the plan default to what the code did before them, so older workdirs
    (the committed one's plan.json among them) stay resumable; a changed value is still refused."""
    import json
    from dataclasses import asdict

    recorded = json.loads(json.dumps(asdict(train.Plan())))
    del recorded["decoder_coverage_weight"]
    assert train.same_plan(recorded, train.Plan())
    assert not train.same_plan(recorded, train.Plan(decoder_coverage_weight=4.0))
    recorded["unet_steps"] += 1
    assert not train.same_plan(recorded, train.Plan())


def test_export_loads_as_an_sd1_checkpoint_and_encodes_prompts_as_trained(straight: dict[str, Path]) -> None:
    import torch

    from nodes.diffusion.clip_text import encode_prompt
    from nodes.diffusion.loaders import load_checkpoint, load_controlnet_file
    from weft_tools.shapes import models as sm

    model, clip, vae = load_checkpoint(straight["checkpoint"])
    assert model.family == "sd1" and model.prediction_type == "epsilon"
    assert vae.scaling_factor == sm.SCALING_FACTOR
    state = torch.load(straight["checkpoint"].parents[2] / "work" / "unet.pt", weights_only=False)
    trained = sm.make_text_encoder()
    trained.load_state_dict(state["ema_text"])
    text = "a small red circle on the left, blue background"
    with torch.no_grad():
        expected = trained.eval()(input_ids=train.Captions().batch([text])).last_hidden_state
    cond, _ = encode_prompt(clip, text)
    assert torch.allclose(cond.float(), expected, atol=5e-3)  # fp16 storage
    _, family = load_controlnet_file(straight["controlnet"])
    assert family == "sd1"


def test_the_committed_weights_and_checkpoints_come_from_the_shipped_plan() -> None:
    """The README's command (``--plan shipped``) must resume the committed workdir, not refuse it,
    and the exported file must say it was trained with that plan."""
    import json

    from safetensors import safe_open

    recorded = json.loads((train.ROOT / "training" / "shapes" / "plan.json").read_text())
    assert train.same_plan(recorded, train.Plan.shipped())
    with safe_open(str(train.DEFAULT_OUT / "checkpoints" / train.CHECKPOINT_NAME), "pt") as weights:
        assert train.same_plan(json.loads(weights.metadata()["weft.training"]), train.Plan.shipped())
