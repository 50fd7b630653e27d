"""The one exception type users see: a clear, one-line message, no traceback."""


class KilnError(Exception):
    """A user-facing error (bad input, unsupported model, corrupt artifact).

    The CLI prints ``kiln: error: <message>`` and exits non-zero."""


class ExecError(RuntimeError):
    """An op failed while a program ran (defined here so the CLI can tell it apart without importing
    torch): a corrupt or modified artifact, or a kiln bug."""
