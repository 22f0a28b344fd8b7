"""The MILP is exact and every bound is a proof: checked against brute force on tiny
random instances (see ``brute_force.py`` and ``strategies.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hetkv_opt.testing import brute_force, num_candidates  # noqa: E402
from hetkv_opt.testing import instances, random_instance  # noqa: E402
from hypothesis import given, settings  # noqa: E402

from hetkv_opt.model.evaluate import evaluate  # noqa: E402
from hetkv_opt.model.instance import make_instance, tiny_instance  # noqa: E402
from hetkv_opt.model.terms import aggregate_bound_s  # noqa: E402
from hetkv_opt.model.epoch_bound import per_epoch_bound_s  # noqa: E402
from hetkv_opt.milp.build import build_model
from hetkv_opt.model.schedule import Schedule  # noqa: E402
from hetkv_opt.solve import solve  # noqa: E402
from hetkv_opt.milp.config import SolverConfig  # noqa: E402

SEEDS = range(300)
EXACT = SolverConfig(mip_rel_gap=0.0)
EXACT_NO_CUTS = SolverConfig(mip_rel_gap=0.0, rounding_cuts=False)
REL = 1e-6


def close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def leq(a: float, b: float, rel: float = 1e-9) -> bool:
    """a <= b up to a relative (and a tiny absolute) tolerance."""
    return a <= b + rel * abs(b) + 1e-12


_cache: dict[int, object] = {}


def oracle(seed: int):
    """(instance, brute-force result), computed once per seed."""
    if seed not in _cache:
        inst = random_instance(seed)
        _cache[seed] = (inst, brute_force(inst))
    return _cache[seed]


def check_optimal_result(inst, res, best: float, label: str) -> None:
    assert res.status == "optimal", (label, res.status, res.message)
    assert close(res.total_time_s, best), (label, res.total_time_s, best)
    # the reported time is the evaluator's, for the reported schedule
    ev = evaluate(inst, res.schedule)
    assert ev.feasible, ev.violations
    assert ev.total_time_s == res.total_time_s
    # the solver's own objective describes the same schedule (auto's portfolio may prove a
    # policy's, a static or a rounded LP schedule optimal without the MILP: then no solver
    # objective exists)
    if res.details.get("solved_by", "milp") == "milp":
        assert res.solver_objective_s is not None
        assert close(res.solver_objective_s, ev.total_time_s), (res.solver_objective_s, ev.total_time_s)
    # bounds are proofs: never above the optimum
    assert res.bound_s is not None and leq(res.bound_s, best), (res.bound_s, best)
    # the MILP's own bound; when no column is integer the model is an LP and its
    # weak-duality bound stands in (see test_optimal_lp_only_model_reports_a_closed_gap)
    key = "milp" if res.details.get("model", {}).get("integer_columns", 1) > 0 else "lp"
    if res.details.get("solved_by", "milp") != "milp":
        key = res.bound_method   # auto proved a schedule optimal without the MILP
    milp_bound = res.details["bounds_s"].get(key)
    assert milp_bound is not None and leq(milp_bound, best), (key, milp_bound, best)
    # with no gap asked for, the MILP closes it
    assert res.gap is not None and 0.0 <= res.gap <= 1e-5, res.gap


@pytest.mark.parametrize("seed", SEEDS)
def test_milp_matches_brute_force(seed):
    inst, bf = oracle(seed)
    res = solve(inst, "milp", config=EXACT, time_limit_s=30)
    if bf.best_time_s is None:
        assert res.status == "infeasible", (res.status, res.message)
        assert res.schedule is None and res.total_time_s is None
        assert res.message, "an infeasible result says why"
        return
    check_optimal_result(inst, res, bf.best_time_s, "milp")


@pytest.mark.parametrize("seed", SEEDS)
def test_rounding_cuts_keep_the_optimum(seed):
    inst, bf = oracle(seed)
    res = solve(inst, "milp", config=EXACT_NO_CUTS, time_limit_s=30)
    if bf.best_time_s is None:
        assert res.status == "infeasible", (res.status, res.message)
        return
    check_optimal_result(inst, res, bf.best_time_s, "milp without rounding cuts")


@pytest.mark.parametrize("seed", SEEDS)
def test_bounds_are_proofs(seed):
    inst, bf = oracle(seed)
    agg = aggregate_bound_s(inst)
    assert agg >= 0.0 and math.isfinite(agg)
    per_epoch = per_epoch_bound_s(inst)
    assert leq(agg, per_epoch)
    if bf.best_time_s is not None:
        assert leq(per_epoch, bf.best_time_s), (per_epoch, bf.best_time_s)
    for cfg in (EXACT, EXACT_NO_CUTS):
        lp = solve(inst, "lp", config=cfg, time_limit_s=30)
        if lp.status == "infeasible":
            # an infeasible relaxation proves the instance infeasible
            assert bf.best_time_s is None, lp.message
            continue
        assert lp.status == "bound_only", (lp.status, lp.message)
        assert lp.schedule is None and lp.total_time_s is None
        lp_bound = lp.details["bounds_s"]["lp"]
        assert lp.bound_s == max(lp.details["bounds_s"].values())
        # the LP relaxation is at least as strong as the capacity-blind bound; the
        # reported LP bound has a floating-point safety margin taken off (margin_s)
        margin = lp.details["lp"]["margin_s"]
        assert 0.0 <= margin <= 1e-6 * abs(lp_bound + margin) + 1e-8, margin
        assert leq(agg, lp_bound + margin), (agg, lp_bound, margin)
        if bf.best_time_s is not None:
            assert leq(lp_bound, bf.best_time_s), (lp_bound, bf.best_time_s)
            assert leq(agg, bf.best_time_s), (agg, bf.best_time_s)


@settings(max_examples=40, deadline=None, database=None)
@given(instances(bounded=True))
def test_milp_matches_brute_force_hypothesis(inst):
    """The same check on hypothesis' instances (tier 0 always bounded: moves matter)."""
    bf = brute_force(inst)
    res = solve(inst, "milp", config=EXACT, time_limit_s=30)
    if bf.best_time_s is None:
        assert res.status == "infeasible", (res.status, res.message)
    else:
        check_optimal_result(inst, res, bf.best_time_s, "milp")


