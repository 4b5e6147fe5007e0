"""Stages 1, 5 and 6: the autoencoder; later its decoder alone, sharpened; then widened and sharpened.

Both losses read reconstructions the way the judge reads pictures (:func:`coverage_loss`), so
a small shape's corners weigh as much as a large one's whatever its colours.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from . import dataset as ds
from . import models as sm
from .plan import STAGE_IDS, Plan
from .plumbing import Budget, StageRun, batch_rng, cosine_lr, load_state, log, optimise, save_atomic, set_lr, to_tensor


def mean_psnr(window: list[float]) -> float:
    """PSNR (dB) of the mean squared error over ``window``; the pictures span [-1, 1], so peak 2."""
    return 10 * math.log10(4.0 / max(1e-10, sum(window) / len(window)))


# -- 1. autoencoder ------------------------------------------------------------------------------
def vae_batch(plan: Plan, step: int) -> tuple[list[ds.Sample], np.ndarray, np.ndarray]:
    """Step ``step``'s samples, pictures and masks: 32x32 crops until ``vae_crop_steps``, then whole."""
    rng = batch_rng(plan, "vae", step)
    full = step >= plan.vae_crop_steps
    count = plan.vae_full_batch if full else plan.vae_crop_batch
    samples = [ds.render(ds.random_spec(rng)) for _ in range(count)]
    images, masks = np.stack([s.image for s in samples]), np.stack([s.mask for s in samples])
    if not full:  # a random 32x32 crop of each picture, on the latent grid (multiples of 8)
        offsets = rng.integers(0, 5, size=(count, 2)) * 8
        images = np.stack([img[y : y + 32, x : x + 32] for img, (y, x) in zip(images, offsets, strict=True)])
        masks = np.stack([m[y : y + 32, x : x + 32] for m, (y, x) in zip(masks, offsets, strict=True)])
    return samples, images, masks


def train_vae(plan: Plan, work: Path, budget: Budget) -> Any:
    import torch
    import torch.nn.functional as F

    loop = StageRun(plan, work, budget, "vae", plan.vae_crop_steps + plan.vae_full_steps)
    vae = sm.make_vae(plan.vae_channels)
    state = load_state(loop.path)
    if state and state.get("done"):
        vae.load_state_dict(state["model"])
        return vae.eval()
    torch.manual_seed(plan.seed)
    vae = sm.make_vae(plan.vae_channels)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    loop.resume(state, {"model": vae}, optimizer)
    vae.train()
    window: list[float] = []
    for step in loop.steps():
        samples, images, masks = vae_batch(plan, step)
        x = to_tensor(images)
        set_lr(optimizer, cosine_lr(plan.vae_lr, step, loop.total, warmup=20))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean).sample
        mse = F.mse_loss(recon, x)
        coverage = coverage_loss(recon, [s.spec for s in samples], masks)
        loss = F.l1_loss(recon, x) + mse + plan.coverage_weight * coverage + 1e-6 * posterior.kl().mean()
        optimise(optimizer, loss, vae.parameters())
        window.append(float(mse.detach()))
        if loop.due(step, 100):
            loop.progress(step, psnr_db=mean_psnr(window))
            window = []
        loop.checkpoint_or_pause(step)
    loop.finish()
    vae.eval()
    normalise_latents(vae, plan)
    save_atomic({"model": vae.state_dict(), "step": loop.total, "done": True}, loop.path)
    log(work, "vae: judged on its reconstructions of 256 held-back pictures", **autoencoder_report(vae))
    return vae


