"""What every ``hetkv`` command module shares: consoles, errors, JSON, formatting, options.

The command modules (:mod:`hetkv_opt.cli.solve`, :mod:`~hetkv_opt.cli.generate`, ...)
import from here and from the library only; :mod:`hetkv_opt.cli.app` imports them.  This
module imports no other part of the CLI, so there is no circle.

Machine output (``--format json``) is the only thing on stdout (:data:`out`,
:func:`emit_json`); progress, logs and errors go to stderr (:data:`err`).  Expected
failures print one line and exit with code 2 (:func:`fail`), never a traceback.

Exit codes: 0 done; 1 an error result (a solve that ended in ``error``, an infeasible
schedule for ``evaluate``, an unexpected exception: one line, ``--debug`` for the
traceback); 2 a bad file, option or output path, or out of memory; 130 interrupted by
Ctrl-C (SIGINT) and 143 by SIGTERM, after printing what was found so far
(:func:`install_signal_handlers`, :func:`exit_interrupted`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import tempfile
from enum import Enum
from pathlib import Path
from typing import Iterable, Optional

import typer
from rich.console import Console
from rich.text import Text

from hetkv_opt.deadline import Deadline
from hetkv_opt.model.instance import ModelError


def _table_width() -> int | None:
    """Tables are as wide as the terminal; written to a file or a pipe (no terminal:
    COLUMNS, if set, is not about this output), as wide as they need, up to 240 columns,
    instead of rich's 80 (which cut cells to 'Jacc...')."""
    try:
        if sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return 240


#: stdout: tables and JSON, nothing else (no emoji: ':A:' stays ':A:')
out = Console(highlight=False, soft_wrap=True, emoji=False, width=_table_width())
#: stderr: progress, logs, one-line errors
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def say(message: str) -> None:
    """One plain line on stderr (no markup, no emoji: file names print as they are)."""
    err.print(Text(message), soft_wrap=True)


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr, the message as plain text."""
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


class Format(str, Enum):
    """``--format``: a rich table for people, or one JSON object on stdout for scripts."""

    table = "table"
    json = "json"


def fail(message: str) -> None:
    """One line on stderr, exit code 2.  The message is plain text (brackets such as
    ``.[trace]`` or ``x[i,e,k]``, and ``:A:``, are printed as they are, not read as markup
    or emoji)."""
    print_error(message)
    raise typer.Exit(code=2)


# ----------------------------------------------------------------------------- signals

class _Signals:
    """The first SIGINT/SIGTERM of this run, and the deadlines it ends."""

    signum: int | None = None
    reported = False
    deadlines: list = []


def _on_signal(signum, frame) -> None:
    if _Signals.signum is None:
        _Signals.signum = signum
    for dl in _Signals.deadlines:       # every phase still to come stops at once
        dl.limit_s = max(0.0, dl.elapsed_s())
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM both raise KeyboardInterrupt (so every ``finally`` and every
    writer's clean-up runs: no half-made file, no spool), remember which signal came
    (:func:`interrupted_by`) and end the deadlines made by :func:`deadline`.  Called by
    :func:`hetkv_opt.cli.app.main`; the main thread only."""
    _Signals.signum, _Signals.reported = None, False
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, _on_signal)
        except (ValueError, OSError):   # not the main thread
            pass


def interrupted_by() -> int | None:
    """The signal that interrupted this run (SIGINT or SIGTERM), or None."""
    return _Signals.signum


def interrupt_exit_code() -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + int(_Signals.signum or signal.SIGINT)


def exit_interrupted(message: str = "interrupted") -> None:
    """One line on stderr, exit 130 (Ctrl-C) or 143 (SIGTERM)."""
    say(message)
    _Signals.reported = True
    raise typer.Exit(code=interrupt_exit_code())


def interruption_reported() -> bool:
    """True once :func:`exit_interrupted` has said why the command stops."""
    return _Signals.reported


def deadline(time_limit_s: float | None) -> Deadline:
    """The command's wall-clock budget; a signal ends it, so that a solver which absorbs
    the interruption does not go on with its retries and later phases."""
    dl = Deadline(time_limit_s)
    _Signals.deadlines.append(dl)
    return dl


# ----------------------------------------------------------------------------- checks

