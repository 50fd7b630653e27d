"""Tests of the clean-up passes (dce, cse, fold-constants, canonicalize).

Hand-built programs check the exact ops each rule leaves; captured tiny models
(llama-tiny, qwen2-tiny, gpt2-tiny) check that the passes keep the logits. The
helpers (``compact``, ``assert_same_logits``, ``run_passes``...) are imported by
test_passes_fusion.py; captured modules come from conftest's ``import_preset``
(cached per session; tests clone them).
"""

from __future__ import annotations

import pytest
import torch
from _compare import assert_outputs_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.codegen.cpu import CpuProgram
from kiln.ir.core import Module, Program, Value
from kiln.ir.printer import format_attr, format_type
from kiln.ir.types import DType, TensorType
from kiln.ir.verifier import verify_module
from kiln.passes.base import PASSES, Pass
from kiln.passes.cleanup import hashable

F32 = DType.f32
END = 2**63 - 1
PRESETS = ["llama-tiny", "qwen2-tiny", "gpt2-tiny"]
LAYERS = 2  # every tiny preset has two layers
SHAPES = [(1, 1), (1, 7), (1, 33), (2, 1), (2, 7), (2, 33)]

# ---------------------------------------------------------------------------
# helpers (shared with test_passes_fusion.py)


_REFERENCE: dict[int, tuple[Module, list[tuple[torch.Tensor, torch.Tensor]]]] = {}


def reference_logits(module: Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ids, logits) of an unrewritten module for fresh random ids of each shape in SHAPES (cached)."""
    hit = _REFERENCE.get(id(module))
    if hit is None or hit[0] is not module:
        vocab = module["forward"].outputs[0].type.shape[-1]
        gen = torch.Generator().manual_seed(len(_REFERENCE))
        run = CpuProgram(module["forward"], module.weights)
        ids = [torch.randint(0, vocab, shape, generator=gen) for shape in SHAPES]
        hit = _REFERENCE[id(module)] = (module, [(i, run(i)[0]) for i in ids])
    return hit[1]


def assert_same_logits(reference: Module, module: Module) -> None:
    """``module`` verifies and gives ``reference``'s logits (max abs diff <= 1e-5, same argmax)."""
    verify_module(module)
    run = CpuProgram(module["forward"], module.weights)
    for ids, want in reference_logits(reference):
        got = run(ids)[0]
        assert got.shape == want.shape
        diff = (got - want).abs().max().item()
        assert diff <= 1e-5, f"{reference.meta.get('family')} {tuple(ids.shape)}: max abs diff {diff}"
        assert torch.equal(got.argmax(-1), want.argmax(-1))


def run_passes(module: Module, *names: str) -> list[Pass]:
    done = []
    for name in names:
        p = PASSES[name]()
        p.changed = p.apply(module)  # type: ignore[attr-defined]
        verify_module(module)
        done.append(p)
    return done


def count(program: Program, name: str) -> int:
    return sum(1 for op in program.ops if op.name == name)


def compact(program: Program) -> str:
    """One line per op: ``%2 = linear(%x, %0, %1) : [B,T,16]xf32``, attributes in MLIR syntax."""
    names: dict[int, str] = {id(a): a.hint or f"arg{i}" for i, a in enumerate(program.args)}
    lines = []
    for i, op in enumerate(program.ops):
        ins = ", ".join("%" + names[id(v)] for v in op.operands)
        attrs = " {" + ", ".join(f"{k} = {format_attr(v)}" for k, v in sorted(op.attrs.items())) + "}" \
            if op.attrs else ""
        short = op.name.removeprefix("kiln.")
        if not op.results:
            lines.append(f"{short}({ins})")
            continue
        for r in op.results:
            names[id(r)] = str(i)
        types = ", ".join(format_type(r.type).removeprefix("tensor<").removesuffix(">") for r in op.results)
        lines.append(f"%{i} = {short}({ins}){attrs} : {types}")
    return "\n".join(lines)


def expect(program: Program, text: str) -> None:
    want = "\n".join(line.strip() for line in text.strip().splitlines())
    assert compact(program) == want, "\n" + compact(program)


def make(args: list[tuple[str, TensorType]], weights: dict[str, torch.Tensor] | None = None
         ) -> tuple[Module, Program, list[Value]]:
    module = Module(weights=dict(weights or {}))
    p = module.add(Program("forward"))
    return module, p, [p.add_arg(t, hint) for hint, t in args]


