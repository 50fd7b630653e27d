"""The text kiln trains and evaluates its bundled models on: the CPython standard library's source.

Every machine with Python has it, so it needs no download. The corpus is every ``*.py`` file
under ``sysconfig.get_paths()["stdlib"]`` (``site-packages``/``dist-packages`` and
``__pycache__`` excluded, files that are not valid UTF-8 skipped), in sorted path order.

**Held-out split, by module.** A file's module name is its path relative to the stdlib
directory, without ``.py``, with ``/`` as ``.`` and a trailing ``.__init__`` dropped
(``email/mime/text.py`` -> ``email.mime.text``, ``json/__init__.py`` -> ``json``). A module is
held out when ``zlib.crc32(name) % HELDOUT_MODULUS == 0``, about 1 file in 20. Held-out files
never enter tokenizer or model training; ``kiln eval`` measures on them.
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

HELDOUT_MODULUS = 20
_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}


@dataclass(frozen=True)
class SourceFile:
    module: str
    path: Path
    text: str

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if len(parts) > 1 and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_heldout(module: str) -> bool:
    return zlib.crc32(module.encode("utf-8")) % HELDOUT_MODULUS == 0


def stdlib_files(root: Path | None = None) -> list[SourceFile]:
    """Every readable stdlib source file, sorted by relative path (a fixed order on every run)."""
    root = root or stdlib_dir()
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        paths += [Path(dirpath) / f for f in filenames if f.endswith(".py")]
    out = []
    for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            out.append(SourceFile(module_name(p.relative_to(root)), p, text))
    return out


def split(files: list[SourceFile]) -> tuple[list[SourceFile], list[SourceFile]]:
    """(train, heldout) by the module rule in this module's docstring."""
    train = [f for f in files if not is_heldout(f.module)]
    heldout = [f for f in files if is_heldout(f.module)]
    return train, heldout


def fingerprint(files: list[SourceFile]) -> str:
    """A short hash of a file set's modules and contents: figures measured on different Pythons'
    stdlibs are comparable only when it matches."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.module.encode() + b"\0" + f.text.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def heldout_files(max_bytes: int | None = None, root: Path | None = None) -> list[SourceFile]:
    """The held-out files in their fixed order; with ``max_bytes``, the leading files whose sizes sum
    to at most that (the first file is cut to fit when it alone is larger)."""
    files = split(stdlib_files(root))[1]
    if max_bytes is None:
        return files
    out, used = [], 0
    for f in files:
        if used + f.n_bytes > max_bytes:
            if not out:
                cut = f.text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
                out.append(SourceFile(f.module, f.path, cut))
            break
        out.append(f)
        used += f.n_bytes
    return out
