"""The Triton kernels for quantized ops under TRITON_INTERPRET=1 on the CPU: dequantizing GEMV / GEMM
(int8 per channel; int4 g32 / g64, symmetric and with offsets, a narrower last group), attention over
the int8 KV cache and the int8 cache write, each against the IR reference on fresh random inputs with
poisoned (NaN) outputs; and a quantized model end to end (same greedy tokens as the CPU path of the
same artifact, with the new kernels launched)."""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported: kernels run on CPU tensors

import pytest
import torch
import triton  # noqa: F401 - a test dependency: its absence is a failure, not a skip
from _compare import assert_generations_match, assert_outputs_close

from kiln.codegen.cpu import CpuProgram
from kiln.codegen.triton import generate_program
from kiln.codegen.triton.program import TritonProgram, launch_cache_attention_q8, launch_cache_write_q8, load_source
from kiln.codegen.triton.quant import CACHE_ATTENTION_Q8_SOURCE, CACHE_WRITE_Q8_SOURCE
from kiln.ir.core import Module, Program
from kiln.ir.ops import FROM_TORCH
from kiln.ir.ops_quant import quantize_int4, quantize_int8
from kiln.ir.registry import lookup
from kiln.ir.types import DType, TensorType
from kiln.ir.verifier import verify_module
from kiln.passes.kernel_fusion import kernel_groups
from kiln.passes.manager import PassManager, parse_passes


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def w_op(p, m, name):
    t = m.weights[name]
    return p.create("kiln.weight", [], {"name": name}, result_types=[TensorType(FROM_TORCH[t.dtype], t.shape)]).result


def labels(p: Program) -> list[list[str]]:
    return [[o.name.removeprefix("kiln.") for o in ops] for _, ops in kernel_groups(p)]


def qlinear_module(fmt: str, gs: int, sym: bool, n: int, k: int, bias: bool, dtype: DType, g: torch.Generator,
                   epilogue: bool = False) -> Module:
    """x [M, k] -> qlinear with a weight [n, k] quantized as asked (+ bias) [-> gelu(y) + r]."""
    w = torch.randn(n, k, generator=g)
    if fmt == "int8":
        q, s = quantize_int8(w)
        parts = {"q": q, "s": s}
    else:
        q, s, o = quantize_int4(w, gs, sym)
        parts = {"q": q, "s": s, **({"o": o} if o is not None else {})}
    if bias:
        parts["b"] = torch.randn(n, generator=g)
    m = Module(weights=parts)
    p = m.add(Program("forward"))
    x = p.add_arg(TensorType(dtype, ("M", k)), "x")
    y = p.create("kiln.qlinear", [x, *(w_op(p, m, name) for name in parts)],
                 {"format": fmt, "group_size": gs, "symmetric": sym}).result
    if epilogue:
        r = p.add_arg(TensorType(DType.f32, ("M", n)), "r")
        y = p.create("kiln.add", [p.create("kiln.gelu", [y]).result, r]).result
    p.set_outputs([y])
    verify_module(m)
    PassManager(parse_passes("group-kernels"), verify=True, keep_ir=False).run(m)
    return m


def check(m: Module, *inputs, rtol: float, atol: float) -> TritonProgram:
    tp = TritonProgram(m["forward"], m.weights, poison=True)
    got = tp(*inputs)
    want = CpuProgram(m["forward"], m.weights, native=False)(*inputs)
    assert_outputs_close(got, want, rtol=rtol, atol=atol)
    return tp


