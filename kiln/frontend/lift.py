"""Lifting: recognise the patterns the translated ATen graph spells out op by
op, and replace each with one kiln op.

Two kinds of recognition:

* **Probing input-free subgraphs.** Attention masks, position ids and RoPE
  cos/sin tables depend only on the symbolic sizes (and, for RoPE, on the
  ``inv_freq`` buffer), never on token values. For every such value consumed
  by the rest of the program, the subgraph that computes it is evaluated at
  several sizes and compared with a template: a causal mask (folded into
  ``kiln.attention {causal = true}``), ``arange(T)`` positions (``kiln.positions``)
  or ``scale * cos/sin(positions ⊗ inv_freq)`` (``kiln.rope_cos`` /
  ``kiln.rope_sin``). This is robust to how a transformers version happens to
  build them (the current one builds the mask from ``index``/``cumsum``/``diff``).
* **Structural rules** for computation on activations: RMSNorm, rotate-half
  RoPE, the tanh GELU formula, and ``repeat_kv`` before attention (dropped:
  ``kiln.attention`` handles grouped-query heads itself).

Every match is counted in ``LiftReport.matches``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from kiln.ir.core import Module, Op, Program, Value
from kiln.ir.interpret import ExecContext, run_op
from kiln.ir.match import erase_unused, operand_pairs, producer, scalar
from kiln.ir.types import DType, TensorType

PROBE_SIZES = [{"B": 1, "T": 1}, {"B": 2, "T": 5}, {"B": 3, "T": 9}, {"B": 2, "T": 17}, {"B": 1, "T": 160}]


@dataclass
class LiftReport:
    matches: Counter = field(default_factory=Counter)
    unrecognised: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# helpers


def backward_slice(program: Program, values: list[Value]) -> list[Op]:
    need: set[int] = set()
    stack = [v.owner for v in values if v.owner is not None]
    while stack:
        op = stack.pop()
        if id(op) in need:
            continue
        need.add(id(op))
        stack.extend(o.owner for o in op.operands if o.owner is not None)
    return [op for op in program.ops if id(op) in need]


def evaluate(program: Program, values: list[Value], env: dict[str, int], weights) -> list[torch.Tensor]:
    """Run the ops that ``values`` depend on (which must not depend on program args)."""
    ctx = ExecContext(env, weights, "cpu")
    # program args only reach here through kiln.positions, which reads their shape alone
    vals: dict[int, torch.Tensor] = {id(a): torch.zeros([env.get(str(d), d) if isinstance(d, str) else d
                                                         for d in a.type.shape], dtype=torch.int64)
                                     for a in program.args if a.type.dtype == DType.i64}
    for op in backward_slice(program, values):
        for r, t in zip(op.results, run_op(op, [vals[id(o)] for o in op.operands], ctx)):
            vals[id(r)] = t
    return [vals[id(v)] for v in values]


def input_free(program: Program) -> set[int]:
    """Ids of values that depend on no program argument."""
    free: set[int] = set()
    for op in program.ops:
        if op.name != "kiln.return" and all(id(o) in free for o in op.operands):
            free.update(id(r) for r in op.results)
    return free


# ---------------------------------------------------------------------------
# probing


def _layout(t: TensorType, last: int | str | None) -> tuple[bool, bool] | None:
    """For a [.., B?, .., T, .., (last)] shape whose other dims are 1: (has_batch, ok)."""
    shape = list(t.shape)
    if last is not None:
        if not shape or shape[-1] != last:
            return None
        shape = shape[:-1]
    rest = [d for d in shape if d != 1]
    if rest == ["T"]:
        return (False, True)
    if rest == ["B", "T"]:
        return (True, True)
    return None


def _fit(program: Program, base: Value, target: TensorType, has_batch: bool, anchor: Op) -> Value:
    """Reshape a [B, T, ...] value into ``target``'s shape (slicing the batch away if absent)."""
    v = base
    if not has_batch:
        v = program.create("kiln.slice", [v], {"dim": 0, "start": 0, "end": 1}, before=anchor).result
    if v.type.dtype != target.dtype:
        v = program.create("kiln.cast", [v], {"dtype": target.dtype}, before=anchor).result
    if v.type.shape != target.shape:
        v = program.create("kiln.reshape", [v], {"shape": list(target.shape)}, before=anchor).result
    return v


