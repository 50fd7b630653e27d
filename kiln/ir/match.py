"""Small helpers that rewrite rules use to read the IR around an op, and to drop what they orphan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kiln.ir.core import Op, Program, Value
from kiln.ir.registry import has_trait, is_pure


def producer(v: Value, name: str) -> Op | None:
    """The op defining ``v`` when it is a ``name`` op."""
    op = v.owner
    return op if op is not None and op.name == name else None


def scalar(op: Op | None) -> Any:
    """The ``scalar`` attribute of a one-operand elementwise op (tensor op scalar), else None."""
    if op is None or len(op.operands) != 1 or op.attrs.get("reverse"):
        return None
    return op.attrs.get("scalar")


def operand_pairs(op: Op) -> Iterator[tuple[Value, Value]]:
    """(a, b) and, for commutative ops, (b, a) too."""
    a, b = op.operand("a"), op.operand("b")
    yield a, b
    if has_trait(op.name, "commutative"):
        yield b, a


# the operand that holds a gemm-trait op's weight: the float matrix, or the quantized codes
GEMM_WEIGHT = {"kiln.linear": "weight", "kiln.qlinear": "q"}


def gemm_weight(op: Op) -> Value | None:
    """The weight operand of a ``kiln.linear`` / ``kiln.qlinear`` (None for any other op)."""
    name = GEMM_WEIGHT.get(op.name)
    return op.operand(name) if name is not None else None


def erase_unused(program: Program) -> int:
    """Erase pure ops whose results nobody reads, last to first (so chains go in one sweep)."""
    erased = 0
    for op in reversed(list(program.ops)):
        if op.program is program and is_pure(op) and not any(r.uses for r in op.results):
            program.erase(op)
            erased += 1
    return erased
