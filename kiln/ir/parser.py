"""Parse kiln modules back from MLIR's generic operation syntax.

This reads what ``kiln.ir.printer`` writes (see its docstring for the layout)::

    "builtin.module"() ({
      "kiln.program"() ({
      ^bb0(%input_ids: tensor<?x?xi64, "B,T">):
        %0 = "kiln.weight"() {name = "wte"} : () -> tensor<50257x768xf32>
        %1:2 = "kiln.aten"(%0) {target = "aten::sort"} : (...) -> (tensor<..>, tensor<..>)
        "kiln.return"(%1#0) : (tensor<50257x768xf32>) -> ()
      }) {sym_name = "forward"} : () -> ()
    }) {kiln.meta = {...}} : () -> ()

The outer ``builtin.module`` wrapper may be left out (a bare list of
``kiln.program`` ops), and the forms MLIR itself may print are accepted too:
``: i64`` / ``: f32`` suffixes after numbers, hex floats (``0x7FF0000000000000 :
f64``), unit entries without ``= value``, ``//`` comments.

Attributes become plain Python data: ints, floats, bools, ``unit`` -> None,
strings, bare dtype names -> ``DType``, arrays -> lists, dictionaries -> dicts,
except ``{sym = "expr"}`` -> ``Sym`` and ``{operand = N}`` -> ``Ref``. Symbolic
dims are the names listed in a tensor type's encoding string, one per ``?``.

A hand-written lexer (lazy, one token of lookahead plus re-lexing for types)
feeds a recursive-descent parser; nothing is ever ``eval``-ed. Every error is a
``ParseError`` whose message starts with ``line:col`` and says what was expected.

The text may come from an artifact an attacker wrote, so the parser fails fast
and only with ``ParseError``: digits are ASCII only, integers (dims, attributes,
result numbers) must fit int64 and are refused by length before ``int()`` sees
them, decimal floats must be finite (inf and nan only as the hex forms the
printer writes), attribute lists and dicts nest at most ``MAX_DEPTH`` deep, a
tensor has at most ``MAX_RANK`` dims, and symbolic dims go through the bounded
grammar of ``kiln.ir.types.parse_dim`` (no huge powers, nothing evaluated eagerly).
"""

from __future__ import annotations

import bisect
import math
import re
import struct
from typing import Any, NamedTuple

from kiln.errors import ParseError
from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.types import INT64_MAX, DimSyntaxError, DType, Ref, Sym, TensorType, canon_dim

__all__ = ["MAX_DEPTH", "MAX_RANK", "MAX_SYMBOLIC_DIMS", "ParseError", "parse_module", "parse_program"]

MAX_DEPTH = 64  # nesting of attribute lists and dicts
MAX_RANK = 64  # dims of one tensor type
MAX_SYMBOLIC_DIMS = 256  # distinct symbolic dim expressions in one text (each costs sympy work)
_MAX_FLOAT_TEXT = 128  # characters of a decimal float literal




