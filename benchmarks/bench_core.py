"""Benchmarks of the core toolkit (issue: core toolkit), one small spec per case.

Run from the repository root::

    python benchmarks/bench_core.py                  # every case
    python benchmarks/bench_core.py milp-64x32 lp-512x128 --repeat 3

Each case reports the median over its seeds/repeats, writes one JSON line per run to
``bench-results/core.jsonl`` (appended), and prints a table.  Targets (from the issue):
64x32 proven optimal (gap <= 1e-4) in <= 10 s median; LP bound of 512x128 in <= 5 s;
model build <= 10 % of solve time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.milp.build import build_model
from hetkv_opt.solve import solve
from hetkv_opt.milp.config import SolverConfig


@dataclass(frozen=True)
class Case:
    name: str
    method: str                  # milp | lp
    blocks: int
    steps: int
    seeds: tuple = (0,)
    time_limit_s: float = 600.0
    config: dict = field(default_factory=dict)
    target_s: float | None = None


CASES: dict[str, Case] = {}


def register(case: Case) -> None:
    if case.name in CASES:
        raise ValueError(f"duplicate benchmark case name: {case.name}")
    CASES[case.name] = case


register(Case("milp-64x32", "milp", 64, 32, seeds=(0, 1, 2, 3, 4), time_limit_s=120, target_s=10))
register(Case("milp-64x32-nocuts", "milp", 64, 32, seeds=(0, 1, 2, 3, 4), time_limit_s=120,
              config={"rounding_cuts": False}))
register(Case("lp-256x64", "lp", 256, 64))
register(Case("lp-512x128", "lp", 512, 128, target_s=5))
register(Case("lp-512x128-ipm", "lp", 512, 128, config={"lp_method": "ipm"}))
register(Case("lp-1024x256", "lp", 1024, 256, time_limit_s=1800))


def run_case(case: Case, repeat: int) -> list[dict]:
    rows = []
    cfg = SolverConfig(**case.config)
    for seed in case.seeds:
        inst = drift_instance(blocks=case.blocks, steps=case.steps, seed=seed)
        for rep in range(repeat):
            t0 = time.perf_counter()
            build_model(inst, rounding_cuts=cfg.rounding_cuts,
                                count_vars=(case.method == "milp"))
            build_s = time.perf_counter() - t0
            res = solve(inst, case.method, time_limit_s=case.time_limit_s, config=cfg)
            row = {"case": case.name, "seed": seed, "repeat": rep, "status": res.status,
                   "runtime_s": res.runtime_s, "build_s": build_s,
                   "total_time_s": res.total_time_s, "bound_s": res.bound_s,
                   "bound_method": res.bound_method, "gap": res.gap,
                   "model": res.details.get("model"),
                   "machine": platform.machine(), "python": platform.python_version()}
            rows.append(row)
            print(f"  {case.name} seed={seed} rep={rep}: {res.status} runtime {res.runtime_s:.2f} s "
                  f"(build {build_s:.3f} s) gap {res.gap}", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help=f"cases to run (default: all): {', '.join(CASES)}")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default="bench-results/core.jsonl")
    args = ap.parse_args(argv)
    names = args.cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown case(s) {unknown}; known: {list(CASES)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import highspy
    versions = {"highspy": getattr(highspy, "__version__", "?")}
    summary = []
    for name in names:
        case = CASES[name]
        rows = run_case(case, args.repeat)
        with out.open("a") as fh:
            for r in rows:
                fh.write(json.dumps({**r, "versions": versions}) + "\n")
        med = statistics.median(r["runtime_s"] for r in rows)
        build = statistics.median(r["build_s"] / max(r["runtime_s"], 1e-9) for r in rows)
        ok = sum(r["status"] in ("optimal", "bound_only") for r in rows)
        summary.append((name, len(rows), ok, med, build, case.target_s))
    print(f"{'case':24s} {'runs':>4s} {'done':>4s} {'median s':>9s} {'build/solve':>11s} {'target s':>8s}")
    for name, n, ok, med, build, target in summary:
        tgt = "-" if target is None else f"{target:g}"
        print(f"{name:24s} {n:4d} {ok:4d} {med:9.2f} {100 * build:10.1f}% {tgt:>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
