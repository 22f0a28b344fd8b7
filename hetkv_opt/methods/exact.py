"""The exact methods: the LP relaxation as a proven bound, and the MILP on HiGHS (or PuLP).

Both build the time-expanded model of :mod:`hetkv_opt.milp.build`; the LP's bound is
recomputed from its row duals by weak duality (:mod:`hetkv_opt.bounds.lp`), the MILP's dual
bound is reported less a safety margin (:mod:`hetkv_opt.milp.raw`).
"""

from __future__ import annotations

import time

from hetkv_opt.bounds.lp import weak_duality_bound
from hetkv_opt.methods.rounding import round_lp_solution
from hetkv_opt.methods.starts import trivial_schedule
from hetkv_opt.milp.build import MilpModel, build_model, model_details
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.milp.highs import run_highs
from hetkv_opt.milp.pulp_backend import check_pulp_config, run_pulp
from hetkv_opt.milp.raw import MILP_BOUND_MARGIN, milp_result
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.result import SolveResult, finish


def solve_lp(inst: Instance, *, time_limit_s: float | None = None,
             config: SolverConfig = SolverConfig(), model: MilpModel | None = None,
             rounding: list | None = None) -> SolveResult:
    """The LP relaxation of the MILP, reported as a weak-duality bound (``bound_only``).

    The bound is recomputed from HiGHS's row duals (see :mod:`hetkv_opt.bounds.lp`), so it is a
    proof even when the LP solver's own objective is off by its tolerances.  When a list is
    passed as ``rounding``, the LP solution rounded to a feasible schedule (or None) is
    appended to it (see :mod:`hetkv_opt.methods.rounding`).
    """
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, "lp", status="infeasible", t_start=t_start, message=pre)
    t_b = time.perf_counter()
    model = model or build_model(inst, rounding_cuts=config.rounding_cuts, count_vars=False)
    details = model_details(model, time.perf_counter() - t_b)
    raw = run_highs(model, relax=True, time_limit_s=time_limit_s, threads=config.threads,
                    seed=config.seed, lp_method=config.lp_method, options=config.highs)
    details["lp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info}
    bounds = {"aggregate": aggregate_bound_s(inst)}
    if raw.status == "infeasible":
        return finish(inst, "lp", status="infeasible", bounds=bounds, t_start=t_start,
                      details=details,
                      message="the LP relaxation is infeasible: no schedule fits the capacities")
    if raw.row_dual is not None:
        db = weak_duality_bound(model, raw.row_dual)
        bounds["lp"] = float(db.bound_s)
        details["lp"]["objective_s"] = raw.objective * model.t0_s if raw.objective is not None else None
        details["lp"]["margin_s"] = float(db.margin_s)
    if rounding is not None:
        t_r = time.perf_counter()
        rounded = round_lp_solution(model, raw.x) if raw.x is not None else None
        details["lp"]["rounding_s"] = round(time.perf_counter() - t_r, 6)
        rounding.append(rounded)
    status = "bound_only" if raw.status in ("optimal", "feasible") or raw.row_dual is not None else raw.status
    if status == "time_limit_no_solution":
        status = "bound_only"  # the aggregate bound still stands
    return finish(inst, "lp", status=status, bounds=bounds, t_start=t_start, details=details,
                  message=raw.message)


def solve_milp(inst: Instance, *, time_limit_s: float | None = None,
               config: SolverConfig = SolverConfig(), warm_start: Schedule | None = None,
               extra_bounds: dict | None = None, model: MilpModel | None = None,
               log=None, progress=None, method_name: str = "milp") -> SolveResult:
    """The exact time-expanded MILP on HiGHS (or PuLP, by ``config.backend``), started from
    ``warm_start`` (default: the trivial schedule) when the evaluator accepts it."""
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    bounds = {"aggregate": aggregate_bound_s(inst)}
    bounds.update(extra_bounds or {})
    if pre:
        return finish(inst, method_name, status="infeasible", t_start=t_start, message=pre)
    if config.backend == "pulp":
        check_pulp_config(config)          # a missing CBC is said before the model is built
    t_b = time.perf_counter()
    model = model or build_model(inst, rounding_cuts=config.rounding_cuts)
    details = model_details(model, time.perf_counter() - t_b)
    start_vec = None
    if warm_start is None:
        warm_start = trivial_schedule(inst)
    ev0 = evaluate(inst, warm_start)
    if ev0.feasible:
        start_vec = model.vector_from_schedule(warm_start, ev0)
    remaining = None if time_limit_s is None else max(time_limit_s - (time.perf_counter() - t_start),
                                                      0.01)
    # HiGHS stops at its own gap; ours also counts the bound's safety margin
    highs_gap = (max(0.0, config.mip_rel_gap - 2 * MILP_BOUND_MARGIN) if config.mip_rel_gap > 0
                 else 0.0)
    if config.backend == "pulp":
        raw = run_pulp(model, config=config, time_limit_s=remaining,
                       name=f"hetkv_{inst.name}" if inst.name else "hetkv")
    elif not model.integrality.any():
        # nothing to branch on (every item pinned): the LP is the whole problem, and its
        # weak-duality bound is the proof (HiGHS reports no MIP bound for it)
        raw = run_highs(model, relax=True, time_limit_s=remaining, threads=config.threads,
                        seed=config.seed, lp_method=config.lp_method, options=config.highs)
        if raw.row_dual is not None:
            bounds["lp"] = float(weak_duality_bound(model, raw.row_dual).bound_s)
    else:
        raw = run_highs(model, relax=False, time_limit_s=remaining, mip_rel_gap=highs_gap,
                        threads=config.threads, seed=config.seed, warm_start=start_vec,
                        options=config.highs, log=log, progress=progress)
    details["milp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info,
                       "warm_start_s": ev0.total_time_s if ev0.feasible else None}
    return milp_result(inst, model, raw, method=method_name, bounds=bounds, t_start=t_start,
                       details=details, gap_tol=config.mip_rel_gap,
                       fallback=warm_start if start_vec is not None else None)


__all__ = ["solve_lp", "solve_milp"]
