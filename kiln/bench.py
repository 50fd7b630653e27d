"""``kiln bench``: decode and prefill speed of an artifact against the model it was compiled from.

Both run in this process with the same torch thread count, the same prompt (seeded random token
ids of ``prompt_len``) and the same number of new tokens, greedy, without stopping at EOS. Runs
alternate between kiln and the baseline so that load on the machine hits both alike; figures are
medians over ``repeats`` runs after a warm-up. Decode speed is ``(new_tokens - 1) / (time to the
last token - time to the first)``, so prefill does not count toward it; prefill is the time to the
first token. Baselines:

- ``hf``: transformers ``generate`` (eager, its default dynamic cache);
- ``torch-compile``: the same with ``torch.compile`` on the model's forward and a static cache
  (its compilation happens in the warm-up, outside the timings).

Time to first token is the wall time of a whole ``generate`` call with one new token, on both
sides; transformers runs without an EOS token (kiln with ``stop_at_eos=False``) so that neither
side masks or stops at EOS and the greedy tokens can be compared.

The bandwidth floor: the bytes of weights one decode step reads (every weight the decode program
uses, one row of an embedding table) divided by the machine's measured copy bandwidth; the report
gives the fraction of that floor kiln reaches (1.0 would be memory-bound perfection).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any

import torch

from kiln.codegen.native import unpacked
from kiln.errors import KilnError

BASELINES = ("hf", "torch-compile", "ort")


def copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes per second moved by a large tensor copy (read + write counted)."""
    src = torch.empty(mib * 2**20 // 4, dtype=torch.float32).fill_(1.0)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best


def decode_weight_bytes(module) -> int:
    prog = module.programs.get("decode") or module.programs["forward"]
    total = 0
    for op in prog.walk("kiln.weight"):
        w = unpacked(module.weights[op.attrs["name"]])  # the weight's own bytes, not its panel padding
        # a table only looked up (float or quantized, with its scales) costs one row per token
        rows_only = all(u.name in ("kiln.embedding", "kiln.qembedding") and u.operand("ids") is not op.result
                        for u in op.result.users)
        total += (w[0].numel() if rows_only and w.dim() >= 1 else w.numel()) * w.element_size()
    return total


def source_model(manifest: dict):
    """The transformers model an artifact was compiled from: the preset (same seed) or the HF directory."""
    src = manifest.get("source", {}).get("model", "")
    if src.startswith("preset:"):
        from kiln.frontend.presets import build_preset

        seed = manifest["source"].get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise KilnError(f"the artifact's manifest has a bad source.seed: {seed!r}")
        return build_preset(src[len("preset:"):], seed)[0]
    from kiln.frontend.loader import load_model

    if not isinstance(src, str) or not os.path.isdir(src):
        raise KilnError(f"the artifact's source model {src!r} is not on this machine; the baseline needs it")
    loaded = load_model(src)  # safetensors and config only, as when compiling
    if loaded.source_hash != manifest["source"].get("sha256"):
        raise KilnError(f"the model at {src!r} is not the one this artifact was compiled from (its hash differs); "
                        "the baseline would not be comparable")
    return loaded.model


def _hf_runner(model, baseline: str, ids: torch.Tensor, new_tokens: int):
    # No eos, rather than min_new_tokens: that would mask the eos logit, which kiln does not do.
    model.generation_config.eos_token_id = None
    kw: dict[str, Any] = {"do_sample": False, "pad_token_id": 0, "attention_mask": torch.ones_like(ids)}
    if baseline == "torch-compile":
        model.forward = torch.compile(model.forward)
        kw["cache_implementation"] = "static"

    def run(n: int) -> list[int]:
        with torch.no_grad():
            return model.generate(ids, max_new_tokens=n, **kw)[0].tolist()
    return run


def check_settings(prompt_len: int, new_tokens: int, repeats: int, threads: int | None) -> None:
    """The benchmark settings every benchmark (and `kiln bench`, before loading anything) accepts."""
    if prompt_len < 1 or new_tokens < 2 or repeats < 1:
        raise KilnError(f"need --prompt-len >= 1, --new-tokens >= 2 and --repeats >= 1, got {prompt_len}, "
                        f"{new_tokens} and {repeats}")
    if threads is not None and threads < 1:
        raise KilnError(f"--threads must be >= 1, got {threads}")


def cached_runtime(artifact, prompt_len: int, new_tokens: int, threads: int | None):
    """The artifact's runtime for a benchmark of cached decoding, with ``threads`` torch threads
    (None: torch's); a KilnError for an artifact without a KV cache or a run beyond its context."""
    if threads is not None:
        torch.set_num_threads(threads)
    rt = artifact.runtime()
    if rt.kv is None:
        raise KilnError("this artifact has no KV cache (compiled without the kv-cache pass); "
                        "kiln bench measures cached decoding")
    if prompt_len + new_tokens > rt.max_positions:
        raise KilnError(f"prompt ({prompt_len}) + new tokens ({new_tokens}) exceed the context of {rt.max_positions}")
    return rt


def bench(artifact, baseline: str = "hf", prompt_len: int = 64, new_tokens: int = 128, repeats: int = 3,
          threads: int | None = None, seed: int = 0, progress=None) -> dict:
    if baseline not in BASELINES:
        raise KilnError(f"unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}")
    if baseline == "ort":
        raise KilnError("the ONNX Runtime baseline runs three sides: use kiln.bench_ort.bench_ort")
    check_settings(prompt_len, new_tokens, repeats, threads)
    say = progress or (lambda s: None)
    rt = cached_runtime(artifact, prompt_len, new_tokens, threads)
    ids = torch.randint(3, max(rt.vocab_size, 4), (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    say(f"loading the baseline model ({baseline})")
    model = source_model(artifact.manifest)
    hf = _hf_runner(model, baseline, ids, new_tokens)

    def kiln_timed(n: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        out = rt.generate(ids.tolist(), max_new_tokens=n, stop_at_eos=False)[0]
        return out, time.perf_counter() - t0

    def hf_timed(n: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        out = hf(n)
        return out, time.perf_counter() - t0

    # Both sides are timed the same way: the wall time of a whole generate call with 1 new token
    # (time to first token: checks, cache set-up, prefill, sampling) and with all new tokens.
    say("warming up")
    k_tokens, _ = kiln_timed(new_tokens)
    kiln_timed(1)
    h_tokens, _ = hf_timed(new_tokens)
    hf_timed(1)
    k_ttft, k_total, h_ttft, h_total = [], [], [], []
    for r in range(repeats):
        say(f"run {r + 1}/{repeats}")
        k_ttft.append(kiln_timed(1)[1])
        k_total.append(kiln_timed(new_tokens)[1])
        h_ttft.append(hf_timed(1)[1])
        h_total.append(hf_timed(new_tokens)[1])
    kt, kp = statistics.median(k_total), statistics.median(k_ttft)
    ht, hp = statistics.median(h_total), statistics.median(h_ttft)
    k_tps = (new_tokens - 1) / max(kt - kp, 1e-9)
    h_tps = (new_tokens - 1) / max(ht - hp, 1e-9)
    say("measuring copy bandwidth")
    bw = copy_bandwidth()
    wbytes = decode_weight_bytes(artifact.module)
    floor_s = wbytes / bw
    return {
        "model": artifact.manifest["source"]["model"], "baseline": baseline,
        "prompt_len": prompt_len, "new_tokens": new_tokens, "batch": 1, "repeats": repeats,
        "threads": torch.get_num_threads(), "dtype": str(next(iter(artifact.module.weights.values())).dtype),
        "kv_layout": rt.kv.layout, "pipeline": artifact.manifest["pipeline"]["name"],
        "kiln_tokens_per_s": round(k_tps, 2), "baseline_tokens_per_s": round(h_tps, 2),
        "ratio": round(k_tps / h_tps, 3),
        "kiln_prefill_ms": round(kp * 1000, 2), "baseline_prefill_ms": round(hp * 1000, 2),
        "prefill_ratio": round(hp / kp, 3),
        "greedy_tokens_match": k_tokens == h_tokens,
        "decode_weight_bytes": wbytes, "copy_bandwidth_gb_s": round(bw / 1e9, 2),
        "bandwidth_floor_ms_per_token": round(floor_s * 1000, 3),
        "kiln_fraction_of_floor": round(floor_s * k_tps, 3),
        "baseline_fraction_of_floor": round(floor_s * h_tps, 3),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def format_table(r: dict) -> str:
    rows = [("decode tokens/s", r["kiln_tokens_per_s"], r["baseline_tokens_per_s"], r["ratio"]),
            ("prefill ms", r["kiln_prefill_ms"], r["baseline_prefill_ms"], r["prefill_ratio"])]
    out = [(f"{r['model']} ({r['pipeline']}, {r['kv_layout']} cache), prompt {r['prompt_len']}, "
           f"{r['new_tokens']} new tokens, batch 1, {r['threads']} threads, {r['dtype']}"),
           f"{'':<16} {'kiln':>10} {r['baseline']:>14} {'kiln speedup':>13}"]
    out += [f"{name:<16} {k:>10.2f} {b:>14.2f} {ratio:>12.2f}x" for name, k, b, ratio in rows]
    out.append(f"bandwidth floor {r['bandwidth_floor_ms_per_token']:.2f} ms/token "
               f"({r['decode_weight_bytes'] / 1e6:.0f} MB of weights at {r['copy_bandwidth_gb_s']:.1f} GB/s): "
               f"kiln reaches {r['kiln_fraction_of_floor']:.0%}, {r['baseline']} {r['baseline_fraction_of_floor']:.0%}")
    out.append(f"greedy tokens identical: {'yes' if r['greedy_tokens_match'] else 'NO'}; machine: {r['machine']}")
    return "\n".join(out)
