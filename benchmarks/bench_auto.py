"""auto (and the other methods) under one deadline, on instance classes of every kind.

Run from the repository root::

    python benchmarks/bench_auto.py                          # the default grid, 10 and 60 s
    python benchmarks/bench_auto.py --classes a,b --limits 60 --methods auto
    python benchmarks/bench_auto.py --table                  # the markdown table of what ran

Every cell (class, size, method, limit) runs in its own process (a solver that hangs is a
failed cell, not a hung benchmark) and writes one JSON file, whole, into
``bench-results/auto/``; a rerun skips the cells already there.  A cell records the wall
time of ``solve`` against its limit, the status, T, the proven bound and who proved it, the
gap, and the portfolio's phases.  Where the LP value is known (``--lp-ref``: the LP solved
with no limit, kept in ``bench-results/auto/lp-ref.json``), the table gives bound/LP and
T/LP separately, so the weak side shows.

Classes (``--classes``):
  a  drift defaults (the generator's; 30 % of the cache fits in HBM)
  b  high-turnover drift: 10 % of the blocks read a step, Jaccard ~0.55, turnover ~0.29
  c  request workload: llama-3.1-8b on gh200-96g, batch 4, prompts uniform:512:2048,
     64 output tokens, 4 layers (weights none and pinned)
  d  trace replay: the shipped SmolLM2 traces (topk, quest)
  e  MoE: mixtral-8x7b, batch 2, 256-token prompts, 16 output tokens, 2 layers
  f  inclusive drift
  g  three tiers (gh200-cxl): drift 256 x 64 and 1024 x 256, the request workload of (c),
     high-turnover drift 256 x 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench-results" / "auto"

HT = dict(sparsity=0.9, phi=0.9, persistence=0.5)
CLASSES = {
    "a": [("drift", dict(blocks=64, steps=32)), ("drift", dict(blocks=256, steps=64)),
          ("drift", dict(blocks=1024, steps=256)), ("drift", dict(blocks=2048, steps=512))],
    "b": [("drift", dict(blocks=64, steps=32, **HT)), ("drift", dict(blocks=256, steps=64, **HT)),
          ("drift", dict(blocks=1024, steps=256, **HT))],
    "c": [("workload", dict(model="llama-3.1-8b", hardware="gh200-96g", batch=4,
                            prompt_tokens="uniform:512:2048", output_tokens="64", layers="4",
                            weights=w, hbm_fraction=0.3)) for w in ("none", "pinned")],
    "d": [("file", dict(path="instances/smollm2-narrative-qa-topk-s60.npz")),
          ("file", dict(path="instances/smollm2-long-summary-quest-s80-L5.npz"))],
    "e": [("workload", dict(model="mixtral-8x7b", hardware="gh200-96g", batch=2,
                            prompt_tokens="256", output_tokens="16", layers="2",
                            hbm_fraction=0.5, access="paper", variation="low"))],
    "f": [("drift", dict(blocks=256, steps=64, mode="inclusive"))],
    "g": [("drift", dict(blocks=256, steps=64, hardware="gh200-cxl")),
          ("drift", dict(blocks=1024, steps=256, hardware="gh200-cxl")),
          ("workload", dict(model="llama-3.1-8b", hardware="gh200-cxl", batch=4,
                            prompt_tokens="uniform:512:2048", output_tokens="64", layers="4",
                            weights="none", hbm_fraction=0.3)),
          ("drift", dict(blocks=256, steps=64, hardware="gh200-cxl", **HT))],
}


def build(kind: str, params: dict):
    """The instance of one cell (deterministic)."""
    sys.path.insert(0, str(ROOT))
    if kind == "file":
        from hetkv_opt.io.files import load_instance
        return load_instance(ROOT / params["path"])
    if kind == "drift":
        from hetkv_opt.workloads.drift import drift_instance
        return drift_instance(seed=1, **params)
    from hetkv_opt.workloads.options import workload_params_from_options
    from hetkv_opt.workloads.requests import build_workload
    p = dict(params)
    hbm = p.pop("hbm_fraction")
    wp = workload_params_from_options(model=p.pop("model"), hardware=p.pop("hardware"),
                                      batch=p.pop("batch"), prompt_tokens=p.pop("prompt_tokens"),
                                      output_tokens=p.pop("output_tokens"), layers=p.pop("layers"),
                                      hbm_fraction=hbm, **p)
    return build_workload(wp)


def cell_name(cls: str, idx: int, method: str, limit: float) -> str:
    return f"{cls}{idx}-{method}-t{limit:g}"


def run_one(cls: str, idx: int, method: str, limit: float) -> dict:
    """Run one cell here (called in the child process)."""
    kind, params = CLASSES[cls][idx]
    inst = build(kind, params)
    from hetkv_opt.solve import solve
    ie = int((inst.death - inst.birth)[inst.pinned_tier < 0].sum())
    t0 = time.perf_counter()
    res = solve(inst, method, time_limit_s=limit)
    wall = time.perf_counter() - t0
    d = res.to_dict()
    return {"class": cls, "index": idx, "kind": kind, "params": params, "method": method,
            "limit_s": limit, "wall_s": round(wall, 3), "item_epochs": ie,
            "instance": inst.name, "status": d["status"], "total_time_s": d["total_time_s"],
            "bound_s": d["bound_s"], "bound_method": d["bound_method"], "gap": d["gap"],
            "message": d["message"][:400], "phases": d["details"].get("phases")}


def lp_reference(cls: str, idx: int, cap_s: float) -> float | None:
    kind, params = CLASSES[cls][idx]
    inst = build(kind, params)
    from hetkv_opt.methods.exact import solve_lp
    lp = solve_lp(inst, time_limit_s=cap_s)
    return lp.details.get("bounds_s", {}).get("lp")


def _write(path: Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", default="a,b,c,d,e,f,g")
    ap.add_argument("--cells", default="",
                    help="only these instances, e.g. b2,d1 (class and index; overrides --classes)")
    ap.add_argument("--limits", default="10,60")
    ap.add_argument("--methods", default="auto")
    ap.add_argument("--max-item-epochs", type=float, default=2e7)
    ap.add_argument("--lp-ref", type=float, default=0.0,
                    help="seconds for the reference LP of each instance (0: none)")
    ap.add_argument("--table", action="store_true", help="print the table of what ran")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        cls, idx, method, limit = args.child
        if method == "lp-ref":
            print(json.dumps({"lp_s": lp_reference(cls, int(idx), float(limit))}))
        else:
            print(json.dumps(run_one(cls, int(idx), method, float(limit))))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    if args.table:
        return print_table()
    refs_path = OUT / "lp-ref.json"
    refs = json.loads(refs_path.read_text()) if refs_path.exists() else {}
    picked = [(c[0], int(c[1:])) for c in args.cells.split(",")] if args.cells else \
        [(cls, idx) for cls in args.classes.split(",") for idx in range(len(CLASSES[cls]))]
    for cls, idx in picked:
        if args.lp_ref > 0 and f"{cls}{idx}" not in refs:
            got = _child(cls, idx, "lp-ref", args.lp_ref, args.lp_ref * 1.5 + 60)
            refs[f"{cls}{idx}"] = None if got is None else got.get("lp_s")
            _write(refs_path, refs)
        for method in args.methods.split(","):
            for limit in map(float, args.limits.split(",")):
                path = OUT / (cell_name(cls, idx, method, limit) + ".json")
                if path.exists():
                    continue
                rec = _child(cls, idx, method, limit, 1.5 * limit + 60)
                if rec is None:
                    rec = {"class": cls, "index": idx, "method": method, "limit_s": limit,
                           "status": "hung", "wall_s": 1.5 * limit + 60}
                _write(path, rec)
                print(f"{path.name}: wall {rec['wall_s']} s, {rec.get('status')}, "
                      f"gap {rec.get('gap')}", flush=True)
    print_table()


def _child(cls, idx, method, limit, timeout):
    cmd = [sys.executable, __file__, "--child", cls, str(idx), method, str(limit)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"class": cls, "index": idx, "method": method, "limit_s": limit,
                "status": "crashed", "wall_s": None, "message": p.stderr[-400:]}
    return json.loads(lines[-1])


def print_table() -> None:
    refs_path = OUT / "lp-ref.json"
    refs = json.loads(refs_path.read_text()) if refs_path.exists() else {}
    rows = [json.loads(p.read_text()) for p in sorted(OUT.glob("*-t*.json"))]
    print("| class | instance | item-epochs | method | limit s | wall s | wall ok | status | "
          "gap | bound/LP | T/LP | bound by |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["class"], r["index"], r["method"], r["limit_s"])):
        lim, wall = r["limit_s"], r.get("wall_s")
        ok = wall is not None and wall <= 1.05 * lim + 2
        lp = refs.get(f"{r['class']}{r['index']}")
        b, T = r.get("bound_s"), r.get("total_time_s")
        def fmt(x):
            return "-" if x is None else f"{x:.4f}"
        gap = "-" if r.get("gap") is None else f"{100 * r['gap']:.2f} %"
        ratio_b = fmt(b / lp) if lp and b else "-"
        ratio_t = fmt(T / lp) if lp and T else "-"
        what = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items()
                         if k in ("weights", "mode", "hardware", "path"))
        print(f"| {r['class']}{r['index']} | {r.get('instance', '-')}{' (' + what + ')' if what else ''} | {r.get('item_epochs', '-')} | "
              f"{r['method']} | {lim:g} | {wall} | {'yes' if ok else 'NO'} | {r.get('status')} | "
              f"{gap} | {ratio_b} | {ratio_t} | {r.get('bound_method', '-')} |")


if __name__ == "__main__":
    main()
