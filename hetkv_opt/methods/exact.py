"""The exact methods: the LP relaxation as a proven bound, and the MILP on HiGHS (or PuLP).

Both build the time-expanded model of :mod:`hetkv_opt.milp.build`; the LP's bound is
recomputed from its row duals by weak duality (:mod:`hetkv_opt.bounds.lp`), the MILP's dual
bound is reported less a safety margin (:mod:`hetkv_opt.milp.raw`).
"""

from __future__ import annotations

import time

from hetkv_opt.bounds.lp import weak_duality_bound
from hetkv_opt.deadline import Deadline
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
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.result import SolveResult, finish


def solve_lp(inst: Instance, *, time_limit_s: "float | Deadline | None" = None,
             config: SolverConfig = SolverConfig(), model: MilpModel | None = None,
             rounding: list | None = None) -> SolveResult:
    """The LP relaxation of the MILP, reported as a weak-duality bound (``bound_only``).

    The bound is recomputed from HiGHS's row duals (see :mod:`hetkv_opt.bounds.lp`), so it is
    a proof even when the LP solver's own objective is off by its tolerances.  When a list is
    passed as ``rounding``, the LP solution rounded to a feasible schedule (or None) is
    appended to it (see :mod:`hetkv_opt.methods.rounding`), within the same deadline.
    """
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, "lp", status="infeasible", t_start=t_start, message=pre)
    t_b = time.perf_counter()
    model = model or build_model(inst, rounding_cuts=config.rounding_cuts, count_vars=False)
    details = model_details(model, time.perf_counter() - t_b)
    raw = run_highs(model, relax=True, time_limit_s=dl, threads=config.threads,
                    seed=config.seed, lp_method=config.lp_method, options=config.highs)
    details["lp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info}
    bounds = basic_bounds(inst)
    if raw.status == "infeasible":
        return finish(inst, "lp", status="infeasible", bounds=bounds, t_start=t_start,
                      details=details,
                      message="the LP relaxation is infeasible: no schedule fits the capacities")
    if raw.row_dual is not None:
        db = weak_duality_bound(model, raw.row_dual)
        bounds["lp"] = float(db.bound_s)
        details["lp"]["objective_s"] = (raw.objective * model.t0_s if raw.objective is not None
                                        else None)
        details["lp"]["margin_s"] = float(db.margin_s)
    if rounding is not None:
        t_r = time.perf_counter()
        rounded = round_lp_solution(model, raw.x, time_budget_s=dl) if raw.x is not None else None
        details["lp"]["rounding_s"] = round(time.perf_counter() - t_r, 6)
        rounding.append(rounded)
    status = ("bound_only" if raw.status in ("optimal", "feasible") or raw.row_dual is not None
              else raw.status)
    if status == "time_limit_no_solution":
        status = "bound_only"  # the aggregate bound still stands
    message = raw.message
    if "lp" not in bounds and status == "bound_only":
        message = (message + "; " if message else "") + "the LP did not finish: no LP bound"
    return finish(inst, "lp", status=status, bounds=bounds, t_start=t_start, details=details,
                  message=message)


#: what a MILP run that HiGHS ended with an error is retried with, in order: another
#: random seed, then presolve off (HiGHS 1.16 stops about once in 1,000 tiny random
#: instances with "MIP solver claims optimality, but with primal infeasibilities")
RETRY_OPTIONS = ({"seed_offset": 1}, {"seed_offset": 2, "presolve": "off"})


def solve_milp(inst: Instance, *, time_limit_s: "float | Deadline | None" = None,
               config: SolverConfig = SolverConfig(), warm_start: Schedule | None = None,
               extra_bounds: dict | None = None, model: MilpModel | None = None,
               log=None, progress=None, method_name: str = "milp") -> SolveResult:
    """The exact time-expanded MILP on HiGHS (or PuLP, by ``config.backend``), started from
    ``warm_start`` (default: the trivial schedule) when the evaluator accepts it.

    A run that HiGHS ends with an error, or whose "optimal" schedule the evaluator refuses,
    is retried (:data:`RETRY_OPTIONS`) while time is left; ``details["milp"]["retries"]``
    says what was tried and why, and the message says so.
    """
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    pre = capacity_precheck(inst)
    bounds = basic_bounds(inst)
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
    # HiGHS stops at its own gap; ours also counts the bound's safety margin
    highs_gap = (max(0.0, config.mip_rel_gap - 2 * MILP_BOUND_MARGIN) if config.mip_rel_gap > 0
                 else 0.0)
    retries: list = []
    attempt_opts: dict = {}
    while True:
        seed = config.seed + attempt_opts.get("seed_offset", 0)
        options = {**config.highs, **{k: v for k, v in attempt_opts.items() if k != "seed_offset"}}
        if config.backend == "pulp":
            raw = run_pulp(model, config=config, time_limit_s=dl.solver_limit_s(),
                           name=f"hetkv_{inst.name}" if inst.name else "hetkv")
        elif not model.integrality.any():
            # nothing to branch on (every item pinned): the LP is the whole problem, and its
            # weak-duality bound is the proof (HiGHS reports no MIP bound for it)
            raw = run_highs(model, relax=True, time_limit_s=dl, threads=config.threads,
                            seed=seed, lp_method=config.lp_method, options=options)
            if raw.row_dual is not None:
                bounds["lp"] = float(weak_duality_bound(model, raw.row_dual).bound_s)
        else:
            raw = run_highs(model, relax=False, time_limit_s=dl, mip_rel_gap=highs_gap,
                            threads=config.threads, seed=seed, warm_start=start_vec,
                            options=options, log=log, progress=progress)
        details["milp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info,
                           "warm_start_s": ev0.total_time_s if ev0.feasible else None}
        if retries:
            details["milp"]["retries"] = retries
        res = milp_result(inst, model, raw, method=method_name, bounds=bounds, t_start=t_start,
                          details=details, gap_tol=config.mip_rel_gap,
                          fallback=warm_start if start_vec is not None else None)
        failed = raw.status == "error" or res.status == "error"
        if not failed or config.backend == "pulp" or len(retries) >= len(RETRY_OPTIONS) \
                or dl.expired() or "interrupt" in raw.message.lower():
            break
        attempt_opts = dict(RETRY_OPTIONS[len(retries)])
        retries.append({"why": raw.message or res.message, "then": dict(attempt_opts)})
    if retries:
        note = (f"HiGHS failed ({retries[0]['why']}); retried {len(retries)} time(s) with "
                + ", then ".join(_describe(r["then"]) for r in retries))
        res = res.with_(message=note + ("; " + res.message if res.message else ""),
                        runtime_s=time.perf_counter() - t_start)
    return res


def _describe(opts: dict) -> str:
    words = []
    if "seed_offset" in opts:
        words.append(f"random seed +{opts['seed_offset']}")
    words += [f"{k} = {v}" for k, v in opts.items() if k != "seed_offset"]
    return " and ".join(words)


__all__ = ["RETRY_OPTIONS", "solve_lp", "solve_milp"]
