"""Declarations of kiln's ops: shape rules and reference semantics in torch.

One ``declare`` call per op (elementwise families are declared from tables).
The reference function is the meaning of the op: the CPU backend runs it, and
every other lowering is tested against it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kiln.errors import IRError
from kiln.ir.aten_policy import check_aten_op, dry_run, resolve_aten
from kiln.ir.registry import ExecContext, declare
from kiln.ir.semantics import (
    FROM_TORCH,
    TORCH_DTYPE,
    cache_keys,
    check_cache_operands,
    concrete,
    seq_runs,
)
from kiln.ir.types import (
    SLICE_TO_END,
    Dim,
    DType,
    Ref,
    Sym,
    TensorType,
    canon_dim,
    dim_add,
    dim_mul,
    dims_equal,
    eval_dim,
)

__all__ = ["FROM_TORCH", "TORCH_DTYPE", "cache_keys", "concrete", "resolve_aten", "seq_runs"]  # re-exported

# ---------------------------------------------------------------------------
# dtype helpers


_FLOAT_RANK = {DType.f16: 1, DType.bf16: 1, DType.f32: 2, DType.f64: 3}
_INT_RANK = {DType.i1: 0, DType.u8: 1, DType.i8: 1, DType.i16: 2, DType.i32: 3, DType.i64: 4}


def promote(a: DType, b: DType) -> DType:
    """torch's promotion for two tensors of the same category rank."""
    if a == b:
        return a
    if a.is_float and b.is_float:
        if _FLOAT_RANK[a] == _FLOAT_RANK[b]:
            return DType.f32  # f16 with bf16
        return a if _FLOAT_RANK[a] > _FLOAT_RANK[b] else b
    if a.is_float:
        return a
    if b.is_float:
        return b
    return a if _INT_RANK[a] >= _INT_RANK[b] else b


def promote_scalar(t: DType, scalar: Any) -> DType:
    if isinstance(scalar, bool):
        return t
    if isinstance(scalar, float) and not t.is_float:
        return DType.f32
    if isinstance(scalar, int) and t == DType.i1:
        return DType.i64
    return t


def broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    out: list[Dim] = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or dims_equal(x, y):
            out.append(x)
        elif isinstance(x, int) and isinstance(y, int):
            raise IRError(f"shapes {a} and {b} do not broadcast")
        elif isinstance(x, str) and isinstance(y, str):
            raise IRError(f"shapes {a} and {b} do not broadcast: {x} and {y} are different sizes")
        else:
            out.append(x if isinstance(x, int) else y)
    return tuple(reversed(out))


def _norm_dim(d: int, rank: int) -> int:
    if not -rank <= d < max(rank, 1):
        raise IRError(f"dimension {d} out of range for rank {rank}")
    return d % rank if rank else 0




# ---------------------------------------------------------------------------
# sources, terminator

declare("kiln.weight", "A named weight of the module (parameter or buffer).", operands=(),
        attrs={"name": str}, traits=("pure", "source"),
        reference=lambda ctx, *, name: ctx.weights[name])


def _constant_ref(ctx: ExecContext, *, value):
    dt = ctx.result_types[0]
    return torch.full(concrete(dt.shape, ctx.env), value, dtype=TORCH_DTYPE[dt.dtype], device=ctx.device)


declare("kiln.constant", "A tensor filled with one scalar `value` (its type gives shape and dtype).",
        operands=(), attrs={"value": (int, float, bool)},
        traits=("pure", "source"), reference=_constant_ref)

declare("kiln.return", "Ends a program; its operands are the program's outputs.", operands=("values*",),
        traits=("terminator",), shape=lambda ts, a: [])

# ---------------------------------------------------------------------------
# elementwise


def _unary_shape(ts, a):
    return [ts[0]]


def _float_unary_shape(ts, a):
    t = ts[0]
    return [t if t.dtype.is_float else t.with_dtype(DType.f32)]


