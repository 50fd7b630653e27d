"""Fuzzing the IR reader: mutants of real dumps end in a parse error, an IR error or success, quickly.

An artifact's ``ir/module.mlir`` may be hostile. These tests mutate dumps of
llama-tiny compiled with two pipelines (the seeded mutator of
``tools/fuzz_ir.py``: spans deleted, duplicated, swapped and spliced, numbers
made huge, negative or non-ASCII, symbolic dims made into huge powers, deep
nesting, op names and attribute values swapped, truncation), parse each mutant
and verify its programs, and require every outcome to be ``ParseError``,
``IRError`` (or ``KilnError``) or success within a per-case limit. The run is
bounded by time (``FUZZ_SECONDS``) so that it fits a slow shared CI machine;
``tools/fuzz_ir.py`` runs the long campaigns. Hypothesis adds token soups.
"""

from __future__ import annotations

import random
import time

import pytest
from _tools import load_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.errors import KilnError
from kiln.ir.core import IRError
from kiln.ir.parser import ParseError, parse_module
from kiln.ir.verifier import verify_program

FUZZ_SECONDS = 25.0  # wall-clock budget of the mutation loop
CASE_LIMIT = 2.0  # CPU seconds one mutant may take (a SIGPROF timer: load on a shared machine is no hang)
MAX_CASES = 5000


fuzz_ir = load_tool("fuzz_ir")


@pytest.fixture(scope="module")
def seeds():
    """Dumps (whole modules and single programs) with their weights, compiled once for this module."""
    return fuzz_ir.seed_dumps("llama-tiny", [{"draft": "ngram"}, {"pipeline": "int8-kv"}])


def test_seeds_parse_and_verify(seeds):
    for text, weights in seeds:
        o = fuzz_ir.run_case(text, weights, timeout=10.0)
        assert o.kind == "ok", o.detail
        assert o.seconds < CASE_LIMIT


def test_mutants_fail_cleanly_and_quickly(seeds):
    rng = random.Random(20240601)
    mutator = fuzz_ir.Mutator([t for t, _ in seeds], rng)
    counts: dict[str, int] = {}
    bad = []
    start = time.perf_counter()
    n = 0
    while n < MAX_CASES and time.perf_counter() - start < FUZZ_SECONDS:
        n += 1
        i, text = mutator.mutate()
        o = fuzz_ir.run_case(text, seeds[i][1] if rng.random() < 0.7 else None, timeout=CASE_LIMIT)
        counts[o.kind] = counts.get(o.kind, 0) + 1
        if o.kind in ("escape", "hang"):
            bad.append((n, o.kind, o.detail[-600:], text[:300]))
    print(f"\n{n} mutants in {time.perf_counter() - start:.1f} s: {counts}")
    assert not bad, bad[:3]
    assert n >= 100, f"only {n} mutants ran in {FUZZ_SECONDS} s"
    assert counts.get("parse_error", 0) > n // 4  # most mutants are malformed ...
    assert counts.get("ok", 0) + counts.get("ir_error", 0) > 0  # ... some still parse


_TOKENS = ['"builtin.module"', '"kiln.program"', '"kiln.add"', '"kiln.return"', '"kiln.weight"', "(", ")", "{", "}",
           "[", "]", "<", ">", ",", "=", ":", "->", "^bb0", "%0", "%x", "%0#1", "%0:2", "tensor", "tensor<",
           "?x", "4x", "f32", "i64", 'f32, "B">', '"B,T"', '"2**99999999"', "sym_name", "name", '"w"', "1", "-1",
           "1.5", "1.0e999", "0x7FF0000000000000", ": f64", "\u0663", "\u00b2", "9" * 400, "unit", "true", " ", "\n",
           "//", '"', "\\", "{sym = ", "{operand = "]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), max_size=60) | st.text(max_size=200))
def test_token_soup(parts):
    text = "".join(parts) if isinstance(parts, list) else parts
    try:
        module = parse_module(text)
        for p in module.programs.values():
            verify_program(p)
    except (ParseError, IRError, KilnError):
        pass


def test_saved_mutant_replays(tmp_path, capsys):
    case = tmp_path / "case.mlir"
    case.write_text('"builtin.module"() ({\n  "kiln.program"() ({\n  ^bb0(%x: tensor<?xf32, "2**99999999999">):')
    assert fuzz_ir.main(["--replay", str(case)]) == 0
    assert capsys.readouterr().out.startswith("parse_error")


_WEIRD_ATTRS = [None, True, -1, 2**62, -2**63, 1.5, float("nan"), "s", [], {}, [1, [2]], ["B", "x"], [2**62] * 3, [0],
                {"a": 1}]


def test_verifier_raises_only_ir_errors_on_odd_attributes(seeds):
    """Well-formed text can still give an op attributes of the wrong type or size: the verifier says so with an
    IRError (never a TypeError, ZeroDivisionError, ... from a shape rule)."""
    from kiln.ir.registry import OPS
    from kiln.ir.types import DType, Ref, Sym

    weird = _WEIRD_ATTRS + [Sym("B"), Sym("N*9"), Ref(0), Ref(99), DType.f32]
    module = parse_module(seeds[0][0])
    outcomes = {"ok": 0, "ir_error": 0}
    first = {}  # one op of each kind in the module
    for p in module.programs.values():
        for op in p.ops:
            first.setdefault(op.name, (p, op))
    for p, op in first.values():
        d = OPS[op.name]
        for key in set(op.attrs) | set(d.attrs) | set(d.defaults):
            saved = dict(op.attrs)
            for value in weird:
                op.attrs[key] = value
                try:
                    verify_program(p, seeds[0][1])
                    outcomes["ok"] += 1
                except IRError:
                    outcomes["ir_error"] += 1
            op.attrs.clear()
            op.attrs.update(saved)
    assert outcomes["ir_error"] > 100


def test_many_uses_of_one_value_verify_in_linear_time():
    """A hostile file may use one value in tens of thousands of ops: checking use lists stays linear."""
    t = 'tensor<?x4xf32, "B">'
    n = 20_000
    body = "\n".join(f'  %{i} = "kiln.neg"(%x) : ({t}) -> {t}' for i in range(n))
    p = parse_module(f'"kiln.program"() ({{\n^bb0(%x: {t}):\n{body}\n  "kiln.return"(%x) : ({t}) -> ()\n}}) '
                     '{sym_name = "f"} : () -> ()')["f"]
    c0 = time.process_time()
    verify_program(p)
    assert time.process_time() - c0 < 1.5  # quadratic checking took about 6 s here


def test_stale_use_lists_are_still_refused():
    from kiln.ir.core import Program
    from kiln.ir.types import DType, TensorType
    from kiln.ir.verifier import VerifyError

    p = Program("f")
    x, y = p.add_arg(TensorType(DType.f32, (4,))), p.add_arg(TensorType(DType.f32, (4,)))
    op = p.create("kiln.neg", [x])
    p.set_outputs(op.results)
    verify_program(p)
    op.operands[0] = y  # behind the use lists' back
    with pytest.raises(VerifyError, match="use list is stale"):
        verify_program(p)
