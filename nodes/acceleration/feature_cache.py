"""What DeepCache and Faster Diffusion share: a UNet call wrapper that caches features per run.

Both techniques alternate *full* UNet calls, which refresh a cache of features, with cheaper
*cached* calls that reuse them. :class:`FeatureCacheWrapper` holds everything around that
choice, so each technique only says what a full and a cached call compute:

* **Which calls may use the cache.** Only calls whose noise level lies in the node's
  ``start_percent`` .. ``end_percent`` window (converted to sigmas as the ControlNet apply nodes
  do, :func:`~nodes.diffusion.control.percent_to_sigma`); outside it the ordinary UNet runs
  (through the rest of the wrapper chain) and the interval count restarts, so the first call
  back inside the window is a full one.
* **Cache slots.** A sampling run may evaluate the UNet on several different batches per step:
  the stacked uncond/cond batch, or (with area or mask conditioning) each entry on its own
  region, or (PAG) the same batch again under a perturbed clone of the MODEL. A cached feature
  must only be reused by the batch that produced it, so every slot is keyed by the MODEL
  object that made the call, the input's shape, device and dtype *and* by the call's text
  embedding, pooled embedding and SDXL size ids (compared by value). A call that matches no
  slot gets a fresh one, whose first call is full. Each slot counts its own calls: with ``interval`` N, calls
  0, N, 2N... of a slot inside the window are full. (Two entries with the same prompt on
  same-sized areas are indistinguishable and share a slot.)
* **Per-run state.** The run protocol of :mod:`nodes.diffusion.sampling`: ``begin_run(sigmas)``
  empties the cache and the counters before a sampling run, ``report()`` returns what happened
  and frees the cached tensors. Without ``begin_run`` (a caller that drives the model itself)
  a slot restarts when a call's noise level is above the previous call's: a new run began.
* **Calls a partial pass cannot reproduce** (see
  :func:`~.unet_forward.unsupported_reason`) run the ordinary UNet and are counted in the report.

Wrappers added to the MODEL *after* this one (inner wrappers: FreeU, HyperTile... applied
later in the graph) keep working: inside the window this wrapper runs them itself, with its
own partial pass in place of the UNet at the end of their chain, so their hooks act on the
layers the pass runs. (An inner wrapper that calls the UNet more than once per call gets the
cache on its first call only.) Weight patches (LoRA) are unaffected: they change the weights.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from nodes.diffusion.types import UNetCall

    from .unet_forward import UNetPass

log = logging.getLogger("weft.acceleration")

#: Slots kept at most (a run with many area conditionings); the least recently used goes first.
MAX_SLOTS = 16
#: A call above the slot's previous noise level by more than this factor starts a new run.
_RESTART_FACTOR = 1.0 + 1e-4


def _same(a: Any, b: Any) -> bool:
    """Whether two optional tensors hold the same values (identity first: the guider builds its
    conditioning tensors once per run, so this is usually a pointer comparison)."""
    import torch

    if a is b:
        return True
    if a is None or b is None or not (torch.is_tensor(a) and torch.is_tensor(b)):
        return False
    return a.shape == b.shape and a.device == b.device and a.dtype == b.dtype and bool(torch.equal(a, b))


def _bind(wrapper: Any, inner: Callable[[UNetCall], Any]) -> Callable[[UNetCall], Any]:
    return lambda call: wrapper(inner, call)


def window_check(start_percent: Any, end_percent: Any) -> bool | str:
    """The nodes' ``validate``: an empty window is a mistake worth reporting before anything runs."""
    if (
        isinstance(start_percent, (int, float))
        and isinstance(end_percent, (int, float))
        and start_percent > end_percent
    ):
        return (
            f"start_percent ({start_percent}) is after end_percent ({end_percent}): "
            "the window would be empty; make start_percent <= end_percent"
        )
    return True


@dataclass
class CacheSlot:
    """The cache of one batch (see the module docstring); ``features`` is the technique's."""

    model: Any
    shape: tuple[int, ...]
    device: Any
    dtype: Any
    cond: Any
    pooled: Any
    time_ids: Any
    calls_in_window: int = 0
    last_sigma: float = float("inf")
    features: Any = None

    def matches(self, call: UNetCall) -> bool:
        x = call.x
        return (
            call.model is self.model
            and tuple(x.shape) == self.shape
            and x.device == self.device
            and x.dtype == self.dtype
            and _same(call.cond, self.cond)
            and _same(call.pooled, self.pooled)
            and _same(call.added_time_ids, self.time_ids)
        )

    def restart(self) -> None:
        self.calls_in_window = 0
        self.features = None


