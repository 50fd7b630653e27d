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
import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kiln._version import __version__
from kiln.codegen.native import unpacked
from kiln.errors import ArtifactError, KilnError
from kiln.ir.aten_policy import generic_ops
from kiln.ir.core import IRError, Module
from kiln.ir.printer import print_module

FORMAT_VERSION = 1
KILN_VERSION = __version__


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
    kernel_sources: dict[str, str] = field(default_factory=dict)  # Triton source per program, for reading only

    # -- saving ---------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the artifact to directory ``path``, replacing an artifact already there.

        The files go to a temporary directory beside ``path`` that is renamed into place, so that a
        reader sees the old artifact or the new one, never a mix. Concurrent saves to one path each
        succeed in turn (the last one stays) or fail with a ``KilnError``; a failed or interrupted
        replace puts the old artifact back, and leftovers of saves that died (their process is gone)
        are cleaned up by the next save to the same path."""
        from safetensors.torch import save_file

        dest = Path(path)
        parent = check_destination(dest)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{_owner()}-", dir=parent))
        except OSError as e:
            raise KilnError(f"cannot write in {str(parent)!r}: {e.strerror or e}") from None
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(tmp, 0o777 & ~umask)
            files: dict[str, bytes] = {"ir/module.mlir": print_module(self.module).encode()}
            for i, (label, text) in enumerate(self.snapshots):
                files[f"ir/{i:02d}-{_safe_name(label)}.mlir"] = text.encode()
            for name, data in self.tokenizer_files.items():
                files[f"tokenizer/{_safe_name(name)}"] = data
            for name, text in self.kernel_sources.items():
                files[f"kernels/{_safe_name(name)}"] = text.encode()
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            used = self.module.used_weights()
            tensors, seen = {}, set()
            for name in sorted(used):
                t = unpacked(self.module.weights[name]).detach().cpu().contiguous()
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
            manifest_text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            (tmp / "manifest.json").write_text(manifest_text)
            os.chmod(tmp / "weights.safetensors", 0o666 & ~umask)
            _put_in_place(tmp, dest, parent)
        except BaseException:  # an OSError (disk full, ...) stays one: `kiln` reports ENOSPC and the like as such
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.path = dest
        self.manifest = json.loads(manifest_text)
        return dest

    # -- using ------------------------------------------------------------------
    def runtime(self, device: str = "cpu", **kw):
        """A ``Runtime`` for this artifact (keywords: ``cache_tokens``, ``prefill_chunk``, ``speculative``)."""
        from kiln.runtime.generate import Runtime

        return Runtime(self, device=device, **kw)

    def snapshot(self, label: str) -> str:
        """The IR after pass ``label``: a pass name (its last run), ``frontend``, or a snapshot index."""
        if label.isascii() and label.isdigit() and int(label) < len(self.snapshots):
            return self.snapshots[int(label)][1]
        matches = [text for name, text in self.snapshots if name == label]
        if matches:
            return matches[-1]
        names = ", ".join(f"{i}:{n}" for i, (n, _) in enumerate(self.snapshots))
        raise KilnError(f"no IR after {label!r} in this artifact; snapshots: {names}")


def is_artifact(path: Path) -> bool:
    """Whether ``path`` holds a kiln artifact (a manifest kiln wrote), so that saving may replace it."""
    try:
        m = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and "kiln_version" in m and "format_version" in m and isinstance(m.get("files"), dict)


def check_destination(dest: Path) -> Path:
    """Refuse, before any work, an artifact path that saving could not write or must not replace;
    the directory the artifact goes in."""
    dest = Path(dest)
    shown = str(dest)
    if not shown or dest.name in ("", ".", ".."):
        raise KilnError(f"cannot write an artifact at {shown!r}: give a directory name to create, e.g. model.kiln")
    if os.path.lexists(dest):
        if not is_artifact(dest):
            what = "a directory" if dest.is_dir() else "a file" if dest.exists() else "a broken link"
            raise KilnError(f"refusing to overwrite {shown!r}: it exists ({what}) and is not a kiln artifact")
        cwd = Path.cwd().resolve()
        if dest.resolve() == cwd or dest.resolve() in cwd.parents:
            raise KilnError(f"refusing to replace {shown!r}: it is the current directory or contains it")
    parent = dest.absolute().parent
    if not parent.exists():
        raise KilnError(f"cannot write {shown!r}: directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise KilnError(f"cannot write {shown!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise KilnError(f"cannot write {shown!r}: directory {str(parent)!r} is not writable")
    return parent


# -- replacing an artifact safely -------------------------------------------------
# A save writes ``.NAME.tmp-PID-HOST-XXXX`` beside the artifact and renames it to NAME; an artifact
# already there is first renamed to ``.NAME.old-PID-HOST-XXXX`` and removed once the new one is in
# place. The renames of all saves into one directory take a lock on that directory (flock), so that
# concurrent saves replace one another in turn. A leftover whose process (PID on this HOST) is gone,
# or, when that cannot be told, that has not changed for STALE_AFTER_S seconds, is stale: the next
# save removes it -- except an ``.old`` one whose artifact is missing, which it puts back.
STALE_AFTER_S = 15 * 60


def _host_tag() -> str:
    import socket

    return hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _owner() -> str:
    return f"{os.getpid()}-{_host_tag()}"


def _leftover(name: str, artifact: str) -> tuple[str, int | None, str | None] | None:
    """(kind, pid, host) when ``name`` is a save leftover of artifact ``artifact`` (pid and host are None
    for one whose owner is unknown: written by an older kiln)."""
    import re

    for kind in ("tmp", "old"):
        prefix = f".{artifact}.{kind}-"
        if name.startswith(prefix):
            rest = name[len(prefix):]
            m = re.fullmatch(r"(\d{1,10})-([0-9a-f]{8})-[A-Za-z0-9_]+", rest)
            if m:
                return kind, int(m.group(1)), m.group(2)
            if re.fullmatch(r"[A-Za-z0-9_]{8}", rest):
                return kind, None, None
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def _last_change(path: Path) -> float:
    """The newest mtime of a directory and its entries (a weights file grows while its directory stays)."""
    try:
        times = [path.lstat().st_mtime]
        if path.is_dir() and not path.is_symlink():
            times += [e.stat(follow_symlinks=False).st_mtime for e in os.scandir(path)]
        return max(times)
    except OSError:
        return float("inf")  # changing under us: not stale


def _is_stale(path: Path, pid: int | None, host: str | None) -> bool:
    import time

    if pid is not None and host == _host_tag():
        return pid != os.getpid() and not _pid_alive(pid)  # this process: another thread is saving
    return time.time() - _last_change(path) > STALE_AFTER_S


def _clean_leftovers(dest: Path, parent: Path) -> None:
    """Remove stale leftovers of interrupted saves to ``dest``; put back an old artifact that an
    interrupted replace left aside when ``dest`` is missing. Call with the directory lock held."""
    olds = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for e in entries:
        info = _leftover(e.name, dest.name)
        if info is None or not _is_stale(Path(e.path), info[1], info[2]):
            continue
        if info[0] == "old":
            olds.append(Path(e.path))
        else:
            shutil.rmtree(e.path, ignore_errors=True)
    olds.sort(key=_last_change, reverse=True)
    if olds and not os.path.lexists(dest) and is_artifact(olds[0]):
        try:
            os.rename(olds.pop(0), dest)
        except OSError:
            return  # keep every old one: none may be lost
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def recover_interrupted_save(path: str | os.PathLike) -> bool:
    """Put back the artifact at ``path`` when a save that was replacing it died between moving it
    aside and putting the new one in place (a kill -9, a power cut); whether it did."""
    dest = Path(path)
    if os.path.lexists(dest) or not dest.absolute().parent.is_dir():
        return False
    parent = dest.absolute().parent
    with _dir_lock(parent):
        _clean_leftovers(dest, parent)
    return os.path.lexists(dest)


class _dir_lock:
    """An exclusive flock on a directory, for the renames of a save (no lock where flock is missing)."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self):
        try:
            import fcntl

            self.fd = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock here (another OS, some network file systems): go unlocked
            pass
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def _put_in_place(tmp: Path, dest: Path, parent: Path) -> None:
    """Rename the finished ``tmp`` to ``dest``, replacing an artifact there; the old one is put back
    if the new one cannot be put in place (an error, an interrupt)."""
    import secrets

    old = None
    with _dir_lock(parent):
        _clean_leftovers(dest, parent)
        if os.path.lexists(dest):
            if not is_artifact(dest):  # something else appeared there while we compiled
                raise KilnError(f"refusing to overwrite {str(dest)!r}: it exists and is not a kiln artifact")
            old = parent / f".{dest.name}.old-{_owner()}-{secrets.token_hex(4)}"
        try:
            if old is not None:
                try:
                    os.rename(dest, old)
                except FileNotFoundError:  # removed meanwhile by someone not taking the lock
                    old = None
            os.rename(tmp, dest)
        except BaseException as e:
            if old is not None and os.path.lexists(old):
                try:
                    os.rename(old, dest)
                except OSError:
                    raise KilnError(f"could not put the new artifact in place at {str(dest)!r}, nor the old one "
                                    f"back; the old one is in {str(old)!r}") from None
            if isinstance(e, OSError):
                raise KilnError(f"cannot put the new artifact in place at {str(dest)!r}: {e.strerror or e} "
                                "(is another process writing the same path?)") from None
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_MANIFEST_BYTES = 16 << 20


