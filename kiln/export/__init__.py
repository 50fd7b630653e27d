"""``kiln export ART --format onnx|mlir-torch|mlir-linalg -o DIR``: an artifact's programs in other
ecosystems' formats.

- ``onnx`` (kiln/export/onnx_export.py): ``forward.onnx``, ``prefill.onnx``, ``decode.onnx`` lowered op by op
  from the artifact's optimised IR, the KV cache as explicit inputs and outputs, the weights once in
  ``weights.bin`` (ONNX external data), the tokenizer files, and ``kiln_export.json``, which says how
  to drive them (inputs, outputs, which output feeds which cache input, the cache's shape).
- ``mlir-torch`` / ``mlir-linalg`` (kiln/export/mlir.py): each program through torch-mlir's FX importer
  into the ``torch`` dialect, and for ``mlir-linalg`` lowered to linalg-on-tensors by torch-mlir's own
  pipeline.

Only the programs a plain runtime drives are exported (``forward``, ``prefill``, ``decode``); the
speculative ones are listed in ``kiln_export.json`` as skipped. See docs/export.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kiln._version import __version__
from kiln.errors import KilnError

FORMATS = ("onnx", "mlir-torch", "mlir-linalg")
PROGRAMS = ("forward", "prefill", "decode")
DESCRIPTOR = "kiln_export.json"


def check_output_dir(out: Path) -> None:
    """Refuse an output that is a file, or a non-empty directory that is not an earlier export."""
    if out.exists():
        if not out.is_dir():
            raise KilnError(f"cannot export to {str(out)!r}: it exists and is not a directory")
        if any(out.iterdir()) and not (out / DESCRIPTOR).is_file():
            raise KilnError(f"cannot export to {str(out)!r}: the directory is not empty and holds no earlier "
                            f"export ({DESCRIPTOR}); choose a new or empty directory")


def export(artifact, fmt: str, out: str | Path, progress: Callable[[str], None] | None = None) -> dict:
    """Export ``artifact`` (a loaded kiln artifact) to directory ``out`` in format ``fmt``; returns the
    descriptor written to ``out/kiln_export.json``."""
    if fmt not in FORMATS:
        raise KilnError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    say = progress or (lambda msg: None)
    out = Path(out)
    check_output_dir(out)
    module = artifact.module
    programs = [p for p in PROGRAMS if p in module.programs]
    skipped = [p for p in module.programs if p not in PROGRAMS]
    t0 = time.perf_counter()
    # build everything in a directory beside ``out`` first: a refused op leaves nothing half-written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the export is an ordinary directory
    try:
        if fmt == "onnx":
            from kiln.export.onnx_export import write_onnx

            files, extra = write_onnx(module, programs, tmp, say)
        else:
            from kiln.export.mlir import write_mlir

            files, extra = write_mlir(module, programs, tmp, fmt, say)
        if artifact.tokenizer_files:
            (tmp / "tokenizer").mkdir()
            for name, data in artifact.tokenizer_files.items():
                (tmp / "tokenizer" / name).write_bytes(data)
        meta = artifact.manifest.get("model", {})
        desc = {
            "format": fmt,
            "kiln_version": __version__,
            "source": {k: artifact.manifest.get("source", {}).get(k) for k in ("model", "family")},
            "pipeline": artifact.manifest.get("pipeline", {}).get("name"),
            "model": {k: meta.get(k) for k in ("vocab_size", "max_positions", "bos_token_id", "eos_token_id")},
            "kv_cache": meta.get("kv_cache"),
            **extra,
            "programs": files,
            "skipped_programs": skipped,
            "tokenizer": "tokenizer/tokenizer.json" if "tokenizer.json" in artifact.tokenizer_files else None,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        (tmp / DESCRIPTOR).write_text(json.dumps(desc, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return desc