def _ids_arg(program: Program) -> Value:
    return program.args[0]


def _is_causal_mask(samples: list[tuple[dict, torch.Tensor]]) -> str | None:
    """'causal' if every sample is the lower-triangular mask, 'none' if every one keeps all keys."""
    kinds = set()
    for env, m in samples:
        t = env["T"]
        if tuple(m.shape[-2:]) != (t, t):
            return None
        if m.dtype == torch.bool:
            allowed = m
        elif bool(((m == 0) | (m <= -1e30)).all()):
            allowed = m == 0
        else:
            return None
        keep = torch.ones(t, t, dtype=torch.bool).tril().expand_as(allowed)
        if bool((allowed == keep).all()):
            kinds.add("causal")
        elif bool(allowed.all()):
            kinds.add("none")
        else:
            return None
    return kinds.pop() if len(kinds) == 1 else None


def _probe(program: Program, v: Value, weights) -> list[tuple[dict, torch.Tensor]]:
    return [(env, evaluate(program, [v], env, weights)[0]) for env in PROBE_SIZES]


def fold_input_free(module: Module, program: Program, report: LiftReport) -> None:
    free = input_free(program)
    weights = module.weights
    for op in list(program.ops):
        if op.program is None:
            continue
        for v in op.results:
            if id(v) not in free or "source" in op.opdef.traits:
                continue
            consumers = [u for u in v.users if not all(id(r) in free for r in u.results) or u.name == "kiln.return"]
            if not consumers:
                continue
            _classify_or_descend(module, program, v, consumers, weights, report, free)


def _constant(program: Program, v: Value) -> bool:
    """Computed from weights and constants alone, with a static shape (fold-constants' business)."""
    return v.type.is_static and all("source" in o.opdef.traits
                                    for o in backward_slice(program, [v]) if not o.operands)


def _classify_or_descend(module, program, v, consumers, weights, report, free) -> None:
    if _constant(program, v):
        return
    if _classify(module, program, v, consumers, weights, report):
        return
    op = v.owner
    inner = [o for o in op.operands if id(o) in free and o.owner is not None
             and "source" not in o.owner.opdef.traits]
    if not inner:
        report.unrecognised.append(f"{op.name} -> {v.type}")
        return
    for o in inner:
        _classify_or_descend(module, program, o, [op], weights, report, free)


