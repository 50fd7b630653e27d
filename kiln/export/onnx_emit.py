"""The machinery of kiln's ONNX lowering: the ``Emitter`` that builds one graph from one program (value
names, nodes, small constants, symbolic sizes from the inputs' ``Shape``), ``weights.bin`` (every weight
written once, referenced from each model as ONNX external data), and ``LOWER``, the table of lowerings
keyed by kiln op name (``@lower("kiln.add")``). The lowerings themselves are in ``onnx_ops.py`` (the
float ops) and ``onnx_cache.py`` (the KV cache and quantized weights); ``onnx_export.py`` runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kiln.errors import KilnError
from kiln.ir.core import Op, Program, Value
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
        self.caches: dict[int, Any] = {}  # id(cache Value) -> its CacheState (onnx_cache.py)
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


