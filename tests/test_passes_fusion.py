"""Tests of the fusion passes (fuse-qkv, fuse-gate-up) and of the whole clean-up
and fusion pipeline on captured tiny models (llama-tiny, qwen2-tiny, gpt2-tiny).
"""

from __future__ import annotations

import pytest
import torch
from test_passes_cleanup import (
    LAYERS,
    PRESETS,
    T,
    assert_same_logits,
    count,
    expect,
    make,
    rand,
    run_passes,
    same_outputs,
    weight,
)

from kiln.ir.core import Module, Program, Value
from kiln.ir.types import TensorType
from kiln.passes.base import PASSES
from kiln.passes.fusion import fused_name

PIPELINE = ["dce", "cse", "canonicalize", "fold-constants", "fuse-qkv", "fuse-gate-up", "cse", "dce"]
ATTN = "blk.0.attn"


def attn_module(x_type: TensorType, bias: bool | str = False, n: int = 3, dtypes: tuple = ()
                ) -> tuple[Module, Program]:
    """x -> n linears named ``blk.0.attn.{q,k,v,o}_proj`` (widths 8, 4, 4, 4), each result returned;
    ``bias="mixed"`` leaves v without its bias."""
    heads = "qkvo"[:n]
    widths = [8, 4, 4, 4][:n]
    weights = {}
    for i, (h, w) in enumerate(zip(heads, widths)):
        dt = dtypes[i] if i < len(dtypes) else torch.float32
        weights[f"{ATTN}.{h}_proj.weight"] = rand(w, 8 + i).narrow(1, 0, 8).to(dt).contiguous()
        if bias:
            weights[f"{ATTN}.{h}_proj.bias"] = rand(w + i).narrow(0, 0, w).contiguous()
    m, p, (x,) = make([("x", x_type)], weights)
    outs = []
    for h in heads:
        ops = [x, weight(p, m, f"{ATTN}.{h}_proj.weight")]
        if bias and (h != "v" or bias != "mixed"):
            ops.append(weight(p, m, f"{ATTN}.{h}_proj.bias"))
        outs.append(p.create("kiln.linear", ops).result)
    p.set_outputs(outs)
    return m, p


# ---------------------------------------------------------------------------
# naming


def test_fused_names():
    assert fused_name([f"m.l.0.attn.{h}_proj.weight" for h in "qkv"]) == "m.l.0.attn.qkv_proj.weight"
    assert fused_name(["m.mlp.gate_proj.weight", "m.mlp.up_proj.weight"]) == "m.mlp.gate_up_proj.weight"
    assert fused_name(["a.wq", "a.wk", "a.wv"]) == "a.wq_wk_wv"
    assert fused_name(["a.query.w", "a.key.w", "a.value.w"]) == "a.query_key_value.w"
    assert fused_name(["w", "w", "w"]) == "w.fused"  # one weight used three times


# ---------------------------------------------------------------------------
# fuse-qkv


def test_fuse_qkv_hand_built():
    m, p = attn_module(T("B", "T", 8))
    before = m.clone()
    f = PASSES["fuse-qkv"]()
    assert f.apply(m)
    expect(p, """
        %0 = weight() {name = "blk.0.attn.qkv_proj.weight"} : 16x8xf32
        %1 = linear(%x, %0) : ?x?x16xf32, "B,T"
        %2 = slice(%1) {dim = 2, end = 8, start = 0} : ?x?x8xf32, "B,T"
        %3 = slice(%1) {dim = 2, end = 12, start = 8} : ?x?x4xf32, "B,T"
        %4 = slice(%1) {dim = 2, end = 16, start = 12} : ?x?x4xf32, "B,T"
        return(%2, %3, %4)
    """)
    assert f.decisions["fused"] == {f"{ATTN}.qkv_proj.weight": [f"{ATTN}.{h}_proj.weight" for h in "qkv"]}
    assert f.stats == {"qkv": 1}
    want = torch.cat([m.weights[f"{ATTN}.{h}_proj.weight"] for h in "qkv"])
    assert torch.equal(m.weights[f"{ATTN}.qkv_proj.weight"], want)
    same_outputs(before, m, rand(2, 5, 8))
    assert not PASSES["fuse-qkv"]().apply(m)
    assert PASSES["dce"]().apply(m) and set(m.weights) == {f"{ATTN}.qkv_proj.weight"}


