"""``solve()``: one entry point, one result type, one function per method behind it.

:data:`METHODS` maps each method's name to the function that runs it; every one takes the
same keyword arguments and returns a :class:`~hetkv_opt.result.SolveResult` made by
:func:`hetkv_opt.result.finish`, so every schedule is re-scored by the evaluator and the time
reported is the evaluator's.  Nothing in the package imports this module back: it is the top
of the library (the CLI and the bench runner call it).
"""

from __future__ import annotations

import time
from typing import Callable

from hetkv_opt.bounds.lagrangian import solve_lagrangian
from hetkv_opt.cluster import open_client
from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.auto import Infeasible, first_bound, relay, solve_auto
from hetkv_opt.methods.exact import solve_lp, solve_milp
from hetkv_opt.methods.flow import check_supported, solve_flow
from hetkv_opt.methods.rolling import solve_rolling
from hetkv_opt.methods.split import out_of_scope as split_out_of_scope, solve_split
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance, widen_accesses
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.result import SolveResult, finish, proven


def _run_aggregate(instance, *, time_limit_s, config, warm_start, log, progress):
    return finish(instance, "aggregate", status="bound_only", t_start=time.perf_counter(),
                  bounds={"aggregate": aggregate_bound_s(instance)})


def _run_lp(instance, *, time_limit_s, config, warm_start, log, progress):
    return solve_lp(instance, time_limit_s=time_limit_s, config=config)


def _run_milp(instance, *, time_limit_s, config, warm_start, log, progress):
    return solve_milp(instance, time_limit_s=time_limit_s, config=config,
                      warm_start=warm_start, log=log, progress=progress)


def _run_lagrangian(instance, *, time_limit_s, config, warm_start, log, progress):
    with open_client(config.workers, config.scheduler) as client:
        return solve_lagrangian(instance, time_limit_s=time_limit_s, client=client,
                                progress=relay(progress, "lagrangian", time.perf_counter()))


def _heuristic(name: str):
    """A heuristic measured against the best proof a quarter of the time gives (the LP
    bound where it is predicted to finish, else the Lagrangian bound)."""
    def run(instance, *, time_limit_s, config, warm_start, log, progress):
        t_start = time.perf_counter()
        dl = Deadline.of(time_limit_s, start=t_start)
        if name == "flow":
            try:
                check_supported(instance)
            except NotImplementedError as exc:   # a choice the caller can change: say so
                raise ValueError(f"method 'flow': {exc}; use auto, milp or rolling") from None
        if name == "split" and split_out_of_scope(instance):
            raise ValueError(f"method 'split': {split_out_of_scope(instance)}; use auto, milp "
                             f"or rolling")
        pre = capacity_precheck(instance)
        if pre:
            return finish(instance, name, status="infeasible", t_start=t_start, message=pre)
        try:
            bounds, how = first_bound(instance, dl, config, 0.25)
        except Infeasible as exc:
            return finish(instance, name, status="infeasible", t_start=t_start,
                          message=str(exc))
        if name == "flow":
            res = solve_flow(instance, time_limit_s=dl, bounds=bounds,
                             progress=relay(progress, "flow", t_start, max(bounds.values(),
                                                                           default=None)))
        elif name == "split":
            res = solve_split(instance, time_limit_s=dl, bounds=bounds)
        else:
            res = solve_rolling(instance, time_limit_s=dl, config=config,
                                warm_start=warm_start, bounds=bounds)
        res = res.with_(runtime_s=time.perf_counter() - t_start,
                        details={**res.details, "bound_phase": how})
        return proven(res, config.mip_rel_gap)
    run.__name__ = f"_run_{name}"
    return run


#: every method by name, each a function ``(instance, *, time_limit_s, config, warm_start,
#: log, progress) -> SolveResult``; the CLI's ``--method`` choices are these keys
METHODS: dict[str, Callable[..., SolveResult]] = {
    "auto": solve_auto,
    "milp": _run_milp,
    "lp": _run_lp,
    "aggregate": _run_aggregate,
    "lagrangian": _run_lagrangian,
    "flow": _heuristic("flow"),
    "rolling": _heuristic("rolling"),
    "split": _heuristic("split"),
}


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
        ``hetkv_opt.methods.auto.AUTO_MILP_MAX_ITEM_EPOCHS`` free item-epochs, ``auto`` runs the Lagrangian bound
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
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> r = solve(tiny_instance(), "milp")
    >>> r.status, r.total_time_s, r.bound_s >= 1.0 - 1e-6
    ('optimal', 2.0, True)
    """
    config = config or SolverConfig()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    instance = widen_accesses(instance)       # methods take int64 access arrays
    return METHODS[method](instance, time_limit_s=time_limit_s, config=config,
                           warm_start=warm_start, log=log, progress=progress)


__all__ = ["METHODS", "solve"]
