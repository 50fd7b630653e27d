"""The runtime: greedy generation against transformers' generate, sampling
reproducibility and distribution, and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

import kiln
from kiln.errors import KilnError
from kiln.runtime.generate import sample_next


@pytest.mark.parametrize("preset", ["llama-tiny", "gpt2-tiny", "qwen2-tiny"])
def test_greedy_matches_hf_generate(preset, tmp_path):
    art = kiln.compile(preset)
    art.save(tmp_path / "a.kiln")
    rt = kiln.load(tmp_path / "a.kiln").runtime()
    from kiln.frontend.presets import build_preset

    model, _ = build_preset(preset)
    ids = torch.randint(3, 500, (1, 6), generator=torch.Generator().manual_seed(3))
    ours = rt.generate(ids, max_new_tokens=24, stop_at_eos=False)
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=24, min_new_tokens=24, do_sample=False, use_cache=False,
                             pad_token_id=0, attention_mask=torch.ones_like(ids))
    assert torch.equal(ours, ref)


def test_batch_generation_equals_single(tiny_artifact):
    rt = kiln.load(tiny_artifact).runtime()
    ids = torch.randint(3, 500, (2, 5))
    both = rt.generate(ids, max_new_tokens=6, stop_at_eos=False)
    for i in range(2):
        assert torch.equal(both[i], rt.generate(ids[i:i + 1], max_new_tokens=6, stop_at_eos=False)[0])


def test_sampling_is_reproducible_with_a_seed(tiny_artifact):
    rt = kiln.load(tiny_artifact).runtime()
    ids = torch.tensor([[5, 6, 7]])
    a = rt.generate(ids, max_new_tokens=10, temperature=1.0, seed=11, stop_at_eos=False)
    b = rt.generate(ids, max_new_tokens=10, temperature=1.0, seed=11, stop_at_eos=False)
    c = rt.generate(ids, max_new_tokens=10, temperature=1.0, seed=12, stop_at_eos=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampled_distribution_is_softmax_over_temperature():
    # Pearson chi-square on 6 outcomes (5 degrees of freedom); 20.5 is the 0.999 quantile.
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    t = 0.7
    p = torch.softmax(logits[0] / t, -1)
    g = torch.Generator().manual_seed(1234)
    n = 20000
    counts = torch.zeros(6)
    for _ in range(n // 500):
        draws = sample_next(logits.expand(500, -1), t, 0, 1.0, g)
        counts += torch.bincount(draws, minlength=6).float()
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert chi2 < 20.5, (counts, n * p)


def test_top_k_and_top_p_restrict_support():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    k = sample_next(logits.expand(2000, -1), 1.0, 2, 1.0, g)
    assert set(k.tolist()) == {0, 1}
    p0 = torch.softmax(logits[0], -1)
    assert p0[0] < 0.7 < p0[0] + p0[1]
    pp = sample_next(logits.expand(2000, -1), 1.0, 0, 0.7, g)
    assert set(pp.tolist()) == {0, 1}
    assert math.isclose(float((pp == 0).float().mean()), float(p0[0] / (p0[0] + p0[1])), abs_tol=0.05)


def test_runtime_argument_checks(tiny_artifact):
    rt = kiln.load(tiny_artifact).runtime()
    with pytest.raises(KilnError, match="token ids must be in"):
        rt.logits(torch.tensor([[1, 100000]]))
    with pytest.raises(KilnError, match="length >= 1"):
        rt.logits(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(KilnError, match="exceeds the model's context"):
        rt.generate(torch.tensor([[1, 2]]), max_new_tokens=511)
    with pytest.raises(KilnError, match="top-k"):
        rt.generate(torch.tensor([[1, 2]]), top_k=-1)


# -- the generation loop and its strategies -------------------------------------------------------

def test_request_commit_cuts_at_a_stop_token_and_at_max_new():
    from kiln.runtime.sampling import Sampling
    from kiln.runtime.state import Request

    req = Request([[1, 2], [3]], max_new=4, stops={9}, sampling=Sampling(0.0, 0, 1.0))
    assert req.waiting() == [0, 1] and req.hand_out() is None
    assert req.commit(0, [5, 9, 6]) == 2 and req.done[0]  # cut after the stop token
    assert req.commit(1, [7, 7, 7, 7, 7, 7]) == 4 and req.done[1]  # cut at max_new
    assert req.tokens == [[1, 2, 5, 9], [3, 7, 7, 7, 7]] and req.made == [2, 4]
    assert req.waiting() == []
    steps = []
    while (step := req.hand_out()) is not None:
        steps.append(step)
    assert steps == [[5, 7], [9, 7], [None, 7], [None, 7]]


class _ChunkStrategy:
    """A test strategy: three made-up tokens per waiting sequence per step, over the plain reservation."""

    def __init__(self, plain):
        self.plain, self.calls = plain, []

    def reserve(self, request):
        return self.plain.reserve(request)

    def begin(self, request):
        request.stats = {"rounds": 0}

    def step(self, request, active):
        self.calls.append(list(active))
        request.stats["rounds"] += 1
        for s in active:
            request.commit(s, [100 + s, 200 + s, 300 + s])

    def end(self, request):
        self.calls.append("end")

    def report(self, request):
        return {"rounds": request.stats["rounds"]}


def test_the_generation_loop_drives_any_strategy(tiny_artifact):
    # the loop prefills, commits the first tokens, asks the strategy for more only when a sequence has
    # none left, hands them out one per sequence per step and reports the strategy's stats
    rt = kiln.load(tiny_artifact).runtime()
    prompts = [[5, 6, 7], [8, 9]]
    first = [o[len(p)] for o, p in zip(rt.generate(prompts, max_new_tokens=1, stop_at_eos=False), prompts)]
    rt.spec = strategy = _ChunkStrategy(rt.plain)
    out = list(rt.stream_batch(prompts, max_new_tokens=6, stop_ids=[201], stop_at_eos=False))
    assert out == [first, [100, 101], [200, 201], [300, None], [100, None], [200, None]]
    assert strategy.calls == [[0, 1], [0], "end"]
    assert set(rt.last_stats) == {"prefill_seconds", "decode_seconds", "rounds"} and rt.last_stats["rounds"] == 2
    assert rt.kv.free == list(range(rt.kv.n_blocks))  # the reservation was released
