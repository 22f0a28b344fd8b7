"""``solve()``: one entry point, one result type, one function per method behind it.

Every schedule a method returns is re-scored by :func:`hetkv_opt.evaluate.evaluate`; the
time reported is the evaluator's.  A schedule the evaluator finds infeasible, or slower
than the solver claimed, is a bug and turns the result into ``status="error"``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.bounds import weak_duality_bound
from hetkv_opt.evaluate import Evaluation, evaluate, format_bytes
from hetkv_opt.instance import Instance
from hetkv_opt.milp_model import MilpModel, aggregate_bound_s, build_model
from hetkv_opt.schedule import Schedule, schedule_from_residency
from hetkv_opt.solver_config import SolverConfig

STATUSES = ("optimal", "feasible", "bound_only", "infeasible", "time_limit_no_solution", "error")
METHODS = ("auto", "milp", "lp", "aggregate", "lagrangian", "flow", "rolling")
# HiGHS's branch-and-bound bound is computed with tolerances; we report it less this
# relative margin so that what we print stays a proof.
MILP_BOUND_MARGIN = 1e-6


@dataclass
class SolveResult:
    """The result of every method.

    Attributes
    ----------
    status : str
        optimal | feasible | bound_only | infeasible | time_limit_no_solution | error.
        A time limit with an incumbent is ``feasible``, never ``optimal``.
    method : str
    schedule : Schedule or None
    evaluation : Evaluation or None
        The evaluator's verdict on ``schedule``.
    total_time_s : float or None
        T of the schedule, from the evaluator.
    bound_s : float or None
        Best proven lower bound on T, and ``bound_method`` the method that proved it.
    gap : float or None
        ``(total_time_s - bound_s) / total_time_s``.
    runtime_s : float
    solver_objective_s : float or None
        The solver's own objective for its schedule (cross-checked against the evaluator).
    message : str
        Why, for infeasible and error results.
    details : dict
        Model size, solver counters, bounds of every method run.
    """

    status: str
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
        return {"status": self.status, "method": self.method, "instance": self.instance_name,
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


def _gap(total: float | None, bound: float | None) -> float | None:
    if total is None or bound is None:
        return None
    if total <= 0:
        return 0.0
    return max(0.0, (total - bound) / total)


def capacity_precheck(inst: Instance) -> str | None:
    """A reason why no schedule can exist, found without a solver (or None).

    Examples
    --------
    >>> from hetkv_opt.instance import make_instance
    >>> inst = make_instance(name="x", tiers=[{"name": "hbm", "capacity_bytes": 1,
    ...     "bandwidth_Bps": 1.0}], size_bytes=[2], num_epochs=1)
    >>> capacity_precheck(inst)
    'epoch 0: 2 B of alive items exceed the 1 B of all tiers together'
    """
    E = inst.num_epochs
    size = inst.size_bytes.astype(float)
    caps = [t.capacity_bytes for t in inst.tiers]

    def alive_bytes(mask):
        d = np.zeros(E + 1)
        np.add.at(d, inst.birth[mask], size[mask])
        np.add.at(d, inst.death[mask], -size[mask])
        return np.cumsum(d)[:E]

    for k, t in enumerate(inst.tiers):
        if t.capacity_bytes is None:
            continue
        need = alive_bytes(inst.pinned_tier == k)
        if inst.mode == "inclusive" and k == 1:
            need = alive_bytes(np.ones(inst.num_items, bool))
        over = np.flatnonzero(need > t.capacity_bytes)
        if over.size:
            e = over[0]
            what = "alive items" if inst.mode == "inclusive" and k == 1 else "items pinned to it"
            return (f"epoch {e}: tier {t.name} must hold {format_bytes(need[e])} of {what} "
                    f"> capacity {format_bytes(t.capacity_bytes)}")
    forced = forced_overflow(inst)
    if forced:
        return forced
    if inst.mode == "exclusive" and all(c is not None for c in caps):
        total = alive_bytes(np.ones(inst.num_items, bool))
        over = np.flatnonzero(total > sum(caps))
        if over.size:
            e = over[0]
            return (f"epoch {e}: {format_bytes(total[e])} of alive items exceed the "
                    f"{format_bytes(sum(caps))} of all tiers together")
        biggest = max(caps)
        bad = np.flatnonzero((inst.pinned_tier < 0) & (size > biggest))
        if bad.size:
            i = bad[0]
            return f"item {i} ({format_bytes(size[i])}) fits in no tier"
    init = inst.initial_tier
    for k, t in enumerate(inst.tiers):
        if t.capacity_bytes is None or (inst.mode == "inclusive" and k == 1):
            continue
        bad = np.flatnonzero((init == k) & (size > t.capacity_bytes))
        if bad.size:
            i = bad[0]
            return (f"item {i}: initial tier {t.name} ({format_bytes(t.capacity_bytes)}) is "
                    f"smaller than the item ({format_bytes(size[i])})")
    return None


def forced_overflow(instance: Instance) -> str | None:
    """A proof that no schedule exists, from pins and initial tiers alone (or None).

    At every epoch t a bounded tier k must hold the items pinned to it and alive at t,
    plus the items born at t whose initial tier is k; more than its capacity is
    infeasible whatever the policy does.  (``capacity_precheck`` checks pins only.)

    >>> from hetkv_opt.instance import make_instance
    >>> inst = make_instance(name="x", tiers=[{"name": "hbm", "capacity_bytes": 1,
    ...     "bandwidth_Bps": 1.0}, {"name": "dram", "capacity_bytes": None,
    ...     "bandwidth_Bps": 1.0}], size_bytes=[1, 1], initial_tier=[0, 0], num_epochs=1)
    >>> forced_overflow(inst)
    'epoch 0: tier hbm must hold 2 B of pinned items and items starting there > capacity 1 B'
    """
    E, K = instance.num_epochs, instance.num_tiers
    size = instance.size_bytes.astype(float)
    pin, init, birth = instance.pinned_tier, instance.initial_tier, instance.birth
    need = np.zeros((K, E + 1))
    p = pin >= 0
    np.add.at(need, (pin[p], birth[p]), size[p])
    np.add.at(need, (pin[p], instance.death[p]), -size[p])
    need = np.cumsum(need, axis=1)
    q = (pin < 0) & (init >= 0)
    np.add.at(need, (init[q], birth[q]), size[q])
    for k, t in enumerate(instance.tiers):
        if t.capacity_bytes is None or (instance.mode == "inclusive" and k == 1):
            continue
        over = np.flatnonzero(need[k, :E] > t.capacity_bytes)
        if over.size:
            e = over[0]
            return (f"epoch {e}: tier {t.name} must hold {format_bytes(need[k, e])} of pinned "
                    f"items and items starting there > capacity {format_bytes(t.capacity_bytes)}")
    return None


def trivial_schedule(inst: Instance) -> Schedule:
    """Every free item in its initial tier, else in the last tier, and never moved.

    Feasible whenever the last tier can hold every free item (e.g. unbounded DRAM); a
    cheap incumbent that guarantees a long MILP run has a schedule to report.
    """
    return static_schedule(inst, inst.num_tiers - 1)


def static_schedule(inst: Instance, tier: int) -> Schedule:
    """Every free item in its initial tier, else in ``tier``, and never moved (with three
    tiers, "everything in the middle one" is a far better start than the last).  Feasible
    when that tier holds them all."""
    rho = np.full((inst.num_items, inst.num_epochs), int(tier), np.int64)
    fixed = inst.pinned_tier >= 0
    rho[fixed] = inst.pinned_tier[fixed, None]
    init = (inst.initial_tier >= 0) & ~fixed
    rho[init] = inst.initial_tier[init, None]
    return schedule_from_residency(inst, rho)


def _two_fastest_tiers(inst: Instance) -> Instance | None:
    """The instance the flow heuristic runs on: itself (two tiers, exclusive), or with
    tiers 0 and 1 only when there are more and nothing is pinned or born beyond tier 1 (a
    schedule of the two-tier copy is a schedule of the original that leaves the slower tiers
    unused); None where that does not apply (inclusive mode)."""
    if inst.mode != "exclusive" or inst.num_tiers < 2:
        return None
    if inst.num_tiers == 2:
        return inst
    if np.any(inst.pinned_tier >= 2) or np.any(inst.initial_tier >= 2):
        return None
    import dataclasses
    return dataclasses.replace(inst, tiers=tuple(inst.tiers[:2]))


def _bound_aggregate(inst: Instance) -> tuple[float, str]:
    return aggregate_bound_s(inst), "aggregate"


def _finish(inst: Instance, method: str, schedule: Schedule | None, solver_obj_s: float | None,
            raw_status: str, bounds: dict[str, float], t_start: float, details: dict,
            message: str = "", gap_tol: float | None = None) -> SolveResult:
    """Re-score the schedule, pick the best bound, and make the status honest."""
    ev = None
    total = None
    status = raw_status
    if schedule is not None:
        ev = evaluate(inst, schedule)
        if not ev.feasible:
            status, message = "error", ("internal error: the solver's schedule is infeasible: "
                                        + "; ".join(ev.violations[:3]))
        else:
            total = ev.total_time_s
            if solver_obj_s is not None and total > solver_obj_s * (1 + 1e-6) + 1e-15:
                status, message = "error", (f"internal error: evaluator T = {total:.9g} s exceeds "
                                            f"the solver's objective {solver_obj_s:.9g} s")
    valid = {k: v for k, v in bounds.items() if v is not None and math.isfinite(v)}
    bound_method = max(valid, key=valid.get) if valid else None
    bound = valid[bound_method] if bound_method else None
    if total is not None and bound is not None and bound > total * (1 + 1e-9) + 1e-15:
        status, message = "error", (f"internal error: bound {bound:.9g} s ({bound_method}) exceeds "
                                    f"a feasible schedule's time {total:.9g} s")
    if status in ("optimal", "feasible") and schedule is None:
        status = "time_limit_no_solution"
    gap = _gap(total, bound)
    if status == "optimal" and gap_tol is not None and gap is not None and gap > gap_tol + 1e-5:
        # the solver's word is not enough: "optimal" needs a proven bound within the tolerance
        status = "feasible"
        message = (message + "; " if message else "") + (
            f"the solver stopped as optimal but the proven gap is {gap:.3g}")
    details = dict(details)
    details["bounds_s"] = valid
    return SolveResult(status=status, method=method, schedule=schedule if total is not None else None,
                       evaluation=ev, total_time_s=total, bound_s=bound, bound_method=bound_method,
                       gap=gap, runtime_s=time.perf_counter() - t_start,
                       solver_objective_s=solver_obj_s, message=message, details=details,
                       instance_name=inst.name, num_steps=inst.num_steps)


def _model_details(model: MilpModel, build_s: float) -> dict:
    return {"model": {"columns": model.num_col, "rows": model.num_row, "nonzeros": model.num_nz,
                      "integer_columns": int(model.integrality.sum()), "build_s": round(build_s, 6),
                      "time_unit_s": model.t0_s}}


def solve_lp(inst: Instance, *, time_limit_s: float | None = None,
             config: SolverConfig = SolverConfig(), model: MilpModel | None = None,
             rounding: list | None = None) -> SolveResult:
    """The LP relaxation of the MILP, reported as a weak-duality bound (``bound_only``).

    The bound is recomputed from HiGHS's row duals (see :mod:`hetkv_opt.bounds`), so it is a
    proof even when the LP solver's own objective is off by its tolerances.  When a list is
    passed as ``rounding``, the LP solution rounded to a feasible schedule (or None) is
    appended to it (see :mod:`hetkv_opt.rounding`).
    """
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    if pre:
        return _finish(inst, "lp", None, None, "infeasible", {}, t_start, {}, pre)
    t_b = time.perf_counter()
    model = model or build_model(inst, rounding_cuts=config.rounding_cuts, count_vars=False)
    details = _model_details(model, time.perf_counter() - t_b)
    from hetkv_opt.highs_backend import run_highs
    raw = run_highs(model, relax=True, time_limit_s=time_limit_s, threads=config.threads,
                    seed=config.seed, lp_method=config.lp_method, options=config.highs)
    details["lp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info}
    bounds = {"aggregate": aggregate_bound_s(inst)}
    if raw.status == "infeasible":
        return _finish(inst, "lp", None, None, "infeasible", bounds, t_start, details,
                       "the LP relaxation is infeasible: no schedule fits the capacities")
    if raw.row_dual is not None:
        db = weak_duality_bound(model, raw.row_dual)
        bounds["lp"] = float(db.bound_s)
        details["lp"]["objective_s"] = raw.objective * model.t0_s if raw.objective is not None else None
        details["lp"]["margin_s"] = float(db.margin_s)
    if rounding is not None:
        from hetkv_opt.rounding import round_lp_solution
        t_r = time.perf_counter()
        rounded = round_lp_solution(model, raw.x) if raw.x is not None else None
        details["lp"]["rounding_s"] = round(time.perf_counter() - t_r, 6)
        rounding.append(rounded)
    status = "bound_only" if raw.status in ("optimal", "feasible") or raw.row_dual is not None else raw.status
    if status == "time_limit_no_solution":
        status = "bound_only"  # the aggregate bound still stands
    return _finish(inst, "lp", None, None, status, bounds, t_start, details, raw.message)


def solve_milp(inst: Instance, *, time_limit_s: float | None = None,
               config: SolverConfig = SolverConfig(), warm_start: Schedule | None = None,
               extra_bounds: dict | None = None, model: MilpModel | None = None,
               log=None, progress=None, method_name: str = "milp") -> SolveResult:
    """The exact time-expanded MILP on HiGHS (or PuLP, by ``config.backend``)."""
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    bounds = {"aggregate": aggregate_bound_s(inst)}
    bounds.update(extra_bounds or {})
    if pre:
        return _finish(inst, method_name, None, None, "infeasible", {}, t_start, {}, pre)
    if config.backend == "pulp":
        from hetkv_opt.pulp_backend import solve_milp_pulp
        return solve_milp_pulp(inst, time_limit_s=time_limit_s, config=config,
                               extra_bounds=bounds, method_name=method_name)
    from hetkv_opt.highs_backend import run_highs
    t_b = time.perf_counter()
    model = model or build_model(inst, rounding_cuts=config.rounding_cuts)
    details = _model_details(model, time.perf_counter() - t_b)
    start_vec = None
    if warm_start is None:
        warm_start = trivial_schedule(inst)
    ev0 = evaluate(inst, warm_start)
    if ev0.feasible:
        start_vec = model.vector_from_schedule(warm_start, ev0)
    remaining = None if time_limit_s is None else max(time_limit_s - (time.perf_counter() - t_start), 0.01)
    # HiGHS stops at its own gap; ours also counts the bound's safety margin
    highs_gap = max(0.0, config.mip_rel_gap - 2 * MILP_BOUND_MARGIN) if config.mip_rel_gap > 0 else 0.0
    if not model.integrality.any():
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
    if raw.dual_bound is not None and raw.status != "error":
        bounds["milp"] = raw.dual_bound * model.t0_s * (1 - MILP_BOUND_MARGIN)
    schedule = obj_s = None
    status, message = raw.status, raw.message
    if raw.x is not None:
        schedule = schedule_from_residency(inst, model.residency_from_vector(raw.x))
        obj_s = raw.objective * model.t0_s
    elif start_vec is not None and raw.status in ("error", "time_limit_no_solution"):
        # interrupted (Ctrl-C) or failed before HiGHS kept an incumbent: the starting
        # schedule is still a feasible answer, and the bounds still stand
        schedule, status = warm_start, "feasible"
        message = f"{raw.message}; reporting the starting schedule"
    return _finish(inst, method_name, schedule, obj_s, status, bounds, t_start, details,
                   message, gap_tol=config.mip_rel_gap)


# auto switches to the scale methods above this many free item-epochs (the LP of 1024 x 256
# = 262k item-epochs takes ~26 s; the next size up would not leave the MILP any time)
AUTO_MILP_MAX_ITEM_EPOCHS = 300_000


def _item_epochs(inst: Instance) -> int:
    free = inst.pinned_tier < 0
    return int((inst.death - inst.birth)[free].sum())


def _relay(progress, phase: str, t_start: float, bound=None):
    """Adapt a method's own progress dicts to the ``solve`` contract: ``phase``,
    ``elapsed_s`` (since the solve began), ``incumbent_s``, ``bound_s`` and ``gap``."""
    if progress is None:
        return None
    state = {"bound": bound, "incumbent": None}

    def cb(info):
        if "bound_s" in info:
            state["bound"] = info["bound_s"]
        if info.get("best_s") is not None:
            state["incumbent"] = info["best_s"]
        inc, bnd = state["incumbent"], state["bound"]
        progress({"phase": phase, "elapsed_s": time.perf_counter() - t_start,
                  "incumbent_s": inc, "bound_s": bnd,
                  "gap": _gap(inc, bnd) if inc is not None and bnd is not None else None})
    return cb


def _solve_large(instance: Instance, time_limit_s, config: SolverConfig, warm_start, t_start,
                 progress=None):
    """auto for large instances: the Lagrangian bound (40 % of the time), then the flow
    heuristic (two-tier exclusive) and the schedules of :data:`SCALE_PATH_POLICIES`; the
    best evaluated one of these, the static schedules and the caller's warm start wins.
    Ctrl-C ends the current phase and returns what is at hand (the best prices so far still prove
    their bound; the best schedule so far is evaluated)."""
    from hetkv_opt.lagrangian import solve_lagrangian
    pre = capacity_precheck(instance)
    if pre:
        return _finish(instance, "auto", None, None, "infeasible", {}, t_start, {}, pre)
    share = None if time_limit_s is None else 0.4 * time_limit_s
    lag = solve_lagrangian(instance, time_limit_s=share, stop_on_interrupt=True,
                           progress=_relay(progress, "lagrangian", t_start))
    bounds = dict(lag.details.get("bounds_s", {}))
    lag_info = lag.details.get("lagrangian") or {}
    details = {"scale_path": True, "lagrangian": lag_info}
    interrupted = bool(lag_info.get("interrupted"))
    # the caller's start and every "all in one tier" schedule (the last one is the trivial)
    starts = [warm_start] if warm_start is not None else []
    starts += [static_schedule(instance, k) for k in range(instance.num_tiers)]
    if not interrupted:
        # policy schedules first (cheap; any number of tiers, either mode), then the flow
        # heuristic (two-tier exclusive) with the time that is left
        pol, stopped = _policy_schedules(instance, time_limit_s, t_start)
        interrupted = interrupted or stopped
        details["policies_s"] = {name: T for name, (T, _) in pol.items()}
        starts.extend(sched for _, sched in pol.values())
    flow_inst = _two_fastest_tiers(instance)
    if flow_inst is not None and not interrupted:
        from hetkv_opt.flow_heuristic import solve_flow
        left = None if time_limit_s is None else max(time_limit_s - (time.perf_counter() - t_start), 1.0)
        # one min-cost-flow solve cannot be interrupted: the full "chain" graph (~6 arcs a
        # read; 1.7M arcs took 161 s) only when it is small, else the interval graph
        # ("runs": 47k arcs, 6 s, 1.7 % worse on a 2048 x 512 drift instance)
        graph = "chain" if 6 * instance.read_bytes.size <= 600_000 else "runs"
        flow = solve_flow(flow_inst, time_limit_s=left, bounds=bounds, graph=graph,
                          stop_on_interrupt=True,
                          progress=_relay(progress, "flow", t_start, bound=lag.bound_s))
        details["flow"] = {k: v for k, v in flow.details.items() if k != "bounds_s"}
        interrupted = interrupted or bool(details["flow"].get("flow", {}).get("interrupted"))
        if flow.schedule is not None:
            starts.insert(0, flow.schedule)
    scored = [(ev.total_time_s, i, s) for i, s in enumerate(starts)
              for ev in [evaluate(instance, s)] if ev.feasible]
    best = min(scored, key=lambda t: (t[0], t[1]))[2] if scored else None
    status = "feasible" if best is not None else "bound_only"
    msg = "" if best is not None else "no feasible schedule found"
    if interrupted:
        details["interrupted"] = True
        msg = "interrupted (Ctrl-C): the best bound and schedule found so far" + (
            f"; {msg}" if msg else "")
    return _proven(_finish(instance, "auto", best, None, status, bounds, t_start, details, msg),
                   config.mip_rel_gap)


#: policies whose schedules auto's scale path also tries (see ``hetkv policies``)
SCALE_PATH_POLICIES = ("balance", "belady")


def _policy_schedules(instance: Instance, time_limit_s, t_start) -> tuple[dict, bool]:
    """Schedules of :data:`SCALE_PATH_POLICIES`, as ``{name: (T, schedule)}`` (feasible
    ones only), while time is left; and whether Ctrl-C stopped them."""
    from hetkv_opt.policies import get_policy
    from hetkv_opt.policies.base import PolicyError
    from hetkv_opt.policies.simulate import run_policy
    out: dict = {}
    for name in SCALE_PATH_POLICIES:
        if time_limit_s is not None and time.perf_counter() - t_start >= time_limit_s:
            break
        try:
            sched = run_policy(instance, get_policy(name)).schedule()
        except PolicyError:
            continue                 # a policy can corner itself when every tier is bounded
        except KeyboardInterrupt:
            return out, True
        ev = evaluate(instance, sched)
        if ev.feasible:
            out[name] = (ev.total_time_s, sched)
    return out, False


def _proven(res: SolveResult, gap_tol: float) -> SolveResult:
    """A heuristic's schedule whose evaluated time is within ``gap_tol`` of a proven bound
    is optimal within that tolerance: say so (the same rule as the MILP's)."""
    if res.status == "feasible" and res.gap is not None and res.gap <= gap_tol:
        res.status = "optimal"
    return res


def solve(instance: Instance, method: str = "auto", *, time_limit_s: float | None = 60.0,
          config: SolverConfig | None = None, warm_start: Schedule | None = None,
          log=None, progress=None) -> SolveResult:
    """Solve a placement instance, or bound it.

    Parameters
    ----------
    instance : Instance
    method : {"auto", "milp", "lp", "aggregate", "lagrangian", "flow", "rolling"}
        ``milp``: the exact MILP (HiGHS branch and bound; its dual bound is the bound).
        ``lp``: the LP relaxation bound only.  ``aggregate``: the paper's
        capacity-blind bound only.  ``lagrangian``: the decomposition bound (prices on
        time and capacity rows, one shortest path per item).  ``flow``: the min-cost-flow
        heuristic (HBM slots through time; two-tier exclusive).  ``rolling``: exact MILPs
        on overlapping windows, stitched.  ``auto``: the LP bound first, then the MILP in the
        time that is left; reports the best schedule and the best bound.  Above
        ``AUTO_MILP_MAX_ITEM_EPOCHS`` free item-epochs, ``auto`` runs the Lagrangian bound
        and the flow heuristic instead.
    time_limit_s : float or None
        Wall-clock limit for the whole call (None = no limit).
    config : SolverConfig, optional
        Gap, threads, seed, backend, raw HiGHS options (see ``solvers/*.toml``).
    warm_start : Schedule, optional
        A schedule handed to the MILP as its first incumbent.
    log : callable(str), optional
        HiGHS's log lines.
    progress : callable(dict), optional
        Called as the solve goes with ``phase`` (milp | lagrangian | flow), ``elapsed_s``,
        ``incumbent_s``, ``bound_s`` and ``gap`` (None where not known yet).

    Returns
    -------
    SolveResult

    Raises
    ------
    ValueError
        An unknown ``method``, or ``flow`` on an instance it does not handle (inclusive
        mode, more than two tiers).

    Examples
    --------
    >>> from hetkv_opt.instance import tiny_instance
    >>> r = solve(tiny_instance(), "milp")
    >>> r.status, r.total_time_s, r.bound_s >= 1.0 - 1e-6
    ('optimal', 2.0, True)
    """
    config = config or SolverConfig()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    t_start = time.perf_counter()
    if method == "aggregate":
        return _finish(instance, "aggregate", None, None, "bound_only",
                       {"aggregate": aggregate_bound_s(instance)}, t_start, {})
    if method == "flow":
        from hetkv_opt.flow_heuristic import check_supported
        try:
            check_supported(instance)
        except NotImplementedError as exc:   # a choice the caller can change: say so plainly
            raise ValueError(f"method 'flow': {exc}; use auto, milp or rolling") from None
    if method in ("flow", "rolling"):
        # heuristics: measure them against the LP bound (a quarter of the time at most)
        lp = solve_lp(instance, config=config,
                      time_limit_s=None if time_limit_s is None else time_limit_s / 4)
        if lp.status == "infeasible":
            lp.method = method
            return lp
        bounds = {k: v for k, v in lp.details.get("bounds_s", {}).items() if k == "lp"}
        left = None if time_limit_s is None else max(time_limit_s - (time.perf_counter() - t_start), 0.1)
        if method == "flow":
            from hetkv_opt.flow_heuristic import solve_flow
            res = solve_flow(instance, time_limit_s=left, bounds=bounds,
                             progress=_relay(progress, "flow", t_start, bounds.get("lp")))
        else:
            from hetkv_opt.rolling import solve_rolling
            res = solve_rolling(instance, time_limit_s=left, config=config,
                                warm_start=warm_start, bounds=bounds)
        res.runtime_s = time.perf_counter() - t_start
        return _proven(res, config.mip_rel_gap)
    if method == "lagrangian":
        from hetkv_opt.lagrangian import solve_lagrangian
        return solve_lagrangian(instance, time_limit_s=time_limit_s,
                                progress=_relay(progress, "lagrangian", t_start))
    if method == "lp":
        return solve_lp(instance, time_limit_s=time_limit_s, config=config)
    if method == "milp":
        return solve_milp(instance, time_limit_s=time_limit_s, config=config,
                          warm_start=warm_start, log=log, progress=progress)
    # auto, beyond the MILP's reach: a decomposition bound and the flow heuristic
    if _item_epochs(instance) > AUTO_MILP_MAX_ITEM_EPOCHS and config.backend != "pulp":
        return _solve_large(instance, time_limit_s, config, warm_start, t_start, progress)
    # auto: LP bound (cheap, a proof), then the MILP with the time left
    if config.backend == "pulp":
        return solve_milp(instance, time_limit_s=time_limit_s, config=config, method_name="auto")
    rounded: list = []
    lp = solve_lp(instance, time_limit_s=time_limit_s, config=config, rounding=rounded)
    if lp.status in ("infeasible", "error"):
        lp.method = "auto"
        return lp
    # the best starting schedule: the caller's, the rounded LP solution, or the trivial one
    starts = [s for s in (warm_start, rounded[0] if rounded else None, trivial_schedule(instance))
              if s is not None]
    scored = [(ev.total_time_s, i, s) for i, s in enumerate(starts)
              for ev in [evaluate(instance, s)] if ev.feasible]
    best_start = min(scored, key=lambda t: (t[0], t[1]))[2] if scored else None
    lp_bounds = lp.details.get("bounds_s", {})
    remaining = None if time_limit_s is None else time_limit_s - (time.perf_counter() - t_start)
    lp_bound = lp_bounds.get("lp")
    if best_start is not None and (
            (remaining is not None and remaining <= 0.05)
            or (lp_bound is not None and _gap(min(t[0] for t in scored), lp_bound) <= config.mip_rel_gap)):
        # the LP already proves this schedule optimal (or no time is left for the MILP)
        res = _finish(instance, "auto", best_start, None, "optimal", lp_bounds, t_start,
                      lp.details, "", gap_tol=config.mip_rel_gap)
        res.details["solved_by"] = "lp rounding"
        return res
    if remaining is not None and remaining <= 0.05:
        lp.method = "auto"
        return lp
    res = solve_milp(instance, time_limit_s=remaining, config=config, warm_start=best_start,
                     extra_bounds=lp_bounds, log=log, progress=progress, method_name="auto")
    res.details["lp"] = lp.details.get("lp")
    res.runtime_s = time.perf_counter() - t_start
    return res
