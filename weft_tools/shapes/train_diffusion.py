"""Stages 2 to 4: the latent bank, the UNet with its text encoder, and the mask ControlNet.

Both diffusion stages draw batches from the bank (latents encoded once by the frozen encoder)
with epsilon prediction on SD1's noise schedule and min-SNR weighting.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import dataset as ds
from . import models as sm
from .plan import STAGE_IDS, Plan
from .plumbing import (
    Budget,
    StageRun,
    batch_rng,
    cosine_lr,
    load_state,
    log,
    optimise,
    record_time,
    save_atomic,
    set_lr,
    to_tensor,
    torch_generator,
)


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
            images = np.stack([ds.render(s).image for s in specs[i : i + 256]])
            chunks.append(vae.encode(to_tensor(images)).latent_dist.mean * sm.SCALING_FACTOR)
    latents = torch.cat(chunks)
    bank = {"size": plan.bank_size, "latents": latents, "specs": [asdict(s) for s in specs]}
    save_atomic(bank, path)
    record_time(work, "bank", time.time() - began)
    log(
        work,
        "bank built",
        images=len(specs),
        latent_std=float(latents.std()),
        latent_mean=float(latents.mean()),
        seconds=time.time() - began,
    )
    return bank


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


@dataclass
class Source:
    """What the diffusion stages draw their batches from: the bank, its captions' tokens, the schedule."""

    captions: Captions
    alphas: Any
    latents: Any
    specs: list[ds.ShapeSpec]

    @classmethod
    def of(cls, bank: dict[str, Any]) -> Source:
        return cls(
            captions=Captions(),
            alphas=sm.alphas_cumprod(),
            latents=bank["latents"],
            specs=[ds.ShapeSpec(**s) for s in bank["specs"]],
        )


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


