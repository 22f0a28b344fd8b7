"""``hetkv stats`` and ``hetkv calibrate``: what a trace looks like, and a generator that mimics it.

Added to the main app by :func:`register`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import (Format, check_output_path, emit_json, err, exit_interrupted,
                                  fail, load_instance, out)


def _f(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _need_png(path: Optional[Path], inputs=()) -> None:
    """``--plot``: a .png path that can be written, and matplotlib installed: both checked
    before the work starts."""
    if path is not None:
        if path.suffix.lower() != ".png":
            fail(f"option '--plot': {path} must end in .png")
        _pyplot()
        check_output_path(path, inputs=inputs, option="--plot")


def _pyplot():
    """matplotlib's pyplot (Agg), or one clear line when the ``plot`` extra is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: pip install 'hetkv-opt[plot]'")
    return plt


def _save(fig, path: Path) -> None:
    import io

    from hetkv_opt.io.files import atomic_write_bytes
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        fail(f"{path}: cannot write the plot ({exc.strerror or exc})")
    err.print(f"wrote {path}")


def _plot_stats(s: dict, path: Path) -> None:
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    layers = [d["layer"] for d in s["per_layer"]]
    for key, label in (("read_fraction", "read fraction"), ("jaccard_mean", "Jaccard (t, t+1)"),
                       ("hh_persistence", "heavy-hitter persistence"),
                       ("turnover_mean", "turnover")):
        a.plot(layers, [d[key] if d[key] is not None else float("nan") for d in s["per_layer"]],
               marker="o", label=label)
    a.set_xlabel("layer")
    a.set_ylim(0, 1.02)
    a.set_title(f"{s['instance']}: per layer")
    a.legend(fontsize=8)
    for d in s["per_layer"]:
        lags = sorted(int(k) for k in d["reread_prob"])
        b.plot(lags, [d["reread_prob"][str(k)] for k in lags], color="0.75", lw=0.8)
    lags = sorted(int(k) for k in s["kv"]["reread_prob"])
    b.plot(lags, [s["kv"]["reread_prob"][str(k)] for k in lags], color="C3", marker="o", label="all layers")
    if s["kv"]["read_fraction"] is not None:
        b.axhline(s["kv"]["read_fraction"], color="k", ls=":", lw=1, label="read fraction")
    b.set_xscale("log", base=2)
    b.set_xlabel("lag d (steps)")
    b.set_ylabel("P(read at t+d | read at t)")
    b.set_ylim(0, 1.02)
    b.set_title("re-read probability (grey: one layer)")
    b.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def stats_cmd(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    per_layer: bool = typer.Option(False, "--per-layer", help="One table row per layer (table format; JSON always has them)."),
    window_steps: int = typer.Option(8, "--window-steps", help="Steps per heavy-hitter window."),
    top_fraction: float = typer.Option(0.1, "--top-fraction", help="Heavy hitters / concentration: this share of the items."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of the per-layer statistics (needs matplotlib)."),
):
    """Read-set overlap, heavy-hitter persistence, sink and recency mass, concentration,
    per-layer differences and HBM room vs working set of an instance's KV reads."""
    from hetkv_opt.workloads.stats import instance_stats
    _need_png(plot, inputs=[instance])
    inst = load_instance(instance)
    try:
        s = instance_stats(inst, window_steps=window_steps, top_fraction=top_fraction)
    except ValueError as exc:
        fail(str(exc))
    if plot is not None:
        _plot_stats(s, plot)
    if fmt == Format.json:
        emit_json(s)
        return
    _print_stats(s, per_layer)


def _print_stats(s: dict, per_layer: bool) -> None:
    from rich.table import Table

    from hetkv_opt.model.evaluate import format_bytes
    k = s["kv"]
    sh = s["shape"]
    t = Table(title=f"hetkv stats: {s['instance']} (KV items)", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("shape", f"{sh['kv_items']} KV items of {sh['items']}, {sh['steps']} steps, "
                       f"{sh['layers']} layers, {sh['epochs']} epochs")
    t.add_row("read fraction (items)", f"mean {_f(k['read_fraction'])}  p10 {_f(k['read_fraction_p10'])}  "
                                       f"p90 {_f(k['read_fraction_p90'])}")
    t.add_row("read fraction (bytes)", _f(k["read_fraction_bytes"]))
    t.add_row("overlap t, t+1 (Jaccard)", f"mean {_f(k['jaccard_mean'])}  median {_f(k['jaccard_median'])}  "
                                          f"p10 {_f(k['jaccard_p10'])}")
    t.add_row("turnover (new in read set)", _f(k["turnover_mean"]))
    t.add_row("re-read prob. by lag", "  ".join(f"{d}: {_f(p, 3)}" for d, p in k["reread_prob"].items()))
    t.add_row("heavy-hitter persistence", f"{_f(k['hh_persistence'])} (top {100 * s['parameters']['top_fraction']:g} %, "
                                           f"windows of {s['parameters']['window_steps']} steps)")
    t.add_row("re-reference distance", f"mean {_f(k['reref_distance_mean'])}  median {_f(k['reref_distance_median'])}  "
                                       f"p90 {_f(k['reref_distance_p90'])} steps")
    t.add_row("read run length", f"mean {_f(k['run_length_mean'])} steps")
    t.add_row("sink mass (first block)", _f(k["sink_mass"]))
    t.add_row("recency mass (newest block)", _f(k["recency_mass"]))
    t.add_row("P(read) first blocks", "  ".join(_f(p, 3) for p in k["sink_read_prob"]))
    t.add_row("P(read) newest blocks", "  ".join(_f(p, 3) for p in k["recent_read_prob"]))
    t.add_row("concentration (top items)", f"{_f(k['concentration_top'])} of read bytes, "
                                           f"{_f(k['concentration_top_reads'])} of reads")
    p = s["placement"]
    if p["hbm_kv_room_bytes"] is not None:
        t.add_row("HBM room for KV", f"{format_bytes(p['hbm_kv_room_bytes'])} "
                                     f"({_f(p['hbm_kv_fraction'])} of all KV)")
    t.add_row("KV read per step (all layers)", f"{format_bytes(p['step_working_set_bytes_mean'])} mean, "
                                              f"{_f(p['working_set_over_kv_room'])} x HBM room")
    t.add_row("aggregate-bandwidth bound", f"{p['aggregate_bound_s']:.6g} s (HBM read share "
                                          f"{_f(p['aggregate_hbm_read_share'])})")
    for kind, d in s["other_kinds"].items():
        if kind != "kv":
            t.add_row(f"{kind} items", f"{d['items']} ({format_bytes(d['bytes'])}, {d['pinned']} pinned), "
                                       f"{_f(d['read_share'])} of read bytes")
    if s["densest_layers"] and s["shape"]["layers"] > 1:
        t.add_row("densest layers", ", ".join(map(str, s["densest_layers"])))
    out.print(t)
    if s["shape"]["layers"] > 1 and not per_layer:
        sp = Table(title="spread across layers")
        for col in ("statistic", "min (layer)", "max (layer)", "std"):
            sp.add_column(col)
        for key, v in s["layer_spread"].items():
            sp.add_row(key, f"{_f(v['min'])} ({v['min_layer']})", f"{_f(v['max'])} ({v['max_layer']})", _f(v["std"], 3))
        out.print(sp)
    if per_layer:
        pl = Table(title="per layer")
        cols = (("layer", "layer"), ("read frac", "read_fraction"), ("bytes frac", "read_fraction_bytes"),
                ("Jaccard", "jaccard_mean"), ("turnover", "turnover_mean"), ("HH persist", "hh_persistence"),
                ("run len", "run_length_mean"), ("sink", "sink_mass"), ("recency", "recency_mass"),
                ("top share", "concentration_top"))
        for name, _ in cols:
            pl.add_column(name, justify="right")
        for d in s["per_layer"]:
            pl.add_row(*(str(d[key]) if key == "layer" else _f(d[key], 3) for _, key in cols))
        out.print(pl)


def _plot_fit(res, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    rows = [r for r in res.rows() if r["target"] is not None]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["target"] for r in rows], width=0.4, label="target")
    ax.bar([i + 0.2 for i in x], [r["fitted"] if r["fitted"] is not None else 0 for r in rows],
           width=0.4, label="fitted drift")
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["statistic"] for r in rows], rotation=60, ha="right", fontsize=8)
    ax.set_title(f"{res.source.get('instance')}: phi {res.params.phi:.4g}, persistence "
                 f"{res.params.persistence:.4g}, sparsity {res.params.sparsity:.4g} "
                 f"(distance {res.distance:.4f})")
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)


