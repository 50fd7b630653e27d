"""Model presets: real architectures with seeded random weights.

Each preset is a Hugging Face config for a supported family; ``build_preset``
instantiates the transformers model with ``torch.manual_seed(seed)`` so the
same preset always has the same weights. Presets come with a byte-level
tokenizer (256 byte tokens plus ``<unk>``, ``<s>``, ``</s>``): ids above its
size decode to nothing, which is fine for random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kiln.errors import KilnError


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    description: str
    config: Callable[[], Any]


def _llama(**kw):
    from transformers import LlamaConfig

    base = {"bos_token_id": 1, "eos_token_id": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False}
    base.update(kw)
    return LlamaConfig(**base)


def _mistral(**kw):
    from transformers import MistralConfig

    return MistralConfig(bos_token_id=1, eos_token_id=2, sliding_window=None, **kw)


def _qwen2(**kw):
    from transformers import Qwen2Config

    return Qwen2Config(bos_token_id=1, eos_token_id=2, **kw)


def _gpt2(**kw):
    from transformers import GPT2Config

    return GPT2Config(bos_token_id=1, eos_token_id=2, **kw)


TINY = {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("llama-125m", "llama", "Llama, hidden 768, 12 layers, 12 heads / 4 KV heads, vocab 32000 (~125M params)",
           lambda: _llama(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                          num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)),
    Preset("llama-tiny", "llama", "Llama, hidden 64, 2 layers, 4 heads / 2 KV heads, vocab 512",
           lambda: _llama(**TINY)),
    Preset("llama3-tiny", "llama", "Llama 3 style: llama3-scaled RoPE, tied embeddings, hidden 64, 2 layers",
           lambda: _llama(**TINY, tie_word_embeddings=True, rope_theta=500000.0,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 128})),
    Preset("mistral-tiny", "mistral", "Mistral, hidden 64, 2 layers, 4 heads / 2 KV heads, vocab 512",
           lambda: _mistral(**TINY)),
    Preset("qwen2-tiny", "qwen2", "Qwen2 (q/k/v bias, tied embeddings), hidden 64, 2 layers, 4 heads / 2 KV heads",
           lambda: _qwen2(**TINY, tie_word_embeddings=True)),
    Preset("gpt2-tiny", "gpt2", "GPT-2 (learned positions, LayerNorm, GELU), hidden 64, 2 layers, 4 heads",
           lambda: _gpt2(n_embd=64, n_layer=2, n_head=4, vocab_size=512, n_positions=512)),
]}


def build_preset(name: str, seed: int = 0):
    """The preset's transformers model (eval mode, float32) and its config."""
    if name not in PRESETS:
        raise KilnError(f"unknown preset {name!r}; `kiln presets` lists: {', '.join(PRESETS)}")
    from transformers import AutoModelForCausalLM

    config = PRESETS[name].config()
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    return model.float().eval(), config


def byte_tokenizer():
    """A byte-level tokenizer: ids 0-2 are <unk>, <s>, </s>; bytes are ids 3..258."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok
