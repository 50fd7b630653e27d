"""kiln's native float32 linear kernels against torch's `F.linear` (MKL), by activation rows.

    python benchmarks/linear.py [--threads 2] [--shapes target|125m] [--json benchmarks/results/linear.json]

Per row count, the summed time of one call per weight shape of a decoder layer plus the vocabulary
projection (the bundled target's shapes, or llama-125m's), for: the panel kernel (weights packed into
32-row panels, the default route), the row kernel (`KILN_PACK=0`, at most 16 rows) and MKL. The three
run in turn in the same process on the same inputs; each result is checked against float64. Prints a
table with GFLOP/s and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiln.codegen import native

SHAPES = {"target": [(512, 256), (256, 256), (1376, 256), (256, 688), (4096, 256)],
          "125m": [(2304, 768), (768, 768), (6144, 768), (768, 3072), (32000, 768)]}
ROWS = (1, 2, 4, 8, 12, 16, 64, 256)


def _time(f, calls: int) -> float:
    for _ in range(3):
        f()
    t = time.perf_counter()
    for _ in range(calls):
        f()
    return (time.perf_counter() - t) / calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="target")
    ap.add_argument("--json", default="benchmarks/results/linear.json")
    a = ap.parse_args()
    if native.library() is None:
        print("the native kernels are not built on this machine (no C compiler, or KILN_NATIVE=0)", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(n, k, generator=g) / k ** 0.5 for n, k in SHAPES[a.shapes]]
    routes = {"panel": "1", "row": "0", "mkl": None}
    rows_out = []
    print(f"{'rows':>5} " + " ".join(f"{r + ' us':>10} {'GF/s':>6}" for r in routes))
    for m in ROWS:
        flops = sum(2 * m * w.numel() for w in weights)
        calls = max(3, int(2e9 / flops))
        row = {"rows": m, "flops": flops}
        for route, pack in routes.items():
            if route == "row" and m > native.MAX_ROWS:
                row[route] = None
                continue
            if pack is not None:
                os.environ["KILN_PACK"] = pack
            xs = [torch.randn(m, w.shape[1], generator=g) for w in weights]
            fns = [(lambda x=x, w=w: native.linear(x, w)) if pack is not None else
                   (lambda x=x, w=w: torch.nn.functional.linear(x, w)) for x, w in zip(xs, weights)]
            for f, x, w in zip(fns, xs, weights):
                y = f()
                ref = x.double() @ w.double().T
                if y is None or not torch.allclose(y.double(), ref, rtol=1e-4, atol=1e-4):
                    raise SystemExit(f"{route} kernel: wrong result at {m} rows, weight {tuple(w.shape)}")
            row[route] = sum(_time(f, calls) for f in fns)
        os.environ.pop("KILN_PACK", None)
        rows_out.append(row)
        print(f"{m:>5} " + " ".join(f"{'-':>10} {'-':>6}" if row[r] is None else
                                    f"{row[r] * 1e6:>10.0f} {flops / row[r] / 1e9:>6.1f}" for r in routes))
    out = {"machine": os.uname().nodename, "threads": a.threads, "shapes": a.shapes, "results": rows_out}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
