"""User mistakes, each found by review: one ``kiln: error: ...`` line and exit 1 (2 for a command line
argparse cannot parse), never exit 70 ("internal error"), and nothing the user had is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch
from _cli import assert_one_error as _assert_clean_error
from _cli import run_cli as _run

import kiln
from kiln.cli import main
from kiln.errors import KilnError
from kiln.runtime import artifact as artifact_mod
from kiln.runtime.generate import MIN_TEMPERATURE, sample_next


@pytest.fixture(scope="module")
def art(tiny_artifact):
    return kiln.load(tiny_artifact)


@pytest.fixture(scope="module")
def rt(art):
    return art.runtime()


# -- prompts ---------------------------------------------------------------------------------------

def test_non_utf8_prompt_from_argv_is_refused(capsys, tiny_artifact):
    bad = b"\xff\xfe".decode("utf-8", "surrogateescape")  # how Python hands undecodable argv bytes over
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", bad)
    _assert_clean_error(code, err, "not valid UTF-8 text (byte 0xff at character 0)")
    code, _, err = _run(capsys, "demo", "--model", "llama-tiny", "--prompt", bad)  # before compiling
    _assert_clean_error(code, err, "not valid UTF-8")


def test_non_utf8_prompt_in_a_real_process(tiny_artifact):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    r = subprocess.run([sys.executable, "-m", "kiln", "run", os.fsencode(tiny_artifact), "--prompt", b"\xff\xfe"],
                       capture_output=True, env=env, check=False, timeout=120)
    err = r.stderr.decode()
    _assert_clean_error(r.returncode, err, "not valid UTF-8")


def test_non_text_prompts_in_python(rt):
    for bad in ("\udcff", "a\ud800b", b"hi", None):
        with pytest.raises(KilnError, match="prompt"):
            rt.encode(bad)


# -- sampling --------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [1e-38, 1e-45, 5e-324, MIN_TEMPERATURE / 2])
def test_tiny_temperature_decodes_greedily(temperature):
    logits = torch.randn(3, 512) * 50
    assert torch.equal(sample_next(logits, temperature, 0, 1.0, None), logits.argmax(-1))
    assert torch.equal(sample_next(logits, temperature, 5, 0.5, None), logits.argmax(-1))


def test_tiny_temperature_in_generate_and_cli(capsys, rt, tiny_artifact):
    ids = [[5, 6, 7, 8]]
    greedy = rt.generate(ids, max_new_tokens=6, temperature=0.0)
    assert rt.generate(ids, max_new_tokens=6, temperature=1e-38, seed=3) == greedy
    code, out, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--temperature", "1e-38",
                          "--max-new-tokens", "4", "--json")
    assert code == 0, err
    _, out2, _ = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--max-new-tokens", "4", "--json")
    assert json.loads(out)["token_ids"] == json.loads(out2)["token_ids"]


def test_speculative_runtime_gets_the_normalised_temperature(rt, monkeypatch):
    seen = []

    class FakeSpec:  # a decoding strategy (kiln.runtime.state.DecodeStrategy) that records the sampling
        def reserve(self, request):
            return rt.plain.reserve(request)

        def begin(self, request):
            seen.append(request.sampling.temperature)

        def step(self, request, active):
            for s in active:
                request.commit(s, [1])

        def end(self, request):
            pass

        def report(self, request):
            return {}

    monkeypatch.setattr(rt, "spec", FakeSpec())
    list(rt.stream_batch([[1, 2]], max_new_tokens=1, temperature=1e-30))
    list(rt.stream_batch([[1, 2]], max_new_tokens=1, temperature=0.7))
    assert seen == [0.0, 0.7]


# -- token ids -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ids,pattern", [
    (torch.zeros(0, 3, dtype=torch.long), "batch >= 1"),
    (torch.zeros(2, 0, dtype=torch.long), "length >= 1"),
    (torch.zeros(0, dtype=torch.long), "length >= 1"),
    ([], "non-empty"),
    ([[]], "length >= 1"),
    ([[None]], "integers"),
    ([None], "list of token ids"),
    ([[1.5, 2.0]], "integers"),
    ([[True, False]], "integers"),
    ([1.0, 2.0], "list of token ids"),
    (torch.tensor([[1.0, 2.0]]), "float32"),
    (torch.tensor([[1, 2]], dtype=torch.complex64), "complex64"),
    (torch.tensor([[True]]), "bool"),
    (torch.tensor([[1, 512]]), "[0, 512)"),
    (torch.tensor([[-1, 3]]), "[0, 512)"),
    ([[1, 2**70]], "[0, 512)"),
    ([[1, 2**40]], "[0, 512)"),
    ([torch.tensor([1.5])], "float32"),
    ("hello", "prompts must be"),
])
def test_bad_token_ids_are_refused(rt, ids, pattern):
    with pytest.raises(KilnError) as e:
        rt.generate(ids, max_new_tokens=2)
    assert pattern in str(e.value)
    if isinstance(ids, torch.Tensor):
        with pytest.raises(KilnError):
            rt.logits(ids)


def test_good_token_ids_still_work(rt):
    assert rt.generate(torch.tensor([[1, 2, 3]], dtype=torch.int32), max_new_tokens=2).shape == (1, 5)
    assert len(rt.generate([torch.tensor(1), 2, 3], max_new_tokens=2)[0]) == 5
    assert len(rt.generate([torch.tensor([1, 2]), [3]], max_new_tokens=1)) == 2


@pytest.mark.parametrize("kw,pattern", [
    ({"stop_ids": [-1]}, "stop id -1"),
    ({"stop_ids": [512]}, "stop id 512"),
    ({"stop_ids": [1.5]}, "stop id 1.5"),
    ({"stop_ids": 7}, "stop ids must be a list"),
    ({"seed": -1}, "seed must be"),
    ({"seed": 1.5}, "seed must be"),
    ({"seed": True}, "seed must be"),
    ({"temperature": -1e-30}, "temperature must be >= 0"),
    ({"temperature": float("inf")}, "finite"),
    ({"top_p": 0.0}, "top-p"),
    ({"max_new_tokens": 2.0}, "integer"),
])
def test_bad_generation_settings(rt, kw, pattern):
    with pytest.raises(KilnError, match=None) as e:
        rt.generate([[1, 2]], **{"max_new_tokens": 2, **kw})
    assert pattern in str(e.value)


# -- the artifact's format version -----------------------------------------------------------------

@pytest.mark.parametrize("version", [0, -1, 2, 10**6])
def test_format_version_must_be_a_supported_one(tiny_artifact, tmp_path, version):
    d = tmp_path / "a.kiln"
    shutil.copytree(tiny_artifact, d)
    m = json.loads((d / "manifest.json").read_text())
    m["format_version"] = version
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KilnError, match="format"):
        kiln.load(d)


# -- saving: races, interrupted replaces, leftovers -------------------------------------------------

def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_concurrent_saves_to_one_path(art, tmp_path):
    dest = tmp_path / "same.kiln"
    errors, done = [], []
    barrier = threading.Barrier(6)

    def save():
        barrier.wait()
        try:
            art.save(dest)
            done.append(1)
        except KilnError as e:  # acceptable: a clean refusal
            errors.append(e)
        except BaseException as e:  # noqa: BLE001 - a raw error is what this test catches
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(e, KilnError) for e in errors), errors
    assert done, errors
    assert kiln.load(dest).manifest["files"] == art.manifest["files"]
    assert _leftovers(tmp_path) == []


def _save_in_child(path, art_path, n):
    import kiln as k

    a = k.load(art_path)
    for _ in range(n):
        try:
            a.save(path)
        except KilnError:
            pass


def test_concurrent_saves_from_processes(tiny_artifact, tmp_path):
    import multiprocessing as mp

    dest = tmp_path / "same.kiln"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_save_in_child, args=(dest, tiny_artifact, 3)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    kiln.load(dest)
    assert _leftovers(tmp_path) == []


def _copy_artifact(tiny_artifact, dest):
    shutil.copytree(tiny_artifact, dest)
    (dest / "marker").write_text("the old one")  # unlisted in the manifest: still loads, and marks it
    return dest


@pytest.mark.parametrize("failure", [OSError(39, "Directory not empty"), KeyboardInterrupt()])
def test_a_failed_replace_puts_the_old_artifact_back(art, tiny_artifact, tmp_path, monkeypatch, failure):
    dest = _copy_artifact(tiny_artifact, tmp_path / "a.kiln")
    real = os.rename

    def rename(src, dst):
        if ".tmp-" in os.fspath(src):  # the new artifact into place
            raise failure
        return real(src, dst)

    monkeypatch.setattr(artifact_mod.os, "rename", rename)
    with pytest.raises(KilnError if isinstance(failure, OSError) else KeyboardInterrupt) as e:
        art.save(dest)
    if isinstance(failure, OSError):
        assert "another process" in str(e.value)
    assert (dest / "marker").read_text() == "the old one"
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(artifact_mod.os, "rename", real)
    kiln.load(dest)


def test_artifact_removed_by_someone_else_during_the_save(art, tiny_artifact, tmp_path, monkeypatch):
    dest = _copy_artifact(tiny_artifact, tmp_path / "a.kiln")
    real = os.rename

    def rename(src, dst):
        if ".old-" in os.fspath(dst):  # someone else removed the old one just before
            shutil.rmtree(src)
            raise FileNotFoundError(2, "No such file or directory")
        return real(src, dst)

    monkeypatch.setattr(artifact_mod.os, "rename", rename)
    art.save(dest)
    assert not (dest / "marker").exists() and kiln.load(dest)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_leftovers_are_cleaned_and_live_ones_kept(art, tiny_artifact, tmp_path):
    dest = _copy_artifact(tiny_artifact, tmp_path / "a.kiln")
    host, dead = artifact_mod._host_tag(), _dead_pid()
    stale = [f".a.kiln.tmp-{dead}-{host}-abcd1234", f".a.kiln.old-{dead}-{host}-abcd1234", ".a.kiln.tmp-legacy01"]
    live = [f".a.kiln.tmp-{os.getpid()}-{host}-abcd1234", f".a.kiln.tmp-{dead}-0badc0de-abcd1234",
            f".b.kiln.tmp-{dead}-{host}-abcd1234", "a.kiln.tmp-notours"]
    for name in stale + live:
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.safetensors").write_bytes(b"x")
    old = time.time() - artifact_mod.STALE_AFTER_S - 60
    for p in (tmp_path / ".a.kiln.tmp-legacy01", tmp_path / ".a.kiln.tmp-legacy01" / "weights.safetensors"):
        os.utime(p, (old, old))
    art.save(dest)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale), names
    assert set(live) <= names
    assert not (dest / "marker").exists()


def test_an_artifact_left_aside_by_a_killed_save_is_put_back(tiny_artifact, tmp_path):
    dead = _dead_pid()
    aside = tmp_path / f".a.kiln.old-{dead}-{artifact_mod._host_tag()}-abcd1234"
    _copy_artifact(tiny_artifact, aside)
    assert artifact_mod.recover_interrupted_save(tmp_path / "a.kiln")
    assert (tmp_path / "a.kiln" / "marker").read_text() == "the old one"
    assert _leftovers(tmp_path) == []
    assert not artifact_mod.recover_interrupted_save(tmp_path / "a.kiln")  # nothing to do now


def test_a_killed_replace_is_repaired_by_the_next_save(art, tiny_artifact, tmp_path):
    dead = _dead_pid()
    _copy_artifact(tiny_artifact, tmp_path / f".a.kiln.old-{dead}-{artifact_mod._host_tag()}-abcd1234")
    (tmp_path / f".a.kiln.tmp-{dead}-{artifact_mod._host_tag()}-abcd1234").mkdir()
    art.save(tmp_path / "a.kiln")
    assert _leftovers(tmp_path) == [] and kiln.load(tmp_path / "a.kiln")


# -- model configs ---------------------------------------------------------------------------------

def _model_dir(tmp_path, **overrides):
    from safetensors.torch import save_file

    cfg = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32,
           "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
           "vocab_size": 100, "max_position_embeddings": 256}
    cfg.update(overrides)
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    save_file({"x": torch.zeros(1)}, str(d / "model.safetensors"))
    return d


@pytest.mark.parametrize("overrides,pattern", [
    ({"max_position_embeddings": 0}, "max_position_embeddings must be a positive integer, got 0"),
    ({"max_position_embeddings": -5}, "max_position_embeddings must be a positive integer"),
    ({"max_position_embeddings": 2**21}, "limit of 1,048,576 positions"),
    ({"num_hidden_layers": 100000}, "num_hidden_layers = 100,000 is past kiln's limit of 512 layers"),
    ({"num_hidden_layers": 2.5}, "num_hidden_layers must be a positive integer"),
    ({"num_hidden_layers": True}, "num_hidden_layers must be a positive integer"),
    ({"num_attention_heads": 4096}, "limit of 1,024 attention heads"),
    ({"hidden_size": 70000}, "limit of 65,536 hidden size"),
    ({"vocab_size": 2**21}, "limit of 1,048,576 vocabulary size"),
    ({"intermediate_size": 2**21}, "intermediate size"),
    ({"num_key_value_heads": 3}, "not a multiple of num_key_value_heads"),
    ({"hidden_size": 33}, "not a multiple of the attention heads"),
])
def test_absurd_config_sizes_are_refused_at_once(tmp_path, overrides, pattern):
    d = _model_dir(tmp_path, **overrides)
    t0 = time.perf_counter()
    with pytest.raises(KilnError) as e:
        kiln.compile(str(d))
    assert pattern in str(e.value) and time.perf_counter() - t0 < 5


def test_gpt2_config_sizes(tmp_path):
    d = _model_dir(tmp_path, model_type="gpt2", n_layer=10**6)
    with pytest.raises(KilnError, match="n_layer = 1,000,000 is past"):
        kiln.compile(str(d))


def test_a_model_larger_than_memory_is_refused_before_building(tmp_path, monkeypatch):
    # within every limit, but about 137 GB of float32 weights
    d = _model_dir(tmp_path, hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
                   num_attention_heads=128, num_key_value_heads=8, vocab_size=128256)
    monkeypatch.setenv("KILN_MEMORY_LIMIT", str(8 << 30))
    t0 = time.perf_counter()
    with pytest.raises(KilnError, match=r"float32 weights \(~[0-9,]+ parameters\) would need .* GiB"):
        kiln.compile(str(d))
    assert time.perf_counter() - t0 < 5


# -- the command line --------------------------------------------------------------------------------

def test_compile_refuses_bad_output_paths_before_loading(capsys, tmp_path):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "x").write_text("mine")
    cases = [(tmp_path / "afile", "refusing to overwrite"), (tmp_path / "adir", "refusing to overwrite"),
             (tmp_path / "no" / "such" / "a.kiln", "does not exist"), (tmp_path / "afile" / "a.kiln", "not a directory")]
    for out, pattern in cases:
        t0 = time.perf_counter()
        code, _, err = _run(capsys, "compile", "llama-tiny", "-o", out)
        _assert_clean_error(code, err, pattern)
        assert "loading" not in err and time.perf_counter() - t0 < 2, err
    assert (tmp_path / "afile").read_text() == "mine" and (tmp_path / "adir" / "x").read_text() == "mine"
    code, _, err = _run(capsys, "compile", "llama-tiny", "-o", tmp_path / "ok.kiln", "--dump-dir", tmp_path / "afile")
    _assert_clean_error(code, err, "cannot write IR dumps")
    assert "loading" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_compile_refuses_an_unwritable_directory(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = _run(capsys, "compile", "llama-tiny", "-o", ro / "a.kiln")
        _assert_clean_error(code, err, "not writable")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("argv,pattern", [
    (["run", "{art}", "--prompt", "hi", "--max-new-tokens", "-1"], "max-new-tokens must be >= 0"),
    (["run", "{art}", "--prompt", "hi", "--top-p", "2"], "top-p must be in (0, 1]"),
    (["run", "{art}", "--prompt", "hi", "--top-k", "-1"], "top-k must be >= 0"),
    (["run", "{art}", "--prompt", "hi", "--temperature", "-1"], "temperature must be >= 0"),
    (["run", "{art}", "--prompt", "hi", "--seed", "-1"], "seed must be"),
    (["run", "{art}", "--prompt", "hi", "--seed", str(2**64)], "seed must be"),
    (["run", "{art}", "--prompt", "hi", "--stop-id", "-3"], "stop id -3"),
    (["run", "{art}", "--prompt", "hi", "--stop-id", "100000"], "stop id 100000"),
    (["run", "{art}", "--prompt", "hi", "--cache-tokens", "0"], "KV cache"),
    (["run", "{art}", "--prompt", "hi", "--prefill-chunk", "0"], "prefill_chunk"),
    (["run", "{art}", "--prompt", ""], "prompt is empty"),
    (["run", "{tmp}", "--prompt", "hi"], "not a kiln artifact"),
    (["run", "{tmp}/afile", "--prompt", "hi"], "not a kiln artifact"),
    (["run", "{tmp}/missing", "--prompt", "hi"], "no artifact"),
    (["dump", "{art}", "--program", "nope"], "no program 'nope'"),
    (["dump", "{tmp}/afile"], "not a kiln artifact"),
    (["bench", "{art}", "--prompt-len", "0"], "--prompt-len >= 1"),
    (["bench", "{art}", "--new-tokens", "-1"], "--new-tokens >= 2"),
    (["bench", "{art}", "--repeats", "0"], "--repeats >= 1"),
    (["bench", "{art}", "--threads", "0"], "--threads must be >= 1"),
    (["eval", "{art}", "--ctx", "0"], "--stride"),
    (["eval", "{art}", "--batch", "0"], "--batch must be >= 1"),
    (["eval", "{art}", "--max-bytes", "-1"], "--max-bytes must be positive"),
    (["compile", "llama-tiny", "-o", "{tmp}/x.kiln", "--pipeline", "bogus"], "unknown pipeline 'bogus'"),
    (["compile", "llama-tiny", "-o", "{tmp}/x.kiln", "--passes", "bogus"], "unknown pass 'bogus'"),
    (["compile", "llama-tiny", "-o", "{tmp}/x.kiln", "--seed", "-1"], "seed must be"),
    (["compile", "{tmp}/afile", "-o", "{tmp}/x.kiln"], "is a file"),
    (["compile", "{tmp}", "-o", "{tmp}/x.kiln"], "has no config.json"),
    (["compile", "nonexistent-model", "-o", "{tmp}/x.kiln"], "no model at"),
    (["demo", "--model", "llama-tiny", "--max-new-tokens", "-1"], "max-new-tokens must be >= 0"),
    (["demo", "--model", "llama-tiny", "--prompt", ""], "prompt is empty"),
])
def test_bad_values_give_one_line_and_exit_1(capsys, tmp_path, tiny_artifact, argv, pattern):
    (tmp_path / "afile").write_text("x")
    argv = [a.format(art=tiny_artifact, tmp=tmp_path) for a in argv]
    t0 = time.perf_counter()
    code, _, err = _run(capsys, *argv)
    _assert_clean_error(code, err, pattern)
    assert "capturing" not in err and "compiling" not in err, err  # found before any heavy work
    assert time.perf_counter() - t0 < 10
    assert not (tmp_path / "x.kiln").exists()


@pytest.mark.parametrize("argv,pattern", [
    (["compile", "llama-tiny", "-o", "x", "--target", "bogus"], "invalid choice: 'bogus'"),
    (["run", "{art}"], "required: --prompt"),
    (["run", "{art}", "--prompt", "hi", "--max-new-tokens", "abc"], "invalid int value"),
    (["run", "{art}", "--prompt", "hi", "--bogus"], "unrecognized arguments"),
    (["bench", "{art}", "--baseline", "bogus"], "invalid choice"),
    (["dump", "{art}", "--format", "bogus"], "invalid choice"),
    (["bogus"], "invalid choice"),
    ([], "required"),
])
def test_unparsable_command_lines_give_one_line_and_exit_2(capsys, tiny_artifact, argv, pattern):
    code, _, err = _run(capsys, *[a.format(art=tiny_artifact) for a in argv])
    _assert_clean_error(code, err, pattern, exit_code=2)
    assert "usage:" not in err


def test_os_errors_of_the_environment_are_not_internal_errors(capsys, monkeypatch, tiny_artifact):
    import errno

    def denied(path, **kw):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(kiln, "load", denied)
    code, _, err = _run(capsys, "dump", tiny_artifact)
    _assert_clean_error(code, err, "Permission denied")

    def bug(path, **kw):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere")

    monkeypatch.setattr(kiln, "load", bug)  # not a known environment errno: still reported as kiln's bug
    code, _, err = _run(capsys, "dump", tiny_artifact)
    assert code == 70 and "internal error" in err


def test_loading_a_path_a_killed_save_left_aside_puts_it_back(tiny_artifact, tmp_path):
    dead = _dead_pid()
    _copy_artifact(tiny_artifact, tmp_path / f".a.kiln.old-{dead}-{artifact_mod._host_tag()}-abcd1234")
    art = kiln.load(tmp_path / "a.kiln")
    assert (tmp_path / "a.kiln" / "marker").read_text() == "the old one" and art.path == tmp_path / "a.kiln"
    with pytest.raises(KilnError, match="no artifact at"):
        kiln.load(tmp_path / "b.kiln")


@pytest.mark.parametrize("flag,value,message", [("--spec-k", "99", "k (the draft length)"),
                                                ("--spec-adaptive", "1.5", "adaptive"),
                                                ("--spec-tree", "-1", "tree"), ("--spec-skip", "-2", "skip")])
def test_bad_speculative_options_are_refused_before_the_model_is_loaded(capsys, tmp_path, monkeypatch, flag, value,
                                                                        message):
    import kiln.frontend

    def never(*a, **k):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(kiln.frontend, "import_model", never)

    code = main(["compile", "llama-tiny", "-o", str(tmp_path / "x.kiln"), "--draft", "ngram", flag, value, "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("kiln: error: speculative:") and message in err, err
    assert len(err.strip().splitlines()) == 1
