"""Where CONDITIONING entries apply, and ComfyUI's same-area rule between a guider's conditionings.

Before sampling, ComfyUI (``process_conds``) settles every entry's area against the latent: a
percentage area (ConditioningSetAreaPercentage) becomes latent pixels, and a mask with "mask
bounds" (ConditioningSetMask) becomes its bounding box, at least 8 latent pixels a side. Then it
makes sure that every entry with an area has an entry with the *same* area in each other
conditioning of the guider. Where there is none, that conditioning gets a copy of the entry (its
area, strength, mask, timestep range, ControlNet...) carrying that conditioning's own prompt, taken
from its smallest entry containing the area, or else from its first entry without an area; with
neither, nothing is added. So a regional prompt is guided against a negative that was also
predicted on the region's crop, with the region's weight: without the copy the picture differs.

:func:`same_area_entries` is that rule on plain CONDITIONING lists. The guider applies it once per
run, when the latent's shape is known (:mod:`.guidance`), never per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Area = tuple[int, int, int, int]  # (h, w, y, x) in latent pixels

#: The options ComfyUI turns into the model's own inputs (text, pooled output and SDXL size
#: numbers, inpainting channels): a copy takes these from the conditioning it joins, the rest
#: from the entry whose area it repeats.
PROMPT_KEYS = frozenset(
    {
        "pooled_output",
        "width",
        "height",
        "crop_w",
        "crop_h",
        "target_width",
        "target_height",
        "concat_latent_image",
        "concat_mask",
    }
)

_MIN_BOUNDS = 8  # ComfyUI's smallest "mask bounds" side, in latent pixels


def resized_mask(mask: Any, height: int, width: int) -> Any:
    """A MASK as ``[B, 1, height, width]`` float (bilinear, as ComfyUI resizes cond masks)."""
    import torch.nn.functional as F

    m = mask.float()
    while m.dim() < 4:
        m = m.unsqueeze(0) if m.dim() < 3 else m.unsqueeze(1)
    if tuple(m.shape[-2:]) == (height, width):
        return m
    return F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)


def mask_bounds(mask: Any) -> Area:
    """The bounding box of a resized mask's non-zero pixels over its batch, each side at least
    8 latent pixels (may reach past the latent; the guider clips it); an empty mask gives the
    8x8 corner, which its zero weight makes a no-op."""
    import torch

    hit = mask.abs().amax(dim=tuple(range(mask.dim() - 2))) != 0
    rows, cols = torch.nonzero(hit.any(dim=1)).flatten(), torch.nonzero(hit.any(dim=0)).flatten()
    if not rows.numel():
        return (_MIN_BOUNDS, _MIN_BOUNDS, 0, 0)
    y, x = int(rows[0]), int(cols[0])
    return (max(_MIN_BOUNDS, int(rows[-1]) + 1 - y), max(_MIN_BOUNDS, int(cols[-1]) + 1 - x), y, x)


def resolve_area(options: Mapping[str, Any], height: int, width: int) -> Area | None:
    """An entry's area as ComfyUI settles it before sampling (not clipped to the latent), or
    ``None`` for a whole-frame entry. Area forms other than ``(h, w, y, x)`` and the percentage
    form are a plugin's business and count as whole-frame."""
    if options.get("mask") is not None and options.get("set_area_to_bounds"):
        return mask_bounds(resized_mask(options["mask"], height, width))
    area = options.get("area")
    if area is None:
        return None
    if len(area) == 5 and area[0] == "percentage":
        ph, pw, py, px = (float(v) for v in area[1:])
        return (max(1, round(ph * height)), max(1, round(pw * width)), round(py * height), round(px * width))
    if len(area) != 4 or isinstance(area[0], str):
        return None
    h, w, y, x = (int(v) for v in area)
    return (h, w, y, x)


def feather(area: Area, height: int, width: int) -> Any:
    """ComfyUI's soft edge of an area entry without a mask: its ``[1, 1, h, w]`` weight ramps up
    over the first ``min(8, side // 4)`` rows/columns on each side that lies inside the latent
    (a side on the latent's border stays hard), so regions blend rather than meet at a seam.
    ``None`` where nothing ramps (sides under 8 pixels, or every side on the border)."""
    import torch

    h, w, y, x = area
    weight = torch.ones((1, 1, h, w))
    for dim, (size, start, full) in enumerate(((h, y, height), (w, x, width)), start=2):
        ramp = min(8, size // 4)
        if ramp < 2:
            continue
        steps = torch.arange(1, ramp + 1, dtype=torch.float32) / ramp
        shape = [1, 1, 1, 1]
        shape[dim] = ramp
        if start != 0:
            weight.narrow(dim, 0, ramp).mul_(steps.reshape(shape))
        if start + size < full:
            weight.narrow(dim, size - ramp, ramp).mul_(steps.flip(0).reshape(shape))
    return None if bool((weight == 1).all()) else weight


def _inside(inner: Area, outer: Area) -> bool:
    return (
        inner[2] >= outer[2]
        and inner[3] >= outer[3]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _source(areas: list[Area | None], area: Area) -> int | None:
    """Index of the entry a copy for ``area`` takes its prompt from: the smallest one containing
    ``area`` (the first of equal size), else the first without an area; ``None`` when neither."""
    best = None
    for i, other in enumerate(areas):
        if other is None:
            if best is None:
                best = i
        elif _inside(area, other) and (
            best is None or areas[best] is None or math.prod(areas[best][:2]) > math.prod(other[:2])
        ):
            best = i
    return best


def _copy(entry: Any, source: Any, area: Area) -> list[Any]:
    options = {k: v for k, v in entry[1].items() if k not in PROMPT_KEYS}
    options.update((k, v) for k, v in source[1].items() if k in PROMPT_KEYS)
    options["area"] = area
    return [source[0], options]


def _entries_of(conditioning: Any) -> list[Any] | None:
    """The entries of a well-formed CONDITIONING, else ``None`` (the guider reports it later)."""
    if not isinstance(conditioning, (list, tuple)):
        return None
    ok = all(isinstance(e, (list, tuple)) and len(e) >= 2 and isinstance(e[1], dict) for e in conditioning)
    return list(conditioning) if ok else None


def same_area_entries(conds: Mapping[str, Any], height: int, width: int) -> Mapping[str, Any]:
    """``conds`` (a guider's named conditionings) with ComfyUI's same-area copies added for a
    ``height`` x ``width`` latent; ``conds`` itself when none is needed. The given lists are left
    as they are. As in ComfyUI, conditionings are visited in the dict's order, and the copies one
    received from those before it are visited with its own entries."""
    work = {name: entries for name, c in conds.items() if (entries := _entries_of(c)) is not None}
    if len(work) < 2:
        return conds
    areas = {name: [resolve_area(e[1], height, width) for e in entries] for name, entries in work.items()}
    changed: set[str] = set()
    for name, entries in work.items():  # copies from conditionings visited earlier included
        for entry, area in zip(entries, areas[name], strict=True):
            for other in work if area is not None else ():
                j = None if other == name else _source(areas[other], area)
                if j is None or areas[other][j] == area:
                    continue
                work[other].append(_copy(entry, work[other][j], area))
                areas[other].append(area)
                changed.add(other)
    if not changed:
        return conds
    return {**conds, **{name: work[name] for name in changed}}
