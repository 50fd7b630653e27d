"""The models kiln ships (examples/models/kiln-code-{target,draft}): they load with transformers,
their held-out bits per byte on a slice match their model cards, and they meet the targets the
model cards claim. A truncated or corrupted weight file fails here."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import torch

from kiln import data, evaluate

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
KINDS = ("target", "draft")


def _info(kind: str) -> dict:
    return json.loads((MODELS / f"kiln-code-{kind}" / "info.json").read_text())


def _load(kind: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = MODELS / f"kiln-code-{kind}"
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def _slice_docs(tok, info):
    files = data.heldout_files(info["slice"]["max_bytes"])
    docs = evaluate.encode_docs(lambda t: tok(t, add_special_tokens=False)["input_ids"], [f.text for f in files],
                                tok.bos_token_id)
    return docs, sum(f.n_bytes for f in files)


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_model_matches_its_card_on_a_heldout_slice(kind):
    info = _info(kind)
    model, tok = _load(kind)
    assert sum(p.numel() for p in model.parameters()) == info["params"]
    docs, n_bytes = _slice_docs(tok, info)
    res = evaluate.evaluate(lambda ids: model(input_ids=ids).logits, docs, n_bytes, ctx=info["slice"]["ctx"],
                            stride=info["slice"]["stride"], progress=False)
    # Same Python, same held-out files: the figure is reproduced to float noise. Another Python
    # version has other stdlib sources, so only the ballpark can be checked.
    tol = 0.005 if platform.python_version() == info["python"] else 0.15
    assert abs(res.bits_per_byte - info["slice"]["bits_per_byte"]) < tol, (res.bits_per_byte, info["slice"])
    card = (MODELS / f"kiln-code-{kind}" / "README.md").read_text()
    assert f"{info['eval']['bits_per_byte']:.4f}" in card and f"{info['slice']['bits_per_byte']:.4f}" in card


def test_shipped_models_meet_their_targets():
    t, d = _info("target"), _info("draft")
    assert t["eval"]["bits_per_byte"] <= 1.20
    assert t["params"] >= 4 * d["params"]
    assert d["eval"]["greedy_agreement"] >= 0.55
    size = sum(f.stat().st_size for k in KINDS for f in (MODELS / f"kiln-code-{k}").iterdir())
    assert size < 25e6
    tok_t = (MODELS / "kiln-code-target" / "tokenizer.json").read_bytes()
    assert tok_t == (MODELS / "kiln-code-draft" / "tokenizer.json").read_bytes()


def test_draft_agrees_with_the_target_on_a_heldout_slice():
    """Re-measures the draft's greedy agreement (the card's figure is over the whole held-out split,
    0.64 on this slice with windows restarting every 256 tokens) against the issue's 55% floor."""
    target, tok = _load("target")
    draft, _ = _load("draft")
    docs, _ = _slice_docs(tok, _info("draft"))
    agree = total = 0
    with torch.no_grad():
        for doc in docs:
            for s in range(0, len(doc) - 1, 256):
                ids = torch.tensor([doc[s:s + 256]])
                same = target(input_ids=ids).logits.argmax(-1) == draft(input_ids=ids).logits.argmax(-1)
                agree += int(same.sum())
                total += same.numel()
    assert total > 1000 and agree / total >= 0.55, (agree, total)


def test_kiln_compiles_the_shipped_target_and_measures_the_same(tmp_path):
    import kiln

    info = _info("target")
    model, tok = _load("target")
    rt = kiln.compile(str(MODELS / "kiln-code-target")).runtime()
    docs, n_bytes = _slice_docs(tok, {"slice": {"max_bytes": 3000}})
    kw = {"ctx": info["slice"]["ctx"], "stride": info["slice"]["stride"], "progress": False}
    ours = evaluate.evaluate(rt.logits, docs, n_bytes, **kw)
    ref = evaluate.evaluate(lambda ids: model(input_ids=ids).logits, docs, n_bytes, **kw)
    assert abs(ours.bits_per_byte - ref.bits_per_byte) < 1e-4
    # and kiln's tokenizer (the artifact's copy) encodes as transformers' does
    text = data.heldout_files(2000)[0].text
    assert rt.tokenizer.encode(text).ids == tok(text, add_special_tokens=False)["input_ids"]
