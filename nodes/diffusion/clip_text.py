"""Prompt text -> CLIP embeddings, with ComfyUI's weighting syntax and long-prompt chunking.

Syntax and results are ComfyUI's (``comfy/sd1_clip.py``), so a prompt gives the same tokens,
weights and chunks there and here:

* ``(words)`` multiplies the weight around it by 1.1; nesting multiplies again.
* ``(words:1.3)`` sets the weight to 1.3 (the number after the group's last colon, read by
  Python's ``float``); it replaces the weight around it, so ``((cat:1.3))`` is 1.3, not 1.43.
* ``[words]`` is literal text (A1111's /1.1 is not ComfyUI's syntax), and so are an unclosed
  ``(`` and an unmatched ``)`` (after which brackets stay literal until the depth balances).
* ``\\(`` and ``\\)`` are literal brackets; other backslashes are ordinary characters.
* ``embedding:name`` (after a space, a newline or at a segment's start) inserts a
  textual-inversion embedding from ``models/embeddings`` (``name``, ``name.safetensors``...;
  A1111's ``emb_params`` or SDXL's ``clip_l``/``clip_g``); a missing one is logged and
  skipped, as ComfyUI does.

Weights are applied ComfyUI's way: each weighted token's embedding is pushed away from (or
towards) the embedding of an empty prompt at the same position,
``z = (z - empty) * weight + empty``; tokens at weight 1 are left bit-for-bit alone.
Prompts longer than 75 tokens are split into chunks of 75 the way ComfyUI's tokenizer
batches them (see :func:`tokenize_weighted`), each encoded with its own start/end tokens and
concatenated along the token axis, so the conditioning is ``[1, 77*k, dim]``.

The BPE vocabulary is CLIP's (49,408 tokens), built from ``configs/clip_bpe_merges.txt.gz``.
"""

from __future__ import annotations

import gzip
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .types import ClipPart, TextEncoder

log = logging.getLogger("weft.clip")
CONFIGS = Path(__file__).resolve().parent / "configs"
MERGES_FILE = CONFIGS / "clip_bpe_merges.txt.gz"
BOS, EOS = 49406, 49407
CHUNK = 75
CONTEXT = CHUNK + 2


# -- vocabulary ------------------------------------------------------------------------------
def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for raw bytes, in vocabulary order.

    Printable Latin-1 bytes stand for themselves; the others (controls, space, ...) get code
    points from 256 up, so every byte has a visible, whitespace-free symbol.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), ord("\xff") + 1)]
    order = list(keep)
    symbols = [chr(b) for b in keep]
    extra = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


@lru_cache(maxsize=1)
def clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary (token -> id) and merges, derived from the shipped merges file."""
    lines = gzip.decompress(MERGES_FILE.read_bytes()).decode("utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line]
    symbols = byte_alphabet()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != 49408:
        raise RuntimeError(
            f"{MERGES_FILE} yields {len(vocab)} tokens instead of 49408; regenerate it "
            "with python -m weft_tools.clip_vocab"
        )
    return vocab, merges  # type: ignore[return-value]


@lru_cache(maxsize=4)
def make_tokenizer(pad_token: str = "<|endoftext|>") -> Any:
    """A transformers ``CLIPTokenizer`` with the real vocabulary, built offline.

    transformers 5 ignores ``vocab_file``/``merges_file`` keyword arguments (it silently
    builds a 3-token vocabulary), hence the in-memory ``vocab=``/``merges=``. Cached: the
    tokenizer is immutable and takes a second to build.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=CONTEXT)


# -- weighting syntax --------------------------------------------------------------------------
#: ComfyUI's stand-ins for ``\)`` and ``\(`` while brackets are parsed; put back afterwards.
_ESCAPED_CLOSE, _ESCAPED_OPEN = "\0\1", "\0\2"
#: What a ``(group)`` without an explicit weight multiplies the weight around it by.
GROUP_FACTOR = 1.1


def _escape(text: str) -> str:
    """Hide ``\\)`` and ``\\(`` from the bracket parser (ComfyUI escapes only these two)."""
    return text.replace("\\)", _ESCAPED_CLOSE).replace("\\(", _ESCAPED_OPEN)


def _unescape(text: str) -> str:
    return text.replace(_ESCAPED_CLOSE, ")").replace(_ESCAPED_OPEN, "(")


def _top_level(text: str) -> list[str]:
    """Split ``text`` into literal runs and top-level ``( ... )`` groups, as ComfyUI does.

    A ``(`` opens a group only at depth 0; a ``)`` at depth 0 is literal but still counts
    (depth goes negative), so brackets after an unmatched ``)`` stay literal until the
    depths balance again. Unclosed groups end up as literal runs.
    """
    pieces: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and current:
                pieces.append(current)
                current = ""
            depth += 1
            current += char
        elif char == ")":
            depth -= 1
            current += char
            if depth == 0:
                pieces.append(current)
                current = ""
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces


def _weighted(text: str, weight: float) -> list[tuple[str, float]]:
    """ComfyUI's weighting of one level: a group is re-parsed at ``weight * 1.1``, or at the
    number after its last colon, which *replaces* the weight around it (no multiplication)."""
    out: list[tuple[str, float]] = []
    for piece in _top_level(text):
        if len(piece) < 2 or piece[0] != "(" or piece[-1] != ")":
            out.append((piece, weight))
            continue
        inner = piece[1:-1]
        inner_weight = weight * GROUP_FACTOR
        colon = inner.rfind(":")
        if colon > 0:
            try:
                inner_weight = float(inner[colon + 1 :])  # Python's float(): " 1.3 ", "1e-1", "inf"...
                inner = inner[:colon]
            except ValueError:
                pass  # "(a:b)" is the text "a:b" at 1.1
        out.extend(_weighted(inner, inner_weight))
    return out


def parse_weights(text: str) -> list[tuple[str, float]]:
    """Split a prompt into ``(text, weight)`` segments exactly as ComfyUI does.

    Segments are not merged even when neighbours share a weight: ComfyUI tokenizes and
    batches each segment on its own, so merging would move chunk boundaries.

    >>> parse_weights("a (red:1.5) [cat]")
    [('a ', 1.0), ('red', 1.5), (' [cat]', 1.0)]
    """
    return [(_unescape(segment), weight) for segment, weight in _weighted(_escape(text), 1.0) if segment]


