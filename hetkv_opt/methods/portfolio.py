"""The portfolio's ledger and its measured decisions.

:class:`Ledger` keeps, for one ``auto`` call, the best proven bound of every method, the
best schedule the evaluator accepted, and a record of every phase (``details["phases"]``:
its name, runtime, the bound and best schedule time after it, and whether it finished or
was stopped by the deadline).  Every schedule offered is re-scored by the evaluator; only a
faster feasible one replaces the incumbent.

:func:`predict_lp_s` decides whether the LP relaxation can finish in the time it would get:
it solves the LP of a pilot (the first epochs of the instance, about
:data:`PILOT_ITEM_EPOCHS` item-epochs), and scales the pilot's measured time by the ratio of
model sizes to the power :data:`LP_TIME_EXPONENT`.  The pilot sees the instance's own
turnover and capacity pressure, which is what makes an LP slow, so the prediction follows
the instance family rather than one size threshold.
"""

from __future__ import annotations

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
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.result import OPTIMAL_SLACK, gap

#: item-epochs of the LP pilot (its LP takes well under a second on this formulation)
PILOT_ITEM_EPOCHS = 12_000
#: LP time grows about as (nonzeros) ** this on the time-expanded model (dual simplex;
#: measured by benchmarks/bench_auto.py --predict: pilot-to-full ratios of 8x to 64x)
LP_TIME_EXPONENT = 1.4


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
        self.current = "starts"

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

    def skip(self, name: str, why: str) -> None:
        """Record a phase that was not run, and why."""
        self.phases.append({"phase": name, "finished": False, "skipped": why, "runtime_s": 0.0,
                            "bound_s": self.bound_s, "best_s": self.best_s})

    def summary(self) -> str:
        """What happened, in words (the result's message)."""
        ran = [p for p in self.phases if not p.get("skipped")]
        parts = []
        for p in ran:
            word = "" if p["finished"] else " (stopped by the deadline)"
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

def pilot_instance(instance: Instance, item_epochs: int = PILOT_ITEM_EPOCHS) -> Instance | None:
    """The first epochs of ``instance`` holding about ``item_epochs`` item-epochs (None
    when the instance is that small already)."""
    E = instance.num_epochs
    alive = np.zeros(E + 1)
    np.add.at(alive, instance.birth, 1)
    np.add.at(alive, instance.death, -1)
    per_epoch = np.cumsum(alive)[:E]
    total = float(per_epoch.sum())
    if total <= 2 * item_epochs or E < 4:
        return None
    cum = np.cumsum(per_epoch)
    Ep = int(np.searchsorted(cum, item_epochs)) + 1
    Ep = max(2, min(Ep, E // 2))
    sub, _ = window_instance(instance, 0, Ep, instance.initial_tier.clip(min=0))
    return sub


def predict_lp_s(instance: Instance, config: SolverConfig, *, model_nnz: int | None = None
                 ) -> tuple[float, dict]:
    """Predicted seconds of the LP relaxation of ``instance`` and how it was predicted.

    Returns ``(seconds, record)``; ``record`` has the pilot's size and measured time (for
    ``details["phases"]``).  A pilot that cannot be cut (tiny instances) predicts its own
    measured time.
    """
    pilot = pilot_instance(instance)
    target = pilot if pilot is not None else instance
    t0 = time.perf_counter()
    model = build_model(target, rounding_cuts=config.rounding_cuts, count_vars=False)
    build_s = time.perf_counter() - t0
    raw = run_highs(model, relax=True, time_limit_s=30.0, threads=config.threads,
                    seed=config.seed, lp_method=config.lp_method, options=config.highs)
    lp_s = raw.runtime_s
    rec = {"pilot_epochs": target.num_epochs, "pilot_nonzeros": int(model.num_nz),
           "pilot_lp_s": round(lp_s, 6), "pilot_build_s": round(build_s, 6)}
    if pilot is None:
        rec["predicted_lp_s"] = round(lp_s + build_s, 6)
        return lp_s + build_s, rec
    nnz = model_nnz if model_nnz is not None else _estimate_nnz(instance, target, model.num_nz)
    ratio = max(1.0, nnz / max(model.num_nz, 1))
    pred = (lp_s + build_s) * ratio ** LP_TIME_EXPONENT
    rec.update({"nonzeros_estimate": int(nnz), "predicted_lp_s": round(pred, 6)})
    return pred, rec


def _estimate_nnz(instance: Instance, pilot: Instance, pilot_nnz: int) -> float:
    """The full model's nonzeros, scaled from the pilot by item-epochs and reads."""
    def size(inst):
        return float((inst.death - inst.birth).sum()) + float(inst.read_bytes.size)
    return pilot_nnz * size(instance) / max(size(pilot), 1.0)


__all__ = ["LP_TIME_EXPONENT", "Ledger", "PILOT_ITEM_EPOCHS", "pilot_instance", "predict_lp_s"]
