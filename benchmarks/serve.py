"""``kiln serve`` under load: throughput, time to first token and inter-token latency at 1, 4, 16 and
64 concurrent clients, and behaviour under overload, on the bundled code model over loopback.

    python benchmarks/serve.py [--requests 64] [--new-tokens 64] [--max-batch 16] [--max-queue 64]
                               [--overload 160] [--pipeline paged] [--json benchmarks/results/serve.json]

The server is ``kiln serve`` in a process of its own (the same command a user runs); the clients are
one asyncio process (httpx), every request streamed so that each token's arrival is seen. Requests:
token-id prompts from held-out stdlib files (16 to 256 tokens, mixed), greedy, ``ignore_eos`` so
that every request makes exactly ``--new-tokens`` tokens. Each concurrency level runs the same
``--requests`` requests through that many closed-loop clients; 1 client is the requests sent one
after another, the baseline of the throughput ratio. Overload: ``--overload`` clients at once
against ``--max-batch`` running and ``--max-queue`` waiting; the rest must get 429s, and the
admitted requests' p99 inter-token latency is compared with the same figure at 1 client and at
``--max-batch`` clients. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kiln
from kiln.bench import _cpu_name
from kiln.bench_spec import heldout_prompts

TARGET = str(ROOT / "examples" / "models" / "kiln-code-target")


def start_server(art: Path, max_batch: int, max_queue: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    extra = ["--threads", str(threads)] if threads else []
    p = subprocess.Popen([sys.executable, "-m", "kiln", "serve", str(art), "--port", "0", "--log-level", "warning",
                          "--max-batch", str(max_batch), "--max-queue", str(max_queue), *extra],
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    banner = p.stderr.readline()
    m = re.search(r"on (http://\S+)", banner)
    if not m:
        p.kill()
        raise SystemExit(f"kiln serve did not start: {banner}{p.stderr.read()}")
    return p, m.group(1)


async def one(client: httpx.AsyncClient, url: str, ids: list[int], n: int) -> dict:
    body = {"model": "bench", "prompt": ids, "max_tokens": n, "temperature": 0, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = last = None
    gaps: list[float] = []
    tokens = 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code}
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            obj = json.loads(line[6:])
            if obj.get("usage"):
                tokens = obj["usage"]["completion_tokens"]
            elif obj["choices"] and obj["choices"][0]["text"]:
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
    return {"status": 200, "ttft": (first or time.perf_counter()) - t0, "gaps": gaps, "tokens": tokens,
            "seconds": time.perf_counter() - t0}


async def closed_loop(url: str, work: list[tuple[list[int], int]], clients: int) -> tuple[list[dict], float]:
    queue = list(reversed(work))
    out: list[dict] = []
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def worker():
            while queue:
                ids, n = queue.pop()
                out.append(await one(client, url, ids, n))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return out, time.perf_counter() - t0


def engine_counters(url: str) -> dict[str, float]:
    """The server's iteration counters (its /metrics): model-call seconds and tokens, summed."""
    text = httpx.get(url + "/metrics").text
    out = {}
    for name in ("kiln_iteration_seconds_sum", "kiln_iteration_seconds_count", "kiln_iteration_tokens_sum"):
        m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else 0.0
    return out


def engine_delta(before: dict, after: dict, seconds: float) -> dict:
    d = {k: after[k] - before[k] for k in before}
    n = max(d["kiln_iteration_seconds_count"], 1)
    return {"iterations": int(d["kiln_iteration_seconds_count"]),
            "model_ms_per_iteration": round(1000 * d["kiln_iteration_seconds_sum"] / n, 2),
            "tokens_per_iteration": round(d["kiln_iteration_tokens_sum"] / n, 1),
            "model_busy_fraction": round(d["kiln_iteration_seconds_sum"] / seconds, 3)}


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)) * 1000, 2) if xs else None


