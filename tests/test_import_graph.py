"""kiln's imports follow its pipeline: ir at the bottom, then frontend and passes, codegen, runtime, and
the drivers on top; no module imports one above it and there are no import cycles.

Every ``import`` statement counts, at module level or inside a function (a function-level import is a
dependency all the same; it only runs later).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "kiln"

# Lowest first. A module may import modules of its own layer or below, except where FORBIDDEN says not.
LAYERS = [
    ("base", ("kiln.errors", "kiln._version", "kiln.limits")),
    ("ir", ("kiln.ir",)),
    ("frontend+passes", ("kiln.frontend", "kiln.passes")),
    ("codegen", ("kiln.codegen",)),
    ("runtime", ("kiln.runtime",)),
    ("drivers", ("kiln.compiler", "kiln.data", "kiln.evaluate", "kiln.bench", "kiln.bench_spec", "kiln.bench_ort", "kiln.export",
                 "kiln.costmodel", "kiln.serve")),
    ("entry points", ("kiln", "kiln.cli", "kiln.__main__")),
]
FORBIDDEN = [("kiln.frontend", "kiln.passes"), ("kiln.passes", "kiln.frontend")]  # siblings stay apart


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the kiln modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "kiln")
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.split(".")[0] == "kiln":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in mods else node.module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def layer(module: str) -> int:
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for pre in prefixes:
            if (module == pre or module.startswith(pre + ".")) and len(pre) > depth:
                best, depth = i, len(pre)
    assert best is not None, f"{module} is in no layer of tests/test_import_graph.py: add it"
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_imports_only_go_down_the_pipeline():
    bad = []
    for mod, deps in sorted(import_graph().items()):
        for dep in sorted(deps):
            if layer(dep) > layer(mod):  # (the kiln package itself sits with the entry points)
                bad.append(f"{mod} ({LAYERS[layer(mod)][0]}) imports {dep} ({LAYERS[layer(dep)][0]})")
            for a, b in FORBIDDEN:
                if (mod == a or mod.startswith(a + ".")) and (dep == b or dep.startswith(b + ".")):
                    bad.append(f"{mod} imports {dep}: {a} and {b} are siblings")
    assert bad == []


def test_the_checker_sees_a_planted_upward_import_and_cycle():
    graph = import_graph()
    graph["kiln.ir.core"] = graph["kiln.ir.core"] | {"kiln.runtime.generate"}
    assert layer("kiln.ir.core") < layer("kiln.runtime.generate")
    assert any("kiln.ir.core" in c for c in _cycles({**graph, "kiln.runtime.generate":
                                                      graph["kiln.runtime.generate"] | {"kiln.ir.core"}}))
