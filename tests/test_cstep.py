"""The CPU target's C code generator (kiln/codegen/cstep.py): every compiled program against the reference
executor on fresh random inputs (ragged batches of two sequences, GQA, both cache layouts, float32, int8
and int4 weights), with the arena and the outputs poisoned before each call; the memory plan never lets two
live buffers overlap; bad data is an ExecError naming the program; and a runtime decodes the same greedy
tokens with the generated steps as with the interpreter, plain and with each drafter."""

from __future__ import annotations

import subprocess

import pytest
import sympy
import torch

import kiln
from kiln.codegen import cstep, native
from kiln.codegen.cpu import CpuProgram
from kiln.codegen.cstep import cpu_program
from kiln.errors import ExecError

pytestmark = pytest.mark.skipif(not cstep.enabled(), reason="the native kernels are off or cannot be built here")

_ARTS: dict = {}


def _art(model: str, pipeline: str = "default", draft: str | None = None):
    key = (model, pipeline, draft)
    if key not in _ARTS:
        _ARTS[key] = kiln.compile(model, pipeline=pipeline, draft=draft, seed=3)
    return _ARTS[key]


def _inputs(rt, gen: torch.Generator, prefill: bool):
    """A ragged batch of two sequences: 12 tokens at positions 0-11 and 8 at 5-12, in blocks placed out of
    order (paged) or rows 1 and 3 (contiguous); caches of random values."""
    kv = rt.kv
    nb = 4
    mb = 1 if kv.block_size >= 64 else 64 // kv.block_size
    table = torch.tensor([[1], [3]]) if mb == 1 else torch.tensor([[2, 0, 1, 3], [3, 1, 0, 2]])[:, :mb]
    pos = torch.cat([torch.arange(12), torch.arange(5, 13)])
    seq = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(8, dtype=torch.long)])
    ids = torch.randint(0, rt.vocab_size, (1, 20), generator=gen)
    shape = (kv.layers, nb, kv.kv_heads, kv.block_size, kv.head_dim)
    extra = (torch.tensor([11, 19, 3]),) if prefill else ()
    if rt.module["decode"].args[4].type.dtype.value == "i8":  # an int8 cache: codes, then their scales
        kc, vc = (torch.randint(-127, 128, shape, generator=gen, dtype=torch.int8) for _ in range(2))
        ks, vs = (torch.rand(shape[:4], generator=gen) / 50 for _ in range(2))
        return ids, pos, seq, table, kc, vc, ks, vs, *extra
    kc, vc = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    return ids, pos, seq, table, kc, vc, *extra


CASES = [("llama-tiny", "default"), ("llama-tiny", "paged"), ("mistral-tiny", "default"), ("qwen2-tiny", "paged"),
         ("gpt2-tiny", "default"), ("llama3-tiny", "default"), ("llama-tiny", "int8"), ("llama-tiny", "int4"),
         ("qwen2-tiny", "int8"), ("llama-tiny", "int8-kv"), ("mistral-tiny", "int8-kv")]


@pytest.mark.parametrize(("preset", "pipeline"), CASES)
def test_generated_steps_match_the_reference_executor(preset, pipeline):
    art = _art(preset, pipeline)
    rt = art.runtime(speculative=False)
    weights = rt.module.weights
    gen = torch.Generator().manual_seed(7)
    for name in ("prefill", "decode"):
        prog = rt.module[name]
        step = cstep.NativeStep(prog, weights)
        assert step.interpreted_ops == 0, f"{name}: every op compiles"
        step.poison = True
        ref = CpuProgram(prog, weights, native=False)
        args = _inputs(rt, gen, name == "prefill")
        mine = [a.clone() for a in args]
        got = step(*mine)[0]
        want = ref(*args)[0]
        assert not got.isnan().any()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)
        caches = [k for k, a in enumerate(prog.args) if "cache" in a.hint or "scale" in a.hint]
        for k in caches:  # the caches (int8: codes and scales), written in place
            torch.testing.assert_close(mine[k], args[k], rtol=1e-5, atol=1e-5)
        for again in range(2):  # the arena is reused (and re-poisoned) across calls, at other sizes too
            one = [a[..., :1] if k in (0, 1, 2) else a for k, a in enumerate(_inputs(rt, gen, False)[:2 + len(caches) + 2])]
            if name == "prefill":
                one.append(torch.tensor([0]))
            theirs = [a.clone() for a in one]
            torch.testing.assert_close(step(*one)[0], ref(*theirs)[0], rtol=1e-5, atol=2e-5)


