"""LP rounding: always a feasible schedule (or None), never better than the optimum."""

from __future__ import annotations

import pytest

from hetkv_opt.testing import brute_force  # noqa: E402
from hetkv_opt.testing import random_instance  # noqa: E402

from hetkv_opt.model.evaluate import evaluate  # noqa: E402
from hetkv_opt.workloads.drift import drift_instance  # noqa: E402
from hetkv_opt.milp.highs import run_highs  # noqa: E402
from hetkv_opt.milp.build import build_model  # noqa: E402
from hetkv_opt.methods.rounding import round_lp_solution  # noqa: E402
from hetkv_opt.solve import solve  # noqa: E402
from hetkv_opt.methods.exact import solve_lp


@pytest.mark.parametrize("seed", range(0, 120, 3))
def test_rounded_schedules_are_feasible_and_not_below_the_optimum(seed):
    inst = random_instance(seed)
    model = build_model(inst, count_vars=False)
    raw = run_highs(model, relax=True)
    if raw.x is None:
        return
    sched = round_lp_solution(model, raw.x)
    if sched is None:
        return                      # allowed: the greedy repair may give up
    ev = evaluate(inst, sched)
    assert ev.feasible, ev.violations
    best = brute_force(inst).best_time_s
    assert best is not None and ev.total_time_s >= best * (1 - 1e-9)


def test_rounding_on_a_drift_instance_is_close_to_the_lp_bound():
    inst = drift_instance(blocks=48, steps=24, seed=4)
    out: list = []
    lp = solve_lp(inst, rounding=out)
    assert out and out[0] is not None
    ev = evaluate(inst, out[0])
    assert ev.feasible
    assert lp.bound_s <= ev.total_time_s <= 1.2 * lp.bound_s


def test_auto_uses_the_rounded_schedule_when_time_runs_out():
    inst = drift_instance(blocks=48, steps=24, seed=4)
    res = solve(inst, "auto", time_limit_s=0.2)
    assert res.status in ("optimal", "feasible")
    assert res.total_time_s is not None and res.bound_s <= res.total_time_s


def test_auto_takes_the_scale_path_above_the_threshold(monkeypatch):
    import importlib
    solve_mod = importlib.import_module("hetkv_opt.methods.auto")
    inst = drift_instance(blocks=32, steps=16, seed=1)
    exact = solve(inst, "milp")
    monkeypatch.setattr(solve_mod, "AUTO_MILP_MAX_ITEM_EPOCHS", 10)
    res = solve(inst, "auto", time_limit_s=30)
    assert res.details.get("scale_path") is True
    assert res.status == "feasible" and res.bound_method == "lagrangian"
    assert evaluate(inst, res.schedule).feasible
    # a proof below the optimum, a schedule above it
    assert res.bound_s <= exact.total_time_s * (1 + 1e-9) <= res.total_time_s * (1 + 1e-9)