def weight(p: Program, module: Module, name: str) -> Value:
    t = module.weights[name]
    from kiln.ir.ops import FROM_TORCH

    return p.create("kiln.weight", [], {"name": name}, result_types=[TensorType(FROM_TORCH[t.dtype], t.shape)]).result


def rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(len(shape) * 100 + sum(shape)))


def same_outputs(before: Module, after: Module, *inputs: torch.Tensor, tol: float = 1e-5) -> None:
    verify_module(after)
    want = CpuProgram(before["forward"], before.weights)(*inputs)
    got = CpuProgram(after["forward"], after.weights)(*inputs)
    assert_outputs_close(got, want, rtol=tol, atol=tol)


def T(*shape) -> TensorType:
    return TensorType(F32, shape)


# ---------------------------------------------------------------------------
# dce


def test_dce_erases_dead_chains_and_unused_weights():
    m, p, (x,) = make([("x", T("B", 8))], {"w": rand(4, 8), "w2": rand(4, 8), "stale": rand(3)})
    w = weight(p, m, "w")
    weight(p, m, "w2")
    dead = p.create("kiln.relu", [x]).result
    p.create("kiln.neg", [dead])
    y = p.create("kiln.linear", [x, w]).result
    p.set_outputs([y])
    d = PASSES["dce"]()
    assert d.apply(m)
    expect(p, """
        %0 = weight() {name = "w"} : 4x8xf32
        %1 = linear(%x, %0) : ?x4xf32, "B"
        return(%1)
    """)
    assert set(m.weights) == {"w"}
    assert d.stats == {"dead-op": 3, "dead-weight": 2}
    assert not PASSES["dce"]().apply(m)


# ---------------------------------------------------------------------------
# cse


def test_cse_merges_weights_ops_and_commuted_operands():
    m, p, (x, z) = make([("x", T("B", 8)), ("z", T("B", 4))], {"w": rand(4, 8)})
    l1 = p.create("kiln.linear", [x, weight(p, m, "w")]).result
    l2 = p.create("kiln.linear", [x, weight(p, m, "w")]).result
    a = p.create("kiln.add", [l1, z]).result
    b = p.create("kiln.add", [z, l2]).result  # commutative: same as a once l2 == l1
    s1 = p.create("kiln.sub", [a, z]).result
    s2 = p.create("kiln.sub", [z, b]).result  # not commutative: stays
    r1 = p.create("kiln.reshape", [s1], {"shape": ["B", 2, 2]}).result
    r2 = p.create("kiln.reshape", [s1], {"shape": ["B", 2, 2]}).result  # list attributes compare by value
    p.set_outputs([r1, r2, s2])
    before = m.clone()
    c = PASSES["cse"]()
    assert c.apply(m)
    expect(p, """
        %0 = weight() {name = "w"} : 4x8xf32
        %1 = linear(%x, %0) : ?x4xf32, "B"
        %2 = add(%1, %z) : ?x4xf32, "B"
        %3 = sub(%2, %z) : ?x4xf32, "B"
        %4 = sub(%z, %2) : ?x4xf32, "B"
        %5 = reshape(%3) {shape = ["B", 2, 2]} : ?x2x2xf32, "B"
        return(%5, %5, %4)
    """)
    assert c.stats == {"weight": 1, "op": 3}
    assert not PASSES["cse"]().apply(m)
    same_outputs(before, m, rand(3, 8), rand(3, 4))


def test_cse_keeps_ops_whose_attrs_or_types_differ():
    m, p, (x,) = make([("x", T(4))])
    outs = [p.create("kiln.add", [x], {"scalar": s}).result for s in (1, 1.0, True, 0.0, -0.0)]
    outs += [p.create("kiln.constant", [], {"value": 1.0}, result_types=[t]).result for t in (T(4), T(2))]
    p.set_outputs(outs)
    assert not PASSES["cse"]().apply(m)
    assert hashable([1, {"a": [2.0]}]) == hashable([1, {"a": [2.0]}])
    assert hashable(1) != hashable(1.0) != hashable(True)


# ---------------------------------------------------------------------------
# fold-constants


