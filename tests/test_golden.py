"""Golden IR tests, one per pass and option set (MLIR FileCheck / xDSL style).

Each ``tests/golden/<case>.input.mlir`` is the IR immediately before one pass, named in its header
(``// pass: kv-cache{layout=paged,block_size=16}``); the test parses it, gives its weights deterministic
values (``tools/golden.py: golden_weight``, seeded by name and type), runs that pass alone under the pass
manager (verifier before and after), prints the module and compares the text with
``<case>.expected.mlir`` exactly. A pass that changes its output on purpose regenerates the files with
``python tools/golden.py --write`` (the diff of the golden files is then the review). The other tests
check the golden pairs themselves: every registered pass has a case, the files are the ones the tool
makes, each expected module parses, verifies and prints back to itself, exact passes keep ``forward``'s
logits and the quantizing ones stay near them.
"""

from __future__ import annotations

import functools

import pytest
import torch
from _tools import load_tool

from kiln.codegen.cpu import CpuProgram
from kiln.ir.parser import parse_module
from kiln.ir.printer import print_module
from kiln.ir.verifier import verify_module
from kiln.passes.manager import load_passes

golden = load_tool("golden")
GOLDEN = golden.GOLDEN_DIR
CASES = sorted(p.name.removesuffix(".input.mlir") for p in GOLDEN.glob("*.input.mlir"))
# passes that must not change what `forward` computes (quantize-weights and quantize-kv round it)
EXACT = {"canonicalize", "cse", "dce", "fold-constants", "fuse-qkv", "fuse-gate-up", "kv-cache", "speculative",
         "group-kernels"}
# the largest relative error (L2) of forward's output per quantizing pass and format, about twice what the
# golden weights give (int4 groups of 32: 0.25-0.29; int8: 0.01-0.02; int8 KV: 0.006)
QUANTIZING = {("quantize-weights", "int8"): 0.05, ("quantize-weights", "int4"): 0.5, ("quantize-kv", "int8"): 0.02}


def _read(name: str) -> str:
    return (GOLDEN / name).read_text()


@functools.cache
def _run(case: str):
    """(header, module before, module after, printed IR after) of the case's one pass (cached)."""
    text = _read(f"{case}.input.mlir")
    header = golden.read_header(text)
    draft = _read(header["draft"]) if header.get("draft") else None
    before, after, printed = golden.run_case(text, draft)
    return header, before, after, printed


def test_there_are_golden_cases():
    assert len(CASES) >= 20, f"tests/golden/ has {len(CASES)} cases; run {golden.WRITE_HINT}"


@pytest.mark.parametrize("case", CASES)
def test_pass_output_matches_golden(case):
    header, _, _, got = _run(case)
    want = _read(f"{case}.expected.mlir")
    got = want[:len(want) - len(golden.strip_header(want))] + got  # the file's comment header, then the IR
    if got != want:
        pytest.fail(f"pass {header['pass']} on tests/golden/{case}.input.mlir printed IR that differs from "
                    f"tests/golden/{case}.expected.mlir:\n{golden.diff(want, got, f'{case}.expected.mlir')}\n"
                    f"If the change is intended, regenerate the golden files with `{golden.WRITE_HINT}` "
                    "and review their diff (git diff tests/golden) before committing.", pytrace=False)


def test_every_registered_pass_has_a_golden_case():
    covered = {golden.make_pass(golden.read_header(_read(f"{c}.input.mlir"))["pass"]).name for c in CASES}
    missing = sorted(set(load_passes()) - covered)
    assert not missing, (f"passes without a golden case: {', '.join(missing)}; add a Case to tools/golden.py "
                         f"and run `{golden.WRITE_HINT}`")


def test_golden_files_are_the_ones_the_tool_makes():
    made = set()
    for c in golden.cases():
        made |= {f"{c.name}.input.mlir", f"{c.name}.expected.mlir"} | ({c.draft_file} if c.draft else set())
    on_disk = {p.name for p in GOLDEN.glob("*.mlir")}
    assert on_disk == made, (f"missing: {sorted(made - on_disk)}, stale: {sorted(on_disk - made)}; "
                             f"run `{golden.WRITE_HINT}`")


@pytest.mark.parametrize("case", CASES)
def test_expected_module_parses_verifies_and_prints_back(case):
    text = _read(f"{case}.expected.mlir")
    assert golden.read_header(text).get("pass") == golden.read_header(_read(f"{case}.input.mlir"))["pass"]
    body = golden.strip_header(text)
    module = parse_module(body)
    verify_module(module)  # structure and types (no weights in the text)
    assert print_module(module, with_meta=True) == body
    _, _, after, _ = _run(case)
    assert module.used_weights() == after.used_weights() and set(after.weights) >= module.used_weights()


def _forward(module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return CpuProgram(module["forward"], module.weights, native=False)(ids)[0]


@pytest.mark.parametrize("case", CASES)
def test_forward_keeps_its_values(case):
    """Exact passes give the same logits from `forward` (to float rounding); quantizing passes stay near them."""
    header, before, after, _ = _run(case)
    p = golden.make_pass(header["pass"])
    name, key = p.name, (p.name, getattr(p, "format", ""))
    if name not in EXACT and key not in QUANTIZING:
        pytest.fail(f"say whether pass {name} keeps forward's values exactly (EXACT) or approximately (QUANTIZING)")
    vocab = int(before.meta.get("vocab_size") or 2)
    ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(0))
    want, got = _forward(before, ids), _forward(after, ids)
    assert got.shape == want.shape and got.dtype == want.dtype
    if name in EXACT:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    else:
        rel = ((got - want).norm() / want.norm()).item()
        assert 0 < rel <= QUANTIZING[key], f"{header['pass']}: relative error {rel:.4f} of forward's output"
