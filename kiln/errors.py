"""kiln's exceptions: one hierarchy, so that every user-facing failure is a ``KilnError``.

    KilnError            bad input, an unsupported model, a failed compile (the CLI prints one line)
    ├── IRError          a malformed or refused program (the verifier, the op registry, the passes)
    │   └── ParseError   IR text that does not parse (``line`` and ``col`` locate the problem)
    ├── ArtifactError    a missing, corrupt, tampered or unreadable compiled artifact
    └── ExecError        an op failed while a program ran (a corrupt artifact, or a kiln bug)

The CLI prints ``kiln: error: <message>`` for all of them and exits 1. This module imports nothing,
so every layer of kiln (``kiln.ir`` at the bottom included) raises from the same roots.
"""


class KilnError(Exception):
    """A user-facing error (bad input, unsupported model, corrupt artifact)."""


class IRError(KilnError):
    """A malformed program; the message names the op and what is wrong."""


class ParseError(IRError):
    """Malformed IR text; ``line`` and ``col`` (1-based) locate the problem."""

    def __init__(self, msg: str, line: int, col: int):
        super().__init__(f"{line}:{col}: {msg}")
        self.line = line
        self.col = col


class ArtifactError(KilnError):
    """A compiled artifact that is missing, corrupt, modified or not kiln's."""


class ExecError(KilnError):
    """An op failed while a program ran: a corrupt or modified artifact, or a kiln bug."""
