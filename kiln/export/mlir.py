"""Lowering kiln's programs to MLIR through torch-mlir: ``--format mlir-torch`` (the ``torch`` dialect,
torch-mlir's backend contract) and ``--format mlir-linalg`` (linalg-on-tensors, by torch-mlir's own
``torch-backend-to-linalg-on-tensors-backend-pipeline``).

Each program becomes a torch function that runs its ops in order (``ProgramFunction``): an op runs
its registry reference semantics, or the export-friendly form in ``TORCH_LOWER`` where the reference
cannot be traced (the KV-cache ops, whose references loop over sequences in Python and write in
place, become a functional ``index_put`` and a masked attention over the gathered blocks; reshape,
expand and constant evaluate symbolic sizes on the traced sizes instead of ints; attention is spelled
as matmul / softmax). ``torch.export`` captures it with every symbolic size of the program's inputs
dynamic, and torch-mlir's FX importer imports it. The weights are the function's leading arguments
(``weights.safetensors`` beside the ``.mlir``, their order in ``kiln_export.json``), so the text holds
the program only; the updated caches are extra results, as in the ONNX export.

Refused, with one line naming them: ops whose reference depends on tensor values through Python
control flow and that have no entry here (the int8 KV cache's and speculative decoding's cache ops,
the accept and draft steps) and ``kiln.aten`` (generic ATen ops run behind a meta-tensor dry run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from kiln.errors import KilnError
from kiln.ir.core import Program
from kiln.ir.interpret import PreparedOp, call_attrs
from kiln.ir.registry import ExecContext, has_trait
from kiln.ir.semantics import TORCH_DTYPE
from kiln.ir.types import parse_dim

TORCH_LOWER: dict[str, Callable] = {}


def _reg(name: str):
    def put(fn):
        TORCH_LOWER[name] = fn
        return fn

    return put


def sym_size(d, env: dict):
    """A dimension on traced sizes: ints stay ints, symbolic expressions are computed (never int()-ed)."""
    if isinstance(d, int):
        return d

    def ev(n):
        k, a = n.kind, n.args
        if k == "int":
            return a[0]
        if k == "sym":
            return env[a[0]]
        if k == "neg":
            return -ev(a[0])
        x, y = ev(a[0]), ev(a[1])
        if k == "add":
            return x + y
        if k == "sub":
            return x - y
        if k == "mul":
            return x * y
        if k == "floordiv":
            return x // y
        raise KilnError(f"symbolic size {d!r} ({k}) has no traced form")

    return ev(parse_dim(d))


@_reg("kiln.reshape")
def _reshape(ctx, x, *, shape):
    return x.reshape([sym_size(d, ctx.env) for d in shape])


@_reg("kiln.expand")
def _expand(ctx, x, *, shape):
    return x.expand([sym_size(d, ctx.env) for d in shape])


@_reg("kiln.constant")
def _constant(ctx, *, value):
    t = ctx.result_types[0]
    return torch.full([sym_size(d, ctx.env) for d in t.shape], value, dtype=TORCH_DTYPE[t.dtype])


@_reg("kiln.attention")
def _attention(ctx, q, k, v, mask=None, *, scale, causal):
    # q [B, Hq, T, D]; k, v [B, Hkv, S, D]; query group g of kv head h is query head h*G + g
    b, hq, t, d = q.shape
    hk, s = k.shape[1], k.shape[2]
    q5 = q.reshape(b, hk, hq // hk, t, d)
    scores = (q5 @ k.unsqueeze(2).transpose(-1, -2)) * scale  # [B, Hkv, G, T, S]
    if causal:
        keep = torch.arange(s)[None, :] <= torch.arange(t)[:, None] + (s - t)
        scores = scores.masked_fill(~keep, -math.inf)
    if mask is not None:
        m = mask.unsqueeze(2)
        scores = scores.masked_fill(~m, -math.inf) if mask.dtype == torch.bool else scores + m.to(scores.dtype)
    o = scores.softmax(-1) @ v.unsqueeze(2)
    return o.reshape(b, hq, t, v.shape[-1])


@_reg("kiln.cache_write")
def _cache_write(ctx, cache, x, pos, seq, table, *, layer, layout):
    # functional and scatter-free (so linalg needs no tm_tensor.scatter): each slot (block, offset) of the
    # layer takes the row of the token that writes it, or keeps its value; rows [N, KVH, D] of x [1, KVH, N, D]
    nb, kvh, bs, d = cache.shape[1], cache.shape[2], cache.shape[3], cache.shape[4]
    block = table.reshape(-1)[seq * table.shape[1] + torch.div(pos, bs, rounding_mode="floor")]
    match = (block * bs + pos % bs)[:, None] == torch.arange(nb * bs)[None, :]  # [N, NB*BS]
    src = match.to(torch.int64).argmax(0)  # the writing token of each slot (0 where none writes)
    rows = x[0].transpose(0, 1).to(cache.dtype)[src]  # [NB*BS, KVH, D]
    old = cache[layer].permute(0, 2, 1, 3).reshape(nb * bs, kvh, d)
    new = torch.where(match.any(0)[:, None, None], rows, old).reshape(nb, bs, kvh, d).permute(0, 2, 1, 3)
    return cache.select_scatter(new, 0, layer)


@_reg("kiln.cache_attention")
def _cache_attention(ctx, q, kc, vc, pos, seq, table, *, layer, scale, layout):
    # every sequence's blocks side by side: [KVH, 1, S*P, D], P = MB*BS; query n sees key j when
    # j // P == seq[n] and j % P <= pos[n]
    kvh, bs, d = kc.shape[2], kc.shape[3], kc.shape[4]
    h = q.shape[1]
    s, mb = table.shape

    def gathered(c):
        return c[layer][table].permute(2, 0, 1, 3, 4).reshape(kvh, 1, -1, d)

    k, v = gathered(kc), gathered(vc)
    p = mb * bs
    js = torch.arange(s)[:, None].expand(s, p).reshape(-1)  # key j's sequence row and position
    jp = torch.arange(p)[None, :].expand(s, p).reshape(-1)
    keep = (js[None, :] == seq[:, None]) & (jp[None, :] <= pos[:, None])  # [N, S*P]
    scores = (q.reshape(kvh, h // kvh, -1, d) @ k.transpose(-1, -2)) * scale  # [KVH, G, N, S*P]
    o = scores.masked_fill(~keep, -math.inf).softmax(-1) @ v
    return o.reshape(1, h, -1, d)


def refused(program: Program) -> list[str]:
    """Ops of ``program`` that cannot be traced for torch-mlir."""
    bad = []
    for op in program.ops:
        if op.name in TORCH_LOWER or op.name == "kiln.return":
            continue
        dynamic = any(has_trait(op.name, t) for t in ("reads-cache", "writes-cache", "speculative"))
        if op.name == "kiln.aten" or dynamic or op.opdef.reference is None:
            name = f"kiln.aten({op.attrs.get('target')})" if op.name == "kiln.aten" else op.name
            if name not in bad:
                bad.append(name)
    return bad


class ProgramFunction(torch.nn.Module):
    """``program`` as a torch function of (weights..., inputs...) -> (outputs..., updated caches...)."""

    def __init__(self, program: Program, weight_names: list[str]):
        super().__init__()
        from kiln.export.onnx_emit import cache_outputs

        self.program = program
        self.weight_names = weight_names
        self.steps = [(op, TORCH_LOWER.get(op.name), PreparedOp(op) if op.name not in TORCH_LOWER else None)
                      for op in program.ops if op.name != "kiln.return"]
        self.results = list(program.outputs) + [v for _, v in cache_outputs(program)]

    def forward(self, *args):
        nw = len(self.weight_names)
        weights = dict(zip(self.weight_names, args[:nw]))
        inputs = args[nw:]
        env = {}
        for a, t in zip(self.program.args, inputs):
            for i, d in enumerate(a.type.shape):
                if isinstance(d, str) and d.isidentifier():
                    env.setdefault(d, t.shape[i])
        ctx = ExecContext(env, weights, "cpu")
        vals = {id(a): t for a, t in zip(self.program.args, inputs)}
        for op, fn, prepared in self.steps:
            ins = [vals[id(v)] for v in op.operands]
            if fn is not None:
                ctx.result_types = [r.type for r in op.results]
                out = fn(ctx, *ins, **call_attrs(op))
                outs = [out] if len(op.results) == 1 else list(out)
            else:
                outs = prepared.run(ctx, ins)
            for r, t in zip(op.results, outs):
                vals[id(r)] = t
        return tuple(vals[id(v)] for v in self.results)


def sample_inputs(program: Program, meta: dict) -> tuple[list[torch.Tensor], dict]:
    """Example inputs for tracing (every symbolic size >= 2, so none is specialised) and the
    ``dynamic_shapes`` spec naming each symbolic size once."""
    sizes = {"B": 2, "T": 5, "N": 5, "S": 2, "MB": 2, "NB": 4, "K": 2}
    dims: dict[str, torch.export.Dim] = {}
    tensors, spec = [], []
    max_pos = int(meta.get("max_positions") or 64)
    for a in program.args:
        shape = [d if isinstance(d, int) else sizes.get(d, 3) for d in a.type.shape]
        dt = TORCH_DTYPE[a.type.dtype]
        if a.hint == "input_ids":
            t = torch.randint(0, int(meta.get("vocab_size") or 2), shape)
        elif a.hint in ("pos",):
            t = torch.arange(shape[0]) % max_pos
        elif a.hint in ("seq",):
            t = torch.zeros(shape, dtype=torch.int64)
        elif a.hint in ("block_table",):
            t = torch.arange(math.prod(shape)).reshape(shape) % sizes["NB"]
        elif a.hint in ("logits_at",):
            t = torch.arange(shape[0])
        else:
            t = torch.zeros(shape, dtype=dt) if not dt.is_floating_point else torch.randn(shape).to(dt)
        tensors.append(t.to(dt))
        spec.append({i: dims.setdefault(d, torch.export.Dim(d, min=1)) for i, d in enumerate(a.type.shape)
                     if isinstance(d, str) and d.isidentifier()} or None)
    return tensors, spec


def write_mlir(module, programs: list[str], out: Path, fmt: str, say: Callable[[str], None]) -> tuple[dict, dict]:
    """``<program>.mlir`` (torch or linalg-on-tensors) per program and ``weights.safetensors``."""
    try:
        from torch_mlir import fx as tm_fx
        from torch_mlir import ir as tm_ir
    except ImportError:
        raise KilnError("exporting to MLIR needs torch-mlir (kiln's [test] extra installs it)") from None
    from safetensors.torch import save_file

    from kiln.codegen.native import unpacked

    for name in programs:
        bad = refused(module[name])
        if bad:
            raise KilnError(f"cannot export program {name!r} to MLIR: {', '.join(bad)} cannot be expressed there "
                            "(data-dependent control flow or a generic ATen op)")
    output_type = "torch" if fmt == "mlir-torch" else "linalg-on-tensors"
    used = sorted({op.attrs["name"] for n in programs for op in module[n].walk("kiln.weight")})
    weights = {k: unpacked(module.weights[k]).contiguous() for k in used}
    save_file(weights, str(out / "weights.safetensors"))
    files = {}
    for name in programs:
        program = module[name]
        wnames = sorted({op.attrs["name"] for op in program.walk("kiln.weight")})
        fn = ProgramFunction(program, wnames)
        inputs, dyn = sample_inputs(program, module.meta)
        say(f"capturing {name} with torch.export")
        try:
            ep = torch.export.export(fn, tuple([weights[w] for w in wnames] + inputs),
                                     dynamic_shapes=(tuple([None] * len(wnames) + dyn),), strict=False)
            say(f"importing {name} with torch-mlir ({output_type})")
            mod = tm_fx.export_and_import(ep, output_type=output_type, func_name=name)
        except KilnError:
            raise
        except Exception as e:  # noqa: BLE001 - torch.export / torch-mlir failures become one line
            raise KilnError(f"cannot export program {name!r} to {fmt}: {type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}") from None
        text = str(mod)
        ctx = tm_ir.Context()  # the text must parse and verify on its own
        ctx.allow_unregistered_dialects = fmt == "mlir-torch"
        if fmt == "mlir-torch":
            from torch_mlir.dialects import torch as torch_d

            torch_d.register_dialect(ctx)
        parsed = tm_ir.Module.parse(text, ctx)
        if not parsed.operation.verify():
            raise KilnError(f"the exported {name}.mlir does not verify")
        path = out / f"{name}.mlir"
        path.write_text(text)
        files[name] = {"file": path.name, "function": name, "weights": wnames,
                       "inputs": [{"name": a.hint, "dtype": a.type.dtype.value, "shape": list(a.type.shape)}
                                  for a in program.args],
                       "outputs": len(fn.results)}
    return files, {"dialect": output_type, "weights": "weights.safetensors",
                   "calling_convention": "func(weights..., inputs...) -> (outputs..., updated caches...)"}
