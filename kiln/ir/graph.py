"""Views of a program as a graph: a networkx ``MultiDiGraph`` and Graphviz dot text.

Nodes are the program's ops, keyed by their position in ``program.ops`` (an
int), plus one node per program argument, keyed ``("arg", i)``. Each operand
use is one edge from the op (or argument) that defines the value to the op that
uses it; an op that uses a value twice gets two parallel edges. These are views
for analysis and debugging only: editing the graph does not change the program.
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx

from kiln.ir.core import Program, Value
from kiln.ir.printer import format_attr, format_type

__all__ = ["to_dot", "to_networkx"]


def _source(program: Program, v: Value, index: dict[int, int]) -> tuple[Hashable, int]:
    """The node defining ``v`` and which of its results ``v`` is."""
    if v.owner is None:
        return ("arg", v.index), 0
    try:
        return index[id(v.owner)], v.index
    except KeyError:
        raise ValueError(f"{v!r} is defined by an op that is not in program {program.name!r}") from None


def to_networkx(program: Program) -> nx.MultiDiGraph:
    """The dataflow graph of ``program``.

    Op nodes carry ``kind="op"``, ``name``, ``attrs`` and ``result_types``;
    argument nodes carry ``kind="arg"``, ``name`` (the hint), ``index`` and
    ``result_types`` (a one-element list). Edges carry ``operand`` (the index
    of the use in the user's operand list) and ``result`` (which result of the
    source it reads)."""
    g = nx.MultiDiGraph(name=program.name)
    for i, a in enumerate(program.args):
        g.add_node(("arg", i), kind="arg", name=a.hint or f"arg{i}", index=i, result_types=[a.type])
    index = {id(op): i for i, op in enumerate(program.ops)}
    for i, op in enumerate(program.ops):
        g.add_node(i, kind="op", name=op.name, attrs=dict(op.attrs), result_types=[r.type for r in op.results])
    for i, op in enumerate(program.ops):
        for j, v in enumerate(op.operands):
            src, res = _source(program, v, index)
            g.add_edge(src, i, key=j, operand=j, result=res)
    return g


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_id(n: Hashable) -> str:
    return f"a{n[1]}" if isinstance(n, tuple) else f"n{n}"


def to_dot(program: Program) -> str:
    """Graphviz dot text for ``program``: one box per op labelled with its name,
    its weight name for ``kiln.weight``, and its result types; ellipses for the
    arguments; edges labelled with the operand index (and ``#k`` for result k of
    a multi-result op)."""
    g = to_networkx(program)
    lines = [f"digraph {_quote(program.name)} {{", '  node [shape=box, fontname="monospace"];']
    for n, data in g.nodes(data=True):
        types = [format_type(t) for t in data["result_types"]]
        if data["kind"] == "arg":
            label, shape = "\n".join([f"%{data['name']}"] + types), "shape=ellipse, "
        else:
            head = [f"{n}: {data['name']}"]
            if data["name"] == "kiln.weight" and "name" in data["attrs"]:
                head.append(str(data["attrs"]["name"]))
            elif data["name"] == "kiln.aten" and "target" in data["attrs"]:
                head.append(str(data["attrs"]["target"]))
            elif data["name"] == "kiln.constant" and "value" in data["attrs"]:
                head.append(format_attr(data["attrs"]["value"]))
            label, shape = "\n".join(head + types), ""
        lines.append(f"  {_node_id(n)} [{shape}label={_quote(label)}];")
    for u, v, data in g.edges(data=True):
        src_results = len(g.nodes[u]["result_types"])
        label = f"{data['operand']}" + (f" (#{data['result']})" if src_results > 1 else "")
        lines.append(f"  {_node_id(u)} -> {_node_id(v)} [label={_quote(label)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
