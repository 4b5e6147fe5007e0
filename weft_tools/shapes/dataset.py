"""Captioned 64x64 pictures of simple shapes, drawn procedurally and reproducibly.

Each picture is one shape (circle, square, triangle, diamond) of a named colour, in one of two
sizes, at one of five positions, on a plain background of another named colour, captioned as
"a small red circle on the left, blue background". Beside it come the shape's mask and its
edge map, the hints the ControlNet is trained on.

Shapes are drawn at 4x and box-filtered down, so edges are anti-aliased like a photograph's
rather than stair-stepped: that is what an autoencoder can reproduce and a judge can measure.
Small random jitter of position and size keeps the model from memorising exact pixels.

Every caption's combination of words is deterministically put in the training or the held-out
split (``is_held_out``), so evaluations run on captions the model never saw, made of words
it did see.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4

#: Named colours in sRGB. Far enough apart that a pixel statistic tells any two apart.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (245, 220, 40),
    "orange": (245, 140, 20),
    "purple": (130, 50, 170),
    "pink": (245, 140, 200),
    "cyan": (40, 210, 225),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 18, "large": 30}
#: Centre of the shape in pixels for each position word.
POSITIONS: dict[str, tuple[int, int]] = {
    "left": (16, 32),
    "right": (48, 32),
    "top": (32, 16),
    "bottom": (32, 48),
    "centre": (32, 32),
}
POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
JITTER_PX = 3
SIZE_JITTER_PX = 2
HOLD_OUT_EVERY = 10  # one full combination in ten is never trained on


@dataclass(frozen=True)
class ShapeSpec:
    """Everything that decides a picture: the caption's words plus the jitter."""

    shape: str
    colour: str
    size: str
    position: str
    background: str
    dx: int = 0
    dy: int = 0
    dsize: int = 0

    def caption(self) -> str:
        return (
            f"a {self.size} {self.colour} {self.shape} {POSITION_PHRASES[self.position]}, {self.background} background"
        )

    def centre(self) -> tuple[int, int]:
        x, y = POSITIONS[self.position]
        return x + self.dx, y + self.dy

    def diameter(self) -> int:
        return SIZES[self.size] + self.dsize


def is_held_out(spec: ShapeSpec) -> bool:
    """Whether this combination of words belongs to the evaluation split (never trained on)."""
    key = f"{spec.shape}|{spec.colour}|{spec.size}|{spec.position}|{spec.background}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "big") % HOLD_OUT_EVERY == 0


def all_combinations() -> list[ShapeSpec]:
    return [
        ShapeSpec(shape, colour, size, position, background)
        for shape in SHAPES
        for colour in COLOURS
        for size in SIZES
        for position in POSITIONS
        for background in COLOURS
        if background != colour
    ]


def random_spec(rng: np.random.Generator, held_out: bool = False, jitter: bool = True) -> ShapeSpec:
    """A random combination from the training split (or the held-out one)."""
    colours = list(COLOURS)
    while True:
        colour, background = rng.choice(colours, size=2, replace=False)
        spec = ShapeSpec(
            str(rng.choice(SHAPES)),
            str(colour),
            str(rng.choice(list(SIZES))),
            str(rng.choice(list(POSITIONS))),
            str(background),
        )
        if is_held_out(spec) == held_out:
            break
    if jitter:
        spec = replace(
            spec,
            dx=int(rng.integers(-JITTER_PX, JITTER_PX + 1)),
            dy=int(rng.integers(-JITTER_PX, JITTER_PX + 1)),
            dsize=int(rng.integers(-SIZE_JITTER_PX, SIZE_JITTER_PX + 1)),
        )
    return spec


def shape_polygon(shape: str, cx: float, cy: float, d: float) -> list[tuple[float, float]] | None:
    """The outline of a polygonal shape of diameter ``d`` centred at (cx, cy); None for a circle."""
    r = d / 2
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":  # apex up, base at the bottom, filling the box of side d
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def render_mask(shape: str, centre: tuple[float, float], diameter: float, size: int = SIZE) -> np.ndarray:
    """Anti-aliased coverage of the shape, float32 in [0, 1], ``size`` x ``size``."""
    s = SUPERSAMPLE
    canvas = Image.new("L", (size * s, size * s), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = centre[0] * s, centre[1] * s
    d = diameter * s
    polygon = shape_polygon(shape, cx, cy, d)
    if polygon is None:
        draw.ellipse([cx - d / 2, cy - d / 2, cx + d / 2, cy + d / 2], fill=255)
    else:
        draw.polygon(polygon, fill=255)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def edge_map(mask: np.ndarray) -> np.ndarray:
    """The shape's outline, about one pixel wide, from the coverage mask (float32 in [0, 1])."""
    binary = mask >= 0.5
    padded = np.pad(binary, 1, mode="edge")
    eroded = binary.copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        eroded &= padded[dy : dy + binary.shape[0], dx : dx + binary.shape[1]]
    return (binary & ~eroded).astype(np.float32)


@dataclass
class Sample:
    spec: ShapeSpec
    image: np.ndarray  # uint8 [H, W, 3]
    mask: np.ndarray  # float32 [H, W], anti-aliased coverage
    edges: np.ndarray  # float32 [H, W], 0/1

    @property
    def caption(self) -> str:
        return self.spec.caption()


def render(spec: ShapeSpec, size: int = SIZE) -> Sample:
    mask = render_mask(spec.shape, spec.centre(), spec.diameter(), size)
    fg = np.asarray(COLOURS[spec.colour], dtype=np.float32)
    bg = np.asarray(COLOURS[spec.background], dtype=np.float32)
    image = bg + (fg - bg) * mask[..., None]
    return Sample(spec, np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, edge_map(mask))


def make_arrays(count: int, seed: int, held_out: bool = False) -> dict[str, np.ndarray | list]:
    """``count`` random samples as stacked arrays (images uint8 NHWC, masks, edges) and specs."""
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng, held_out) for _ in range(count)]
    samples = [render(spec) for spec in specs]
    return {
        "specs": specs,
        "images": np.stack([s.image for s in samples]),
        "masks": np.stack([s.mask for s in samples]),
        "edges": np.stack([s.edges for s in samples]),
    }


def partial_caption(spec: ShapeSpec, rng: np.random.Generator) -> str:
    """The caption with some words left out ("a red circle", "a square on the left, blue background").

    Trained on alongside the full captions so short prompts work too; the shape word stays.
    """
    words = ["a"]
    if rng.random() < 0.5:
        words.append(spec.size)
    if rng.random() < 0.5:
        words.append(spec.colour)
    words.append(spec.shape)
    if rng.random() < 0.5:
        words.append(POSITION_PHRASES[spec.position])
    text = " ".join(words)
    if rng.random() < 0.5:
        text += f", {spec.background} background"
    return text
