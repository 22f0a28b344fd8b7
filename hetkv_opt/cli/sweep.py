"""``hetkv sweep``: capacity curves -- T and the proven bound against HBM capacity (or the
off-package link), with policies alongside, one JSON per point and a PNG.

Added to the main app by :func:`register`; the work is :func:`hetkv_opt.bench.sweep.sweep`
(cells through the bench runner: resumable, ``--workers N`` or ``--scheduler`` for Dask).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hetkv_opt.cli.common import Format, emit_json, err, fail, load_instance, out


def _scales(text: Optional[str], option: str) -> list[float]:
    if text is None:
        return [1.0]
    vals = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            fail(f"option '{option}': expected numbers separated by commas, got {part!r}")
        if not v > 0 or v != v or v == float("inf"):
            fail(f"option '{option}': every scale must be > 0, got {part}")
        vals.append(v)
    if len(set(vals)) != len(vals):
        fail(f"option '{option}': a scale is given twice")
    return vals


def sweep_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    hbm_scale: Optional[str] = typer.Option(None, "--hbm-scale", help="Tier-0 capacity factors, e.g. 0.5,1,2 (default 1)."),
    link_scale: Optional[str] = typer.Option(None, "--link-scale", help="Factors on every off-package link (read and write), e.g. 0.5,1,2 (default 1)."),
    policy: List[str] = typer.Option([], "--policy", "-p", help="A policy to run at every point (repeatable): a name, FILE.py:CLASS or MODULE:CLASS."),
    param: List[str] = typer.Option([], "--param", help="Policy parameter key=value, for every given policy that has it (repeatable)."),
    time_limit: float = typer.Option(60.0, "--time-limit", "-t", help="Seconds for 'auto' at each point."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder: instances/, cells/ (one JSON per cell), points/ (one JSON per point), sweep.png."),
    workers: int = typer.Option(1, "--workers", "-w", help="Local worker processes (1: run here)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Draw DIR/sweep.png (needs matplotlib)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
):
    """Capacity curves: for each point scale tier-0 capacity (or the off-package links),
    solve with auto and run the policies; T, the proven bound and the band between them.
    Re-running resumes: finished cells are kept."""
    from hetkv_opt.bench.runner import BenchError
    from hetkv_opt.bench.suite import SuiteError
    from hetkv_opt.bench.sweep import sweep
    from hetkv_opt.cli.policies import _parse_params
    if time_limit <= 0:
        fail("option '--time-limit': must be > 0")
    if workers < 1:
        fail("option '--workers': must be >= 1")
    if scheduler is not None and workers != 1:
        fail("options '--workers' and '--scheduler' exclude each other (Dask has its own workers)")
    hs, ls = _scales(hbm_scale, "--hbm-scale"), _scales(link_scale, "--link-scale")
    params = _parse_params(param)
    if params and not policy:
        fail("option '--param': give the policies it is for with --policy")
    inst = load_instance(instance)

    def progress(ev):
        if not quiet and ev["event"] in ("done", "fail", "skip"):
            err.print(f"[{ev['done']}/{ev['total']}] {ev['cell']}: {ev['status']}",
                      markup=False, highlight=False)
    try:
        res = sweep(inst, out_dir, hbm_scales=hs, link_scales=ls, policies=policy,
                    params=params, time_limit_s=time_limit, workers=workers,
                    scheduler=scheduler, progress=progress, plot=plot)
    except (ValueError, SuiteError, BenchError) as exc:
        fail(str(exc))
    if res.get("plot_error"):
        err.print(f"warning: no picture: {res['plot_error']}", markup=False, highlight=False)
    if fmt == Format.json:
        emit_json(res)
    else:
        _print(res)
    c = res["cells"]
    for line in (c["errors"] + c["failed"])[:10]:
        err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if c["errors"] or c["failed"]:
        err.print(f"{len(c['errors']) + len(c['failed'])} cells failed; run the same command "
                  f"again to retry them", markup=False, highlight=False)
        raise typer.Exit(code=1)


def _print(res: dict) -> None:
    from rich.table import Table
    from hetkv_opt.bench.report import fmt_time
    pts = res["points"]
    labels = list(dict.fromkeys(lab for p in pts for lab in p["policies"]))
    t = Table(title=f"hetkv sweep: {res['instance']}: T = auto's schedule, bound = proven; "
                    f"policies as T / bound")
    for col in ["hbm x", "link x", "HBM", "T", "bound", "gap", "steps/s"] + \
            [lab.split(":", 1)[-1] for lab in labels]:
        t.add_column(col, justify="right")
    for p in pts:
        cap, b = p["hbm_capacity_bytes"], p["bound_s"]
        T = fmt_time(p["total_time_s"]) if p["total_time_s"] is not None else (p["status"] or "-")
        row = [f"{p['hbm_scale']:g}", f"{p['link_scale']:g}",
               "-" if cap is None else f"{cap / 1e6:.4g} MB", T,
               f"{fmt_time(b)} ({p['bound_method'] or '-'})",
               "-" if p["gap"] is None else f"{100 * p['gap']:.2f} %",
               "-" if not p["throughput_steps_per_s"] else f"{p['throughput_steps_per_s']:.4g}"]
        for lab in labels:
            tt = (p["policies"].get(lab) or {}).get("total_time_s")
            row.append("-" if tt is None or not b else f"{tt / b:.3f}x")
        t.add_row(*row)
    out.print(t)
    c = res["cells"]
    out.print(f"cells: {c['total']} ({c['ran']} run, {c['skipped']} already done); "
              f"points in {Path(pts[0]['file']).parent if pts else '-'}")
    if res.get("plot"):
        out.print(f"wrote {res['plot']}")


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to a typer app (a second call does nothing)."""
    if "sweep" not in {c.name for c in app.registered_commands}:
        app.command("sweep")(sweep_cmd)


__all__ = ["register", "sweep_cmd"]