@dataclass
class CacheStats:
    """What :meth:`FeatureCacheWrapper.report` counts over one run."""

    unet_calls: int = 0
    full_calls: int = 0
    cached_calls: int = 0
    unsupported_calls: int = 0
    unsupported: list[str] = field(default_factory=list)


class FeatureCacheWrapper(ABC):
    """Base of the acceleration wrappers: a callable ``wrapper(apply, call)`` (a
    :data:`~nodes.diffusion.types.UNetWrapper`) with the run protocol.

    Subclasses set :attr:`name` and :attr:`cached_label` and implement :meth:`full_pass` (run the
    whole UNet, return its output and the features to cache) and :meth:`cached_pass`.
    """

    name: ClassVar[str] = "FeatureCache"
    #: the report's key for the calls served from the cache
    cached_label: ClassVar[str] = "cached_calls"

    def __init__(self, interval: int, start_percent: float = 0.0, end_percent: float = 1.0) -> None:
        if interval < 1:
            raise ValueError("the interval must be at least 1")
        if not 0.0 <= start_percent <= end_percent <= 1.0:
            raise ValueError("start_percent and end_percent must satisfy 0 <= start <= end <= 1")
        self.interval = int(interval)
        self.start_percent = float(start_percent)
        self.end_percent = float(end_percent)
        self._slots: list[CacheSlot] = []
        self._stats = CacheStats()
        # (id of the scheduler config, its ModelSigmas, the window's high and low sigma)
        self._window: tuple[int, Any, float, float] | None = None

    # -- the run protocol ------------------------------------------------------------------------
    def begin_run(self, sigmas: Any = None) -> None:
        """Forget the previous run: cached features, counters, statistics."""
        self._slots.clear()
        self._stats = CacheStats()
        self._window = None

    def report(self) -> dict[str, Any]:
        """The run's figures (for the sampler node's UI and the log); frees the cached tensors
        (they can be large on GPU and are useless once the run is over). Calling it again
        returns the same figures."""
        for slot in self._slots:
            slot.features = None
        stats = self._stats
        out: dict[str, Any] = {
            "name": self.name,
            "unet_calls": stats.unet_calls,
            "full_calls": stats.full_calls,
            self.cached_label: stats.cached_calls,
        }
        if stats.unsupported_calls:
            out["unsupported_calls"] = stats.unsupported_calls
            out["unsupported"] = "; ".join(stats.unsupported)
        return out

    # -- the wrapper -----------------------------------------------------------------------------
    def __call__(self, apply: Callable[[UNetCall], Any], call: UNetCall) -> Any:
        stats = self._stats
        stats.unet_calls += 1
        model = call.model
        if model is None:
            stats.full_calls += 1
            return apply(call)
        sigma = self._sigma(call)
        slot = self._slot(call, sigma)
        if not self._in_window(model, sigma):
            slot.restart()
            stats.full_calls += 1
            return apply(call)
        from .unet_forward import unsupported_reason

        unet = model.prepare()
        reason = unsupported_reason(unet, call.x, call.kwargs)
        if reason is not None:
            self._note_unsupported(reason, slot)
            return apply(call)
        full = slot.features is None or slot.calls_in_window % self.interval == 0
        slot.calls_in_window += 1
        inner = self._inner_wrappers(model)
        if not inner:
            return self._accelerated(unet, call, slot, full)

        # Wrappers applied after this one still run: this pass is the "UNet" at the end of their
        # chain, so hook-style patches (FreeU, HyperTile...) act on the layers it runs.
        pending = [True]

        def terminal(inner_call: UNetCall) -> Any:
            if not pending:  # an inner wrapper calling the UNet twice: extra calls stay uncached
                return self._plain_unet(unet, inner_call)
            pending.clear()
            if tuple(inner_call.x.shape) != slot.shape:  # an inner wrapper changed the batch
                self._stats.full_calls += 1
                slot.restart()
                return self._plain_unet(unet, inner_call)
            why = unsupported_reason(unet, inner_call.x, inner_call.kwargs)
            if why is not None:
                self._note_unsupported(why, slot)
                return self._plain_unet(unet, inner_call)
            return self._accelerated(unet, inner_call, slot, full)

        chain: Callable[[UNetCall], Any] = terminal
        for wrapper in reversed(inner):
            chain = _bind(wrapper, chain)
        return chain(call)

    def _accelerated(self, unet: Any, call: UNetCall, slot: CacheSlot, full: bool) -> Any:
        from .unet_forward import UNetPass

        unet_pass = UNetPass.from_call(unet, call)
        if full:
            self._stats.full_calls += 1
            out, slot.features = self.full_pass(unet_pass)
            return out
        self._stats.cached_calls += 1
        return self.cached_pass(unet_pass, slot.features)

    def _note_unsupported(self, reason: str, slot: CacheSlot) -> None:
        stats = self._stats
        stats.full_calls += 1
        stats.unsupported_calls += 1
        if reason not in stats.unsupported:
            stats.unsupported.append(reason)
            log.info("%s: running the full UNet: %s", self.name, reason)
        slot.restart()

    @staticmethod
    def _plain_unet(unet: Any, call: UNetCall) -> Any:
        """What the innermost ``apply`` does (the inputs' extra channels aside: calls with those
        never get here)."""
        return unet(call.x, call.timestep, encoder_hidden_states=call.cond, return_dict=False, **call.kwargs)[0]

    def _inner_wrappers(self, model: Any) -> list[Any]:
        """The MODEL's wrappers after this one (inner ones), in order; none if it is not listed."""
        wrappers = list(getattr(model, "wrappers", ()))
        position = next((i for i, w in enumerate(wrappers) if w is self), None)
        return [] if position is None else wrappers[position + 1 :]

    @abstractmethod
    def full_pass(self, unet_pass: UNetPass) -> tuple[torch.Tensor, Any]:
        """Run the whole UNet; return its output and the features to cache."""

    @abstractmethod
    def cached_pass(self, unet_pass: UNetPass, features: Any) -> torch.Tensor:
        """Run the UNet's cheap part with ``features`` from the slot's last full call."""

    # -- helpers ---------------------------------------------------------------------------------
    def _schedule(self, model: Any) -> tuple[int, Any, float, float]:
        """The model's training sigmas and the window in sigmas, computed once per run."""
        from nodes.diffusion.control import percent_to_sigma
        from nodes.diffusion.samplers import model_sigmas

        config = model.scheduler_config
        if self._window is None or self._window[0] != id(config):
            self._window = (
                id(config),
                model_sigmas(config),
                percent_to_sigma(self.start_percent, config),
                percent_to_sigma(self.end_percent, config),
            )
        return self._window

    def _sigma(self, call: UNetCall) -> float:
        """The call's noise level (its first timestep, like ComfyUI's ControlNet windows): the
        training sigma of the whole timestep the UNet gets, within half a training step of the
        sampler's exact one."""
        import torch

        t = call.timestep.flatten()[0] if torch.is_tensor(call.timestep) else torch.tensor(float(call.timestep))
        sigmas = self._schedule(call.model)[1]
        return float(sigmas.t_to_sigma(t.detach().float().cpu()))

    def _in_window(self, model: Any, sigma: float) -> bool:
        _, _, high, low = self._schedule(model)
        return low <= sigma <= high

    def _slot(self, call: UNetCall, sigma: float) -> CacheSlot:
        for index, slot in enumerate(self._slots):
            if slot.matches(call):
                if index:
                    self._slots.insert(0, self._slots.pop(index))
                if sigma > slot.last_sigma * _RESTART_FACTOR:
                    slot.restart()  # a new run without begin_run: the noise level went back up
                slot.last_sigma = sigma
                return slot
        x = call.x
        slot = CacheSlot(
            call.model, tuple(x.shape), x.device, x.dtype, call.cond, call.pooled, call.added_time_ids, last_sigma=sigma
        )
        self._slots.insert(0, slot)
        del self._slots[MAX_SLOTS:]
        return slot

    def __repr__(self) -> str:
        return f"<{self.name} interval={self.interval} window={self.start_percent:g}..{self.end_percent:g}>"

    def __weft_cache_size__(self) -> int:
        return 1024  # the cached tensors live only during a run (report() frees them)


__all__ = ["CacheSlot", "CacheStats", "FeatureCacheWrapper", "MAX_SLOTS", "window_check"]
