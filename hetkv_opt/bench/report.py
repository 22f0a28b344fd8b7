"""Read a sweep's cell files, print the table, draw the figures.

For every instance the report takes the **best proven bound** over all of its cells (every
bound any method proved: LP relaxation, MILP dual bound, the aggregate bound) and the
**best schedule** (the lowest evaluated time of any cell), and scores every cell against
them: ``gap = (T - best bound) / T``, the fraction of T that no schedule could save.

Figures (``plots=True``, needs matplotlib: the ``plot`` extra):

- ``sparsity.png``: the paper's figure: time per policy across sparsity levels, with the
  paper's aggregate bound, our best proven bound and the best schedule found as lines
  (one panel per series of instances; for the ``paper`` generator, a first panel with the
  paper's own published numbers);
- ``gap_vs_size.png``: gap to the best proven bound vs instance size (item-epochs);
- ``runtime_vs_size.png``: runtime vs instance size, log-log.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hetkv_opt.bench.runner import BenchError, read_record

PLOT_HINT = "pip install 'hetkv-opt[plot]'  (matplotlib)"
PARQUET_HINT = "pip install pyarrow"
FORMATS = ("table", "json", "md", "csv", "parquet")
#: the columns of ``-f csv`` / ``-f parquet``: one row per cell, the instance's bounds beside
TIDY_COLUMNS = ("instance", "group", "method", "kind", "oracle", "status", "total_time_s",
                "bound_s", "bound_method", "best_bound_s", "best_bound_by", "best_time_s",
                "best_time_by", "aggregate_bound_s", "gap_to_best_bound", "hbm_read_share",
                "runtime_s", "item_epochs", "sparsity", "instance_sha256", "message")


@dataclass
class CellRow:
    """One cell of the report (times in seconds)."""

    instance: str
    group: str
    method: str
    kind: str                 # policy | solver
    oracle: bool
    status: str
    total_time_s: float | None
    bound_s: float | None
    bound_method: str | None
    gap_to_best_bound: float | None
    hbm_read_share: float | None
    runtime_s: float | None
    item_epochs: int
    sparsity: float | None
    message: str
    instance_index: int
    method_index: int


@dataclass
class InstanceRow:
    """Per instance: the bounds, the best schedule, and how loose the paper's line is."""

    instance: str
    group: str
    sha256: str
    generator: str | None
    sparsity: float | None
    item_epochs: int
    aggregate_bound_s: float
    best_bound_s: float | None
    best_bound_by: str | None
    best_time_s: float | None
    best_time_by: str | None
    gap: float | None                     # best schedule vs best bound
    bound_over_aggregate: float | None    # how far the paper's "best" line is below the proof
    index: int
    hardware: str | None = None           # the hardware preset, for generated instance files


def _file_workload(path: str) -> dict:
    """Sparsity and hardware of a sharded instance folder, from its manifest (records
    written before the runner kept them); nothing for other files or a folder gone."""
    from hetkv_opt.bench.runner import workload_of
    from hetkv_opt.io.shards import is_sharded_path, open_sharded
    try:
        if is_sharded_path(path) and Path(path).is_dir():
            return workload_of(open_sharded(path).manifest.get("metadata") or {})
    except (OSError, ValueError):
        pass
    return {}


def load_cells(directory: str | Path) -> tuple[list[dict], list[str]]:
    """Every cell record in ``directory`` and the files passed over (with why).

    Temporary files of unfinished writes (``.NAME.json.XXXX.tmp``) and hidden files are
    never read; other JSON files that are not cell records are listed as passed over.
    """
    d = Path(directory)
    if not d.is_dir():
        raise BenchError(f"{d}: no such folder")
    records, passed = [], []
    for p in sorted(d.glob("*.json")):
        if p.name.startswith("."):
            continue
        rec = read_record(p)
        if rec is None:
            passed.append(f"{p.name}: not a hetkv-bench-cell file")
            continue
        records.append(rec)
    return records, passed


def _bounds_of(result: dict) -> list[tuple[float, str]]:
    out = []
    if result.get("bound_s") is not None:
        out.append((float(result["bound_s"]), result.get("bound_method") or "?"))
    for name, v in ((result.get("details") or {}).get("bounds_s") or {}).items():
        if v is not None and math.isfinite(v):
            out.append((float(v), name))
    return out


