"""Which worker of a pool runs which prompt: model files as the server and the workers see them,
and the placement rule.

Loading a checkpoint costs seconds (tens on a slow disk); sampling one picture costs about as
much. A pool that sends prompts to whichever worker is free makes every worker load every
model it is ever asked for, and evict it again. So the server identifies the model files a
prompt names, the workers report the files their model managers hold, and :func:`choose`
prefers a free worker that holds the prompt's files.

Files are identified by a *fingerprint*: the resolved path with the size and modification time
(``path|size|mtime_ns``), or the path alone for a folder (a diffusers model). It is what the
model manager keys its weights on (:func:`nodes.diffusion.model_files.file_key`), so a changed
file is a different model on both sides. Pure Python, no torch: the server computes it, the
benchmark's simulation (``bench/affinity_sim.py``) runs :func:`choose` itself.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: input names that name a model file in ComfyUI-style nodes (a pack's classes declare no
#: ``model_folder``): the folder each is looked up in
KNOWN_MODEL_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "unet_name": "diffusion_models",
    "vae_name": "vae",
    "lora_name": "loras",
    "control_net_name": "controlnet",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
}


def fingerprint(path: str, mtime_ns: int | None = None, size: int | None = None) -> str:
    """The identity of a model file (``path|size|mtime_ns``) or folder (its path)."""
    if mtime_ns is None or size is None:
        return path
    return f"{path}|{size}|{mtime_ns}"


def file_fingerprint(path: os.PathLike[str] | str) -> str | None:
    """:func:`fingerprint` of a file on this machine; ``None`` when it cannot be read."""
    try:
        resolved = os.path.realpath(path)
        st = os.stat(resolved)
    except OSError:
        return None
    if os.path.isdir(resolved):
        return fingerprint(resolved)
    return fingerprint(resolved, st.st_mtime_ns, st.st_size)


def key_fingerprint(key: Hashable) -> str | None:
    """The file behind a model manager key such as ``("unet", path, mtime_ns, size)`` or
    ``("diffusers-unet", folder, newest_mtime)``; ``None`` for keys without one (tokenizers)."""
    if not isinstance(key, tuple):
        return None
    for i, part in enumerate(key):
        if isinstance(part, str) and os.path.isabs(part):
            rest = key[i + 1 : i + 3]
            if len(rest) == 2 and all(type(x) is int for x in rest):
                return fingerprint(part, rest[0], rest[1])
            return fingerprint(part)
    return None


class ModelInputs:
    """Which inputs of which node classes name model files, read once per class from the
    registry (Weft's ``ModelFile`` inputs carry ``model_folder``) or by ComfyUI's input names."""

    def __init__(self, registry: Mapping[str, Any]) -> None:
        self.registry = registry
        self._by_class: dict[str, tuple[tuple[str, str], ...]] = {}

    def of(self, class_type: str) -> tuple[tuple[str, str], ...]:
        found = self._by_class.get(class_type)
        if found is None:
            found = self._by_class[class_type] = self._read(class_type)
        return found

    def _read(self, class_type: str) -> tuple[tuple[str, str], ...]:
        definition = self.registry.get(class_type)
        # the declared specs, not ``definition.schema``: that one rescans model folders
        specs = getattr(getattr(definition, "cls", None), "inputs", None) or ()
        declared = tuple(
            (spec.name, spec.options["model_folder"])
            for spec in specs
            if isinstance(getattr(spec, "options", None), Mapping) and spec.options.get("model_folder")
        )
        return declared or tuple(KNOWN_MODEL_INPUTS.items())


def prompt_models(prompt: Mapping[str, Any], inputs: ModelInputs, paths: Any) -> frozenset[str]:
    """The fingerprints of the model files ``prompt`` names (constant inputs only), resolved
    with ``paths`` (:class:`nodes.paths.Paths`); names that resolve to nothing are left out."""
    found: set[str] = set()
    for node in prompt.values():
        if not isinstance(node, Mapping):
            continue
        values = node.get("inputs")
        if not isinstance(values, Mapping):
            continue
        for name, folder in inputs.of(str(node.get("class_type"))):
            value = values.get(name)
            if not isinstance(value, str) or not value:
                continue
            try:
                path = paths.model_path(folder, value)
            except (OSError, ValueError, KeyError):
                continue
            printed = file_fingerprint(path)
            if printed is not None:
                found.add(printed)
    return frozenset(found)


@dataclass
class WorkerView:
    """What the placement rule needs of one worker."""

    free: bool
    #: fingerprints of the files it holds, or is loading for the prompt it was just given
    models: frozenset[str] = frozenset()
    #: when it last became free (``time.monotonic``): among equals, the one idle longest goes first
    idle_since: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _least_loaded(free: Iterable[tuple[int, WorkerView]]) -> int:
    """The free worker that holds the fewest models (loading there evicts the least), idle
    longest among those."""
    return min(free, key=lambda pair: (len(pair[1].models), pair[1].idle_since, pair[0]))[0]


def choose(
    pending: Sequence[frozenset[str]], workers: Sequence[WorkerView], patience: int = 1
) -> tuple[int, int, str] | None:
    """The next placement: ``(index in pending, index in workers, why)`` or ``None`` (wait).

    ``pending`` is the queue's head in order, each prompt as the fingerprints of its model files.
    Each prompt in turn goes to a free worker that holds one of its files (the most of them), or,
    when none does, waits for a busy worker that holds them, but only while fewer than
    ``patience`` prompts per such worker already wait for that model: past that the model is in
    demand enough to load it on a second worker. Otherwise it goes to the least loaded free worker.
    ``why`` is ``"affinity"``, ``"least_loaded"`` or ``"no_model"``. ``patience=0``: never wait.
    """
    free = [(i, w) for i, w in enumerate(workers) if w.free]
    if not free:
        return None
    waiting: Counter[frozenset[str]] = Counter()
    for index, models in enumerate(pending):
        if not models:
            return index, _least_loaded(free), "no_model"
        holders = [(i, w, len(models & w.models)) for i, w in free if models & w.models]
        if holders:
            best = max(holders, key=lambda h: (h[2], -len(h[1].models), -h[1].idle_since, -h[0]))
            return index, best[0], "affinity"
        busy_holders = sum(1 for w in workers if not w.free and models & w.models)
        if busy_holders and waiting[models] < patience * busy_holders:
            waiting[models] += 1
            continue
        return index, _least_loaded(free), "least_loaded"
    return None