def load(path: str | os.PathLike, verify_key: bytes | str | os.PathLike | None = None) -> Artifact:
    """Load and check an artifact directory. ``verify_key`` (the key's bytes, or a key file's path)
    refuses an artifact not signed with that key (``kiln compile --sign``; kiln/runtime/signing.py)."""
    from kiln.ir.parser import ParseError, parse_module
    from kiln.ir.verifier import verify_program

    root = Path(path)
    if not root.exists():
        try:  # a save killed mid-replace left the artifact aside (.NAME.old-*): put it back
            recovered = recover_interrupted_save(root)
        except OSError:
            recovered = False
        if not recovered:
            raise ArtifactError(f"no artifact at {str(root)!r}")
    mpath = root / "manifest.json"
    if not root.is_dir() or not mpath.is_file():
        raise ArtifactError(f"{str(root)!r} is not a kiln artifact (no manifest.json); make one with `kiln compile`")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise ArtifactError(f"{mpath} is over {MAX_MANIFEST_BYTES >> 20} MiB; not a manifest kiln wrote")
    raw = mpath.read_bytes()
    if verify_key is not None:
        from kiln.runtime import signing

        key = verify_key if isinstance(verify_key, bytes) else signing.read_key(verify_key)
        signing.verify(root, raw, key)  # before anything else in the artifact is read
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ArtifactError(f"{mpath} is corrupt: {_short(e)}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{mpath} is not a kiln manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f"{mpath} has no format_version")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{str(root)!r} uses artifact format {version}, newer than this kiln reads "
                        f"({FORMAT_VERSION}); upgrade kiln or recompile the model")
    if version != FORMAT_VERSION:  # there is no format before 1, and none between
        raise ArtifactError(f"{mpath} has an invalid format_version {version} (this kiln reads format "
                        f"{FORMAT_VERSION}); recompile the model")
    for key in ("model", "source", "pipeline"):
        if not isinstance(manifest.get(key, {}), dict):
            raise ArtifactError(f"{mpath}: {key!r} is not an object")
    snap_labels = manifest.get("snapshots", [])
    if not isinstance(snap_labels, list) or not all(isinstance(s, str) for s in snap_labels):
        raise ArtifactError(f"{mpath}: 'snapshots' is not a list of names")
    for rel, digest in manifest["files"].items():
        if not isinstance(digest, str) or "\x00" in rel:
            raise ArtifactError(f"{mpath}: bad entry for {rel!r} in 'files'")
        if rel != posixpath.normpath(rel) or rel.startswith("/"):  # one name per file: no aliases to hash twice
            raise ArtifactError(f"{mpath}: 'files' lists {rel!r}, which is not a plain relative path")
        f = (root / rel).resolve()
        if root.resolve() not in f.parents:
            raise ArtifactError(f"{mpath} lists a file outside the artifact: {rel!r}")
        if not f.is_file():
            raise ArtifactError(f"artifact {str(root)!r} is missing {rel}")
        if _file_sha256(f) != digest:
            raise ArtifactError(f"artifact file {rel} does not match its hash in manifest.json (corrupt or modified); "
                            "recompile the model")
    for required in ("ir/module.mlir", "weights.safetensors"):
        if required not in manifest["files"]:
            raise ArtifactError(f"{mpath} does not list {required}")
    module = _parse_file(root / "ir/module.mlir", parse_module, ParseError)
    from safetensors import safe_open

    from kiln.limits import check_fits

    check_fits((root / "weights.safetensors").stat().st_size, f"the weights of {str(root)!r}",
               hint="this machine cannot hold the model")  # before reading them (a sparse file looks small on disk)
    weights: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(root / "weights.safetensors"), framework="pt") as f:
            for k in f.keys():  # noqa: SIM118 - safe_open is not iterable
                weights[k] = f.get_tensor(k)
    except Exception as e:  # noqa: BLE001 - any failure here is reported as a KilnError
        raise ArtifactError(f"cannot read {root / 'weights.safetensors'}: {e}") from None
    module.weights = weights
    module.meta = dict(manifest.get("model", {}))
    try:
        for program in module.programs.values():
            verify_program(program, weights)  # every weight op must name a tensor of its type
    except IRError as e:
        raise ArtifactError(f"artifact {str(root)!r} holds invalid IR: {e}") from None
    _check_signature(root, module)
    _check_manifest_against_ir(root, manifest, module)
    tok = {p.name: p.read_bytes() for p in sorted((root / "tokenizer").glob("*")) if f"tokenizer/{p.name}" in
           manifest["files"]}
    snaps = []
    for i, label in enumerate(snap_labels):
        rel = f"ir/{i:02d}-{_safe_name(label)}.mlir"
        if rel in manifest["files"]:
            try:
                snaps.append((label, (root / rel).read_text()))
            except UnicodeDecodeError:
                raise ArtifactError(f"artifact file {rel} is not UTF-8 text") from None
    kernels = {}
    for rel in manifest["files"]:
        if rel.startswith("kernels/"):
            try:
                kernels[rel.removeprefix("kernels/")] = (root / rel).read_text()
            except UnicodeDecodeError:
                raise ArtifactError(f"artifact file {rel} is not UTF-8 text") from None
    return Artifact(module, manifest, tok, snaps, root, kernels)


