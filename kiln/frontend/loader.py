"""Loading a model: a Hugging Face directory or a named preset.

A directory needs ``config.json`` (a supported ``model_type``), one or more
``*.safetensors`` files, and ideally tokenizer files. Pickled ``*.bin``
checkpoints are refused because loading them can execute code. Every failure
is a ``KilnError`` that says which file was wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kiln.errors import KilnError
from kiln.frontend.presets import PRESETS, build_preset, byte_tokenizer
from kiln.limits import SIZE_LIMITS

SUPPORTED_FAMILIES = ("llama", "mistral", "qwen2", "gpt2")
STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "generation_config.json")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    config: Any
    family: str
    source: str
    source_hash: str
    tokenizer_files: dict[str, bytes] = field(default_factory=dict)

    @property
    def max_positions(self) -> int:
        c = self.config
        return int(getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", 2048))


def _sha256_file(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


_SIZE_KEYS = {  # each size's config keys, per family naming (Llama-like, GPT-2)
    "layers": ("num_hidden_layers", "n_layer"),
    "attention heads": ("num_attention_heads", "n_head"),
    "key/value heads": ("num_key_value_heads",),
    "hidden size": ("hidden_size", "n_embd"),
    "vocabulary size": ("vocab_size",),
    "positions": ("max_position_embeddings", "n_positions"),
    "intermediate size": ("intermediate_size", "n_inner"),
    "head dim": ("head_dim",),
}


def check_sizes(cfg: dict, where: str) -> None:
    """Refuse sizes in a config dict that are not positive integers or that pass ``SIZE_LIMITS``: at once,
    naming the size, instead of after minutes of building the model."""
    for what, keys in _SIZE_KEYS.items():
        for key in keys:
            v = cfg.get(key)
            if v is None:  # absent (transformers' default applies) or null (derived, e.g. n_inner)
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise KilnError(f"{where}: {key} must be a positive integer, got {v!r}")
            if v > SIZE_LIMITS[what]:
                raise KilnError(f"{where}: {key} = {v:,} is past kiln's limit of {SIZE_LIMITS[what]:,} {what}")
    heads = cfg.get("num_attention_heads") or cfg.get("n_head")
    kv = cfg.get("num_key_value_heads")
    if heads and kv and heads % kv:
        raise KilnError(f"{where}: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv})")
    hidden = cfg.get("hidden_size") or cfg.get("n_embd")
    if hidden and heads and not cfg.get("head_dim") and hidden % heads:
        raise KilnError(f"{where}: the hidden size ({hidden}) is not a multiple of the attention heads ({heads})")


def parameter_count(config) -> int:
    """Parameters a transformers config implies (embeddings, attention, MLP; norms and biases left out)."""
    def get(*names, default=0):
        for n in names:
            v = getattr(config, n, None)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
        return default

    h = get("hidden_size", "n_embd")
    layers = get("num_hidden_layers", "n_layer")
    heads = get("num_attention_heads", "n_head", default=1)
    kv = get("num_key_value_heads", default=heads)
    hd = get("head_dim", default=h // heads if heads else h)
    vocab = get("vocab_size")
    gpt2 = getattr(config, "model_type", "") == "gpt2"
    inter = get("intermediate_size", "n_inner", default=4 * h)
    attn = 2 * h * heads * hd + 2 * h * kv * hd
    mlp = (2 if gpt2 else 3) * h * inter
    emb = vocab * h * (1 if getattr(config, "tie_word_embeddings", True) else 2)
    if gpt2:
        emb += get("n_positions", "max_position_embeddings") * h
    return layers * (attn + mlp) + emb


def check_memory(config, where: str) -> None:
    """Refuse, before building it, a model whose float32 weights do not fit in the memory available."""
    from kiln.limits import check_fits

    n = parameter_count(config)
    check_fits(4 * n, f"{where}: the model's float32 weights (~{n:,} parameters)",
               hint="kiln loads and compiles models in float32")


def check_config(cfg: dict, where: str) -> str:
    """The family of a config dict, or a KilnError naming what is unsupported."""
    mt = cfg.get("model_type")
    if not mt:
        raise KilnError(f"{where}: config.json has no model_type; kiln supports {', '.join(SUPPORTED_FAMILIES)}")
    if mt not in SUPPORTED_FAMILIES:
        arch = ", ".join(cfg.get("architectures") or []) or mt
        raise KilnError(f"unsupported architecture {arch} (model_type {mt!r}) in {where}; kiln supports "
                        f"{', '.join(SUPPORTED_FAMILIES)}")
    check_sizes(cfg, where)
    window = cfg.get("sliding_window")
    uses_window = cfg.get("use_sliding_window", mt == "mistral")
    max_pos = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 0
    if window and uses_window and window < max_pos:
        raise KilnError(f"{where}: sliding-window attention (window {window} < context {max_pos}) is not supported "
                        "yet; kiln would compute full causal attention")
    if cfg.get("layer_types") and any(t != "full_attention" for t in cfg["layer_types"]) and uses_window:
        raise KilnError(f"{where}: layers with sliding-window attention are not supported yet")
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rtype = rs.get("rope_type", rs.get("type", "default")) if isinstance(rs, dict) else "default"
    if rtype not in STATIC_ROPE_TYPES:
        raise KilnError(f"{where}: rope scaling type {rtype!r} is not supported (its frequencies change with "
                        f"the sequence length); supported: {', '.join(STATIC_ROPE_TYPES)}")
    return mt


def load_model(ref: str, seed: int = 0) -> LoadedModel:
    """Load ``ref``: a preset name or a path to a Hugging Face model directory."""
    path = Path(ref)
    if ref in PRESETS and not path.exists():
        model, config = build_preset(ref, seed)
        tok = byte_tokenizer()
        h = hashlib.sha256(f"preset:{ref}:seed={seed}:".encode() + config.to_json_string().encode()).hexdigest()
        files = {"tokenizer.json": tok.to_str().encode()}
        return LoadedModel(model, config, PRESETS[ref].family, f"preset:{ref}", h, files)
    if not path.exists():
        raise KilnError(f"no model at {ref!r}: not a directory and not a preset (`kiln presets` lists them)")
    if not path.is_dir():
        raise KilnError(f"{ref!r} is a file; a model is a Hugging Face directory with config.json and *.safetensors")
    cfg_path = path / "config.json"
    if not cfg_path.exists():
        raise KilnError(f"{ref!r} has no config.json; a Hugging Face model directory needs config.json, "
                        "*.safetensors and tokenizer files")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KilnError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise KilnError(f"{cfg_path} is not a JSON object")
    family = check_config(cfg, str(cfg_path))
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        extra = " (pickled *.bin checkpoints are not loaded: they can run code)" if list(path.glob("*.bin")) else ""
        raise KilnError(f"{ref!r} has no *.safetensors weights{extra}")
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here is reported as a KilnError
        raise KilnError(f"{cfg_path}: transformers cannot read this config ({e})") from None
    check_memory(config, str(cfg_path))  # before reading the weights or building the model
    from safetensors import safe_open

    h = hashlib.sha256()
    _sha256_file(cfg_path, h)
    for w in weights:
        try:
            with safe_open(str(w), framework="pt") as f:
                for k in f.keys():  # noqa: SIM118 - safe_open is not iterable
                    f.get_slice(k)
        except Exception as e:  # noqa: BLE001 - safetensors raises several types for a damaged file
            raise KilnError(f"{w} is not a readable safetensors file ({type(e).__name__}: {e})") from None
        _sha256_file(w, h)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = AutoModelForCausalLM.from_pretrained(
                str(path), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa",
                output_loading_info=True, use_safetensors=True)
    except Exception as e:  # noqa: BLE001 - any failure here is reported as a KilnError
        raise KilnError(f"cannot load the weights in {ref!r}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if "inv_freq" not in k]
    if missing:
        shown = ", ".join(sorted(missing)[:5]) + (" ..." if len(missing) > 5 else "")
        raise KilnError(f"{ref!r}: the safetensors files lack {len(missing)} weights the config needs: {shown}")
    if info.get("mismatched_keys"):
        raise KilnError(f"{ref!r}: weights with the wrong shape for the config: {info['mismatched_keys'][:3]}")
    files = {}
    for name in TOKENIZER_FILES:
        p = path / name
        if p.is_file():
            files[name] = p.read_bytes()
    if "tokenizer.json" not in files and set(files) & {"vocab.json", "tokenizer.model"}:
        files.update(_convert_tokenizer(path))
    logging.getLogger("kiln").debug("loaded %s (%s)", ref, family)
    return LoadedModel(model.float().eval(), config, family, os.path.abspath(ref), h.hexdigest(), files)


def _convert_tokenizer(path: Path) -> dict[str, bytes]:
    """A tokenizer.json made by transformers from older tokenizer files (vocab.json + merges.txt,
    tokenizer.model), so the runtime needs only the ``tokenizers`` library. Empty when it cannot."""
    from transformers import AutoTokenizer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
        backend = getattr(tok, "backend_tokenizer", None)
        return {"tokenizer.json": backend.to_str().encode()} if backend is not None else {}
    except Exception:  # noqa: BLE001 - no usable tokenizer: `kiln run` will say so
        logging.getLogger("kiln").warning("could not convert the tokenizer files in %s to tokenizer.json", path)
        return {}