# -- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    """77 token ids (start, up to 75 prompt tokens, end, padding) and their weights.

    ``vectors`` are textual-inversion embeddings: ``(position, vector)`` pairs whose vector
    replaces the token embedding at that position (the id there is a placeholder).
    """

    ids: tuple[int, ...]
    weights: tuple[float, ...]
    vectors: tuple[tuple[int, Any], ...] = ()


EMBEDDING_PREFIX = "embedding:"
EmbeddingLookup = Callable[[str], "torch.Tensor | None"]
_PLACEHOLDER = 0  # "!": an ordinary token, so the end-token search for pooling is unaffected


def _find_embedding(name: str, lookup: EmbeddingLookup) -> tuple[Any, str]:
    """``name`` (trailing punctuation allowed) -> (vectors or ``None``, the punctuation left over)."""
    stripped = name.rstrip(",.;:!?)]")
    for candidate, leftover in ((name, ""), (stripped, name[len(stripped) :])):
        if candidate:
            vectors = lookup(candidate)
            if vectors is not None:
                return vectors, leftover
    log.warning("embedding %r not found in models/embeddings (or not for this text encoder); ignoring it", name)
    return None, name[len(stripped) :]


#: Where ComfyUI cuts a segment so that ``embedding:`` starts a piece: after a space or newline.
_EMBEDDING_SPLIT = re.compile(r" embedding:|\nembedding:")
#: Groups of at least this many tokens may be cut at a chunk boundary; shorter ones move whole
#: to the next chunk (ComfyUI's ``max_word_length``).
LONG_GROUP = 8

# one item to tokenize: text, or an embedding's [n, dim] vectors, with its weight
_Item = tuple[Any, float]


def _items(text: str, embeddings: EmbeddingLookup | None) -> list[_Item]:
    """The weighted segments of a prompt, cut around ``embedding:name`` as ComfyUI cuts them.

    Each item becomes one token group for chunking, so the cuts matter: a segment is one
    group, an embedding is one group, and the text after an embedding's name is another.
    """
    items: list[_Item] = []
    for segment, weight in parse_weights(text):
        first, *rest = _EMBEDDING_SPLIT.split(segment)
        pieces = [first, *(EMBEDDING_PREFIX + piece for piece in rest)]
        for piece in pieces:
            if not piece:
                continue
            if embeddings is None or not piece.startswith(EMBEDDING_PREFIX):
                items.append((piece, weight))
                continue
            words = piece[len(EMBEDDING_PREFIX) :].strip("\n").split()
            if not words:
                log.warning("'embedding:' without a name; ignoring it")
                continue
            vectors, punctuation = _find_embedding(words[0], embeddings)
            if vectors is not None:
                items.append((vectors, weight))
            leftover = " ".join(words[1:])
            if punctuation:
                leftover = f"{punctuation} {leftover}"
            if leftover:
                items.append((leftover, weight))
    return items


def tokenize_weighted(tokenizer: Any, text: str, pad_id: int, embeddings: EmbeddingLookup | None = None) -> list[Chunk]:
    """Prompt -> chunks of 77 weighted tokens (at least one chunk, even for ""), as ComfyUI's
    ``SDTokenizer.tokenize_with_weights`` makes them.

    Each weighted segment (and each embedding) is a token group. Groups fill chunks of 75 in
    order; a group that does not fit moves whole to the next chunk when it is shorter than
    8 tokens, and is cut exactly at the boundary otherwise, so long plain prompts split at
    token 75 even inside a word. ``embeddings`` resolves ``embedding:name`` to ``[n, dim]``
    vectors for this encoder.
    """
    items = _items(text, embeddings)
    texts = [item for item, _ in items if isinstance(item, str)]
    encoded = iter(tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else [])
    chunks: list[list[tuple[int, float, Any]]] = [[]]  # a token is (id, weight, vector or None)
    for item, weight in items:
        if isinstance(item, str):
            group = [(t, weight, None) for t in next(encoded)]
        else:
            group = [(_PLACEHOLDER, weight, row) for row in item]
        may_cut = len(group) >= LONG_GROUP
        while group:
            room = CHUNK - len(chunks[-1])
            if len(group) <= room:
                chunks[-1].extend(group)
                break
            if may_cut:
                chunks[-1].extend(group[:room])
                group = group[room:]
            chunks.append([])
    result = []
    for body in chunks:
        ids = [BOS] + [t for t, _, _ in body] + [EOS]
        weights = [1.0] + [w for _, w, _ in body] + [1.0]
        vectors = tuple((i + 1, v) for i, (_, _, v) in enumerate(body) if v is not None)
        ids += [pad_id] * (CONTEXT - len(ids))
        weights += [1.0] * (CONTEXT - len(weights))
        result.append(Chunk(tuple(ids), tuple(weights), vectors))
    return result


def _pad_id(part: ClipPart) -> int:
    return 0 if part.pad_token == "!" else EOS


# -- encoding -----------------------------------------------------------------------------------
def _hidden(part: ClipPart, model: Any, ids: torch.Tensor, clip_skip: int | None) -> tuple[torch.Tensor, Any]:
    """Run one encoder; return the selected hidden layer and the pooled output."""
    out = model(input_ids=ids, output_hidden_states=True, return_dict=True)
    hidden_states = out.hidden_states
    layers = len(hidden_states) - 1
    layer = clip_skip if clip_skip is not None else part.default_layer
    index = min(layer + part.layer_offset, -1)
    index = max(index, -layers)
    z = hidden_states[index]
    text_model = getattr(model, "text_model", model)
    if part.final_norm_on_hidden:
        z = text_model.final_layer_norm(z)
    if part.pooled == "projection":
        pooled = out.text_embeds
    elif part.pooled == "pooler":
        pooled = out.pooler_output
    else:
        pooled = None
    return z, pooled


def encode_part(
    part: ClipPart, chunks: list[Chunk], clip_skip: int | None, patches: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode the chunks with one text encoder; ``[1, 77*k, dim]`` and the first chunk's pooled.

    Looked up first in the process's text-encoding cache (:mod:`.text_cache`), which outlives
    prompts and graphs; a hit neither loads nor runs the encoder.
    """
    from .text_cache import encoding_key, get_cache

    key = encoding_key(part, chunks, clip_skip, patches)
    cached = get_cache().get(key) if key is not None else None
    if cached is not None:
        return cached
    cond, pooled = _run_encoder(part, chunks, clip_skip, patches)
    if key is not None:
        get_cache().put(key, cond, pooled)
    return cond, pooled


