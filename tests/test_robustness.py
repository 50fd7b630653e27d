"""Bad input found by review: each case is a clean KilnError / one-line CLI error, never a traceback,
and nothing the user had is lost."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from _cli import assert_one_error
from _cli import run_cli as _run

import kiln
from kiln.errors import KilnError
from kiln.ir import IRError
from kiln.ir.ops import resolve_aten
from kiln.runtime.generate import stream_text


def _assert_clean_error(code, err, pattern):
    assert_one_error(code, err, pattern, exit_code=None)


def _tamper(art_dir, rel, data: bytes):
    """Replace a file and update its hash, as a careless tool (or an attacker) would."""
    (art_dir / rel).write_bytes(data)
    m = json.loads((art_dir / "manifest.json").read_text())
    m["files"][rel] = hashlib.sha256(data).hexdigest()
    (art_dir / "manifest.json").write_text(json.dumps(m))


@pytest.fixture
def art_copy(tiny_artifact, tmp_path):
    d = tmp_path / "copy.kiln"
    shutil.copytree(tiny_artifact, d)
    return d


def test_sliding_window_models_are_refused(tmp_path):
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                        num_key_value_heads=1, vocab_size=100, max_position_embeddings=256, sliding_window=32)
    MistralForCausalLM(cfg).save_pretrained(tmp_path)
    with pytest.raises(KilnError, match="sliding-window attention"):
        kiln.compile(str(tmp_path))


def test_save_keeps_a_directory_whose_manifest_kiln_did_not_write(tiny_artifact, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "manifest.json").write_text("{}")
    (proj / "notes.txt").write_text("mine")
    with pytest.raises(KilnError, match="not a kiln artifact"):
        kiln.load(tiny_artifact).save(proj)
    assert (proj / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["aten::__setattr__.__call__", "aten::__dict__.clear", "aten::linear._foo",
                                    "prims::add.default", "aten::no_such_op.default"])
def test_aten_targets_cannot_escape_the_aten_namespace(target):
    with pytest.raises(IRError):
        resolve_aten(target)
    assert callable(resolve_aten("aten::mish.default"))


def test_corrupt_ir_with_a_valid_hash(capsys, art_copy):
    _tamper(art_copy, "ir/module.mlir", b'"builtin.module"() ({\n  %0:1.5 = nonsense\n}) : () -> ()\n')
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _assert_clean_error(code, err, "module.mlir")


def test_ir_without_a_forward_program(capsys, art_copy):
    text = (art_copy / "ir/module.mlir").read_text().replace('sym_name = "forward"', 'sym_name = "other"')
    _tamper(art_copy, "ir/module.mlir", text.encode())
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _assert_clean_error(code, err, "no 'forward' program")


def test_bad_optional_attribute_is_caught_by_the_verifier(capsys, art_copy):
    text = (art_copy / "ir/module.mlir").read_text().replace("causal = true", 'causal = "yes"', 1)
    _tamper(art_copy, "ir/module.mlir", text.encode())
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _assert_clean_error(code, err, "attribute 'causal'")


def test_garbage_tokenizer_with_a_valid_hash(capsys, art_copy):
    _tamper(art_copy, "tokenizer/tokenizer.json", b"{not a tokenizer")
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _assert_clean_error(code, err, "tokenizer.json is unusable")


def test_manifest_with_wrong_types(capsys, art_copy):
    m = json.loads((art_copy / "manifest.json").read_text())
    m["model"] = 5
    (art_copy / "manifest.json").write_text(json.dumps(m))
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _assert_clean_error(code, err, "'model' is not an object")


@pytest.mark.parametrize("argv,pattern", [
    (["run", "{art}", "--prompt", "hi", "--temperature", "nan"], "finite"),
    (["run", "{art}", "--prompt", "hi", "--seed", "99999999999999999999999"], "seed must be in"),
    (["dump", "{art}", "--after", ""], "--after needs"),
    (["dump", "{art}", "--after", "\u00b2"], "no IR after"),
    (["compile", "llama-tiny", "-o", "{tmp}/x.kiln", "--passes", ""], "pass list is empty"),
    (["compile", "llama-tiny", "-o", "{tmp}/x.kiln", "--passes", "cse", "--dump-dir", "{tmp}/afile"],
     "cannot write IR dumps"),
    (["demo", "--model", "/some/dir"], "no model at '/some/dir'"),
])
def test_odd_values(capsys, tmp_path, tiny_artifact, argv, pattern):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(art=tiny_artifact, tmp=tmp_path) for a in argv]
    code, _, err = _run(capsys, *argv)
    _assert_clean_error(code, err, pattern)
    assert not (tmp_path / "x.kiln").exists()


def test_stream_holds_back_incomplete_characters():
    data = "é😀a".encode()  # 2-byte, 4-byte and 1-byte characters, one byte per token

    def decode(ids):
        return bytes(ids).decode("utf-8", errors="replace")

    out: list[int] = []
    pieces = list(stream_text(decode, iter(data), out))
    assert "".join(pieces) == "é😀a" and pieces == ["é", "😀", "a"] and bytes(out) == data


def test_weights_file_is_readable_like_the_rest(tiny_artifact):
    import os
    import stat

    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in (tiny_artifact / "weights.safetensors",
                                                                  tiny_artifact / "manifest.json")}
    assert modes["weights.safetensors"] == modes["manifest.json"]


def test_logits_unchanged_after_review_fixes(tiny_artifact):
    from kiln.frontend.presets import build_preset

    model, _ = build_preset("llama-tiny")
    ids = torch.randint(0, 512, (2, 30))
    with torch.no_grad():
        assert (kiln.load(tiny_artifact).runtime().logits(ids) - model(input_ids=ids).logits).abs().max() <= 1e-4
