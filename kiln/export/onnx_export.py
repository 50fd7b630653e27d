"""Lowering kiln's IR to ONNX: one ``onnx.ModelProto`` per program, built op by op from the optimised
IR (``forward``, ``prefill``, ``decode``), with the KV cache as explicit inputs and outputs.

Each kiln op has one entry in ``LOWER`` (op name -> a function emitting ONNX nodes); an op without one
is refused before anything is written (``unsupported``), with a one-line ``KilnError`` naming it.
Standard ``ai.onnx`` ops (opset ``OPSET``) are used everywhere except the int4 linear, which becomes
ONNX Runtime's ``com.microsoft.MatMulNBits`` (ORT's n-bit weight GEMM), int4 as 4-bit blocks of the group
size and int8 as 8-bit blocks sharing the row's scale, both with float32 activations (accuracy level 0).

The cache ops keep kiln's layout ([L, NB, KVH, BS, D] per K and V, a block table per sequence;
docs/kv-cache.md): ``kiln.cache_write`` is a ``ScatterND`` of the packed tokens' rows, whose result
(the updated cache) becomes a program output (``k_cache_out``, ``v_cache_out``), and
``kiln.cache_attention`` gathers every sequence's blocks and masks each query to its own sequence's
positions ``<= pos`` (so one graph serves packed prefill, chunked prefill and batched decode).

Weights are written once, to ``weights.bin``, and every model's initializers point into it as ONNX
external data, so the three programs share one copy on disk.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kiln.errors import KilnError
from kiln.ir.core import Op, Program, Value
from kiln.ir.ops_quant import INT4_SYMMETRIC_ZERO, groups, split_quant_operands
from kiln.ir.registry import has_trait
from kiln.ir.types import DType, parse_dim

OPSET = 21
MS_DOMAIN = "com.microsoft"
WEIGHTS_FILE = "weights.bin"

try:  # the exporter needs the onnx package (the `test` extra installs it)
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:  # pragma: no cover - exercised only without onnx installed
    onnx = None

ONNX_DTYPE = {
    DType.f32: 1, DType.u8: 2, DType.i8: 3, DType.i16: 5, DType.i32: 6, DType.i64: 7, DType.i1: 9,
    DType.f16: 10, DType.f64: 11, DType.bf16: 16,
}  # TensorProto.DataType values
NP_DTYPE = {DType.f32: np.float32, DType.f16: np.float16, DType.f64: np.float64, DType.i64: np.int64,
            DType.i32: np.int32, DType.i16: np.int16, DType.i8: np.int8, DType.u8: np.uint8, DType.i1: np.bool_}


def require_onnx() -> None:
    if onnx is None:
        raise KilnError("exporting to ONNX needs the onnx package: pip install onnx (or kiln's [test] extra)")


class WeightFile:
    """``weights.bin``: tensors appended once each (64-byte aligned), referenced by offset from any model."""

    def __init__(self, path: Path):
        self.path = path
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.at: dict[str, tuple[int, int, int, tuple[int, ...]]] = {}  # key -> (offset, length, dtype, dims)

    def add(self, key: str, t: torch.Tensor, dtype: int) -> tuple[int, int, int, tuple[int, ...]]:
        if key not in self.at:
            pad = -self.f.tell() % 64
            self.f.write(b"\0" * pad)
            off = self.f.tell()
            flat = t.detach().contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy() if flat.numel() else b""
            self.f.write(data)
            self.at[key] = (off, self.f.tell() - off, dtype, tuple(t.shape))
        return self.at[key]

    def close(self) -> None:
        self.f.close()


def _external(name: str, where: tuple[int, int, int, tuple[int, ...]]) -> Any:
    off, length, dtype, dims = where
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", WEIGHTS_FILE), ("offset", str(off)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


class Emitter:
    """Builds one ONNX graph from one kiln program: value names, nodes, small constants, weights."""

    def __init__(self, program: Program, weights: dict[str, torch.Tensor], store: WeightFile):
        self.program = program
        self.weights = weights
        self.store = store
        self.nodes: list[Any] = []
        self.inits: dict[str, Any] = {}
        self.names: dict[int, str] = {}
        self.n = 0
        self.dims: dict[str, str] = {}  # symbolic dim text -> name of an int64 [1] tensor holding it
        self.uses_ms = False
        self.caches: dict[int, CacheState] = {}  # id(cache Value) -> the fed cache and this call's writes
        self.lazy: dict[str, Callable[[], str]] = {}  # kiln.weight results: written only if a node reads them
        for a in program.args:
            self.names[id(a)] = a.hint or f"arg{a.index}"

    # -- names and nodes -------------------------------------------------------------------------
    def fresh(self, base: str = "t") -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def node(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs) -> Any:
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, domain=domain or None, **attrs))
        if domain == MS_DOMAIN:
            self.uses_ms = True
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=np.int64) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = f"c_{arr.dtype}_{arr.shape}_{arr.tobytes().hex()}"
        if key not in self.inits:
            name = self.fresh("const")
            self.inits[key] = numpy_helper.from_array(arr, name)
        return self.inits[key].name

    def weight(self, key: str, t: torch.Tensor, dtype: int | None = None) -> str:
        if dtype is None:
            dt = {torch.float32: 1, torch.float16: 10, torch.bfloat16: 16, torch.float64: 11, torch.int64: 7,
                  torch.int32: 6, torch.int16: 5, torch.int8: 3, torch.uint8: 2, torch.bool: 9}[t.dtype]
        else:
            dt = dtype
        ikey = f"w_{key}"
        if ikey not in self.inits:
            self.inits[ikey] = _external(key, self.store.add(key, t, dt))
        return self.inits[ikey].name

    def value(self, v: Value) -> str:
        return self.names[id(v)]

    # -- symbolic sizes --------------------------------------------------------------------------
    def dim(self, d) -> str:
        """An int64 [1] tensor holding dimension ``d`` (an int or a symbolic expression)."""
        if isinstance(d, int):
            return self.const([d])
        if d not in self.dims:
            self.dims[d] = self._dim_node(parse_dim(d), d)
        return self.dims[d]

    def _dim_node(self, n, text: str) -> str:
        k, a = n.kind, n.args
        if k == "int":
            return self.const([a[0]])
        if k == "sym":
            name = a[0]
            if name in self.dims:
                return self.dims[name]
            for arg in self.program.args:
                for i, d in enumerate(arg.type.shape):
                    if d == name:
                        self.dims[name] = self.node("Shape", [self.value(arg)], start=i, end=i + 1)
                        return self.dims[name]
            raise KilnError(f"cannot export program {self.program.name!r}: symbolic size {name!r} is not a "
                            "size of any input")
        if k == "neg":
            return self.node("Neg", [self._dim_node(a[0], text)])
        ops = {"add": "Add", "sub": "Sub", "mul": "Mul", "floordiv": "Div"}
        if k in ops:
            return self.node(ops[k], [self._dim_node(a[0], text), self._dim_node(a[1], text)])
        raise KilnError(f"cannot export program {self.program.name!r}: symbolic size {text!r} ({k}) has no "
                        "ONNX form")

    def shape(self, dims) -> str:
        """An int64 [rank] tensor for a kiln shape (ints and symbolic dims)."""
        if all(isinstance(d, int) for d in dims):
            return self.const(list(dims))
        return self.node("Concat", [self.dim(d) for d in dims], axis=0)

    def cast(self, name: str, have: DType, want: DType) -> str:
        return name if have == want else self.node("Cast", [name], to=ONNX_DTYPE[want])


Lowering = Callable[[Emitter, Op, list[str]], list[str]]
LOWER: dict[str, Lowering] = {}


def lower(*names: str):
    def reg(fn: Lowering) -> Lowering:
        for n in names:
            LOWER[n] = fn
        return fn

    return reg


def _out(op: Op, i: int = 0) -> DType:
    return op.results[i].type.dtype


def _in(op: Op, i: int) -> DType:
    return op.operands[i].type.dtype


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
    from kiln.ir.ops import promote

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


# -- attention ----------------------------------------------------------------------------------------

NEG_INF = -math.inf


def _heads(op: Op, q: Value, kv_heads) -> tuple[int, int]:
    hq = q.type.shape[1]
    if not isinstance(hq, int) or not isinstance(kv_heads, int):
        raise KilnError(f"cannot export {op.name} with a symbolic number of heads")
    return kv_heads, hq // kv_heads


def _masked_softmax_v(e: Emitter, scores: str, keep: str, v: str, scale: float, dt: DType) -> str:
    s = e.node("Mul", [scores, e.const(scale, NP_DTYPE[dt])])
    s = e.node("Where", [keep, s, e.const(NEG_INF, NP_DTYPE[dt])])
    return e.node("MatMul", [e.node("Softmax", [s], axis=-1), v])


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


@dataclass(frozen=True)
class CacheState:
    source: str  # the graph input holding the cache (or its int8 scales) as fed
    writes: tuple[tuple[int, str, str], ...] = ()  # (layer, indices [N, KVH, 4], rows [N, KVH(, D)])

    def write(self, layer: int, idx: str, rows: str) -> CacheState:
        if any(w[0] == layer for w in self.writes):
            raise KilnError(f"cannot export: layer {layer} of one cache is written twice in one program")
        return CacheState(self.source, self.writes + ((layer, idx, rows),))


def _cache_state(e: Emitter, v: Value) -> CacheState:
    if id(v) not in e.caches:
        if v.owner is not None:
            raise KilnError(f"cannot export: a cache operand comes from {v.owner.name}, not from the program's "
                            "cache inputs or a cache write")
        e.caches[id(v)] = CacheState(e.value(v))
    return e.caches[id(v)]


def _cache_rows(e: Emitter, cache: Value, pos: str, seq: str, table: str) -> tuple[str, str]:
    """(block, offset) [N] of each packed token: block table[seq, pos // BS], offset pos % BS."""
    bs = cache.type.shape[3]
    mb = e.node("Shape", [table], start=1, end=2)
    flat = e.node("Reshape", [table, e.const([-1])])
    idx = e.node("Add", [e.node("Mul", [seq, mb]), e.node("Div", [pos, e.const(bs)])])
    return e.node("Gather", [flat, idx], axis=0), e.node("Mod", [pos, e.const(bs)])


def _cache_index(e: Emitter, op: Op, m: dict) -> str:
    """[N, KVH, 4] ScatterND indices (layer, block, head, offset) of each packed token's rows."""
    kvh = m["cache"].type.shape[2]
    block, off = _cache_rows(e, m["cache"], e.value(m["pos"]), e.value(m["seq"]), e.value(m["table"]))
    n1 = e.node("Concat", [e.node("Shape", [e.value(m["pos"])]), e.const([kvh, 1])], axis=0)  # [N, KVH, 1]
    col = [e.const(np.full([1, 1, 1], op.attr("layer"))),
           e.node("Reshape", [block, e.const([-1, 1, 1])]),
           e.const(np.arange(kvh).reshape(1, kvh, 1)),
           e.node("Reshape", [off, e.const([-1, 1, 1])])]
    return e.node("Concat", [e.node("Expand", [c, n1]) for c in col], axis=-1)


def _token_rows(e: Emitter, m: dict) -> str:
    return e.node("Transpose", [e.node("Squeeze", [e.value(m["x"]), e.const([0])])], perm=[1, 0, 2])  # [N, KVH, D]


@lower("kiln.cache_write")
def _cache_write(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    # cache [L, NB, KVH, BS, D] <- rows of x [1, KVH, N, D] at (layer, block, head, offset), deferred
    m = op.operand_map()
    rows = e.cast(_token_rows(e, m), m["x"].type.dtype, m["cache"].type.dtype)
    e.caches[id(op.results[0])] = _cache_state(e, m["cache"]).write(op.attr("layer"), _cache_index(e, op, m), rows)
    return [e.fresh("cache_state")]  # not a tensor: only cache ops and the outputs read it


@lower("kiln.cache_write_q8")
def _cache_write_q8(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    m = op.operand_map()
    idx = _cache_index(e, op, m)
    q, s = _quantize_rows(e, e.cast(_token_rows(e, m), m["x"].type.dtype, DType.f32))
    layer = op.attr("layer")
    e.caches[id(op.results[0])] = _cache_state(e, m["cache"]).write(layer, idx, e.node("Cast", [q], to=ONNX_DTYPE[DType.i8]))
    e.caches[id(op.results[1])] = _cache_state(e, m["scales"]).write(layer, idx, s)
    return [e.fresh("cache_state"), e.fresh("cache_state")]


def materialize(e: Emitter, state: CacheState, name: str | None = None) -> str:
    """The cache tensor after all of ``state``'s writes: one ScatterND."""
    if not state.writes:
        return state.source
    idx = [w[1] for w in state.writes]
    rows = [w[2] for w in state.writes]
    cat = (lambda xs: xs[0] if len(xs) == 1 else e.node("Concat", xs, axis=0))
    out = name or e.fresh("cache")
    e.nodes.append(helper.make_node("ScatterND", [state.source, cat(idx), cat(rows)], [out]))
    return out


def _positions_cap(e: Emitter, pos: str, bs: int) -> str:
    """[1]: min(BS, max(pos) + 1), the offsets within a block that any query of this call can see."""
    key = f"cap:{pos}:{bs}"
    if key not in e.dims:
        top = e.node("Add", [e.node("ReduceMax", [pos, e.const([0])], keepdims=1), e.const([1])])
        e.dims[key] = e.node("Min", [top, e.const([bs])])
    return e.dims[key]


def _layer_view(e: Emitter, state: CacheState, layer: int, cap: str) -> str:
    """Layer ``layer`` of the cache, offsets < cap, with this call's pending writes to it: [NB, KVH, cap(, D)]."""
    sl = e.node("Slice", [state.source, e.const([layer, 0]), e.node("Concat", [e.const([layer + 1]), cap], axis=0),
                          e.const([0, 3])])
    sl = e.node("Squeeze", [sl, e.const([0])])
    for lw, idx, rows in state.writes:
        if lw == layer:  # offsets of this call's tokens are <= max(pos), so < cap
            sl = e.node("ScatterND", [sl, e.node("Slice", [idx, e.const([1]), e.const([4]), e.const([2])]), rows])
    return sl


@lower("kiln.cache_attention", "kiln.cache_attention_q8")
def _cache_attention(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    # every sequence's blocks side by side, each block cut to its first cap = min(BS, max(pos) + 1)
    # offsets (the rest is beyond every query): keys [KVH, S*MB*cap, D]; key j is at (sequence row
    # j // (MB*cap), block (j // cap) % MB, offset j % cap), so position ((j // cap) % MB)*BS + j % cap;
    # query n sees it when that row is seq[n] and that position is <= pos[n]
    m = op.operand_map()
    q, kc = m["q"], m["k_cache"]
    _, _, kvh, bs, d = kc.type.shape
    kvh, g = _heads(op, q, kvh)
    pos, seq, table = (e.value(m[k]) for k in ("pos", "seq", "table"))
    layer = op.attr("layer")
    dt = _out(op)
    cap = _positions_cap(e, pos, bs)
    q8 = op.name == "kiln.cache_attention_q8"

    def gathered(cache: Value, scales: Value | None) -> str:
        view = _layer_view(e, _cache_state(e, cache), layer, cap)  # [NB, KVH, cap, D]
        blocks = e.node("Gather", [view, table], axis=0)  # [S, MB, KVH, cap, D]
        cdt = cache.type.dtype
        if scales is not None:  # int8 rows times their scales, as they are read
            sv = _layer_view(e, _cache_state(e, scales), layer, cap)  # [NB, KVH, cap]
            sc = e.node("Gather", [sv, table], axis=0)
            blocks = e.node("Mul", [e.node("Cast", [blocks], to=ONNX_DTYPE[DType.f32]),
                                    e.node("Unsqueeze", [sc, e.const([-1])])])
            cdt = DType.f32
        keys = e.node("Transpose", [e.cast(blocks, cdt, dt)], perm=[2, 0, 1, 3, 4])
        return e.node("Reshape", [keys, e.const([kvh, 1, -1, d])])  # [KVH, 1, S*MB*cap, D]

    k = gathered(kc, m["k_scales"] if q8 else None)
    v = gathered(m["v_cache"], m["v_scales"] if q8 else None)
    mb = e.node("Shape", [table], start=1, end=2)
    per_seq = e.node("Mul", [mb, cap])  # [1]
    total = e.node("Mul", [e.node("Shape", [table], start=0, end=1), per_seq])
    j = e.node("Range", [e.const(0), e.node("Squeeze", [total, e.const([0])]), e.const(1)])  # [S*MB*cap]
    js = e.node("Div", [j, per_seq])
    jpos = e.node("Add", [e.node("Mul", [e.node("Mod", [e.node("Div", [j, cap]), mb]), e.const([bs])]),
                          e.node("Mod", [j, cap])])
    same = e.node("Equal", [e.node("Unsqueeze", [js, e.const([0])]), e.node("Unsqueeze", [seq, e.const([1])])])
    seen = e.node("LessOrEqual", [e.node("Unsqueeze", [jpos, e.const([0])]),
                                  e.node("Unsqueeze", [pos, e.const([1])])])
    keep = e.node("And", [same, seen])  # [N, S*MB*cap]
    q4 = e.node("Reshape", [xs[0], e.const([kvh, g, -1, d])])  # [KVH, G, N, D]
    scores = e.node("MatMul", [q4, e.node("Transpose", [k], perm=[0, 1, 3, 2])])  # [KVH, G, N, S*MB*cap]
    o = _masked_softmax_v(e, scores, keep, v, op.attr("scale"), dt)  # [KVH, G, N, D]
    return [e.node("Reshape", [o, e.const([1, kvh * g, -1, d])])]


def _quantize_rows(e: Emitter, x: str) -> tuple[str, str]:
    """Symmetric int8 over the last dim (``quantize_rows_int8``): codes (float, in [-127, 127]) and scales."""
    s = e.node("Div", [e.node("ReduceMax", [e.node("Abs", [x]), e.const([-1])], keepdims=0),
                       e.const(127.0, np.float32)])
    s = e.node("Where", [e.node("Greater", [s, e.const(0.0, np.float32)]), s, e.const(1.0, np.float32)])
    q = e.node("Round", [e.node("Div", [x, e.node("Unsqueeze", [s, e.const([-1])])])])
    return e.node("Clip", [q, e.const(-127.0, np.float32), e.const(127.0, np.float32)]), s


@lower("kiln.fake_quant_int8")
def _fake_quant_int8(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    q, s = _quantize_rows(e, e.cast(xs[0], _in(op, 0), DType.f32))
    return [e.cast(e.node("Mul", [q, e.node("Unsqueeze", [s, e.const([-1])])]), DType.f32, _out(op))]


# -- quantized weights --------------------------------------------------------------------------------

def _int4_consecutive(q: torch.Tensor, k: int, group_size: int) -> torch.Tensor:
    """kiln's int4 bytes [N, K/2] (per group: low nibbles = its first half, high = its second half) ->
    MatMulNBits' [N, n_blocks, group_size/2] (byte j: column 2j low, 2j+1 high), the last block zero-padded."""
    n = q.shape[0]
    codes = []
    for c, r in groups(k, group_size):
        b = q[:, c // 2:(c + r) // 2].to(torch.int16)
        codes.append(torch.cat([b & 15, b >> 4], dim=1))  # [N, r] in column order
    full = torch.cat(codes, dim=1)
    nb = -(-k // group_size)
    padded = torch.zeros(n, nb * group_size, dtype=torch.int16)
    padded[:, :k] = full
    pairs = padded.reshape(n, nb, group_size // 2, 2)
    return (pairs[..., 0] | (pairs[..., 1] << 4)).to(torch.uint8).contiguous()


@lower("kiln.qlinear")
def _qlinear(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    fmt, gs, sym = op.attr("format"), op.attr("group_size"), op.attr("symmetric")
    qv, sv, offv, rest = split_quant_operands(op.operands[1:], sym, fmt)
    x = e.cast(xs[0], _in(op, 0), DType.f32)
    from kiln.codegen.native import unpacked

    n = qv.type.shape[0]
    qname, sname = _weight_source(qv), _weight_source(sv)
    scale_t = unpacked(e.weights[sname]).float()  # int8 [N], int4 [N, G]
    if fmt == "int8":  # codes + 128 as 8-bit blocks, every block of a row with the row's scale
        k = qv.type.shape[1]
        gs = 128 if k >= 128 else 32
        nb = -(-k // gs)
        codes = torch.full((n, nb * gs), 128, dtype=torch.uint8)
        codes[:, :k] = (unpacked(e.weights[qname]).to(torch.int16) + 128).to(torch.uint8)
        ins = [e.weight(f"{qname}.nbits8", codes.reshape(n, nb, gs)),
               e.weight(f"{sname}.blocks", scale_t[:, None].expand(n, nb).reshape(-1).contiguous())]
        bits = 8
    else:  # int4 groups of group_size along K, a scale per group
        k = 2 * qv.type.shape[1]
        if gs < 16 or gs & (gs - 1):
            raise KilnError(f"cannot export an int4 linear with group size {gs}: MatMulNBits needs a power of 2 >= 16")
        ins = [e.weight(f"{qname}.nbits", _int4_consecutive(unpacked(e.weights[qname]), k, gs)),
               e.weight(f"{sname}.f32", scale_t.reshape(-1))]
        if offv is not None:  # w = code * s + m = (code - zp) * s with zp = -m / s (a float zero point)
            off_t = unpacked(e.weights[_weight_source(offv)]).float()
            ins.append(e.weight(f"{_weight_source(offv)}.zp", (-off_t / scale_t).reshape(-1)))
        # symmetric: w = (code - 8) * s, MatMulNBits' default zero point (INT4_SYMMETRIC_ZERO = -8)
        bits = 4
    # accuracy_level 0: activations stay float32 (ORT's default rewrite of DequantizeLinear + MatMul into
    # MatMulNBits uses level 4, int8 activations, which moves logits by ~1e-2)
    y = e.node("MatMulNBits", [x] + ins, domain=MS_DOMAIN, K=k, N=n, bits=bits, block_size=gs, accuracy_level=0)
    return [e.node("Add", [y, e.cast(e.value(rest[0]), rest[0].type.dtype, DType.f32)]) if rest else y]


def _weight_source(v: Value) -> str:
    if v.owner is None or v.owner.name != "kiln.weight":
        raise KilnError("cannot export a quantized op whose weight is computed in the program; only weights")
    return v.owner.attr("name")


@lower("kiln.qembedding")
def _qembedding(e: Emitter, op: Op, xs: list[str]) -> list[str]:
    fmt, gs, sym = op.attr("format"), op.attr("group_size"), op.attr("symmetric")
    qv, sv, offv, rest = split_quant_operands(op.operands, sym, fmt)
    ids = e.value(rest[0])
    rows = e.node("Gather", [e.value(qv), ids], axis=0)  # [..., K] i8 or [..., K/2] u8
    s = e.node("Gather", [e.cast(e.value(sv), sv.type.dtype, DType.f32), ids], axis=0)
    if fmt == "int8":
        return [e.node("Mul", [e.node("Cast", [rows], to=1), e.node("Unsqueeze", [s, e.const([-1])])])]
    k = 2 * qv.type.shape[1]
    m = (e.node("Gather", [e.cast(e.value(offv), offv.type.dtype, DType.f32), ids], axis=0) if offv is not None
         else e.node("Mul", [s, e.const(INT4_SYMMETRIC_ZERO, np.float32)]))
    parts = []
    for gi, (c, r) in enumerate(groups(k, gs)):  # per group: low nibbles are its first half, high its second
        b = e.node("Slice", [rows, e.const([c // 2]), e.const([(c + r) // 2]), e.const([-1])])
        lo = e.node("BitwiseAnd", [b, e.const(15, np.uint8)])
        hi = e.node("BitShift", [b, e.const(4, np.uint8)], direction="RIGHT")
        codes = e.node("Cast", [e.node("Concat", [lo, hi], axis=-1)], to=1)
        sg = e.node("Slice", [s, e.const([gi]), e.const([gi + 1]), e.const([-1])])
        mg = e.node("Slice", [m, e.const([gi]), e.const([gi + 1]), e.const([-1])])
        parts.append(e.node("Add", [e.node("Mul", [codes, sg]), mg]))
    return [parts[0] if len(parts) == 1 else e.node("Concat", parts, axis=-1)]


# -- the program --------------------------------------------------------------------------------------

def unsupported(program: Program) -> list[str]:
    """The ops of ``program`` that have no ONNX lowering (``kiln.aten`` named by its target)."""
    bad = []
    for op in program.ops:
        if op.name == "kiln.return" or op.name in LOWER:
            continue
        name = f"kiln.aten({op.attrs.get('target')})" if op.name == "kiln.aten" else op.name
        if name not in bad:
            bad.append(name)
    return bad


def cache_outputs(program: Program) -> list[tuple[Value, Value]]:
    """(cache argument, its value after the program's in-place writes) for each cache the program writes."""
    out = []
    for a in program.args:
        v, wrote = a, False
        while True:
            nxt = [(u, i) for u, i in v.uses if has_trait(u.name, "writes-cache") and i < len(u.results)]
            if not nxt:
                break
            v, wrote = nxt[0][0].results[nxt[0][1]], True
        if wrote:
            out.append((a, v))
    return out


def _value_info(name: str, t) -> Any:
    dims = [d if isinstance(d, int) else (d if d.isidentifier() else None) for d in t.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPE[t.dtype], dims)


def program_model(program: Program, weights: dict[str, torch.Tensor], store: WeightFile,
                  doc: str = "") -> tuple[Any, dict]:
    """The ONNX model of one program, and its entry for kiln_onnx.json (inputs, outputs, cache pairs)."""
    bad = unsupported(program)
    if bad:
        raise KilnError(f"cannot export program {program.name!r} to ONNX: no ONNX lowering for {', '.join(bad)}")
    e = Emitter(program, weights, store)
    for op in program.ops:
        if op.name == "kiln.return":
            break
        outs = LOWER[op.name](e, op, [e.value(v) for v in op.operands])
        for r, name in zip(op.results, outs):
            e.names[id(r)] = name
    outputs: list[tuple[str, Value]] = []
    for i, v in enumerate(program.outputs):
        outputs.append(("logits" if i == 0 and len(program.outputs) == 1 else f"output_{i}", v))
    caches = cache_outputs(program)
    outputs += [(f"{e.value(a)}_out", v) for a, v in caches]
    inputs = {e.value(a) for a in program.args}
    for name, v in outputs:  # graph outputs get their own names
        if id(v) in e.caches:  # a cache after this call's writes: one ScatterND per cache tensor
            materialize(e, e.caches[id(v)], name)
            continue
        src = e.value(v)
        producer = next((n for n in e.nodes if src in n.output), None)
        if producer is None or src in inputs or src in {o for o, _ in outputs}:
            e.nodes.append(helper.make_node("Identity", [src], [name]))  # an input or initializer: a copy
        else:  # rename the producing node's output (no copy)
            producer.output[list(producer.output).index(src)] = name
            for n in e.nodes:
                for i, x in enumerate(n.input):
                    if x == src:
                        n.input[i] = name
            e.names = {k: (name if x == src else x) for k, x in e.names.items()}
    defined = inputs | {i.name for i in e.inits.values()} | set(e.lazy) | {o for n in e.nodes for o in n.output}
    for n in e.nodes:
        for i in n.input:
            if i and i not in defined:
                raise KilnError(f"cannot export program {program.name!r}: {n.op_type} reads {i!r}, which is no "
                                "tensor (a KV cache read by an op other than the cache ops?)")
    read = {i for n in e.nodes for i in n.input}
    for name, make in e.lazy.items():
        if name in read:
            make()
    graph = helper.make_graph(
        e.nodes, program.name, [_value_info(e.value(a), a.type) for a in program.args],
        [_value_info(name, v.type) for name, v in outputs], initializer=list(e.inits.values()))
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if e.uses_ms else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="kiln", doc_string=doc)
    model.ir_version = 10
    spec = {
        "inputs": [{"name": e.value(a), "dtype": a.type.dtype.value, "shape": list(a.type.shape)}
                   for a in program.args],
        "outputs": [{"name": name, "dtype": v.type.dtype.value, "shape": list(v.type.shape)} for name, v in outputs],
        "cache": {e.value(a): f"{e.value(a)}_out" for a, _ in caches},
        "contrib_ops": sorted({n.op_type for n in e.nodes if n.domain == MS_DOMAIN}),
    }
    return model, spec


def write_onnx(module, programs: list[str], out: Path, say: Callable[[str], None]) -> tuple[dict, dict]:
    """``<program>.onnx`` for each of ``programs`` and the shared ``weights.bin`` in ``out``; checks each
    model with ``onnx.checker`` (full shape inference). Returns the descriptor's ``programs`` entry and
    its format-specific fields."""
    require_onnx()
    for name in programs:  # refuse before writing anything
        bad = unsupported(module[name])
        if bad:
            raise KilnError(f"cannot export program {name!r} to ONNX: no ONNX lowering for {', '.join(bad)}")
    store = WeightFile(out / WEIGHTS_FILE)
    files = {}
    try:
        for name in programs:
            say(f"lowering {name} to ONNX")
            model, spec = program_model(module[name], module.weights, store,
                                        doc=f"kiln program {name!r}; see kiln_export.json")
            path = out / f"{name}.onnx"
            onnx.save_model(model, str(path))
            files[name] = {"file": path.name, **spec}
    finally:
        store.close()
    for name in programs:
        say(f"checking {name}.onnx (onnx.checker, full shape inference)")
        try:
            onnx.checker.check_model(str(out / f"{name}.onnx"), full_check=True)
        except Exception as e:  # noqa: BLE001 - a checker failure is an exporter bug; report it in one line
            raise KilnError(f"the exported {name}.onnx does not pass onnx.checker: "
                            f"{str(e).strip().splitlines()[0][:300]}") from None
    return files, {"opset": OPSET, "weights": WEIGHTS_FILE}
