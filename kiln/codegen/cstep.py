"""The CPU target's code generator: each program compiled into C, a step one call from Python.

The interpreter (kiln/codegen/cpu.py) dispatches every op of a program from Python: for a small model
most of a decode step is that dispatch. ``NativeStep(program, weights)`` instead writes the program as
one C file (``program_source``: a function per run of ops it compiles, ``kiln_step`` with a suffix naming
the run when ops it does not take sit between runs, as ``kiln_step__run_3``), compiles it with the system C compiler (the flags of the
loaded kernel library's instruction-set variant, kiln/codegen/native.py, at -O2), and runs a step with
one call per run. What it generates:

- **Views cost nothing.** ``kiln.reshape``, ``transpose``, ``permute``, ``slice``, ``unsqueeze``,
  ``squeeze`` and ``expand`` become strides and offsets (symbolic in the program's dynamic sizes, like
  the token count N) that the kernels reading them take; a reshape that no strides can express copies.
  An op whose result is transposed by its user writes it in the transposed order, so the transpose
  and the reshape after it are views (the attention's [1, H, N, D] output is stored [N, H, D], ready
  for the output projection).
- **Elementwise ops** (unary, binary, with a scalar, broadcast) become loops over the result, their
  operands read through their strides, dimensions that are contiguous for every operand merged.
- **The other ops call kernels**: the norms, rotary tables and RoPE, the embedding, cache write and
  cache attention from ``csrc/kiln_step.h`` (included into the generated source), and the linears
  from kiln_native.c's panel kernels (float32, int8 and int4 panels, through function pointers bound
  once per load: ``kiln_step_bind``).
- **A static memory plan** (``MemoryPlan``): every intermediate lives in one arena, at an offset
  assigned at compile time by liveness. Sizes are polynomials in the dynamic sizes; two buffers share
  bytes only when their lifetimes do not overlap, and offsets are chosen so the placement holds for any
  value of the sizes (coefficient by coefficient). The arena grows when a step needs more (a longer
  prompt); nothing else is allocated per step but the program's outputs.

Weights and their panels are bound once (a table of pointers); a step passes the inputs' pointers, the
dynamic sizes and the arena. A kernel that meets bad data (a token id past the vocabulary, a position
outside the block table) makes the step return an error code; ``NativeStep`` raises ``ExecError``
naming the op, as the interpreter does.

Ops the generator does not take (``native_op``: ``kiln.attention`` and ``kiln.positions`` of the full
forward, the sampled draft pick and accept step) run in the interpreter between the compiled runs; a
program that draws random numbers has a greedy plan, where those are an argmax in C, and a sampled one.
A program none of whose ops compiles, or with a layout the generator cannot express, raises
``Unsupported`` (one line); ``cpu_program`` then runs it through the interpreter. ``KILN_NATIVE_STEP=0``
turns the generator off (``KILN_NATIVE=0`` turns off every native kernel, this included; a portable
kernel build leaves programs to the interpreter too: ``disabled_reason``). The kernels' tunable
parameters are in kiln/codegen/variants.py (``NativeStep(config=...)``). Sources are
compiled once per machine and cached by hash (``$KILN_CACHE_DIR/step``); loading an artifact regenerates
them from its IR and never runs code found in it. ``kiln dump --kernels`` on a CPU artifact prints them,
``kiln dump --memory`` the memory plans.
"""

from __future__ import annotations

import ctypes
import importlib.resources
import logging
import math
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sympy
import torch

from kiln.codegen import native, variants
from kiln.codegen.cpu import KERNELS, CpuProgram
from kiln.errors import ExecError
from kiln.ir.core import Op, Program, Value
from kiln.ir.interpret import bind_inputs
from kiln.ir.ops_quant import split_quant_operands
from kiln.ir.semantics import TORCH_DTYPE
from kiln.ir.types import DType, compile_dim, sym_expr

_log = logging.getLogger("kiln")
HEADER = "kiln_step.h"
ALIGN = 64  # bytes: every arena buffer starts on a cache line
SIGNATURE = ("int kiln_step(void *const *A, void *const *W, char *arena, void *const *O, const long *dims, long *info, "
             "int threads)")


class Unsupported(Exception):
    """A program the C generator cannot compile (an op, dtype or layout it does not handle)."""


_CTYPE = {DType.f32: "float", DType.i64: "long", DType.i8: "signed char", DType.u8: "unsigned char",
          DType.f16: "_Float16", DType.i32: "int", DType.i1: "unsigned char"}
_ITEMSIZE = {DType.f32: 4, DType.i64: 8, DType.i8: 1, DType.u8: 1, DType.f16: 2, DType.i32: 4, DType.i1: 1}

# elementwise ops: C of their operands a (and b)
UNARY_C = {
    "neg": "-a", "abs": "fabsf(a)", "exp": "expf(a)", "log": "logf(a)", "sqrt": "sqrtf(a)",
    "rsqrt": "1.f / sqrtf(a)", "tanh": "tanhf(a)", "sigmoid": "1.f / (1.f + expf(-a))",
    "silu": "a / (1.f + expf(-a))", "relu": "(a > 0.f ? a : (a != a ? a : 0.f))", "cos": "cosf(a)", "sin": "sinf(a)",
    "reciprocal": "1.f / a", "erf": "erff(a)",
}
GELU_C = {"none": "0.5f * a * (1.f + erff(a * 0.70710678118654752f))",
          "tanh": "0.5f * a * (1.f + tanhf(0.79788456080286536f * (a + 0.044715f * a * a * a)))"}
BINARY_C = {"add": "a + b", "sub": "a - b", "mul": "a * b", "div": "a / b"}
INT_BINARY = ("add", "sub", "mul")  # also on int64 (positions and slots)
VIEW_OPS = ("kiln.reshape", "kiln.transpose", "kiln.permute", "kiln.slice", "kiln.unsqueeze", "kiln.squeeze",
            "kiln.expand")
KERNEL_OPS = ("kiln.rms_norm", "kiln.layer_norm", "kiln.linear", "kiln.qlinear", "kiln.embedding", "kiln.qembedding",
              "kiln.gather", "kiln.rope_cos", "kiln.rope_sin", "kiln.rope", "kiln.cache_write", "kiln.cache_attention",
              "kiln.cache_tree_attention", "kiln.cache_write_q8", "kiln.cache_attention_q8",
              "kiln.cache_tree_attention_q8")


SPEC_OPS = ("kiln.chain_tree", "kiln.cache_commit")  # speculative decoding's bookkeeping
GREEDY_OPS = ("kiln.draft_pick", "kiln.tree_accept")  # ... that draw random numbers unless greedy


def native_op(op: Op, greedy: bool = False) -> bool:
    """Whether the generator compiles ``op`` (by name and, for elementwise ops, float32 operands); the rest
    of a program runs in the interpreter between the compiled runs. ``greedy``: the plan for calls whose
    sampling temperature is 0, where the draft pick and the accept step are an argmax."""
    short = op.name.removeprefix("kiln.")
    if short in UNARY_C or short in BINARY_C or short == "gelu":
        types = {v.type.dtype for v in (*op.operands, *op.results)}
        return types == {DType.f32} or (types == {DType.i64} and short in INT_BINARY)
    return op.name in VIEW_OPS or op.name in KERNEL_OPS or op.name in SPEC_OPS or (greedy and op.name in GREEDY_OPS)


def _dim(d) -> sympy.Expr:
    return sympy.Integer(d) if isinstance(d, int) else sym_expr(d)


def cexpr(e) -> str:
    """C for a size expression (integers, the program's size symbols as ``d_<name>``, + and *)."""
    e = sympy.sympify(e)
    if e.is_Integer:
        return str(int(e)) + ("L" if abs(int(e)) >= 1 << 31 else "")
    if e.is_Symbol:
        return f"d_{e.name}"
    if e.is_Add:
        return "(" + " + ".join(cexpr(a) for a in e.args) + ")"
    if e.is_Mul:
        return "(" + " * ".join(cexpr(a) for a in e.args) + ")"
    if e.is_Pow and e.exp.is_Integer and 0 < int(e.exp) <= 8:
        return "(" + " * ".join([cexpr(e.base)] * int(e.exp)) + ")"
    raise Unsupported(f"size expression {e} has no C form here")


def _eq(a, b) -> bool:
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def _contiguous_strides(shape) -> tuple:
    out, acc = [], sympy.Integer(1)
    for d in reversed(shape):
        out.append(acc)
        acc = acc * d
    return tuple(reversed(out))


@dataclass
class View:
    """A tensor as the generated code sees it: base pointer name, element type, shape, strides and offset
    (elements; sympy expressions in the program's size symbols)."""

    buf: str
    dtype: DType
    shape: tuple
    strides: tuple
    offset: sympy.Expr = field(default_factory=lambda: sympy.Integer(0))

    def ptr(self) -> str:
        return self.buf if self.offset == 0 else f"({self.buf} + {cexpr(self.offset)})"

    def contiguous(self) -> bool:
        """Row-major without gaps (size-1 dimensions ignored)."""
        acc = sympy.Integer(1)
        for d, s in reversed(list(zip(self.shape, self.strides))):
            if d == 1:
                continue
            if not _eq(s, acc):
                return False
            acc = acc * d
        return True


