"""Triton target on a GPU: per-kernel bandwidth against the card's peak, and decode against transformers.

    python benchmarks/gpu_kernels.py [--preset llama-125m] [--prompt-len 64] [--new-tokens 128]
                                     [--peak-gbs GBS] [--repeats 20] [--json benchmarks/results/gpu.json]

Needs a CUDA GPU: on a machine without one it says so and exits with status 2 (the kernels are then
verified only under TRITON_INTERPRET=1 by tests/test_triton.py; docs/gpu.md). Written without a GPU
to run it on: it has not been run yet.

1. Compiles the preset with ``--target cuda``, prefills a ``--prompt-len`` prompt, then times one
   decode step kernel by kernel (CUDA events around every launch of ``TritonProgram``, median of
   ``--repeats`` steps) and counts the bytes each kernel must move: a GEMV its weight, input and
   output rows; a row-wise kernel its input and output rows; cache attention the keys and values of
   the context. Achieved GB/s and the fraction of ``--peak-gbs`` per kernel kind.
2. Greedy ``generate`` of ``--new-tokens`` tokens through kiln's Triton target and through
   transformers on the same GPU (float32, batch 1), tokens/s and the ratio, and whether the tokens
   agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_GBS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0, "L4": 300.0, "A10": 600.0, "4090": 1008.0}


def peak_for(name: str) -> float | None:
    return next((v for k, v in PEAK_GBS.items() if k in name), None)


def kernel_bytes(label: str, ks, ops, vals: dict, outs: list) -> int:
    """Bytes a kernel must move at least: its tensor inputs once and its outputs once."""
    kind = ks.meta["kind"]
    if kind == "cache_attention":
        q, kc, _vc, pos, seq, _table = (vals[id(v)] for v in ops[0].operands)
        per_pos = kc.shape[2] * kc.shape[4] * kc.element_size() * 2  # K and V of every kv head
        last: dict[int, int] = {}
        for s, p in zip(seq.tolist(), pos.tolist()):
            last[s] = max(last.get(s, 0), p + 1)
        return sum(last.values()) * per_pos + 2 * q.numel() * q.element_size()
    seen, total = set(), 0
    for op in ops:
        for v in op.operands:
            t = vals.get(id(v))
            if isinstance(t, torch.Tensor) and id(v) not in seen and v.owner not in ops:
                seen.add(id(v))
                total += t.numel() * t.element_size()
    return total + sum(t.numel() * t.element_size() for t in outs)


def time_decode_kernels(rt, prompt: list[int], repeats: int) -> dict:
    """Per kernel kind of the decode program: launches, median µs per step, bytes, GB/s."""
    prog = rt.decode_prog
    stats: dict[str, list] = {}
    original = prog._run_kernel

    def timed(label, ops, vals, env):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        original(label, ops, vals, env)
        end.record()
        end.synchronize()
        ks = prog.kernels.kernels[label]
        outs = [vals[id(v)] for v in ks.outputs]
        stats.setdefault(ks.meta["kind"], []).append((start.elapsed_time(end) * 1e-3,
                                                      kernel_bytes(label, ks, ops, vals, outs)))

    prog._run_kernel = timed  # this program only: prefill's kernels are not counted
    try:
        per_step = []
        for _ in range(repeats):
            stats.clear()
            rt.generate([prompt], max_new_tokens=2, stop_at_eos=False)  # prefill + one decode step
            per_step.append({k: (sum(t for t, _ in v), sum(b for _, b in v), len(v)) for k, v in stats.items()})
    finally:
        del prog._run_kernel
    out = {}
    for kind in per_step[-1]:
        secs = statistics.median(s[kind][0] for s in per_step if kind in s)
        nbytes = per_step[-1][kind][1]
        out[kind] = {"launches": per_step[-1][kind][2], "us": round(secs * 1e6, 1), "bytes": nbytes,
                     "gb_s": round(nbytes / secs / 1e9, 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-125m")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--peak-gbs", type=float, help="the card's peak memory bandwidth (default: from its name)")
    ap.add_argument("--json", default="benchmarks/results/gpu.json")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_kernels.py: no CUDA GPU on this machine; the Triton kernels are verified only under "
              "TRITON_INTERPRET=1 (tests/test_triton.py) and the GPU figures in docs/gpu.md stay open",
              file=sys.stderr)
        return 2
    import kiln
    from kiln.bench import source_model

    name = torch.cuda.get_device_name()
    peak = a.peak_gbs or peak_for(name)
    art = kiln.compile(a.preset, target="cuda")
    rt = art.runtime()
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, rt.vocab_size, (a.prompt_len,), generator=g).tolist()
    kernels = time_decode_kernels(rt, prompt, a.repeats)
    for k in kernels.values():
        k["fraction_of_peak"] = round(k["gb_s"] / peak, 3) if peak else None

    def kiln_run(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = rt.generate([prompt], max_new_tokens=n, stop_at_eos=False)[0]
        torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    model = source_model(art.manifest).cuda().eval()
    model.generation_config.eos_token_id = None
    ids = torch.tensor([prompt], device="cuda")

    def hf_run(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0,
                                 attention_mask=torch.ones_like(ids))[0].tolist()
        torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    k_tokens, _ = kiln_run(a.new_tokens)
    h_tokens, _ = hf_run(a.new_tokens)
    k = statistics.median(kiln_run(a.new_tokens)[1] - kiln_run(1)[1] for _ in range(3))
    h = statistics.median(hf_run(a.new_tokens)[1] - hf_run(1)[1] for _ in range(3))
    k_tps, h_tps = (a.new_tokens - 1) / k, (a.new_tokens - 1) / h
    result = {"device": name, "peak_gb_s": peak, "preset": a.preset, "prompt_len": a.prompt_len,
              "new_tokens": a.new_tokens, "torch": torch.__version__, "decode_kernels": kernels,
              "kiln_tokens_per_s": round(k_tps, 1), "hf_tokens_per_s": round(h_tps, 1),
              "ratio": round(k_tps / h_tps, 3), "greedy_tokens_match": k_tokens == h_tokens}
    print(f"{name}, {a.preset}, one decode step after a {a.prompt_len}-token prompt")
    print("| kernel | launches | µs | GB/s | of peak |\n| --- | --- | --- | --- | --- |")
    for kind, r in kernels.items():
        print(f"| {kind} | {r['launches']} | {r['us']} | {r['gb_s']} | {r['fraction_of_peak']} |")
    print(f"decode: kiln {k_tps:.1f} tok/s, transformers {h_tps:.1f} tok/s, ratio {k_tps / h_tps:.2f}x, "
          f"tokens match: {k_tokens == h_tokens}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
