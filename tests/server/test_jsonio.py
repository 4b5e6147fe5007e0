"""server/jsonio.py: the chunked parser and writer agree with the json module, refuse what
JSON does not allow, and always write JSON a browser can parse."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from server.jsonio import JSONInputError, bracket_depth, dumps, dumps_chunked, loads


def random_document(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 5 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(10**20), 10**20)
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind in (3, 4):
        return "".join(rng.choice('ab"\\\n\té€😀 ') for _ in range(rng.randrange(12)))
    if kind in (5, 6):
        return {f"k{i}{rng.choice(['', 'é', ' '])}": random_document(rng, depth + 1) for i in range(rng.randrange(8))}
    return [random_document(rng, depth + 1) for _ in range(rng.randrange(8))]


def test_chunked_parse_and_write_agree_with_the_json_module() -> None:
    rng = random.Random(13)
    for _ in range(200):
        document = random_document(rng)
        for text in (json.dumps(document), json.dumps(document, indent=2), json.dumps(document, separators=(",", ":"))):
            assert loads(text.encode()) == json.loads(text) == loads(text.encode(), chunked=True)
        assert json.loads(dumps_chunked(document)) == document
        assert json.loads(dumps(document)) == document


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b'{"a" 1}', "Expecting ':'"),
        (b"[1,]", "Expecting value"),
        (b'{"a": 1,}', "Expecting property name"),
        (b"[1 2]", "Expecting ','"),
        (b'{"a": 1} x', "Extra data"),
        (b"NaN", "NaN"),
        (b'{"x": [-Infinity]}', "Infinity"),
        (b'{"n": ' + b"1" * 5000 + b"}", "digits"),
        (b"[" * 50_000 + b"]" * 50_000, "nested"),
        (b"[" * 200 + b"]" * 200, "--max-json-depth"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'"\\ud800 \\x"', "not valid JSON"),
    ],
)
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_bad_bodies_are_refused_with_a_reason(raw: bytes, message: str, chunked: bool) -> None:
    with pytest.raises(JSONInputError, match=message.replace("[", r"\[")):
        loads(raw, max_depth=128, chunked=chunked)


def nesting(value: Any) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    return 1 + max(map(nesting, value), default=0) if isinstance(value, list) else 0


def test_depth_is_measured_on_the_text_exactly() -> None:
    """Brackets and escaped quotes inside strings do not count; every encoding is measured."""
    rng = random.Random(7)
    tricky = '[]{}"\\/\né€😀 ,:'
    for _ in range(500):
        document = random_document(rng)
        if rng.random() < 0.5:
            document = {
                "".join(rng.choice(tricky) for _ in range(6)): [document, "".join(rng.choice(tricky) for _ in range(9))]
            }
        depth = nesting(document)
        for text in (json.dumps(document), json.dumps(document, ensure_ascii=False, indent=1)):
            assert bracket_depth(text.encode(), 1000) == depth
            assert bracket_depth(text.encode(), 2) == min(depth, 3)
            for encoding in ("utf-8", "utf-16", "utf-32-le"):
                for limit in (depth, depth - 1) if depth else (0,):
                    if limit >= depth:
                        assert loads(text.encode(encoding), max_depth=limit) == document
                    else:
                        with pytest.raises(JSONInputError, match=f"nested deeper than the limit of {limit} levels"):
                            loads(text.encode(encoding), max_depth=limit)


def test_brackets_in_strings_do_not_count_towards_the_depth_limit() -> None:
    value = {"text": "[" * 500 + '\\"{{' + "]" * 3, "escaped": '\\\\"' + "{" * 300}
    assert loads(json.dumps(value).encode(), max_depth=1) == value
    with pytest.raises(JSONInputError, match="nested deeper than the limit of 1 levels"):
        loads(json.dumps([[value]]).encode(), max_depth=1)


def test_output_is_always_valid_json() -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    circular["again"] = circular
    deep: Any = 0
    for _ in range(5000):
        deep = [deep]
    value = {
        "nan": float("nan"),
        "inf": [float("inf")],
        "big": 10**5000,
        "ok": 10**100,
        "circular": circular,
        "deep": deep,
        "object": object(),
        1: "int key",
        (1, 2): "tuple key",
        None: "none key",
    }
    for text in (dumps(value), dumps_chunked(value)):
        parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in output"))
        assert parsed["nan"] is None and parsed["inf"] == [None]
        assert parsed["ok"] == 10**100 and "digits" in parsed["big"]
        assert parsed["1"] == "int key" and parsed["null"] == "none key"
