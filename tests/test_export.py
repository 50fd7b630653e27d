"""kiln export: ONNX models of forward/prefill/decode checked by onnx.checker (full shape inference) and
run by ONNX Runtime against kiln (logits to 1e-4 on fresh random ids, greedy tokens identical to kiln's
runtime through the exported KV cache) for every preset family, both cache layouts and int8 / int4
weights; unsupported ops refused in one line; the CLI; MLIR through torch-mlir; the docs' example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kiln.codegen.cpu import CpuProgram
from kiln.errors import KilnError
from kiln.export import export
from kiln.ir.types import Ref
from kiln.passes.manager import PassManager, parse_passes, pipeline_passes
from kiln.runtime.artifact import Artifact

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

FAMILIES = ["llama-tiny", "llama3-tiny", "mistral-tiny", "qwen2-tiny", "gpt2-tiny"]
CLEANUP = "canonicalize,fold-constants,cse,dce,fuse-qkv,fuse-gate-up,canonicalize,cse,dce"


def _artifact(imported, preset: str, passes: str | None = None) -> Artifact:
    imp = imported(preset)
    module = imp.module.clone()
    PassManager(parse_passes(passes) if passes else pipeline_passes("default"), verify=True).run(module)
    manifest = {"source": {"model": f"preset:{preset}", "family": imp.loaded.family, "seed": 0},
                "model": dict(module.meta), "pipeline": {"name": "test", "passes": []}, "passes": [],
                "target": "cpu"}
    return Artifact(module, manifest, dict(imp.loaded.tokenizer_files), [])


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _prompts(lengths, vocab):
    return [torch.randint(3, vocab, (n,)).tolist() for n in lengths]


def check_export(art: Artifact, out, tol: float = 1e-4, new_tokens: int = 8) -> dict:
    """Export ``art`` to ONNX in ``out`` and check it against kiln: the checker, forward logits, prefill and
    decode logits step by step against kiln's programs (same cache contents), and greedy tokens of a
    batch of two prompts against kiln's runtime."""
    from kiln.export.ort import OrtGenerator

    desc = export(art, "onnx", out)
    for name in ("forward", "prefill", "decode"):
        onnx.checker.check_model(str(out / f"{name}.onnx"), full_check=True)
    vocab = art.module.meta["vocab_size"]
    rt = art.runtime()
    ids = torch.randint(0, vocab, (2, 11))
    got = _session(out / "forward.onnx").run(None, {"input_ids": ids.numpy()})[0]
    np.testing.assert_allclose(got, rt.logits(ids).numpy(), atol=tol, rtol=0)

    # prefill + 3 decode steps, kiln's programs and ORT's side by side on the same cache
    gen = OrtGenerator(out, threads=2)
    prompts = _prompts((6, 3), vocab)
    table, caches = gen.new_cache(2, 16)
    kiln_caches = {k: torch.from_numpy(v.copy()) for k, v in caches.items()}
    pre, dec = (CpuProgram(art.module[p], art.module.weights) for p in ("prefill", "decode"))
    feed = {"input_ids": np.array([prompts[0] + prompts[1]]), "pos": np.array([0, 1, 2, 3, 4, 5, 0, 1, 2]),
                "seq": np.array([0] * 6 + [1] * 3), "block_table": table, "logits_at": np.array([5, 8])}
    lengths = [6, 3]
    for step in range(4):
        program, session = (pre, gen.prefill) if step == 0 else (dec, gen.decode)
        t = {k: torch.from_numpy(np.asarray(v)) for k, v in feed.items()}
        args = [t[a.hint] if a.hint in t else kiln_caches[a.hint] for a in program.program.args]
        want = program(*args)[0]  # writes kiln_caches in place
        got = gen._step(session, feed, caches)
        np.testing.assert_allclose(got, want.numpy(), atol=tol, rtol=0, err_msg=f"step {step}")
        toks = want[0].argmax(-1).numpy()
        feed = {"input_ids": toks[None], "pos": np.array(lengths), "seq": np.array([0, 1]), "block_table": table}
        lengths = [n + 1 for n in lengths]

    prompts = _prompts((5, 9), vocab)
    want = rt.generate(prompts, max_new_tokens=new_tokens, stop_at_eos=False)
    assert gen.generate(prompts, new_tokens) == [list(w) for w in want]
    return desc


@pytest.mark.parametrize("preset", FAMILIES)
def test_every_family_exports_and_matches_through_onnxruntime(tmp_path, import_preset, preset):
    desc = check_export(_artifact(import_preset, preset), tmp_path / "onnx")
    assert sorted(desc["programs"]) == ["decode", "forward", "prefill"]
    dec = desc["programs"]["decode"]
    assert dec["cache"] == {"k_cache": "k_cache_out", "v_cache": "v_cache_out"}
    assert [o["name"] for o in dec["outputs"]] == ["logits", "k_cache_out", "v_cache_out"]
    assert dec["contrib_ops"] == []  # float32: standard opset only
    assert (tmp_path / "onnx" / "tokenizer" / "tokenizer.json").is_file()
    spec = json.loads((tmp_path / "onnx" / "kiln_export.json").read_text())
    assert spec["kv_cache"]["layout"] == "contiguous" and spec["opset"] == 21


