"""What every ``hetkv`` command module shares: consoles, errors, JSON, formatting, options.

The command modules (:mod:`hetkv_opt.cli.solve`, :mod:`~hetkv_opt.cli.generate`, ...)
import from here and from the library only; :mod:`hetkv_opt.cli.app` imports them.  This
module imports no other part of the CLI, so there is no circle.

Machine output (``--format json``) is the only thing on stdout (:data:`out`,
:func:`emit_json`); progress, logs and errors go to stderr (:data:`err`).  Expected
failures print one line and exit with code 2 (:func:`fail`), never a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from hetkv_opt.model.instance import ModelError

#: stdout: tables and JSON, nothing else
out = Console(highlight=False, soft_wrap=True)
#: stderr: progress, logs, one-line errors
err = Console(stderr=True, highlight=False)


class Format(str, Enum):
    """``--format``: a rich table for people, or one JSON object on stdout for scripts."""

    table = "table"
    json = "json"


def fail(message: str) -> None:
    """One line on stderr, exit code 2.  The message is plain text (brackets such as
    ``.[trace]`` or ``x[i,e,k]`` are printed as they are, not read as markup)."""
    from rich.markup import escape
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def load_instance(path: Path):
    """:func:`hetkv_opt.io.files.load_instance`, a bad file being one line and exit code 2."""
    from hetkv_opt.io.files import load_instance as load
    try:
        return load(path)
    except ModelError as exc:
        fail(str(exc))


def emit_json(obj) -> None:
    """``obj`` as indented JSON on stdout (numpy scalars as Python numbers)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def fmt_s(x) -> str:
    """Seconds for a table cell; ``-`` for None and non-finite values.

    >>> fmt_s(2.0), fmt_s(None), fmt_s(float("inf"))
    ('2 s', '-', '-')
    """
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.6g} s"


def fmt_pct(x) -> str:
    """A fraction as a percentage for a table cell; ``-`` for None.

    >>> fmt_pct(0.0125), fmt_pct(None)
    ('1.250 %', '-')
    """
    return "-" if x is None else f"{100 * x:.3f} %"


def config_from_options(preset: Optional[str], gap: Optional[float], threads: Optional[int],
                        seed: Optional[int]):
    """The :class:`~hetkv_opt.milp.config.SolverConfig` of ``--solver-preset``, ``--gap``,
    ``--threads`` and ``--seed`` (a bad preset or value: one line, exit code 2)."""
    from hetkv_opt.milp.config import SolverConfig, load_preset
    try:
        cfg = load_preset(preset) if preset else SolverConfig()
    except ValueError as exc:
        fail(str(exc))
    if gap is not None and gap < 0:
        fail("option '--gap': must be >= 0")
    if threads is not None and threads < 1:
        fail("option '--threads': must be >= 1")
    return cfg.replace(mip_rel_gap=gap, threads=threads, seed=seed)


__all__ = ["Format", "config_from_options", "emit_json", "err", "fail", "fmt_pct", "fmt_s",
           "load_instance", "out"]
