"""Documented promises that had no test of their own (README.md, docs/*.md), one test each.

- docs/triton.md + docs/speculative.md: ``--target cuda`` with a drafter (under TRITON_INTERPRET=1)
  decodes the same greedy tokens as the plain CPU path;
- docs/passes.md "Every pass is tested on hand-built programs": kv-cache, quantize-weights,
  quantize-kv and speculative on a two-layer model built op by op here (structure and numerics
  against the unrewritten program);
- docs/artifact.md: a manifest that is not JSON is refused; an existing artifact survives a failed
  overwrite (same files, same hashes);
- docs/kv-cache.md: the default pool is 4 full contexts, cut to 1 GiB, never below one context;
- docs/quantization.md: int4 refuses an odd input width naming the layer; ``embedding=false`` and
  ``lm_head=false`` keep those float; ``KILN_NATIVE=0`` (torch fallback) gives the same logits;
- docs/speculative.md: the self drafter never skips the last layer; near the end of the context
  drafts are cut so every node has a slot (no overrun, same tokens as plain decoding).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")  # as tests/test_triton.py: Triton kernels run on CPU tensors

import pytest
import torch

import kiln
from kiln.codegen.cpu import CpuProgram
from kiln.errors import KilnError
from kiln.ir.core import Module, Program, Value
from kiln.ir.ops import FROM_TORCH
from kiln.ir.types import DType, TensorType
from kiln.ir.verifier import verify_module
from kiln.passes.base import PASSES
from kiln.runtime.artifact import Artifact

ROOT = Path(__file__).resolve().parents[1]
V, D, H, KVH, HD, CTX, LAYERS = 16, 16, 2, 1, 8, 32, 2


# -- a two-layer pre-norm transformer built op by op -------------------------------------------

def _w(p: Program, m: Module, name: str) -> Value:
    t = m.weights[name]
    return p.create("kiln.weight", [], {"name": name}, result_types=[TensorType(FROM_TORCH[t.dtype], t.shape)]).result


def hand_built(d_in: int = D) -> Module:
    """forward(ids [B, T]) of a tiny transformer: token + learned position embeddings, per layer an
    RMSNorm, q/k/v linears, causal grouped-query attention, an output linear with a residual, and a
    vocabulary projection. Weights are named like Llama's so the layer-skipping drafter finds them."""
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=0.5):
        return torch.randn(*shape, generator=g) * scale

    w = {"model.embed_tokens.weight": rnd(V, D), "model.embed_positions.weight": rnd(CTX, D),
         "lm_head.weight": rnd(V, d_in)}
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        w[pre + "input_layernorm.weight"] = 1 + rnd(D, scale=0.1)
        w[pre + "self_attn.q_proj.weight"] = rnd(H * HD, D)
        w[pre + "self_attn.k_proj.weight"] = rnd(KVH * HD, D)
        w[pre + "self_attn.v_proj.weight"] = rnd(KVH * HD, D)
        w[pre + "self_attn.o_proj.weight"] = rnd(D, H * HD)
    if d_in != D:
        w["model.out_proj.weight"] = rnd(d_in, D)
    m = Module(weights=w, meta={"max_positions": CTX, "vocab_size": V, "family": "hand-built"})
    p = m.add(Program("forward"))
    ids = p.add_arg(TensorType(DType.i64, ("B", "T")), "input_ids")
    h = p.create("kiln.embedding", [_w(p, m, "model.embed_tokens.weight"), ids]).result
    pos = p.create("kiln.positions", [ids]).result
    h = p.create("kiln.add", [h, p.create("kiln.embedding", [_w(p, m, "model.embed_positions.weight"),
                                                             pos]).result]).result
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        x = p.create("kiln.rms_norm", [h, _w(p, m, pre + "input_layernorm.weight")], {"eps": 1e-5}).result

        def heads(name, n, x=x, pre=pre):
            y = p.create("kiln.linear", [x, _w(p, m, pre + f"self_attn.{name}_proj.weight")]).result
            y = p.create("kiln.reshape", [y], {"shape": ["B", "T", n, HD]}).result
            return p.create("kiln.transpose", [y], {"dim0": 1, "dim1": 2}).result

        a = p.create("kiln.attention", [heads("q", H), heads("k", KVH), heads("v", KVH)],
                     {"causal": True, "scale": HD ** -0.5}).result
        a = p.create("kiln.transpose", [a], {"dim0": 1, "dim1": 2}).result
        a = p.create("kiln.reshape", [a], {"shape": ["B", "T", H * HD]}).result
        h = p.create("kiln.add", [h, p.create("kiln.linear", [a, _w(p, m, pre + "self_attn.o_proj.weight")]).result
                                  ]).result
    if d_in != D:
        h = p.create("kiln.linear", [h, _w(p, m, "model.out_proj.weight")]).result
    p.set_outputs([p.create("kiln.linear", [h, _w(p, m, "lm_head.weight")]).result])
    verify_module(m)
    return m


