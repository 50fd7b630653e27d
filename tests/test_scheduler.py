"""The continuous-batching scheduler behind ``kiln serve`` (kiln/runtime/scheduler.py), without HTTP.

Sequences arrive while others run, prefill in chunks beside running decodes, get preempted when the
cache runs out and recompute later; through all of it every greedy sequence must produce exactly
the tokens ``Runtime.generate`` gives it alone, and every cache block must come back.
"""

from __future__ import annotations

import random

import pytest
import torch

import kiln
from kiln.errors import KilnError
from kiln.runtime.sampling import Sampling
from kiln.runtime.scheduler import Closed, QueueFull, Scheduler

_ARTS: dict = {}
GREEDY = Sampling(0.0, 0, 1.0)


def _art(preset: str, pipeline: str, draft: str | None = None):
    key = (preset, pipeline, draft)
    if key not in _ARTS:
        _ARTS[key] = kiln.compile(preset, pipeline=pipeline, draft=draft)
    return _ARTS[key]


class Sink:
    """Collects one sequence's events."""

    def __init__(self):
        self.tokens: list[int] = []
        self.end = None
        self.events = 0

    def __call__(self, ev):
        self.events += 1
        if ev[0] == "tokens":
            assert self.end is None, "tokens after the end"
            self.tokens += ev[1]
        else:
            assert self.end is None, "two ends"
            self.end = ev


def _prompts(n: int, vocab: int, lo: int = 2, hi: int = 90, seed: int = 0) -> list[list[int]]:
    r = random.Random(seed)
    return [[r.randrange(vocab) for _ in range(r.randint(lo, hi))] for _ in range(n)]


def _drain(sched: Scheduler, limit: int = 10_000) -> None:
    for _ in range(limit):
        if sched.idle():
            return
        sched.step()
    raise AssertionError("the scheduler did not finish")


@pytest.mark.parametrize("pipeline,cache_tokens", [("paged", 192), ("paged", None), ("default", None),
                                                   ("int8-kv", None)])
def test_staggered_arrivals_give_each_sequence_its_solo_tokens(pipeline, cache_tokens):
    art = _art("llama-tiny", pipeline)
    rt = art.runtime(cache_tokens=cache_tokens, cache_sequences=6)
    solo = art.runtime()
    prompts = _prompts(14, rt.vocab_size)
    news = [random.Random(i).randint(1, 40) for i in range(len(prompts))]
    want = [solo.generate([p], max_new_tokens=m, stop_at_eos=False)[0][len(p):] for p, m in zip(prompts, news)]
    sched = Scheduler(rt, max_batch=6, chunk_tokens=48)
    sinks = [Sink() for _ in prompts]
    for i, (p, m) in enumerate(zip(prompts, news)):  # arrivals between iterations
        sched.submit(p, m, GREEDY, set(), sinks[i])
        for _ in range(i % 3):
            sched.step()
    _drain(sched)
    assert [s.tokens for s in sinks] == want
    assert all(s.end == ("done", "length") for s in sinks)
    assert sched.blocks_used == 0 and sched.blocks_free == rt.kv.n_blocks
    if cache_tokens is not None:  # 12 blocks of 16 for up to 6 sequences of up to 129 positions
        assert sched.preemptions > 0