@dataclass
class Buffer:
    """An intermediate in the arena (or a program output, written where the caller's tensor is)."""

    name: str
    dtype: DType
    numel: sympy.Expr
    first: int  # index of the op that writes it
    last: int  # index of the last op that reads it
    output: int | None = None  # program output index: not in the arena
    offset: dict = field(default_factory=dict)  # monomial -> byte coefficient (MemoryPlan)
    values: list = field(default_factory=list)  # IR values that live here (for the plan's report)


def _coeffs(e: sympy.Expr, syms: list) -> dict:
    """A size polynomial as {monomial exponents: coefficient}; Unsupported unless it is a polynomial with
    non-negative integer coefficients (so that coefficient-wise order implies order for every size)."""
    e = sympy.expand(e)
    if not syms:
        if not e.is_Integer or e < 0:
            raise Unsupported(f"buffer size {e}")
        return {(): int(e)}
    try:
        poly = sympy.Poly(e, *syms)
    except sympy.PolynomialError:
        raise Unsupported(f"buffer size {e} is not a polynomial in {syms}") from None
    out = {}
    for mono, c in poly.terms():
        if not c.is_Integer or c < 0:
            raise Unsupported(f"buffer size {e} has a negative or fractional coefficient")
        out[mono] = int(c)
    return out


def _le(a: dict, b: dict) -> bool:
    return all(c <= b.get(m, 0) for m, c in a.items())


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, 0) + c
    return out


