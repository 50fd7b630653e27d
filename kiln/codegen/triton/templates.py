"""Triton kernels written as parameterised templates: GEMM / GEMV with a generated epilogue, RoPE on q
and k in one launch, flash-style attention (causal, GQA) and attention over the KV cache (contiguous or
paged, split along the sequence and merged by log-sum-exp).

Each ``*_source`` function returns Triton source text; block sizes, warps and stages are launch
parameters with documented defaults (``DEFAULTS``, docs/triton.md) that a cost model may later choose.
Shapes in the comments: ``[rows, cols]``; every kernel masks its tails, so sizes need not be powers of
two. Accumulation is in float32; f32 inputs use IEEE products in ``tl.dot`` (no TF32) so the results
match the CPU reference to float tolerance. The kernels for quantized ops are in ``quant.py``. This
module only writes text; it does not import Triton.
"""

from __future__ import annotations

from kiln.codegen.triton.rowwise import EXPR, REDUCTIONS, TL_DTYPE, KernelSource, RowInput, next_pow2
from kiln.ir.core import IRError, Op, Value
from kiln.ir.types import DType

# Default launch parameters (no cost model yet). GEMV is used for at most GEMV_MAX_ROWS rows (decode).
DEFAULTS = {
    "gemm": {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3},
    "gemv": {"BLOCK_N": 64, "BLOCK_K": 128, "num_warps": 4, "num_stages": 2},
    "GEMV_MAX_ROWS": 4,
    "attention": {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2},
    "cache_attention": {"BLOCK_N": 32, "CHUNK": 256, "num_warps": 4, "num_stages": 2},
    "rope": {"num_warps": 1},
    # quantized linears (kiln/codegen/triton/quant.py): BLOCK_K counts weight bytes per step
    "qgemm": {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3},
    "qgemv": {"BLOCK_N": 16, "BLOCK_K": 256, "num_warps": 4, "num_stages": 2},
}


def _epilogue(name: str, ops: list[Op], acc_value: Value, row_idx: str, col_idx: str, mask: str,
              inputs: list[RowInput], in_names: dict[int, str]) -> list[str]:
    """Lines computing the epilogue ops on ``acc`` (the linear's tile), loading their other operands."""
    width = acc_value.type.shape[-1]
    names = {id(acc_value): "acc"}
    lines: list[str] = []
    for j, op in enumerate(ops):
        if op.name not in EXPR or op.name in REDUCTIONS:
            raise IRError(f"GEMM kernel {name}: {op.name} cannot be an epilogue (elementwise ops only)")
        args = []
        for v in op.operands:
            if id(v) in names:
                args.append(names[id(v)])
                continue
            if id(v) not in in_names:
                k = len(inputs)
                vec = len(v.type.shape) == 1 and len(acc_value.type.shape) > 1
                inputs.append(RowInput(v, "vec" if vec else "row", width))
                off = col_idx if vec else f"{row_idx} * {width} + {col_idx}"
                lines.append(f"e{k} = tl.load(ep{k} + {off}, mask={mask}, other=0.0).to(tl.float32)")
                in_names[id(v)] = f"e{k}"
            args.append(in_names[id(v)])
        lines.append(f"v{j} = {EXPR[op.name](op, args)}")
        names[id(op.result)] = f"v{j}"
    return lines


