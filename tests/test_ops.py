"""Reference semantics of the transformer ops against independent formulas,
and shape rules that must refuse bad input."""

from __future__ import annotations

import math

import pytest
import torch

from kiln.ir import ExecContext, IRError, TensorType, lookup
from kiln.ir.core import Program
from kiln.ir.types import DType

CTX = ExecContext()


def ref(name, *args, **attrs):
    d = lookup(name)
    return d.reference(CTX, *args, **{**d.defaults, **attrs})


def _naive_attention(q, k, v, scale, causal):
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        t, n = q.shape[2], k.shape[2]
        i = torch.arange(t)[:, None] + (n - t)
        s = s.masked_fill(torch.arange(n)[None, :] > i, -math.inf)
    return torch.softmax(s, -1) @ v


@pytest.mark.parametrize("t,s", [(5, 5), (1, 9), (3, 8)])
@pytest.mark.parametrize("hq,hk", [(4, 4), (6, 2), (3, 1)])
def test_attention_gqa_and_bottom_right_causal(t, s, hq, hk):
    g = torch.Generator().manual_seed(t * 100 + s + hq)
    q = torch.randn(2, hq, t, 8, generator=g)
    k = torch.randn(2, hk, s, 8, generator=g)
    v = torch.randn(2, hk, s, 8, generator=g)
    for causal in (False, True):
        out = ref("kiln.attention", q, k, v, scale=0.3, causal=causal)
        torch.testing.assert_close(out, _naive_attention(q, k, v, 0.3, causal), atol=1e-5, rtol=1e-5)


def test_rope_matches_transformers():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 7, 16, generator=g), torch.randn(2, 2, 7, 16, generator=g)
    inv = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    pos = ref("kiln.positions", torch.zeros(2, 7, dtype=torch.long), offset=3)
    assert pos[1].tolist() == list(range(3, 10))
    cos, sin = ref("kiln.rope_cos", pos, inv, scale=1.0), ref("kiln.rope_sin", pos, inv, scale=1.0)
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(ref("kiln.rope", q, cos, sin), q_ref)
    torch.testing.assert_close(ref("kiln.rope", k, cos, sin), k_ref)


def test_rms_norm_matches_transformers():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    norm = LlamaRMSNorm(12, eps=1e-6)
    norm.weight.data = torch.randn(12)
    x = torch.randn(3, 5, 12)
    torch.testing.assert_close(ref("kiln.rms_norm", x, norm.weight.data, eps=1e-6), norm(x))


def test_shape_rules_refuse_bad_input():
    p = Program("f")
    x = p.add_arg(TensorType(DType.f32, ("B", "T", 64)))
    y = p.add_arg(TensorType(DType.f32, ("T", "B", 64)))
    w = p.add_arg(TensorType(DType.f32, (32, 48)))
    with pytest.raises(IRError, match="do not broadcast"):
        p.create("kiln.add", [x, y])
    with pytest.raises(IRError, match="does not match weight"):
        p.create("kiln.linear", [x, w])
    with pytest.raises(IRError, match="different number of elements"):
        p.create("kiln.reshape", [x], {"shape": ["B", 64]})
    ok = p.create("kiln.reshape", [x], {"shape": ["T*B", 64]})
    assert ok.result.type.shape == ("B*T", 64)
