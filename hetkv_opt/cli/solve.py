"""``hetkv solve``, ``hetkv evaluate`` and ``hetkv info``: one instance, solved, scored, described.

Added to the main app by :func:`register`.  ``--method`` offers exactly the keys of
:data:`hetkv_opt.solve.METHODS` (:class:`Method` is made from them).
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from hetkv_opt.cli.common import (Format, check_output_path, check_time_limit, config_from_options,
                                  deadline, emit_json, err, exit_interrupted, fail, fmt_pct, fmt_s,
                                  interrupted_by, load_instance, out, say)
from hetkv_opt.model.instance import ModelError
from hetkv_opt.solve import METHODS

#: ``--method``: the names of :data:`hetkv_opt.solve.METHODS`, in its order
Method = Enum("Method", {m: m for m in METHODS}, type=str, module=__name__)


def solve(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    method: Method = typer.Option(Method.auto, "--method", "-m", help="auto: LP bound, then the MILP in the time left."),
    time_limit: Optional[float] = typer.Option(60.0, "--time-limit", "-t", help="Wall-clock seconds for the whole solve (inf: no limit)."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the schedule here (.json or .npz; a missing folder is made)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    solver_preset: Optional[str] = typer.Option(None, "--solver-preset", help="Preset name (solvers/NAME.toml) or path."),
    gap: Optional[float] = typer.Option(None, "--gap", help="Relative MIP gap at which to stop."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Solver random seed."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Run the layer parts (of the bound, or of the by-layer placement) on this many local Dask workers (the dask extra; layered instances)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a running Dask scheduler instead of local workers."),
    warm_start: Optional[Path] = typer.Option(None, "--warm-start", help="A schedule file to start the MILP from."),
    by_layer: Optional[bool] = typer.Option(None, "--by-layer/--whole", help="Solve one layer at a time (auto on a layered .hetkv, or .npz through a temporary sharded copy; the default above 2e7 reads) or hold the instance whole."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="HiGHS's log on stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Solve an instance: the best schedule found, the best proven bound, and the gap.

    Ctrl-C (or SIGTERM) stops the solve: the best bound and schedule found so far are
    printed (and written with --out), and the exit code is 130 (143)."""
    import signal

    from hetkv_opt.io.files import instance_hash, load_schedule, save_schedule
    from hetkv_opt.solve import solve as run_solve
    time_limit = check_time_limit(time_limit)
    cfg = config_from_options(solver_preset, gap, threads, seed, workers, scheduler)
    if out_path is not None:
        check_output_path(out_path, inputs=[instance, warm_start], suffixes=(".json", ".npz"))
    if _use_by_layer(instance, method.value, by_layer):
        _solve_by_layer(instance, time_limit, out_path, fmt, quiet, cfg)
        return
    inst = load_instance(instance)
    ws = None
    if warm_start is not None:
        try:
            ws = load_schedule(warm_start)
        except ModelError as exc:
            fail(str(exc))
    log = (lambda line: err.print(line, markup=False, highlight=False)) if verbose else None
    progress_cb, stop = _progress(time_limit, enabled=not quiet and not verbose and method.value in ("auto", "milp", "lagrangian", "flow"))
    # a signal ends this deadline, so that no phase or retry goes on after it (the
    # Lagrangian method takes plain seconds)
    limit = time_limit if method.value == "lagrangian" else deadline(time_limit)
    try:
        res = run_solve(inst, method.value, time_limit_s=limit, config=cfg, warm_start=ws,
                        log=log, progress=progress_cb)
    except ValueError as exc:
        stop()
        fail(str(exc))
    except KeyboardInterrupt:
        stop()
        exit_interrupted("interrupted before the solve had a result: nothing to report")
    stop()
    sig = interrupted_by()
    if sig is not None and "interrupted" not in res.message:
        word = "terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted (Ctrl-C)"
        res = res.with_(message=f"{word}: the best bound and schedule found so far"
                        + (f"; {res.message}" if res.message else ""))
    if out_path is not None and res.schedule is not None:
        try:
            save_schedule(res.schedule, out_path, extra={
                "method": res.method, "status": res.status, "total_time_s": res.total_time_s,
                "bound_s": res.bound_s, "bound_method": res.bound_method,
                "instance_sha256": instance_hash(inst)})
        except OSError as exc:
            fail(f"{out_path}: cannot write the schedule ({exc.strerror or exc})")
        say(f"wrote {out_path}")
    elif out_path is not None:
        say(f"no schedule to write to {out_path} (status {res.status})")
    d = res.to_dict()
    d["instance_sha256"] = instance_hash(inst)
    if fmt == Format.json:
        emit_json(d)
    else:
        _print_result(d)
    if sig is not None:
        exit_interrupted("interrupted: the result above is the best found so far")
    if res.status == "error":
        raise typer.Exit(code=1)