def gemm_source(name: str, ops: list[Op], escaping: set[int]) -> KernelSource:
    """``y = x [M, K] @ w [N, K]^T (+ b) -> epilogue`` as two kernels: ``{name}`` (tiles and ``tl.dot``,
    grid (cdiv(M, BM), cdiv(N, BN))) and ``{name}_gemv`` (one row per program, grid (M, cdiv(N, BN)))."""
    lin = ops[0]
    if lin.name != "kiln.linear":
        raise IRError(f"GEMM kernel {name}: starts with {lin.name}, not kiln.linear")
    n, k = lin.operand("weight").type.shape
    if not isinstance(n, int) or not isinstance(k, int):
        raise IRError(f"GEMM kernel {name}: the weight shape {lin.operand('weight').type.shape} is not static")
    epi = ops[1:]
    outputs = [op.result for op in ops if id(op.result) in escaping]
    if not outputs:
        raise IRError(f"GEMM kernel {name}: no result is read outside the kernel")
    ieee = ', input_precision="ieee"' if lin.operand("x").type.dtype == DType.f32 else ""
    inputs: list[RowInput] = []
    in_names: dict[int, str] = {}
    e2 = _epilogue(name, epi, lin.result, "rm[:, None]", "rn[None, :]", "mask", inputs, in_names)
    names2 = {id(lin.result): "acc", **{id(op.result): f"v{j}" for j, op in enumerate(epi)}}
    inputs1: list[RowInput] = []
    e1 = _epilogue(name, epi, lin.result, "m", "rn", "nmask", inputs1, {})
    eps = "".join(f"ep{i}, " for i in range(len(inputs)))
    outs = ", ".join(f"out{i}" for i in range(len(outputs)))
    st2 = [f"tl.store(out{i} + rm[:, None] * {n} + rn[None, :], {names2[id(v)]}.to(out{i}.dtype.element_ty), "
           "mask=mask)" for i, v in enumerate(outputs)]
    st1 = [f"tl.store(out{i} + m * {n} + rn, {names2[id(v)]}.to(out{i}.dtype.element_ty), mask=nmask)"
           for i, v in enumerate(outputs)]
    head = f"""@triton.jit
def {name}(x, w, b, {eps}{outs}, M, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr, UPCAST: tl.constexpr):
    # x [M, {k}] @ w [{n}, {k}]^T (+ b), then {len(epi)} epilogue ops: {', '.join(o.name for o in epi) or 'none'}
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, {k}, BLOCK_K):
        kk = k0 + rk
        a = tl.load(x + rm[:, None] * {k} + kk[None, :], mask=(rm[:, None] < M) & (kk[None, :] < {k}), other=0.0)
        wt = tl.load(w + rn[:, None] * {k} + kk[None, :], mask=(rn[:, None] < {n}) & (kk[None, :] < {k}), other=0.0)
        if UPCAST:  # the interpreter's tl.dot misreads 16-bit floats: multiply in f32 there
            a = a.to(tl.float32)
            wt = wt.to(tl.float32)
        acc += tl.dot(a, tl.trans(wt){ieee})
    if HAS_BIAS:
        acc += tl.load(b + rn, mask=rn < {n}, other=0.0).to(tl.float32)[None, :]
    mask = (rm[:, None] < M) & (rn[None, :] < {n})
"""
    gemv = f"""@triton.jit
def {name}_gemv(x, w, b, {eps}{outs}, M, HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # one row m of x per program: acc[n] = sum_k w[n, k] * x[m, k], then the same epilogue
    m = tl.program_id(0).to(tl.int64)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rn < {n}
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for k0 in range(0, {k}, BLOCK_K):
        kk = k0 + rk
        a = tl.load(x + m * {k} + kk, mask=kk < {k}, other=0.0).to(tl.float32)
        wt = tl.load(w + rn[:, None] * {k} + kk[None, :], mask=nmask[:, None] & (kk[None, :] < {k}), other=0.0)
        acc += tl.sum(wt.to(tl.float32) * a[None, :], axis=1)
    if HAS_BIAS:
        acc += tl.load(b + rn, mask=nmask, other=0.0).to(tl.float32)
"""
    src = head + "".join(f"    {s}\n" for s in e2 + st2) + "\n\n" + gemv + "".join(f"    {s}\n" for s in e1 + st1)
    return KernelSource(name, src, inputs, outputs, {"kind": "gemm", "N": n, "K": k, "bias": lin.operand("bias") is not None})


def rope_source(name: str, ops: list[Op]) -> KernelSource:
    """RoPE (rotate-half) of every ``kiln.rope`` in the group, sharing one cos/sin table: grid
    (B * T, total heads); program (bt, h) rotates one head row of one token. x may be any strided view
    [B, H, T, D]; the outputs are contiguous [B, H, T, D]."""
    d = ops[0].result.type.shape[-1]
    if not isinstance(d, int) or d % 2:
        raise IRError(f"rope kernel {name}: head dim {d} is not a static even number")
    params = ", ".join(f"x{i}, o{i}, s{i}b, s{i}h, s{i}t, s{i}d, H{i}" for i in range(len(ops)))
    lines = [
        "@triton.jit",
        f"def {name}(cos, sin, T, {params}, BLOCK: tl.constexpr):",
        f"    # x * cos + rotate_half(x) * sin for {len(ops)} tensors [B, H, T, {d}]; tables [B, T, {d}]",
        "    bt = tl.program_id(0).to(tl.int64)",
        "    h = tl.program_id(1)",
        "    b = bt // T",
        "    t = bt % T",
        "    cols = tl.arange(0, BLOCK)",
        f"    mask = cols < {d}",
        f"    c = tl.load(cos + bt * {d} + cols, mask=mask, other=0.0).to(tl.float32)",
        f"    s = tl.load(sin + bt * {d} + cols, mask=mask, other=0.0).to(tl.float32)",
        f"    rot = (cols + {d // 2}) % {d}",
        f"    sign = tl.where(cols < {d // 2}, -1.0, 1.0)",
        "    h0 = h",
    ]
    for i in range(len(ops)):
        lines += [
            f"    if (h0 >= 0) & (h0 < H{i}):",
            f"        base = x{i} + b * s{i}b + h0 * s{i}h + t * s{i}t",
            f"        xv = tl.load(base + cols * s{i}d, mask=mask, other=0.0).to(tl.float32)",
            f"        xr = tl.load(base + rot * s{i}d, mask=mask, other=0.0).to(tl.float32)",
            "        y = xv * c + sign * xr * s",
            f"        tl.store(o{i} + ((b * H{i} + h0) * T + t) * {d} + cols, y.to(o{i}.dtype.element_ty), mask=mask)",
            f"    h0 = h0 - H{i}",
        ]
    return KernelSource(name, "\n".join(lines) + "\n", [], [op.result for op in ops],
                        {"kind": "rope", "D": d, "BLOCK": next_pow2(d), "heads": [op.result.type.shape[1] for op in ops]})