def epsilon_loss(plan: Plan, pred: Any, noise: Any, snr: Any, composition: bool = False) -> Any:
    """Min-SNR-weighted epsilon loss; with ``composition``, noisy steps weighted towards their x0 error.

    Epsilon's loss at a timestep is SNR times the picture's error, so at high noise, where the
    layout is decided, the picture barely counts unless weighted by 1/SNR (capped).
    """
    import torch

    weight = torch.clamp(snr, max=plan.min_snr_gamma) / snr
    if composition:
        weight = weight * torch.clamp(1.0 / snr, min=1.0, max=plan.composition_weight_cap)
    return (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()


def ema_update(ema: Any, model: Any, decay: float) -> None:
    import torch

    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


# -- 3. UNet + text encoder ----------------------------------------------------------------------
def choose_caption(plan: Plan, spec: ds.ShapeSpec, rng: np.random.Generator) -> str:
    r = rng.random()
    if r < plan.empty_caption:
        return ""
    if r < plan.empty_caption + plan.partial_caption:
        return ds.partial_caption(spec, rng)
    return spec.caption()


def unet_batch(plan: Plan, source: Source, step: int) -> tuple[Any, Any, Any, Any, Any]:
    """Step ``step``'s (caption ids, noisy latents, timesteps, noise, SNR)."""
    import torch

    rng = batch_rng(plan, "unet", step)
    index = rng.integers(0, len(source.specs), plan.unet_batch)
    ids = source.captions.batch([choose_caption(plan, source.specs[i], rng) for i in index])
    share = plan.composition_share if step >= plan.composition_from_step else 0.0
    x_t, t, noise, snr = noisy(
        source.latents[torch.from_numpy(index)], torch_generator(plan, "unet", step), source.alphas, share
    )
    return ids, x_t, t, noise, snr


def train_unet(plan: Plan, work: Path, bank: dict[str, Any], budget: Budget) -> tuple[Any, Any]:
    import torch

    loop = StageRun(plan, work, budget, "unet", plan.unet_steps)
    state = load_state(loop.path)
    torch.manual_seed(plan.seed + 1)
    unet, text = sm.make_unet(), sm.make_text_encoder()
    if state and state.get("done"):
        unet.load_state_dict(state["ema_unet"])
        text.load_state_dict(state["ema_text"])
        return unet.eval(), text.eval()
    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    params = list(unet.parameters()) + list(text.parameters())
    groups: Any = params  # one group unless the text encoder has its own rate (old checkpoints resume)
    if plan.text_lr is not None:
        groups = [{"params": list(unet.parameters())}]
        groups.append({"params": list(text.parameters()), "scale": plan.text_lr / plan.unet_lr})
    optimizer = torch.optim.AdamW(groups, lr=plan.unet_lr, weight_decay=0.0)
    loop.resume(state, {"unet": unet, "text": text, "ema_unet": ema_unet, "ema_text": ema_text}, optimizer)
    source = Source.of(bank)
    unet.train()
    text.train()
    losses: list[float] = []
    for step in loop.steps():
        ids, x_t, t, noise, snr = unet_batch(plan, source, step)
        set_lr(optimizer, cosine_lr(plan.unet_lr, step, plan.unet_steps, plan.unet_warmup))
        context = text(input_ids=ids).last_hidden_state
        pred = unet(x_t, t, encoder_hidden_states=context).sample
        loss = epsilon_loss(plan, pred, noise, snr, composition=step >= plan.composition_from_step)
        optimise(optimizer, loss, params)
        decay = min(plan.ema_decay, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, decay)
        ema_update(ema_text, text, decay)
        losses.append(float(loss.detach()))
        if loop.due(step, 25):
            loop.progress(step, loss=sum(losses) / len(losses))
            losses = []
        loop.checkpoint_or_pause(step)
    loop.finish()
    save_atomic(
        {"ema_unet": ema_unet.state_dict(), "ema_text": ema_text.state_dict(), "step": plan.unet_steps, "done": True},
        loop.path,
    )
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
        return f"a {spec.size} {spec.colour} {spec.shape}, {spec.background} background"
    if r < 0.6:
        others = [p for p in ds.POSITIONS if p != spec.position]
        return ds.ShapeSpec(spec.shape, spec.colour, spec.size, str(rng.choice(others)), spec.background).caption()
    return spec.caption()


def controlnet_batch(plan: Plan, source: Source, step: int) -> tuple[list[ds.ShapeSpec], Any, Any, Any, Any, Any]:
    """Step ``step``'s (specs, caption ids, noisy latents, timesteps, noise, SNR)."""
    import torch

    rng = batch_rng(plan, "controlnet", step)
    index = rng.integers(0, len(source.specs), plan.cn_batch)
    chosen = [source.specs[i] for i in index]
    ids = source.captions.batch([controlnet_caption(plan, s, rng) for s in chosen])
    x_t, t, noise, snr = noisy(
        source.latents[torch.from_numpy(index)], torch_generator(plan, "controlnet", step), source.alphas
    )
    return chosen, ids, x_t, t, noise, snr


def train_controlnet(plan: Plan, work: Path, bank: dict[str, Any], unet: Any, text: Any, budget: Budget) -> Any:
    import torch

    loop = StageRun(plan, work, budget, "controlnet", plan.cn_steps)
    state = load_state(loop.path)
    torch.manual_seed(plan.seed + 2)
    controlnet = sm.make_controlnet(unet)
    if state and state.get("done"):
        controlnet.load_state_dict(state["ema"])
        return controlnet.eval()
    ema = copy.deepcopy(controlnet)
    optimizer = torch.optim.AdamW(controlnet.parameters(), lr=plan.cn_lr, weight_decay=0.0)
    loop.resume(state, {"model": controlnet, "ema": ema}, optimizer)
    for module in (unet, text):
        module.eval().requires_grad_(False)
    source = Source.of(bank)
    controlnet.train()
    losses: list[float] = []
    for step in loop.steps():
        chosen, ids, x_t, t, noise, snr = controlnet_batch(plan, source, step)
        set_lr(optimizer, cosine_lr(plan.cn_lr, step, plan.cn_steps, warmup=20))
        with torch.no_grad():
            context = text(input_ids=ids).last_hidden_state
        down, mid = controlnet(
            x_t, t, encoder_hidden_states=context, controlnet_cond=mask_hint(chosen), return_dict=False
        )
        pred = unet(
            x_t,
            t,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        loss = epsilon_loss(plan, pred, noise, snr)
        optimise(optimizer, loss, controlnet.parameters())
        ema_update(ema, controlnet, min(0.995, (1 + step) / (10 + step)))
        losses.append(float(loss.detach()))
        if loop.due(step, 25):
            loop.progress(step, loss=sum(losses) / len(losses))
            losses = []
        loop.checkpoint_or_pause(step)
    loop.finish()
    save_atomic({"ema": ema.state_dict(), "step": plan.cn_steps, "done": True}, loop.path)
    return ema.eval()
