"""Types of kiln's IR: element dtypes, dimensions (static ints or symbolic
expressions such as ``"B"`` or ``"B*T"``), and frozen ``TensorType``.

Symbolic dimensions are kept as canonical strings. They are parsed by a small
bounded grammar of their own (never ``eval`` or ``ast``; text from an artifact
may be hostile, so literals, exponents, length, nesting and the size of any
value are all limited before anything is computed) into sympy expressions so
that ``B*T`` and ``T*B`` compare equal, and into a tree that is evaluated
against the sizes bound when a program runs. Everything here is plain data: no
torch.fx, no Triton.
"""

from __future__ import annotations

import enum
import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import sympy


class DType(str, enum.Enum):
    """Element types, spelled as MLIR spells them."""

    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    f64 = "f64"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u8 = "ui8"
    i1 = "i1"

    @property
    def is_float(self) -> bool:
        return self in (DType.f32, DType.f16, DType.bf16, DType.f64)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value


Dim = int | str

# Bounds on a symbolic dimension's text: it may come from a file an attacker wrote, so it is parsed by a
# small grammar of its own (integers within int64, ASCII names, + - * // and parentheses, ``floor(..)`` /
# ``ceiling(..)`` around true division as sympy prints them, powers with a literal exponent <= 8) and
# nothing is evaluated until the whole expression is known to be small.
MAX_DIM_TEXT = 256  # characters
MAX_DIM_DEPTH = 16  # nested parentheses, unary minus and floor/ceiling
MAX_DIM_EXPONENT = 8
MAX_DIM_FLOORS = 4  # floor divisions, floor(..) and ceiling(..) in one expression: sympy is slow on them
MAX_DIM_BITS = 4096  # bound on any value the expression takes when every symbol is below 2**63
INT64_MAX = 2**63 - 1
SLICE_TO_END = 2**62  # a slice `end` at least this large runs to the end of its dim (torch's ``x[a:]``)

# The float element types kernels are generated for (f64 runs through the reference semantics only)
KERNEL_FLOATS = frozenset({DType.f32, DType.f16, DType.bf16})

_DIM_TOKEN = re.compile(r"[ \t]*(?:([0-9]+)|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|//|[-+*/()]))")
_DIM_FUNCS = ("floor", "ceiling")


class DimSyntaxError(ValueError):
    """A symbolic dimension outside the grammar; ``pos`` is the 0-based offset in ``text``."""

    def __init__(self, text: str, pos: int, msg: str):
        shown = text if len(text) <= 40 else text[:40] + "..."
        super().__init__(f"bad symbolic dimension {shown!r} at character {pos + 1}: {msg}")
        self.text = text
        self.pos = pos


class _DimNode(NamedTuple):
    """One node of a parsed dimension: ``kind`` is int, sym, add, sub, mul, floordiv, div, neg, pow,
    floor or ceiling; ``args`` its operands (an int, a name, or child nodes); ``bits`` a bound on the
    bit length of its value; ``div`` whether it holds a true division outside any floor/ceiling."""

    kind: str
    args: tuple
    bits: int
    div: bool