def calibrate_cmd(
    instance: Path = typer.Argument(..., help="Target instance (.json or .npz), e.g. a real trace."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the params file (JSON, hetkv-drift-params) here."),
    budget_s: Optional[float] = typer.Option(None, "--budget-s", help="Stop the search after this many seconds (reported)."),
    seeds: int = typer.Option(3, "--seeds", help="Synthetic instances per candidate (seeds 0..N-1)."),
    max_evals: int = typer.Option(120, "--max-evals", help="Candidates scored at most per fit."),
    per_layer: bool = typer.Option(False, "--per-layer", help="Also fit every layer on its own."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of target vs fitted statistics."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line on stderr."),
):
    """Fit the drift generator (sparsity, phi, persistence, sinks, recent) to an instance's
    statistics; print target vs fitted and the 'hetkv generate' command at paper scale."""
    from hetkv_opt.workloads.calibrate import fit_drift, generate_command, save_params
    _need_png(plot, inputs=[instance])
    if seeds < 1:
        fail("option '--seeds': must be >= 1")
    if max_evals < 1:
        fail("option '--max-evals': must be >= 1")
    if budget_s is not None and not budget_s > 0:
        fail(f"option '--budget-s': must be a number of seconds > 0, got {budget_s}")
    if out_path is not None and out_path.suffix.lower() != ".json":
        fail(f"option '--out': {out_path} must end in .json")
    if out_path is not None:
        check_output_path(out_path, inputs=[instance, plot])
    inst = load_instance(instance)
    state = {"last": 0.0}
    t0 = time.monotonic()

    def progress(info):
        now = time.monotonic()
        if quiet or now - state["last"] < 0.5:
            return
        state["last"] = now
        err.print(f"calibrate [{info['phase']}] {info['stage']}: {info['evaluations']} candidates, "
                  f"distance {info['distance']:.5f}, {now - t0:.1f} s", highlight=False)

    try:
        res = fit_drift(inst, seeds=tuple(range(seeds)), max_evals=max_evals, budget_s=budget_s,
                        per_layer=per_layer, progress=progress)
    except ValueError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        exit_interrupted("interrupted: no fit, nothing written")
    if out_path is not None:
        try:
            save_params(res, out_path)
        except OSError as exc:
            fail(f"{out_path}: cannot write the params ({exc.strerror or exc})")
        err.print(f"wrote {out_path}")
    if plot is not None:
        _plot_fit(res, plot)
    d = res.to_dict()
    d["runtime_s"] = round(res.runtime_s, 3)
    if fmt == Format.json:
        emit_json(d)
        return
    from rich.table import Table

    p = res.params
    t = Table(title=f"hetkv calibrate: {inst.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("fitted", f"sparsity {p.sparsity:g}  phi {p.phi:g}  persistence {p.persistence:g}  "
                        f"sinks {p.sinks}  recent {p.recent}  token_fraction {p.token_fraction:.3g}")
    t.add_row("shape (per layer)", f"{p.blocks} blocks x {p.steps} steps, {p.block_tokens}-token blocks, "
                                   f"{p.kv_bytes_per_token} B/token, HBM {p.hbm_fraction:g} of the cache")
    t.add_row("distance", f"{res.distance:.5f} (generator defaults: {res.default_distance:.5f})")
    t.add_row("search", f"{res.evaluations} candidates x {len(res.seeds)} seeds of "
                        f"{res.search_shape['blocks']} x {res.search_shape['steps']}, {res.runtime_s:.2f} s"
                        + ("  (stopped by --budget-s)" if res.stopped_by_budget else ""))
    out.print(t)
    st = Table(title="statistics: target vs fitted")
    for col in ("statistic", "weight", "target", "fitted", "residual", "defaults"):
        st.add_column(col, justify="right" if col != "statistic" else "left")
    for r in res.rows():
        st.add_row(r["statistic"], f"{r['weight']:g}", _f(r["target"]), _f(r["fitted"]),
                   "-" if r["residual"] is None else f"{r['residual']:+.4f}", _f(r["default"]))
    out.print(st)
    if res.per_layer:
        lt = Table(title="per-layer fits")
        for col in ("layer", "sparsity", "phi", "persistence", "sinks", "recent", "distance"):
            lt.add_column(col, justify="right")
        for r in res.per_layer:
            lt.add_row(str(r["layer"]), f"{r['sparsity']:g}", f"{r['phi']:g}", f"{r['persistence']:g}",
                       str(r["sinks"]), str(r["recent"]), f"{r['distance']:.4f}")
        out.print(lt)
    out.print("paper scale: " + generate_command(res.paper_params, "synthetic-paper.npz"))
    out.print("this shape:  " + generate_command(res.params, "synthetic-mirror.npz"))


def register(app: typer.Typer) -> None:
    """Add ``stats`` and ``calibrate`` to the ``hetkv`` app."""
    app.command("stats")(stats_cmd)
    app.command("calibrate")(calibrate_cmd)
