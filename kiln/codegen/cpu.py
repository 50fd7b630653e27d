"""The CPU target: runs a program through torch ops.

Lowering for the CPU is, by design, the reference semantics declared with each
op in the registry, so this backend is also the oracle the other targets are
tested against. ``compile_program`` turns a program into a flat list of steps
(function, operand slots, attributes, result slots), binds symbolic dims from
the arguments' shapes at each call, and frees intermediates after their last
use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from kiln.codegen.cpu_attention import KERNELS as ATTENTION_KERNELS
from kiln.codegen.cpu_quant import KERNELS as QUANT_KERNELS
from kiln.errors import ExecError, KilnError
from kiln.ir.core import IRError, Program
from kiln.ir.interpret import PreparedOp, bind_inputs
from kiln.ir.registry import ExecContext


@dataclass
class _Step:
    fn: Callable[..., Any]  # these three as kiln/ir/interpret.py's PreparedOp prepares them
    name: str
    attrs: dict[str, Any]
    inputs: list[int]
    outputs: list[int]
    free: list[int]
    result_types: list
    index: int


def _linear_native_or_torch(ctx, x, w, b=None):
    """kiln.linear: the native kernels (float32 weights, packed into panels on first use), else torch."""
    from kiln.codegen import native

    y = native.linear(x, w, b)
    return y if y is not None else torch.nn.functional.linear(x, w, b)


# Ops whose CPU lowering is not their reference function (same meaning, faster kernel).
KERNELS = {"kiln.linear": _linear_native_or_torch, **QUANT_KERNELS,  # + the int8 / int4 linears
           **ATTENTION_KERNELS}  # + decode attention over a batch of sequences at once


class CpuProgram:
    """A program ready to run on the CPU: ``outputs = prog(*tensors)``. ``native=False`` runs every op
    through its reference semantics (the oracle), without the native kernels."""

    def __init__(self, program: Program, weights: dict[str, torch.Tensor], device: str = "cpu",
                 native: bool = True):
        self.program = program
        if not native:  # the oracle reads weights as declared: a runtime's packed weights are unpacked
            from kiln.codegen.native import PackedWeight

            weights = {k: v.unpack() if isinstance(v, PackedWeight) else v for k, v in weights.items()}
        self.weights = weights
        self.device = device
        slot: dict[int, int] = {}
        for a in program.args:
            slot[id(a)] = len(slot)
        last_use: dict[int, int] = {}
        for i, op in enumerate(program.ops):
            for v in op.operands:
                last_use[id(v)] = i
        self.steps: list[_Step] = []
        self.n_slots = len(slot)
        ret = {id(v) for v in program.outputs}  # outputs are never freed
        for i, op in enumerate(program.ops):
            if op.name == "kiln.return":
                self.outputs = [slot[id(v)] for v in op.operands]
                continue
            if op.opdef.reference is None:
                raise IRError(f"{op.name} has no CPU lowering (no reference semantics)")
            for r in op.results:
                slot[id(r)] = self.n_slots
                self.n_slots += 1
            ins = [slot[id(v)] for v in op.operands]
            outs = [slot[id(r)] for r in op.results]
            free = sorted({slot[id(v)] for v in op.operands if last_use[id(v)] == i and id(v) not in ret})
            prep = PreparedOp(op, KERNELS.get(op.name) if native else None)
            self.steps.append(_Step(prep.fn, op.name, prep.attrs, ins, outs, free, prep.result_types, i))

    def bind(self, args: tuple[torch.Tensor, ...]) -> dict[str, int]:
        return bind_inputs(self.program, args)

    def __call__(self, *args: torch.Tensor) -> list[torch.Tensor]:
        ctx = ExecContext(self.bind(args), self.weights, self.device)
        slots: list[Any] = [None] * self.n_slots
        slots[: len(args)] = args
        for s in self.steps:  # PreparedOp.run inlined: this loop runs every op of every token
            ctx.result_types = s.result_types
            try:
                out = s.fn(ctx, *[slots[i] for i in s.inputs], **s.attrs)
            except KilnError:
                raise
            except Exception as e:  # name the op that failed
                raise ExecError(f"op #{s.index} {s.name} in program {self.program.name!r} failed: "
                                f"{type(e).__name__}: {e}") from e
            if len(s.outputs) == 1:
                slots[s.outputs[0]] = out
            else:
                for o, t in zip(s.outputs, out):
                    slots[o] = t
            for i in s.free:
                slots[i] = None
        return [slots[i] for i in self.outputs]


def run_program(program: Program, weights: dict[str, torch.Tensor], *args: torch.Tensor) -> list[torch.Tensor]:
    return CpuProgram(program, weights)(*args)