def summarize(records: list[dict]) -> tuple[list[CellRow], list[InstanceRow]]:
    """Cell rows and instance rows, in suite order."""
    by_inst: dict[tuple, list[dict]] = {}
    for r in records:
        key = (r["instance"]["name"], r["instance"]["sha256"])
        by_inst.setdefault(key, []).append(r)
    inst_rows: dict[tuple, InstanceRow] = {}
    for key, recs in by_inst.items():
        info = recs[0]["instance"]
        ok = [r for r in recs if r["result"].get("status") != "error"]
        bounds = [b for r in ok for b in _bounds_of(r["result"])]
        agg = float(info["aggregate_bound_s"])
        bounds.append((agg, "aggregate"))
        best_b = max(bounds, key=lambda b: b[0])
        timed = [(r["result"]["total_time_s"], r["method"]["label"]) for r in ok
                 if r["result"].get("total_time_s") is not None]
        best_t = min(timed, key=lambda t: t[0]) if timed else (None, None)
        src = info.get("source") or {}
        params = src.get("params") or {}
        if "sparsity" not in info and isinstance(src.get("file"), str):
            info = {**_file_workload(src["file"]), **info}
        gap = None if best_t[0] is None else max(0.0, (best_t[0] - best_b[0]) / best_t[0]) \
            if best_t[0] > 0 else 0.0
        inst_rows[key] = InstanceRow(
            instance=info["name"], group=info.get("group", info["name"]), sha256=info["sha256"],
            generator=src.get("generator"),
            sparsity=params.get("sparsity", info.get("sparsity")),
            hardware=params.get("hardware", info.get("hardware")),
            item_epochs=int(info.get("item_epochs", 0)), aggregate_bound_s=agg,
            best_bound_s=best_b[0], best_bound_by=best_b[1], best_time_s=best_t[0],
            best_time_by=best_t[1], gap=gap,
            bound_over_aggregate=best_b[0] / agg if agg > 0 else None,
            index=int(info.get("index", 0)))
    cells = []
    for r in records:
        key = (r["instance"]["name"], r["instance"]["sha256"])
        ir = inst_rows[key]
        res = r["result"]
        T = res.get("total_time_s")
        gap = None
        if T is not None and ir.best_bound_s is not None:
            gap = max(0.0, (T - ir.best_bound_s) / T) if T > 0 else 0.0
        cells.append(CellRow(
            instance=ir.instance, group=ir.group, method=r["method"]["label"],
            kind=r["method"]["kind"], oracle=bool(r.get("oracle")), status=res.get("status", "?"),
            total_time_s=T, bound_s=res.get("bound_s"), bound_method=res.get("bound_method"),
            gap_to_best_bound=gap, hbm_read_share=res.get("hbm_read_share"),
            runtime_s=r.get("runtime_s", res.get("runtime_s")), item_epochs=ir.item_epochs,
            sparsity=ir.sparsity, message=res.get("message") or "",
            instance_index=ir.index, method_index=int(r["method"].get("index", 0))))
    cells.sort(key=lambda c: (c.instance_index, c.instance, c.method_index, c.method))
    insts = sorted(inst_rows.values(), key=lambda i: (i.index, i.instance))
    return cells, insts


# ----------------------------------------------------------------------------- text

def fmt_time(x: float | None) -> str:
    """Seconds with a readable unit: ``412.3 us``, ``1.234 ms``, ``2.5 s``.

    >>> fmt_time(0.0004123), fmt_time(None)
    ('412.3 us', '-')
    """
    if x is None or not math.isfinite(x):
        return "-"
    a = abs(x)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if a >= scale or unit == "ns":
            return f"{x / scale:.4g} {unit}"
    return f"{x:.4g} s"  # pragma: no cover


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f} %"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _runtime(x: float | None) -> str:
    return fmt_time(x)


CELL_COLUMNS = ("instance", "method", "T", "bound (own)", "gap to best bound", "HBM read share",
                "runtime", "oracle")
INSTANCE_COLUMNS = ("instance", "aggregate bound (paper)", "best proven bound", "best schedule",
                    "gap", "bound / aggregate")


