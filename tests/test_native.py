"""The native CPU kernels (kiln/codegen/native.py): every exported kernel, in every instruction-set variant
this CPU can run, against an independent torch reference; the variant switch; and a runtime using the
kernels against the reference executor.

``native_isa`` is the reusable part: a fixture parametrized over ``native.ISAS`` that selects one variant
for the test (``native.using``) and skips a variant this CPU cannot run, naming the CPU flags it lacks.
Another test module takes it with ``from test_native import native_isa``.
"""

from __future__ import annotations

import zlib

import pytest
import torch
import torch.nn.functional as F

from kiln.codegen import native


@pytest.fixture(params=native.ISAS)
def native_isa(request):
    """Each instruction-set variant of the native kernels ("native", "avx512", "avx2", "portable"), selected
    for the duration of the test; skipped where it cannot run here (the reason names the missing CPU flags,
    or says there is no C compiler / KILN_NATIVE=0); a variant that should build and does not fails."""
    isa = request.param
    why = native.unavailable(isa)
    if why is not None:
        pytest.skip(why)
    with native.using(isa) as lib:
        if lib is None:
            pytest.fail(f"the {isa} variant of the native kernels did not compile (see the logged warning)")
        assert lib.kiln_isa == isa and native.library() is lib
        yield isa


def _gen(*key) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def _close(y: torch.Tensor, ref: torch.Tensor, k: int, what, rtol: float = 1e-5, atol: float = 1e-4) -> None:
    """float32 kernels against a float64 reference: the same products summed in another order."""
    assert y is not None and y.shape == ref.shape, what
    err = (y.double() - ref).abs().max()
    assert torch.allclose(y.double(), ref, rtol=rtol, atol=atol * k ** 0.5), (what, float(err))


# every tile height and remainder: AVX-512 float/int8 panels tile 12/8/4/2 rows + a 1-row kernel, int4
# panels 6/4 + 1; AVX2 6/4/2 + 1, int4 3/2 + 1; portable 4/2 + 1, int4 2 + 1; the row kernels take up to
# native.MAX_ROWS rows. The default variant sweeps them all; the others (the same C at other vector
# widths) take the edges of their own tiles: 1, 2, tile - 1, tile, tile + 1, 2 tile + 1
ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 16)
PANEL_ROWS = ROWS + (17, 24, 25, 31)


def _edges(*tiles: int) -> tuple[int, ...]:
    return tuple(sorted({r for t in tiles for r in (1, 2, t - 1, t, t + 1, 2 * t + 1) if r >= 1}))


def _rows(isa: str, sweep: tuple[int, ...], fmt: str = "float") -> tuple[int, ...]:
    """The row counts to check variant ``isa`` with: the full sweep for the default one, else its tile edges
    (capped at the largest of the sweep: the row kernels take at most native.MAX_ROWS)."""
    if isa == "native":
        return sweep
    lib = native.library()  # the tile heights this build reports (kiln_tile_rows / kiln_q4_tile_rows)
    mr, mr4 = lib.tile_rows, lib.q4_tile_rows
    return tuple(r for r in _edges(mr4 if fmt == "int4" else mr) if r <= max(sweep))


def test_the_kernel_builds_where_a_compiler_exists():
    if native._compiler() is not None:
        assert native.library() is not None
    else:  # no compiler: the fallback is torch, and linear() says it does not apply
        assert native.linear(torch.randn(1, 256), torch.randn(256, 256)) is None


# ---------------------------------------------------------------------------
# every kernel, every variant this CPU runs

