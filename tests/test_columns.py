"""The restricted Dantzig-Wolfe master as a MIP (hetkv_opt/methods/columns.py): its
schedules are feasible, the MIP's own time of each is the evaluator's, it never returns
half an answer, and auto runs it where it applies and records it."""

from __future__ import annotations

import pytest

from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound
from hetkv_opt.methods.columns import columns_schedule
from hetkv_opt.methods.starts import trivial_schedule
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.solve import solve
from hetkv_opt.testing import brute_force, random_instance
from hetkv_opt.workloads.drift import drift_instance


def _master(inst, time_limit_s=30.0):
    keep: dict = {}
    bound, _ = lagrangian_bound(inst, master="dw", time_limit_s=time_limit_s, keep=keep)
    return bound, keep["dw_master"]


CASES = [dict(seed=s, mode=m, num_tiers=k) for s in range(6) for m in ("exclusive", "inclusive")
         for k in (2, 3) if not (m == "inclusive" and k == 3)]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: f"{kw['mode']}-{kw['num_tiers']}-{kw['seed']}")
def test_schedules_are_feasible_and_priced_as_the_evaluator_prices_them(kw):
    kw = dict(kw)
    inst = random_instance(kw.pop("seed"), **kw)
    best = brute_force(inst)
    if best.best_time_s is None:
        pytest.skip("no schedule exists")
    for start in (trivial_schedule(inst), best.best_schedule):
        bound, master = _master(inst)
        info: dict = {}
        sched = columns_schedule(inst, master, start, deadline=30.0, info=info)
        if sched is None:                        # a start that does not fit: maybe nothing
            assert start is not best.best_schedule, info
            continue
        ev = evaluate(inst, sched)
        assert ev.feasible, ev.violations
        assert ev.total_time_s == pytest.approx(info["objective_s"], rel=1e-6)
        assert ev.total_time_s >= bound * (1 - 1e-9)
        assert ev.total_time_s >= best.best_time_s * (1 - 1e-9)
        assert 0 <= info["fixed"] <= info["items"] <= info["columns"]
        if start is best.best_schedule and not info["fixed"]:
            # every path free and the optimum's among them: the MIP finds the optimum
            assert ev.total_time_s == pytest.approx(best.best_time_s, rel=1e-6)


def test_on_high_turnover_drift_it_beats_its_start():
    inst = drift_instance(blocks=48, steps=24, sparsity=0.9, persistence=0.5, seed=1)
    bound, master = _master(inst)
    assert master.converged
    start = trivial_schedule(inst)
    info: dict = {}
    sched = columns_schedule(inst, master, start, deadline=60.0, info=info)
    T = evaluate(inst, sched).total_time_s
    assert T < evaluate(inst, start).total_time_s
    assert info["fixed"] > 0                     # the LP leaves most items unsplit
    milp = solve(inst, "milp", time_limit_s=120)
    assert milp.status == "optimal"
    assert T >= milp.total_time_s * (1 - 1e-9)
    assert T <= 1.10 * milp.total_time_s         # measured: within a few per cent


def test_no_time_gives_nothing_or_a_feasible_schedule():
    inst = drift_instance(blocks=48, steps=24, sparsity=0.9, persistence=0.5, seed=1)
    _, master = _master(inst)
    info: dict = {}
    sched = columns_schedule(inst, master, None, deadline=0.0, info=info)
    assert sched is None or evaluate(inst, sched).feasible
    assert sched is not None or "skipped" in info or info["mip_status"] != "Optimal"


def test_without_an_incumbent_pinned_items_keep_their_tier():
    inst = random_instance(4, num_tiers=2, mode="exclusive")
    _, master = _master(inst)
    sched = columns_schedule(inst, master, None, deadline=30.0)
    assert sched is not None and evaluate(inst, sched).feasible


def test_auto_runs_the_columns_before_a_heavy_milp(monkeypatch):
    from hetkv_opt.methods import auto
    monkeypatch.setattr(auto, "COLUMNS_BEFORE_MILP_ROOT_SHARE", 0.0)   # every MILP heavy
    inst = drift_instance(blocks=48, steps=24, sparsity=0.9, persistence=0.5, seed=1)
    res = solve(inst, "auto", time_limit_s=40)
    phases = res.details["phases"]
    names = [ph["phase"] for ph in phases]
    assert res.status in ("optimal", "feasible")
    assert evaluate(inst, res.schedule).total_time_s == res.total_time_s
    dw = [ph for ph in phases if ph.get("stage") == "dw"]
    assert len(dw) == 1 and dw[0]["dw_converged"]
    cols = [ph for ph in phases if ph["phase"] == "columns"]
    assert len(cols) == 1 and cols[0]["fixed"] > 0 and "mip_status" in cols[0]
    assert names.index("columns") < names.index("milp")
    assert res.details["bounds_s"]["lagrangian"] <= res.bound_s * (1 + 1e-12)


def test_auto_runs_the_columns_on_the_scale_path(monkeypatch):
    from hetkv_opt.methods import auto
    monkeypatch.setattr(auto, "MILP_ITEM_EPOCHS", 0)             # no MILP: the scale path
    inst = drift_instance(blocks=48, steps=24, sparsity=0.9, persistence=0.5, seed=1)
    res = solve(inst, "auto", time_limit_s=30)
    names = [ph["phase"] for ph in res.details["phases"]]
    assert "columns" in names and names.index("columns") > names.index("polish")
    assert evaluate(inst, res.schedule).feasible


