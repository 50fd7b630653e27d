"""``group-kernels``: group each program's ops into the kernels the Triton target launches.

The pass does not change what a program computes: it sets one attribute, ``kernel = "<kind><n>"``, on
every op that a generated or template kernel will compute, so ``kiln dump`` shows the grouping and the
Triton code generator (``kiln/codegen/triton``) reads it back. Ops without the attribute run through
torch on the device (views, embedding lookups, ``kiln.gather``, ...). Kinds:

* ``rowwise``: a connected set of elementwise ops, ``rms_norm`` / ``layer_norm`` / last-dim ``softmax``
  and last-dim ``slice`` of outside tensors, all with results ``[..., W]`` of one static width and the
  same leading shape; inputs are ``[..., W]`` rows or ``[W]`` vectors. Residual add + RMSNorm and
  ``silu(gate) * up`` (reading the fused gate/up output in place) each become one kernel.
* ``gemm``: a ``kiln.linear`` (bias in the kernel), with the elementwise group that is its only reader
  as the epilogue when that group has no reduction or slice (GPT-2's ``gelu(x W1 + b1)``).
* ``qgemm``: a ``kiln.qlinear`` (int8 or int4 weights unpacked in registers, bias in the kernel), with an
  epilogue chosen as for ``gemm``.
* ``rope``: the ``kiln.rope`` ops that share their cos/sin tables (q and k of one layer): one launch.
* ``attention``: ``kiln.attention`` without an explicit mask (flash-style, causal or not, GQA).
* ``cache_attention``: ``kiln.cache_attention`` (decode or packed prefill over the contiguous or paged
  cache, split along the sequence with a log-sum-exp merge).
* ``cache_attention_q8``: ``kiln.cache_attention_q8``, the same over the int8 cache (rows times scales).
* ``cache_write``: the K and V ``kiln.cache_write`` of one layer (same positions): one launch, in place.
* ``cache_write_q8``: the K and V ``kiln.cache_write_q8`` of one layer: quantized and written in one launch.

A group is kept only if it is convex: no path leaves the group and comes back into it through an op
outside it, so the kernel can run at one point of the program. The choices are counted in ``stats``
and listed per program in ``decisions``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.match import gemm_weight
from kiln.ir.types import KERNEL_FLOATS
from kiln.passes.base import Pass, register

KERNEL_ATTR = "kernel"
KINDS = ("rowwise", "gemm", "qgemm", "rope", "attention", "cache_attention", "cache_attention_q8", "cache_write",
         "cache_write_q8")
GEMM_KINDS = {"kiln.linear": "gemm", "kiln.qlinear": "qgemm"}


def kernel_label(kind: str, n: int) -> str:
    """``("rowwise", 3)`` -> ``"rowwise3"``; a kind ending in a digit gets a ``_``: ``"cache_write_q8_3"``."""
    return f"{kind}_{n}" if kind[-1].isdigit() else f"{kind}{n}"


def kernel_kind(label: str) -> str:
    """``"rowwise3"`` -> ``"rowwise"``, ``"cache_write_q8_3"`` -> ``"cache_write_q8"``."""
    return label.rstrip("0123456789").removesuffix("_")


def lowerable(op: Op) -> bool:
    """Whether a generated row-wise kernel can compute ``op``: an op with the ``row-kernel`` trait and a
    float result, within each op's own limits (shapes are the grouping's job). Backends that generate row
    kernels (``kiln/codegen/triton/rowwise.py``) cover every such op."""
    traits = op.opdef.traits
    if "row-kernel" not in traits or len(op.results) != 1 or op.result.type.dtype not in KERNEL_FLOATS:
        return False
    if op.name == "kiln.pow":
        return op.operand("b") is None and op.attrs.get("scalar") == 2 and not op.attrs.get("reverse")
    if "b" in op.opdef.operand_names and op.operand("b") is None:  # tensor op scalar
        s = op.attrs.get("scalar")
        return isinstance(s, (int, float)) and not isinstance(s, bool)
    if op.name == "kiln.cast":
        return op.operand("x").type.dtype in KERNEL_FLOATS
    if op.name == "kiln.softmax":
        return op.attrs["dim"] in (-1, op.result.type.rank - 1)
    if op.name == "kiln.slice":
        r = op.result.type.rank
        return op.attrs["dim"] in (-1, r - 1) and op.attrs.get("step", 1) == 1 and \
            op.operand("x").type.dtype in KERNEL_FLOATS
    return True


def _reduces(op: Op) -> bool:
    """A row kernel op that reads the whole row (norms, softmax): not an epilogue, which sees one tile."""
    return bool(op.opdef.traits & {"norm", "reduction"})


def _row_shape(v: Value):
    s = v.type.shape
    return (tuple(s[:-1]), s[-1]) if s and isinstance(s[-1], int) else None


def _fits_row(op: Op) -> bool:
    """Every operand is a full row of the result's shape or a [W] vector; the result is float."""
    if not lowerable(op):
        return False
    rs = _row_shape(op.result)
    if rs is None:
        return False
    lead, w = rs
    if op.name == "kiln.slice":
        src = op.operand("x").type.shape
        return tuple(src[:-1]) == lead and isinstance(src[-1], int)
    for v in op.operands:
        s = v.type.shape
        if tuple(s) != lead + (w,) and not (tuple(s) == (w,) and lead):
            return False
        if v.type.dtype not in KERNEL_FLOATS:
            return False
    return True


