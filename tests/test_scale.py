"""Large instances: layer parts, the layers oracle (here and on Dask), the split heuristic,
sparse static schedules, policy runs under a deadline, and the dense-method limit."""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass

import numpy as np
import pytest

from hetkv_opt.bounds.lagrangian import lagrangian_bound
from hetkv_opt.bounds.lagrangian.events import EventOracle
from hetkv_opt.bounds.lagrangian.master import initial_prices
from hetkv_opt.bounds.lagrangian.parts import PartsOracle
from hetkv_opt.bounds.lagrangian.problem import prepare
from hetkv_opt.bounds.lagrangian.verify import verify_bound
from hetkv_opt.methods import starts
from hetkv_opt.methods.split import balanced_placement, solve_split
from hetkv_opt.methods.starts import static_schedule
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.parts import is_layered, split_by_layer
from hetkv_opt.model.schedule import schedule_from_residency
from hetkv_opt.model.terms import aggregate_bound_s
from hetkv_opt.policies import Moves, Policy, PolicyOutOfTime, get_policy, run_policy
from hetkv_opt.deadline import Deadline
from hetkv_opt.solve import solve
from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.workloads.paper import paper_instance


def _paper(layers=4, steps=12, prompt=96, **kw):
    return paper_instance(layers=layers, prompt_tokens=prompt, steps=steps, sparsity=0.6, **kw)


# ------------------------------------------------------------------------------ parts

def test_split_by_layer_partitions_items_reads_and_writes():
    inst = _paper()
    parts = split_by_layer(inst)
    assert [p.layer for p in parts] == [0, 1, 2, 3]
    items = np.concatenate([p.items for p in parts])
    assert np.array_equal(np.sort(items), np.arange(inst.num_items))
    assert sum(p.instance.read_item.size for p in parts) == inst.read_item.size
    assert sum(p.instance.write_item.size for p in parts) == inst.write_item.size
    for p in parts:
        sub = p.instance
        # the part's reads are the whole's reads of its items, renumbered
        mask = np.isin(inst.read_item, p.items)
        assert np.array_equal(sub.read_epoch, inst.read_epoch[mask])
        assert np.array_equal(p.items[sub.read_item], inst.read_item[mask])
        assert np.array_equal(sub.read_bytes, inst.read_bytes[mask])
        assert np.array_equal(sub.size_bytes, inst.size_bytes[p.items])
        assert sub.num_epochs == inst.num_epochs and sub.tiers == inst.tiers


def test_is_layered_tells_layered_instances_from_others():
    assert is_layered(_paper())
    assert not is_layered(drift_instance(blocks=8, steps=6))          # no layer labels
    inst = _paper(layers=2)
    lab = np.array(inst.item_labels["layer"]).copy()
    # relabel one page read in layer 0's epochs as layer 1: epochs now touch two layers
    i = int(inst.read_item[np.flatnonzero(lab[inst.read_item] == 0)[0]])
    lab[i] = 1
    import dataclasses
    mixed = dataclasses.replace(inst, item_labels={**inst.item_labels, "layer": lab})
    assert not is_layered(mixed)


# ------------------------------------------------------------------------------ the layers oracle

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layers_oracle_equals_the_event_oracle(seed):
    inst = _paper(seed=seed)
    p = prepare(inst)
    lam, mu = initial_prices(p)
    rng = np.random.default_rng(seed)
    # prices off the start, with capacity prices, so that paths move
    lam = np.abs(lam + 0.2 * rng.random(lam.shape))
    lam /= np.maximum(lam.sum(axis=0), 1.0)
    mu = mu + rng.random(mu.shape) * 1e-9
    whole = EventOracle(p).evaluate(lam, mu)
    one = PartsOracle(p, inst).evaluate(lam, mu)
    three = PartsOracle(p, inst, groups=3).evaluate(lam, mu)
    assert one.value == pytest.approx(whole.value, rel=1e-12)
    # traffic is whole bytes: the supergradients agree exactly
    assert np.array_equal(one.g_lam, whole.g_lam) and np.array_equal(one.g_mu, whole.g_mu)
    # the grouping changes nothing, bit for bit
    assert one.value == three.value
    assert np.array_equal(one.g_lam, three.g_lam) and np.array_equal(one.g_mu, three.g_mu)


