"""The MIP over the Lagrangian bound's columns, alone (hetkv_opt/methods/columns.py).

For one cell of benchmarks/bench_auto.py (optionally its first EPOCHS epochs): auto for
an incumbent, then the Dantzig-Wolfe master, then the MIP over its columns with the
incumbent's paths added, each in its own time; prints the evaluator's times.

    python benchmarks/bench_columns.py d 1 --epochs 160 --incumbent 30 --master 40 --mip 60

With ``--windows W``: the master and its MIP on windows of W free item-epochs
(``window_columns``) for ``--mip`` seconds in all, each window at most a third of that,
from the same incumbent (for instances too large for one master):

    python benchmarks/bench_columns.py d 1 --incumbent 60 --mip 120 --windows 10000,20000,40000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_auto import CLASSES, build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cls")
    ap.add_argument("index", type=int)
    ap.add_argument("--epochs", type=int, default=0, help="only the first EPOCHS epochs")
    ap.add_argument("--incumbent", type=float, default=30.0, help="seconds of auto")
    ap.add_argument("--master", type=float, default=40.0, help="seconds of the master")
    ap.add_argument("--mip", type=float, default=60.0, help="seconds of the MIP")
    ap.add_argument("--windows", default="", help="comma-separated free item-epochs per window")
    a = ap.parse_args()
    from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound
    from hetkv_opt.methods.columns import columns_schedule
    from hetkv_opt.model.evaluate import evaluate
    from hetkv_opt.model.parts import prefix_instance
    from hetkv_opt.solve import solve
    inst = build(*CLASSES[a.cls][a.index])
    if a.epochs:
        inst = prefix_instance(inst, a.epochs)
    inc = solve(inst, "auto", time_limit_s=a.incumbent)
    print(f"incumbent (auto {a.incumbent:g} s): {inc.total_time_s:.6g} s, bound {inc.bound_s:.6g} s")
    if a.windows:
        from hetkv_opt.methods.columns import window_columns
        for w in (int(x) for x in a.windows.split(",")):
            info: dict = {}
            t0 = time.perf_counter()
            best = window_columns(inst, inc.schedule, deadline=a.mip, window_s=a.mip / 3,
                                  window_item_epochs=w, info=info)
            T = evaluate(inst, best).total_time_s
            wins = info["windows"]
            print(f"windows of {w}: {T:.6g} s ({T / inc.total_time_s - 1:+.2%}; "
                  f"{T / inc.bound_s - 1:.2%} above the bound), {len(wins)} windows, "
                  f"{info['improved']} improved, {info['passes']} passes, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        return
    t0 = time.perf_counter()
    keep: dict = {}
    bound, _ = lagrangian_bound(inst, master="dw", time_limit_s=a.master, keep=keep)
    m = keep["dw_master"]
    print(f"master: bound {bound:.6g} s, converged {m.converged}, "
          f"{len(m.path_item)} paths, {time.perf_counter() - t0:.1f} s")
    info: dict = {}
    sched = columns_schedule(inst, m, inc.schedule, deadline=a.mip, info=info)
    T = None if sched is None else evaluate(inst, sched).total_time_s
    print(f"columns MIP: {T if T is None else f'{T:.6g} s'}, {info}")


if __name__ == "__main__":
    main()
