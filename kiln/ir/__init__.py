"""kiln's IR: typed SSA programs in MLIR's generic syntax (see docs/ir.md)."""

from kiln.ir import ops  # noqa: F401  (declares every op in the registry)
from kiln.ir.core import IRError, Module, Op, Program, Value
from kiln.ir.registry import OPS, ExecContext, lookup
from kiln.ir.types import DType, Ref, Sym, TensorType

__all__ = [
           "OPS",
           "DType",
           "ExecContext",
           "IRError",
           "Module",
           "Op",
           "Program",
           "Ref",
           "Sym",
           "TensorType",
           "Value",
           "lookup",
]