def test_layers_bound_is_a_verified_proof_and_independent_of_groups():
    inst = _paper(layers=3, steps=10)
    b1, c1 = lagrangian_bound(inst, iterations=25, oracle="layers", master="bundle")
    b3, c3 = lagrangian_bound(inst, iterations=25, oracle="layers", master="bundle", groups=3)
    assert c1.metadata["oracle"] == "layers" and c1.metadata["parts"] == 3
    assert b1 == b3
    assert np.array_equal(c1.lam, c3.lam)
    assert verify_bound(inst, c1) == pytest.approx(b1, rel=1e-9)
    assert b1 > aggregate_bound_s(inst) * (1 - 1e-9)


def test_layers_oracle_is_refused_on_an_instance_without_layers():
    with pytest.raises(ValueError, match="layer"):
        lagrangian_bound(drift_instance(blocks=8, steps=6), oracle="layers")


def test_dask_workers_give_the_same_bound_as_one_process():
    distributed = pytest.importorskip("distributed")
    from hetkv_opt.cluster import open_client
    inst = _paper(layers=4, steps=10)
    here, cert_here = lagrangian_bound(inst, iterations=20, oracle="layers", master="bundle",
                                       groups=2)
    with open_client(workers=2) as client:
        assert isinstance(client, distributed.Client)
        there, cert = lagrangian_bound(inst, iterations=20, master="bundle", client=client)
        # a worker lost between calls: its group is rebuilt from the same inputs
        p = prepare(inst)
        lam, mu = initial_prices(p)
        oracle = PartsOracle(p, inst, groups=2, client=client)
        before = oracle.evaluate(lam, mu)
        victim = sorted(client.scheduler_info()["workers"])[0]
        import os
        try:
            client.run(os._exit, 1, workers=[victim])
        except Exception:          # the worker dies before it answers
            pass
        after = oracle.evaluate(lam, mu)
    assert cert.metadata["oracle"] == "layers" and cert.metadata["groups"] == 2
    assert cert.metadata["bytes_per_call"]["sent"] > 0
    assert there == pytest.approx(here, rel=1e-12)
    assert there == here                      # in fact bit for bit
    assert after.value == before.value
    assert np.array_equal(after.g_lam, before.g_lam)


def test_workers_option_is_checked():
    with pytest.raises(ValueError, match="workers"):
        SolverConfig(workers=-1)
    with pytest.raises(ValueError, match="scheduler"):
        SolverConfig(scheduler="localhost:8786")
    with pytest.raises(ValueError, match="not both"):
        SolverConfig(workers=2, scheduler="tcp://localhost:8786")


# ------------------------------------------------------------------------------ split

@pytest.mark.parametrize("inst", [
    _paper(), _paper(layers=2, steps=20, seed=3),
    drift_instance(blocks=24, steps=16, seed=1),
    drift_instance(blocks=24, steps=16, seed=2, hbm_fraction=0.6),
], ids=["paper4", "paper2", "drift", "drift-roomy"])
def test_split_is_feasible_and_its_accounting_is_the_evaluators(inst):
    info = {}
    s = balanced_placement(inst, info=info)
    ev = evaluate(inst, s)
    assert ev.feasible
    assert ev.num_moves == 0 if hasattr(ev, "num_moves") else True
    # its own total (from the loads) is the evaluator's, and it never got worse
    assert info["end_s"] == pytest.approx(ev.total_time_s, rel=1e-12)
    assert info["end_s"] <= info["start_s"]
    # it beats the start it came from: every free item in the last tier
    assert ev.total_time_s <= evaluate(inst, static_schedule(inst, 1)).total_time_s


def test_split_balances_when_capacity_is_loose():
    # everything fits in HBM: the best static split reads both tiers at once
    inst = drift_instance(blocks=40, steps=24, seed=0, hbm_fraction=1.0)
    T_split = evaluate(inst, balanced_placement(inst)).total_time_s
    T_hbm = evaluate(inst, static_schedule(inst, 0)).total_time_s
    assert T_split < T_hbm * 0.97
    res = solve(inst, "split", time_limit_s=10)
    assert res.status == "feasible" and res.total_time_s == pytest.approx(T_split)


def test_split_out_of_scope_is_said():
    inst = drift_instance(blocks=8, steps=6, mode="inclusive")
    info = {}
    assert balanced_placement(inst, info=info) is None
    assert "inclusive" in info["skipped"]
    res = solve_split(inst, time_limit_s=5)
    assert res.status == "bound_only" and "inclusive" in res.message


# ------------------------------------------------------------------------------ sparse starts

