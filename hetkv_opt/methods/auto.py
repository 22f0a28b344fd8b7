"""``auto``: the best schedule and the best proof the toolkit can find in the time given.

Up to :data:`AUTO_MILP_MAX_ITEM_EPOCHS` free item-epochs: the LP bound, the LP solution
rounded to a schedule (returned at once when the LP bound already proves it optimal), then
the exact MILP in the time left, started from the best schedule at hand.  Above it (the
"scale path"): the Lagrangian bound, the static and policy schedules, and the flow
heuristic; the best evaluated schedule wins.
"""

from __future__ import annotations

import time

from hetkv_opt.bounds.lagrangian import solve_lagrangian
from hetkv_opt.methods.exact import solve_lp, solve_milp
from hetkv_opt.methods.flow import solve_flow
from hetkv_opt.methods.starts import best_schedule, static_schedule, trivial_schedule, \
    two_fastest_tiers
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.policies import PolicyError, get_policy, run_policy
from hetkv_opt.result import SolveResult, finish, gap, proven

# auto switches to the scale methods above this many free item-epochs (the LP of 1024 x 256
# = 262k item-epochs takes ~26 s; the next size up would not leave the MILP any time)
AUTO_MILP_MAX_ITEM_EPOCHS = 300_000

#: policies whose schedules auto's scale path also tries (see ``hetkv policies``)
SCALE_PATH_POLICIES = ("balance", "belady")


def item_epochs(inst: Instance) -> int:
    """Free (not pinned) item-epochs: the size measure of the placement problem."""
    free = inst.pinned_tier < 0
    return int((inst.death - inst.birth)[free].sum())


def relay(progress, phase: str, t_start: float, bound=None):
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
                  "gap": gap(inc, bnd) if inc is not None and bnd is not None else None})
    return cb


def solve_auto(instance: Instance, *, time_limit_s: float | None, config: SolverConfig,
               warm_start: Schedule | None = None, log=None, progress=None) -> SolveResult:
    """The ``auto`` method (see the module docstring)."""
    t_start = time.perf_counter()
    if item_epochs(instance) > AUTO_MILP_MAX_ITEM_EPOCHS and config.backend != "pulp":
        return solve_scale(instance, time_limit_s=time_limit_s, config=config,
                           warm_start=warm_start, t_start=t_start, progress=progress)
    if config.backend == "pulp":
        return solve_milp(instance, time_limit_s=time_limit_s, config=config, method_name="auto")
    # the LP bound (cheap, a proof), then the MILP with the time left
    rounded: list = []
    lp = solve_lp(instance, time_limit_s=time_limit_s, config=config, rounding=rounded)
    if lp.status in ("infeasible", "error"):
        return lp.with_(method="auto")
    # the best starting schedule: the caller's, the rounded LP solution, or the trivial one
    best_start, best_T = best_schedule(
        instance, [warm_start, rounded[0] if rounded else None, trivial_schedule(instance)])
    lp_bounds = lp.details.get("bounds_s", {})
    remaining = None if time_limit_s is None else time_limit_s - (time.perf_counter() - t_start)
    lp_bound = lp_bounds.get("lp")
    if best_start is not None and (
            (remaining is not None and remaining <= 0.05)
            or (lp_bound is not None and gap(best_T, lp_bound) <= config.mip_rel_gap)):
        # the LP already proves this schedule optimal (or no time is left for the MILP)
        return finish(instance, "auto", status="optimal", schedule=best_start, bounds=lp_bounds,
                      t_start=t_start, details={**lp.details, "solved_by": "lp rounding"},
                      gap_tol=config.mip_rel_gap)
    if remaining is not None and remaining <= 0.05:
        return lp.with_(method="auto")
    res = solve_milp(instance, time_limit_s=remaining, config=config, warm_start=best_start,
                     extra_bounds=lp_bounds, log=log, progress=progress, method_name="auto")
    return res.with_(details={**res.details, "lp": lp.details.get("lp")},
                     runtime_s=time.perf_counter() - t_start)


def solve_scale(instance: Instance, *, time_limit_s, config: SolverConfig, warm_start,
                t_start: float, progress=None) -> SolveResult:
    """auto for large instances: the Lagrangian bound (40 % of the time), then the flow
    heuristic (two-tier exclusive) and the schedules of :data:`SCALE_PATH_POLICIES`; the
    best evaluated one of these, the static schedules and the caller's warm start wins.
    Ctrl-C ends the current phase and returns what is at hand (the best prices so far still
    prove their bound; the best schedule so far is evaluated)."""
    pre = capacity_precheck(instance)
    if pre:
        return finish(instance, "auto", status="infeasible", t_start=t_start, message=pre)
    share = None if time_limit_s is None else 0.4 * time_limit_s
    lag = solve_lagrangian(instance, time_limit_s=share, stop_on_interrupt=True,
                           progress=relay(progress, "lagrangian", t_start))
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
        pol, stopped = policy_schedules(instance, time_limit_s, t_start)
        interrupted = interrupted or stopped
        details["policies_s"] = {name: T for name, (T, _) in pol.items()}
        starts.extend(sched for _, sched in pol.values())
    flow_inst = two_fastest_tiers(instance)
    if flow_inst is not None and not interrupted:
        left = None if time_limit_s is None else max(
            time_limit_s - (time.perf_counter() - t_start), 1.0)
        # one min-cost-flow solve cannot be interrupted: the full "chain" graph (~6 arcs a
        # read; 1.7M arcs took 161 s) only when it is small, else the interval graph
        # ("runs": 47k arcs, 6 s, 1.7 % worse on a 2048 x 512 drift instance)
        graph = "chain" if 6 * instance.read_bytes.size <= 600_000 else "runs"
        flow = solve_flow(flow_inst, time_limit_s=left, bounds=bounds, graph=graph,
                          stop_on_interrupt=True,
                          progress=relay(progress, "flow", t_start, bound=lag.bound_s))
        details["flow"] = {k: v for k, v in flow.details.items() if k != "bounds_s"}
        interrupted = interrupted or bool(details["flow"].get("flow", {}).get("interrupted"))
        if flow.schedule is not None:
            starts.insert(0, flow.schedule)
    best, _ = best_schedule(instance, starts)
    status = "feasible" if best is not None else "bound_only"
    msg = "" if best is not None else "no feasible schedule found"
    if interrupted:
        details["interrupted"] = True
        msg = "interrupted (Ctrl-C): the best bound and schedule found so far" + (
            f"; {msg}" if msg else "")
    return proven(finish(instance, "auto", status=status, schedule=best, bounds=bounds,
                         t_start=t_start, details=details, message=msg), config.mip_rel_gap)


def policy_schedules(instance: Instance, time_limit_s, t_start) -> tuple[dict, bool]:
    """Schedules of :data:`SCALE_PATH_POLICIES`, as ``{name: (T, schedule)}`` (feasible
    ones only), while time is left; and whether Ctrl-C stopped them."""
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


__all__ = ["AUTO_MILP_MAX_ITEM_EPOCHS", "SCALE_PATH_POLICIES", "item_epochs", "relay",
           "solve_auto", "solve_scale"]
