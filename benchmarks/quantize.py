"""Quantization: loss, size and decode speed of int8 / int4 weights and an int8 KV cache, in one run.

    python benchmarks/quantize.py [--model examples/models/kiln-code-target] [--max-bytes N]
                                  [--decode-preset llama-125m] [--threads 2] [--skip-eval] [--skip-decode]
                                  [--json benchmarks/results/quantize.json]

1. Loss: the bundled target model compiled as float32 and with every quantized variant (int8,
   int4 g32/g64/g128 symmetric and asymmetric, int8 KV), each evaluated like `kiln eval` (bits
   per byte and perplexity on the held-out stdlib split, windows of 256 tokens with stride 128;
   `--max-bytes` keeps only the leading files) with its change in perplexity against float32.
2. Size: the bytes of the artifact's weights (what `weights.safetensors` holds) over float32's,
   for the target model and the decode preset.
3. Decode: the preset (llama-125m by default, random weights) compiled as float32, int8 and int4
   g32, each through `kiln.bench.bench` against transformers `generate` in float32 (batch 1,
   64-token prompt, 128 new tokens, same process and threads, alternating), with the fraction of
   the bandwidth floor (the decode program's weight bytes over the measured copy bandwidth).

Prints tables and writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kiln
from kiln import data, evaluate
from kiln.bench import bench
from kiln.passes.manager import PIPELINES

BASE = ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize", "cse", "dce"]
TAIL = ["cse", "dce", "kv-cache", "canonicalize", "dce"]


def variants() -> dict[str, list[str]]:
    out = {"float32": PIPELINES["default"][1], "int8": PIPELINES["int8"][1]}
    for g in (32, 64, 128):
        for sym in (True, False):
            q = f"quantize-weights{{format=int4,group_size={g},symmetric={str(sym).lower()}}}"
            out[f"int4 g{g} {'sym' if sym else 'asym'}"] = BASE + [q] + TAIL
    out["int8 KV"] = PIPELINES["int8-kv"][1]
    return out


def weight_bytes(art) -> int:
    return sum(t.numel() * t.element_size() for t in art.module.weights.values())


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def eval_loss(model: str, max_bytes: int | None) -> list[dict]:
    files = data.heldout_files(max_bytes)
    n_bytes = sum(f.n_bytes for f in files)
    rows, docs = [], None
    for name, passes in variants().items():
        say(f"[eval] compiling {model} as {name}")
        art = kiln.compile(model, pipeline=None, passes=passes)
        rt = art.runtime()
        if docs is None:
            bos, tok = art.module.meta["bos_token_id"], rt.tokenizer
            docs = evaluate.encode_docs(lambda t, tok=tok: tok.encode(t, add_special_tokens=False).ids,
                                        [f.text for f in files], bos)
        say(f"[eval] {name}: {len(files)} files, {n_bytes:,} bytes")
        res = evaluate.evaluate(rt.logits, docs, n_bytes, ctx=256, stride=128, batch=8, progress=False)
        rows.append({"variant": name, "bits_per_byte": round(res.bits_per_byte, 5),
                     "perplexity": round(res.perplexity, 4), "tokens": res.n_tokens, "bytes": n_bytes,
                     "files": len(files), "weight_bytes": weight_bytes(art), "eval_seconds": round(res.seconds, 1)})
    f32 = rows[0]
    for r in rows:
        r["perplexity_change_pct"] = round(100 * (r["perplexity"] / f32["perplexity"] - 1), 3)
        r["weight_bytes_ratio"] = round(r["weight_bytes"] / f32["weight_bytes"], 4)
    return rows


def decode_speed(preset: str, threads: int, repeats: int) -> list[dict]:
    rows = []
    for pipeline in ("default", "int8", "int4"):
        say(f"[decode] compiling {preset} with the {pipeline} pipeline")
        art = kiln.compile(preset, pipeline=pipeline)
        say(f"[decode] {pipeline}: 64-token prompt, 128 new tokens vs transformers generate (float32)")
        r = bench(art, "hf", 64, 128, repeats, threads)
        r["weight_bytes"] = weight_bytes(art)
        rows.append(r)
    for r in rows:
        r["weight_bytes_ratio"] = round(r["weight_bytes"] / rows[0]["weight_bytes"], 4)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="examples/models/kiln-code-target")
    ap.add_argument("--max-bytes", type=int, default=None, help="only the leading held-out files (default: all)")
    ap.add_argument("--decode-preset", default="llama-125m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--skip-decode", action="store_true")
    ap.add_argument("--json", default="benchmarks/results/quantize.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    out: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
                 "threads": a.threads, "model": a.model, "max_bytes": a.max_bytes}
    if not a.skip_eval:
        out["loss"] = eval_loss(a.model, a.max_bytes)
        print(f"\n{a.model}: held-out split" + (f" (first {a.max_bytes:,} bytes)" if a.max_bytes else " (all of it)"))
        print(f"{'variant':<15} {'bits/byte':>9} {'perplexity':>10} {'ppl change':>10} {'weight bytes':>12} {'vs f32':>7}")
        for r in out["loss"]:
            print(f"{r['variant']:<15} {r['bits_per_byte']:>9.4f} {r['perplexity']:>10.3f} "
                  f"{r['perplexity_change_pct']:>+9.2f}% {r['weight_bytes']:>12,} {r['weight_bytes_ratio']:>6.3f}x")
    if not a.skip_decode:
        out["decode"] = decode_speed(a.decode_preset, a.threads, a.repeats)
        print(f"\n{a.decode_preset}: decode, batch 1, {a.threads} threads, 64-token prompt, 128 new tokens, "
              "vs transformers generate float32")
        print(f"{'pipeline':<8} {'kiln tok/s':>10} {'HF tok/s':>9} {'ratio':>6} {'weight MB':>9} {'vs f32':>7} "
              f"{'floor ms':>8} {'of floor':>8}")
        for r in out["decode"]:
            print(f"{r['pipeline']:<8} {r['kiln_tokens_per_s']:>10.1f} {r['baseline_tokens_per_s']:>9.1f} "
                  f"{r['ratio']:>5.2f}x {r['weight_bytes'] / 1e6:>9.1f} {r['weight_bytes_ratio']:>6.3f}x "
                  f"{r['bandwidth_floor_ms_per_token']:>8.2f} {r['kiln_fraction_of_floor']:>7.0%}")
    out["seconds"] = round(time.perf_counter() - t0, 1)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    print("\n" + json.dumps({k: v for k, v in out.items()}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