@pytest.mark.parametrize("tier", [0, 1])
def test_static_schedule_equals_the_dense_construction(tier):
    for inst in (_paper(), drift_instance(blocks=10, steps=7, seed=4)):
        rho = np.full((inst.num_items, inst.num_epochs), tier, np.int64)
        fixed = inst.pinned_tier >= 0
        rho[fixed] = inst.pinned_tier[fixed, None]
        init = (inst.initial_tier >= 0) & ~fixed
        rho[init] = inst.initial_tier[init, None]
        assert static_schedule(inst, tier).equals(schedule_from_residency(inst, rho))


# ------------------------------------------------------------------------------ policies on a budget

def test_a_policy_run_is_abandoned_when_its_pace_misses_the_deadline():
    inst = drift_instance(blocks=64, steps=400, seed=0)
    with pytest.raises(PolicyOutOfTime) as exc:
        run_policy(inst, get_policy("lru"), deadline=Deadline.of(1e-6))
    assert exc.value.done < inst.num_epochs
    # a policy whose set-up takes longer than its deadline stops after that epoch, not
    # after the first pace check
    @dataclass
    class SlowStart(Policy):
        def decide(self, view):
            if view.epoch == 0:
                time.sleep(0.3)
            return Moves.none(np.full(view.born.size, view.num_tiers - 1, np.int64))
    with pytest.raises(PolicyOutOfTime) as exc:
        run_policy(inst, SlowStart(), deadline=Deadline.of(0.1))
    assert exc.value.done == 1
    # with room to spare the run is the same as without a deadline
    a = run_policy(inst, get_policy("lru")).schedule()
    b = run_policy(inst, get_policy("lru"), deadline=Deadline.of(600)).schedule()
    assert a.equals(b)


# ------------------------------------------------------------------------------ dense limit

def test_dense_methods_refuse_instances_over_the_cell_limit(monkeypatch):
    inst = drift_instance(blocks=32, steps=24, seed=0)
    monkeypatch.setattr(starts, "DENSE_MAX_CELLS", 100)
    res = solve(inst, "flow", time_limit_s=10)
    assert res.status == "bound_only" and "cells" in res.message
    res = solve(inst, "rolling", time_limit_s=10)
    assert res.status == "bound_only" and "cells" in res.message
    res = solve(inst, "auto", time_limit_s=10)
    phases = {p["phase"]: p for p in res.details["phases"]}
    assert res.schedule is not None
    if "flow" in phases:
        assert "cells" in phases["flow"].get("skipped", "")


# ------------------------------------------------------------------------------ by layer

def _sharded(tmp_path, inst):
    from hetkv_opt.io.shards import save_sharded
    path = tmp_path / "inst.hetkv"
    save_sharded(inst, path)
    return path


@pytest.mark.parametrize("kw", [{}, {"hbm_kv_fraction": 0.05}, {"seed": 5, "hbm_kv_fraction": 1.0}],
                         ids=["default", "tight", "roomy"])
def test_by_layer_time_is_the_whole_evaluators(tmp_path, kw):
    from hetkv_opt.io.shards import open_sharded
    from hetkv_opt.methods.by_layer import capacity_shares, solve_by_layer
    from hetkv_opt.model.epoch_bound import per_epoch_bound_s
    from hetkv_opt.result import OPTIMAL_SLACK
    inst = _paper(layers=3, steps=16, **kw)
    path = _sharded(tmp_path, inst)
    res = solve_by_layer(path, time_limit_s=30)
    assert res.status in ("feasible", "optimal") and "by layer" in res.message
    assert (res.status == "optimal") == (res.gap <= OPTIMAL_SLACK)
    whole = evaluate(inst, res.schedule)
    assert whole.feasible
    # the layers' summed traffic, scored once, is the whole evaluator's number exactly
    assert res.total_time_s == whole.total_time_s
    assert np.array_equal(res.evaluation.epoch_time_s, whole.epoch_time_s)
    # the per-epoch bound's parts, summed over the layers, give the whole instance's bound
    got = res.details["bounds_s"]
    assert got["aggregate"] == pytest.approx(aggregate_bound_s(inst), rel=1e-12)
    assert got["per_epoch"] == pytest.approx(per_epoch_bound_s(inst), rel=1e-12)
    assert res.bound_s == max(got.values()) and res.bound_s <= res.total_time_s
    # the shares of a bounded tier never add up to more than it holds
    shares = capacity_shares(open_sharded(path))
    cap = inst.tiers[0].capacity_bytes
    assert sum(v[0] for v in shares.values()) <= cap


