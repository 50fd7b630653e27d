"""Clean-up passes: ``dce``, ``cse``, ``fold-constants`` and ``canonicalize``.

This file owns the passes that simplify a module without changing what it
computes or how it is laid out for a target: dead-code elimination (ops and
the module's now-unused weights), common-subexpression elimination, folding of
weight-only computations into new weights, and the algebraic identities of
``canonicalize`` (each rewrite rule is a small function stating its algebra).
Every pass works on all programs of the module, counts rule matches in
``self.stats`` and returns whether it changed anything.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

from kiln.errors import ExecError
from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.interpret import ExecContext, PreparedOp
from kiln.ir.match import erase_unused, producer
from kiln.ir.registry import has_trait, is_pure
from kiln.ir.semantics import FROM_TORCH
from kiln.ir.types import SLICE_TO_END, TensorType, canon_dim, dim_mul, dims_equal
from kiln.passes.base import Pass, register

# ---------------------------------------------------------------------------
# shared helpers


def erase_dead(program: Program, ops: list[Op | None]) -> int:
    """Erase the pure ops of ``ops`` left without uses, and then their producers."""
    erased = 0
    work = [o for o in ops if o is not None]
    while work:
        op = work.pop()
        if op.program is not program or not is_pure(op) or any(r.uses for r in op.results):
            continue
        inputs = [v.owner for v in op.operands if v.owner is not None]
        program.erase(op)
        erased += 1
        work.extend(inputs)
    return erased


def unique_weight_name(weights: dict[str, Any], base: str, tensor: torch.Tensor | None = None) -> str:
    """``base`` or ``base.1``, ``base.2``...: the first name that is free, or that already holds ``tensor``."""
    name, n = base, 0
    while name in weights:
        old = weights[name]
        if tensor is not None and isinstance(old, torch.Tensor) and old.dtype == tensor.dtype \
                and old.shape == tensor.shape and torch.equal(old, tensor):
            return name
        n += 1
        name = f"{base}.{n}"
    return name


def tensor_matches(t: torch.Tensor, typ: TensorType) -> bool:
    return FROM_TORCH.get(t.dtype) == typ.dtype and tuple(t.shape) == typ.shape


# ---------------------------------------------------------------------------
# dce


@register
@dataclass
class DeadCodeElimination(Pass):
    name = "dce"
    summary = "Erase pure ops whose results are unused, then drop weights no program uses."

    def apply(self, module: Module) -> bool:
        changed = False
        for program in module.programs.values():
            # an unused pure op computes nothing anyone reads: op(...) with no uses == nothing
            erased = erase_unused(program)
            if erased:
                self.stats["dead-op"] += erased
                changed = True
        used = module.used_weights()
        for name in [n for n in module.weights if n not in used]:
            del module.weights[name]
            self.stats["dead-weight"] += 1
            changed = True
        return changed


# ---------------------------------------------------------------------------
# cse


def hashable(x: Any) -> Hashable:
    """A key for attribute data that tells 1, 1.0, True and -0.0 apart (they compute differently)."""
    if isinstance(x, (list, tuple)):
        return ("list", tuple(hashable(y) for y in x))
    if isinstance(x, dict):
        return ("dict", tuple(sorted((k, hashable(v)) for k, v in x.items())))
    if isinstance(x, float):
        return ("float", x.hex())
    try:
        hash(x)
    except TypeError:  # unhashable data never compares equal to another op's
        return ("object", id(x))
    return (type(x).__name__, x)


def cse_key(op: Op) -> Hashable:
    operands = [id(v) for v in op.operands]
    if has_trait(op.name, "commutative") and len(operands) == 2:
        operands.sort()
    return (op.name, tuple(operands), hashable(op.attrs), tuple(r.type for r in op.results))


@register
@dataclass
class CommonSubexpressionElimination(Pass):
    name = "cse"
    summary = "Merge pure ops with the same name, operands, attributes and result types."

    def apply(self, module: Module) -> bool:
        changed = False
        for program in module.programs.values():
            seen: dict[Hashable, Op] = {}
            for op in list(program.ops):
                if not is_pure(op):
                    continue
                key = cse_key(op)
                first = seen.setdefault(key, op)
                if first is op:
                    continue
                # pure ops are functions of operands and attributes: f(a) twice == f(a) once
                program.replace_op(op, list(first.results))
                self.stats["weight" if op.name == "kiln.weight" else "op"] += 1
                changed = True
        return changed


# ---------------------------------------------------------------------------
# fold-constants


def _source_tensor(op: Op, weights: dict[str, Any]) -> torch.Tensor | None:
    if op.name == "kiln.weight":
        t = weights.get(op.attrs["name"])
        return t if isinstance(t, torch.Tensor) else None
    if op.name == "kiln.constant" and op.result.type.is_static:
        return PreparedOp(op).run(ExecContext({}, weights), [])[0]
    return None


def _numel(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= d
    return n


@register
@dataclass
class FoldConstants(Pass):
    name = "fold-constants"
    summary = "Evaluate pure ops whose operands are all weights or constants into new weights."

    max_growth: float = 2.0  # skip results larger than this times their inputs' total size

    def apply(self, module: Module) -> bool:
        self.decisions.setdefault("folded", [])
        memo: dict[Hashable, str] = {}  # the same fold in another program reuses the weight it made
        changed = False
        for program in module.programs.values():
            for op in list(program.ops):
                if op.program is program and self._fold(module, program, op, memo):
                    changed = True
        return changed

    def _fold(self, module: Module, program: Program, op: Op, memo: dict[Hashable, str]) -> bool:
        # f(w1, ..., wn) with weights wi == a new weight holding f's value, computed once now
        if not op.operands or not is_pure(op) or has_trait(op.name, "source"):
            return False
        if any(v.owner is None or not has_trait(v.owner.name, "source") for v in op.operands):
            return False
        if not op.results or not all(r.type.is_static for r in op.results):
            return False
        if op.opdef.reference is None:
            return False
        inputs = [_source_tensor(v.owner, module.weights) for v in op.operands]
        if any(t is None for t in inputs):
            return False
        if sum(_numel(r.type) for r in op.results) > self.max_growth * sum(t.numel() for t in inputs):
            self.stats["skipped-too-large"] += 1
            return False
        names = [v.owner.attrs["name"] for v in op.operands if v.owner.name == "kiln.weight"]
        key = (op.name, tuple((v.owner.name, hashable(v.owner.attrs), v.type) for v in op.operands),
               hashable(op.attrs), tuple(r.type for r in op.results))
        suffix = op.name.split(".", 1)[1]
        base = f"{names[0] if names else 'const'}.{suffix}"
        outs = self._evaluate(module, op, inputs)
        if outs is None:
            return False
        new_values = []
        for i, (r, t) in enumerate(zip(op.results, outs)):
            wname = memo.get((key, i))
            if wname is None or wname not in module.weights:
                wname = unique_weight_name(module.weights, base if len(outs) == 1 else f"{base}.{i}", t)
                if wname not in module.weights:
                    module.weights[wname] = t
                    self.decisions["folded"].append(wname)
                memo[(key, i)] = wname
            w = program.create("kiln.weight", [], {"name": wname}, result_types=[r.type], before=op, loc=op.loc)
            new_values.append(w.result)
        dead = [v.owner for v in op.operands]
        program.replace_op(op, new_values)
        erase_dead(program, dead)
        self.stats[suffix] += 1
        return True

    def _evaluate(self, module: Module, op: Op, inputs: list[torch.Tensor]) -> list[torch.Tensor] | None:
        ctx = ExecContext({}, module.weights)
        with torch.no_grad():
            try:
                outs = PreparedOp(op).run(ctx, inputs)
            except KeyError:  # needs a symbolic size bound only at run time
                self.stats["skipped-symbolic"] += 1
                return None
            except ExecError:  # a different number of results than the op's type: leave the op alone
                return None
        if not all(isinstance(t, torch.Tensor) for t in outs):
            return None
        if not all(tensor_matches(t, r.type) for t, r in zip(outs, op.results)):
            self.stats["skipped-type-mismatch"] += 1
            return None
        return [t.detach().contiguous().clone() for t in outs]


# ---------------------------------------------------------------------------
# canonicalize: each rule maps an op to the value replacing its result, or None

Rule = Callable[[Program, Op], "Value | None"]


def _same_type_input(op: Op, name: str = "x") -> Value | None:
    x = op.operand(name)
    return x if x.type == op.result.type else None


def rule_identity_cast(program: Program, op: Op) -> Value | None:
    # cast(x: dtype d, d) == x
    return _same_type_input(op)


def rule_identity_reshape(program: Program, op: Op) -> Value | None:
    # reshape(x: [s...], [s...]) == x
    return _same_type_input(op)


def rule_identity_expand(program: Program, op: Op) -> Value | None:
    # expand(x: [s...], [s...]) == x
    return _same_type_input(op)


def rule_identity_transpose(program: Program, op: Op) -> Value | None:
    # transpose(x, d, d) == x
    r = op.operand("x").type.rank
    return op.operand("x") if op.attrs["dim0"] % max(r, 1) == op.attrs["dim1"] % max(r, 1) else None


def rule_identity_permute(program: Program, op: Op) -> Value | None:
    # permute(x, [0, 1, ..., n-1]) == x
    r = op.operand("x").type.rank
    return op.operand("x") if [d % max(r, 1) for d in op.attrs["dims"]] == list(range(r)) else None


def rule_transpose_pair(program: Program, op: Op) -> Value | None:
    # transpose(transpose(x, a, b), a, b) == x (also with a, b swapped)
    inner = producer(op.operand("x"), "kiln.transpose")
    if inner is None:
        return None
    r = op.result.type.rank
    if {op.attrs["dim0"] % r, op.attrs["dim1"] % r} != {inner.attrs["dim0"] % r, inner.attrs["dim1"] % r}:
        return None
    x = inner.operand("x")
    return x if x.type == op.result.type else None


def rule_reshape_reshape(program: Program, op: Op) -> Value | None:
    # reshape(reshape(x, s1), s2) == reshape(x, s2)
    inner = producer(op.operand("x"), "kiln.reshape")
    if inner is None:
        return None
    new = program.create("kiln.reshape", [inner.operand("x")], dict(op.attrs), before=op, loc=op.loc)
    return new.result


def _scalar_identity(op: Op, unit: int) -> Value | None:
    s = op.attrs.get("scalar")
    if op.operand("b") is not None or op.attrs.get("reverse") or isinstance(s, bool) or \
            not isinstance(s, (int, float)):
        return None
    return _same_type_input(op, "a") if s == unit else None


def rule_add_sub_zero(program: Program, op: Op) -> Value | None:
    # x + 0 == x - 0 == x (when the result keeps x's type)
    return _scalar_identity(op, 0)


def rule_mul_div_one(program: Program, op: Op) -> Value | None:
    # x * 1 == x / 1 == x (when the result keeps x's type)
    return _scalar_identity(op, 1)


def rule_full_slice(program: Program, op: Op) -> Value | None:
    # x[..., 0:end] == x when end reaches the end of the dim
    x = op.operand("x")
    if op.attrs["start"] != 0 or op.attrs.get("step", 1) != 1:
        return None
    size = x.type.shape[op.attrs["dim"] % x.type.rank]
    end = op.attrs["end"]
    if end >= SLICE_TO_END or (isinstance(size, int) and end >= size):
        return _same_type_input(op)
    return None


def rule_flattened_linear(program: Program, op: Op) -> Value | None:
    # reshape(linear(reshape(x, [M, K]), w, b), S + [N]) == linear(reshape(x, S + [K]), w, b) if prod(S) == M
    lin = producer(op.operand("x"), "kiln.linear")
    if lin is None or len(lin.result.users) != 1:
        return None
    flat = producer(lin.operand("x"), "kiln.reshape")
    if flat is None or flat.result.type.rank != 2 or lin.result.type.rank != 2:
        return None
    x = flat.operand("x")
    m, k = flat.result.type.shape
    out = op.result.type.shape
    if not out or not dims_equal(out[-1], lin.result.type.shape[-1]) or not dims_equal(dim_mul(*out[:-1]), m):
        return None
    target = tuple(out[:-1]) + (k,)
    if x.type.shape != tuple(canon_dim(d) for d in target):
        if len(flat.result.users) != 1:  # the flat view stays anyway: rewriting would add an op
            return None
        x = program.create("kiln.reshape", [x], {"shape": list(target)}, before=op, loc=flat.loc).result
    params = [v for v in (lin.operand("weight"), lin.operand("bias")) if v is not None]
    new = program.create("kiln.linear", [x, *params], {**lin.attrs}, before=op, loc=lin.loc)
    if new.result.type != op.result.type:
        erase_dead(program, [new])
        return None
    return new.result


CANONICAL_RULES: dict[str, list[tuple[str, Rule]]] = {
    "kiln.cast": [("identity-cast", rule_identity_cast)],
    "kiln.reshape": [("identity-reshape", rule_identity_reshape), ("flattened-linear", rule_flattened_linear),
                     ("reshape-reshape", rule_reshape_reshape)],
    "kiln.expand": [("identity-expand", rule_identity_expand)],
    "kiln.transpose": [("identity-transpose", rule_identity_transpose), ("transpose-pair", rule_transpose_pair)],
    "kiln.permute": [("identity-permute", rule_identity_permute)],
    "kiln.add": [("add-zero", rule_add_sub_zero)],
    "kiln.sub": [("sub-zero", rule_add_sub_zero)],
    "kiln.mul": [("mul-one", rule_mul_div_one)],
    "kiln.div": [("div-one", rule_mul_div_one)],
    "kiln.slice": [("full-slice", rule_full_slice)],
}


@register
@dataclass
class Canonicalize(Pass):
    name = "canonicalize"
    summary = "Apply algebraic identities (identity views, x+0, x*1, reshape chains, flattened linears) to a fixed point."

    max_rounds: int = 100

    def apply(self, module: Module) -> bool:
        changed = False
        for program in module.programs.values():
            for _ in range(self.max_rounds):
                if not self._round(program):
                    break
                changed = True
        return changed

    def _round(self, program: Program) -> bool:
        changed = False
        for op in list(program.ops):
            if op.program is not program:
                continue
            for rule_name, rule in CANONICAL_RULES.get(op.name, []):
                new = rule(program, op)
                if new is None:
                    continue
                inputs = [v.owner for v in op.operands]
                program.replace_op(op, [new])
                erase_dead(program, inputs)
                self.stats[rule_name] += 1
                changed = True
                break
        return changed


__all__ = [
    "CANONICAL_RULES",
    "Canonicalize",
    "CommonSubexpressionElimination",
    "DeadCodeElimination",
    "FoldConstants",
    "erase_dead",
    "hashable",
    "producer",
    "unique_weight_name",
]