def _use_by_layer(path: Path, method: str, choice: Optional[bool]) -> bool:
    from hetkv_opt.io.shards import is_sharded_path
    from hetkv_opt.io.summary import npz_layer_count, npz_read_count
    from hetkv_opt.methods import by_layer
    if choice is not False and method == "auto" and path.suffix.lower() == ".npz":
        # a large layered NPZ goes by layer through a sharded copy (an instance without
        # layers is one part: the whole portfolio does far better on it)
        n = npz_read_count(path)
        return bool(choice) or (n is not None and n > by_layer.BY_LAYER_MIN_READS
                                and npz_layer_count(path) >= 2)
    if choice is False or not is_sharded_path(path):
        if choice:
            fail(f"option '--by-layer': {path} is not a sharded instance (.hetkv) or an "
                 f"instance .npz")
        return False
    if method != "auto":
        if choice:
            fail("option '--by-layer': only with --method auto")
        return False
    if choice:
        return True
    try:
        return by_layer.goes_by_layer(path)
    except ModelError as exc:
        fail(str(exc))


def _solve_by_layer(path: Path, time_limit, out_path, fmt, quiet, cfg) -> None:
    from hetkv_opt.io.files import save_schedule
    from hetkv_opt.io.shards import open_sharded
    from hetkv_opt.methods.by_layer import solve_by_layer
    import shutil
    import tempfile
    progress_cb, stop = _progress(time_limit, enabled=not quiet)
    limit = deadline(time_limit)
    scratch = None
    try:
        if path.suffix.lower() == ".npz":
            # streamed into a sharded copy next to nothing the user owns, removed at the end
            from hetkv_opt.io.reshard import npz_to_sharded
            scratch = Path(tempfile.mkdtemp(prefix="hetkv-by-layer-"))
            t0 = time.perf_counter()
            npz_to_sharded(path, scratch / "instance.hetkv", compresslevel=1)
            say(f"{path}: {time.perf_counter() - t0:.1f} s to shard it by layer (a temporary "
                f"copy; 'hetkv convert' keeps one)")
            path = scratch / "instance.hetkv"
        sha = open_sharded(path).manifest["instance_sha256"]
        from hetkv_opt.cluster import ClusterError, open_client
        with open_client(cfg.workers, cfg.scheduler) as client:
            res = solve_by_layer(path, time_limit_s=limit, progress=progress_cb, client=client)
    except ClusterError as exc:
        stop()
        fail(str(exc))
    except ModelError as exc:
        stop()
        fail(str(exc))
    except KeyboardInterrupt:
        stop()
        exit_interrupted("interrupted: the by-layer solve keeps no partial schedule")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    stop()
    if out_path is not None and res.schedule is not None:
        try:
            save_schedule(res.schedule, out_path, extra={
                "method": res.method, "status": res.status, "total_time_s": res.total_time_s,
                "bound_s": res.bound_s, "bound_method": res.bound_method,
                "instance_sha256": sha})
        except OSError as exc:
            fail(f"{out_path}: cannot write the schedule ({exc.strerror or exc})")
        say(f"wrote {out_path}")
    d = res.to_dict()
    d["instance_sha256"] = sha
    if fmt == Format.json:
        emit_json(d)
    else:
        _print_result(d)
    if res.status == "error":
        raise typer.Exit(code=1)