def test_by_layer_on_dask_workers_gives_the_same_schedule_and_bound(tmp_path):
    """Two local workers place the layers of a 4-layer instance: where every layer's search
    finishes, the schedule, the time and every bound are those of one process, bit for
    bit; a worker lost mid-run has its layer placed again."""
    pytest.importorskip("distributed")
    from hetkv_opt.cluster import open_client
    from hetkv_opt.methods.by_layer import solve_by_layer
    inst = _paper(layers=4, steps=16, hbm_kv_fraction=0.3)
    path = _sharded(tmp_path, inst)
    here = solve_by_layer(path, time_limit_s=120)
    assert all(r["finished"] for r in here.details["by_layer"]), here.details["by_layer"]
    with open_client(workers=2) as client:
        there = solve_by_layer(path, time_limit_s=120, client=client)
    for a, b in ((here.schedule.item, there.schedule.item), (here.schedule.epoch, there.schedule.epoch),
                 (here.schedule.tier, there.schedule.tier)):
        assert np.array_equal(a, b)
    assert there.total_time_s == here.total_time_s
    assert there.details["bounds_s"] == here.details["bounds_s"]
    assert there.status == here.status
    assert there.details["workers"]["count"] == 2
    assert there.details["workers"]["bytes_received"] > 0
    assert "on 2 Dask workers" in there.message
    assert [r["layer"] for r in there.details["by_layer"]] == [r["layer"] for r in here.details["by_layer"]]


def test_by_layer_retries_a_layer_whose_worker_is_lost(tmp_path, monkeypatch):
    """A worker that dies while it places a layer: Dask runs the task again elsewhere and
    the result is the one of one process."""
    pytest.importorskip("distributed")
    from hetkv_opt.cluster import open_client
    from hetkv_opt.methods import by_layer
    inst = _paper(layers=4, steps=12)
    path = _sharded(tmp_path, inst)
    here = by_layer.solve_by_layer(path, time_limit_s=120)
    flag = tmp_path / "killed-once"

    def place_or_die(source, layer, caps, budget):
        import os
        if layer == 2 and not flag.exists():
            flag.write_text("x")
            os._exit(1)                       # the worker process dies mid-task
        return by_layer.place_layer(source, layer, caps, budget)

    monkeypatch.setattr(by_layer, "place_layer", place_or_die)
    with open_client(workers=2) as client:
        there = by_layer.solve_by_layer(path, time_limit_s=120, client=client)
    assert flag.exists()
    assert np.array_equal(there.schedule.tier, here.schedule.tier)
    assert there.total_time_s == here.total_time_s


def test_solve_picks_by_layer_for_sharded_instances_when_asked(tmp_path):
    from cli_helpers import assert_one_line_error, hetkv
    import json
    inst = _paper(layers=2, steps=8)
    path = _sharded(tmp_path, inst)
    out = tmp_path / "s.json"
    d = json.loads(hetkv("solve", path, "--by-layer", "-t", "20", "-q", "-f", "json",
                         "-o", out).stdout)
    assert d["status"] == "feasible" and d["message"].startswith("by layer")
    from hetkv_opt.io.files import instance_hash, load_schedule
    assert d["instance_sha256"] == instance_hash(inst)
    assert evaluate(inst, load_schedule(out)).total_time_s == pytest.approx(d["total_time_s"],
                                                                            rel=1e-12)
    # small sharded instances are solved whole by default
    d = json.loads(hetkv("solve", path, "-t", "20", "-q", "-f", "json").stdout)
    assert not d["message"].startswith("by layer")
    # an NPZ goes by layer through a temporary sharded copy (removed afterwards)
    npz = tmp_path / "inst.npz"
    from hetkv_opt.io.files import save_instance
    save_instance(inst, npz)
    proc = hetkv("solve", npz, "--by-layer", "-t", "20", "-f", "json")
    d2 = json.loads(proc.stdout)
    assert d2["message"].startswith("by layer") and "shard it by layer" in proc.stderr
    assert d2["instance_sha256"] == instance_hash(inst)
    assert d2["total_time_s"] == pytest.approx(evaluate(inst, load_schedule(out)).total_time_s,
                                               rel=1e-12)
    js = tmp_path / "inst.json"
    save_instance(inst, js)
    assert_one_line_error(hetkv("solve", js, "--by-layer", check_rc=None), "--by-layer")
    assert_one_line_error(hetkv("solve", path, "--by-layer", "-m", "milp", check_rc=None),
                          "--by-layer")


