"""ONNX lowerings of kiln's float ops (registered in ``LOWER``, kiln/export/onnx_emit.py): elementwise,
reductions, layout, linear algebra, norms, positions and rotary embeddings, and full-sequence attention.
Standard ``ai.onnx`` ops only; each follows the op's reference semantics in kiln/ir/ops.py.
"""

from __future__ import annotations

import math

import numpy as np

from kiln.errors import KilnError
from kiln.export.onnx_emit import NEG_INF, NP_DTYPE, ONNX_DTYPE, Emitter, _heads, _in, _out, lower
from kiln.ir.core import Op
from kiln.ir.ops import promote
from kiln.ir.types import DType

# -- sources ----------------------------------------------------------------------------------------

@lower("kiln.weight")
def _weight(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    name = op.attr("name")
    from kiln.codegen.native import unpacked

    e.lazy[name] = lambda: e.weight(name, unpacked(e.weights[name]))
    return [name]


@lower("kiln.constant")
def _constant(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    t = op.results[0].type
    v = op.attr("value")
    fill = np.asarray(v, dtype=NP_DTYPE[t.dtype])
    if all(isinstance(d, int) for d in t.shape):
        return [e.const(np.broadcast_to(fill, t.shape).copy(), NP_DTYPE[t.dtype])]
    return [e.node("Expand", [e.const(fill, NP_DTYPE[t.dtype]), e.shape(t.shape)])]


# -- elementwise --------------------------------------------------------------------------------------

UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "tanh": "Tanh",
         "sigmoid": "Sigmoid", "relu": "Relu", "cos": "Cos", "sin": "Sin", "reciprocal": "Reciprocal",
         "erf": "Erf", "logical_not": "Not"}


@lower(*(f"kiln.{n}" for n in UNARY))
def _unary(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    x = e.cast(xs[0], _in(op, 0), _out(op))
    return [e.node(UNARY[op.name.removeprefix("kiln.")], [x])]


@lower("kiln.rsqrt")
def _rsqrt(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Reciprocal", [e.node("Sqrt", [e.cast(xs[0], _in(op, 0), _out(op))])])]


@lower("kiln.silu")
def _silu(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    x = e.cast(xs[0], _in(op, 0), _out(op))
    return [e.node("Mul", [x, e.node("Sigmoid", [x])])]


@lower("kiln.gelu")
def _gelu(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    x = e.cast(xs[0], _in(op, 0), _out(op))
    dt = NP_DTYPE[_out(op)]
    half = e.node("Mul", [x, e.const(0.5, dt)])
    if op.attr("approximate") == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = e.node("Mul", [e.node("Mul", [x, x]), x])
        inner = e.node("Add", [x, e.node("Mul", [cube, e.const(0.044715, dt)])])
        t = e.node("Tanh", [e.node("Mul", [inner, e.const(math.sqrt(2 / math.pi), dt)])])
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = e.node("Erf", [e.node("Mul", [x, e.const(1 / math.sqrt(2), dt)])])
    return [e.node("Mul", [half, e.node("Add", [t, e.const(1.0, dt)])])]


BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
          "minimum": "Min", "and": "And", "or": "Or", "eq": "Equal", "lt": "Less", "le": "LessOrEqual",
          "gt": "Greater", "ge": "GreaterOrEqual", "ne": "Equal"}


@lower(*(f"kiln.{n}" for n in BINARY))
def _binary(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    kind = op.name.removeprefix("kiln.")
    out = _out(op)
    if kind in ("and", "or"):
        work = DType.i1
    elif out == DType.i1:  # a comparison: both sides in their common type
        work = op.operands[0].type.dtype if len(xs) == 1 else _common(_in(op, 0), _in(op, 1))
        if len(xs) == 1 and isinstance(op.attr("scalar"), float) and not work.is_float:
            work = DType.f32
    else:
        work = out
    a = e.cast(xs[0], _in(op, 0), work)
    if len(xs) == 2:
        b = e.cast(xs[1], _in(op, 1), work)
    else:
        b = e.const(op.attr("scalar"), NP_DTYPE[work])
        if op.attr("reverse"):
            a, b = b, a
    r = e.node(BINARY[kind], [a, b])
    return [e.node("Not", [r]) if kind == "ne" else r]


def _common(a: DType, b: DType) -> DType:
    return promote(a, b)


@lower("kiln.where")
def _where(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    out = _out(op)
    return [e.node("Where", [e.cast(xs[0], _in(op, 0), DType.i1), e.cast(xs[1], _in(op, 1), out),
                             e.cast(xs[2], _in(op, 2), out)])]


@lower("kiln.cast")
def _cast(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Cast", [xs[0]], to=ONNX_DTYPE[_out(op)])]


# -- reductions ---------------------------------------------------------------------------------------

@lower("kiln.sum", "kiln.mean", "kiln.amax")
def _reduce(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    kind = {"kiln.sum": "ReduceSum", "kiln.mean": "ReduceMean", "kiln.amax": "ReduceMax"}[op.name]
    return [e.node(kind, [xs[0], e.const(list(op.attr("dims")))], keepdims=int(op.attr("keepdim")))]


@lower("kiln.softmax")
def _softmax(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Softmax", [xs[0]], axis=op.attr("dim"))]


# -- layout -------------------------------------------------------------------------------------------

@lower("kiln.reshape")
def _reshape(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Reshape", [xs[0], e.shape(op.results[0].type.shape)])]


@lower("kiln.expand")
def _expand(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Expand", [xs[0], e.shape(op.results[0].type.shape)])]


@lower("kiln.transpose", "kiln.permute")
def _transpose(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    rank = op.operands[0].type.rank
    if op.name == "kiln.permute":
        perm = [d % rank for d in op.attr("dims")]
    else:
        perm = list(range(rank))
        i, j = op.attr("dim0") % rank, op.attr("dim1") % rank
        perm[i], perm[j] = perm[j], perm[i]
    return [e.node("Transpose", [xs[0]], perm=perm)]


@lower("kiln.unsqueeze")
def _unsqueeze(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Unsqueeze", [xs[0], e.const([op.attr("dim")])])]


@lower("kiln.squeeze")
def _squeeze(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Squeeze", [xs[0], e.const([op.attr("dim")])])]


@lower("kiln.slice")
def _slice(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Slice", [xs[0], e.const([op.attr("start")]), e.const([op.attr("end")]),
                             e.const([op.attr("dim")]), e.const([op.attr("step")])])]


@lower("kiln.cat")
def _cat(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    out = _out(op)
    return [e.node("Concat", [e.cast(x, v.type.dtype, out) for x, v in zip(xs, op.operands)], axis=op.attr("dim"))]


@lower("kiln.gather")
def _gather(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Gather", [xs[0], xs[1]], axis=op.attr("dim"))]


@lower("kiln.embedding")
def _embedding(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    return [e.node("Gather", [xs[0], xs[1]], axis=0)]


# -- linear algebra and norms -------------------------------------------------------------------------

@lower("kiln.linear")
def _linear(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    out = _out(op)
    x = e.cast(xs[0], _in(op, 0), out)
    w = e.cast(e.node("Transpose", [xs[1]], perm=[1, 0]), _in(op, 1), out)
    y = e.node("MatMul", [x, w])
    return [e.node("Add", [y, e.cast(xs[2], _in(op, 2), out)]) if len(xs) == 3 else y]


@lower("kiln.matmul")
def _matmul(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    out = _out(op)
    return [e.node("MatMul", [e.cast(xs[0], _in(op, 0), out), e.cast(xs[1], _in(op, 1), out)])]


@lower("kiln.rms_norm")
def _rms_norm(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    # w * (x * rsqrt(mean(x^2, -1) + eps)), the normalisation in float32 (the reference's order)
    h = e.cast(xs[0], _in(op, 0), DType.f32)
    ms = e.node("ReduceMean", [e.node("Mul", [h, h]), e.const([-1])], keepdims=1)
    r = e.node("Reciprocal", [e.node("Sqrt", [e.node("Add", [ms, e.const(op.attr("eps"), np.float32)])])])
    h = e.cast(e.node("Mul", [h, r]), DType.f32, _in(op, 0))
    out = _out(op)
    return [e.node("Mul", [e.cast(xs[1], _in(op, 1), out), e.cast(h, _in(op, 0), out)])]


@lower("kiln.layer_norm")
def _layer_norm(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    m = op.operand_map()
    x = op.operands[0]
    dt = NP_DTYPE[x.type.dtype]
    d = x.type.shape[-1]
    w = e.value(m["weight"]) if m["weight"] is not None else e.const(np.ones([d]), dt)
    ins = [xs[0], w] + ([e.value(m["bias"])] if m["bias"] is not None else [])
    return [e.node("LayerNormalization", ins, axis=-1, epsilon=op.attr("eps"))]


# -- positions and rotary embeddings ------------------------------------------------------------------

@lower("kiln.positions")
def _positions(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    shape = e.node("Shape", [xs[0]])
    t = e.node("Squeeze", [e.node("Slice", [shape, e.const([1]), e.const([2])]), e.const([0])])
    off = e.const(op.attr("offset"))
    r = e.node("Range", [off, e.node("Add", [t, off]), e.const(1)])  # [T]
    return [e.node("Expand", [e.node("Unsqueeze", [r, e.const([0])]), shape])]


@lower("kiln.rope_cos", "kiln.rope_sin")
def _rope_table(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    pos = e.cast(xs[0], _in(op, 0), DType.f32)
    inv = e.cast(xs[1], _in(op, 1), DType.f32)
    freqs = e.node("Mul", [e.node("Unsqueeze", [pos, e.const([-1])]), inv])  # [..., D/2]
    ang = e.node("Concat", [freqs, freqs], axis=-1)
    t = e.node("Cos" if op.name == "kiln.rope_cos" else "Sin", [ang])
    return [e.node("Mul", [t, e.const(op.attr("scale"), np.float32)])]


@lower("kiln.rope")
def _rope(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    x, dt = xs[0], _in(op, 0)
    cos = e.cast(e.node("Unsqueeze", [xs[1], e.const([1])]), _in(op, 1), dt)
    sin = e.cast(e.node("Unsqueeze", [xs[2], e.const([1])]), _in(op, 2), dt)
    d = op.operands[0].type.shape[-1]
    if not isinstance(d, int):
        raise KilnError("cannot export kiln.rope with a symbolic head dim")
    half = d // 2
    lo = e.node("Slice", [x, e.const([0]), e.const([half]), e.const([-1])])
    hi = e.node("Slice", [x, e.const([half]), e.const([d]), e.const([-1])])
    rot = e.node("Concat", [e.node("Neg", [hi]), lo], axis=-1)
    return [e.node("Add", [e.node("Mul", [x, cos]), e.node("Mul", [rot, sin])])]



@lower("kiln.attention")
def _attention(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    # q [B, Hq, T, D]; k, v [B, Hkv, S, D]; query group g of kv head h is query head h*G + g
    m = op.operand_map()
    q, k = m["q"], m["k"]
    kvh, g = _heads(op, q, k.type.shape[1])
    d, dv = q.type.shape[3], m["v"].type.shape[3]
    q5 = e.node("Reshape", [xs[0], e.const([0, kvh, g, -1, d])])  # [B, Hkv, G, T, D]
    k5 = e.node("Unsqueeze", [xs[1], e.const([2])])  # [B, Hkv, 1, S, D]
    v5 = e.node("Unsqueeze", [xs[2], e.const([2])])
    scores = e.node("MatMul", [q5, e.node("Transpose", [k5], perm=[0, 1, 2, 4, 3])])  # [B, Hkv, G, T, S]
    dt = _out(op)
    s = e.node("Mul", [scores, e.const(op.attr("scale"), NP_DTYPE[dt])])
    keep = None
    if op.attr("causal"):  # key j is visible to query i when j <= i + (S - T)
        t = e.node("Squeeze", [e.node("Shape", [xs[0]], start=2, end=3), e.const([0])])
        sk = e.node("Squeeze", [e.node("Shape", [xs[1]], start=2, end=3), e.const([0])])
        qi = e.node("Add", [e.node("Range", [e.const(0), t, e.const(1)]), e.node("Sub", [sk, t])])
        kj = e.node("Range", [e.const(0), sk, e.const(1)])
        keep = e.node("LessOrEqual", [e.node("Unsqueeze", [kj, e.const([0])]),
                                       e.node("Unsqueeze", [qi, e.const([1])])])  # [T, S]
    if m["mask"] is not None:
        mask = e.node("Unsqueeze", [xs[3], e.const([2])])  # [B, H, T, S] -> broadcastable per group
        if m["mask"].type.rank == 4 and m["mask"].type.shape[1] not in (1,):
            raise KilnError("cannot export kiln.attention with a per-head mask")
        if m["mask"].type.dtype == DType.i1:
            keep = mask if keep is None else e.node("And", [keep, mask])
        else:
            if keep is not None:
                s = e.node("Where", [keep, s, e.const(NEG_INF, NP_DTYPE[dt])])
                keep = None
            s = e.node("Add", [s, e.cast(mask, m["mask"].type.dtype, dt)])
    if keep is not None:
        s = e.node("Where", [keep, s, e.const(NEG_INF, NP_DTYPE[dt])])
    o = e.node("MatMul", [e.node("Softmax", [s], axis=-1), v5])  # [B, Hkv, G, T, Dv]
    return [e.node("Reshape", [o, e.const([0, kvh * g, -1, dv])])]


# The cache ops. ONNX has no in-place update, and a ScatterND into a graph input copies the whole cache,
# so a write per layer would copy it 2L times per call. Instead a cache value is a ``CacheState``: the
# cache as fed plus the writes made to it so far (per write: layer, ScatterND indices, rows). Attention
# of layer l slices layer l of the fed cache to the positions in use, applies the pending writes of
# layer l to that slice, and reads it; the program's cache output applies every write at once, one
# ScatterND per cache tensor per call.