def cell_table_rows(cells: list[CellRow]) -> list[tuple[str, ...]]:
    out = []
    for c in cells:
        T = fmt_time(c.total_time_s) if c.status != "error" else "error"
        own = "-" if c.bound_s is None else f"{fmt_time(c.bound_s)} ({c.bound_method})"
        out.append((c.instance, c.method, T, own, _pct(c.gap_to_best_bound),
                    _share(c.hbm_read_share), _runtime(c.runtime_s), "oracle" if c.oracle else ""))
    return out


def instance_table_rows(insts: list[InstanceRow]) -> list[tuple[str, ...]]:
    out = []
    for i in insts:
        out.append((i.instance, fmt_time(i.aggregate_bound_s),
                    f"{fmt_time(i.best_bound_s)} ({i.best_bound_by})",
                    "-" if i.best_time_s is None
                    else f"{fmt_time(i.best_time_s)} ({i.best_time_by})",
                    _pct(i.gap), "-" if i.bound_over_aggregate is None
                    else f"{i.bound_over_aggregate:.2f}x"))
    return out


def pivot_table(cells: list[CellRow], insts: list[InstanceRow]) -> tuple[list[str], list[tuple]]:
    """Instances x methods: each method's T and, in brackets, T / the best proven bound.

    Columns: the instance, the paper's aggregate bound, the best proven bound, the best
    schedule, then every method that produced a schedule (suite order).
    """
    methods: list[str] = []
    for c in sorted(cells, key=lambda c: c.method_index):
        if c.total_time_s is not None and c.method not in methods:
            methods.append(c.method)
    oracle = {c.method for c in cells if c.oracle}
    cols = ["instance", "aggregate (paper)", "best proven bound", "best schedule"] + [
        _short(m) + (" (oracle)" if m in oracle else "") for m in methods]
    at = {(c.instance, c.method): c for c in cells}
    rows = []
    for i in insts:
        b = i.best_bound_s
        row = [i.instance, f"{fmt_time(i.aggregate_bound_s)} ({i.aggregate_bound_s / b:.2f})",
               fmt_time(b), "-" if i.best_time_s is None else
               f"{fmt_time(i.best_time_s)} ({i.best_time_s / b:.2f})"]
        for m in methods:
            c = at.get((i.instance, m))
            T = None if c is None else c.total_time_s
            row.append("-" if T is None else f"{fmt_time(T)} ({T / b:.2f})")
        rows.append(tuple(row))
    return cols, rows


def tidy_rows(cells: list[CellRow], insts: list[InstanceRow]) -> list[dict]:
    """One flat record per cell (:data:`TIDY_COLUMNS`): what ``pandas.read_csv`` wants."""
    by_name = {i.instance: i for i in insts}
    out = []
    for c in cells:
        i = by_name.get(c.instance)
        rec = {k: getattr(c, k) for k in ("instance", "group", "method", "kind", "oracle",
                                          "status", "total_time_s", "bound_s", "bound_method",
                                          "gap_to_best_bound", "hbm_read_share", "runtime_s",
                                          "item_epochs", "sparsity", "message")}
        rec.update({"best_bound_s": i.best_bound_s if i else None,
                    "best_bound_by": i.best_bound_by if i else None,
                    "best_time_s": i.best_time_s if i else None,
                    "best_time_by": i.best_time_by if i else None,
                    "aggregate_bound_s": i.aggregate_bound_s if i else None,
                    "instance_sha256": i.sha256 if i else None})
        out.append({k: rec[k] for k in TIDY_COLUMNS})
    return out


def write_csv(rows: list[dict], file) -> None:
    """``rows`` as CSV (header :data:`TIDY_COLUMNS`; empty cells for None; full float
    precision)."""
    import csv
    w = csv.DictWriter(file, fieldnames=list(TIDY_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                    for k, v in r.items()})


