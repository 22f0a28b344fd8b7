"""Every method of :func:`hetkv_opt.solve.solve` on hypothesis' tiny instances (issue 3's
property test): whatever a method returns, a schedule passes the independent evaluator
with the very time reported, it is never faster than the brute-force optimum, every bound
is at most that optimum, and the statuses are honest."""

from __future__ import annotations

import math

import pytest

from hetkv_opt.testing import brute_force  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hetkv_opt.testing import instances  # noqa: E402

from hetkv_opt.model.evaluate import evaluate  # noqa: E402
from hetkv_opt.solve import METHODS, solve  # noqa: E402
from hetkv_opt.result import STATUSES
from hetkv_opt.milp.config import SolverConfig  # noqa: E402

EXACT = SolverConfig(mip_rel_gap=0.0)
#: methods that only bound, and never return a schedule
BOUND_ONLY = {"lp", "aggregate", "lagrangian"}


def leq(a: float, b: float, rel: float = 1e-7) -> bool:
    return a <= b + rel * abs(b) + 1e-12


def flow_handles(inst) -> bool:
    return inst.mode == "exclusive" and inst.num_tiers == 2


def split_handles(inst) -> bool:
    return (inst.mode == "exclusive" and inst.num_tiers >= 2
            and not (inst.pinned_tier >= 2).any() and not (inst.initial_tier >= 2).any())


def check(inst, method: str, best: float | None) -> None:
    handles = {"flow": flow_handles, "split": split_handles}.get(method)
    if handles is not None and not handles(inst):
        # a plain error naming the reason (the CLI turns it into one line, exit 2)
        with pytest.raises(ValueError, match=f"method '{method}'"):
            solve(inst, method, config=EXACT, time_limit_s=20)
        return
    res = solve(inst, method, config=EXACT, time_limit_s=20)
    assert res.status in STATUSES and res.status != "error", (method, res.status, res.message)
    if best is None:                      # no feasible schedule exists
        assert res.schedule is None, method
        assert res.status in ("infeasible", "bound_only", "time_limit_no_solution"), (method, res.status)
        return
    assert res.status != "infeasible", (method, res.message)
    if res.bound_s is not None:
        assert leq(res.bound_s, best), (method, res.bound_method, res.bound_s, best)
        for name, value in res.details.get("bounds_s", {}).items():
            assert value is None or not math.isfinite(value) or leq(value, best), (method, name, value, best)
    if method in BOUND_ONLY:
        assert res.schedule is None and res.status == "bound_only", (method, res.status)
        assert res.bound_s is not None
        return
    if method in ("flow", "split") and res.schedule is None:
        # a heuristic may find nothing; it must say so, not claim a time limit
        assert res.status == "bound_only" and "found no feasible schedule" in res.message, res
        return
    assert res.schedule is not None, (method, res.status, res.message)
    ev = evaluate(inst, res.schedule)
    assert ev.feasible, (method, ev.violations)
    assert ev.total_time_s == res.total_time_s, (method, ev.total_time_s, res.total_time_s)
    assert leq(best, res.total_time_s), (method, res.total_time_s, best)
    if res.status == "optimal":
        assert math.isclose(res.total_time_s, best, rel_tol=1e-6, abs_tol=1e-9), (method, res.total_time_s, best)
    if res.bound_s is not None:
        assert res.gap is not None and res.gap >= -1e-9
        expect = (res.total_time_s - res.bound_s) / res.total_time_s if res.total_time_s > 0 else 0.0
        assert math.isclose(res.gap, max(expect, 0.0), rel_tol=1e-9, abs_tol=1e-12), (res.gap, expect)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(instances(bounded=True), instances(mode="exclusive", num_tiers=2),
                 instances(mode="inclusive"), instances()))
def test_every_method_on_tiny_instances(inst):
    best = brute_force(inst).best_time_s
    for method in METHODS:
        check(inst, method, best)

