"""``kiln bench ART --baseline ort``: kiln against ONNX Runtime, two ways, in one run.

- **ORT GenAI**: the artifact's source model (the preset with the same seed, or the HF directory)
  saved as a Hugging Face directory and built by ONNX Runtime GenAI's model builder
  (``python -m onnxruntime_genai.models.builder -e cpu -p fp32|int4``: its fused attention, KV
  cache and, for int4, ``MatMulNBits``), run by its ``Generator`` (greedy). The path ONNX Runtime
  recommends for LLMs. float32 artifacts get ``fp32``, int4 ones ``int4`` (the builder's own
  quantization and defaults); int8 weights have no matching builder precision and are refused.
- **kiln's ONNX export run by plain ORT**: ``kiln export --format onnx`` of the artifact itself,
  driven by ``kiln.export.ort.OrtGenerator`` (the loop of docs/export.md).

Same prompt (seeded random ids), greedy, no stop at EOS, the same thread count for kiln (torch
threads) and both ORT sessions (intra-op threads), runs alternating between the three; figures are
medians over ``repeats`` after a warm-up, measured as in ``kiln.bench`` (decode speed excludes the
time to the first token).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kiln.bench import _cpu_name, cached_runtime, check_settings, copy_bandwidth, decode_weight_bytes, source_model
from kiln.errors import KilnError

Timed = Callable[[int], tuple[list[int], float]]


def genai_precision(module) -> str:
    formats = {op.attr("format") for p in module.programs.values() for op in p.walk("kiln.qlinear")}
    if not formats:
        return "fp32"
    if formats == {"int4"}:
        return "int4"
    raise KilnError(f"the ORT GenAI baseline has no precision matching {'/'.join(sorted(formats))} weights; "
                    "benchmark a float32 or int4 artifact")


def build_genai_model(artifact, out: Path, precision: str, say) -> Path:
    """The source model as a HF directory, built by ORT GenAI's model builder into ``out/genai``."""
    try:
        import onnxruntime_genai  # noqa: F401
    except ImportError:
        raise KilnError("--baseline ort needs onnxruntime-genai (pip install 'kiln[ort]')") from None
    hf = out / "hf"
    say("saving the source model for ONNX Runtime GenAI's model builder")
    source_model(artifact.manifest).save_pretrained(hf, safe_serialization=True)
    for name, data in artifact.tokenizer_files.items():
        (hf / name).write_bytes(data)
    say(f"building it with onnxruntime_genai.models.builder (-p {precision} -e cpu)")
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out / "genai"),
           "-p", precision, "-e", "cpu", "-c", str(out / "cache")]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise KilnError(f"ONNX Runtime GenAI's model builder failed ({' '.join(cmd[1:4])} ...): {last[:300]}")
    return out / "genai"


