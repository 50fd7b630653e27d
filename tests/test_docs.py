"""Docs stay true to the code: every op and pass is documented."""

from pathlib import Path

from kiln.ir import OPS
from kiln.passes.manager import PIPELINES, load_passes

ROOT = Path(__file__).resolve().parents[1]


def test_every_op_is_in_the_ir_doc():
    text = (ROOT / "docs/ir.md").read_text()
    missing = [name for name in OPS if f"`{name}`" not in text]
    assert not missing, f"add these ops to docs/ir.md: {missing}"


def test_every_pass_and_pipeline_is_in_the_passes_doc():
    text = (ROOT / "docs/passes.md").read_text()
    missing = [n for n in list(load_passes()) + list(PIPELINES) if f"`{n}`" not in text]
    assert not missing, f"add these to docs/passes.md: {missing}"


def test_readme_has_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