def test_the_memory_plan_never_overlaps_live_buffers():
    rt = _art("llama-tiny").runtime(speculative=False)
    for gen in cstep.generate(rt.module["prefill"], rt.module.weights):
        plan = gen.plan
        assert plan.buffers and plan.total
        for n in (1, 7, 300):
            env = {s.name: n for s in plan.syms}
            spans = []
            for b in plan.buffers:
                start = int(plan.expr(b.offset).subs({s: n for s in plan.syms}))
                size = int(sympy.sympify(b.numel).subs({s: n for s in plan.syms})) * cstep._ITEMSIZE[b.dtype]
                assert start % cstep.ALIGN == 0 and start + size <= plan.bytes(env)
                spans.append((b, start, start + size))
            for i, (a, s0, e0) in enumerate(spans):
                for b, s1, e1 in spans[i + 1:]:
                    if a.first <= b.last and b.first <= a.last:  # live at once: apart
                        assert e0 <= s1 or e1 <= s0, (a.name, b.name, n)
        shared = plan.bytes({s.name: 64 for s in plan.syms})
        apart = int(plan.expr(plan.unshared).subs({s: 64 for s in plan.syms}))
        assert shared < apart / 2  # sharing by liveness at least halves the arena
        assert "arena:" in plan.report({"N": 64})


def test_bad_token_ids_and_positions_are_exec_errors():
    rt = _art("llama-tiny").runtime(speculative=False)
    step = cstep.NativeStep(rt.module["decode"], rt.module.weights)
    ids, pos, seq, table, kc, vc = _inputs(rt, torch.Generator().manual_seed(1), False)
    bad = ids.clone()
    bad[0, 3] = rt.vocab_size + 5
    with pytest.raises(ExecError, match=r"decode.*token id out of range.*token 3"):
        step(bad, pos, seq, table, kc, vc)
    with pytest.raises(ExecError, match="outside the block table"):
        step(ids, pos + 10_000, seq, table, kc, vc)
    with pytest.raises(ExecError, match="outside the block table"):
        step(ids, pos, seq + 5, table, kc, vc)


def test_the_generated_source_compiles_without_warnings():
    cc = native._compiler()
    if cc is None:
        pytest.skip("no C compiler")
    rt = _art("gpt2-tiny", "int8").runtime(speculative=False)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / cstep.HEADER).write_text(cstep.header())
        for k, name in enumerate(("decode", "forward")):  # (forward: several runs in one file)
            src = Path(tmp) / f"s{k}.c"
            src.write_text(cstep.program_source(name, [g.source for g in cstep.generate(rt.module[name],
                                                                                       rt.module.weights)]))
            r = subprocess.run([cc, *native.flags(native.library().kiln_isa), "-Wall", "-Wextra",
                                "-Wmissing-prototypes", "-Werror", "-I", tmp, "-c", str(src), "-o", str(src) + ".o"],
                               capture_output=True, text=True, check=False)
            assert r.returncode == 0, r.stderr[-2000:]


def test_a_runtime_runs_its_programs_as_generated_steps():
    rt = _art("llama-tiny", "default", "ngram").runtime()
    assert rt.decode_prog.backend == "native step" and rt.prefill.backend == "native step"
    assert rt.decode_prog.interpreted_ops == 0
    verify = rt.spec.verify  # greedy: one call, the accept step and the cache commit included
    assert verify.backend == "native step" and verify.greedy and verify.interpreted_ops == 0
    assert len(verify.parts) == 1 and False not in verify.plans  # the sampled plan is built on first use
    rt.generate([[1, 2, 3, 1, 2]], max_new_tokens=8, temperature=0.9, seed=1)
    sampled = verify.plans[False]  # the accept step draws with torch between two compiled runs
    assert len(sampled) == 3 and isinstance(sampled[0], cstep._Compiled) and not isinstance(sampled[1], cstep._Compiled)
    assert rt.forward.interpreted_ops > 0  # (kiln.attention and kiln.positions are not compiled)


