"""Lowering kiln's IR to ONNX: one ``onnx.ModelProto`` per program, built op by op from the optimised
IR (``forward``, ``prefill``, ``decode``), with the KV cache as explicit inputs and outputs.

Each kiln op has one entry in ``LOWER`` (kiln/export/onnx_emit.py; the float ops in ``onnx_ops.py``,
the cache ops and quantized weights in ``onnx_cache.py``); an op without one is refused before
anything is written (``unsupported``), with a one-line ``KilnError`` naming it. Standard ``ai.onnx``
ops (opset ``OPSET``) everywhere except the quantized linears, which become ONNX Runtime's
``com.microsoft.MatMulNBits``.

A program's cache writes are applied to its cache inputs at the end, one ``ScatterND`` per cache
tensor, named ``<input>_out`` (``k_cache_out``, ``v_cache_out``; with an int8 cache also the scales),
which the caller feeds back as the next call's cache. Weights are written once, to ``weights.bin``,
and every model's initializers point into it as ONNX external data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kiln.errors import KilnError
from kiln.export import onnx_cache, onnx_ops  # noqa: F401 - they register the lowerings in LOWER
from kiln.export.onnx_cache import materialize
from kiln.export.onnx_emit import (
    LOWER,
    MS_DOMAIN,
    ONNX_DTYPE,
    OPSET,
    WEIGHTS_FILE,
    Emitter,
    WeightFile,
    cache_outputs,
    helper,
    onnx,
    require_onnx,
)
from kiln.ir.core import Program, Value

# -- the program --------------------------------------------------------------------------------------

def unsupported(program: Program) -> list[str]:
    """The ops of ``program`` that have no ONNX lowering (``kiln.aten`` named by its target)."""
    bad = []
    for op in program.ops:
        if op.name == "kiln.return" or op.name in LOWER:
            continue
        name = f"kiln.aten({op.attrs.get('target')})" if op.name == "kiln.aten" else op.name
        if name not in bad:
            bad.append(name)
    return bad


def _value_info(name: str, t) -> Any:
    dims = [d if isinstance(d, int) else (d if d.isidentifier() else None) for d in t.shape]
    return helper.make_tensor_value_info(name, ONNX_DTYPE[t.dtype], dims)


def program_model(program: Program, weights: dict[str, torch.Tensor], store: WeightFile,
                  doc: str = "") -> tuple[Any, dict]:
    """The ONNX model of one program, and its entry for kiln_onnx.json (inputs, outputs, cache pairs)."""
    bad = unsupported(program)
    if bad:
        raise KilnError(f"cannot export program {program.name!r} to ONNX: no ONNX lowering for {', '.join(bad)}")
    e = Emitter(program, weights, store)
    for op in program.ops:
        if op.name == "kiln.return":
            break
        outs = LOWER[op.name](e, op, [e.value(v) for v in op.operands])
        for r, name in zip(op.results, outs):
            e.names[id(r)] = name
    outputs: list[tuple[str, Value]] = []
    for i, v in enumerate(program.outputs):
        outputs.append(("logits" if i == 0 and len(program.outputs) == 1 else f"output_{i}", v))
    caches = cache_outputs(program)
    outputs += [(f"{e.value(a)}_out", v) for a, v in caches]
    inputs = {e.value(a) for a in program.args}
    for name, v in outputs:  # graph outputs get their own names
        if id(v) in e.caches:  # a cache after this call's writes: one ScatterND per cache tensor
            materialize(e, e.caches[id(v)], name)
            continue
        src = e.value(v)
        producer = next((n for n in e.nodes if src in n.output), None)
        if producer is None or src in inputs or src in {o for o, _ in outputs}:
            e.nodes.append(helper.make_node("Identity", [src], [name]))  # an input or initializer: a copy
        else:  # rename the producing node's output (no copy)
            producer.output[list(producer.output).index(src)] = name
            for n in e.nodes:
                for i, x in enumerate(n.input):
                    if x == src:
                        n.input[i] = name
            e.names = {k: (name if x == src else x) for k, x in e.names.items()}
    defined = inputs | {i.name for i in e.inits.values()} | set(e.lazy) | {o for n in e.nodes for o in n.output}
    for n in e.nodes:
        for i in n.input:
            if i and i not in defined:
                raise KilnError(f"cannot export program {program.name!r}: {n.op_type} reads {i!r}, which is no "
                                "tensor (a KV cache read by an op other than the cache ops?)")
    read = {i for n in e.nodes for i in n.input}
    for name, make in e.lazy.items():
        if name in read:
            make()
    graph = helper.make_graph(
        e.nodes, program.name, [_value_info(e.value(a), a.type) for a in program.args],
        [_value_info(name, v.type) for name, v in outputs], initializer=list(e.inits.values()))
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if e.uses_ms else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="kiln", doc_string=doc)
    model.ir_version = 10
    spec = {
        "inputs": [{"name": e.value(a), "dtype": a.type.dtype.value, "shape": list(a.type.shape)}
                   for a in program.args],
        "outputs": [{"name": name, "dtype": v.type.dtype.value, "shape": list(v.type.shape)} for name, v in outputs],
        "cache": {e.value(a): f"{e.value(a)}_out" for a, _ in caches},
        "contrib_ops": sorted({n.op_type for n in e.nodes if n.domain == MS_DOMAIN}),
    }
    return model, spec


def write_onnx(module, programs: list[str], out: Path, say: Callable[[str], None]) -> tuple[dict, dict]:
    """``<program>.onnx`` for each of ``programs`` and the shared ``weights.bin`` in ``out``; checks each
    model with ``onnx.checker`` (full shape inference). Returns the descriptor's ``programs`` entry and
    its format-specific fields."""
    require_onnx()
    for name in programs:  # refuse before writing anything
        bad = unsupported(module[name])
        if bad:
            raise KilnError(f"cannot export program {name!r} to ONNX: no ONNX lowering for {', '.join(bad)}")
    store = WeightFile(out / WEIGHTS_FILE)
    files = {}
    try:
        for name in programs:
            say(f"lowering {name} to ONNX")
            model, spec = program_model(module[name], module.weights, store,
                                        doc=f"kiln program {name!r}; see kiln_export.json")
            path = out / f"{name}.onnx"
            onnx.save_model(model, str(path))
            files[name] = {"file": path.name, **spec}
    finally:
        store.close()
    for name in programs:
        say(f"checking {name}.onnx (onnx.checker, full shape inference)")
        try:
            onnx.checker.check_model(str(out / f"{name}.onnx"), full_check=True)
        except Exception as e:  # noqa: BLE001 - a checker failure is an exporter bug; report it in one line
            raise KilnError(f"the exported {name}.onnx does not pass onnx.checker: "
                            f"{str(e).strip().splitlines()[0][:300]}") from None
    return files, {"opset": OPSET, "weights": WEIGHTS_FILE}
