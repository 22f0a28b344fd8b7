"""Running the hetkv command as a user does (a subprocess), shared by the CLI tests."""

from __future__ import annotations

import subprocess
import sys


def hetkv(*args, prelude: str = "", check_rc: int | None = 0):
    """Run ``hetkv ARGS``; ``prelude`` is Python run first (e.g. registering a policy)."""
    if prelude:
        cmd = [sys.executable, "-c",
               "import sys; " + prelude + "\nfrom hetkv_opt.cli.app import main; main(sys.argv[1:])"]
    else:
        cmd = [sys.executable, "-m", "hetkv_opt"]
    proc = subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def assert_one_line_error(proc, *needles):
    """Exit code 2, no traceback, exactly one line on stderr holding every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
