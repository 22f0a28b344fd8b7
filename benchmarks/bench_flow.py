"""Benchmark of the flow-graph heuristic and the rolling-horizon MILP against the LP bound.

Run from the repository root::

    python benchmarks/bench_flow.py                                  # 256x64 and 1024x256
    python benchmarks/bench_flow.py 256x64 --rolling-time 30
    python benchmarks/bench_flow.py 1024x256 --lp-value 0.0044585593253325066

For each drift instance (``drift_instance(blocks=N, steps=E, seed=0)``: paper bandwidths,
30 % of the cache fits in HBM) it solves the LP relaxation with HiGHS (``solve_lp``;
skipped with ``--lp-value``, e.g. the value recorded in ``benchmarks/RESULTS.md``), then
runs ``solve_flow`` (chain graph, ``--engine``) and ``solve_rolling`` (``--window``,
``--overlap``, ``--rolling-time``), and prints runtime, evaluated time and gap to the LP
value.  ``--engines`` also times one min-cost-flow solve of the chain graph with each
engine (networkx is skipped above ``--networkx-max-arcs`` arcs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.methods.flow import (_benefit_matrix, _binding_onehot, _chain_flow, _slots,
                                      _unit_costs, solve_flow)
from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.methods.rolling import solve_rolling
from hetkv_opt.methods.exact import solve_lp
from hetkv_opt.methods.starts import trivial_schedule


def parse_size(text: str) -> tuple[int, int]:
    try:
        n, e = text.lower().split("x")
        return int(n), int(e)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x64, got {text!r}") from None


def engine_times(inst, max_nx_arcs: int) -> dict:
    """Seconds for one chain-graph min-cost flow with each engine (trivial-schedule prices)."""
    free = inst.pinned_tier < 0
    lam = _binding_onehot(inst, evaluate(inst, trivial_schedule(inst)))
    uc = _unit_costs(inst, lam)
    B = _benefit_matrix(inst, uc)
    F = _slots(inst, free)
    out = {}
    for eng in ("ortools", "networkx"):
        stats = {"arcs_max": 0, "flow_solve_s": 0.0}
        if eng == "networkx":
            n_reads = int(free[inst.read_item].sum())
            if 6 * n_reads > max_nx_arcs:     # about 6 arcs per read
                out[eng] = None
                continue
        try:
            _chain_flow(inst, B, uc, free, F, eng, stats)
        except ImportError:
            out[eng] = None
            continue
        out[eng] = stats["flow_solve_s"]
        out["arcs"] = stats["arcs_max"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=parse_size, default=[(256, 64), (1024, 256)])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lp-value", type=float, default=None,
                    help="use this LP value instead of solving the LP (one size only)")
    ap.add_argument("--engine", default="auto", choices=("auto", "networkx", "ortools"))
    ap.add_argument("--flow-time", type=float, default=60.0)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--rolling-time", type=float, default=60.0)
    ap.add_argument("--engines", action="store_true", help="also time one flow solve per engine")
    ap.add_argument("--networkx-max-arcs", type=int, default=300_000)
    args = ap.parse_args(argv)
    rows = []
    for n, e in args.sizes:
        inst = drift_instance(blocks=n, steps=e, seed=args.seed)
        if args.lp_value is not None:
            lp, lp_s = args.lp_value, None
        else:
            t = time.perf_counter()
            lp = solve_lp(inst).bound_s
            lp_s = time.perf_counter() - t
        name = f"{n}x{e}"
        rows.append((name, "lp", lp_s, lp, None, ""))
        f = solve_flow(inst, engine=args.engine, time_limit_s=args.flow_time,
                       bounds={"lp": lp})
        fl = f.details.get("flow", {})
        rows.append((name, "flow", f.runtime_s, f.total_time_s, _gap(f.total_time_s, lp),
                     f"engine={fl.get('engine')} arcs={fl.get('arcs_max')} "
                     f"rounds={fl.get('rounds')} mcf={fl.get('flow_solve_s', 0):.2f}s"))
        r = solve_rolling(inst, window=args.window, overlap=args.overlap,
                          time_limit_s=args.rolling_time, bounds={"lp": lp})
        solved = sum(1 for w in r.details.get("windows", []) if w.get("status") == "optimal")
        rows.append((name, "rolling", r.runtime_s, r.total_time_s, _gap(r.total_time_s, lp),
                     f"W={args.window} overlap={args.overlap} windows={len(r.details['windows'])}"
                     f" optimal={solved} stitched={_gap(r.details.get('stitched_s'), lp) or 0:.3%}"
                     f" returned={r.details.get('returned')} {r.message}".rstrip()))
        if args.engines:
            et = engine_times(inst, args.networkx_max_arcs)
            for eng in ("ortools", "networkx"):
                rows.append((name, f"mcf:{eng}", et.get(eng), None, None,
                             f"one chain-graph solve, {et.get('arcs')} arcs"
                             if et.get(eng) is not None else "skipped"))
    print(f"{'instance':<10} {'method':<13} {'runtime_s':>10} {'T_s':>13} {'gap_to_lp':>10}  notes")
    for name, m, rt, T, gap, note in rows:
        print(f"{name:<10} {m:<13} {_fmt(rt, '10.2f')} {_fmt(T, '13.6e')} "
              f"{_fmt(None if gap is None else 100 * gap, '9.3f')}{'%' if gap is not None else ' '}  {note}")
    return 0


def _gap(T, lp):
    return None if T is None or lp is None else max(0.0, (T - lp) / T)


def _fmt(x, spec):
    width = int(spec.split(".")[0])
    return f"{x:{spec}}" if x is not None and np.isfinite(x) else " " * (width - 1) + "-"


if __name__ == "__main__":
    raise SystemExit(main())
