"""The tunable parameters of the CPU target's kernels: named, enumerable, buildable.

Each kernel kind the C generator (kiln/codegen/cstep.py) emits or calls has parameters that change its
speed but never its result beyond float rounding. ``KINDS`` names them, with their candidate values and
the default every artifact uses today; ``candidates(kind, shape)`` lists the configurations worth trying
for one shape; a configuration ``{kind: {param: value}}`` given to ``NativeStep(program, weights,
config=...)`` (or ``cstep.generate``) builds the program with it. The cost model (issue 16) is meant to
choose among them by measurement; until then the defaults hold.

What each parameter does:

- ``linear.threads``: ``"all"`` (the runtime's thread count) or ``1`` (no OpenMP fork: small linears, or
  a draft model that shares the machine).
- ``linear.min_parallel_macs``: a linear with fewer multiply-adds than this runs on one thread whatever
  ``threads`` says (0: never).
- ``attention.chunk``: keys per step of the running softmax (``KS_CHUNK``): longer chunks mean fewer
  rescales and more scratch on the stack.
- ``attention.parallel_work``: below this work (multiply-adds) the attention runs on the calling thread
  (``KS_ATTN_PARALLEL_WORK``).
- ``rowwise.parallel_work``: the same threshold for the norms and elementwise loops (``KS_PARALLEL_WORK``).

Not tunable here: the panel linears' tile shapes, fixed per instruction-set build of kiln_native.c
(kiln/codegen/native.py); a variant of them is a different build of that library, not of a step.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from kiln.errors import KilnError


@dataclass(frozen=True)
class Param:
    values: tuple  # the candidates
    default: object
    doc: str


KINDS: dict[str, dict[str, Param]] = {
    "linear": {
        "threads": Param(("all", 1), "all", "OpenMP threads of the panel kernel: the runtime's, or one"),
        "min_parallel_macs": Param((0, 1 << 16, 1 << 18, 1 << 20), 0,
                                   "below this many multiply-adds a linear runs on one thread (0: never)"),
    },
    "attention": {
        "chunk": Param((16, 32, 64, 128), 64, "keys per step of the running softmax (KS_CHUNK)"),
        "parallel_work": Param((1 << 13, 1 << 15, 1 << 17), 1 << 15,
                               "work below which attention runs on the calling thread (KS_ATTN_PARALLEL_WORK)"),
    },
    "rowwise": {
        "parallel_work": Param((1 << 13, 1 << 15, 1 << 17), 1 << 15,
                               "work below which norms and elementwise loops run on one thread (KS_PARALLEL_WORK)"),
    },
}

# the C constants a configuration sets (kind, param) -> macro; the rest are applied by the generator
DEFINES = {("attention", "chunk"): "KS_CHUNK", ("attention", "parallel_work"): "KS_ATTN_PARALLEL_WORK",
           ("rowwise", "parallel_work"): "KS_PARALLEL_WORK"}


def defaults() -> dict[str, dict]:
    """The configuration every program gets unless told otherwise."""
    return {kind: {name: p.default for name, p in params.items()} for kind, params in KINDS.items()}


def resolve(config: dict | None) -> dict[str, dict]:
    """``config`` over the defaults, checked: an unknown kind or parameter, or a value outside its candidates,
    is a ``KilnError`` naming it."""
    out = defaults()
    for kind, params in (config or {}).items():
        if kind not in KINDS:
            raise KilnError(f"unknown kernel kind {kind!r}; kinds: {', '.join(KINDS)}")
        for name, value in params.items():
            p = KINDS[kind].get(name)
            if p is None:
                raise KilnError(f"kernel kind {kind!r} has no parameter {name!r}; it has {', '.join(KINDS[kind])}")
            if value not in p.values:
                raise KilnError(f"{kind}.{name} = {value!r} is not one of {list(p.values)}")
            out[kind][name] = value
    return out


def candidates(kind: str, shape: dict[str, int] | None = None) -> list[dict]:
    """Every configuration of ``kind`` worth trying for ``shape`` (sizes by name: ``context`` for attention,
    ``macs`` for a linear): the product of its parameters' candidates, less those the shape makes moot
    (a chunk longer than the context; a one-thread threshold for a linear too small to reach it)."""
    if kind not in KINDS:
        raise KilnError(f"unknown kernel kind {kind!r}; kinds: {', '.join(KINDS)}")
    names = list(KINDS[kind])
    out = []
    for values in itertools.product(*(KINDS[kind][n].values for n in names)):
        c = dict(zip(names, values))
        shape = shape or {}
        if kind == "attention" and "context" in shape and c["chunk"] > max(16, shape["context"]):
            continue
        if kind == "linear" and c["threads"] == 1 and c["min_parallel_macs"]:
            continue  # one thread already
        out.append(c)
    return out


def c_defines(config: dict[str, dict]) -> list[str]:
    """The ``#define`` lines that put ``config``'s C constants into a generated step (only those that differ
    from the header's defaults)."""
    lines = []
    for (kind, name), macro in DEFINES.items():
        value = config[kind][name]
        if value != KINDS[kind][name].default:
            lines.append(f"#define {macro} {value}L" if "WORK" in macro else f"#define {macro} {value}")
    return lines