UNARY = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "silu": F.silu,
    "relu": torch.relu, "cos": torch.cos, "sin": torch.sin, "reciprocal": torch.reciprocal,
    "erf": torch.erf, "logical_not": torch.logical_not,
}
def _unary_ref(f):
    return lambda ctx, x: f(x)


def _reduce_ref(f):
    return lambda ctx, x, *, dims, keepdim: f(x, dim=dims, keepdim=keepdim)


for _n, _f in UNARY.items():
    declare(f"kiln.{_n}", f"Elementwise {_n}.",
            traits=("pure", "elementwise") + (("row-kernel",) if _n != "logical_not" else ()),
            shape=_unary_shape if _n in ("neg", "abs", "relu", "logical_not") else _float_unary_shape,
            reference=_unary_ref(_f))

declare("kiln.gelu", "Elementwise GELU; approximate is 'none' (erf) or 'tanh'.", defaults={"approximate": "none"},
        traits=("pure", "elementwise", "row-kernel"), shape=_float_unary_shape,
        reference=lambda ctx, x, *, approximate: F.gelu(x, approximate=approximate))

BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum,
    "and": torch.logical_and, "or": torch.logical_or,
    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge,
}
COMPARE = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or"}
COMMUTATIVE = {"add", "mul", "maximum", "minimum", "and", "or", "eq", "ne"}
ROW_BINARY = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"}  # float math (pow: x ** 2 only)


def _binary_shape(kind: str):
    def rule(ts, a):
        if len(ts) == 2:
            shape = broadcast(ts[0].shape, ts[1].shape)
            dt = promote(ts[0].dtype, ts[1].dtype)
        else:
            if a.get("scalar") is None:
                raise IRError(f"kiln.{kind} with one operand needs a `scalar` attribute")
            shape, dt = ts[0].shape, promote_scalar(ts[0].dtype, a["scalar"])
        if kind in COMPARE:
            dt = DType.i1
        elif kind == "div" and not dt.is_float:
            dt = DType.f32
        return [TensorType(dt, shape)]

    return rule


def _binary_ref(f):
    def ref(ctx, a, b=None, *, scalar=None, reverse=False):
        other = b if b is not None else scalar
        return f(other, a) if reverse else f(a, other)

    return ref


for _n, _f in BINARY.items():
    declare(f"kiln.{_n}", f"Elementwise {_n} of two tensors, or of a tensor and the attribute `scalar` "
            "(`reverse = true` puts the scalar first).",
            operands=("a", "b?"), defaults={"scalar": None, "reverse": False},
            traits=("pure", "elementwise") + (("commutative",) if _n in COMMUTATIVE else ()) +
            (("row-kernel",) if _n in ROW_BINARY else ()),
            shape=_binary_shape(_n), reference=_binary_ref(_f))

declare("kiln.where", "Select `a` where `cond` else `b` (broadcasting).", operands=("cond", "a", "b"),
        traits=("pure", "elementwise"),
        shape=lambda ts, a: [TensorType(promote(ts[1].dtype, ts[2].dtype),
                                        broadcast(ts[0].shape, broadcast(ts[1].shape, ts[2].shape)))],
        reference=lambda ctx, c, x, y: torch.where(c, x, y))

declare("kiln.cast", "Convert to `dtype`.", attrs={"dtype": DType}, traits=("pure", "elementwise", "row-kernel"),
        shape=lambda ts, a: [ts[0].with_dtype(a["dtype"])],
        reference=lambda ctx, x, *, dtype: x.to(TORCH_DTYPE[dtype]))

# ---------------------------------------------------------------------------
# reductions


def _reduce_shape(ts, a):
    t = ts[0]
    dims = {_norm_dim(d, t.rank) for d in a["dims"]}
    shape = [(1 if i in dims else d) for i, d in enumerate(t.shape) if a["keepdim"] or i not in dims]
    return [t.with_shape(shape)]


for _n, _f in {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax}.items():
    declare(f"kiln.{_n}", f"Reduce by {_n} over `dims`.", attrs={"dims": list}, defaults={"keepdim": False},
            traits=("pure", "reduction"), shape=_reduce_shape, reference=_reduce_ref(_f))