def _apply(m: Module, spec: str) -> Module:
    from kiln.passes.manager import parse_passes

    for p in parse_passes(spec):
        p.apply(m)
        verify_module(m)
    return m


def _names(prog: Program) -> list[str]:
    return [op.name for op in prog.ops]


def _runtime(m: Module, **kw):
    return Artifact(m, {"target": "cpu", "model": dict(m.meta)}).runtime(**kw)


IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8, 9, 7, 9, 3]])


def _forward(m: Module, ids=IDS) -> torch.Tensor:
    return CpuProgram(m["forward"], m.weights)(ids)[0]


def _cached_logits(rt, ids=IDS, split: int = 5) -> torch.Tensor:
    """Logits at every position of every row, through the cache: prefill of the first ``split``
    tokens (packed rows), then one decode call per remaining position."""
    kv = rt.kv
    blocks = kv.reserve([ids.shape[1]] * ids.shape[0])
    try:
        table = kv.table(blocks)
        b, t = ids.shape
        out = torch.zeros(b, t, rt.vocab_size)
        flat = [(s, j) for s in range(b) for j in range(split)]
        logits = rt.prefill(torch.tensor([[int(ids[s, j]) for s, j in flat]]), torch.tensor([j for _, j in flat]),
                            torch.tensor([s for s, _ in flat]), table, *kv.args(),
                            torch.arange(len(flat)))[0][0]
        for r, (s, j) in enumerate(flat):
            out[s, j] = logits[r]
        for j in range(split, t):
            logits = rt.decode_prog(ids[:, j].view(1, b), torch.full((b,), j), torch.arange(b), table, *kv.args())[0][0]
            out[:, j] = logits
        return out
    finally:
        kv.release(blocks)


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_kv_cache_pass_on_a_hand_built_program(layout):
    m = hand_built()
    want = _forward(m)
    _apply(m, f"kv-cache{{layout={layout},block_size=4}}")
    assert set(m.programs) == {"forward", "prefill", "decode"}
    for name in ("prefill", "decode"):
        names = _names(m[name])
        assert "kiln.attention" not in names and "kiln.positions" not in names
        assert names.count("kiln.cache_write") == 2 * LAYERS and names.count("kiln.cache_attention") == LAYERS
        assert [a.hint for a in m[name].args][:6] == ["input_ids", "pos", "seq", "block_table", "k_cache", "v_cache"]
    assert m.meta["kv_cache"] == {"layout": layout, "block_size": CTX if layout == "contiguous" else 4,
                                  "layers": LAYERS, "kv_heads": KVH, "head_dim": HD, "dtype": "f32",
                                  "bytes_per_token": 2 * LAYERS * KVH * HD * 4}
    torch.testing.assert_close(_forward(m), want, rtol=0, atol=0)  # forward untouched
    torch.testing.assert_close(_cached_logits(_runtime(m)), want, rtol=1e-5, atol=1e-5)


