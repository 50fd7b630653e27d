"""The command line: the compile -> dump -> run walk, and one-line errors with
non-zero exits for bad input (no tracebacks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kiln.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, pattern):
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]  # "[  1.2s] ..." is progress
    assert len(lines) == 1, err
    assert lines[0].startswith("kiln: error:"), err
    assert "Traceback" not in err
    assert pattern in lines[0], lines[0]


def test_walkthrough_in_a_subprocess(tmp_path):
    """compile -> dump -> run --json, as a user types them."""
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    art = tmp_path / "a.kiln"
    kiln = [sys.executable, "-m", "kiln"]
    r = subprocess.run(kiln + ["compile", "gpt2-tiny", "-o", str(art)], check=False, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "ops left generic (kiln.aten): none" in r.stdout
    assert "capturing with torch.export" in r.stderr  # progress
    r = subprocess.run(kiln + ["dump", str(art)], check=False, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and '"kiln.layer_norm"' in r.stdout and '"kiln.attention"' in r.stdout
    r = subprocess.run(kiln + ["run", str(art), "--prompt", "hi", "--max-new-tokens", "8", "--json"],
                       check=False, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["new_tokens"] == 8 and len(j["token_ids"]) == 8 and j["tokens_per_s"] > 0 and "text" in j


def test_dump_formats_and_after(capsys, tiny_artifact):
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--format", "mlir")
    assert code == 0 and out.startswith('"builtin.module"')
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--after", "frontend")
    assert code == 0 and "q_proj" in out and "qkv" not in out
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--after", "fuse-qkv")
    assert code == 0 and "qkv" in out
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--format", "dot")
    assert code == 0 and out.lstrip().startswith("digraph")
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--kernels", "--program", "decode")
    assert code == 0 and "kernels/decode.c" in out and "int kiln_step(" in out and "lin_f32(" in out
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--memory", "--program", "decode", "--tokens", "16")
    assert code == 0 and "arena:" in out and "'N': 16" in out and "bytes if none shared" in out
    code, _, err = _run(capsys, "dump", str(tiny_artifact), "--memory", "--tokens", "0")
    assert code == 1 and "--tokens must be in" in err
    code, _, err = _run(capsys, "dump", str(tiny_artifact), "--after", "no-such-pass")
    _one_line_error(code, err, "no IR after 'no-such-pass'")
    code, out, _ = _run(capsys, "dump", str(tiny_artifact), "--program", "decode")
    assert code == 0 and 'layout = "contiguous"' in out and "kiln.cache_attention" in out
    code, _, err = _run(capsys, "dump", str(tiny_artifact), "--program", "verify")
    _one_line_error(code, err, "no program 'verify'")


def test_presets_and_pipelines(capsys):
    code, out, _ = _run(capsys, "presets")
    assert code == 0 and "llama-125m" in out and "gpt2-tiny" in out and "qwen2-tiny" in out
    code, out, _ = _run(capsys, "pipelines")
    assert code == 0 and "default" in out and "fuse-qkv" in out and "cse" in out


def test_run_text_and_stream(capsys, tiny_artifact):
    code, out, err = _run(capsys, "run", str(tiny_artifact), "--prompt", "def f", "--max-new-tokens", "4")
    assert code == 0 and out.startswith("def f") and "tokens/s" in err
    code, out, err = _run(capsys, "run", str(tiny_artifact), "--prompt", "x", "--max-new-tokens", "3", "--stream")
    assert code == 0 and out.startswith("x")


@pytest.mark.parametrize("argv,pattern", [
    (["compile", "no-such-preset", "-o", "{tmp}/x"], "not a directory and not a preset"),
    (["compile", "llama-tiny", "-o", "{tmp}/x", "--passes", "cse,bogus"], "unknown pass 'bogus'"),
    (["compile", "llama-tiny", "-o", "{tmp}/x", "--pipeline", "turbo"], "unknown pipeline 'turbo'"),
    (["compile", "llama-tiny", "-o", "{tmp}/x", "--draft", "self", "--spec-skip", "5"], "skip must be in"),
    (["compile", "llama-tiny"], "-o/--output"),
    (["run", "{tmp}/missing.kiln", "--prompt", "hi"], "no artifact"),
    (["run", "{art}", "--prompt", ""], "prompt is empty"),
    (["run", "{art}", "--prompt", "hi", "--temperature", "-1"], "temperature must be >= 0"),
    (["run", "{art}", "--prompt", "hi", "--top-p", "1.5"], "top-p must be in (0, 1]"),
    (["run", "{art}", "--prompt", "hi", "--max-new-tokens", "100000"], "exceeds the model's context"),
    (["run", "{art}", "--prompt", "hi", "--max-new-tokens", "many"], "invalid int value"),
    (["run", "{art}", "--prompt", "hi", "--top-p", "0"], "top-p must be in (0, 1]"),
    (["run", "{art}", "--prompt", "a", "--prompt", "b", "--prompt", "c", "--cache-tokens", "1024"],
     "does not fit the KV cache: 3 sequence(s)"),
    (["run", "{art}", "--prompt", "hi", "--cache-tokens", "0"], "positive number of tokens"),
    (["run", "{art}", "--prompt", "hi", "--prefill-chunk", "0"], "prefill_chunk must be a positive"),
    (["run", "{art}", "--prompt", "a", "--prompt", "b", "--stream"], "give one --prompt"),
    (["bench", "{art}", "--baseline", "ort", "--new-tokens", "1"], "--new-tokens >= 2"),
    (["bench", "{art}", "--new-tokens", "1"], "--new-tokens >= 2"),
    (["bench", "{art}", "--prompt-len", "600"], "exceed the context"),
    (["eval", "{tmp}/nothing"], "no model at"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_gives_one_line_error(capsys, tmp_path, tiny_artifact, argv, pattern):
    argv = [a.format(tmp=tmp_path, art=tiny_artifact) for a in argv]
    code, _, err = _run(capsys, *argv)
    _one_line_error(code, err, pattern)
    assert not (tmp_path / "x").exists()


def test_run_batch_of_prompts_json(capsys, tiny_artifact):
    code, out, _ = _run(capsys, "run", str(tiny_artifact), "--prompt", "def f", "--prompt", "import os, sys",
                        "--max-new-tokens", "5", "--ignore-eos", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["prompt"] for r in rows] == ["def f", "import os, sys"]
    assert all(r["new_tokens"] == 5 and r["batch"] == 2 and r["kv_cache"] == "contiguous" for r in rows)
    assert rows[0]["prompt_tokens"] == 5 and rows[1]["prompt_tokens"] == 14


def test_prompt_longer_than_context(capsys, tiny_artifact):
    code, _, err = _run(capsys, "run", str(tiny_artifact), "--prompt", "y" * 600, "--max-new-tokens", "1")
    _one_line_error(code, err, "exceed the model's context")


def test_compile_refuses_to_overwrite_user_directory(capsys, tmp_path):
    user = tmp_path / "notes"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    code, _, err = _run(capsys, "compile", "llama-tiny", "-o", str(user), "-q")
    _one_line_error(code, err, "refusing to overwrite")
    assert (user / "a.txt").read_text() == "mine"


def test_dump_dir_writes_before_and_after_each_pass(capsys, tmp_path):
    dump = tmp_path / "dumps"
    code, out, err = _run(capsys, "compile", "llama-tiny", "-o", str(tmp_path / "a.kiln"), "--passes", "cse,dce",
                        "--dump-dir", str(dump), "-q", "--stats")
    assert code == 0, err
    assert "rule matches" in out and "cse" in out
    names = sorted(p.name for p in dump.iterdir())
    assert names == ["00-input.mlir", "01-after-cse.mlir", "01-before-cse.mlir", "02-after-dce.mlir",
                     "02-before-dce.mlir"]


def test_demo(capsys):
    import re

    code, out, _ = _run(capsys, "demo", "--max-new-tokens", "8")
    assert code == 0
    err = float(re.search(r"max abs error ([0-9.e+-]+)", out).group(1))
    assert err <= 1e-4
    assert "model: " in out and "kiln-code-target" in out
    assert "passes applied: canonicalize" in out and "kv-cache" in out and "completion (8 new tokens" in out
    assert "speculative decoding (ngram drafter)" in out and "greedy tokens identical" in out
    assert "def fibonacci(n):" in out