def genai_runner(model_dir: Path, ids: list[int], threads: int, eos: int) -> Timed:
    """ORT GenAI's greedy generator; ``eos`` replaces the model's EOS id (kiln runs with stop_at_eos=False, and
    GenAI stops at EOS, so the caller passes an id that kiln's greedy output does not contain)."""
    import onnxruntime_genai as og

    cfg = og.Config(str(model_dir))
    cfg.overlay(json.dumps({"model": {"eos_token_id": [eos], "decoder": {"session_options": {
        "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
    model = og.Model(cfg)

    def run(n: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + n)
        gen = og.Generator(model, params)
        gen.append_tokens(ids)
        for _ in range(n):
            if gen.is_done():  # it produced ``eos``: not kiln's greedy sequence (the tokens differ)
                break
            gen.generate_next_token()
        seq = [int(t) for t in gen.get_sequence(0)]
        return seq, time.perf_counter() - t0

    return run


def onnx_runner(artifact, out: Path, ids: list[int], threads: int, say) -> Timed:
    from kiln.export import export
    from kiln.export.ort import OrtGenerator

    say("exporting the artifact to ONNX")
    export(artifact, "onnx", out / "onnx")
    gen = OrtGenerator(out / "onnx", threads=threads)

    def run(n: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        seq = gen.generate([ids], n)[0]
        return seq, time.perf_counter() - t0

    return run


def bench_ort(artifact, prompt_len: int = 64, new_tokens: int = 128, repeats: int = 3, threads: int | None = None,
              seed: int = 0, progress=None) -> dict:
    check_settings(prompt_len, new_tokens, repeats, threads)
    say = progress or (lambda s: None)
    precision = genai_precision(artifact.module)
    rt = cached_runtime(artifact, prompt_len, new_tokens, threads)
    threads = torch.get_num_threads()
    ids = torch.randint(3, max(rt.vocab_size, 4), (prompt_len,), generator=torch.Generator().manual_seed(seed)).tolist()

    def kiln_run(n: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        out = [int(t) for t in rt.generate([ids], max_new_tokens=n, stop_at_eos=False)[0]]
        return out, time.perf_counter() - t0

    seen = set(kiln_run(new_tokens)[0])
    eos = next(t for t in range(rt.vocab_size + len(seen) + 1) if t not in seen)
    if eos >= rt.vocab_size:
        raise KilnError("kiln's greedy output uses every token id; no id is left to stand in for ORT GenAI's EOS")
    with tempfile.TemporaryDirectory(prefix="kiln-bench-ort-") as tmp:
        work = Path(tmp)
        sides: dict[str, Timed] = {
            "kiln": kiln_run,
            "ort_genai": genai_runner(build_genai_model(artifact, work, precision, say), ids, threads, eos),
            "onnx_ort": onnx_runner(artifact, work, ids, threads, say),
        }
        say("warming up")
        tokens = {}
        for name, run in sides.items():
            tokens[name] = run(new_tokens)[0]
            run(1)
        ttft: dict[str, list[float]] = {k: [] for k in sides}
        total: dict[str, list[float]] = {k: [] for k in sides}
        for r in range(repeats):
            say(f"run {r + 1}/{repeats}")
            for name, run in sides.items():
                ttft[name].append(run(1)[1])
                total[name].append(run(new_tokens)[1])
    tps = {k: (new_tokens - 1) / max(statistics.median(total[k]) - statistics.median(ttft[k]), 1e-9) for k in sides}
    pre = {k: statistics.median(ttft[k]) for k in sides}
    bw = copy_bandwidth()
    wbytes = decode_weight_bytes(artifact.module)
    return {
        "model": artifact.manifest["source"]["model"], "baseline": "ort",
        "prompt_len": prompt_len, "new_tokens": new_tokens, "batch": 1, "repeats": repeats, "threads": threads,
        "pipeline": artifact.manifest["pipeline"]["name"], "kv_layout": rt.kv.layout, "genai_precision": precision,
        "kiln_tokens_per_s": round(tps["kiln"], 2),
        "baseline_tokens_per_s": round(tps["ort_genai"], 2), "ratio": round(tps["kiln"] / tps["ort_genai"], 3),
        "onnx_ort_tokens_per_s": round(tps["onnx_ort"], 2),
        "onnx_ort_ratio": round(tps["kiln"] / tps["onnx_ort"], 3),
        "kiln_prefill_ms": round(pre["kiln"] * 1000, 2), "baseline_prefill_ms": round(pre["ort_genai"] * 1000, 2),
        "onnx_ort_prefill_ms": round(pre["onnx_ort"] * 1000, 2),
        "greedy_tokens_match": tokens["kiln"] == tokens["ort_genai"],
        "onnx_ort_tokens_match": tokens["kiln"] == tokens["onnx_ort"],
        "decode_weight_bytes": wbytes, "copy_bandwidth_gb_s": round(bw / 1e9, 2),
        "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores",
        "onnxruntime": _version("onnxruntime"), "onnxruntime_genai": _version("onnxruntime_genai"),
    }


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except (ImportError, AttributeError):
        return "?"


def format_table(r: dict) -> str:
    out = [(f"{r['model']} ({r['pipeline']}, {r['kv_layout']} cache), prompt {r['prompt_len']}, "
            f"{r['new_tokens']} new tokens, batch 1, {r['threads']} threads; ORT GenAI built with "
            f"-p {r['genai_precision']}"),
           f"{'':<16} {'kiln':>10} {'ORT GenAI':>10} {'kiln ONNX+ORT':>14}",
           (f"{'decode tokens/s':<16} {r['kiln_tokens_per_s']:>10.2f} {r['baseline_tokens_per_s']:>10.2f} "
           f"{r['onnx_ort_tokens_per_s']:>14.2f}"),
           (f"{'prefill ms':<16} {r['kiln_prefill_ms']:>10.2f} {r['baseline_prefill_ms']:>10.2f} "
           f"{r['onnx_ort_prefill_ms']:>14.2f}"),
           f"kiln decode: {r['ratio']:.2f}x ORT GenAI, {r['onnx_ort_ratio']:.2f}x its own ONNX export on ORT",
           (f"greedy tokens identical to kiln: ORT GenAI {'yes' if r['greedy_tokens_match'] else 'NO'}, "
           f"ONNX export {'yes' if r['onnx_ort_tokens_match'] else 'NO'}; machine: {r['machine']}")]
    return "\n".join(out)
