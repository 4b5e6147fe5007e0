"""Read a shapes picture back into words with pixel statistics alone (no neural network).

Given a 64x64 RGB picture, ``judge`` finds the background colour (the median of the border),
separates the shape from it (pixels nearer the shape's colour than the background's), and
names what it sees: the shape's colour and the background's (nearest named colour), the
position (nearest of the five centres to the shape's centroid), the size (the shape's extent)
and the class (the reference outline, drawn by the dataset's own renderer into the shape's
bounding box, that overlaps the shape best). ``score`` compares that with a caption.

It is the yardstick of the model's tests and, being cheap and differentiable-free, a reward
for steering nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from . import dataset as ds

_PALETTE_NAMES = list(ds.COLOURS)
_PALETTE = np.asarray([ds.COLOURS[n] for n in _PALETTE_NAMES], dtype=np.float32)
SIZE_THRESHOLD_PX = (ds.SIZES["small"] + ds.SIZES["large"]) / 2
MIN_SHAPE_PIXELS = 12


@dataclass
class Verdict:
    background: str
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None
    centre: tuple[float, float] | None = None
    mask: np.ndarray = field(default_factory=lambda: np.zeros((ds.SIZE, ds.SIZE), bool), repr=False)
    #: the measurements behind the words (for :func:`soft_score`): colours in 0..255, the shape's
    #: extent in pixels of a 64x64 picture, and how much of each pixel the shape covers (0..1)
    background_rgb: np.ndarray | None = field(default=None, repr=False)
    shape_rgb: np.ndarray | None = field(default=None, repr=False)
    extent: float | None = None
    coverage: np.ndarray | None = field(default=None, repr=False)

    def words(self) -> dict[str, str | None]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "position": self.position,
            "background": self.background,
        }


def nearest_colour(rgb: np.ndarray) -> str:
    return _PALETTE_NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(axis=1)))]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 HWC, or float HWC in [0, 1] (Weft's IMAGE), -> float32 HWC in 0..255."""
    array = np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    if array.dtype != np.uint8:
        array = np.clip(array, 0.0, 1.0) * 255.0
    return array[..., :3].astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def classify_outline(mask: np.ndarray, coverage: np.ndarray | None = None) -> str:
    """The shape class whose reference outline, fitted to the mask's bounding box, overlaps it best.

    ``coverage`` (how much of each pixel the shape covers, 0..1) refines the overlap on soft or
    blurred edges; the fit tries the box's size and one pixel either side of it.
    """
    scores = outline_scores(mask, coverage)
    return max(scores, key=scores.__getitem__)


