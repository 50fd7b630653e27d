"""The op registry as data: named operands (and how they bind to positions), traits, the kernel-kind
tables that read them, the one op interpreter, and the error hierarchy."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

import kiln
from kiln.errors import ArtifactError, ExecError, IRError, KilnError, ParseError
from kiln.ir.core import Program
from kiln.ir.interpret import ExecContext, PreparedOp, bind_inputs, run_op, run_program
from kiln.ir.registry import OPS, TRAITS, declare, has_trait, ops_with
from kiln.ir.types import DType, TensorType
from kiln.ir.verifier import VerifyError, verify_program

F32 = DType.f32


def t(*shape, dtype=F32):
    return TensorType(dtype, tuple(shape))


def test_every_op_names_distinct_operands_and_declared_traits():
    for name, d in OPS.items():
        names = d.operand_names
        assert len(set(names)) == len(names), name
        assert d.traits <= set(TRAITS), name
        lo, hi = d.operands
        assert hi == -1 or lo <= hi, name


def test_optional_operands_bind_left_to_right_and_attributes_decide_offsets():
    lin = OPS["kiln.linear"]
    assert lin.bind(2, {}) == {"x": 0, "weight": 1, "bias": None}
    assert lin.bind(3, {}) == {"x": 0, "weight": 1, "bias": 2}
    q = OPS["kiln.qlinear"]
    sym = {"format": "int4", "group_size": 32, "symmetric": True}
    asym = {**sym, "symmetric": False}
    assert q.bind(4, sym) == {"x": 0, "q": 1, "scales": 2, "offsets": None, "bias": 3}  # 4th is the bias
    assert q.bind(4, asym) == {"x": 0, "q": 1, "scales": 2, "offsets": 3, "bias": None}  # 4th is offsets
    assert q.bind(5, asym)["bias"] == 4
    with pytest.raises(IRError, match="do not match"):
        q.bind(5, sym)  # a symmetric weight has no offsets: five operands is one too many
    emb = OPS["kiln.qembedding"]
    assert emb.bind(3, {"format": "int8", "group_size": 0, "symmetric": True})["ids"] == 2
    assert emb.bind(4, asym)["ids"] == 3


def test_groups_open_and_counted():
    assert OPS["kiln.cat"].bind(3, {"dim": 0}) == {"xs": slice(0, 3)}
    with pytest.raises(IRError):
        OPS["kiln.cat"].bind(0, {"dim": 0})  # xs+ needs one
    chain = OPS["kiln.chain_tree"]
    b = chain.bind(3 + 2 * 4, {"k": 4})
    assert b["tokens"] == slice(3, 7) and b["draft_q"] == slice(7, 11)
    with pytest.raises(IRError):
        chain.bind(3 + 2 * 4 + 1, {"k": 4})
    with pytest.raises(IRError, match="count"):
        chain.bind(5, {"k": "two"})


def test_op_accessors_read_and_rewrite_by_name():
    p = Program("p")
    x, w, w2 = p.add_arg(t(2, 4), "x"), p.add_arg(t(3, 4), "w"), p.add_arg(t(3, 4), "w2")
    lin = p.create("kiln.linear", [x, w])
    p.set_outputs([lin.result])
    assert lin.operand("x") is x and lin.operand("weight") is w and lin.operand("bias") is None
    assert lin.operand_map() == {"x": x, "weight": w, "bias": None}
    lin.set_operand("weight", w2)
    assert lin.operands[1] is w2 and (lin, 1) in w2.uses and not w.uses
    verify_program(p)
    with pytest.raises(IRError, match="no operand 'w'.*x, weight, bias"):
        lin.operand("w")
    cat = p.create("kiln.cat", [x, x], {"dim": 0})
    assert cat.group("xs") == [x, x]
    with pytest.raises(IRError, match="group"):
        cat.operand("xs")
    assert cat.attr("dim") == 0 and p.create("kiln.slice", [x], {"dim": 0, "start": 0, "end": 1}).attr("step") == 1


def test_program_api_adds_and_retypes_arguments():
    p = Program("p")
    a = p.add_arg(t(2), "a")
    c = p.add_arg(t(2), "c")
    b = p.add_arg(t(2), "b", at=1)
    assert [v.hint for v in p.args] == ["a", "b", "c"] and [v.index for v in p.args] == [0, 1, 2]
    p.retype(b, t(3))
    assert b.type == t(3)
    other = Program("q").add_arg(t(2))
    with pytest.raises(IRError, match="not an argument"):
        p.retype(other, t(3))
    del a, c


def test_traits_are_checked_and_queried():
    assert has_trait("kiln.cache_write", "writes-cache") and has_trait("kiln.cache_attention_q8", "quantized")
    assert {"kiln.rms_norm", "kiln.layer_norm"} <= ops_with("norm")
    assert "kiln.add" in ops_with("row-kernel") and "kiln.eq" not in ops_with("row-kernel")
    with pytest.raises(IRError, match="unknown trait"):
        has_trait("kiln.add", "fast")
    with pytest.raises(IRError, match="unknown traits"):
        declare("kiln.test_bad_trait", "x", traits=("pure", "shiny"))
    assert "kiln.test_bad_trait" not in OPS


def test_verifier_checks_attribute_decided_operands():
    p = Program("p")
    x = p.add_arg(t(2, 8), "x")
    q = p.add_arg(t(3, 4, dtype=DType.u8), "q")
    s = p.add_arg(t(3, 1, dtype=DType.f16), "s")
    attrs = {"format": "int4", "group_size": 8, "symmetric": False}
    op = p.create("kiln.qlinear", [x, q, s], attrs, result_types=[t(2, 3)])  # offsets missing
    p.set_outputs([op.result])
    with pytest.raises(VerifyError, match="qlinear"):
        verify_program(p)


def test_every_kernel_kind_the_pass_makes_has_a_triton_generator_and_launcher():
    from kiln.codegen.triton import KINDS
    from kiln.codegen.triton.program import LAUNCHERS
    from kiln.codegen.triton.rowwise import EXPR, REDUCTIONS
    from kiln.passes import kernel_fusion

    assert set(kernel_fusion.KINDS) == set(KINDS) == set(LAUNCHERS)
    for kind in KINDS.values():
        assert (kind.source is None) == bool(kind.templates), kind.name
    # every op the pass may put in a row kernel has a Triton lowering
    assert ops_with("row-kernel") <= set(EXPR) | set(REDUCTIONS) | {"kiln.slice"}


def test_one_interpreter_runs_ops_and_programs():
    p = Program("p")
    x = p.add_arg(t("B", 4), "x")
    y = p.create("kiln.mul", [x], {"scalar": 2.0, "kernel": "rowwise0"})  # a discardable attribute
    z = p.create("kiln.softmax", [y.result], {"dim": -1})
    p.set_outputs([z.result])
    xs = torch.randn(3, 4)
    assert torch.allclose(run_program(p, {}, xs)[0], torch.softmax(2 * xs, -1))
    (out,) = run_op(y, [xs], ExecContext())
    assert torch.equal(out, 2 * xs)
    assert PreparedOp(y).attrs == {"scalar": 2.0, "reverse": False}
    assert bind_inputs(p, [xs]) == {"B": 3}
    with pytest.raises(ExecError, match="rank"):
        bind_inputs(p, [torch.randn(4)])
    with pytest.raises(ExecError, match="kiln.softmax"):
        run_op(z, ["not a tensor"], ExecContext())


def test_one_error_hierarchy_and_one_version():
    for cls in (IRError, ParseError, VerifyError, ArtifactError, ExecError):
        assert issubclass(cls, KilnError)
    assert issubclass(ParseError, IRError)
    assert kiln.__version__ == importlib.metadata.version("kiln")


def test_variants_are_declared_with_the_op_and_built_by_operand_name():
    from kiln.ir.registry import lookup

    attn = lookup("kiln.cache_attention")
    assert attn.variant("int8-kv").name == "kiln.cache_attention_q8"
    assert attn.variant("verify").name == "kiln.cache_tree_attention"
    assert attn.variant("int8-kv").variant("verify").name == "kiln.cache_tree_attention_q8"
    assert lookup("kiln.linear").variant("verify") is None
    with pytest.raises(IRError, match="variant role"):
        attn.variant("fp8")
    i64 = DType.i64
    p = Program("p")
    q = p.add_arg(t(1, 4, "N", 8), "q")
    kc, vc = p.add_arg(t(2, "NB", 2, 16, 8), "k"), p.add_arg(t(2, "NB", 2, 16, 8), "v")
    pos, seq, table = p.add_arg(t("N", dtype=i64)), p.add_arg(t("N", dtype=i64)), p.add_arg(t("S", "MB", dtype=i64))
    slot, mask = p.add_arg(t("N", dtype=i64)), p.add_arg(t("N", "N", dtype=DType.i1))
    op = p.create("kiln.cache_attention", [q, kc, vc, pos, seq, table], {"layer": 1, "scale": 0.5, "layout": "paged"})
    p.set_outputs([op.result])
    tree = p.create_like(op, "kiln.cache_tree_attention", slot=slot, mask=mask)  # pos is dropped, the rest kept
    assert tree.operands == [q, kc, vc, slot, seq, table, mask] and tree.attrs == op.attrs
    with pytest.raises(IRError, match="no value for operand 'mask'"):
        p.create_like(op, "kiln.cache_tree_attention", slot=slot)
    with pytest.raises(IRError, match="no operands"):
        p.create_like(op, "kiln.cache_tree_attention", slot=slot, mask=mask, bias=q)
    x, w = p.add_arg(t(2, 8), "x"), p.add_arg(t(8), "b")
    ln = p.create("kiln.layer_norm", [x], {"eps": 1e-5})
    with pytest.raises(IRError, match="by position"):  # a bias without a weight has no positional form
        p.create_like(ln, "kiln.layer_norm", bias=w)


def test_a_quantized_op_without_its_format_attributes_is_a_verify_error_not_a_crash():
    from kiln.ir.core import Op

    p = Program("p")
    x = p.add_arg(t(2, 8), "x")
    q = p.add_arg(t(3, 4, dtype=DType.u8), "q")
    s = p.add_arg(t(3, 1, dtype=DType.f16), "s")
    op = p.append(Op("kiln.qlinear", [x, q, s], {"format": "int4", "group_size": 8}, [t(2, 3)]))  # no symmetric
    p.set_outputs([op.result])
    with pytest.raises(VerifyError, match="missing attribute 'symmetric'"):
        verify_program(p)
    with pytest.raises(IRError, match="cannot tell whether operand 'offsets'"):
        op.operand("x")
