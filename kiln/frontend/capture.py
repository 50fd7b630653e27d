"""Capture with ``torch.export`` and translate the ATen graph into kiln IR.

The model is exported with a dynamic batch ``B`` and sequence ``T`` and its
ATen graph is translated node by node: ops with a kiln equivalent become that
op (``aten.linear`` -> ``kiln.linear``, ``aten.view`` -> ``kiln.reshape``,
...), no-ops (``clone``, ``alias``, metadata asserts) disappear, SymInt
arithmetic becomes symbolic dims, and everything else stays as a generic
``kiln.aten`` op. Each translated op's inferred type is checked against the
type torch.export recorded; on disagreement the node falls back to
``kiln.aten``. Recognising larger patterns (RMSNorm, RoPE, attention masks,
...) is ``lift.py``'s job.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable
from typing import Any

import torch

from kiln.errors import KilnError
from kiln.ir.core import IRError, Module, Program, Value
from kiln.ir.ops import FROM_TORCH
from kiln.ir.types import INT64_MAX, DType, Ref, Sym, TensorType, canon_dim

aten = torch.ops.aten



class _Wrapper(torch.nn.Module):
    """Full-sequence logits from token ids: the function kiln captures."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.m = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.m(input_ids=input_ids, use_cache=False).logits


def export_model(model: torch.nn.Module, max_positions: int, vocab: int):
    wrapper = _Wrapper(model).eval()
    B = torch.export.Dim("B", min=1, max=4096)
    T = torch.export.Dim("T", min=1, max=max(2, max_positions))
    ids = torch.randint(0, min(vocab, 100), (2, 8))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            ep = torch.export.export(wrapper, (ids,), dynamic_shapes={"input_ids": {0: B, 1: T}}, strict=False)
            ep = ep.run_decompositions({})
    except Exception as e:  # noqa: BLE001 - any failure here is reported as a KilnError
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise KilnError(f"torch.export could not capture the model: {msg}") from None
    params = dict(wrapper.named_parameters(remove_duplicate=False))
    params.update(dict(wrapper.named_buffers(remove_duplicate=False)))
    return ep, params


# ---------------------------------------------------------------------------


