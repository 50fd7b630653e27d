"""The artifact: a directory holding a compiled module.

Layout::

    ART/manifest.json            format version, source model and hash, pipeline,
                                 every pass's options, timing, rule matches and
                                 decisions, target, and the sha256 of every file
    ART/ir/module.mlir           the final IR of every program
    ART/ir/00-frontend.mlir      the IR as lifted, before any pass
    ART/ir/NN-<pass>.mlir        the IR after each pass (``kiln dump --after``)
    ART/weights.safetensors      the weights the programs use (fused ones included)
    ART/tokenizer/...            the model's tokenizer files

Saving writes a temporary directory beside the target and renames it into
place, so a failure leaves nothing half-written. Loading checks the format
version and every file's hash, parses the IR (never executing anything from
the artifact) and loads weights from safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kiln.errors import KilnError
from kiln.ir.core import IRError, Module
from kiln.ir.printer import print_module

FORMAT_VERSION = 1
KILN_VERSION = "0.1.0"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_name(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


@dataclass
class Artifact:
    module: Module
    manifest: dict[str, Any]
    tokenizer_files: dict[str, bytes] = field(default_factory=dict)
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (label, IR text) in pipeline order
    path: Path | None = None

    # -- saving ---------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        dest = Path(path)
        if dest.exists() and not (dest / "manifest.json").is_file():
            raise KilnError(f"refusing to overwrite {str(dest)!r}: it exists and is not a kiln artifact")
        parent = dest.absolute().parent
        if not parent.is_dir():
            raise KilnError(f"cannot write {str(dest)!r}: directory {str(parent)!r} does not exist")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        try:
            files: dict[str, bytes] = {"ir/module.mlir": print_module(self.module).encode()}
            for i, (label, text) in enumerate(self.snapshots):
                files[f"ir/{i:02d}-{_safe_name(label)}.mlir"] = text.encode()
            for name, data in self.tokenizer_files.items():
                files[f"tokenizer/{_safe_name(name)}"] = data
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            used = self.module.used_weights()
            tensors, seen = {}, set()
            for name in sorted(used):
                t = self.module.weights[name].detach().cpu().contiguous()
                if t.data_ptr() in seen:
                    t = t.clone()
                seen.add(t.data_ptr())
                tensors[name] = t
            save_file(tensors, str(tmp / "weights.safetensors"), metadata={"format": "pt"})
            hashes = {rel: _sha256(data) for rel, data in files.items()}
            hashes["weights.safetensors"] = _file_sha256(tmp / "weights.safetensors")
            manifest = dict(self.manifest)
            manifest.update({"format_version": FORMAT_VERSION, "kiln_version": KILN_VERSION,
                             "programs": list(self.module.programs), "files": hashes,
                             "snapshots": [label for label, _ in self.snapshots]})
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            if dest.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=parent))
                old.rmdir()
                dest.rename(old)
                tmp.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = dest
        self.manifest = json.loads((dest / "manifest.json").read_text())
        return dest

    # -- using ------------------------------------------------------------------
    def runtime(self, device: str = "cpu"):
        from kiln.runtime.generate import Runtime

        return Runtime(self, device=device)

    def snapshot(self, label: str) -> str:
        """The IR after pass ``label``: a pass name (its last run), ``frontend``, or a snapshot index."""
        if label.isdigit() and int(label) < len(self.snapshots):
            return self.snapshots[int(label)][1]
        matches = [text for name, text in self.snapshots if name == label]
        if matches:
            return matches[-1]
        names = ", ".join(f"{i}:{n}" for i, (n, _) in enumerate(self.snapshots))
        raise KilnError(f"no IR after {label!r} in this artifact; snapshots: {names}")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: str | os.PathLike) -> Artifact:
    """Load and check an artifact directory."""
    from kiln.ir.parser import ParseError, parse_module
    from kiln.ir.verifier import verify_module

    root = Path(path)
    if not root.exists():
        raise KilnError(f"no artifact at {str(root)!r}")
    mpath = root / "manifest.json"
    if not root.is_dir() or not mpath.is_file():
        raise KilnError(f"{str(root)!r} is not a kiln artifact (no manifest.json); make one with `kiln compile`")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise KilnError(f"{mpath} is corrupt: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise KilnError(f"{mpath} is not a kiln manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise KilnError(f"{mpath} has no format_version")
    if version > FORMAT_VERSION:
        raise KilnError(f"{str(root)!r} uses artifact format {version}, newer than this kiln reads "
                        f"({FORMAT_VERSION}); upgrade kiln or recompile the model")
    for rel, digest in manifest["files"].items():
        f = (root / rel).resolve()
        if root.resolve() not in f.parents:
            raise KilnError(f"{mpath} lists a file outside the artifact: {rel!r}")
        if not f.is_file():
            raise KilnError(f"artifact {str(root)!r} is missing {rel}")
        if _file_sha256(f) != digest:
            raise KilnError(f"artifact file {rel} does not match its hash in manifest.json (corrupt or modified); "
                            "recompile the model")
    for required in ("ir/module.mlir", "weights.safetensors"):
        if required not in manifest["files"]:
            raise KilnError(f"{mpath} does not list {required}")
    try:
        module = parse_module((root / "ir/module.mlir").read_text())
    except ParseError as e:
        raise KilnError(f"{root / 'ir/module.mlir'}: {e}") from None
    from safetensors import safe_open

    weights: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(root / "weights.safetensors"), framework="pt") as f:
            for k in f.keys():  # noqa: SIM118 - safe_open is not iterable
                weights[k] = f.get_tensor(k)
    except Exception as e:  # noqa: BLE001 - any failure here is reported as a KilnError
        raise KilnError(f"cannot read {root / 'weights.safetensors'}: {e}") from None
    module.weights = weights
    module.meta = dict(manifest.get("model", {}))
    try:
        verify_module(module)
    except IRError as e:
        raise KilnError(f"artifact {str(root)!r} holds invalid IR: {e}") from None
    tok = {p.name: p.read_bytes() for p in sorted((root / "tokenizer").glob("*")) if f"tokenizer/{p.name}" in
           manifest["files"]}
    snaps = []
    for i, label in enumerate(manifest.get("snapshots", [])):
        rel = f"ir/{i:02d}-{_safe_name(label)}.mlir"
        if rel in manifest["files"]:
            snaps.append((label, (root / rel).read_text()))
    return Artifact(module, manifest, tok, snaps, root)
