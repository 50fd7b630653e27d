"""The native decode kernel (kiln/codegen/native.py) against F.linear, and a runtime using it
against the reference executor."""

from __future__ import annotations

import shutil

import pytest
import torch

from kiln.codegen import native


def test_the_kernel_builds_where_a_compiler_exists():
    if shutil.which("cc") or shutil.which("gcc"):
        assert native.library() is not None
    else:  # no compiler: the fallback is torch, and linear() says it does not apply
        assert native.linear(torch.randn(1, 256), torch.randn(256, 256)) is None


@pytest.mark.parametrize("pack", ["1", "0"])  # the panel kernel, and the row kernel without packing
@pytest.mark.parametrize("n,k", [(256, 256), (258, 255), (1030, 64), (64, 1031), (3, 40000)])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9, 12, 13, 16])
def test_native_linear_matches_torch(n, k, rows, pack, monkeypatch):
    monkeypatch.setenv("KILN_PACK", pack)
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    g = torch.Generator().manual_seed(n * 7 + k + rows)
    w = torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g)
    x = torch.randn(1, rows, k, generator=g)
    for bias in (None, b):
        y = native.linear(x, w, bias)
        assert y is not None and y.shape == (1, rows, n)
        ref = torch.nn.functional.linear(x.double(), w.double(), None if bias is None else bias.double())
        assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-4 * k ** 0.5)


@pytest.mark.parametrize("rows", [17, 25, 130])
def test_packed_linear_takes_prefill_sized_inputs(rows):
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    g = torch.Generator().manual_seed(rows)
    w, b, x = torch.randn(300, 260, generator=g), torch.randn(300, generator=g), torch.randn(2, rows, 260, generator=g)
    y = native.linear(x, w, b)
    ref = torch.nn.functional.linear(x.double(), w.double(), b.double())
    assert y is not None and torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-3)
    wp = native.packed(w)
    assert wp is native.packed(w) and wp.numel() == 320 * 260  # packed once, padded to whole panels


def test_packed_weights_are_dropped_with_their_weight():
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    w = torch.randn(300, 256)
    native.packed(w)
    key = id(w)
    assert key in native._packed
    del w
    assert key not in native._packed


def test_native_linear_declines_what_it_does_not_handle(monkeypatch):
    w = torch.randn(512, 256)
    monkeypatch.setenv("KILN_PACK", "0")
    assert native.linear(torch.randn(17, 256), w) is None  # unpacked: more rows than the row kernel takes
    monkeypatch.setenv("KILN_PACK", "1")
    assert native.linear(torch.randn(1, 256, dtype=torch.float64), w.double()) is None
    assert native.linear(torch.randn(1, 256), torch.randn(8, 8)) is None  # small weight
    assert native.linear(torch.randn(1, 256), w.t().contiguous().t()) is None  # not row-major


def test_decode_with_native_kernels_matches_the_reference_executor(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    import kiln
    from kiln.codegen.cpu import CpuProgram

    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1024, max_position_embeddings=128)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).eval().save_pretrained(tmp_path)
    rt = kiln.compile(str(tmp_path)).runtime()
    oracle = CpuProgram(rt.module["decode"], rt.module.weights, native=False)
    prompts = [[5, 9, 200, 31], [7, 8]]
    k, v = rt.kv.tensors()
    blocks = rt.kv.reserve([6, 6])
    table = rt.kv.table(blocks)
    rt._prefill(prompts, k, v, table)
    args = (torch.tensor([[11, 12]]), torch.tensor([4, 2]), torch.tensor([0, 1]), table, k, v)
    fast = rt.decode_prog(*args)[0]
    ref = oracle(*args)[0]
    rt.kv.release(blocks)
    assert torch.allclose(fast, ref, atol=1e-4, rtol=1e-4)


def test_a_runtime_holds_linear_only_weights_packed_and_saves_them_unpacked(tmp_path):
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    import kiln

    art = kiln.compile("examples/models/kiln-code-target")
    before = {k: v.clone() for k, v in art.module.weights.items()}
    rt = art.runtime()
    w = art.module.weights
    packed = {k for k, v in w.items() if isinstance(v, native.PackedWeight)}
    assert packed and all(".layers." in k for k in packed)  # the tied embedding / lm_head stays a plain tensor
    for k in packed:
        assert torch.equal(w[k].unpack(), before[k]) and w[k].logical_shape == tuple(before[k].shape)
    ids = [rt.encode("import os\n\ndef main():\n")]
    want = rt.generate(ids, max_new_tokens=12, stop_at_eos=False)
    art.save(tmp_path / "a.kiln")  # unpacked on the way out: the file holds the [N, K] weights
    loaded = kiln.load(tmp_path / "a.kiln")
    assert all(torch.equal(loaded.module.weights[k], before[k]) for k in packed)
    assert loaded.runtime().generate(ids, max_new_tokens=12, stop_at_eos=False) == want


@pytest.mark.parametrize("fmt,g,sym", [("int8", 0, True), ("int4", 32, True), ("int4", 64, False), ("int4", 128, True)])
@pytest.mark.parametrize("n,k", [(300, 256), (64, 1030), (130, 688)])
def test_quantized_panels_match_the_reference_and_unpack_exactly(fmt, g, sym, n, k):
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    from kiln.ir.ops_quant import dequantize, quantize_int4, quantize_int8

    gen = torch.Generator().manual_seed(n + k + g)
    w = torch.randn(n, k, generator=gen)
    q, s, o = quantize_int8(w) + (None,) if fmt == "int8" else quantize_int4(w, g, sym)
    p = native._pack_quantized(q, s, o, {"format": fmt, "group_size": g})
    assert p is not None and torch.equal(p.unpack(), q)  # what a saved artifact gets back
    ref_w = dequantize(q, s, o, format=fmt, group_size=g).double()
    for rows in (1, 2, 3, 5, 7, 12, 13, 30):  # every tile height and its remainders
        x, b = torch.randn(rows, k, generator=gen), torch.randn(n, generator=gen)
        y = native.qlinear_packed(x, p, s, b)
        ref = torch.nn.functional.linear(x.double(), ref_w, b.double())
        assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-4 * k ** 0.5), (rows, (y.double() - ref).abs().max())


@pytest.mark.parametrize("pipeline", ["int8", "int4"])
def test_a_quantized_runtime_holds_panels_and_matches_the_reference(pipeline, tmp_path):
    if native.library() is None:
        pytest.skip("no C compiler on this machine: the native kernel is not built (torch runs instead)")
    import kiln
    from kiln.codegen.cpu import CpuProgram

    art = kiln.compile("examples/models/kiln-code-target", pipeline=pipeline)
    art.save(tmp_path / "a.kiln")
    rt = kiln.load(tmp_path / "a.kiln").runtime()
    packed = [k for k, v in rt.module.weights.items() if isinstance(v, native.PackedWeight)]
    assert packed, "no quantized weight was repacked"
    oracle = CpuProgram(rt.module["forward"], rt.module.weights, native=False)
    ids = torch.tensor([rt.encode("def main(argv):\n    for name in argv:\n")])
    torch.testing.assert_close(rt.forward(ids)[0], oracle(ids)[0], rtol=1e-4, atol=2e-4)
    rt.artifact.save(tmp_path / "b.kiln")  # unpacked on the way out
    again = kiln.load(tmp_path / "b.kiln")
    for k in packed:
        assert torch.equal(again.module.weights[k], kiln.load(tmp_path / "a.kiln").module.weights[k])