class Translator:
    def __init__(self, ep, params: dict[str, torch.Tensor]):
        self.ep = ep
        self.params = params
        self.program = Program("forward")
        self.module = Module()
        self.env: dict[Any, Any] = {}  # fx node -> Value | list[Value] | Sym | python scalar
        self.symbols: dict[Any, str] = {}  # sympy symbol -> name
        self.generic: dict[str, int] = {}

    # -- types --------------------------------------------------------------
    def dim(self, d) -> Any:
        if isinstance(d, int):
            return d
        expr = d.node.expr if isinstance(d, torch.SymInt) else d
        unknown = [s for s in expr.free_symbols if s not in self.symbols]
        if unknown:
            raise KilnError(f"captured graph uses sizes kiln cannot name: {unknown}")
        import sympy

        return canon_dim(str(expr.subs({s: sympy.Symbol(n, integer=True, positive=True)
                                        for s, n in self.symbols.items()})).replace(" ", ""))

    def ttype(self, val) -> TensorType:
        if val.dtype not in FROM_TORCH:
            raise KilnError(f"captured graph uses dtype {val.dtype}, which kiln does not support")
        return TensorType(FROM_TORCH[val.dtype], tuple(self.dim(d) for d in val.shape))

    # -- arguments ----------------------------------------------------------
    def encode(self, a, operands: list[Value]):
        """An FX argument as a kiln.aten attribute, collecting tensor operands."""
        import torch.fx

        if isinstance(a, torch.fx.Node):
            v = self.env[a]
            if isinstance(v, Value):
                operands.append(v)
                return Ref(len(operands) - 1)
            return v  # a Sym or a python scalar
        if isinstance(a, (list, tuple)):
            return [self.encode(x, operands) for x in a]
        if isinstance(a, torch.dtype):
            return FROM_TORCH[a]
        if isinstance(a, torch.device):
            return "$device"
        if isinstance(a, (torch.layout, torch.memory_format)):
            return None
        if a is None or isinstance(a, (bool, int, float, str)):
            return a
        raise KilnError(f"cannot encode argument {a!r} of type {type(a).__name__}")

    def generic_op(self, node) -> Any:
        operands: list[Value] = []
        args = [self.encode(a, operands) for a in node.args]
        kwargs = {k: self.encode(v, operands) for k, v in node.kwargs.items() if k != "pin_memory"}
        val = node.meta["val"]
        vals = list(val) if isinstance(val, (list, tuple)) else [val]
        types = [self.ttype(v) for v in vals]
        target = f"aten::{node.target._opname}.{node.target._overloadname}"
        op = self.program.create("kiln.aten", operands, {"target": target, "args": args, "kwargs": kwargs},
                                 result_types=types, loc=node.name)
        self.generic[target] = self.generic.get(target, 0) + 1
        return op.results if isinstance(val, (list, tuple)) else op.result

    # -- main loop ----------------------------------------------------------
    def run(self) -> Module:

        sig = self.ep.graph_signature
        param_of = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                    **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
        graph = self.ep.graph_module.graph
        user_inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name not in param_of]
        ids = user_inputs[0]
        for i, name in enumerate(("B", "T")):
            self.symbols[ids.meta["val"].shape[i].node.expr] = name
        for node in graph.nodes:
            if node.op == "placeholder":
                if node.name in param_of:
                    self.env[node] = ("weight", param_of[node.name])
                else:
                    self.env[node] = self.program.add_arg(self.ttype(node.meta["val"]), node.name)
            elif node.op == "call_function":
                self.env[node] = self.call(node)
            elif node.op == "output":
                outs = [self.value(a) for a in node.args[0]]
                self.program.set_outputs(outs)
            else:
                raise KilnError(f"unexpected FX node kind {node.op} ({node.name})")
        self.module.add(self.program)
        return self.module

    def value(self, a) -> Value:
        v = self.env[a]
        if isinstance(v, tuple) and v and v[0] == "weight":
            name = v[1].removeprefix("m.")
            t = self.params[v[1]].detach()
            self.module.weights.setdefault(name, t)
            op = self.program.create("kiln.weight", [], {"name": name}, result_types=[TensorType(
                FROM_TORCH[t.dtype], tuple(t.shape))], loc=a.name)
            self.env[a] = op.result
            return op.result
        if not isinstance(v, Value):
            raise KilnError(f"{a.name} is not a tensor")
        return v

    def call(self, node):
        import torch.fx

        t = node.target
        val = node.meta.get("val")
        if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool) and not isinstance(val, torch.Tensor):
            return Sym(str(self.dim(val))) if isinstance(val, torch.SymInt) else val
        if t in _SKIP:
            return None
        if t is operator.getitem:
            return self.env[node.args[0]][node.args[1]]
        for a in list(node.args) + list(node.kwargs.values()):
            for x in (a if isinstance(a, (list, tuple)) else [a]):
                if isinstance(x, torch.fx.Node) and isinstance(self.env.get(x), tuple):
                    self.value(x)
        if t in _IDENTITY:
            return self.value(node.args[0])
        if t is aten.split.Tensor and isinstance(val, (list, tuple)):
            return self.split(node)
        rule = _RULES.get(t)
        if rule is not None and isinstance(val, torch.Tensor):
            try:
                out = rule(self, node, *node.args, **node.kwargs)
            except (IRError, _NoRule, TypeError, KeyError):
                out = None
            if out is not None:
                expected = self.ttype(val)
                if out.type == expected:
                    return out
                self._drop(out)
        return self.generic_op(node)

    def _drop(self, v: Value) -> None:
        """Remove ops a failed rule created (walking back while unused)."""
        stack = [v.owner]
        while stack:
            op = stack.pop()
            if op is None or op.program is None or any(r.uses for r in op.results) or op.name == "kiln.weight":
                continue
            inputs = [o.owner for o in op.operands]
            self.program.erase(op)
            stack.extend(inputs)

    def split(self, node):
        x = self.value(node.args[0])
        dim = node.args[2] if len(node.args) > 2 else 0
        outs, start = [], 0
        for piece in node.meta["val"]:
            n = int(piece.shape[dim])
            outs.append(self.program.create("kiln.slice", [x], {"dim": dim, "start": start, "end": start + n},
                                            loc=node.name).result)
            start += n
        return outs

    def create(self, name: str, operands: list[Value], attrs: dict | None = None, loc: str = "") -> Value:
        return self.program.create(name, operands, attrs or {}, loc=loc).result


class _NoRule(Exception):
    pass


def _scalar_or_tensor(tr: Translator, node, name: str, a, b, **attrs) -> Value:
    import torch.fx

    x = tr.value(a)
    if isinstance(b, torch.fx.Node):
        bv = tr.env[b]
        if not isinstance(bv, Value):
            raise _NoRule()
        return tr.create(name, [x, bv], attrs, node.name)
    if not isinstance(b, (int, float, bool)):
        raise _NoRule()
    return tr.create(name, [x], {"scalar": b, **attrs}, node.name)


def _binary(name: str) -> Callable:
    def rule(tr, node, a, b, alpha=1, **kw):
        if alpha != 1 or kw:
            raise _NoRule()
        return _scalar_or_tensor(tr, node, name, a, b)

    return rule


def _unary(name: str) -> Callable:
    return lambda tr, node, x: tr.create(name, [tr.value(x)], {}, node.name)