def test_a_long_prompt_is_prefilled_in_chunks_while_others_decode():
    art = _art("llama-tiny", "paged")
    rt = art.runtime(cache_sequences=4)
    sched = Scheduler(rt, max_batch=4, chunk_tokens=16)
    short, long = Sink(), Sink()
    sched.submit([7], 40, GREEDY, set(), short)  # a one-token prompt
    sched.step()  # the short prompt is prefilled: its first token
    assert len(short.tokens) == 1
    sched.submit(list(range(5, 200)), 4, GREEDY, set(), long)
    steps = 0
    while not long.tokens:
        before = len(short.tokens)
        sched.step()
        steps += 1
        assert len(short.tokens) == before + 1  # a token per iteration, while the prompt is prefilled
    assert steps == -(-195 // 15)  # 15 prompt tokens per iteration beside the one decode
    _drain(sched)
    assert sched.blocks_used == 0


@pytest.mark.parametrize("draft", ["ngram", "llama-tiny"])
def test_speculative_artifacts_decode_speculatively_per_sequence(draft):
    art = _art("llama-tiny", "paged", draft)
    rt = art.runtime()
    plain = art.runtime(speculative=False)
    assert rt.spec is not None
    r = random.Random(1)
    base = [r.randrange(rt.vocab_size) for _ in range(12)]
    prompts = [base * 3, base[:5] * 4, _prompts(1, rt.vocab_size, seed=3)[0], base[3:] * 5]  # repeats: n-gram hits
    want = [plain.generate([p], max_new_tokens=30, stop_at_eos=False)[0][len(p):] for p in prompts]
    sched = Scheduler(rt, max_batch=3, chunk_tokens=32)
    sinks = [Sink() for _ in prompts]
    for p, s in zip(prompts, sinks):
        sched.submit(p, 30, GREEDY, set(), s)
    _drain(sched)
    assert [s.tokens for s in sinks] == want
    assert sched.blocks_used == 0
    assert rt.spec.stats["verify_calls"] > 0
    # a round hands out several tokens at once when drafts are accepted: fewer events than tokens
    assert sum(s.events for s in sinks) < sum(len(s.tokens) for s in sinks) + len(sinks)


def test_seeded_sampling_gives_the_offline_tokens():
    art = _art("llama-tiny", "paged")
    rt = art.runtime()
    prompt = _prompts(1, rt.vocab_size, seed=5)[0]
    offline = rt.generate([prompt], max_new_tokens=25, temperature=0.9, top_p=0.95, seed=1234,
                          stop_at_eos=False)[0][len(prompt):]
    sched = Scheduler(rt, max_batch=4)
    sinks = [Sink(), Sink()]
    sched.submit(prompt, 25, Sampling(0.9, 0, 0.95, torch.Generator().manual_seed(1234)), set(), sinks[0])
    sched.submit(prompt[::-1], 25, Sampling(0.9, 0, 0.95, torch.Generator().manual_seed(99)), set(), sinks[1])
    _drain(sched)
    assert sinks[0].tokens == offline


def test_stop_tokens_end_a_sequence_and_cancel_frees_its_blocks():
    art = _art("llama-tiny", "paged")
    rt = art.runtime()
    prompt = _prompts(1, rt.vocab_size, seed=7)[0]
    ref = rt.generate([prompt], max_new_tokens=20, stop_at_eos=False)[0][len(prompt):]
    sched = Scheduler(rt, max_batch=4)
    stopped, cancelled = Sink(), Sink()
    sched.submit(prompt, 20, GREEDY, {ref[5]}, stopped)
    seq = sched.submit(prompt, 200, GREEDY, set(), cancelled)
    for _ in range(3):
        sched.step()
    assert sched.blocks_used > 0
    sched.cancel(seq)
    _drain(sched)
    assert stopped.tokens == ref[:ref.index(ref[5]) + 1] and stopped.end == ("done", "stop")
    assert cancelled.end is None and len(cancelled.tokens) == 3  # no events after the cancel
    assert sched.blocks_used == 0


def test_refusals_before_any_work():
    art = _art("llama-tiny", "paged")
    rt = art.runtime(cache_tokens=64)
    sched = Scheduler(rt, max_batch=2, max_queue=2)
    with pytest.raises(KilnError, match="context"):
        sched.submit([1] * (rt.max_positions - 3), 4, GREEDY, set(), Sink())
    with pytest.raises(KilnError, match="blocks"):  # fits the context, never the 64-token cache
        sched.submit([1] * 60, 10, GREEDY, set(), Sink())
    with pytest.raises(KilnError, match="max_tokens"):
        sched.submit([1, 2], 0, GREEDY, set(), Sink())
    for _ in range(4):  # two free batch slots + a queue of two
        sched.submit([1, 2], 3, GREEDY, set(), Sink())
    with pytest.raises(QueueFull):
        sched.submit([1, 2], 3, GREEDY, set(), Sink())
    sched.close()
    with pytest.raises(Closed):
        sched.submit([1, 2], 3, GREEDY, set(), Sink())
    _drain(sched)
    with pytest.raises(KilnError, match="max-batch"):
        Scheduler(rt, max_batch=0)
    with pytest.raises(KilnError, match="chunk-tokens"):
        Scheduler(rt, max_batch=8, chunk_tokens=4)
    with pytest.raises(KilnError, match="KV cache"):
        Scheduler(kiln.compile("llama-tiny", passes=["cse"]).runtime())


def test_a_failing_batch_fails_its_sequences_and_the_engine_goes_on():
    art = _art("llama-tiny", "paged")
    rt = art.runtime()
    sched = Scheduler(rt, max_batch=4)
    real = rt.decode_prog
    calls = []

    def broken(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(*args)

    rt.decode_prog = broken
    a, b = Sink(), Sink()
    sched.submit([1, 2, 3], 5, GREEDY, set(), a)
    sched.submit([4, 5], 5, GREEDY, set(), b)
    _drain(sched)
    assert a.end == ("error", "RuntimeError: boom") and b.end == ("error", "RuntimeError: boom")
    assert sched.blocks_used == 0
    c = Sink()
    sched.submit([1, 2, 3], 5, GREEDY, set(), c)
    _drain(sched)
    assert c.end == ("done", "length") and len(c.tokens) == 5


@pytest.mark.parametrize("layout", ["paged", "contiguous"])
def test_batched_decode_attention_matches_the_reference(layout):
    """The CPU kernel for a batch of decoding sequences (kiln/codegen/cpu_attention.py) against the
    per-sequence reference: ragged lengths, GQA, shuffled blocks, rows of the table in any order,
    decoding queries mixed with prompt chunks, unused cache positions poisoned with huge values
    (they must get zero weight)."""
    from kiln.codegen.cpu_attention import cache_attention_batched
    from kiln.ir.ops import _cache_attention_ref

    r = random.Random(layout)
    for kvh, group, d in ((1, 4, 16), (2, 2, 8), (4, 1, 32), (2, 3, 64)):
        bs, pool, width = (16, 64, 6) if layout == "paged" else (96, 12, 1)
        kc = torch.full((2, pool, kvh, bs, d), 1e30)
        vc = torch.full((2, pool, kvh, bs, d), -1e30)
        n = 7
        free = list(range(pool))
        r.shuffle(free)
        table = torch.full((n + 2, width), pool, dtype=torch.long)  # past the pool, as KVAllocator.table pads
        lengths = [r.randint(1, width * bs) for _ in range(n + 2)]
        for s, length in enumerate(lengths):
            blocks = [free.pop() for _ in range(-(-length // bs))]
            table[s, :len(blocks)] = torch.tensor(blocks)
            for p in range(length):
                b, o = blocks[p // bs], p % bs
                kc[1, b, :, o], vc[1, b, :, o] = torch.randn(kvh, d), torch.randn(kvh, d)
        rows = r.sample(range(n + 2), n)
        seq, pos = [], []
        for k, s in enumerate(rows):  # every third sequence brings its last few positions (a prompt chunk)
            take = min(lengths[s], 1 if k % 3 else 5)
            seq += [s] * take
            pos += range(lengths[s] - take, lengths[s])
        seq, pos = torch.tensor(seq), torch.tensor(pos)
        q = torch.randn(1, kvh * group, len(seq), d)
        want = _cache_attention_ref(None, q, kc, vc, pos, seq, table, layer=1, scale=d ** -0.5, layout=layout)
        got = cache_attention_batched(None, q, kc, vc, pos, seq, table, layer=1, scale=d ** -0.5, layout=layout)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_logprobs_are_the_models_distribution():
    art = _art("llama-tiny", "paged")
    rt = art.runtime()
    prompts = _prompts(3, rt.vocab_size, seed=11)
    sched = Scheduler(rt, max_batch=4, chunk_tokens=32)
    got = []
    for p in prompts:
        events = []
        sched.submit(p, 6, GREEDY, set(), events.append, logprobs=3)
        got.append(events)
    _drain(sched)
    for p, events in zip(prompts, got):
        toks = [t for ev in events if ev[0] == "tokens" for t in ev[1]]
        lps = [x for ev in events if ev[0] == "tokens" for x in ev[2]]
        ref = torch.log_softmax(rt.logits([p + toks])[0], -1)
        for i, (t, (lp, alts)) in enumerate(zip(toks, lps)):
            assert abs(lp - float(ref[len(p) - 1 + i, t])) < 1e-4
            assert len(alts) == 3 and alts[0][0] == t  # greedy picks the likeliest
            assert [a for a, _ in alts] == ref[len(p) - 1 + i].topk(3).indices.tolist()
    with pytest.raises(KilnError, match="logprobs"):
        sched.submit([1, 2], 3, GREEDY, set(), Sink(), logprobs=99)
    spec = _art("llama-tiny", "paged", "ngram").runtime()
    with pytest.raises(KilnError, match="speculative"):
        Scheduler(spec).submit([1, 2], 3, GREEDY, set(), Sink(), logprobs=1)


def test_the_queue_limit_counts_only_what_waits_beyond_free_slots():
    art = _art("llama-tiny", "paged")
    rt = art.runtime(cache_sequences=16)
    sched = Scheduler(rt, max_batch=8, max_queue=2)
    sinks = [Sink() for _ in range(10)]
    for s in sinks:  # an idle server takes a full batch and its queue at once
        sched.submit([3, 4, 5], 4, GREEDY, set(), s)
    with pytest.raises(QueueFull):
        sched.submit([3, 4, 5], 4, GREEDY, set(), Sink())
    sched.step()
    assert len(sched.running) == 8 and sched.queue_depth == 2
    _drain(sched)
    assert all(s.end == ("done", "length") for s in sinks)


def test_a_contiguous_cache_runs_one_sequence_per_row():
    art = _art("llama-tiny", "default")
    rt = art.runtime(cache_sequences=4)
    assert rt.kv.layout == "contiguous" and rt.kv.n_blocks == 4
    sched = Scheduler(rt, max_batch=8)
    for i in range(6):
        sched.submit([1 + i, 2, 3], 5, GREEDY, set(), Sink())
    sched.step()
    assert len(sched.running) == 4 and sched.blocks_free == 0 and sched.queue_depth == 2
    _drain(sched)
    assert sched.blocks_used == 0


def test_a_sampling_failure_fails_only_its_sequence():
    art = _art("llama-tiny", "paged")
    rt = art.runtime()
    sched = Scheduler(rt, max_batch=4)

    class Broken(Sampling):
        def pick(self, logits):
            raise RuntimeError("bad draw")

    bad, good = Sink(), Sink()
    sched.submit([1, 2, 3], 5, Broken(0.5, 0, 1.0), set(), bad)
    sched.submit([4, 5, 6], 5, GREEDY, set(), good)
    _drain(sched)
    assert bad.end == ("error", "RuntimeError: bad draw") and good.end == ("done", "length")
    assert sched.blocks_used == 0
