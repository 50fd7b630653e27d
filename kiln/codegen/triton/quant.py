"""Triton kernels for the quantized ops (``kiln/ir/ops_quant.py``): dequantizing GEMV / GEMM for
``kiln.qlinear`` (int8 per output channel, int4 group-wise symmetric or with offsets), attention over
the int8 KV cache, and the int8 cache write.

``qgemm_source`` generates two kernels per quantized linear, like ``gemm_source`` for float weights:
``{name}_gemv`` (one activation row per program; decode) and ``{name}`` (tiles through ``tl.dot``;
prefill), both followed by the same generated elementwise epilogue. The weight is never dequantized
in memory: each program loads packed bytes and unpacks them in registers.

- int8: ``tl.dot`` / the GEMV product take the int8 codes as they are (exact in any float dtype) and the
  row scale multiplies the f32 accumulator once, at the end: ``x . (q s) = (x . q) s``.
- int4: a step covers ``BLOCK_K`` weight bytes of a row. Byte ``b`` of a row lies in group
  ``gi = b // (GS/2)`` at index ``j = b - gi GS/2``; its low nibble is column ``gi GS + j`` and its high
  nibble column ``gi GS + r/2 + j``, where ``r`` is the group's width (``GS``, or the narrower last
  group's). Both nibbles are dequantized (``code * s + m``, ``m = -8 s`` when symmetric, the f16 offset
  otherwise) and meet the activation columns gathered at those two positions: two contiguous runs per
  group, no shuffle. The GEMM converts the dequantized tile to the activation's dtype before
  ``tl.dot``; the GEMV multiplies in f32.

Attention over the int8 cache is ``cache_attention_split`` (templates.py) with ``SCALED`` on; the int8
cache write follows ``CACHE_WRITE_SOURCE``, writing int8 rows with one f32 scale per (layer, block, kv
head, position). Shapes in the comments;
tails are masked, so no size needs to be a power of two; accumulation is in f32. This module only
writes text; it does not import Triton.
"""

from __future__ import annotations

from kiln.codegen.triton.rowwise import KernelSource, RowInput
from kiln.codegen.triton.templates import CACHE_ATTENTION_SOURCE, _epilogue
from kiln.ir.core import IRError, Op
from kiln.ir.ops_quant import INT4_SYMMETRIC_ZERO
from kiln.ir.types import DType


def qlinear_parts(op: Op) -> tuple[int, int, bool, bool]:
    """(N, K, has offsets, has bias) of a ``kiln.qlinear``; operands are x, q, scales[, offsets][, bias]."""
    fmt = op.attrs["format"]
    q = op.operand("q").type.shape
    if not all(isinstance(d, int) for d in q):
        raise IRError(f"kiln.qlinear: the quantized weight shape {q} is not static")
    n, k = (q[0], q[1]) if fmt == "int8" else (q[0], 2 * q[1])
    return n, k, op.operand("offsets") is not None, op.operand("bias") is not None


def _int8_steps(n: int, k: int, gemv: bool, dot: str) -> list[str]:
    """K loop of the int8 kernels: codes times activations, the row scale applied after the loop."""
    if gemv:
        return [
            "rk = tl.arange(0, BLOCK_K)",
            "acc2 = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)",
            f"for k0 in range(0, {k}, BLOCK_K):",
            "    kk = k0 + rk",
            f"    kmask = kk < {k}",
            f"    a = tl.load(x + m * {k} + kk, mask=kmask, other=0.0).to(tl.float32)",
            f"    qt = tl.load(q + rn[:, None] * {k} + kk[None, :], mask=nmask[:, None] & kmask[None, :], other=0)",
            "    acc2 += qt.to(tl.float32) * a[None, :]",
            "acc = tl.sum(acc2, axis=1) * tl.load(s + rn, mask=nmask, other=0.0)",
        ]
    return [
        "rk = tl.arange(0, BLOCK_K)",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        f"for k0 in range(0, {k}, BLOCK_K):",
        "    kk = k0 + rk",
        f"    kmask = kk[None, :] < {k}",
        f"    a = tl.load(x + rm[:, None] * {k} + kk[None, :], mask=(rm[:, None] < M) & kmask, other=0.0)",
        f"    qt = tl.load(q + rn[:, None] * {k} + kk[None, :], mask=(rn[:, None] < {n}) & kmask, other=0)",
        "    if UPCAST:  # the interpreter's tl.dot misreads 16-bit floats: multiply in f32 there",
        "        a = a.to(tl.float32)",
        "    acc += tl.dot(a, tl.trans(qt.to(a.dtype))" + dot + ")  # int8 codes are exact in a's dtype",
        f"acc = acc * tl.load(s + rn, mask=rn < {n}, other=0.0)[None, :]",
    ]


