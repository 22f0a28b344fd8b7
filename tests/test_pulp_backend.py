"""The PuLP backend builds the same MILP as the highspy backend and solves it to the same
optimum; model export (HiGHS's MPS/LP writer and PuLP's own) round-trips through HiGHS."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from hetkv_opt.milp.highs import new_highs, write_model
from hetkv_opt.model.instance import make_instance, tiny_instance
from hetkv_opt.milp.build import build_model
from hetkv_opt.milp.pulp_backend import (CBC_INSTALL_HINT, _cbc_outcome, _parse_cbc_log,
                                    build_pulp_problem, cbc_available, solve_milp_pulp)
from hetkv_opt.solve import solve
from hetkv_opt.methods.exact import solve_milp
from hetkv_opt.milp.config import SolverConfig, load_preset

pulp = pytest.importorskip("pulp")

HIGHS = SolverConfig(mip_rel_gap=0.0)
PULP_HIGHS = SolverConfig(backend="pulp", pulp_solver="HiGHS", mip_rel_gap=0.0)
PULP_CBC = SolverConfig(backend="pulp", pulp_solver="CBC", mip_rel_gap=0.0)
needs_cbc = pytest.mark.skipif(not cbc_available(), reason=CBC_INSTALL_HINT)

TIERS3 = [{"name": "hbm", "capacity_bytes": 3, "bandwidth_Bps": 4.0},
          {"name": "mid", "capacity_bytes": 4, "bandwidth_Bps": 2.0,
           "link_read_Bps": 1.5, "link_write_Bps": 1.0},
          {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
           "link_read_Bps": 1.0, "link_write_Bps": 0.5}]


def random_instance(seed: int):
    """A tiny random instance: 2-3 tiers, exclusive or inclusive, 2-4 items, 3-4 epochs."""
    rng = np.random.default_rng(seed)
    mode = "inclusive" if seed % 3 == 2 else "exclusive"
    K = 2 if mode == "inclusive" else int(rng.integers(2, 4))
    tiers = [dict(t) for t in (TIERS3[:1] + TIERS3[-1:] if K == 2 else TIERS3)]
    phased = seed % 2 == 1     # item i is hot in the epochs of its phase: moves pay off
    tiers[0]["capacity_bytes"] = int(rng.integers(3, 6) if phased else rng.integers(2, 5))
    N, E = int(rng.integers(2, 5)), int(rng.integers(3, 5))
    size = rng.integers(1, 4, N)
    birth = rng.integers(0, 2, N)
    death = np.minimum(E, birth + rng.integers(2, E + 1, N))
    pinned = np.full(N, -1)
    initial = np.full(N, -1)
    if N >= 3 and rng.random() < 0.6:      # pin one item to the last (unbounded) tier
        pinned[int(rng.integers(N))] = K - 1
    if rng.random() < 0.4:
        free = np.flatnonzero(pinned < 0)
        initial[int(rng.choice(free))] = K - 1
    reads = ([], [], [])
    writes = ([], [], [])
    for i in range(N):
        for e in range(int(birth[i]), int(death[i])):
            p_read = (0.9 if (i + e // 2) % 2 == 0 else 0.1) if phased else 0.7
            if rng.random() < p_read:
                nbytes = int(size[i]) if phased else int(rng.integers(1, size[i] + 1))
                for lst, v in zip(reads, (e, i, nbytes)):
                    lst.append(v)
            if rng.random() < 0.25:
                for lst, v in zip(writes, (e, i, 1)):
                    lst.append(v)
    if phased:                 # a compute floor leaves room to copy during the epoch
        min_time = (0.5 + rng.random(E)).tolist()
    else:
        min_time = (rng.random(E) * 1.5).tolist() if rng.random() < 0.4 else None
    return make_instance(name=f"rand{seed}", tiers=tiers, size_bytes=size.tolist(),
                         num_epochs=E, birth=birth.tolist(), death=death.tolist(),
                         pinned_tier=pinned.tolist(), initial_tier=initial.tolist(),
                         min_time_s=min_time, reads=reads, writes=writes, mode=mode)


# seeds 0-9, and five whose optimal schedule moves an item (inclusive, exclusive with 3
# and 2 tiers): moves are rare at this size, since a copy occupies both tiers
SEEDS = list(range(10)) + [14, 20, 22, 33, 42]


@pytest.fixture(scope="module")
def highs_results():
    """The highspy backend's answer for every seed (solved once)."""
    return {s: solve_milp(random_instance(s), config=HIGHS) for s in SEEDS}


def test_random_instances_cover_the_cases(highs_results):
    insts = [random_instance(s) for s in SEEDS]
    assert {i.mode for i in insts} == {"exclusive", "inclusive"}
    assert {i.num_tiers for i in insts if i.mode == "exclusive"} == {2, 3}
    assert any((i.pinned_tier >= 0).any() for i in insts)
    assert any((i.initial_tier >= 0).any() for i in insts)
    assert any(i.write_bytes.size for i in insts)
    moved = {(i.mode, i.num_tiers) for i, s in zip(insts, SEEDS)
             if highs_results[s].evaluation.num_moves > 0}
    assert moved == {("inclusive", 2), ("exclusive", 2), ("exclusive", 3)}


