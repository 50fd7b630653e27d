"""Drafters, checked on their own: the n-gram drafter proposes exactly what followed earlier matches,
and the fused draft model's sampled steps draw independently. Greedy output cannot see either kind of
bug (verification keeps the target's tokens), so end-to-end identity tests miss them."""

from __future__ import annotations

import random

import torch

from kiln.ir.ops_spec import _pick_ref
from kiln.runtime.speculative import LOOKUP_NGRAM, NgramDrafter


def _continuations(toks: list[int], n: int) -> set[int]:
    """End indices e of earlier occurrences of the last n tokens (toks[e-n:e] == toks[-n:], e < len)."""
    return {e for e in range(n, len(toks)) if toks[e - n:e] == toks[-n:]}


def test_prompt_lookup_drafts_what_followed_the_most_recent_match():
    d = NgramDrafter(k=4, nodes=0)
    toks = [5, 6, 7, 1, 2, 3, 9, 9, 1, 2, 3]
    st = d.start([toks])
    branches = d.lookup(st, 0, toks)
    assert branches[0] == [9, 9, 1, 2]  # after the earlier "1 2 3": the k tokens that followed it


def test_every_lookup_branch_continues_an_earlier_match_of_the_longest_suffix():
    rng = random.Random(0)
    for trial in range(300):
        toks = [rng.randrange(4) for _ in range(rng.randrange(2, 40))]
        k = rng.randrange(1, 9)
        d = NgramDrafter(k=k, nodes=0)
        st = d.start([toks])
        branches = d.lookup(st, 0, toks) or []
        longest = next((n for n in range(LOOKUP_NGRAM, 0, -1) if len(toks) >= n and _continuations(toks, n)), None)
        if longest is None:
            assert not branches, (trial, toks)
            continue
        ends = sorted(_continuations(toks, longest), reverse=True)
        assert branches, (trial, toks)
        assert branches[0] == toks[ends[0]:ends[0] + k], (trial, toks, branches)  # the most recent, k long
        for b in branches[1:]:
            assert any(b == toks[e:e + k // 2] for e in ends), (trial, toks, b)


def test_fused_draft_steps_draw_independently():
    """kiln.draft_pick seeds each step apart: with one seed for every step, a chain's draws would be
    perfectly correlated (the same uniform at each step), which biases sampled speculative output."""
    logits = torch.zeros(1, 1, 8)  # uniform over 8 tokens
    sampling = torch.tensor([1.0, 1.0, 0.0])
    same = 0
    n = 400
    for s in range(n):
        seed = torch.tensor([s])
        a = int(_pick_ref(None, logits, sampling, seed, step=0)[0])
        b = int(_pick_ref(None, logits, sampling, seed, step=1)[0])
        same += a == b
    assert same / n < 0.25, same / n  # independent draws agree 1/8 of the time


def test_two_requests_keep_their_own_ngram_tables():
    # per-request drafter state lives in the request (Request.draft), not in the shared drafter
    d = NgramDrafter(k=2, nodes=4)
    a = d.start([[1, 2, 3, 1, 2]])
    b = d.start([[7, 8, 9]])
    assert d.lookup(a, 0, [1, 2, 3, 1, 2]) == [[3, 1]]
    assert a.succ.get(7) is None and b.succ[7][0] == [8]
    d.observe(b, [9], torch.tensor([[0.0] * 9 + [5.0]]))
    assert 9 not in a.succ and b.succ[9][0][0] == 9