def _progress(time_limit, enabled: bool):
    """A live line on stderr: elapsed / limit, incumbent, bound, gap."""
    if not enabled:
        return None, (lambda: None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    prog = Progress(TextColumn("[bold]{task.fields[phase]}[/]"), BarColumn(), TimeElapsedColumn(),
                    TextColumn("{task.description}"), console=err, transient=True)
    total = time_limit if time_limit else None
    task = prog.add_task("starting", total=total, phase="solve")
    state = {"last": 0.0, "started": False}

    def cb(info):
        now = time.monotonic()
        if now - state["last"] < 0.25:
            return
        state["last"] = now
        if not state["started"]:
            prog.start()
            state["started"] = True
        desc = (f"best {fmt_s(info['incumbent_s'])}  bound {fmt_s(info['bound_s'])}  "
                f"gap {fmt_pct(info['gap'])}")
        if "layer" in info:
            desc = f"layer {info['layer']} of {info['layers']}  bound {fmt_s(info['bound_s'])}"
        prog.update(task, completed=info["elapsed_s"], description=desc,
                    phase=str(info.get("phase", "milp")).upper())

    def stop():
        if state["started"]:
            prog.stop()
    return cb, stop


def _print_result(d: dict) -> None:
    t = Table(title=f"hetkv solve: {d['instance']}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("status", d["status"])
    t.add_row("method", d["method"])
    t.add_row("total time T (evaluator)", fmt_s(d["total_time_s"]))
    t.add_row("best proven bound", f"{fmt_s(d['bound_s'])} ({d['bound_method'] or '-'})")
    t.add_row("gap", fmt_pct(d["gap"]))
    thr = d["throughput_steps_per_s"]
    t.add_row("throughput", "-" if thr is None else f"{thr:.6g} steps/s")
    bthr = d["throughput_bound_steps_per_s"]
    t.add_row("throughput upper bound", "-" if bthr is None else f"{bthr:.6g} steps/s")
    share = d["hbm_read_share"]
    t.add_row("tier-0 share of reads", "-" if share is None else f"{share:.4f}")
    t.add_row("moves", "-" if d["num_moves"] is None else str(d["num_moves"]))
    for name, val in sorted(d["details"].get("bounds_s", {}).items()):
        t.add_row(f"bound: {name}", fmt_s(val))
    t.add_row("runtime", f"{d['runtime_s']:.3f} s")
    if d["message"]:
        t.add_row("note", d["message"])
    out.print(t)


def evaluate(
    instance: Path = typer.Argument(..., help="Instance file."),
    schedule: Path = typer.Argument(..., help="Schedule file."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    per_epoch: bool = typer.Option(False, "--per-epoch", help="Include τ(e) and the term that sets it, per epoch (a table, or JSON keys)."),
):
    """Score a schedule with the independent evaluator (exit 1 if it is infeasible; exit 2
    if it was made for another instance)."""
    from hetkv_opt.model.evaluate import evaluate as run_eval
    from hetkv_opt.model.evaluate import schedule_mismatch
    from hetkv_opt.io.files import load_schedule
    from hetkv_opt.io.shards import is_sharded_path
    try:
        sch = load_schedule(schedule)
    except ModelError as exc:
        fail(str(exc))
    if is_sharded_path(instance):
        # one layer at a time: the same score as on the whole instance, in a layer's memory
        from hetkv_opt.methods.by_layer import evaluate_sharded
        try:
            ev, why = evaluate_sharded(instance, sch)
        except ModelError as exc:
            fail(str(exc))
        name = sch.instance
    else:
        inst = load_instance(instance)
        why = schedule_mismatch(inst, sch)
        ev = None if why else run_eval(inst, sch)
        name = inst.name
    if why:
        fail(f"{schedule}: {why} ({instance})")
    d = ev.summary()
    d["instance"] = name
    if per_epoch:
        d["epoch_time_s"] = ev.epoch_time_s.tolist()
        d["binding"] = list(ev.binding)
    if fmt == Format.json:
        emit_json(d)
    else:
        t = Table(title=f"hetkv evaluate: {name}", show_header=False)
        t.add_column("what", style="bold")
        t.add_column("value")
        t.add_row("feasible", "yes" if d["feasible"] else "NO")
        t.add_row("total time T", fmt_s(d["total_time_s"]))
        thr = d["throughput_steps_per_s"]
        t.add_row("throughput", "-" if thr is None else f"{thr:.6g} steps/s")
        bw = d["effective_read_Bps"]
        t.add_row("effective read bandwidth", "-" if bw is None else f"{bw / 1e9:.6g} GB/s")
        share = d["hbm_read_share"]
        t.add_row("tier-0 share of reads", "-" if share is None else f"{share:.4f}")
        t.add_row("moves", str(d["num_moves"]))
        for name, count in d["binding_epochs"].items():
            t.add_row(f"epochs set by {name}", str(count))
        for v in d["violations"][:10]:
            t.add_row("violation", v)
        out.print(t)
        if per_epoch:
            pe = Table(title="per epoch")
            for col, just in (("epoch", "right"), ("τ(e)", "right"), ("set by", "left")):
                pe.add_column(col, justify=just)
            for e, (tau, term) in enumerate(zip(d["epoch_time_s"], d["binding"])):
                pe.add_row(str(e), fmt_s(tau), term or "-")
            out.print(pe)
    if not ev.feasible:
        raise typer.Exit(code=1)


def info(
    instance: Path = typer.Argument(..., help="Instance file (.json, .npz) or sharded folder (.hetkv)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
):
    """Sizes, tiers, bytes read and written, and the aggregate-bandwidth bound (read
    without building the instance: a sharded folder's manifest and epochs file only, an
    NPZ file's read list streamed)."""
    from hetkv_opt.model.evaluate import format_bytes
    from hetkv_opt.io.summary import describe
    try:
        d = describe(instance)
    except ModelError as exc:
        fail(str(exc))
    if fmt == Format.json:
        emit_json(d)
        return
    t = Table(title=f"hetkv info: {d['name']}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    for key in ("mode", "items", "epochs", "steps", "item_epochs", "pinned_items"):
        t.add_row(key.replace("_", " "), str(d[key]))
    t.add_row("reads", f"{d['reads']} ({format_bytes(d['read_bytes'])})")
    t.add_row("writes", f"{d['writes']} ({format_bytes(d['write_bytes'])})")
    t.add_row("all items", format_bytes(d["total_item_bytes"]))
    t.add_row("aggregate-bandwidth bound", fmt_s(d["aggregate_bound_s"]))
    t.add_row("sha256", d["sha256"][:16] + "...")
    out.print(t)
    tt = Table(title="tiers")
    for col in ("tier", "capacity", "bandwidth", "link read", "link write"):
        tt.add_column(col)
    for tier in d["tiers"]:
        def bw(x):
            return "-" if x is None else f"{x / 1e9:.4g} GB/s"
        cap = tier["capacity_bytes"]
        tt.add_row(tier["name"], "unbounded" if cap is None else format_bytes(cap),
                   bw(tier["bandwidth_Bps"]), bw(tier["link_read_Bps"]), bw(tier["link_write_Bps"]))
    out.print(tt)


def register(app: typer.Typer) -> None:
    """Add ``solve``, ``evaluate`` and ``info`` to the ``hetkv`` app."""
    app.command("solve")(solve)
    app.command("evaluate")(evaluate)
    app.command("info")(info)


__all__ = ["Method", "evaluate", "info", "register", "solve"]
