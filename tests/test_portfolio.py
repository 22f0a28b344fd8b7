"""auto as an anytime portfolio under one deadline: a schedule and a proof from the first
moments, the LP only where its measured pilot says it fits, honest phase records, and
HiGHS failures retried."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import time

import pytest

from hetkv_opt.deadline import Deadline
from hetkv_opt.io.files import load_instance
from hetkv_opt.methods import portfolio
from hetkv_opt.methods.starts import static_schedule
from hetkv_opt.milp.build import build_model
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.milp.raw import RawSolve
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import tiny_instance
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.policies import get_policy, run_policy
from hetkv_opt.solve import solve
from hetkv_opt.workloads.drift import drift_instance

auto_mod = importlib.import_module("hetkv_opt.methods.auto")
exact_mod = importlib.import_module("hetkv_opt.methods.exact")


# ------------------------------------------------------------------------------ deadline

@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_a_deadline_refuses_a_negative_or_nan_limit(bad):
    with pytest.raises(ValueError, match="time limit"):
        Deadline(bad)


def test_a_child_deadline_never_ends_after_its_parent():
    parent = Deadline(2.0)
    assert parent.child(10.0).end() <= parent.end()
    assert parent.child(fraction=0.5).end() <= parent.start + 0.5 * 2.0 + parent.elapsed_s()
    assert parent.child(fraction=0.5).remaining_s() <= 1.0
    assert Deadline(None).child(3.0).remaining_s() <= 3.0
    assert Deadline(None).child().unlimited
    assert Deadline.of(float("inf")).unlimited


# ----------------------------------------------------------------------- the portfolio

def _cheap_times(inst):
    out = [evaluate(inst, static_schedule(inst, k)) for k in range(inst.num_tiers)]
    for name in auto_mod.CHEAP_POLICIES:
        out.append(evaluate(inst, run_policy(inst, get_policy(name)).schedule()))
    return [ev.total_time_s for ev in out if ev.feasible]


@pytest.mark.parametrize("limit", [1e-9, 0.5, 20.0])
def test_auto_at_any_limit_has_a_schedule_no_worse_than_the_cheap_ones_and_a_real_proof(limit):
    inst = load_instance("instances/drift-64x32.npz")
    res = solve(inst, "auto", time_limit_s=limit)
    assert res.schedule is not None and res.status in ("feasible", "optimal")
    assert res.total_time_s <= min(_cheap_times(inst)) * (1 + 1e-12)
    # never the capacity-blind line alone: a few Lagrangian iterations always run
    assert res.bound_method != "aggregate" and res.bound_s > aggregate_bound_s(inst)
    assert res.bound_s <= res.total_time_s


def test_auto_records_every_phase_and_says_what_happened():
    inst = drift_instance(blocks=24, steps=12, seed=2)
    res = solve(inst, "auto", time_limit_s=30)
    phases = res.details["phases"]
    names = [p["phase"] for p in phases]
    assert names[:4] == ["starts", "split", "policies", "lagrangian"]
    for p in phases:
        assert set(p) >= {"phase", "finished", "runtime_s", "bound_s", "best_s"}
        if p["bound_s"] is not None and p["best_s"] is not None:
            assert p["bound_s"] <= p["best_s"] * (1 + 1e-9)
    # the best schedule and the best bound only improve from phase to phase
    bests = [p["best_s"] for p in phases if p["best_s"] is not None]
    bounds = [p["bound_s"] for p in phases if p["bound_s"] is not None]
    assert bests == sorted(bests, reverse=True) and bounds == sorted(bounds)
    assert res.message.startswith("phases: starts")
    assert res.details["solved_by"] in res.message


def test_auto_skips_an_lp_predicted_too_slow_and_still_proves_and_schedules(monkeypatch):
    monkeypatch.setattr(auto_mod, "predict_lp_s", lambda inst, cfg, deadline=None: (1e9, {
        "pilot_shrink": 4, "pilot_nonzeros": 100, "pilot_lp_s": 1.0, "predicted_lp_s": 1e9,
        "lp_method": "simplex"}))
    monkeypatch.setattr(auto_mod, "spare_cores", lambda: 0)     # no second process
    inst = drift_instance(blocks=32, steps=16, seed=1)
    res = solve(inst, "auto", time_limit_s=20)
    lp = [p for p in res.details["phases"] if p["phase"] == "lp"]
    assert lp and "predicted" in lp[0]["skipped"] and not lp[0]["finished"]
    assert "lp" not in res.details["bounds_s"]
    assert res.bound_method == "lagrangian" and res.schedule is not None
    assert res.details.get("scale_path") is True and "flow" in res.details


def test_the_lp_pilots_keep_the_statistics_and_predict_the_model_size():
    inst = drift_instance(blocks=256, steps=128, seed=3)
    small = portfolio.shrunk_instance(inst, 4)
    assert abs(small.num_items - 64) <= 2 and small.num_epochs == 32
    # the same capacity pressure: tier 0 holds the same share of the bytes
    share = inst.tiers[0].capacity_bytes / inst.size_bytes.sum()
    assert abs(small.tiers[0].capacity_bytes / small.size_bytes.sum() - share) < 0.02
    # the same read density
    dens = inst.read_bytes.size / (inst.num_items * inst.num_epochs)
    assert abs(small.read_bytes.size / (small.num_items * small.num_epochs) - dens) < 0.1
    full_nnz = build_model(inst, count_vars=False).num_nz
    pred, rec = portfolio.predict_lp_s(inst, SolverConfig())
    assert 0.5 <= rec["nonzeros_estimate"] / full_nnz <= 2.0, (rec, full_nnz)
    assert 1.0 <= rec["exponent"] <= 2.5 and pred >= rec["pilot_lp_s"] - 1e-6
    # a tiny instance is not piloted
    assert portfolio.predict_lp_s(tiny_instance(), SolverConfig())[0] == 0.0


def test_ctrl_c_in_the_cheap_phase_returns_what_is_at_hand(monkeypatch):
    calls = {"n": 0}
    real = auto_mod.run_policy

    def interrupted(inst, policy, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(inst, policy, **kw)
    monkeypatch.setattr(auto_mod, "run_policy", interrupted)
    inst = drift_instance(blocks=24, steps=12, seed=5)
    res = solve(inst, "auto", time_limit_s=30)
    assert res.details.get("interrupted") and "interrupted" in res.message
    assert res.schedule is not None and evaluate(inst, res.schedule).feasible


# ----------------------------------------------------------------------- HiGHS failures

def test_a_highs_error_is_retried_with_another_seed_and_said(monkeypatch):
    real = exact_mod.run_highs
    seen = []

    def flaky(model, **kw):
        seen.append(kw.get("seed"))
        if len(seen) == 1:
            return RawSolve("error", "HiGHS: Solve error", None, None, None)
        return real(model, **kw)
    monkeypatch.setattr(exact_mod, "run_highs", flaky)
    res = solve(tiny_instance(), "milp")
    assert res.status == "optimal" and res.total_time_s == 2.0
    assert seen[0] != seen[1]                      # another random seed
    assert res.details["milp"]["retries"][0]["why"] == "HiGHS: Solve error"
    assert "retried 1 time" in res.message


def test_a_highs_error_that_persists_is_reported_with_what_was_tried(monkeypatch):
    monkeypatch.setattr(exact_mod, "run_highs", lambda model, **kw: RawSolve(
        "error", "HiGHS: Solve error", None, None, None))
    res = solve(tiny_instance(), "milp")
    # the starting schedule is still a feasible answer, and the retries are on record
    assert res.status == "feasible" and res.schedule is not None
    assert len(res.details["milp"]["retries"]) == len(exact_mod.RETRY_OPTIONS)
    assert "presolve = off" in res.message


# ------------------------------------------------------ the same bounds in simulate and bench

def test_a_proven_bound_is_computed_once_per_instance_and_kept(tmp_path, monkeypatch):
    from hetkv_opt.bench import bounds as bounds_mod
    inst = drift_instance(blocks=24, steps=12, seed=2)
    calls = []
    real = bounds_mod._compute
    monkeypatch.setattr(bounds_mod, "_compute", lambda *a: calls.append(a) or real(*a))
    first = bounds_mod.proven_bound(inst, "auto", time_limit_s=20, cache_dir=tmp_path)
    again = bounds_mod.proven_bound(inst, "auto", time_limit_s=20, cache_dir=tmp_path)
    assert len(calls) == 1 and not first["cached"] and again["cached"]
    assert again["bound_s"] == first["bound_s"] and again["bound_method"] == first["bound_method"]
    # a proof: never above the optimum
    opt = solve(inst, "milp", time_limit_s=60)
    assert first["bound_s"] <= opt.total_time_s * (1 + 1e-9)
    # a damaged cache file is recomputed, not believed
    for f in tmp_path.iterdir():
        f.write_text('{"schema": "hetkv-bound-cache", "schema_version": 1, "bounds_s": {"x": 1e9}}')
    third = bounds_mod.proven_bound(inst, "auto", time_limit_s=20, cache_dir=tmp_path)
    assert not third["cached"] and third["bound_s"] == first["bound_s"] and len(calls) == 2
    with pytest.raises(ValueError, match="bound method"):
        bounds_mod.proven_bound(inst, "nope")


def test_auto_bound_of_an_instance_held_by_layer_is_the_basic_bounds_without_a_solve(
        tmp_path, monkeypatch):
    """Above the by-layer threshold a layered instance gets what the by-layer path proves
    (the aggregate line and the per-epoch bound), at once: held whole, the portfolio's
    solve ran the machine out of memory on the paper's workload at full scale."""
    from hetkv_opt.bench import bounds as bounds_mod
    from hetkv_opt.methods import by_layer
    from hetkv_opt.model.epoch_bound import per_epoch_bound_s
    from hetkv_opt.model.terms import aggregate_bound_s
    from hetkv_opt.workloads.requests import Request, build_workload
    inst = build_workload(model="smollm2-135m", hardware="gh200-96g", requests=[Request(40, 6)],
                          layers=2)
    assert not bounds_mod.held_by_layer(inst)
    monkeypatch.setattr(by_layer, "BY_LAYER_MIN_READS", inst.read_item.size - 1)
    assert bounds_mod.held_by_layer(inst)
    import sys
    monkeypatch.setattr(sys.modules["hetkv_opt.solve"], "solve",
                        lambda *a, **k: pytest.fail("solved whole"))
    b = bounds_mod.proven_bound(inst, "auto", time_limit_s=60, cache_dir=tmp_path)
    assert b["bounds_s"] == {"aggregate": aggregate_bound_s(inst),
                             "per_epoch": per_epoch_bound_s(inst)}
    # the weights are pinned in HBM: the per-epoch bound is the stronger
    assert b["bound_method"] == "per_epoch" and b["bound_s"] > aggregate_bound_s(inst)
    assert "by layer" in b["note"]
    # one layer, or fewer reads: the portfolio as before
    monkeypatch.setattr(by_layer, "BY_LAYER_MIN_READS", inst.read_item.size)
    assert not bounds_mod.held_by_layer(inst)


