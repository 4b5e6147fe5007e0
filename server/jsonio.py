"""JSON in and out of the server: strict, bounded, valid on the way out, and kind to the event loop.

Why not ``json.loads``/``json.dumps`` on the loop:

* The C parser and encoder never release the GIL. Moved to a thread they still stall the
  event loop for as long as they run (a 50 MB prompt: seconds), because the loop cannot run
  Python code until the C call returns. :func:`loads` and :func:`dumps_chunked` therefore walk
  the top few levels of a document in Python and hand each subtree to the C scanner/encoder:
  the thread returns to the interpreter between subtrees, the GIL changes hands every switch
  interval and the loop keeps answering. Only the largest single subtree (one node, one
  history entry's prompt node) is ever parsed or written in one piece.
* Python's parser accepts ``NaN``/``Infinity`` and the encoder writes them, which browsers
  refuse: one ``"number": NaN`` made ``/history`` unreadable for every client. Input refuses
  them; output replaces non-finite floats (and anything else JSON cannot carry) so a response
  is always valid JSON.
* Integers over 4,300 digits raise ``ValueError`` (not ``JSONDecodeError``) and deep nesting
  raises ``RecursionError``; both are client mistakes and become :class:`JSONInputError`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from json.decoder import scanstring
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
    char = text[idx:idx + 1]
    if levels <= 0 or char not in ("{", "["):
        try:
            return _scan_once(text, idx)
        except StopIteration as exc:
            raise json.JSONDecodeError("Expecting value", text, exc.value) from None
    if char == "{":
        obj: dict[str, Any] = {}
        idx = _WS.match(text, idx + 1).end()
        if text[idx:idx + 1] == "}":
            return obj, idx + 1
        while True:
            if text[idx:idx + 1] != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, idx)
            key, idx = scanstring(text, idx + 1, True)
            idx = _WS.match(text, idx).end()
            if text[idx:idx + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, idx)
            obj[key], idx = _value(text, idx + 1, levels - 1 if len(obj) < WALK_CHILDREN else 0)
            idx = _WS.match(text, idx).end()
            char, idx = text[idx:idx + 1], idx + 1
            if char == "}":
                return obj, idx
            if char != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, idx - 1)
            idx = _WS.match(text, idx).end()
    items: list[Any] = []
    idx = _WS.match(text, idx + 1).end()
    if text[idx:idx + 1] == "]":
        return items, idx + 1
    while True:
        item, idx = _value(text, idx, levels - 1 if len(items) < WALK_CHILDREN else 0)
        items.append(item)
        idx = _WS.match(text, idx).end()
        char, idx = text[idx:idx + 1], idx + 1
        if char == "]":
            return items, idx
        if char != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, idx - 1)


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value`` nests (a scalar is 0), counting no further than ``limit + 1``.

    Iterative, so a pathological value cannot exhaust the stack while being measured.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(raw: bytes | str, *, max_depth: int = 128) -> Any:
    """Parse a request body; :class:`JSONInputError` with a client-facing reason otherwise."""
    try:
        text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw))
    except (UnicodeDecodeError, LookupError) as exc:
        raise JSONInputError(f"request body is not valid JSON: it is not UTF-8 text ({exc})") from None
    try:
        value, end = _value(text, 0, PYTHON_LEVELS)
        end = _WS.match(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
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
                "send it as a string or use a smaller number") from None
        raise JSONInputError(f"request body is not valid JSON: {exc}") from None
    depth = nesting_depth(value, max_depth)
    if depth > max_depth:
        raise JSONInputError(
            f"request body is nested {depth if depth <= max_depth + 1 else 'more than ' + str(max_depth)} levels deep; "
            f"the limit is {max_depth} (--max-json-depth)")
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


def dumps(value: Any) -> str:
    """Valid JSON for any value: the fast C encoder, then :func:`sanitise` if that fails."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return json.dumps(sanitise(value), default=str, allow_nan=False)


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
            parts.append(json.dumps(_key(key)))
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