declare("kiln.softmax", "Softmax along `dim` (computed in the input dtype).", attrs={"dim": int},
        traits=("pure", "reduction", "row-kernel"), shape=_unary_shape, reference=lambda ctx, x, *, dim: torch.softmax(x, dim=dim))

# ---------------------------------------------------------------------------
# layout


def _reshape_shape(ts, a):
    t = ts[0]
    shape = [canon_dim(d) for d in a["shape"]]
    if not dims_equal(t.numel(), dim_mul(*shape) if shape else 1):
        raise IRError(f"kiln.reshape: {t.shape} has a different number of elements than {tuple(shape)}")
    return [t.with_shape(shape)]


declare("kiln.reshape", "View with a new `shape` (static ints or symbolic dims) of equal size.",
        attrs={"shape": list}, traits=("pure", "layout"), shape=_reshape_shape,
        reference=lambda ctx, x, *, shape: x.reshape(concrete(shape, ctx.env)))


def _transpose_shape(ts, a):
    t = ts[0]
    s = list(t.shape)
    i, j = _norm_dim(a["dim0"], t.rank), _norm_dim(a["dim1"], t.rank)
    s[i], s[j] = s[j], s[i]
    return [t.with_shape(s)]


declare("kiln.transpose", "Swap dimensions `dim0` and `dim1`.", attrs={"dim0": int, "dim1": int},
        traits=("pure", "layout"), shape=_transpose_shape, reference=lambda ctx, x, *, dim0, dim1: x.transpose(dim0, dim1))


def _permute_shape(ts, a):
    t = ts[0]
    dims = [_norm_dim(d, t.rank) for d in a["dims"]]
    if sorted(dims) != list(range(t.rank)):
        raise IRError(f"kiln.permute: {a['dims']} is not a permutation of rank {t.rank}")
    return [t.with_shape([t.shape[d] for d in dims])]


declare("kiln.permute", "Reorder dimensions as `dims`.", attrs={"dims": list}, traits=("pure", "layout"), shape=_permute_shape,
        reference=lambda ctx, x, *, dims: x.permute(dims))


def _unsqueeze_shape(ts, a):
    t = ts[0]
    d = _norm_dim(a["dim"], t.rank + 1)
    s = list(t.shape)
    s.insert(d, 1)
    return [t.with_shape(s)]


declare("kiln.unsqueeze", "Insert a dimension of size 1 at `dim`.", attrs={"dim": int},
        traits=("pure", "layout"), shape=_unsqueeze_shape, reference=lambda ctx, x, *, dim: x.unsqueeze(dim))


def _squeeze_shape(ts, a):
    t = ts[0]
    d = _norm_dim(a["dim"], t.rank)
    if t.shape[d] != 1:
        raise IRError(f"kiln.squeeze: dimension {d} of {t.shape} is not 1")
    return [t.with_shape(t.shape[:d] + t.shape[d + 1:])]


declare("kiln.squeeze", "Remove the size-1 dimension `dim`.", attrs={"dim": int},
        traits=("pure", "layout"), shape=_squeeze_shape, reference=lambda ctx, x, *, dim: x.squeeze(dim))


def _expand_shape(ts, a):
    t = ts[0]
    shape = list(a["shape"])
    if len(shape) < t.rank:
        raise IRError(f"kiln.expand: {shape} has lower rank than {t.shape}")
    off = len(shape) - t.rank
    out = []
    for i, d in enumerate(shape):
        src = t.shape[i - off] if i >= off else 1
        if d == -1:
            out.append(src)
        else:
            if src != 1 and not dims_equal(src, d):
                raise IRError(f"kiln.expand: cannot expand {t.shape} to {shape}")
            out.append(canon_dim(d))
    return [t.with_shape(out)]


declare("kiln.expand", "Broadcast to `shape` (-1 keeps a dimension).", attrs={"shape": list},
        traits=("pure", "layout"), shape=_expand_shape, reference=lambda ctx, x, *, shape: x.expand(concrete(shape, ctx.env)))


