"""Re-batching (ComfyUI's ``RebatchImages`` / ``RebatchLatents``): a list of batches in, a list
of batches of ``batch_size`` out.

Both nodes take their inputs as whole lists (``input_is_list``) and return lists, so they
sit between list-producing nodes (a node mapped over several values) and nodes that want
one batch, or the other way round. Items are taken in order; consecutive items of the same
size are joined, a change of size starts a new batch (a batch cannot mix sizes).
"""

from __future__ import annotations

from typing import Any

from .api import Input, Int, Node, Output


def _regroup(frames: list[Any], batch_size: int, size_of: Any) -> list[list[Any]]:
    """Consecutive runs of same-sized frames, cut into groups of at most ``batch_size``."""
    groups: list[list[Any]] = []
    current: list[Any] = []
    for frame in frames:
        if current and (len(current) == batch_size or size_of(current[-1]) != size_of(frame)):
            groups.append(current)
            current = []
        current.append(frame)
    if current:
        groups.append(current)
    return groups


class RebatchImages(Node):
    category = "image/batch"
    display_name = "Rebatch Images"
    description = "Joins a list of image batches and cuts it into batches of batch_size images."
    input_is_list = True
    inputs = (Input("images", "IMAGE"), Int("batch_size", 1, min=1, max=4096))
    outputs = (Output("IMAGE", is_list=True),)

    def run(self, images: list[Any], batch_size: list[int]) -> tuple:
        import torch

        size = max(1, int(batch_size[0]))
        frames = [batch[i : i + 1] for batch in images for i in range(batch.shape[0])]
        groups = _regroup(frames, size, lambda f: tuple(f.shape[1:]))
        return ([torch.cat(group, dim=0) for group in groups],)


class RebatchLatents(Node):
    category = "latent/batch"
    display_name = "Rebatch Latents"
    description = "Joins a list of latent batches and cuts it into batches of batch_size latents (masks and batch indices follow)."
    input_is_list = True
    inputs = (Input("latents", "LATENT"), Int("batch_size", 1, min=1, max=4096))
    outputs = (Output("LATENT", is_list=True),)

    def run(self, latents: list[dict[str, Any]], batch_size: list[int]) -> tuple:
        import torch

        size = max(1, int(batch_size[0]))
        frames: list[tuple[Any, Any, int]] = []
        offset = 0
        for latent in latents:
            samples = latent["samples"]
            mask = latent.get("noise_mask")
            indices = list(latent.get("batch_index") or range(offset, offset + samples.shape[0]))
            offset += samples.shape[0]
            for i in range(samples.shape[0]):
                frame_mask = None
                if mask is not None:
                    frame_mask = mask[min(i, mask.shape[0] - 1)].unsqueeze(0)
                frames.append((samples[i : i + 1], frame_mask, int(indices[i])))
        groups = _regroup(frames, size, lambda f: tuple(f[0].shape[1:]))
        result = []
        for group in groups:
            out: dict[str, Any] = {"samples": torch.cat([f[0] for f in group]), "batch_index": [f[2] for f in group]}
            masks = [f[1] for f in group]
            present = [m for m in masks if m is not None]
            if present:
                ones = torch.ones_like(present[0])
                out["noise_mask"] = torch.cat([m if m is not None and m.shape == ones.shape else ones for m in masks])
            result.append(out)
        return (result,)


NODES = [RebatchImages, RebatchLatents]