def _shape_of(tr: Translator, node) -> list:
    return list(tr.ttype(node.meta["val"]).shape)


def _reshape(tr, node, x, shape):
    return tr.create("kiln.reshape", [tr.value(x)], {"shape": _shape_of(tr, node)}, node.name)


def _expand(tr, node, x, shape, implicit=False):
    return tr.create("kiln.expand", [tr.value(x)], {"shape": _shape_of(tr, node)}, node.name)


def _slice(tr, node, x, dim=0, start=None, end=None, step=1):
    if not all(isinstance(v, int) or v is None for v in (start, end, step)):
        raise _NoRule()
    start = 0 if start is None else start
    end = INT64_MAX if end is None else end
    xv = tr.value(x)
    size = xv.type.shape[dim]
    if start == 0 and step == 1 and (end >= INT64_MAX or (isinstance(size, int) and end >= size)):
        return xv
    if isinstance(size, int):
        start, end, step = slice(start, end, step).indices(size)
    return tr.create("kiln.slice", [xv], {"dim": dim, "start": start, "end": end, "step": step}, node.name)


def _mean(tr, node, x, dims, keepdim=False, dtype=None):
    if dtype is not None:
        raise _NoRule()
    return tr.create("kiln.mean", [tr.value(x)], {"dims": list(dims), "keepdim": bool(keepdim)}, node.name)


def _sum(tr, node, x, dims=None, keepdim=False, dtype=None):
    if dtype is not None or dims is None:
        raise _NoRule()
    return tr.create("kiln.sum", [tr.value(x)], {"dims": list(dims), "keepdim": bool(keepdim)}, node.name)