ATTENTION_SOURCE = '''@triton.jit
def flash_attention(q, k, v, o, T, S, scale, sqb, sqh, sqt, skb, skh, sks, svb, svh, svs,
                    H: tl.constexpr, KVH: tl.constexpr, D: tl.constexpr, CAUSAL: tl.constexpr, IEEE: tl.constexpr,
                    UPCAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # q [B, H, T, D], k, v [B, KVH, S, D] (strided) -> o [B, H, T, D] contiguous; grid (cdiv(T, BLOCK_M), B * H).
    # Online softmax over key tiles; causal is bottom-right aligned: query i sees keys j <= i + S - T.
    pid_m = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    h = bh % H
    kvh = h // (H // KVH)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rd = tl.arange(0, BLOCK_D)
    dmask = rd < D
    qmask = (rm[:, None] < T) & dmask[None, :]
    qt = tl.load(q + b * sqb + h * sqh + rm[:, None] * sqt + rd[None, :], mask=qmask, other=0.0)
    if UPCAST:  # the interpreter's tl.dot misreads 16-bit floats: multiply in f32 there
        qt = qt.to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    shift = S - T
    hi = S
    if CAUSAL:
        hi = tl.minimum(S, (pid_m + 1) * BLOCK_M + shift)
    for n0 in range(0, hi, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        kvmask = (rn[:, None] < S) & dmask[None, :]
        kt = tl.load(k + b * skb + kvh * skh + rn[:, None] * sks + rd[None, :], mask=kvmask, other=0.0)
        if UPCAST:
            kt = kt.to(tl.float32)
        if IEEE:
            sc = tl.dot(qt, tl.trans(kt), input_precision="ieee") * scale
        else:
            sc = tl.dot(qt, tl.trans(kt)) * scale
        valid = rn[None, :] < S
        if CAUSAL:
            valid = valid & (rn[None, :] <= rm[:, None] + shift)
        sc = tl.where(valid, sc, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_safe)
        p = tl.exp(sc - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        vt = tl.load(v + b * svb + kvh * svh + rn[:, None] * svs + rd[None, :], mask=kvmask, other=0.0)
        if UPCAST:
            vt = vt.to(tl.float32)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt)
        m_i = m_new
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o + ((b * H + h) * T + rm[:, None]) * D + rd[None, :], out.to(o.dtype.element_ty), mask=qmask)
'''

