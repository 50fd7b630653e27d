"""Fusion passes: ``fuse-qkv`` and ``fuse-gate-up``.

This file owns the rewrites that merge several ``kiln.linear`` ops reading the
same activation into one linear over a concatenated weight, followed by
``kiln.slice`` ops on the last (static) dim that stand for the original
results:

    linear(x, w1, b1?), ..., linear(x, wn, bn?)
        ==  slice(linear(x, cat([w1..wn], 0), cat([b1..bn])?), -1, o_i, o_i + n_i)

The concatenated weights are new entries of ``module.weights`` named after the
common prefix of the old names (``...self_attn.qkv_proj.weight``,
``...mlp.gate_up_proj.weight``); the old weights become unused and ``dce``
drops them. Each fused group is recorded in ``self.decisions["fused"]`` as
``{new name: [old names]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kiln.ir import ops as _ops  # noqa: F401  (declares the ops)
from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.match import producer
from kiln.ir.types import TensorType
from kiln.passes.base import Pass, register
from kiln.passes.cleanup import erase_dead, tensor_matches, unique_weight_name

ACTIVATIONS = ("kiln.silu", "kiln.gelu")

# ---------------------------------------------------------------------------
# naming


def _common_suffix(strings: list[str]) -> str:
    out = strings[0]
    for s in strings[1:]:
        n = 0
        while n < min(len(out), len(s)) and out[len(out) - 1 - n] == s[len(s) - 1 - n]:
            n += 1
        out = out[len(out) - n:] if n else ""
    return out


def fused_name(names: list[str]) -> str:
    """``a.b.q_proj.weight``, ``a.b.k_proj.weight``, ``a.b.v_proj.weight`` -> ``a.b.qkv_proj.weight``."""
    parts = [n.split(".") for n in names]
    pre = 0
    while all(len(p) > pre for p in parts) and len({p[pre] for p in parts}) == 1:
        pre += 1
    post = 0
    while all(len(p) - pre > post for p in parts) and len({p[len(p) - 1 - post] for p in parts}) == 1:
        post += 1
    middles = ["_".join(p[pre:len(p) - post]) for p in parts]
    suffix = _common_suffix(middles)
    suffix = suffix[suffix.index("_"):] if "_" in suffix else ""
    heads = [m[:len(m) - len(suffix)] for m in middles]
    if not all(heads):
        heads, suffix = [m for m in middles if m], ""
    if not heads:
        heads = ["fused"]
    head = "".join(heads) if all(len(h) == 1 for h in heads) else "_".join(heads)
    p0 = parts[0]
    return ".".join(p0[:pre] + [head + suffix] + p0[len(p0) - post:])


# ---------------------------------------------------------------------------
# the shared rewrite


def _weight(module: Module, v: Value) -> tuple[str, torch.Tensor] | None:
    """(name, tensor) when ``v`` is a ``kiln.weight`` whose tensor the module holds."""
    op = producer(v, "kiln.weight")
    if op is None:
        return None
    t = module.weights.get(op.attrs["name"])
    if not isinstance(t, torch.Tensor) or not tensor_matches(t, v.type):
        return None
    return op.attrs["name"], t


def fusable(module: Module, lins: list[Op]) -> bool:
    """Linears on one x with weight (and bias) tensors of one dtype and K, all with bias or none."""
    x = lins[0].operand("x")
    if any(lin.operand("x") is not x for lin in lins) or len({id(lin) for lin in lins}) != len(lins):
        return False
    if len({lin.operand("bias") is None for lin in lins}) != 1:
        return False
    for name in _params(lins[0]):
        found = [_weight(module, lin.operand(name)) for lin in lins]
        if any(f is None for f in found) or len({f[1].dtype for f in found}) != 1:
            return False
        if name == "weight" and (any(f[1].dim() != 2 for f in found) or len({f[1].shape[1] for f in found}) != 1):
            return False
    return True


def _params(lin: Op) -> list[str]:
    """The names of a linear's parameter operands: its weight, and its bias when it has one."""
    return ["weight"] if lin.operand("bias") is None else ["weight", "bias"]