@pytest.mark.parametrize("seed", SEEDS[::6])
def test_auto_method_matches_brute_force(seed):
    inst, bf = oracle(seed)
    res = solve(inst, "auto", config=EXACT, time_limit_s=30)
    if bf.best_time_s is None:
        assert res.status == "infeasible", (res.status, res.message)
        return
    check_optimal_result(inst, res, bf.best_time_s, "auto")
    # auto's portfolio: the MILP's bound, unless a cheaper phase already proved the optimum
    assert "milp" in res.details["bounds_s"] or res.details.get("solved_by") != "milp"
    for method, value in res.details["bounds_s"].items():
        assert leq(value, bf.best_time_s), (method, value, bf.best_time_s)
    # every phase is recorded, with what it knew when it ended
    assert res.details["phases"] and all("runtime_s" in p for p in res.details["phases"])


@pytest.mark.parametrize("seeds", [SEEDS[j::10] for j in range(10)], ids=lambda s: f"seeds{s[0]}")
def test_optimal_schedule_satisfies_every_row(seeds):
    """The brute-force optimum's own column vector satisfies every row of the model (with
    and without the rounding cuts): the model cuts off no optimal schedule."""
    checked = 0
    for seed in seeds:
        inst, bf = oracle(seed)
        if bf.best_schedule is not None:
            _check_rows(inst, bf)
            checked += 1
    assert checked > 0


