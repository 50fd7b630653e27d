"""Types of kiln's IR: element dtypes, dimensions (static ints or symbolic
expressions such as ``"B"`` or ``"B*T"``), and frozen ``TensorType``.

Symbolic dimensions are kept as canonical strings. They are parsed with a small
``ast`` walker (never ``eval``) into sympy expressions so that ``B*T`` and
``T*B`` compare equal and so that they can be evaluated against the sizes bound
when a program runs. Everything here is plain data: no torch.fx, no Triton.
"""

from __future__ import annotations

import ast
import enum
import functools
import operator
from dataclasses import dataclass

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

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.FloorDiv: lambda a, b: sympy.floor(a / b)}


def _to_sympy(node: ast.AST) -> sympy.Expr:
    if isinstance(node, ast.Expression):
        return _to_sympy(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return sympy.Integer(node.value)
    if isinstance(node, ast.Name):
        return sympy.Symbol(node.id, integer=True, positive=True)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_to_sympy(node.left), _to_sympy(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_to_sympy(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
        return _to_sympy(node.left) ** int(node.right.value)
    if _is_floor_div(node):  # sympy prints a // b as floor(a/b)
        arg = node.args[0]
        return sympy.floor(_to_sympy(arg.left) / _to_sympy(arg.right))
    raise ValueError(f"unsupported symbolic dimension syntax: {ast.dump(node)}")


def _is_floor_div(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "floor"
            and len(node.args) == 1 and isinstance(node.args[0], ast.BinOp) and isinstance(node.args[0].op, ast.Div))


@functools.lru_cache(maxsize=4096)
def sym_expr(text: str) -> sympy.Expr:
    """Parse a symbolic dimension (``"B*T+1"``) without evaluating code."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"bad symbolic dimension {text!r}") from e
    return _to_sympy(tree)


def canon_dim(d: Dim | sympy.Expr) -> Dim:
    """Canonical form of a dimension: an int when static, else a sorted string."""
    if isinstance(d, bool):
        raise TypeError("a dimension cannot be a bool")
    if isinstance(d, int):
        return d
    e = sym_expr(d) if isinstance(d, str) else sympy.sympify(d)
    if e.is_Integer:
        return int(e)
    return str(e).replace(" ", "")


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


_EVAL_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def _compile_node(node: ast.AST):
    if isinstance(node, ast.Expression):
        return _compile_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        value = node.value
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id

        def lookup(env):
            try:
                return env[name]
            except KeyError:
                raise KeyError(f"no size bound for symbolic dimension {name!r}") from None

        return lookup
    if isinstance(node, ast.BinOp) and type(node.op) in _EVAL_OPS:
        f, a, b = _EVAL_OPS[type(node.op)], _compile_node(node.left), _compile_node(node.right)
        return lambda env: f(a(env), b(env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        a = _compile_node(node.operand)
        return lambda env: -a(env)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
        a, k = _compile_node(node.left), int(node.right.value)
        return lambda env: a(env) ** k
    if _is_floor_div(node):
        a, b = _compile_node(node.args[0].left), _compile_node(node.args[0].right)
        return lambda env: a(env) // b(env)
    raise ValueError(f"unsupported symbolic dimension syntax: {ast.dump(node)}")


@functools.lru_cache(maxsize=4096)
def compile_dim(text: str):
    """A function env -> int for a symbolic dimension (built from its syntax tree, no eval)."""
    return _compile_node(ast.parse(text, mode="eval"))


def eval_dim(d: Dim, env: dict[str, int]) -> int:
    """The concrete size of ``d`` given the sizes bound to its symbols."""
    if isinstance(d, int):
        return d
    return int(compile_dim(d)(env))


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
        from kiln.ir.printer import format_type

        return format_type(self)


@dataclass(frozen=True)
class Sym:
    """An attribute holding a symbolic size (a SymInt argument of an ATen op)."""

    expr: str


@dataclass(frozen=True)
class Ref:
    """An attribute pointing at operand ``index`` (tensor arguments of ``kiln.aten``)."""

    index: int