def _sdpa(tr, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    if dropout_p:
        raise _NoRule()
    qv = tr.value(q)
    ops = [qv, tr.value(k), tr.value(v)]
    if attn_mask is not None:
        ops.append(tr.value(attn_mask))
    d = qv.type.shape[-1]
    if scale is None:
        if not isinstance(d, int):
            raise _NoRule()
        scale = 1.0 / math.sqrt(d)
    return tr.create("kiln.attention", ops, {"scale": float(scale), "causal": bool(is_causal)}, node.name)


def _layer_norm(tr, node, x, shape, w=None, b=None, eps=1e-5, cudnn=False):
    if len(shape) != 1 or w is None:
        raise _NoRule()
    ops = [tr.value(x), tr.value(w)] + ([tr.value(b)] if b is not None else [])
    return tr.create("kiln.layer_norm", ops, {"eps": float(eps)}, node.name)


def _addmm(tr, node, bias, x, w, beta=1, alpha=1):
    if beta != 1 or alpha != 1:
        raise _NoRule()
    wt = tr.create("kiln.transpose", [tr.value(w)], {"dim0": 0, "dim1": 1}, node.name)
    return tr.create("kiln.linear", [tr.value(x), wt, tr.value(bias)], {}, node.name)


def _to_copy(tr, node, x, dtype=None, **kw):
    if dtype is None or kw.get("memory_format") not in (None, torch.preserve_format, torch.contiguous_format):
        raise _NoRule()
    xv = tr.value(x)
    if FROM_TORCH[dtype] == xv.type.dtype:
        return xv
    return tr.create("kiln.cast", [xv], {"dtype": FROM_TORCH[dtype]}, node.name)


_SKIP = {aten._assert_tensor_metadata.default, aten._assert_scalar.default, aten.sym_constrain_range_for_size.default}
for _n in ("_assert_async", "sym_constrain_range"):
    if hasattr(aten, _n):
        _SKIP.add(getattr(aten, _n).default)
_IDENTITY = {aten.alias.default, aten.clone.default, aten.contiguous.default, aten.detach.default,
             aten.lift_fresh_copy.default, aten.dropout.default}

_RULES: dict[Any, Callable] = {
    aten.embedding.default: lambda tr, node, w, ids, *rest: tr.create(
        "kiln.embedding", [tr.value(w), tr.value(ids)], {}, node.name),
    aten.linear.default: lambda tr, node, x, w, b=None: tr.create(
        "kiln.linear", [tr.value(x), tr.value(w)] + ([tr.value(b)] if b is not None else []), {}, node.name),
    aten.addmm.default: _addmm,
    aten.mm.default: lambda tr, node, a, b: tr.create("kiln.matmul", [tr.value(a), tr.value(b)], {}, node.name),
    aten.bmm.default: lambda tr, node, a, b: tr.create("kiln.matmul", [tr.value(a), tr.value(b)], {}, node.name),
    aten.matmul.default: lambda tr, node, a, b: tr.create("kiln.matmul", [tr.value(a), tr.value(b)], {}, node.name),
    aten.rsub.Scalar: lambda tr, node, a, b, alpha=1: _scalar_or_tensor(tr, node, "kiln.sub", a, b, reverse=True),
    aten.view.default: _reshape, aten.reshape.default: _reshape, aten._unsafe_view.default: _reshape,
    aten.expand.default: _expand,
    aten.transpose.int: lambda tr, node, x, d0, d1: tr.create(
        "kiln.transpose", [tr.value(x)], {"dim0": d0, "dim1": d1}, node.name),
    aten.t.default: lambda tr, node, x: tr.create("kiln.transpose", [tr.value(x)], {"dim0": 0, "dim1": 1}, node.name),
    aten.permute.default: lambda tr, node, x, dims: tr.create("kiln.permute", [tr.value(x)], {"dims": list(dims)},
                                                              node.name),
    aten.unsqueeze.default: lambda tr, node, x, d: tr.create("kiln.unsqueeze", [tr.value(x)], {"dim": d}, node.name),
    aten.squeeze.dim: lambda tr, node, x, d: tr.create("kiln.squeeze", [tr.value(x)], {"dim": d}, node.name),
    aten.slice.Tensor: _slice,
    aten.cat.default: lambda tr, node, xs, dim=0: tr.create("kiln.cat", [tr.value(x) for x in xs], {"dim": dim},
                                                            node.name),
    aten.split.Tensor: None,  # handled by Translator.split
    aten.mean.dim: _mean, aten.sum.dim_IntList: _sum,
    aten.amax.default: lambda tr, node, x, dims=(), keepdim=False: tr.create(
        "kiln.amax", [tr.value(x)], {"dims": list(dims), "keepdim": bool(keepdim)}, node.name),
    aten._softmax.default: lambda tr, node, x, dim, half: tr.create("kiln.softmax", [tr.value(x)], {"dim": dim},
                                                                     node.name),
    aten.softmax.int: lambda tr, node, x, dim, dtype=None: tr.create("kiln.softmax", [tr.value(x)], {"dim": dim},
                                                                      node.name),
    aten.scaled_dot_product_attention.default: _sdpa,
    aten.layer_norm.default: _layer_norm,
    aten.gelu.default: lambda tr, node, x, approximate="none": tr.create(
        "kiln.gelu", [tr.value(x)], {"approximate": approximate}, node.name),
    aten._to_copy.default: _to_copy,
    aten.to.dtype: lambda tr, node, x, dtype, *a, **k: _to_copy(tr, node, x, dtype),
    aten.where.self: lambda tr, node, c, a, b: tr.create("kiln.where", [tr.value(c), tr.value(a), tr.value(b)], {},
                                                         node.name),
}
for _name, _kname in [("add", "add"), ("sub", "sub"), ("mul", "mul"), ("div", "div"), ("eq", "eq"), ("ne", "ne"),
                      ("lt", "lt"), ("le", "le"), ("gt", "gt"), ("ge", "ge")]:
    for _ov in ("Tensor", "Scalar"):
        if hasattr(getattr(aten, _name), _ov):
            _RULES[getattr(getattr(aten, _name), _ov)] = _binary(f"kiln.{_kname}")
_RULES[aten.pow.Tensor_Scalar] = _binary("kiln.pow")
_RULES[aten.pow.Tensor_Tensor] = _binary("kiln.pow")
_RULES[aten.maximum.default] = _binary("kiln.maximum")
_RULES[aten.minimum.default] = _binary("kiln.minimum")
_RULES[aten.logical_and.default] = _binary("kiln.and")
_RULES[aten.logical_or.default] = _binary("kiln.or")
for _n in ("neg", "abs", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "relu", "cos", "sin",
           "reciprocal", "erf", "logical_not"):
    _RULES[getattr(aten, _n).default] = _unary(f"kiln.{_n}")


def _bool_only(name: str, inner: Callable) -> Callable:
    def rule(tr, node, *args, **kw):
        if any(tr.value(a).type.dtype != DType.i1 for a in args if hasattr(a, "op")):
            raise _NoRule()
        return inner(tr, node, *args, **kw)

    return rule


_RULES[aten.__and__.Tensor] = _bool_only("and", _binary("kiln.and"))
_RULES[aten.bitwise_and.Tensor] = _bool_only("and", _binary("kiln.and"))
_RULES[aten.__or__.Tensor] = _bool_only("or", _binary("kiln.or"))
_RULES[aten.bitwise_or.Tensor] = _bool_only("or", _binary("kiln.or"))
_RULES[aten.bitwise_not.default] = _bool_only("not", _unary("kiln.logical_not"))


def translate(ep, params: dict[str, torch.Tensor]) -> tuple[Module, dict[str, int]]:
    """The exported program as a kiln module with one program, ``forward``."""
    tr = Translator(ep, params)
    module = tr.run()
    return module, tr.generic