@pytest.mark.parametrize("bound", ["auto", "lp", "lagrangian", "milp", "aggregate"])
def test_simulate_measures_against_the_bound_asked_for_and_names_it(bound, tmp_path):
    import json
    from cli_helpers import hetkv
    p = hetkv("simulate", "instances/drift-32x16.json", "--policy", "lru", "--bound", bound,
              "--bound-time-limit", "10", "--bound-cache", tmp_path, "-f", "json")
    d = json.loads(p.stdout)
    src = d["details"]["bound_source"]
    assert src["asked"] == bound and src["bound_method"] == d["bound_method"]
    if bound != "auto":
        assert d["bound_method"] in (bound, "aggregate") or bound == "milp"
    assert d["bound_s"] <= d["total_time_s"]
    if bound != "aggregate":
        assert d["bound_method"] != "aggregate"


def test_a_bench_policy_cell_carries_its_bound_and_the_instance_computes_it_once(tmp_path):
    import json
    from hetkv_opt.bench.runner import run_suite
    suite = tmp_path / "s.toml"
    suite.write_text('schema = "hetkv-suite"\nschema_version = 1\nseed = 0\n'
                     '[[instances]]\nfile = "%s"\n'
                     '[[methods]]\nmethod = "policy:lru"\nbound = "auto"\nbound_time_limit_s = 10\n'
                     '[[methods]]\nmethod = "policy:lfu"\nbound = "auto"\nbound_time_limit_s = 10\n'
                     % (Path("instances/drift-32x16.json").resolve()))
    run_suite(suite, tmp_path / "out")
    cells = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert len(cells) == 2
    srcs = [c["result"]["details"]["bound_source"] for c in cells]
    assert sorted(s["cached"] for s in srcs) == [False, True]      # computed once
    assert all(c["result"]["bound_method"] == s["bound_method"] for c, s in zip(cells, srcs))
    assert len(list((tmp_path / "out" / "bounds").iterdir())) == 1