def _slice_len(size: Dim, start: int, end: int, step: int) -> Dim:
    if isinstance(size, int):
        return len(range(*slice(start, end, step).indices(size)))
    # symbolic size: handle the forms the frontend produces
    if step == 1 and start >= 0 and end >= SLICE_TO_END:
        return dim_add(size, -start)
    if step == 1 and start == 0 and end == 1:
        return 1  # a symbolic dim is at least 1
    if step == 1 and 0 <= start <= end < SLICE_TO_END:
        raise IRError("kiln.slice: a static range of a symbolic dimension has a size that depends on it")
    raise IRError(f"kiln.slice: cannot size slice({start}, {end}, {step}) of symbolic dim {size}")


def _slice_shape(ts, a):
    t = ts[0]
    d = _norm_dim(a["dim"], t.rank)
    s = list(t.shape)
    s[d] = _slice_len(s[d], a["start"], a["end"], a["step"])
    return [t.with_shape(s)]


def _slice_ref(ctx, x, *, dim, start, end, step):
    idx = [slice(None)] * x.dim()
    idx[dim] = slice(start, end, step)
    return x[tuple(idx)]


declare("kiln.slice", "Elements `start:end:step` along `dim` (end 2**63-1 means to the end).",
        attrs={"dim": int, "start": int, "end": int}, defaults={"step": 1}, traits=("pure", "layout", "row-kernel"), shape=_slice_shape, reference=_slice_ref)


def _cat_shape(ts, a):
    d = _norm_dim(a["dim"], ts[0].rank)
    size: Dim = 0
    for t in ts:
        if t.rank != ts[0].rank:
            raise IRError("kiln.cat: operands of different rank")
        size = dim_add(size, t.shape[d])
    s = list(ts[0].shape)
    s[d] = size
    dt = ts[0].dtype
    for t in ts[1:]:
        dt = promote(dt, t.dtype)
    return [TensorType(dt, s)]


declare("kiln.cat", "Concatenate the operands along `dim`.", operands=("xs+",), attrs={"dim": int},
        traits=("pure", "layout"),
        shape=_cat_shape, reference=lambda ctx, *xs, dim: torch.cat(xs, dim=dim))

# ---------------------------------------------------------------------------
# transformer ops


def _embedding_shape(ts, a):
    table, ids = ts
    if table.rank != 2:
        raise IRError(f"kiln.embedding: table must be 2-d, got {table.shape}")
    return [TensorType(table.dtype, ids.shape + (table.shape[1],))]


declare("kiln.embedding", "Rows of `table` [V, D] picked by integer `ids` [...] -> [..., D].", operands=("table", "ids"),
        shape=_embedding_shape, reference=lambda ctx, table, ids: F.embedding(ids, table))


def _linear_shape(ts, a):
    x, w = ts[0], ts[1]
    if w.rank != 2 or not dims_equal(x.shape[-1], w.shape[1]):
        raise IRError(f"kiln.linear: x {x.shape} does not match weight {w.shape} ([out, in])")
    if len(ts) == 3 and (ts[2].rank != 1 or not dims_equal(ts[2].shape[0], w.shape[0])):
        raise IRError(f"kiln.linear: bias {ts[2].shape} does not match weight {w.shape}")
    return [TensorType(promote(x.dtype, w.dtype), x.shape[:-1] + (w.shape[0],))]


declare("kiln.linear", "x [..., K] @ w[N, K]^T (+ bias [N]) -> [..., N].", operands=("x", "weight", "bias?"),
        traits=("pure", "gemm"),
        shape=_linear_shape, reference=lambda ctx, x, w, b=None: F.linear(x, w, b))


