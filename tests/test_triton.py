"""The Triton target under TRITON_INTERPRET=1 on the CPU: the group-kernels pass, every generated and
template kernel against the IR reference on fresh random inputs with poisoned (NaN) outputs, ragged
lengths, GQA ratios and non-power-of-two sizes, and a compiled model end to end (same greedy tokens as
the CPU path)."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported: kernels run on CPU tensors

import pytest
import torch
import triton  # noqa: F401 - a test dependency: its absence is a failure, not a skip
from _compare import assert_generations_match, assert_outputs_close

from kiln.codegen.cpu import CpuProgram
from kiln.codegen.triton import generate_program
from kiln.codegen.triton.program import (
    TritonProgram,
    launch_attention,
    launch_cache_attention,
    launch_cache_write,
    load_source,
)
from kiln.codegen.triton.templates import ATTENTION_SOURCE, CACHE_ATTENTION_SOURCE, CACHE_WRITE_SOURCE
from kiln.errors import KilnError
from kiln.ir.core import Module, Program
from kiln.ir.ops import FROM_TORCH
from kiln.ir.registry import lookup
from kiln.ir.types import DType, TensorType
from kiln.ir.verifier import verify_module
from kiln.passes.kernel_fusion import kernel_groups
from kiln.passes.manager import PassManager, parse_passes

F32 = DType.f32


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def build(args, weights=None):
    m = Module(weights=dict(weights or {}))
    p = m.add(Program("forward"))
    return m, p, [p.add_arg(TensorType(F32, s), h) for h, s in args]


def w_op(p, m, name):
    t = m.weights[name]
    return p.create("kiln.weight", [], {"name": name}, result_types=[TensorType(FROM_TORCH[t.dtype], t.shape)]).result


def group(m: Module) -> None:
    PassManager(parse_passes("group-kernels"), verify=True, keep_ir=False).run(m)


def check_program(m: Module, *inputs, tol=1e-5, expect: dict | None = None) -> TritonProgram:
    """The Triton program (outputs poisoned) equals the CPU reference executor on ``inputs``."""
    verify_module(m)
    tp = TritonProgram(m["forward"], m.weights, poison=True)
    got = tp(*inputs)
    want = CpuProgram(m["forward"], m.weights, native=False)(*inputs)
    assert_outputs_close(got, want, rtol=tol, atol=tol)
    if expect is not None:
        assert tp.launched == expect
    return tp


# ---------------------------------------------------------------------------
# the pass


def labels(p: Program) -> dict[str, list[str]]:
    return {lab: [o.name.removeprefix("kiln.") for o in ops] for lab, ops in kernel_groups(p)}


def test_residual_add_and_rms_norm_are_one_kernel_and_a_cycle_is_refused():
    g = gen(0)
    m, p, (x, r) = build([("x", ("B", "T", 50)), ("r", ("B", "T", 50))],
                         {"n1": torch.randn(50, generator=g), "n2": torch.randn(50, generator=g),
                          "w": torch.randn(50, 50, generator=g)})
    h = p.create("kiln.add", [x, r]).result
    n = p.create("kiln.rms_norm", [h, w_op(p, m, "n1")], {"eps": 1e-5}).result
    y = p.create("kiln.linear", [n, w_op(p, m, "w")]).result
    h2 = p.create("kiln.add", [h, y]).result  # reads h and, through the linear, n: may not join h's group
    n2 = p.create("kiln.rms_norm", [h2, w_op(p, m, "n2")], {"eps": 1e-5}).result
    p.set_outputs([n2, h2])
    group(m)
    got = labels(p)
    assert list(got.values()) == [["add", "rms_norm"], ["linear"], ["add", "rms_norm"]]
    check_program(m, torch.randn(3, 7, 50, generator=g), torch.randn(3, 7, 50, generator=g),
                  expect={"rowwise": 2, "gemm": 1})


def test_silu_gate_times_up_reads_the_fused_projection_in_place():
    g = gen(1)
    m, p, (x,) = build([("x", (1, "N", 24))], {"gu": torch.randn(2 * 37, 24, generator=g)})
    gu = p.create("kiln.linear", [x, w_op(p, m, "gu")]).result
    a = p.create("kiln.slice", [gu], {"dim": 2, "start": 0, "end": 37}).result
    b = p.create("kiln.slice", [gu], {"dim": 2, "start": 37, "end": 74}).result
    y = p.create("kiln.mul", [p.create("kiln.silu", [a]).result, b]).result
    p.set_outputs([y])
    group(m)
    assert sorted(labels(p).values()) == [["linear"], ["slice", "slice", "silu", "mul"]]
    src = generate_program(p).source
    assert "row * 74 + 37 + cols" in src  # the up half read at its column offset, no copy
    for n in (1, 5, 33):  # GEMV rows, then tiles with a ragged last one
        check_program(m, torch.randn(1, n, 24, generator=g), expect={"rowwise": 1, "gemm": 1})


@pytest.mark.parametrize("rows", [1, 6])
def test_gemm_epilogue_bias_activation_and_residual(rows):
    g = gen(2)
    m, p, (x, r) = build([("x", ("M", 70)), ("r", ("M", 50))],
                         {"w": torch.randn(50, 70, generator=g), "b": torch.randn(50, generator=g),
                          "v": torch.randn(50, generator=g)})
    y = p.create("kiln.linear", [x, w_op(p, m, "w"), w_op(p, m, "b")]).result
    z = p.create("kiln.gelu", [y], {"approximate": "tanh"}).result
    z = p.create("kiln.add", [p.create("kiln.mul", [z, w_op(p, m, "v")]).result, r]).result
    z = p.create("kiln.sub", [z], {"scalar": 0.5, "reverse": True}).result
    p.set_outputs([z])
    group(m)
    assert list(labels(p).values()) == [["linear", "gelu", "mul", "add", "sub"]]
    check_program(m, torch.randn(rows, 70, generator=g), torch.randn(rows, 50, generator=g), tol=1e-4,
                  expect={"gemm": 1})


def test_layer_norm_softmax_and_unary_ops_in_rowwise_kernels():
    g = gen(3)
    m, p, (x,) = build([("x", (2, "T", 45))], {"w": torch.randn(45, generator=g), "b": torch.randn(45, generator=g)})
    h = p.create("kiln.layer_norm", [x, w_op(p, m, "w"), w_op(p, m, "b")], {"eps": 1e-5}).result
    e = p.create("kiln.gelu", [h]).result
    s = p.create("kiln.softmax", [p.create("kiln.mul", [e], {"scalar": 3.0}).result], {"dim": -1}).result
    t = p.create("kiln.tanh", [p.create("kiln.pow", [h], {"scalar": 2}).result]).result
    u = p.create("kiln.maximum", [p.create("kiln.exp", [p.create("kiln.neg", [t]).result]).result, s]).result
    v = p.create("kiln.div", [p.create("kiln.sigmoid", [u]).result, p.create("kiln.add", [p.create("kiln.relu", [h]).result], {"scalar": 1.0}).result]).result
    q = p.create("kiln.rsqrt", [p.create("kiln.add", [p.create("kiln.abs", [v]).result], {"scalar": 1.0}).result])
    p.set_outputs([s, q.result])
    group(m)
    assert len(labels(p)) == 1
    check_program(m, torch.randn(2, 9, 45, generator=g), tol=1e-4, expect={"rowwise": 1})


@pytest.mark.parametrize("eps", [1e-2, 0.5])
def test_rowwise_norms_keep_eps_on_small_inputs(eps):
    # inputs of mean square ~1e-6 under a large eps: a kernel that drops eps (or misplaces it) is off by
    # orders of magnitude; both kernels against formulas written here, in float64
    g = gen(12)
    m, p, (x, y) = build([("x", ("T", 45)), ("y", ("T", 64))],
                         {"w": torch.randn(45, generator=g), "b": torch.randn(45, generator=g),
                          "n": torch.randn(64, generator=g)})
    ln = p.create("kiln.layer_norm", [x, w_op(p, m, "w"), w_op(p, m, "b")], {"eps": eps}).result
    rms = p.create("kiln.rms_norm", [y, w_op(p, m, "n")], {"eps": eps}).result
    p.set_outputs([ln, rms])
    group(m)
    assert sorted(labels(p).values()) == [["layer_norm"], ["rms_norm"]]
    xs = torch.randn(6, 45, generator=g) * 1e-3 + 0.2  # a large mean on a small spread
    ys = torch.randn(6, 64, generator=g) * 1e-3
    xc = xs.double() - xs.double().mean(-1, keepdim=True)
    want_ln = xc / torch.sqrt(xc.pow(2).mean(-1, keepdim=True) + eps) * m.weights["w"].double() + m.weights["b"].double()
    y64 = ys.double()
    want_rms = y64 / torch.sqrt(y64.pow(2).mean(-1, keepdim=True) + eps) * m.weights["n"].double()
    got = TritonProgram(m["forward"], m.weights, poison=True)(xs, ys)
    assert_outputs_close(got, [want_ln.float(), want_rms.float()], rtol=1e-5, atol=1e-6)


def test_ops_without_a_lowering_stay_in_torch():
    g = gen(4)
    m, p, (x,) = build([("x", ("T", 12))])
    y = p.create("kiln.pow", [x], {"scalar": 3}).result  # only x ** 2 is lowered
    z = p.create("kiln.transpose", [p.create("kiln.relu", [y]).result], {"dim0": 0, "dim1": 1}).result
    p.set_outputs([z])
    group(m)
    assert list(labels(p).values()) == [["relu"]]
    check_program(m, torch.randn(5, 12, generator=g), expect={"rowwise": 1})


# ---------------------------------------------------------------------------
# RoPE and attention


@pytest.mark.parametrize("heads,kv_heads,t,d", [(4, 2, 5, 16), (3, 3, 7, 10), (8, 2, 1, 32)])
def test_rope_on_q_and_k_is_one_launch(heads, kv_heads, t, d):
    g = gen(5)
    m, p, (qkv, c, s) = build([("qkv", (2, "T", (heads + kv_heads) * d)), ("cos", (2, "T", d)), ("sin", (2, "T", d))])
    views = []
    for start, h in ((0, heads), (heads * d, kv_heads)):
        v = p.create("kiln.slice", [qkv], {"dim": 2, "start": start, "end": start + h * d}).result
        v = p.create("kiln.reshape", [v], {"shape": [2, "T", h, d]}).result
        views.append(p.create("kiln.transpose", [v], {"dim0": 1, "dim1": 2}).result)  # a strided view
    outs = [p.create("kiln.rope", [v, c, s]).result for v in views]
    p.set_outputs(outs)
    group(m)
    assert list(labels(p).values()) == [["rope", "rope"]]
    ang = torch.randn(2, t, d // 2, generator=g)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    check_program(m, torch.randn(2, t, (heads + kv_heads) * d, generator=g), cos, sin, expect={"rope": 1})


_MODS: dict[str, object] = {}


def template(src: str):
    if src not in _MODS:
        _MODS[src] = load_source("import triton\nimport triton.language as tl\n\n\n" + src, "test")
    return _MODS[src]


@pytest.mark.parametrize("b,h,kvh,t,s,d,causal", [
    (2, 4, 2, 19, 19, 24, True),  # GQA 2, ragged tiles, head dim 24
    (1, 8, 1, 5, 37, 16, True),  # multi-query, bottom-right causal (queries after a prefix)
    (1, 3, 3, 33, 33, 40, False),
    (2, 4, 4, 1, 70, 64, True),  # one query over a long prefix
])
def test_flash_attention_template(b, h, kvh, t, s, d, causal):
    g = gen(6)
    q = torch.randn(b, h, t, d, generator=g)
    k = torch.randn(b, kvh, s, d, generator=g)
    v = torch.randn(b, kvh, s, d, generator=g)
    out = torch.full((b, h, t, d), float("nan"))
    launch_attention(template(ATTENTION_SOURCE), q, k, v, out, 0.3, causal, params={"BLOCK_M": 16, "BLOCK_N": 16})
    want = lookup("kiln.attention").reference(None, q, k, v, scale=0.3, causal=causal)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


def cache_case(layout: str, lengths: list[int], new: list[int], kvh: int, d: int, g: torch.Generator):
    """A filled cache, the packed queries of ``new[i]`` tokens at the end of sequence i, and the table."""
    layers, bs = 2, (4 if layout == "paged" else 64)
    mb = -(-max(lengths) // bs)
    nb = mb * len(lengths) + 3
    kc = torch.randn(layers, nb, kvh, bs, d, generator=g)
    vc = torch.randn(layers, nb, kvh, bs, d, generator=g)
    perm = torch.randperm(nb, generator=g)[: mb * len(lengths)]
    table = perm.view(len(lengths), mb)  # blocks scattered through the pool
    pos, seq = [], []
    for i, (n, k) in enumerate(zip(lengths, new)):
        pos += list(range(n - k, n))
        seq += [i] * k
    return kc, vc, torch.tensor(pos), torch.tensor(seq), table


@pytest.mark.parametrize("layout", ["paged", "contiguous"])
@pytest.mark.parametrize("h,kvh,d", [(4, 2, 16), (6, 1, 20), (2, 2, 64)])
def test_cache_attention_template_decode_and_packed_prefill(layout, h, kvh, d):
    g = gen(7)
    ref = lookup("kiln.cache_attention").reference
    mod = template(CACHE_ATTENTION_SOURCE)
    for lengths, new in (([9, 1, 23], [1, 1, 1]), ([5, 23, 11], [5, 7, 1])):  # decode; ragged prefill chunks
        kc, vc, pos, seq, table = cache_case(layout, lengths, new, kvh, d, g)
        q = torch.randn(1, h, len(pos), d, generator=g)
        want = ref(None, q, kc, vc, pos, seq, table, layer=1, scale=0.2, layout=layout)
        for chunk in (8, 256):  # several splits merged by log-sum-exp, or one
            out = torch.full_like(q, float("nan"))
            launch_cache_attention(mod, q, kc, vc, pos, seq, table, out, 1, 0.2, params={"CHUNK": chunk, "BLOCK_N": 4})
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["paged", "contiguous"])
def test_cache_write_template_writes_k_and_v_in_place(layout):
    g = gen(11)
    ref = lookup("kiln.cache_write").reference
    kc, vc, pos, seq, table = cache_case(layout, [9, 23, 4], [3, 6, 4], 2, 20, g)
    k = torch.randn(1, 2, len(pos), 20, generator=g)
    v = torch.randn(1, len(pos), 2, 20, generator=g).transpose(1, 2)  # a strided view, as from the QKV slice
    want_k = ref(None, kc.clone(), k, pos, seq, table, layer=1, layout=layout)
    want_v = ref(None, vc.clone(), v, pos, seq, table, layer=1, layout=layout)
    launch_cache_write(template(CACHE_WRITE_SOURCE), [k, v], [kc, vc], pos, seq, table, 1)
    assert torch.equal(kc, want_k) and torch.equal(vc, want_v)  # written slots and untouched ones


def test_bfloat16_kernels_match_to_bfloat16_tolerance():
    # bf16 tensors, f32 accumulation; the reference rounds after every op, the kernels once per store
    g = gen(10)
    bf = torch.bfloat16
    m = Module(weights={"n": torch.randn(50, generator=g).to(bf), "w": torch.randn(40, 50, generator=g).to(bf)})
    p = m.add(Program("forward"))
    x, r = (p.add_arg(TensorType(DType.bf16, ("T", 50)), h) for h in ("x", "r"))
    h = p.create("kiln.add", [x, r]).result
    n = p.create("kiln.rms_norm", [h, w_op(p, m, "n")], {"eps": 1e-5}).result
    y = p.create("kiln.silu", [p.create("kiln.linear", [n, w_op(p, m, "w")]).result]).result
    p.set_outputs([y, h])
    group(m)
    assert list(labels(p).values()) == [["add", "rms_norm"], ["linear", "silu"]]
    for rows in (3, 9):
        xs = [torch.randn(rows, 50, generator=g).to(bf) for _ in range(2)]
        got = TritonProgram(m["forward"], m.weights, poison=True)(*xs)
        want = CpuProgram(m["forward"], m.weights, native=False)(*xs)
        assert len(got) == len(want) == 2 and all(a.dtype == bf for a in got)
        for a, b in zip(got, want):  # a few bf16 ulps of the output's scale
            assert_outputs_close([a.float()], [b.float()], rtol=3e-2, atol=2e-2 * b.float().abs().max().item())
    q, k, v = (torch.randn(1, s, 19, 32, generator=g).to(bf) for s in (4, 2, 2))
    out = torch.full_like(q, float("nan"))
    launch_attention(template(ATTENTION_SOURCE), q, k, v, out, 0.2, True, params={"BLOCK_M": 16, "BLOCK_N": 16})
    want = lookup("kiln.attention").reference(None, q, k, v, scale=0.2, causal=True)
    torch.testing.assert_close(out.float(), want.float(), rtol=3e-2, atol=3e-2)
    kc, vc, pos, seq, table = cache_case("paged", [9, 14], [1, 3], 2, 32, g)
    kc, vc, q = kc.to(bf), vc.to(bf), torch.randn(1, 4, len(pos), 32, generator=g).to(bf)
    out = torch.full_like(q, float("nan"))
    launch_cache_attention(template(CACHE_ATTENTION_SOURCE), q, kc, vc, pos, seq, table, out, 0, 0.2,
                           params={"CHUNK": 8})
    want = lookup("kiln.cache_attention").reference(None, q, kc, vc, pos, seq, table, layer=0, scale=0.2,
                                                    layout="paged")
    torch.testing.assert_close(out.float(), want.float(), rtol=3e-2, atol=3e-2)


# ---------------------------------------------------------------------------
# compiled models end to end


@pytest.fixture(scope="module")
def cuda_art():
    import kiln

    return kiln.compile("llama-tiny", pipeline="paged", target="cuda")


def test_compiled_model_groups_and_kernels(cuda_art, tmp_path, capsys):
    from kiln.cli import main

    decode = cuda_art.module["decode"]
    got = list(labels(decode).values())
    assert got.count(["add", "rms_norm"]) == 4 and got.count(["slice", "slice", "silu", "mul"]) == 2
    assert got.count(["rope", "rope"]) == 2 and got.count(["cache_attention"]) == 2
    assert got.count(["cache_write", "cache_write"]) == 2
    assert cuda_art.manifest["target"] == "cuda" and cuda_art.manifest["pipeline"]["passes"][-1] == "group-kernels"
    path = cuda_art.save(tmp_path / "c.kiln")
    assert sorted(p.name for p in (path / "kernels").iterdir()) == ["decode.py", "forward.py", "prefill.py"]
    assert main(["dump", str(path), "--kernels", "--program", "decode"]) == 0
    out = capsys.readouterr().out
    assert "kernels/decode.py" in out and "def cache_attention_split" in out and "def rowwise" in out
    assert 'kernel = "rowwise' in (main(["dump", str(path), "--program", "decode"]) == 0 and capsys.readouterr().out)


def test_compiled_model_same_greedy_tokens_as_the_cpu_path(cuda_art):
    from kiln.runtime.artifact import Artifact

    cpu_art = Artifact(cuda_art.module, {**cuda_art.manifest, "target": "cpu"}, cuda_art.tokenizer_files)
    rt, rc = cuda_art.runtime(), cpu_art.runtime()
    assert isinstance(rt.decode_prog, TritonProgram)
    prompts = [[1, 5, 9, 33, 2], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], [3]]
    # greedy tokens identical except where the CPU path's two best logits nearly tie (tests/_compare.py)
    assert_generations_match(rc, rt, prompts, 10, atol=1e-4, rtol=1e-4)
    assert rt.decode_prog.launched["cache_attention"] > 0 and rt.prefill.launched["gemm"] > 0
    assert rt.decode_prog.launched["cache_write"] == rt.decode_prog.launched["cache_attention"]
    ids = torch.randint(0, 500, (2, 9), generator=gen(8))
    torch.testing.assert_close(rt.logits(ids), rc.logits(ids), rtol=1e-4, atol=1e-4)


def test_gpt2_forward_through_triton_matches_cpu():
    import kiln

    art = kiln.compile("gpt2-tiny", target="cuda")
    fwd = art.module["forward"]
    kinds = [lab.rstrip("0123456789") for lab, _ in kernel_groups(fwd)]
    assert "gemm" in kinds and "rowwise" in kinds and "attention" in kinds
    assert any(ops[0].name == "kiln.linear" and len(ops) > 1 for _, ops in kernel_groups(fwd))  # gelu epilogue
    ids = torch.randint(0, 250, (2, 11), generator=gen(9))
    got = TritonProgram(fwd, art.module.weights, poison=True)(ids)
    want = CpuProgram(fwd, art.module.weights)(ids)
    assert_outputs_close(got, want, rtol=1e-4, atol=1e-4)


def test_cuda_target_without_gpu_or_interpreter_is_a_clear_error(cuda_art, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(KilnError, match="needs a CUDA GPU, or TRITON_INTERPRET=1"):
        cuda_art.runtime()


def test_cuda_graphs_need_the_cuda_target_on_a_gpu(cuda_art):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(KilnError, match="CUDA graphs need the cuda target on a CUDA device"):
        cuda_art.runtime(cuda_graphs=True)
