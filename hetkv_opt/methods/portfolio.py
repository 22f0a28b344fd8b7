"""The portfolio's ledger and its measured decisions.

:class:`Ledger` keeps, for one ``auto`` call, the best proven bound of every method, the
best schedule the evaluator accepted, and a record of every phase (``details["phases"]``:
its name, runtime, the bound and best schedule time after it, and whether it finished or
was stopped by the deadline).  Every schedule offered is re-scored by the evaluator; only a
faster feasible one replaces the incumbent.

:func:`predict_lp_s` decides whether the LP relaxation can finish in the time it would get:
it solves the LPs of two pilots (the instance shrunk in items and epochs alike, about
:data:`PILOT_ITEM_EPOCHS` item-epochs and a quarter of that), measures how the time grows
between them, and extrapolates to the full size.  The pilots keep the instance's turnover,
read overlap and capacity pressure, which is what makes an LP slow, so the prediction
follows the instance family rather than one size threshold.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import contextmanager

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.rolling import window_instance
from hetkv_opt.milp.build import build_model
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.milp.highs import run_highs
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.result import OPTIMAL_SLACK, gap

#: item-epochs of the larger LP pilot (its LP takes well under a second on most families)
PILOT_ITEM_EPOCHS = 16_000
#: the growth exponent of LP time in nonzeros when the pilots cannot measure it
LP_TIME_EXPONENT = 1.6


class Ledger:
    """Best bound, best schedule and the phase records of one portfolio run."""

    def __init__(self, instance: Instance, deadline: Deadline, progress=None):
        self.instance = instance
        self.deadline = deadline
        self.progress = progress
        self.bounds: dict[str, float] = {}
        self.best: Schedule | None = None
        self.best_s: float | None = None
        self.best_source: str | None = None
        self.best_objective_s: float | None = None
        self.phases: list[dict] = []
        self.prices = None                   # the best Lagrangian prices so far (a warm start)
        self.client = None                   # Dask client for the decomposed bound, if any
        self.lagrangian_cache: dict = {}     # the prepared problem and oracle, across phases
        self.current = "starts"
        self.homes_done = None               # the schedule the homes search last started from
        self.polish_done = None              # ... and the polish search
        self.columns_done = False            # the Dantzig-Wolfe master for columns has run
        self.dw_master = None                # ... and converged: its columns, for the MIP

    # ---------------------------------------------------------------- what is known
    @property
    def bound_s(self) -> float | None:
        vals = [v for v in self.bounds.values() if v is not None and math.isfinite(v)]
        return max(vals) if vals else None

    @property
    def bound_method(self) -> str | None:
        vals = {k: v for k, v in self.bounds.items() if v is not None and math.isfinite(v)}
        return max(vals, key=vals.get) if vals else None

    def gap(self) -> float | None:
        return gap(self.best_s, self.bound_s)

    def closed(self, tol: float) -> bool:
        """The best schedule is proven optimal within ``tol`` (the rule of
        :func:`hetkv_opt.result.finish`)."""
        g = self.gap()
        return g is not None and g <= tol + OPTIMAL_SLACK

    # ---------------------------------------------------------------- offers
    def offer(self, schedule: Schedule | None, source: str,
              objective_s: float | None = None) -> bool:
        """Evaluate ``schedule``; keep it when feasible and faster than the incumbent
        (``objective_s``: the solver's own time for it, cross-checked by ``finish``)."""
        if schedule is None:
            return False
        ev = evaluate(self.instance, schedule)
        if not ev.feasible:
            return False
        if self.best_s is None or ev.total_time_s < self.best_s:
            self.best, self.best_s, self.best_source = schedule, ev.total_time_s, source
            self.best_objective_s = objective_s
            self._report()
            return True
        return False

    def prove(self, method: str, value: float | None) -> None:
        """Record a proven bound (the best of each method is kept)."""
        if value is None or not math.isfinite(value):
            return
        if value > self.bounds.get(method, -math.inf):
            self.bounds[method] = float(value)
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress({"phase": self.current, "elapsed_s": self.deadline.elapsed_s(),
                           "incumbent_s": self.best_s, "bound_s": self.bound_s,
                           "gap": self.gap()})

    # ---------------------------------------------------------------- phases
    @contextmanager
    def phase(self, name: str):
        """Record one phase: ``with ledger.phase("lp") as ph: ...``; the body sets
        ``ph["finished"] = False`` (and a ``note``) when the deadline stopped it."""
        rec = {"phase": name, "finished": True}
        self.current = name
        t0 = time.perf_counter()
        try:
            yield rec
        finally:
            rec["runtime_s"] = round(time.perf_counter() - t0, 6)
            rec["bound_s"] = self.bound_s
            rec["best_s"] = self.best_s
            self.phases.append(rec)

    def skip(self, name: str, why: str, **info) -> None:
        """Record a phase that was not run, and why (``info``: what the decision saw)."""
        self.phases.append({"phase": name, "finished": False, "skipped": why, "runtime_s": 0.0,
                            "bound_s": self.bound_s, "best_s": self.best_s, **info})

    def record(self, name: str, runtime_s: float, finished: bool, **info) -> None:
        """Record a phase that ran beside the others (in a second process): its own
        runtime, and the bound and best schedule once its answer was used."""
        self.phases.append({"phase": name, "finished": bool(finished), "background": True,
                            "runtime_s": round(float(runtime_s), 6), **info,
                            "bound_s": self.bound_s, "best_s": self.best_s})

    def summary(self) -> str:
        """What happened, in words (the result's message)."""
        ran = [p for p in self.phases if not p.get("skipped")]
        parts = []
        for p in ran:
            word = "" if p["finished"] else " (stopped by the deadline)"
            if p.get("background"):
                word = (" (in a second process, beside the others)" if p["finished"] else
                        " (in a second process, beside the others; stopped unfinished)")
            parts.append(f"{p['phase']} {p['runtime_s']:.2f} s{word}")
        text = "phases: " + ", ".join(parts) if parts else "no phase ran"
        skipped = [f"{p['phase']}: {p['skipped']}" for p in self.phases if p.get("skipped")]
        if skipped:
            text += "; skipped " + "; ".join(skipped)
        if self.best_source:
            text += f"; best schedule from {self.best_source}"
        if self.bound_method:
            text += f"; bound from {self.bound_method}"
        return text


# ------------------------------------------------------------------------- LP prediction

def shrunk_instance(instance: Instance, factor: int) -> Instance:
    """The instance shrunk ``factor`` times in both items and epochs, with the same
    statistics: the first ``E / factor`` epochs, every ``factor``-th item, and every
    bounded tier's capacity scaled by the bytes kept.  Turnover, read overlap and capacity
    pressure (what makes an LP slow) stay as they are; only the size changes."""
    f = max(1, int(factor))
    E = instance.num_epochs
    Ep = max(2, -(-E // f))
    sub, _ = window_instance(instance, 0, min(Ep, E), instance.initial_tier.clip(min=0))
    if f == 1 or sub.num_items < 2 * f:
        return sub
    keep = np.arange(0, sub.num_items, f)
    remap = np.full(sub.num_items, -1, np.int64)
    remap[keep] = np.arange(keep.size)
    ratio = float(sub.size_bytes[keep].sum()) / max(float(sub.size_bytes.sum()), 1.0)
    tiers = [dataclasses.replace(t, capacity_bytes=None if t.capacity_bytes is None
                                 else max(int(t.capacity_bytes * ratio), 1))
             for t in sub.tiers]

    def cut(ep, it, nb):
        m = remap[it] >= 0
        return ep[m], remap[it[m]], nb[m]

    return make_instance(
        name=f"{instance.name}/{f}", mode=sub.mode, tiers=tiers, size_bytes=sub.size_bytes[keep],
        num_epochs=sub.num_epochs, birth=sub.birth[keep], death=sub.death[keep],
        pinned_tier=sub.pinned_tier[keep], initial_tier=sub.initial_tier[keep],
        min_time_s=sub.min_time_s * ratio,
        reads=cut(sub.read_epoch, sub.read_item, sub.read_bytes),
        writes=cut(sub.write_epoch, sub.write_item, sub.write_bytes))


def _lp_seconds(inst: Instance, config: SolverConfig, method: str, limit_s: float
                ) -> tuple[float, int, bool]:
    """Measured seconds to build and solve the LP of ``inst`` with ``method``, its
    nonzeros, and whether it finished within ``limit_s``."""
    t0 = time.perf_counter()
    model = build_model(inst, rounding_cuts=config.rounding_cuts, count_vars=False)
    raw = run_highs(model, relax=True, time_limit_s=limit_s, threads=config.threads,
                    seed=config.seed, lp_method=method, options=config.highs)
    return time.perf_counter() - t0, int(model.num_nz), raw.status == "optimal"


#: the LP algorithms piloted when ``lp_method`` is ``auto``: neither wins everywhere on this
#: formulation (1024 x 256 drift: dual simplex 15.6 s, interior point over 6 min; the
#: three-tier 256 x 64: dual simplex over 200 s, interior point 49 s)
PILOT_LP_METHODS = ("simplex", "ipm")
#: a pilot LP may take at most this share of the time left (and never more than 3 s)
PILOT_SHARE = 0.02


def predict_lp_s(instance: Instance, config: SolverConfig, *, pilot_limit_s: float = 3.0,
                 deadline: Deadline | None = None) -> tuple[float, dict]:
    """Predicted seconds of the LP relaxation of ``instance``, the LP algorithm to use, and
    how both were decided.

    Two pilots, the instance shrunk (:func:`shrunk_instance`) to about
    :data:`PILOT_ITEM_EPOCHS` and to a quarter of that, are solved with each algorithm of
    :data:`PILOT_LP_METHODS` (only ``config.lp_method`` when the caller chose one); their
    times give each algorithm's own growth exponent (clipped to [1, 2.5]), which
    extrapolates the larger pilot to the full size, and the algorithm predicted faster is
    chosen.  A pilot that does not finish in ``pilot_limit_s`` (or in
    :data:`PILOT_SHARE` of what is left of ``deadline``) predicts infinity for its
    algorithm.  Returns ``(seconds, record)``; ``record["lp_method"]`` is the algorithm
    chosen, and the record says what was measured.
    """
    methods = PILOT_LP_METHODS if config.lp_method == "auto" else (config.lp_method,)
    ie = float((instance.death - instance.birth).sum())
    if ie <= PILOT_ITEM_EPOCHS / 4:
        # tiny: its LP takes a fraction of a second even with three tiers; not worth a
        # pilot (and it still runs under its hard share of the deadline)
        return 0.0, {"pilot": "none (a tiny instance)", "predicted_lp_s": 0.0,
                     "lp_method": config.lp_method}
    if deadline is not None and not deadline.unlimited:
        pilot_limit_s = min(pilot_limit_s, max(0.05, PILOT_SHARE * (deadline.remaining_s() or 0)))
    # the larger pilot is always a shrunk copy (at least 2x in items and epochs), so that
    # the pilots cost a fraction of the LP they predict
    big = max(2, int(round(math.sqrt(ie / PILOT_ITEM_EPOCHS))))
    small = 2 * big
    inst_big, inst_small = shrunk_instance(instance, big), shrunk_instance(instance, small)
    per: dict = {}
    for method in methods:
        # the smaller pilot first: when even it does not finish, the larger is not tried
        t_small, n_small, ok_small = _lp_seconds(inst_small, config, method, pilot_limit_s)
        rec = {"pilot2_shrink": small, "pilot2_nonzeros": n_small,
               "pilot2_lp_s": round(t_small, 6), "predicted_lp_s": math.inf}
        per[method] = rec
        if not ok_small:
            continue
        t_big, n_big, ok_big = _lp_seconds(inst_big, config, method, pilot_limit_s)
        rec.update({"pilot_shrink": big, "pilot_nonzeros": n_big, "pilot_lp_s": round(t_big, 6)})
        if not ok_big:
            continue
        alpha = LP_TIME_EXPONENT
        if n_small < n_big and t_small > 0:
            alpha = math.log(max(t_big, 1e-6) / max(t_small, 1e-6)) / math.log(n_big / n_small)
        alpha = min(max(alpha, 1.0), 2.5)
        nnz = _estimate_nnz(instance, n_big, big)
        pred = t_big * max(1.0, nnz / n_big) ** alpha
        rec.update({"exponent": round(alpha, 3), "nonzeros_estimate": int(nnz),
                    "predicted_lp_s": round(pred, 6)})

    best = min(methods, key=lambda m: (per[m]["predicted_lp_s"], _pilot_rank(per[m])))
    out = {**per[best], "lp_method": best, "pilot_limit_s": round(pilot_limit_s, 6)}
    if len(methods) > 1:
        out["predicted_by_method"] = {m: per[m]["predicted_lp_s"] for m in methods}
    return per[best]["predicted_lp_s"], out


def _pilot_rank(rec: dict) -> tuple:
    """Among algorithms with the same prediction (infinity: neither finished its larger
    pilot): the one that finished its smaller pilot, and faster."""
    done_small = "pilot_shrink" in rec        # the larger pilot ran: the smaller finished
    return (0 if done_small else 1, rec["pilot2_lp_s"])


def _estimate_nnz(instance: Instance, pilot_nnz: int, factor: int) -> float:
    """The full model's nonzeros from a pilot shrunk ``factor`` times in items and epochs."""
    return float(pilot_nnz) * factor * factor


__all__ = ["LP_TIME_EXPONENT", "Ledger", "PILOT_ITEM_EPOCHS", "PILOT_LP_METHODS", "predict_lp_s",
           "shrunk_instance"]