def _matmul_shape(ts, a):
    x, y = ts
    if x.rank < 2 or y.rank < 2:
        raise IRError("kiln.matmul: operands must be at least 2-d")
    if not dims_equal(x.shape[-1], y.shape[-2]):
        raise IRError(f"kiln.matmul: {x.shape} @ {y.shape} inner dims differ")
    batch = broadcast(x.shape[:-2], y.shape[:-2])
    return [TensorType(promote(x.dtype, y.dtype), batch + (x.shape[-2], y.shape[-1]))]


declare("kiln.matmul", "Batched matrix product a [..., M, K] @ b [..., K, N].", operands=("a", "b"),
        shape=_matmul_shape, reference=lambda ctx, x, y: torch.matmul(x, y))


def _rms_norm_ref(ctx, x, w, *, eps):
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


declare("kiln.rms_norm", "w * x / sqrt(mean(x^2, -1) + eps), computed in float32 (Llama's order).",
        operands=("x", "weight"), attrs={"eps": float}, traits=("pure", "norm", "row-kernel"),
        shape=lambda ts, a: [ts[0].with_dtype(promote(ts[0].dtype, ts[1].dtype))], reference=_rms_norm_ref)


def _layer_norm_ref(ctx, x, w=None, b=None, *, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


declare("kiln.layer_norm", "LayerNorm over the last dim with optional weight and bias.",
        operands=("x", "weight?", "bias?"), attrs={"eps": float}, traits=("pure", "norm", "row-kernel"), shape=_unary_shape, reference=_layer_norm_ref)


def _positions_shape(ts, a):
    t = ts[0]
    if t.rank != 2:
        raise IRError(f"kiln.positions: expects token ids [B, T], got {t.shape}")
    return [TensorType(DType.i64, t.shape)]


def _positions_ref(ctx, ids, *, offset):
    b, t = ids.shape
    return (torch.arange(t, device=ids.device) + offset).unsqueeze(0).expand(b, t)


declare("kiln.positions", "Positions offset + arange(T), broadcast to the ids' shape [B, T].",
        operands=("ids",), defaults={"offset": 0}, shape=_positions_shape, reference=_positions_ref)


def _rope_table_shape(ts, a):
    pos, inv = ts
    if inv.rank != 1:
        raise IRError(f"rope table: inv_freq must be 1-d, got {inv.shape}")
    return [TensorType(DType.f32, pos.shape + (dim_mul(inv.shape[0], 2),))]


def _rope_angles(pos, inv):
    freqs = pos.to(torch.float32).unsqueeze(-1) * inv.to(torch.float32)  # [..., D/2]
    return torch.cat([freqs, freqs], dim=-1)  # [..., D]


declare("kiln.rope_cos", "scale * cos(positions ⊗ inv_freq), halves repeated: [..., D] (rotate-half layout).",
        operands=("pos", "inv_freq"), defaults={"scale": 1.0}, shape=_rope_table_shape,
        reference=lambda ctx, pos, inv, *, scale: torch.cos(_rope_angles(pos, inv)) * scale)
declare("kiln.rope_sin", "scale * sin(positions ⊗ inv_freq), halves repeated: [..., D] (rotate-half layout).",
        operands=("pos", "inv_freq"), defaults={"scale": 1.0}, shape=_rope_table_shape,
        reference=lambda ctx, pos, inv, *, scale: torch.sin(_rope_angles(pos, inv)) * scale)


def _rope_ref(ctx, x, cos, sin):
    # x [B, H, T, D]; cos, sin [B, T, D]
    cos, sin = cos.unsqueeze(1).to(x.dtype), sin.unsqueeze(1).to(x.dtype)  # transformers' order: tables in x's dtype
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def _rope_shape(ts, a):
    x, c, _s = ts
    if x.rank != 4 or c.rank != 3:
        raise IRError(f"kiln.rope: expects x [B, H, T, D] and tables [B, T, D], got {x.shape}, {c.shape}")
    return [x]


declare("kiln.rope", "Rotary embedding (rotate-half): x * cos + rotate_half(x) * sin; x [B, H, T, D], "
        "tables [B, T, D].", operands=("x", "cos", "sin"), shape=_rope_shape, reference=_rope_ref)


def _attention_shape(ts, a):
    q, k, v = ts[:3]
    if q.rank != 4 or k.rank != 4 or v.rank != 4:
        raise IRError("kiln.attention: q, k, v must be [B, H, T, D]")
    hq, hk = q.shape[1], k.shape[1]
    if isinstance(hq, int) and isinstance(hk, int) and hq % hk:
        raise IRError(f"kiln.attention: {hq} query heads is not a multiple of {hk} kv heads")
    return [q.with_shape(q.shape[:3] + (v.shape[3],))]


def _attention_ref(ctx, q, k, v, mask=None, *, scale, causal):
    # q [B, Hq, T, D]; k, v [B, Hkv, S, D]; causal aligns the last query with the last key
    t, s = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if causal and mask is None and t == s:  # square causal: let SDPA pick its fused kernel
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    if causal:
        keep = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)
        mask = keep if mask is None else (mask & keep if mask.dtype == torch.bool else mask.masked_fill(~keep, -math.inf))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


