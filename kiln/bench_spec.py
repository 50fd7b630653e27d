"""Speculative decoding benchmarks: ``kiln bench`` on an artifact compiled with ``--draft``, and
``benchmarks/speculative.py``.

Speculative decoding pays off on real text, so the prompts are held-out stdlib source (never trained
on), not random ids. Every contender generates the same number of new tokens, greedy, batch 1, with
no stopping at EOS; the time is the wall time of a whole ``generate`` call (prefill included, on both
sides), the median over ``repeats`` after a warm-up, contenders alternating so that load on the
machine hits all alike. Each output is compared token for token with plain greedy decoding.

The transformers contenders: ``generate`` (eager), ``generate`` with ``assistant_model`` (the same
draft model as kiln's model drafter), and ``generate`` with ``prompt_lookup_num_tokens`` (its
model-free drafter).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from kiln.errors import KilnError

Runner = Callable[[list[int]], list[int]]


def heldout_prompts(encode: Callable[[str], list[int]], n: int, length: int) -> list[list[int]]:
    """The last ``length`` tokens of the opening of the first ``n`` long-enough held-out files."""
    from kiln import data

    out = []
    for f in data.heldout_files():
        if len(f.text) < length * 8:
            continue
        ids = encode(f.text[: length * 6])
        if len(ids) >= length:
            out.append(ids[-length:])
        if len(out) == n:
            break
    if not out:
        raise KilnError("no held-out file is long enough for the prompts; lower --prompt-len")
    return out


def hf_runner(model, new_tokens: int, **extra) -> Runner:
    model.generation_config.eos_token_id = None  # no EOS: kiln runs with stop_at_eos=False

    def run(p: list[int]) -> list[int]:
        ids = torch.tensor([p])
        with torch.no_grad():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                  min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **extra)[0].tolist()
    return run


def kiln_runner(rt, new_tokens: int) -> Runner:
    def run(p: list[int]) -> list[int]:
        return rt.generate([p], max_new_tokens=new_tokens, stop_at_eos=False)[0]
    return run


def time_contenders(contenders: dict[str, Runner], prompts: list[list[int]], new_tokens: int, repeats: int,
                    reference: str, runtimes: dict | None = None, progress=None) -> dict[str, dict]:
    """Per contender: median seconds per prompt, whether its tokens match ``reference``'s, and the
    mean speculative statistics of kiln runtimes (``runtimes`` maps contender names to them)."""
    say = progress or (lambda s: None)
    runtimes = runtimes or {}
    rows = {name: {"seconds": [], "same": True, "accepted_per_verify": [], "acceptance_rate": []}
            for name in contenders}
    for i, p in enumerate(prompts):
        say(f"prompt {i + 1}/{len(prompts)}")
        ref = contenders[reference](p)
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for name, run in contenders.items():  # warm-up, and the correctness check
            rows[name]["same"] &= run(p) == ref
        for _ in range(repeats):
            for name, run in contenders.items():
                t0 = time.perf_counter()
                run(p)
                times[name].append(time.perf_counter() - t0)
                stats = getattr(runtimes.get(name), "last_stats", {})
                if "accepted_per_verify" in stats:
                    rows[name]["accepted_per_verify"].append(stats["accepted_per_verify"])
                    rows[name]["acceptance_rate"].append(stats["acceptance_rate"])
        for name in contenders:
            rows[name]["seconds"].append(statistics.median(times[name]))
    for r in rows.values():
        total = sum(r["seconds"])
        r["tokens_per_s"] = round(new_tokens * len(prompts) / total, 2) if total > 0 else 0.0
        r["accepted_per_verify"] = round(statistics.mean(r["accepted_per_verify"]), 3) \
            if r["accepted_per_verify"] else None
        r["acceptance_rate"] = round(statistics.mean(r["acceptance_rate"]), 4) if r["acceptance_rate"] else None
        r["seconds"] = [round(s, 4) for s in r["seconds"]]
    return rows


def bench_speculative(artifact, prompt_len: int = 64, new_tokens: int = 128, repeats: int = 2,
                      threads: int | None = None, n_prompts: int = 3, progress=None) -> dict:
    """kiln speculative vs kiln plain vs transformers (plain and its matching speculative mode)."""
    from kiln.bench import _cpu_name, check_settings, source_model

    check_settings(prompt_len, new_tokens, repeats, threads)
    if threads is not None:
        torch.set_num_threads(threads)
    spec_rt = artifact.runtime()
    if spec_rt.spec is None:
        raise KilnError("this artifact has no speculative decoding (compile it with --draft)")
    if prompt_len + new_tokens > spec_rt.max_positions:
        raise KilnError(f"prompt ({prompt_len}) + new tokens ({new_tokens}) exceed the context of "
                        f"{spec_rt.max_positions}")
    plain_rt = artifact.runtime(speculative=False)
    info = artifact.manifest["model"]["speculative"]
    prompts = heldout_prompts(spec_rt.encode, n_prompts, prompt_len)
    say = progress or (lambda s: None)
    say("loading the baseline model")
    model = source_model(artifact.manifest)
    contenders = {"kiln speculative": kiln_runner(spec_rt, new_tokens), "kiln plain": kiln_runner(plain_rt, new_tokens),
                  "hf": hf_runner(model, new_tokens)}
    if info["drafter"] == "model":
        seed = int(artifact.manifest["source"].get("seed", 0))
        draft = source_model({"source": {"model": info.get("draft_source", ""), "seed": seed}})
        draft.generation_config.eos_token_id = None
        contenders["hf assisted"] = hf_runner(model, new_tokens, assistant_model=draft)
        matching = "hf assisted"
    elif info["drafter"] == "ngram":
        contenders["hf prompt lookup"] = hf_runner(model, new_tokens, prompt_lookup_num_tokens=10)
        matching = "hf prompt lookup"
    else:
        matching = "hf"
    rows = time_contenders(contenders, prompts, new_tokens, repeats, "kiln plain", {"kiln speculative": spec_rt}, say)
    k = rows["kiln speculative"]
    import os
    import platform

    return {"model": artifact.manifest["source"]["model"], "drafter": info["drafter"], "baseline": matching,
            "prompt_len": prompt_len, "new_tokens": new_tokens, "prompts": len(prompts), "batch": 1,
            "repeats": repeats, "threads": torch.get_num_threads(),
            "kiln_tokens_per_s": k["tokens_per_s"], "baseline_tokens_per_s": rows[matching]["tokens_per_s"],
            "ratio": round(k["tokens_per_s"] / max(rows[matching]["tokens_per_s"], 1e-9), 3),
            "kiln_plain_tokens_per_s": rows["kiln plain"]["tokens_per_s"],
            "speedup_over_plain": round(k["tokens_per_s"] / max(rows["kiln plain"]["tokens_per_s"], 1e-9), 3),
            "accepted_per_verify": k["accepted_per_verify"], "acceptance_rate": k["acceptance_rate"],
            "greedy_tokens_match": all(r["same"] for r in rows.values()),
            "contenders": rows, "machine": f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores",
            "torch": torch.__version__}


def format_table(r: dict) -> str:
    out = [(f"{r['model']} with the {r['drafter']} drafter: {r['prompts']} held-out prompts of {r['prompt_len']} "
            f"tokens, {r['new_tokens']} new tokens, greedy, batch 1, {r['threads']} threads"),
           f"{'contender':<18} {'tokens/s':>9} {'vs kiln plain':>13} {'tok/verify':>10} {'accept %':>8} {'same':>5}"]
    plain = r["kiln_plain_tokens_per_s"]
    for name, c in r["contenders"].items():
        apv = f"{c['accepted_per_verify']:.2f}" if c["accepted_per_verify"] is not None else "-"
        acc = f"{100 * c['acceptance_rate']:.1f}" if c["acceptance_rate"] is not None else "-"
        out.append(f"{name:<18} {c['tokens_per_s']:>9.1f} {c['tokens_per_s'] / max(plain, 1e-9):>12.2f}x "
                   f"{apv:>10} {acc:>8} {'yes' if c['same'] else 'NO':>5}")
    out.append(f"kiln speculative / {r['baseline']}: {r['ratio']:.2f}x; machine: {r['machine']}")
    return "\n".join(out)
