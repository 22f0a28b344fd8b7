"""The per-epoch bound (hetkv_opt/model/epoch_bound.py): a proof on every tiny random
instance with pinned items and initial tiers, never below the aggregate line, exact where
the pinned reads set the pace, and the same whether the parts come whole or by layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from hetkv_opt.model.epoch_bound import (basic_bounds, epoch_parts, per_epoch_bound_from,
                                         per_epoch_bound_s, per_epoch_times)
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import make_instance
from hetkv_opt.model.parts import split_by_layer
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.testing import brute_force, instances, random_instance


def _leq(a, b):
    return a <= b * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("kw", [{"min_pinned": 2}, {"min_initial": 2}, {"min_pinned": 1, "min_initial": 1}],
                         ids=["pinned", "initial", "both"])
def test_the_per_epoch_bound_is_below_the_optimum_of_random_instances(kw):
    stronger = 0
    for seed in range(60):
        inst = random_instance(seed, **kw)
        pe, agg = per_epoch_bound_s(inst), aggregate_bound_s(inst)
        assert _leq(agg, pe), (seed, agg, pe)
        best = brute_force(inst).best_time_s
        if best is not None:
            assert _leq(pe, best), (seed, inst.mode, pe, best)
        stronger += pe > agg * (1 + 1e-9)
    # the check has teeth: the fixed reads lift the bound on most of these instances
    assert stronger >= 20, stronger


@settings(max_examples=60, deadline=None, database=None)
@given(instances(min_pinned=1))
def test_the_per_epoch_bound_is_a_proof_hypothesis(inst):
    best = brute_force(inst).best_time_s
    if best is not None:
        assert _leq(per_epoch_bound_s(inst), best)


def test_pinned_reads_that_set_the_pace_are_proven_optimal():
    """Tier 0 (4 B/s) holds 16 B of pinned weights read every epoch: 4 s per epoch however
    the four 1-B pages are placed (in tier 1, at 2 B/s, they take 2 s).  The aggregate
    line spreads all 20 B over 6 B/s: 3.33 s per epoch."""
    E = 3
    inst = make_instance(
        name="wp", mode="exclusive", num_epochs=E,
        tiers=[{"name": "hbm", "capacity_bytes": 100, "bandwidth_Bps": 4.0},
               {"name": "lpddr", "capacity_bytes": None, "bandwidth_Bps": 2.0}],
        size_bytes=[16, 1, 1, 1, 1], birth=[0] * 5, death=[E] * 5,
        pinned_tier=[0, -1, -1, -1, -1],
        reads=([e for e in range(E) for _ in range(5)], [i for _ in range(E) for i in range(5)],
               [b for _ in range(E) for b in (16, 1, 1, 1, 1)]))
    assert per_epoch_bound_s(inst) == pytest.approx(12.0)
    assert aggregate_bound_s(inst) == pytest.approx(3 * 20 / 6)
    assert brute_force(inst).best_time_s == pytest.approx(12.0)
    assert basic_bounds(inst) == {"aggregate": aggregate_bound_s(inst),
                                  "per_epoch": pytest.approx(12.0)}


def test_whole_reads_give_more_than_a_fractional_split():
    """8 B of weights in tier 0 (4 B/s) and one 6-B page: the balance wants 2 B of the
    page in tier 0, but a page is read whole, so the epoch takes min(max(14/4, 0),
    max(8/4, 6/2)) = 3 s, where a fractional split would give 14 / 6 = 2.33 s."""
    inst = make_instance(
        name="whole", mode="exclusive", num_epochs=1,
        tiers=[{"name": "hbm", "capacity_bytes": 100, "bandwidth_Bps": 4.0},
               {"name": "lpddr", "capacity_bytes": None, "bandwidth_Bps": 2.0}],
        size_bytes=[8, 6], birth=[0, 0], death=[1, 1], pinned_tier=[0, -1],
        reads=([0, 0], [0, 1], [8, 6]))
    assert per_epoch_bound_s(inst) == pytest.approx(3.0)
    assert brute_force(inst).best_time_s == pytest.approx(3.0)
    parts = epoch_parts(inst)
    assert parts.free_gcd.tolist() == [6] and parts.fixed_reads[:, 0].tolist() == [8.0, 0.0]


def test_the_parts_of_the_layers_add_up_to_the_whole():
    from hetkv_opt.workloads.paper import paper_instance
    inst = paper_instance(layers=3, prompt_tokens=96, steps=12, sparsity=0.6)
    whole = epoch_parts(inst)
    parts = [epoch_parts(p.instance) for p in split_by_layer(inst)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    for f in ("reads", "writes", "fixed_reads", "fixed_writes", "free_reads", "free_gcd"):
        assert np.allclose(getattr(total, f), getattr(whole, f), rtol=1e-12, atol=0), f
    assert per_epoch_bound_from(inst.tiers, inst.mode, inst.min_time_s, total) == \
        pytest.approx(per_epoch_bound_s(inst), rel=1e-12)


def test_every_epoch_is_below_that_epochs_time_in_any_schedule():
    """Epoch by epoch, not only in sum: the per-epoch floor is below the evaluator's time
    of that epoch for the optimum's schedule and for 'everything in its slowest tier'."""
    for seed in range(40):
        inst = random_instance(seed, min_pinned=1)
        bf = brute_force(inst)
        if bf.best_schedule is None:
            continue
        floor = per_epoch_times(inst.tiers, inst.mode, inst.min_time_s, epoch_parts(inst))
        tau = evaluate(inst, bf.best_schedule).epoch_time_s
        assert np.all(floor <= tau * (1 + 1e-9) + 1e-12), (seed, floor, tau)
