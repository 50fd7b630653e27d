"""Quantization passes: ``quantize-weights`` (int8 / int4 weights) and ``quantize-kv`` (int8 KV cache).

``quantize-weights{format=int8|int4, group_size=32|64|128, symmetric=true|false, exclude=PATTERNS,
embedding=true|false, lm_head=true|false, strict=false}`` replaces, in every program,

    kiln.linear(x, W[, b])        -> kiln.qlinear(x, Wq, Ws[, Wo][, b])  {format, group_size, symmetric}
    kiln.embedding(W, ids)        -> kiln.qembedding(Wq, Ws[, Wo], ids)  (when embedding=true)

where W is a float ``kiln.weight`` and Wq / Ws / Wo are new weights (``W.int8``, ``W.int8_scales``,
``W.int4``, ``W.int4_scales``, ``W.int4_offsets``) made once per weight and shared by every program.
The formats and their packing are described in kiln/ir/ops_quant.py and docs/quantization.md. A
layer's name is its weight's name without ``.weight``; ``exclude`` takes fnmatch patterns separated
by ``|`` (``exclude=model.layers.0.*|*.down_proj``), and a pattern that matches no layer is an
error (a typo would otherwise silently quantize what was meant to stay float). The vocabulary
projection is the linear whose result is a program output; ``lm_head=false`` and
``embedding=false`` keep them in float32. When int4's group size does not divide a layer's input
width, the layer's last group is narrower and a warning names it (``strict=true`` makes that an
error). What was quantized, how, and what stayed in full precision is in ``module.meta
["quantization"]`` and in the pass's decisions (both end up in the manifest).

``quantize-kv`` (after ``kv-cache``) stores keys and values in int8 with one f32 scale per token
and kv head: in ``prefill`` / ``decode`` the caches become i8 and two scale arguments,
``k_scale`` and ``v_scale`` [L, NB, KVH, BS], follow ``v_cache``; ``kiln.cache_write`` /
``kiln.cache_attention`` become their ``_q8`` forms. ``forward`` gets ``kiln.fake_quant_int8`` on
the keys and values of each attention, so full-sequence logits (``kiln eval``) see the same
rounding the cache applies.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass

import torch

from kiln.errors import KilnError
from kiln.ir import ops as _ops  # noqa: F401  (declares the ops)
from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.match import erase_unused
from kiln.ir.ops import FROM_TORCH
from kiln.ir.ops_quant import FORMATS, GROUP_SIZES, quantize_int4, quantize_int8
from kiln.ir.types import DType, TensorType
from kiln.passes.base import Pass, register
from kiln.passes.kv_cache import cache_bytes_per_token

_log = logging.getLogger("kiln")


def layer_name(weight: str) -> str:
    return weight.removesuffix(".weight")


def _is_output(program: Program, v: Value) -> bool:
    return any(o is v for o in program.outputs)


@register
@dataclass
class QuantizeWeights(Pass):
    name = "quantize-weights"
    summary = ("linears (and embeddings) to int8 per channel or int4 groups (format, group_size, symmetric, "
               "exclude, embedding, lm_head, strict)")
    format: str = "int8"
    group_size: int = 32
    symmetric: bool = True
    exclude: str = ""
    embedding: bool = True
    lm_head: bool = True
    strict: bool = False

    def _check_options(self) -> None:
        if self.format not in FORMATS:
            raise KilnError(f"quantize-weights: unknown format {self.format!r}; formats: {', '.join(FORMATS)}")
        if self.format == "int4" and self.group_size not in GROUP_SIZES:
            raise KilnError(f"quantize-weights: int4 group_size must be one of "
                            f"{', '.join(map(str, GROUP_SIZES))}, got {self.group_size!r}")

    def apply(self, module: Module) -> bool:
        self._check_options()
        for p in module.programs.values():
            for op in p.ops:
                if op.name in ("kiln.qlinear", "kiln.qembedding"):
                    fmt = module.meta.get("quantization", {}).get("weights", {}).get("format", op.attrs.get("format"))
                    raise KilnError(f"quantize-weights: the module is already quantized ({fmt}, e.g. {op.name} in "
                                    f"program {p.name!r}); quantize the float model instead")
        patterns = [s.strip() for s in self.exclude.split("|") if s.strip()]
        sites = self._sites(module)  # (program, op, kind, weight name)
        layers = sorted({layer_name(w) for _, _, _, w in sites})
        for pat in patterns:
            if not any(fnmatch.fnmatchcase(n, pat) for n in layers):
                shown = ", ".join(layers[:6]) + (", ..." if len(layers) > 6 else "")
                raise KilnError(f"quantize-weights: exclude pattern {pat!r} matches no layer; layers are named "
                                f"like {shown}")
        fmt_attrs = {"format": self.format, "group_size": self.group_size if self.format == "int4" else 0,
                     "symmetric": True if self.format == "int8" else bool(self.symmetric)}
        made: dict[str, list[str]] = {}  # float weight -> names of its quantized parts
        kept: dict[str, str] = {}  # layer -> why it stays float
        warnings: list[str] = []
        for prog, op, kind, wname in sites:
            layer = layer_name(wname)
            why = self._keep_reason(kind, layer, patterns)
            if why:
                kept.setdefault(layer, why)
                continue
            if wname not in made:
                made[wname] = self._quantize(module, wname, layer, warnings)
            parts = made[wname]
            wvals = [prog.create("kiln.weight", [], {"name": n},
                                 [_wtype(module.weights[n])], before=op).result for n in parts]
            if kind == "embedding":
                new = prog.create("kiln.qembedding", [*wvals, op.operand("ids")], dict(fmt_attrs), before=op)
            else:
                bias = [b for b in (op.operand("bias"),) if b is not None]
                new = prog.create("kiln.qlinear", [op.operand("x"), *wvals, *bias], dict(fmt_attrs), before=op)
            if new.result.type != op.result.type:
                raise KilnError(f"quantize-weights: {layer} computes {op.result.type}; quantized layers compute "
                                f"f32 ({new.result.type})")
            prog.replace_op(op, [new.result])
            self.stats[f"{kind}->q{kind}"] += 1
        for prog in module.programs.values():
            erase_unused(prog)
        for name in [n for n in made if n not in module.used_weights()]:
            del module.weights[name]  # the float weight is gone unless something still reads it
        info = {**fmt_attrs, "quantized": sorted(layer_name(w) for w in made),
                "full_precision": dict(sorted(kept.items())), "exclude": patterns, "warnings": warnings}
        module.meta.setdefault("quantization", {})["weights"] = info
        self.decisions.update(info)
        return bool(made)

    def _sites(self, module: Module) -> list[tuple[Program, Op, str, str]]:
        sites = []
        for prog in module.programs.values():
            for op in prog.ops:
                if op.name not in ("kiln.linear", "kiln.embedding"):
                    continue
                w = op.operand("weight") if op.name == "kiln.linear" else op.operand("table")
                if w.owner is None or w.owner.name != "kiln.weight" or not w.type.dtype.is_float or w.type.rank != 2:
                    self.stats["skipped-not-a-weight"] += 1
                    continue
                kind = "embedding" if op.name == "kiln.embedding" else (
                    "lm_head" if _is_output(prog, op.result) else "linear")
                sites.append((prog, op, kind, w.owner.attrs["name"]))
        return sites

    def _keep_reason(self, kind: str, layer: str, patterns: list[str]) -> str:
        for pat in patterns:
            if fnmatch.fnmatchcase(layer, pat):
                return f"excluded by {pat!r}"
        if kind == "embedding" and not self.embedding:
            return "embedding=false"
        if kind == "lm_head" and not self.lm_head:
            return "lm_head=false"
        return ""

    def _quantize(self, module: Module, wname: str, layer: str, warnings: list[str]) -> list[str]:
        w = module.weights.get(wname)
        if not isinstance(w, torch.Tensor):
            raise KilnError(f"quantize-weights: weight {wname!r} has no data (a module parsed from text alone)")
        k = w.shape[1]
        if self.format == "int8":
            q, s = quantize_int8(w)
            parts = {f"{wname}.int8": q, f"{wname}.int8_scales": s}
        else:
            if k % 2:
                raise KilnError(f"quantize-weights: layer {layer} has an odd input width {k}; int4 packs two "
                                "columns per byte (exclude it, or use format=int8)")
            if k % self.group_size:
                msg = (f"group size {self.group_size} does not divide the input width {k} of layer {layer}: its "
                       f"last group holds {k % self.group_size} columns")
                if self.strict:
                    raise KilnError(f"quantize-weights: {msg} (strict=true)")
                _log.warning("quantize-weights: %s", msg)
                warnings.append(msg)
            q, s, o = quantize_int4(w, self.group_size, self.symmetric)
            parts = {f"{wname}.int4": q, f"{wname}.int4_scales": s}
            if o is not None:
                parts[f"{wname}.int4_offsets"] = o
        for name, t in parts.items():
            if name in module.weights:
                raise KilnError(f"quantize-weights: weight {name!r} exists already; is the module quantized?")
            module.weights[name] = t
        return list(parts)


def _wtype(t: torch.Tensor) -> TensorType:
    return TensorType(FROM_TORCH[t.dtype], tuple(t.shape))


@register
@dataclass
class QuantizeKV(Pass):
    name = "quantize-kv"
    summary = "int8 KV cache with an f32 scale per token and kv head (after kv-cache; format=int8)"
    format: str = "int8"

    def apply(self, module: Module) -> bool:
        if self.format != "int8":
            raise KilnError(f"quantize-kv: unknown format {self.format!r}; formats: int8")
        info = module.meta.get("kv_cache")
        if "decode" not in module.programs or not isinstance(info, dict):
            raise KilnError("quantize-kv: the module has no KV cache; run the kv-cache pass first")
        if info.get("dtype") == DType.i8.value or any(
                "quantized" in op.opdef.traits and op.opdef.traits & {"reads-cache", "writes-cache"}
                for p in module.programs.values() for op in p.ops):
            raise KilnError("quantize-kv: the KV cache is already int8")
        for prog in module.programs.values():
            if any(op.name == "kiln.cache_write" for op in prog.ops):
                self._rewrite_cached(prog)
            for op in list(prog.walk("kiln.attention")):
                for name in ("k", "v"):  # keys and values, rounded as the cache would store them
                    fq = prog.create("kiln.fake_quant_int8", [op.operand(name)], {}, before=op).result
                    op.set_operand(name, fq)
                    self.stats["forward-kv-rounded"] += 1
        layers, kvh, hd = int(info["layers"]), int(info["kv_heads"]), int(info["head_dim"])
        info.update({"dtype": DType.i8.value, "scales": "f32 per token and kv head",
                     "bytes_per_token": cache_bytes_per_token(layers, kvh, hd, DType.i8)})
        self.decisions.update({"dtype": "i8", "scales": info["scales"], "bytes_per_token": info["bytes_per_token"]})
        return True

    def _rewrite_cached(self, prog: Program) -> None:
        hints = [a.hint for a in prog.args]
        if "k_cache" not in hints or "v_cache" not in hints:
            raise KilnError(f"quantize-kv: program {prog.name!r} writes a cache it does not take as k_cache/v_cache")
        kc, vc = prog.args[hints.index("k_cache")], prog.args[hints.index("v_cache")]
        q8 = TensorType(DType.i8, kc.type.shape)
        st = TensorType(DType.f32, kc.type.shape[:4])
        at = hints.index("v_cache") + 1
        ks = prog.add_arg(st, "k_scale", at=at)
        vs = prog.add_arg(st, "v_scale", at=at + 1)
        old_ops = [op for op in prog.ops if op.opdef.variant("int8-kv") is not None]  # cache writes and reads
        known = {id(op) for op in old_ops}
        for v in [kc, vc] + [op.result for op in old_ops if "writes-cache" in op.opdef.traits]:
            for user in v.users:
                if id(user) not in known:
                    raise KilnError(f"quantize-kv: program {prog.name!r} reads the KV cache with {user.name}, which has "
                                    "no int8 form; run quantize-kv right after kv-cache")
        # a float cache value -> (the int8 cache value, its scales) standing for it
        new: dict[int, tuple[Value, Value]] = {}
        prog.retype(kc, q8)
        prog.retype(vc, q8)
        new[id(kc)], new[id(vc)] = (kc, ks), (vc, vs)
        for op in old_ops:
            q8op = op.opdef.variant("int8-kv").name
            if "writes-cache" in op.opdef.traits:  # its results: the int8 cache and its scales
                c, s = new[id(op.operand("cache"))]
                w = prog.create_like(op, q8op, cache=c, scales=s)
                new[id(op.result)] = (w.results[0], w.results[1])
            else:  # a reader: both caches with their scales
                (k8, ks8), (v8, vs8) = new[id(op.operand("k_cache"))], new[id(op.operand("v_cache"))]
                a = prog.create_like(op, q8op, k_cache=k8, k_scales=ks8, v_cache=v8, v_scales=vs8)
                prog.replace_all_uses(op.result, a.result)
            self.stats[f"{op.name.removeprefix('kiln.')}->{q8op.removeprefix('kiln.')}"] += 1
        for op in reversed(old_ops):
            prog.erase(op)
