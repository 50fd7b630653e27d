"""Running the CLI in-process from tests, and the one-line-error rule every user mistake must meet."""

from __future__ import annotations

from kiln.cli import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``kiln ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err: str, pattern: str, exit_code: int | None = 1) -> None:
    """Exactly one ``kiln: error:`` line containing ``pattern`` (progress lines "[  1.2s] ..." aside), no
    traceback, not an internal error, and exit status ``exit_code`` (any non-zero one when None)."""
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]
    assert (code != 0 if exit_code is None else code == exit_code), (code, err)
    assert len(lines) == 1 and lines[0].startswith("kiln: error:"), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert pattern in lines[0], lines[0]