def check_time_limit(value: float | None, option: str = "--time-limit") -> float | None:
    """A time limit in seconds: > 0; ``inf`` means no limit (None); NaN is refused."""
    if value is None:
        return None
    if math.isnan(value) or value <= 0:
        fail(f"option '{option}': must be a number of seconds > 0 (or inf for no limit), got {value}")
    return None if math.isinf(value) else float(value)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(path: Path, *, inputs: Iterable[Optional[Path]] = (),
                      suffixes: tuple[str, ...] | None = None, folder: bool = False,
                      option: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be written, and refuse it with one line
    (exit 2) when it cannot: an input of the command (it would be overwritten), a wrong
    suffix, an existing directory (or, for ``folder=True``, an existing file), something
    that is not a regular file (``/dev/null`` would be replaced), a folder that cannot be
    made or written (``/proc``, read-only).  A missing parent folder is made, and said.

    ``suffixes``: the allowed suffixes (lower case, with the dot).  ``folder``: the
    output is a folder (``hetkv bench --out``), made here when missing.  A path ending in
    ``.hetkv`` is a sharded instance folder: it may exist only as a sharded instance
    (which the writer replaces whole), and is not made here.
    """
    path = Path(path)
    label = f"option '{option}': {path}" if option else str(path)
    for src in inputs:
        if src is not None and _same_file(path, Path(src)):
            fail(f"{label}: is an input of this command; refusing to overwrite it "
                 f"(choose another output file)")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        fail(f"{label}: must end in {' or '.join(suffixes)}")
    target_dir = path if folder else path.parent
    if folder:
        if path.exists() and not path.is_dir():
            fail(f"{label}: exists and is not a folder")
    elif path.suffix.lower() == ".hetkv":
        # a sharded instance (docs/model.md section 6): a folder, replaced whole when it is one
        if path.exists() and not (path.is_dir() and (path / "manifest.json").is_file()):
            fail(f"{label}: exists and is not a sharded instance folder (no manifest.json); "
                 f"refusing to replace it")
    else:
        if path.is_dir():
            fail(f"{label}: is a directory; give a file name")
        if path.exists() and not path.is_file():
            fail(f"{label}: not a regular file (a device, a pipe or a socket)")
    if not target_dir.is_dir():
        anc = target_dir
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if anc.exists() and not anc.is_dir():
            fail(f"{label}: {anc} is a file, not a folder")
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"{label}: cannot create the folder {target_dir} ({exc.strerror or exc})")
        say(f"created folder {target_dir}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hetkv-probe-", dir=target_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        fail(f"{label}: cannot write in {target_dir} ({exc.strerror or exc})")
    return path


def load_instance(path: Path, compact: bool = False):
    """:func:`hetkv_opt.io.files.load_instance`, a bad file being one line and exit code 2."""
    from hetkv_opt.io.files import load_instance as load
    try:
        return load(path, compact=compact)
    except ModelError as exc:
        fail(str(exc))


def emit_json(obj) -> None:
    """``obj`` as indented JSON on stdout (numpy scalars as Python numbers; a NaN or an
    infinity, which JSON has no word for, as null)."""
    sys.stdout.write(json.dumps(_finite(obj), indent=2, default=_json_default,
                                allow_nan=False) + "\n")
    sys.stdout.flush()


def _finite(obj):
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "dtype") and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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


def count_progress(what: str, unit: str, enabled: bool):
    """A progress bar of ``done / total`` on stderr (only on a terminal): ``(callback(done,
    total), stop)``; for long builds (``generate``, ``convert``)."""
    if not enabled or not err.is_terminal:
        return None, (lambda: None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    prog = Progress(TextColumn(f"[bold]{what}[/] {unit}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err, transient=True)
    state = {"task": None, "last": 0.0}

    def cb(done: int, total: int):
        now = time.monotonic()
        if state["task"] is None:
            prog.start()
            state["task"] = prog.add_task("", total=total)
        if now - state["last"] >= 0.2 or done == total:
            state["last"] = now
            prog.update(state["task"], completed=done)

    def stop():
        if state["task"] is not None:
            prog.stop()
    return cb, stop


def config_from_options(preset: Optional[str], gap: Optional[float], threads: Optional[int],
                        seed: Optional[int], workers: Optional[int] = None,
                        scheduler: Optional[str] = None):
    """The :class:`~hetkv_opt.milp.config.SolverConfig` of ``--solver-preset``, ``--gap``,
    ``--threads``, ``--seed``, ``--workers`` and ``--scheduler`` (a bad preset or value: one
    line, exit code 2; workers without Dask installed: the install hint)."""
    from hetkv_opt.cluster import check_cluster, require_dask
    from hetkv_opt.milp.config import SolverConfig, check_gap, check_seed, check_threads, load_preset
    try:
        if gap is not None:
            check_gap(gap, "option '--gap'")
        if threads is not None:
            check_threads(threads, "option '--threads'")
        if seed is not None:
            check_seed(seed, "option '--seed'")
        if workers is not None or scheduler is not None:
            try:
                check_cluster(workers or 0, scheduler)
            except ValueError as exc:
                raise ValueError(f"option '--workers'/'--scheduler': {exc}") from None
            if workers or scheduler:
                require_dask()
        cfg = load_preset(preset) if preset else SolverConfig()
        return cfg.replace(mip_rel_gap=gap, threads=threads, seed=seed, workers=workers,
                           scheduler=scheduler)
    except ValueError as exc:
        fail(str(exc))


__all__ = ["Format", "check_output_path", "check_time_limit", "config_from_options", "count_progress", "deadline",
           "emit_json", "err", "exit_interrupted", "fail", "fmt_pct", "fmt_s",
           "install_signal_handlers", "interrupt_exit_code", "interrupted_by", "interruption_reported",
           "load_instance",
           "out", "print_error", "say"]