# --- windows of epochs (window_columns) ---------------------------------------------

def test_pick_window_is_the_heaviest_window_within_the_budget():
    import numpy as np
    from hetkv_opt.methods.columns import pick_window
    rng = np.random.default_rng(0)
    for _ in range(200):
        E = int(rng.integers(1, 12))
        weight = rng.uniform(0, 1, E) * (rng.uniform(0, 1, E) < 0.7)
        size = rng.integers(1, 6, E)
        budget = int(rng.integers(1, 15))
        got = pick_window(weight, size, budget)
        best, where = 0.0, None
        for a in range(E):
            for b in range(a + 1, E + 1):
                if b > a + 1 and size[a:b].sum() > budget:
                    continue
                if weight[a:b].sum() > best + 1e-12:
                    best, where = weight[a:b].sum(), (a, b)
        if where is None:
            assert got is None
        else:
            a, b = got
            assert weight[a:b].sum() == pytest.approx(best)
            assert b == a + 1 or size[a:b].sum() <= budget


def test_free_item_epochs_per_epoch_counts_alive_unpinned_items():
    import numpy as np
    from hetkv_opt.methods.columns import free_item_epochs_per_epoch
    for seed in range(5):
        inst = random_instance(seed, num_tiers=2, mode="exclusive")
        e = np.arange(inst.num_epochs)
        alive = (e[None, :] >= inst.birth[:, None]) & (e[None, :] < inst.death[:, None])
        want = (alive & (inst.pinned_tier[:, None] < 0)).sum(axis=0)
        assert free_item_epochs_per_epoch(inst).tolist() == want.tolist()


@pytest.mark.parametrize("seed", [1, 3])
def test_windows_stitch_feasible_schedules_and_never_lose(seed):
    # small windows so that many items cross a window's end: the copy out of the window
    # must be charged to its last epoch (without it, stitched schedules overflow HBM)
    from hetkv_opt.methods.columns import window_columns
    inst = drift_instance(blocks=64, steps=32, sparsity=0.9, persistence=0.5, seed=seed)
    start = solve(inst, "flow", time_limit_s=30).schedule
    T0 = evaluate(inst, start).total_time_s
    seen: list = []
    info: dict = {}
    best = window_columns(inst, start, deadline=60.0, window_item_epochs=300, info=info,
                          on_better=lambda s, T: seen.append(T))
    ev = evaluate(inst, best)
    assert ev.feasible
    assert ev.total_time_s <= T0
    answered = [w for w in info["windows"] if "mip_status" in w and "T" in w]
    assert answered, info
    assert all(w["T"] is not None for w in answered), info["windows"]
    assert info["improved"] >= 1 and ev.total_time_s < T0      # measured: it gains here
    assert seen == sorted(seen, reverse=True) and seen[-1] == pytest.approx(ev.total_time_s)
    for w in info["windows"]:
        a, b = w["epochs"]
        assert 0 <= a < b <= inst.num_epochs


def test_windows_with_no_time_return_the_incumbent():
    from hetkv_opt.methods.columns import window_columns
    inst = drift_instance(blocks=48, steps=24, sparsity=0.9, persistence=0.5, seed=1)
    start = trivial_schedule(inst)
    assert window_columns(inst, start, deadline=0.0) is start


def test_auto_runs_the_windows_on_the_scale_path(monkeypatch):
    from hetkv_opt.methods import auto
    monkeypatch.setattr(auto, "MILP_ITEM_EPOCHS", 0)             # no MILP: the scale path
    monkeypatch.setattr(auto, "COLUMNS_MAX_ITEM_EPOCHS", 0)      # no master of the whole
    monkeypatch.setattr(auto, "WINDOW_ITEM_EPOCHS", 300)
    monkeypatch.setattr("hetkv_opt.methods.columns.WINDOW_ITEM_EPOCHS", 300)
    inst = drift_instance(blocks=64, steps=32, sparsity=0.9, persistence=0.5, seed=1)
    res = solve(inst, "auto", time_limit_s=40)
    phases = res.details["phases"]
    names = [ph["phase"] for ph in phases]
    assert "windows" in names and "columns" not in names
    win = phases[names.index("windows")]
    assert win["windows"] >= 1 and 0 <= win["improved"] <= win["windows"]
    assert evaluate(inst, res.schedule).total_time_s == res.total_time_s


@pytest.mark.parametrize("seed", [1, 2])
def test_windows_in_inclusive_mode_stitch_feasible_schedules(seed):
    from hetkv_opt.methods.columns import window_columns
    inst = drift_instance(blocks=64, steps=32, sparsity=0.9, persistence=0.5, seed=seed,
                          mode="inclusive")
    for start in (trivial_schedule(inst), solve(inst, "auto", time_limit_s=3).schedule):
        T0 = evaluate(inst, start).total_time_s
        info: dict = {}
        best = window_columns(inst, start, deadline=30.0, window_item_epochs=300, info=info)
        assert evaluate(inst, best).feasible and evaluate(inst, best).total_time_s <= T0
        assert all(w["T"] is not None for w in info["windows"] if "T" in w), info["windows"]