class MemoryPlan:
    """Offsets for the arena's buffers by liveness: a buffer is placed at the lowest candidate offset (0,
    or the end of a buffer live at the same time) where it lies coefficient-wise below or above every
    buffer whose lifetime it overlaps, so the buffers never overlap for any value of the sizes. Sizes
    are rounded up to ``ALIGN`` bytes per coefficient."""

    def __init__(self, buffers: list[Buffer], syms: list):
        self.syms = syms
        self.buffers = [b for b in buffers if b.output is None]
        placed: list[tuple[Buffer, dict, dict]] = []
        for b in sorted(self.buffers, key=lambda b: b.first):
            size = {m: -(-c * _ITEMSIZE[b.dtype] // ALIGN) * ALIGN for m, c in _coeffs(b.numel, syms).items()}
            live = [(p, s, e) for p, s, e in placed if p.first <= b.last and b.first <= p.last]
            cands = sorted([{}] + [e for _, _, e in live], key=lambda c: sum(c.values()))
            for cand in cands:
                end = _add(cand, size)
                if all(_le(end, s) or _le(e, cand) for _, s, e in live):
                    b.offset = cand
                    placed.append((b, cand, end))
                    break
        total: dict = {}
        for _, _, e in placed:
            for m, c in e.items():
                total[m] = max(total.get(m, 0), c)
        self.total = total
        self.unshared = {}
        for b in self.buffers:
            self.unshared = _add(self.unshared, {m: -(-c * _ITEMSIZE[b.dtype] // ALIGN) * ALIGN
                                                 for m, c in _coeffs(b.numel, syms).items()})

    def expr(self, coeffs: dict) -> sympy.Expr:
        out = sympy.Integer(0)
        for mono, c in coeffs.items():
            term = sympy.Integer(c)
            for s, k in zip(self.syms, mono):
                term = term * s ** k
            out = out + term
        return out

    def bytes(self, env: dict[str, int]) -> int:
        return int(self.expr(self.total).subs({s: env[s.name] for s in self.syms}))

    def report(self, env: dict[str, int]) -> str:
        """Peak bytes for sizes ``env``, against every buffer apart, and which values share a buffer."""
        sub = {s: env.get(s.name, 1) for s in self.syms}
        lines = [(f"arena: {int(self.expr(self.total).subs(sub))} bytes at {dict(sorted(env.items()))} "
                  f"({self.expr(self.total)} bytes), {len(self.buffers)} buffers, "
                  f"{int(self.expr(self.unshared).subs(sub))} bytes if none shared")]
        by_offset: dict = {}
        for b in self.buffers:
            by_offset.setdefault(self.expr(b.offset), []).append(b)
        for off, bs in sorted(by_offset.items(), key=lambda kv: int(kv[0].subs(sub))):
            names = ", ".join(f"{b.name} ({'/'.join(b.values)}: ops {b.first}-{b.last})" for b in bs)
            lines.append(f"  @{off}: {names}")
        return "\n".join(lines)


@dataclass
class StepSource:
    """A generated step: its C source, the weights it binds ((weight name, form) per pointer slot), its
    size symbols and where each is read ((arg, dim)), the memory plan, outputs and error messages."""

    program: str
    source: str  # the C function (program_source() adds what every function of a program shares)
    fname: str
    weight_slots: list
    sym_names: list
    sym_args: list
    plan: MemoryPlan
    outputs: list  # per output: ("buffer", shape dims) or ("arg", index)
    errors: list  # error code - 2 -> message
    written_args: set


class _Gen:
    """Generates the C of ``ops`` (a run of ``program``'s ops) reading ``inputs`` (values made outside the
    run: the program's arguments, or results of ops the interpreter runs) and producing ``outputs``."""

    def __init__(self, program: Program, weights: dict, ops: list[Op], inputs: list[Value], outputs: list[Value],
                 label: str, config: dict | None = None):
        self.config = variants.resolve(config)
        self.p = program
        self.fname = "kiln_step" + "".join(c if c.isalnum() else "_" for c in label)
        self.ops = ops
        self.inputs = inputs
        self.out_values = outputs
        self.label = label
        self.weights = weights
        self.views: dict[int, View] = {}
        self.bufs: dict[str, Buffer] = {}
        self.body: list[str] = []
        self.wslots: dict[tuple[str, str], int] = {}
        self.errors: list[str] = []
        self.index = 0
        self.outputs = {id(v): k for k, v in enumerate(outputs)}
        self.written: set[int] = set()
        self.syms: dict[str, tuple[int, int]] = {}
        for j, a in enumerate(program.args):
            for k, d in enumerate(a.type.shape):
                if isinstance(d, str) and d.isidentifier():
                    self.syms.setdefault(d, (j, k))

    # -- values ------------------------------------------------------------------
    def view(self, v: Value) -> View:
        got = self.views.get(id(v))
        if got is None and v.owner is not None and v.owner.name == "kiln.weight":
            self.op(v.owner)
            got = self.views.get(id(v))
        if got is None:
            raise Unsupported(f"value {v.hint or v} has no C view")
        if got.buf.startswith("weight:"):  # a weight read as a tensor: its raw pointer
            t = got.dtype
            got = View(f"(({_CTYPE.get(t, 'void')} *){self.weight(v, 'raw')})", t, got.shape, got.strides, got.offset)
            self.views[id(v)] = got
        if got.buf in self.bufs:
            b = self.bufs[got.buf]
            b.last = max(b.last, self.index)
        return got

    def shape(self, v: Value) -> tuple:
        return tuple(_dim(d) for d in v.type.shape)

    def alloc(self, v: Value, swap: tuple[int, int] | None = None) -> View:
        """A fresh buffer for result ``v``: the caller's output tensor when ``v`` is a program output,
        else the arena; ``swap`` stores it with those two dimensions exchanged."""
        if v.type.dtype not in _CTYPE:
            raise Unsupported(f"dtype {v.type.dtype.value}")
        shape = self.shape(v)
        k = self.outputs.get(id(v))
        name = f"o{k}" if k is not None else f"t{len(self.bufs)}"
        if k is not None and name in self.bufs:  # returned twice: the second is a copy
            k, name = None, f"t{len(self.bufs)}"
        if swap is None or k is not None:
            strides = _contiguous_strides(shape)
        else:
            phys = list(shape)
            phys[swap[0]], phys[swap[1]] = phys[swap[1]], phys[swap[0]]
            strides = list(_contiguous_strides(phys))
            strides[swap[0]], strides[swap[1]] = strides[swap[1]], strides[swap[0]]
            strides = tuple(strides)
        numel = sympy.Integer(1)
        for d in shape:
            numel = numel * d
        self.bufs[name] = Buffer(name, v.type.dtype, numel, self.index, self.index, k,
                                 values=[f"{v.owner.name.removeprefix('kiln.')}@{self.index}"])
        view = View(name, v.type.dtype, shape, strides)
        self.views[id(v)] = view
        return view

    def transposed_by_user(self, v: Value) -> tuple[int, int] | None:
        for user in v.users:
            if user.name == "kiln.transpose":
                r = v.type.rank
                return (user.attr("dim0") % r, user.attr("dim1") % r)
        return None

    def weight(self, v: Value, form: str) -> str:
        """The C name of a weight's pointer slot in ``form`` (raw, f32-panels, q8-panels, q4-panels,
        q4-scales, q4-offsets)."""
        op = v.owner
        if op is None or op.name != "kiln.weight":
            raise Unsupported("a linear or embedding whose weight is computed")
        key = (op.attrs["name"], form)
        if key not in self.wslots:
            self.wslots[key] = len(self.wslots)
        return f"W[{self.wslots[key]}]"

    def rows(self, x: View, what: str) -> tuple[View, sympy.Expr]:
        """x as contiguous rows [R, K] (copied when its strides are not that): (view, R)."""
        if not x.contiguous():
            x = self.copy(x)
        r = sympy.Integer(1)
        for d in x.shape[:-1]:
            r = r * d
        return x, r

    def copy(self, x: View, out: View | None = None) -> View:
        if out is None:
            name = f"t{len(self.bufs)}"
            numel = sympy.Integer(1)
            for d in x.shape:
                numel = numel * d
            self.bufs[name] = Buffer(name, x.dtype, numel, self.index, self.index, values=["copy"])
            out = View(name, x.dtype, x.shape, _contiguous_strides(x.shape))
        self.loop(out, [x], "a")
        return out

    def fail_code(self, message: str) -> int:
        self.errors.append(message)
        return len(self.errors) + 1

    def emit(self, line: str) -> None:
        self.body.append("    " + line)

    # -- loops ---------------------------------------------------------------------
    def loop(self, out: View, ins: list[View], expr: str) -> None:
        """``out = expr(a, b, ...)`` elementwise, the inputs broadcast to ``out``'s shape."""
        rank = len(out.shape)
        ops = [out]
        for x in ins:
            if len(x.shape) > rank:
                raise Unsupported("an elementwise operand of higher rank than its result")
            pad = rank - len(x.shape)
            shape = (sympy.Integer(1),) * pad + tuple(x.shape)
            strides = (sympy.Integer(0),) * pad + tuple(x.strides)
            strides = tuple(sympy.Integer(0) if d == 1 and not _eq(o, 1) else s
                            for d, o, s in zip(shape, out.shape, strides))
            ops.append(View(x.buf, x.dtype, out.shape, strides, x.offset))
        dims = [k for k in range(rank) if out.shape[k] != 1]
        merged: list[list[int]] = []
        for k in dims:  # merge k into the previous group when every operand walks them as one
            if merged and all(_eq(o.strides[merged[-1][-1]], o.strides[k] * out.shape[k]) for o in ops):
                merged[-1].append(k)
            else:
                merged.append([k])
        sizes = []
        for g in merged:
            s = sympy.Integer(1)
            for k in g:
                s = s * out.shape[k]
            sizes.append(s)
        strides = [[o.strides[g[-1]] for g in merged] for o in ops]
        idx = [f"i{n}" for n in range(len(merged))]
        total = sympy.Integer(1)
        for s in sizes:
            total = total * s
        ind = "    "
        lines = []
        if merged:
            lines.append(f"#pragma omp parallel for schedule(static) num_threads(threads) if ({cexpr(total)} > "
                         "KS_PARALLEL_WORK)")
        for n, s in enumerate(sizes):
            lines.append(ind * n + f"for (long {idx[n]} = 0; {idx[n]} < {cexpr(s)}; {idx[n]}++)")

        def at(o, st):
            terms = [f"{i} * {cexpr(s)}" if s != 1 else i for i, s in zip(idx, st) if s != 0]
            return f"{o.ptr()}[{' + '.join(terms) or '0'}]"

        body = expr
        names = ["a", "b", "c"]
        decl = " ".join(f"const {_CTYPE[o.dtype]} {names[j]} = {at(o, strides[j + 1])};" for j, o in enumerate(ops[1:]))
        lines.append(ind * len(sizes) + f"{{ {decl} {at(out, strides[0])} = {body}; }}")
        for line in lines:
            self.emit(line)

    # -- ops -----------------------------------------------------------------------
    def op(self, op: Op) -> None:
        name = op.name
        short = name.removeprefix("kiln.")
        self.emit(f"/* op {self.index}: {name} */")
        if name == "kiln.weight":
            w = self.weights.get(op.attrs["name"])
            if w is None:
                raise Unsupported(f"weight {op.attrs['name']} is missing")
            shape = self.shape(op.result)  # its pointer slot is taken when something reads it raw (view())
            self.views[id(op.result)] = View(f"weight:{op.attrs['name']}", op.result.type.dtype, shape,
                                             _contiguous_strides(shape))
        elif name in VIEW_OPS:
            self.views[id(op.result)] = self.view_op(op, self.view(op.operands[0]))
        elif short in UNARY_C or short == "gelu" or short in BINARY_C:
            self.elementwise(op, short)
        elif name in ("kiln.rms_norm", "kiln.layer_norm"):
            self.norm(op)
        elif name == "kiln.linear":
            self.linear(op)
        elif name == "kiln.qlinear":
            self.qlinear(op)
        elif name == "kiln.embedding":
            self.embedding(op)
        elif name == "kiln.qembedding":
            self.qembedding(op)
        elif name == "kiln.gather":
            self.gather(op)
        elif name in ("kiln.rope_cos", "kiln.rope_sin"):
            self.rope_table(op)
        elif name == "kiln.rope":
            self.rope(op)
        elif name in ("kiln.cache_write", "kiln.cache_write_q8"):
            self.cache_write(op)
        elif name in ("kiln.cache_attention", "kiln.cache_attention_q8"):
            self.cache_attention(op)
        elif name in ("kiln.cache_tree_attention", "kiln.cache_tree_attention_q8"):
            self.tree_attention(op)
        elif name == "kiln.draft_pick":
            self.draft_pick(op)
        elif name == "kiln.chain_tree":
            self.chain_tree(op)
        elif name == "kiln.tree_accept":
            self.tree_accept(op)
        elif name == "kiln.cache_commit":
            self.cache_commit(op)
        else:
            raise Unsupported(f"op {name}")

    def view_op(self, op: Op, x: View) -> View:
        shape, strides, offset = list(x.shape), list(x.strides), x.offset
        r = len(shape)
        if op.name == "kiln.transpose":
            a, b = op.attr("dim0") % r, op.attr("dim1") % r
            shape[a], shape[b] = shape[b], shape[a]
            strides[a], strides[b] = strides[b], strides[a]
        elif op.name == "kiln.permute":
            dims = [d % r for d in op.attr("dims")]
            shape, strides = [shape[d] for d in dims], [strides[d] for d in dims]
        elif op.name == "kiln.slice":
            d, start, step = op.attr("dim") % r, op.attr("start"), op.attr("step")
            if start < 0 or step < 1:
                raise Unsupported("a slice from the end or with a negative step")
            offset = offset + start * strides[d]
            shape[d] = self.shape(op.result)[d]
            strides[d] = strides[d] * step
        elif op.name == "kiln.unsqueeze":
            d = op.attr("dim") % (r + 1)
            shape.insert(d, sympy.Integer(1))
            strides.insert(d, sympy.Integer(0))
        elif op.name == "kiln.squeeze":
            d = op.attr("dim") % r
            del shape[d], strides[d]
        elif op.name == "kiln.expand":
            new = self.shape(op.result)
            pad = len(new) - r
            strides = [sympy.Integer(0)] * pad + strides
            shape = [sympy.Integer(1)] * pad + shape
            strides = [sympy.Integer(0) if shape[k] == 1 and new[k] != 1 else strides[k] for k in range(len(new))]
            shape = list(new)
        else:  # reshape
            new = self.shape(op.result)
            st = _reshape_strides(shape, strides, new)
            if st is None:
                x = self.copy(x)
                st = _reshape_strides(list(x.shape), list(x.strides), new)
                offset = x.offset
            return View(x.buf, x.dtype, tuple(new), tuple(st), offset)
        return View(x.buf, x.dtype, tuple(shape), tuple(strides), offset)

    def elementwise(self, op: Op, short: str) -> None:
        if not native_op(op):
            raise Unsupported(f"kiln.{short} on {op.result.type.dtype.value}")
        ins = [self.view(v) for v in op.operands]
        if short in BINARY_C:
            expr = BINARY_C[short]
            if len(ins) == 1:
                k = op.attr("scalar")
                if op.result.type.dtype == DType.i64:
                    if not isinstance(k, int) or isinstance(k, bool):
                        raise Unsupported(f"kiln.{short} of int64 by {k!r}")
                    c = f"((long){k}L)"
                else:
                    if not math.isfinite(float(k)):
                        raise Unsupported(f"kiln.{short} by {k!r}")
                    c = f"((float){float(k)!r})"
                expr = expr.replace("b", c) if not op.attr("reverse") else BINARY_C[short].replace(
                    "a", "A").replace("b", "a").replace("A", c)
        else:
            expr = UNARY_C[short] if short != "gelu" else GELU_C.get(op.attr("approximate"))
            if expr is None:
                raise Unsupported(f"gelu approximate={op.attr('approximate')!r}")
        out = self.alloc(op.result, self.transposed_by_user(op.result))
        self.loop(out, ins, expr)

    def norm(self, op: Op) -> None:
        x = self.view(op.operands[0])
        d = x.shape[-1]
        if x.strides[-1] != 1:
            x = self.copy(x)
        lead = list(zip(x.shape[:-1], x.strides[:-1]))
        lead = [(s, st) for s, st in lead if s != 1]
        if len(lead) > 1 and not all(_eq(lead[k][1], lead[k + 1][1] * lead[k + 1][0]) for k in range(len(lead) - 1)):
            x = self.copy(x)
            lead = [(s, st) for s, st in zip(x.shape[:-1], x.strides[:-1]) if s != 1]
        rows = sympy.Integer(1)
        for s, _ in lead:
            rows = rows * s
        row_stride = lead[-1][1] if lead else d
        params = []
        for v in op.operands[1:]:
            w = self.view(v)
            if not w.contiguous() or w.shape != (d,):
                raise Unsupported(f"{op.name} with a weight that is not a [D] vector")
            params.append(w.ptr())
        out = self.alloc(op.result)
        eps = f"{float(op.attr('eps'))!r}f"
        if op.name == "kiln.rms_norm":
            self.emit(f"ks_rms_norm({x.ptr()}, {cexpr(row_stride)}, {params[0]}, {out.ptr()}, {cexpr(rows)}, "
                      f"{cexpr(d)}, {eps}, threads);")
        else:
            w = params[0] if len(params) > 0 else "NULL"
            b = params[1] if len(params) > 1 else "NULL"
            self.emit(f"ks_layer_norm({x.ptr()}, {cexpr(row_stride)}, {w}, {b}, {out.ptr()}, {cexpr(rows)}, "
                      f"{cexpr(d)}, {eps}, threads);")

    def threads(self, rows, n: int, k: int) -> str:
        """C for a linear's thread count under the ``linear`` configuration (kiln/codegen/variants.py)."""
        c = self.config["linear"]
        if c["threads"] == 1:
            return "1"
        least = c["min_parallel_macs"]
        if not least or n * k >= least:
            return "threads"
        return f"({cexpr(rows)} * {n * k}L >= {least}L ? threads : 1)"

    def bias(self, v: Value | None, n) -> str:
        if v is None:
            return "NULL"
        b = self.view(v)
        if b.dtype != DType.f32 or not b.contiguous() or len(b.shape) != 1 or not _eq(b.shape[0], n):
            raise Unsupported("a linear bias that is not a float32 [N] vector")
        return b.ptr()

    def linear(self, op: Op) -> None:
        xv, wv = op.operands[0], op.operands[1]
        x = self.view(xv)
        if x.dtype != DType.f32 or wv.type.dtype != DType.f32:
            raise Unsupported("a linear that is not float32")
        n, k = (int(d) for d in wv.type.shape)
        x, rows = self.rows(x, "linear")
        b = self.bias(op.operands[2] if len(op.operands) > 2 else None, n)
        out = self.alloc(op.result)
        self.emit(f"lin_f32({x.ptr()}, (const float *){self.weight(wv, 'f32-panels')}, {b}, {out.ptr()}, "
                  f"{cexpr(rows)}, {n}, {k}, {self.threads(rows, n, k)});")

    def qlinear(self, op: Op) -> None:
        fmt, g, sym = op.attr("format"), op.attr("group_size"), op.attr("symmetric")
        q, s, off, rest = split_quant_operands(list(op.operands[1:]), sym, fmt)
        x = self.view(op.operands[0])
        if x.dtype != DType.f32:
            raise Unsupported("a quantized linear of non-float32 activations")
        x, rows = self.rows(x, "qlinear")
        out = self.alloc(op.result)
        n = int(op.result.type.shape[-1])
        b = self.bias(rest[0] if rest else None, n)
        if fmt == "int8":
            k = int(q.type.shape[1])
            sv = self.view(s)
            self.emit(f"lin_q8({x.ptr()}, (const signed char *){self.weight(q, 'q8-panels')}, {sv.ptr()}, {b}, "
                      f"{out.ptr()}, {cexpr(rows)}, {n}, {k}, {self.threads(rows, n, k)});")
        elif fmt == "int4":
            k = 2 * int(q.type.shape[1])
            offp = f"(const _Float16 *){self.weight(q, 'q4-offsets')}" if off is not None else "NULL"
            self.emit(f"lin_q4({x.ptr()}, (const unsigned char *){self.weight(q, 'q4-panels')}, "
                      f"(const _Float16 *){self.weight(q, 'q4-scales')}, {offp}, {b}, {out.ptr()}, {cexpr(rows)}, "
                      f"{n}, {k}, {g}, {self.threads(rows, n, k)});")
        else:
            raise Unsupported(f"kiln.qlinear format {fmt}")

    def ids(self, v: Value) -> tuple[View, sympy.Expr]:
        ids = self.view(v)
        if ids.dtype != DType.i64:
            raise Unsupported("token ids that are not int64")
        if not ids.contiguous():
            ids = self.copy(ids)
        n = sympy.Integer(1)
        for d in ids.shape:
            n = n * d
        return ids, n

    def embedding(self, op: Op) -> None:
        w = self.view(op.operands[0])
        if w.dtype != DType.f32 or len(w.shape) != 2 or not w.contiguous():
            raise Unsupported("an embedding table that is not a float32 [V, D] weight")
        ids, n = self.ids(op.operands[1])
        out = self.alloc(op.result)
        code = self.fail_code(f"token id out of range for the embedding table of {int(w.shape[0])} rows")
        self.emit(f"if ((bad = ks_rows({w.ptr()}, {cexpr(w.shape[0])}, {cexpr(w.shape[1])}, {ids.ptr()}, "
                  f"{cexpr(n)}, {out.ptr()}))) {{ info[1] = bad - 1; return {code}; }}")

    def qembedding(self, op: Op) -> None:
        fmt, g, sym = op.attr("format"), op.attr("group_size"), op.attr("symmetric")
        q, s, off, _ = split_quant_operands(list(op.operands[:-1]), sym, fmt)
        ids, n = self.ids(op.operands[-1])
        qv, sv = self.view(q), self.view(s)
        ov = self.view(off) if off is not None else None
        if not (qv.contiguous() and sv.contiguous() and (ov is None or ov.contiguous())):
            raise Unsupported("a quantized embedding table that is not contiguous")
        v, cols = int(q.type.shape[0]), int(q.type.shape[1])
        out = self.alloc(op.result)
        code = self.fail_code(f"token id out of range for the embedding table of {v} rows")
        self.emit(f"for (long i = 0; i < {cexpr(n)}; i++) if ({ids.ptr()}[i] < 0 || {ids.ptr()}[i] >= {v}) "
                  f"{{ info[1] = i; return {code}; }}")
        if fmt == "int8":
            self.emit(f"for (long i = 0; i < {cexpr(n)}; i++) dq_i8({qv.ptr()} + {ids.ptr()}[i] * {cols}, "
                      f"{sv.ptr()} + {ids.ptr()}[i], {out.ptr()} + i * {cols}, 1, {cols}, 1);")
        elif fmt == "int4":
            groups = int(s.type.shape[1])
            o = f"{ov.ptr()} + {ids.ptr()}[i] * {groups}" if ov is not None else "NULL"
            self.emit(f"for (long i = 0; i < {cexpr(n)}; i++) dq_i4({qv.ptr()} + {ids.ptr()}[i] * {cols}, "
                      f"{sv.ptr()} + {ids.ptr()}[i] * {groups}, {o}, {out.ptr()} + i * {2 * cols}, 1, {2 * cols}, "
                      f"{g}, 1);")
        else:
            raise Unsupported(f"kiln.qembedding format {fmt}")

    def gather(self, op: Op) -> None:
        x = self.view(op.operands[0])
        idx, k = self.ids(op.operands[1])
        d = op.attr("dim") % len(x.shape)
        if any(s != 1 for s in x.shape[:d]) or x.dtype != DType.f32:
            raise Unsupported("a gather along a dimension with larger ones before it")
        inner = View(x.buf, x.dtype, x.shape[d + 1:], x.strides[d + 1:], x.offset)
        if not inner.contiguous() or not x.contiguous():
            x = self.copy(x)
        width = sympy.Integer(1)
        for s in x.shape[d + 1:]:
            width = width * s
        out = self.alloc(op.result)
        code = self.fail_code(f"gather index out of range for a dimension of {x.shape[d]}")
        self.emit(f"if ((bad = ks_rows({x.ptr()}, {cexpr(x.shape[d])}, {cexpr(width)}, {idx.ptr()}, {cexpr(k)}, "
                  f"{out.ptr()}))) {{ info[1] = bad - 1; return {code}; }}")

    def rope_table(self, op: Op) -> None:
        pos, n = self.ids(op.operands[0])
        inv = self.view(op.operands[1])
        if inv.dtype != DType.f32 or not inv.contiguous():
            raise Unsupported("rotary frequencies that are not a float32 vector")
        out = self.alloc(op.result)
        is_sin = int(op.name == "kiln.rope_sin")
        self.emit(f"ks_rope_table({pos.ptr()}, {cexpr(n)}, {inv.ptr()}, {cexpr(inv.shape[0])}, "
                  f"{float(op.attr('scale'))!r}f, {is_sin}, {out.ptr()});")

    def rope(self, op: Op) -> None:
        x = self.view(op.operands[0])
        cs, sn = (self.view(v) for v in op.operands[1:])
        if x.dtype != DType.f32 or x.strides[-1] != 1:
            x = self.copy(x)
        b, h, t, d = x.shape
        for tab in (cs, sn):
            if len(tab.shape) != 3 or not View(tab.buf, tab.dtype, tab.shape[1:], tab.strides[1:]).contiguous() or \
                    tab.strides != cs.strides or not (tab.shape[0] == 1 or _eq(tab.shape[0], b)):
                raise Unsupported("rotary tables whose rows are not contiguous")
        cb = 0 if cs.shape[0] == 1 else cs.strides[0]
        out = self.alloc(op.result, self.transposed_by_user(op.result))
        self.emit(f"ks_rope({x.ptr()}, {cexpr(x.strides[0])}, {cexpr(x.strides[1])}, {cexpr(x.strides[2])}, "
                  f"{cs.ptr()}, {sn.ptr()}, {cexpr(cb)}, {out.ptr()}, {cexpr(out.strides[0])}, {cexpr(out.strides[1])}, "
                  f"{cexpr(out.strides[2])}, {cexpr(b)}, {cexpr(h)}, {cexpr(t)}, {cexpr(d)});")

    def cache_args(self, op: Op, cache: View) -> str:
        pos, _ = self.ids(op.operand("pos"))
        seq, _ = self.ids(op.operand("seq"))
        table = self.view(op.operand("table"))
        if table.dtype != DType.i64 or not table.contiguous() or not cache.contiguous() or \
                cache.dtype not in (DType.f32, DType.i8):
            raise Unsupported(f"{op.name} over a cache or table that is not contiguous (or not float32 / int8)")
        if not cache.buf.startswith("a"):
            raise Unsupported(f"{op.name} over a cache that is not an input")
        return f"{pos.ptr()}, {seq.ptr()}, {table.ptr()}, {cexpr(table.shape[0])}, {cexpr(table.shape[1])}"

    def cache_write(self, op: Op) -> None:
        """kiln.cache_write, and kiln.cache_write_q8 (an int8 cache and its scales: both results)."""
        q8 = op.name == "kiln.cache_write_q8"
        cache = self.view(op.operands[0])
        scales = self.view(op.operands[1]) if q8 else None
        x = self.view(op.operand("x"))
        if x.strides[-1] != 1 or x.dtype != DType.f32:
            x = self.copy(x)
        tail = self.cache_args(op, cache)
        if cache.dtype != (DType.i8 if q8 else DType.f32) or (q8 and not (
                scales.buf.startswith("a") and scales.contiguous() and scales.dtype == DType.f32)):
            raise Unsupported(f"{op.name} over a cache of dtype {cache.dtype.value}")
        _, nb, kvh, bs, d = cache.shape
        n = x.shape[2]
        self.written.add(int(cache.buf[1:]))
        code = self.fail_code("a token's (sequence, position) is outside the block table or the cache pool")
        kernel, target = ("ks_cache_write_q8", f"{cache.ptr()}, {scales.ptr()}") if q8 else ("ks_cache_write", cache.ptr())
        self.emit(f"if ((bad = {kernel}({target}, {cexpr(nb)}, {cexpr(kvh)}, {cexpr(bs)}, {cexpr(d)}, "
                  f"{op.attr('layer')}, {x.ptr()}, {cexpr(x.strides[1])}, {cexpr(x.strides[2])}, {tail}, {cexpr(n)}))) "
                  f"{{ info[1] = bad - 1; return {code}; }}")
        self.views[id(op.results[0])] = cache
        if q8:
            self.written.add(int(scales.buf[1:]))
            self.views[id(op.results[1])] = scales

    def caches(self, op: Op) -> tuple[View, str, str]:
        """The K cache's view and the K and V caches as the attention kernels take them (``ks_cache``
        literals: float32 rows, or int8 rows and their scales for the ``_q8`` ops)."""
        if op.name.endswith("_q8"):
            kc, ks, vc, vs = (self.view(op.operands[i]) for i in (1, 2, 3, 4))
            for c, sc in ((kc, ks), (vc, vs)):
                if c.dtype != DType.i8 or sc.dtype != DType.f32 or not (sc.contiguous() and sc.buf.startswith("a")):
                    raise Unsupported(f"{op.name} over caches that are not int8 with float32 scales")
            return kc, f"(ks_cache){{NULL, {kc.ptr()}, {ks.ptr()}}}", f"(ks_cache){{NULL, {vc.ptr()}, {vs.ptr()}}}"
        kc, vc = self.view(op.operands[1]), self.view(op.operands[2])
        if kc.dtype != DType.f32 or vc.dtype != DType.f32:
            raise Unsupported(f"{op.name} over caches that are not float32")
        return kc, f"(ks_cache){{{kc.ptr()}, NULL, NULL}}", f"(ks_cache){{{vc.ptr()}, NULL, NULL}}"

    def attention(self, op: Op, kernel: str, middle: str, what: str) -> None:
        """A cache attention kernel's call: q (rows contiguous) and the caches, ``middle`` (its addressing
        arguments), then sizes, scale and the output, written in its user's order."""
        q = self.view(op.operands[0])
        kc, kcache, vcache = self.caches(op)
        if q.strides[-1] != 1 or q.dtype != DType.f32:
            q = self.copy(q)
        _, nb, kvh, bs, d = kc.shape
        _, h, n, _ = q.shape
        out = self.alloc(op.result, self.transposed_by_user(op.result))
        code = self.fail_code(f"{what} outside the block table or the cache pool")
        self.emit(f"if ((bad = {kernel}({q.ptr()}, {cexpr(q.strides[1])}, {cexpr(q.strides[2])}, "
                  f"{kcache}, {vcache}, {cexpr(nb)}, {cexpr(kvh)}, {cexpr(bs)}, {cexpr(d)}, {op.attr('layer')}, "
                  f"{middle.replace('@N', cexpr(n))}, {cexpr(h)}, {float(op.attr('scale'))!r}f, {out.ptr()}, "
                  f"{cexpr(out.strides[1])}, {cexpr(out.strides[2])}, threads))) {{ info[1] = bad - 1; return {code}; }}")

    def cache_attention(self, op: Op) -> None:
        q8 = op.name.endswith("_q8")
        tail = self.cache_args(op, self.view(op.operands[1]))
        self.cache_args(op, self.view(op.operands[3 if q8 else 2]))
        self.attention(op, "ks_cache_attention", f"{tail}, @N", "a query's (sequence, position) reads")

    def tree_attention(self, op: Op) -> None:
        q8 = op.name.endswith("_q8")
        kc, vc = self.view(op.operands[1]), self.view(op.operands[3 if q8 else 2])
        mask = self.view(op.operand("mask"))
        if mask.dtype != DType.i1 or not mask.contiguous():
            raise Unsupported("a tree mask that is not a contiguous bool [N, N]")
        slot, _ = self.ids(op.operand("slot"))
        seq, _ = self.ids(op.operand("seq"))
        table = self.view(op.operand("table"))
        for c in (kc, vc):
            if not c.buf.startswith("a") or not c.contiguous() or not table.contiguous():
                raise Unsupported(f"{op.name} over a cache that is not a contiguous input")
        self.attention(op, "ks_tree_attention", f"{slot.ptr()}, {seq.ptr()}, {table.ptr()}, {cexpr(table.shape[0])}, "
                       f"{cexpr(table.shape[1])}, @N, {mask.ptr()}", "a tree node's (sequence, slot) reads")

    def dense(self, v: Value, dtype: DType) -> View:
        x = self.view(v)
        if x.dtype != dtype:
            raise Unsupported(f"an operand of dtype {x.dtype.value} where {dtype.value} is expected")
        return x if x.contiguous() else self.copy(x)

    def draft_pick(self, op: Op) -> None:
        logits = self.dense(op.operands[0], DType.f32)
        _, b, v = logits.shape
        tok, q = self.alloc(op.results[0]), self.alloc(op.results[1])
        self.emit(f"ks_pick_greedy({logits.ptr()}, {cexpr(b)}, {cexpr(v)}, {tok.ptr()}, {q.ptr()});")

    def chain_tree(self, op: Op) -> None:
        k = op.attr("k")
        roots, rpos, seqs = (self.dense(v, DType.i64) for v in op.operands[:3])
        toks = [self.dense(v, DType.i64) for v in op.operands[3:3 + k]]
        qs = [self.dense(v, DType.f32) for v in op.operands[3 + k:3 + 2 * k]]
        outs = [self.alloc(r) for r in op.results]
        b, v = roots.shape[0], qs[0].shape[1]
        self.emit(f"{{ const long *tk[] = {{{', '.join(t.ptr() for t in toks)}}}; "
                  f"const float *qs[] = {{{', '.join(q.ptr() for q in qs)}}};")
        self.emit(f"  ks_chain_tree({roots.ptr()}, {rpos.ptr()}, {seqs.ptr()}, tk, qs, {cexpr(b)}, {k}, {cexpr(v)}, "
                  f"{', '.join(o.ptr() for o in outs)}); }}")

    def tree_accept(self, op: Op) -> None:
        logits = self.dense(op.operands[0], DType.f32)
        tokens, parent, seq = (self.dense(v, DType.i64) for v in op.operands[1:4])
        _, n, v = logits.shape
        acc, nxt = self.alloc(op.results[0]), self.alloc(op.results[1])
        code = self.fail_code("a tree node's parent is not an earlier node of its sequence")
        self.emit(f"if ((bad = ks_accept_greedy({logits.ptr()}, {cexpr(v)}, {tokens.ptr()}, {parent.ptr()}, "
                  f"{seq.ptr()}, {cexpr(n)}, {acc.ptr()}, {nxt.ptr()}))) {{ info[1] = bad - 1; return {code}; }}")

    def cache_commit(self, op: Op) -> None:
        cache = self.view(op.operands[0])  # float32 or int8 rows [L, NB, KVH, BS, D], or int8 scales [L, NB, KVH, BS]
        if len(cache.shape) not in (4, 5) or cache.dtype not in (DType.f32, DType.i8) or \
                not cache.buf.startswith("a") or not cache.contiguous():
            raise Unsupported("kiln.cache_commit of a cache that is not a contiguous input")
        acc, slot, pos, seq, table = (self.dense(v, DType.i64) for v in op.operands[1:6])
        layers, nb, kvh, bs = cache.shape[:4]
        d = (cache.shape[4] if len(cache.shape) == 5 else 1) * _ITEMSIZE[cache.dtype]  # bytes per row
        self.written.add(int(cache.buf[1:]))
        code = self.fail_code("an accepted node's slot or position is outside the block table or the cache pool")
        self.emit(f"if ((bad = ks_cache_commit((char *){cache.ptr()}, {cexpr(layers)}, {cexpr(nb)}, {cexpr(kvh)}, {cexpr(bs)}, "
                  f"{cexpr(d)}, {acc.ptr()}, {slot.ptr()}, {pos.ptr()}, {seq.ptr()}, {table.ptr()}, "
                  f"{cexpr(table.shape[0])}, {cexpr(table.shape[1])}, {cexpr(acc.shape[0])}))) "
                  f"{{ info[1] = bad - 1; return {code}; }}")
        self.views[id(op.result)] = cache

    # -- the whole program -------------------------------------------------------------
    def generate(self) -> StepSource:
        p = self.p
        for j, a in enumerate(self.inputs):
            if a.type.dtype not in _CTYPE:
                raise Unsupported(f"input {a.hint or j} of dtype {a.type.dtype.value}")
            shape = self.shape(a)
            self.views[id(a)] = View(f"(({_CTYPE[a.type.dtype]} *)A[{j}])", a.type.dtype, shape,
                                     _contiguous_strides(shape))
            self.views[id(a)].buf = f"a{j}"
        outputs: list = []
        for index, op in enumerate(self.ops):
            self.index = index
            if op.name == "kiln.return":
                raise Unsupported("a return inside a native run")
            self.op(op)
        self.index = len(self.ops)
        for k, v in enumerate(self.out_values):
            view = self.view(v)
            if view.buf == f"o{k}" and view.offset == 0 and view.contiguous():
                outputs.append(("buffer", v.type.shape))
            elif view.buf.startswith("a") and view.offset == 0 and view.contiguous() and \
                    tuple(view.shape) == self.shape(self.inputs[int(view.buf[1:])]):
                outputs.append(("arg", int(view.buf[1:])))
            else:
                if view.buf.startswith("weight:") or view.buf.startswith("(("):
                    raise Unsupported("a weight passed out of a native run")
                self.bufs[f"o{k}"] = Buffer(f"o{k}", v.type.dtype, sympy.Integer(0), self.index, self.index, k)
                shape = self.shape(v)
                self.copy(view, View(f"o{k}", v.type.dtype, shape, _contiguous_strides(shape)))
                outputs.append(("buffer", v.type.shape))
        syms = sorted({s for b in self.bufs.values() for s in sympy.sympify(b.numel).free_symbols},
                      key=lambda s: s.name)
        for s in syms:
            if s.name not in self.syms:
                raise Unsupported(f"size {s.name} is not the size of any input")
        plan = MemoryPlan(list(self.bufs.values()), syms)
        return StepSource(f"{p.name}{self.label}", self.source(plan), self.fname, list(self.wslots), sorted(self.syms),
                          [self.syms[s] for s in sorted(self.syms)], plan, outputs, self.errors, self.written)

    def source(self, plan: MemoryPlan) -> str:
        names = sorted(self.syms)
        sig = SIGNATURE.replace("kiln_step", self.fname)
        out = [f"/* program {self.p.name!r}{self.label}: {len(self.ops)} ops */", f"{sig};", f"{sig} {{"]
        for i, s in enumerate(names):
            out.append(f"    const long d_{s} = dims[{i}]; (void)d_{s};")
        out.append(f"    const long need = {cexpr(plan.expr(plan.total))};")
        out.append("    if (need > info[0]) { info[0] = need; return 1; }")
        out.append("    long bad = 0; (void)bad; (void)arena; (void)W; (void)O; (void)A; (void)threads;")
        for b in self.bufs.values():
            ct = _CTYPE[b.dtype]
            if b.output is not None:
                out.append(f"    {ct} *{b.name} = ({ct} *)O[{b.output}]; (void){b.name};")
            else:
                out.append(f"    {ct} *{b.name} = ({ct} *)(arena + {cexpr(plan.expr(b.offset))}); (void){b.name};")
        for j in range(len(self.inputs)):
            ct = _CTYPE[self.inputs[j].type.dtype]
            out.append(f"    {ct} *a{j} = ({ct} *)A[{j}]; (void)a{j};")
        out += self.body
        out += ["    return 0;", "}", ""]
        return "\n".join(out)


PRELUDE = """\
#include "kiln_step.h"

/* the linears and dequantization of kiln_native.c: its functions' addresses, bound once per load */
static ks_linear_f32_fn lin_f32;
static ks_linear_q8_fn lin_q8;
static ks_linear_q4_fn lin_q4;
static ks_dequant_i8_fn dq_i8;
static ks_dequant_i4_fn dq_i4;

void kiln_step_bind(void *f32, void *q8, void *q4, void *d8, void *d4);
void kiln_step_bind(void *f32, void *q8, void *q4, void *d8, void *d4) {
    lin_f32 = (ks_linear_f32_fn)f32;
    lin_q8 = (ks_linear_q8_fn)q8;
    lin_q4 = (ks_linear_q4_fn)q4;
    dq_i8 = (ks_dequant_i8_fn)d8;
    dq_i4 = (ks_dequant_i4_fn)d4;
}

/* Each function below runs a run of the program's ops. A: the inputs' data; W: the weights' (bound once);
   arena: the intermediates (info[0] bytes); O: the outputs'; dims: the size symbols. Returns 0 when done;
   1 when the arena is too small (info[0] := the bytes needed); k >= 2: error k of the run's table (info[1]:
   the offending token). */
"""


def program_source(name: str, parts: list[str], config: dict | None = None) -> str:
    """One C file for a program: its configuration's constants (kiln/codegen/variants.py), the shared
    prelude, then its runs' functions (and comments on what runs in the interpreter between them)."""
    defines = variants.c_defines(variants.resolve(config))
    return "\n".join([f"/* kiln: program {name!r}, generated by kiln/codegen/cstep.py from the IR. */", *defines,
                      PRELUDE, *parts])


def _reshape_strides(shape: list, strides: list, new: tuple) -> list | None:
    """Strides that view (shape, strides) as shape ``new``, or None when no strides can (a copy is needed)."""
    old = [(d, s) for d, s in zip(shape, strides) if d != 1]
    out: list = []
    i = 0
    groups: list[tuple[list, list]] = []
    nd = [k for k in range(len(new)) if new[k] != 1]
    j = 0
    probe = {s: 1009 for e in list(shape) + list(new) for s in sympy.sympify(e).free_symbols}

    def val(e):
        return int(sympy.sympify(e).subs(probe))

    while i < len(old) or j < len(nd):
        go, gn = [old[i]] if i < len(old) else [], [nd[j]] if j < len(nd) else []
        if not go or not gn:
            return None
        i, j = i + 1, j + 1
        po, pn = go[0][0], new[gn[0]]
        while not _eq(po, pn):
            if val(po) < val(pn):
                if i >= len(old):
                    return None
                go.append(old[i])
                po = po * old[i][0]
                i += 1
            else:
                if j >= len(nd):
                    return None
                gn.append(nd[j])
                pn = pn * new[nd[j]]
                j += 1
        groups.append((go, gn))
    st: dict[int, sympy.Expr] = {}
    for go, gn in groups:
        for a in range(len(go) - 1):  # the old group must be one contiguous run
            if not _eq(go[a][1], go[a + 1][1] * go[a + 1][0]):
                return None
        acc = go[-1][1]
        for k in reversed(gn):
            st[k] = acc
            acc = acc * new[k]
    for k in range(len(new)):
        out.append(st.get(k, sympy.Integer(0)))
    return out


def runs(program: Program, greedy: bool = False) -> list[tuple[bool, list[Op]]]:
    """The program's ops (weights and the return left out) as maximal runs: (compiled?, ops)."""
    out: list[tuple[bool, list[Op]]] = []
    for op in program.ops:
        if op.name in ("kiln.weight", "kiln.return"):
            continue
        nat = native_op(op, greedy)
        if out and out[-1][0] == nat:
            out[-1][1].append(op)
        else:
            out.append((nat, [op]))
    return out


def _is_weight(v: Value) -> bool:
    return v.owner is not None and v.owner.name == "kiln.weight"


def boundaries(program: Program, ops: list[Op], later: set[int]) -> tuple[list[Value], list[Value]]:
    """(inputs, outputs) of a run: the values it reads that are made elsewhere (weights aside), and the
    values it makes that ``later`` (ids of values read after it, or returned) holds."""
    made = {id(r) for op in ops for r in op.results}
    ins: dict[int, Value] = {}
    for op in ops:
        for v in op.operands:
            if id(v) not in made and not _is_weight(v):
                ins.setdefault(id(v), v)
    outs = [r for op in ops for r in op.results if id(r) in later]
    return list(ins.values()), outs


def generate(program: Program, weights: dict, config: dict | None = None) -> list[StepSource]:
    """The C of each compiled run of ``program`` (raises ``Unsupported`` naming what it cannot compile)."""
    return [g for g, _, _ in _plan(program, weights, config=config) if g is not None]


def module_sources(module) -> dict[str, str]:
    """``{"<program>.c": its C}`` for every program with a compiled run (what ``kiln dump --kernels`` shows
    of a CPU artifact; the runtime regenerates it from the IR, never reads it back)."""
    out = {}
    for name, prog in module.programs.items():
        try:
            plan = _plan(prog, module.weights, greedy=any(op.name in GREEDY_OPS for op in prog.ops))
        except Unsupported as e:
            _log.debug("program %r is not compiled: %s", name, e)
            continue
        out[f"{name}.c"] = program_source(name, _texts(plan))
    return out


def _texts(plan) -> list[str]:
    return [gen.source if gen is not None else
            f"/* interpreted between the compiled runs: {', '.join(op.name for op in ops)} */\n"
            for gen, ops, _ in plan]


def memory_report(program: Program, weights: dict, env: dict[str, int]) -> str:
    """The memory plan of each compiled run of ``program`` at sizes ``env`` (``kiln dump --memory``)."""
    lines = []
    for gen in generate(program, weights):
        lines.append(f"// {gen.program}")
        lines.append(gen.plan.report(env))
    return "\n".join(lines)


def _plan(program: Program, weights: dict, greedy: bool = False, config: dict | None = None
          ) -> list[tuple[StepSource | None, list[Op], tuple]]:
    parts = runs(program, greedy)
    if not any(nat for nat, _ in parts):
        first = next((op.name for _, ops in parts for op in ops), "no ops")
        raise Unsupported(f"no op of program {program.name!r} compiles ({first})")
    out = []
    for r, (nat, ops) in enumerate(parts):
        later = {id(v) for _, later_ops in parts[r + 1:] for op in later_ops for v in op.operands}
        later |= {id(v) for v in program.outputs}
        ins, outs = boundaries(program, ops, later)
        if nat:
            label = (f", run {r}" if len(parts) > 1 else "") + (", greedy" if greedy else "")
            out.append((_Gen(program, weights, ops, ins, outs, label, config).generate(), ops, (ins, outs)))
        else:
            out.append((None, ops, (ins, outs)))
    return out


# -- building and running ------------------------------------------------------------------


_lock = threading.Lock()
_built: dict[str, ctypes.CDLL] = {}


def header() -> str:
    return importlib.resources.files("kiln.codegen").joinpath(native.CSRC, HEADER).read_text(encoding="utf-8")


def build(source: str, lib: native.NativeLibrary, fnames: list[str]) -> ctypes.CDLL:
    """Compile a program's generated C (``program_source``) for the kernel library ``lib``'s variant (cached
    by the hash of the source, the header, the flags and the compiler), bind its linears to ``lib``'s and
    type its functions ``fnames``."""
    cc = native._compiler()
    if cc is None:
        raise Unsupported("no C compiler")
    fl = ["-O2" if f == "-O3" else f for f in native.flags(lib.kiln_isa)]  # -O3 doubles the compile time for nothing
    hdr = header()
    key_src = {"step.c": source, HEADER: hdr}
    key = native.build_key(lib.kiln_isa, cc, key_src)
    with _lock:
        if key in _built:
            return _built[key]
        out = native.cache_dir() / "step" / key / "step.so"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                (Path(tmp) / HEADER).write_text(hdr, encoding="utf-8")
                (Path(tmp) / "step.c").write_text(source, encoding="utf-8")
                so = Path(tmp) / "step.so"
                r = subprocess.run([cc, *fl, "-I", tmp, str(Path(tmp) / "step.c"), "-o", str(so), "-lm"],
                                   capture_output=True, text=True, check=False)
                if r.returncode != 0:
                    lines = r.stderr.strip().splitlines() or ["unknown error"]
                    why = next((line for line in lines if "error" in line), lines[-1])
                    raise Unsupported(f"the generated step did not compile: {why[:300]}")
                os.replace(so, out)
        dll = ctypes.CDLL(str(out))
        addr = [ctypes.cast(getattr(lib, n), ctypes.c_void_p) for n in
                ("kiln_linear_packed", "kiln_qlinear_q8_panels", "kiln_qlinear_q4_panels", "kiln_dequant_i8",
                 "kiln_dequant_i4")]
        dll.kiln_step_bind.argtypes = [ctypes.c_void_p] * 5
        dll.kiln_step_bind.restype = None
        dll.kiln_step_bind(*addr)
        for f in fnames:
            fn = getattr(dll, f)
            fn.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int]
            fn.restype = ctypes.c_int
        _built[key] = dll
        return dll


def enabled() -> bool:
    """Whether runtimes compile their programs: ``KILN_NATIVE_STEP`` is not 0 and the native kernels are
    built, in a variant whose panel linears beat torch (``native.panels_fast``: not the portable build,
    whose 4-float panels lose to torch's GEMM; the interpreter then keeps torch's linears)."""
    return disabled_reason() is None


def disabled_reason() -> str | None:
    """Why runtimes do not compile their programs (one line), or None when they do."""
    if os.environ.get("KILN_NATIVE_STEP", "1") == "0":
        return "KILN_NATIVE_STEP=0"
    lib = native.library()
    if lib is None:
        return "the native kernels are off"
    if not native.panels_fast(lib):
        return f"the {lib.kiln_isa} build's {lib.vector_width}-float panels lose to torch's GEMM"
    return None


def _weight_tensor(weights: dict, name: str, form: str, program: Program, keep: list) -> int:
    """The data pointer of weight ``name`` in ``form`` (panels made here when the runtime did not)."""
    w = weights[name]
    if form == "raw":
        if isinstance(w, native.PackedWeight):
            raise Unsupported(f"weight {name} is held only in panels but read as a tensor")
        t = w.contiguous()
    elif form == "f32-panels":
        t = w if isinstance(w, native.PackedWeight) else native.packed(w.contiguous(), force=True)
        if t is None:
            raise Unsupported("float32 panels are unavailable")
    else:
        t = _quant_panels(weights, name, program, form)
    keep.append(t)
    return t.data_ptr()


def _quant_panels(weights: dict, name: str, program: Program, form: str) -> torch.Tensor:
    q = weights[name]
    if not isinstance(q, native.PackedWeight):
        op = next(o for o in program.walk("kiln.qlinear") if o.operands[1].owner.attrs.get("name") == name)
        attrs = {"format": op.attr("format"), "group_size": op.attr("group_size"), "symmetric": op.attr("symmetric")}
        _, s, off, _ = split_quant_operands(list(op.operands[1:]), attrs["symmetric"], attrs["format"])
        sw = weights[s.owner.attrs["name"]]
        ow = weights[off.owner.attrs["name"]] if off is not None else None
        q = native.quant_panels(q, sw, ow, attrs, force=True)
        if q is None:
            raise Unsupported(f"quantized weight {name} cannot be put in panels")
    if form in ("q8-panels", "q4-panels"):
        return q
    if form == "q4-scales":
        return q.scales_p
    if q.offsets_p is None:
        raise Unsupported(f"int4 weight {name} has no offsets")
    return q.offsets_p


class _CallState(threading.local):
    """What one call fills in, kept per thread: the pointer tables, the sizes, the status words and the
    arena (a runtime's programs may be called from several threads at once, as the interpreter could)."""

    def __init__(self, n_in: int, n_out: int, n_dims: int = 0):
        self.a = (ctypes.c_void_p * max(1, n_in))()
        self.o = (ctypes.c_void_p * max(1, n_out))()
        self.dims = (ctypes.c_long * max(1, n_dims))()
        self.info = (ctypes.c_long * 2)()
        self.arena = torch.empty(0, dtype=torch.uint8)


class _Compiled:
    """A compiled run: its library and the pointer tables it is called with."""

    def __init__(self, gen: StepSource, fn, ins: list[Value], outs: list[Value], weights: dict, program: Program):
        self.gen, self.fn = gen, fn
        self.ins = [id(v) for v in ins]
        self.hints = [v.hint or f"%{k}" for k, v in enumerate(ins)]
        self.outs = [id(v) for v in outs]
        self._keep: list = []
        ptrs = [_weight_tensor(weights, n, f, program, self._keep) for n, f in gen.weight_slots]
        self.w = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
        self.local = _CallState(len(ins), len(outs))  # per thread: a runtime may be called from several
        self.shapes = [None if kind == "arg" else [d if isinstance(d, int) else compile_dim(d) for d in spec]
                       for kind, spec in gen.outputs]
        self.dtypes = [TORCH_DTYPE[v.type.dtype] for v in outs]

    def run(self, vals: dict, env: dict, dims, name: str, poison: bool = False, timing: list | None = None) -> None:
        st = self.local
        ins = []
        for j, key in enumerate(self.ins):
            t = vals[key]
            if t.device.type != "cpu":
                raise ExecError(f"program {name!r}: input {self.hints[j]} is on {t.device}; the CPU target needs "
                                "CPU tensors")
            if not t.is_contiguous():
                if j in self.gen.written_args:
                    raise ExecError(f"program {name!r}: {self.hints[j]} is written in place and must be contiguous")
                t = t.contiguous()
            ins.append(t)
            st.a[j] = t.data_ptr()
        for k, (kind, spec) in enumerate(self.gen.outputs):
            if kind == "arg":
                vals[self.outs[k]] = ins[spec]
                continue
            t = torch.empty([d if isinstance(d, int) else d(env) for d in self.shapes[k]], dtype=self.dtypes[k])
            if poison:
                t.fill_(float("nan") if t.is_floating_point() else -7)
            vals[self.outs[k]] = t
            st.o[k] = t.data_ptr()
        rc = 1
        for _ in range(2):
            st.info[0] = st.arena.numel()
            if poison:  # every byte NaN (as float32): a read of what no kernel wrote shows in the results
                st.arena.fill_(255)
            t0 = time.perf_counter() if timing is not None else 0.0
            rc = self.fn(st.a, self.w, st.arena.data_ptr(), st.o, dims, st.info, torch.get_num_threads())
            if timing is not None:
                timing[0] += time.perf_counter() - t0
            if rc != 1:
                break
            st.arena = torch.empty(int(st.info[0]) + ALIGN, dtype=torch.uint8)
        if rc >= 2:
            raise ExecError(f"program {name!r}: {self.gen.errors[rc - 2]} (token {int(st.info[1])})")
        if rc:
            raise ExecError(f"program {name!r}: the native step failed (code {rc})")


class NativeStep:
    """A program compiled to C: ``outputs = step(*inputs)``, like ``CpuProgram``. Its runs of ops the
    generator takes are each one C call (a program made only of such ops is one call per step); the ops
    between them run in the interpreter. A program that draws random numbers (speculative decoding's draft
    pick and accept step) has two plans: calls whose ``sampling`` temperature is 0 take the greedy one,
    where those ops are compiled too (an argmax), and sampled calls the other, where torch draws them (built
    on the first such call). Raises ``Unsupported`` when no op of the program compiles, or a run cannot be
    generated or compiled."""

    def __init__(self, program: Program, weights: dict, config: dict | None = None):
        lib = native.library()
        if lib is None:
            raise Unsupported("the native kernels are off")
        self.config = variants.resolve(config)  # the kernels' tunable parameters (kiln/codegen/variants.py)
        self.program = program
        self.weights = weights
        self.lib = lib
        draws = any(op.name in GREEDY_OPS for op in program.ops)
        hints = [a.hint for a in program.args]
        self.sampling_arg = hints.index("sampling") if draws and "sampling" in hints else None
        self.plans: dict[bool, list] = {}
        self.sources: list[StepSource] = []
        self.greedy = self.sampling_arg is not None
        self.parts = self._build(self.greedy)  # the plan of the usual call
        self.sym_names = self.sources[0].sym_names
        self.local = _CallState(0, 0, len(self.sym_names))
        self._binder()
        self.out_ids = [id(v) for v in program.outputs]
        self.weight_outputs = {id(v): v.owner.attrs["name"] for v in program.outputs if _is_weight(v)}
        self.poison = False  # tests: fill the arena and the outputs with NaN before every call
        self.timing: list | None = None  # [seconds]: add up the time inside the C calls (benchmarks)
        self.native_ops = sum(len(ops) for nat, ops in runs(program, self.greedy) if nat)
        self.interpreted_ops = sum(len(ops) for nat, ops in runs(program, self.greedy) if not nat)

    def _binder(self) -> None:
        """What ``bind_inputs`` checks of a call's inputs, precomputed (it costs tens of microseconds a call,
        a tenth of a small model's step); any mismatch goes to ``bind_inputs`` itself, for its error."""
        from kiln.ir.types import free_symbols

        p = self.program
        self._types = [(TORCH_DTYPE.get(a.type.dtype), a.type.rank) for a in p.args]
        self._static, self._first, self._repeat, self._derived = [], {}, [], []
        for j, a in enumerate(p.args):
            for k, d in enumerate(a.type.shape):
                if isinstance(d, int):
                    self._static.append((j, k, d))
                elif d.isidentifier():
                    if d in self._first:
                        self._repeat.append((j, k, d))
                    else:
                        self._first[d] = (j, k)
        names = set(self._first)
        for j, a in enumerate(p.args):
            for k, d in enumerate(a.type.shape):
                if isinstance(d, str) and not d.isidentifier() and free_symbols(d) <= names:
                    self._derived.append((j, k, compile_dim(d)))

    def _bind(self, args) -> dict[str, int]:
        if len(args) == len(self._types) and all(
                isinstance(t, torch.Tensor) and t.dtype == dt and t.dim() == r for t, (dt, r) in zip(args, self._types)):
            env = {name: args[j].shape[k] for name, (j, k) in self._first.items()}
            if all(args[j].shape[k] == d for j, k, d in self._static) and \
                    all(args[j].shape[k] == env[d] for j, k, d in self._repeat) and \
                    all(args[j].shape[k] == f(env) for j, k, f in self._derived):
                return env
        return bind_inputs(self.program, args)  # raises the precise error

    def _build(self, greedy: bool) -> list:
        from kiln.ir.interpret import PreparedOp

        parts: list = []
        plan = _plan(self.program, self.weights, greedy, self.config)
        gens = [gen for gen, _, _ in plan if gen is not None]
        dll = build(program_source(self.program.name, _texts(plan), self.config), self.lib, [g.fname for g in gens])
        for gen, ops, (ins, outs) in plan:
            if gen is not None:
                parts.append(_Compiled(gen, getattr(dll, gen.fname), ins, outs, self.weights, self.program))
                self.sources.append(gen)
            else:
                parts.append([(PreparedOp(op, KERNELS.get(op.name)), op) for op in ops])
        self.plans[greedy] = parts
        return parts

    def __call__(self, *args: torch.Tensor) -> list[torch.Tensor]:
        from kiln.ir.registry import ExecContext

        p = self.program
        env = self._bind(args)
        dims = self.local.dims
        for i, name in enumerate(self.sym_names):
            dims[i] = env[name]
        parts = self.parts
        if self.sampling_arg is not None and float(args[self.sampling_arg][0]) != 0.0:
            parts = self.plans.get(False) or self._build(False)
        vals = {id(a): t for a, t in zip(p.args, args)}
        for part in parts:
            if isinstance(part, _Compiled):
                part.run(vals, env, dims, p.name, self.poison, self.timing)
                continue
            ctx = ExecContext(env, self.weights, "cpu")
            for prep, op in part:
                ins = [vals[id(v)] if id(v) in vals else self.weights[v.owner.attrs["name"]] for v in op.operands]
                outs = prep.execute(ctx, ins, f"program {p.name!r}")
                for r, t in zip(op.results, outs):
                    vals[id(r)] = t
        return [vals[k] if k in vals else self.weights[self.weight_outputs[k]] for k in self.out_ids]


def cpu_program(program: Program, weights: dict[str, torch.Tensor]):
    """How the CPU target runs ``program``: its generated C step (kiln/codegen/cstep.py: one native call per
    step) when the generator takes ops of it and the native kernels are on, else the interpreter (``CpuProgram``).
    The choice and, for the interpreter, the reason are in the result's ``backend`` attribute."""
    why = disabled_reason()
    if why is None:
        try:
            step = NativeStep(program, weights)
            step.backend = "native step"
            return step
        except Unsupported as e:
            why = str(e)
            _log.debug("program %r runs in the interpreter: %s", program.name, why)
    interp = CpuProgram(program, weights)
    interp.backend = f"interpreter ({why})"
    return interp