def test_the_bound_reuses_its_prepared_oracle_across_calls():
    inst = _paper(layers=3, steps=10)
    cache: dict = {}
    b1, c1 = lagrangian_bound(inst, iterations=10, oracle="layers", master="bundle", reuse=cache)
    oracle = cache["oracle"]
    assert isinstance(oracle, PartsOracle) and cache["instance"] is inst
    b2, c2 = lagrangian_bound(inst, iterations=10, oracle="layers", master="bundle", reuse=cache,
                              prices=c1)
    assert cache["oracle"] is oracle               # not built again
    assert b2 >= b1 * (1 - 1e-12)                  # warm-started from the first prices
    # another instance gets its own
    other = _paper(layers=2, steps=10)
    lagrangian_bound(other, iterations=5, oracle="layers", master="bundle", reuse=cache)
    assert cache["instance"] is other and cache["oracle"] is not oracle


def test_evaluate_on_a_sharded_folder_goes_by_layer_and_agrees(tmp_path):
    from cli_helpers import assert_one_line_error, hetkv
    import json
    from hetkv_opt.io.files import save_schedule
    from hetkv_opt.methods.by_layer import evaluate_sharded
    from hetkv_opt.methods.split import balanced_placement
    from hetkv_opt.model.schedule import Schedule
    inst = _paper(layers=3, steps=12, hbm_kv_fraction=0.2)
    path = _sharded(tmp_path, inst)
    # a schedule that moves items (so copies land in other layers' epochs)
    rng = np.random.default_rng(0)
    rho = np.full((inst.num_items, inst.num_epochs), 1, np.int64)
    free = np.flatnonzero(inst.pinned_tier < 0)
    for i in rng.choice(free, size=min(6, free.size), replace=False):
        a = int(rng.integers(inst.birth[i], inst.death[i]))
        rho[i, a:a + 5] = 0
    rho[inst.pinned_tier >= 0] = inst.pinned_tier[inst.pinned_tier >= 0, None]
    moving = schedule_from_residency(inst, rho)
    for sched in (moving, balanced_placement(inst)):
        whole = evaluate(inst, sched)
        ev, why = evaluate_sharded(path, sched)
        assert why is None
        assert ev.total_time_s == whole.total_time_s and ev.feasible == whole.feasible
        assert np.array_equal(ev.epoch_time_s, whole.epoch_time_s)
        assert ev.num_moves == whole.num_moves and ev.violations == whole.violations
    f = tmp_path / "s.json"
    save_schedule(moving, f)
    d = json.loads(hetkv("evaluate", path, f, "-f", "json",
                         check_rc=None if not evaluate(inst, moving).feasible else 0).stdout)
    assert d["total_time_s"] == pytest.approx(evaluate(inst, moving).total_time_s, rel=1e-15)
    other = Schedule("someone-else", moving.item, moving.epoch, moving.tier)
    save_schedule(other, f)
    assert_one_line_error(hetkv("evaluate", path, f, check_rc=None), "someone-else")


def test_by_layer_is_the_default_only_for_large_layered_instances(tmp_path, monkeypatch):
    from hetkv_opt.cli import solve as cli_solve
    from hetkv_opt.io.files import save_instance
    from hetkv_opt.methods import by_layer
    monkeypatch.setattr(by_layer, "BY_LAYER_MIN_READS", 10)
    layered = _paper(layers=2, steps=8)
    flat = drift_instance(blocks=16, steps=8, seed=0)
    for inst, want in ((layered, True), (flat, False)):
        npz = tmp_path / f"{inst.name}.npz"
        save_instance(inst, npz)
        assert cli_solve._use_by_layer(npz, "auto", None) is want     # by size and layers
        assert cli_solve._use_by_layer(npz, "milp", None) is False    # auto only
        assert cli_solve._use_by_layer(npz, "auto", False) is False   # --whole
        assert cli_solve._use_by_layer(npz, "auto", True) is True     # --by-layer
    folder = tmp_path / "sharded"
    folder.mkdir()
    path = _sharded(folder, layered)
    assert cli_solve._use_by_layer(path, "auto", None) is True
    monkeypatch.setattr(by_layer, "BY_LAYER_MIN_READS", 10 ** 9)
    assert cli_solve._use_by_layer(path, "auto", None) is False       # small: held whole


