"""The pass manager: pipelines by name or as an explicit list, the verifier
after every pass, optional IR dumps before and after each pass, and per-pass
timing and rule-match counts (all of which end up in the artifact manifest).

A pass list is text: ``"cse,dce"`` or with options ``"fuse-qkv,dce"``;
options use MLIR's spelling, ``name{key=value,other=value}``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import ExecError, KilnError
from kiln.ir.core import IRError, Module
from kiln.ir.printer import print_module
from kiln.ir.verifier import verify_module
from kiln.passes.base import PASSES, Pass

PIPELINES: dict[str, tuple[str, list[str]]] = {
    "none": ("no rewriting: the lifted IR as captured", []),
    "cleanup": ("exact clean-up only", ["canonicalize", "fold-constants", "cse", "dce"]),
    "default": ("clean-up, QKV and gate/up fusion, then prefill/decode over a contiguous KV cache",
                ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize",
                 "cse", "dce", "kv-cache", "canonicalize", "dce"]),
    "paged": ("as default, with a paged KV cache (blocks of 16 positions from a shared pool)",
              ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize",
               "cse", "dce", "kv-cache{layout=paged,block_size=16}", "canonicalize", "dce"]),
    "int8": ("as default, with int8 weights (per output channel; embedding and lm_head included)",
             ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize", "cse",
              "dce", "quantize-weights{format=int8}", "cse", "dce", "kv-cache", "canonicalize", "dce"]),
    "int4": ("as default, with int4 weights (groups of 32, symmetric; embedding and lm_head included)",
             ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize", "cse",
              "dce", "quantize-weights{format=int4,group_size=32}", "cse", "dce", "kv-cache", "canonicalize",
              "dce"]),
    "int8-kv": ("as default, with an int8 KV cache (a scale per token and kv head)",
                ["canonicalize", "fold-constants", "cse", "dce", "fuse-qkv", "fuse-gate-up", "canonicalize",
                 "cse", "dce", "kv-cache", "quantize-kv", "canonicalize", "dce"]),
}


def load_passes() -> dict[str, type[Pass]]:
    import kiln.passes.cleanup
    import kiln.passes.fusion
    import kiln.passes.kernel_fusion
    import kiln.passes.kv_cache
    import kiln.passes.quantize
    import kiln.passes.speculative  # noqa: F401

    return PASSES


_ITEM = re.compile(r"\s*([A-Za-z0-9_-]+)\s*(\{([^}]*)\})?\s*(,|$)")


def _convert(text: str, typ: Any) -> Any:
    if typ in (bool, "bool"):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"{text!r} is not a bool")
    if typ in (int, "int"):
        return int(text)
    if typ in (float, "float"):
        return float(text)
    return text


def parse_passes(spec: str | list[str]) -> list[Pass]:
    """Instantiate passes from ``"a,b{k=v}"`` or a list of such items."""
    registry = load_passes()
    items = spec if isinstance(spec, list) else [spec]
    if not any(item.strip() for item in items):
        raise KilnError("the pass list is empty; give pass names (`kiln pipelines` lists them) or --pipeline none")
    out: list[Pass] = []
    for item in items:
        pos = 0
        item = item.strip()
        while pos < len(item):
            m = _ITEM.match(item, pos)
            if not m or m.end() == pos:
                raise KilnError(f"cannot parse pass list {item!r} at {item[pos:]!r}; write name or name{{key=value}}")
            name, opts = m.group(1), m.group(3)
            if name not in registry:
                raise KilnError(f"unknown pass {name!r}; known passes: {', '.join(sorted(registry))}")
            cls = registry[name]
            kwargs: dict[str, Any] = {}
            fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
            for kv in filter(None, (s.strip() for s in (opts or "").split(","))):
                key, _, val = kv.partition("=")
                key = key.strip()
                if key not in fields:
                    raise KilnError(f"pass {name!r} has no option {key!r}; options: {', '.join(fields) or 'none'}")
                try:
                    kwargs[key] = _convert(val.strip(), fields[key].type)
                except ValueError as e:
                    raise KilnError(f"pass {name!r} option {key!r}: {e}") from None
            out.append(cls(**kwargs))
            pos = m.end()
    return out


def pipeline_passes(name: str) -> list[Pass]:
    if name not in PIPELINES:
        raise KilnError(f"unknown pipeline {name!r}; `kiln pipelines` lists: {', '.join(PIPELINES)}")
    return parse_passes(PIPELINES[name][1]) if PIPELINES[name][1] else []


@dataclass
class PassRecord:
    name: str
    options: dict[str, Any]
    changed: bool
    seconds: float
    stats: dict[str, int]
    decisions: dict[str, Any]
    ir_after: str = field(default="", repr=False)

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "changed": self.changed,
                "seconds": round(self.seconds, 6), "rule_matches": self.stats, "decisions": self.decisions}


class PassManager:
    def __init__(self, passes: list[Pass], verify: bool = True, dump_dir: str | Path | None = None,
                 keep_ir: bool = True, progress: Callable[[str], None] | None = None):
        self.passes = passes
        self.verify = verify
        self.dump_dir = Path(dump_dir) if dump_dir else None
        self.keep_ir = keep_ir
        self.progress = progress

    def _dump(self, name: str, text: str) -> None:
        if self.dump_dir is not None:
            try:
                self.dump_dir.mkdir(parents=True, exist_ok=True)
                (self.dump_dir / name).write_text(text)
            except OSError as e:
                raise KilnError(f"cannot write IR dumps to {str(self.dump_dir)!r}: {e.strerror or e}") from None

    def run(self, module: Module) -> list[PassRecord]:
        records: list[PassRecord] = []
        if self.verify:
            verify_module(module)
        printing = self.keep_ir or self.dump_dir is not None
        text = print_module(module) if self.dump_dir is not None else ""  # the IR each pass starts from
        self._dump("00-input.mlir", text)
        for i, p in enumerate(self.passes, 1):
            if self.progress:
                self.progress(f"pass {i}/{len(self.passes)}: {p.name}")
            self._dump(f"{i:02d}-before-{p.name}.mlir", text)
            t0 = time.perf_counter()
            try:
                changed = bool(p.apply(module))
            except ExecError:
                raise  # an op failed while a program ran (the CLI adds its hint), as before
            except KilnError as e:
                raise KilnError(f"pass {p.name!r} failed: {e}") from None
            dt = time.perf_counter() - t0
            if self.verify:
                try:
                    verify_module(module)
                except IRError as e:
                    raise KilnError(f"the IR after pass {p.name!r} is invalid: {e}") from None
            text = print_module(module) if printing else ""  # printed once: after this pass, before the next
            self._dump(f"{i:02d}-after-{p.name}.mlir", text)
            records.append(PassRecord(p.name, p.options(), changed, dt, dict(p.stats), dict(p.decisions),
                                      text if self.keep_ir else ""))
        return records