def _short(e: Exception) -> str:
    return str(e)[:200]


def _check_manifest_against_ir(root: Path, manifest: dict, module: Module) -> None:
    """The manifest's claims that the runtime acts on must agree with the IR: the generic ops it
    reports (what `kiln compile` showed the user), and the sizes the runtime allocates for."""
    where = f"artifact {str(root)!r}"
    listed = manifest.get("generic_ops", {})
    actual = generic_ops(module)
    if not isinstance(listed, dict) or set(listed) != set(actual):
        raise ArtifactError(f"{where}: its IR runs generic ops {sorted(actual) or 'none'} but its manifest lists "
                        f"{sorted(listed) if isinstance(listed, dict) else listed!r}; refusing a modified artifact")
    meta = manifest.get("model", {})
    from kiln.limits import SIZE_LIMITS

    for key, limit in (("max_positions", SIZE_LIMITS["positions"]), ("vocab_size", SIZE_LIMITS["vocabulary size"])):
        v = meta.get(key)
        if v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= limit:
            raise ArtifactError(f"{where}: manifest model.{key} = {v!r} is not an integer in [1, {limit}]")
    vocab = module["forward"].outputs[0].type.shape[-1]
    if isinstance(vocab, int) and meta.get("vocab_size") not in (None, vocab):
        raise ArtifactError(f"{where}: manifest model.vocab_size = {meta['vocab_size']} but 'forward' returns "
                        f"{vocab} logits per token")
    info = meta.get("kv_cache")
    if info is not None:
        from kiln.runtime.kvcache import check_cache_info

        check_cache_info(info, meta.get("max_positions"), where)


