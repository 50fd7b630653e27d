"""The networkx and Graphviz views of a program."""

from __future__ import annotations

import networkx as nx

import kiln.ir  # noqa: F401  (declares the ops)
from kiln.ir.core import Program
from kiln.ir.graph import to_dot, to_networkx
from kiln.ir.types import DType, TensorType


def small() -> Program:
    p = Program("forward")
    x = p.add_arg(TensorType(DType.f32, ("B", 4)), "x")
    w = p.create("kiln.weight", [], {"name": "fc.weight"}, [TensorType(DType.f32, (4, 4))]).result
    h = p.create("kiln.linear", [x, w]).result
    sq = p.create("kiln.mul", [h, h]).result  # one value used twice: two parallel edges
    two = p.create("kiln.aten", [sq], {"target": "aten::sort"}, [sq.type, sq.type.with_dtype(DType.i64)])
    p.set_outputs([two.results[1], x])
    return p


def test_networkx_graph():
    p = small()
    g = to_networkx(p)
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == 1 + 5  # one argument, five ops
    assert g.number_of_edges() == 2 + 2 + 1 + 2  # linear, mul, aten, return
    assert nx.is_directed_acyclic_graph(g)
    assert list(nx.topological_sort(g))[-1] == 4
    assert g.nodes[0]["name"] == "kiln.weight" and g.nodes[0]["attrs"] == {"name": "fc.weight"}
    assert g.nodes[3]["result_types"] == [TensorType(DType.f32, ("B", 4)), TensorType(DType.i64, ("B", 4))]
    assert g.nodes[("arg", 0)]["kind"] == "arg" and g.nodes[("arg", 0)]["name"] == "x"
    assert sorted(d["operand"] for _, _, d in g.in_edges(2, data=True)) == [0, 1]
    ret = {(u, d["operand"], d["result"]) for u, _, d in g.in_edges(4, data=True)}
    assert ret == {(3, 0, 1), (("arg", 0), 1, 0)}  # the return's operand 0 is result #1 of the aten op
    assert set(g.predecessors(4)) == {3, ("arg", 0)}


def test_dot():
    text = to_dot(small())
    assert text.startswith('digraph "forward" {') and text.rstrip().endswith("}")
    for name in ("kiln.weight", "kiln.linear", "kiln.mul", "kiln.aten", "kiln.return", "fc.weight", "aten::sort"):
        assert name in text
    assert 'tensor<?x4xf32, \\"B\\">' in text  # quotes inside labels are escaped
    assert text.count("->") == 7
    assert "a0 -> n1" in text and 'n3 -> n4 [label="0 (#1)"]' in text
