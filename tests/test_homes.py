"""spread_homes: the off-tier-0 residency of each item moved to the slower tier that lowers
T; the schedule it returns is never slower (by the evaluator), keeps pins, initial tiers and
capacities, and keeps when each item is in tier 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from hetkv_opt.methods.homes import out_of_scope, spread_homes
from hetkv_opt.methods.starts import two_fastest_tiers
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import Tier, make_instance, tiny_instance
from hetkv_opt.model.schedule import residency_matrix, schedule_from_residency
from hetkv_opt.solve import solve
from hetkv_opt.testing import instances_with_residency
from hetkv_opt.workloads.drift import drift_instance


@settings(max_examples=150, deadline=None)
@given(instances_with_residency(num_tiers=3, mode="exclusive"))
def test_never_slower_and_keeps_what_it_must(case):
    inst, _, sched = case
    before = evaluate(inst, sched)
    out = spread_homes(inst, sched)
    if out is None:
        return
    after = evaluate(inst, out)
    if before.feasible:
        assert after.feasible, after.violations
        assert after.total_time_s <= before.total_time_s * (1 + 1e-9) + 1e-15
    rho0, rho1 = residency_matrix(inst, sched), residency_matrix(inst, out)
    # tier 0 residency, pins and initial tiers are untouched
    assert np.array_equal(rho0 == 0, rho1 == 0)
    pinned = inst.pinned_tier >= 0
    assert np.array_equal(rho0[pinned], rho1[pinned])
    for i in np.flatnonzero(inst.initial_tier >= 0):
        assert rho1[i, inst.birth[i]] == rho0[i, inst.birth[i]]


def _two_links():
    """Four items read every epoch, none fits tier 0: with tier 2's link as fast as tier
    1's, half of them belong in tier 2 and every epoch takes half the time."""
    tiers = (Tier("hbm", 1, 10.0), Tier("a", None, 10.0, 1.0, 1.0), Tier("b", None, 10.0, 1.0, 1.0))
    E, N = 3, 4
    ep, it = np.repeat(np.arange(E), N), np.tile(np.arange(N), E)
    return make_instance(name="two-links", mode="exclusive", tiers=tiers,
                         size_bytes=np.full(N, 2, np.int64), num_epochs=E,
                         birth=np.zeros(N, np.int64), death=np.full(N, E, np.int64),
                         reads=(ep, it, np.ones(ep.size, np.int64)))


def test_it_splits_the_reads_over_two_equal_links():
    inst = _two_links()
    start = schedule_from_residency(inst, np.ones((4, 3), np.int64))
    assert evaluate(inst, start).total_time_s == pytest.approx(12.0)
    info: dict = {}
    out = spread_homes(inst, start, info=info)
    assert evaluate(inst, out).total_time_s == pytest.approx(6.0)
    assert info["moved"] == 2 and info["finished"]


def test_it_says_why_it_does_not_apply():
    assert "three tiers" in out_of_scope(tiny_instance())
    info: dict = {}
    assert spread_homes(tiny_instance(), solve(tiny_instance(), "milp").schedule, info=info) is None
    assert "three tiers" in info["skipped"]


def test_on_a_three_tier_drift_instance_it_closes_most_of_the_gap_of_the_two_tier_optimum():
    """The two-tier optimum leaves the CXL link idle; spreading recovers most of the
    bandwidth it adds (measured: 12.3 % above the LP bound before, 4.1 % after)."""
    inst = drift_instance(blocks=64, steps=16, seed=1, hardware="gh200-cxl")
    two = solve(two_fastest_tiers(inst), "milp", time_limit_s=60)
    base = evaluate(inst, two.schedule).total_time_s
    out = spread_homes(inst, two.schedule)
    assert out is not None
    assert evaluate(inst, out).total_time_s < base * 0.97