# (format, group size, symmetric, N, K): int8; int4 g32 / g64 dividing K; K = 70 leaves a last group of
# 6 (g32) or 6 (g64) columns; K = 96 at g64 a last group of 32
FORMATS = [
    ("int8", 0, True, 50, 70),
    ("int4", 32, True, 50, 64),
    ("int4", 64, False, 37, 128),
    ("int4", 32, False, 50, 70),
    ("int4", 64, True, 21, 70),
    ("int4", 64, False, 19, 96),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("fmt,gs,sym,n,k", FORMATS)
def test_qlinear_gemv_and_gemm_match_the_reference(fmt, gs, sym, n, k, bias):
    g = gen(20)
    m = qlinear_module(fmt, gs, sym, n, k, bias, DType.f32, g)
    assert labels(m["forward"]) == [["qlinear"]]
    for rows in (1, 3, 9):  # GEMV (decode), GEMV of a few rows, GEMM tiles with a ragged last one
        tp = check(m, torch.randn(rows, k, generator=g), rtol=1e-4, atol=1e-4)
        assert tp.launched == {"qgemm": 1}


@pytest.mark.parametrize("fmt,gs,sym,n,k", [FORMATS[0], FORMATS[3]])
def test_qlinear_bfloat16_activations(fmt, gs, sym, n, k):
    # the op's result is f32 whatever x's dtype; the GEMM takes x in bf16 (upcast under the interpreter)
    g = gen(21)
    m = qlinear_module(fmt, gs, sym, n, k, True, DType.bf16, g)
    for rows in (2, 7):
        check(m, torch.randn(rows, k, generator=g).to(torch.bfloat16), rtol=2e-2, atol=2e-2)


def test_qlinear_epilogue_is_fused():
    g = gen(22)
    m = qlinear_module("int4", 32, False, 40, 70, True, DType.f32, g, epilogue=True)
    assert labels(m["forward"]) == [["qlinear", "gelu", "add"]]
    src = generate_program(m["forward"]).source
    assert "def qgemm0_gemv" in src and "& 15" in src and ">> 4" in src  # nibbles unpacked in registers
    for rows in (1, 6):
        tp = check(m, torch.randn(rows, 70, generator=g), torch.randn(rows, 40, generator=g), rtol=1e-4, atol=1e-4)
        assert tp.launched == {"qgemm": 1}


def test_qlinear_block_sizes_do_not_change_the_result():
    # a byte step smaller than a group and one spanning several groups (and the narrower last one)
    from kiln.codegen.triton.program import launch_qgemm

    g = gen(23)
    m = qlinear_module("int4", 32, True, 30, 70, False, DType.f32, g)
    tp = TritonProgram(m["forward"], m.weights)
    ks = next(iter(tp.kernels.kernels.values()))
    w = m.weights
    want_w = lookup("kiln.qlinear").reference(None, torch.eye(70), w["q"], w["s"], format="int4", group_size=32,
                                              symmetric=True).T  # the dequantized weight [30, 70]
    for rows, params in ((1, {"BLOCK_K": 16, "BLOCK_N": 8}), (1, {"BLOCK_K": 64}), (5, {"BLOCK_K": 16}),
                         (5, {"BLOCK_K": 64, "BLOCK_N": 16})):
        x = torch.randn(rows, 70, generator=g)
        out = torch.full((rows, 30), float("nan"))
        launch_qgemm(tp.module, ks, x, w["q"], w["s"], None, None, [], [out], params=params)
        torch.testing.assert_close(out, x @ want_w.T, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# the int8 KV cache


_MODS: dict[str, object] = {}


def template(src: str):
    if src not in _MODS:
        _MODS[src] = load_source("import triton\nimport triton.language as tl\n\n\n" + src, "test")
    return _MODS[src]


def q8_cache_case(layout: str, lengths: list[int], new: list[int], kvh: int, d: int, g: torch.Generator):
    """An int8 cache with scales, the packed positions of ``new[i]`` tokens at the end of sequence i, and
    the block table (blocks scattered through the pool)."""
    layers, bs = 2, (4 if layout == "paged" else 32)
    mb = -(-max(lengths) // bs)
    nb = mb * len(lengths) + 3
    kc, vc = (torch.randint(-127, 128, (layers, nb, kvh, bs, d), generator=g, dtype=torch.int8) for _ in range(2))
    ks, vs = (torch.rand(layers, nb, kvh, bs, generator=g) * 0.05 + 1e-3 for _ in range(2))
    table = torch.randperm(nb, generator=g)[: mb * len(lengths)].view(len(lengths), mb)
    pos, seq = [], []
    for i, (n, k) in enumerate(zip(lengths, new)):
        pos += list(range(n - k, n))
        seq += [i] * k
    return kc, ks, vc, vs, torch.tensor(pos), torch.tensor(seq), table


@pytest.mark.parametrize("layout", ["paged", "contiguous"])
@pytest.mark.parametrize("h,kvh,d", [(4, 2, 16), (6, 1, 20)])
def test_cache_attention_q8_decode_and_packed_prefill(layout, h, kvh, d):
    g = gen(24)
    ref = lookup("kiln.cache_attention_q8").reference
    mod = template(CACHE_ATTENTION_Q8_SOURCE)
    # decode of ragged sequences over several splits; packed ragged prefill chunks in one split
    for (lengths, new), chunk in ((([9, 1, 23], [1, 1, 1]), 8), (([5, 19, 11], [5, 6, 1]), 256)):
        kc, ks, vc, vs, pos, seq, table = q8_cache_case(layout, lengths, new, kvh, d, g)
        q = torch.randn(1, h, len(pos), d, generator=g)
        want = ref(None, q, kc, ks, vc, vs, pos, seq, table, layer=1, scale=0.2, layout=layout)
        out = torch.full_like(q, float("nan"))
        launch_cache_attention_q8(mod, q, kc, ks, vc, vs, pos, seq, table, out, 1, 0.2,
                                  params={"CHUNK": chunk, "BLOCK_N": 4})
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["paged", "contiguous"])
def test_cache_write_q8_codes_are_bit_exact(layout):
    g = gen(25)
    ref = lookup("kiln.cache_write_q8").reference
    kc, ks, vc, vs, pos, seq, table = q8_cache_case(layout, [9, 23, 4], [3, 6, 4], 2, 20, g)
    n = len(pos)
    k = torch.randn(1, 2, n, 20, generator=g) * 3
    k[0, 0, 0] = 0.0  # an all-zero row: scale 1, codes 0
    k[0, 1, 1] = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 126.5, -126.5] + [0.25] * 10)  # ties
    v = (torch.randn(1, n, 2, 20, generator=g) * 0.01).transpose(1, 2)  # a strided view, as from the QKV slice
    want_k, want_ks = ref(None, kc.clone(), ks.clone(), k, pos, seq, table, layer=1, layout=layout)
    want_v, want_vs = ref(None, vc.clone(), vs.clone(), v, pos, seq, table, layer=1, layout=layout)
    launch_cache_write_q8(template(CACHE_WRITE_Q8_SOURCE), [k, v], [kc, vc], [ks, vs], pos, seq, table, 1)
    assert torch.equal(kc, want_k) and torch.equal(vc, want_v)  # the written codes and every other slot
    torch.testing.assert_close(ks, want_ks, rtol=1e-7, atol=0)
    torch.testing.assert_close(vs, want_vs, rtol=1e-7, atol=0)
    kb = k.to(torch.bfloat16)  # bf16 tokens: quantized from their exact f32 values
    want_k, _ = ref(None, kc.clone(), ks.clone(), kb, pos, seq, table, layer=0, layout=layout)
    launch_cache_write_q8(template(CACHE_WRITE_Q8_SOURCE), [kb], [kc], [ks], pos, seq, table, 0)
    assert torch.equal(kc, want_k)


