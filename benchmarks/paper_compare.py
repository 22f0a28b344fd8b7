"""The paper's published numbers next to ours, as multiples of each one's aggregate line.

Run from the repository root, after ``hetkv bench paper --out bench-results/paper``::

    python benchmarks/paper_compare.py bench-results/paper
    python benchmarks/paper_compare.py bench-results/paper-full     # the full-scale suite

Prints a markdown table: for every sparsity, the time of the paper's four policies, the
best schedule we found and our best proven bound, each divided by the aggregate-bandwidth
bound (the paper's "best" line) of the same instance, and the order of the four policies
from slowest to fastest.  The paper's rows are its published table (docs/paper.md) divided by
its own "best" column; ours come from the sweep's cell files.
"""

from __future__ import annotations

import sys

from hetkv_opt.workloads.paper import PAPER_SECONDS
from hetkv_opt.bench.report import load_cells, summarize

POLICIES = ("static", "reactive", "page", "sa-guided")


def ordering(times: dict[str, float]) -> str:
    ranked = sorted(times, key=lambda p: -times[p])
    out = ranked[0]
    for a, b in zip(ranked, ranked[1:]):
        out += (" ~ " if abs(times[a] - times[b]) <= 0.02 * times[a] else " > ") + b
    return out


def main(directory: str) -> None:
    records, _ = load_cells(directory)
    cells, insts = summarize(records)
    at = {(c.instance, c.method): c.total_time_s for c in cells}
    rows = []
    for s in sorted(PAPER_SECONDS):
        p = PAPER_SECONDS[s]
        times = {k: p[k] for k in POLICIES}
        rows.append(["paper (published)", f"{round(100 * s)}%"]
                    + [f"{p[k] / p['best']:.2f}" for k in POLICIES] + ["-", "-", ordering(times)])
    groups: dict[str, list] = {}
    for i in insts:
        # the paper suite's generator, or instance files of the paper's hardware
        # (paper-full: made by `hetkv generate --preset-workload paper`)
        if (i.generator == "paper" or i.hardware == "gh200-paper") and i.sparsity is not None:
            groups.setdefault(i.group, []).append(i)
    for group, members in groups.items():
        if len({i.sparsity for i in members}) < 2:
            continue
        for i in sorted(members, key=lambda i: i.sparsity):
            agg = i.aggregate_bound_s
            times = {k: at.get((i.instance, f"policy:{k}")) for k in POLICIES}
            if any(t is None for t in times.values()):
                continue
            rows.append([f"ours: {group}", f"{round(100 * i.sparsity)}%"]
                        + [f"{times[k] / agg:.2f}" for k in POLICIES]
                        + [f"{i.best_time_s / agg:.2f}", f"{i.best_bound_s / agg:.2f}",
                           ordering(times)])
    cols = ["source", "sparsity", "static", "reactive", "page", "sa-guided (oracle)",
            "best schedule found", "best proven bound", "slowest to fastest"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/paper_compare.py RESULTS_DIR")
    main(sys.argv[1])