def _check_rows(inst, bf):
    for cuts in (True, False):
        model = build_model(inst, rounding_cuts=cuts)
        v = model.vector_from_schedule(bf.best_schedule, bf.best_evaluation)
        assert np.all(v >= model.col_lower - 1e-9) and np.all(v <= model.col_upper + 1e-9)
        col = np.repeat(np.arange(model.num_col), np.diff(model.a_start))
        activity = np.bincount(model.a_index, weights=model.a_value * v[col],
                               minlength=model.num_row)
        tol = 1e-7 * (1 + np.abs(activity))
        bad = np.flatnonzero((activity < model.row_lower - tol) | (activity > model.row_upper + tol))
        assert bad.size == 0, [model.row_names()[r] for r in bad[:5]]
        # and its objective is the evaluator's time
        assert close(float(model.col_cost @ v) * model.t0_s, bf.best_time_s)


def test_generator_covers_the_interesting_cases():
    """Guard the oracle's reach: the seeds above must include every kind of instance."""
    kinds = set()
    cut_seen = False
    for seed in SEEDS:
        inst, bf = oracle(seed)
        kinds.add((inst.mode, inst.num_tiers, bf.best_time_s is None))
        if inst.mode == "exclusive" and not cut_seen:
            cut_seen = any(n.startswith("cut[") for n in build_model(inst).row_names())
        kinds.add(("pinned",) if (inst.pinned_tier >= 0).any() else ())
        kinds.add(("initial",) if (inst.initial_tier >= 0).any() else ())
        kinds.add(("floor",) if (inst.min_time_s > 0).any() else ())
        kinds.add(("writes",) if inst.write_item.size else ())
        kinds.add(("births",) if (inst.birth > 0).any() else ())
        kinds.add(("deaths",) if (inst.death < inst.num_epochs).any() else ())
        kinds.add(("moves",) if bf.best_evaluation is not None and bf.best_evaluation.num_moves else ())
        kinds.add(("links",) if any(t.link_read_Bps for t in inst.tiers) else ())
        kinds.add(("big",) if num_candidates(inst) >= 1000 else ())
    for want in [("exclusive", 2, False), ("exclusive", 3, False), ("inclusive", 2, False),
                 ("exclusive", 2, True), ("exclusive", 3, True), ("inclusive", 2, True),
                 ("pinned",), ("initial",), ("floor",), ("writes",), ("births",), ("deaths",),
                 ("moves",), ("links",), ("big",)]:
        assert want in kinds, want
    assert cut_seen, "no seed exercises the rounding cuts"


# --------------------------------------------------------------------- docs/model.md example

def test_model_md_worked_example():
    inst = tiny_instance()
    sched = Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0])
    ev = evaluate(inst, sched)
    assert ev.feasible
    assert ev.epoch_time_s.tolist() == [1.0, 0.5, 0.5]
    assert ev.total_time_s == 2.0
    assert aggregate_bound_s(inst) == pytest.approx(1.0, rel=1e-12)
    bf = brute_force(inst)
    assert bf.best_time_s == 2.0
    res = solve(inst, "milp", config=EXACT)
    check_optimal_result(inst, res, 2.0, "tiny")
    lp = solve(inst, "lp")
    assert lp.status == "bound_only"
    assert 1.0 - 1e-9 <= lp.details["bounds_s"]["lp"] <= 2.0 + 1e-9
    agg = solve(inst, "aggregate")
    assert agg.status == "bound_only" and agg.bound_s == pytest.approx(1.0)
    assert agg.bound_method == "aggregate"


# ------------------------------------------------------- regression: warm start (fixed)

def test_warm_start_does_not_replace_the_optimum():
    """Minimal case found by hypothesis (regression).  Optimum 0.5 s: item 1 in hbm at
    epoch 3, item 0 in dram.  The trivial warm start (everything in dram) takes 1.0 s;
    HiGHS 1.16 solved the model in presolve and returned the warm start's x with the
    objective 0.5 s, and solve() reported status 'error'."""
    inst = make_instance(
        name="ws", tiers=[{"name": "hbm", "capacity_bytes": 1, "bandwidth_Bps": 2.0},
                          {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0}],
        size_bytes=[1, 1], birth=[1, 3], num_epochs=4, reads=([3], [1], [1]))
    assert brute_force(inst).best_time_s == 0.5
    for cfg in (EXACT, SolverConfig(), EXACT_NO_CUTS):
        res = solve(inst, "milp", config=cfg)
        assert res.status == "optimal", res.message
        assert res.total_time_s == 0.5