declare("kiln.attention", "softmax(q k^T * scale [+ mask]) v with grouped-query heads; `causal` masks "
        "keys after each query (bottom-right aligned).", operands=("q", "k", "v", "mask?"), attrs={"scale": float},
        defaults={"causal": False}, shape=_attention_shape, reference=_attention_ref)

def _gather_shape(ts, a):
    x, idx = ts
    if idx.rank != 1 or idx.dtype not in (DType.i64, DType.i32):
        raise IRError(f"kiln.gather: index must be a 1-d integer tensor, got {idx}")
    d = _norm_dim(a["dim"], x.rank)
    return [x.with_shape(x.shape[:d] + (idx.shape[0],) + x.shape[d + 1:])]


declare("kiln.gather", "The slices of `x` at positions `index` [K] along `dim` (index_select).",
        operands=("x", "index"), attrs={"dim": int}, traits=("pure", "layout"), shape=_gather_shape,
        reference=lambda ctx, x, idx, *, dim: torch.index_select(x, dim, idx))

# ---------------------------------------------------------------------------
# the KV cache (made by the kv-cache pass; see docs/kv-cache.md)
#
# A cache is one tensor per K and V for all layers: [L, NB, KVH, BS, D], a pool of NB blocks of BS
# positions. `table` [S, MB] lists each sequence's blocks: position p of sequence s lives in block
# table[s, p // BS] at offset p % BS. The contiguous layout is the case BS = the context length and
# MB = 1 (a sequence's block is its row); the paged layout has small blocks shared by all sequences.
# Tokens are packed: [1, H, N, D] with per-token `pos` [N] and sequence row `seq` [N]; the tokens of
# one sequence are adjacent.




def _cache_write_shape(ts, a):
    cache, x, pos, seq, table = ts
    check_cache_operands("kiln.cache_write", cache, x, pos, seq, table)
    if not (dims_equal(x.shape[1], cache.shape[2]) and dims_equal(x.shape[3], cache.shape[4])):
        raise IRError(f"kiln.cache_write: tokens {x.shape} do not fit cache {cache.shape}")
    return [cache]


def _cache_write_ref(ctx, cache, x, pos, seq, table, *, layer, layout):
    bs = cache.shape[3]
    blocks = table[seq, torch.div(pos, bs, rounding_mode="floor")]
    cache[layer][blocks, :, pos % bs] = x[0].transpose(0, 1).to(cache.dtype)  # [N, KVH, D] rows, in place
    return cache


declare("kiln.cache_write", "Write K or V of packed tokens x [1, KVH, N, D] into `cache` at (seq, pos) of "
        "`layer`, in place; the result is the cache (it orders later reads after this write).",
        operands=("cache", "x", "pos", "seq", "table"), attrs={"layer": int, "layout": str},
        traits=("inplace", "writes-cache"), variants={"int8-kv": "kiln.cache_write_q8"},
        shape=_cache_write_shape, reference=_cache_write_ref)