class _Grouper:
    def __init__(self, program: Program):
        self.p = program
        self.index = {id(op): i for i, op in enumerate(program.ops)}
        self.group: dict[int, int] = {}  # id(op) -> group number
        self.members: dict[int, list[Op]] = {}
        self.next_id = 0

    def convex(self, ops: list[Op]) -> bool:
        """No member reads (transitively, through non-members) a value computed by a member."""
        ids = {id(o) for o in ops}
        lo = min(self.index[id(o)] for o in ops)
        seen: set[int] = set()
        stack = [v.owner for o in ops for v in o.operands if v.owner is not None and id(v.owner) not in ids]
        while stack:
            o = stack.pop()
            if id(o) in seen or self.index[id(o)] < lo:
                continue
            seen.add(id(o))
            for v in o.operands:
                if v.owner is None:
                    continue
                if id(v.owner) in ids:
                    return False
                stack.append(v.owner)
        return True

    def add(self, ops: list[Op]) -> int:
        g = self.next_id
        self.next_id += 1
        self.members[g] = list(ops)
        for o in ops:
            self.group[id(o)] = g
        return g

    def merge_rowwise(self) -> None:
        for op in self.p.ops:
            if not _fits_row(op):
                continue
            shape = _row_shape(op.result)
            cands = []
            for v in op.operands:
                g = self.group.get(id(v.owner)) if v.owner is not None else None
                if g is not None and g not in cands and _row_shape(self.members[g][0].result) == shape:
                    cands.append(g)
            mine = [op]
            for g in cands:
                trial = self.members[g] + mine
                if self.convex(trial):
                    for o in self.members.pop(g):
                        self.group.pop(id(o))
                    mine = trial
            self.add(sorted(mine, key=lambda o: self.index[id(o)]))


