"""Memory the machine has, and the one check every size from a manifest, a config or a flag passes
before kiln allocates for it: a one-line ``KilnError`` saying how much it would need and how much
there is, instead of an OOM kill minutes later."""

from __future__ import annotations

import os

from kiln.errors import KilnError

# Generous bounds on a model's sizes (every released model is far inside them). A config past one is
# refused before the model is built (kiln/frontend/loader.py); an artifact's manifest past one is
# refused when it loads (kiln/runtime/artifact.py, kvcache.py), so nothing is sized from it.
SIZE_LIMITS = {"layers": 512, "attention heads": 1024, "key/value heads": 1024, "hidden size": 65536,
               "vocabulary size": 2**20, "positions": 2**20, "intermediate size": 2**20, "head dim": 4096}

# The share of available memory one allocation may claim: the rest is for weights, activations and
# the other programs on the machine.
FRACTION = 0.9


def available_bytes(device: str = "cpu") -> int:
    """Memory available for new allocations on ``device`` (``MemAvailable`` on Linux, else physical
    memory); ``KILN_MEMORY_LIMIT`` (bytes) lowers it, for tests and for sharing a machine."""
    limit = os.environ.get("KILN_MEMORY_LIMIT")
    cap = None
    if limit:
        if not (limit.isascii() and limit.isdigit()):
            raise KilnError(f"KILN_MEMORY_LIMIT must be a number of bytes (digits only), got {limit!r}")
        cap = int(limit)
    if str(device).startswith("cuda"):
        import torch

        free = torch.cuda.mem_get_info()[0]
    else:
        free = None
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        free = int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
        if free is None:
            try:
                free = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):
                free = 1 << 40  # unknown: do not refuse on a guess
    return min(free, cap) if cap is not None else free


def fmt_bytes(n: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def check_fits(nbytes: int, what: str, device: str = "cpu", hint: str = "") -> None:
    """Refuse, before allocating, ``nbytes`` for ``what`` that would not fit in available memory."""
    have = available_bytes(device)
    if nbytes > FRACTION * have:
        raise KilnError(f"{what} would need {fmt_bytes(nbytes)}, but only {fmt_bytes(have)} of memory is "
                        f"available{'; ' + hint if hint else ''}")
