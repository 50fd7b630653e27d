"""The comparison helpers of tests/_compare.py refuse what they exist to refuse."""

from __future__ import annotations

import pytest
import torch
from _compare import assert_greedy_match, assert_outputs_close, assert_sequence_match


def test_outputs_are_checked_for_count_shape_dtype_and_nan_before_values():
    a = torch.ones(2, 3)
    assert_outputs_close([a], [a.clone()], atol=0, rtol=0)
    with pytest.raises(AssertionError, match="1 outputs, expected 2"):
        assert_outputs_close([a], [a, a], atol=1, rtol=1)  # zip would have stopped at the shorter list
    with pytest.raises(AssertionError, match="shape"):
        assert_outputs_close([torch.ones(1, 3)], [a], atol=1, rtol=1)  # would broadcast
    with pytest.raises(AssertionError, match="dtype"):
        assert_outputs_close([a.double()], [a], atol=1, rtol=1)
    with pytest.raises(AssertionError, match="NaN"):
        assert_outputs_close([torch.full((2, 3), float("nan"))], [a], atol=1, rtol=1)
    with pytest.raises(AssertionError):
        assert_outputs_close([a + 1e-3], [a], atol=1e-5, rtol=0)


def test_greedy_tokens_may_differ_only_at_a_near_tie():
    ref = torch.tensor([[0.0, 5.0, 1.0], [2.0, 2.00001, 0.0], [0.0, 0.0, 9.0]])
    assert assert_greedy_match(ref, ref.clone(), [1, 1, 2], [1, 1, 2], atol=1e-4) == 3
    # a flip at the near tie of step 1 is allowed, and the comparison stops there
    assert assert_greedy_match(ref, ref + 1e-5, [1, 1, 2], [1, 0, 0], atol=1e-4) == 2
    with pytest.raises(AssertionError, match="not a near tie"):
        assert_greedy_match(ref, ref, [1, 1, 2], [2, 1, 2], atol=1e-4)
    with pytest.raises(AssertionError):  # logits must agree even where the tokens do
        assert_greedy_match(ref, ref + 1e-2, [1, 1, 2], [1, 1, 2], atol=1e-4)
    with pytest.raises(AssertionError, match="tokens, expected"):
        assert_greedy_match(ref, ref, [1, 1, 2], [1, 1], atol=1e-4)


def test_sequences_consult_the_logits_only_where_they_differ():
    table = torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 1.0], [1.0, 1.00001, 0.0]])  # next token by last token
    logits = lambda ids: table[ids[0]][None]
    assert_sequence_match([0, 2, 1, 2], [0, 2, 1, 2], 1, None, None)  # identical: no forward needed
    assert_sequence_match([0, 2, 1, 2], [0, 2, 0, 5], 1, logits, logits)  # step 1 is a near tie: stop there
    with pytest.raises(AssertionError, match="not a near tie"):
        assert_sequence_match([0, 2, 1, 2], [0, 1, 1, 2], 1, logits, logits)
    with pytest.raises(AssertionError, match="prompt"):
        assert_sequence_match([0, 2, 1, 2], [1, 2, 1, 2], 1, logits, logits)
