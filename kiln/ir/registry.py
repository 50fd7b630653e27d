"""The op registry: every op is declared once, with named operands, attributes,
traits, a shape rule and reference semantics (a torch function).

Passes, the verifier, the printer/parser and the backends look ops up in this
table (``OPS``); a missing entry is a loud ``IRError``. Declarations live in
``kiln/ir/ops.py`` and its siblings (``ops_quant``, ``ops_spec``); this file
holds the mechanism only and imports nothing of kiln but ``kiln.errors`` and
``kiln.ir.types``.

Operands are declared by name, in order. A name may end in

    ``?``     optional: present when enough operands remain after the required ones (or as ``when`` says)
    ``*``     a variadic group of zero or more (at most one open group per op)
    ``+``     a variadic group of one or more
    ``*attr`` a group of exactly ``attrs[attr]`` operands (e.g. ``tokens*k``)

so that code outside ``kiln/ir`` reads ``op.operand("weight")`` or
``op.group("tokens")`` and never counts positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln.errors import IRError
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

# Traits: properties of an op as data. Passes and backends ask for a trait, never for a list of op names.
TRAITS = {
    "pure": "no side effects: safe to CSE, to fold and to delete when unused",
    "elementwise": "result[i] depends on operand[i] only (after broadcasting)",
    "commutative": "operands 0 and 1 may be swapped",
    "source": "takes no operands and creates a value (weights, constants)",
    "terminator": "ends a program",
    "reduction": "reduces over `dims` (or `dim`) of its one operand",
    "layout": "moves elements without computing (reshape, transpose, slice, ...)",
    "norm": "normalises the last dim of `x`, scaled by `weight` (RMSNorm, LayerNorm)",
    "gemm": "a matrix product with a weight: x [..., K] @ W[N, K]^T",
    "row-kernel": "float math a generated row-wise kernel computes (elementwise ops, last-dim norms, softmax, slices)",
    "reads-cache": "reads a KV cache operand (`k_cache`/`v_cache` or `cache`) for layer `layer`",
    "writes-cache": "writes its `cache` operand in place and returns it (orders later reads after the write)",
    "inplace": "mutates an operand: never merged, moved across its readers, or deleted",
    "quantized": "reads a quantized weight or cache (int8/int4 codes with scales)",
    "speculative": "part of speculative decoding's draft/verify machinery",
}


# Variants: the same computation in another setting, declared with the op so that a pass finds the form it
# needs without a list of names (a new cache attention declares its own and the passes pick it up).
VARIANT_ROLES = {
    "int8-kv": "the same op over an int8 KV cache with per-row scales (quantize-kv)",
    "verify": "the same op over a token tree of drafted nodes written at slots (speculative verify)",
}


@dataclass(frozen=True)
class OperandSpec:
    name: str
    kind: str  # "one", "optional", "group" (variadic), "counted" (size from an attribute)
    min: int = 0  # for groups: the least number of operands
    count_attr: str = ""  # for "counted"
    when: Callable[[dict[str, Any]], bool] | None = None  # for "optional": present iff when(attrs)

    @staticmethod
    def parse(text: str, when: Callable[[dict[str, Any]], bool] | None = None) -> OperandSpec:
        if text.endswith("?"):
            return OperandSpec(text[:-1], "optional", when=when)
        if text.endswith("+"):
            return OperandSpec(text[:-1], "group", min=1)
        if text.endswith("*"):
            return OperandSpec(text[:-1], "group")
        if "*" in text:
            name, _, attr = text.partition("*")
            return OperandSpec(name, "counted", count_attr=attr)
        return OperandSpec(text, "one")


Binding = dict[str, "int | slice | None"]  # operand name -> its index, a slice (groups) or None (absent)


@dataclass(frozen=True)
class OpDef:
    name: str
    doc: str
    operand_specs: tuple[OperandSpec, ...]
    attrs: dict[str, Any]  # required attribute -> python type (or tuple of types)
    defaults: dict[str, Any]  # optional attribute -> default value
    traits: frozenset[str]
    shape: ShapeRule | None  # None: result types are declared by whoever builds the op
    reference: Reference | None
    max_operands: int = -1  # for ops with an open group: the most operands allowed (-1: no limit)
    min_operands: int = 0  # for ops with a counted group: the fewest operands allowed
    variants: dict[str, str] = field(default_factory=dict)  # role (VARIANT_ROLES) -> op name

    def variant(self, role: str) -> OpDef | None:
        """The declared ``role`` variant of this op (None when it has none)."""
        if role not in VARIANT_ROLES:
            raise IRError(f"unknown variant role {role!r}; roles are declared in kiln/ir/registry.py")
        name = self.variants.get(role)
        return lookup(name) if name is not None else None

    @property
    def operands(self) -> tuple[int, int]:
        """(min, max) operand count, max -1 for no limit, ignoring attribute-dependent presence."""
        lo = hi = 0
        open_group = False
        for s in self.operand_specs:
            if s.kind == "one":
                lo, hi = lo + 1, hi + 1
            elif s.kind == "optional":
                hi += 1
            else:
                lo += s.min
                open_group = True
        if open_group:
            hi = self.max_operands
        if any(s.kind == "counted" for s in self.operand_specs):
            lo = max(lo, self.min_operands)
        return lo, hi

    @property
    def operand_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.operand_specs)

    def attr(self, attrs: dict[str, Any], key: str) -> Any:
        if key in attrs:
            return attrs[key]
        if key in self.defaults:
            return self.defaults[key]
        raise IRError(f"{self.name}: missing attribute {key!r}")

    def bind(self, n: int, attrs: dict[str, Any]) -> Binding:
        """Which of ``n`` operands each declared name refers to, given the op's attributes."""
        specs = self.operand_specs
        merged = {**self.defaults, **attrs}
        fixed = 0  # operands that must be there: required ones and counted groups
        counts: dict[str, int] = {}
        for s in specs:
            if s.kind == "one":
                fixed += 1
            elif s.kind == "counted":
                c = merged.get(s.count_attr)
                if not isinstance(c, int) or isinstance(c, bool) or c < 0:
                    raise IRError(f"{self.name}: attribute {s.count_attr!r} must be a count, got {c!r}")
                counts[s.name] = c
                fixed += c
            elif s.kind == "optional" and s.when is not None:
                try:
                    counts[s.name] = 1 if s.when(merged) else 0
                except (KeyError, TypeError) as e:
                    raise IRError(f"{self.name}: cannot tell whether operand {s.name!r} is there: {e!r}") from None
                fixed += counts[s.name]
        spare = n - fixed
        if spare < 0:
            raise IRError(f"{self.name}: {n} operands, expected at least {fixed} ({', '.join(self.operand_names)})")
        for s in specs:  # optional operands without a rule take spare operands left to right
            if s.kind == "optional" and s.when is None:
                counts[s.name] = 1 if spare > 0 else 0
                spare -= counts[s.name]
        groups = [s for s in specs if s.kind == "group"]
        if groups:
            counts[groups[0].name] = spare
            spare = 0
        if spare or any(counts[s.name] < s.min for s in groups):
            raise IRError(f"{self.name}: {n} operands do not match ({', '.join(self.operand_names)})")
        out: Binding = {}
        i = 0
        for s in specs:
            if s.kind == "one":
                out[s.name] = i
                i += 1
            elif s.kind == "optional":
                out[s.name] = i if counts[s.name] else None
                i += counts[s.name]
            else:
                out[s.name] = slice(i, i + counts[s.name])
                i += counts[s.name]
        return out


