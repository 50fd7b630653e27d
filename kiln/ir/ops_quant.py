"""Quantized ops and the number formats behind them (declared here; imported at the end of ops.py).

Weight formats (made by the ``quantize-weights`` pass, see docs/quantization.md):

- ``int8``: per output channel, symmetric. ``q`` int8 [N, K], ``scales`` f32 [N]; w = q * s,
  s = max|w_row| / 127.
- ``int4``: groups of ``group_size`` columns along K (the last group may be narrower: K need not
  be a multiple, only even). ``q`` uint8 [N, K/2] holds two 4-bit codes per byte; ``scales`` f16
  [N, G] and, when asymmetric, ``offsets`` f16 [N, G]. w = code * s + m, with m = -8 s when
  symmetric (s = max|w_group| / 7) and m = min(w_group) when not (s = (max - min) / 15).
  Packing: a group of r columns starting at column c is the r/2 bytes from c/2; byte j holds
  column c + j in its low nibble and column c + r/2 + j in its high nibble, so a kernel that
  unpacks 16 bytes gets 16 consecutive low columns and 16 consecutive high ones (no shuffles).

The KV cache in int8 (``quantize-kv``): one f32 scale per (layer, block, kv head, position)
beside the int8 cache, s = max|x| / 127 over the head dim.

Reference semantics dequantize and call the float op, so they are the meaning every kernel
(``kiln/codegen/cpu.py``, ``kiln/codegen/native.py``) is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kiln.errors import IRError
from kiln.ir.registry import declare
from kiln.ir.semantics import cache_keys, check_cache_operands, seq_runs
from kiln.ir.types import DType, TensorType, dims_equal

# symmetric int4: w = code * s + INT4_SYMMETRIC_ZERO * s, codes 0..15 (the native C and the Triton kernels use it)
INT4_SYMMETRIC_ZERO = -8.0

FORMATS = ("int8", "int4")
GROUP_SIZES = (32, 64, 128)

# ---------------------------------------------------------------------------
# the formats: quantize (used by the passes) and dequantize (the reference)


def groups(k: int, group_size: int) -> list[tuple[int, int]]:
    """(first column, width) of each group along a row of k columns; the last may be narrower."""
    return [(c, min(group_size, k - c)) for c in range(0, k, group_size)]


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w [N, K] float -> (q int8 [N, K], scales f32 [N]); symmetric per row."""
    w = w.float()
    s = w.abs().amax(dim=1) / 127.0
    s = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.round(w / s[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), s.contiguous()


def dequantize_int8(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return q.float() * s.float()[:, None]


def _pack_group(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, r] in 0..15 (r even) -> bytes [N, r/2]: low nibble column j, high nibble column r/2 + j."""
    h = codes.shape[1] // 2
    return (codes[:, :h] | (codes[:, h:] << 4)).to(torch.uint8)


def _unpack_group(b: torch.Tensor) -> torch.Tensor:
    """bytes [..., r/2] -> codes [..., r] (float)."""
    return torch.cat([b & 15, b >> 4], dim=-1).float()


def quantize_int4(w: torch.Tensor, group_size: int, symmetric: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """w [N, K] float (K even) -> (q uint8 [N, K/2], scales f16 [N, G], offsets f16 [N, G] or None)."""
    w = w.float()
    k = w.shape[1]
    if k % 2:
        raise IRError(f"int4 needs an even input width, got {k}")
    packed, scales, offsets = [], [], []
    for c, r in groups(k, group_size):
        g = w[:, c:c + r]
        if symmetric:
            s = (g.abs().amax(dim=1) / 7.0)
            s = torch.where(s > 0, s, torch.ones_like(s)).half().float()
            s = torch.where(s > 0, s, torch.ones_like(s))  # a tiny scale can round to 0 in f16
            m = INT4_SYMMETRIC_ZERO * s
        else:
            lo, hi = g.amin(dim=1), g.amax(dim=1)
            s = ((hi - lo) / 15.0)
            s = torch.where(s > 0, s, torch.ones_like(s)).half().float()
            s = torch.where(s > 0, s, torch.ones_like(s))
            m = lo.half().float()
            offsets.append(m.half())
        codes = torch.round((g - m[:, None]) / s[:, None]).clamp_(0, 15).to(torch.int64)
        packed.append(_pack_group(codes))
        scales.append(s.half())
    q = torch.cat(packed, dim=1).contiguous()
    return q, torch.stack(scales, 1).contiguous(), (torch.stack(offsets, 1).contiguous() if offsets else None)


def dequantize_int4(q: torch.Tensor, s: torch.Tensor, m: torch.Tensor | None, group_size: int) -> torch.Tensor:
    """The inverse of ``quantize_int4``: [..., K/2] bytes with [..., G] scales -> [..., K] f32."""
    k = q.shape[-1] * 2
    s = s.float()
    m = m.float() if m is not None else INT4_SYMMETRIC_ZERO * s
    full = (k // group_size) * group_size
    out = []
    if full:
        ng = full // group_size
        b = q[..., : full // 2].reshape(*q.shape[:-1], ng, group_size // 2)
        codes = _unpack_group(b)  # [..., ng, g]
        out.append((codes * s[..., :ng, None] + m[..., :ng, None]).reshape(*q.shape[:-1], full))
    if full < k:
        codes = _unpack_group(q[..., full // 2:])
        out.append(codes * s[..., -1:] + m[..., -1:])
    return out[0] if len(out) == 1 else torch.cat(out, dim=-1)


def dequantize(q, scales, offsets, *, format: str, group_size: int) -> torch.Tensor:
    if format == "int8":
        return dequantize_int8(q, scales)
    if format == "int4":
        return dequantize_int4(q, scales, offsets, group_size)
    raise IRError(f"unknown quantization format {format!r}")


def quantize_rows_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 over the last dim: (q int8 [..., D], scales f32 [...])."""
    x = x.float()
    s = x.abs().amax(dim=-1) / 127.0
    s = torch.where(s > 0, s, torch.ones_like(s))
    return torch.round(x / s[..., None]).clamp_(-127, 127).to(torch.int8), s


# ---------------------------------------------------------------------------
# shape rules


def has_offsets(attrs: dict) -> bool:
    """Whether a quantized weight carries f16 offsets (zero points): int4 that is not symmetric."""
    return attrs["format"] == "int4" and not attrs["symmetric"]


def split_quant_operands(ts_or_vals: list, symmetric: bool, format: str):
    """(q, scales, offsets or None, rest) from the operand list after the activation."""
    q, s = ts_or_vals[0], ts_or_vals[1]
    has_off = has_offsets({"format": format, "symmetric": symmetric})
    off = ts_or_vals[2] if has_off else None
    rest = ts_or_vals[3:] if has_off else ts_or_vals[2:]
    return q, s, off, rest


def _check_qweight(op: str, q: TensorType, s: TensorType, off: TensorType | None, a: dict) -> tuple[int, int]:
    """The float shape [N, K] the quantized weight stands for, after checking its parts."""
    fmt, g = a["format"], a["group_size"]
    if fmt not in FORMATS:
        raise IRError(f"{op}: unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if q.rank != 2 or not all(isinstance(d, int) for d in q.shape):
        raise IRError(f"{op}: the quantized weight must be a static 2-d tensor, got {q}")
    n = q.shape[0]
    if fmt == "int8":
        if q.dtype != DType.i8 or s.shape != (n,) or s.dtype != DType.f32 or off is not None:
            raise IRError(f"{op}: int8 needs an i8 [N, K] weight and f32 [N] scales, got {q}, {s}")
        return n, q.shape[1]
    k = 2 * q.shape[1]
    if not isinstance(g, int) or g < 2 or g % 2:
        raise IRError(f"{op}: int4 needs an even group_size, got {g!r}")
    ng = -(-k // g)
    if q.dtype != DType.u8 or s.shape != (n, ng) or s.dtype != DType.f16:
        raise IRError(f"{op}: int4 g{g} needs a ui8 [N, K/2] weight and f16 [N, {ng}] scales, got {q}, {s}")
    if off is not None and (off.shape != s.shape or off.dtype != DType.f16):
        raise IRError(f"{op}: int4 offsets must match the scales {s}, got {off}")
    return n, k


def _qlinear_shape(ts, a):
    x = ts[0]
    q, s, off, rest = split_quant_operands(ts[1:], a["symmetric"], a["format"])
    n, k = _check_qweight("kiln.qlinear", q, s, off, a)
    if not dims_equal(x.shape[-1], k):
        raise IRError(f"kiln.qlinear: x {x.shape} does not match the quantized weight's [{n}, {k}]")
    if len(rest) > 1 or (rest and (rest[0].rank != 1 or not dims_equal(rest[0].shape[0], n))):
        raise IRError(f"kiln.qlinear: bias must be one [N] tensor, got {[str(t) for t in rest]}")
    return [x.with_dtype(DType.f32).with_shape(x.shape[:-1] + (n,))]


def qlinear_ref(ctx, x, *ops, format, group_size, symmetric):
    q, s, off, rest = split_quant_operands(list(ops), symmetric, format)
    w = dequantize(q, s, off, format=format, group_size=group_size)
    return F.linear(x.float(), w, rest[0] if rest else None)


declare("kiln.qlinear", "x [..., K] @ dequantize(q, scales[, offsets])^T (+ bias [N]) -> [..., N]: a linear "
        "with a quantized weight; `format` int8 (per output channel) or int4 (`group_size` columns per "
        "scale, `symmetric` or with f16 offsets). Layouts in kiln/ir/ops_quant.py.",
        operands=("x", "q", "scales", "offsets?", "bias?"), when={"offsets": has_offsets},
        attrs={"format": str, "group_size": int, "symmetric": bool}, traits=("pure", "gemm", "quantized"),
        shape=_qlinear_shape, reference=qlinear_ref)


def _qembedding_shape(ts, a):
    ids = ts[-1]
    q, s, off, rest = split_quant_operands(ts[:-1], a["symmetric"], a["format"])
    if rest:
        raise IRError("kiln.qembedding: expects (q, scales[, offsets], ids)")
    if ids.dtype not in (DType.i64, DType.i32):
        raise IRError(f"kiln.qembedding: ids must be integers, got {ids}")
    _, d = _check_qweight("kiln.qembedding", q, s, off, a)
    return [TensorType(DType.f32, ids.shape + (d,))]


def _qembedding_ref(ctx, *ops, format, group_size, symmetric):
    ids = ops[-1]
    q, s, off, _ = split_quant_operands(list(ops[:-1]), symmetric, format)
    flat = ids.reshape(-1)
    rows = dequantize(q[flat], s[flat], off[flat] if off is not None else None, format=format,
                      group_size=group_size)  # only the rows looked up are dequantized
    return rows.reshape(*ids.shape, rows.shape[-1])


declare("kiln.qembedding", "Rows of a quantized table [V, D] (same formats as kiln.qlinear) picked by integer "
        "ids [...] and dequantized -> [..., D] f32.", operands=("q", "scales", "offsets?", "ids"),
        when={"offsets": has_offsets}, attrs={"format": str, "group_size": int, "symmetric": bool},
        traits=("pure", "quantized"),
        shape=_qembedding_shape, reference=_qembedding_ref)

# ---------------------------------------------------------------------------
# int8 KV cache


def _fake_quant_ref(ctx, x):
    q, s = quantize_rows_int8(x)
    return (q.float() * s[..., None]).to(x.dtype)


declare("kiln.fake_quant_int8", "Round x to symmetric int8 per row of the last dim and back (max|row| / 127 "
        "steps): what an int8 KV cache stores, for the full-sequence program.",
        traits=("pure", "elementwise"), shape=lambda ts, a: [ts[0]], reference=_fake_quant_ref)


def _scale_check(name: str, cache: TensorType, scales: TensorType) -> None:
    if cache.dtype != DType.i8 or scales.dtype != DType.f32 or scales.shape != cache.shape[:4]:
        raise IRError(f"{name}: an int8 cache [L, NB, KVH, BS, D] needs f32 scales [L, NB, KVH, BS], "
                      f"got {cache} and {scales}")


def _cache_write_q8_shape(ts, a):
    cache, scales, x, pos, seq, table = ts
    check_cache_operands("kiln.cache_write_q8", cache, x, pos, seq, table)
    _scale_check("kiln.cache_write_q8", cache, scales)
    if not (dims_equal(x.shape[1], cache.shape[2]) and dims_equal(x.shape[3], cache.shape[4])):
        raise IRError(f"kiln.cache_write_q8: tokens {x.shape} do not fit cache {cache.shape}")
    return [cache, scales]


def _cache_write_q8_ref(ctx, cache, scales, x, pos, seq, table, *, layer, layout):
    bs = cache.shape[3]
    blocks = table[seq, torch.div(pos, bs, rounding_mode="floor")]
    q, s = quantize_rows_int8(x[0].transpose(0, 1))  # [N, KVH, D], [N, KVH]
    cache[layer][blocks, :, pos % bs] = q  # in place
    scales[layer][blocks, :, pos % bs] = s
    return [cache, scales]


declare("kiln.cache_write_q8", "kiln.cache_write into an int8 cache: each (token, kv head) row of x [1, KVH, N, D] "
        "is stored as int8 with its f32 scale max|row| / 127 in `scales` [L, NB, KVH, BS]; in place, the "
        "results are the cache and the scales.", operands=("cache", "scales", "x", "pos", "seq", "table"),
        attrs={"layer": int, "layout": str},
        traits=("inplace", "writes-cache", "quantized"), shape=_cache_write_q8_shape, reference=_cache_write_q8_ref)


def _cache_attention_q8_shape(ts, a):
    q, kc, ks, vc, vs, pos, seq, table = ts
    check_cache_operands("kiln.cache_attention_q8", kc, q, pos, seq, table)
    _scale_check("kiln.cache_attention_q8", kc, ks)
    _scale_check("kiln.cache_attention_q8", vc, vs)
    if kc.shape != vc.shape:
        raise IRError(f"kiln.cache_attention_q8: K and V caches differ: {kc.shape} vs {vc.shape}")
    return [q]


def _cache_attention_q8_ref(ctx, q, kc, ks, vc, vs, pos, seq, table, *, layer, scale, layout):
    out = torch.empty_like(q)
    kl, vl = kc[layer], vc[layer]
    ksl, vsl = ks[layer].unsqueeze(-1), vs[layer].unsqueeze(-1)  # [NB, KVH, BS, 1]
    gqa = q.shape[1] != kc.shape[2]
    pos_l = pos.tolist()
    for s, i, j in seq_runs(seq.tolist()):
        length = max(pos_l[i:j]) + 1
        # dequantize as it reads: int8 rows times their scales, only this sequence's positions
        k = (cache_keys(kl, table[s], length).float() * cache_keys(ksl, table[s], length)).to(q.dtype).unsqueeze(0)
        v = (cache_keys(vl, table[s], length).float() * cache_keys(vsl, table[s], length)).to(q.dtype).unsqueeze(0)
        qs = q[:, :, i:j]
        if j - i == 1 and pos_l[i] == length - 1:
            o = F.scaled_dot_product_attention(qs, k, v, scale=scale, enable_gqa=gqa)
        else:
            keep = torch.arange(length, device=q.device)[None, :] <= pos[i:j, None]
            o = F.scaled_dot_product_attention(qs, k, v, attn_mask=keep, scale=scale, enable_gqa=gqa)
        out[:, :, i:j] = o
    return out


declare("kiln.cache_attention_q8", "kiln.cache_attention over an int8 cache: keys and values are dequantized "
        "(int8 row * its scale) as they are read.",
        operands=("q", "k_cache", "k_scales", "v_cache", "v_scales", "pos", "seq", "table"),
        attrs={"layer": int, "scale": float, "layout": str}, traits=("pure", "reads-cache", "quantized"),
        variants={"verify": "kiln.cache_tree_attention_q8"},
        shape=_cache_attention_q8_shape, reference=_cache_attention_q8_ref)
