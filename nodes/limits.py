"""Size limits that node code checks *before* it allocates or computes.

Some results are cheap to ask for and ruinous to produce: ``10 ** 9223372036854775807`` holds
the GIL until the process is killed (nothing else in the server runs meanwhile, not even
``/interrupt``), ``"x" * 1e6`` with every character replaced by 4 KB needs 4 GB, and a 100 kB
PNG can decode to 40 GB of pixels. Each check here estimates the size of the result from the
inputs (logarithms for powers, counts for replacements, the header for images) and raises a
:class:`ResultTooLarge` naming the input, so the node fails with a message and the worker goes on.

The limits come from the launcher (``--max-string-length``, ``--max-image-pixels``, see
:mod:`nodes.launch_options`); integers are bounded by Python's own limit on printable integers
(4,300 digits), so every INT a node returns can be shown, stored in history and sent as JSON.
"""

from __future__ import annotations

import math
import sys
import warnings
from typing import Any

from .launch_options import get_options

#: the most decimal digits an INT result may have: Python's limit for int <-> str conversion
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300


class ResultTooLarge(ValueError):
    """A node was asked for a result above a configured size limit; the message says which input."""


def int_digits(value: int) -> int:
    """Decimal digits of ``value`` (its size), from its bit length: exact to within one digit."""
    return max(1, math.ceil(abs(value).bit_length() * math.log10(2)))


def check_int(value: int, what: str) -> int:
    """``value`` if it has at most :data:`MAX_INT_DIGITS` digits, else :class:`ResultTooLarge`."""
    digits = int_digits(value)
    if digits > MAX_INT_DIGITS:
        raise ResultTooLarge(f"{what} would have about {digits} digits; integers are limited to {MAX_INT_DIGITS}")
    return value


def power_digits(base: int | float, exponent: int | float) -> float:
    """Decimal digits of ``base ** exponent`` without computing it (0 when the result is below 1).

    ``log10(|base|) * exponent``: a base of 0 or +-1, or a negative exponent, gives a small
    number whatever the exponent's size.
    """
    magnitude = abs(base)
    if magnitude <= 1 or exponent <= 0:
        return 0.0
    try:
        return math.log10(magnitude) * float(exponent)
    except OverflowError:  # an exponent too large to be a float: the result is larger still
        return math.inf


def check_power(base: int, exponent: int, what: str = "the result") -> None:
    """Refuse ``base ** exponent`` when it would exceed :data:`MAX_INT_DIGITS`, before computing it."""
    digits = power_digits(base, exponent)
    if digits > MAX_INT_DIGITS:
        raise ResultTooLarge(
            f"{what} ({_short(base)} ** {_short(exponent)}) would have about {_count(digits)} digits; "
            f"integers are limited to {MAX_INT_DIGITS}. Lower input 'b' (or 'a')."
        )


def max_string_length() -> int:
    return get_options().max_string_length


def check_string_length(length: int, what: str, hint: str = "") -> None:
    """Refuse a string result of ``length`` characters above ``--max-string-length``."""
    limit = max_string_length()
    if length > limit:
        raise ResultTooLarge(
            f"{what} would be {_count(length)} characters long; this server allows {_count(limit)} "
            f"(--max-string-length).{' ' + hint if hint else ''}"
        )


def max_image_pixels() -> int:
    return get_options().max_image_pixels


def check_image_pixels(width: int, height: int, what: str) -> None:
    """Refuse decoding an image of ``width`` x ``height`` above ``--max-image-pixels``."""
    limit = max_image_pixels()
    if width * height > limit:
        raise ResultTooLarge(
            f"{what} is {width}x{height} = {_count(width * height)} pixels, above this server's limit of "
            f"{_count(limit)} pixels (--max-image-pixels); it may be a decompression bomb"
        )


def pillow() -> Any:
    """``PIL.Image`` whose decompression-bomb limit admits ``--max-image-pixels``.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and refuses above twice that. Its limit is one for
    the whole process while ``--max-image-pixels`` is each runtime's, so it is only ever raised
    (to let a runtime with a larger limit open its images), never lowered: a runtime with a
    small limit must not refuse another's pictures. Each runtime's own limit is the hard check
    that callers opening users' files make with :func:`check_image_pixels` on the header's
    size, before any pixel is decoded. Imported on use: the server starts without Pillow.
    """
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_image_pixels():
        Image.MAX_IMAGE_PIXELS = max_image_pixels()
    # the hard check is ours; Pillow's warning for 1x..2x the limit is noise (an identical
    # filter replaces the previous one, so calling this often adds nothing)
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    return Image


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e15 else f"{value:.3g}"


def _short(value: Any) -> str:
    text = (
        str(value) if not isinstance(value, int) or int_digits(value) <= 40 else f"<{int_digits(value)}-digit integer>"
    )
    return text
