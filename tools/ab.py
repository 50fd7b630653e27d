"""Before/after speed check of two revisions of kiln on this machine: is a change within noise?

    .venv/bin/python tools/ab.py [--base REV] [--rounds 3] [--json FILE]

Checks out ``REV`` (default ``HEAD~1``; e.g. ``--base bc29c1a``) into a temporary git worktree, then alternates a measurement process between that tree and the working tree, ``--rounds``
times each, so that both see the same machine load. Each process measures, on the bundled target
model (greedy, batch 1, 2 threads): decode ms/token (64-token prompt, 128 new tokens; plain, n-gram
and bundled-draft speculative), prefill of a 500-token prompt, and the CPU executor's own cost per op
(a 2000-op program of scalar multiplies). Prints the median of each figure per tree and the ratio
new/base; the spread across rounds shows the noise. Not part of ``make test``: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MEASURE = r'''
import json, statistics, time, torch
torch.set_num_threads(2)
import kiln
from kiln.ir.core import Program
from kiln.ir.types import DType, TensorType
from kiln.codegen.cpu import CpuProgram

def best_and_median(fn, n):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts), statistics.median(ts)

out = {}
T, D = "examples/models/kiln-code-target", "examples/models/kiln-code-draft"
text = open("kiln/compiler.py").read()
for name, kw in (("plain", {}), ("ngram", {"draft": "ngram"}), ("draft model", {"draft": D})):
    rt = kiln.compile(T, **kw).runtime()
    ids = rt.encode(text[:400])[:64]
    _, med = best_and_median(lambda: rt.generate([ids], max_new_tokens=128, stop_at_eos=False), 7)
    out[f"decode {name} (ms/token)"] = med / 128 * 1000
    if name == "plain":
        long = rt.encode(text[:3000])[:500]
        _, med = best_and_median(lambda: rt.generate([long], max_new_tokens=1, stop_at_eos=False), 7)
        out["prefill 500 tokens (ms)"] = med * 1000
p = Program("p")
v = p.add_arg(TensorType(DType.f32, (4,)), "x")
for _ in range(2000):
    v = p.create("kiln.mul", [v], {"scalar": 1.0}).result
p.set_outputs([v])
cp, a = CpuProgram(p, {}), torch.ones(4)
best, _ = best_and_median(lambda: cp(a), 20)
out["executor overhead (us/op)"] = best / 2000 * 1e6
print("RESULT " + json.dumps(out))
'''


def measure(tree: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    r = subprocess.run([sys.executable, "-c", MEASURE], cwd=tree, env=env, capture_output=True, text=True,
                       check=False, timeout=1800)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        sys.exit(f"ab: the measurement failed in {tree}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD~1", help="the revision to compare the working tree against")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("ab: --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="kiln-ab-") as tmp:
        base = Path(tmp) / "base"
        r = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), a.base],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            sys.exit(f"ab: cannot check out {a.base!r}: {r.stderr.strip()}")
        runs: dict[str, list[dict]] = {"base": [], "new": []}
        try:
            for i in range(a.rounds):
                for name, tree in (("base", base), ("new", ROOT)):
                    print(f"round {i + 1}/{a.rounds}: {name}", file=sys.stderr, flush=True)
                    runs[name].append(measure(tree))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    keys = list(runs["new"][0])
    print(f"{'figure':34} {'base':>9} {'new':>9} {'new/base':>9}   spread (min-max, base | new)")
    table = {}
    for k in keys:
        b = [r[k] for r in runs["base"]]
        n = [r[k] for r in runs["new"]]
        mb, mn = statistics.median(b), statistics.median(n)
        table[k] = {"base": b, "new": n, "ratio": mn / mb}
        print(f"{k:34} {mb:9.3f} {mn:9.3f} {mn / mb:9.2f}   {min(b):.3f}-{max(b):.3f} | {min(n):.3f}-{max(n):.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps({"base": a.base, "rounds": a.rounds, "figures": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
