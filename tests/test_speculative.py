"""Speculative decoding: the ``speculative`` pass, its ops, the draft -> verify runtime loop.

Greedy speculative output must equal plain greedy output token for token (every drafter, both
cache layouts, one prompt and a batch of three); sampling must preserve the target distribution
(chi-square tests of the accept op with a fixed seed); a verify step must leave the cache holding
exactly the accepted sequence (logits after many rejected trees equal a fresh full forward).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import kiln
from kiln.errors import KilnError
from kiln.ir.ops_spec import _accept_ref, filtered_probs
from kiln.passes.speculative import skip_layers

BUNDLED = Path(__file__).resolve().parents[1] / "examples" / "models"
TARGET, DRAFT = str(BUNDLED / "kiln-code-target"), str(BUNDLED / "kiln-code-draft")
_ARTS: dict = {}


def _compiled(model: str, draft: str | None, pipeline: str = "default", **kw):
    key = (model, draft, pipeline, tuple(sorted(kw.items())))
    if key not in _ARTS:
        _ARTS[key] = kiln.compile(model, pipeline=pipeline, draft=draft, **kw)
    return _ARTS[key]


def _prompts(rt, n: int) -> list[list[int]]:
    from kiln import data

    texts = [f.text for f in data.heldout_files(200000) if len(f.text) > 2000]
    return [rt.encode(t[500 + 200 * i: 800 + 200 * i])[-(20 + 9 * i):] for i, t in enumerate(texts[:n])]


# -- greedy: identical tokens -----------------------------------------------------------------

@pytest.mark.parametrize("pipeline", ["default", "paged"])
@pytest.mark.parametrize("drafter", ["ngram", "self", "model"])
def test_greedy_speculative_equals_plain_greedy_on_the_bundled_model(drafter, pipeline):
    art = _compiled(TARGET, DRAFT if drafter == "model" else drafter, pipeline)
    spec, plain = art.runtime(), art.runtime(speculative=False)
    assert spec.spec is not None and plain.spec is None
    prompts = _prompts(spec, 3)
    one = plain.generate([prompts[0]], max_new_tokens=64, stop_at_eos=False)
    assert spec.generate([prompts[0]], max_new_tokens=64, stop_at_eos=False) == one
    stats = spec.last_stats
    assert stats["verify_calls"] < 64 and stats["accepted_per_verify"] > 1.0
    batch = plain.generate(prompts, max_new_tokens=40, stop_at_eos=False)
    assert spec.generate(prompts, max_new_tokens=40, stop_at_eos=False) == batch


@pytest.mark.parametrize("drafter", ["ngram", "self", "model"])
def test_greedy_speculative_over_an_int8_kv_cache_equals_plain(drafter):
    art = _compiled(TARGET, DRAFT if drafter == "model" else drafter, "int8-kv")
    names = [op.name for op in art.module["verify"].ops]
    assert names.count("kiln.cache_tree_attention_q8") == 6 and names.count("kiln.cache_commit") == 4
    spec, plain = art.runtime(), art.runtime(speculative=False)
    assert spec.kv.scaled and spec.spec is not None
    prompts = _prompts(spec, 3)
    want = plain.generate(prompts, max_new_tokens=40, stop_at_eos=False)
    assert spec.generate(prompts, max_new_tokens=40, stop_at_eos=False) == want
    assert spec.last_stats["accepted_per_verify"] > 1.0


@pytest.mark.parametrize("drafter", ["ngram", "self", "mistral-tiny"])
def test_greedy_speculative_equals_plain_on_a_random_preset(drafter):
    # random weights: drafts are mostly rejected, which exercises rollback on every step
    art = _compiled("llama-tiny", drafter, "paged", spec_k=3)
    spec, plain = art.runtime(), art.runtime(speculative=False)
    prompts = [[5, 9, 5, 9, 5, 9, 5], [7] * 13, list(range(40, 61))]
    want = plain.generate(prompts, max_new_tokens=50, stop_at_eos=False)
    assert spec.generate(prompts, max_new_tokens=50, stop_at_eos=False) == want
    assert [len(o) for o in want] == [len(p) + 50 for p in prompts]


@pytest.mark.parametrize("drafter", ["ngram", "model"])
def test_two_interleaved_speculative_streams_equal_their_separate_runs(drafter):
    # a request's drafter state (n-gram tables, draft-cache blocks) and counters live in its Request,
    # so two streams stepped in turn on one runtime give what each gives alone
    art = _compiled(TARGET, DRAFT if drafter == "model" else drafter)
    rt = art.runtime()
    p1, p2 = _prompts(rt, 2)

    def counters():  # what drafting did: the same drafts give the same counts
        return {k: v for k, v in rt.last_stats.items() if not k.endswith("seconds")}

    alone, alone_stats = [], []
    for p in (p1, p2):
        alone.append(rt.generate([p], max_new_tokens=24, stop_at_eos=False)[0][len(p):])
        alone_stats.append(counters())
    streams = [rt.stream_batch([p], max_new_tokens=24, stop_at_eos=False) for p in (p1, p2)]
    got: list[list[int]] = [[], []]
    stats: list[dict] = [{}, {}]
    live = [0, 1]
    while live:
        for i in list(live):
            step = next(streams[i], None)
            if step is None:
                live.remove(i)
                stats[i] = counters()  # set by the stream that just ended
            else:
                got[i].append(step[0])
    assert got == alone
    assert stats == alone_stats and alone_stats[0]["drafted_tokens"] > 0
    assert rt.kv.free == list(range(rt.kv.n_blocks))  # both reservations released
    if drafter == "model":
        d = rt.spec.drafter.kv
        assert sorted(d.free) == list(range(d.n_blocks))  # and both draft-cache reservations


def test_stop_tokens_and_max_new_tokens_cut_accepted_runs():
    art = _compiled(TARGET, "ngram")
    spec, plain = art.runtime(), art.runtime(speculative=False)
    p = _prompts(spec, 1)[0]
    full = plain.generate([p], max_new_tokens=30, stop_at_eos=False)[0][len(p):]
    stop = full[7]
    want = plain.generate([p], max_new_tokens=30, stop_ids=[stop], stop_at_eos=False)
    assert spec.generate([p], max_new_tokens=30, stop_ids=[stop], stop_at_eos=False) == want
    assert want[0][-1] == stop and len(want[0]) <= len(p) + 8
    for n in (1, 2, 5):
        assert spec.generate([p], max_new_tokens=n, stop_at_eos=False) == \
            plain.generate([p], max_new_tokens=n, stop_at_eos=False)
    # the streaming interface yields one token per step here too
    steps = list(spec.stream(torch.tensor([p]), max_new_tokens=12, stop_at_eos=False))
    assert torch.stack(steps, 1)[0].tolist() == full[:12]


def test_adaptive_draft_length_keeps_greedy_output():
    art = _compiled(TARGET, DRAFT, spec_adaptive=0.6, spec_k=8)
    assert art.module.meta["speculative"]["policy"].startswith("adaptive")
    spec, plain = art.runtime(), art.runtime(speculative=False)
    p = _prompts(spec, 2)[1]
    assert spec.generate([p], max_new_tokens=48, stop_at_eos=False) == \
        plain.generate([p], max_new_tokens=48, stop_at_eos=False)
    st = spec.last_stats
    assert st["drafted_tokens"] < 8 * st["verify_calls"]  # some chains stopped early


# -- sampling: the target distribution is preserved ---------------------------------------------

CHI2_DF5_P001 = 20.52  # chi-square critical value, 5 degrees of freedom, p = 0.001


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def _first_token(logits, tokens, parent, q, temperature, seed):
    n = len(tokens)
    acc, nxt = _accept_ref(None, logits, torch.tensor([tokens]), torch.tensor(parent), torch.zeros(n, dtype=torch.long),
                           q, torch.tensor([temperature, 1.0, 0.0]), torch.tensor([seed]))
    path = [i for i in range(n) if acc[i]]
    return tokens[path[1]] if len(path) > 1 else int(nxt[path[0]])


def test_accept_rule_with_a_sampled_draft_preserves_the_target_distribution():
    g = torch.Generator().manual_seed(0)
    v, t = 6, 0.8
    logits = torch.randn(1, 3, v, generator=g) * 2
    p = filtered_probs(logits[0, 0], t, 0, 1.0)
    q_rows = torch.softmax(torch.randn(2, v, generator=g) * 2, -1)  # a draft that disagrees with the target
    counts = torch.zeros(v)
    for trial in range(6000):
        d1 = int(torch.multinomial(q_rows[0], 1, generator=g))
        d2 = int(torch.multinomial(q_rows[1], 1, generator=g))
        q = torch.zeros(3, v)
        q[1], q[2] = q_rows[0], q_rows[1]
        counts[_first_token(logits, [0, d1, d2], [-1, 0, 1], q, t, trial)] += 1
    assert _chi2(counts, p) < CHI2_DF5_P001, (counts, p)


def test_accept_rule_over_a_deterministic_tree_preserves_the_target_distribution():
    g = torch.Generator().manual_seed(1)
    v, t = 6, 1.0
    logits = torch.randn(1, 5, v, generator=g) * 1.5
    p = filtered_probs(logits[0, 0], t, 0, 1.0)
    top = p.argsort(descending=True).tolist()
    # the root has three children (the two likeliest tokens and the least likely one), one of them a child
    tokens, parent = [0, top[0], top[1], top[-1], top[2]], [-1, 0, 0, 0, 1]
    counts = torch.zeros(v)
    for trial in range(6000):
        counts[_first_token(logits, tokens, parent, torch.zeros(5, 0), t, trial)] += 1
    assert _chi2(counts, p) < CHI2_DF5_P001, (counts, p)
    # and a greedy walk follows the argmax
    assert _first_token(logits, tokens, parent, torch.zeros(5, 0), 0.0, 0) == top[0]


def test_sampled_speculative_generation_is_reproducible_and_on_distribution():
    art = _compiled(TARGET, DRAFT)
    rt = art.runtime()
    p = _prompts(rt, 1)[0]
    kw = {"max_new_tokens": 24, "temperature": 0.9, "top_p": 0.95, "seed": 7, "stop_at_eos": False}
    a, b = rt.generate([p], **kw), rt.generate([p], **kw)
    assert a == b and rt.last_stats["verify_calls"] > 0
    assert rt.generate([p], **{**kw, "seed": 8}) != a
    # the text is from the model: its mean log-likelihood under the target is far above uniform
    ids = torch.tensor(a)
    logp = torch.log_softmax(art.runtime(speculative=False).logits(ids)[0, len(p) - 1:-1], -1)
    mean = logp.gather(-1, ids[0, len(p):, None]).mean()
    assert mean > -4.0 > -torch.log(torch.tensor(float(rt.vocab_size)))


# -- rollback: the cache holds exactly the accepted sequence ----------------------------------

@pytest.mark.parametrize("pipeline", ["default", "paged", "int8-kv"])
def test_rejected_trees_leave_no_stale_cache_entries(pipeline):
    art = _compiled("llama-tiny", "ngram", pipeline)
    rt = art.runtime()
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (9, 23)]
    blocks = rt.kv.reserve([200, 200])
    kc, vc = rt.kv.tensors()
    cache = rt.kv.args()  # k_cache, v_cache (and an int8 cache's scales, which roll back with it)
    table = rt.kv.table(blocks)
    rt.prefill_logits(seqs, kc, vc, table)
    for s in seqs:
        s.append(int(torch.randint(3, 500, (1,), generator=g)))
    i64 = lambda x: torch.tensor(x, dtype=torch.long)
    for step in range(12):
        ids, pos, seq, slot, parent, blocks_of = [], [], [], [], [], []
        for r, s in enumerate(seqs):
            # a random tree: node i > 0 hangs under a random earlier node; on some steps the tree copies
            # the greedy continuation so that long runs are accepted too
            n = 1 + int(torch.randint(0, 7, (1,), generator=g))
            par = [-1] + [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, n)]
            depth = [0] * n
            for i in range(1, n):
                depth[i] = depth[par[i]] + 1
            toks = [s[-1]] + torch.randint(3, 500, (n - 1,), generator=g).tolist()
            if step % 3 == 2:
                cont = rt.generate([s], max_new_tokens=n, stop_at_eos=False)[0][len(s):]
                par, depth, toks = [-1] + list(range(n - 1)), list(range(n)), [s[-1]] + cont[:n - 1]
            off = len(ids)
            ids += toks
            pos += [len(s) - 1 + d for d in depth]
            slot += [len(s) - 1 + i for i in range(n)]
            seq += [r] * n
            parent += [p + off if p >= 0 else -1 for p in par]
            blocks_of.append((off, n))
        n_all = len(ids)
        mask = torch.zeros(n_all, n_all, dtype=torch.bool)
        for off, n in blocks_of:
            for i in range(n):
                j = i
                while j >= 0:
                    mask[off + i, off + j] = True
                    j = parent[off + j] - off if parent[off + j] >= 0 else -1
        acc, nxt, logits = rt.spec.verify(i64([ids]), i64(pos), i64(seq), table, *cache, i64(slot), mask,
                                          i64(parent), torch.zeros(n_all, 0), torch.tensor([0.0, 1.0, 0.0]),
                                          i64([step]))
        for r, (off, n) in enumerate(blocks_of):
            path = [off + i for i in range(n) if acc[off + i]]
            # the logits at the deepest accepted node are those of the full accepted sequence
            full = seqs[r] + [ids[i] for i in path[1:]]
            ref = rt.logits(torch.tensor([full]))[0, -1]
            torch.testing.assert_close(logits[0, path[-1]], ref, atol=1e-4, rtol=1e-4)
            seqs[r] = full + [int(nxt[path[-1]])]
    # after all the rolled-back trees, a plain decode step sees exactly the committed sequences
    out = rt.decode_prog(i64([[s[-1] for s in seqs]]), i64([len(s) - 1 for s in seqs]), i64([0, 1]), table, *cache)
    for r, s in enumerate(seqs):
        torch.testing.assert_close(out[0][0, r], rt.logits(torch.tensor([s]))[0, -1], atol=1e-4, rtol=1e-4)
    rt.kv.release(blocks)


def _tree_mask(parent: list[int]) -> torch.Tensor:
    n = len(parent)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        j = i
        while j >= 0:
            mask[i, j] = True
            j = parent[j]
    return mask


@pytest.mark.parametrize("pipeline", ["default", "paged", "int8-kv"])
def test_every_tree_node_sees_exactly_its_ancestors_and_commit_keeps_the_accepted_path(pipeline):
    # Branching trees put nodes at slots above their positions (siblings share a depth, never a slot).
    # Every node's logits, accepted or not, must equal a fresh full forward over the committed sequence
    # and that node's ancestor path; so a verify that wrote keys and values at `pos` instead of `slot`
    # (siblings overwriting each other) fails here on the first branching tree. Greedy chains are hung
    # on a later branch of the root, so accepted paths sit at slots != positions and the commit must
    # move them; after each verify a plain decode step must see exactly the committed sequence.
    art = _compiled("llama-tiny", "ngram", pipeline)
    rt = art.runtime()
    g = torch.Generator().manual_seed(5)
    seqs = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (11, 26)]
    blocks = rt.kv.reserve([200, 200])
    kc, vc = rt.kv.tensors()
    cache = rt.kv.args()
    table = rt.kv.table(blocks)
    rt.prefill_logits(seqs, kc, vc, table)
    for s in seqs:
        s.append(int(torch.randint(3, 500, (1,), generator=g)))
    i64 = lambda x: torch.tensor(x, dtype=torch.long)
    checked = moved = 0
    for step in range(8):
        ids, pos, seq, slot, parent, runs = [], [], [], [], [], []
        for r, s in enumerate(seqs):
            n = 3 + int(torch.randint(0, 5, (1,), generator=g))
            par = [-1] + [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, n)]
            par[2] = 0  # the root has at least two children
            toks = [s[-1]] + torch.randint(3, 500, (n - 1,), generator=g).tolist()
            if step % 2 == 1:  # the greedy continuation as the root's last branch
                chain = rt.generate([s], max_new_tokens=3, stop_at_eos=False)[0][len(s):]
                for t in chain:
                    par.append(0 if len(par) == n else len(par) - 1)
                    toks.append(t)
            depth = [0] * len(par)
            for i in range(1, len(par)):
                depth[i] = depth[par[i]] + 1
            off = len(ids)
            ids += toks
            pos += [len(s) - 1 + d for d in depth]
            slot += [len(s) - 1 + i for i in range(len(par))]
            seq += [r] * len(par)
            parent += [q + off if q >= 0 else -1 for q in par]
            runs.append((off, par, toks))
        mask = torch.block_diag(*[_tree_mask(par) for _, par, _ in runs])
        acc, nxt, logits = rt.spec.verify(i64([ids]), i64(pos), i64(seq), table, *cache, i64(slot), mask,
                                          i64(parent), torch.zeros(len(ids), 0), torch.tensor([0.0, 1.0, 0.0]),
                                          i64([100 + step]))
        assert logits.shape == (1, len(ids), rt.vocab_size)
        for r, (off, par, toks) in enumerate(runs):
            # one fresh forward per leaf covers every node on its path
            leaves = [i for i in range(len(par)) if i not in par]
            seen = set()
            for leaf in leaves:
                path = [leaf]
                while par[path[-1]] >= 0:
                    path.append(par[path[-1]])
                path.reverse()
                ref = rt.logits(torch.tensor([seqs[r] + [toks[i] for i in path[1:]]]))[0, len(seqs[r]) - 1:]
                for d, node in enumerate(path):
                    if node not in seen:
                        seen.add(node)
                        where = f"step {step}, sequence {r}, node {node} (parent {par[node]})"
                        torch.testing.assert_close(logits[0, off + node], ref[d], atol=1e-4, rtol=1e-4,
                                                   msg=lambda m, where=where: f"{where}: {m}")
            assert seen == set(range(len(par)))
            checked += len(seen)
            path = [i for i in range(len(par)) if acc[off + i]]
            moved += sum(pos[off + i] != slot[off + i] for i in path)
            seqs[r] = seqs[r] + [toks[i] for i in path[1:]] + [int(nxt[off + path[-1]])]
        # the cache holds exactly the committed sequences: a decode step of each last token agrees
        out = rt.decode_prog(i64([[s[-1] for s in seqs]]), i64([len(s) - 1 for s in seqs]), i64([0, 1]), table,
                             *cache)
        for r, s in enumerate(seqs):
            torch.testing.assert_close(out[0][0, r], rt.logits(torch.tensor([s]))[0, -1], atol=1e-4, rtol=1e-4)
    assert checked > 40 and moved > 0  # accepted nodes were moved from their slots by the commit
    rt.kv.release(blocks)


# -- the pass: IR, choices, errors -----------------------------------------------------------

def test_verify_program_and_manifest(tmp_path):
    art = _compiled("llama-tiny", "ngram")
    verify = art.module["verify"]
    names = [op.name for op in verify.ops]
    assert names.count("kiln.cache_tree_attention") == 2 and "kiln.cache_attention" not in names
    assert names.count("kiln.tree_accept") == 1 and names.count("kiln.cache_commit") == 2
    assert [a.hint for a in verify.args][-6:] == ["slot", "tree_mask", "parent", "draft_q", "sampling", "seed"]
    art.save(tmp_path / "a.kiln")
    loaded = kiln.load(tmp_path / "a.kiln")
    spec = loaded.manifest["model"]["speculative"]
    assert spec["drafter"] == "ngram" and spec["tree_nodes"] == 8 and "prompt-lookup" in spec["policy"]
    assert loaded.runtime().spec is not None


@pytest.mark.parametrize("drafter", ["model", "self"])
def test_a_model_drafters_round_is_one_program(drafter, tmp_path):
    art = _compiled(TARGET, DRAFT if drafter == "model" else drafter)
    step = art.module["spec_step"]
    names = [op.name for op in step.ops]
    k = art.module.meta["speculative"]["k"]
    assert names.count("kiln.draft_pick") == k and names.count("kiln.chain_tree") == 1
    assert names.count("kiln.tree_accept") == 1 and "kiln.cache_commit" in names
    assert art.module.meta["speculative"]["fused_step"] is True
    art.save(tmp_path / "a.kiln")  # the program's text (symbolic sizes like 9*B) parses back
    rt = kiln.load(tmp_path / "a.kiln").runtime()
    plain = art.runtime(speculative=False)
    prompts = _prompts(rt, 2)
    assert rt.generate(prompts, max_new_tokens=30, stop_at_eos=False) == \
        plain.generate(prompts, max_new_tokens=30, stop_at_eos=False)
    st = rt.last_stats
    # every round with room for k drafted tokens ran as one spec_step call; the last few fell back
    assert 0 < st["fused_rounds"] <= st["verify_calls"] and st["verify_calls"] - st["fused_rounds"] <= 2 * k


def test_self_drafter_skips_measured_layers_and_shares_weights():
    art = _compiled(TARGET, "self", spec_skip=2)
    info = art.module.meta["speculative"]
    assert len(info["skip_layers"]) == 2 and art.module.meta["draft_kv_cache"]["layers"] == 4
    assert 0 < info["agreement"] <= 1 and info["search"][0]["agreement"] >= info["agreement"]
    layers = {op.attrs["layer"] for op in art.module["draft_decode"].walk("kiln.cache_attention")}
    assert layers == {0, 1, 2, 3}
    used = {op.attrs["name"] for op in art.module["draft_decode"].walk("kiln.weight")}
    assert used <= set(art.module.weights) and not any(n.startswith("draft.") for n in art.module.weights)
    for layer in info["skip_layers"]:
        assert not any(f"layers.{layer}." in n for n in used)


def test_skip_layers_matches_a_model_without_those_layers():
    from kiln.codegen.cpu import CpuProgram
    from kiln.frontend.loader import load_model

    art = _compiled(TARGET, None)
    fwd = art.module["forward"].clone()
    skip_layers(fwd, {1, 3})
    hf = load_model(TARGET).model
    hf.model.layers = torch.nn.ModuleList([m for i, m in enumerate(hf.model.layers) if i not in (1, 3)])
    hf.config.num_hidden_layers = len(hf.model.layers)
    for i, m in enumerate(hf.model.layers):
        m.self_attn.layer_idx = i
    ids = torch.randint(0, 4096, (1, 40), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(CpuProgram(fwd, art.module.weights)(ids)[0], hf(input_ids=ids).logits,
                                   atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"draft": "gpt2-tiny", "model": "examples/models/kiln-code-target"}, "vocabulary"),
    ({"draft": "ngram", "spec_k": 0}, "draft length"),
    ({"draft": "ngram", "spec_tree": 999}, "tree"),
    ({"draft": "self", "spec_skip": 9}, "skip"),
    ({"draft": None, "spec_k": 3}, "need --draft"),
    ({"draft": "ngram", "pipeline": "cleanup"}, "kv-cache"),
    ({"draft": "", "spec_k": 3}, "--draft needs"),
])
def test_bad_speculative_options_are_clear_errors(kw, msg):
    kw = dict(kw)
    model = kw.pop("model", "llama-tiny")
    with pytest.raises(KilnError, match=msg):
        kiln.compile(model, **kw)


def test_cli_compile_run_reports_acceptance(tmp_path, capsys):
    from kiln.cli import main

    out = tmp_path / "s.kiln"
    assert main(["compile", TARGET, "-o", str(out), "--draft", "ngram", "-q"]) == 0
    assert "speculative: ngram drafter" in capsys.readouterr().out
    assert main(["run", str(out), "--prompt", "def add(a, b):\n    return a + b\n\n\ndef ", "--max-new-tokens", "24",
                 "--json", "--ignore-eos"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["new_tokens"] == 24 and rec["accepted_per_verify"] >= 1.0 and rec["verify_calls"] >= 1
    assert main(["run", str(out), "--prompt", "x = 1", "--max-new-tokens", "4", "--json", "--no-speculative"]) == 0
    assert "accepted_per_verify" not in json.loads(capsys.readouterr().out)
    assert main(["dump", str(out), "--program", "verify"]) == 0
    assert '"kiln.tree_accept"' in capsys.readouterr().out


@pytest.mark.parametrize("draft", ["ngram", "mistral-tiny"])
def test_kiln_bench_on_a_speculative_artifact(tmp_path, capsys, draft):
    from kiln.cli import main

    out = tmp_path / "b.kiln"
    assert main(["compile", "llama-tiny", "-o", str(out), "--draft", draft, "-q"]) == 0
    capsys.readouterr()
    assert main(["bench", str(out), "--prompt-len", "16", "--new-tokens", "8", "--repeats", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["drafter"] == ("ngram" if draft == "ngram" else "model")
    assert r["baseline"] == ("hf prompt lookup" if draft == "ngram" else "hf assisted")
    assert r["greedy_tokens_match"] and r["kiln_tokens_per_s"] > 0 and r["baseline_tokens_per_s"] > 0
    assert set(r["contenders"]) >= {"kiln speculative", "kiln plain", "hf"}
    assert main(["bench", str(out), "--baseline", "torch-compile"]) == 1
    assert "benchmarked against hf" in capsys.readouterr().err


def test_chain_tree_packs_chains_like_the_runtime_does():
    from kiln.ir.registry import lookup

    k, v = 3, 5
    roots, root_pos, seqs = torch.tensor([4, 9]), torch.tensor([10, 2]), torch.tensor([1, 0])
    toks = [torch.tensor([11 + i, 21 + i]) for i in range(k)]
    qs = [torch.rand(2, v) for _ in range(k)]
    ids, pos, seq, slot, mask, parent, q = lookup("kiln.chain_tree").reference(None, roots, root_pos, seqs, *toks,
                                                                               *qs, k=k)
    assert ids.tolist() == [[4, 11, 12, 13, 9, 21, 22, 23]]
    assert pos.tolist() == slot.tolist() == [10, 11, 12, 13, 2, 3, 4, 5]
    assert seq.tolist() == [1] * 4 + [0] * 4 and parent.tolist() == [-1, 0, 1, 2, -1, 4, 5, 6]
    want = torch.zeros(8, 8, dtype=torch.bool)
    for lo in (0, 4):
        want[lo:lo + 4, lo:lo + 4] = torch.ones(4, 4, dtype=torch.bool).tril()
    assert torch.equal(mask, want)
    assert torch.equal(q[0], torch.zeros(v)) and torch.equal(q[5], qs[0][1]) and torch.equal(q[3], qs[2][0])


def test_the_speculative_strategy_imports_without_the_runtime():
    # no import cycle: kiln.runtime.speculative never imports kiln.runtime.generate (not even lazily);
    # the runtime drives it through the strategy protocol and the request state
    import subprocess
    import sys

    code = ("import sys; sys.modules['kiln.runtime.generate'] = None\n"
            "import kiln.runtime.speculative as s, kiln.runtime.decoding, kiln.runtime.state\n"
            "assert all(hasattr(s.SpecDecoder, m) for m in ('reserve', 'begin', 'step', 'end', 'report'))\n"
            "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    import ast

    tree = ast.parse((Path(__file__).resolve().parents[1] / "kiln" / "runtime" / "speculative.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any("generate" in (m or "") for m in imported), imported  # top-level or inside functions
