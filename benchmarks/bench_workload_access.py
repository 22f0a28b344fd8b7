"""Request workloads by access model: recorded attention (trace replay) against drift.

Builds the same batch (Llama-3.1-8B, 4 requests arriving every 16 steps with 644/389-token
prompts and 128 decode steps, 4 layers, weights left out, HBM = 30 % of the peak KV) with
reads from each access model, then runs ``solve(auto, 60 s)`` and three online policies,
and prints one row per (hardware, access): best schedule, proven bound, gap, policies' T.

Traces come from ``hetkv trace`` (README, "Real attention traces"), e.g.::

    hetkv trace --model smollm2-135m --prompt-file instances/prompts/narrative-qa.txt \\
        --steps 128 --out qa.npz
    hetkv trace --model smollm2-135m --prompt-file instances/prompts/code-review.txt \\
        --steps 128 --out code.npz
    python benchmarks/bench_workload_access.py qa.npz code.npz [--hardware gh200-96g,gh200-cxl]
"""

from __future__ import annotations

import argparse
import json
import time

from hetkv_opt.policies.simulate import simulate
from hetkv_opt.solve import solve
from hetkv_opt.workloads.requests import WorkloadParams, build_workload, make_requests

POLICIES = ("static", "lru", "balance")


def params(hardware: str, access: str, traces, rule: str = "topk") -> WorkloadParams:
    reqs = make_requests(4, "644,389,644,389", 128, "every:16", seed=0)
    return WorkloadParams(model="llama-3.1-8b", hardware=hardware, requests=reqs, layers=4,
                          access=access, traces=tuple(traces) if access == "trace" else (),
                          rule=rule, sparsity=0.8, weights="none", hbm_fraction=0.3, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", help="hetkv trace files (request r replays trace r mod n)")
    ap.add_argument("--hardware", default="gh200-96g,gh200-cxl")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--json", action="store_true", help="one JSON object per row")
    a = ap.parse_args()
    cases = [("trace", "quest"), ("trace", "topk"), ("drift", "-")]
    print("| hardware | access | rule | items x epochs | reads | T (auto) | bound | gap | "
          + " | ".join(f"{p} T" for p in POLICIES) + " | solve s |")
    print("|---" * (9 + len(POLICIES)) + "|")
    for hw in a.hardware.split(","):
        for access, rule in cases:
            inst = build_workload(params(hw, access, a.traces, rule if rule != "-" else "topk"))
            t0 = time.perf_counter()
            res = solve(inst, "auto", time_limit_s=a.time_limit)
            runtime = time.perf_counter() - t0
            pol = {p: simulate(inst, p).total_time_s for p in POLICIES}
            row = {"hardware": hw, "access": access, "rule": rule, "items": inst.num_items,
                   "epochs": inst.num_epochs, "reads": int(inst.read_bytes.size),
                   "status": res.status, "total_time_s": res.total_time_s, "bound_s": res.bound_s,
                   "bound_method": res.bound_method, "gap": res.gap, "policies_s": pol,
                   "runtime_s": round(runtime, 1)}
            if a.json:
                print(json.dumps(row))
                continue
            print(f"| {hw} | {access} | {rule} | {inst.num_items} x {inst.num_epochs} | "
                  f"{row['reads']} | {res.total_time_s:.4g} | {res.bound_s:.4g} | "
                  f"{100 * res.gap:.1f} % | " + " | ".join(f"{pol[p]:.4g}" for p in POLICIES)
                  + f" | {runtime:.1f} |", flush=True)


if __name__ == "__main__":
    main()
