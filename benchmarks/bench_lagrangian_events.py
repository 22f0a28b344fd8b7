"""Benchmark: the Lagrangian bound's dense oracle vs the event-compressed one.

Run from the repository root::

    python benchmarks/bench_lagrangian_events.py                 # all cases below
    python benchmarks/bench_lagrangian_events.py --cases paper-L8 --budget 20 --calls 3

Cases: ``drift`` (``drift_instance(blocks=1024, steps=256)``: one layer, reads dense, the
event oracle is not expected to pay) and ``paper-L4``, ``paper-L8``, ``paper-L32``
(``paper_instance(layers=L, prompt_tokens=2048, steps=256)``: 144 pages per layer, one
epoch per (step, layer), pinned weights, sparsity 0.6; a page is read in only a few
of the epochs it lives through).

For each case it prints the event density (events / free item-epochs), the time per
oracle call (value + supergradient; median of ``--calls`` calls, dense and event calls
interleaved, at the initial prices with random capacity prices so that paths move), the
speed-up, the largest relative difference of the values, and then the bound reached by
``lagrangian_bound(master="bundle", time_limit_s=budget)`` with each oracle (runs
interleaved; the reported wall time includes the final dense evaluation), verified with
:func:`hetkv_opt.bounds.lagrangian.verify_bound`.  ``--json`` prints one JSON line per case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from hetkv_opt.workloads.paper import paper_instance
from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.bounds.lagrangian import lagrangian_bound, verify_bound
from hetkv_opt.bounds.lagrangian.events import EventOracle
from hetkv_opt.bounds.lagrangian.master import initial_prices
from hetkv_opt.bounds.lagrangian.oracle import evaluate as dense_evaluate
from hetkv_opt.bounds.lagrangian.problem import prepare

CASES = {
    "drift": lambda: drift_instance(blocks=1024, steps=256, seed=0),
    "paper-L4": lambda: paper_instance(layers=4, prompt_tokens=2048, steps=256),
    "paper-L8": lambda: paper_instance(layers=8, prompt_tokens=2048, steps=256),
    "paper-L32": lambda: paper_instance(layers=32, prompt_tokens=2048, steps=256),
}


def per_call(p, oracle: EventOracle, calls: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    lam0, mu0 = initial_prices(p)
    per_byte = 1.0 / max(float(np.max(np.abs(p.rooms), initial=1.0)), 1.0)
    td, te, rel = [], [], 0.0
    for c in range(calls):
        lam = lam0 * rng.uniform(0.5, 1.0, lam0.shape)
        mu = rng.random(mu0.shape) * per_byte * 0.1 * c
        t = time.perf_counter()
        d = dense_evaluate(p, lam, mu)
        td.append(time.perf_counter() - t)
        t = time.perf_counter()
        v = oracle.evaluate(lam, mu)
        te.append(time.perf_counter() - t)
        rel = max(rel, abs(v.value - d.value) / max(abs(d.value), 1e-300))
        del d
    return {"dense_s": statistics.median(td), "events_s": statistics.median(te),
            "speedup": statistics.median(td) / statistics.median(te), "max_rel_diff": rel}


def budget_runs(inst, budget: float) -> dict:
    out = {}
    for oracle in ("dense", "events"):
        t = time.perf_counter()
        bound, cert = lagrangian_bound(inst, iterations=10**9, time_limit_s=budget,
                                       master="bundle", oracle=oracle)
        wall = time.perf_counter() - t
        verified = verify_bound(inst, cert)
        assert abs(verified - bound) <= 1e-9 * abs(bound)
        out[oracle] = {"bound_s": bound, "calls": cert.metadata["oracle_calls"], "wall_s": wall}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--calls", type=int, default=5, help="oracle calls per oracle (median)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds per lagrangian_bound run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    for name in args.cases.split(","):
        if name not in CASES:
            ap.error(f"unknown case {name!r} (known: {', '.join(CASES)})")
        t = time.perf_counter()
        inst = CASES[name]()
        p = prepare(inst)
        t_build = time.perf_counter()
        oracle = EventOracle(p)
        t_ev = time.perf_counter() - t_build
        item_epochs = int((p.death - p.birth).sum())
        row = {"case": name, "instance": inst.name, "epochs": p.E, "free_items": int(p.free.size),
               "item_epochs": item_epochs, "events": oracle.n_ev,
               "density": oracle.density, "event_setup_s": t_ev,
               "build_s": t_build - t}
        row.update(per_call(p, oracle, args.calls))
        print(f"{name:10s} {inst.name}: E={p.E} free={p.free.size} item-epochs={item_epochs} "
              f"events={oracle.n_ev} density={oracle.density:.3f} | per call: dense "
              f"{row['dense_s'] * 1e3:.1f} ms, events {row['events_s'] * 1e3:.1f} ms "
              f"(x{row['speedup']:.1f}; setup {t_ev * 1e3:.0f} ms), max rel diff "
              f"{row['max_rel_diff']:.1e}", file=sys.stderr)
        if args.budget > 0:
            runs = budget_runs(inst, args.budget)
            row["budget_s"] = args.budget
            row["runs"] = runs
            d, e = runs["dense"], runs["events"]
            print(f"{'':10s} bound in {args.budget:g} s: dense {d['bound_s']:.9g} s "
                  f"({d['calls']} calls, {d['wall_s']:.1f} s wall), events {e['bound_s']:.9g} s "
                  f"({e['calls']} calls, {e['wall_s']:.1f} s wall), events/dense = "
                  f"{e['bound_s'] / d['bound_s']:.6f}", file=sys.stderr)
        if args.json:
            print(json.dumps(row))
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
