"""The op registry: every op is declared once, here, with its operand count,
attributes, traits, shape rule and reference semantics (a torch function).

Passes, the verifier, the printer/parser and the CPU backend all look ops up in
this table (``OPS``); a missing entry is a loud ``IRError``. Declarations live
in ``kiln/ir/ops.py``; this file holds the mechanism only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln.ir.core import IRError
from kiln.ir.types import TensorType

ShapeRule = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]


@dataclass
class ExecContext:
    """What reference semantics may read besides their operands: the sizes bound
    to symbolic dims, the weights, and the device to create tensors on."""

    env: dict[str, int] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    device: Any = "cpu"
    result_types: list = field(default_factory=list)  # of the op being run


Reference = Callable[..., Any]  # (ctx, *operands, **attrs) -> tensor or list of tensors


@dataclass(frozen=True)
class OpDef:
    name: str
    doc: str
    operands: tuple[int, int]  # (min, max); max == -1 means variadic
    attrs: dict[str, Any]  # required attribute -> python type (or tuple of types)
    defaults: dict[str, Any]  # optional attribute -> default value
    traits: frozenset[str]
    shape: ShapeRule | None  # None: result types are declared by whoever builds the op
    reference: Reference | None

    def attr(self, attrs: dict[str, Any], key: str) -> Any:
        if key in attrs:
            return attrs[key]
        if key in self.defaults:
            return self.defaults[key]
        raise IRError(f"{self.name}: missing attribute {key!r}")


OPS: dict[str, OpDef] = {}

# Attributes any op may carry that do not change its meaning (MLIR's discardable attributes): executors
# drop them before calling the reference. ``kernel`` is the group-kernels pass's kernel label.
DISCARDABLE_ATTRS = frozenset({"kernel"})

# Traits (properties as data):
#   elementwise - result[i] depends on operand[i] only (after broadcasting)
#   commutative - operands 0 and 1 may be swapped
#   pure        - no side effects; safe to CSE and to delete when unused
#   source      - takes no operands and creates a value (weights, constants)
#   terminator  - ends a program


def declare(name: str, doc: str, operands: tuple[int, int] = (1, 1), attrs: dict | None = None,
            defaults: dict | None = None, traits: tuple[str, ...] = ("pure",),
            shape: ShapeRule | None = None, reference: Reference | None = None) -> OpDef:
    if name in OPS:
        raise IRError(f"op {name} declared twice")
    d = OpDef(name, doc, operands, dict(attrs or {}), dict(defaults or {}), frozenset(traits), shape, reference)
    OPS[name] = d
    return d


def lookup(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise IRError(f"unknown op {name!r}: it is not declared in kiln/ir/ops.py") from None


def infer_types(name: str, operand_types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    d = lookup(name)
    if d.shape is None:
        raise IRError(f"{name}: result types cannot be inferred; pass result_types")
    return d.shape(operand_types, {**d.defaults, **attrs})


def has_trait(name: str, trait: str) -> bool:
    d = OPS.get(name)
    return d is not None and trait in d.traits


# ATen ops whose results are not a function of their inputs: never merged, folded or deleted
IMPURE_ATEN = ("rand", "randn", "randint", "randperm", "bernoulli", "dropout", "native_dropout", "normal",
               "uniform", "multinomial", "exponential", "empty", "empty_like", "empty_strided", "copy_")


def is_pure(op) -> bool:
    """Safe to CSE, fold and delete when unused (``kiln.aten`` unless it draws random numbers or is uninitialised)."""
    if op.name == "kiln.aten":
        name = op.attrs.get("target", "").removeprefix("aten::").split(".")[0]
        return name not in IMPURE_ATEN and not name.endswith("_")
    return has_trait(op.name, "pure")