def summarise(results: list[dict], seconds: float) -> dict:
    ok = [r for r in results if r["status"] == 200]
    gaps = [g for r in ok for g in r["gaps"]]
    ttft = [r["ttft"] for r in ok]
    tokens = sum(r["tokens"] for r in ok)
    return {"requests": len(results), "completed": len(ok),
            "status_counts": {str(s): sum(r["status"] == s for r in results) for s in sorted({r["status"] for r in results})},
            "tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 1),
            "ttft_ms_p50": pct(ttft, 50), "ttft_ms_p99": pct(ttft, 99),
            "itl_ms_p50": pct(gaps, 50), "itl_ms_p99": pct(gaps, 99)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--overload", type=int, default=160)
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--pipeline", default="paged")
    ap.add_argument("--threads", type=int, help="kiln serve --threads (default: its own default)")
    ap.add_argument("--json", default="benchmarks/results/serve.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "bench.kiln"
        print(f"compiling {TARGET} ({a.pipeline}) ...", file=sys.stderr)
        compiled = kiln.compile(TARGET, pipeline=a.pipeline)
        compiled.save(art)
        rt = compiled.runtime()
        r = random.Random(0)
        pool = heldout_prompts(rt.encode, 32, 256)
        work = [(p[-r.choice([16, 32, 64, 128, 256]):], a.new_tokens) for p in
                (pool[i % len(pool)] for i in range(a.requests))]
        proc, url = start_server(art, a.max_batch, a.max_queue, a.threads)
        levels: dict[str, dict] = {}
        try:
            asyncio.run(closed_loop(url, work[:4], 2))  # warm-up
            for c in (int(x) for x in a.levels.split(",")):
                before = engine_counters(url)
                res, dt = asyncio.run(closed_loop(url, work, c))
                levels[str(c)] = {**summarise(res, dt), **engine_delta(before, engine_counters(url), dt)}
                print(f"  {c:>3} clients: {levels[str(c)]}", file=sys.stderr)
            over_work = [work[i % len(work)] for i in range(a.overload)]
            res, dt = asyncio.run(closed_loop(url, over_work, a.overload))
            overload = summarise(res, dt)
        finally:
            proc.terminate()
            proc.wait(60)
    base = levels.get("1")
    full = levels.get(str(a.max_batch))
    print(f"\nkiln serve, bundled code model ({a.pipeline}), {a.requests} requests of {a.new_tokens} tokens, "
          f"max batch {a.max_batch}, queue {a.max_queue}")
    print(f"{'clients':>8} {'tok/s':>8} {'x 1 client':>10} {'TTFT p50':>9} {'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8}"
          f"  statuses")
    for c, s in [*levels.items(), (f"{a.overload}*", overload)]:
        ratio = s["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        print(f"{c:>8} {s['tokens_per_s']:>8.1f} {ratio:>9.2f}x {s['ttft_ms_p50'] or 0:>8.1f}ms "
              f"{s['ttft_ms_p99'] or 0:>8.1f}ms {s['itl_ms_p50'] or 0:>7.1f}ms {s['itl_ms_p99'] or 0:>7.1f}ms  "
              f"{s['status_counts']}")
    checks = {}
    if base and full:
        checks["throughput_at_max_batch_vs_sequential"] = round(full["tokens_per_s"] / base["tokens_per_s"], 2)
        checks["overload_itl_p99_vs_1_client"] = round(overload["itl_ms_p99"] / base["itl_ms_p99"], 2)
        checks["overload_itl_p99_vs_max_batch_clients"] = round(overload["itl_ms_p99"] / full["itl_ms_p99"], 2)
    checks["overload_429s"] = overload["status_counts"].get("429", 0)
    checks["overload_5xx"] = sum(v for k, v in overload["status_counts"].items() if k.startswith("5"))
    print(f"* overload: {a.overload} clients at once. {checks}")
    machine = f"{_cpu_name()}, {os.cpu_count()} cores, {platform.system()}"
    print(f"machine: {machine}, torch {torch.__version__}")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "pipeline": a.pipeline,
                               "server_threads": a.threads,
                               "requests": a.requests, "new_tokens": a.new_tokens, "max_batch": a.max_batch,
                               "max_queue": a.max_queue, "levels": levels, "overload": {"clients": a.overload,
                                                                                          **overload},
                               "checks": checks}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if checks["overload_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