def test_hetkv_bench_bound_option_applies_to_policies_without_their_own(tmp_path):
    import json
    from cli_helpers import hetkv
    hetkv("bench", "smoke", "--out", tmp_path / "r", "--quiet", "--bound", "lp",
          "--bound-time-limit", "10")
    cells = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*.json")]
    pol = [c for c in cells if c["method"]["kind"] == "policy"]
    assert pol and all(c["result"]["details"]["bound_source"]["asked"] == "lp" for c in pol)
    assert all("bound_source" not in c["result"]["details"] for c in cells
               if c["method"]["kind"] != "policy")
    bad = hetkv("bench", "smoke", "--out", tmp_path / "r2", "--bound", "nope", check_rc=2)
    assert "--bound" in bad.stderr


def test_an_lp_predicted_too_slow_runs_beside_the_others_on_a_spare_core(monkeypatch):
    # 10 s: more than its inline share of 20 s, but predicted to finish in time, so auto
    # waits for it
    monkeypatch.setattr(auto_mod, "predict_lp_s", lambda inst, cfg, deadline=None: (10.0, {
        "pilot_shrink": 4, "pilot_nonzeros": 100, "pilot_lp_s": 1.0, "predicted_lp_s": 10.0,
        "lp_method": "simplex"}))
    monkeypatch.setattr(auto_mod, "spare_cores", lambda: 1)
    inst = drift_instance(blocks=32, steps=16, seed=1)
    res = solve(inst, "auto", time_limit_s=20)
    lp = [p for p in res.details["phases"] if p["phase"] == "lp"]
    assert len(lp) == 1 and lp[0]["background"] and lp[0]["finished"], lp
    # the child's bound is the weak-duality LP bound of the same instance
    direct = solve(inst, "lp", time_limit_s=20).details["bounds_s"]["lp"]
    assert res.details["bounds_s"]["lp"] == pytest.approx(direct, rel=1e-9)
    assert res.bound_s >= direct * (1 - 1e-12) and res.bound_s <= res.total_time_s
    assert "in a second process" in res.message
    assert res.details["lp"]["background"] is True


