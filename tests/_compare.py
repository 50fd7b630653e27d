"""Comparison helpers shared by the tests: structure (count, shape, dtype) before values, and the
tolerance rule for comparing greedy tokens across backends.

``assert_outputs_close`` refuses what ``for a, b in zip(got, want)`` lets through: a backend that
returns fewer outputs than the reference (zip stops at the shorter list), an output of another
shape that happens to broadcast, or another dtype.

``assert_greedy_match`` is the rule for greedy tokens from two backends (Triton vs the reference
executor, native kernels vs the reference, int8 cache vs its full-sequence reference, ...) on
models with random weights. Two correct backends differ by float rounding, so wherever the
reference's two best logits are closer than that rounding the argmax may legitimately flip, and
after a flip the sequences continue from different prefixes and are no longer comparable. So:

- the logits of both backends, taken on the *same* token sequence (the reference's), must agree
  to ``atol`` / ``rtol`` at every step;
- the greedy tokens must be identical at every step where the reference's top-2 gap exceeds
  ``margin``; at the first step where they differ, the reference's gap must be at most
  ``margin`` (a near tie) and the token the other backend chose must be within ``margin`` of the
  reference's best logit; the comparison of tokens stops there.

``margin`` defaults to ``MARGIN_PER_ATOL * atol``: if every logit of the two backends differs by at
most ``atol``, an argmax can only flip where the gap is below ``2 * atol``; the extra factor covers
the tokens being chosen by the cached decode program while the logits compared are those of a
full-sequence forward (a second source of rounding of the same size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MARGIN_PER_ATOL = 4.0


def assert_outputs_close(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], *, atol: float, rtol: float,
                         allow_nan: bool = False) -> None:
    """Same number of outputs, then per output the same shape and dtype, no NaN (outputs are poisoned with
    NaN by the Triton tests: a NaN left means an element was never written), then the values."""
    got, want = list(got), list(want)
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for i, (a, b) in enumerate(zip(got, want)):
        assert isinstance(a, torch.Tensor), f"output {i} is a {type(a).__name__}, not a tensor"
        assert a.shape == b.shape, f"output {i}: shape {tuple(a.shape)}, expected {tuple(b.shape)}"
        assert a.dtype == b.dtype, f"output {i}: dtype {a.dtype}, expected {b.dtype}"
        if not allow_nan:
            assert not torch.isnan(a).any(), f"output {i} has NaN (an element never written?)"
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=lambda m, i=i: f"output {i}: {m}")


def top2_gap(logits: torch.Tensor) -> torch.Tensor:
    """The gap between the two largest logits along the last dim."""
    top = torch.topk(logits.float(), 2, dim=-1).values
    return top[..., 0] - top[..., 1]


def assert_greedy_match(logits_a: torch.Tensor, logits_b: torch.Tensor, tokens_a: Sequence[int],
                        tokens_b: Sequence[int], *, atol: float = 1e-4, rtol: float = 1e-4,
                        margin: float | None = None) -> int:
    """Greedy tokens of backend B against reference A, by the rule in the module docstring.

    ``logits_a`` / ``logits_b``: [n, V], the logits each backend gives for the n generated steps when
    both are fed the reference's sequence (row t predicts token t); ``tokens_a`` / ``tokens_b``: the n
    greedy tokens each backend generated. Returns the number of steps whose tokens were compared."""
    margin = MARGIN_PER_ATOL * atol if margin is None else margin
    tokens_a, tokens_b = list(tokens_a), list(tokens_b)
    assert logits_a.shape == logits_b.shape, f"logits shape {tuple(logits_b.shape)}, expected {tuple(logits_a.shape)}"
    assert logits_a.dtype == logits_b.dtype, f"logits dtype {logits_b.dtype}, expected {logits_a.dtype}"
    assert logits_a.dim() == 2 and logits_a.shape[0] == len(tokens_a), \
        f"logits {tuple(logits_a.shape)} for {len(tokens_a)} generated tokens"
    torch.testing.assert_close(logits_b, logits_a, atol=atol, rtol=rtol)
    gap = top2_gap(logits_a)
    for t, (a, b) in enumerate(zip(tokens_a, tokens_b)):
        if a == b:
            continue
        assert gap[t] <= margin, (f"step {t}: token {b}, expected {a}; the reference's top-2 gap "
                                  f"{float(gap[t]):.3g} exceeds the margin {margin:.3g}: not a near tie")
        best = float(logits_a[t].max())
        assert float(logits_a[t, b]) >= best - margin, \
            f"step {t}: token {b} is {best - float(logits_a[t, b]):.3g} below the reference's best logit"
        return t + 1  # the sequences diverge here: later steps are not comparable
    assert len(tokens_a) == len(tokens_b), f"{len(tokens_b)} tokens, expected {len(tokens_a)}"
    return len(tokens_a)


def assert_sequence_match(want: Sequence[int], got: Sequence[int], prompt_len: int, ref_logits, other_logits, *,
                          atol: float = 1e-4, rtol: float = 1e-4, margin: float | None = None) -> None:
    """One greedy output ``got`` (prompt included) against the reference's ``want`` by the rule above;
    ``ref_logits`` / ``other_logits`` map ids [1, T] to logits [1, T, V] (a full-sequence forward of each
    backend) and are called only where the tokens differ."""
    want, got = list(want), list(got)
    assert got[:prompt_len] == want[:prompt_len], "the prompt was not kept"
    if got == want:
        return
    ids = torch.tensor([want[:-1]])
    with torch.no_grad():
        la, lb = ref_logits(ids)[0, prompt_len - 1:], other_logits(ids)[0, prompt_len - 1:]
    assert_greedy_match(la, lb, want[prompt_len:], got[prompt_len:], atol=atol, rtol=rtol, margin=margin)


def assert_generations_match(rt_ref, rt_other, prompts: Sequence[Sequence[int]], max_new_tokens: int, *,
                             atol: float = 1e-4, rtol: float = 1e-4, margin: float | None = None,
                             **kw) -> list[list[int]]:
    """Greedy-generate with both runtimes and check each prompt with ``assert_sequence_match``, the
    logits of both taken by a full-sequence forward (``rt.logits``) over the reference's output. Where
    the tokens are identical the logits are not needed (a slow backend's forward is skipped): the
    callers compare the backends' logits on their own inputs."""
    want = rt_ref.generate([list(p) for p in prompts], max_new_tokens=max_new_tokens, stop_at_eos=False, **kw)
    got = rt_other.generate([list(p) for p in prompts], max_new_tokens=max_new_tokens, stop_at_eos=False, **kw)
    assert len(got) == len(want)
    for p, a, b in zip(prompts, want, got):
        assert_sequence_match(a, b, len(p), rt_ref.logits, rt_other.logits, atol=atol, rtol=rtol, margin=margin)
    return want