# The IR of the largest model kiln compiles is a few MiB; a far larger file is refused before parsing
# (each byte of hostile IR can cost parser and verifier work).
MAX_IR_BYTES = 64 << 20


def _parse_file(path: Path, parse, parse_error: type[Exception]):
    if path.stat().st_size > MAX_IR_BYTES:
        from kiln.limits import fmt_bytes

        raise ArtifactError(f"{path} is over {fmt_bytes(MAX_IR_BYTES)}; not IR kiln wrote")
    try:
        return parse(path.read_text())
    except UnicodeDecodeError:
        raise ArtifactError(f"{path} is not UTF-8 text") from None
    except RecursionError:
        raise ArtifactError(f"{path}: the IR is nested too deeply to parse") from None
    except (parse_error, ValueError) as e:
        raise ArtifactError(f"{path}: {e}") from None


def _check_signature(root: Path, module: Module) -> None:
    """The runtime's contract with the ``forward`` program: ids [B, T] in, logits [B, T, V] out."""
    from kiln.ir.types import DType

    where = f"artifact {str(root)!r}"
    if "forward" not in module.programs:
        raise ArtifactError(f"{where} has no 'forward' program (it has: {', '.join(module.programs) or 'none'})")
    p = module.programs["forward"]
    if len(p.args) != 1 or p.args[0].type.dtype != DType.i64 or p.args[0].type.rank != 2:
        raise ArtifactError(f"{where}: 'forward' must take token ids [B, T] (i64)")
    outs = p.outputs
    if len(outs) != 1 or outs[0].type.rank != 3 or not outs[0].type.dtype.is_float:
        raise ArtifactError(f"{where}: 'forward' must return logits [B, T, V]")
