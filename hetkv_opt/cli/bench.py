"""``hetkv bench`` and ``hetkv report``: benchmark sweeps from the command line.

Registered on the main ``hetkv`` app by :func:`register` (see :mod:`hetkv_opt.cli.app`); the
commands parse, call :mod:`hetkv_opt.bench`, and render: a progress bar on stderr, tables
(or ``--format json``) on stdout.  Bad suite files and options print one line naming the
file, the field and the reason, and exit with code 2.
"""

from __future__ import annotations

import dataclasses

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import check_output_path, check_time_limit, err, exit_interrupted, fail


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    md = "md"
    csv = "csv"
    parquet = "parquet"


def bench(
    suite: str = typer.Argument(..., help="A suite name (benchmarks/suites/NAME.toml) or a suite file."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the result files (one JSON per cell)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Local worker processes (1: run here)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler (needs the dask extra)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    keep_errors: bool = typer.Option(False, "--keep-errors", help="Do not re-run cells whose stored result is an error."),
    bound: Optional[str] = typer.Option(None, "--bound", help="Policies without their own 'bound' key are measured against this proven bound: auto, lp, lagrangian, milp or aggregate (computed once per instance, kept in OUT/bounds)."),
    bound_time_limit: float = typer.Option(60.0, "--bound-time-limit", help="Seconds for that bound, per instance."),
    only: Optional[str] = typer.Option(None, "--only", help="Run only the instances whose name matches this pattern (shell-style: 'paper-s60', 'llama8b-L4-*'); the other cells are left as they are."),
):
    """Run every (instance, method) cell of a suite; finished cells are skipped on re-runs."""
    from hetkv_opt.bench.runner import BenchError, run_suite
    from hetkv_opt.bench.suite import SuiteError, load_suite
    if workers < 1:
        fail("option '--workers': must be >= 1")
    if scheduler is not None and workers != 1:
        fail("options '--workers' and '--scheduler' exclude each other (Dask has its own workers)")
    try:
        spec = load_suite(suite, only=only)
    except SuiteError as exc:
        fail(str(exc))
    if only is not None:
        import fnmatch
        keep = tuple(i for i in spec.instances if fnmatch.fnmatchcase(i.name, only))
        if not keep:
            fail(f"option '--only': no instance of suite {spec.name} matches {only!r} (its "
                 f"instances: {', '.join(i.name for i in spec.instances)})")
        spec = dataclasses.replace(spec, instances=keep)
    if bound is not None:
        from hetkv_opt.bench.bounds import BOUND_METHODS
        if bound not in BOUND_METHODS:
            fail(f"option '--bound': must be one of {', '.join(BOUND_METHODS)}, got {bound!r}")
        bound_time_limit = check_time_limit(bound_time_limit, "--bound-time-limit")
        spec = dataclasses.replace(spec, methods=tuple(
            dataclasses.replace(m, bound=bound, bound_time_limit_s=bound_time_limit)
            if m.kind == "policy" and m.bound is None else m for m in spec.methods))
    check_output_path(out, inputs=[Path(suite)] + [i.file for i in spec.instances if i.file],
                      folder=True)
    progress, stop = _progress_bar(spec.name, enabled=not quiet)
    try:
        run = run_suite(spec, out, workers=workers, scheduler=scheduler, progress=progress,
                        redo_errors=not keep_errors)
    except (SuiteError, BenchError) as exc:
        stop()
        fail(str(exc))
    except KeyboardInterrupt:
        stop()
        exit_interrupted(f"interrupted: finished cells are in {out} (the interrupted cell is "
                         f"not stored); run the same command to resume")
    stop()
    err.print(f"suite {run.suite}: {run.total} cells, {run.ran} run, {run.skipped} already "
              f"done, {len(run.errors)} errors, {len(run.failed)} failed, "
              f"{run.runtime_s:.1f} s; results in {out} (hetkv report {out})",
              markup=False, highlight=False, soft_wrap=True)
    for line in (run.errors + run.failed)[:10]:
        err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if run.errors or run.failed:
        raise typer.Exit(code=1)


def _progress_bar(name: str, enabled: bool):
    """A rich progress bar on stderr, fed by run_suite's progress events."""
    if not enabled:
        return None, (lambda: None)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)
    prog = Progress(TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                    transient=False)
    state = {"task": None}

    def cb(ev: dict) -> None:
        if ev["event"] == "plan":
            prog.start()
            state["task"] = prog.add_task("", total=ev["total"])
            return
        desc = f"{ev['cell']}: {ev['status']}"
        prog.update(state["task"], completed=ev["done"], description=desc)

    def stop() -> None:
        if state["task"] is not None:
            prog.stop()
    return cb, stop


def report(
    directory: Path = typer.Argument(..., help="A folder written by 'hetkv bench'."),
    plots: bool = typer.Option(False, "--plots", help="Draw PNG figures (needs the plot extra)."),
    plot_dir: Optional[Path] = typer.Option(None, "--plot-dir", help="Where the PNGs go (default DIRECTORY/plots)."),
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="table, json, md (markdown), csv (one row per cell, for pandas) or parquet (needs pyarrow and --out)."),
    pivot: bool = typer.Option(False, "--pivot", help="One row per instance, one column per method (T and T / best bound)."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the csv / parquet table to this file (default for csv: stdout)."),
):
    """Table of a sweep (time, bound, gap to the best proven bound, HBM read share, runtime)
    and, with --plots, the figures."""
    from hetkv_opt.bench.report import report as run_report
    from hetkv_opt.bench.runner import BenchError
    try:
        run_report(directory, plots=plots, plot_dir=plot_dir, fmt=fmt.value, pivot=pivot,
                   file=sys.stdout, out_path=out_path)
    except BenchError as exc:
        fail(str(exc))


def register(app: typer.Typer) -> None:
    """Add ``bench`` and ``report`` to a typer app (the ``hetkv`` command); idempotent."""
    names = {c.name for c in app.registered_commands}
    if "bench" not in names:
        app.command("bench")(bench)
    if "report" not in names:
        app.command("report")(report)


__all__ = ["bench", "register", "report"]
