"""The IR's data model: SSA values, ops, programs and modules.

A program is a flat list of ops over typed SSA values (JAX's jaxpr shape: no
nested regions, ideal for straight-line transformer graphs) ending in one
``kiln.return``. Values keep their use lists; ops, arguments and types change
only through the methods here (``create``, ``create_like``, ``set_operand``,
``replace_all_uses``, ``replace_op``, ``erase``, ``add_arg``, ``retype``),
which keep those lists right. Operands and attributes are read by the names
their op declares (``op.operand("weight")``, ``op.group("xs")``,
``op.attr("step")``; see kiln/ir/registry.py). A module holds several programs
(``forward``, later ``prefill``, ``decode``, ...) that share weights by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kiln.errors import IRError
from kiln.ir.registry import OpDef, infer_types, lookup
from kiln.ir.types import TensorType

__all__ = ["IRError", "Module", "Op", "Program", "Value"]


class Value:
    """An SSA value: a program argument or one result of an op."""

    __slots__ = ("hint", "index", "owner", "type", "uses")

    def __init__(self, type: TensorType, owner: Op | None = None, index: int = 0, hint: str = ""):
        self.type = type
        self.owner = owner
        self.index = index
        self.hint = hint
        self.uses: list[tuple[Op, int]] = []

    def __repr__(self) -> str:
        where = self.owner.name if self.owner else "arg"
        return f"<Value {self.hint or '?'} {self.type} from {where}>"

    @property
    def users(self) -> list[Op]:
        seen: dict[int, Op] = {}
        for op, _ in self.uses:
            seen.setdefault(id(op), op)
        return list(seen.values())


class Op:
    """One operation: name, operands, attributes and typed results."""

    __slots__ = ("attrs", "loc", "name", "operands", "program", "results")

    def __init__(self, name: str, operands: list[Value], attrs: dict[str, Any],
                 result_types: list[TensorType], loc: str = ""):
        self.name = name
        self.operands: list[Value] = []
        self.attrs = dict(attrs)
        self.results = [Value(t, self, i) for i, t in enumerate(result_types)]
        self.program: Program | None = None
        self.loc = loc
        for i, v in enumerate(operands):
            self.operands.append(v)
            v.uses.append((self, i))

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise IRError(f"{self.name} has {len(self.results)} results, not one")
        return self.results[0]

    # -- operands and attributes by name (the declaration in kiln/ir/ops*.py names them) -------------
    @property
    def opdef(self) -> OpDef:
        return lookup(self.name)

    def _binding(self, name: str):
        b = self.opdef.bind(len(self.operands), self.attrs)
        if name not in b:
            raise IRError(f"{self.name} has no operand {name!r}; its operands are "
                          f"{', '.join(self.opdef.operand_names) or 'none'}")
        return b[name]

    def operand(self, name: str) -> Value | None:
        """The operand declared as ``name``; None when it is optional and absent."""
        at = self._binding(name)
        if isinstance(at, slice):
            raise IRError(f"{self.name}: {name!r} is a group of operands; use group({name!r})")
        return None if at is None else self.operands[at]

    def group(self, name: str) -> list[Value]:
        """The operands of the variadic group declared as ``name``."""
        at = self._binding(name)
        if not isinstance(at, slice):
            raise IRError(f"{self.name}: {name!r} is a single operand; use operand({name!r})")
        return self.operands[at]

    def operand_index(self, name: str) -> int:
        at = self._binding(name)
        if not isinstance(at, int):
            raise IRError(f"{self.name}: operand {name!r} is absent or a group")
        return at

    def operand_map(self) -> dict[str, Value | list[Value] | None]:
        """Every declared operand name -> its value (a list for groups, None when absent)."""
        out: dict[str, Value | list[Value] | None] = {}
        for name, at in self.opdef.bind(len(self.operands), self.attrs).items():
            out[name] = self.operands[at] if isinstance(at, slice | int) else None
        return out

    def attr(self, key: str) -> Any:
        """Attribute ``key``, or its declared default."""
        return self.opdef.attr(self.attrs, key)

    def set_operand(self, i: int | str, v: Value) -> None:
        """Point operand ``i`` (a position, or a declared name) at ``v``, keeping use lists right."""
        if isinstance(i, str):
            i = self.operand_index(i)
        old = self.operands[i]
        old.uses.remove((self, i))
        self.operands[i] = v
        v.uses.append((self, i))

    def drop_operands(self) -> None:
        for i, v in enumerate(self.operands):
            v.uses.remove((self, i))
        self.operands = []

    def __repr__(self) -> str:
        return f"<Op {self.name} {self.attrs} -> {[str(r.type) for r in self.results]}>"


@dataclass
class Program:
    """A named straight-line function: arguments, ops, and a final ``kiln.return``."""

    name: str
    args: list[Value] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    # -- construction ---------------------------------------------------
    def add_arg(self, type: TensorType, hint: str = "", at: int | None = None) -> Value:
        """A new argument, last or at position ``at``."""
        v = Value(type, None, len(self.args), hint)
        if at is None:
            self.args.append(v)
        else:
            self.args.insert(at, v)
            for i, a in enumerate(self.args):
                a.index = i
        return v

    def retype(self, value: Value, type: TensorType) -> None:
        """Give an argument or op result of this program a new type (the verifier then checks its users)."""
        if value.owner is None:
            if not any(a is value for a in self.args):
                raise IRError(f"retype: {value!r} is not an argument of program {self.name!r}")
        elif value.owner.program is not self:
            raise IRError(f"retype: {value!r} is not defined in program {self.name!r}")
        value.type = type

    def append(self, op: Op) -> Op:
        op.program = self
        self.ops.append(op)
        return op

    def insert_before(self, anchor: Op, op: Op) -> Op:
        op.program = self
        self.ops.insert(self.index_of(anchor), op)
        return op

    def create(self, name: str, operands: list[Value], attrs: dict[str, Any] | None = None,
               result_types: list[TensorType] | None = None, before: Op | None = None,
               loc: str = "") -> Op:
        """Build an op, inferring result types from the registry unless given.

        Without ``before`` it goes in front of the return (or at the end)."""
        attrs = dict(attrs or {})
        if result_types is None:
            result_types = infer_types(name, [v.type for v in operands], attrs)
        op = Op(name, operands, attrs, result_types, loc)
        if before is not None:
            return self.insert_before(before, op)
        if self.ops and self.ops[-1].name == "kiln.return":
            return self.insert_before(self.ops[-1], op)
        return self.append(op)

    def create_like(self, op: Op, name: str, attrs: dict[str, Any] | None = None, **operands: Any) -> Op:
        """An op ``name`` in front of ``op`` with ``op``'s attributes (updated by ``attrs``) and its operands
        matched by name: each operand ``name`` declares comes from ``operands`` if given there, else from
        ``op``'s operand of that name; ``op``'s other operands are dropped. How a pass turns an op into a
        declared variant (``opdef.variant(role)``) without counting positions."""
        target = lookup(name)
        have = op.operand_map()
        unknown = set(operands) - set(target.operand_names)
        if unknown:
            raise IRError(f"create_like: {name} has no operands {sorted(unknown)}")
        values: list[Value] = []
        chosen: dict[str, Any] = {}
        for spec in target.operand_specs:
            v = operands[spec.name] if spec.name in operands else have.get(spec.name)
            chosen[spec.name] = v
            if isinstance(v, list):
                values.extend(v)
            elif v is not None:
                values.append(v)
            elif spec.kind == "one":
                raise IRError(f"create_like: {op.name} -> {name}: no value for operand {spec.name!r}")
        new = self.create(name, values, {**op.attrs, **(attrs or {})}, before=op, loc=op.loc)
        got = new.operand_map()
        if any((got[k] != v) if isinstance(v, list) else (got[k] is not v) for k, v in chosen.items()):
            self.erase(new)  # positions cannot say which optional operands are there (e.g. a bias without a weight)
            raise IRError(f"create_like: {name}'s operands {chosen} cannot be expressed by position")
        return new

    def set_outputs(self, values: Iterable[Value]) -> None:
        values = list(values)
        if self.ops and self.ops[-1].name == "kiln.return":
            self.erase(self.ops[-1])
        self.append(Op("kiln.return", values, {}, []))

    # -- queries -----------------------------------------------------------
    @property
    def outputs(self) -> list[Value]:
        if not self.ops or self.ops[-1].name != "kiln.return":
            raise IRError(f"program {self.name!r} has no kiln.return")
        return list(self.ops[-1].operands)

    def index_of(self, op: Op) -> int:
        for i, o in enumerate(self.ops):
            if o is op:
                return i
        raise IRError(f"{op.name} is not in program {self.name!r}")

    def walk(self, name: str | None = None) -> Iterator[Op]:
        for op in list(self.ops):
            if op.program is self and (name is None or op.name == name):
                yield op

    # -- rewriting ----------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        if old is new:
            return
        for op, i in list(old.uses):
            op.set_operand(i, new)

    def replace_op(self, op: Op, new_values: list[Value]) -> None:
        """Point every use of ``op``'s results at ``new_values`` and erase ``op``."""
        if len(new_values) != len(op.results):
            raise IRError(f"replacing {op.name}: {len(op.results)} results, {len(new_values)} values")
        for r, v in zip(op.results, new_values):
            if r.type != v.type:
                raise IRError(f"replacing {op.name}: type {r.type} != {v.type}")
            self.replace_all_uses(r, v)
        self.erase(op)

    def erase(self, op: Op) -> None:
        for r in op.results:
            if r.uses:
                raise IRError(f"cannot erase {op.name}: its result still has {len(r.uses)} uses")
        op.drop_operands()
        self.ops.pop(self.index_of(op))
        op.program = None

    def clone(self) -> Program:
        """A deep copy (values and ops are new objects; attributes are shared, they are immutable data)."""
        new = Program(self.name)
        vmap: dict[int, Value] = {}
        for a in self.args:
            vmap[id(a)] = new.add_arg(a.type, a.hint)
        for op in self.ops:
            n = Op(op.name, [vmap[id(v)] for v in op.operands], _copy_attrs(op.attrs),
                   [r.type for r in op.results], op.loc)
            for r, nr in zip(op.results, n.results):
                nr.hint = r.hint
                vmap[id(r)] = nr
            new.append(n)
        return new


def _copy_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    def cp(x):
        if isinstance(x, list):
            return [cp(y) for y in x]
        if isinstance(x, dict):
            return {k: cp(y) for k, y in x.items()}
        return x

    return {k: cp(v) for k, v in attrs.items()}


@dataclass
class Module:
    """Programs that share weights by name, plus the weights' types.

    ``weights`` maps a name to its tensor (torch) when the module was built from
    a model or loaded from an artifact; a module parsed from text alone has only
    the types its ``kiln.weight`` ops declare."""

    programs: dict[str, Program] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, program: Program) -> Program:
        self.programs[program.name] = program
        return program

    def __getitem__(self, name: str) -> Program:
        try:
            return self.programs[name]
        except KeyError:
            raise KeyError(f"no program {name!r}; this module has {', '.join(self.programs)}") from None

    def clone(self) -> Module:
        return Module({k: p.clone() for k, p in self.programs.items()}, dict(self.weights), dict(self.meta))

    def used_weights(self) -> set[str]:
        return {op.attrs["name"] for p in self.programs.values() for op in p.walk("kiln.weight")}
