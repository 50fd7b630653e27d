"""Cached generation against transformers `generate`: the standard set for `make bench`.

    python benchmarks/decode.py [--preset llama-125m] [--layouts default,paged] [--baselines hf]
                                [--threads 2] [--json benchmarks/results/decode.json]

For each pipeline (`default` = contiguous cache, `paged`) and baseline, two settings run
through `kiln.bench.bench`: decode (64-token prompt, 128 new tokens) and prefill (512-token
prompt; its prefill time is what counts). Batch 1, float32, greedy, same process and threads,
alternating kiln and the baseline. Prints a table and writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kiln
from kiln.bench import bench

SETTINGS = (("decode", 64, 128), ("prefill", 512, 8))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="llama-125m")
    ap.add_argument("--layouts", default="default,paged", help="pipelines to compile with")
    ap.add_argument("--baselines", default="hf", help="hf and/or torch-compile")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/results/decode.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for pipeline in a.layouts.split(","):
        print(f"compiling {a.preset} with the {pipeline} pipeline", file=sys.stderr, flush=True)
        art = kiln.compile(a.preset, pipeline=pipeline)
        for baseline in a.baselines.split(","):
            for name, prompt_len, new in SETTINGS:
                print(f"  {name}: prompt {prompt_len}, {new} new tokens vs {baseline}", file=sys.stderr, flush=True)
                r = bench(art, baseline, prompt_len, new, a.repeats, a.threads)
                r["setting"] = name
                rows.append(r)
    hdr = (f"{'pipeline':<9} {'layout':<11} {'setting':<8} {'baseline':<14} {'kiln tok/s':>10} {'base tok/s':>10} "
           f"{'decode x':>8} {'kiln pf ms':>10} {'base pf ms':>10} {'prefill x':>9} {'floor':>6} {'same':>5}")
    print(hdr)
    for r in rows:
        print(f"{r['pipeline']:<9} {r['kv_layout']:<11} {r['setting']:<8} {r['baseline']:<14} "
              f"{r['kiln_tokens_per_s']:>10.1f} {r['baseline_tokens_per_s']:>10.1f} {r['ratio']:>7.2f}x "
              f"{r['kiln_prefill_ms']:>10.1f} {r['baseline_prefill_ms']:>10.1f} {r['prefill_ratio']:>8.2f}x "
              f"{r['kiln_fraction_of_floor']:>5.0%} {'yes' if r['greedy_tokens_match'] else 'NO':>5}")
    r0 = rows[0]
    print(f"floor: {r0['decode_weight_bytes'] / 1e6:.0f} MB of weights per decode step at "
          f"{r0['copy_bandwidth_gb_s']:.1f} GB/s copy bandwidth = {r0['bandwidth_floor_ms_per_token']:.2f} ms/token; "
          f"machine: {r0['machine']}, torch {r0['torch']}")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