def test_fold_transposed_weight_into_a_new_weight():
    w = rand(6, 4)
    m, p, (x,) = make([("x", T("B", 6))], {"h.0.c_attn.weight": w, "h.0.c_attn.weight.transpose": rand(2)})
    t = p.create("kiln.transpose", [weight(p, m, "h.0.c_attn.weight")], {"dim0": 0, "dim1": 1}).result
    c = p.create("kiln.cast", [t], {"dtype": F32}).result
    p.set_outputs([p.create("kiln.linear", [x, c]).result])
    before = m.clone()
    f = PASSES["fold-constants"]()
    assert f.apply(m)
    # the name is taken (by another tensor): the fold gets the next free one
    expect(p, """
        %0 = weight() {name = "h.0.c_attn.weight.transpose.1.cast"} : 4x6xf32
        %1 = linear(%x, %0) : ?x4xf32, "B"
        return(%1)
    """)
    assert f.decisions["folded"] == ["h.0.c_attn.weight.transpose.1", "h.0.c_attn.weight.transpose.1.cast"]
    assert f.stats == {"transpose": 1, "cast": 1}
    folded = m.weights["h.0.c_attn.weight.transpose.1.cast"]
    assert torch.equal(folded, w.t()) and folded.is_contiguous()
    same_outputs(before, m, rand(5, 6))
    assert not PASSES["fold-constants"]().apply(m)
    assert PASSES["dce"]().apply(m)
    assert set(m.weights) == {"h.0.c_attn.weight.transpose.1.cast"}


def test_fold_with_constants_and_across_programs():
    m, p, (x,) = make([("x", T(4))], {"b": rand(4)})
    q = m.add(Program("decode"))
    xq = q.add_arg(T(4), "x")
    for prog, arg in ((p, x), (q, xq)):
        one = prog.create("kiln.constant", [], {"value": 1.0}, result_types=[T(4)]).result
        b1 = prog.create("kiln.add", [weight(prog, m, "b"), one]).result
        prog.set_outputs([prog.create("kiln.mul", [arg, b1]).result])
    before = m.clone()
    f = PASSES["fold-constants"]()
    assert f.apply(m)
    assert f.decisions["folded"] == ["b.add"]  # both programs share the one folded weight
    for prog in (p, q):
        assert [op.name for op in prog.ops] == ["kiln.weight", "kiln.mul", "kiln.return"]
        assert prog.ops[0].attrs["name"] == "b.add"
    assert torch.equal(m.weights["b.add"], before.weights["b"] + 1)
    same_outputs(before, m, rand(4))


def test_fold_skips_symbolic_and_growing_results():
    m, p, (x,) = make([("x", T("B", 4))], {"w": rand(1, 4)})
    big = p.create("kiln.expand", [weight(p, m, "w")], {"shape": [64, 4]}).result  # 256 > 2 * 4 elements
    sym = p.create("kiln.expand", [weight(p, m, "w")], {"shape": ["B", 4]}).result
    p.set_outputs([big, p.create("kiln.add", [x, sym]).result])
    f = PASSES["fold-constants"]()
    assert not f.apply(m)
    assert f.stats == {"skipped-too-large": 1}
    assert count(p, "kiln.expand") == 2


# ---------------------------------------------------------------------------
# canonicalize


def canon(m: Module) -> Pass:
    c = PASSES["canonicalize"]()
    c.apply(m)
    verify_module(m)
    return c


def test_canonicalize_identities():
    m, p, (x, n) = make([("x", T("B", 8)), ("n", TensorType(DType.i64, ("B", 8)))])
    v = p.create("kiln.cast", [x], {"dtype": F32}).result
    v = p.create("kiln.reshape", [v], {"shape": ["B", 8]}).result
    v = p.create("kiln.expand", [v], {"shape": ["B", 8]}).result
    v = p.create("kiln.expand", [v], {"shape": [-1, 8]}).result
    v = p.create("kiln.transpose", [v], {"dim0": 0, "dim1": 1}).result
    v = p.create("kiln.transpose", [v], {"dim0": 1, "dim1": 0}).result
    v = p.create("kiln.add", [v], {"scalar": 0}).result
    v = p.create("kiln.sub", [v], {"scalar": 0.0}).result
    v = p.create("kiln.mul", [v], {"scalar": 1.0}).result
    v = p.create("kiln.div", [v], {"scalar": 1}).result
    v = p.create("kiln.slice", [v], {"dim": 1, "start": 0, "end": 8}).result
    v = p.create("kiln.slice", [v], {"dim": 0, "start": 0, "end": END}).result
    v = p.create("kiln.permute", [v], {"dims": [0, 1]}).result
    v = p.create("kiln.transpose", [v], {"dim0": -1, "dim1": 1}).result
    kept = [p.create("kiln.sub", [x], {"scalar": 0, "reverse": True}).result,  # 0 - x
            p.create("kiln.div", [n], {"scalar": 1}).result,  # i64 / 1 is f32
            p.create("kiln.add", [n], {"scalar": 0.0}).result,  # i64 + 0.0 is f32
            p.create("kiln.slice", [x], {"dim": 1, "start": 0, "end": 4}).result,
            p.create("kiln.slice", [x], {"dim": 1, "start": 0, "end": 8, "step": 2}).result,
            p.create("kiln.transpose", [p.create("kiln.transpose", [x], {"dim0": 0, "dim1": 1}).result],
                     {"dim0": 0, "dim1": 1}).result]
    p.set_outputs([v] + kept)
    before = m.clone()
    c = canon(m)
    expect(p, """
        %0 = sub(%x) {reverse = true, scalar = 0} : ?x8xf32, "B"
        %1 = div(%n) {scalar = 1} : ?x8xf32, "B"
        %2 = add(%n) {scalar = 0.0} : ?x8xf32, "B"
        %3 = slice(%x) {dim = 1, end = 4, start = 0} : ?x4xf32, "B"
        %4 = slice(%x) {dim = 1, end = 8, start = 0, step = 2} : ?x4xf32, "B"
        return(%x, %0, %1, %2, %3, %4, %x)
    """)
    assert c.stats["transpose-pair"] == 2 and c.stats["identity-expand"] == 2
    assert not PASSES["canonicalize"]().apply(m)
    same_outputs(before, m, rand(3, 8), torch.arange(24).reshape(3, 8), tol=0)


