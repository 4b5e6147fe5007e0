"""Prompt parsing and chunking give ComfyUI's (token, weight) sequences.

The expectations are derived by hand from ComfyUI's algorithm in ``comfy/sd1_clip.py``
(``escape_important``, ``parse_parentheses``, ``token_weights``, ``unescape_important`` and the
batching in ``SDTokenizer.tokenize_with_weights``), restated here:

* only ``\\(`` and ``\\)`` are escapes; every other character, ``[`` ``]`` and ``\\`` included,
  is text;
* the text is cut into literal runs and top-level groups: a ``(`` opens a group only at depth
  0, a ``)`` always lowers the depth (so after an unmatched ``)`` brackets stay literal), and a
  group is a piece that starts with ``(`` and ends with ``)``;
* a group is parsed again at the weight around it times 1.1, unless the text after its last
  colon (not at position 0) is a Python float: then that number *is* the weight;
* each resulting segment (and each embedding) is one token group; groups fill chunks of 75 in
  order; a group that does not fit moves whole to the next chunk if it has fewer than 8
  tokens, otherwise it is cut exactly at the boundary.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.diffusion.clip_text import BOS, EOS, make_tokenizer, parse_weights, tokenize_weighted

W = 1.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the cases issue 11 lists
        ("[dog]", [("[dog]", 1.0)]),
        ("a [dog] b", [("a [dog] b", 1.0)]),
        ("a (unclosed", [("a ", 1.0), ("(unclosed", 1.0)]),
        # ComfyUI's quirk: the unclosed "(" pairs with the last ")", the inner "(" is left open
        ("a (unclosed (cat)", [("a ", 1.0), ("unclosed ", W), ("(cat", W)]),
        ("((cat:1.3))", [("cat", 1.3)]),
        ("((cat:1.3) dog)", [("cat", 1.3), (" dog", W)]),
        ("((a:2) b)", [("a", 2.0), (" b", W)]),
        ("((a) b:0.5)", [("a", 0.5 * W), (" b", 0.5)]),
        # cases that already matched stay as they were
        ("a cat", [("a cat", 1.0)]),
        ("(word:1.3)", [("word", 1.3)]),
        ("((word))", [("word", W * W)]),
        ("(((word)))", [("word", W * W * W)]),
        ("(a (b):1.2)", [("a ", 1.2), ("b", 1.2 * W)]),
        ("", []),
        ("()", []),
        # escapes: only \( and \)
        (r"\(cat\)", [("(cat)", 1.0)]),
        (r"(a \) b)", [("a ) b", W)]),
        (r"a \[b\] \\ c", [(r"a \[b\] \\ c", 1.0)]),
        (r"\\(x)", [(r"\(x)", 1.0)]),
        # unbalanced brackets
        ("a) (b) c", [("a) (b) c", 1.0)]),
        ("a) (b)) (c)", [("a) (b)) (c)", 1.0)]),
        ("a) ((b) (c)", [("a) (", 1.0), ("b", W), (" ", 1.0), ("c", W)]),  # depth back at 0
        ("((a)", [("(a", W)]),
        # the weight is whatever Python's float() reads after the last colon
        ("(red: 0.5 )", [("red", 0.5)]),
        ("(a:1e-1)", [("a", 0.1)]),
        ("(a:0)", [("a", 0.0)]),
        ("(a:-1)", [("a", -1.0)]),
        ("(time: 12:30)", [("time: 12", 30.0)]),
        ("(a:x)", [("a:x", W)]),
        ("(:2)", [(":2", W)]),
        ("(a:2) b", [("a", 2.0), (" b", 1.0)]),
        # neighbours with equal weights stay separate segments (they batch separately)
        ("(a:1.2)(b:1.2)", [("a", 1.2), ("b", 1.2)]),
        ("(a)(b)", [("a", W), ("b", W)]),
    ],
)
def test_segments_follow_comfyui(text: str, expected: list[tuple[str, float]]) -> None:
    got = parse_weights(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], rel=0, abs=1e-12)


@pytest.fixture(scope="module")
def tok() -> Any:
    return make_tokenizer()


def ids(tok: Any, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def body(chunk: Any) -> list[tuple[int, float]]:
    """The prompt tokens of a chunk: between the start token and the end token."""
    assert chunk.ids[0] == BOS and len(chunk.ids) == len(chunk.weights) == 77
    end = chunk.ids.index(EOS, 1)
    assert all(w == 1.0 for w in chunk.weights[end:])
    return list(zip(chunk.ids[1:end], chunk.weights[1:end], strict=True))


def expand(tok: Any, pieces: list[tuple[str, float]]) -> list[tuple[int, float]]:
    return [(t, w) for text, w in pieces for t in ids(tok, text)]


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("a [dog]", [("a [dog]", 1.0)]),  # "[", "dog", "]" tokens at weight 1
        ("a (unclosed", [("a (unclosed", 1.0)]),
        ("((cat:1.3)) dog", [("cat", 1.3), ("dog", 1.0)]),
        ("a (cat:1.5)", [("a", 1.0), ("cat", 1.5)]),
        ("(a:x)", [("a:x", W)]),
        (r"\(cat\) [b]", [("(cat) [b]", 1.0)]),
        (r"a \\ b", [(r"a \\ b", 1.0)]),
    ],
)
def test_tokens_and_weights_follow_comfyui(tok: Any, text: str, pieces: list[tuple[str, float]]) -> None:
    (chunk,) = tokenize_weighted(tok, text, EOS)
    got = body(chunk)
    want = expand(tok, pieces)
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want], rel=0, abs=1e-12)


def cats(n: int) -> str:
    return " ".join(["cat"] * n)


CAT, DOG = 2368, 1929


def test_a_long_plain_prompt_is_cut_exactly_at_token_75(tok: Any) -> None:
    chunks = tokenize_weighted(tok, cats(100), EOS)
    assert [len(body(c)) for c in chunks] == [75, 25]
    # one segment is one group: a word straddling token 75 is cut too
    word = "supercalifragilisticexpialidocious"
    pieces = ids(tok, word)
    assert len(pieces) >= 2
    chunks = tokenize_weighted(tok, cats(74) + " " + word, EOS)
    assert [t for t, _ in body(chunks[0])] == [CAT] * 74 + pieces[:1]
    assert [t for t, _ in body(chunks[1])] == pieces[1:]


def test_a_short_weighted_segment_moves_whole_to_the_next_chunk(tok: Any) -> None:
    """Fewer than 8 tokens that do not fit: the chunk is closed early and padded."""
    chunks = tokenize_weighted(tok, cats(73) + " (red green blue:1.2)", EOS)
    assert body(chunks[0]) == [(CAT, 1.0)] * 73
    assert chunks[0].ids[74:] == (EOS,) * 3
    assert body(chunks[1]) == [(736, 1.2), (1901, 1.2), (1746, 1.2)]
    # exactly enough room: one chunk
    (chunk,) = tokenize_weighted(tok, cats(72) + " (red green blue:1.2)", EOS)
    assert len(body(chunk)) == 75
    # a full chunk, then a one-token segment
    chunks = tokenize_weighted(tok, cats(75) + " (dog:1.2)", EOS)
    assert body(chunks[0]) == [(CAT, 1.0)] * 75 and body(chunks[1]) == [(DOG, 1.2)]


@pytest.mark.parametrize(("size", "moved_whole"), [(7, True), (8, False), (10, False)])
def test_segments_of_8_tokens_or_more_are_cut_at_the_boundary(tok: Any, size: int, moved_whole: bool) -> None:
    chunks = tokenize_weighted(tok, cats(70) + " (" + " ".join(["dog"] * size) + ":1.3) cat", EOS)
    first, second = body(chunks[0]), body(chunks[1])
    if moved_whole:
        assert first == [(CAT, 1.0)] * 70
        assert second == [(DOG, 1.3)] * size + [(CAT, 1.0)]
    else:
        assert first == [(CAT, 1.0)] * 70 + [(DOG, 1.3)] * 5
        assert second == [(DOG, 1.3)] * (size - 5) + [(CAT, 1.0)]


def test_many_one_token_segments_fill_chunks_of_75(tok: Any) -> None:
    chunks = tokenize_weighted(tok, " ".join(["(cat:1.2)"] * 80), EOS)
    assert [body(c) for c in chunks] == [[(CAT, 1.2)] * 75, [(CAT, 1.2)] * 5]


def fake_embeddings(name: str) -> torch.Tensor | None:
    """``big`` has 8 vectors, ``small`` 2; the values number the rows."""
    rows = {"big": 8, "small": 2}.get(name)
    return None if rows is None else torch.arange(rows, dtype=torch.float32)[:, None].repeat(1, 4)


def test_embeddings_are_groups_of_their_own(tok: Any) -> None:
    # 8 vectors straddling the boundary are cut like a long segment
    chunks = tokenize_weighted(tok, cats(72) + " embedding:big", EOS, fake_embeddings)
    assert len(body(chunks[0])) == 75 and len(body(chunks[1])) == 5
    assert [p for p, _ in chunks[0].vectors] == [73, 74, 75] and [p for p, _ in chunks[1].vectors] == [1, 2, 3, 4, 5]
    assert [float(v[0]) for _, v in chunks[0].vectors + chunks[1].vectors] == list(range(8))
    # 2 vectors move whole
    chunks = tokenize_weighted(tok, cats(74) + " embedding:small", EOS, fake_embeddings)
    assert len(body(chunks[0])) == 74 and [p for p, _ in chunks[1].vectors] == [1, 2]
    # weights, trailing punctuation and the text after the name
    (chunk,) = tokenize_weighted(tok, "a (embedding:small, red:1.3) cat", EOS, fake_embeddings)
    assert [w for _, w in body(chunk)] == [1.0, 1.3, 1.3, 1.3, 1.3, 1.0]
    assert [t for t, _ in body(chunk)][3:] == ids(tok, ", red cat")
    assert [p for p, _ in chunk.vectors] == [2, 3]
    # a missing embedding is skipped (logged); the text after it stays
    (chunk,) = tokenize_weighted(tok, "a embedding:nothing cat", EOS, fake_embeddings)
    assert [t for t, _ in body(chunk)] == ids(tok, "a cat")
    # ComfyUI looks for "embedding:" at a segment's start or after a space or newline only
    (chunk,) = tokenize_weighted(tok, "a\nembedding:small", EOS, fake_embeddings)
    assert len(chunk.vectors) == 2
    (chunk,) = tokenize_weighted(tok, "a\tembedding:small", EOS, fake_embeddings)
    assert chunk.vectors == () and [t for t, _ in body(chunk)] == ids(tok, "a embedding:small")


@pytest.fixture(scope="module")
def sd1_clip(use_tiny_paths: Any) -> Any:
    from nodes.diffusion.loaders import CheckpointLoaderSimple

    with use_tiny_paths():
        return CheckpointLoaderSimple().run("tiny-sd1.safetensors")[1]


def test_weights_follow_comfyuis_formula_on_the_real_encoder(sd1_clip: Any) -> None:
    plain, _ = sd1_clip.encode("a cat " + cats(80))
    weighted, _ = sd1_clip.encode("a (cat:1.5) " + cats(80))
    empty, _ = sd1_clip.encode("")
    assert plain.shape == weighted.shape == (1, 154, 32)
    same = [i for i in range(154) if i != 2]
    assert torch.allclose(weighted[0, same], plain[0, same], atol=1e-6)
    expected = (plain[0, 2] - empty[0, 2]) * 1.5 + empty[0, 2]
    assert torch.allclose(weighted[0, 2], expected, atol=1e-5)
    # [dog] is text: the same as its tokens without any weighting
    assert torch.equal(sd1_clip.encode("a [dog]")[0], sd1_clip.encode("a [ dog ]")[0])


def test_tokens_at_weight_1_are_left_bit_for_bit(sd1_clip: Any, tok: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """ComfyUI rewrites only tokens whose weight is not 1; ``(z - e) * 1 + e`` is not always ``z``."""
    from nodes.diffusion import clip_text

    table = torch.randn(2, 77, 8, generator=torch.Generator().manual_seed(0)) * 10 + 0.1
    monkeypatch.setattr(clip_text, "_hidden", lambda part, model, ids, skip: (table[: ids.shape[0]].clone(), None))
    chunks = tokenize_weighted(tok, "a (cat:1.5) [dog] (x:0.5)", EOS)
    cond, _ = clip_text.encode_part(sd1_clip.parts[0], chunks, None, ())
    z, e = table[0].clone(), table[1]
    for j, weight in enumerate(chunks[0].weights):  # ComfyUI's loop, token by token
        if weight != 1.0:
            z[j] = (z[j] - e[j]) * weight + e[j]
    assert torch.equal(cond[0], z)
    assert not torch.equal((table[0] - e) * 1.0 + e, table[0])  # the test can tell the difference
