"""Speculative decoding on the bundled code model: every drafter against plain kiln decoding and
against transformers' own speculative modes, in one process.

    python benchmarks/speculative.py [--prompts 4] [--prompt-len 64] [--new-tokens 128] [--repeats 2]
                                     [--threads 2] [--drafters ngram,self,model] [--pipeline default]
                                     [--json benchmarks/results/speculative.json]

Prompts: held-out stdlib source (``kiln.bench_spec.heldout_prompts``). Greedy, batch 1, no EOS; the
time of a whole ``generate`` call, median over ``repeats``, contenders alternating (see
kiln/bench_spec.py). Contenders: kiln plain (default pipeline), kiln with the ngram, self and model
drafters (``kiln compile --draft ngram|self|examples/models/kiln-code-draft``), HF ``generate``, HF
with ``assistant_model`` = the bundled draft (kiln's model drafter uses the same), HF with
``prompt_lookup_num_tokens=10``. Every output is checked against plain greedy. ``--pipeline int8``
(or ``int4``) compiles every kiln contender with quantized weights (the transformers contenders stay
float32, so their tokens may differ). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kiln
from kiln.bench import _cpu_name
from kiln.bench_spec import heldout_prompts, hf_runner, kiln_runner, time_contenders

TARGET = str(ROOT / "examples" / "models" / "kiln-code-target")
DRAFT = str(ROOT / "examples" / "models" / "kiln-code-draft")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drafters", default="ngram,self,model")
    ap.add_argument("--pipeline", default="default", help="kiln's pipeline for every kiln contender (int8, int4, ...)")
    ap.add_argument("--json", default="benchmarks/results/speculative.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    n = a.new_tokens
    say("compiling the bundled target (plain and with each drafter)")
    runtimes = {"kiln plain": kiln.compile(TARGET, pipeline=a.pipeline).runtime()}
    for d in a.drafters.split(","):
        runtimes[f"kiln {d}"] = kiln.compile(TARGET, pipeline=a.pipeline, draft=DRAFT if d == "model" else d).runtime()
    prompts = heldout_prompts(runtimes["kiln plain"].encode, a.prompts, a.prompt_len)

    from transformers import AutoModelForCausalLM

    say("loading the transformers models")
    hf = AutoModelForCausalLM.from_pretrained(TARGET, dtype=torch.float32).eval()
    hf_draft = AutoModelForCausalLM.from_pretrained(DRAFT, dtype=torch.float32).eval()
    hf_draft.generation_config.eos_token_id = None
    contenders = {name: kiln_runner(rt, n) for name, rt in runtimes.items()}
    contenders["HF generate"] = hf_runner(hf, n)
    contenders["HF assisted (same draft)"] = hf_runner(hf, n, assistant_model=hf_draft)
    contenders["HF prompt lookup"] = hf_runner(hf, n, prompt_lookup_num_tokens=10)
    rows = time_contenders(contenders, prompts, n, a.repeats, "kiln plain", runtimes, say)

    plain = rows["kiln plain"]["tokens_per_s"]
    assisted = rows["HF assisted (same draft)"]["tokens_per_s"]
    lookup = rows["HF prompt lookup"]["tokens_per_s"]
    machine = f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores"
    print(f"bundled kiln-code-target, {len(prompts)} held-out prompts of {a.prompt_len} tokens, {n} new tokens, "
          f"greedy, batch 1, {a.threads} threads")
    print(f"{'contender':<26} {'tokens/s':>9} {'vs kiln plain':>13} {'vs HF assisted':>14} {'vs HF lookup':>12} "
          f"{'tok/verify':>10} {'accept %':>8} {'same':>5}")
    for name, r in rows.items():
        tps = r["tokens_per_s"]
        r.update(vs_kiln_plain=round(tps / plain, 3), vs_hf_assisted=round(tps / assisted, 3),
                 vs_hf_prompt_lookup=round(tps / lookup, 3))
        apv = f"{r['accepted_per_verify']:.2f}" if r["accepted_per_verify"] is not None else "-"
        acc = f"{100 * r['acceptance_rate']:.1f}" if r["acceptance_rate"] is not None else "-"
        print(f"{name:<26} {tps:>9.1f} {tps / plain:>12.2f}x {tps / assisted:>13.2f}x {tps / lookup:>11.2f}x "
              f"{apv:>10} {acc:>8} {'yes' if r['same'] else 'NO':>5}")
    print(f"machine: {machine}, torch {torch.__version__}")
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "threads": a.threads, "pipeline": a.pipeline,
                               "prompts": len(prompts), "prompt_len": a.prompt_len, "new_tokens": n,
                               "repeats": a.repeats, "contenders": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if all(r["same"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