@register
@dataclass
class GroupKernels(Pass):
    name = "group-kernels"
    summary = "group ops into the Triton target's kernels (kernel attribute; row-wise fusion, GEMM epilogues)"

    def apply(self, module: Module) -> bool:
        changed = False
        for prog in module.programs.values():
            for op in prog.ops:
                if op.attrs.pop(KERNEL_ATTR, None) is not None:
                    changed = True
            counts = self._program(prog)
            self.decisions[prog.name] = counts
            changed = changed or bool(counts)
        return changed

    def _program(self, prog: Program) -> dict[str, int]:
        g = _Grouper(prog)
        g.merge_rowwise()
        escaping = {id(v) for v in prog.outputs}
        groups: list[tuple[str, list[Op]]] = []
        absorbed: set[int] = set()
        rowwise = list(g.members.values())
        by_op = {id(o): ops for ops in rowwise for o in ops}
        for op in prog.ops:
            weight = gemm_weight(op) if op.name in GEMM_KINDS else None
            if weight is not None and all(isinstance(d, int) for d in weight.type.shape) and \
                    op.result.type.dtype in KERNEL_FLOATS and op.operand("x").type.dtype in KERNEL_FLOATS:
                ops = [op]
                users = op.result.users
                if len(users) == 1 and id(op.result) not in escaping and id(users[0]) in by_op:
                    epi = by_op[id(users[0])]
                    if id(epi[0]) not in absorbed and all(
                            "elementwise" in o.opdef.traits and not _reduces(o) for o in epi) and \
                            _row_shape(epi[0].result) == _row_shape(op.result) and g.convex([op, *epi]):
                        ops += epi
                        absorbed.add(id(epi[0]))
                        self.stats["gemm epilogue"] += 1
                groups.append((GEMM_KINDS[op.name], ops))
        for ops in rowwise:
            if id(ops[0]) in absorbed or all(o.name == "kiln.slice" for o in ops):
                continue  # an epilogue now, or only views
            groups.append(("rowwise", ops))
        ropes: dict[tuple[int, int], list[list[Op]]] = {}  # tables -> groups (q and k of one layer share one)
        for op in prog.walk("kiln.rope"):
            if op.result.type.dtype in KERNEL_FLOATS and isinstance(op.result.type.shape[-1], int):
                same = ropes.setdefault((id(op.operand("cos")), id(op.operand("sin"))), [])
                if same and g.convex([*same[-1], op]):
                    same[-1].append(op)
                else:
                    same.append([op])
        groups += [("rope", ops) for lists in ropes.values() for ops in lists]
        for op in prog.walk("kiln.attention"):
            if op.operand("mask") is None and isinstance(op.result.type.shape[-1], int):
                groups.append(("attention", [op]))
        groups += [("cache_attention", [op]) for op in prog.walk("kiln.cache_attention")]
        groups += [("cache_attention_q8", [op]) for op in prog.walk("kiln.cache_attention_q8")
                   if op.operand("q").type.dtype in KERNEL_FLOATS]
        for kind in ("cache_write", "cache_write_q8"):
            writes: list[list[Op]] = []  # K and V of one layer: same positions, one launch
            for op in prog.walk(f"kiln.{kind}"):
                if op.operand("x").type.dtype not in KERNEL_FLOATS or \
                        (kind == "cache_write" and op.operand("cache").type.dtype not in KERNEL_FLOATS):
                    continue
                last = writes[-1] if writes else None
                if last is not None and len(last) == 1 and last[0].attrs["layer"] == op.attrs["layer"] and \
                        all(last[0].operand(n) is op.operand(n) for n in ("pos", "seq", "table")) and \
                        g.convex([last[0], op]):
                    last.append(op)
                else:
                    writes.append([op])
            groups += [(kind, ops) for ops in writes]
        counts: dict[str, int] = {}
        index = {id(op): i for i, op in enumerate(prog.ops)}
        groups.sort(key=lambda kg: index[id(kg[1][0])])
        for n, (kind, ops) in enumerate(groups):
            for o in ops:
                o.attrs[KERNEL_ATTR] = kernel_label(kind, n)
            counts[kind] = counts.get(kind, 0) + 1
            self.stats[f"{kind} kernels"] += 1
            self.stats["ops in kernels"] += len(ops)
        return counts


def kernel_groups(prog: Program) -> list[tuple[str, list[Op]]]:
    """(label, ops in program order) for each ``kernel`` attribute value, in order of first op."""
    out: dict[str, list[Op]] = {}
    for op in prog.ops:
        label = op.attrs.get(KERNEL_ATTR)
        if isinstance(label, str):
            out.setdefault(label, []).append(op)
    return list(out.items())