def test_run_highs_never_returns_the_warm_start_with_another_objective():
    """The HiGHS 1.16 behaviour itself, on a fixed 8-column model (the old MILP of an
    instance like the one above): with the warm start set, HiGHS returned x = the warm
    start (cost 14/3) and objective 10/3.  run_highs must return an x whose cost is its
    objective, and the optimum."""
    from types import SimpleNamespace

    from hetkv_opt.milp.highs import run_highs

    inf = math.inf
    start = np.array([0, 5, 8, 12, 16, 21, 24, 27, 30])
    model = SimpleNamespace(
        num_col=8, num_row=10, t0_s=1.0, num_nz=30,
        col_cost=np.array([0, 0, 0, 0, 0, 0, 1, 1], float),
        col_lower=np.array([0, 0, 0, 0, 0, 0, 0, 2 / 3]),
        col_upper=np.array([1, 1, 1, 1, 1, 1, 20, 4.000000005]),
        row_lower=np.array([0, 0, -inf, -inf, 0, 0, 2 / 3, 2, 0, 4]),
        row_upper=np.array([inf, inf, 1, 1, inf, inf, inf, inf, inf, inf]),
        a_start=start,
        a_index=np.array([0, 1, 2, 4, 6, 0, 1, 3, 3, 5, 7, 9, 3, 5, 7, 9, 0, 2, 4, 6, 8,
                          1, 4, 6, 4, 6, 8, 5, 7, 9]),
        a_value=np.array([1, -1, .5, -4 / 3, 2 / 3, -1, 1, .5, 1 / 3, -4 / 3, 2 / 3, 4 / 3,
                          1 / 3, -8 / 3, 4 / 3, 8 / 3, 1, .5, -4, -2, -4, 1, -4, -2, 1, 1,
                          1, 1, 1, 1]),
        integrality=np.array([1, 1, 1, 1, 0, 0, 0, 0], np.uint8))
    warm = np.array([0, 0, 0, 0, 0, 0, 2 / 3, 4.0])
    for ws in (None, warm):
        raw = run_highs(model, relax=False, mip_rel_gap=0.0, warm_start=ws)
        assert raw.status == "optimal"
        assert raw.objective == pytest.approx(10 / 3, rel=1e-9)
        assert float(model.col_cost @ raw.x) == pytest.approx(raw.objective, rel=1e-9)


def test_optimal_lp_only_model_reports_a_closed_gap():
    """Found by hypothesis.  One item pinned to dram, read 1 B at 1 B/s: T = 1 s, proven
    optimal (nothing to decide).  The model has no integer column, so HiGHS gives no MIP
    bound; the LP's weak-duality bound must close the gap (it once stayed at 0.5 s)."""
    inst = make_instance(
        name="lp-only", mode="inclusive",
        tiers=[{"name": "hbm", "capacity_bytes": 0, "bandwidth_Bps": 1.0},
               {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0}],
        size_bytes=[1], pinned_tier=[1], num_epochs=1, reads=([0], [0], [1]))
    res = solve(inst, "milp", config=EXACT)
    assert res.status == "optimal" and res.total_time_s == 1.0
    lp = res.details["bounds_s"]["lp"]
    assert lp <= 1.0 and lp == pytest.approx(1.0, rel=1e-5)
    # the per-epoch bound proves it too (the pinned read is all there is), exactly
    assert res.details["bounds_s"]["per_epoch"] == 1.0
    assert res.bound_s == max(res.details["bounds_s"].values()) and res.gap <= 1e-5