def test_a_bundled_model_exports_and_matches(tmp_path, import_preset):
    draft = str(Path(__file__).resolve().parent.parent / "examples" / "models" / "kiln-code-draft")
    desc = check_export(_artifact(import_preset, draft), tmp_path / "onnx")
    assert desc["source"]["family"] == "llama"


def test_paged_cache_exports_and_matches(tmp_path, import_preset):
    # blocks of 8: the first prefill sees positions < 8 over two blocks (each block cut to max(pos)+1 offsets),
    # later calls positions beyond one block (blocks read whole)
    art = _artifact(import_preset, "llama-tiny", f"{CLEANUP},kv-cache{{layout=paged,block_size=8}},canonicalize,dce")
    desc = check_export(art, tmp_path / "onnx")
    assert desc["kv_cache"]["layout"] == "paged"


@pytest.mark.parametrize("quant", ["format=int8", "format=int4,group_size=32",
                                   "format=int4,group_size=64,symmetric=false"])
def test_quantized_weights_export_as_matmulnbits_and_match(tmp_path, import_preset, quant):
    # group 64 of llama-tiny's 160-wide down projection leaves a narrower last group
    art = _artifact(import_preset, "llama-tiny", f"{CLEANUP},quantize-weights{{{quant}}},cse,dce,kv-cache,dce")
    desc = check_export(art, tmp_path / "onnx")
    assert desc["programs"]["decode"]["contrib_ops"] == ["MatMulNBits"]
    size = (tmp_path / "onnx" / "weights.bin").stat().st_size
    floats = sum(v.numel() * 4 for v in _artifact(import_preset, "llama-tiny").module.weights.values())
    assert size < 0.5 * floats  # the weights stay quantized in the file


def test_the_int8_kv_cache_exports_with_its_scales_and_matches(tmp_path, import_preset):
    art = _artifact(import_preset, "llama-tiny", f"{CLEANUP},kv-cache,quantize-kv,canonicalize,dce")
    desc = check_export(art, tmp_path / "onnx")
    dec = desc["programs"]["decode"]
    assert dec["cache"] == {"k_cache": "k_cache_out", "v_cache": "v_cache_out", "k_scale": "k_scale_out",
                            "v_scale": "v_scale_out"}
    assert {i["name"]: i["dtype"] for i in dec["inputs"]}["k_cache"] == "i8" and dec["contrib_ops"] == []


def test_the_three_programs_share_one_weight_file(tmp_path, import_preset):
    art = _artifact(import_preset, "llama-tiny")
    export(art, "onnx", tmp_path / "o")
    total = sum(v.numel() * v.element_size() for v in art.module.weights.values())
    assert (tmp_path / "o" / "weights.bin").stat().st_size < total + 64 * len(art.module.weights)
    for p in ("forward", "prefill", "decode"):
        assert (tmp_path / "o" / f"{p}.onnx").stat().st_size < 200_000  # graph only, no weights inside


def test_an_op_without_lowering_is_refused_in_one_line_and_nothing_is_written(tmp_path, import_preset):
    art = _artifact(import_preset, "llama-tiny")
    fwd = art.module["forward"]
    logits = fwd.outputs[0]
    op = fwd.create("kiln.aten", [logits], {"target": "aten::cumsum.default", "args": [Ref(0), -1]},
                    result_types=[logits.type])  # a generic ATen op: no ONNX lowering
    fwd.set_outputs([op.result])
    with pytest.raises(KilnError) as e:
        export(art, "onnx", tmp_path / "o")
    msg = str(e.value)
    assert "\n" not in msg and "kiln.aten(aten::cumsum.default)" in msg and "'forward'" in msg
    assert not (tmp_path / "o").exists()