class _DimParser:
    def __init__(self, text: str):
        if len(text) > MAX_DIM_TEXT:
            raise DimSyntaxError(text, MAX_DIM_TEXT, f"longer than {MAX_DIM_TEXT} characters")
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, offset): kind is int, name or op
        pos = 0
        while pos < len(text):
            m = _DIM_TOKEN.match(text, pos)
            if m is None:
                rest = len(text) - len(text[pos:].lstrip(" \t"))
                if rest == len(text):
                    break
                raise DimSyntaxError(text, rest, f"unexpected character {text[rest]!r}")
            kind = "int" if m.group(1) else "name" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex), m.start(m.lastindex)))
            pos = m.end()
        self.i = 0
        self.depth = 0
        self.floors = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def fail(self, msg: str, at: tuple[str, str, int] | None = None) -> DimSyntaxError:
        return DimSyntaxError(self.text, (at or self.peek())[2], msg)

    def node(self, kind: str, args: tuple, bits: int, div: bool = False, at=None) -> _DimNode:
        if kind in ("floordiv", "floor", "ceiling"):
            self.floors += 1
            if self.floors > MAX_DIM_FLOORS:
                raise self.fail(f"more than {MAX_DIM_FLOORS} floor divisions", at)
        if bits > MAX_DIM_BITS:
            raise self.fail(f"the value can be too large (more than {MAX_DIM_BITS} bits)", at)
        return _DimNode(kind, args, bits, div)

    def parse(self) -> _DimNode:
        if not self.tokens:
            raise self.fail("empty")
        n = self.sum()
        if self.i < len(self.tokens):
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        if n.div:
            raise self.fail("'/' is allowed only inside floor(...) or ceiling(...); use '//'", self.tokens[0])
        return n

    def sum(self) -> _DimNode:
        n = self.product()
        while self.peek()[:2] in (("op", "+"), ("op", "-")):
            at = self.tokens[self.i]
            self.i += 1
            m = self.product()
            n = self.node("add" if at[1] == "+" else "sub", (n, m), max(n.bits, m.bits) + 1, n.div or m.div, at)
        return n

    def product(self) -> _DimNode:
        n = self.unary()
        while self.peek()[:2] in (("op", "*"), ("op", "//"), ("op", "/")):
            at = self.tokens[self.i]
            self.i += 1
            m = self.unary()
            if at[1] != "*" and m.kind == "int" and m.args[0] == 0:
                raise self.fail("division by zero", at)
            kind = {"*": "mul", "//": "floordiv", "/": "div"}[at[1]]
            n = self.node(kind, (n, m), n.bits + m.bits, n.div or m.div or kind == "div", at)
        return n

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DIM_DEPTH:
            raise self.fail(f"nested more than {MAX_DIM_DEPTH} deep")

    def unary(self) -> _DimNode:
        if self.peek()[:2] == ("op", "-"):
            at = self.tokens[self.i]
            self.i += 1
            self.enter()
            n = self.unary()
            self.depth -= 1
            return self.node("neg", (n,), n.bits, n.div, at)
        return self.power()

    def power(self) -> _DimNode:
        n = self.primary()
        if self.peek()[:2] != ("op", "**"):
            return n
        at = self.tokens[self.i]
        self.i += 1
        kind, text, _ = self.peek()
        if kind != "int" or len(text) > 2 or int(text) > MAX_DIM_EXPONENT:
            raise self.fail(f"the exponent of '**' must be an integer literal from 0 to {MAX_DIM_EXPONENT}")
        self.i += 1
        if self.peek()[:2] == ("op", "**"):
            raise self.fail("chained '**'")
        k = int(text)
        return self.node("pow", (n, k), max(n.bits * k, 1), n.div, at)

    def primary(self) -> _DimNode:
        tok = self.peek()
        kind, text, _ = tok
        if kind == "int":
            self.i += 1
            if len(text) > 19 or int(text) > INT64_MAX:
                raise self.fail("integer out of the int64 range", tok)
            return self.node("int", (int(text),), max(int(text).bit_length(), 1))
        if kind == "name":
            self.i += 1
            if self.peek()[:2] != ("op", "("):
                return self.node("sym", (text,), 63)
            if text not in _DIM_FUNCS:
                raise self.fail(f"unknown function {text!r} (only {' and '.join(_DIM_FUNCS)})", tok)
            self.i += 1
            n = self.group()
            return self.node(text, (n,), n.bits, False, tok)
        if (kind, text) == ("op", "("):
            self.i += 1
            return self.group()
        raise self.fail("expected a number, a name or '('" if kind != "end" else "unexpected end")

    def group(self) -> _DimNode:
        self.enter()
        n = self.sum()
        if self.peek()[:2] != ("op", ")"):
            raise self.fail("expected ')'")
        self.i += 1
        self.depth -= 1
        return n


@functools.lru_cache(maxsize=4096)
def parse_dim(text: str) -> _DimNode:
    """Parse a symbolic dimension into a small tree, or raise ``DimSyntaxError`` (a ``ValueError``)."""
    if not isinstance(text, str):
        raise TypeError(f"a symbolic dimension must be a string, not {type(text).__name__}")
    return _DimParser(text).parse()


def _to_sympy(n: _DimNode) -> sympy.Expr:
    k, a = n.kind, n.args
    if k == "int":
        return sympy.Integer(a[0])
    if k == "sym":
        return sympy.Symbol(a[0], integer=True, positive=True)
    if k == "neg":
        return -_to_sympy(a[0])
    if k == "pow":
        return _to_sympy(a[0]) ** a[1]
    if k in ("floor", "ceiling"):
        return getattr(sympy, k)(_to_sympy(a[0]))
    x, y = _to_sympy(a[0]), _to_sympy(a[1])
    if k == "add":
        return x + y
    if k == "sub":
        return x - y
    if k == "mul":
        return x * y
    if k == "div":
        return x / y
    return sympy.floor(x / y)  # floordiv


_NOT_FINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