def test_a_suite_runs_a_sharded_instance_by_layer_and_resumes(tmp_path, monkeypatch):
    """A suite may list a sharded folder: it is planned from the manifest, auto goes by
    layer where the CLI would, policies load it whole, and a rerun skips every cell."""
    from hetkv_opt.bench.runner import run_suite
    from hetkv_opt.io.files import load_instance
    from hetkv_opt.methods import by_layer
    from hetkv_opt.policies import simulate
    inst = _paper(layers=3, steps=10)
    folder = tmp_path / "inst"
    folder.mkdir()
    path = _sharded(folder, inst)
    suite = tmp_path / "full.toml"
    suite.write_text(textwrap.dedent(f'''
        schema = "hetkv-suite"
        schema_version = 1
        [[instances]]
        name = "p"
        file = "{path}"
        [[methods]]
        method = "policy:static"
        [[methods]]
        method = "auto"
        time_limit_s = 20
    '''))
    monkeypatch.setattr(by_layer, "BY_LAYER_MIN_READS", 10)
    out = tmp_path / "out"
    run = run_suite(suite, out)
    assert run.ran == 2 and not run.errors and not run.failed
    recs = {json.loads(p.read_text())["method"]["label"]: json.loads(p.read_text())
            for p in run.paths}
    auto = recs["auto"]["result"]
    assert auto["details"]["scale_path"] is True and auto["message"].startswith("by layer")
    assert auto["total_time_s"] >= auto["bound_s"] > 0
    static = recs["policy:static"]["result"]
    assert static["total_time_s"] == simulate(load_instance(path), "static").total_time_s
    assert recs["auto"]["instance"]["reads"] == inst.read_item.size
    # what the report groups a generated instance file by
    assert recs["auto"]["instance"]["sparsity"] == 0.6
    from hetkv_opt.bench.report import load_cells, summarize
    _, insts = summarize(load_cells(out)[0])
    assert [i.sparsity for i in insts] == [0.6]
    assert run_suite(suite, out).skipped == 2


def test_the_split_keeps_the_fastest_of_its_starts_even_with_no_time():
    """When tier 0 holds every item, "all in tier 0" (the static schedule) is a start: a
    split stopped at once returns it or something faster, never the slower "all in tier 1"
    (the by-layer path of the paper's workload at 40 % sparsity, starved of time, was 66 %
    slower than static).  The balanced mix of the two ends is faster here, and is the
    answer when the search has no time."""
    import dataclasses
    base = drift_instance(blocks=32, steps=16, seed=1)
    t0 = dataclasses.replace(base.tiers[0], capacity_bytes=int(base.size_bytes.sum()))
    inst = dataclasses.replace(base, tiers=(t0,) + tuple(base.tiers[1:]))
    in0 = evaluate(inst, static_schedule(inst, 0)).total_time_s
    in1 = evaluate(inst, static_schedule(inst, 1)).total_time_s
    assert in0 < in1
    info: dict = {}
    now = balanced_placement(inst, deadline=0.0, info=info)
    assert info["rounds"] == 0
    t_now = evaluate(inst, now).total_time_s
    assert info["start_s"] == pytest.approx(in0, rel=1e-12)      # the search starts at the end
    assert info["answer"] == "balanced" and t_now == pytest.approx(info["balanced_s"], rel=1e-12)
    assert t_now == pytest.approx(info["end_s"], rel=1e-12) and t_now < in0 * (1 - 1e-3)
    # without the balanced start, the faster end
    from hetkv_opt.methods import split
    orig = split._balanced_start
    try:
        split._balanced_start = lambda loads, filled, all0, fixed: np.ones_like(all0)
        ends = balanced_placement(inst, deadline=0.0)
    finally:
        split._balanced_start = orig
    assert evaluate(inst, ends).total_time_s == pytest.approx(in0, rel=1e-12)
    searched = balanced_placement(inst, deadline=30.0)
    assert evaluate(inst, searched).total_time_s <= in0 * (1 + 1e-12)


def test_a_layers_placement_leaves_time_for_the_loading_still_to_come():
    """Loading a layer cannot be stopped, so each layer's placement gets its share of what
    is left once the layers to come have been loaded and scored (as measured so far)."""
    from hetkv_opt.deadline import Deadline
    from hetkv_opt.methods.by_layer import _placement_s
    work = Deadline.of(100.0)
    # 4 layers to go, 10 s each besides placing, 5 s of this one's loading already spent
    assert _placement_s(work, 4, [10.0, 10.0], 5.0) == pytest.approx((100 - 35) / 4, abs=0.1)
    assert _placement_s(work, 4, [40.0], 5.0) == 0.0        # loading alone outlasts it
    assert _placement_s(work, 1, [], 3.0) == pytest.approx(97.0, abs=0.1)
    assert _placement_s(Deadline.of(None), 3, [1.0], 1.0) is None