def test_cli_exports_and_refuses_in_one_line(tmp_path, tiny_artifact, capsys):
    from kiln.cli import main

    out = tmp_path / "x"
    assert main(["export", str(tiny_artifact), "--format", "onnx", "-o", str(out), "-q"]) == 0
    assert "forward, prefill, decode" in capsys.readouterr().out
    assert main(["export", str(tiny_artifact), "--format", "onnx", "-o", str(out), "-q"]) == 0  # replaces it
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    for argv in (["export", str(tiny_artifact), "--format", "onnx", "-o", str(busy)],
                 ["export", str(tmp_path / "nothing"), "--format", "onnx", "-o", str(tmp_path / "y")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("kiln: error: ") and err.count("\n") == 1
    assert (busy / "mine.txt").read_text() == "keep"
    with pytest.raises(SystemExit) as e:
        main(["export", str(tiny_artifact), "--format", "tflite", "-o", str(out)])
    assert e.value.code == 2


# -- MLIR through torch-mlir ----------------------------------------------------------------------------

@pytest.mark.parametrize("pipeline", ["default", "int4"])
def test_the_traced_programs_match_kiln_cache_included(import_preset, pipeline):
    """What torch-mlir imports is ProgramFunction traced: eagerly it gives kiln's logits and caches."""
    from kiln.export.mlir import ProgramFunction, sample_inputs

    quant = ",quantize-weights{format=int4,group_size=32},cse,dce" if pipeline == "int4" else ""
    art = _artifact(import_preset, "llama-tiny", f"{CLEANUP}{quant},kv-cache{{layout=paged,block_size=4}},dce")
    m = art.module
    for name in ("forward", "prefill", "decode"):
        p = m[name]
        wn = sorted({op.attrs["name"] for op in p.walk("kiln.weight")})
        inputs, _ = sample_inputs(p, m.meta)
        got = ProgramFunction(p, wn)(*[m.weights[w] for w in wn], *[t.clone() for t in inputs])
        want = CpuProgram(p, m.weights, native=False)(*inputs)  # writes the caches in ``inputs``
        caches = [t for t, a in zip(inputs, p.args) if a.hint in ("k_cache", "v_cache")]
        assert len(got) == 1 + len(caches)
        for g, w in zip(got, list(want) + caches):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=0)


def test_mlir_torch_and_linalg_parse_and_verify(tmp_path, import_preset):
    from torch_mlir import ir

    from kiln.export.mlir import write_mlir

    art = _artifact(import_preset, "llama-tiny")
    for fmt, program in (("mlir-torch", "forward"), ("mlir-linalg", "decode")):
        out = tmp_path / fmt
        out.mkdir()
        files, extra = write_mlir(art.module, [program], out, fmt, lambda msg: None)
        text = (out / f"{program}.mlir").read_text()
        ctx = ir.Context()
        if fmt == "mlir-torch":
            from torch_mlir.dialects import torch as torch_d

            torch_d.register_dialect(ctx)
            assert "torch.aten.mm" in text or "torch.aten.matmul" in text
        else:  # upstream dialects only: parses in a bare context
            assert "torch." not in text and "tm_tensor" not in text and "linalg.matmul" in text
        assert ir.Module.parse(text, ctx).operation.verify()
        assert f"func.func @{program}(" in text
        assert files[program]["outputs"] == (3 if program == "decode" else 1)
        assert extra["weights"] == "weights.safetensors" and (out / "weights.safetensors").is_file()


def test_mlir_refuses_the_int8_cache_ops_in_one_line(tmp_path, import_preset):
    art = _artifact(import_preset, "llama-tiny", f"{CLEANUP},kv-cache,quantize-kv,dce")
    with pytest.raises(KilnError) as e:
        export(art, "mlir-linalg", tmp_path / "m")
    assert "\n" not in str(e.value) and "kiln.cache_write_q8" in str(e.value)
    assert not (tmp_path / "m").exists()


def test_the_docs_example_generates_what_kiln_does(tmp_path, tiny_artifact, monkeypatch, capsys):
    import re
    import runpy

    import kiln

    doc = (Path(__file__).resolve().parent.parent / "docs" / "export.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 15
    art = kiln.load(tiny_artifact)
    export(art, "onnx", tmp_path / "llama.onnx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "example.py").write_text(code)
    scope = runpy.run_path(str(tmp_path / "example.py"))
    rt = art.runtime()
    prompt = rt.encode("Hello, world")
    want = rt.generate([prompt], max_new_tokens=16, stop_at_eos=False)[0]
    assert scope["ids"] == list(want)
    assert capsys.readouterr().out.strip() == rt.tokenizer.decode(list(want)).strip()


def test_bench_against_ort_genai_and_the_onnx_export(tiny_artifact):
    """kiln bench --baseline ort on llama-tiny: both ORT sides produce kiln's greedy tokens (speeds are for
    docs/benchmarks.md, not checked here)."""
    import kiln
    from kiln.bench_ort import bench_ort, format_table, genai_precision

    art = kiln.load(tiny_artifact)
    assert genai_precision(art.module) == "fp32"
    r = bench_ort(art, prompt_len=8, new_tokens=6, repeats=1, threads=2)
    assert r["greedy_tokens_match"] and r["onnx_ort_tokens_match"]
    assert r["genai_precision"] == "fp32" and r["baseline"] == "ort"
    assert "ORT GenAI" in format_table(r)
