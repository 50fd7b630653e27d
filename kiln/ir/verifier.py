"""The verifier: checks that a program is well formed.

Run after every pass by the pass manager. It checks that each op is declared
in the registry, has an allowed number of operands and its required
attributes, uses only values defined earlier in the same program, has the
result types its shape rule gives, and that the program ends in exactly one
``kiln.return``. Weight ops must agree with the module's weights when those
are present. Errors name the program, the op's position and its name.
"""

from __future__ import annotations

from kiln.ir.core import IRError, Module, Program
from kiln.ir.registry import lookup


class VerifyError(IRError):
    pass


def _where(p: Program, i: int, name: str) -> str:
    return f"program {p.name!r}, op #{i} ({name})"


def verify_program(p: Program, weights: dict | None = None) -> None:
    defined: set[int] = {id(a) for a in p.args}
    # every (value, user, operand index) the use lists record, so that checking them is linear, not quadratic
    recorded = {(id(v), id(o), j) for v in p.args for o, j in v.uses}
    recorded.update((id(r), id(o), j) for op in p.ops for r in op.results for o, j in r.uses)
    if not p.ops or p.ops[-1].name != "kiln.return":
        raise VerifyError(f"program {p.name!r} does not end in kiln.return")
    for i, op in enumerate(p.ops):
        where = _where(p, i, op.name)
        if op.program is not p:
            raise VerifyError(f"{where}: op does not belong to this program")
        d = lookup(op.name)
        lo, hi = d.operands
        n = len(op.operands)
        if n < lo or (hi >= 0 and n > hi):
            raise VerifyError(f"{where}: {n} operands, expected {lo}..{'any' if hi < 0 else hi}")
        for j, v in enumerate(op.operands):
            if id(v) not in defined:
                raise VerifyError(f"{where}: operand {j} is not defined before its use")
            if (id(v), id(op), j) not in recorded:
                raise VerifyError(f"{where}: operand {j}'s use list is stale")
        for key, typ in d.attrs.items():
            if key not in op.attrs:
                raise VerifyError(f"{where}: missing attribute {key!r}")
            _check_attr(where, key, op.attrs[key], typ)
        for key, default in d.defaults.items():
            if key in op.attrs and default is not None:
                _check_attr(where, key, op.attrs[key], type(default))
        try:  # after the attribute checks: optional operands an attribute decides, groups one counts
            d.bind(n, op.attrs)
        except IRError as e:
            raise VerifyError(f"{where}: {e}") from None
        if "kernel" in op.attrs and not isinstance(op.attrs["kernel"], str):
            raise VerifyError(f"{where}: attribute 'kernel' (the group-kernels label) must be a string")
        if op.name == "kiln.aten":
            from kiln.ir.aten_policy import check_aten_op

            try:
                check_aten_op(op.attrs["target"], op.attrs.get("args", []), op.attrs.get("kwargs", {}))
            except IRError as e:
                raise VerifyError(f"{where}: {e}") from None
        if "layer" in op.attrs and isinstance(op.attrs["layer"], int):  # cache ops: the layer indexes the pool
            for v in op.operands:
                n_layers = v.type.shape[0] if v.type.rank == 5 else None
                if isinstance(n_layers, int) and not 0 <= op.attrs["layer"] < n_layers:
                    raise VerifyError(f"{where}: layer {op.attrs['layer']} is outside the cache {v.type}")
        if op.name == "kiln.return" and i != len(p.ops) - 1:
            raise VerifyError(f"{where}: kiln.return before the end of the program")
        if d.shape is not None:
            try:
                expected = d.shape([v.type for v in op.operands], {**d.defaults, **op.attrs})
            except (IRError, ValueError, TypeError, AttributeError, KeyError, IndexError, ArithmeticError) as e:
                raise VerifyError(f"{where}: {e}") from None
            got = [r.type for r in op.results]
            if expected != got:
                raise VerifyError(f"{where}: result types {[str(t) for t in got]} but its shape rule gives "
                                  f"{[str(t) for t in expected]}")
        if op.name == "kiln.weight" and weights is not None:
            name = op.attrs["name"]
            if name not in weights:
                raise VerifyError(f"{where}: no weight named {name!r} in the module")
            from kiln.ir.ops import FROM_TORCH

            w = weights[name]
            t = op.result.type
            if tuple(w.shape) != t.shape or FROM_TORCH.get(w.dtype) != t.dtype:
                raise VerifyError(f"{where}: weight {name!r} is {tuple(w.shape)} {w.dtype}, op says {t}")
        for r in op.results:
            defined.add(id(r))


def _check_attr(where: str, key: str, val, typ) -> None:
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(val, bool) and bool not in types:
        ok = False
    elif float in types and isinstance(val, int):
        ok = True
    else:
        ok = isinstance(val, types)
    if not ok:
        names = " or ".join(getattr(t, "__name__", str(t)) for t in types)
        raise VerifyError(f"{where}: attribute {key!r} = {val!r} is not {names}")


def verify_module(m: Module) -> None:
    """Verify every program; weight ops are checked against ``m.weights`` when the module has any."""
    for p in m.programs.values():
        verify_program(p, m.weights if m.weights else None)