def _int4_steps(n: int, k: int, gs: int, has_off: bool, gemv: bool, dot: str) -> list[str]:
    """K loop of the int4 kernels over BLOCK_K packed bytes of each weight row per step."""
    kb, ng, half = k // 2, -(-k // gs), gs // 2
    tail_half = (k - (ng - 1) * gs) // 2  # half the width of the last group (== half when gs divides k)
    rows = "nmask[:, None]" if gemv else f"(rn[:, None] < {n})"
    lines = [
        f"for b0 in range(0, {kb}, BLOCK_K):",
        "    bb = b0 + rb",
        f"    bmask = bb < {kb}",
        f"    gi = bb // {half}  # the group of each byte",
        f"    clo = gi * {gs} + (bb - gi * {half})  # its low nibble's column",
        (f"    chi = clo + tl.where(gi == {ng - 1}, {tail_half}, {half})  # its high nibble's: + half the group's "
         "width (the last group is narrower)" if tail_half != half else
         f"    chi = clo + {half}  # its high nibble's: + half the group's width"),
        f"    wmask = {rows} & bmask[None, :]",
        f"    byt = tl.load(q + rn[:, None] * {kb} + bb[None, :], mask=wmask, other=0).to(tl.int32)",
        f"    sc = tl.load(s + rn[:, None] * {ng} + gi[None, :], mask=wmask, other=0.0).to(tl.float32)",
        (f"    mo = tl.load(o + rn[:, None] * {ng} + gi[None, :], mask=wmask, other=0.0).to(tl.float32)"
         if has_off else f"    mo = {INT4_SYMMETRIC_ZERO!r} * sc"),
        "    wl = (byt & 15).to(tl.float32) * sc + mo",
        "    wh = (byt >> 4).to(tl.float32) * sc + mo",
    ]
    if gemv:
        return [
            "rb = tl.arange(0, BLOCK_K)",
            "acc2 = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)",
            *lines,
            f"    al = tl.load(x + m * {k} + clo, mask=bmask, other=0.0).to(tl.float32)",
            f"    ah = tl.load(x + m * {k} + chi, mask=bmask, other=0.0).to(tl.float32)",
            "    acc2 += wl * al[None, :] + wh * ah[None, :]",
            "acc = tl.sum(acc2, axis=1)",
        ]
    return [
        "rb = tl.arange(0, BLOCK_K)",
        "acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
        *lines,
        "    xmask = (rm[:, None] < M) & bmask[None, :]",
        f"    al = tl.load(x + rm[:, None] * {k} + clo[None, :], mask=xmask, other=0.0)",
        f"    ah = tl.load(x + rm[:, None] * {k} + chi[None, :], mask=xmask, other=0.0)",
        "    if UPCAST:  # the interpreter's tl.dot misreads 16-bit floats: multiply in f32 there",
        "        al = al.to(tl.float32)",
        "        ah = ah.to(tl.float32)",
        "    acc += tl.dot(al, tl.trans(wl.to(al.dtype))" + dot + ")  # low nibbles",
        "    acc += tl.dot(ah, tl.trans(wh.to(ah.dtype))" + dot + ")  # high nibbles",
    ]


