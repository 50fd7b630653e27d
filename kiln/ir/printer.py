"""Print modules in MLIR's generic operation syntax.

Every dump is valid input for MLIR's own parser (unregistered dialects
allowed) and for ``kiln.ir.parser``. Layout::

    "builtin.module"() ({
      "kiln.program"() ({
      ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
        %0 = "kiln.weight"() {name = "embed.weight"} : () -> tensor<32000x768xf32>
        ...
        "kiln.return"(%9) : (tensor<?x?x32000xf32, "B,T">) -> ()
      }) {sym_name = "forward"} : () -> ()
    }) {kiln.meta = {...}} : () -> ()

Symbolic dims print as ``?`` with their names in the tensor type's encoding
string, in order, so the names survive the round trip.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.types import DType, Ref, Sym, TensorType

_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.]*$")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.-]*$")


def format_type(t: TensorType) -> str:
    return str(t)  # the spelling lives with the type (kiln/ir/types.py)


def format_string(s: str) -> str:
    out = []
    for ch in s:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("".join(f"\\{b:02X}" for b in ch.encode("utf-8")))
    return '"' + "".join(out) + '"'


def format_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        bits = struct.unpack("<Q", struct.pack("<d", x))[0]
        return f"0x{bits:016X} : f64"
    r = repr(float(x))
    if "e" in r and "." not in r.split("e")[0]:
        mant, exp = r.split("e")
        r = f"{mant}.0e{exp}"
    elif "e" not in r and "." not in r:
        r += ".0"
    return r


def format_attr(a: Any) -> str:
    if a is None:
        return "unit"
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, int):
        return str(a)
    if isinstance(a, float):
        return format_float(a)
    if isinstance(a, DType):  # before str: DType is a str enum
        return a.value
    if isinstance(a, str):
        return format_string(a)
    if isinstance(a, Sym):
        return "{sym = " + format_string(a.expr) + "}"
    if isinstance(a, Ref):
        return "{operand = " + str(a.index) + "}"
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(format_attr(x) for x in a) + "]"
    if isinstance(a, dict):
        return format_dict(a)
    raise TypeError(f"cannot print attribute of type {type(a).__name__}: {a!r}")


def format_dict(d: dict[str, Any]) -> str:
    items = []
    for k in sorted(d):
        key = k if _BARE_KEY.fullmatch(k) else format_string(k)
        items.append(f"{key} = {format_attr(d[k])}")
    return "{" + ", ".join(items) + "}"


class _Namer:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def arg(self, v: Value, i: int) -> str:
        base = v.hint if v.hint and _NAME_OK.fullmatch(v.hint) and not v.hint[0].isdigit() else f"arg{i}"
        name, n = base, 1
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        self.names[id(v)] = name
        return "%" + name

    def op(self, op: Op) -> str:
        base = str(self.counter)
        self.counter += 1
        for i, r in enumerate(op.results):
            self.names[id(r)] = base if len(op.results) == 1 else f"{base}#{i}"
        return f"%{base}:{len(op.results)}" if len(op.results) > 1 else f"%{base}"

    def ref(self, v: Value) -> str:
        try:
            return "%" + self.names[id(v)]
        except KeyError:
            raise ValueError(f"value {v!r} used before it is defined") from None


def print_program(p: Program, indent: str = "  ") -> str:
    namer = _Namer()
    lines = [f'{indent}"kiln.program"() ({{']
    args = ", ".join(f"{namer.arg(a, i)}: {format_type(a.type)}" for i, a in enumerate(p.args))
    lines.append(f"{indent}^bb0({args}):")
    for op in p.ops:
        operands = ", ".join(namer.ref(v) for v in op.operands)
        in_types = ", ".join(format_type(v.type) for v in op.operands)
        out_types = ", ".join(format_type(r.type) for r in op.results)
        if len(op.results) != 1:
            out_types = f"({out_types})"
        lhs = f"{namer.op(op)} = " if op.results else ""
        attrs = f" {format_dict(op.attrs)}" if op.attrs else ""
        lines.append(f'{indent}  {lhs}"{op.name}"({operands}){attrs} : ({in_types}) -> {out_types}')
    lines.append(f"{indent}}}) {{sym_name = {format_string(p.name)}}} : () -> ()")
    return "\n".join(lines)


def print_module(m: Module, with_meta: bool = False) -> str:
    # MLIR's builtin.module needs one block, so an empty module gets a bare label
    body = "\n".join(print_program(p) for p in m.programs.values()) or "^bb0:"
    attrs = ""
    if with_meta and m.meta:
        attrs = " {" + f"kiln.meta = {format_attr(m.meta)}" + "}"
    return f'"builtin.module"() ({{\n{body}\n}}){attrs} : () -> ()\n'
