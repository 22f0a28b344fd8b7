"""The result contract: one :class:`SolveResult` for every method, made by :func:`finish`.

Every method (exact MILP, LP bound, Lagrangian bound, heuristics, policies) ends by calling
:func:`finish`, which re-scores the schedule with the independent evaluator, keeps the best
proven bound, and makes the status honest:

- a schedule the evaluator finds infeasible, or slower than the solver claimed, is an
  ``error`` (a bug, never hidden);
- a bound above a feasible schedule's time is an ``error`` (a bound is a proof);
- ``optimal`` needs a proven bound within the requested gap, whatever the solver said.

The result is frozen: a caller that wants to change something makes a new one with
:func:`dataclasses.replace` (or :meth:`SolveResult.with_`), so no field is ever patched
behind the evaluator's back.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hetkv_opt.model.evaluate import Evaluation, evaluate
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule


class Status(str, Enum):
    """What a result is: the words of the ``status`` field.

    A ``Status`` is a ``str`` (``Status.OPTIMAL == "optimal"``), so it compares, prints and
    serialises as its word.

    >>> Status("optimal") == "optimal", Status.FEASIBLE, f"{Status.ERROR}"
    (True, 'feasible', 'error')
    """

    OPTIMAL = "optimal"                      # proven within the requested relative gap
    FEASIBLE = "feasible"                    # a schedule, not proven optimal
    BOUND_ONLY = "bound_only"                # a proven bound, no schedule
    INFEASIBLE = "infeasible"                # no schedule can exist (the message says why)
    TIME_LIMIT_NO_SOLUTION = "time_limit_no_solution"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:          # prints as the word it is: 'optimal'
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


STATUSES = tuple(s.value for s in Status)

#: "optimal within gap g" allows this much more than g: the MILP's bound is reported less a
#: 1e-6 relative safety margin, so a requested gap of 0 could otherwise never be proven
OPTIMAL_SLACK = 1e-5


@dataclass(frozen=True, kw_only=True)
class SolveResult:
    """The result of every method.

    Attributes
    ----------
    status : Status
        optimal | feasible | bound_only | infeasible | time_limit_no_solution | error.
        A time limit with an incumbent is ``feasible``, never ``optimal``.
    method : str
        The method that made it (``milp``, ``auto``, ``policy:lru``, ...).
    schedule : Schedule or None
        Only a schedule the evaluator accepted.
    evaluation : Evaluation or None
        The evaluator's verdict on ``schedule``.
    total_time_s : float or None
        T of the schedule, from the evaluator.
    bound_s : float or None
        Best proven lower bound on T, and ``bound_method`` the method that proved it.
    gap : float or None
        ``(total_time_s - bound_s) / total_time_s``.
    runtime_s : float
        Wall-clock seconds of the call.
    solver_objective_s : float or None
        The solver's own objective for its schedule (cross-checked against the evaluator).
    message : str
        What happened, in words (why, for infeasible and error results).
    details : dict
        Model size, solver counters, bounds of every method run (``bounds_s``).
    instance_name : str
    num_steps : int
        Decode steps of the instance (for throughputs).
    certificate : object or None
        The Lagrangian bound's certificate (``BoundCertificate``) when one proved the bound.
    """

    status: Status
    method: str
    schedule: Schedule | None = None
    evaluation: Evaluation | None = None
    total_time_s: float | None = None
    bound_s: float | None = None
    bound_method: str | None = None
    gap: float | None = None
    runtime_s: float = 0.0
    solver_objective_s: float | None = None
    message: str = ""
    details: dict = field(default_factory=dict)
    instance_name: str = ""
    num_steps: int = 0
    certificate: Any = None

    def with_(self, **changes) -> "SolveResult":
        """A copy with some fields changed (the result itself is frozen)."""
        return dataclasses.replace(self, **changes)

    @property
    def throughput_steps_per_s(self) -> float | None:
        if self.total_time_s is None or self.total_time_s <= 0:
            return None
        return self.num_steps / self.total_time_s

    @property
    def throughput_bound_steps_per_s(self) -> float | None:
        """Upper bound on throughput (the bound on time, inverted)."""
        if self.bound_s is None or self.bound_s <= 0:
            return None
        return self.num_steps / self.bound_s

    def to_dict(self) -> dict:
        """JSON-ready summary (the ``--format json`` object)."""
        ev = self.evaluation
        return {"status": str(self.status), "method": self.method, "instance": self.instance_name,
                "total_time_s": self.total_time_s, "bound_s": self.bound_s,
                "bound_method": self.bound_method, "gap": self.gap,
                "runtime_s": round(self.runtime_s, 6),
                "throughput_steps_per_s": self.throughput_steps_per_s,
                "throughput_bound_steps_per_s": self.throughput_bound_steps_per_s,
                "hbm_read_share": ev.hbm_read_share if ev else None,
                "effective_read_Bps": ev.effective_read_Bps if ev else None,
                "num_moves": ev.num_moves if ev else None,
                "solver_objective_s": self.solver_objective_s,
                "message": self.message, "details": self.details}


def gap(total: float | None, bound: float | None) -> float | None:
    """``(total - bound) / total``, clipped at 0; None when either is unknown.

    >>> gap(2.0, 1.5), gap(None, 1.0), gap(0.0, 0.0)
    (0.25, None, 0.0)
    """
    if total is None or bound is None:
        return None
    if total <= 0:
        return 0.0
    return max(0.0, (total - bound) / total)


def finish(instance: Instance, method: str, *, status: str, t_start: float,
           schedule: Schedule | None = None, solver_objective_s: float | None = None,
           objective_is_exact: bool = False, bounds: dict | None = None,
           details: dict | None = None, message: str = "", gap_tol: float | None = None,
           certificate: Any = None, evaluation: Evaluation | None = None) -> SolveResult:
    """Make the result of a method: re-score, pick the best bound, make the status honest.

    Parameters
    ----------
    instance : Instance
    method : str
        Name of the method, for ``SolveResult.method``.
    status : str
        What the method believes (``optimal``, ``feasible``, ``bound_only``, ...).
    t_start : float
        ``time.perf_counter()`` when the method began (for ``runtime_s``).
    schedule : Schedule, optional
        Re-scored by :func:`hetkv_opt.model.evaluate.evaluate`; the time reported is the
        evaluator's.
    solver_objective_s : float, optional
        The method's own time for ``schedule``.  The evaluator may find it faster (a solver
        tolerance), never slower; with ``objective_is_exact`` (a simulator that claims the
        exact time) both must agree within 1e-9 relative.
    bounds : dict
        ``{method: seconds}``: every proof at hand; the largest finite one is reported.
    details : dict
        Method counters; ``details["bounds_s"]`` is set to the valid bounds.
    message : str
    gap_tol : float, optional
        The requested relative gap: an ``optimal`` without a proven bound within it
        becomes ``feasible``, and says so.
    certificate : optional
        A certificate of the bound (the Lagrangian's).
    evaluation : Evaluation, optional
        The evaluator's score of ``schedule`` made elsewhere: by
        :func:`hetkv_opt.model.evaluate.score` of the summed traffic of an instance's
        layers, when the instance is never held whole (``instance`` is then its template:
        tiers, epochs, no items).

    Returns
    -------
    SolveResult
    """
    ev = None
    total = None
    status = Status(status)
    if schedule is not None:
        ev = evaluation if evaluation is not None else evaluate(instance, schedule)
        if not ev.feasible:
            status, message = Status.ERROR, ("internal error: the solver's schedule is infeasible: "
                                             + "; ".join(ev.violations[:3]))
        else:
            total = ev.total_time_s
            claim = solver_objective_s
            if claim is not None and objective_is_exact and \
                    abs(total - claim) > 1e-9 * max(claim, 1e-300) + 1e-15:
                status, message = Status.ERROR, (
                    f"internal error: the method's time {claim:.9g} s disagrees with the "
                    f"evaluator's {total:.9g} s")
            elif claim is not None and total > claim * (1 + 1e-6) + 1e-15:
                status, message = Status.ERROR, (f"internal error: evaluator T = {total:.9g} s "
                                                 f"exceeds the solver's objective {claim:.9g} s")
    valid = {k: float(v) for k, v in (bounds or {}).items() if v is not None and math.isfinite(v)}
    bound_method = max(valid, key=valid.get) if valid else None
    bound = valid[bound_method] if bound_method else None
    if total is not None and bound is not None and bound > total * (1 + 1e-9) + 1e-15:
        status, message = Status.ERROR, (f"internal error: bound {bound:.9g} s ({bound_method}) "
                                         f"exceeds a feasible schedule's time {total:.9g} s")
    if status in (Status.OPTIMAL, Status.FEASIBLE) and schedule is None:
        status = Status.TIME_LIMIT_NO_SOLUTION
    g = gap(total, bound)
    if status == Status.OPTIMAL and gap_tol is not None and g is not None and \
            g > gap_tol + OPTIMAL_SLACK:
        # the solver's word is not enough: "optimal" needs a proven bound within the tolerance
        status = Status.FEASIBLE
        message = (message + "; " if message else "") + (
            f"the solver stopped as optimal but the proven gap is {g:.3g}")
    details = dict(details or {})
    details["bounds_s"] = valid
    return SolveResult(status=status, method=method,
                       schedule=schedule if total is not None else None,
                       evaluation=ev, total_time_s=total, bound_s=bound, bound_method=bound_method,
                       gap=g, runtime_s=time.perf_counter() - t_start,
                       solver_objective_s=solver_objective_s, message=message, details=details,
                       instance_name=instance.name, num_steps=instance.num_steps,
                       certificate=certificate)


def proven(res: SolveResult, gap_tol: float) -> SolveResult:
    """A heuristic's schedule whose evaluated time is within ``gap_tol`` of a proven bound
    is optimal within that tolerance: say so (the same rule as the MILP's)."""
    if res.status == Status.FEASIBLE and res.gap is not None and res.gap <= gap_tol:
        return res.with_(status=Status.OPTIMAL)
    return res


__all__ = ["OPTIMAL_SLACK", "STATUSES", "SolveResult", "Status", "finish", "gap", "proven"]
