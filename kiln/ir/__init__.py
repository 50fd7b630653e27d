"""kiln's IR: typed SSA programs in MLIR's generic syntax (see docs/ir.md)."""

# Importing any part of kiln.ir runs this first, so every op is declared before anything looks one up.
from kiln.ir import ops, ops_quant, ops_spec  # noqa: F401  (declare the core, quantized and speculative ops)
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