def test_fuse_qkv_with_bias_on_flattened_rows():
    m, p = attn_module(T("B*T", 8), bias=True)
    before = m.clone()
    f = PASSES["fuse-qkv"]()
    assert f.apply(m)
    expect(p, """
        %0 = weight() {name = "blk.0.attn.qkv_proj.weight"} : 16x8xf32
        %1 = weight() {name = "blk.0.attn.qkv_proj.bias"} : 16xf32
        %2 = linear(%x, %0, %1) : ?x16xf32, "B*T"
        %3 = slice(%2) {dim = 1, end = 8, start = 0} : ?x8xf32, "B*T"
        %4 = slice(%2) {dim = 1, end = 12, start = 8} : ?x4xf32, "B*T"
        %5 = slice(%2) {dim = 1, end = 16, start = 12} : ?x4xf32, "B*T"
        return(%3, %4, %5)
    """)
    assert list(f.decisions["fused"]) == [f"{ATTN}.qkv_proj.weight", f"{ATTN}.qkv_proj.bias"]
    same_outputs(before, m, rand(6, 8))


@pytest.mark.parametrize("case", ["two", "four", "mixed-bias", "dtype", "not-a-weight", "missing-tensor"])
def test_fuse_qkv_leaves_other_groups(case):
    if case == "two":
        m, p = attn_module(T("B", 8), n=2)
    elif case == "four":
        m, p = attn_module(T("B", 8), n=4)
    elif case == "mixed-bias":
        m, p = attn_module(T("B", 8), bias="mixed")
    elif case == "dtype":
        m, p = attn_module(T("B", 8), dtypes=(torch.float32, torch.float16))
    elif case == "not-a-weight":
        m, p = attn_module(T("B", 8))
        lin = p.ops[1]
        t = p.create("kiln.neg", [lin.operands[1]], before=lin).result
        lin.set_operand(1, t)
    else:
        m, p = attn_module(T("B", 8))
        del m.weights[f"{ATTN}.k_proj.weight"]
    n = count(p, "kiln.linear")
    assert not PASSES["fuse-qkv"]().apply(m)
    assert count(p, "kiln.linear") == n


def test_fuse_qkv_name_taken_and_shared_across_programs():
    m, p = attn_module(T("B", 8))
    m.weights[f"{ATTN}.qkv_proj.weight"] = rand(3)
    q = p.clone()
    q.name = "decode"
    m.add(q)
    f = PASSES["fuse-qkv"]()
    assert f.apply(m)
    assert f.stats == {"qkv": 2}
    assert list(f.decisions["fused"]) == [f"{ATTN}.qkv_proj.weight.1"]
    assert {op.attrs["name"] for prog in (p, q) for op in prog.walk("kiln.weight")} == {f"{ATTN}.qkv_proj.weight.1"}


# ---------------------------------------------------------------------------
# fuse-gate-up


def mlp_module(act: str = "kiln.silu", up_first: bool = False, bias: bool = False,
               same_x: bool = True) -> tuple[Module, Program]:
    ws = {"mlp.gate_proj.weight": rand(12, 8), "mlp.up_proj.weight": rand(12, 9)[:, :8].contiguous(),
          "mlp.down_proj.weight": rand(8, 12), "mlp.gate_proj.bias": rand(12)}
    m, p, (x, x2) = make([("x", T("B", "T", 8)), ("x2", T("B", "T", 8))], ws)

    def lin(name: str, arg: Value) -> Value:
        extra = [weight(p, m, "mlp.gate_proj.bias")] if bias and name == "gate" else []
        return p.create("kiln.linear", [arg, weight(p, m, f"mlp.{name}_proj.weight")] + extra).result

    if up_first:
        up = lin("up", x if same_x else x2)
        gate = lin("gate", x)
    else:
        gate = lin("gate", x)
        up = lin("up", x if same_x else x2)
    a = p.create(act, [gate]).result
    h = p.create("kiln.mul", [up, a] if up_first else [a, up]).result
    p.set_outputs([p.create("kiln.linear", [h, weight(p, m, "mlp.down_proj.weight")]).result])
    return m, p


