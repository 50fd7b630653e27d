"""Mutation check: plant known semantic bugs one at a time and see whether the tests catch them.

Each plant is an exact edit of one source file (the original snippet must occur exactly once, or
the run stops before anything runs: the source drifted and the plant needs updating). The edit is
made in a temporary copy of the repository (without .git and .venv), never in the working tree;
the selected tests (or the whole suite with --full) run there with this interpreter and
PYTHONPATH set to the copy; the file is restored before the next plant.

    .venv/bin/python tools/mutate.py                 # every plant, its selected tests
    .venv/bin/python tools/mutate.py --only rope-sign,top-p-one-too-few
    .venv/bin/python tools/mutate.py --full          # the whole suite per plant (slow)
    .venv/bin/python tools/mutate.py --baseline      # first check the selected tests pass unplanted
    .venv/bin/python tools/mutate.py --list

A plant is "caught" when pytest reports failures (exit 1), "missed" when the tests pass, and "error"
for anything else (collection error, timeout). Prints a table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Plant:
    name: str
    file: str
    old: str
    new: str
    description: str
    tests: list[str] = field(default_factory=list)  # pytest node ids or files, in the likely order of catching


SPEC_DIST = "tests/test_spec_distribution.py"
PLANTS = [
    Plant("rmsnorm-no-eps", "kiln/ir/ops.py",
          "h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)",
          "h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True))",
          "RMSNorm's reference drops eps",
          ["tests/test_norms_rope.py", "tests/test_ops.py::test_rms_norm_matches_transformers",
           "tests/test_frontend.py::test_logits_match_hf"]),
    Plant("verify-writes-at-pos", "kiln/passes/speculative.py",
          'op.set_operand("pos", slot)', 'op.set_operand("pos", pos)',
          "verify writes tree nodes' K/V at their position instead of their slot (siblings overwrite each other)",
          ["tests/test_speculative.py::test_rejected_trees_leave_no_stale_cache_entries",
           "tests/test_speculative.py::test_greedy_speculative_equals_plain_on_a_random_preset"]),
    Plant("int8-kv-scale-120", "kiln/ir/ops_quant.py",
          "    s = x.abs().amax(dim=-1) / 127.0\n    s = torch.where(s > 0, s, torch.ones_like(s))\n"
          "    return torch.round(x / s[..., None]).clamp_(-127, 127)",
          "    s = x.abs().amax(dim=-1) / 120.0\n    s = torch.where(s > 0, s, torch.ones_like(s))\n"
          "    return torch.round(x / s[..., None]).clamp_(-127, 127)",
          "int8 KV rows quantized with max/120 instead of max/127",
          ["tests/test_kv_int8.py", "tests/test_quantize.py::test_kv_rows_error_bound",
           "tests/test_quantize.py::test_int8_kv_greedy_tokens_match_its_reference_in_both_layouts"]),
    Plant("draft-pick-q-at-T1", "kiln/ir/ops_spec.py",
          "    return [torch.multinomial(q, 1, generator=gen).squeeze(-1), q.float()]",
          "    return [torch.multinomial(q, 1, generator=gen).squeeze(-1),\n"
          "            filtered_probs(rows, 1.0, top_k, top_p).float()]",
          "kiln.draft_pick (fused spec_step) samples at temperature T but reports q at temperature 1",
          [f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("runtime-draft-q-at-T1", "kiln/runtime/speculative.py",
          "        return picked, list(q), q.max(-1).values.tolist()",
          "        return picked, list(filtered_probs(logits, 1.0, top_k, top_p)), q.max(-1).values.tolist()",
          "the runtime loop's draft (ModelDrafter._pick) samples at T but reports q at temperature 1",
          [f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("accept-always", "kiln/ir/ops_spec.py",
          "float(torch.rand((), generator=gen)) * qt < float(p[t])",
          "float(torch.rand((), generator=gen)) < 1.0",
          "the accept rule accepts every drafted token (u < 1 instead of u < p/q)",
          ["tests/test_speculative.py::test_accept_rule_with_a_sampled_draft_preserves_the_target_distribution",
           f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("accept-no-residual", "kiln/ir/ops_spec.py",
          "resid = (resid - q).clamp_min(0)", "resid = resid.clamp_min(0)",
          "after a rejected sampled draft the next token comes from p, not the residual max(p - q, 0)",
          ["tests/test_speculative.py::test_accept_rule_with_a_sampled_draft_preserves_the_target_distribution",
           f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("rope-sign", "kiln/ir/ops.py",
          "rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)",
          "rotated = torch.cat([x[..., half:], -x[..., :half]], dim=-1)",
          "RoPE's rotate-half with the sign on the wrong half",
          ["tests/test_norms_rope.py", "tests/test_ops.py::test_rope_matches_transformers",
           "tests/test_frontend.py::test_logits_match_hf"]),
    Plant("rope-frequencies", "kiln/ir/ops.py",
          "freqs = pos.to(torch.float32).unsqueeze(-1) * inv.to(torch.float32)",
          "freqs = pos.to(torch.float32).unsqueeze(-1) * inv.to(torch.float32) * 0.5",
          "RoPE tables built with half the frequencies (as from a wrong base)",
          ["tests/test_norms_rope.py", "tests/test_frontend.py::test_lift_recognises_everything",
           "tests/test_frontend.py::test_logits_match_hf"]),
    Plant("cache-causal-off-by-one", "kiln/ir/ops.py",
          "keep = torch.arange(length, device=q.device)[None, :] <= pos[i:j, None]",
          "keep = torch.arange(length, device=q.device)[None, :] <= pos[i:j, None] + 1",
          "cached attention lets each query of a multi-token chunk see one key beyond its position",
          ["tests/test_kv_cache.py::test_prefill_logits_match_forward_and_chunking_changes_nothing",
           "tests/test_promises.py::test_kv_cache_pass_on_a_hand_built_program"]),
    Plant("attention-causal-off-by-one", "kiln/ir/ops.py",
          "keep = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t)",
          "keep = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(s - t - 1)",
          "non-square causal attention hides each query's own key",
          ["tests/test_ops.py::test_attention_gqa_and_bottom_right_causal"]),
    Plant("int4-scale", "kiln/ir/ops_quant.py",
          "            s = (g.abs().amax(dim=1) / 7.0)", "            s = (g.abs().amax(dim=1) / 8.0)",
          "symmetric int4 group scale max/8 instead of max/7 (the largest weights clamp)",
          ["tests/test_quantize.py::test_int4_error_is_at_most_half_a_step_per_group",
           "tests/test_quantize.py::test_compiled_pipelines_give_logits_close_to_float"]),
    Plant("top-p-one-too-few", "kiln/ir/ops_spec.py",
          "drop = probs.cumsum(-1) - probs > top_p", "drop = probs.cumsum(-1) > top_p",
          "top-p drops the token that crosses the threshold (keeps one too few)",
          ["tests/test_runtime.py::test_top_k_and_top_p_restrict_support",
           f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("sampling-ignores-temperature", "kiln/ir/ops_spec.py",
          "    scores = logits.float() / temperature\n", "    scores = logits.float()\n",
          "sampling ignores the temperature",
          ["tests/test_runtime.py::test_sampled_distribution_is_softmax_over_temperature",
           f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("ngram-shifted", "kiln/runtime/speculative.py",
          "return [toks[e:e + (self.k if i == 0 else self.k // 2)] for i, e in enumerate(ends)]",
          "return [toks[e + 1:e + 1 + (self.k if i == 0 else self.k // 2)] for i, e in enumerate(ends)]",
          "prompt lookup drafts the continuation shifted by one token (greedy output unchanged, acceptance drops)",
          ["tests/test_drafters.py"]),
    Plant("block-table-off-by-one", "kiln/ir/ops.py",
          'blocks = table[seq, torch.div(pos, bs, rounding_mode="floor")]',
          'blocks = table[seq, torch.div(pos + 1, bs, rounding_mode="floor")]',
          "cache writes look the block table up one position late (the last slot of a block lands in the next)",
          ["tests/test_kv_cache.py", "tests/test_promises.py::test_kv_cache_pass_on_a_hand_built_program"]),
    Plant("commit-no-move", "kiln/ir/ops_spec.py",
          "    move = src != dst\n", "    move = src != src\n",
          "cache_commit never moves accepted tree nodes from their slots to their positions (no rollback)",
          ["tests/test_speculative.py::test_rejected_trees_leave_no_stale_cache_entries",
           "tests/test_speculative.py::test_greedy_speculative_equals_plain_on_a_random_preset"]),
    Plant("draft-pick-same-seed", "kiln/ir/ops_spec.py",
          "gen = torch.Generator().manual_seed((int(seed[0]) + 7919 * step) % 2**63)",
          "gen = torch.Generator().manual_seed(int(seed[0]) % 2**63)",
          "every fused draft step reuses one seed (draft tokens of a chain are correlated)",
          ["tests/test_drafters.py", f"{SPEC_DIST}::test_sampled_speculative_decoding_has_the_target_distribution"]),
    Plant("self-skips-last-layer", "kiln/passes/speculative.py",
          "for layer in range(n_layers - 1) if layer not in skip)",
          "for layer in range(1, n_layers) if layer not in skip)",
          "the self drafter's search may skip the last layer and never the first",
          ["tests/test_promises.py::test_the_self_drafter_never_skips_the_last_layer",
           "tests/test_speculative.py::test_self_drafter_skips_measured_layers_and_shares_weights"]),
]


def _copy_repo(dst: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info",
                                    "*.kiln")
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)


def check_sources(plants: list[Plant], root: Path) -> list[str]:
    problems = []
    for p in plants:
        path = root / p.file
        if not path.exists():
            problems.append(f"{p.name}: {p.file} does not exist")
            continue
        n = path.read_text().count(p.old)
        if n != 1:
            problems.append(f"{p.name}: the original snippet occurs {n} times in {p.file} (expected once): "
                            f"{p.old.strip()[:80]!r}")
    return problems


def run_pytest(copy: Path, args: list[str], timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider", *args]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        return r.returncode, r.stdout + r.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return -1, out + f"\n[timed out after {timeout}s]", time.perf_counter() - t0


def failed_tests(output: str) -> list[str]:
    return sorted({m.group(1) for m in re.finditer(r"^FAILED (\S+)", output, re.MULTILINE)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated plant names")
    ap.add_argument("--full", action="store_true", help="run the whole suite (tests/) for every plant")
    ap.add_argument("--baseline", action="store_true", help="first run the selected tests without any plant")
    ap.add_argument("--list", action="store_true", help="list the plants and exit")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per plant (default 1200)")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "kiln-mutate.json"), help="JSON results")
    args = ap.parse_args(argv)
    plants = list(PLANTS)
    if args.only:
        want = set(args.only.split(","))
        unknown = want - {p.name for p in plants}
        if unknown:
            ap.error(f"unknown plant(s): {', '.join(sorted(unknown))}")
        plants = [p for p in plants if p.name in want]
    if args.list:
        for p in plants:
            print(f"{p.name:30} {p.file:32} {p.description}")
        return 0
    problems = check_sources(plants, ROOT)
    if problems:
        print("the source drifted; update these plants in tools/mutate.py:", file=sys.stderr)
        for line in problems:
            print("  " + line, file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="kiln-mutate-") as tmp:
        copy = Path(tmp) / "repo"
        _copy_repo(copy)
        problems = check_sources(plants, copy)  # the copy, as the working tree may have moved meanwhile
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 2
        if args.baseline:
            sel = ["tests"] if args.full else list(dict.fromkeys(t for p in plants for t in p.tests))
            code, out, secs = run_pytest(copy, sel, args.timeout)
            print(f"baseline: exit {code} in {secs:.0f}s {failed_tests(out)}", flush=True)
            if code != 0:
                print(out[-3000:], file=sys.stderr)
                return 3
        for p in plants:
            path = copy / p.file
            original = path.read_text()
            path.write_text(original.replace(p.old, p.new, 1))
            try:
                code, out, secs = run_pytest(copy, ["tests"] if args.full else p.tests, args.timeout)
            finally:
                path.write_text(original)
            verdict = {0: "missed", 1: "caught"}.get(code, "error")
            fails = failed_tests(out)
            tail = "" if verdict != "error" else out[-1500:]
            results.append({**asdict(p), "verdict": verdict, "exit": code, "caught_by": fails,
                            "seconds": round(secs, 1), "output_tail": tail})
            print(f"{p.name:30} {verdict:7} {secs:6.0f}s  {', '.join(fails)[:150]}", flush=True)
    Path(args.out).write_text(json.dumps({"full": args.full, "results": results}, indent=2))
    print()
    print("| plant | verdict | caught by | seconds |\n| --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['name']} | {r['verdict']} | {', '.join(r['caught_by']) or '-'} | {r['seconds']} |")
    caught = sum(r["verdict"] == "caught" for r in results)
    print(f"\n{caught}/{len(results)} caught; JSON in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
