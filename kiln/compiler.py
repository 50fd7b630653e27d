"""``kiln.compile``: frontend, pass pipeline, artifact. The one function the
CLI's ``compile`` and the Python API share."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kiln.errors import KilnError
from kiln.ir.aten_policy import generic_ops
from kiln.ir.printer import print_module
from kiln.passes.manager import PIPELINES, PassManager, parse_passes, pipeline_passes
from kiln.runtime.artifact import Artifact

TARGETS = ("cpu", "cuda")


def compile(model: str, pipeline: str | None = "default", passes: str | list[str] | None = None,
            target: str = "cpu", draft: str | None = None, dump_dir: str | Path | None = None, seed: int = 0,
            progress: Callable[[str], None] | None = None, spec_k: int | None = None,
            spec_adaptive: float | None = None, spec_tree: int | None = None,
            spec_skip: int | None = None) -> Artifact:
    """Compile a preset name or a Hugging Face model directory into an artifact (in memory; ``.save`` it).

    ``draft`` adds speculative decoding: a draft model (preset or directory sharing the target's
    tokenizer), ``"self"`` (the target with layers skipped) or ``"ngram"`` (model-free); ``spec_*``
    set the ``speculative`` pass's options (draft length, adaptive threshold, n-gram tree node budget,
    layers to skip)."""
    if not 0 <= seed < 2**63:
        raise KilnError(f"seed must be in [0, 2**63), got {seed}")
    if target not in TARGETS:
        raise KilnError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if passes is not None and pipeline not in (None, "default"):
        raise KilnError("give either a pipeline or a pass list, not both")
    if passes is not None:
        pass_objs = parse_passes(passes)
        pipeline_name = "custom"
    else:
        pipeline_name = pipeline or "default"
        pass_objs = pipeline_passes(pipeline_name)
    spec_opts = {k: v for k, v in (("k", spec_k), ("adaptive", spec_adaptive), ("tree", spec_tree),
                                   ("skip", spec_skip)) if v is not None}
    if draft is not None:
        from kiln.passes.speculative import Speculative

        if not isinstance(draft, str) or not draft.strip():
            raise KilnError("--draft needs a model directory or preset, 'self' or 'ngram'")
        if any(isinstance(p, Speculative) for p in pass_objs):
            raise KilnError("give --draft or a speculative pass in --passes, not both")
        drafter = draft if draft in ("self", "ngram") else "model"
        pass_objs = [*pass_objs, Speculative(drafter=drafter, **spec_opts)]
    elif spec_opts:
        raise KilnError("--spec-k, --spec-adaptive, --spec-tree and --spec-skip need --draft")
    if target == "cuda":  # the Triton target: group ops into kernels last (the CPU executor ignores the labels)
        from kiln.passes.kernel_fusion import GroupKernels

        if not any(isinstance(p, GroupKernels) for p in pass_objs):
            pass_objs = [*pass_objs, GroupKernels()]
    from kiln.frontend import import_model

    t0 = time.perf_counter()
    imported = import_model(model, seed=seed, progress=progress)
    t_front = time.perf_counter() - t0
    module = imported.module
    _prepare_speculative(pass_objs, pass_objs_before(pass_objs), imported, draft, seed, progress)
    snapshots = [("frontend", print_module(module))]
    records = PassManager(pass_objs, verify=True, dump_dir=dump_dir, progress=progress).run(module)
    snapshots += [(r.name, r.ir_after) for r in records]
    loaded = imported.loaded
    manifest = {
        "source": {"model": loaded.source, "sha256": loaded.source_hash, "family": loaded.family, "seed": seed,
                   "config": loaded.config.to_dict() if hasattr(loaded.config, "to_dict") else {}},
        "model": dict(module.meta),
        "pipeline": {"name": pipeline_name, "passes": [p.name for p in pass_objs],
                     "description": PIPELINES.get(pipeline_name, ("explicit pass list", []))[0]},
        "passes": [r.manifest() for r in records],
        "frontend": {"seconds": round(t_front, 3),
                     "lift_matches": dict(imported.lift_report.matches),
                     "unrecognised": imported.lift_report.unrecognised,
                     "aten_left_generic_by_translation": imported.translated_generic,
                     "generic_ops": imported.generic_ops()},
        "target": target,
        "cost_model": {"used": False, "note": "no cost model yet: passes use their documented defaults"},
    }
    manifest["generic_ops"] = generic_ops(module)
    kernels: dict[str, str] = {}
    if target == "cuda":
        from kiln.codegen.triton import generate_module

        kernels = generate_module(module)
        manifest["kernels"] = {"generator": "kiln/codegen/triton", "files": sorted(kernels),
                               "note": "for inspection only: the runtime regenerates kernels from the IR"}
    else:  # the C each program compiles to (kiln/codegen/cstep.py)
        from kiln.codegen.cstep import module_sources

        kernels = module_sources(module)
        if kernels:
            manifest["kernels"] = {"generator": "kiln/codegen/cstep", "files": sorted(kernels),
                                   "note": "for inspection only: the runtime regenerates the C from the IR"}
    return Artifact(module, manifest, dict(loaded.tokenizer_files), snapshots, kernel_sources=kernels)


def pass_objs_before(passes: list) -> list:
    """The passes that run before the first ``speculative`` pass (the draft model gets the same)."""
    from kiln.passes.speculative import Speculative

    out = []
    for p in passes:
        if isinstance(p, Speculative):
            break
        out.append(p)
    return out


def _prepare_speculative(passes, before, imported, draft, seed, progress) -> None:
    """Give a ``speculative`` pass what it cannot get from options: the compiled draft model (compiled
    with the passes that precede it, so both share a cache layout) or held-out calibration windows."""
    from kiln.passes.manager import PassManager
    from kiln.passes.speculative import Speculative

    for p in passes:
        if not isinstance(p, Speculative):
            continue
        if p.drafter == "model":
            if draft in (None, "self", "ngram"):
                raise KilnError("the speculative pass with drafter=model needs the draft model: use --draft MODEL")
            from kiln.frontend import import_model

            say = progress or (lambda s: None)
            say(f"draft model: {draft}")
            d = import_model(draft, seed=seed, progress=progress)
            fresh = [type(q)(**q.options()) for q in before]  # same passes and options, fresh stats
            PassManager(fresh, verify=True, keep_ir=False).run(d.module)
            p.draft_module = d.module
            p.draft_source = d.loaded.source
        elif p.drafter == "self":
            from kiln.codegen.cpu import CpuProgram

            p.calibration = calibration_windows(imported.loaded.tokenizer_files)
            p.evaluate = lambda program, weights, *args: CpuProgram(program, weights)(*args)  # the CPU target


def calibration_windows(tokenizer_files: dict, windows: int = 4, length: int = 128):
    """[windows, length] token ids of held-out stdlib text (kiln.data), or None without a tokenizer.json."""
    import torch

    from kiln import data

    blob = tokenizer_files.get("tokenizer.json")
    if blob is None:
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(blob.decode() if isinstance(blob, bytes) else blob)
    ids: list[int] = []
    for f in data.heldout_files(64 * 1024):
        ids += tok.encode(f.text, add_special_tokens=False).ids
        if len(ids) >= windows * length:
            break
    if len(ids) < length:
        return None
    n = min(windows, len(ids) // length)
    return torch.tensor(ids[:n * length]).view(n, length)
