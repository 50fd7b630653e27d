"""The text kiln trains and evaluates its bundled models on: the CPython standard library's source.

Every machine with Python has it, so it needs no download. The corpus is every ``*.py`` file
under ``sysconfig.get_paths()["stdlib"]`` (``site-packages``/``dist-packages`` and
``__pycache__`` excluded, files that are not valid UTF-8 skipped), in sorted path order.

**Held-out split, by module.** A file's module name is its path relative to the stdlib
directory, without ``.py``, with ``/`` as ``.`` and a trailing ``.__init__`` dropped
(``email/mime/text.py`` -> ``email.mime.text``, ``json/__init__.py`` -> ``json``). A module is
held out when ``zlib.crc32(name) % HELDOUT_MODULUS == 0``, about 1 file in 20. Held-out files
never enter tokenizer or model training; ``kiln eval`` measures on them. (The split by module leaks:
sibling modules sit on both sides; issue 17 replaces it with whole held-out packages.)

``user_files`` reads the user's own text for ``kiln eval --text FILE`` / ``--dir DIR``.
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from dataclasses import dataclass
from pathlib import Path

from kiln.errors import KilnError

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
    return leading(split(stdlib_files(root))[1], max_bytes)


MAX_USER_FILE_BYTES = 64 << 20  # one file of the user's text: larger is refused (read whole, then tokenized)


def user_files(texts: list[str], dirs: list[str], max_bytes: int | None = None) -> tuple[list[SourceFile], int]:
    """The user's text for ``kiln eval --text FILE`` / ``--dir DIR``: every named file (it must be UTF-8),
    then every regular file under each directory, recursively in sorted order, that decodes as UTF-8
    (others are skipped and counted; hidden files and directories and ``__pycache__`` are left out;
    symbolic links are not followed). Empty files add nothing. Returns (files, files skipped);
    ``max_bytes`` keeps the leading files as for the held-out split. A missing path is a KilnError."""
    out: list[SourceFile] = []
    skipped = 0

    def read(p: Path, must: bool) -> str | None:
        try:
            if p.stat().st_size > MAX_USER_FILE_BYTES:
                raise KilnError(f"{str(p)!r} is over {MAX_USER_FILE_BYTES >> 20} MiB; give smaller files")
            return p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            if must:
                raise KilnError(f"{str(p)!r} is not UTF-8 text") from None
            return None
        except OSError as e:
            if must:
                raise KilnError(f"cannot read {str(p)!r}: {e.strerror or e}") from None
            return None

    for t in texts:
        p = Path(t)
        if not p.is_file():
            raise KilnError(f"no file at {t!r}" if not p.exists() else f"{t!r} is not a regular file")
        text = read(p, must=True)
        if text:
            out.append(SourceFile(p.name, p, text))
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise KilnError(f"no directory at {d!r}" if not root.exists() else f"{d!r} is not a directory")
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n != "__pycache__")
            paths += [Path(dirpath) / f for f in filenames if not f.startswith(".")]
        for p in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
            if p.is_symlink() or not p.is_file():
                continue
            text = read(p, must=False)
            if text is None:
                skipped += 1
            elif text:
                out.append(SourceFile(p.relative_to(root).as_posix(), p, text))
    return leading(out, max_bytes), skipped


def leading(files: list[SourceFile], max_bytes: int | None) -> list[SourceFile]:
    """The leading files whose sizes sum to at most ``max_bytes`` (all with None; the first file is cut to
    fit when it alone is larger)."""
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