@pytest.mark.parametrize("seed", SEEDS)
def test_pulp_highs_matches_highspy(seed, highs_results):
    inst = random_instance(seed)
    ref = highs_results[seed]
    res = solve_milp(inst, config=PULP_HIGHS)        # through solve_milp's pulp branch
    assert res.status == ref.status
    assert res.details["milp"]["backend"] == "pulp"
    if ref.status == "optimal":
        assert res.total_time_s == pytest.approx(ref.total_time_s, rel=1e-6, abs=1e-12)
        assert res.bound_s <= res.total_time_s * (1 + 1e-9)
        assert res.bound_method in ("milp", "aggregate", "per_epoch")


@needs_cbc
@pytest.mark.parametrize("seed", SEEDS)
def test_pulp_cbc_matches_highspy(seed, highs_results):
    inst = random_instance(seed)
    ref = highs_results[seed]
    res = solve_milp_pulp(inst, config=PULP_CBC)
    assert res.status == ref.status
    if ref.status == "optimal":
        assert res.total_time_s == pytest.approx(ref.total_time_s, rel=1e-6, abs=1e-12)
        assert res.bound_s <= res.total_time_s * (1 + 1e-9)


def test_cbc_missing_is_one_clear_line(monkeypatch):
    import hetkv_opt.milp.pulp_backend as pb
    monkeypatch.setattr(pb, "cbc_path", lambda: None)
    with pytest.raises(RuntimeError, match=r"pip install 'pulp\[cbc\]'") as err:
        pb.solve_milp_pulp(tiny_instance(), config=PULP_CBC)
    assert "\n" not in str(err.value)


def test_presets_route_to_the_pulp_backend():
    res = solve(tiny_instance(), "milp", config=load_preset("pulp-highs"))
    assert (res.status, res.total_time_s) == ("optimal", pytest.approx(2.0))
    assert res.details["milp"]["pulp_solver"] == "HiGHS"
    assert load_preset("cbc").pulp_solver == "CBC"
    assert load_preset("exact").mip_rel_gap == 0.0
    assert load_preset("ipm-lp").lp_method == "ipm"
    assert load_preset("fast").highs


def test_infeasible_agrees():
    """Passes the capacity precheck, but both items must start in a 2-byte HBM."""
    inst = make_instance(name="inf", tiers=[
        {"name": "hbm", "capacity_bytes": 2, "bandwidth_Bps": 2.0},
        {"name": "dram", "capacity_bytes": 10, "bandwidth_Bps": 1.0}],
        size_bytes=[2, 1], num_epochs=2, initial_tier=[0, 0], reads=([0], [0], [1]))
    assert solve_milp(inst, config=HIGHS).status == "infeasible"
    assert solve_milp_pulp(inst, config=PULP_HIGHS).status == "infeasible"
    if cbc_available():
        assert solve_milp_pulp(inst, config=PULP_CBC).status == "infeasible"


def test_stopped_with_incumbent_is_feasible_not_optimal():
    """HiGHS stops at its first improving solution (kSolutionLimit): an incumbent, no proof."""
    inst = random_instance(4)
    cfg = PULP_HIGHS.replace(highs={"mip_max_improving_sols": 1, "presolve": "off",
                                    "mip_heuristic_effort": 0.0})
    res = solve_milp_pulp(inst, config=cfg)
    if res.details["milp"]["highs_status"] == "Optimal":
        pytest.skip("HiGHS proved optimality before its first improving solution")
    assert res.status == "feasible"
    assert res.schedule is not None


def test_cbc_status_words_are_honest():
    """PuLP maps a CBC time-limit stop with an incumbent to LpStatusOptimal; we do not."""
    class FakeProb:
        status = pulp.LpStatusOptimal
        sol_status = pulp.LpSolutionIntegerFeasible
        objective = None
    log = ("Result - Stopped on time limit\n\nObjective value:                103.15405046\n"
           "Lower bound:                    99.521\nGap:                            0.04\n"
           "Enumerated nodes:               7\n")
    word, _, bound, extra, have_primal = _cbc_outcome(FakeProb(), pulp, log, 0.0, True)
    assert (word, have_primal, extra["mip_nodes"]) == ("feasible", True, 7)
    assert bound == pytest.approx(99.520) and bound < 99.521   # printed digits rounded down
    FakeProb.status, FakeProb.sol_status = pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound
    word, *_ = _cbc_outcome(FakeProb(), pulp, log, 0.0, True)
    assert word == "time_limit_no_solution"
    assert _parse_cbc_log("") == {}