def _cache_attention_shape(ts, a):
    q, kc, vc, pos, seq, table = ts
    check_cache_operands("kiln.cache_attention", kc, q, pos, seq, table)
    if kc.shape != vc.shape:
        raise IRError(f"kiln.cache_attention: K and V caches differ: {kc.shape} vs {vc.shape}")
    hq, hk = q.shape[1], kc.shape[2]
    if isinstance(hq, int) and isinstance(hk, int) and hq % hk:
        raise IRError(f"kiln.cache_attention: {hq} query heads is not a multiple of {hk} kv heads")
    return [q]


def _cache_attention_ref(ctx, q, kc, vc, pos, seq, table, *, layer, scale, layout):
    out = torch.empty_like(q)
    kl, vl = kc[layer], vc[layer]
    gqa = q.shape[1] != kc.shape[2]
    pos_l = pos.tolist()
    for s, i, j in seq_runs(seq.tolist()):
        length = max(pos_l[i:j]) + 1
        k = cache_keys(kl, table[s], length).unsqueeze(0)
        v = cache_keys(vl, table[s], length).unsqueeze(0)
        qs = q[:, :, i:j]
        if j - i == 1 and pos_l[i] == length - 1:  # one query at the end: it sees every key
            o = F.scaled_dot_product_attention(qs, k, v, scale=scale, enable_gqa=gqa)
        elif pos_l[i:j] == list(range(length - (j - i), length)) and length == j - i:
            o = F.scaled_dot_product_attention(qs, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
        else:  # each query sees the keys at positions <= its own
            keep = torch.arange(length, device=q.device)[None, :] <= pos[i:j, None]
            o = F.scaled_dot_product_attention(qs, k, v, attn_mask=keep, scale=scale, enable_gqa=gqa)
        out[:, :, i:j] = o
    return out


declare("kiln.cache_attention", "Attention of packed queries q [1, H, N, D] over the cached keys and values "
        "of `layer`: the query at (seq s, pos p) sees positions 0..p of sequence s (causal), with "
        "grouped-query heads.", operands=("q", "k_cache", "v_cache", "pos", "seq", "table"),
        attrs={"layer": int, "scale": float, "layout": str}, traits=("pure", "reads-cache"),
        variants={"int8-kv": "kiln.cache_attention_q8", "verify": "kiln.cache_tree_attention"},
        shape=_cache_attention_shape, reference=_cache_attention_ref)

# ---------------------------------------------------------------------------
# the generic fallback


def _aten_arg(ctx: ExecContext, a, tensors):
    if isinstance(a, Ref):
        return tensors[a.index]
    if isinstance(a, Sym):
        return eval_dim(a.expr, ctx.env)
    if isinstance(a, DType):
        return TORCH_DTYPE[a]
    if isinstance(a, list):
        return [_aten_arg(ctx, x, tensors) for x in a]
    if a == "$device":
        return torch.device(ctx.device)
    return a




def _aten_ref(ctx, *tensors, target, args, kwargs):
    check_aten_op(target, args, kwargs)  # the verifier ran it too; a hand-built program may not have been verified
    fn = resolve_aten(target)
    call_args = _aten_arg(ctx, args, tensors)
    call_kwargs = {k: _aten_arg(ctx, v, tensors) for k, v in kwargs.items()}
    dry_run(fn, call_args, call_kwargs, ctx.result_types, ctx.env, target, ctx.device)  # shapes, memory: first
    out = fn(*call_args, **call_kwargs)
    return list(out) if isinstance(out, (tuple, list)) else out


declare("kiln.aten", "An ATen op kiln does not lift, run through torch: `target` names it, `args`/`kwargs` "
        "hold its arguments with {operand = i} for tensors and {sym = \"..\"} for symbolic sizes. Only "
        "allowlisted pure ops run, after a dry run on meta tensors (kiln/ir/aten_policy.py).",
        operands=("tensors*",), attrs={"target": str}, defaults={"args": [], "kwargs": {}},
        traits=("pure",), shape=None, reference=_aten_ref)
