"""MLIR's own parser (torch-mlir's bindings, unregistered dialects allowed) accepts
kiln's dumps, and what MLIR prints back in generic form reads back as the same IR."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from test_ir_parser import attrs_equal, gpt_like, modules, modules_equal
from torch_mlir import ir  # a test dependency: its absence is a failure, not a skip

from kiln.ir.core import Module, Program
from kiln.ir.parser import parse_module
from kiln.ir.printer import print_module
from kiln.ir.types import DType, Ref, Sym, TensorType


def mlir_roundtrip(text: str) -> str:
    """Parse ``text`` with MLIR (raises on rejection) and print it back in generic form."""
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = True
    module = ir.Module.parse(text, ctx)
    assert module.operation.verify()
    return module.operation.get_asm(print_generic_op_form=True)


def check(m: Module) -> None:
    text = print_module(m, with_meta=True)
    back = parse_module(mlir_roundtrip(text))
    # MLIR renames block arguments to %argN, so hints are not compared
    assert modules_equal(m, back, hints=False), text


def test_gpt_like():
    check(gpt_like())
    mlir_roundtrip(print_module(gpt_like()))  # without meta


def test_empty_module():
    check(Module())


def test_awkward_attributes():
    values = {"inf": math.inf, "ninf": -math.inf, "nan": math.nan, "neg0": -0.0, "tiny": 5e-324, "huge": 1.7e308,
              "uni": "ünïcødé ☃ 𝄞 \x00\x7f\n\t\"\\", "big": 2**63 - 1, "small": -2**63, "dtypes": list(DType),
              "unit": None, "nested": [[[]], {}, {"k": [Ref(0), Sym("B*T")]}], "bools": [True, False],
              "keys": {"a b": 1, "A\n": 2, "true": 3, "f32": 4, "x.$_": 5, "ü": 6, "\x00": 7}}
    p = Program("prog ü\"")
    x = p.add_arg(TensorType(DType.bf16, ("B", "T+1", 0)), "x\n")
    op = p.create("kiln.aten", [x, x], {"target": "aten::x", "kwargs": values, **values}, [x.type] * 3)
    p.set_outputs([op.results[2], op.results[0], x])
    check(Module({p.name: p}, meta=values))


def test_mlir_prints_what_the_parser_reads():
    text = mlir_roundtrip(print_module(gpt_like(), with_meta=True))
    assert ": i64" in text and " : f64" in text  # MLIR's own spellings, not the printer's
    m = parse_module(text)
    assert attrs_equal(m.meta, gpt_like().meta)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules())
def test_generated_modules(m):
    check(m)


def test_every_dump_of_a_real_model(tiny_artifact):
    """The final IR and every per-pass snapshot of a compiled model: MLIR accepts each, and
    kiln's parser reads each back to an IR that prints identically."""
    import kiln

    art = kiln.load(tiny_artifact)
    texts = [print_module(art.module)] + [text for _, text in art.snapshots]
    assert len(texts) >= 10
    for text in texts:
        mlir_roundtrip(text)
        assert print_module(parse_module(text)) == text


def test_gpt2_dump(import_preset):
    m = import_preset("gpt2-tiny").module
    check(m)