OPS: dict[str, OpDef] = {}

# Attributes any op may carry that do not change its meaning (MLIR's discardable attributes): executors
# drop them before calling the reference. ``kernel`` is the group-kernels pass's kernel label.
DISCARDABLE_ATTRS = frozenset({"kernel"})


def declare(name: str, doc: str, operands: tuple[str, ...] = ("x",), attrs: dict | None = None,
            defaults: dict | None = None, traits: tuple[str, ...] = ("pure",),
            shape: ShapeRule | None = None, reference: Reference | None = None,
            when: dict[str, Callable[[dict[str, Any]], bool]] | None = None, max_operands: int = -1,
            min_operands: int = 0, variants: dict[str, str] | None = None) -> OpDef:
    """Declare op ``name``; ``operands`` names its operands (see the module docstring for the suffixes),
    ``when`` gives optional operands whose presence an attribute decides, ``variants`` the ops that do the
    same in another setting (role -> op name, roles in ``VARIANT_ROLES``)."""
    if name in OPS:
        raise IRError(f"op {name} declared twice")
    unknown = set(traits) - set(TRAITS)
    if unknown:
        raise IRError(f"op {name}: unknown traits {sorted(unknown)}; traits are declared in kiln/ir/registry.py")
    when = dict(when or {})
    specs = tuple(OperandSpec.parse(t, when.pop(t.rstrip("?"), None)) for t in operands)
    if when:
        raise IRError(f"op {name}: `when` names no optional operand: {sorted(when)}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names) or any(not n.isidentifier() for n in names):
        raise IRError(f"op {name}: operand names must be distinct identifiers, got {names}")
    if sum(s.kind == "group" for s in specs) > 1:
        raise IRError(f"op {name}: at most one variadic group")
    if set(variants or {}) - set(VARIANT_ROLES):
        raise IRError(f"op {name}: unknown variant roles {sorted(set(variants or {}) - set(VARIANT_ROLES))}")
    d = OpDef(name, doc, specs, dict(attrs or {}), dict(defaults or {}), frozenset(traits), shape, reference,
              max_operands, min_operands, dict(variants or {}))
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
    if trait not in TRAITS:
        raise IRError(f"unknown trait {trait!r}; traits are declared in kiln/ir/registry.py")
    d = OPS.get(name)
    return d is not None and trait in d.traits


def ops_with(trait: str) -> frozenset[str]:
    """The names of every op that has ``trait``."""
    if trait not in TRAITS:
        raise IRError(f"unknown trait {trait!r}; traits are declared in kiln/ir/registry.py")
    return frozenset(n for n, d in OPS.items() if trait in d.traits)


# ATen ops whose results are not a function of their inputs: never merged, folded or deleted
IMPURE_ATEN = ("rand", "randn", "randint", "randperm", "bernoulli", "dropout", "native_dropout", "normal",
               "uniform", "multinomial", "exponential", "empty", "empty_like", "empty_strided", "copy_")


def is_pure(op) -> bool:
    """Safe to CSE, fold and delete when unused (``kiln.aten`` unless it draws random numbers or is uninitialised)."""
    if op.name == "kiln.aten":
        name = op.attrs.get("target", "").removeprefix("aten::").split(".")[0]
        return name not in IMPURE_ATEN and not name.endswith("_")
    return has_trait(op.name, "pure")
