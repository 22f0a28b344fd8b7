"""The ``hetkv`` command: parse, call the library, render.

Machine output (``--format json``) is the only thing on stdout; progress, logs and
errors go to stderr.  Expected failures (bad files, bad options) print one line and exit
with code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.format import Format
from rich.console import Console
from rich.table import Table

from hetkv_opt.model.instance import ModelError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hetkv: proven bounds and optimal KV-cache placement for heterogeneous memory.")
err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


class Method(str, Enum):
    auto = "auto"
    milp = "milp"
    lp = "lp"
    aggregate = "aggregate"
    lagrangian = "lagrangian"
    flow = "flow"
    rolling = "rolling"


def fail(message: str) -> None:
    """One line on stderr, exit code 2.  The message is plain text (brackets such as
    ``.[trace]`` or ``x[i,e,k]`` are printed as they are, not read as markup)."""
    from rich.markup import escape
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def _load_instance(path: Path):
    from hetkv_opt.io.files import load_instance
    try:
        return load_instance(path)
    except ModelError as exc:
        fail(str(exc))


def _emit_json(obj) -> None:
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


def _fmt_s(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.6g} s"


def _fmt_pct(x) -> str:
    return "-" if x is None else f"{100 * x:.3f} %"


def _config(preset: Optional[str], gap: Optional[float], threads: Optional[int], seed: Optional[int]):
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


@app.command()
def solve(
    instance: Path = typer.Argument(..., help="Instance file (.json or .npz)."),
    method: Method = typer.Option(Method.auto, "--method", "-m", help="auto: LP bound, then the MILP in the time left."),
    time_limit: Optional[float] = typer.Option(60.0, "--time-limit", "-t", help="Wall-clock seconds for the whole solve."),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the schedule here (.json or .npz)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    solver_preset: Optional[str] = typer.Option(None, "--solver-preset", help="Preset name (solvers/NAME.toml) or path."),
    gap: Optional[float] = typer.Option(None, "--gap", help="Relative MIP gap at which to stop."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Solver random seed."),
    warm_start: Optional[Path] = typer.Option(None, "--warm-start", help="A schedule file to start the MILP from."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="HiGHS's log on stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Solve an instance: the best schedule found, the best proven bound, and the gap."""
    from hetkv_opt.io.files import instance_hash, load_schedule, save_schedule
    from hetkv_opt.solve import solve as run_solve
    if time_limit is not None and time_limit <= 0:
        fail("option '--time-limit': must be > 0")
    cfg = _config(solver_preset, gap, threads, seed)
    inst = _load_instance(instance)
    ws = None
    if warm_start is not None:
        try:
            ws = load_schedule(warm_start)
        except ModelError as exc:
            fail(str(exc))
    log = (lambda line: err.print(line, markup=False, highlight=False)) if verbose else None
    progress_cb, stop = _progress(time_limit, enabled=not quiet and not verbose and method.value in ("auto", "milp", "lagrangian", "flow"))
    try:
        res = run_solve(inst, method.value, time_limit_s=time_limit, config=cfg, warm_start=ws,
                        log=log, progress=progress_cb)
    except ValueError as exc:
        stop()
        fail(str(exc))
    stop()
    if out_path is not None and res.schedule is not None:
        save_schedule(res.schedule, out_path, extra={
            "method": res.method, "status": res.status, "total_time_s": res.total_time_s,
            "bound_s": res.bound_s, "bound_method": res.bound_method,
            "instance_sha256": instance_hash(inst)})
    elif out_path is not None:
        err.print(f"no schedule to write to {out_path} (status {res.status})")
    d = res.to_dict()
    d["instance_sha256"] = instance_hash(inst)
    if fmt == Format.json:
        _emit_json(d)
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
        desc = (f"best {_fmt_s(info['incumbent_s'])}  bound {_fmt_s(info['bound_s'])}  "
                f"gap {_fmt_pct(info['gap'])}")
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
    t.add_row("total time T (evaluator)", _fmt_s(d["total_time_s"]))
    t.add_row("best proven bound", f"{_fmt_s(d['bound_s'])} ({d['bound_method'] or '-'})")
    t.add_row("gap", _fmt_pct(d["gap"]))
    thr = d["throughput_steps_per_s"]
    t.add_row("throughput", "-" if thr is None else f"{thr:.6g} steps/s")
    bthr = d["throughput_bound_steps_per_s"]
    t.add_row("throughput upper bound", "-" if bthr is None else f"{bthr:.6g} steps/s")
    share = d["hbm_read_share"]
    t.add_row("tier-0 share of reads", "-" if share is None else f"{share:.4f}")
    t.add_row("moves", "-" if d["num_moves"] is None else str(d["num_moves"]))
    for name, val in sorted(d["details"].get("bounds_s", {}).items()):
        t.add_row(f"bound: {name}", _fmt_s(val))
    t.add_row("runtime", f"{d['runtime_s']:.3f} s")
    if d["message"]:
        t.add_row("note", d["message"])
    out.print(t)


