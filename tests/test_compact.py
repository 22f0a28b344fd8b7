"""The compact form of the read and write lists (docs/scale.md, "Compact read lists"):
int32 where the values fit, the same content, the same policy decisions and the same
evaluation as the int64 form; the sharded loader builds it directly; ``solve`` widens
what it is given; values past int32 stay int64."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import hetkv
from hetkv_opt.io.files import instance_hash, load_instance, save_instance
from hetkv_opt.io.shards import save_sharded
from hetkv_opt.methods.starts import placement_schedule
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import (ACCESS_FIELDS, make_instance, narrow_accesses,
                                      tiny_instance, widen_accesses)
from hetkv_opt.policies import simulate
from hetkv_opt.policies.registry import _REGISTRY
from hetkv_opt.solve import solve
from hetkv_opt.workloads.drift import DriftParams, drift_instance
from hetkv_opt.workloads.paper import paper_instance


def _cases():
    return {
        "tiny": tiny_instance(),
        "drift": drift_instance(DriftParams(blocks=24, steps=12, seed=3)),
        "inclusive": drift_instance(DriftParams(blocks=16, steps=8, seed=5,
                                                mode="inclusive")),
        "paper": paper_instance(layers=3, prompt_tokens=48, steps=6),
    }


def _moves(res):
    s = res.schedule
    return None if s is None else (s.item.tolist(), s.epoch.tolist(), s.tier.tolist())


@pytest.mark.parametrize("case", sorted(_cases()))
def test_narrow_is_the_same_content_in_int32(case):
    inst = _cases()[case]
    c = narrow_accesses(inst)
    for name in ACCESS_FIELDS:
        assert getattr(c, name).dtype == np.int32, name
        assert np.array_equal(getattr(c, name), getattr(inst, name)), name
        assert not getattr(c, name).flags.writeable
    assert not c.equals(inst)                   # the dtypes differ ...
    assert widen_accesses(c).equals(inst)       # ... and widening gives the instance back
    assert instance_hash(c) == instance_hash(inst)
    assert np.array_equal(c.reads_per_epoch_bytes(), inst.reads_per_epoch_bytes())
    assert widen_accesses(inst) is inst and narrow_accesses(c) is c


@pytest.mark.parametrize("case", sorted(_cases()))
@pytest.mark.parametrize("policy", sorted(_REGISTRY))
def test_every_policy_decides_the_same_on_the_compact_form(case, policy):
    inst = _cases()[case]
    wide, compact = simulate(inst, policy), simulate(narrow_accesses(inst), policy)
    assert compact.status == wide.status
    assert compact.total_time_s == wide.total_time_s
    assert _moves(compact) == _moves(wide)
    assert compact.details["simulated_time_s"] == wide.details["simulated_time_s"]


def test_views_hand_out_int64_slices():
    from hetkv_opt.policies.run import _Run
    from hetkv_opt.policies.classic import LRU
    inst = narrow_accesses(_cases()["paper"])
    run = _Run(inst, LRU())
    for kind in ("read", "write"):
        acc = run.accesses(kind, 0, inst.num_epochs)
        assert {a.dtype for a in acc} == {np.dtype(np.int64)}
        assert not any(a.flags.writeable for a in acc)
        assert acc.item.size == getattr(inst, f"{kind}_item").size


def test_the_evaluator_does_not_wrap_on_large_items_times_epochs():
    """item x (E + 1) + epoch passes 2**31 here: computed in int32 it wraps, and the
    reads would be charged to the wrong tiers."""
    N, E = 70_000, 40_000
    assert (N - 1) * (E + 1) > np.iinfo(np.int32).max
    items = np.array([3, 17, N - 2, N - 1, N - 1])
    epochs = np.array([5, 100, E - 7, E - 3, E - 1])
    order = np.lexsort((items, epochs))
    inst = make_instance(
        name="wide", tiers=[{"name": "hbm", "capacity_bytes": 10 ** 9, "bandwidth_Bps": 2.0},
                            {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
                             "link_read_Bps": 1.0, "link_write_Bps": 1.0}],
        size_bytes=np.full(N, 8), num_epochs=E,
        reads=(epochs[order], items[order], np.full(5, 8)))
    tier = np.zeros(N, np.int64)
    tier[N // 2:N - 1] = 1                      # the last items in the slow tier but one
    sched = placement_schedule(inst, tier)
    wide, compact = evaluate(inst, sched), evaluate(narrow_accesses(inst), sched)
    assert compact.feasible and wide.feasible
    assert compact.total_time_s == wide.total_time_s
    assert np.array_equal(compact.read_bytes, wide.read_bytes)
    assert compact.read_bytes[1].sum() == 8    # one read of an item in dram (N - 2)


def test_bytes_past_int32_stay_int64(tmp_path):
    big = 3 * 2 ** 30                           # 3 GiB: past int32
    inst = make_instance(
        name="big", tiers=[{"name": "hbm", "capacity_bytes": 2 * big, "bandwidth_Bps": 2.0},
                           {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
                            "link_read_Bps": 1.0, "link_write_Bps": 1.0}],
        size_bytes=[big, 16], num_epochs=3,
        reads=([0, 1, 2], [0, 1, 0], [big, 16, big - 1]),
        item_labels={"layer": [0, 1]})
    c = narrow_accesses(inst)
    assert c.read_bytes.dtype == np.int64 and c.read_item.dtype == np.int32
    path = tmp_path / "big.hetkv"
    save_sharded(inst, path)
    loaded = load_instance(path, compact=True)
    assert loaded.read_bytes.dtype == np.int64 and loaded.read_epoch.dtype == np.int32
    assert widen_accesses(loaded).equals(inst)
    for policy in ("static", "lru", "page"):
        assert simulate(loaded, policy).total_time_s == simulate(inst, policy).total_time_s


@pytest.mark.parametrize("case", ["paper", "drift"])
def test_the_sharded_loader_builds_the_compact_form(tmp_path, case):
    inst = _cases()[case]
    path = tmp_path / "x.hetkv"
    save_sharded(inst, path)
    c = load_instance(path, compact=True)
    assert c.equals(narrow_accesses(inst))
    assert load_instance(path).equals(inst)
    npz = tmp_path / "x.npz"
    save_instance(inst, npz)
    assert load_instance(npz, compact=True).equals(narrow_accesses(inst))


def test_solve_widens_what_it_is_given():
    inst = _cases()["drift"]
    a, b = solve(inst, "milp", time_limit_s=60), solve(narrow_accesses(inst), "milp",
                                                        time_limit_s=60)
    assert a.status == b.status == "optimal"
    assert a.total_time_s == b.total_time_s and a.bound_s == b.bound_s


def test_cli_simulate_on_a_sharded_folder_and_its_npz_agree(tmp_path):
    inst = _cases()["paper"]
    save_sharded(inst, tmp_path / "p.hetkv")
    save_instance(inst, tmp_path / "p.npz")
    out = {}
    for name in ("p.hetkv", "p.npz"):
        r = hetkv("simulate", tmp_path / name, "--policy", "page", "--bound", "lp",
                  "--no-bound-cache", "-f", "json")
        out[name] = json.loads(r.stdout)
    a, b = out["p.hetkv"], out["p.npz"]
    assert a["total_time_s"] == b["total_time_s"] and a["bound_s"] == b["bound_s"]
    assert a["bound_method"] == "lp"
