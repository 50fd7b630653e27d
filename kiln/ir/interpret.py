"""The one op interpreter: run an op through its reference semantics (or a kernel with the same meaning).

Every place that evaluates ops one at a time uses this module, so that they agree on how an op is
called: the CPU executor (``kiln.codegen.cpu``), the Triton target's fallback for ops outside its
kernels, constant folding (``fold-constants``) and the frontend's probes.

    outs = run_op(op, [tensors...], ctx)           # a list, one tensor per result

A hot loop prepares each op once (``PreparedOp``: the function, the attributes it is called with,
the number of results) and calls ``prepared.run(ctx, inputs)`` per execution; the CPU executor,
whose loop runs every op of every token, keeps the prepared function and attributes and inlines ``run``. ``bind_inputs`` checks a
program's inputs and binds its symbolic sizes (every executor calls it); ``run_program`` runs a whole
program through the reference semantics: the evaluator a pass uses when the compiler gives it none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kiln.errors import ExecError, IRError, KilnError
from kiln.ir.core import Op, Program
from kiln.ir.registry import DISCARDABLE_ATTRS, ExecContext
from kiln.ir.semantics import FROM_TORCH
from kiln.ir.types import eval_dim, free_symbols

__all__ = ["ExecContext", "PreparedOp", "bind_inputs", "call_attrs", "run_op", "run_program"]


def call_attrs(op: Op) -> dict[str, Any]:
    """The keyword arguments ``op``'s reference is called with: declared defaults, then the op's own
    attributes, without the discardable ones (e.g. the group-kernels label)."""
    d = op.opdef
    return {k: v for k, v in {**d.defaults, **op.attrs}.items() if k not in DISCARDABLE_ATTRS}


class PreparedOp:
    """``op`` ready to run many times: ``fn`` (its reference unless a kernel is given) and its attributes."""

    __slots__ = ("attrs", "fn", "n_results", "name", "result_types")

    def __init__(self, op: Op, kernel: Callable[..., Any] | None = None):
        d = op.opdef
        fn = kernel or d.reference
        if fn is None:
            raise IRError(f"{op.name} has no reference semantics to run")
        self.fn = fn
        self.name = op.name
        self.attrs = call_attrs(op)
        self.n_results = len(op.results)
        self.result_types = [r.type for r in op.results]

    def run(self, ctx: ExecContext, inputs: Sequence[Any]) -> list[Any]:
        """The op's results as a list (the reference returns one tensor, or a list for several results)."""
        ctx.result_types = self.result_types
        out = self.fn(ctx, *inputs, **self.attrs)
        if self.n_results == 1:
            return [out]
        outs = list(out)
        if len(outs) != self.n_results:
            raise ExecError(f"{self.name} returned {len(outs)} results, its type has {self.n_results}")
        return outs

    def execute(self, ctx: ExecContext, inputs: Sequence[Any], where: str = "") -> list[Any]:
        """``run``, with an exception other than kiln's own turned into an ``ExecError`` naming the op
        (and ``where``, e.g. its program)."""
        try:
            return self.run(ctx, inputs)
        except KilnError:
            raise
        except Exception as e:  # name the op that failed
            raise ExecError(f"{self.name}{' in ' + where if where else ''} failed: {type(e).__name__}: {e}") from e


def run_op(op: Op, inputs: Sequence[Any], ctx: ExecContext, kernel: Callable[..., Any] | None = None,
           where: str = "") -> list[Any]:
    """Run one op on concrete inputs; an exception other than kiln's own becomes an ``ExecError``
    naming the op (and ``where``, e.g. its program)."""
    return PreparedOp(op, kernel).execute(ctx, inputs, where)


def bind_inputs(program: Program, args: Sequence[Any]) -> dict[str, int]:
    """Check ``args`` against the program's argument types (count, rank, dtype, static sizes) and bind its
    symbolic sizes: {"T": 7, ...}. A mismatch is an ``ExecError`` naming the input."""
    if len(args) != len(program.args):
        raise ExecError(f"program {program.name!r} takes {len(program.args)} inputs, got {len(args)}")
    for j, a in enumerate(program.args):
        t = args[j]
        if t.dim() != a.type.rank:
            raise ExecError(f"input {j} ({a.hint}) has rank {t.dim()}, expected {a.type}")
        if FROM_TORCH.get(t.dtype) != a.type.dtype:
            raise ExecError(f"input {j} ({a.hint}) has dtype {t.dtype}, expected {a.type.dtype.value}")
    env: dict[str, int] = {}
    dims = [(j, k, d) for j, a in enumerate(program.args) for k, d in enumerate(a.type.shape)]
    for j, k, d in dims:
        size = int(args[j].shape[k])
        if isinstance(d, int):
            if size != d:
                raise ExecError(f"input {j} dim {k} is {size}, expected {d}")
        elif d.isidentifier() and env.setdefault(d, size) != size:
            raise ExecError(f"symbolic dim {d} bound to both {env[d]} and {size}")
    for j, k, d in dims:  # derived expressions must agree with the bound symbols
        if isinstance(d, str) and not d.isidentifier() and free_symbols(d) <= env.keys() and \
                eval_dim(d, env) != int(args[j].shape[k]):
            raise ExecError(f"input {j} dim {k} is {int(args[j].shape[k])}, expected {d}")
    return env


def run_program(program: Program, weights: dict[str, Any], *args: Any, device: str = "cpu") -> list[Any]:
    """Run ``program`` op by op through the reference semantics (slow and simple: no kernels, no
    freeing of intermediates); returns its outputs."""
    ctx = ExecContext(bind_inputs(program, args), weights, device)
    vals: dict[int, Any] = {id(a): t for a, t in zip(program.args, args)}
    for op in program.ops:
        if op.name == "kiln.return":
            break
        for r, t in zip(op.results, run_op(op, [vals[id(v)] for v in op.operands], ctx,
                                           where=f"program {program.name!r}")):
            vals[id(r)] = t
    return [vals[id(v)] for v in program.outputs]