# N % 32 (panels: a part of the first 16 / 8 columns of the last panel, 18 = past the AVX2 tile's first
# half) and N % 4 (row kernels) remainders, K % 8 / K % 4 remainders, an exact panel; weights of at least
# native.MIN_WEIGHT_ELEMENTS
@pytest.mark.parametrize("n,k", [(67, 1031), (50, 1313), (258, 255), (32, 2048)])
@pytest.mark.parametrize("pack", ["1", "0"])  # the panel kernel; the row kernel without packing
def test_float_kernels_match_torch(native_isa, n, k, pack, monkeypatch):
    """kiln_linear_packed + kiln_pack_f32 (pack 1), kiln_linear_f32 (pack 0)."""
    monkeypatch.setenv("KILN_PACK", pack)
    g = _gen("f32", n, k)
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    held = native.PackedWeight.wrap(native.packed(w, force=True), n, k)
    assert torch.equal(held.unpack(), w)  # the panel layout round-trips exactly
    for rows in _rows(native_isa, PANEL_ROWS if pack == "1" else ROWS):
        x = torch.randn(1, rows, k, generator=g)
        for bias in (None, b):
            ref = F.linear(x.double(), w.double(), None if bias is None else bias.double())
            what = (native_isa, rows, bias is not None)
            if pack == "1":  # a weight a runtime holds only in panels: the panel kernel in every variant
                _close(native.linear(x, held, bias), ref, k, (*what, "held"))
            if pack == "0" or native.panels_fast():  # a plain weight (packed beside it where panels are fast)
                _close(native.linear(x, w, bias, force=True), ref, k, what)