def test_canonicalize_reshape_chains():
    m, p, (x,) = make([("x", T("B", 2, 6))])
    a = p.create("kiln.reshape", [x], {"shape": ["B", 12]}).result
    b = p.create("kiln.reshape", [a], {"shape": ["B", 3, 4]}).result
    c = p.create("kiln.reshape", [b], {"shape": ["B*12"]}).result
    back = p.create("kiln.reshape", [p.create("kiln.reshape", [x], {"shape": ["B", 12]}).result],
                    {"shape": ["B", 2, 6]}).result
    p.set_outputs([b, c, back])
    before = m.clone()
    canon(m)
    expect(p, """
        %0 = reshape(%x) {shape = ["B", 3, 4]} : ?x3x4xf32, "B"
        %1 = reshape(%x) {shape = ["B*12"]} : ?xf32, "12*B"
        return(%0, %1, %x)
    """)
    same_outputs(before, m, rand(3, 2, 6), tol=0)


def gpt2_block(x_shape: tuple, flat: list, out: list, bias: bool = True) -> tuple[Module, Program]:
    m, p, (x,) = make([("x", T(*x_shape))], {"w": rand(16, 8), "b": rand(16)})
    r = p.create("kiln.reshape", [x], {"shape": flat}).result
    lin = p.create("kiln.linear", [r, weight(p, m, "w")] + ([weight(p, m, "b")] if bias else [])).result
    p.set_outputs([p.create("kiln.reshape", [lin], {"shape": out}).result])
    return m, p


def test_canonicalize_flattened_linear():
    m, p = gpt2_block(("B", "T", 8), ["B*T", 8], ["B", "T", 16])
    before = m.clone()
    c = canon(m)
    expect(p, """
        %0 = weight() {name = "w"} : 16x8xf32
        %1 = weight() {name = "b"} : 16xf32
        %2 = linear(%x, %0, %1) : ?x?x16xf32, "B,T"
        return(%2)
    """)
    assert c.stats == {"flattened-linear": 1}
    same_outputs(before, m, rand(2, 5, 8))


def test_canonicalize_flattened_linear_reshapes_other_layouts():
    m, p = gpt2_block(("B", "T", 2, 4), ["B*T", 8], ["B", "T", 16], bias=False)
    before = m.clone()
    canon(m)
    expect(p, """
        %0 = weight() {name = "w"} : 16x8xf32
        %1 = reshape(%x) {shape = ["B", "T", 8]} : ?x?x8xf32, "B,T"
        %2 = linear(%1, %0) : ?x?x16xf32, "B,T"
        return(%2)
    """)
    same_outputs(before, m, rand(2, 3, 2, 4))


