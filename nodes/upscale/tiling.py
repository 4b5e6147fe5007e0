"""Running an upscale model over an image tile by tile, as ComfyUI's ``tiled_scale`` does.

Convolutional upscalers need activation memory in proportion to the pixels they see (hundreds
of times the image for RRDBNet), so large images go through in overlapping square tiles. The
tile grid and the blending are ComfyUI's, so results match it: tiles start every
``tile - overlap`` pixels (an image no larger than a tile goes through whole; the last tile of
a row may be narrower), each tile's output is weighted by a mask that rises linearly over
``overlap * scale`` output pixels from every one of its edges, and the sum is divided by the sum
of the masks. Where tiles overlap, each pixel is thus a weighted mean of the tiles' answers,
favouring the tile it is deeper inside; elsewhere it is the one tile's answer exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: ComfyUI's ImageUpscaleWithModel settings: the first tile size, the overlap and the smallest
#: tile tried after halving on out-of-memory
TILE, OVERLAP, MIN_TILE = 512, 32, 128

Progress = Callable[[int, int], None]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along one side begin."""
    if size <= tile:
        return [0]
    return list(range(0, size - overlap, tile - overlap))


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def _ramp(length: int, feather: int) -> torch.Tensor:
    """1-D weights: ``(t + 1) / feather`` at ``t`` pixels from either end (both ends apply where they meet)."""
    import torch

    weights = torch.ones(length)
    if feather >= length:
        return weights
    rise = torch.arange(1, feather + 1, dtype=torch.float32) / feather
    weights[:feather] *= rise
    weights[length - feather :] *= rise.flip(0)
    return weights


def tiled_scale(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    scale: float,
    tile: int,
    overlap: int,
    out_channels: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """``fn`` applied to ``x [B, C, H, W]`` in tiles, blended; the result is float32 on the CPU."""
    import torch

    batch, _, height, width = x.shape
    out_h, out_w = round(height * scale), round(width * scale)
    result = torch.empty(batch, out_channels, out_h, out_w)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    total, done = batch * len(ys) * len(xs), 0
    feather = round(overlap * scale)
    for b in range(batch):
        item = x[b : b + 1]
        if height <= tile and width <= tile:
            result[b : b + 1] = fn(item).float().cpu()
            done += 1
            if progress is not None:
                progress(done, total)
            continue
        acc = torch.zeros(1, out_channels, out_h, out_w)
        weight = torch.zeros(1, 1, out_h, out_w)
        for y in ys:
            for x0 in xs:
                part = fn(item[:, :, y : y + tile, x0 : x0 + tile]).float().cpu()
                th, tw = part.shape[-2:]
                mask = _ramp(th, feather)[:, None] * _ramp(tw, feather)[None, :]
                oy, ox = round(y * scale), round(x0 * scale)
                acc[:, :, oy : oy + th, ox : ox + tw] += part * mask
                weight[:, :, oy : oy + th, ox : ox + tw] += mask
                done += 1
                if progress is not None:
                    progress(done, total)
        result[b : b + 1] = acc / weight
    return result


def halving_on_oom(run: Callable[[int], torch.Tensor], tile: int = TILE, min_tile: int = MIN_TILE) -> torch.Tensor:
    """``run(tile)``, retried with half the tile while the device runs out of memory.

    ComfyUI's rule: 512, 256, 128, then the out-of-memory error stands.
    """
    import torch

    while True:
        try:
            return run(tile)
        except torch.OutOfMemoryError:
            tile //= 2
            if tile < min_tile:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