def autoencoder_report(vae: Any, count: int = 256) -> dict[str, float]:
    """PSNR and how often the judge reads each attribute right off the reconstructions.

    The same measurement as ``tests/shapes`` (pictures of seed 11), logged as soon as the
    autoencoder is trained: it caps every later stage, so a weak one is worth knowing early.
    """
    import torch

    from . import judge as J

    data = ds.make_arrays(count, seed=11)
    with torch.no_grad():
        recon = torch.cat(
            [
                vae.decode(vae.encode(to_tensor(data["images"][i : i + 64])).latent_dist.mean).sample
                for i in range(0, count, 64)
            ]
        )
    pictures = ((recon.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    hits: dict[str, int] = {}
    for spec, picture in zip(data["specs"], pictures, strict=True):
        for key, ok in J.score(spec.caption(), picture).items():
            hits[key] = hits.get(key, 0) + int(ok)
    mse = float(((pictures.astype(np.float64) - data["images"]) ** 2).mean())
    return {"psnr_db": 10 * math.log10(255.0**2 / max(mse, 1e-10)), **{k: v / count for k, v in hits.items()}}


def coverage_loss(recon: Any, specs: list[ds.ShapeSpec], masks: np.ndarray) -> Any:
    """L1 between the shape's true coverage and the one read off ``recon`` along its colour axis.

    Pixel losses barely feel a small shape's corners when its colour is close to the
    background's (white on yellow), yet corners are what tell a square from a circle. Reading
    coverage as the judge does, ``(pixel - background) . (shape - background) / |shape - background|^2``,
    normalises that contrast away, so every shape's outline weighs the same.
    """
    import torch
    import torch.nn.functional as F

    fg = torch.tensor([ds.COLOURS[s.colour] for s in specs], dtype=recon.dtype) / 127.5 - 1.0
    bg = torch.tensor([ds.COLOURS[s.background] for s in specs], dtype=recon.dtype) / 127.5 - 1.0
    axis = (fg - bg)[:, :, None, None]
    read = ((recon - bg[:, :, None, None]) * axis).sum(dim=1) / (axis * axis).sum(dim=1)
    return F.l1_loss(read, torch.from_numpy(np.ascontiguousarray(masks)).to(recon.dtype))


def normalise_latents(vae: Any, plan: Plan) -> None:
    """Fold per-channel centring and scaling into the VAE so that ``mean * 0.18215`` has unit variance.

    The encoder's mean is ``quant_conv``'s first four channels and the decoder starts with
    ``post_quant_conv``; rescaling one and inversely the other leaves reconstructions unchanged.
    """
    import torch

    rng = np.random.default_rng([plan.seed, 99])
    images = np.stack([ds.render(ds.random_spec(rng)).image for _ in range(512)])
    with torch.no_grad():
        latents = torch.cat([vae.encode(to_tensor(images[i : i + 64])).latent_dist.mean for i in range(0, 512, 64)])
        mean = latents.mean(dim=(0, 2, 3)).double()
        std = latents.std(dim=(0, 2, 3)).double()
        scale = (1.0 / sm.SCALING_FACTOR) / std  # new = (old - mean) * scale
        qc, pqc = vae.quant_conv, vae.post_quant_conv
        c = mean.numel()
        w = qc.weight.data.double()
        b = qc.bias.data.double()
        w[:c] *= scale.view(-1, 1, 1, 1)
        b[:c] = (b[:c] - mean) * scale
        b[c:] += 2 * torch.log(scale)  # log-variance follows the scale
        qc.weight.data.copy_(w.float())
        qc.bias.data.copy_(b.float())
        pw = pqc.weight.data.double()  # old = new / scale + mean
        pb = pqc.bias.data.double() + (pw[:, :, 0, 0] @ mean)
        pqc.weight.data.copy_((pw / scale.view(1, -1, 1, 1)).float())
        pqc.bias.data.copy_(pb.float())


# -- 5. decoder ----------------------------------------------------------------------------------
def image_gradients(x: Any) -> tuple[Any, Any]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def decoder_loss(plan: Plan, recon: Any, x: Any, samples: list[ds.Sample]) -> tuple[Any, Any]:
    """(loss, MSE): pixels, their gradients (the shapes' edges) and the shape's coverage."""
    import torch.nn.functional as F

    mse = F.mse_loss(recon, x)
    (rdx, rdy), (xdx, xdy) = image_gradients(recon), image_gradients(x)
    coverage = coverage_loss(recon, [s.spec for s in samples], np.stack([s.mask for s in samples]))
    weight = plan.coverage_weight if plan.decoder_coverage_weight is None else plan.decoder_coverage_weight
    loss = F.l1_loss(recon, x) + mse + F.l1_loss(rdx, xdx) + F.l1_loss(rdy, xdy) + weight * coverage
    return loss, mse


def train_decoder(plan: Plan, work: Path, bank: dict[str, Any], vae: Any, budget: Budget) -> Any:
    """Sharpen the decoder on whole pictures, the encoder (hence every latent) left as it is.

    The diffusion stages were trained on the encoder's latents, so only what turns latents
    into pixels may change: ``post_quant_conv`` and the decoder. An L1 term on the image's
    gradients weights the shapes' edges, which decide what shape a picture shows.
    """
    return _sharpen(plan, work, bank, vae, budget, "decoder", plan.decoder_steps, plan.decoder_lr, None)


def train_wide_decoder(plan: Plan, work: Path, bank: dict[str, Any], vae: Any, budget: Budget) -> Any:
    """Widen the autoencoder without changing what it computes (:mod:`.widen`), then sharpen the
    wider decoder as :func:`train_decoder` does, with ``widen_small_share`` of each batch small
    shapes (the ones whose corners still blur). Without ``widen_channels``: ``vae`` unchanged."""
    from .widen import widen_vae

    if plan.widen_channels is None:
        return vae
    seed = int(np.random.default_rng([plan.seed, STAGE_IDS["widen"]]).integers(0, 2**62))
    wide = widen_vae(vae, plan.widen_channels, seed)
    return _sharpen(plan, work, bank, wide, budget, "widen", plan.widen_steps, plan.widen_lr, plan.widen_small_share)


def _sharpen(
    plan: Plan,
    work: Path,
    bank: dict[str, Any],
    vae: Any,
    budget: Budget,
    stage: str,
    steps: int,
    lr: float,
    small_share: float | None,
) -> Any:
    """Train ``post_quant_conv`` and the decoder on the bank's latents (:func:`decoder_loss`);
    ``small_share``: that share of each batch (binomially) small shapes, else as the bank has them."""
    import torch

    loop = StageRun(plan, work, budget, stage, steps)
    state = load_state(loop.path)
    if state and state.get("done"):
        vae.load_state_dict(state["model"])
        return vae.eval()
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loop.resume(state, {"model": vae}, optimizer)
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    vae.train()
    latents = bank["latents"]
    specs = [ds.ShapeSpec(**s) for s in bank["specs"]]
    small = np.array([i for i, s in enumerate(specs) if s.size == "small"])
    large = np.array([i for i, s in enumerate(specs) if s.size != "small"])
    window: list[float] = []
    for step in loop.steps():
        rng = batch_rng(plan, stage, step)
        if small_share is None:
            index = rng.integers(0, len(specs), plan.decoder_batch)
        else:
            count = int(rng.binomial(plan.decoder_batch, small_share))
            index = np.concatenate([rng.choice(small, count), rng.choice(large, plan.decoder_batch - count)])
        samples = [ds.render(specs[i]) for i in index]
        x = to_tensor(np.stack([s.image for s in samples]))
        set_lr(optimizer, cosine_lr(lr, step, steps, warmup=20))
        recon = vae.decode(latents[torch.from_numpy(index)] / sm.SCALING_FACTOR).sample
        loss, mse = decoder_loss(plan, recon, x, samples)
        optimise(optimizer, loss, params)
        window.append(float(mse.detach()))
        if loop.due(step, 100):
            loop.progress(step, psnr_db=mean_psnr(window))
            window = []
        loop.checkpoint_or_pause(step)
    loop.finish()
    vae.eval().requires_grad_(False)
    save_atomic({"model": vae.state_dict(), "step": steps, "done": True}, loop.path)
    return vae