def _classify(module: Module, program: Program, v: Value, consumers: list[Op], weights,
              report: LiftReport) -> bool:
    first = min(program.index_of(u) for u in v.users)  # replace_all_uses reaches every user
    anchor = program.ops[first]
    try:
        samples = _probe(program, v, weights)
    except Exception:  # noqa: BLE001 - not evaluable on its own (depends on something we cannot bind)
        return False
    # 1. causal attention masks
    if all(c.name == "kiln.attention" and c.operand("mask") is v for c in consumers):
        kind = _is_causal_mask(samples)
        if kind is not None:
            for c in consumers:
                new = program.create("kiln.attention", [c.operand("q"), c.operand("k"), c.operand("v")],
                                     {**c.attrs, "causal": kind == "causal" or c.attrs.get("causal", False)},
                                     before=c, loc=c.loc)
                program.replace_op(c, [new.result])
            report.matches[f"attention-mask:{kind}"] += 1
            return True
    # 2. positions: arange(T) broadcast
    lay = _layout(v.type, None)
    if lay is not None:
        ok = True
        for env, t in samples:
            ref = torch.arange(env["T"])
            if t.numel() == 0 or not torch.equal(t.reshape(-1, env["T"]).to(torch.float64),
                                                 ref.expand(t.numel() // env["T"], -1).to(torch.float64)):
                ok = False
                break
        if ok:
            pos = program.create("kiln.positions", [_ids_arg(program)], before=anchor).result
            program.replace_all_uses(v, _fit(program, pos, v.type, lay[0], anchor))
            report.matches["positions"] += 1
            return True
    # 3. RoPE tables: scale * cos|sin(positions ⊗ inv_freq), halves repeated
    ws = [o for o in backward_slice(program, [v]) if o.name == "kiln.weight"]
    if len(ws) == 1 and ws[0].result.type.rank == 1 and v.type.dtype.is_float:
        inv = ws[0].result
        d = inv.type.shape[0] * 2
        lay = _layout(v.type, d)
        if lay is not None:
            w = weights[ws[0].attrs["name"]].to(torch.float64)
            for fn, opname in ((torch.cos, "kiln.rope_cos"), (torch.sin, "kiln.rope_sin")):
                scale = _fit_scale(samples, w, fn)
                if scale is not None:
                    pos = program.create("kiln.positions", [_ids_arg(program)], before=anchor).result
                    tab = program.create(opname, [pos, inv], {"scale": scale}, before=anchor).result
                    program.replace_all_uses(v, _fit(program, tab, v.type, lay[0], anchor))
                    report.matches[opname.split(".")[1]] += 1
                    return True
    return False


def _fit_scale(samples, inv: torch.Tensor, fn) -> float | None:
    num = den = 0.0
    refs = []
    for env, t in samples:
        ang = torch.arange(env["T"], dtype=torch.float64)[:, None] * inv[None, :]
        ref = fn(torch.cat([ang, ang], -1))  # [T, D]
        got = t.to(torch.float64).reshape(-1, env["T"], ref.shape[-1])
        refs.append((ref, got))
        num += float((got * ref).sum())
        den += float((ref * ref).sum()) * got.shape[0]
    if den == 0:
        return None
    s = num / den
    for ref, got in refs:
        if not torch.allclose(got, s * ref.expand_as(got), rtol=1e-4, atol=1e-5):
            return None
    return float(torch.tensor(s, dtype=torch.float32).item())


# ---------------------------------------------------------------------------
# structural rules


def _strip_views(v: Value) -> Value:
    while v.owner is not None and v.owner.name in ("kiln.unsqueeze", "kiln.reshape"):
        v = v.owner.operand("x")
    return v


def rule_rms_norm(program: Program, op: Op) -> Value | None:
    # w * cast?(h * rsqrt(mean(h^2, -1, keepdim) + eps)), h = cast?(x)  ==>  rms_norm(x, w)
    if op.name != "kiln.mul" or op.operand("b") is None:
        return None
    for w, y in operand_pairs(op):
        if producer(w, "kiln.weight") is None or w.type.rank != 1:
            continue
        z = y.owner.operand("x") if producer(y, "kiln.cast") else y
        mul = producer(z, "kiln.mul")
        if mul is None or mul.operand("b") is None:
            continue
        for h, r in operand_pairs(mul):
            rs = producer(r, "kiln.rsqrt")
            add = producer(rs.operand("x"), "kiln.add") if rs else None
            eps = scalar(add)
            mean = producer(add.operand("a"), "kiln.mean") if add else None
            if eps is None or mean is None or not mean.attrs.get("keepdim"):
                continue
            if [d % h.type.rank for d in mean.attrs["dims"]] != [h.type.rank - 1]:
                continue
            pw = producer(mean.operand("x"), "kiln.pow")
            if pw is None or scalar(pw) != 2 or pw.operand("a") is not h:
                continue
            x = h.owner.operand("x") if producer(h, "kiln.cast") else h
            new = program.create("kiln.rms_norm", [x, w], {"eps": float(eps)}, before=op, loc=op.loc)
            if new.result.type == op.result.type:
                return new.result
            program.erase(new)
    return None


def rule_rope(program: Program, op: Op) -> Value | None:
    # x * cos + cat(-x[..., h:], x[..., :h]) * sin  ==>  rope(x, cos, sin)
    if op.name != "kiln.add" or op.operand("b") is None:
        return None
    for m1, m2 in operand_pairs(op):
        a, b = producer(m1, "kiln.mul"), producer(m2, "kiln.mul")
        if a is None or b is None or a.operand("b") is None or b.operand("b") is None:
            continue
        for x, c in operand_pairs(a):
            cos = _strip_views(c)
            if producer(cos, "kiln.rope_cos") is None and not (
                    producer(cos, "kiln.slice") and producer(cos.owner.operand("x"), "kiln.rope_cos")):
                continue
            for rot, s in operand_pairs(b):
                sin = _strip_views(s)
                cat = producer(rot, "kiln.cat")
                if cat is None or len(cat.group("xs")) != 2 or x.type.rank != 4:
                    continue
                first, second = cat.group("xs")
                neg = producer(first, "kiln.neg")
                lo = producer(second, "kiln.slice")
                hi = producer(neg.operand("x"), "kiln.slice") if neg else None
                half = x.type.shape[-1] // 2 if isinstance(x.type.shape[-1], int) else None
                if hi is None or lo is None or half is None:
                    continue
                if not (hi.operand("x") is x and lo.operand("x") is x and hi.attrs["start"] == half
                        and lo.attrs["start"] == 0 and lo.attrs["end"] == half
                        and hi.attrs["dim"] % 4 == 3 and lo.attrs["dim"] % 4 == 3):
                    continue
                if cos.type.rank != 3 or sin.type.rank != 3:
                    continue
                new = program.create("kiln.rope", [x, cos, sin], before=op, loc=op.loc)
                if new.result.type == op.result.type:
                    return new.result
                program.erase(new)
    return None


def rule_gelu_tanh(program: Program, op: Op) -> Value | None:
    # (0.5 x) * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  ==>  gelu(x, tanh)
    if op.name != "kiln.mul" or op.operand("b") is None:
        return None
    for a, b in operand_pairs(op):
        half, one = producer(a, "kiln.mul"), producer(b, "kiln.add")
        if scalar(half) != 0.5 or scalar(one) != 1.0:
            continue
        x = half.operand("a")
        th = producer(one.operand("a"), "kiln.tanh")
        k = producer(th.operand("x"), "kiln.mul") if th else None
        if k is None or scalar(k) is None or abs(scalar(k) - math.sqrt(2 / math.pi)) > 1e-6:
            continue
        u = producer(k.operand("a"), "kiln.add")
        if u is None or u.operand("b") is None:
            continue
        for xx, p in operand_pairs(u):
            c = producer(p, "kiln.mul")
            pw = producer(c.operand("a"), "kiln.pow") if c and c.operand("b") is None else None
            if xx is x and pw is not None and pw.operand("a") is x and scalar(pw) == 3.0 and \
                    abs(scalar(c) - 0.044715) < 1e-9:
                new = program.create("kiln.gelu", [x], {"approximate": "tanh"}, before=op, loc=op.loc)
                return new.result
    return None


def _unrepeat(v: Value) -> Value | None:
    # reshape(expand(unsqueeze(k, 2), [B, Hkv, n, T, D]), [B, Hkv*n, T, D])  ==>  k
    r = producer(v, "kiln.reshape")
    e = producer(r.operand("x"), "kiln.expand") if r else None
    u = producer(e.operand("x"), "kiln.unsqueeze") if e else None
    if u is None or u.attrs["dim"] % 5 != 2 or u.operand("x").type.rank != 4:
        return None
    return u.operand("x")


def rule_attention_gqa(program: Program, op: Op) -> Value | None:
    if op.name != "kiln.attention":
        return None
    k, v = _unrepeat(op.operand("k")), _unrepeat(op.operand("v"))
    if k is None or v is None:
        return None
    mask = [m for m in (op.operand("mask"),) if m is not None]
    new = program.create("kiln.attention", [op.operand("q"), k, v, *mask], dict(op.attrs),
                         before=op, loc=op.loc)
    return new.result


RULES = {"rms-norm": rule_rms_norm, "rope": rule_rope, "gelu-tanh": rule_gelu_tanh,
         "attention-gqa": rule_attention_gqa}


def apply_rules(program: Program, report: LiftReport) -> None:
    changed = True
    while changed:
        changed = False
        for op in list(program.ops):
            if op.program is not program:
                continue
            for name, rule in RULES.items():
                new = rule(program, op)
                if new is not None:
                    program.replace_op(op, [new])
                    report.matches[name] += 1
                    changed = True
                    break
        erase_unused(program)


def lift(module: Module) -> LiftReport:
    report = LiftReport()
    for program in module.programs.values():
        fold_input_free(module, program, report)
        erase_unused(program)
        apply_rules(program, report)
        erase_unused(program)
    used = module.used_weights()
    for name in [n for n in module.weights if n not in used]:
        del module.weights[name]

    return report