@functools.lru_cache(maxsize=4096)
def sym_expr(text: str) -> sympy.Expr:
    """Parse a symbolic dimension (``"B*T+1"``) without evaluating code; ``ValueError`` when it is not one."""
    tree = parse_dim(text)
    try:
        e = _to_sympy(tree)
    except (ArithmeticError, TypeError, ValueError) as err:  # sympy refusing an odd but bounded expression
        raise DimSyntaxError(text, 0, str(err)) from None
    if e.has(*_NOT_FINITE):
        raise DimSyntaxError(text, 0, "division by zero")
    return e


def canon_dim(d: Dim | sympy.Expr) -> Dim:
    """Canonical form of a dimension: an int when static, else a sorted string."""
    if isinstance(d, bool):
        raise TypeError("a dimension cannot be a bool")
    if isinstance(d, int):
        return d
    e = sym_expr(d) if isinstance(d, str) else sympy.sympify(d)
    if e.is_Integer:
        if abs(int(e)) > INT64_MAX:
            raise DimSyntaxError(str(d), 0, f"its value {int(e)} is outside the int64 range")
        return int(e)
    text = str(e).replace(" ", "")
    parse_dim(text)  # the canonical form must stay inside the grammar (e.g. B**8*B is B**9: refused)
    return text


def dim_mul(*dims: Dim) -> Dim:
    out: sympy.Expr = sympy.Integer(1)
    for d in dims:
        out = out * (sympy.Integer(d) if isinstance(d, int) else sym_expr(d))
    return canon_dim(out)


def dim_add(a: Dim, b: Dim) -> Dim:
    ea = sympy.Integer(a) if isinstance(a, int) else sym_expr(a)
    eb = sympy.Integer(b) if isinstance(b, int) else sym_expr(b)
    return canon_dim(ea + eb)


def dims_equal(a: Dim, b: Dim) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return canon_dim(a) == canon_dim(b)


def _eval_node(n: _DimNode, env: dict[str, int]):
    k, a = n.kind, n.args
    if k == "int":
        return a[0]
    if k == "sym":
        try:
            return env[a[0]]
        except KeyError:
            raise KeyError(f"no size bound for symbolic dimension {a[0]!r}") from None
    if k == "neg":
        return -_eval_node(a[0], env)
    if k == "pow":
        return _eval_node(a[0], env) ** a[1]
    if k == "floor":
        return math.floor(_eval_node(a[0], env))
    if k == "ceiling":
        return math.ceil(_eval_node(a[0], env))
    x, y = _eval_node(a[0], env), _eval_node(a[1], env)
    if k == "add":
        return x + y
    if k == "sub":
        return x - y
    if k == "mul":
        return x * y
    if y == 0:
        raise ValueError(f"division by zero evaluating a symbolic dimension ({k})")
    return Fraction(x, y) if k == "div" else x // y


@functools.lru_cache(maxsize=4096)
def compile_dim(text: str):
    """A function env -> int for a symbolic dimension (built from its syntax tree, no eval)."""
    tree = parse_dim(text)
    return lambda env: int(_eval_node(tree, env))


def eval_dim(d: Dim, env: dict[str, int]) -> int:
    """The concrete size of ``d`` given the sizes bound to its symbols."""
    if isinstance(d, int):
        return d
    return compile_dim(d)(env)


def free_symbols(d: Dim) -> set[str]:
    return set() if isinstance(d, int) else {s.name for s in sym_expr(d).free_symbols}


@dataclass(frozen=True)
class TensorType:
    """A ranked tensor type: element dtype and a shape of static or symbolic dims."""

    dtype: DType
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", DType(self.dtype))
        object.__setattr__(self, "shape", tuple(canon_dim(d) for d in self.shape))
        for d in self.shape:
            if isinstance(d, int) and d < 0:
                raise ValueError(f"negative dimension in {self.shape}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def numel(self) -> Dim:
        return dim_mul(*self.shape) if self.shape else 1

    def with_shape(self, shape) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def concrete(self, env: dict[str, int]) -> tuple[int, ...]:
        return tuple(eval_dim(d, env) for d in self.shape)

    def __str__(self) -> str:
        """MLIR's spelling, ``tensor<2x?xf32, "T">``: a ``?`` per symbolic dim, whose names follow in order."""
        dims = ["?" if isinstance(d, str) else str(d) for d in self.shape]
        body = "x".join(dims + [self.dtype.value]) if dims else self.dtype.value
        syms = [d for d in self.shape if isinstance(d, str)]
        if syms:
            return f'tensor<{body}, "{",".join(syms)}">'
        return f"tensor<{body}>"


@dataclass(frozen=True)
class Sym:
    """An attribute holding a symbolic size (a SymInt argument of an ATen op)."""

    expr: str


@dataclass(frozen=True)
class Ref:
    """An attribute pointing at operand ``index`` (tensor arguments of ``kiln.aten``)."""

    index: int