def test_quantize_weights_pass_on_a_hand_built_program():
    m = hand_built()
    want = _forward(m)
    p = PASSES["quantize-weights"](format="int8")
    assert p.apply(m)
    verify_module(m)
    names = _names(m["forward"])
    assert "kiln.linear" not in names and "kiln.embedding" not in names
    assert names.count("kiln.qlinear") == 4 * LAYERS + 1 and names.count("kiln.qembedding") == 2
    assert m.weights["lm_head.weight.int8"].dtype == torch.int8 and "lm_head.weight" not in m.used_weights()
    err8 = (_forward(m) - want).abs().max()
    assert 0 < err8 < 0.05 * want.abs().max()  # lossy, but close
    # int4 on the same program: coarser, still the same function
    m4 = hand_built()
    assert PASSES["quantize-weights"](format="int4", group_size=32).apply(m4)
    assert _names(m4["forward"]).count("kiln.qlinear") == 4 * LAYERS + 1
    err4 = (_forward(m4) - want).abs().max()
    assert err8 < err4 < 0.5 * want.abs().max()


@pytest.mark.parametrize(("opts", "float_ops"), [("embedding=false", {"kiln.embedding": 2}),
                                                 ("lm_head=false", {"kiln.linear": 1}),
                                                 ("embedding=false,lm_head=false",
                                                  {"kiln.embedding": 2, "kiln.linear": 1})])
def test_quantize_embedding_and_lm_head_options_keep_them_float(opts, float_ops):
    m = hand_built()
    want = _forward(m)
    _apply(m, f"quantize-weights{{format=int8,{opts}}}")
    names = _names(m["forward"])
    for op in ("kiln.embedding", "kiln.linear"):
        assert names.count(op) == float_ops.get(op, 0), (opts, op)
    assert names.count("kiln.qlinear") == 4 * LAYERS + 1 - float_ops.get("kiln.linear", 0)
    q = m.meta["quantization"]["weights"]
    text = json.dumps(q)
    if "lm_head=false" in opts:
        assert m.weights["lm_head.weight"].dtype == torch.float32 and "lm_head.weight" in m.used_weights()
        assert "lm_head=false" in text
        head = m["forward"].outputs[0].owner
        assert head.name == "kiln.linear"
    if "embedding=false" in opts:
        assert "model.embed_tokens.weight" in m.used_weights() and "embedding=false" in text
    assert (_forward(m) - want).abs().max() < 0.05 * want.abs().max()


def test_int4_refuses_an_odd_input_width_naming_the_layer():
    m = hand_built(d_in=7)  # lm_head reads 7 features
    with pytest.raises(KilnError, match=r"odd input width 7.*") as e:
        PASSES["quantize-weights"](format="int4", group_size=32).apply(m)
    assert "lm_head" in str(e.value) and "\n" not in str(e.value)
    assert PASSES["quantize-weights"](format="int8").apply(hand_built(d_in=7))  # int8 has no such limit


