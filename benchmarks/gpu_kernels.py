"""Triton target on a GPU: per-kernel bandwidth against the card's peak, dequant-GEMV bandwidth against
the measured copy bandwidth, and decode against transformers.

    python benchmarks/gpu_kernels.py [--preset llama-125m] [--prompt-len 64] [--new-tokens 128]
                                     [--peak-gbs GBS] [--repeats 20] [--json benchmarks/results/gpu.json]
                                     [--qgemv-shapes 4096x4096,11008x4096,4096x11008] [--skip-qgemv]
                                     [--skip-model]

Needs a CUDA GPU: on a machine without one it says so and exits with status 2 (the kernels are then
verified only under TRITON_INTERPRET=1 by tests/test_triton.py and tests/test_triton_quant.py;
docs/gpu.md). Written without a GPU to run it on: it has not been run yet.

1. Compiles the preset with ``--target cuda``, prefills a ``--prompt-len`` prompt, then times one
   decode step kernel by kernel (CUDA events around every launch of ``TritonProgram``, median of
   ``--repeats`` steps) and counts the bytes each kernel must move: a GEMV its weight, input and
   output rows; a row-wise kernel its input and output rows; cache attention the keys and values of
   the context. Achieved GB/s and the fraction of ``--peak-gbs`` per kernel kind.
2. Greedy ``generate`` of ``--new-tokens`` tokens through kiln's Triton target and through
   transformers on the same GPU (float32, batch 1), tokens/s and the ratio, and whether the tokens
   agree.
3. The dequantizing GEMV of ``kiln.qlinear`` (one activation row, the decode case) for int8 and int4
   g32 / g128 at each ``--qgemv-shapes`` N x K: its error against the float reference, then the time
   per launch (a CUDA graph of back-to-back launches cycling through enough weight copies to defeat
   the L2 cache) and the weight bytes it reads per second, as a fraction of the copy bandwidth
   measured in the same run (``torch`` device-to-device copy of 512 MiB: read + write bytes / time)
   and of the card's peak. The issue's target: at least 0.75 of the measured bandwidth.
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
    if kind in ("cache_attention", "cache_attention_q8"):
        q, kc, *_, pos, seq, _table = (vals[id(v)] for v in ops[0].operands)
        per_pos = kc.shape[2] * kc.shape[4] * kc.element_size() * 2  # K and V of every kv head
        if kind == "cache_attention_q8":
            per_pos += kc.shape[2] * 4 * 2  # and their f32 scales
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


def copy_bandwidth(nbytes: int = 512 << 20, repeats: int = 20) -> float:
    """GB/s of a device-to-device copy (bytes read + bytes written over the time), median of ``repeats``."""
    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return 2 * nbytes / statistics.median(times) / 1e9


def qgemv_bandwidth(shapes: list[tuple[int, int]], copy_gbs: float, peak: float | None, repeats: int) -> list[dict]:
    """Per (format, N, K): max error against the float reference, µs per launch, weight GB/s, fractions."""
    from kiln.codegen.triton.program import TritonProgram, launch_qgemm
    from kiln.ir.core import Module, Program
    from kiln.ir.ops import FROM_TORCH
    from kiln.ir.ops_quant import dequantize, quantize_int4, quantize_int8
    from kiln.ir.types import DType, TensorType
    from kiln.passes.manager import PassManager, parse_passes

    rows = []
    g = torch.Generator().manual_seed(0)
    for n, k in shapes:
        w = torch.randn(n, k, generator=g) * 0.02
        for fmt, gs in (("int8", 0), ("int4", 32), ("int4", 128)):
            parts = dict(zip(("q", "s"), quantize_int8(w))) if fmt == "int8" else \
                dict(zip(("q", "s"), quantize_int4(w, gs, True)[:2]))
            m = Module(weights=parts)
            p = m.add(Program("forward"))
            x_arg = p.add_arg(TensorType(DType.f32, (1, k)), "x")
            wv = [p.create("kiln.weight", [], {"name": name}, result_types=[
                TensorType(FROM_TORCH[t.dtype], t.shape)]).result for name, t in parts.items()]
            p.set_outputs([p.create("kiln.qlinear", [x_arg, *wv], {"format": fmt, "group_size": gs,
                                                                   "symmetric": True}).result])
            PassManager(parse_passes("group-kernels"), verify=True, keep_ir=False).run(m)
            tp = TritonProgram(p, parts, device="cuda")
            ks = next(iter(tp.kernels.kernels.values()))
            q, s = tp.weights["q"], tp.weights["s"]
            wbytes = q.numel() * q.element_size() + s.numel() * s.element_size()
            x = torch.randn(1, k, device="cuda")
            out = torch.empty(1, n, device="cuda")
            launch_qgemm(tp.module, ks, x, q, s, None, None, [], [out])
            want = x @ dequantize(q, s, None, format=fmt, group_size=gs).T
            err = ((out - want).abs().max() / want.abs().max()).item()
            copies = [(q, s)] + [(q.clone(), s.clone()) for _ in range(max(0, -(-(256 << 20) // wbytes) - 1))]
            per_graph = max(len(copies), 32)
            launch_qgemm(tp.module, ks, x, *copies[-1], None, None, [], [out])  # warm: compiled, cached
            torch.cuda.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for i in range(per_graph):
                    launch_qgemm(tp.module, ks, x, *copies[i % len(copies)], None, None, [], [out])
            graph.replay()
            times = []
            for _ in range(repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                graph.replay()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) * 1e-3 / per_graph)
            secs = statistics.median(times)
            gbs = wbytes / secs / 1e9
            rows.append({"format": fmt if fmt == "int8" else f"int4 g{gs}", "N": n, "K": k, "weight_bytes": wbytes,
                         "rel_error": err, "us": round(secs * 1e6, 2), "gb_s": round(gbs, 1),
                         "of_copy_bandwidth": round(gbs / copy_gbs, 3),
                         "of_peak": round(gbs / peak, 3) if peak else None})
            del graph, copies
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-125m")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--peak-gbs", type=float, help="the card's peak memory bandwidth (default: from its name)")
    ap.add_argument("--json", default="benchmarks/results/gpu.json")
    ap.add_argument("--qgemv-shapes", default="4096x4096,11008x4096,4096x11008",
                    help="N x K weight shapes for the dequant-GEMV measurement, comma separated")
    ap.add_argument("--skip-qgemv", action="store_true", help="skip the dequant-GEMV measurement")
    ap.add_argument("--skip-model", action="store_true", help="only the dequant-GEMV measurement")
    a = ap.parse_args()
    try:
        shapes = [tuple(int(d) for d in sh.lower().split("x")) for sh in a.qgemv_shapes.split(",") if sh.strip()]
        if any(len(sh) != 2 or min(sh) < 2 or sh[1] % 2 for sh in shapes):
            raise ValueError
    except ValueError:
        print(f"gpu_kernels.py: --qgemv-shapes wants N x K pairs with an even K, e.g. 4096x4096; got "
              f"{a.qgemv_shapes!r}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_kernels.py: no CUDA GPU on this machine; the Triton kernels are verified only under "
              "TRITON_INTERPRET=1 (tests/test_triton.py, tests/test_triton_quant.py) and the GPU figures in "
              "docs/gpu.md stay open",
              file=sys.stderr)
        return 2
    import kiln
    from kiln.bench import source_model

    name = torch.cuda.get_device_name()
    peak = a.peak_gbs or peak_for(name)
    result: dict = {"device": name, "peak_gb_s": peak, "torch": torch.__version__}
    if not a.skip_qgemv:
        import triton

        copy_gbs = copy_bandwidth()
        qrows = qgemv_bandwidth(shapes, copy_gbs, peak, a.repeats)
        result.update({"triton": triton.__version__, "copy_gb_s": round(copy_gbs, 1), "qgemv": qrows})
        print(f"{name}: dequant GEMV (1 row), copy bandwidth {copy_gbs:.0f} GB/s, peak {peak} GB/s")
        print("| format | N x K | µs | weight GB/s | of copy | of peak | rel. error |\n"
              "| --- | --- | --- | --- | --- | --- | --- |")
        for r in qrows:
            print(f"| {r['format']} | {r['N']}x{r['K']} | {r['us']} | {r['gb_s']} | {r['of_copy_bandwidth']} | "
                  f"{r['of_peak']} | {r['rel_error']:.1e} |")
    if a.skip_model:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
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
    result.update({"preset": a.preset, "prompt_len": a.prompt_len, "new_tokens": a.new_tokens,
                   "decode_kernels": kernels, "kiln_tokens_per_s": round(k_tps, 1),
                   "hf_tokens_per_s": round(h_tps, 1), "ratio": round(k_tps / h_tps, 3),
                   "greedy_tokens_match": k_tokens == h_tokens})
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
