"""The CPU code generator against the interpreter it replaces, in one process: decode speed of each artifact
with its programs compiled to C (kiln/codegen/cstep.py) and with ``KILN_NATIVE_STEP=0``.

    python benchmarks/cstep.py [--models bundled,llama-125m] [--new-tokens 64] [--repeats 3] [--threads 2]
                               [--json benchmarks/results/cstep.json]

Contenders per model: plain decoding; for the bundled code model also the three drafters (``--draft
ngram|self|examples/models/kiln-code-draft``); for llama-125m float32, int8 and int4 weights. Prompts:
held-out stdlib source (``kiln.bench_spec.heldout_prompts``), 64 tokens, batch 1, greedy, no EOS; the time
of a whole ``generate`` call, median over ``repeats``, the two paths alternating. Both paths must produce
the same tokens (checked). Also reported for plain decoding with the generated steps: the share of the
time of a ``generate`` call spent outside native code (Python between the steps: the runtime's loop,
argument checks, sampling), from the time inside the prefill and decode steps' C calls
(``NativeStep.timing``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kiln
from kiln.bench_spec import heldout_prompts

BUNDLED = ROOT / "examples" / "models"


def _runtime(art, native: bool, speculative: bool):
    old = os.environ.get("KILN_NATIVE_STEP")
    os.environ["KILN_NATIVE_STEP"] = "1" if native else "0"
    try:
        return art.runtime(speculative=speculative)
    finally:
        if old is None:
            del os.environ["KILN_NATIVE_STEP"]
        else:
            os.environ["KILN_NATIVE_STEP"] = old


def _time(rt, prompts, new_tokens):
    t0 = time.perf_counter()
    out = [rt.generate([p], max_new_tokens=new_tokens, stop_at_eos=False)[0] for p in prompts]
    return time.perf_counter() - t0, out


def measure(name: str, art, prompts, new_tokens: int, repeats: int, speculative: bool) -> dict:
    rts = {"c": _runtime(art, True, speculative), "interp": _runtime(art, False, speculative)}
    assert rts["c"].decode_prog.backend == "native step", rts["c"].decode_prog.backend
    for rt in rts.values():  # warm: compiled steps loaded, arenas sized
        rt.generate([prompts[0]], max_new_tokens=4, stop_at_eos=False)
    times: dict[str, list[float]] = {k: [] for k in rts}
    outs = {}
    for _ in range(repeats):
        for k, rt in rts.items():
            t, outs[k] = _time(rt, prompts, new_tokens)
            times[k].append(t)
    if outs["c"] != outs["interp"]:
        raise SystemExit(f"{name}: the generated steps and the interpreter decoded different tokens")
    tokens = new_tokens * len(prompts)
    row = {"name": name, "tokens": tokens,
           "c_tok_s": tokens / statistics.median(times["c"]),
           "interp_tok_s": tokens / statistics.median(times["interp"])}
    row["ratio"] = row["c_tok_s"] / row["interp_tok_s"]
    if not speculative:  # time in native code (prefill and decode steps), against the whole generate call
        rt = rts["c"]
        shares = []
        for p in prompts:
            timing = [0.0]
            rt.prefill.timing = rt.decode_prog.timing = timing
            t0 = time.perf_counter()
            rt.generate([p], max_new_tokens=new_tokens, stop_at_eos=False)
            shares.append(max(0.0, 1 - timing[0] / (time.perf_counter() - t0)))
        rt.prefill.timing = rt.decode_prog.timing = None
        row["outside_native_share"] = statistics.median(shares)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bundled,llama-125m")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results/cstep.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    models = a.models.split(",")
    if "bundled" in models:
        target = str(BUNDLED / "kiln-code-target")
        for draft in (None, "ngram", "self", str(BUNDLED / "kiln-code-draft")):
            art = kiln.compile(target, draft=draft)
            rt = art.runtime()
            prompts = heldout_prompts(rt.encode, a.prompts, 64)
            name = "bundled target, " + ("plain" if draft is None else f"{Path(draft).name} drafter")
            rows.append(measure(name, art, prompts, a.new_tokens, a.repeats, speculative=draft is not None))
            print(_line(rows[-1]), flush=True)
    if "llama-125m" in models:
        gen = torch.Generator().manual_seed(0)
        prompts = [torch.randint(0, 32000, (64,), generator=gen).tolist() for _ in range(a.prompts)]
        for pipeline in ("default", "int8", "int4"):
            art = kiln.compile("llama-125m", pipeline=pipeline)
            rows.append(measure(f"llama-125m {pipeline}", art, prompts, a.new_tokens, a.repeats, speculative=False))
            print(_line(rows[-1]), flush=True)
    print()
    print(table(rows))
    out = {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
           "torch": torch.__version__, "threads": a.threads, "rows": rows}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


def _line(r: dict) -> str:
    share = f", {100 * r['outside_native_share']:.1f}% outside native code" if "outside_native_share" in r else ""
    return f"{r['name']}: generated C {r['c_tok_s']:.1f} tok/s, interpreter {r['interp_tok_s']:.1f} tok/s " \
           f"({r['ratio']:.2f}x){share}"


def table(rows: list[dict]) -> str:
    out = ["| artifact | generated C tok/s | interpreter tok/s | ratio | generate time outside native code |",
           "| --- | --- | --- | --- | --- |"]
    for r in rows:
        share = f"{100 * r['outside_native_share']:.1f}%" if "outside_native_share" in r else "-"
        out.append(f"| {r['name']} | {r['c_tok_s']:.1f} | {r['interp_tok_s']:.1f} | {r['ratio']:.2f}x | {share} |")
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
