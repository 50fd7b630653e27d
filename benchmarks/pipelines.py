"""Forward (prefill) time of one preset compiled with different pipelines, sampled alternately
in one process, to see what the rewrites buy on this machine's CPU executor.

    python benchmarks/pipelines.py [--preset llama-125m] [--pipelines cleanup,default] [--lengths 1,16,64,256]
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

import kiln


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-125m")
    ap.add_argument("--pipelines", default="cleanup,default")
    ap.add_argument("--lengths", default="1,16,64,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default="benchmarks/results/pipelines.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = a.pipelines.split(",")
    runtimes = {p: kiln.compile(a.preset, pipeline=p).runtime() for p in names}
    rows = []
    for t in [int(x) for x in a.lengths.split(",")]:
        ids = torch.randint(0, runtimes[names[0]].vocab_size, (1, t))
        samples: dict[str, list[float]] = {p: [] for p in names}
        for rt in runtimes.values():
            rt.logits(ids)  # warm up
        for _ in range(a.repeats):
            for p, rt in runtimes.items():
                t0 = time.perf_counter()
                rt.logits(ids)
                samples[p].append(time.perf_counter() - t0)
        rows.append({"tokens": t, **{f"{p}_ms": statistics.median(v) * 1000 for p, v in samples.items()}})
    print(f"prefill ms, {a.preset}, batch 1, {a.threads} threads (median of {a.repeats}, sampled alternately)")
    print(f"{'tokens':>8} " + " ".join(f"{p:>10}" for p in names) + f" {names[-1] + '/' + names[0]:>16}")
    for r in rows:
        ratio = r[f"{names[-1]}_ms"] / r[f"{names[0]}_ms"]
        print(f"{r['tokens']:>8} " + " ".join(f"{r[p + '_ms']:>10.1f}" for p in names) + f" {ratio:>15.2f}x")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": a.preset, "threads": a.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
