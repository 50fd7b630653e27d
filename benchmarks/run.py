"""Full-sequence forward (prefill) speed: kiln's CPU executor against the
transformers model it was compiled from, in the same process, same threads.

    python benchmarks/run.py [--preset llama-125m] [--lengths 64,512] [--threads 2] [--json out.json]

Prints a table and writes JSON. There is no KV cache yet, so decode speed is
not measured here (that arrives with the KV-cache runtime and `kiln bench`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kiln
from kiln.frontend.presets import build_preset


def _time_pair(f, g, repeats: int) -> tuple[float, float]:
    """Median seconds of f and of g, sampled alternately so that load on the machine hits both alike."""
    f(), g()  # warm up
    fs, gs = [], []
    for _ in range(repeats):
        for fn, out in ((f, fs), (g, gs)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(fs), statistics.median(gs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-125m")
    ap.add_argument("--lengths", default="64,512")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default="benchmarks/results/prefill.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    art = kiln.compile(a.preset)
    rt = art.runtime()
    model, _ = build_preset(a.preset)
    rows = []
    for t in [int(x) for x in a.lengths.split(",")]:
        ids = torch.randint(0, rt.vocab_size, (a.batch, t))
        with torch.no_grad():
            k, h = _time_pair(lambda ids=ids: rt.logits(ids), lambda ids=ids: model(input_ids=ids, use_cache=False).logits,
                              a.repeats)
        rows.append({"tokens": t, "batch": a.batch, "kiln_s": k, "hf_s": h, "kiln_tokens_per_s": a.batch * t / k,
                     "hf_tokens_per_s": a.batch * t / h, "ratio": h / k})
    result = {"benchmark": "prefill (full-sequence logits)", "preset": a.preset, "threads": a.threads,
              "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "torch": torch.__version__,
              "rows": rows}
    print(f"prefill, {a.preset}, batch {a.batch}, {a.threads} threads (median of {a.repeats})")
    print(f"{'tokens':>8} {'kiln tok/s':>12} {'HF tok/s':>12} {'kiln/HF':>8}")
    for r in rows:
        print(f"{r['tokens']:>8} {r['kiln_tokens_per_s']:>12.1f} {r['hf_tokens_per_s']:>12.1f} {r['ratio']:>8.2f}x")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