CACHE_ATTENTION_SPLIT_SOURCE = '''@triton.jit
def cache_attention_split(q, kc, ksc, vc, vsc, pos, seq, table, o_part, m_part, l_part, N, MB, scale, layer,
                          s_l, s_nb, s_h, s_bs, t_l, t_nb, t_h, H: tl.constexpr, KVH: tl.constexpr,
                          D: tl.constexpr, BS: tl.constexpr, SCALED: tl.constexpr, CHUNK: tl.constexpr,
                          BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    # q [1, H, N, D] contiguous; caches [L, NB, KVH, BS, D]; grid (N, H, splits). Program (n, h, sp) attends
    # query n to positions [sp * CHUNK, min((sp + 1) * CHUNK, pos[n] + 1)) of its sequence, reading key j
    # from block table[seq[n], j // BS] at offset j % BS, and writes the split's running max m, sum l and
    # unnormalised output for the merge. SCALED: an int8 cache whose rows are dequantized by the f32 scales
    # ksc / vsc [L, NB, KVH, BS] (strides t_*, last 1): the key scale multiplies the row's dot product, the
    # value scale its softmax weight (ksc, vsc and t_* are not read otherwise).
    n = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    sp = tl.program_id(2)
    nsplit = tl.num_programs(2)
    kvh = h // (H // KVH)
    p = tl.load(pos + n)
    s = tl.load(seq + n)
    rd = tl.arange(0, BLOCK_D)
    dmask = rd < D
    qv = tl.load(q + (h * N + n) * D + rd, mask=dmask, other=0.0).to(tl.float32)
    lo = sp * CHUNK
    hi = tl.minimum(lo + CHUNK, p + 1)
    m_i = tl.max(tl.full([BLOCK_N], float("-inf"), tl.float32), axis=0)
    l_i = tl.sum(tl.zeros([BLOCK_N], tl.float32), axis=0)
    acc = tl.zeros([BLOCK_D], tl.float32)
    for j0 in range(lo, hi, BLOCK_N):
        j = j0 + tl.arange(0, BLOCK_N)
        valid = j < hi
        blk = tl.load(table + s * MB + j // BS, mask=valid, other=0)
        base = layer * s_l + blk * s_nb + kvh * s_h + (j % BS) * s_bs
        kvmask = valid[:, None] & dmask[None, :]
        kt = tl.load(kc + base[:, None] + rd[None, :], mask=kvmask, other=0).to(tl.float32)
        dot = tl.sum(kt * qv[None, :], axis=1)
        if SCALED:
            sbase = layer * t_l + blk * t_nb + kvh * t_h + j % BS
            dot = dot * tl.load(ksc + sbase, mask=valid, other=0.0)
        sc = tl.where(valid, dot * scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=0))
        alpha = tl.exp(m_i - m_new)
        pj = tl.exp(sc - m_new)
        l_i = l_i * alpha + tl.sum(pj, axis=0)
        vt = tl.load(vc + base[:, None] + rd[None, :], mask=kvmask, other=0).to(tl.float32)
        w = pj
        if SCALED:
            w = pj * tl.load(vsc + sbase, mask=valid, other=0.0)
        acc = acc * alpha + tl.sum(w[:, None] * vt, axis=0)
        m_i = m_new
    idx = (n * H + h) * nsplit + sp
    tl.store(m_part + idx, m_i)
    tl.store(l_part + idx, l_i)
    tl.store(o_part + idx * D + rd, acc, mask=dmask)
'''

CACHE_ATTENTION_MERGE_SOURCE = '''@triton.jit
def cache_attention_merge(o_part, m_part, l_part, out, N, NSPLIT, H: tl.constexpr, D: tl.constexpr,
                          BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    # log-sum-exp merge of the splits: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i; grid (N, H).
    n = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    rs = tl.arange(0, BLOCK_S)
    smask = rs < NSPLIT
    rd = tl.arange(0, BLOCK_D)
    dmask = rd < D
    idx = (n * H + h) * NSPLIT + rs
    m = tl.load(m_part + idx, mask=smask, other=float("-inf"))
    l = tl.load(l_part + idx, mask=smask, other=0.0)
    mx = tl.max(m, axis=0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - mx))
    o = tl.load(o_part + idx[:, None] * D + rd[None, :], mask=smask[:, None] & dmask[None, :], other=0.0)
    res = tl.sum(w[:, None] * o, axis=0) / tl.sum(w * l, axis=0)
    tl.store(out + (h * N + n) * D + rd, res.to(out.dtype.element_ty), mask=dmask)
'''

CACHE_ATTENTION_SOURCE = CACHE_ATTENTION_SPLIT_SOURCE + "\n\n" + CACHE_ATTENTION_MERGE_SOURCE


CACHE_WRITE_SOURCE = '''@triton.jit
def cache_write(x0, c0, x1, c1, pos, seq, table, MB, layer, sx0h, sx0n, sx1h, sx1n, s_l, s_nb, s_h, s_bs,
                D: tl.constexpr, BS: tl.constexpr, TWO: tl.constexpr, BLOCK_D: tl.constexpr):
    # x [1, KVH, N, D] (strided, last dim contiguous) into cache [L, NB, KVH, BS, D] at block
    # table[seq[n], pos[n] // BS], offset pos[n] % BS, of `layer`, in place; K and V in one launch.
    # grid (N, KVH)
    n = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    p = tl.load(pos + n)
    blk = tl.load(table + tl.load(seq + n) * MB + p // BS)
    rd = tl.arange(0, BLOCK_D)
    dmask = rd < D
    off = layer * s_l + blk * s_nb + h * s_h + (p % BS) * s_bs + rd
    v0 = tl.load(x0 + h * sx0h + n * sx0n + rd, mask=dmask, other=0.0)
    tl.store(c0 + off, v0.to(c0.dtype.element_ty), mask=dmask)
    if TWO:
        v1 = tl.load(x1 + h * sx1h + n * sx1n + rd, mask=dmask, other=0.0)
        tl.store(c1 + off, v1.to(c1.dtype.element_ty), mask=dmask)
'''


def head_block(d: int) -> int:
    """The padded head dim of the attention tiles: a power of two, at least 16 (``tl.dot``'s minimum)."""
    return max(16, next_pow2(d))


def dtype_name(v: Value) -> str:
    return TL_DTYPE.get(v.type.dtype, "?")
