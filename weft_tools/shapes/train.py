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
   term; the encoder stays frozen, so the latents the UNet learnt do not move.
6. ``export``: the original-layout single file ``weft-shapes.safetensors`` (UNet, VAE and CLIP
   under SD1's key prefixes) and ``weft-shapes-controlnet-mask.safetensors``, stored in fp16.

Everything random is drawn from generators seeded by (seed, stage, step), so a resumed run
draws the same batches as an uninterrupted one; the held-out captions (``dataset.is_held_out``)
are never trained on.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import dataset as ds
from . import models as sm

STAGES = ("vae", "bank", "unet", "controlnet", "decoder", "export")
STAGE_IDS = {name: i for i, name in enumerate(STAGES)}
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "models_builtin"
CHECKPOINT_NAME = "weft-shapes.safetensors"
CONTROLNET_NAME = "weft-shapes-controlnet-mask.safetensors"


@dataclass
class Plan:
    seed: int = 0
    vae_crop_steps: int = 3000
    vae_full_steps: int = 400
    vae_crop_batch: int = 16
    vae_full_batch: int = 8
    vae_lr: float = 1e-3
    #: the autoencoder's widths per level (64, 32, 16, 8 px)
    vae_channels: tuple[int, ...] = (32, 32, 64, 64)
    #: weight of the shape-coverage term (see :func:`coverage_loss`) in the autoencoder's and
    #: the decoder's loss
    coverage_weight: float = 0.0
    bank_size: int = 40_000
    unet_steps: int = 1900
    unet_batch: int = 128
    unet_lr: float = 5e-4
    unet_warmup: int = 100
    ema_decay: float = 0.999
    min_snr_gamma: float = 5.0
    empty_caption: float = 0.1
    partial_caption: float = 0.1
    composition_from_step: int = 1050
    composition_share: float = 0.5
    composition_weight_cap: float = 10.0
    cn_steps: int = 250
    cn_batch: int = 128
    cn_lr: float = 5e-4
    decoder_steps: int = 1000
    decoder_batch: int = 8
    decoder_lr: float = 5e-4
    checkpoint_every: int = 50

    @classmethod
    def shape_focused(cls) -> Plan:
        """The next run (in training, not yet shipped): an autoencoder that keeps small shapes' corners.

        The shipped plan's autoencoder caps the judged shape class at ~73 % of its own
        reconstructions (small shapes ~50 %) although a probe on its latents tells small shapes
        apart ~95 % of the time: its loss barely feels corners on low-contrast colour pairs.
        This plan adds the coverage term (weight 4), widens the two latent-side levels to 128
        channels, trains longer on whole pictures, and turns the UNet's composition emphasis on
        from step 300 (the shipped run learnt position only once it was on).
        """
        return cls(vae_channels=(32, 32, 128, 128), coverage_weight=4.0, vae_crop_steps=2400, vae_full_steps=800,
                   unet_steps=1700, composition_from_step=300)

    @classmethod
    def quick(cls) -> Plan:
        return cls(vae_crop_steps=4, vae_full_steps=2, vae_crop_batch=8, vae_full_batch=4, bank_size=64,
                   unet_steps=4, unet_batch=8, unet_warmup=2, composition_from_step=2, cn_steps=3, cn_batch=8, decoder_steps=3,
                   decoder_batch=4, checkpoint_every=2)


# -- plumbing ------------------------------------------------------------------------------------
class Paused(Exception):
    """The run's step budget is spent; every stage has saved where it stopped."""


class Budget:
    """How many optimiser steps this invocation may take (``None``: all), for training in slices."""

    def __init__(self, steps: int | None = None) -> None:
        self.left = steps

    def spend(self) -> bool:
        """Count one step; True when the budget is now spent (save, then raise :class:`Paused`)."""
        if self.left is None:
            return False
        self.left -= 1
        return self.left <= 0


def log(work: Path, message: str, **figures: Any) -> None:
    line = time.strftime("%H:%M:%S ") + message
    if figures:
        line += " " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(line, flush=True)
    with open(work / "train.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def batch_rng(plan: Plan, stage: str, step: int) -> np.random.Generator:
    return np.random.default_rng([plan.seed, STAGE_IDS[stage], step])


def torch_generator(plan: Plan, stage: str, step: int) -> Any:
    import torch

    return torch.Generator().manual_seed(int(batch_rng(plan, stage, step).integers(0, 2**62)))


def save_atomic(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any] | None:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def cosine_lr(base: float, step: int, total: int, warmup: int = 0, floor: float = 0.1) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def set_lr(optimizer: Any, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def to_tensor(images: np.ndarray) -> Any:
    """uint8 NHWC -> float NCHW in [-1, 1] (what AutoencoderKL expects)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def record_time(work: Path, stage: str, seconds: float) -> None:
    path = work / "times.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[stage] = times.get(stage, 0.0) + seconds
    path.write_text(json.dumps(times, indent=2))


# -- 1. autoencoder ------------------------------------------------------------------------------
def train_vae(plan: Plan, work: Path, budget: Budget) -> Any:
    import torch
    import torch.nn.functional as F

    path = work / "vae.pt"
    vae = sm.make_vae(plan.vae_channels)
    state = load_state(path)
    if state and state.get("done"):
        vae.load_state_dict(state["model"])
        return vae.eval()
    torch.manual_seed(plan.seed)
    vae = sm.make_vae(plan.vae_channels)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    start = 0
    if state:
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(work, f"vae: resuming at step {start}")
    total = plan.vae_crop_steps + plan.vae_full_steps
    vae.train()
    began, window = time.time(), []
    for step in range(start, total):
        rng = batch_rng(plan, "vae", step)
        full = step >= plan.vae_crop_steps
        count = plan.vae_full_batch if full else plan.vae_crop_batch
        samples = [ds.render(ds.random_spec(rng)) for _ in range(count)]
        images, masks = np.stack([s.image for s in samples]), np.stack([s.mask for s in samples])
        if not full:  # a random 32x32 crop of each picture, on the latent grid (multiples of 8)
            offsets = rng.integers(0, 5, size=(count, 2)) * 8
            images = np.stack([img[y:y + 32, x:x + 32] for img, (y, x) in zip(images, offsets, strict=True)])
            masks = np.stack([m[y:y + 32, x:x + 32] for m, (y, x) in zip(masks, offsets, strict=True)])
        x = to_tensor(images)
        set_lr(optimizer, cosine_lr(plan.vae_lr, step, total, warmup=20))
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean).sample
        mse = F.mse_loss(recon, x)
        coverage = coverage_loss(recon, [s.spec for s in samples], masks)
        loss = F.l1_loss(recon, x) + mse + plan.coverage_weight * coverage + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        window.append(float(mse.detach()))
        if (step + 1) % 100 == 0 or step + 1 == total:
            psnr = 10 * math.log10(4.0 / max(1e-10, sum(window) / len(window)))  # range [-1, 1] -> peak 2
            log(work, f"vae step {step + 1}/{total}", psnr_db=psnr, s_per_step=(time.time() - began) / (step + 1 - start))
            window = []
        spent = budget.spend()
        if (step + 1) % plan.checkpoint_every == 0 or step + 1 == total or spent:
            save_atomic({"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}, path)
        if spent and step + 1 < total:
            record_time(work, "vae", time.time() - began)
            raise Paused
    record_time(work, "vae", time.time() - began)
    vae.eval()
    normalise_latents(vae, plan)
    save_atomic({"model": vae.state_dict(), "step": total, "done": True}, path)
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
        recon = torch.cat([vae.decode(vae.encode(to_tensor(data["images"][i:i + 64])).latent_dist.mean).sample
                           for i in range(0, count, 64)])
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
        latents = torch.cat([vae.encode(to_tensor(images[i:i + 64])).latent_dist.mean for i in range(0, 512, 64)])
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


# -- 2. latent bank ------------------------------------------------------------------------------
def build_bank(plan: Plan, work: Path, vae: Any) -> dict[str, Any]:
    import torch

    path = work / "bank.pt"
    bank = load_state(path)
    if bank is not None and bank.get("size") == plan.bank_size:
        return bank
    began = time.time()
    rng = np.random.default_rng([plan.seed, STAGE_IDS["bank"]])
    specs = [ds.random_spec(rng) for _ in range(plan.bank_size)]
    chunks = []
    with torch.no_grad():
        for i in range(0, len(specs), 256):
            images = np.stack([ds.render(s).image for s in specs[i:i + 256]])
            chunks.append(vae.encode(to_tensor(images)).latent_dist.mean * sm.SCALING_FACTOR)
    latents = torch.cat(chunks)
    bank = {"size": plan.bank_size, "latents": latents, "specs": [asdict(s) for s in specs]}
    save_atomic(bank, path)
    record_time(work, "bank", time.time() - began)
    log(work, "bank built", images=len(specs), latent_std=float(latents.std()), latent_mean=float(latents.mean()),
        seconds=time.time() - began)
    return bank


# -- 3. UNet + text encoder ----------------------------------------------------------------------
class Captions:
    """Token ids as Weft's CLIPTextEncode makes them (77 per prompt, end-token padding), cached."""

    def __init__(self) -> None:
        from nodes.diffusion.clip_text import EOS, make_tokenizer, tokenize_weighted

        self._tokenizer = make_tokenizer()
        self._tokenize = tokenize_weighted
        self._pad = EOS
        self._cache: dict[str, tuple[int, ...]] = {}

    def ids(self, text: str) -> tuple[int, ...]:
        if text not in self._cache:
            chunks = self._tokenize(self._tokenizer, text, self._pad)
            self._cache[text] = chunks[0].ids
        return self._cache[text]

    def batch(self, texts: list[str]) -> Any:
        import torch

        return torch.tensor([self.ids(t) for t in texts], dtype=torch.long)


def choose_caption(plan: Plan, spec: ds.ShapeSpec, rng: np.random.Generator) -> str:
    r = rng.random()
    if r < plan.empty_caption:
        return ""
    if r < plan.empty_caption + plan.partial_caption:
        return ds.partial_caption(spec, rng)
    return spec.caption()


def noisy(latents: Any, gen: Any, alphas: Any, high_noise_share: float = 0.0) -> tuple[Any, Any, Any, Any]:
    """(noisy latents, timesteps, noise, SNR) for one batch.

    ``high_noise_share`` of the timesteps are redrawn from the noisier half of the schedule,
    where a picture's layout (which shape goes where) is decided.
    """
    import torch

    count = len(alphas)
    t = torch.randint(0, count, (latents.shape[0],), generator=gen)
    noise = torch.randn(latents.shape, generator=gen)
    if high_noise_share:
        pick = torch.rand(latents.shape[0], generator=gen) < high_noise_share
        t = torch.where(pick, torch.randint(count // 2, count, (latents.shape[0],), generator=gen), t)
    ab = alphas[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * latents + (1 - ab).sqrt() * noise
    snr = (ab / (1 - ab)).view(-1)
    return x_t, t, noise, snr


def ema_update(ema: Any, model: Any, decay: float) -> None:
    import torch

    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


def train_unet(plan: Plan, work: Path, bank: dict[str, Any], budget: Budget) -> tuple[Any, Any]:
    import torch

    path = work / "unet.pt"
    state = load_state(path)
    torch.manual_seed(plan.seed + 1)
    unet, text = sm.make_unet(), sm.make_text_encoder()
    if state and state.get("done"):
        unet.load_state_dict(state["ema_unet"])
        text.load_state_dict(state["ema_text"])
        return unet.eval(), text.eval()
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    params = list(unet.parameters()) + list(text.parameters())
    optimizer = torch.optim.AdamW(params, lr=plan.unet_lr, weight_decay=0.0)
    start = 0
    if state:
        unet.load_state_dict(state["unet"])
        text.load_state_dict(state["text"])
        ema_unet.load_state_dict(state["ema_unet"])
        ema_text.load_state_dict(state["ema_text"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(work, f"unet: resuming at step {start}")
    captions = Captions()
    alphas = sm.alphas_cumprod()
    latents = bank["latents"]
    specs = [ds.ShapeSpec(**s) for s in bank["specs"]]
    unet.train()
    text.train()
    began, losses = time.time(), []
    for step in range(start, plan.unet_steps):
        rng = batch_rng(plan, "unet", step)
        index = rng.integers(0, len(specs), plan.unet_batch)
        ids = captions.batch([choose_caption(plan, specs[i], rng) for i in index])
        composition = step >= plan.composition_from_step
        x_t, t, noise, snr = noisy(latents[torch.from_numpy(index)], torch_generator(plan, "unet", step), alphas,
                                   plan.composition_share if composition else 0.0)
        set_lr(optimizer, cosine_lr(plan.unet_lr, step, plan.unet_steps, plan.unet_warmup))
        context = text(input_ids=ids).last_hidden_state
        pred = unet(x_t, t, encoder_hidden_states=context).sample
        weight = torch.clamp(snr, max=plan.min_snr_gamma) / snr
        if composition:  # noisy steps weighted towards their x0 error (epsilon's loss is SNR times it)
            weight = weight * torch.clamp(1.0 / snr, min=1.0, max=plan.composition_weight_cap)
        loss = (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(plan.ema_decay, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == plan.unet_steps:
            log(work, f"unet step {step + 1}/{plan.unet_steps}", loss=sum(losses) / len(losses),
                s_per_step=(time.time() - began) / (step + 1 - start))
            losses = []
        spent = budget.spend()
        if (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.unet_steps or spent:
            save_atomic({"unet": unet.state_dict(), "text": text.state_dict(), "ema_unet": ema_unet.state_dict(),
                         "ema_text": ema_text.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1},
                        path)
        if spent and step + 1 < plan.unet_steps:
            record_time(work, "unet", time.time() - began)
            raise Paused
    record_time(work, "unet", time.time() - began)
    save_atomic({"ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(), "step": plan.unet_steps,
                 "done": True}, path)
    return ema_unet.eval(), ema_text.eval()


# -- 4. ControlNet -------------------------------------------------------------------------------
def mask_hint(specs: list[ds.ShapeSpec]) -> Any:
    """The shapes' masks as ComfyUI hands a hint to a ControlNet: [B, 3, H, W] in [0, 1]."""
    import torch

    masks = np.stack([ds.render_mask(s.shape, s.centre(), s.diameter()) for s in specs])
    return torch.from_numpy(masks).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def controlnet_caption(plan: Plan, spec: ds.ShapeSpec, rng: np.random.Generator) -> str:
    """Right caption 40 %, position left out 25 %, a wrong position 25 %, empty 10 %."""
    r = rng.random()
    if r < 0.1:
        return ""
    if r < 0.35:
        return (f"a {spec.size} {spec.colour} {spec.shape}, {spec.background} background")
    if r < 0.6:
        others = [p for p in ds.POSITIONS if p != spec.position]
        return ds.ShapeSpec(spec.shape, spec.colour, spec.size, str(rng.choice(others)), spec.background).caption()
    return spec.caption()


def train_controlnet(plan: Plan, work: Path, bank: dict[str, Any], unet: Any, text: Any, budget: Budget) -> Any:
    import torch

    path = work / "controlnet.pt"
    state = load_state(path)
    torch.manual_seed(plan.seed + 2)
    controlnet = sm.make_controlnet(unet)
    if state and state.get("done"):
        controlnet.load_state_dict(state["ema"])
        return controlnet.eval()
    ema = copy.deepcopy(controlnet)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=plan.cn_lr, weight_decay=0.0)
    start = 0
    if state:
        controlnet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(work, f"controlnet: resuming at step {start}")
    for module in (unet, text):
        module.eval().requires_grad_(False)
    captions = Captions()
    alphas = sm.alphas_cumprod()
    latents = bank["latents"]
    specs = [ds.ShapeSpec(**s) for s in bank["specs"]]
    controlnet.train()
    began, losses = time.time(), []
    for step in range(start, plan.cn_steps):
        rng = batch_rng(plan, "controlnet", step)
        index = rng.integers(0, len(specs), plan.cn_batch)
        chosen = [specs[i] for i in index]
        ids = captions.batch([controlnet_caption(plan, s, rng) for s in chosen])
        x_t, t, noise, snr = noisy(latents[torch.from_numpy(index)], torch_generator(plan, "controlnet", step), alphas)
        set_lr(optimizer, cosine_lr(plan.cn_lr, step, plan.cn_steps, warmup=20))
        with torch.no_grad():
            context = text(input_ids=ids).last_hidden_state
        down, mid = controlnet(x_t, t, encoder_hidden_states=context, controlnet_cond=mask_hint(chosen),
                               return_dict=False)
        pred = unet(x_t, t, encoder_hidden_states=context, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        weight = torch.clamp(snr, max=plan.min_snr_gamma) / snr
        loss = (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(controlnet.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, controlnet, min(0.995, (1 + step) / (10 + step)))
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == plan.cn_steps:
            log(work, f"controlnet step {step + 1}/{plan.cn_steps}", loss=sum(losses) / len(losses),
                s_per_step=(time.time() - began) / (step + 1 - start))
            losses = []
        spent = budget.spend()
        if (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.cn_steps or spent:
            save_atomic({"model": controlnet.state_dict(), "ema": ema.state_dict(),
                         "optimizer": optimizer.state_dict(), "step": step + 1}, path)
        if spent and step + 1 < plan.cn_steps:
            record_time(work, "controlnet", time.time() - began)
            raise Paused
    record_time(work, "controlnet", time.time() - began)
    save_atomic({"ema": ema.state_dict(), "step": plan.cn_steps, "done": True}, path)
    return ema.eval()


# -- 5. decoder ----------------------------------------------------------------------------------
def image_gradients(x: Any) -> tuple[Any, Any]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def train_decoder(plan: Plan, work: Path, bank: dict[str, Any], vae: Any, budget: Budget) -> Any:
    """Sharpen the decoder on whole pictures, the encoder (hence every latent) left as it is.

    The diffusion stages were trained on the encoder's latents, so only what turns latents
    into pixels may change: ``post_quant_conv`` and the decoder. An L1 term on the image's
    gradients weights the shapes' edges, which decide what shape a picture shows.
    """
    import torch
    import torch.nn.functional as F

    path = work / "decoder.pt"
    state = load_state(path)
    if state and state.get("done"):
        vae.load_state_dict(state["model"])
        return vae.eval()
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=plan.decoder_lr, weight_decay=0.0)
    start = 0
    if state:
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(work, f"decoder: resuming at step {start}")
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    vae.train()
    latents = bank["latents"]
    specs = [ds.ShapeSpec(**s) for s in bank["specs"]]
    began, window = time.time(), []
    for step in range(start, plan.decoder_steps):
        rng = batch_rng(plan, "decoder", step)
        index = rng.integers(0, len(specs), plan.decoder_batch)
        samples = [ds.render(specs[i]) for i in index]
        x = to_tensor(np.stack([s.image for s in samples]))
        set_lr(optimizer, cosine_lr(plan.decoder_lr, step, plan.decoder_steps, warmup=20))
        recon = vae.decode(latents[torch.from_numpy(index)] / sm.SCALING_FACTOR).sample
        mse = F.mse_loss(recon, x)
        (rdx, rdy), (xdx, xdy) = image_gradients(recon), image_gradients(x)
        coverage = coverage_loss(recon, [s.spec for s in samples], np.stack([s.mask for s in samples]))
        loss = (F.l1_loss(recon, x) + mse + F.l1_loss(rdx, xdx) + F.l1_loss(rdy, xdy)
                + plan.coverage_weight * coverage)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        window.append(float(mse.detach()))
        if (step + 1) % 100 == 0 or step + 1 == plan.decoder_steps:
            psnr = 10 * math.log10(4.0 / max(1e-10, sum(window) / len(window)))
            log(work, f"decoder step {step + 1}/{plan.decoder_steps}", psnr_db=psnr,
                s_per_step=(time.time() - began) / (step + 1 - start))
            window = []
        spent = budget.spend()
        if (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.decoder_steps or spent:
            save_atomic({"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}, path)
        if spent and step + 1 < plan.decoder_steps:
            record_time(work, "decoder", time.time() - began)
            raise Paused
    record_time(work, "decoder", time.time() - began)
    vae.eval().requires_grad_(False)
    save_atomic({"model": vae.state_dict(), "step": plan.decoder_steps, "done": True}, path)
    return vae


# -- 6. export -----------------------------------------------------------------------------------
def export(plan: Plan, work: Path, out: Path, vae: Any, unet: Any, text: Any, controlnet: Any) -> dict[str, Path]:
    """Write the single-file checkpoint and the ControlNet in the original (LDM) key layout."""
    import torch
    from safetensors.torch import save_file

    from nodes.diffusion import single_file as sf

    meta = {
        "modelspec.title": "Weft shapes", "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.prediction_type": "epsilon", "modelspec.resolution": "64x64",
        "weft.training": json.dumps(asdict(plan)),
        "weft.vocabulary": json.dumps({"shapes": list(ds.SHAPES), "colours": list(ds.COLOURS),
                                       "sizes": list(ds.SIZES), "positions": list(ds.POSITION_PHRASES.values())}),
    }
    state = sf.unet_to_ldm(unet.state_dict(), unet.config)
    state.update(sf.vae_to_ldm(vae.state_dict(), vae.config))
    state.update(sf.clip_hf_to_ldm(text.state_dict(), sf.SD1_CLIP_PREFIX))
    half = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "controlnet").mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoints" / CHECKPOINT_NAME
    save_file(half, str(checkpoint), metadata=meta)
    cn_state = {sf.CONTROLNET_PREFIX + sf.unet_ldm_name(k, controlnet.config): v.detach().to(torch.float16).contiguous()
                for k, v in controlnet.state_dict().items()}
    control = out / "controlnet" / CONTROLNET_NAME
    save_file(cn_state, str(control), metadata={"modelspec.title": "Weft shapes ControlNet (mask)",
                                                "weft.hint": "mask: white shape on black, 64x64"})
    log(work, f"exported {checkpoint} ({checkpoint.stat().st_size / 1e6:.1f} MB) and {control} "
              f"({control.stat().st_size / 1e6:.1f} MB)")
    return {"checkpoint": checkpoint, "controlnet": control}


def run(plan: Plan, work: Path, out: Path, stop_after: str | None = None,
        max_steps: int | None = None) -> dict[str, Path] | None:
    """Train what is not trained yet, then export; ``None`` when stopped early (``stop_after``,
    or ``max_steps`` optimiser steps taken in this call: run again to go on)."""
    import torch

    torch.set_num_threads(int(os.environ.get("WEFT_TRAIN_THREADS", os.cpu_count() or 2)))
    work.mkdir(parents=True, exist_ok=True)
    plan_file = work / "plan.json"
    if plan_file.exists() and json.loads(plan_file.read_text()) != json.loads(json.dumps(asdict(plan))):
        raise SystemExit(f"{work} holds a run with another plan ({plan_file}); use another --workdir")
    plan_file.write_text(json.dumps(asdict(plan), indent=2))
    budget = Budget(max_steps)
    try:
        return _stages(plan, work, out, stop_after, budget)
    except Paused:
        log(work, f"paused after {max_steps} steps; run again to go on")
        return None


def _stages(plan: Plan, work: Path, out: Path, stop_after: str | None, budget: Budget) -> dict[str, Path] | None:
    vae = train_vae(plan, work, budget)
    if stop_after == "vae":
        return None
    bank = build_bank(plan, work, vae)
    if stop_after == "bank":
        return None
    unet, text = train_unet(plan, work, bank, budget)
    if stop_after == "unet":
        return None
    controlnet = train_controlnet(plan, work, bank, unet, text, budget)
    if stop_after == "controlnet":
        return None
    vae = train_decoder(plan, work, bank, vae, budget)
    if stop_after == "decoder":
        return None
    return export(plan, work, out, vae, unet, text, controlnet)


PLANS = {"shipped": Plan, "shape-focused": Plan.shape_focused}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "training" / "shapes",
                        help="checkpoints, logs and the latent bank (resumable)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="models folder to export into")
    parser.add_argument("--quick", action="store_true", help="a few steps of each stage (smoke test)")
    parser.add_argument("--plan", choices=sorted(PLANS), default="shipped",
                        help="shipped: the plan the committed weights come from; shape-focused: the next run")
    parser.add_argument("--stop-after", choices=STAGES[:-1], help="stop after this stage")
    parser.add_argument("--max-steps", type=int, help="stop (resumably) after this many training steps")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan.quick() if args.quick else PLANS[args.plan]()
    written = run(plan, args.workdir, args.out, args.stop_after, args.max_steps)
    for name, path in (written or {}).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
