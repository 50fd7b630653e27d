"""The ``kv-cache`` pass: from the captured full-sequence ``forward`` to ``prefill`` and ``decode``.

``forward`` recomputes every position on every call. This pass adds two programs that keep keys and
values in an explicit cache instead (``forward`` stays, for full-sequence logits and evaluation):

- ``prefill(input_ids [1, N], pos [N], seq [N], table [S, MB], k_cache, v_cache, logits_at [K])``
  runs N packed tokens (a chunk of one or several prompts, adjacent per sequence, no padding),
  writes their keys and values into the cache and returns logits only at the K packed indices
  ``logits_at`` (each prompt's last token), so the vocabulary projection skips the rest;
- ``decode(input_ids [1, N], pos, seq, table, k_cache, v_cache)`` is the same without the
  selection: one new token per sequence, logits for all of them. Speculative verification and
  chunked prefill are the same program with more than one token per sequence.

The rewrite, per program: symbolic sizes ``B -> 1`` and ``T -> N`` (tokens are packed into one
row); ``kiln.positions`` becomes the ``pos`` argument; each causal ``kiln.attention(q, k, v)`` (the
l-th in program order) becomes

    kc' = kiln.cache_write(kc, k, pos, seq, table) {layer = l}
    vc' = kiln.cache_write(vc, v, pos, seq, table) {layer = l}
    o   = kiln.cache_attention(q, kc', vc', pos, seq, table) {layer = l}

The cache tensors are ``[layers, NB, kv_heads, BS, head_dim]``. ``layout=contiguous`` makes a
block a whole sequence (BS = the model's context, a block table of one column: the row of the
sequence), the layout of a preallocated per-sequence cache; keys for attention are a view of that
row, with no gather. ``layout=paged`` uses blocks of ``block_size`` positions from a shared pool, so
sequences of any length share memory without padding; attention gathers a sequence's blocks.
Keeping the head dim last and positions next to it makes each head's keys one contiguous
[positions, head_dim] matrix, which is what the decode attention reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from kiln.errors import KilnError
from kiln.ir import ops as _ops  # noqa: F401  (declares the ops)
from kiln.ir.core import Module, Program, Value
from kiln.ir.match import erase_unused
from kiln.ir.types import DType, Sym, TensorType, canon_dim, sym_expr
from kiln.passes.base import Pass, register

LAYOUTS = ("contiguous", "paged")


def subst_dim(d, mapping: dict[str, int | str]):
    if isinstance(d, int):
        return d
    e = sym_expr(d)
    subs = {s: (sympy.Integer(mapping[s.name]) if isinstance(mapping[s.name], int) else sym_expr(mapping[s.name]))
            for s in e.free_symbols if s.name in mapping}
    return canon_dim(e.subs(subs)) if subs else d


def _subst_attr(x, mapping, shape_like: bool):
    if isinstance(x, Sym):
        return Sym(str(subst_dim(x.expr, mapping)))
    if isinstance(x, list):
        return [_subst_attr(v, mapping, shape_like) for v in x]
    if isinstance(x, dict):
        return {k: _subst_attr(v, mapping, False) for k, v in x.items()}
    if shape_like and isinstance(x, str):
        return subst_dim(x, mapping)
    return x


def specialize(program: Program, mapping: dict[str, int | str]) -> None:
    """Substitute symbolic sizes everywhere: value types, shape attributes and symbolic scalars."""
    def retype(v: Value) -> None:
        program.retype(v, TensorType(v.type.dtype, tuple(subst_dim(d, mapping) for d in v.type.shape)))

    for a in program.args:
        retype(a)
    for op in program.ops:
        for r in op.results:
            retype(r)
        op.attrs = {k: _subst_attr(v, mapping, k == "shape") for k, v in op.attrs.items()}


def _i64(*shape) -> TensorType:
    return TensorType(DType.i64, shape)


@register
@dataclass
class KVCache(Pass):
    name = "kv-cache"
    summary = "prefill/decode programs over an explicit KV cache (layout=contiguous|paged, block_size)"
    layout: str = "contiguous"
    block_size: int = 16

    def apply(self, module: Module) -> bool:
        if self.layout not in LAYOUTS:
            raise KilnError(f"kv-cache: layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not isinstance(self.block_size, int) or not 1 <= self.block_size <= 4096:
            raise KilnError(f"kv-cache: block_size must be an integer in [1, 4096], got {self.block_size!r}")
        if "forward" not in module.programs:
            raise KilnError("kv-cache: the module has no 'forward' program")
        if "prefill" in module.programs or "decode" in module.programs:
            return False  # already applied
        fwd = module["forward"]
        attn = list(fwd.walk("kiln.attention"))
        if not attn:
            raise KilnError("kv-cache: the forward program has no kiln.attention op to cache")
        for op in attn:
            if not op.attrs.get("causal") or op.operand("mask") is not None:
                raise KilnError("kv-cache: only causal attention without an extra mask can use the cache "
                                f"(found {op.name} with causal={op.attrs.get('causal')}, "
                                f"{int(op.operand('mask') is not None)} mask operand(s))")
        k0 = attn[0].operand("k").type
        kvh, hd = k0.shape[1], k0.shape[3]
        if not (isinstance(kvh, int) and isinstance(hd, int)):
            raise KilnError(f"kv-cache: kv heads and head dim must be static, got {k0.shape}")
        for op in attn:
            for v in (op.operand("k"), op.operand("v")):
                if v.type.shape[1] != kvh or v.type.shape[3] != hd or v.type.dtype != k0.dtype:
                    raise KilnError("kv-cache: layers with different kv-head shapes are not supported")
        max_pos = module.meta.get("max_positions")
        if not isinstance(max_pos, int) or max_pos <= 0:
            raise KilnError("kv-cache: the module does not record its context length (meta max_positions)")
        if self.layout == "paged" and self.block_size > max_pos:
            raise KilnError(f"kv-cache: block_size {self.block_size} exceeds the model's context of {max_pos}")
        bs = max_pos if self.layout == "contiguous" else self.block_size
        per_token = cache_bytes_per_token(len(attn), kvh, hd, k0.dtype)
        if per_token is None or k0.dtype == DType.i8:
            raise KilnError(f"kv-cache: keys and values of dtype {k0.dtype.value} cannot be cached (float ones only)")
        cache_t = TensorType(k0.dtype, (len(attn), "NB", kvh, bs, hd))
        for name in ("prefill", "decode"):
            prog = fwd.clone()
            prog.name = name
            self._rewrite(prog, cache_t, select=(name == "prefill"))
            module.add(prog)
        info = {"layout": self.layout, "block_size": bs, "layers": len(attn), "kv_heads": kvh, "head_dim": hd,
                "dtype": k0.dtype.value, "bytes_per_token": per_token}
        module.meta["kv_cache"] = info
        self.decisions.update(info)
        self.stats["attention->cache_attention"] += len(attn)
        return True

    def _rewrite(self, prog: Program, cache_t: TensorType, select: bool) -> None:
        ids = prog.args[0]
        if ids.type.rank != 2 or ids.type.dtype not in (DType.i64, DType.i32):
            raise KilnError(f"kv-cache: forward must take token ids [B, T] first, got {ids.type}")
        b, t = ids.type.shape
        if not (isinstance(b, str) and b.isidentifier() and isinstance(t, str) and t.isidentifier()):
            raise KilnError(f"kv-cache: forward's ids must have symbolic batch and length, got {ids.type}")
        specialize(prog, {b: 1, t: "N"})
        pos = prog.add_arg(_i64("N"), "pos")
        seq = prog.add_arg(_i64("N"), "seq")
        table = prog.add_arg(_i64("S", "MB"), "block_table")
        kc = prog.add_arg(cache_t, "k_cache")
        vc = prog.add_arg(cache_t, "v_cache")
        first = prog.ops[0]
        pos_row = None
        for op in list(prog.walk("kiln.positions")):
            if pos_row is None:
                pos_row = prog.create("kiln.reshape", [pos], {"shape": [1, "N"]}, before=first).result
            new = pos_row
            if op.attrs.get("offset", 0):
                new = prog.create("kiln.add", [pos_row], {"scalar": int(op.attrs["offset"])}, before=op).result
            prog.replace_op(op, [new])
            self.stats["positions->pos"] += 1
        if pos_row is None:
            raise KilnError("kv-cache: the program has no kiln.positions op (positions were not lifted), so "
                            "cached decoding could not give new tokens their positions")
        layout = self.layout
        for layer, op in enumerate(list(prog.walk("kiln.attention"))):
            q, k, v = op.operand("q"), op.operand("k"), op.operand("v")
            kc = prog.create("kiln.cache_write", [kc, k, pos, seq, table], {"layer": layer, "layout": layout},
                             before=op).result
            vc = prog.create("kiln.cache_write", [vc, v, pos, seq, table], {"layer": layer, "layout": layout},
                             before=op).result
            o = prog.create("kiln.cache_attention", [q, kc, vc, pos, seq, table],
                            {"layer": layer, "scale": float(op.attrs["scale"]), "layout": layout}, before=op).result
            prog.replace_op(op, [o])
        if select:
            at = prog.add_arg(_i64("K"), "logits_at")
            logits = prog.outputs[0]
            head = logits.owner
            if head is not None and "gemm" in head.opdef.traits and len(logits.uses) == 1:
                # select rows before the vocabulary projection (float or quantized): only K rows pay for it
                picked = prog.create("kiln.gather", [head.operand("x"), at], {"dim": 1}, before=head).result
                new = prog.create_like(head, head.name, x=picked).result
                self.stats["select-before-lm-head"] += 1
            else:
                new = prog.create("kiln.gather", [logits, at], {"dim": 1}, before=prog.ops[-1]).result
            outs = prog.outputs
            prog.set_outputs([new, *outs[1:]])
        erase_unused(prog)


_FLOAT_BYTES = {DType.f32: 4, DType.f16: 2, DType.bf16: 2, DType.f64: 8}


def cache_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype: DType) -> int | None:
    """Bytes one token takes in a K and V cache of ``dtype`` (int8: the codes plus one f32 scale per token
    and KV head, see quantize-kv); None for a dtype no cache is kept in. The passes write it in the
    ``kv_cache`` description, and the runtime checks a description against it."""
    if dtype == DType.i8:
        return 2 * layers * kv_heads * (head_dim + 4)
    if dtype in _FLOAT_BYTES:
        return 2 * layers * kv_heads * head_dim * _FLOAT_BYTES[dtype]
    return None