def test_solves_are_silent_and_use_no_deprecated_pulp_api(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        solve_milp_pulp(tiny_instance(), config=PULP_HIGHS)
        if cbc_available():
            solve_milp_pulp(tiny_instance(), config=PULP_CBC)
    out, _ = capfd.readouterr()
    assert out == ""


def test_bad_highs_option_is_refused():
    with pytest.raises(ValueError, match="no_such_option"):
        solve_milp_pulp(tiny_instance(), config=PULP_HIGHS.replace(highs={"no_such_option": 1}))


# ------------------------------------------------------------------------ export
def _read_back(path):
    h = new_highs()
    status = h.readModel(str(path))
    assert status.name == "kOk" if hasattr(status, "name") else True, status
    return h


def _solve_read_back(h):
    h.run()
    assert h.modelStatusToString(h.getModelStatus()) == "Optimal"
    return h.getInfo().objective_function_value


EXPORT_SEEDS = [0, 2, 5]   # exclusive 2 or 3 tiers, inclusive


@pytest.mark.parametrize("seed", EXPORT_SEEDS)
@pytest.mark.parametrize("suffix", ["mps", "lp"])
def test_write_model_round_trips(seed, suffix, tmp_path, highs_results):
    inst = random_instance(seed)
    model = build_model(inst)
    path = tmp_path / f"m.{suffix}"
    write_model(model, str(path))
    h = _read_back(path)
    lp = h.getLp()
    assert (lp.num_col_, lp.num_row_) == (model.num_col, model.num_row)
    ref = highs_results[seed]
    assert ref.status == "optimal"
    assert _solve_read_back(h) * model.t0_s == pytest.approx(ref.total_time_s, rel=1e-6)
    if suffix == "mps":   # MPS keeps the model's names
        names = set(lp.col_names_)
        assert set(model.col_names()) == names
        assert "tau[2]" in names
        x = "x[0,1]" if inst.mode == "inclusive" else "x[0,1,0]"
        free0 = inst.pinned_tier[0] < 0 and inst.birth[0] <= 1 < inst.death[0]
        assert (x in names) == bool(free0)
        assert set(model.row_names()) == set(lp.row_names_)


def test_write_model_lp_keeps_names(tmp_path):
    model = build_model(tiny_instance())
    path = tmp_path / "m.lp"
    write_model(model, str(path))
    names = _read_back(path).getLp().col_names_
    # HiGHS's LP writer drops every name holding '[' or ']': write_model writes x(0,1,0)
    assert "tau(0)" in names and "x(0,0,0)" in names


@pytest.mark.parametrize("seed", EXPORT_SEEDS)
def test_pulp_problem_matches_model_and_writes_mps_lp(seed, tmp_path, highs_results):
    inst = random_instance(seed)
    model = build_model(inst)
    pp = build_pulp_problem(model)
    assert len(pp.variables) == model.num_col
    assert len(pp.constraints) == model.num_row
    assert pp.prob.numVariables() == model.num_col
    assert pp.prob.numConstraints() == model.num_row
    assert sum(v.cat == pulp.LpInteger for v in pp.variables) == int(model.integrality.sum())
    # names: the model's, with PuLP's substitution of '[', ']' by '_'
    assert [v.name for v in pp.variables] == [
        n.replace("[", "_").replace("]", "_") for n in model.col_names()]
    assert "tau_2_" in {v.name for v in pp.variables}
    # the coefficients are the model's (CSR transpose done right)
    dense = np.zeros((model.num_row, model.num_col))
    for j in range(model.num_col):
        s, e = model.a_start[j], model.a_start[j + 1]
        dense[model.a_index[s:e], j] = model.a_value[s:e]
    index = {id(v): j for j, v in enumerate(pp.variables)}
    for r, con in enumerate(pp.constraints):
        row = np.zeros(model.num_col)
        for v, c in con.items():
            row[index[id(v)]] = c
        np.testing.assert_array_equal(row, dense[r])
    ref = highs_results[seed].total_time_s
    for suffix, writer in (("mps", pp.prob.writeMPS), ("lp", pp.prob.writeLP)):
        path = tmp_path / f"p.{suffix}"
        writer(str(path))
        h = _read_back(path)
        lp = h.getLp()
        assert (lp.num_col_, lp.num_row_) == (model.num_col, model.num_row)
        assert "tau_2_" in set(lp.col_names_)
        assert _solve_read_back(h) * model.t0_s == pytest.approx(ref, rel=1e-6)


def test_fixed_integer_columns_keep_their_bounds():
    """An initial tier fixes x at birth: LpBinary would reset the bounds to 0..1."""
    inst = make_instance(name="init", tiers=TIERS3[:1] + TIERS3[-1:], size_bytes=[1, 1],
                         num_epochs=2, initial_tier=[1, 0], reads=([0, 1], [0, 1], [1, 1]))
    model = build_model(inst)
    pp = build_pulp_problem(model)
    names = model.col_names()
    v0 = pp.variables[names.index("x[0,0,0]")]
    v1 = pp.variables[names.index("x[1,0,0]")]
    assert (v0.lowBound, v0.upBound) == (0.0, 0.0)
    assert (v1.lowBound, v1.upBound) == (1.0, 1.0)
    assert math.isclose(solve_milp_pulp(inst, config=PULP_HIGHS).total_time_s,
                        solve_milp(inst, config=HIGHS).total_time_s, rel_tol=1e-6)
