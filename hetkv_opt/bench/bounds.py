"""Proven bounds to measure policies against, computed once per instance and kept on disk.

A sweep of many policies over one instance needs one bound, not one per policy:
:func:`proven_bound` computes the bound a method gives in a time limit and stores it in a
cache directory under the instance's content hash (a file per instance, method, time limit
and package version, written whole).  Whatever is read back was a proof when it was
written: every value in it is one of the bounds ``solve`` reported (each checked by weak
duality or a certificate when it was made).

>>> from hetkv_opt.model.instance import tiny_instance
>>> b = proven_bound(tiny_instance(), "lagrangian", time_limit_s=5)
>>> b["bound_method"], round(b["bound_s"], 6), b["cached"]
('lagrangian', 1.8, False)
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from hetkv_opt.io.files import atomic_write_bytes, check_header, instance_hash
from hetkv_opt.model.instance import Instance, ModelError
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.model.terms import aggregate_bound_s

#: the bound methods a policy can be measured against (``auto``: the best proof the
#: portfolio finds in the time limit)
BOUND_METHODS = ("auto", "lp", "lagrangian", "milp", "aggregate")
SCHEMA_BOUND_CACHE = "hetkv-bound-cache"
BOUND_CACHE_VERSION = 2          # 2: auto's entries hold the per-epoch bound too


def default_cache_dir() -> Path:
    """``$HETKV_CACHE_DIR/bounds``, else ``~/.cache/hetkv/bounds``."""
    root = os.environ.get("HETKV_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hetkv")
    return Path(root) / "bounds"


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("hetkv-opt")
    except PackageNotFoundError:     # a source tree that was never installed
        return "0"


def _cache_path(cache_dir: Path, sha: str, method: str, time_limit_s: float | None) -> Path:
    limit = "none" if time_limit_s is None else f"{float(time_limit_s):g}"
    return Path(cache_dir) / f"{sha[:32]}-{method}-t{limit}-v{_package_version()}.json"


def held_by_layer(instance: Instance) -> bool:
    """Whether ``auto`` would take this instance by layer (two layers or more and more
    reads than ``BY_LAYER_MIN_READS``, as ``hetkv solve`` decides on a sharded file).

    Held whole, the portfolio takes about 200 bytes per read (the paper's workload at full
    scale: more than the 24 GB of the machine), and the by-layer path proves the aggregate
    line and the per-epoch bound, so those are what ``auto`` gives such an instance here,
    after one pass over its accesses."""
    import numpy as np

    from hetkv_opt.methods.by_layer import BY_LAYER_MIN_READS
    layer = instance.epoch_labels.get("layer")
    return (layer is not None and instance.read_item.size > BY_LAYER_MIN_READS
            and np.unique(np.asarray(layer)).size >= 2)


def _compute(instance: Instance, method: str, time_limit_s: float | None,
             by_layer: bool) -> dict:
    from hetkv_opt.solve import solve
    if method == "aggregate":
        return {"aggregate": aggregate_bound_s(instance)}
    if by_layer:
        return basic_bounds(instance)
    res = solve(instance, method, time_limit_s=time_limit_s)
    if res.status == "infeasible":
        raise ModelError("(instance)", f"no schedule exists: {res.message}")
    return {k: float(v) for k, v in res.details.get("bounds_s", {}).items()
            if v is not None and math.isfinite(v)}


def proven_bound(instance: Instance, method: str = "auto", *, time_limit_s: float | None = 60.0,
                 cache_dir: str | os.PathLike | None = None) -> dict:
    """The best bound ``method`` proves on ``instance`` in ``time_limit_s``.

    Parameters
    ----------
    instance : Instance
    method : {"auto", "lp", "lagrangian", "milp", "aggregate"}
    time_limit_s : float or None
    cache_dir : path, optional
        Where bounds are kept between runs (None: not cached).

    Returns
    -------
    dict
        ``bound_s`` and ``bound_method`` (the method that proved the best value),
        ``bounds_s`` (every proof at hand), ``asked`` (the method asked for), ``cached``
        (read from the cache), ``runtime_s``; ``note`` when ``auto`` gave the aggregate line
        and the per-epoch bound without a solve (:func:`held_by_layer`).

    Raises
    ------
    ValueError
        An unknown method.
    ModelError
        The instance has no schedule at all.
    """
    if method not in BOUND_METHODS:
        raise ValueError(f"bound method must be one of {', '.join(BOUND_METHODS)}, "
                         f"got {method!r}")
    t0 = time.perf_counter()
    by_layer = method == "auto" and held_by_layer(instance)
    sha = instance_hash(instance)
    path = None if cache_dir is None else _cache_path(Path(cache_dir), sha, method, time_limit_s)
    bounds = None
    cached = False
    if path is not None and path.is_file():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            check_header(d, schema=SCHEMA_BOUND_CACHE, versions=BOUND_CACHE_VERSION)
            if d.get("instance_sha256") == sha and isinstance(d.get("bounds_s"), dict):
                bounds = {str(k): float(v) for k, v in d["bounds_s"].items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)
                          and math.isfinite(v)}
                cached = True
        except (OSError, ValueError, ModelError):
            bounds = None                   # a damaged cache entry is recomputed
    if bounds is None:
        bounds = _compute(instance, method, time_limit_s, by_layer)
        if path is not None:
            rec = {"schema": SCHEMA_BOUND_CACHE, "schema_version": BOUND_CACHE_VERSION,
                   "instance_sha256": sha, "instance": instance.name, "method": method,
                   "time_limit_s": time_limit_s, "bounds_s": bounds,
                   "hetkv_opt_version": _package_version()}
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(path, (json.dumps(rec, indent=1, sort_keys=True) + "\n")
                                   .encode("utf-8"))
            except OSError:
                pass                        # a cache that cannot be written is no cache
    best = max(bounds, key=bounds.get) if bounds else None
    out = {"bound_s": bounds.get(best) if best else None, "bound_method": best,
           "bounds_s": bounds, "asked": method, "time_limit_s": time_limit_s,
           "cached": cached, "runtime_s": round(time.perf_counter() - t0, 6)}
    if by_layer:
        out["note"] = ("auto goes by layer on an instance this large, and the by-layer "
                       "path proves the aggregate line and the per-epoch bound")
    return out


__all__ = ["BOUND_METHODS", "default_cache_dir", "held_by_layer", "proven_bound"]