@pytest.mark.parametrize(("draft", "pipeline"), [(None, "default"), (None, "int8-kv"), ("ngram", "paged"),
                                                 ("self", "int8-kv"), ("llama-tiny", "int4")])
def test_greedy_tokens_equal_the_interpreters(draft, pipeline, monkeypatch):
    art = _art("llama-tiny", pipeline, draft)
    gen = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, 500, (n,), generator=gen).tolist() for n in (9, 17, 30)]
    compiled = art.runtime()
    assert compiled.decode_prog.backend == "native step" and compiled.decode_prog.interpreted_ops == 0
    if compiled.spec is not None:
        assert compiled.spec.verify.interpreted_ops == 0  # greedy: the whole verify compiles, int8 KV too
    want_spec = draft is not None
    assert (compiled.spec is not None) == want_spec
    got = compiled.generate(prompts, max_new_tokens=24, stop_at_eos=False)
    monkeypatch.setenv("KILN_NATIVE_STEP", "0")
    interp = art.runtime()
    assert interp.decode_prog.backend.startswith("interpreter (KILN_NATIVE_STEP=0")
    assert interp.generate(prompts, max_new_tokens=24, stop_at_eos=False) == got


def test_kiln_native_step_0_or_no_kernels_falls_back_to_the_interpreter(monkeypatch):
    prog = _art("llama-tiny").runtime(speculative=False).module["decode"]
    monkeypatch.setenv("KILN_NATIVE_STEP", "0")
    assert isinstance(cpu_program(prog, {}), CpuProgram)
    monkeypatch.setenv("KILN_NATIVE_STEP", "1")
    monkeypatch.setattr(native, "library", lambda isa=None: None)
    p = cpu_program(prog, {})
    assert isinstance(p, CpuProgram) and p.backend == "interpreter (the native kernels are off)"
    monkeypatch.undo()
    with native.using("portable"):  # 4-float panels lose to torch's GEMM: the interpreter keeps torch's linears
        p = cpu_program(prog, {})
    assert isinstance(p, CpuProgram) and "portable build's 4-float panels lose" in p.backend


def test_one_step_called_from_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    rt = _art("llama-tiny").runtime(speculative=False)
    prog = rt.module["decode"]
    step, ref = cstep.NativeStep(prog, rt.module.weights), CpuProgram(prog, rt.module.weights, native=False)
    cases = [_inputs(rt, torch.Generator().manual_seed(s), False) for s in range(8)]
    cases = [c if s % 2 else tuple(a[..., :1] if k < 3 else a for k, a in enumerate(c)) for s, c in enumerate(cases)]
    want = [ref(*[a.clone() for a in c])[0] for c in cases]
    with ThreadPoolExecutor(4) as pool:  # each thread its own arena and pointer tables
        for _ in range(3):
            got = list(pool.map(lambda c: step(*[a.clone() for a in c])[0], cases))
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-5, atol=2e-5)


def test_every_kernel_variant_builds_and_matches_the_reference():
    from kiln.codegen import variants
    from kiln.errors import KilnError

    rt = _art("llama-tiny", "paged").runtime(speculative=False)
    prog, weights = rt.module["decode"], rt.module.weights
    args = _inputs(rt, torch.Generator().manual_seed(11), False)
    want = CpuProgram(prog, weights, native=False)(*[a.clone() for a in args])[0]
    sources = set()
    count = 0
    for kind in variants.KINDS:
        for c in variants.candidates(kind, {"context": 64, "macs": 1 << 20}):
            step = cstep.NativeStep(prog, weights, config={kind: c})
            step.poison = True
            torch.testing.assert_close(step(*[a.clone() for a in args])[0], want, rtol=1e-5, atol=2e-5)
            sources.add(cstep.program_source("decode", [g.source for g in step.sources], step.config))
            count += 1
    assert count >= 12 and len(sources) == count - 2  # each configuration its own source, but the defaults' (x3)
    assert variants.candidates("attention", {"context": 20}) == [c for c in variants.candidates("attention")
                                                                 if c["chunk"] <= 16]
    with pytest.raises(KilnError, match="not one of"):
        variants.resolve({"attention": {"chunk": 48}})
    with pytest.raises(KilnError, match="unknown kernel kind"):
        variants.resolve({"matmul": {}})
