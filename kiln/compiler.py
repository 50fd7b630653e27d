"""``kiln.compile``: frontend, pass pipeline, artifact. The one function the
CLI's ``compile`` and the Python API share."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kiln.errors import KilnError
from kiln.ir.printer import print_module
from kiln.passes.manager import PIPELINES, PassManager, parse_passes, pipeline_passes
from kiln.runtime.artifact import Artifact

TARGETS = ("cpu", "cuda")


def compile(model: str, pipeline: str | None = "default", passes: str | list[str] | None = None,
            target: str = "cpu", draft: str | None = None, dump_dir: str | Path | None = None, seed: int = 0,
            progress: Callable[[str], None] | None = None) -> Artifact:
    """Compile a preset name or a Hugging Face model directory into an artifact (in memory; ``.save`` it)."""
    if not 0 <= seed < 2**63:
        raise KilnError(f"seed must be in [0, 2**63), got {seed}")
    if target not in TARGETS:
        raise KilnError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "cuda":
        raise KilnError("target 'cuda' needs the Triton code generator, which is not built yet; use --target cpu")
    if draft is not None:
        raise KilnError("speculative decoding (--draft) is not built yet; compile without --draft")
    if passes is not None and pipeline not in (None, "default"):
        raise KilnError("give either a pipeline or a pass list, not both")
    if passes is not None:
        pass_objs = parse_passes(passes)
        pipeline_name = "custom"
    else:
        pipeline_name = pipeline or "default"
        pass_objs = pipeline_passes(pipeline_name)
    from kiln.frontend import import_model

    t0 = time.perf_counter()
    imported = import_model(model, seed=seed, progress=progress)
    t_front = time.perf_counter() - t0
    module = imported.module
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
    manifest["generic_ops"] = _generic(module)
    return Artifact(module, manifest, dict(loaded.tokenizer_files), snapshots)


def _generic(module) -> dict[str, int]:
    """Generic ops per ATen target, counted in the program that has most of them (prefill and decode
    are rewritten copies of forward, so summing would count one model op three times)."""
    out: dict[str, int] = {}
    for p in module.programs.values():
        here: dict[str, int] = {}
        for op in p.walk("kiln.aten"):
            here[op.attrs["target"]] = here.get(op.attrs["target"], 0) + 1
        for k, v in here.items():
            out[k] = max(out.get(k, 0), v)
    return out