class Token(NamedTuple):
    kind: str  # punct, ident, string, number, value, block, eof
    text: str
    start: int
    end: int
    value: Any = None


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")
_SUFFIX_ID = re.compile(r"[0-9]+|[A-Za-z_$.\-][A-Za-z0-9_$.\-]*")
_NUMBER = re.compile(r"-?(?:0x[0-9A-Fa-f]+|[0-9]+(?:\.[0-9]*(?:[eE][-+]?[0-9]+)?)?)")
_DIGITS = re.compile(r"[0-9]+")
_STRING_RUN = re.compile(r'[^"\\\n]+')
_SKIP = re.compile(r"(?:\s+|//[^\n]*)*")
_SCALAR_TYPE = re.compile(r"(?:[su]?i[0-9]+|f16|bf16|f32|f64|index)\Z")
_HEX_FLOAT = {"f64": ("<Q", "<d"), "f32": ("<I", "<f"), "f16": ("<H", "<e")}
_DTYPES = {d.value: d for d in DType}
_PUNCT = frozenset(["->", "(", ")", "{", "}", "[", "]", "<", ">", ",", "=", ":"])
_ESCAPES = {'"': b'"', "\\": b"\\", "n": b"\n", "t": b"\t"}
_ASCII_DIGITS = frozenset("0123456789")


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def error(self, pos: int, msg: str) -> ParseError:
        line = bisect.bisect_right(self.line_starts, pos)
        return ParseError(msg, line, pos - self.line_starts[line - 1] + 1)

    def lex(self, pos: int) -> Token:
        text, n = self.text, len(self.text)
        pos = _SKIP.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return Token("eof", "end of input", n, n)
        c = text[pos]
        if c == '"':
            return self._string(pos)
        if c in "%^":
            m = _SUFFIX_ID.match(text, pos + 1)
            if not m:
                raise self.error(pos, f"expected a name after '{c}'")
            if c == "^":
                return Token("block", text[pos:m.end()], pos, m.end())
            end, result = m.end(), None
            if text.startswith("#", end):
                d = _DIGITS.match(text, end + 1)
                if not d:
                    raise self.error(end, "expected a result number after '#'")
                if len(d.group()) > 9:
                    raise self.error(end + 1, "result number too large")
                end, result = d.end(), int(d.group())
            return Token("value", text[pos:end], pos, end, (m.group(), result))
        if c in _ASCII_DIGITS or (c == "-" and text[pos + 1:pos + 2] in _ASCII_DIGITS):
            m = _NUMBER.match(text, pos)
            if m is None:  # cannot happen: an ASCII digit always starts a number
                raise self.error(pos, "expected a number")
            return Token("number", m.group(), pos, m.end())
        m = _IDENT.match(text, pos)
        if m:
            return Token("ident", m.group(), pos, m.end())
        p = "->" if text.startswith("->", pos) else c
        if p in _PUNCT:
            return Token("punct", p, pos, pos + len(p))
        raise self.error(pos, f"unexpected character {c!r}")

    def _string(self, start: int) -> Token:
        text, pos, out = self.text, start + 1, bytearray()
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise self.error(start, "unterminated string (expected a closing '\"')")
            c = text[pos]
            if c == '"':
                break
            if c != "\\":
                run = _STRING_RUN.match(text, pos)  # a run of plain characters at once: long strings stay fast
                if run is None:  # cannot happen: c is none of the characters the run stops at
                    raise self.error(pos, "unexpected character in string")
                out += run.group().encode("utf-8", "surrogatepass")
                pos = run.end()
                continue
            nxt = text[pos + 1:pos + 2]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                pos += 2
            elif re.fullmatch(r"[0-9A-Fa-f]{2}", text[pos + 1:pos + 3]):
                out.append(int(text[pos + 1:pos + 3], 16))
                pos += 3
            else:
                raise self.error(pos, "unknown escape in string (expected \\\", \\\\, \\n, \\t or two hex digits)")
        try:
            value = out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(start, "string is not valid UTF-8 after decoding its escapes") from None
        return Token("string", text[start:pos + 1], start, pos + 1, value)


