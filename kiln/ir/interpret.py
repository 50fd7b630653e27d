"""The one op interpreter: run an op through its reference semantics (or a kernel with the same meaning).

Every place that evaluates ops one at a time uses this module, so that they agree on how an op is
called: the CPU executor (``kiln.codegen.cpu``), the Triton target's fallback for ops outside its
kernels, constant folding (``fold-constants``) and the frontend's probes.

    outs = run_op(op, [tensors...], ctx)           # a list, one tensor per result

A hot loop prepares each op once (``PreparedOp``: the function, the attributes it is called with,
the number of results) and calls ``prepared.run(ctx, inputs)`` per execution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kiln.errors import ExecError, IRError, KilnError
from kiln.ir.core import Op
from kiln.ir.registry import DISCARDABLE_ATTRS, ExecContext

__all__ = ["ExecContext", "PreparedOp", "call_attrs", "run_op"]


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


def run_op(op: Op, inputs: Sequence[Any], ctx: ExecContext, kernel: Callable[..., Any] | None = None,
           where: str = "") -> list[Any]:
    """Run one op on concrete inputs; an exception other than kiln's own becomes an ``ExecError``
    naming the op (and ``where``, e.g. its program)."""
    prepared = PreparedOp(op, kernel)
    try:
        return prepared.run(ctx, inputs)
    except KilnError:
        raise
    except Exception as e:  # name the op that failed
        raise ExecError(f"{op.name}{' in ' + where if where else ''} failed: {type(e).__name__}: {e}") from e
