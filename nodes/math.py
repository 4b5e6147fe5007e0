"""Small arithmetic nodes for wiring numbers between widgets (sizes, steps, seeds)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

from .api import Combo, Float, Int, Node, Output
from .limits import MAX_INT_DIGITS, ResultTooLarge, check_int, check_power, int_digits

_OPS: dict[str, Callable[[float, float], float]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "floor_divide": operator.floordiv,
    "modulo": operator.mod,
    "power": operator.pow,
    "min": min,
    "max": max,
}


def _apply(op: str, a: float, b: float) -> float:
    if op in ("divide", "floor_divide", "modulo") and b == 0:
        raise ZeroDivisionError(f"input 'b' is 0: cannot {op.replace('_', ' ')} by zero")
    return _OPS[op](a, b)


class MathInt(Node):
    display_name = "Int Math"
    category = "utils/math"
    description = (
        f"Applies an integer operation to a and b (division floors). Results are limited to "
        f"{MAX_INT_DIGITS} digits; a power above that is refused before it is computed."
    )
    inputs = (Int("a", 0), Int("b", 0), Combo("operation", list(_OPS), default="add"))
    outputs = (Output("INT"),)

    def run(self, a: int, b: int, operation: str) -> int:
        if operation == "divide":
            operation = "floor_divide"
        if operation == "power":
            # estimated from logarithms first: computing 10 ** (2 ** 63) holds the GIL until the
            # process is killed, and nothing else in the server (not even /interrupt) runs meanwhile
            check_power(a, b, "a ** b")
            if b < 0 and a != 0 and int_digits(a) > 300:
                raise ResultTooLarge(
                    f"a ** b with a negative b needs a as a float, and a has {int_digits(a)} "
                    "digits (floats hold about 308)"
                )
        return check_int(int(_apply(operation, a, b)), f"{operation}(a, b)")


class MathFloat(Node):
    display_name = "Float Math"
    category = "utils/math"
    description = "Applies a floating-point operation to a and b."
    inputs = (Float("a", 0.0), Float("b", 0.0), Combo("operation", list(_OPS), default="add"))
    outputs = (Output("FLOAT"),)

    def run(self, a: float, b: float, operation: str) -> float:
        result = float(_apply(operation, a, b))
        if math.isinf(result) or math.isnan(result):
            raise ArithmeticError(f"{operation}({a}, {b}) is not a finite number")
        return result


class IntToFloat(Node):
    display_name = "Int to Float"
    category = "utils/math"
    description = "Converts an integer to a float."
    inputs = (Int("value", 0),)
    outputs = (Output("FLOAT"),)

    def run(self, value: int) -> float:
        return float(value)


class FloatToInt(Node):
    display_name = "Float to Int"
    category = "utils/math"
    description = "Rounds a float to an integer (round, floor or ceil)."
    inputs = (Float("value", 0.0), Combo("mode", ["round", "floor", "ceil"], default="round"))
    outputs = (Output("INT"),)

    def run(self, value: float, mode: str) -> int:
        return {"round": round, "floor": math.floor, "ceil": math.ceil}[mode](value)


NODES = [MathInt, MathFloat, IntToFloat, FloatToInt]
