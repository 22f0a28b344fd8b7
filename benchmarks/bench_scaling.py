"""Scaling curve: runtime and peak memory against instance size (item-epochs), per method.

Run from the repository root::

    python benchmarks/bench_scaling.py                          # 1e5 .. 1e8, every method
    python benchmarks/bench_scaling.py --sizes 1e5,1e6 --methods lagrangian,flow
    python benchmarks/bench_scaling.py --report                 # table + fit of what is done

Instances are drift instances (``hetkv generate``'s generator, seed 0, paper bandwidths,
30 % of the cache fits in HBM) with 4 blocks per step, ``blocks x steps`` = the requested
item-epochs.  Each is generated once into ``--cache`` (NPZ).  Every (method, size) runs in
its own child process, so its peak memory (``ru_maxrss``) is its own and includes the
loaded instance.  A fixed amount of work is timed, so the curve shows how the *work*
scales, not how a time limit was spent:

- ``generate``: build the instance and write it to NPZ (the streaming concern);
- ``evaluate``: load the NPZ and score the trivial schedule with the evaluator;
- ``lp``: HiGHS's LP relaxation (the core toolkit's ``solve_lp``), up to ``--lp-max``;
- ``lagrangian``: ``--calls`` oracle calls of the bundle method (bound returned too);
- ``flow``: one price round of the flow heuristic on the graph ``auto`` would use.

Each finished run is appended at once to ``--out`` (JSON lines), so an interrupted sweep
keeps what it finished and a rerun skips it.  ``--report`` prints the table and fits
``runtime = a * item_epochs ** b`` (least squares in log-log) per method, and draws
``--plot`` (matplotlib, the ``plot`` extra) when asked.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SIZES = "1e5,3e5,1e6,3e6,1e7,3e7,1e8"
METHODS = ("generate", "evaluate", "lp", "lagrangian", "flow")
BLOCKS_PER_STEP = 4


def shape(item_epochs: float) -> tuple[int, int]:
    steps = max(16, int(round(math.sqrt(item_epochs / BLOCKS_PER_STEP))))
    return BLOCKS_PER_STEP * steps, steps


def instance_path(cache: Path, item_epochs: float) -> Path:
    n, e = shape(item_epochs)
    return cache / f"drift-{n}x{e}-s0.npz"


# ------------------------------------------------------------------------------ child side

def _child(method: str, item_epochs: float, cache: Path, calls: int) -> dict:
    """One measurement, in this (fresh) process."""
    import numpy as np

    n, e = shape(item_epochs)
    path = instance_path(cache, item_epochs)
    out: dict = {}
    if method == "generate":
        from hetkv_opt.workloads.drift import drift_instance
        from hetkv_opt.io.files import save_instance
        t0 = time.perf_counter()
        inst = drift_instance(blocks=n, steps=e, seed=0)
        save_instance(inst, path)
        out["runtime_s"] = time.perf_counter() - t0
        out["reads"] = int(inst.read_bytes.size)
        return out
    from hetkv_opt.io.files import load_instance
    t0 = time.perf_counter()
    inst = load_instance(path)
    out["load_s"] = time.perf_counter() - t0
    out["reads"] = int(inst.read_bytes.size)
    t0 = time.perf_counter()
    if method == "evaluate":
        from hetkv_opt.model.evaluate import evaluate
        from hetkv_opt.methods.starts import trivial_schedule
        ev = evaluate(inst, trivial_schedule(inst))
        out["value_s"] = ev.total_time_s
    elif method == "lp":
        from hetkv_opt.methods.exact import solve_lp
        res = solve_lp(inst, time_limit_s=3600)
        out["value_s"] = res.bound_s
        out["status"] = res.status
    elif method == "lagrangian":
        from hetkv_opt.bounds.lagrangian import lagrangian_bound
        bound, cert = lagrangian_bound(inst, iterations=calls, master="bundle")
        out["value_s"] = bound
        out["oracle_calls"] = cert.metadata.get("oracle_calls")
    elif method == "flow":
        from hetkv_opt.methods.flow import flow_schedule
        from hetkv_opt.model.evaluate import evaluate
        graph = "chain" if 6 * inst.read_bytes.size <= 600_000 else "runs"
        info: dict = {}
        sched = flow_schedule(inst, iterations=1, time_limit_s=None, graph=graph, info=info)
        out["graph"] = graph
        out["arcs_max"] = info.get("arcs_max")
        out["value_s"] = None if sched is None else evaluate(inst, sched).total_time_s
    else:
        raise SystemExit(f"unknown method {method}")
    out["runtime_s"] = time.perf_counter() - t0
    del inst
    np.zeros(1)
    return out


def child_main(args) -> int:
    res = _child(args.child, float(args.child_size), Path(args.cache), args.calls)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(res))
    return 0


# ----------------------------------------------------------------------------- parent side

def load_rows(out: Path) -> list[dict]:
    if not out.exists():
        return []
    rows = []
    for line in out.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass          # a line cut by a kill: that run is redone
    return rows


def run_one(method: str, size: float, cache: Path, calls: int, timeout_s: float) -> dict:
    n, e = shape(size)
    cmd = [sys.executable, __file__, "--child", method, "--child-size", repr(size),
           "--cache", str(cache), "--calls", str(calls)]
    t0 = time.perf_counter()
    row = {"method": method, "size": size, "blocks": n, "steps": e, "item_epochs": n * e,
           "calls": calls if method == "lagrangian" else None,
           "machine": platform.machine(), "python": platform.python_version()}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        row.update(status="timeout", wall_s=time.perf_counter() - t0)
        return row
    row["wall_s"] = time.perf_counter() - t0
    if proc.returncode != 0:
        row.update(status="failed", stderr=proc.stderr[-2000:])
        return row
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    row["status"] = "ok"
    return row


def fit(rows: list[dict], key: str, fit_min: float = 0.0) -> tuple[float, float] | None:
    """``value = a * item_epochs ** b`` by least squares in log-log, over the sizes >=
    ``fit_min`` (fixed costs, e.g. the interpreter's 40 MB, flatten the small end), or
    over all sizes when fewer than two are that large."""
    import numpy as np
    pts = [(r["item_epochs"], r[key]) for r in rows if r.get("status") == "ok" and r.get(key)]
    big = [p for p in pts if p[0] >= fit_min]
    if len(big) >= 2:
        pts = big
    if len(pts) < 2:
        return None
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    b, a = np.polyfit(x, y, 1)
    return float(math.exp(a)), float(b)


def report(rows: list[dict], plot: str | None, fit_min: float = 1e6) -> None:
    print(f"{'method':10s} {'size':>8s} {'blocks x steps':>15s} {'item-epochs':>12s} "
          f"{'runtime s':>10s} {'peak MB':>8s} {'status':>8s}")
    for m in METHODS:
        for r in sorted((r for r in rows if r["method"] == m), key=lambda r: r["item_epochs"]):
            rt = r.get("runtime_s")
            mem = r.get("peak_rss_mb")
            print(f"{m:10s} {r['size']:8.0e} {str(r['blocks']) + ' x ' + str(r['steps']):>15s} "
                  f"{r['item_epochs']:12d} {'-' if rt is None else format(rt, '10.2f'):>10s} "
                  f"{'-' if mem is None else format(mem, '8.0f'):>8s} {r['status']:>8s}")
    print(f"\nfitted runtime ~ item_epochs^b and peak memory ~ item_epochs^b "
          f"(sizes >= {fit_min:.0e} where there are two; all sizes in brackets):")
    for m in METHODS:
        sub = [r for r in rows if r["method"] == m]
        ft, fm = fit(sub, "runtime_s", fit_min), fit(sub, "peak_rss_mb", fit_min)
        at, am = fit(sub, "runtime_s"), fit(sub, "peak_rss_mb")
        if ft:
            print(f"  {m:10s} runtime b = {ft[1]:.2f} [{at[1]:.2f}]"
                  + (f", memory b = {fm[1]:.2f} [{am[1]:.2f}]" if fm else "")
                  + ("  (timed out at a larger size)" if any(r.get("status") == "timeout" for r in sub) else ""))
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for m in METHODS:
            sub = sorted((r for r in rows if r["method"] == m and r.get("status") == "ok"),
                         key=lambda r: r["item_epochs"])
            if not sub:
                continue
            x = [r["item_epochs"] for r in sub]
            ft = fit(sub, "runtime_s", fit_min)
            lab = m + (f" (b={ft[1]:.2f})" if ft else "")
            axes[0].loglog(x, [r["runtime_s"] for r in sub], "o-", label=lab)
            axes[1].loglog(x, [r["peak_rss_mb"] for r in sub], "o-", label=m)
        axes[0].set_xlabel("item-epochs")
        axes[0].set_ylabel("runtime (s)")
        axes[1].set_xlabel("item-epochs")
        axes[1].set_ylabel("peak memory (MB)")
        for ax in axes:
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle("hetkv scaling on drift instances (4 blocks per step)")
        fig.tight_layout()
        tmp = plot + ".tmp.png"
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, plot)
        print(f"wrote {plot}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="item-epochs, comma-separated")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--calls", type=int, default=30, help="Lagrangian oracle calls")
    ap.add_argument("--lp-max", type=float, default=1.1e6, help="largest size for the HiGHS LP")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    ap.add_argument("--cache", default="bench-results/scaling-instances")
    ap.add_argument("--out", default="bench-results/scaling.jsonl")
    ap.add_argument("--report", action="store_true", help="only print the table and the fit")
    ap.add_argument("--plot", default=None, help="also draw this PNG")
    ap.add_argument("--fit-min", type=float, default=1e6, help="fit the exponents on sizes >= this")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-size", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not args.report:
        sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            print(f"error: unknown method(s) {bad}; known: {', '.join(METHODS)}", file=sys.stderr)
            return 2
        for size in sizes:
            done = {(r["method"], r["size"], r.get("calls")) for r in load_rows(out)
                    if r.get("status") in ("ok", "timeout")}
            todo = [m for m in methods if not (m == "lp" and size > args.lp_max)]
            if not instance_path(cache, size).exists() and "generate" not in todo:
                todo.insert(0, "generate")
            if "generate" in todo:        # the instance is needed first
                todo.remove("generate")
                todo.insert(0, "generate")
            for m in todo:
                key = (m, size, args.calls if m == "lagrangian" else None)
                if key in done and (m != "generate" or instance_path(cache, size).exists()):
                    continue
                row = run_one(m, size, cache, args.calls, args.timeout)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"  {m:10s} {size:8.0e}: {row['status']} "
                      f"{row.get('runtime_s', row.get('wall_s', 0)):.2f} s, "
                      f"{row.get('peak_rss_mb', float('nan')):.0f} MB", file=sys.stderr, flush=True)
    report(load_rows(out), args.plot, args.fit_min)
    return 0


if __name__ == "__main__":
    sys.exit(main())
