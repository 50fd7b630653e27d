"""ONNX lowerings of the KV-cache ops (float and int8 caches) and of the quantized weights.

The cache keeps kiln's layout ([L, NB, KVH, BS, D] per K and V, a block table per sequence;
docs/kv-cache.md). Quantized linears become ONNX Runtime's ``com.microsoft.MatMulNBits``: int4 as
4-bit blocks of the group size, int8 as 8-bit blocks that share the row's scale, both at accuracy
level 0 (float32 activations, what kiln computes); quantized embeddings gather and dequantize with
standard ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kiln.errors import KilnError
from kiln.export.onnx_emit import MS_DOMAIN, ONNX_DTYPE, Emitter, _heads, _in, _masked_softmax_v, _out, helper, lower
from kiln.ir.core import Op, Value
from kiln.ir.ops_quant import INT4_SYMMETRIC_ZERO, groups, split_quant_operands
from kiln.ir.types import DType


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


