"""Triton source for a fused row-wise group: elementwise ops and last-dim reductions in one kernel.

A row-wise group (made by the ``group-kernels`` pass) is a set of ops whose results all have the same
shape ``[..., W]`` with a static width ``W``: elementwise ops, ``kiln.rms_norm``, ``kiln.layer_norm``,
``kiln.softmax`` over the last dim, and ``kiln.slice`` of the last dim of a tensor produced outside the
group (read in place, at a column offset: ``silu(gate) * up`` reads both halves of the fused gate/up
projection without a copy). One program handles one row: it loads every input row once, computes the
ops in program order in float32 registers, and stores each result that someone outside the group reads.

``EXPR`` is the lowering table, keyed by op name: text of a Triton expression for the op's result given
its operands' expressions. ``lowerable(op)`` (the pass's, from the ``row-kernel`` trait) is what the pass asks; a group that reaches
``generate_rowwise`` with an op outside the table is a loud error, never a silent fallback. This module
only writes text; it does not import Triton.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kiln.ir.core import IRError, Op, Value
from kiln.ir.types import DType
from kiln.passes.kernel_fusion import lowerable  # what the grouping pass put in a row kernel

TL_DTYPE = {DType.f32: "tl.float32", DType.f16: "tl.float16", DType.bf16: "tl.bfloat16"}

_UNARY: dict[str, str] = {
    "kiln.neg": "(-{a})",
    "kiln.abs": "tl.abs({a})",
    "kiln.exp": "tl.exp({a})",
    "kiln.log": "tl.log({a})",
    "kiln.sqrt": "tl.sqrt({a})",
    "kiln.rsqrt": "tl.rsqrt({a})",
    "kiln.tanh": "(2.0 * tl.sigmoid(2.0 * {a}) - 1.0)",
    "kiln.sigmoid": "tl.sigmoid({a})",
    "kiln.silu": "({a} * tl.sigmoid({a}))",
    "kiln.relu": "tl.maximum({a}, 0.0)",
    "kiln.cos": "tl.cos({a})",
    "kiln.sin": "tl.sin({a})",
    "kiln.reciprocal": "(1.0 / {a})",
    "kiln.erf": "tl.erf({a})",
}
_BINARY: dict[str, str] = {
    "kiln.add": "({a} + {b})",
    "kiln.sub": "({a} - {b})",
    "kiln.mul": "({a} * {b})",
    "kiln.div": "({a} / {b})",
    "kiln.maximum": "tl.maximum({a}, {b})",
    "kiln.minimum": "tl.minimum({a}, {b})",
}
REDUCTIONS = ("kiln.rms_norm", "kiln.layer_norm", "kiln.softmax")


def _gelu(op: Op, a: list[str]) -> str:
    x = a[0]
    if op.attrs.get("approximate", "none") == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        inner = f"0.7978845608028654 * ({x} + 0.044715 * {x} * {x} * {x})"
        return f"(0.5 * {x} * (1.0 + (2.0 * tl.sigmoid(2.0 * ({inner})) - 1.0)))"
    return f"(0.5 * {x} * (1.0 + tl.erf({x} * 0.7071067811865476)))"


def _binary(op: Op, a: list[str]) -> str:
    if len(a) == 2:
        return _BINARY[op.name].format(a=a[0], b=a[1])
    s = repr(float(op.attrs["scalar"]))
    x, y = (s, a[0]) if op.attrs.get("reverse") else (a[0], s)
    return _BINARY[op.name].format(a=x, b=y)


def _pow(op: Op, a: list[str]) -> str:
    return f"({a[0]} * {a[0]})"  # lowerable only for the scalar exponent 2 (x ** 2 == x * x)


def _cast(op: Op, a: list[str]) -> str:
    dt = op.attrs["dtype"]
    return a[0] if dt == DType.f32 else f"{a[0]}.to({TL_DTYPE[dt]}).to(tl.float32)"  # round as the cast does


def _unary(op: Op, a: list[str]) -> str:
    return _UNARY[op.name].format(a=a[0])


EXPR: dict[str, Callable[[Op, list[str]], str]] = {
    **dict.fromkeys(_UNARY, _unary),
    **dict.fromkeys(_BINARY, _binary),
    "kiln.gelu": _gelu,
    "kiln.pow": _pow,
    "kiln.cast": _cast,
}


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def rowwise_warps(width: int) -> int:
    """Default warps for a row of ``width`` elements: 1 up to 256, 4 up to 2048, 8 beyond."""
    return 1 if width <= 256 else 4 if width <= 2048 else 8


@dataclass
class RowInput:
    value: Value  # the tensor passed to the kernel
    kind: str  # "row": [..., W] read at the row; "vec": [W] the same for every row; "slice": a column window
    width: int  # elements per row of the tensor passed (the base's width for "slice")
    start: int = 0  # first column ("slice")


@dataclass
class KernelSource:
    name: str
    source: str
    inputs: list[Any]
    outputs: list[Value]
    meta: dict[str, Any]


def _static_width(v: Value) -> int:
    w = v.type.shape[-1] if v.type.shape else 1
    if not isinstance(w, int):
        raise IRError(f"row-wise kernel: the last dim of {v.type} is not static")
    return w


def generate_rowwise(name: str, ops: list[Op], escaping: set[int]) -> KernelSource:
    """Triton source of one row-wise group. ``ops`` in program order; ``escaping`` holds the ids of the
    result values read outside the group (or returned): those are the kernel's outputs."""
    members = {id(r) for op in ops for r in op.results}
    width = _static_width(ops[-1].results[0])
    inputs: list[RowInput] = []
    in_name: dict[tuple[int, int], str] = {}
    body: list[str] = []
    names: dict[int, str] = {}

    def load(v: Value, kind: str, start: int = 0) -> str:
        key = (id(v), start if kind == "slice" else -1)
        if key not in in_name:
            k = len(inputs)
            w = _static_width(v)
            inputs.append(RowInput(v, kind, w, start))
            ptr = f"in{k}"
            off = {"row": f"row * {w} + cols", "vec": "cols", "slice": f"row * {w} + {start} + cols"}[kind]
            body.append(f"x{k} = tl.load({ptr} + {off}, mask=mask, other=0.0).to(tl.float32)")
            in_name[key] = f"x{k}"
        return in_name[key]

    def operand(v: Value) -> str:
        if id(v) in members:
            return names[id(v)]
        shape = v.type.shape
        if len(shape) == 1 and shape[0] == width and len(ops[-1].results[0].type.shape) > 1:
            return load(v, "vec")
        return load(v, "row")

    for j, op in enumerate(ops):
        if not lowerable(op):
            raise IRError(f"row-wise kernel {name}: {op.name} has no Triton lowering (kiln/codegen/triton/rowwise.py)")
        out = f"v{j}"
        if op.name == "kiln.slice":
            if id(op.operand("x")) in members:
                raise IRError(f"row-wise kernel {name}: a slice of a value computed in the group")
            body.append(f"{out} = {load(op.operand('x'), 'slice', op.attrs['start'])}")
        elif op.name == "kiln.rms_norm":  # w * (x * rsqrt(mean(x^2) + eps)), rounded to x's dtype first
            x, w = operand(op.operand("x")), operand(op.operand("weight"))
            body.append(f"ms{j} = tl.sum(tl.where(mask, {x} * {x}, 0.0), axis=0) / {width}")
            h = f"({x} * tl.rsqrt(ms{j} + {float(op.attrs['eps'])!r}))"
            dt = op.operand("x").type.dtype
            if dt != DType.f32:
                h = f"{h}.to({TL_DTYPE[dt]}).to(tl.float32)"
            body.append(f"{out} = {w} * {h}")
        elif op.name == "kiln.layer_norm":  # (x - mean) * rsqrt(var + eps) [* w] [+ b]
            x = operand(op.operand("x"))
            body.append(f"mu{j} = tl.sum(tl.where(mask, {x}, 0.0), axis=0) / {width}")
            body.append(f"xc{j} = tl.where(mask, {x} - mu{j}, 0.0)")
            body.append(f"var{j} = tl.sum(xc{j} * xc{j}, axis=0) / {width}")
            e = f"xc{j} * tl.rsqrt(var{j} + {float(op.attrs['eps'])!r})"
            if op.operand("weight") is not None:
                e = f"{e} * {operand(op.operand('weight'))}"
            if op.operand("bias") is not None:
                e = f"{e} + {operand(op.operand('bias'))}"
            body.append(f"{out} = {e}")
        elif op.name == "kiln.softmax":  # exp(x - max) / sum(exp(x - max)) over the row
            x = operand(op.operand("x"))
            body.append(f"mx{j} = tl.max(tl.where(mask, {x}, float('-inf')), axis=0)")
            body.append(f"ex{j} = tl.where(mask, tl.exp({x} - mx{j}), 0.0)")
            body.append(f"{out} = ex{j} / tl.sum(ex{j}, axis=0)")
        else:
            body.append(f"{out} = {EXPR[op.name](op, [operand(v) for v in op.operands])}")
        names[id(op.result)] = out
    outputs = [op.result for op in ops if id(op.result) in escaping]
    if not outputs:
        raise IRError(f"row-wise kernel {name}: no result is read outside the group")
    stores = [f"tl.store(out{k} + row * {width} + cols, {names[id(v)]}.to(out{k}.dtype.element_ty), mask=mask)"
              for k, v in enumerate(outputs)]
    params = ", ".join([f"in{k}" for k in range(len(inputs))] + [f"out{k}" for k in range(len(outputs))])
    lines = [
        "@triton.jit",
        f"def {name}({params}, BLOCK: tl.constexpr):",
        (f"    # {len(ops)} ops: {', '.join(op.name.removeprefix('kiln.') for op in ops)}; one program per "
         f"row of {width}"),
        "    row = tl.program_id(0).to(tl.int64)",
        "    cols = tl.arange(0, BLOCK)",
        f"    mask = cols < {width}",
        *(f"    {s}" for s in body + stores),
    ]
    return KernelSource(name, "\n".join(lines) + "\n", inputs, outputs,
                        {"kind": "rowwise", "width": width, "BLOCK": next_pow2(width),
                         "num_warps": rowwise_warps(width)})