@pytest.mark.parametrize("up_first", [False, True])
def test_fuse_gate_up_hand_built(up_first):
    m, p = mlp_module(up_first=up_first)
    before = m.clone()
    f = PASSES["fuse-gate-up"]()
    assert f.apply(m)
    expect(p, """
        %0 = weight() {name = "mlp.gate_up_proj.weight"} : 24x8xf32
        %1 = linear(%x, %0) : ?x?x24xf32, "B,T"
        %2 = slice(%1) {dim = 2, end = 12, start = 0} : ?x?x12xf32, "B,T"
        %3 = slice(%1) {dim = 2, end = 24, start = 12} : ?x?x12xf32, "B,T"
        %4 = silu(%2) : ?x?x12xf32, "B,T"
        %5 = mul(%6, %7) : ?x?x12xf32, "B,T"
        %6 = weight() {name = "mlp.down_proj.weight"} : 8x12xf32
        %7 = linear(%5, %6) : ?x?x8xf32, "B,T"
        return(%7)
    """.replace("mul(%6, %7)", "mul(%3, %4)" if up_first else "mul(%4, %3)"))
    assert f.decisions["fused"] == {"mlp.gate_up_proj.weight": ["mlp.gate_proj.weight", "mlp.up_proj.weight"]}
    same_outputs(before, m, rand(2, 3, 8), rand(2, 3, 8))
    assert not PASSES["fuse-gate-up"]().apply(m)


def test_fuse_gate_up_with_gelu():
    m, p = mlp_module(act="kiln.gelu")
    before = m.clone()
    assert PASSES["fuse-gate-up"]().apply(m)
    assert count(p, "kiln.linear") == 2
    same_outputs(before, m, rand(2, 3, 8), rand(2, 3, 8))


@pytest.mark.parametrize("kw", [{"act": "kiln.relu"}, {"bias": True}, {"same_x": False}])
def test_fuse_gate_up_leaves_other_shapes(kw):
    m, p = mlp_module(**kw)
    assert not PASSES["fuse-gate-up"]().apply(m)
    assert count(p, "kiln.linear") == 3


# ---------------------------------------------------------------------------
# captured models


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name, per_layer", [("fuse-qkv", 2), ("fuse-gate-up", 1)])
def test_fusion_keeps_logits(preset, name, per_layer, import_preset):
    ref = import_preset(preset).module
    m = ref.clone()
    n = count(m["forward"], "kiln.linear")
    (f,) = run_passes(m, name)
    assert_same_logits(ref, m)
    if preset == "gpt2-tiny":  # c_attn is already one linear and the MLP is not gated
        assert not f.changed and count(m["forward"], "kiln.linear") == n
        return
    assert f.changed and count(m["forward"], "kiln.linear") == n - per_layer * LAYERS
    assert len(f.decisions["fused"]) == LAYERS * (2 if name == "fuse-qkv" and preset == "qwen2-tiny" else 1)
    assert not PASSES[name]().apply(m)


@pytest.mark.parametrize("preset", PRESETS)
def test_pipeline(preset, import_preset):
    ref = import_preset(preset).module
    m = ref.clone()
    passes = run_passes(m, *PIPELINE)
    assert_same_logits(ref, m)
    prog = m["forward"]
    assert m.weights.keys() == m.used_weights()
    if preset == "gpt2-tiny":
        assert not any(op.name == "kiln.transpose" and op.operands[0].owner.name == "kiln.weight" for op in prog.ops)
        assert count(prog, "kiln.transpose") == 4 * LAYERS  # q, k, v heads and the attention output
        assert not any("B*T" in str(op.result.type.shape) for op in prog.ops if op.results)
    else:
        assert count(prog, "kiln.linear") == 4 * LAYERS + 1  # qkv, o, gate_up, down per layer + lm_head
        assert count(prog, "kiln.positions") == 1
        assert "model.layers.0.self_attn.q_proj.weight" not in m.weights
        assert "model.layers.1.mlp.gate_up_proj.weight" in m.weights
    changed = {p.name: p.changed for p in passes}
    assert changed["canonicalize"] and changed["dce"]
    for name in dict.fromkeys(PIPELINE):  # a second run finds nothing left to do
        assert not PASSES[name]().apply(m), f"{name} changed an already-optimised {preset}"


def test_fusion_passes_are_registered():
    for name in PIPELINE:
        assert PASSES[name].summary and PASSES[name].name == name
