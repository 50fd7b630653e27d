"""The frontend against the models it came from: every supported family lifts
completely (no kiln.aten left), the recognised ops are there, and the lifted
IR's logits match transformers' within 1e-4 (float32) for batch 1 and 2 and
sequence lengths 1, 7 and 128 — before and after the default pipeline."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest
import torch
from conftest import imported

from kiln.codegen.cpu import CpuProgram
from kiln.passes.manager import PassManager, pipeline_passes

FAMILY_PRESETS = ["llama-tiny", "llama3-tiny", "mistral-tiny", "qwen2-tiny", "gpt2-tiny"]
SHAPES = [(1, 1), (2, 1), (1, 7), (2, 7), (1, 128), (2, 128)]

EXPECTED_OPS = {
    "llama": {"kiln.rms_norm", "kiln.rope", "kiln.rope_cos", "kiln.rope_sin", "kiln.attention", "kiln.silu",
              "kiln.embedding", "kiln.linear", "kiln.positions"},
    "gpt2": {"kiln.layer_norm", "kiln.gelu", "kiln.attention", "kiln.embedding", "kiln.linear", "kiln.positions"},
}


def _op_counts(module) -> Counter:
    return Counter(op.name for op in module["forward"].ops)


def _check_logits(module, model, vocab, seed):
    prog = CpuProgram(module["forward"], module.weights)
    g = torch.Generator().manual_seed(seed)
    for b, t in SHAPES:
        ids = torch.randint(0, vocab, (b, t), generator=g)
        with torch.no_grad():
            ref = model(input_ids=ids).logits
            out = prog(ids)[0]
        err = (out - ref).abs().max().item()
        assert out.shape == ref.shape
        assert err <= 1e-4, f"B={b} T={t}: max abs error {err}"
        assert torch.equal(out.argmax(-1), ref.argmax(-1))


@pytest.mark.parametrize("preset", FAMILY_PRESETS)
def test_lift_recognises_everything(preset):
    imp = imported(preset)
    counts = _op_counts(imp.module)
    assert "kiln.aten" not in counts, imp.generic_ops()
    assert imp.lift_report.unrecognised == []
    kind = "gpt2" if imp.loaded.family == "gpt2" else "llama"
    assert EXPECTED_OPS[kind] <= set(counts), set(counts)
    attn = [op for op in imp.module["forward"].ops if op.name == "kiln.attention"]
    assert attn and all(op.attrs["causal"] and len(op.operands) == 3 for op in attn)
    if kind == "llama":
        # grouped-query attention is kept: k has fewer heads than q
        assert attn[0].operands[1].type.shape[1] < attn[0].operands[0].type.shape[1]


@pytest.mark.parametrize("preset", FAMILY_PRESETS)
def test_logits_match_hf(preset):
    imp = imported(preset)
    _check_logits(imp.module, imp.loaded.model, imp.module.meta["vocab_size"], seed=zlib.crc32(preset.encode()))


@pytest.mark.parametrize("preset", FAMILY_PRESETS)
def test_logits_match_hf_after_default_pipeline(preset):
    imp = imported(preset)
    module = imp.module.clone()
    PassManager(pipeline_passes("default"), verify=True, keep_ir=False).run(module)
    _check_logits(module, imp.loaded.model, imp.module.meta["vocab_size"], seed=7)


def test_llama_125m_logits():
    imp = imported("llama-125m")
    c = imp.loaded.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.vocab_size) == \
        (768, 12, 12, 4, 32000)
    n = sum(w.numel() for w in imp.module.weights.values())
    assert 110e6 < n < 140e6
    assert "kiln.aten" not in _op_counts(imp.module)
    module = imp.module.clone()
    PassManager(pipeline_passes("default"), keep_ir=False).run(module)
    prog = CpuProgram(module["forward"], module.weights)
    for b, t in [(1, 7), (2, 128)]:
        ids = torch.randint(0, 32000, (b, t))
        with torch.no_grad():
            err = (prog(ids)[0] - imp.loaded.model(input_ids=ids).logits).abs().max().item()
        assert err <= 1e-4


def test_unknown_aten_op_stays_generic_and_still_runs(tmp_path):
    """An activation kiln has no op for (Mish) stays a kiln.aten op; the model compiles and matches."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import kiln

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=100, max_position_embeddings=128, hidden_act="mish")
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(tmp_path)
    art = kiln.compile(str(tmp_path))
    assert art.manifest["generic_ops"] == {"aten::mish.default": 1}
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        err = (art.runtime().logits(ids) - model(input_ids=ids).logits).abs().max().item()
    assert err <= 1e-4
    art.save(tmp_path / "mish.kiln")
    again = kiln.load(tmp_path / "mish.kiln")
    assert torch.equal(again.runtime().logits(ids), art.runtime().logits(ids))
