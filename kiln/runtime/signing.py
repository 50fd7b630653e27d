"""Provenance for artifacts: an HMAC-SHA256 over ``manifest.json`` with a key the deployment holds.

The manifest lists the sha256 of every other file, so hashes prove an artifact is *intact*, but
anyone can recompute them after editing a file; they say nothing of *who* built it. Signing adds
that: ``kiln compile --sign KEYFILE`` writes ``manifest.sig`` (the hex HMAC of the manifest's exact
bytes, so every file is covered through its hash), and ``kiln run --verify-key KEYFILE`` (or
``kiln.load(path, verify_key=KEYFILE)``) refuses an artifact that is unsigned or signed with another
key, before anything else in it is read. A key file holds at least 16 random bytes, e.g.
``head -c 32 /dev/urandom > kiln.key``; keep it private (anyone with it can sign).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from kiln.errors import ArtifactError, KilnError

SIGNATURE_FILE = "manifest.sig"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 1 << 16


def read_key(path: str | os.PathLike) -> bytes:
    p = Path(path)
    try:
        if p.is_dir():
            raise KilnError(f"key file {str(p)!r} is a directory")
        with open(p, "rb") as f:  # bounded: a key "file" may be /dev/zero
            key = f.read(MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise KilnError(f"no key file at {str(p)!r}") from None
    except OSError as e:
        raise KilnError(f"cannot read key file {str(p)!r}: {e.strerror or e}") from None
    if len(key) > MAX_KEY_BYTES:
        raise KilnError(f"key file {str(p)!r} is over {MAX_KEY_BYTES} bytes; is it really a key?")
    if len(key.strip()) < MIN_KEY_BYTES:
        raise KilnError(f"key file {str(p)!r} holds fewer than {MIN_KEY_BYTES} bytes; make one with "
                        "`head -c 32 /dev/urandom > kiln.key`")
    return key


def signature(manifest_bytes: bytes, key: bytes) -> str:
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def sign(root: str | os.PathLike, key: bytes) -> Path:
    """Write ``manifest.sig`` for the artifact at ``root`` (atomically: a temporary file renamed)."""
    root = Path(root)
    sig = signature((root / "manifest.json").read_bytes(), key)
    tmp = root / f".{SIGNATURE_FILE}.tmp-{os.getpid()}"
    tmp.write_text(sig + "\n")
    os.replace(tmp, root / SIGNATURE_FILE)
    return root / SIGNATURE_FILE


def verify(root: Path, manifest_bytes: bytes, key: bytes) -> None:
    """Refuse (KilnError) an artifact whose manifest was not signed with ``key``."""
    path = root / SIGNATURE_FILE
    try:
        got = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {str(root)!r} is not signed ({SIGNATURE_FILE} is missing) and a verify key "
                        "was given; sign it with `kiln compile ... --sign KEYFILE`") from None
    except (OSError, UnicodeDecodeError):
        raise ArtifactError(f"artifact {str(root)!r}: {SIGNATURE_FILE} is unreadable") from None
    if not hmac.compare_digest(got, signature(manifest_bytes, key)):
        raise ArtifactError(f"artifact {str(root)!r}: its signature does not match the verify key (signed with "
                        "another key, or modified after signing); refusing to load it")