def test_a_background_lp_is_killed_at_the_deadline_and_says_so(monkeypatch):
    """A child that cannot finish is stopped when the deadline comes; the result keeps
    what the rest found and records the LP as stopped."""
    import hetkv_opt.methods.background as bg_mod
    # a child that never answers
    monkeypatch.setattr(bg_mod, "_job", lambda instance, config, limit: ("time:sleep", (120,)))
    monkeypatch.setattr(auto_mod, "predict_lp_s", lambda inst, cfg, deadline=None: (1e9, {
        "pilot_shrink": 4, "pilot_nonzeros": 100, "pilot_lp_s": 1.0, "predicted_lp_s": 1e9,
        "lp_method": "ipm"}))
    monkeypatch.setattr(auto_mod, "spare_cores", lambda: 1)
    inst = drift_instance(blocks=64, steps=32, seed=2, sparsity=0.9, phi=0.9, persistence=0.5)
    t0 = time.perf_counter()
    res = solve(inst, "auto", time_limit_s=6)
    assert time.perf_counter() - t0 < 30          # not the child's 120 s
    lp = [p for p in res.details["phases"] if p["phase"] == "lp"]
    assert len(lp) == 1 and lp[0]["background"] and not lp[0]["finished"], lp
    assert "lp" not in res.details["bounds_s"] and res.schedule is not None


def test_the_pilots_measure_both_lp_algorithms_and_pick_the_faster():
    inst = drift_instance(blocks=128, steps=64, seed=2)
    pred, rec = portfolio.predict_lp_s(inst, SolverConfig())
    by = rec["predicted_by_method"]
    assert set(by) == set(portfolio.PILOT_LP_METHODS)
    assert rec["lp_method"] == min(by, key=by.get) and pred == by[rec["lp_method"]]
    # a method the caller chose is the only one piloted
    pred_ipm, rec_ipm = portfolio.predict_lp_s(inst, SolverConfig(lp_method="ipm"))
    assert rec_ipm["lp_method"] == "ipm" and "predicted_by_method" not in rec_ipm
    # a deadline shortens the pilots: with 1 s left each gets at most 2 % of it (or 0.05 s)
    _, rec_short = portfolio.predict_lp_s(inst, SolverConfig(), deadline=Deadline(1.0))
    assert rec_short["pilot_limit_s"] <= 0.05 + 1e-9