def test_quantize_kv_pass_on_a_hand_built_program():
    m = _apply(hand_built(), "kv-cache{layout=paged,block_size=4}")
    float_logits = _forward(m)
    _apply(m, "quantize-kv")
    for name in ("prefill", "decode"):
        names = _names(m[name])
        assert names.count("kiln.cache_write_q8") == 2 * LAYERS and names.count("kiln.cache_attention_q8") == LAYERS
        assert "kiln.cache_write" not in names and "kiln.cache_attention" not in names
        args = {a.hint: a.type for a in m[name].args}
        assert args["k_cache"].dtype == DType.i8 and args["k_scale"].dtype == DType.f32
    assert _names(m["forward"]).count("kiln.fake_quant_int8") == 2 * LAYERS
    rounded = _forward(m)  # forward rounds keys and values as the cache stores them
    assert 0 < (rounded - float_logits).abs().max() < 0.05 * float_logits.abs().max()
    rt = _runtime(m)
    assert rt.kv.scaled
    torch.testing.assert_close(_cached_logits(rt), rounded, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("drafter", ["ngram", "self"])
def test_speculative_pass_on_a_hand_built_program(drafter):
    m = _apply(hand_built(), "kv-cache{layout=paged,block_size=4}")
    sp = PASSES["speculative"](drafter=drafter, k=3, skip=1 if drafter == "self" else 0)
    assert sp.apply(m)
    verify_module(m)
    names = _names(m["verify"])
    assert names.count("kiln.cache_tree_attention") == LAYERS and names.count("kiln.tree_accept") == 1
    assert names.count("kiln.cache_commit") == 2 and "kiln.cache_attention" not in names
    if drafter == "self":
        assert m.meta["speculative"]["skip_layers"] == [0]  # the last layer stays
        assert {"draft_prefill", "draft_decode", "spec_step"} <= set(m.programs)
    spec, plain = _runtime(m), _runtime(m, speculative=False)
    assert spec.spec is not None
    prompts = [[3, 1, 4, 1, 3, 1, 4], [7, 7, 7]]
    want = plain.generate(prompts, max_new_tokens=12, stop_at_eos=False)
    assert spec.generate(prompts, max_new_tokens=12, stop_at_eos=False) == want
    assert spec.last_stats["verify_calls"] > 0
    # and the plain path is the unrewritten forward's greedy continuation
    seq = torch.tensor([want[1]])
    assert torch.equal(_forward(m, seq)[0, 2:-1].argmax(-1), seq[0, 3:])


# -- artifacts ----------------------------------------------------------------------------------

def test_a_manifest_that_is_not_json_is_refused(tiny_artifact, tmp_path):
    import shutil

    d = Path(shutil.copytree(tiny_artifact, tmp_path / "a.kiln"))
    (d / "manifest.json").write_text('{"format_version": 1, "files": {')
    with pytest.raises(KilnError, match="manifest.json is corrupt") as e:
        kiln.load(d)
    assert "\n" not in str(e.value)


def test_an_existing_artifact_survives_a_failed_overwrite(tiny_artifact, tmp_path, monkeypatch):
    import safetensors.torch

    dest = kiln.load(tiny_artifact).save(tmp_path / "a.kiln")
    before = {p.relative_to(dest): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}
    other = kiln.load(tiny_artifact)
    other.manifest["note"] = "the replacement"
    real = safetensors.torch.save_file
    calls = []

    def fail_midway(tensors, path, *a, **k):  # the weights are written, then the disk fills up
        calls.append(path)
        real(tensors, path, *a, **k)
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", fail_midway)
    with pytest.raises((OSError, KilnError)):
        other.save(dest)
    monkeypatch.undo()
    assert calls, "the save never reached the weights"
    after = {p.relative_to(dest): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}
    assert after == before
    again = kiln.load(dest)  # hashes check out
    assert "note" not in again.manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.kiln"]  # no temporary directory left
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(again.runtime().logits(ids), kiln.load(tiny_artifact).runtime().logits(ids))


# -- the KV-cache pool's default size -------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_default_cache_is_four_contexts_capped_at_1gib_never_below_one(layout):
    from kiln.runtime.kvcache import KVAllocator

    def pool(layers: int, heads: int, head_dim: int, ctx: int) -> KVAllocator:
        info = {"layout": layout, "block_size": ctx if layout == "contiguous" else 16, "layers": layers,
                "kv_heads": heads, "head_dim": head_dim, "dtype": "f32",
                "bytes_per_token": 2 * layers * heads * head_dim * 4}
        return KVAllocator(info, ctx)

    gib = 1 << 30
    small = pool(1, 1, 8, 2048)  # 64 bytes a token: 4 contexts are 512 KiB
    assert small.capacity_tokens == 4 * 2048
    mid = pool(8, 8, 699, 1024)  # 357888 bytes a token: 1 GiB holds 3000 tokens, under 4 contexts, over 2
    assert 2 * 1024 <= mid.capacity_tokens < 4 * 1024 and mid.nbytes <= gib
    assert mid.capacity_tokens >= gib // mid.bytes_per_token - mid.block_size  # cut to 1 GiB, not further
    huge = pool(48, 8, 1024, 512)  # 3 MiB a token: one context is 1.5 GiB, so exactly one context
    assert huge.capacity_tokens == 512 and huge.nbytes > gib
    assert huge.k is None  # nothing allocated until first use


def test_a_runtime_gets_the_default_pool(tiny_artifact):
    rt = kiln.load(tiny_artifact).runtime()
    assert rt.kv.capacity_tokens == 4 * rt.max_positions
    assert rt.kv.nbytes == 4 * rt.max_positions * rt.kv.bytes_per_token


# -- KILN_NATIVE=0 -----------------------------------------------------------------------------

def test_kiln_native_0_gives_the_same_logits(tiny_artifact, tmp_path):
    from kiln.codegen import native

    int8 = kiln.compile("llama-tiny", pipeline="int8").save(tmp_path / "int8.kiln")
    ids = torch.randint(0, 512, (2, 70), generator=torch.Generator().manual_seed(0))
    torch.save(ids, tmp_path / "ids.pt")
    script = (
        "import sys, torch, kiln\n"
        "from kiln.codegen import native\n"
        "assert native.library() is None, 'KILN_NATIVE=0 left the native kernels on'\n"
        "ids = torch.load(sys.argv[1])\n"
        "torch.save([kiln.load(a).runtime().logits(ids) for a in sys.argv[3:]], sys.argv[2])\n")
    env = {**os.environ, "KILN_NATIVE": "0", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ids.pt"), str(tmp_path / "out.pt"),
                        str(tiny_artifact), str(int8)], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    fallback = torch.load(tmp_path / "out.pt")
    for art, got in zip((tiny_artifact, int8), fallback):
        rt = kiln.load(art).runtime()
        torch.testing.assert_close(rt.logits(ids), got, rtol=1e-4, atol=1e-4)
    if native.library() is not None:  # with a C compiler the two runs took different routes
        assert os.environ.get("KILN_NATIVE") != "0"


# -- speculative decoding: self drafter, end of the context, Triton ------------------------------

_SPEC: dict = {}


def _spec(drafter: str):
    if drafter not in _SPEC:
        _SPEC[drafter] = kiln.compile("llama-tiny", pipeline="paged", draft=drafter, spec_k=4)
    return _SPEC[drafter]


def test_the_self_drafter_never_skips_the_last_layer():
    from kiln.passes.speculative import skip_layers

    art = _spec("self")
    info = art.module.meta["speculative"]
    assert info["skip_layers"] == [0] and info["draft_layers"] == 1
    assert all(LAYERS - 1 not in step["skip"] for step in info["search"])
    used = {op.attrs["name"] for op in art.module["draft_decode"].walk("kiln.weight")}
    assert any(".layers.1." in n for n in used) and not any(".layers.0." in n for n in used)
    with pytest.raises(KilnError, match="can skip layers 0..0 of 2"):
        skip_layers(art.module["decode"].clone(), {1})
    with pytest.raises(KilnError, match=r"skip must be in \[1, 1\]"):
        kiln.compile("llama-tiny", draft="self", spec_skip=2)


@pytest.mark.parametrize("drafter", ["self", "ngram"])
def test_drafts_are_cut_at_the_end_of_the_context(drafter):
    art = _spec(drafter)
    spec, plain = art.runtime(), art.runtime(speculative=False)
    ctx = spec.max_positions
    prompt = [(7 * i) % 50 + 3 for i in range(ctx - 6)]  # periodic: the n-gram drafter proposes long runs
    want = plain.generate([prompt], max_new_tokens=6, stop_at_eos=False)
    got = spec.generate([prompt], max_new_tokens=6, stop_at_eos=False)
    assert got == want and len(got[0]) == ctx
    assert spec.last_stats["verify_calls"] > 0
    with pytest.raises(KilnError, match="exceeds the model's context"):
        spec.generate([prompt], max_new_tokens=7, stop_at_eos=False)


def test_the_triton_target_with_a_drafter_decodes_the_plain_greedy_tokens():
    from kiln.codegen.triton.program import TritonProgram

    art = kiln.compile("llama-tiny", target="cuda", draft="self", spec_k=3)
    assert art.manifest["target"] == "cuda" and "spec_step" in art.module.programs
    rt = art.runtime()
    assert isinstance(rt.prefill, TritonProgram) and rt.spec is not None
    cpu = Artifact(art.module, {**art.manifest, "target": "cpu"}, art.tokenizer_files).runtime(speculative=False)
    prompt = [[5, 9, 5, 9, 5, 9, 5]]
    assert rt.generate(prompt, max_new_tokens=8, stop_at_eos=False) == \
        cpu.generate(prompt, max_new_tokens=8, stop_at_eos=False)
    assert rt.last_stats["fused_rounds"] > 0
