"""Benchmark of the policy simulator (issue 4): wall time per policy on one drift instance.

Run from the repository root::

    python benchmarks/bench_policies.py                     # every registered policy
    python benchmarks/bench_policies.py lru belady --repeat 5 --blocks 512 --steps 128
    python benchmarks/bench_policies.py static reactive page --instance p1024.npz --repeat 1

Each policy runs ``--repeat`` times (default 3) on ``drift_instance(blocks, steps, seed)``;
the table shows the median wall time of ``simulate()`` (simulation + the evaluator's
re-scoring), the evaluated time T, its gap to the aggregate bound, the tier-0 share of
reads and the number of moves.  ``sa-guided`` runs twice: as registered (simulated
annealing tunes (W, fraction) with nested simulations) and with ``tune=false``.
Target (from the issue): a scored policy simulates the 1024x256 instance in <= 2 s.
``--instance FILE`` runs on an instance file instead (any format ``hetkv`` reads; the
paper's workload at 1/10 of its steps is ``hetkv generate p1024.npz --preset-workload
paper --output-tokens 1024``); the time to load it is not counted.
One JSON line per run is appended to ``--out`` (default ``bench-results/policies.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.policies import ScoredPolicy, get_policy, list_policies, simulate

TARGET_S = 2.0


def variants(names: list[str]) -> list[tuple[str, str, dict]]:
    """(label, policy name, params) to run."""
    out = []
    for name in names:
        out.append((name, name, {}))
        if name == "sa-guided":
            out.append(("sa-guided(tune=false)", name, {"tune": False}))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    known = [p.name for p in list_policies()]
    ap.add_argument("policies", nargs="*", help=f"policies to run (default: all): {', '.join(known)}")
    ap.add_argument("--blocks", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--instance", default=None, help="an instance file instead of the drift instance")
    ap.add_argument("--out", default="bench-results/policies.jsonl")
    args = ap.parse_args(argv)
    names = args.policies or known
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: unknown policies {unknown}; known: {known}", file=sys.stderr)
        return 2
    if args.instance:
        from hetkv_opt.io.files import load_instance
        inst = load_instance(args.instance)
    else:
        inst = drift_instance(blocks=args.blocks, steps=args.steps, seed=args.seed)
    print(f"instance {inst.name}: {inst.num_items} items, {inst.num_epochs} epochs, "
          f"{inst.read_item.size} reads", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"instance": inst.name, "blocks": args.blocks, "steps": args.steps, "seed": args.seed,
            "machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__}
    rows = []
    for label, name, params in variants(names):
        pol = get_policy(name, **params)
        walls, res = [], None
        for rep in range(args.repeat):
            t0 = time.perf_counter()
            res = simulate(inst, pol)
            walls.append(time.perf_counter() - t0)
            with out.open("a") as fh:
                fh.write(json.dumps({**meta, "policy": label, "params": res.details["params"],
                                     "repeat": rep, "wall_s": walls[-1], "status": res.status,
                                     "total_time_s": res.total_time_s, "bound_s": res.bound_s,
                                     "gap": res.gap}) + "\n")
        med = statistics.median(walls)
        scored = isinstance(pol, ScoredPolicy) and not (name == "sa-guided" and params.get("tune", True))
        rows.append((label, res.details["oracle"], med, res, scored))
        print(f"  {label}: median {med:.3f} s", file=sys.stderr)
    print(f"{'policy':22s} {'oracle':>6s} {'median s':>9s} {'T (s)':>11s} {'gap to agg':>10s} "
          f"{'hbm share':>9s} {'moves':>7s} {'target':>8s}")
    for label, oracle, med, res, scored in rows:
        ok = "-" if not scored else ("ok" if med <= TARGET_S else "MISSED")
        print(f"{label:22s} {'yes' if oracle else 'no':>6s} {med:9.3f} {res.total_time_s:11.5g} "
              f"{100 * res.gap:9.1f}% {res.evaluation.hbm_read_share:9.3f} "
              f"{res.evaluation.num_moves:7d} {ok:>8s}")
    print(f"aggregate bound: {rows[0][3].bound_s:.5g} s; target: a scored policy <= {TARGET_S:g} s "
          f"(median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
