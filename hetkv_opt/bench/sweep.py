"""Capacity curves: T and the proven bound against tier-0 capacity (or the off-package
link), with policies alongside -- "how much HBM buys how much throughput, proven".

For every point of the grid ``hbm_scales x link_scales`` the base instance is scaled
(:func:`scale_instance`: tier 0's capacity times ``hbm_scale``; every link of the tiers
below, read and write, times ``link_scale``), written to ``DIR/instances/NAME.npz``, and
solved with ``auto`` (best schedule and best proven bound in the time limit) and simulated
with each policy.  The cells run through the bench runner
(:func:`hetkv_opt.bench.runner.run_suite`: one JSON per cell in ``DIR/cells``, resumable,
a local process pool or a Dask cluster); each point is then summed up in
``DIR/points/NAME.json`` (``schema = "hetkv-sweep-point"``) and the picture is
``DIR/sweep.png``.

>>> from hetkv_opt.model.instance import tiny_instance
>>> scale_instance(tiny_instance(), hbm_scale=2.0).tiers[0].capacity_bytes
4
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

from hetkv_opt.bench.runner import BenchError, read_record, run_suite
from hetkv_opt.bench.suite import parse_suite
from hetkv_opt.io.files import atomic_write_bytes, instance_hash, load_instance, save_instance
from hetkv_opt.model.instance import Instance, make_tier

SCHEMA_POINT = "hetkv-sweep-point"
SCHEMA_VERSION = 1
PLOT_NAME = "sweep.png"


def scale_instance(inst: Instance, *, hbm_scale: float = 1.0, link_scale: float = 1.0,
                   name: str | None = None) -> Instance:
    """The instance with tier 0's capacity times ``hbm_scale`` (rounded down to whole
    bytes) and every link (read and write) of tiers >= 1 times ``link_scale``.

    Raises
    ------
    ValueError
        A scale <= 0, an unbounded tier 0 with ``hbm_scale != 1``, or no link to scale.
    """
    for what, v in (("hbm_scale", hbm_scale), ("link_scale", link_scale)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{what} must be a number > 0, got {v!r}")
    tiers = []
    for k, t in enumerate(inst.tiers):
        spec = dataclasses.asdict(t)
        if k == 0 and hbm_scale != 1.0:
            if t.capacity_bytes is None:
                raise ValueError(f"tier 0 ({t.name}) is unbounded: there is no capacity to scale")
            spec["capacity_bytes"] = int(math.floor(t.capacity_bytes * hbm_scale))
        if k > 0 and link_scale != 1.0:
            for key in ("link_read_Bps", "link_write_Bps"):
                if spec[key] is not None:
                    spec[key] = spec[key] * link_scale
        if k == 0:
            spec.pop("link_read_Bps"), spec.pop("link_write_Bps")
        tiers.append(make_tier(spec, k))
    if link_scale != 1.0 and all(t.link_read_Bps is None and t.link_write_Bps is None
                                 for t in inst.tiers[1:]):
        raise ValueError("no tier below tier 0 has a link: there is no link to scale")
    meta = dict(inst.metadata)
    meta["sweep"] = {"hbm_scale": hbm_scale, "link_scale": link_scale,
                     "base_instance": inst.name}
    return dataclasses.replace(inst, name=name or inst.name, tiers=tuple(tiers), metadata=meta)


def point_name(base: str, hbm_scale: float, link_scale: float) -> str:
    """``BASE-hbm0.5-link1``: the instance name (and file stem) of a point."""
    return f"{base}-hbm{hbm_scale:g}-link{link_scale:g}"


def _policy_methods(policies: Sequence[str], params: Mapping[str, str]) -> list[dict]:
    """Suite method tables for the policies; each ``--param`` goes to the policies that
    declare it (at least one must)."""
    from hetkv_opt.policies import get_policy
    out, used = [], set()
    for p in policies:
        fields = get_policy(p).params()
        mine = {k: v for k, v in params.items() if k in fields}
        used |= set(mine)
        out.append({"method": f"policy:{p}", **({"params": mine} if mine else {})})
    unused = sorted(set(params) - used)
    if unused:
        raise ValueError(f"parameter {unused[0]!r} is not a parameter of any policy given "
                         f"({', '.join(policies) or 'none'})")
    return out


def sweep(instance: str | Path | Instance, out_dir: str | Path, *,
          hbm_scales: Sequence[float] = (1.0,), link_scales: Sequence[float] = (1.0,),
          policies: Sequence[str] = (), params: Mapping[str, str] | None = None,
          time_limit_s: float = 60.0, workers: int = 1, scheduler=None,
          progress: Callable[[dict], None] | None = None, plot: bool = True) -> dict:
    """Solve and simulate every point of a capacity (or link) sweep.

    Parameters
    ----------
    instance : path or Instance
    out_dir : path
        ``instances/``, ``cells/`` (the runner's files), ``points/`` and ``sweep.png``.
    hbm_scales, link_scales : sequences of float
        The grid (their product); 1 = the instance as it is.
    policies : sequence of str
        Policy names or specs (``FILE.py:CLASS``, ``MODULE:CLASS``).
    params : mapping of str -> str
        Policy parameters, each given to every policy that declares it.
    time_limit_s : float
        ``auto``'s limit per point.
    workers, scheduler, progress
        As :func:`hetkv_opt.bench.runner.run_suite`.
    plot : bool
        Draw ``sweep.png`` (skipped, with ``plot_error`` set, without matplotlib).

    Returns
    -------
    dict
        ``{"points": [...], "plot": path or None, "cells": {"total", "ran", "skipped"}}``;
        each point holds ``hbm_scale``, ``link_scale``, ``total_time_s`` (auto's schedule),
        ``bound_s`` / ``bound_method`` (the best proven bound of the point), ``gap``,
        throughputs, and ``policies`` (label -> time, gap to the bound, oracle).

    Raises
    ------
    ValueError
        A bad scale, a policy that cannot be loaded, a parameter no policy has.
    BenchError, SuiteError
        As the runner raises them.
    """
    out_dir = Path(out_dir)
    base = load_instance(instance) if not isinstance(instance, Instance) else instance
    hbm_scales = [float(x) for x in hbm_scales] or [1.0]
    link_scales = [float(x) for x in link_scales] or [1.0]
    if not time_limit_s > 0:
        raise ValueError(f"time limit must be > 0, got {time_limit_s!r}")
    grid = [(h, ln) for ln in link_scales for h in hbm_scales]
    methods = [{"name": "auto", "method": "auto", "time_limit_s": float(time_limit_s)}]
    methods += _policy_methods(policies, dict(params or {}))
    entries, points = [], []
    for h, ln in grid:
        name = point_name(base.name, h, ln)
        inst = scale_instance(base, hbm_scale=h, link_scale=ln, name=name)
        path = out_dir / "instances" / f"{name}.npz"
        save_instance(inst, path)
        entries.append({"file": str(path), "name": name, "group": base.name})
        points.append((h, ln, name, inst))
    suite = parse_suite({"schema": "hetkv-suite", "schema_version": 1,
                         "description": f"hetkv sweep of {base.name}",
                         "instances": entries, "methods": methods},
                        name=f"sweep-{base.name}", base_dir=Path.cwd())
    run = run_suite(suite, out_dir / "cells", workers=workers, scheduler=scheduler,
                    progress=progress)
    from hetkv_opt.bench.runner import cell_id
    out_points = []
    for h, ln, name, inst in points:
        recs = {m.label: read_record(out_dir / "cells" / f"{cell_id(name, m.label)}.json")
                for m in suite.methods}
        pt = _point(base, inst, h, ln, recs)
        pt["file"] = str(out_dir / "points" / f"{name}.json")
        atomic_write_bytes(pt["file"], (json.dumps(pt, indent=1, allow_nan=False) + "\n").encode())
        out_points.append(pt)
    result = {"instance": base.name, "instance_sha256": instance_hash(base),
              "points": out_points, "plot": None,
              "cells": {"total": run.total, "ran": run.ran, "skipped": run.skipped,
                        "errors": list(run.errors), "failed": list(run.failed)}}
    if plot:
        try:
            result["plot"] = str(plot_sweep(out_points, out_dir / PLOT_NAME, title=base.name))
        except BenchError as exc:
            result["plot_error"] = str(exc)
    return result


def _point(base: Instance, inst: Instance, h: float, ln: float, recs: dict) -> dict:
    auto = (recs.get("auto") or {}).get("result") or {}
    bounds = [(auto.get("bound_s"), auto.get("bound_method"))]
    for rec in recs.values():
        r = (rec or {}).get("result") or {}
        bounds.append((r.get("bound_s"), r.get("bound_method")))
    bounds = [b for b in bounds if b[0] is not None]
    bound, how = max(bounds, key=lambda b: b[0]) if bounds else (None, None)
    T = auto.get("total_time_s")
    steps = inst.num_steps

    def gap(t):
        if t is None or bound is None:
            return None
        return max(0.0, (t - bound) / t) if t > 0 else 0.0

    pols = {}
    for label, rec in recs.items():
        if label == "auto":
            continue
        r = (rec or {}).get("result") or {}
        t = r.get("total_time_s")
        pols[label] = {"status": r.get("status"), "total_time_s": t, "gap": gap(t),
                       "oracle": bool((rec or {}).get("oracle")),
                       "throughput_steps_per_s": steps / t if t else None,
                       "num_moves": r.get("num_moves")}
    t0, below = inst.tiers[0], inst.tiers[1:]
    times = [t for t in [T] + [p["total_time_s"] for p in pols.values()] if t is not None]
    return {"schema": SCHEMA_POINT, "schema_version": SCHEMA_VERSION,
            "instance": inst.name, "base_instance": base.name,
            "instance_sha256": (recs.get("auto") or {}).get("instance", {}).get("sha256"),
            "hbm_scale": h, "link_scale": ln, "hbm_capacity_bytes": t0.capacity_bytes,
            "link_read_Bps": [t.link_read_Bps for t in below],
            "steps": steps, "status": auto.get("status"), "total_time_s": T,
            "bound_s": bound, "bound_method": how, "gap": gap(T),
            "best_time_s": min(times) if times else None,
            "throughput_steps_per_s": steps / T if T else None,
            "throughput_bound_steps_per_s": steps / bound if bound else None,
            "auto_message": auto.get("message"), "policies": pols}


# ----------------------------------------------------------------------------- picture

def _bytes_unit(values: list[float]) -> tuple[str, float]:
    v = max(values, default=1.0)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= scale:
            return unit, scale
    return "B", 1.0


def plot_sweep(points: list[dict], path: str | Path, title: str = "") -> Path:
    """Top: T (auto's schedule) and the proven bound against tier-0 capacity, the band
    between them shaded (the optimum is inside it), each policy a line.  Bottom: the same
    as decode steps per second (the bound becomes the proven maximum throughput).  With a
    link sweep only, the x axis is the link scale; with both, one column per link scale."""
    from hetkv_opt.bench.report import _pyplot, _time_unit
    plt = _pyplot()
    path = Path(path)
    links = sorted({p["link_scale"] for p in points})
    hbms = sorted({p["hbm_scale"] for p in points})
    by_link = len(hbms) == 1 and len(links) > 1
    panels = [points] if by_link else [[p for p in points if p["link_scale"] == ln] for ln in links]
    fig, axes = plt.subplots(2, len(panels), figsize=(max(7.5, 5.5 * len(panels)), 7.4),
                             squeeze=False, layout="constrained", sharex="col")
    unit, scale = _time_unit([p["total_time_s"] or 0 for p in points] +
                             [t["total_time_s"] or 0 for p in points for t in p["policies"].values()])
    bunit, bscale = _bytes_unit([p["hbm_capacity_bytes"] or 0 for p in points])
    labels = list(dict.fromkeys(lab for p in points for lab in p["policies"]))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22"]
    for col, pts in enumerate(panels):
        top, bot = axes[0][col], axes[1][col]
        key = "link_scale" if by_link else "hbm_scale"
        pts = sorted(pts, key=lambda p: p[key])
        if by_link:
            xs = [p["link_scale"] for p in pts]
            bot.set_xlabel("off-package link bandwidth (x the instance's)")
        else:
            xs = [p["hbm_capacity_bytes"] / bscale if p["hbm_capacity_bytes"] else p["hbm_scale"]
                  for p in pts]
            bot.set_xlabel(f"HBM (tier 0) capacity ({bunit})")
            if len(links) > 1:
                top.set_title(f"off-package links x{pts[0]['link_scale']:g}", fontsize=10)
        for ax, thr in ((top, False), (bot, True)):
            def val(t, steps):
                if t is None or t <= 0:
                    return None
                return steps / t if thr else t / scale
            ok = [(x, p) for x, p in zip(xs, pts)
                  if p["total_time_s"] is not None and p["bound_s"] is not None]
            if ok:
                x = [a for a, _ in ok]
                T = [val(p["total_time_s"], p["steps"]) for _, p in ok]
                B = [val(p["bound_s"], p["steps"]) for _, p in ok]
                if None not in T and None not in B:
                    ax.fill_between(x, B, T, color="#999999", alpha=0.35, lw=0,
                                    label="proven band (the optimum is in it)")
                    ax.plot(x, T, color="black", marker="s", lw=2.0, ms=5,
                            label="best schedule found (auto)")
                    ax.plot(x, B, color="black", ls="--", lw=1.6,
                            label="proven maximum" if thr else "proven lower bound")
            for j, lab in enumerate(labels):
                pp = [(xx, val(p["policies"][lab]["total_time_s"], p["steps"]))
                      for xx, p in zip(xs, pts) if lab in p["policies"]]
                pp = [q for q in pp if q[1] is not None]
                if not pp:
                    continue
                oracle = any(p["policies"].get(lab, {}).get("oracle") for p in pts)
                short = lab.split(":", 1)[1] if lab.startswith("policy:") else lab
                ax.plot([a for a, _ in pp], [b for _, b in pp], color=palette[j % len(palette)],
                        marker="o", lw=1.4, ls="--" if oracle else "-", ms=4,
                        label=short + (" (oracle)" if oracle else ""))
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
        if not by_link:
            for xx, p in zip(xs, pts):
                bot.annotate(f"x{p['hbm_scale']:g}", (xx, 0), xytext=(0, 3),
                             textcoords="offset points", xycoords=("data", "axes fraction"),
                             ha="center", fontsize=7, color="#555555")
        top.set_ylabel(f"decode time T ({unit})")
        bot.set_ylabel("throughput (decode steps / s)")
    axes[0][0].legend(fontsize=8, loc="upper right", framealpha=0.85)
    what = "the off-package link" if by_link else "HBM"
    fig.suptitle(f"hetkv sweep: {title}\nhow much {what} buys how much throughput, proven",
                 fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, pil_kwargs={"optimize": True})
    plt.close(fig)
    return path


def load_points(out_dir: str | Path) -> list[dict]:
    """The point files of a sweep folder (``DIR/points/*.json``), in grid order."""
    pts = []
    for p in sorted(Path(out_dir, "points").glob("*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(d, dict) and d.get("schema") == SCHEMA_POINT:
            pts.append(d)
    return sorted(pts, key=lambda d: (d["link_scale"], d["hbm_scale"]))


__all__ = ["PLOT_NAME", "SCHEMA_POINT", "load_points", "plot_sweep", "point_name",
           "scale_instance", "sweep"]