def _run_encoder(
    part: ClipPart, chunks: list[Chunk], clip_skip: int | None, patches: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    import torch

    model = part.handle.on_device()
    part.handle.apply_patches(patches)
    device = part.handle.device
    ids = torch.tensor([c.ids for c in chunks], device=device)
    weights = torch.tensor([c.weights for c in chunks], dtype=torch.float32)
    weighted = bool((weights != 1.0).any())
    if weighted:
        empty = tokenize_weighted_empty(_pad_id(part))
        ids = torch.cat([ids, torch.tensor([empty], device=device)])
    replacements = [(row, pos, vec) for row, chunk in enumerate(chunks) for pos, vec in chunk.vectors]
    hook = None
    if replacements:
        text_model = getattr(model, "text_model", model)

        def put_vectors(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            for row, pos, vec in replacements:
                output[row, pos] = vec.to(device=output.device, dtype=output.dtype)
            return output

        hook = text_model.embeddings.token_embedding.register_forward_hook(put_vectors)
    try:
        with torch.no_grad():
            z, pooled = _hidden(part, model, ids, clip_skip)
    finally:
        if hook is not None:
            hook.remove()
    z = z.float().cpu()
    if weighted:
        base = z[-1:]
        z = z[:-1]
        w = weights.unsqueeze(-1)
        # only weighted tokens change, as in ComfyUI: (z - e) * 1 + e can differ from z by an ulp
        z = torch.where(w != 1.0, (z - base) * w + base, z)
    cond = z.reshape(1, -1, z.shape[-1])
    first_pooled = pooled[:1].float().cpu() if pooled is not None else None
    return cond, first_pooled


def tokenize_weighted_empty(pad_id: int) -> list[int]:
    return [BOS, EOS] + [pad_id] * (CONTEXT - 2)


def tokenizer_for(part: ClipPart) -> Any:
    return part.tokenizer.load()


def encode_prompt(clip: TextEncoder, text: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """CONDITIONING tensors for ``text``: ``(cond [1, 77*k, dim], pooled [1, P] or None)``.

    For SDXL the two encoders' hidden states are concatenated on the feature axis (768+1280
    in the real model) and the pooled output is bigG's projection.
    """
    return encode_texts(clip, [text] * len(clip.parts))


def encode_texts(clip: TextEncoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Like :func:`encode_prompt` with one text per encoder (CLIPTextEncodeSDXL's text_l/text_g).

    When the texts need different numbers of 77-token chunks, the shorter is padded with
    empty-prompt chunks so the encoders' outputs can be concatenated.
    """
    if len(texts) != len(clip.parts):
        raise ValueError(f"{len(texts)} texts for a CLIP with {len(clip.parts)} text encoders")
    token_lists = [
        tokenize_weighted(tokenizer_for(part), text, _pad_id(part), embedding_lookup(part))
        for part, text in zip(clip.parts, texts, strict=True)
    ]
    return encode_chunks(clip, token_lists)


def encode_chunks(clip: TextEncoder, token_lists: list[list[Chunk]]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode already tokenized chunks, one list per encoder (shorter lists padded with empty chunks)."""
    import torch

    longest = max(len(chunks) for chunks in token_lists)
    conds, pooled_out = [], None
    for index, (part, chunks) in enumerate(zip(clip.parts, token_lists, strict=True)):
        filler = Chunk(tuple(tokenize_weighted_empty(_pad_id(part))), (1.0,) * CONTEXT)
        chunks = list(chunks) + [filler] * (longest - len(chunks))
        target_patches = tuple(p for p in clip.patches if _targets(p, part, index))
        cond, pooled = encode_part(part, chunks, clip.clip_skip, target_patches)
        conds.append(cond)
        if pooled is not None and (pooled_out is None or part.pooled == "projection"):
            pooled_out = pooled
    cond = conds[0] if len(conds) == 1 else torch.cat(conds, dim=-1)
    return cond, pooled_out


# -- ComfyUI's token format (for plugins calling clip.tokenize / clip.encode_from_tokens) ---------
#: ComfyUI's keys for each encoder in a tokens dict.
COMFY_KEYS = {"clip_l": "l", "clip_g": "g", "clip_h": "h"}


def comfy_key(part: ClipPart) -> str:
    return COMFY_KEYS.get(part.handle.target, "l")


def tokenize_comfy(clip: TextEncoder, text: str) -> dict[str, list[list[tuple[Any, float]]]]:
    """``{"l": [[(token, weight) x 77], ...], "g": ...}``: ComfyUI's ``clip.tokenize`` result.

    As in ComfyUI, an embedding's vectors stand in place of token ids.
    """
    tokens: dict[str, list[list[tuple[Any, float]]]] = {}
    for part in clip.parts:
        chunks = tokenize_weighted(tokenizer_for(part), text, _pad_id(part), embedding_lookup(part))
        lists = []
        for chunk in chunks:
            vectors = dict(chunk.vectors)
            lists.append(
                [
                    (vectors.get(i, token), weight)
                    for i, (token, weight) in enumerate(zip(chunk.ids, chunk.weights, strict=True))
                ]
            )
        tokens[comfy_key(part)] = lists
    return tokens


def chunks_from_comfy(lists: list[list[tuple[Any, float]]]) -> list[Chunk]:
    """ComfyUI token lists (possibly edited by a plugin) back to chunks."""
    chunks = []
    for pairs in lists:
        ids, weights, vectors = [], [], []
        for position, pair in enumerate(pairs):
            token, weight = pair[0], float(pair[1])
            if isinstance(token, int):
                ids.append(token)
            else:
                ids.append(_PLACEHOLDER)
                vectors.append((position, token))
            weights.append(weight)
        chunks.append(Chunk(tuple(ids), tuple(weights), tuple(vectors)))
    return chunks


def encode_comfy_tokens(clip: TextEncoder, tokens: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ComfyUI's ``clip.encode_from_tokens(tokens, return_pooled=True)``."""
    lists = []
    for part in clip.parts:
        key = comfy_key(part)
        if key not in tokens:
            raise ValueError(f"tokens for this {clip.family} CLIP need a {key!r} entry (have {sorted(tokens)})")
        lists.append(chunks_from_comfy(tokens[key]))
    return encode_chunks(clip, lists)


# -- textual inversion embeddings -------------------------------------------------------------------
_embedding_cache: dict[tuple, dict[str, Any]] = {}


def _embedding_tensors(path: Path) -> dict[str, Any]:
    """The tensors of an embedding file: A1111 ``emb_params``, SDXL ``clip_l``/``clip_g``, or one tensor."""
    from .single_file import TensorSource

    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    cached = _embedding_cache.get(key)
    if cached is None:
        with TensorSource(path) as source:
            cached = {name: source.get(name) for name in source.keys()}
        if len(_embedding_cache) > 64:
            _embedding_cache.clear()
        _embedding_cache[key] = cached
    return cached


def find_embedding(name: str) -> Path | None:
    """``models/embeddings/<name>`` with or without its extension; ``None`` if absent."""
    from nodes.paths import UnsafePathError, get_paths

    paths = get_paths()
    for candidate in (name, name + ".safetensors", name + ".pt", name + ".bin"):
        try:
            path = paths.model_path("embeddings", candidate)
        except (FileNotFoundError, UnsafePathError):
            continue
        if path.is_file():
            return path
    return None


def embedding_lookup(part: ClipPart) -> EmbeddingLookup:
    """Resolves ``embedding:name`` to vectors whose width fits this encoder."""

    def lookup(name: str) -> Any:
        path = find_embedding(name)
        if path is None:
            return None
        tensors = _embedding_tensors(path)
        width = part.handle.load().config.hidden_size
        preferred = {"clip_l": ("clip_l", "emb_params"), "clip_g": ("clip_g", "emb_params")}.get(
            part.handle.target, ("emb_params",)
        )
        for key in (*preferred, *tensors):
            tensor = tensors.get(key)
            if tensor is not None and tensor.ndim in (1, 2) and tensor.shape[-1] == width:
                return tensor.reshape(-1, width).float()
        return None

    return lookup


def _targets(patch: Any, part: ClipPart, index: int) -> bool:
    """Whether a weight patch carries weights for this encoder (LoRA patches say so)."""
    applies = getattr(patch, "applies_to", None)
    return True if applies is None else bool(applies(part.handle.target))
