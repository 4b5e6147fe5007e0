"""JSON in and out of the server: strict, bounded, valid on the way out, and kind to the event loop.

Why not plain ``json.loads``/``json.dumps``:

* Input is bounded in nesting (``--max-json-depth``) without a Python walk of the parsed value:
  :func:`bracket_depth` measures the body's text with a handful of C byte operations (strip the
  strings, keep the brackets, peel innermost pairs), a few hundred microseconds for a
  2000-node prompt where walking the parsed dicts and lists took milliseconds.
* The C parser and encoder never release the GIL. Moved to a thread they still stall the
  event loop for as long as they run (a 50 MB prompt: seconds), because the loop cannot run
  Python code until the C call returns. ``loads(..., chunked=True)`` and :func:`dumps_chunked`
  therefore walk the top few levels of a document in Python and hand each subtree to the C
  scanner/encoder: the thread returns to the interpreter between subtrees, the GIL changes hands
  every switch interval and the loop keeps answering. Only the largest single subtree (one node,
  one history entry's prompt node) is ever parsed or written in one piece. A body parsed on the
  loop itself (small ones) is parsed in one C call: there, walking in Python would only add time.
* Python's parser accepts ``NaN``/``Infinity`` and the encoder writes them, which browsers
  refuse: one ``"number": NaN`` made ``/history`` unreadable for every client. Input refuses
  them; output replaces non-finite floats (and anything else JSON cannot carry) so a response
  is always valid JSON.
* Integers over 4,300 digits raise ``ValueError`` (not ``JSONDecodeError``) and nesting deeper
  than the interpreter's recursion limit raises ``RecursionError`` in the C parser (which counts
  its recursion, so it cannot overflow the C stack); both are client mistakes and become
  :class:`JSONInputError`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from json.decoder import scanstring
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any

#: levels walked in Python before a subtree goes to the C scanner/encoder in one call
PYTHON_LEVELS = 6
#: a container walked in Python hands its children after this many to the C scanner whole: a big
#: container (a prompt's nodes, a workflow's node list) becomes one C call per child, and the
#: Python overhead stays per child, not per value
WALK_CHILDREN = 16
#: deepest nesting written out; deeper values are replaced (they came from node code, not a client)
MAX_OUTPUT_DEPTH = 200

_WS = re.compile(r"[ \t\n\r]*")


class JSONInputError(ValueError):
    """A request body that is not acceptable JSON; the message says why, for the client."""


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not valid JSON (JSON has no NaN or Infinity; send a finite number or null)")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_scan_once = _DECODER.scan_once


def _value(text: str, idx: int, levels: int) -> tuple[Any, int]:
    idx = _WS.match(text, idx).end()
    char = text[idx : idx + 1]
    if levels <= 0 or char not in ("{", "["):
        try:
            return _scan_once(text, idx)
        except StopIteration as exc:
            raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    if char == "{":
        obj: dict[str, Any] = {}
        idx = _WS.match(text, idx + 1).end()
        if text[idx : idx + 1] == "}":
            return obj, idx + 1
        while True:
            if text[idx : idx + 1] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, idx)
            key, idx = scanstring(text, idx + 1, True)
            idx = _WS.match(text, idx).end()
            if text[idx : idx + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, idx)
            obj[key], idx = _value(text, idx + 1, levels - 1 if len(obj) < WALK_CHILDREN else 0)
            idx = _WS.match(text, idx).end()
            char, idx = text[idx : idx + 1], idx + 1
            if char == "}":
                return obj, idx
            if char != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, idx - 1)
            idx = _WS.match(text, idx).end()
    items: list[Any] = []
    idx = _WS.match(text, idx + 1).end()
    if text[idx : idx + 1] == "]":
        return items, idx + 1
    while True:
        item, idx = _value(text, idx, levels - 1 if len(items) < WALK_CHILDREN else 0)
        items.append(item)
        idx = _WS.match(text, idx).end()
        char, idx = text[idx : idx + 1], idx + 1
        if char == "]":
            return items, idx
        if char != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, idx - 1)


def _parse_chunked(text: str) -> Any:
    value, end = _value(text, 0, PYTHON_LEVELS)
    end = _WS.match(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


# every byte but the quote and the four brackets is dropped; opening brackets become "(", closing ")"
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(set(range(256)) - set(b'"[]{}'))
_QUOTED = re.compile(rb'"[^"]*"')


def bracket_depth(document: bytes, limit: int) -> int:
    """How deeply the valid UTF-8 JSON ``document`` nests (a scalar is 0), counting no further
    than ``limit + 1``: read from the bytes by a few C byte operations, where walking the
    parsed dicts and lists cost a Python step per container.

    Escapes go first (an escaped quote must not end a string), then everything but quotes and
    brackets; of the quoted runs left, those without brackets inside are adjacent quote pairs,
    removed in one replace (dropping two adjacent quotes keeps every later quote's parity, so
    what is inside a string stays inside one); strings with brackets in them go by a regex on
    what is by then a short text. Each pass of removing ``()`` peels one level off every
    innermost container, so the number of passes until nothing is left is the depth. Only
    valid JSON has balanced brackets: measure after parsing.
    """
    if b"\\" in document:
        document = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = document.translate(_BRACKETS, _NOT_BRACKETS).replace(b'""', b"")
    if b'"' in brackets:
        brackets = _QUOTED.sub(b"", brackets)
    depth = 0
    while brackets and depth <= limit:
        brackets = brackets.replace(b"()", b"")
        depth += 1
    return depth


def loads(raw: bytes | str, *, max_depth: int = 128, chunked: bool = False) -> Any:
    """Parse a request body; :class:`JSONInputError` with a client-facing reason otherwise.

    ``chunked``: parse the top levels in Python (see the module docstring), for a big body
    parsed on a worker thread.
    """
    try:
        encoding = "str" if isinstance(raw, str) else json.detect_encoding(raw)
        text = raw if isinstance(raw, str) else raw.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise JSONInputError(f"request body is not valid JSON: it is not UTF-8 text ({exc})") from None
    try:
        value = _parse_chunked(text) if chunked else _DECODER.decode(text)
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise JSONInputError(f"request body is nested too deeply (the limit is {max_depth} levels)") from None
    except ValueError as exc:  # int("9" * 5000): Python refuses numbers over 4,300 digits
        if "digits" in str(exc):
            raise JSONInputError(
                f"request body has a number with more than {sys.get_int_max_str_digits()} digits; "
                "send it as a string or use a smaller number"
            ) from None
        raise JSONInputError(f"request body is not valid JSON: {exc}") from None
    if isinstance(value, (dict, list)):
        utf8 = raw if isinstance(raw, bytes) and encoding.startswith("utf-8") else text.encode("utf-8", "surrogatepass")
        if bracket_depth(utf8, max_depth) > max_depth:
            raise JSONInputError(
                f"request body is nested deeper than the limit of {max_depth} levels (--max-json-depth)"
            )
    return value


# -- output ---------------------------------------------------------------------------------


def sanitise(value: Any, depth: int = 0, _path: set[int] | None = None) -> Any:
    """A copy of ``value`` that JSON can carry: non-finite floats become ``None``, integers too
    long to print become strings, keys become strings, values nested deeper than
    :data:`MAX_OUTPUT_DEPTH` or circular become a short marker, other objects their ``str``."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        digits = math.ceil(value.bit_length() * math.log10(2))
        if digits >= (sys.get_int_max_str_digits() or math.inf):
            return f"<integer of about {digits} digits>"  # json cannot print it (ValueError)
        return int(value)
    if isinstance(value, (dict, list, tuple)):
        path = _path if _path is not None else set()
        if depth >= MAX_OUTPUT_DEPTH:
            return "<nested too deeply to show>"
        if id(value) in path:
            return "<circular reference>"
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return {_key(k): sanitise(v, depth + 1, path) for k, v in value.items()}
            return [sanitise(v, depth + 1, path) for v in value]
        finally:
            path.discard(id(value))
    try:
        return str(value)
    except Exception:  # a broken __str__ in node code must not break the response
        return f"<{type(value).__name__}>"


