"""The Lagrangian bound by layer: one process against Dask workers.

    python benchmarks/bench_layers.py INSTANCE [--calls 10] [--workers 2] [--json]

For the instance (a layered ``.npz`` or ``.hetkv``): the time to build the layer parts'
oracles, the time per oracle call in one process and on ``--workers`` local Dask workers
(single-threaded processes), the time of one layer's shortest paths (median over the
layers: what a cluster with one worker per layer would take per call, plus the master's
own work), the master's bytes sent and received per call, every worker's peak memory, and
whether the bound after ``--calls`` calls is the same bit for bit.  Prints a table (or one
JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np

from hetkv_opt.bounds.lagrangian import lagrangian_bound
from hetkv_opt.bounds.lagrangian.master import initial_prices
from hetkv_opt.bounds.lagrangian.parts import PartGroup, slim
from hetkv_opt.bounds.lagrangian.problem import prepare, tier_prices
from hetkv_opt.cluster import open_client
from hetkv_opt.io.files import load_instance
from hetkv_opt.model.parts import split_by_layer


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: its own, not inherited over fork)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instance")
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    inst = load_instance(a.instance)
    out: dict = {"instance": inst.name, "items": inst.num_items, "epochs": inst.num_epochs,
                 "reads": int(inst.read_item.size)}
    t = time.perf_counter()
    p = prepare(inst)
    parts = split_by_layer(inst)
    out["prepare_s"] = round(time.perf_counter() - t, 3)
    lam, mu = initial_prices(p)
    prices = tier_prices(p, lam, mu)
    # one layer's shortest paths, each layer on its own (what one worker per layer does)
    sizes = np.unique(p.s)
    base = slim(p)
    per_layer = []
    build = []
    for pt in parts:
        t = time.perf_counter()
        g = PartGroup(base, [pt], sizes)
        build.append(time.perf_counter() - t)
        t = time.perf_counter()
        g.paths(prices, True)
        per_layer.append(time.perf_counter() - t)
        del g
    out["layers"] = len(parts)
    out["layer_build_s_median"] = round(statistics.median(build), 4)
    out["layer_call_s_median"] = round(statistics.median(per_layer), 4)
    out["layer_call_s_max"] = round(max(per_layer), 4)
    # the whole bound, one process
    t = time.perf_counter()
    here, cert_here = lagrangian_bound(inst, iterations=a.calls, oracle="layers", master="bundle")
    out["one_process"] = {"bound_s": here, "wall_s": round(time.perf_counter() - t, 3),
                          "calls": cert_here.metadata["oracle_calls"], "peak_mb": round(_peak_mb())}
    with open_client(workers=a.workers) as client:
        t = time.perf_counter()
        there, cert = lagrangian_bound(inst, iterations=a.calls, master="bundle", client=client)
        wall = time.perf_counter() - t
        peaks = client.run(_peak_mb)
    out["dask"] = {"workers": a.workers, "bound_s": there, "wall_s": round(wall, 3),
                   "calls": cert.metadata["oracle_calls"],
                   "bytes_per_call": cert.metadata.get("bytes_per_call"),
                   "worker_peak_mb": sorted(round(v) for v in peaks.values()),
                   "master_peak_mb": round(_peak_mb())}
    out["same_bound"] = here == there
    if a.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in out.items():
        print(f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