def outline_scores(mask: np.ndarray, coverage: np.ndarray | None = None) -> dict[str, float]:
    """Per shape class, the best overlap (soft IoU) of its reference outline with the mask."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    diameter = float(max(x1 - x0, y1 - y0))
    # a shape cut by the picture's edge keeps its size along the other axis: centre it from the free side
    cx = (x0 + x1) / 2 if x1 - x0 >= diameter - 1 else (x1 - diameter / 2 if x0 == 0 else x0 + diameter / 2)
    cy = (y0 + y1) / 2 if y1 - y0 >= diameter - 1 else (y1 - diameter / 2 if y0 == 0 else y0 + diameter / 2)
    size = mask.shape[0]
    soft = mask.astype(np.float32) if coverage is None else np.clip(coverage, 0.0, 1.0)
    return {
        shape: max(
            _soft_iou(soft, ds.render_mask(shape, (cx, cy), diameter + delta, size)) for delta in (-1.0, 0.0, 1.0)
        )
        for shape in ds.SHAPES
    }


def _soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.maximum(a, b).sum()
    return float(np.minimum(a, b).sum() / union) if union else 0.0


def judge(image: np.ndarray) -> Verdict:
    rgb = _as_rgb(image)
    h, w, _ = rgb.shape
    border = np.concatenate(
        [rgb[:2].reshape(-1, 3), rgb[-2:].reshape(-1, 3), rgb[:, :2].reshape(-1, 3), rgb[:, -2:].reshape(-1, 3)]
    )
    bg = np.median(border, axis=0)
    verdict = Verdict(background=nearest_colour(bg), background_rgb=bg)
    distance = np.sqrt(((rgb - bg) ** 2).sum(axis=-1))
    candidates = distance > 40.0
    if candidates.sum() < MIN_SHAPE_PIXELS:
        return verdict
    strong = distance >= 0.8 * np.percentile(distance[candidates], 95)
    fg = np.median(rgb[strong & candidates], axis=0)
    axis = fg - bg
    t = ((rgb - bg) @ axis) / max(float(axis @ axis), 1e-6)  # 0 at the background, 1 at the shape
    mask = t > 0.5
    if mask.sum() < MIN_SHAPE_PIXELS:
        return verdict
    ys, xs = np.nonzero(mask)
    centre = (float(xs.mean()) * ds.SIZE / w, float(ys.mean()) * ds.SIZE / h)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) * ds.SIZE / max(h, w)
    verdict.colour = nearest_colour(fg)
    verdict.shape_rgb, verdict.extent, verdict.coverage = fg, float(extent), np.clip(t, 0.0, 1.0)
    verdict.mask = mask
    verdict.centre = centre
    verdict.position = min(
        ds.POSITIONS, key=lambda p: (ds.POSITIONS[p][0] - centre[0]) ** 2 + (ds.POSITIONS[p][1] - centre[1]) ** 2
    )
    verdict.size = "large" if extent >= SIZE_THRESHOLD_PX else "small"
    verdict.shape = classify_outline(mask, t)
    return verdict


_POSITION_WORDS = {phrase.split()[-1]: pos for pos, phrase in ds.POSITION_PHRASES.items()}
_POSITION_WORDS["center"] = "centre"


def parse_caption(text: str) -> dict[str, str | None]:
    """The words a caption names: shape, colour, size, position, background (None where absent)."""
    words = re.findall(r"[a-z]+", text.lower())
    found: dict[str, str | None] = dict.fromkeys(("shape", "colour", "size", "position", "background"))
    for i, word in enumerate(words):
        if word in ds.SHAPES:
            found["shape"] = word
        elif word in ds.SIZES:
            found["size"] = word
        elif word in _POSITION_WORDS and i > 0 and words[i - 1] in ("the", "left", "right"):
            found["position"] = _POSITION_WORDS[word]
        elif word in ds.COLOURS:
            if i + 1 < len(words) and words[i + 1] == "background":
                found["background"] = word
            else:
                found["colour"] = word
    return found


def score(caption: str, image: np.ndarray) -> dict[str, bool]:
    """For each attribute the caption names, whether the picture shows it."""
    verdict = judge(image).words()
    return {key: verdict[key] == value for key, value in parse_caption(caption).items() if value is not None}


#: How sharply :func:`soft_score` grades each attribute: colour distances (0..255 units), the
#: distance of the centre to a position (pixels), the extent around the size threshold (pixels)
#: and differences of outline overlap (IoU).
SOFT_SPREADS = {"colour": 30.0, "position": 5.0, "size": 2.0, "shape": 0.05}


def _softmax_pick(scores: dict[str, float], key: str) -> float:
    top = max(scores.values())
    weights = {k: float(np.exp(v - top)) for k, v in scores.items()}
    return weights.get(key, 0.0) / sum(weights.values())


def _colour_degree(rgb: np.ndarray, name: str) -> float:
    spread = SOFT_SPREADS["colour"]
    distances = ((_PALETTE - rgb) ** 2).sum(axis=1) / (2 * spread**2)
    return _softmax_pick({n: -float(d) for n, d in zip(_PALETTE_NAMES, distances, strict=True)}, name)


def soft_score(caption: str, image: np.ndarray) -> dict[str, float]:
    """Like :func:`score`, but each attribute the caption names as a degree in 0..1.

    Each degree is the weight of the caption's word among the alternatives the judge weighs
    (a softmax over colour distances, centre-to-position distances and outline overlaps; a
    logistic around the size threshold), so it is high exactly where :func:`score` says True
    and it moves smoothly as a picture gets closer. A picture without a detectable shape scores
    0 on everything but its background. Why: a steering reward is applied to blurry early
    predictions, where a yes/no judge flips on small changes; a graded one ranks them.
    """
    wanted = parse_caption(caption)
    verdict = judge(image)
    degrees: dict[str, float] = {}
    if wanted["background"] is not None:
        degrees["background"] = _colour_degree(np.asarray(verdict.background_rgb), wanted["background"])
    found = verdict.shape_rgb is not None and verdict.centre is not None
    for key in ("shape", "colour", "size", "position"):
        value = wanted[key]
        if value is None:
            continue
        if not found:
            degrees[key] = 0.0
        elif key == "colour":
            degrees[key] = _colour_degree(np.asarray(verdict.shape_rgb), value)
        elif key == "position":
            cx, cy = verdict.centre  # type: ignore[misc]
            spread = SOFT_SPREADS["position"]
            degrees[key] = _softmax_pick(
                {p: -((x - cx) ** 2 + (y - cy) ** 2) / (2 * spread**2) for p, (x, y) in ds.POSITIONS.items()}, value
            )
        elif key == "size":
            large = 1.0 / (1.0 + float(np.exp(-(float(verdict.extent) - SIZE_THRESHOLD_PX) / SOFT_SPREADS["size"])))
            degrees[key] = large if value == "large" else 1.0 - large
        else:
            overlaps = outline_scores(verdict.mask, verdict.coverage)
            degrees[key] = _softmax_pick({k: v / SOFT_SPREADS["shape"] for k, v in overlaps.items()}, value)
    return degrees


def mask_iou(verdict: Verdict, hint: np.ndarray) -> float:
    """Overlap of the judged shape with a hint mask (anything above 0.5 counts as inside)."""
    return _iou(verdict.mask, np.asarray(hint) >= 0.5)
