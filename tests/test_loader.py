"""Loading Hugging Face model directories, and every way one can be wrong."""

from __future__ import annotations

import json

import pytest
import torch

from kiln.errors import KilnError
from kiln.frontend import import_model
from kiln.frontend.loader import load_model
from kiln.frontend.presets import byte_tokenizer


def _save_qwen2(path, **extra):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=1, vocab_size=300, max_position_embeddings=256,
                      tie_word_embeddings=False, **extra)
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg).eval()
    model.save_pretrained(path)
    (path / "tokenizer.json").write_text(byte_tokenizer().to_str())
    return model


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "qwen2-linear-rope"
    model = _save_qwen2(path, rope_scaling={"rope_type": "linear", "factor": 2.0})
    return path, model


def test_hf_directory_with_scaled_rope(hf_dir):
    path, model = hf_dir
    imp = import_model(str(path))
    assert imp.loaded.family == "qwen2"
    assert "tokenizer.json" in imp.loaded.tokenizer_files
    from kiln.codegen.cpu import CpuProgram

    prog = CpuProgram(imp.module["forward"], imp.module.weights)
    for b, t in [(1, 1), (2, 7), (1, 128)]:
        ids = torch.randint(0, 300, (b, t))
        with torch.no_grad():
            err = (prog(ids)[0] - model(input_ids=ids).logits).abs().max().item()
        assert err <= 1e-4


def test_yarn_scaling_attention_factor(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=100, max_position_embeddings=512,
                      rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128})
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    imp = import_model(str(tmp_path))
    cos = [op for op in imp.module["forward"].ops if op.name == "kiln.rope_cos"]
    assert cos and cos[0].attrs["scale"] != 1.0  # yarn's attention factor was recognised
    from kiln.codegen.cpu import CpuProgram

    ids = torch.randint(0, 100, (2, 40))
    err = (CpuProgram(imp.module["forward"], imp.module.weights)(ids)[0] - imp.loaded.model(input_ids=ids).logits)
    assert err.abs().max().item() <= 1e-4


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_path():
    with pytest.raises(KilnError, match="not a directory and not a preset"):
        load_model("/nonexistent/model")


def test_unknown_preset_name_is_a_missing_path():
    with pytest.raises(KilnError, match="kiln presets"):
        load_model("llama-9000")


def test_missing_config(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    (d / "config.json").unlink()
    with pytest.raises(KilnError, match="no config.json"):
        load_model(str(d))


def test_corrupt_config(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    (d / "config.json").write_text("{ not json")
    with pytest.raises(KilnError, match="not valid JSON"):
        load_model(str(d))


def test_unsupported_architecture(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="bert", architectures=["BertForMaskedLM"])
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KilnError, match="unsupported architecture BertForMaskedLM.*llama, mistral, qwen2, gpt2"):
        load_model(str(d))


def test_dynamic_rope_is_refused(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(KilnError, match="dynamic"):
        load_model(str(d))


def test_no_weights(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(KilnError, match="no \\*.safetensors"):
        load_model(str(d))


def test_corrupt_weights(hf_dir, tmp_path):
    d = _copy(hf_dir[0], tmp_path / "m")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(KilnError, match="not a readable safetensors file"):
        load_model(str(d))


def test_weights_missing_a_tensor(hf_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    d = _copy(hf_dir[0], tmp_path / "m")
    tensors = load_file(str(d / "model.safetensors"))
    tensors.pop("model.layers.0.mlp.down_proj.weight")
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(KilnError, match="lack 1 weights.*down_proj"):
        load_model(str(d))


def test_gpt2_style_tokenizer_files_are_converted(tmp_path):
    """vocab.json + merges.txt (no tokenizer.json) become a tokenizer.json in the artifact."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "Ġ": 5, "Ġa": 6}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na b\nĠ a\n")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=7, n_positions=64)).save_pretrained(tmp_path)
    lm = load_model(str(tmp_path))
    assert "tokenizer.json" in lm.tokenizer_files
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(lm.tokenizer_files["tokenizer.json"].decode())
    assert tok.encode("ab a").ids == [4, 6]


def test_bf16_checkpoint_compiles_in_float32(tmp_path):
    """A checkpoint stored in bfloat16 loads in float32 and matches the float32 upcast of the same weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=100, max_position_embeddings=128)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    model.save_pretrained(tmp_path)
    imp = import_model(str(tmp_path))
    assert all(w.dtype == torch.float32 for w in imp.module.weights.values())
    ids = torch.randint(0, 100, (1, 12))
    from kiln.codegen.cpu import CpuProgram

    with torch.no_grad():
        ref = model.float()(input_ids=ids).logits
    out = CpuProgram(imp.module["forward"], imp.module.weights)(ids)[0]
    assert (out - ref).abs().max().item() <= 1e-4


def _llama_variant():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                                        max_position_embeddings=128, attention_bias=True, mlp_bias=True))


def _qwen2_mha():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4, vocab_size=100,
                                        max_position_embeddings=128))


def _gpt2_layer_scaled():
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=2, vocab_size=100, n_positions=128,
                                      scale_attn_by_inverse_layer_idx=True, activation_function="gelu"))


@pytest.mark.parametrize("make", [_llama_variant, _qwen2_mha, _gpt2_layer_scaled],
                         ids=["llama-biases", "qwen2-mha", "gpt2-layer-scaled-erf-gelu"])
def test_architecture_variants(make, tmp_path):
    """Config variants of the supported families: biases everywhere, no GQA, per-layer attention scale."""
    import kiln

    torch.manual_seed(0)
    model = make().eval()
    model.save_pretrained(tmp_path)
    art = kiln.compile(str(tmp_path))
    assert art.manifest["generic_ops"] == {}
    ids = torch.randint(0, 100, (2, 17))
    with torch.no_grad():
        err = (art.runtime().logits(ids) - model(input_ids=ids).logits).abs().max().item()
    assert err <= 1e-4