def qgemm_source(name: str, ops: list[Op], escaping: set[int]) -> KernelSource:
    """``y = x [M, K] @ dequantize(q, s[, o])^T (+ b) -> epilogue`` as ``{name}`` (tiles, grid
    (cdiv(M, BM), cdiv(N, BN))) and ``{name}_gemv`` (grid (M, cdiv(N, BN))). ``BLOCK_K`` counts weight
    bytes per step: columns for int8, twice as many columns for int4."""
    lin = ops[0]
    if lin.name != "kiln.qlinear":
        raise IRError(f"quantized GEMM kernel {name}: starts with {lin.name}, not kiln.qlinear")
    fmt, gs = lin.attrs["format"], lin.attrs["group_size"]
    n, k, has_off, has_bias = qlinear_parts(lin)
    epi = ops[1:]
    outputs = [op.result for op in ops if id(op.result) in escaping]
    if not outputs:
        raise IRError(f"quantized GEMM kernel {name}: no result is read outside the kernel")
    dot = ', input_precision="ieee"' if lin.operand("x").type.dtype == DType.f32 else ""
    inputs: list[RowInput] = []
    e2 = _epilogue(name, epi, lin.result, "rm[:, None]", "rn[None, :]", "mask", inputs, {})
    e1 = _epilogue(name, epi, lin.result, "m", "rn", "nmask", [], {})
    res = {id(lin.result): "acc", **{id(op.result): f"v{j}" for j, op in enumerate(epi)}}
    st2 = [f"tl.store(out{i} + rm[:, None] * {n} + rn[None, :], {res[id(v)]}.to(out{i}.dtype.element_ty), mask=mask)"
           for i, v in enumerate(outputs)]
    st1 = [f"tl.store(out{i} + m * {n} + rn, {res[id(v)]}.to(out{i}.dtype.element_ty), mask=nmask)"
           for i, v in enumerate(outputs)]
    if fmt == "int8":
        what = f"int8 q [{n}, {k}], f32 scales [{n}]"
        body2, body1 = _int8_steps(n, k, False, dot), _int8_steps(n, k, True, dot)
    elif fmt == "int4":
        ng = -(-k // gs)
        what = (f"int4 g{gs} q [{n}, {k // 2}] bytes, f16 scales [{n}, {ng}]"
                + (f", f16 offsets [{n}, {ng}]" if has_off else " (symmetric)"))
        body2, body1 = _int4_steps(n, k, gs, has_off, False, dot), _int4_steps(n, k, gs, has_off, True, dot)
    else:
        raise IRError(f"quantized GEMM kernel {name}: unknown format {fmt!r}")
    eps = "".join(f"ep{i}, " for i in range(len(inputs)))
    outs = ", ".join(f"out{i}" for i in range(len(outputs)))
    epi_names = ", ".join(o.name for o in epi) or "none"
    bias2 = [
        "if HAS_BIAS:",
        f"    acc += tl.load(b + rn, mask=rn < {n}, other=0.0).to(tl.float32)[None, :]",
        f"mask = (rm[:, None] < M) & (rn[None, :] < {n})",
    ]
    bias1 = ["if HAS_BIAS:", "    acc += tl.load(b + rn, mask=nmask, other=0.0).to(tl.float32)"]
    head2 = f"""@triton.jit
def {name}(x, q, s, o, b, {eps}{outs}, M, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr, UPCAST: tl.constexpr):
    # x [M, {k}] @ dequantize({what})^T (+ b), then {len(epi)} epilogue ops: {epi_names}
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
"""
    head1 = f"""@triton.jit
def {name}_gemv(x, q, s, o, b, {eps}{outs}, M, HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr):
    # one row m of x per program: acc[n] = sum_k dequantize({what})[n, k] * x[m, k], then the epilogue
    m = tl.program_id(0).to(tl.int64)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rn < {n}
"""
    src = (head2 + "".join(f"    {s}\n" for s in body2 + bias2 + e2 + st2) + "\n\n"
           + head1 + "".join(f"    {s}\n" for s in body1 + bias1 + e1 + st1))
    return KernelSource(name, src, inputs, outputs,
                        {"kind": "qgemm", "N": n, "K": k, "format": fmt, "group_size": gs, "offsets": has_off,
                         "bias": has_bias})


# attention over the int8 cache is ``cache_attention_split`` (templates.py) with SCALED=True
CACHE_ATTENTION_Q8_SOURCE = CACHE_ATTENTION_SOURCE


CACHE_WRITE_Q8_SOURCE = '''@triton.jit
def quantize_row_q8(src, dst, sdst, rd, dmask):
    # one row to symmetric int8 as quantize_rows_int8 does: s = max|x| / 127 (1 where 0), q = round(x / s)
    # (half to even, like torch.round) clamped to +-127; correctly rounded divisions, so codes are exact
    v = tl.load(src + rd, mask=dmask, other=0.0).to(tl.float32)
    s = tl.math.div_rn(tl.max(tl.abs(v), axis=0), 127.0)
    s = tl.where(s > 0, s, 1.0)
    y = tl.math.div_rn(v, s)
    a = tl.abs(y)
    f = tl.floor(a)
    r = a - f  # exact for a >= 0
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0.0
    f = tl.where((r > 0.5) | ((r == 0.5) & odd), f + 1.0, f)
    f = tl.minimum(f, 127.0)
    tl.store(dst + rd, tl.where(y < 0, -f, f).to(tl.int8), mask=dmask)
    tl.store(sdst, s)


@triton.jit
def cache_write_q8(x0, c0, s0, x1, c1, s1, pos, seq, table, MB, layer, sx0h, sx0n, sx1h, sx1n,
                   s_l, s_nb, s_h, s_bs, t_l, t_nb, t_h, D: tl.constexpr, BS: tl.constexpr, TWO: tl.constexpr,
                   BLOCK_D: tl.constexpr):
    # x [1, KVH, N, D] (strided, last dim contiguous) quantized into the int8 cache [L, NB, KVH, BS, D] and
    # its f32 scales [L, NB, KVH, BS] (strides t_*, last 1) at block table[seq[n], pos[n] // BS], offset
    # pos[n] % BS, of `layer`, in place; K and V in one launch. grid (N, KVH)
    n = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    p = tl.load(pos + n)
    blk = tl.load(table + tl.load(seq + n) * MB + p // BS)
    rd = tl.arange(0, BLOCK_D)
    dmask = rd < D
    off = layer * s_l + blk * s_nb + h * s_h + (p % BS) * s_bs
    soff = layer * t_l + blk * t_nb + h * t_h + p % BS
    quantize_row_q8(x0 + h * sx0h + n * sx0n, c0 + off, s0 + soff, rd, dmask)
    if TWO:
        quantize_row_q8(x1 + h * sx1h + n * sx1n, c1 + off, s1 + soff, rd, dmask)
'''
