"""Artifacts: save/load round trip, hashes, format version, atomic writes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import kiln
from kiln.errors import KilnError


def test_round_trip_gives_identical_logits_and_ir(tiny_artifact, tmp_path):
    art = kiln.load(tiny_artifact)
    assert art.manifest["format_version"] == 1
    assert art.manifest["source"]["model"] == "preset:llama-tiny"
    names = [p["name"] for p in art.manifest["passes"]]
    assert names[:4] == ["canonicalize", "fold-constants", "cse", "dce"] and "fuse-qkv" in names
    assert all("seconds" in p and "rule_matches" in p for p in art.manifest["passes"])
    ids = torch.randint(0, 512, (2, 9))
    a = art.runtime().logits(ids)
    again = tmp_path / "again.kiln"
    art.save(again)
    art2 = kiln.load(again)
    assert torch.equal(a, art2.runtime().logits(ids))
    assert (tiny_artifact / "ir/module.mlir").read_text() == (again / "ir/module.mlir").read_text()
    assert [s[0] for s in art2.snapshots] == ["frontend"] + names


def test_artifact_matches_fresh_model(tiny_artifact):
    from kiln.frontend.presets import build_preset

    model, _ = build_preset("llama-tiny")
    ids = torch.randint(0, 512, (1, 20))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
    assert (kiln.load(tiny_artifact).runtime().logits(ids) - ref).abs().max().item() <= 1e-4


def _copy(src, tmp_path):
    dst = tmp_path / "copy.kiln"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("victim", ["ir/module.mlir", "weights.safetensors", "tokenizer/tokenizer.json"])
def test_tampered_file_is_refused(tiny_artifact, tmp_path, victim):
    d = _copy(tiny_artifact, tmp_path)
    data = bytearray((d / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (d / victim).write_bytes(bytes(data))
    with pytest.raises(KilnError, match=f"{victim} does not match its hash"):
        kiln.load(d)


def test_newer_format_is_refused(tiny_artifact, tmp_path):
    d = _copy(tiny_artifact, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = 99
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KilnError, match="format 99, newer than this kiln reads"):
        kiln.load(d)


def test_missing_file_and_missing_artifact(tiny_artifact, tmp_path):
    d = _copy(tiny_artifact, tmp_path)
    (d / "weights.safetensors").unlink()
    with pytest.raises(KilnError, match="missing weights.safetensors"):
        kiln.load(d)
    with pytest.raises(KilnError, match="no artifact"):
        kiln.load(tmp_path / "nothing-here")
    (tmp_path / "plain").mkdir()
    with pytest.raises(KilnError, match="not a kiln artifact"):
        kiln.load(tmp_path / "plain")


def test_path_escape_in_manifest_is_refused(tiny_artifact, tmp_path):
    d = _copy(tiny_artifact, tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["files"]["../outside"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KilnError, match="outside the artifact"):
        kiln.load(d)


def test_save_never_clobbers_a_user_directory(tiny_artifact, tmp_path):
    art = kiln.load(tiny_artifact)
    user = tmp_path / "mydata"
    user.mkdir()
    (user / "precious.txt").write_text("keep me")
    with pytest.raises(KilnError, match="not a kiln artifact"):
        art.save(user)
    assert (user / "precious.txt").read_text() == "keep me"


def test_failed_save_leaves_nothing_behind(tiny_artifact, tmp_path, monkeypatch):
    art = kiln.load(tiny_artifact)
    target = tmp_path / "out.kiln"
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        art.save(target)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_existing_artifact(tiny_artifact, tmp_path):
    d = _copy(tiny_artifact, tmp_path)
    kiln.load(tiny_artifact).save(d)
    assert kiln.load(d).manifest["files"] == json.loads((tiny_artifact / "manifest.json").read_text())["files"]