def _key(key: Any) -> str:
    """A dict key as ``json.dumps`` writes it (str, int, float, bool, None), else its ``str``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    if isinstance(key, (int, float)):
        text = sanitise(key)
        return "null" if text is None else str(text)
    return str(key)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not plain JSON data")


#: ``json.dumps(value, default=str, allow_nan=False)``'s C encoder, built once instead of per call
#: (``json.dumps`` builds one per call: 40 % of the time of a small event, and a prompt sends
#: thousands). Built without a circular-reference check, so it keeps no state between calls and
#: threads share it: a circular value recurses until ``RecursionError`` instead, which
#: :func:`dumps` catches like any other failure.
_C_ENCODER = c_make_encoder and c_make_encoder(
    None, str, encode_basestring_ascii, None, ": ", ", ", False, False, False
)
_ENCODER = json.JSONEncoder(default=str, allow_nan=False)
#: the same without ``default``: an object it cannot write is an error, never Python code run
_C_ENCODER_STRICT = c_make_encoder and c_make_encoder(
    None, _refuse, encode_basestring_ascii, None, ": ", ", ", False, False, False
)


def _encode(value: Any) -> str:
    return "".join(_C_ENCODER(value, 0)) if _C_ENCODER else _ENCODER.encode(value)


def encode_plain(value: Any) -> str:
    """JSON of plain data (dicts, lists, strings, finite numbers, booleans, None) in one call of
    the C encoder, during which no Python code runs; raises ``ValueError``/``TypeError`` for
    anything else (a NaN, an object), and ``RuntimeError`` where there is no C encoder."""
    if not _C_ENCODER_STRICT:
        raise RuntimeError("no C JSON encoder")
    return "".join(_C_ENCODER_STRICT(value, 0))


def dumps(value: Any) -> str:
    """Valid JSON for any value: the fast C encoder, then :func:`sanitise` if that fails."""
    try:
        return _encode(value)
    except (ValueError, TypeError, RecursionError):
        return _encode(sanitise(value))


def dumps_chunked(value: Any, levels: int = PYTHON_LEVELS) -> str:
    """:func:`dumps`, with the top ``levels`` of dicts and lists written in Python so a thread
    running it yields the GIL between subtrees (see the module docstring)."""
    parts: list[str] = []
    _write(value, levels, parts)
    return "".join(parts)


def _write(value: Any, levels: int, parts: list[str]) -> None:
    if levels <= 0 or not isinstance(value, (dict, list, tuple)) or not value:
        parts.append(dumps(value))
        return
    if isinstance(value, dict):
        parts.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                parts.append(", ")
            parts.append(encode_basestring_ascii(_key(key)))
            parts.append(": ")
            _write(item, levels - 1 if i < WALK_CHILDREN else 0, parts)
        parts.append("}")
        return
    parts.append("[")
    for i, item in enumerate(value):
        if i:
            parts.append(", ")
        _write(item, levels - 1 if i < WALK_CHILDREN else 0, parts)
    parts.append("]")
