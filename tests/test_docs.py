"""Docs stay true to the code: every op and pass is documented."""

from pathlib import Path

from kiln.ir import OPS
from kiln.passes.manager import PIPELINES, load_passes

ROOT = Path(__file__).resolve().parents[1]


def test_every_op_is_in_the_ir_doc():
    text = (ROOT / "docs/ir.md").read_text()
    missing = [name for name in OPS if f"`{name}`" not in text]
    assert not missing, f"add these ops to docs/ir.md: {missing}"


def test_the_op_table_shows_each_ops_declared_operands_and_traits():
    import re

    suffix = {"one": "", "optional": "?", "group": "*"}
    table = re.findall(r"^\| `(kiln\.[a-z0-9_]+)` \|([^|]*)\|[^|]*\|([^|]*)\|", (ROOT / "docs/ir.md").read_text(), re.MULTILINE)
    rows = {name: (ops, traits) for name, ops, traits in table}
    wrong = []
    for name, d in OPS.items():
        want = ", ".join(s.name + ("+" if s.kind == "group" and s.min else f"*{s.count_attr}" if s.kind == "counted"
                                   else suffix[s.kind]) for s in d.operand_specs) or "none"
        got = rows.get(name)
        if got is None or got[0].strip() != want or got[1].strip() != ", ".join(sorted(d.traits)):
            wrong.append(f"{name}: docs say {got}, the registry says ({want!r}, {', '.join(sorted(d.traits))!r})")
    assert not wrong, "\n".join(wrong)


def test_every_pass_and_pipeline_is_in_the_passes_doc():
    text = (ROOT / "docs/passes.md").read_text()
    missing = [n for n in list(load_passes()) + list(PIPELINES) if f"`{n}`" not in text]
    assert not missing, f"add these to docs/passes.md: {missing}"


def test_readme_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


def test_every_mutation_plant_still_matches_the_source():
    # tools/mutate.py plants known bugs by replacing one snippet each; a refactor that changes a
    # snippet must update its plant, or the mutation check stops before running anything
    from _tools import load_tool

    mutate = load_tool("mutate")
    assert mutate.check_sources(mutate.PLANTS, ROOT) == []