def test_canonicalize_flattened_linear_needs_matching_rows():
    m, p = gpt2_block((2, 3, 8), [6, 8], [3, 2, 16])  # rows regrouped: fine, 2 * 3 == 3 * 2
    before = m.clone()
    canon(m)
    assert [op.name for op in p.ops[-3:-1]] == ["kiln.reshape", "kiln.linear"]
    assert p.ops[-3].attrs["shape"] == [3, 2, 8]
    same_outputs(before, m, rand(2, 3, 8))
    m, p = gpt2_block(("B", 2, 4), ["B", 8], ["B*16"])  # the output is flattened across N: kept
    assert not PASSES["canonicalize"]().apply(m)
    m, p = gpt2_block(("B", "T", 8), ["B*T", 8], ["B", "T", 16])
    lin = p.ops[-3].result
    p.set_outputs(list(p.outputs) + [lin])  # the flat linear is used elsewhere: kept
    assert not PASSES["canonicalize"]().apply(m)


# a random chain of view and identity ops keeps its value through the clean-up passes
SCALARS = {"add0": ("add", 0), "sub0": ("sub", 0.0), "mul1": ("mul", 1.0), "div1": ("div", 1), "add1.5": ("add", 1.5)}
STEPS = ["reshape", "transpose", "cast", "slice", "expand", "permute", *SCALARS]
FACTORS = [[2, 6], [3, 4], [2, 2, 3], [12, 1], [1, 3, 4]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(STEPS), st.integers(0, 5), st.integers(0, 5)), max_size=12))
def test_cleanup_keeps_random_chains(steps):
    m, p, (x,) = make([("x", T(2, 6))])
    v = x
    for kind, i, j in steps:
        r, n = v.type.rank, v.type.numel()
        if kind == "reshape":
            attrs = {"shape": ([[n], [n, 1], [1, n]] + (FACTORS if n == 12 else []))[i % (3 + 5 * (n == 12))]}
        elif kind == "transpose":
            attrs = {"dim0": i % r, "dim1": j % r}
        elif kind == "permute":
            attrs = {"dims": list(range(r))[i % r:] + list(range(r))[:i % r]}
        elif kind == "slice":
            attrs = {"dim": i % r, "start": 0, "end": [END, v.type.shape[i % r], 1][j % 3]}
        elif kind == "expand":
            attrs = {"shape": list(v.type.shape)}
        elif kind == "cast":
            attrs = {"dtype": F32}
        else:
            kind, s = SCALARS[kind]
            attrs = {"scalar": s}
        v = p.create(f"kiln.{kind}", [v], attrs).result
    p.set_outputs([v, p.create("kiln.reshape", [v], {"shape": [v.type.numel()]}).result])
    before = m.clone()
    run_passes(m, "canonicalize", "cse", "dce")
    assert len(p.ops) <= len(before["forward"].ops)
    same_outputs(before, m, rand(2, 6), tol=0)


# ---------------------------------------------------------------------------
# captured models


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", ["dce", "cse", "canonicalize", "fold-constants"])
def test_pass_keeps_logits(preset, name, import_preset):
    ref = import_preset(preset).module
    m = ref.clone()
    (p,) = run_passes(m, name)
    assert_same_logits(ref, m)
    assert not PASSES[name]().apply(m), f"{name} is not idempotent on {preset}"
    if name == "cse" and preset != "gpt2-tiny":  # one positions and rope table per model, not per layer
        assert p.changed and count(m["forward"], "kiln.positions") == 1
        assert count(m["forward"], "kiln.rope_cos") == 1
    if name == "canonicalize":
        assert p.changed and p.stats["identity-reshape"] >= LAYERS


def test_gpt2_folds_transposes_and_unflattens_linears(import_preset):
    ref = import_preset("gpt2-tiny").module
    m = ref.clone()
    passes = run_passes(m, "dce", "cse", "canonicalize", "fold-constants", "dce")
    assert_same_logits(ref, m)
    prog = m["forward"]
    assert not any(op.name == "kiln.transpose" and op.operands[0].owner.name == "kiln.weight" for op in prog.ops)
    flat = [op for op in prog.ops if op.name == "kiln.reshape" and "B*T" in str(op.attrs["shape"])]
    assert not flat and not any("B*T" in str(op.result.type.shape) for op in prog.ops if op.results)
    fold = passes[3]
    assert len(fold.decisions["folded"]) == 4 * LAYERS
    assert "transformer.h.0.attn.c_attn.weight.transpose" in fold.decisions["folded"]
    assert "transformer.h.0.attn.c_attn.weight" not in m.weights  # dce dropped the untransposed weights
    assert passes[2].stats["flattened-linear"] == 4 * LAYERS
    for name in ("dce", "cse", "canonicalize", "fold-constants"):
        assert not PASSES[name]().apply(m)
