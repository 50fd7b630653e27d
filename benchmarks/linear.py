"""kiln's native float32 linear kernels against torch's `F.linear` (MKL), by activation rows.

    python benchmarks/linear.py [--threads 2] [--shapes target|125m] [--quantized [--rows-q 1,4,12]]
                                [--json benchmarks/results/linear.json]

Per row count, the summed time of one call per weight shape of a decoder layer plus the vocabulary
projection (the bundled target's shapes, or llama-125m's), for: the panel kernel (weights packed into
32-row panels, the default route), the row kernel (`KILN_PACK=0`, at most 16 rows) and MKL. The three
run in turn in the same process on the same inputs; each result is checked against float64. With
``--quantized``, the same shapes as int8 and int4 g32 weights: the panel kernels against the per-row
kernels. Prints tables and writes JSON.
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


def quantized(weights: list[torch.Tensor], rows: str) -> list[dict]:
    """int8 and int4 g32 (symmetric) versions of ``weights``: the panel kernels a runtime uses against
    the per-row kernels (up to 16 rows), summed over the shapes; results checked against float64."""
    from kiln.ir.ops_quant import dequantize, quantize_int4, quantize_int8

    sets = []
    for w in weights:
        q8, s8 = quantize_int8(w)
        g = 32 if w.shape[1] % 32 == 0 else 16
        q4, s4, o4 = quantize_int4(w, g, True)
        sets.append((q8, s8, native._pack_quantized(q8, s8, None, {"format": "int8"}), q4, s4, o4, g,
                     native._pack_quantized(q4, s4, o4, {"format": "int4", "group_size": g})))
    out = []
    print(f"{'rows':>5} {'int8 panels':>12} {'int8 rows':>10} {'int4 panels':>12} {'int4 rows':>10}   (ms, all shapes)")
    for m in (int(r) for r in rows.split(",")):
        xs = [torch.randn(m, q8.shape[1]) for q8, *_ in sets]
        routes = {
            "int8 panels": [lambda x=x, t=t: native.qlinear_packed(x, t[2], t[1], None) for x, t in zip(xs, sets)],
            "int8 rows": [lambda x=x, t=t: native.qlinear_int8(x, t[0], t[1]) for x, t in zip(xs, sets)],
            "int4 panels": [lambda x=x, t=t: native.qlinear_packed(x, t[7], t[4], None) for x, t in zip(xs, sets)],
            "int4 rows": [lambda x=x, t=t: native.qlinear_int4(x, t[3], t[4], t[5], t[6]) for x, t in zip(xs, sets)],
        }
        row = {"rows": m}
        for name, fns in routes.items():
            if "rows" in name and m > native.MAX_ROWS:
                row[name] = None
                continue
            for f, x, t in zip(fns, xs, sets):
                fmt = "int8" if name.startswith("int8") else "int4"
                w = dequantize(*((t[0], t[1], None) if fmt == "int8" else (t[3], t[4], t[5])), format=fmt,
                               group_size=t[6]).double()
                if not torch.allclose(f().double(), x.double() @ w.T, rtol=1e-4, atol=1e-3):
                    raise SystemExit(f"{name}: wrong result at {m} rows")
            row[name] = min(sum(_time(f, 3) for f in fns) for _ in range(3))
        out.append(row)
        print(f"{m:>5} " + " ".join("-".rjust(len(k) + 1) if row[k] is None else f"{row[k] * 1e3:>{len(k) + 1}.2f}"
                                    for k in routes))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="target")
    ap.add_argument("--json", default="benchmarks/results/linear.json")
    ap.add_argument("--quantized", action="store_true", help="also int8 / int4 g32: panels vs per-row kernels")
    ap.add_argument("--rows-q", default="1,4,12", help="row counts for --quantized")
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
    if a.quantized:
        out["quantized"] = quantized(weights, a.rows_q)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
