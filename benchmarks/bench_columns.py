"""The MIP over the Lagrangian bound's columns, alone (hetkv_opt/methods/columns.py).

For one cell of benchmarks/bench_auto.py (optionally its first EPOCHS epochs): auto for
an incumbent, then the Dantzig-Wolfe master, then the MIP over its columns with the
incumbent's paths added, each in its own time; prints the evaluator's times.

    python benchmarks/bench_columns.py d 1 --epochs 160 --incumbent 30 --master 40 --mip 60
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
