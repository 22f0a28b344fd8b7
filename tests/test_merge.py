"""The merged-tier relaxation: its optimum is at most the original's (so every bound of it
is a bound of the original), and every schedule of the original, read with the slower
tiers as one, is a schedule of it that is no slower."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import tiny_instance
from hetkv_opt.model.merge import merge_slow_tiers
from hetkv_opt.model.schedule import residency_matrix, schedule_from_residency
from hetkv_opt.solve import solve
from hetkv_opt.testing import brute_force, instances_with_residency, random_instance
from hetkv_opt.workloads.drift import drift_instance


@settings(max_examples=200, deadline=None)
@given(instances_with_residency(num_tiers=3, mode="exclusive"))
def test_a_schedule_read_with_the_slower_tiers_merged_is_no_slower(case):
    inst, _, sched = case
    ev = evaluate(inst, sched)
    merged = merge_slow_tiers(inst)
    rho = residency_matrix(inst, sched).astype(np.int64)
    image = schedule_from_residency(merged, np.where(rho >= 1, 1, rho))
    ev_m = evaluate(merged, image)
    if ev.feasible:
        assert ev_m.feasible, ev_m.violations
        assert ev_m.total_time_s <= ev.total_time_s * (1 + 1e-12) + 1e-15


def test_the_merged_optimum_is_a_bound_of_the_original():
    checked = 0
    for seed in range(60):
        inst = random_instance(seed, num_tiers=3, mode="exclusive")
        merged = merge_slow_tiers(inst)
        bf = brute_force(inst)
        if bf.best_time_s is None:
            continue
        bfm = brute_force(merged)
        assert bfm.best_time_s <= bf.best_time_s * (1 + 1e-12) + 1e-15, seed
        checked += 1
    assert checked >= 30


def test_nothing_to_merge_with_two_tiers():
    assert merge_slow_tiers(tiny_instance()) is None


def test_auto_proves_the_merged_bound_on_three_tiers_and_never_past_the_schedule():
    inst = drift_instance(blocks=64, steps=32, seed=2, hardware="gh200-cxl")
    res = solve(inst, "auto", time_limit_s=20)
    merged = merge_slow_tiers(inst)
    assert "merged" in res.details["bounds_s"]
    assert res.details["merged"]["proved_by"] in ("lp", "lagrangian")
    # a small instance: the merged LP runs, and gives what the LP of the merged instance gives
    assert res.details["merged"]["proved_by"] == "lp"
    direct = solve(merged, "lp", time_limit_s=60).details["bounds_s"]["lp"]
    assert abs(res.details["bounds_s"]["merged"] - direct) <= 1e-9 * direct
    assert res.bound_s <= res.total_time_s
    assert res.details["merged"]["tiers"] == "lpddr+cxl"


def test_rolling_on_three_tiers_is_measured_against_the_merged_bound_too():
    inst = drift_instance(blocks=64, steps=32, seed=2, hardware="gh200-cxl")
    res = solve(inst, "rolling", time_limit_s=30)
    assert "merged" in res.details["bounds_s"]
    assert res.bound_s >= res.details["bounds_s"]["merged"] * (1 - 1e-12)
    assert res.bound_s <= res.total_time_s