def _ref_int4(q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None, g: int) -> torch.Tensor:
    """The float64 weight of an int4 one, column group by column group, from the layout documented in
    kiln/ir/ops_quant.py: groups of g columns (the last may be narrower, even); byte j of a group of
    width r holds column j (low nibble) and r/2 + j (high); w = code * s + o, o = -8 s when symmetric."""
    n, k = q.shape[0], 2 * q.shape[1]
    w = torch.empty(n, k, dtype=torch.float64)
    for gi, c in enumerate(range(0, k, g)):
        r = min(g, k - c)
        byte = q[:, c // 2:c // 2 + r // 2].long()
        codes = torch.cat([byte & 15, byte >> 4], dim=1).double()
        sc = s[:, gi].double()[:, None]
        off = o[:, gi].double()[:, None] if o is not None else -8.0 * sc
        w[:, c:c + r] = codes * sc + off
    return w


def _quantized(fmt: str, n: int, k: int, g: int, sym: bool):
    """(q, scales, offsets, float64 reference weight) of a fresh random weight."""
    from kiln.ir.ops_quant import quantize_int4, quantize_int8

    w = torch.randn(n, k, generator=_gen("w", fmt, n, k, g, sym))
    if fmt == "int8":
        q, s = quantize_int8(w)
        return q, s, None, q.double() * s.double()[:, None]
    q, s, o = quantize_int4(w, g, sym)
    return q, s, o, _ref_int4(q, s, o, g)


def test_the_int4_reference_agrees_with_the_ops_reference_semantics():
    from kiln.ir.ops_quant import dequantize

    for g, sym in ((32, True), (64, False), (128, False)):
        q, s, o, ref = _quantized("int4", 37, 200, g, sym)
        assert torch.allclose(dequantize(q, s, o, format="int4", group_size=g).double(), ref, rtol=1e-6, atol=1e-6)


# int8: K % 4 (1-row panel kernel) remainders, N % 32; int4: groups of 32 / 64 / 128, a narrower last
# group (1030 = 32 * 32 + 6, 688 = 5 * 128 + 48), symmetric and with offsets
@pytest.mark.parametrize("fmt,g,sym,n,k", [
    ("int8", 0, True, 300, 256), ("int8", 0, True, 50, 1031), ("int8", 0, True, 64, 1030),
    ("int4", 32, True, 300, 256), ("int4", 32, False, 50, 1318), ("int4", 64, False, 130, 688),
    ("int4", 128, True, 64, 1030), ("int4", 128, False, 130, 688)])
def test_quantized_panel_kernels_match_torch(native_isa, fmt, g, sym, n, k):
    """kiln_pack_q8 + kiln_qlinear_q8_panels, kiln_pack_q4 + kiln_qlinear_q4_panels."""
    q, s, o, ref_w = _quantized(fmt, n, k, g, sym)
    p = native._pack_quantized(q, s, o, {"format": fmt, "group_size": g})
    assert p is not None and torch.equal(p.unpack(), q)  # what a saved artifact gets back
    gen = _gen("x", fmt, n, k, g)
    b = torch.randn(n, generator=gen)
    for rows in _rows(native_isa, PANEL_ROWS, fmt):
        x = torch.randn(rows, k, generator=gen)
        for bias in (None, b):
            ref = F.linear(x.double(), ref_w, None if bias is None else bias.double())
            _close(native.qlinear_packed(x, p, s, bias), ref, k, (native_isa, rows, bias is not None))


# K % 64 remainders (four 16-lane chains), N % 4 remainders
@pytest.mark.parametrize("n,k", [(37, 255), (5, 64), (130, 1031), (3, 4001)])
def test_int8_row_kernel_matches_torch(native_isa, n, k):
    """kiln_qlinear_i8 (weights not repacked: KILN_PACK=0, tiny weights)."""
    q, s, _, ref_w = _quantized("int8", n, k, 0, True)
    gen = _gen("x8", n, k)
    b = torch.randn(n, generator=gen)
    for rows in _rows(native_isa, ROWS):
        x = torch.randn(1, rows, k, generator=gen)
        for bias in (None, b):
            ref = F.linear(x.double(), ref_w, None if bias is None else bias.double())
            _close(native.qlinear_int8(x, q, s, bias, force=True), ref, k, (native_isa, rows, bias is not None))


# odd row pairs (N odd), group counts that leave the AVX-512 BF16 route an odd 16-byte group (160 = 5
# groups of 32) or more than 16 groups (masks), a narrower last group (200, 1030, 688, 4002)
@pytest.mark.parametrize("n,k,g", [(37, 160, 32), (37, 200, 32), (5, 1030, 32), (130, 688, 64), (3, 4002, 128),
                                   (64, 512, 128)])
@pytest.mark.parametrize("sym", [True, False])
def test_int4_row_kernel_matches_torch(native_isa, n, k, g, sym):
    """kiln_qlinear_i4; the AVX-512 BF16 route keeps ~16 mantissa bits of the activation."""
    q, s, o, ref_w = _quantized("int4", n, k, g, sym)
    gen = _gen("x4", n, k, g, sym)
    b = torch.randn(n, generator=gen)
    for rows in _rows(native_isa, ROWS):
        x = torch.randn(1, rows, k, generator=gen)
        for bias in (None, b):
            ref = F.linear(x.double(), ref_w, None if bias is None else bias.double())
            _close(native.qlinear_int4(x, q, s, o, g, bias, force=True), ref, k, (native_isa, rows, bias is not None),
                   rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("fmt,g,sym,n,k", [("int8", 0, True, 33, 689), ("int4", 32, True, 33, 688),
                                           ("int4", 64, False, 7, 1030), ("int4", 128, True, 130, 200)])
@pytest.mark.parametrize("scratch", [False, True])
def test_dequantize_kernels_match_torch(native_isa, fmt, g, sym, n, k, scratch):
    """kiln_dequant_i8 / kiln_dequant_i4 (prefill-sized inputs on the unpacked route)."""
    q, s, o, ref_w = _quantized(fmt, n, k, g, sym)
    got = native.dequantize(q, s, o, fmt, g, scratch=scratch)
    assert got is not None and got.shape == (n, k)
    assert torch.allclose(got.double(), ref_w, rtol=1e-6, atol=1e-6)


COVERED = {  # exported kernel -> the test above that checks it in every variant
    "kiln_linear_f32": test_float_kernels_match_torch, "kiln_pack_f32": test_float_kernels_match_torch,
    "kiln_linear_packed": test_float_kernels_match_torch,
    "kiln_pack_q8": test_quantized_panel_kernels_match_torch, "kiln_pack_q4": test_quantized_panel_kernels_match_torch,
    "kiln_qlinear_q8_panels": test_quantized_panel_kernels_match_torch,
    "kiln_qlinear_q4_panels": test_quantized_panel_kernels_match_torch,
    "kiln_qlinear_i8": test_int8_row_kernel_matches_torch, "kiln_qlinear_i4": test_int4_row_kernel_matches_torch,
    "kiln_dequant_i8": test_dequantize_kernels_match_torch, "kiln_dequant_i4": test_dequantize_kernels_match_torch,
}


def test_every_exported_kernel_is_tested_in_every_variant():
    assert set(COVERED) == set(native.KERNELS)


# ---------------------------------------------------------------------------
# routing by the build's vector width

def test_each_variant_routes_linears_where_its_kernels_are_fast(native_isa):
    """AVX-512 and AVX2 builds (16 / 8-float vectors, tiles sized to their registers) take the panels for every
    float32 linear, packing the weight once; a portable build (4 floats: its panels and row kernels lose to
    torch's GEMM) packs nothing and declines, so torch runs; int4's per-row kernel only with AVX-512."""
    from kiln.codegen.cpu import _linear_native_or_torch
    from kiln.codegen.cpu_quant import qlinear as cpu_qlinear

    lib = native.library()
    width = {"avx512": 16, "avx2": 8, "portable": 4}.get(native_isa)
    if width is None:  # native: whatever this CPU has
        have = native.cpu_flags()
        width = 16 if {"avx512f", "avx512bw", "avx512vl"} <= have else 8 if {"avx2", "fma", "f16c"} <= have else 4
    assert lib.vector_width == width
    assert (lib.tile_rows, lib.q4_tile_rows) == {16: (12, 6), 8: (6, 3), 4: (4, 2)}[width]  # as documented
    assert native.panels_fast() == (width >= 8)
    g = _gen("route", native_isa)
    w, b, x = torch.randn(300, 256, generator=g), torch.randn(300, generator=g), torch.randn(12, 256, generator=g)
    ref = F.linear(x.double(), w.double(), b.double())
    y = native.linear(x, w, b)
    if native.panels_fast():
        _close(y, ref, 256, native_isa)
        assert id(w) in native._packed  # the panel route: packed on first use
    else:
        assert y is None and native.packed(w) is None and id(w) not in native._packed
        assert native.pack_linear_weights(object()) == 0  # a runtime keeps its [N, K] weights
    _close(_linear_native_or_torch(None, x, w, b), ref, 256, native_isa)  # what a CPU program runs, either way
    for fmt, g_size in (("int8", 0), ("int4", 32)):
        q, s, o, ref_w = _quantized(fmt, 300, 256, g_size, True)
        attrs = {"format": fmt, "group_size": g_size}
        assert (native.quant_panels(q, s, o, attrs) is not None) == (width >= 8)
        row = native.qlinear_int8(x, q, s, b) if fmt == "int8" else native.qlinear_int4(x, q, s, o, g_size, b)
        assert (row is not None) == (width >= (8 if fmt == "int8" else 16))
        got = cpu_qlinear(None, x, q, s, b, format=fmt, group_size=g_size, symmetric=True)  # symmetric: no offsets
        _close(got, F.linear(x.double(), ref_w, b.double()), 256, (native_isa, fmt), rtol=1e-4, atol=2e-4)


# ---------------------------------------------------------------------------
# the variant switch


def _fresh_selection(monkeypatch):
    """As in a new process: library() resolves KILN_NATIVE / KILN_NATIVE_ISA again on its next call."""
    monkeypatch.setattr(native, "_selected", False)
    monkeypatch.setattr(native, "_current", None)


def test_variants_are_built_and_cached_apart_and_load_side_by_side():
    runnable = [isa for isa in native.ISAS if native.unavailable(isa) is None]
    if not runnable:
        pytest.skip(native.unavailable("portable"))
    libs = {isa: native.library(isa) for isa in runnable}
    assert all(lib is not None and lib.kiln_isa == isa for isa, lib in libs.items())
    assert len({lib._name for lib in libs.values()}) == len(libs)  # one cached file per variant (source + flags)
    assert all(native.library(isa) is lib for isa, lib in libs.items())  # built and loaded once
    assert native.library("auto") is native.library("NATIVE") is libs["native"]
    assert "-march=native" in native.flags("native") and "-mavx2" in native.flags("avx2")
    assert "-mavx512bw" in native.flags("avx512") and not any(f.startswith(("-m", "-march")) for f in
                                                              native.flags("portable"))


def test_the_environment_selects_the_variant(monkeypatch):
    runnable = [isa for isa in native.ISAS if native.unavailable(isa) is None]
    if not runnable:
        pytest.skip(native.unavailable("portable"))
    for isa in runnable:
        monkeypatch.setenv("KILN_NATIVE_ISA", isa)
        _fresh_selection(monkeypatch)
        assert native.library() is native.library(isa)
    monkeypatch.delenv("KILN_NATIVE_ISA")
    _fresh_selection(monkeypatch)
    assert native.library() is native.library("native")  # the default: today's -march=native build


def test_a_variant_this_cpu_cannot_run_is_refused_naming_the_missing_flag(monkeypatch):
    monkeypatch.setattr(native, "_cpu_flags", frozenset({"fpu", "sse2", "avx", "avx2", "fma", "f16c", "avx512f"}))
    assert native.missing_cpu_flags("avx512") == ["avx512bw", "avx512vl", "avx512dq", "avx512cd"]
    assert native.missing_cpu_flags("avx2") == [] and native.missing_cpu_flags("portable") == []
    with pytest.raises(native.UnsupportedISA, match="avx512bw, avx512vl, avx512dq, avx512cd.*KILN_NATIVE_ISA"):
        native.library("avx512")
    with pytest.raises(native.UnsupportedISA, match="avx512bw"), native.using("avx512"):
        pass
    monkeypatch.setenv("KILN_NATIVE_ISA", "avx512")
    _fresh_selection(monkeypatch)
    with pytest.raises(native.UnsupportedISA, match="avx512bw"):  # the selection too: never an illegal instruction
        native.library()
    assert "avx512bw" in native.unavailable("avx512")
    monkeypatch.setattr(native, "_cpu_flags", frozenset({"fp", "asimd"}))  # an Arm CPU
    assert native.missing_cpu_flags("avx2") == ["avx2", "fma", "f16c"]


def test_an_unknown_variant_is_a_one_line_user_error(monkeypatch):
    from kiln.errors import KilnError

    with pytest.raises(KilnError, match="unknown instruction-set variant 'sse9'.*native, avx512, avx2, portable"):
        native.library("sse9")
    monkeypatch.setenv("KILN_NATIVE_ISA", "sse9")
    _fresh_selection(monkeypatch)
    with pytest.raises(native.UnsupportedISA, match="KILN_NATIVE_ISA"):
        native.library()


def test_kiln_native_0_turns_every_variant_off(monkeypatch):
    monkeypatch.setenv("KILN_NATIVE", "0")
    _fresh_selection(monkeypatch)
    assert native.library() is None and native.library("portable") is None
    assert native.unavailable("avx2") == "KILN_NATIVE=0: the native kernels are off"
    assert native.linear(torch.randn(1, 256), torch.randn(512, 256)) is None  # torch runs instead
    with native.using("portable") as lib:
        assert lib is None and native.library() is None


def test_a_missing_compiler_is_announced_once_on_stderr(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, no gcc
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(native, "_noted", False)
    monkeypatch.setattr(native, "_libs", {})
    _fresh_selection(monkeypatch)
    assert native.library() is None and native.library("portable") is None
    assert native.linear(torch.randn(1, 256), torch.randn(512, 256)) is None  # torch runs instead
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kiln: note: no C compiler found") and "torch" in err
    assert "no C compiler" in native.unavailable("portable")
    monkeypatch.setenv("CC", "no-such-cc")
    monkeypatch.setattr(native, "_noted", False)
    monkeypatch.setattr(native, "_libs", {})
    assert native.library("portable") is None
    assert "CC='no-such-cc' was not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# the default variant behind a runtime

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
    rt.prefill_logits(prompts, k, v, table)
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
    again, first = kiln.load(tmp_path / "b.kiln"), kiln.load(tmp_path / "a.kiln")
    for k in packed:
        assert torch.equal(again.module.weights[k], first.module.weights[k])
