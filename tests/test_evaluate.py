"""kiln.data's held-out split, kiln.evaluate's sliding windows and bits per byte, `kiln eval`, and
examples/train_tiny.py's determinism and resuming (on its --smoke recipe)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln import data, evaluate
from kiln.cli import main
from kiln.errors import KilnError

ROOT = Path(__file__).resolve().parents[1]


def test_heldout_split_is_by_module_and_disjoint():
    files = data.stdlib_files()
    train, held = data.split(files)
    assert held and train and len(held) + len(train) == len(files)
    assert {f.module for f in held}.isdisjoint({f.module for f in train})
    assert all(data.is_heldout(f.module) for f in held)
    assert [f.path for f in files] == sorted((f.path for f in files), key=lambda p: p.relative_to(
        data.stdlib_dir()).as_posix())
    assert data.module_name(Path("email/mime/text.py")) == "email.mime.text"
    assert data.module_name(Path("json/__init__.py")) == "json"
    sl = data.heldout_files(5000)
    assert sum(f.n_bytes for f in sl) <= 5000 and sl[0].module == held[0].module


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=4), ctx=st.integers(1, 20), data_=st.data())
def test_windows_score_every_prediction_once_with_context(lengths, ctx, data_):
    stride = data_.draw(st.integers(1, ctx))
    docs = [list(range(100 * d, 100 * d + n)) for d, n in enumerate(lengths)]
    seen = []
    for w in evaluate.windows(docs, ctx, stride):
        assert 1 <= len(w.ids) <= ctx and len(w.targets) == len(w.ids)
        for j in range(w.first_scored, len(w.targets)):
            assert w.targets[j] == w.ids[j] + 1
            seen.append(w.targets[j])
            # context of the prediction: j + 1 tokens, at least min(ctx - stride + 1, its position + 1)
            assert j + 1 >= min(ctx - stride + 1, w.targets[j] % 100)
    assert sorted(seen) == sorted(t for doc in docs for t in doc[1:])


def test_bits_per_byte_of_a_uniform_model():
    v = 37
    docs = [[0, 5, 6, 7, 8], [0, 1, 2]]
    res = evaluate.evaluate(lambda ids: torch.zeros(*ids.shape, v), docs, n_bytes=10, ctx=3, stride=2,
                            progress=False)
    assert res.n_tokens == 6
    assert math.isclose(res.bits_per_byte, 6 * math.log2(v) / 10, rel_tol=1e-6)
    assert math.isclose(res.perplexity, v, rel_tol=1e-5)


def test_evaluate_matches_a_direct_computation_when_the_window_covers_the_file():
    torch.manual_seed(0)
    table = torch.randn(50, 50)
    fwd = lambda ids: table[ids]
    docs = [torch.randint(0, 50, (30,)).tolist(), torch.randint(0, 50, (9,)).tolist()]
    res = evaluate.evaluate(fwd, docs, n_bytes=100, ctx=64, stride=32, batch=2, progress=False)
    direct = sum(torch.nn.functional.cross_entropy(table[torch.tensor(d[:-1])], torch.tensor(d[1:]),
                                                   reduction="sum").item() for d in docs)
    assert math.isclose(res.nll_nats, direct, rel_tol=1e-5)
    # a window shorter than the files scores the same tokens (this model needs one token of context)
    short = evaluate.evaluate(fwd, docs, n_bytes=100, ctx=8, stride=3, batch=3, progress=False)
    assert math.isclose(short.nll_nats, direct, rel_tol=1e-5) and short.n_tokens == res.n_tokens


def _train(out: Path, work: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "examples" / "train_tiny.py"), "--smoke", "--out", str(out),
                           "--work-dir", str(work), "--threads", "1", *extra],
                          capture_output=True, text=True, check=False, timeout=600)


@pytest.fixture(scope="module")
def smoke_models(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    r = _train(base / "a", base / "wa")
    assert r.returncode == 0, r.stderr[-2000:]
    return base


def test_train_tiny_is_deterministic_and_resumes_to_the_same_weights(smoke_models):
    base = smoke_models
    r = _train(base / "b", base / "wb", "--stop-after", "3", "--ckpt-every", "1")
    assert r.returncode == 0 and "stopped after 3" in r.stderr
    r = _train(base / "b", base / "wb", "--ckpt-every", "1")
    assert r.returncode == 0 and "resuming at step 3" in r.stderr
    for kind in ("target", "draft"):
        a = (base / "a" / f"kiln-code-{kind}" / "model.safetensors").read_bytes()
        b = (base / "b" / f"kiln-code-{kind}" / "model.safetensors").read_bytes()
        assert a == b, kind
    assert (base / "a" / "kiln-code-target" / "tokenizer.json").read_bytes() == \
        (base / "b" / "kiln-code-target" / "tokenizer.json").read_bytes()
    card = (base / "a" / "kiln-code-draft" / "README.md").read_text()
    assert "greedy next-token agreement" in card and "Held-out split by module" in card


def test_kiln_eval_on_a_model_directory(smoke_models, capsys):
    import json

    model = smoke_models / "a" / "kiln-code-target"
    code = main(["eval", str(model), "--max-bytes", "1500", "--ctx", "32", "--stride", "16", "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["bytes"] <= 1500 and out["bits_per_byte"] > 0 and out["files"] >= 1
    info = json.loads((model / "info.json").read_text())
    assert abs(out["bits_per_byte"] - info["eval"]["bits_per_byte"]) < 2.0  # same ballpark, smaller slice
    assert main(["eval", str(model), "--ctx", "8", "--stride", "9"]) == 1
    assert "stride" in capsys.readouterr().err
    assert main(["eval", str(model), "--max-bytes", "0"]) == 1


def test_compressor_baselines_are_each_files_compressed_size_in_bits_per_byte():
    import lzma
    import zlib

    texts = ["def f(x):\n    return x + 1\n" * 40, "héllo wörld\n"]
    got = evaluate.compressor_bits_per_byte(texts)
    n = sum(len(t.encode()) for t in texts)
    assert set(got) == set(evaluate.COMPRESSORS)
    assert got["xz -9"] == pytest.approx(8 * sum(len(lzma.compress(t.encode(), preset=9)) for t in texts) / n)
    assert got["gzip -9"] == pytest.approx(8 * sum(len(zlib.compress(t.encode(), 9)) for t in texts) / n)
    assert got["gzip -9"] < 8  # repetitive text compresses


def test_user_files_reads_text_and_utf8_files_under_a_directory(tmp_path):
    d = tmp_path / "pkg"
    (d / "sub").mkdir(parents=True)
    (d / "b.py").write_text("b = 2\n")
    (d / "sub" / "a.py").write_text("a = 1\n")
    (d / "blob.bin").write_bytes(b"\xff\xfe\x00binary")
    (d / ".hidden.py").write_text("secret = 1\n")
    (d / "empty.txt").write_text("")
    (d / "link.py").symlink_to(tmp_path / "outside.py")
    (tmp_path / "outside.py").write_text("outside = 1\n")
    files, skipped = data.user_files([], [str(d)])
    assert [f.module for f in files] == ["b.py", "sub/a.py"] and skipped == 1
    files, _ = data.user_files([str(tmp_path / "outside.py")], [str(d)], max_bytes=len("outside = 1\n"))
    assert [f.text for f in files] == ["outside = 1\n"]
    for bad, msg in ((["nope.py"], "no file at"), ([str(d / "blob.bin")], "not UTF-8"), ([str(d)], "not a regular")):
        with pytest.raises(KilnError, match=msg):
            data.user_files(bad, [])
    with pytest.raises(KilnError, match="no directory"):
        data.user_files([], [str(tmp_path / "missing")])


def test_kiln_eval_on_your_text_prints_the_compressors_beside_the_model(smoke_models, tmp_path, capsys):
    import json

    model = smoke_models / "a" / "kiln-code-target"
    src = tmp_path / "mine.py"
    src.write_text("def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n" * 8)
    code = main(["eval", str(model), "--text", str(src), "--ctx", "32", "--stride", "16", "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["files"] == 1 and out["bytes"] == len(src.read_bytes())
    assert set(out["compressors_bits_per_byte"]) == set(evaluate.COMPRESSORS) and "text_sha256" in out
    assert main(["eval", str(model), "--dir", str(tmp_path), "--ctx", "32", "--stride", "16", "-q"]) == 0
    text = capsys.readouterr().out
    assert "files of your text" in text and "xz -9" in text and "bits/byte" in text
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "x.dat").write_bytes(b"\xff\xff")
    assert main(["eval", str(model), "--dir", str(tmp_path / "bin"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no UTF-8 text" in err and "1 files skipped" in err