class _Parser:
    def __init__(self, text: str):
        self.lexer = _Lexer(text)
        self.text = text
        self.tok = self.lexer.lex(0)
        self.types: dict[tuple, TensorType] = {}  # building a TensorType canonicalizes its dims: slow
        self.depth = 0  # of attribute lists and dicts being parsed
        self.dims: set[str] = set()  # the symbolic dim expressions seen

    # -- token helpers ------------------------------------------------------
    def error(self, msg: str, tok: Token | None = None) -> ParseError:
        return self.lexer.error((tok or self.tok).start, msg)

    def expected(self, what: str) -> ParseError:
        t = self.tok
        got = t.text if t.kind == "eof" else repr(t.text)
        return self.error(f"expected {what}, got {got}")

    def advance(self) -> Token:
        t = self.tok
        self.tok = self.lexer.lex(t.end)
        return t

    def peek2(self) -> Token:
        return self.lexer.lex(self.tok.end)

    def at(self, text: str, kind: str = "punct") -> bool:
        return self.tok.kind == kind and self.tok.text == text

    def accept(self, text: str, kind: str = "punct") -> bool:
        if self.at(text, kind):
            self.advance()
            return True
        return False

    def expect(self, text: str, kind: str = "punct") -> Token:
        if not self.at(text, kind):
            raise self.expected(f"'{text}'")
        return self.advance()

    def expect_kind(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.expected(what)
        return self.advance()

    def expect_op_name(self, name: str) -> Token:
        if self.tok.kind != "string" or self.tok.value != name:
            raise self.expected(f'"{name}"')
        return self.advance()

    def empty_signature(self) -> None:
        for p in (":", "(", ")", "->", "(", ")"):
            self.expect(p)

    # -- types --------------------------------------------------------------
    def parse_type(self) -> TensorType:
        start = self.tok
        if not self.at("tensor", "ident") or not self.text.startswith("<", start.end):
            raise self.expected("a tensor type like tensor<?x4xf32, \"B\">")
        text, pos = self.text, start.end + 1
        dims: list[int | None] = []
        while True:
            if text.startswith("?", pos):
                dims.append(None)
                pos += 1
            elif (m := _DIGITS.match(text, pos)) is not None:
                if len(m.group()) > 19 or int(m.group()) > INT64_MAX:
                    raise self.lexer.error(pos, "dimension out of the int64 range")
                dims.append(int(m.group()))
                pos = m.end()
            else:
                break
            if len(dims) > MAX_RANK:
                raise self.lexer.error(pos, f"tensor type with more than {MAX_RANK} dims")
            if not text.startswith("x", pos):
                raise self.lexer.error(pos, "expected 'x' after a dimension")
            pos += 1
        m = _IDENT.match(text, pos)
        if not m or m.group() not in _DTYPES:
            raise self.lexer.error(pos, f"expected an element type (one of {', '.join(_DTYPES)})")
        dtype = _DTYPES[m.group()]
        self.tok = self.lexer.lex(m.end())
        names: list[str] = []
        if self.accept(","):
            enc = self.expect_kind("string", "a string naming the '?' dims")
            names = [n.strip() for n in enc.value.split(",")] if enc.value else []
        if names.count("") or len(names) != dims.count(None):
            raise self.error(f"tensor type has {dims.count(None)} '?' dims but its encoding names "
                             f"{len(names)} (expected one name per '?')", start)
        self.expect(">")
        it = iter(names)
        shape = tuple(next(it) if d is None else d for d in dims)
        key = (dtype, shape)
        if key not in self.types:
            for name in names:
                try:
                    self.check_dim(name, enc)
                except DimSyntaxError as e:
                    offset = enc.value.find(name) + e.pos  # exact unless the string has escapes
                    raise self.lexer.error(enc.start + 1 + min(offset, len(enc.text) - 2), str(e)) from None
            try:
                self.types[key] = TensorType(dtype, shape)
            except (ValueError, TypeError) as e:
                raise self.error(f"bad tensor type: {e}", start) from None
        return self.types[key]

    def check_dim(self, text: str, tok: Token) -> None:
        """A symbolic dim must be in the bounded grammar of ``kiln.ir.types``, and one text may hold only so
        many distinct ones."""
        if text not in self.dims:
            if len(self.dims) >= MAX_SYMBOLIC_DIMS:
                raise self.error(f"more than {MAX_SYMBOLIC_DIMS} distinct symbolic dims", tok)
            canon_dim(text)
            self.dims.add(text)

    def parse_type_list(self) -> list[TensorType]:
        self.expect("(")
        types: list[TensorType] = []
        if not self.accept(")"):
            types.append(self.parse_type())
            while self.accept(","):
                types.append(self.parse_type())
            self.expect(")")
        return types

    # -- attributes ---------------------------------------------------------
    def parse_attr(self) -> Any:
        t = self.tok
        if t.kind == "punct" and t.text in ("[", "{"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"attributes nested more than {MAX_DEPTH} deep")
            try:
                return self.parse_nested()
            finally:
                self.depth -= 1
        if t.kind == "string":
            return self.advance().value
        if t.kind == "number":
            return self.parse_number()
        if t.kind == "ident":
            words = {"true": True, "false": False, "unit": None, **_DTYPES}
            if t.text in words:
                self.advance()
                return words[t.text]
        raise self.expected("an attribute value")

    def parse_nested(self) -> Any:
        if self.accept("["):
            items: list[Any] = []
            if not self.accept("]"):
                items.append(self.parse_attr())
                while self.accept(","):
                    items.append(self.parse_attr())
                self.expect("]")
            return items
        at = self.tok
        d = self.parse_dict()
        if list(d) == ["sym"] and isinstance(d["sym"], str):
            try:
                self.check_dim(d["sym"], at)
            except DimSyntaxError as e:
                raise self.error(f"bad {{sym = ...}} attribute: {e}", at) from None
            return Sym(d["sym"])
        if list(d) == ["operand"] and type(d["operand"]) is int:
            return Ref(d["operand"])
        return d

    def parse_number(self) -> int | float:
        t = self.advance()
        is_hex, is_float = "0x" in t.text, "." in t.text
        ty = None
        if self.at(":") and (nxt := self.peek2()).kind == "ident" and _SCALAR_TYPE.match(nxt.text):
            self.advance()
            ty = self.advance().text
        float_ty = ty in ("f16", "bf16", "f32", "f64")
        if is_hex and float_ty:
            if t.text.startswith("-"):
                raise self.error("a hexadecimal float literal cannot have a leading minus", t)
            width = 16 if ty in ("f16", "bf16") else 32 if ty == "f32" else 64
            if len(t.text[2:].lstrip("0")) > width // 4 or (bits := int(t.text, 16)) >= 1 << width:
                raise self.error(f"hexadecimal literal too wide for {ty}", t)
            if ty == "bf16":
                return struct.unpack("<f", struct.pack("<I", bits << 16))[0]
            ifmt, ffmt = _HEX_FLOAT[ty]
            return struct.unpack(ffmt, struct.pack(ifmt, bits))[0]
        if ty is not None and is_float != float_ty:
            raise self.error(f"{'float' if is_float else 'integer'} literal with type {ty} (expected a "
                             f"{'float' if float_ty else 'integer'} literal)", t)
        if is_float:
            if len(t.text) > _MAX_FLOAT_TEXT:
                raise self.error(f"float literal longer than {_MAX_FLOAT_TEXT} characters", t)
            value = float(t.text)
            if value in (math.inf, -math.inf):
                raise self.error("float literal out of range (write inf as a hex float, e.g. 0x7FF0000000000000 "
                                 ": f64)", t)
            return value
        return self.int_literal(t)

    def int_literal(self, t: Token) -> int:
        """An int64 from a decimal or hex literal token, refused by its length before it is converted."""
        is_hex = "0x" in t.text
        digits = t.text.lstrip("-").removeprefix("0x").lstrip("0")
        if len(digits) <= 19:
            value = int(t.text, 16) if is_hex else int(t.text)
            if -INT64_MAX - 1 <= value <= INT64_MAX:
                return value
        raise self.error("integer literal out of the int64 range", t)

    def parse_dict(self) -> dict[str, Any]:
        self.expect("{")
        d: dict[str, Any] = {}
        if self.accept("}"):
            return d
        while True:
            k = self.tok
            if k.kind not in ("ident", "string"):
                raise self.expected("an attribute name")
            self.advance()
            key = k.value if k.kind == "string" else k.text
            if key in d:
                raise self.error(f"duplicate attribute name {key!r}", k)
            d[key] = self.parse_attr() if self.accept("=") else None
            if self.accept("}"):
                return d
            if not self.accept(","):
                raise self.expected("',' or '}'")

    # -- programs -----------------------------------------------------------
    def parse_program(self) -> Program:
        self.expect_op_name("kiln.program")
        self.expect("(")
        self.expect(")")
        self.expect("(")
        self.expect("{")
        prog = Program("")
        scope: dict[str, list[Value]] = {}
        if self.tok.kind == "block":
            self.advance()
            if self.accept("("):
                if not self.at(")"):
                    self.parse_arg(prog, scope)
                    while self.accept(","):
                        self.parse_arg(prog, scope)
                self.expect(")")
            self.expect(":")
        while not self.at("}"):
            self.parse_op(prog, scope)
        if not prog.ops or prog.ops[-1].name != "kiln.return":
            raise self.error("expected a \"kiln.return\" op at the end of the program", self.tok)
        self.expect("}")
        self.expect(")")
        attrs_tok = self.tok
        attrs = self.parse_dict() if self.at("{") else {}
        if not isinstance(attrs.get("sym_name"), str) or set(attrs) != {"sym_name"}:
            raise self.error("expected a kiln.program attribute dict {sym_name = \"...\"} and nothing else",
                             attrs_tok)
        prog.name = attrs["sym_name"]
        self.empty_signature()
        return prog

    def define(self, scope: dict[str, list[Value]], tok: Token, values: list[Value]) -> None:
        name, result = tok.value
        if result is not None:
            raise self.error(f"a definition cannot name a result number: {tok.text}", tok)
        if name in scope:
            raise self.error(f"redefinition of value %{name}", tok)
        scope[name] = values

    def parse_arg(self, prog: Program, scope: dict[str, list[Value]]) -> None:
        tok = self.expect_kind("value", "a block argument like %x")
        self.expect(":")
        ty = self.parse_type()
        name = tok.value[0]
        hint = "" if name == f"arg{len(prog.args)}" or name.isdigit() else name
        self.define(scope, tok, [prog.add_arg(ty, hint)])

    def parse_use(self, scope: dict[str, list[Value]]) -> Value:
        tok = self.expect_kind("value", "an SSA value like %3")
        name, result = tok.value
        if name not in scope:
            raise self.error(f"use of undefined value %{name}", tok)
        values = scope[name]
        i = result or 0
        if i >= len(values):
            raise self.error(f"%{name} has {len(values)} results; #{i} is out of range", tok)
        return values[i]

    def parse_op(self, prog: Program, scope: dict[str, list[Value]]) -> None:
        lhs, count = None, 0
        if self.tok.kind == "value":
            lhs, count = self.advance(), 1
            if self.accept(":"):
                count = self.int_literal(self.expect_kind("number", "a result count"))
                if count < 1:
                    raise self.error("a result count must be at least 1", lhs)
            self.expect("=")
        name_tok = self.expect_kind("string", "an op name string like \"kiln.add\"")
        if not name_tok.value:
            raise self.error("empty op name", name_tok)
        if prog.ops and prog.ops[-1].name == "kiln.return":
            raise self.error("op after \"kiln.return\" (expected it to be the last op)", name_tok)
        self.expect("(")
        operands: list[Value] = []
        if not self.at(")"):
            operands.append(self.parse_use(scope))
            while self.accept(","):
                operands.append(self.parse_use(scope))
        self.expect(")")
        attrs = self.parse_dict() if self.at("{") else {}
        self.expect(":")
        sig = self.tok
        in_types = self.parse_type_list()
        self.expect("->")
        out_types = self.parse_type_list() if self.at("(") else [self.parse_type()]
        if len(in_types) != len(operands):
            raise self.error(f"{len(operands)} operands but {len(in_types)} operand types", sig)
        for i, (v, t) in enumerate(zip(operands, in_types)):
            if v.type != t:
                raise self.error(f"operand #{i} has type {v.type}, but the signature says {t}", sig)
        if len(out_types) != count:
            raise self.error(f"{name_tok.value} declares {len(out_types)} result types but binds {count} "
                             "results on its left-hand side", name_tok)
        op = prog.append(Op(name_tok.value, operands, attrs, out_types))
        if lhs is not None:
            self.define(scope, lhs, op.results)
            if not lhs.value[0].isdigit() and count == 1:
                op.results[0].hint = lhs.value[0]

    # -- modules ------------------------------------------------------------
    def parse_module(self) -> Module:
        mod = Module()
        wrapped = self.tok.kind == "string" and self.tok.value == "builtin.module"
        if wrapped:
            self.advance()
            for p in ("(", ")", "(", "{"):
                self.expect(p)
            if self.tok.kind == "block":
                self.advance()
                self.expect(":")
        while self.tok.kind == "string" and self.tok.value == "kiln.program":
            start = self.tok
            prog = self.parse_program()
            if prog.name in mod.programs:
                raise self.error(f"duplicate program {prog.name!r}", start)
            mod.add(prog)
        if wrapped:
            if not self.at("}"):
                raise self.expected("\"kiln.program\" or '}'")
            self.advance()
            self.expect(")")
            if self.at("{"):
                at = self.tok
                attrs = self.parse_dict()
                meta = attrs.pop("kiln.meta", {})
                if attrs or not isinstance(meta, dict):
                    raise self.error("expected module attributes {kiln.meta = {...}} only", at)
                mod.meta = meta
            self.empty_signature()
        if self.tok.kind != "eof":
            raise self.expected("\"kiln.program\"" if not wrapped and not mod.programs else "end of input")
        return mod


def parse_module(text: str) -> Module:
    """Parse a module as ``print_module`` writes it (with or without ``kiln.meta``)."""
    return _Parser(text).parse_module()


def parse_program(text: str) -> Program:
    """Parse one ``"kiln.program"() ({...}) {sym_name = ...} : () -> ()`` block."""
    p = _Parser(text)
    prog = p.parse_program()
    if p.tok.kind != "eof":
        raise p.expected("end of input")
    return prog
