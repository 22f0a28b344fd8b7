"""What one MILP/LP backend run gives (:class:`RawSolve`), and how a MILP run becomes a
:class:`~hetkv_opt.result.SolveResult` (:func:`milp_result`): one path for every backend.

A backend (HiGHS through highspy, or PuLP with HiGHS or CBC) returns a ``RawSolve`` in the
model's scaled units; :func:`milp_result` turns its solution into a schedule, its dual bound
into a proof (less :data:`MILP_BOUND_MARGIN`), and hands both to :func:`hetkv_opt.result.finish`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.milp.build import MilpModel
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, schedule_from_residency
from hetkv_opt.result import SolveResult, finish

# HiGHS's branch-and-bound bound is computed with tolerances; we report it less this
# relative margin so that what we print stays a proof.
MILP_BOUND_MARGIN = 1e-6


@dataclass
class RawSolve:
    """What one HiGHS run gave, in scaled model units."""

    status: str                    # optimal | feasible | infeasible | time_limit_no_solution | error | unbounded
    message: str
    x: np.ndarray | None           # primal column values, when a solution exists
    objective: float | None        # scaled objective of x
    dual_bound: float | None       # MIP dual bound (scaled), MIP only
    row_dual: np.ndarray | None = None
    col_dual: np.ndarray | None = None
    runtime_s: float = 0.0
    info: dict = field(default_factory=dict)


def milp_result(inst: Instance, model: MilpModel, raw: RawSolve, *, method: str,
                bounds: dict, t_start: float, details: dict, gap_tol: float | None,
                fallback: Schedule | None = None) -> SolveResult:
    """The result of one MILP run.

    ``raw.dual_bound`` (unless the run failed) becomes the ``milp`` bound less the safety
    margin; ``raw.x`` becomes the schedule; when the run stopped (error, Ctrl-C, time limit)
    before the backend kept an incumbent, ``fallback`` (a feasible starting schedule) is
    reported instead, and the message says so.
    """
    bounds = dict(bounds)
    if raw.dual_bound is not None and raw.status != "error":
        bounds["milp"] = raw.dual_bound * model.t0_s * (1 - MILP_BOUND_MARGIN)
    schedule = obj_s = None
    status, message = raw.status, raw.message
    if raw.x is not None:
        schedule = schedule_from_residency(inst, model.residency_from_vector(raw.x))
        obj_s = raw.objective * model.t0_s if raw.objective is not None else None
    elif fallback is not None and raw.status in ("error", "time_limit_no_solution"):
        # interrupted (Ctrl-C) or failed before the backend kept an incumbent: the starting
        # schedule is still a feasible answer, and the bounds still stand
        schedule, status = fallback, "feasible"
        message = f"{raw.message}; reporting the starting schedule"
    return finish(inst, method, status=status, schedule=schedule, solver_objective_s=obj_s,
                  bounds=bounds, t_start=t_start, details=details, message=message,
                  gap_tol=gap_tol)


__all__ = ["MILP_BOUND_MARGIN", "RawSolve", "milp_result"]
