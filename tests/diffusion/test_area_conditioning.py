"""Area conditioning as ComfyUI samples it (issue 11): the same-area rule between a guider's
conditionings (every entry with an area gets an entry with that area in each other conditioning,
a copy of that conditioning's smallest entry containing it), areas settled against the latent first
(percentages, mask bounds of at least 8 latent pixels), the soft edges of an area without a mask, and
pixels no entry weighs. The rule on plain data, then on the tiny real UNet: predictions against
references computed here from bare UNet calls, and every guider (CFGGuider, KSampler, DualCFG,
PerpNeg, a plugin's) against the same conds with the copies given explicitly."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.diffusion.areas import feather, mask_bounds, resolve_area, same_area_entries
from nodes.diffusion.cfg_hooks import CallSpace
from nodes.diffusion.guidance import Guider
from tests.support.tiny_unet import conditioning, empty, ksample

X16 = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(8))
T = torch.tensor(400.0)


def t(n: float) -> torch.Tensor:
    return torch.full((1, 2, 4), float(n))


def same_entries(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def soft_edges(h: int, w: int, y: int, x: int, height: int, width: int) -> torch.Tensor:
    """ComfyUI's fuzz for an area without a mask, as its sampler writes it: for each side inside
    the latent, the r = min(8, side // 4) outermost rows/columns are scaled by (k + 1) / r."""
    m = torch.ones(h, w)
    for k_dim, (size, start, full) in enumerate(((h, y, height), (w, x, width))):
        r = min(8, size // 4)
        for k in range(r):
            for index, inside in ((k, start != 0), (size - 1 - k, start + size < full)):
                if inside:
                    if k_dim == 0:
                        m[index, :] *= (k + 1) / r
                    else:
                        m[:, index] *= (k + 1) / r
    return m


# -- the rule on plain data -------------------------------------------------------------------------
def test_each_area_gets_a_copy_of_the_smallest_containing_entry_of_the_other_conditioning() -> None:
    """The copy keeps the area entry's options (strength, ControlNet, timestep range) and takes the
    other conditioning's prompt (tensor, pooled output, size options) from its smallest entry
    containing the area (the first of equal size); areas on the negative go to the positive too."""
    control = object()
    region = {"pooled_output": "pA", "area": (4, 4, 2, 2), "strength": 0.6, "control": control, "width": 512}
    region.update(start_percent=0.1, end_percent=0.8)
    positive = [[t(1), {"pooled_output": "pP"}], [t(2), region]]
    negative = [
        [t(3), {"pooled_output": "pN"}],
        [t(4), {"pooled_output": "pBig", "area": (8, 8, 0, 0)}],
        [t(5), {"pooled_output": "pC", "area": (6, 6, 1, 1), "height": 256}],
        [t(6), {"pooled_output": "pC2", "area": (6, 6, 1, 1)}],
    ]
    out = same_area_entries({"positive": positive, "negative": negative}, 8, 8)
    assert len(positive) == 2 and len(negative) == 4  # the given lists are left as they are
    assert same_entries(out["negative"][:4], negative) and len(out["negative"]) == 5
    copy = out["negative"][4]
    assert copy[0] is negative[2][0]
    expected = {"pooled_output": "pC", "height": 256, "area": (4, 4, 2, 2), "strength": 0.6, "control": control}
    assert copy[1] == {**expected, "start_percent": 0.1, "end_percent": 0.8}  # no "width": that is A's prompt's
    # the negative's areas come to the positive from its whole-frame entry; the second (6, 6, 1, 1)
    # finds the first one's copy there, of the same area
    assert same_entries(out["positive"][:2], positive) and len(out["positive"]) == 4
    assert [e[0] is positive[0][0] for e in out["positive"][2:]] == [True, True]
    assert [e[1] for e in out["positive"][2:]] == [
        {"pooled_output": "pP", "area": (8, 8, 0, 0)},
        {"pooled_output": "pP", "area": (6, 6, 1, 1)},
    ]


def test_no_copy_where_the_area_exists_and_none_where_nothing_contains_it() -> None:
    region = [t(2), {"area": (4, 4, 2, 2), "strength": 0.5}]
    positive = [[t(1), {}], region]
    same = {"positive": positive, "negative": [[t(3), {}], [t(4), {"area": (4, 4, 2, 2)}]]}
    assert same_area_entries(same, 8, 8) is same
    # nothing in the negative contains the area and it has no whole-frame entry: nothing added there
    # (its own area still goes to the positive)
    elsewhere = [[t(5), {"area": (2, 2, 0, 0)}]]
    out = same_area_entries({"positive": positive, "negative": elsewhere}, 8, 8)
    assert out["negative"] is elsewhere
    assert out["positive"][2][0] is positive[0][0] and out["positive"][2][1] == {"area": (2, 2, 0, 0)}
    # no containing entry: the first whole-frame one
    mixed = [[t(6), {"area": (2, 2, 6, 6)}], [t(7), {}], [t(8), {}]]
    assert same_area_entries({"positive": positive, "negative": mixed}, 8, 8)["negative"][3][0] is mixed[1][0]
    # one conditioning, or nothing with an area: nothing to do
    for conds in ({"positive": positive}, {"positive": [[t(1), {}]], "negative": [[t(3), {}]], "middle": None}):
        assert same_area_entries(conds, 8, 8) is conds


def test_areas_are_settled_against_the_latent_before_the_rule() -> None:
    """A percentage area is the same area as its pixel equivalent at one latent size only; a mask's
    bounds are its non-zero pixels' box, at least 8 latent pixels a side (an empty mask: 8x8 at 0)."""
    half = [[t(2), {"area": ("percentage", 0.5, 0.5, 0.0, 0.0)}]]
    conds = {"positive": [[t(1), {}]] + half, "negative": [[t(3), {}], [t(4), {"area": (4, 8, 0, 0)}]]}
    assert same_area_entries(conds, 8, 16) is conds
    assert same_area_entries(conds, 16, 16)["negative"][2][1]["area"] == (8, 8, 0, 0)

    mask = torch.zeros(1, 16, 16)
    mask[:, 3:6, 4:14] = 0.25
    assert mask_bounds(mask.unsqueeze(1)) == (8, 10, 3, 4)
    assert mask_bounds(torch.zeros(1, 1, 16, 16)) == (8, 8, 0, 0)
    big = torch.nn.functional.interpolate(mask.unsqueeze(1), size=(128, 128), mode="nearest")[:, 0]
    assert resolve_area({"mask": big, "set_area_to_bounds": True, "area": (2, 2, 0, 0)}, 16, 16) == (8, 10, 3, 4)
    assert resolve_area({"mask": big, "set_area_to_bounds": False}, 16, 16) is None
    bounded = {"positive": [[t(1), {"mask": big, "set_area_to_bounds": True}]], "negative": [[t(3), {}]]}
    copy = same_area_entries(bounded, 16, 16)["negative"][1][1]
    assert copy["area"] == (8, 10, 3, 4) and copy["mask"] is big and copy["set_area_to_bounds"] is True


def test_soft_edges_of_an_area_without_a_mask() -> None:
    for area, size in (((12, 8, 4, 0), (16, 16)), ((24, 12, 0, 0), (24, 24)), ((10, 16, 3, 5), (16, 24))):
        torch.testing.assert_close(feather(area, *size)[0, 0], soft_edges(*area, *size), rtol=0, atol=1e-7)
    weight = feather((12, 8, 4, 0), 16, 16)[0, 0]
    assert float(weight[0, 0]) == pytest.approx(1 / 3) and float(weight[-1, -1]) == 1 / 2  # top, right edges
    assert feather((4, 4, 2, 2), 8, 8) is None  # sides under 8: ComfyUI's ramp of 1 step is flat
    assert feather((16, 8, 0, 0), 16, 16) is not None and feather((16, 16, 0, 0), 16, 16) is None


# -- on the tiny UNet ------------------------------------------------------------------------------
def _predict(model: Any, positive: Any, negative: Any, cfg: float = 5.0, guider: Any = None) -> torch.Tensor:
    guider = guider or Guider(model, cfg)
    guider.set_conds(positive, negative)
    return guider.predictor(X16.shape, model.device)(X16, T)


def _bare(model: Any, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return model.predict_noise(x, T, cond.expand(x.shape[0], -1, -1))


def test_the_negative_is_predicted_on_the_regional_prompts_area(tiny_model) -> None:
    """The positive's area entry gives the negative a copy on its area: the prediction is CFG between
    two weighted averages, each with its prompt on the whole latent and on the area's crop (soft
    edges, strength), computed here from bare UNet calls; and the same as the copy given explicitly."""
    pos, neg, regional = conditioning(1), conditioning(2), conditioning(3)
    h, w, y, x = 12, 8, 4, 0
    area = {"pooled_output": None, "area": (h, w, y, x), "strength": 0.7}
    positive = pos + [[regional[0][0], area]]
    guider = Guider(tiny_model, 5.0)
    got = _predict(tiny_model, positive, neg, guider=guider)
    assert len(guider.conds["negative"]) == 1  # the given conds are back after the run was built

    weight = 0.7 * soft_edges(h, w, y, x, 16, 16)
    crop = X16[:, :, y : y + h, x : x + w]

    def averaged(whole: torch.Tensor, on_area: torch.Tensor) -> torch.Tensor:
        total, count = _bare(tiny_model, whole, X16), torch.ones_like(X16)
        total[:, :, y : y + h, x : x + w] += _bare(tiny_model, on_area, crop) * weight
        count[:, :, y : y + h, x : x + w] += weight
        return total / count

    reference = torch.lerp(averaged(neg[0][0], neg[0][0]), averaged(pos[0][0], regional[0][0]), 5.0)
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-5 * float(reference.abs().max()))
    explicit = neg + [[neg[0][0], dict(area)]]
    assert torch.equal(got, _predict(tiny_model, positive, explicit))
    # only the negative's own prompt counts: a copy of another one would differ
    assert not torch.allclose(got, _predict(tiny_model, positive, neg + [[pos[0][0], dict(area)]]))


def test_ksampler_and_every_guider_get_the_copies(tiny_model) -> None:
    from nodes.guidance.dual_cfg import DualCFG
    from nodes.guidance.perp_neg import PerpNegGuide

    pos, neg, mid, blank = (conditioning(n) for n in (1, 2, 3, 4))
    area = {"pooled_output": None, "area": (8, 12, 0, 4), "strength": 1.0}
    positive = pos + [[conditioning(5)[0][0], area]]

    def given(c: list) -> list:
        return c + [[c[0][0], dict(area)]]

    latent = empty(size=128)
    ours = ksample(tiny_model, positive, neg, latent, steps=3)["samples"]
    assert torch.equal(ours, ksample(tiny_model, positive, given(neg), latent, steps=3)["samples"])

    def dual(middle: list, negative: list) -> torch.Tensor:
        guider = DualCFG(tiny_model, 3.0, 5.0)
        guider.set_conds(positive, middle, negative)
        return guider.predictor(X16.shape, tiny_model.device)(X16, T)

    assert torch.equal(dual(mid, neg), dual(given(mid), given(neg)))

    def perp(negative: list, empty_prompt: list) -> torch.Tensor:
        guider = PerpNegGuide(tiny_model, 5.0, 0.8)
        guider.set_conds(positive, negative, empty_prompt)
        return guider.predictor(X16.shape, tiny_model.device)(X16, T)

    assert torch.equal(perp(neg, blank), perp(given(neg), given(blank)))

    seen = []

    class PluginGuider(Guider):  # overrides predictor and reads the conds, as plugins do
        def predictor(self, shape: Any, device: Any) -> Any:
            seen.append(len(self.conds["negative"]))
            return super().predictor(shape, device)

    plugin = _predict(tiny_model, positive, neg, guider=PluginGuider(tiny_model, 5.0))
    assert seen == [2] and torch.equal(plugin, _predict(tiny_model, positive, given(neg)))


def test_mask_bounds_are_at_least_8_latent_pixels(tiny_model) -> None:
    """A small unaligned mask with "mask bounds": its conditioning runs on the 8x8 box from the
    mask's first non-zero row and column, with the mask as weight, as the same mask on that area."""
    pos, neg, regional = conditioning(1), conditioning(2), conditioning(3)
    mask = torch.zeros(1, 128, 128)
    mask[:, 45:70, 60:83] = 1.0  # latent rows 6..8, columns 7..9 after the bilinear resize
    bounded = pos + [[regional[0][0], {"pooled_output": None, "mask": mask, "set_area_to_bounds": True}]]
    boxed = pos + [[regional[0][0], {"pooled_output": None, "mask": mask, "area": (8, 8, 6, 7)}]]
    got = _predict(tiny_model, bounded, neg)
    assert torch.equal(got, _predict(tiny_model, boxed, neg + [[neg[0][0], {"mask": mask, "area": (8, 8, 6, 7)}]]))


def test_pixels_no_entry_weighs_get_a_zero_denoised_estimate(tiny_model) -> None:
    """A positive of a masked entry only: outside the mask its prediction is ComfyUI's empty sum,
    a zero denoised estimate; inside, the entry's own prediction."""
    regional = conditioning(3)
    mask = torch.zeros(1, 16, 16)
    mask[:, :, :8] = 1.0
    positive = [[regional[0][0], {"pooled_output": None, "mask": mask}]]
    got = _predict(tiny_model, positive, None, cfg=1.0)
    space = CallSpace(tiny_model.prediction_type, tiny_model.scheduler_config)
    denoised = space.denoised(got, X16, space.sigma(T, 1))
    assert float(denoised[..., 8:].abs().max()) < 1e-4 * float(X16.abs().max())
    torch.testing.assert_close(got[..., :8], _bare(tiny_model, regional[0][0], X16)[..., :8])


def test_an_sdxl_area_entry_gets_the_whole_latents_size_ids(tiny_paths) -> None:
    """ComfyUI's encode_model_conds gives every entry without width/height options the size of
    the whole latent (x8) as SDXL's size conditioning, an area entry too (not the area's size)."""
    from nodes.diffusion.guidance import _entries
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    model, clip, _ = CheckpointLoaderSimple().run("tiny-sdxl.safetensors")
    text = clip.encode_conditioning("a cat")
    area = [[text[0][0], {**text[0][1], "area": (8, 4, 0, 0), "strength": 1.0}]]
    entries = _entries("positive", area, 16, 12)
    assert entries[0].area == (8, 4, 0, 0)
    _, _, time_ids = Guider(model, 5.0)._stack(entries, 1, 16, 12, torch.device("cpu"))
    assert time_ids.tolist() == [[128.0, 96.0, 0.0, 0.0, 128.0, 96.0]]