class LinearFuser:
    """Concatenates the weights of linear groups into new module weights (shared across programs)."""

    def __init__(self, module: Module, decisions: dict[str, Any]) -> None:
        self.module = module
        self.fused: dict[str, list[str]] = decisions.setdefault("fused", {})
        self.memo: dict[tuple[str, ...], str] = {}

    def _concat(self, operands: list[Value]) -> tuple[str, TensorType]:
        found = [_weight(self.module, v) for v in operands]
        olds = [f[0] for f in found]
        key = tuple(olds)
        tensor = None
        name = self.memo.get(key)
        if name is None or name not in self.module.weights:
            tensor = torch.cat([f[1] for f in found], dim=0).contiguous()
            name = unique_weight_name(self.module.weights, fused_name(olds), tensor)
            if name not in self.module.weights:
                self.module.weights[name] = tensor
                self.fused[name] = olds
            self.memo[key] = name
        t = self.module.weights[name]
        return name, TensorType(operands[0].type.dtype, tuple(t.shape))

    def fuse(self, program: Program, lins: list[Op], keep_order: bool = False) -> bool:
        # linear(x, w_i, b_i) == slice(linear(x, cat(w), cat(b)), -1, o_i, o_i + N_i)
        if not keep_order:
            lins = sorted(lins, key=program.index_of)
        anchor = min(lins, key=program.index_of)
        created: list[Op] = []
        params = []
        for param in _params(anchor):
            name, typ = self._concat([lin.operand(param) for lin in lins])
            w = program.create("kiln.weight", [], {"name": name}, result_types=[typ], before=anchor, loc=anchor.loc)
            created.append(w)
            params.append(w.result)
        x = anchor.operand("x")
        fused = program.create("kiln.linear", [x] + params, before=anchor, loc=anchor.loc)
        created.append(fused)
        last = fused.result.type.rank - 1
        slices, offset = [], 0
        for lin in lins:
            n = lin.operand("weight").type.shape[0]
            s = program.create("kiln.slice", [fused.result], {"dim": last, "start": offset, "end": offset + n},
                               before=anchor, loc=lin.loc)
            created.append(s)
            slices.append(s.result)
            offset += n
        if any(s.type != lin.result.type for s, lin in zip(slices, lins)):
            for op in reversed(created):
                if op.program is program and not any(r.uses for r in op.results):
                    program.erase(op)
            return False
        for lin, s in zip(lins, slices):
            inputs = [lin.operand(p).owner for p in _params(lin)]
            program.replace_op(lin, [s])
            erase_dead(program, inputs)
        return True


# ---------------------------------------------------------------------------
# fuse-qkv


def qkv_groups(program: Program) -> list[list[Op]]:
    """The linears of each value read by exactly three linears (as their input x)."""
    by_x: dict[int, list[Op]] = {}
    for op in program.walk("kiln.linear"):
        by_x.setdefault(id(op.operand("x")), []).append(op)
    return [lins for lins in by_x.values() if len(lins) == 3]


@register
@dataclass
class FuseQKV(Pass):
    name = "fuse-qkv"
    summary = "Merge the three linears reading one activation (q, k, v) into one linear and three slices."

    def apply(self, module: Module) -> bool:
        fuser = LinearFuser(module, self.decisions)
        changed = False
        for program in module.programs.values():
            for lins in qkv_groups(program):
                if fusable(module, lins) and fuser.fuse(program, lins):
                    self.stats["qkv"] += 1
                    changed = True
        return changed


# ---------------------------------------------------------------------------
# fuse-gate-up


def gate_up_pair(op: Op) -> tuple[Op, Op] | None:
    """(gate, up) linears when ``op`` is act(linear(x, wg)) * linear(x, wu) (either operand order)."""
    if op.name != "kiln.mul" or op.operand("b") is None:
        return None
    a0, b0 = op.operand("a"), op.operand("b")
    for a, b in ((a0, b0), (b0, a0)):
        act = a.owner
        if act is None or act.name not in ACTIVATIONS:
            continue
        gate, up = producer(act.operand("x"), "kiln.linear"), producer(b, "kiln.linear")
        if gate is None or up is None or gate is up or gate.operand("x") is not up.operand("x"):
            continue
        if gate.operand("bias") is None and up.operand("bias") is None:
            return gate, up
    return None


@register
@dataclass
class FuseGateUp(Pass):
    name = "fuse-gate-up"
    summary = "Merge the gate and up linears of a gated MLP (act(x Wg) * x Wu) into one linear and two slices."

    def apply(self, module: Module) -> bool:
        fuser = LinearFuser(module, self.decisions)
        changed = False
        for program in module.programs.values():
            for op in program.walk("kiln.mul"):
                pair = gate_up_pair(op)
                if pair is None or any(p.program is not program for p in pair):
                    continue
                # the fused weight is [gate; up] whatever the program order
                if fusable(module, list(pair)) and fuser.fuse(program, list(pair), keep_order=True):
                    self.stats["gate-up"] += 1
                    changed = True
        return changed