def write_parquet(rows: list[dict], path: str | Path) -> Path:
    """``rows`` as a Parquet file (needs pyarrow)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BenchError(f"-f parquet needs pyarrow, which is not installed: {PARQUET_HINT} "
                         f"(or use -f csv)") from None
    cols = {k: [r[k] for r in rows] for k in TIDY_COLUMNS}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return path


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots

def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BenchError(f"--plots needs matplotlib, which is not installed: {PLOT_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_BASE_COLORS = ["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd", "#8c564b", "#e377c2",
                "#17becf", "#bcbd22", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"]
_SOLVER_COLORS = {"auto": "black", "milp": "#333399", "lp": "#777777", "aggregate": "#aaaaaa"}
# the seed paper's four policies are drawn bold, the others thin
PAPER_POLICIES = ("static", "reactive", "page", "sa-guided")


def _colors(methods: list[str]) -> dict[str, str]:
    """A colour per method (short names): policies from a palette, solvers in greys."""
    out, k = {}, 0
    for m in methods:
        if m in _SOLVER_COLORS:
            out[m] = _SOLVER_COLORS[m]
        else:
            out[m] = _BASE_COLORS[k % len(_BASE_COLORS)]
            k += 1
    return out


def _short(label: str) -> str:
    return label.split(":", 1)[1] if label.startswith("policy:") else label


def _log_axis(ax, which: str) -> None:
    """Log scale with plain tick labels (1, 2, 5, 10, 20, ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _time_unit(values: list[float]) -> tuple[str, float]:
    v = max((x for x in values if x), default=1.0)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if v >= 10 * scale or unit == "ns":
            return unit, scale
    return "s", 1.0  # pragma: no cover


def plot_sparsity(cells: list[CellRow], insts: list[InstanceRow], path: Path) -> Path | None:
    """The paper's figure: time per policy vs sparsity, with the bound lines."""
    plt = _pyplot()
    groups: dict[str, list[InstanceRow]] = {}
    for i in insts:
        if i.sparsity is not None:
            groups.setdefault(i.group, []).append(i)
    groups = {g: v for g, v in groups.items() if len({i.sparsity for i in v}) >= 2}
    if not groups:
        return None
    policies = []
    for c in cells:
        if c.kind == "policy" and c.method not in policies:
            policies.append(c.method)
    colors = _colors([_short(p) for p in policies])
    oracle = {c.method for c in cells if c.oracle}
    with_paper = any(i.generator == "paper" or i.hardware == "gh200-paper"
                     for v in groups.values() for i in v)
    n = len(groups) + (1 if with_paper else 0)
    fig, axes = plt.subplots(1, n, figsize=(max(7.0, 5.0 * n), 5.4), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    handles: dict[str, Any] = {}

    def line(ax, x, y, key, **kw):
        h, = ax.plot(x, y, **kw)
        handles.setdefault(key, h)

    k0 = 0
    if with_paper:
        from hetkv_opt.workloads.paper import PAPER_SECONDS
        ax = axes[0]
        xs = sorted(PAPER_SECONDS)
        for name in ("static", "reactive", "page", "sa-guided"):
            key = f"policy:{name}" if f"policy:{name}" in policies else name
            label = _short(key) + (" (oracle)" if key in oracle else "")
            line(ax, [100 * x for x in xs], [PAPER_SECONDS[x][name] for x in xs], label,
                 color=colors.get(name, "#444"), marker="o", lw=1.8,
                 ls="--" if key in oracle else "-", mfc="white" if key in oracle else None)
        line(ax, [100 * x for x in xs], [PAPER_SECONDS[x]["best"] for x in xs],
             "aggregate bound (the paper's \"best\")", color="#888", ls=":", lw=2.5)
        ax.set_title("the paper (published): Llama-3.1-8B, 32 layers,\n10,240 steps, "
                     "16 KiB per token-layer", fontsize=10)
        ax.set_ylabel("decode time (s)")
        k0 = 1
    for ax, (group, members) in zip(axes[k0:], groups.items()):
        members = sorted(members, key=lambda i: i.sparsity)
        names = {i.instance for i in members}
        xs = [100 * i.sparsity for i in members]
        unit, scale = _time_unit([i.best_time_s or 0 for i in members] +
                                 [c.total_time_s or 0 for c in cells if c.instance in names])
        for p in policies:
            pts = {c.instance: c.total_time_s for c in cells
                   if c.method == p and c.instance in names and c.total_time_s is not None}
            x = [100 * i.sparsity for i in members if i.instance in pts]
            y = [pts[i.instance] / scale for i in members if i.instance in pts]
            if not x:
                continue
            label = _short(p) + (" (oracle)" if p in oracle else "")
            bold = not with_paper or _short(p) in PAPER_POLICIES
            line(ax, x, y, label, color=colors[_short(p)], marker="o", lw=2.0 if bold else 1.0,
                 ms=6 if bold else 3.5, alpha=1.0 if bold else 0.65,
                 ls="--" if p in oracle else "-", mfc="white" if p in oracle else None)
        line(ax, xs, [i.aggregate_bound_s / scale for i in members],
             "aggregate bound (the paper's \"best\")", color="#888", ls=":", lw=2.5)
        line(ax, xs, [i.best_bound_s / scale for i in members], "best proven bound (ours)",
             color="black", ls="--", lw=2.2)
        bt = [(100 * i.sparsity, i.best_time_s / scale) for i in members if i.best_time_s]
        if bt:
            line(ax, [b[0] for b in bt], [b[1] for b in bt], "best schedule found (ours)",
                 color="black", lw=2.2, marker="s", ms=5)
        ax.set_title(f"ours: {group}", fontsize=10)
        ax.set_ylabel(f"decode time ({unit})")
    for ax in axes:
        _log_axis(ax, "y")
        ax.set_xlabel("attention sparsity (%)")
        ax.grid(True, which="both", alpha=0.3)
    refs = [k for k in handles if "bound" in k or "best schedule" in k]
    order = [k for k in handles if k not in refs] + refs          # the reference lines last
    ncol = max(1, min(len(handles), int(fig.get_figwidth() // 2.9)))
    fig.legend([handles[k] for k in order], order, loc="outside lower center",
               ncol=ncol, fontsize=9, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, pil_kwargs={"optimize": True})
    plt.close(fig)
    return path


def _per_method_vs_size(cells: list[CellRow], value, path: Path, ylabel: str, title: str,
                        loglog: bool) -> Path | None:
    plt = _pyplot()
    methods = []
    for c in cells:
        if c.method not in methods and value(c) is not None:
            methods.append(c.method)
    if not methods:
        return None
    colors = _colors([_short(m) for m in methods])
    fig, ax = plt.subplots(figsize=(8.0, 5.2), layout="constrained")
    for m in methods:
        pts = [(c.item_epochs, value(c)) for c in cells if c.method == m and value(c) is not None]
        xs = sorted({p[0] for p in pts})
        med = [statistics.median(v for x, v in pts if x == s) for s in xs]
        oracle = any(c.oracle for c in cells if c.method == m)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=colors[_short(m)], s=14,
                   alpha=0.45)
        ax.plot(xs, med, color=colors[_short(m)], marker="o", lw=1.6, ls="--" if oracle else "-",
                label=_short(m) + (" (oracle)" if oracle else ""))
    _log_axis(ax, "x")
    if loglog:
        _log_axis(ax, "y")
    ax.set_xlabel("instance size (item-epochs = residency variables of the MILP)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, pil_kwargs={"optimize": True})
    plt.close(fig)
    return path


def plot_gap_vs_size(cells: list[CellRow], path: Path) -> Path | None:
    """Gap to the instance's best proven bound vs size, one series per method
    (points: instances; line: median per size)."""
    return _per_method_vs_size(
        cells, lambda c: None if c.gap_to_best_bound is None else 100 * c.gap_to_best_bound,
        path, "gap to the best proven bound (% of T)",
        "How much of each schedule's time no schedule could save", loglog=False)


def plot_runtime_vs_size(cells: list[CellRow], path: Path) -> Path | None:
    """Runtime vs size, log-log, one series per method."""
    return _per_method_vs_size(
        cells, lambda c: c.runtime_s if c.runtime_s and c.runtime_s > 0 else None, path,
        "runtime (s)", "Runtime per method (policies: one simulation; solvers: to their limit)",
        loglog=True)


def draw_plots(cells: list[CellRow], insts: list[InstanceRow], plot_dir: Path) -> list[Path]:
    """The three figures (those that have data), as PNG files in ``plot_dir``."""
    out = [plot_sparsity(cells, insts, plot_dir / "sparsity.png"),
           plot_gap_vs_size(cells, plot_dir / "gap_vs_size.png"),
           plot_runtime_vs_size(cells, plot_dir / "runtime_vs_size.png")]
    return [p for p in out if p is not None]


# ----------------------------------------------------------------------------- entry

def report(directory: str | Path, *, plots: bool = False, plot_dir: str | Path | None = None,
           fmt: str = "table", pivot: bool = False, file=None,
           out_path: str | Path | None = None) -> dict:
    """Print the report of a sweep's folder and (``plots=True``) draw its figures.

    Parameters
    ----------
    directory : path
        Where :func:`hetkv_opt.bench.runner.run_suite` wrote the cell files.
    plots : bool
        Draw ``sparsity.png``, ``gap_vs_size.png`` and ``runtime_vs_size.png``.
    plot_dir : path, optional
        Where the PNGs go (default ``DIRECTORY/plots``).
    fmt : {"table", "json", "md", "csv", "parquet"}
        ``table``: rich tables; ``json``: one JSON object (the return value); ``md``:
        GitHub markdown tables; ``csv``: one row per cell with its instance's bounds
        (:data:`TIDY_COLUMNS`, for ``pandas.read_csv``); ``parquet``: the same table as a
        Parquet file (needs pyarrow and ``out_path``).  ``None`` prints nothing.
    pivot : bool
        Print one row per instance instead, one column per method: its T and, in
        brackets, T / the best proven bound (table and md formats).
    file : text stream, optional
        Where to print (default stdout).
    out_path : path, optional
        Write the ``csv`` / ``parquet`` table to this file instead of stdout.

    Returns
    -------
    dict
        ``{"cells": [...], "instances": [...], "plots": [...], "passed_over": [...]}``.

    Raises
    ------
    BenchError
        No such folder, no cell files, or ``plots`` without matplotlib.
    """
    import json
    import sys
    if fmt is not None and fmt not in FORMATS:
        raise BenchError(f"option '--format': must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet" and out_path is None:
        raise BenchError("-f parquet writes a file: give --out FILE.parquet")
    records, passed = load_cells(directory)
    if not records:
        raise BenchError(f"{directory}: no benchmark results (hetkv-bench-cell files) here")
    cells, insts = summarize(records)
    pngs: list[Path] = []
    if plots:
        pngs = draw_plots(cells, insts, Path(plot_dir) if plot_dir else Path(directory) / "plots")
    data = {"cells": [asdict(c) for c in cells], "instances": [asdict(i) for i in insts],
            "plots": [str(p) for p in pngs], "passed_over": passed}
    out = file or sys.stdout
    if fmt in ("csv", "parquet"):
        rows = tidy_rows(cells, insts)
        if fmt == "parquet":
            data["table"] = str(write_parquet(rows, out_path))
        elif out_path is not None:
            from hetkv_opt.io.files import atomic_write_bytes
            import io
            buf = io.StringIO()
            write_csv(rows, buf)
            atomic_write_bytes(out_path, buf.getvalue().encode())
            data["table"] = str(out_path)
        else:
            write_csv(rows, out)
        return data
    if fmt == "json":
        out.write(json.dumps(data, indent=2) + "\n")
    elif fmt == "md" and pivot:
        out.write(markdown_table(*pivot_table(cells, insts)) + "\n")
    elif fmt == "md":
        out.write(markdown_table(CELL_COLUMNS, cell_table_rows(cells)) + "\n\n")
        out.write(markdown_table(INSTANCE_COLUMNS, instance_table_rows(insts)) + "\n")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table
        tty = bool(getattr(out, "isatty", lambda: False)())
        con = Console(file=out, highlight=False, width=None if tty else 1000)
        if pivot:
            cols, rows = pivot_table(cells, insts)
            t = Table(title=f"hetkv report: {directory}: T per method (T / best proven bound)")
            for col in cols:
                t.add_column(col, justify="left" if col == "instance" else "right")
            for row in rows:
                t.add_row(*row)
            con.print(t)
            for p in pngs:
                con.print(f"wrote {p}")
            return data
        t = Table(title=f"hetkv report: {directory} ({len(cells)} cells)")
        for col in CELL_COLUMNS:
            left = col in ("instance", "method", "oracle")
            t.add_column(col, justify="left" if left else "right")
        for row in cell_table_rows(cells):
            t.add_row(*row)
        con.print(t)
        ti = Table(title="per instance: bounds and the best schedule found")
        for col in INSTANCE_COLUMNS:
            ti.add_column(col, justify="left" if col == "instance" else "right")
        for row in instance_table_rows(insts):
            ti.add_row(*row)
        con.print(ti)
        for p in pngs:
            con.print(f"wrote {p}")
    return data


__all__ = ["CellRow", "InstanceRow", "TIDY_COLUMNS", "draw_plots", "fmt_time", "load_cells",
           "markdown_table", "pivot_table", "tidy_rows", "write_csv", "write_parquet",
           "plot_gap_vs_size", "plot_runtime_vs_size", "plot_sparsity", "report", "summarize"]
