"""``simulate``: an online policy's schedule, re-scored by the evaluator, as a result.

The engine (:mod:`hetkv_opt.policies.run`) plays the policy epoch by epoch and keeps its
own time; :func:`simulate` hands its schedule to :func:`hetkv_opt.result.finish`, which
re-scores it with the independent evaluator and requires the two times to agree.
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.policies.base import Decision, Policy, PolicyError, policy_name
from hetkv_opt.policies.registry import get_policy, policy_source
from hetkv_opt.policies.run import run_policy
from hetkv_opt.result import SolveResult, finish

#: relative tolerance when the simulator's own time is compared with the evaluator's
#: (the one :func:`hetkv_opt.result.finish` applies with ``objective_is_exact``)
ACCOUNTING_RTOL = 1e-9


def simulate(instance: Instance, policy: Policy | str, *,
             bounds: Mapping[str, float] | None = None) -> SolveResult:
    """Run an online placement policy on an instance; the same result type as ``solve``.

    Parameters
    ----------
    instance : Instance
    policy : Policy or str
        A policy object, or a registered name or a spec (``FILE.py:CLASS``,
        ``MODULE:CLASS``), with default hyper-parameters.
    bounds : mapping of str -> float, optional
        Proven lower bounds on T (seconds) by method name, e.g. ``{"lp": 1.23}``; the best
        of these and the aggregate bound is reported.

    Returns
    -------
    SolveResult
        ``status="feasible"`` (``"infeasible"`` when the instance admits no schedule),
        ``method="policy:NAME"``, the evaluator's ``total_time_s``, the best bound, and
        ``details`` with ``policy``, ``params``, ``oracle``, the simulator's own
        ``simulated_time_s`` and the policy's ``policy_report``.  A schedule the evaluator
        disagrees with (infeasible, or another time) makes ``status="error"``.

    Raises
    ------
    PolicyError
        A decision broke the model (names the policy, the epoch and the rule).
    ValueError
        An unknown policy name.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> r = simulate(tiny_instance(), "belady")
    >>> r.status, r.method, r.details["oracle"], r.total_time_s >= r.bound_s
    ('feasible', 'policy:belady', True, True)
    """
    if isinstance(policy, str):
        policy = get_policy(policy)
    if not isinstance(policy, Policy):
        raise ValueError(f"simulate: policy must be a Policy object or a registered name, "
                         f"got {policy!r}")
    t_start = time.perf_counter()
    name = policy_name(policy)
    method = f"policy:{name}"
    details = {"policy": name, "params": _jsonable(policy.params()),
               "oracle": bool(getattr(policy, "uses_future", False))}
    src = policy_source(name)
    if src is not None and type(policy).name == name:
        details["source"] = src["spec"]
    all_bounds = {"aggregate": aggregate_bound_s(instance)}
    all_bounds.update(bounds or {})
    pre = capacity_precheck(instance)
    if pre:
        return finish(instance, method, status="infeasible", bounds=all_bounds, t_start=t_start,
                      details=details, message=pre)
    run = run_policy(instance, policy)
    tau = run.epoch_times()
    sim_total = float(tau.sum())
    details.update({"simulated_time_s": sim_total, "num_moves": run.num_moves,
                    "copy_bytes": float(run.copy_in.sum()),
                    "policy_report": _jsonable(run.report)})
    # the simulator claims the exact time of its schedule: the evaluator must agree
    return finish(instance, method, status="feasible", schedule=run.schedule(),
                  solver_objective_s=sim_total, objective_is_exact=True, bounds=all_bounds,
                  t_start=t_start, details=details)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


__all__ = ["Decision", "PolicyError", "run_policy", "simulate"]