# ---------------------------------------------------------------------------
# a quantized model end to end

PASSES = ("canonicalize,fold-constants,cse,dce,fuse-qkv,fuse-gate-up,canonicalize,cse,dce,"
          "quantize-weights{{{weights}}},cse,dce,kv-cache{{{kv}}},quantize-kv,canonicalize,dce")


@pytest.mark.parametrize("weights,kv", [
    ("format=int4,group_size=64,symmetric=false", "layout=paged,block_size=4"),  # down_proj K 160: groups 64, 64, 32
    ("format=int8", "layout=contiguous"),
])
def test_quantized_model_same_greedy_tokens_as_the_cpu_path(weights, kv):
    import kiln
    from kiln.runtime.artifact import Artifact

    art = kiln.compile("llama-tiny", passes=PASSES.format(weights=weights, kv=kv), target="cuda")
    got = labels(art.module["decode"])
    assert got.count(["qlinear"]) == 9 and got.count(["cache_attention_q8"]) == 2  # 4 per layer + lm_head
    assert got.count(["cache_write_q8", "cache_write_q8"]) == 2
    assert "def cache_write_q8" in art.kernel_sources["decode.py"]
    cpu = Artifact(art.module, {**art.manifest, "target": "cpu"}, art.tokenizer_files)
    rt, rc = art.runtime(), cpu.runtime()
    assert isinstance(rt.decode_prog, TritonProgram)
    prompts = [[1, 5, 9, 33, 2], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [3]]
    # greedy tokens identical except where the CPU path's two best logits nearly tie (tests/_compare.py)
    assert_generations_match(rc, rt, prompts, 4, atol=1e-4, rtol=1e-4)
    launched = rt.decode_prog.launched
    assert launched["qgemm"] == 9 * launched["cache_write_q8"] // 2 > 0
    assert launched["cache_attention_q8"] == launched["cache_write_q8"]
    assert rt.prefill.launched["qgemm"] > 0 and rt.prefill.launched["cache_attention_q8"] > 0