@app.command()
def evaluate(
    instance: Path = typer.Argument(..., help="Instance file."),
    schedule: Path = typer.Argument(..., help="Schedule file."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    per_epoch: bool = typer.Option(False, "--per-epoch", help="Include τ(e) and its binding term per epoch (JSON)."),
):
    """Score a schedule with the independent evaluator (exit 1 if it is infeasible)."""
    from hetkv_opt.model.evaluate import evaluate as run_eval
    from hetkv_opt.io.files import load_schedule
    inst = _load_instance(instance)
    try:
        sch = load_schedule(schedule)
    except ModelError as exc:
        fail(str(exc))
    ev = run_eval(inst, sch)
    d = ev.summary()
    d["instance"] = inst.name
    if per_epoch:
        d["epoch_time_s"] = ev.epoch_time_s.tolist()
        d["binding"] = list(ev.binding)
    if fmt == Format.json:
        _emit_json(d)
    else:
        t = Table(title=f"hetkv evaluate: {inst.name}", show_header=False)
        t.add_column("what", style="bold")
        t.add_column("value")
        t.add_row("feasible", "yes" if d["feasible"] else "NO")
        t.add_row("total time T", _fmt_s(d["total_time_s"]))
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
    if not ev.feasible:
        raise typer.Exit(code=1)


@app.command()
def info(
    instance: Path = typer.Argument(..., help="Instance file."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
):
    """Sizes, tiers, bytes read and written, and the aggregate-bandwidth bound."""
    from hetkv_opt.model.evaluate import format_bytes
    from hetkv_opt.io.files import instance_hash
    from hetkv_opt.model.terms import aggregate_bound_s
    inst = _load_instance(instance)
    d = {"name": inst.name, "mode": inst.mode, "items": inst.num_items, "epochs": inst.num_epochs,
         "steps": inst.num_steps, "item_epochs": int((inst.death - inst.birth).sum()),
         "reads": int(inst.read_bytes.size), "read_bytes": int(inst.read_bytes.sum()),
         "writes": int(inst.write_bytes.size), "write_bytes": int(inst.write_bytes.sum()),
         "total_item_bytes": int(inst.size_bytes.sum()),
         "pinned_items": int((inst.pinned_tier >= 0).sum()),
         "tiers": [{"name": t.name, "capacity_bytes": t.capacity_bytes, "bandwidth_Bps": t.bandwidth_Bps,
                    "link_read_Bps": t.link_read_Bps, "link_write_Bps": t.link_write_Bps}
                   for t in inst.tiers],
         "aggregate_bound_s": aggregate_bound_s(inst), "sha256": instance_hash(inst)}
    if fmt == Format.json:
        _emit_json(d)
        return
    t = Table(title=f"hetkv info: {inst.name}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value")
    for key in ("mode", "items", "epochs", "steps", "item_epochs", "pinned_items"):
        t.add_row(key.replace("_", " "), str(d[key]))
    t.add_row("reads", f"{d['reads']} ({format_bytes(d['read_bytes'])})")
    t.add_row("writes", f"{d['writes']} ({format_bytes(d['write_bytes'])})")
    t.add_row("all items", format_bytes(d["total_item_bytes"]))
    t.add_row("aggregate-bandwidth bound", _fmt_s(d["aggregate_bound_s"]))
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


@app.command()
def generate(
    out_path: Path = typer.Argument(..., help="Where to write the instance (.json or .npz; large workloads stream to .npz)."),
    blocks: Optional[int] = typer.Option(None, "--blocks", "-n", help="Drift: KV blocks alive at the end (default 64)."),
    steps: Optional[int] = typer.Option(None, "--steps", "-e", help="Drift: decode steps = epochs (default 32)."),
    sparsity: float = typer.Option(0.6, "--sparsity", help="Fraction of the context NOT read per step (and layer)."),
    hbm_fraction: Optional[float] = typer.Option(None, "--hbm-fraction", help="Tier-0 capacity as a fraction of the cache (drift default 0.3; workload: pinned bytes + fraction of the peak unpinned bytes; default the hardware preset's capacity)."),
    phi: float = typer.Option(0.9, "--phi", help="AR(1) coefficient of the importance drift."),
    persistence: float = typer.Option(1.0, "--persistence", help="Spread of persistent (heavy-hitter) importance."),
    block_tokens: Optional[int] = typer.Option(None, "--block-tokens", help="Tokens per KV block (default 16)."),
    kv_bytes_per_token: Optional[int] = typer.Option(None, "--kv-bytes-per-token", help="Drift: default Llama-3.1-8B, bf16 (4096); workloads take it from --model."),
    sinks: int = typer.Option(1, "--sinks", help="Blocks always read at the start."),
    recent: int = typer.Option(1, "--recent", help="Blocks always read at the end."),
    token_fraction: float = typer.Option(1.0, "--token-fraction", help="Drift: share of a read block's tokens read per step (1 = whole blocks; real token-level top-k reads ~0.4)."),
    hardware: Optional[str] = typer.Option(None, "--hardware", help="Hardware preset name or .toml path (default gh200-paper; see 'hetkv presets')."),
    mode: str = typer.Option("exclusive", "--mode", help="exclusive or inclusive."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name"),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    model: Optional[str] = typer.Option(None, "--model", "-M", help="Model preset name or .toml path: build a request workload (see 'hetkv presets')."),
    preset_workload: Optional[str] = typer.Option(None, "--preset-workload", help="'paper': Llama-3.1-8B on gh200-paper, 1 request, 31,299-token prompt, 10,240 steps, 16-token pages, 60% sparsity (other options override)."),
    batch: Optional[int] = typer.Option(None, "--batch", "-b", help="Workload: number of requests (default 1)."),
    prompt_tokens: Optional[str] = typer.Option(None, "--prompt-tokens", help="Workload: N, a comma list (one per request), uniform:LO:HI or lognormal:MEDIAN:SIGMA (default 1024)."),
    output_tokens: Optional[str] = typer.Option(None, "--output-tokens", help="Workload: decode steps per request, same forms (default 128)."),
    arrival: str = typer.Option("0", "--arrival", help="Workload: arrival steps: 0, a comma list, every:K or poisson:RATE."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Workload: first N layers, or a comma list of layer indices (default all)."),
    access: str = typer.Option("drift", "--access", help="Workload read model: drift (block AR(1) + heavy hitters), paper (token top-k, --variation) or trace (recorded attention, --trace, --rule)."),
    trace: Optional[list[Path]] = typer.Option(None, "--trace", help="trace access: a 'hetkv trace' file (repeat for several; request r replays trace r mod n; default lengths: the traces')."),
    rule: str = typer.Option("topk", "--rule", help="trace access: topk, kv-union or quest."),
    variation: str = typer.Option("high", "--variation", help="paper access: low or high variation between steps."),
    weights: str = typer.Option("pinned", "--weights", help="Workload: layer weights pinned (to tier 0), free, or none."),
    experts: str = typer.Option("free", "--experts", help="Workload (MoE models): expert items free or none."),
    compute_floor: bool = typer.Option(False, "--compute-floor", help="Workload: min time per epoch = FLOPs / the hardware's peak_flops."),
    compress_level: int = typer.Option(6, "--compress-level", help="zlib level of streamed NPZ members (1 = fastest)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    params: Optional[Path] = typer.Option(None, "--params", help="Drift: a params file from 'hetkv calibrate --out' (its fitted knobs; --blocks, --steps, --hbm-fraction and --seed given here override it)."),
):
    """Write a synthetic instance: the one-layer drift model, or (with --model, --batch,
    --preset-workload ...) a batch of requests on a model and hardware preset. Same
    options and seed, same bytes."""
    if out_path.suffix.lower() not in (".json", ".npz"):
        fail(f"{out_path}: the instance file must end in .json or .npz")
    workload = any(x is not None for x in (model, preset_workload, batch, prompt_tokens, output_tokens, layers)) \
        or access != "drift" or bool(trace)
    if params is not None:
        if workload:
            fail("option '--params' is for the drift generator, not for a --model workload")
        from dataclasses import asdict

        from hetkv_opt.workloads.calibrate import load_params
        try:
            p = asdict(load_params(params))
        except ModelError as exc:
            fail(str(exc))
        for key, val in (("blocks", blocks), ("steps", steps), ("hbm_fraction", hbm_fraction)):
            if val is not None:
                p[key] = val
        if seed != 0:
            p["seed"] = seed
        _generate_drift(out_path, name=name, fmt=fmt, **p)
        return
    if not workload:
        _generate_drift(out_path, blocks=64 if blocks is None else blocks, steps=32 if steps is None else steps,
                        sparsity=sparsity, hbm_fraction=0.3 if hbm_fraction is None else hbm_fraction,
                        phi=phi, persistence=persistence,
                        block_tokens=16 if block_tokens is None else block_tokens,
                        kv_bytes_per_token=kv_bytes_per_token, sinks=sinks, recent=recent,
                        hardware=hardware or "gh200-paper", mode=mode, seed=seed, name=name, fmt=fmt,
                        token_fraction=token_fraction)
        return
    for opt, val in (("--blocks", blocks), ("--steps", steps), ("--kv-bytes-per-token", kv_bytes_per_token)):
        if val is not None:
            fail(f"option '{opt}' is for the drift generator; a workload takes its sizes from --model "
                 f"and --prompt-tokens/--output-tokens")
    from hetkv_opt.workloads.requests import PAPER_WORKLOAD, WorkloadParams, make_requests, write_workload
    base = {"model": "llama-3.1-8b", "hardware": "gh200-paper", "batch": 1, "prompt_tokens": "1024",
            "output_tokens": "128", "block_tokens": 16}
    if preset_workload is not None:
        if preset_workload != "paper":
            fail(f"option '--preset-workload': unknown workload {preset_workload!r} (known: paper)")
        base.update({k: (str(v) if k.endswith("_tokens") and k != "block_tokens" else v)
                     for k, v in PAPER_WORKLOAD.items() if k != "sparsity"})
    given = {"model": model, "hardware": hardware, "batch": batch, "prompt_tokens": prompt_tokens,
             "output_tokens": output_tokens, "block_tokens": block_tokens}
    base.update({k: v for k, v in given.items() if v is not None})
    traces = tuple(str(t) for t in trace or ())
    try:
        if access == "trace" and traces and (prompt_tokens is None or output_tokens is None):
            # default lengths: each request those of the trace it replays
            from hetkv_opt.trace.capture import load_trace
            lens = [(tr.prompt_tokens, tr.num_steps) for tr in map(load_trace, traces)]
            per = [lens[r % len(lens)] for r in range(int(base["batch"]))]
            if prompt_tokens is None:
                base["prompt_tokens"] = ",".join(str(p) for p, _ in per)
            if output_tokens is None:
                base["output_tokens"] = ",".join(str(o) for _, o in per)
        layer_sel = None
        if layers is not None:
            try:
                vals = [int(x) for x in layers.split(",")]
            except ValueError:
                fail(f"option '--layers': {layers!r} is not N or a comma list of layer indices")
            layer_sel = vals[0] if len(vals) == 1 else tuple(vals)
        reqs = make_requests(base["batch"], base["prompt_tokens"], base["output_tokens"], arrival, seed)
        params = WorkloadParams(
            model=base["model"], hardware=base["hardware"], requests=reqs,
            block_tokens=base["block_tokens"], layers=layer_sel, access=access, sparsity=sparsity,
            phi=phi, persistence=persistence, sinks=sinks, recent=recent, variation=variation,
            traces=traces, rule=rule, weights=weights, experts=experts, compute_floor=compute_floor,
            hbm_fraction=hbm_fraction, mode=mode, seed=seed)
        progress, stop = _build_progress(enabled=not quiet)
        try:
            d = write_workload(out_path, params, name=name, progress=progress, compresslevel=compress_level)
        finally:
            stop()
    except ModelError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{out_path}: {exc.strerror or exc}")
    if fmt == Format.json:
        _emit_json(d)
    else:
        err.print(f"wrote {out_path}: {d['requests']} request(s), {d['layers']} layers, {d['items']} items x "
                  f"{d['epochs']} epochs, {d['reads']} reads, {d['writes']} writes", soft_wrap=True)


def _build_progress(enabled: bool):
    """A progress bar on stderr for long builds (only on a terminal)."""
    if not enabled or not err.is_terminal:
        return None, (lambda: None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    prog = Progress(TextColumn("[bold]generate[/] steps"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
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


def _generate_drift(out_path: Path, *, blocks, steps, sparsity, hbm_fraction, phi, persistence,
                    block_tokens, kv_bytes_per_token, sinks, recent, hardware, mode, seed, name, fmt,
                    token_fraction=1.0):
    """The one-layer drift instance of :mod:`hetkv_opt.workloads.drift`."""
    from hetkv_opt.workloads.drift import DriftParams, drift_instance
    from hetkv_opt.io.files import instance_hash, save_instance
    kw = dict(blocks=blocks, steps=steps, sparsity=sparsity, hbm_fraction=hbm_fraction, phi=phi,
              persistence=persistence, block_tokens=block_tokens, sinks=sinks, recent=recent,
              hardware=hardware, mode=mode, seed=seed, token_fraction=token_fraction)
    if kv_bytes_per_token is not None:
        kw["kv_bytes_per_token"] = kv_bytes_per_token
    try:
        inst = drift_instance(DriftParams(**kw), name=name)
    except ValueError as exc:
        fail(str(exc))
    save_instance(inst, out_path)
    d = {"path": str(out_path), "name": inst.name, "items": inst.num_items,
         "epochs": inst.num_epochs, "reads": int(inst.read_bytes.size), "sha256": instance_hash(inst)}
    if fmt == Format.json:
        _emit_json(d)
    else:
        err.print(f"wrote {out_path}: {inst.num_items} items x {inst.num_epochs} epochs, "
                  f"{inst.read_bytes.size} reads")


@app.command()
def export(
    instance: Path = typer.Argument(..., help="Instance file."),
    to: Path = typer.Option(..., "--to", help="model.mps or model.lp"),
    relax: bool = typer.Option(False, "--relax", help="Write the LP relaxation (no integers)."),
    no_cuts: bool = typer.Option(False, "--no-cuts", help="Leave out the rounding cuts and count columns."),
):
    """Write the MILP (MPS or LP, with readable names) for any other solver.

    The objective is T / t0 with t0 the time unit printed here (seconds)."""
    from hetkv_opt.milp.highs import write_model
    from hetkv_opt.milp.build import build_model
    if to.suffix.lower() not in (".mps", ".lp"):
        fail(f"option '--to': {to} must end in .mps or .lp")
    inst = _load_instance(instance)
    model = build_model(inst, rounding_cuts=not no_cuts, count_vars=not no_cuts)
    try:
        write_model(model, str(to), relax=relax)
    except OSError as exc:
        fail(str(exc))
    err.print(f"wrote {to}: {model.num_col} columns, {model.num_row} rows, {model.num_nz} nonzeros; "
              f"objective = T / {model.t0_s:.9g} s")


@app.command("solver-presets")
def solver_presets(fmt: Format = typer.Option(Format.table, "--format", "-f")):
    """List the named solver presets (solvers/*.toml)."""
    from hetkv_opt.milp.config import list_presets, load_preset
    rows = []
    for name, path in sorted(list_presets().items()):
        try:
            cfg = load_preset(str(path))
            rows.append({"name": name, "path": str(path), "description": cfg.description,
                         "backend": cfg.backend, "mip_rel_gap": cfg.mip_rel_gap})
        except ValueError as exc:
            rows.append({"name": name, "path": str(path), "error": str(exc)})
    if fmt == Format.json:
        _emit_json(rows)
        return
    t = Table(title="solver presets")
    for col in ("name", "backend", "gap", "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r.get("backend", "?"), str(r.get("mip_rel_gap", "?")),
                  r.get("description", r.get("error", "")))
    out.print(t)


def _is(exc: BaseException, name: str) -> bool:
    """Click's exception classes by name (typer vendors its own click in newer versions)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors become one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx else "hetkv --help", file=sys.stderr)
            sys.exit(0)
        if _is(exc, "UsageError"):
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx else "hetkv"
            err.print(f"[bold red]error:[/] {exc.format_message()} (see '{cmd} --help')",
                      soft_wrap=True)
            sys.exit(2)
        if _is(exc, "Abort"):
            err.print("interrupted")
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


from hetkv_opt.cli.policies import register as _register_policy_commands  # noqa: E402

_register_policy_commands(app)

from hetkv_opt.cli.bound import register as _register_bound_commands  # noqa: E402

_register_bound_commands(app)

from hetkv_opt.cli.bench import register as _register_bench_commands  # noqa: E402

_register_bench_commands(app)

from hetkv_opt.cli.presets import register as _register_preset_commands  # noqa: E402

_register_preset_commands(app)

from hetkv_opt.cli.stats import register as _register_stats_commands  # noqa: E402

_register_stats_commands(app)

from hetkv_opt.cli.trace import register as _register_trace_commands  # noqa: E402

_register_trace_commands(app)

if __name__ == "__main__":  # pragma: no cover
    main()
