"""Online policies: one shared matrix runs every registered policy through every invariant.

The matrix is built from ``list_policies()`` at collection time, so a policy is checked
the day it is registered.  Invariants: the evaluator finds the schedule feasible, two
runs give the same bytes, the evaluator's time equals the simulator's own accounting,
no policy beats the exact MILP optimum (tiny instances), the oracle flag is right.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
import re
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest

from hetkv_opt.testing import random_instance  # noqa: E402

from hetkv_opt.model.evaluate import evaluate  # noqa: E402
from hetkv_opt.workloads.drift import drift_instance  # noqa: E402
from hetkv_opt.model.instance import make_instance, tiny_instance  # noqa: E402
from hetkv_opt.io.files import load_instance, load_schedule, save_instance  # noqa: E402
from hetkv_opt.model.feasibility import forced_overflow  # noqa: E402
from hetkv_opt.policies import (Decision, Policy, PolicyError, ScoredPolicy, fill_by_score,  # noqa: E402
                                run_policy,
                                get_policy, list_policies, register_policy, simulate,
                                unregister_policy)
from hetkv_opt.model.feasibility import capacity_precheck  # noqa: E402
from hetkv_opt.solve import solve
from hetkv_opt.milp.config import SolverConfig  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.json"
ORACLES = {"belady", "sa-guided", "lookahead", "lookahead-share"}
EXACT = SolverConfig(mip_rel_gap=0.0)


# ----------------------------------------------------------------------------- instances

def three_tier() -> "Instance":  # noqa: F821
    """hbm (bounded) / cxl (bounded, links) / ssd (unbounded, links); births, deaths,
    pins, initial tiers, writes and compute floors."""
    tiers = [{"name": "hbm", "capacity_bytes": 4, "bandwidth_Bps": 8.0},
             {"name": "cxl", "capacity_bytes": 4, "bandwidth_Bps": 2.0,
              "link_read_Bps": 2.0, "link_write_Bps": 1.0},
             {"name": "ssd", "capacity_bytes": None, "bandwidth_Bps": 1.0,
              "link_read_Bps": 1.0, "link_write_Bps": None}]
    return make_instance(
        name="three-tier", tiers=tiers, size_bytes=[2, 1, 1, 2, 1, 1], num_epochs=5,
        birth=[0, 0, 0, 1, 2, 3], death=[5, 3, 5, 5, 5, 5],
        pinned_tier=[-1, 0, -1, -1, -1, 2], initial_tier=[-1, 0, 1, -1, 0, 2],
        min_time_s=[0, 0.25, 0, 0, 0.5],
        reads=([0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 4], [0, 2, 1, 3, 0, 4, 3, 4, 5, 0, 2],
               [2, 1, 1, 1, 1, 1, 2, 1, 1, 2, 1]),
        writes=([1, 2, 3], [3, 4, 3], [1, 1, 1]))


def pins_and_layers() -> "Instance":  # noqa: F821
    """Two layers x 4 blocks (labels for page), epochs (step, layer); pins, initial tiers,
    a late-born block pinned to dram, a late-born block that must start in hbm."""
    n = 8
    layer = [0, 1] * 4
    block = [0, 0, 1, 1, 2, 2, 3, 3]
    E = 6
    birth = [0, 0, 0, 0, 0, 0, 2, 4]
    death = [6, 6, 6, 6, 4, 4, 6, 6]
    pinned = [0, -1, -1, -1, -1, -1, 1, -1]
    initial = [0, -1, -1, 1, -1, -1, 1, 0]
    reads = ([], [], [])
    rng = np.random.default_rng(5)
    for e in range(E):
        lay = e % 2
        for i in range(n):
            if layer[i] == lay and birth[i] <= e < death[i] and rng.random() < 0.6:
                for arr, v in zip(reads, (e, i, int(rng.integers(1, 3)))):
                    arr.append(v)
    return make_instance(
        name="pins-layers", size_bytes=[2] * n, num_epochs=E, birth=birth, death=death,
        pinned_tier=pinned, initial_tier=initial, reads=reads,
        writes=([2, 3, 4], [6, 6, 7], [1, 1, 2]),
        tiers=[{"name": "hbm", "capacity_bytes": 7, "bandwidth_Bps": 4.0},
               {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
                "link_read_Bps": 1.0, "link_write_Bps": 2.0}],
        item_labels={"layer": layer, "block": block, "kind": ["kv"] * n},
        epoch_labels={"step": [e // 2 for e in range(E)], "layer": [e % 2 for e in range(E)]})


def pinned_middle() -> "Instance":  # noqa: F821
    """Unbounded tier 0, a small middle tier that a late-born item is pinned to (an
    online policy must keep room there; found by a random sweep)."""
    return make_instance(
        name="pinned-middle", size_bytes=[1, 3, 2], num_epochs=3, birth=[0, 0, 1],
        pinned_tier=[-1, -1, 1], reads=([0, 1, 1], [0, 1, 2], [1, 1, 1]),
        tiers=[{"name": "hbm", "capacity_bytes": None, "bandwidth_Bps": 4.0},
               {"name": "dram", "capacity_bytes": 2, "bandwidth_Bps": 4.0,
                "link_read_Bps": 1.0, "link_write_Bps": 4.0},
               {"name": "ssd", "capacity_bytes": None, "bandwidth_Bps": 4.0}])


def random_ones(count: int, **kw) -> list:
    """Tiny random instances (tests/strategies.py) that an online policy can always
    serve: feasible, and the last tier unbounded (or inclusive mode)."""
    out, seed = [], 0
    while len(out) < count:
        inst = random_instance(seed, **kw)
        seed += 1
        last_open = inst.mode == "inclusive" or inst.tiers[-1].capacity_bytes is None
        if last_open and capacity_precheck(inst) is None and forced_overflow(inst) is None \
                and inst.num_items >= 2 and inst.num_epochs >= 3 \
                and inst.tiers[0].capacity_bytes is not None:
            out.append(inst)
    return out


INSTANCES = {
    "tiny": (tiny_instance, True),
    "drift-12x6": (lambda: drift_instance(blocks=12, steps=6, seed=1), True),
    "drift-inclusive-10x6": (lambda: drift_instance(blocks=10, steps=6, mode="inclusive",
                                                    hbm_fraction=0.4, seed=3), True),
    "drift-48x32": (lambda: drift_instance(blocks=48, steps=32, sparsity=0.5, seed=2), False),
    "drift-inclusive-40x24": (lambda: drift_instance(blocks=40, steps=24, mode="inclusive",
                                                     seed=4), False),
    "three-tier": (three_tier, True),
    "pins-layers": (pins_and_layers, True),
    "pinned-middle": (pinned_middle, True),
}
for _inst in random_ones(6) + random_ones(2, mode="inclusive"):
    INSTANCES[f"random-{_inst.mode}-{_inst.name}"] = (functools.partial(lambda i: i, _inst), True)

POLICIES = [p.name for p in list_policies()]


@functools.lru_cache(maxsize=None)
def instance(name: str):
    return INSTANCES[name][0]()


@functools.lru_cache(maxsize=None)
def optimum(name: str) -> float | None:
    """The exact MILP optimum (tiny instances only)."""
    if not INSTANCES[name][1]:
        return None
    res = solve(instance(name), "milp", time_limit_s=60, config=EXACT)
    assert res.status == "optimal", (name, res.status, res.message)
    return res.total_time_s


# ------------------------------------------------------------------------- the matrix

@pytest.mark.parametrize("inst_name", list(INSTANCES))
@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_keeps_every_invariant(policy, inst_name):
    inst = instance(inst_name)
    res = simulate(inst, get_policy(policy))
    # feasible by the independent evaluator, under the agreed method name
    assert res.status == "feasible", res.message
    assert res.method == f"policy:{policy}"
    ev = evaluate(inst, res.schedule)
    assert ev.feasible, ev.violations
    assert res.total_time_s == ev.total_time_s
    # the evaluator agrees with the simulator's own accounting
    assert math.isclose(res.details["simulated_time_s"], ev.total_time_s, rel_tol=1e-9,
                        abs_tol=1e-15)
    assert res.details["num_moves"] == ev.num_moves
    # deterministic: same schedule, same time
    again = simulate(inst, get_policy(policy))
    assert again.schedule.equals(res.schedule) and again.total_time_s == res.total_time_s
    # bounds hold; no policy beats the optimum
    assert res.bound_method == "aggregate" and res.bound_s <= res.total_time_s * (1 + 1e-9)
    opt = optimum(inst_name)
    if opt is not None:
        assert res.total_time_s >= opt * (1 - 1e-6), (res.total_time_s, opt)
    # oracle flag
    assert res.details["oracle"] is (policy in ORACLES)
    assert res.details["params"] == get_policy(policy).params()
    json.dumps(res.to_dict())


def test_oracles_are_exactly_the_future_readers():
    assert {p.name for p in list_policies() if p.oracle} == ORACLES
    assert {"static", "reactive", "page", "sa-guided", "lru", "lfu", "belady", "ema-score",
            "balance"} <= set(POLICIES)
    for p in list_policies():
        assert p.cls.__doc__ and len(p.cls.__doc__.strip()) > 40, p.name
        assert p.summary


def test_a_better_bound_is_used_and_an_infeasible_instance_says_so():
    inst = tiny_instance()
    res = simulate(inst, "static", bounds={"milp": 2.0})
    assert res.bound_method == "milp" and res.bound_s == 2.0 and res.gap > 0
    bad = make_instance(name="x", tiers=[{"name": "hbm", "capacity_bytes": 1, "bandwidth_Bps": 1.0},
                                         {"name": "dram", "capacity_bytes": 1, "bandwidth_Bps": 1.0}],
                        size_bytes=[1, 1, 1], num_epochs=1)
    res = simulate(bad, "lru")
    assert res.status == "infeasible" and res.schedule is None and "exceed" in res.message
    # two items that must both start in a 1-byte hbm: no policy can help it
    starts = make_instance(name="y", tiers=bad.tiers[:1] + ({"name": "dram", "capacity_bytes": None,
                                                             "bandwidth_Bps": 1.0},),
                           size_bytes=[1, 1], initial_tier=[0, 0], num_epochs=2)
    assert forced_overflow(starts) is not None
    assert solve(starts, "milp").status == "infeasible"
    res = simulate(starts, "static")
    assert res.status == "infeasible" and "items starting there" in res.message


# ------------------------------------------------------------------ specific behaviour

def test_static_never_moves_and_fills_hbm_in_order():
    inst = drift_instance(blocks=20, steps=8, hbm_fraction=0.3, seed=0)
    res = simulate(inst, "static")
    assert res.evaluation.num_moves == 0
    s = res.schedule
    in_hbm = s.item[(s.tier == 0)]
    assert in_hbm.tolist() == list(range(in_hbm.size))   # a prefix of the prompt


def test_fill_share_stops_at_the_ideal_share():
    """With room for everything, the share cap keeps tier 0 near B_0 / sum of rates."""
    inst = drift_instance(blocks=64, steps=32, hbm_fraction=1.0, seed=1)
    shares = {}
    for fill in ("capacity", "share"):
        res = simulate(inst, get_policy("belady", fill=fill))
        shares[fill] = res.evaluation.hbm_read_share
    ideal = 4900 / (4900 + 450)
    assert shares["capacity"] > 0.99
    assert abs(shares["share"] - ideal) < 0.02


def test_page_moves_all_layers_of_a_block_together():
    inst = pins_and_layers()
    res = simulate(inst, "page")
    from hetkv_opt.model.schedule import residency_matrix
    rho = residency_matrix(inst, res.schedule)
    block, pinned = inst.item_labels["block"], inst.pinned_tier
    moves = res.schedule.epoch > inst.birth[res.schedule.item]
    for i, e in zip(res.schedule.item[moves], res.schedule.epoch[moves]):
        mates = np.flatnonzero((block == block[i]) & (pinned < 0) &
                               (inst.birth < e) & (inst.death > e))
        assert len({int(rho[j, e]) for j in mates}) == 1, (i, e)


def test_sa_guided_is_deterministic_by_seed_and_reports_its_tuning():
    inst = drift_instance(blocks=24, steps=16, seed=3)
    a = simulate(inst, get_policy("sa-guided", seed=7, iterations=8))
    b = simulate(inst, get_policy("sa-guided", seed=7, iterations=8))
    assert a.schedule.equals(b.schedule)
    rep = a.details["policy_report"]
    assert {"tuned_window", "tuned_fraction", "tuning_simulations"} <= set(rep)
    untuned = simulate(inst, get_policy("sa-guided", tune=False))
    assert a.total_time_s <= untuned.total_time_s * (1 + 1e-12)   # the start is a candidate


def test_belady_next_read_epoch_matches_brute_force():
    inst = drift_instance(blocks=16, steps=12, sparsity=0.7, seed=9)
    E = inst.num_epochs

    @dataclass
    class Check(ScoredPolicy):
        uses_future = True

        def score(self, view):
            for t in (view.epoch, view.epoch + 1):
                got = view.future.next_read_epoch(t)
                want = np.full(view.num_items, E)
                for e, i in zip(inst.read_epoch[::-1], inst.read_item[::-1]):
                    if e >= t:
                        want[i] = e
                assert np.array_equal(got, want), (view.epoch, t)
            return np.zeros(view.num_items)

    assert simulate(inst, Check()).status == "feasible"


# ------------------------------------------------------------------- the API contract

@dataclass
class Overfill(Policy):
    """Puts everything in tier 0 (deliberately infeasible)."""

    def decide(self, view):
        return Decision(np.zeros(view.num_items, np.int64), np.zeros(view.born.size, np.int64))


def test_an_overfilling_policy_is_refused_with_policy_epoch_and_capacity():
    inst = drift_instance(blocks=16, steps=4, hbm_fraction=0.25)
    with pytest.raises(PolicyError) as exc:
        simulate(inst, Overfill())
    msg = str(exc.value)
    assert re.match(r"policy Overfill, epoch 0: tier hbm would hold [\d.]+ [kMG]?B > [\d.]+ [kMG]?B \(", msg), msg
    assert exc.value.epoch == 0 and exc.value.policy == "Overfill"


def test_copies_occupy_both_tiers_during_the_epoch():
    """A swap in a full tier 0 is infeasible: the incoming copy needs room during e."""
    inst = make_instance(name="swap", size_bytes=[1, 1, 1], num_epochs=2,
                         tiers=[{"name": "hbm", "capacity_bytes": 2, "bandwidth_Bps": 4.0},
                                {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0}],
                         reads=([0, 1], [0, 2], [1, 1]))

    @dataclass
    class Swap(Policy):
        def decide(self, view):
            if view.epoch == 0:
                return Decision(np.array([1, 0, 0]), np.array([0, 0, 1]))
            return Decision(np.asarray(view.residency), np.zeros(0, np.int64))

    with pytest.raises(PolicyError, match=r"policy Swap, epoch 0: tier hbm would hold 3 B > 2 B "
                                          r"\(2 B resident \+ 1 B being copied in\)"):
        simulate(inst, Swap())


def test_pins_initial_tiers_shapes_and_the_future_are_enforced():
    inst = three_tier()

    @dataclass
    class Bad(Policy):
        what: str = "pin-birth"

        def decide(self, view):
            born = np.full(view.born.size, 2, np.int64)
            born[view.forced_birth_tier[view.born] >= 0] = view.forced_birth_tier[view.born][
                view.forced_birth_tier[view.born] >= 0]
            nxt = np.where(np.asarray(view.residency) >= 0, view.residency, 2)
            nxt = np.where(view.pinned_tier >= 0, view.pinned_tier, nxt)
            if self.what == "pin-birth":
                born[:] = 2
            elif self.what == "pin-move":
                nxt = np.full(view.num_items, 2)
            elif self.what == "shape":
                nxt = nxt[:-1]
            elif self.what == "tier":
                nxt = np.full(view.num_items, 7)
            elif self.what == "float":
                nxt = nxt.astype(float)
            elif self.what == "future":
                view.future.reads
            elif self.what == "past":
                view.reads_in(0, view.epoch + 1)
            return Decision(nxt, born)

    cases = {"pin-birth": r"epoch 0: item 1 is pinned to hbm but is placed in tier ssd at birth",
             "pin-move": r"epoch 0: item 1 is pinned to tier hbm but the decision moves it to tier ssd at epoch 1",
             "shape": r"epoch 0: next_tier has shape \(5,\), expected \(6,\)",
             "tier": r"epoch 0: item \d is put in tier 7 for epoch 1, which does not exist",
             "float": r"epoch 0: next_tier must hold integer tiers",
             "future": r"epoch 0: reads view.future but does not declare uses_future = True",
             "past": r"epoch 0: view.reads_in\(..., 1\) reaches into the future"}
    for what, pattern in cases.items():
        with pytest.raises(PolicyError, match="policy Bad, " + pattern):
            simulate(inst, Bad(what=what))
    # an initial tier that is not respected
    @dataclass
    class IgnoreInitial(Policy):
        def decide(self, view):
            born = np.where(view.pinned_tier[view.born] >= 0, view.pinned_tier[view.born], 2)
            nxt = np.where(view.pinned_tier >= 0, view.pinned_tier,
                           np.where(np.asarray(view.residency) >= 0, view.residency, 2))
            return Decision(nxt, born)
    with pytest.raises(PolicyError, match=r"policy IgnoreInitial, epoch 0: item 2 has initial tier cxl but is placed in tier ssd"):
        simulate(inst, IgnoreInitial())


def test_inclusive_demotion_is_free_but_frees_room_only_next_epoch():
    inst = drift_instance(blocks=10, steps=4, mode="inclusive", hbm_fraction=0.2)
    cap_items = inst.tiers[0].capacity_bytes // int(inst.size_bytes[0])

    @dataclass
    class Rotate(Policy):
        def decide(self, view):
            born = np.where(view.born < cap_items, 0, 1)
            nxt = np.ones(view.num_items, np.int64)
            nxt[cap_items:2 * cap_items] = 0        # drop the first copies, copy in others
            return Decision(nxt, born)

    with pytest.raises(PolicyError, match=r"policy Rotate, epoch 0: tier hbm would hold"):
        simulate(inst, Rotate())


def test_a_ten_line_custom_scored_policy():
    @dataclass
    class RecentWrites(ScoredPolicy):
        """Items written most recently first; never read items never come in."""
        horizon: int = 4

        def score(self, view):
            age = view.epoch - np.asarray(view.last_access_epoch, float)
            return np.where(age <= self.horizon, -age, -np.inf)

    inst = drift_instance(blocks=32, steps=16)
    res = simulate(inst, RecentWrites(horizon=2))
    assert res.status == "feasible" and res.method == "policy:RecentWrites"
    assert res.details["params"] == {"fill": "capacity", "horizon": 2}
    register_policy("recent-writes", RecentWrites)
    try:
        assert simulate(inst, get_policy("recent-writes", horizon="2")).total_time_s == res.total_time_s
        assert "recent-writes" in [p.name for p in list_policies()]
    finally:
        unregister_policy("recent-writes")
    assert "recent-writes" not in [p.name for p in list_policies()]


def test_registry_refuses_duplicates_and_bad_parameters():
    @dataclass
    class Other(ScoredPolicy):
        def score(self, view):
            return np.zeros(view.num_items)

    with pytest.raises(ValueError, match="a policy named 'lru' is already registered"):
        register_policy("lru", Other)
    with pytest.raises(ValueError, match="must be a @dataclass subclass of Policy"):
        register_policy("plain", type("Plain", (), {}))
    with pytest.raises(ValueError, match=r"unknown policy 'nope' \(known: .*lru"):
        get_policy("nope")
    with pytest.raises(ValueError, match=r"policy lru: unknown parameter 'decay' \(parameters: fill\)"):
        get_policy("lru", decay=0.5)
    with pytest.raises(ValueError, match=r"policy ema-score: parameter 'decay' must be float"):
        get_policy("ema-score", decay="fast")
    with pytest.raises(ValueError, match=r"policy ema-score: parameter 'decay' must be in \[0, 1\)"):
        get_policy("ema-score", decay=1.5)
    with pytest.raises(ValueError, match=r"policy lru: parameter 'fill' must be one of capacity, share"):
        get_policy("lru", fill="brim")
    with pytest.raises(ValueError, match=r"parameter 'tune' must be bool"):
        get_policy("sa-guided", tune="maybe")
    assert get_policy("sa-guided", tune="false", window="3").params()["window"] == 3


# ----------------------------------------------------------------------------- the CLI

from cli_helpers import assert_one_line_error, hetkv  # noqa: E402


def test_cli_simulate_json_has_the_solve_keys_and_the_schedule_round_trips(tmp_path):
    out = tmp_path / "s.json"
    proc = hetkv("simulate", TINY, "--policy", "sa-guided", "--param", "window=2",
                 "--param", "iterations=4", "--format", "json", "--out", out)
    d = json.loads(proc.stdout)
    keys = set(solve(tiny_instance(), "aggregate").to_dict()) | {"instance_sha256"}
    assert set(d) == keys
    assert d["status"] == "feasible" and d["method"] == "policy:sa-guided"
    assert d["details"]["oracle"] is True and d["details"]["params"]["window"] == 2
    # the default bound is the best proof auto finds (capacity-aware), and it is named
    assert d["details"]["bound_source"]["asked"] == "auto"
    assert d["bound_method"] not in (None, "aggregate") and d["bound_s"] <= d["total_time_s"]
    inst = load_instance(TINY)
    assert evaluate(inst, load_schedule(out)).total_time_s == pytest.approx(d["total_time_s"])
    table = hetkv("simulate", TINY, "-p", "lru").stdout
    assert "policy:lru" in table and "aggregate" in table


def test_cli_simulate_npz_instance(tmp_path):
    path = tmp_path / "d.npz"
    save_instance(drift_instance(blocks=16, steps=8), path)
    d = json.loads(hetkv("simulate", path, "-p", "balance", "-f", "json").stdout)
    assert d["status"] == "feasible" and d["details"]["oracle"] is False


def test_cli_policies_lists_parameters_and_oracles():
    rows = json.loads(hetkv("policies", "--format", "json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == set(POLICIES)
    assert by_name["sa-guided"]["oracle"] and not by_name["lru"]["oracle"]
    assert by_name["sa-guided"]["params"]["window"] == 8
    assert by_name["balance"]["params"]["fill"] == "share"
    table = hetkv("policies").stdout
    assert "belady" in table and "oracle" in table


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    assert_one_line_error(hetkv("simulate", TINY, "-p", "nope", check_rc=None),
                          "unknown policy 'nope'")
    assert_one_line_error(hetkv("simulate", TINY, "-p", "lru", "--param", "x=1", check_rc=None),
                          "policy lru: unknown parameter 'x'")
    assert_one_line_error(hetkv("simulate", TINY, "-p", "ema-score", "--param", "decay", check_rc=None),
                          "expected key=value")
    assert_one_line_error(hetkv("simulate", TINY, "-p", "ema-score", "--param", "decay=2", check_rc=None),
                          "must be in [0, 1)")
    assert_one_line_error(hetkv("simulate", tmp_path / "missing.json", "-p", "lru", check_rc=None))
    prelude = textwrap.dedent("""
        import numpy as np; from dataclasses import dataclass
        from hetkv_opt.policies import Decision, Policy, register_policy
        @register_policy("overfill")
        @dataclass
        class Overfill(Policy):
            def decide(self, view):
                return Decision(np.zeros(view.num_items, np.int64), np.zeros(view.born.size, np.int64))
        """).replace("\n", "\n")
    code_path = tmp_path / "prelude.py"
    code_path.write_text(prelude)
    proc = hetkv("simulate", ROOT / "instances" / "drift-32x16.json", "-p", "overfill",
                 prelude=f"exec(open({str(code_path)!r}).read()); ", check_rc=None)
    assert_one_line_error(proc, "policy overfill, epoch 0: tier hbm would hold")


# --- the engine's incremental state and change-list decisions -------------------------------

def _reserve_ahead_direct(inst, e):
    """reserve_ahead by its definition: max over t > e of what forced items born after e
    need at t (pinned: on [birth, death); initial tier: at birth)."""
    K, E = inst.num_tiers, inst.num_epochs
    need = np.zeros((K, E))
    for i in range(inst.num_items):
        b = int(inst.birth[i])
        if b <= e:
            continue
        if inst.pinned_tier[i] >= 0:
            need[inst.pinned_tier[i], b:inst.death[i]] += inst.size_bytes[i]
        elif inst.initial_tier[i] >= 0:
            need[inst.initial_tier[i], b] += inst.size_bytes[i]
    out = need[:, e + 1:].max(axis=1) if e + 1 < E else np.zeros(K)
    if inst.mode == "inclusive":
        out[1] = 0.0
    return out


def test_reserve_ahead_table_matches_its_definition():
    from hetkv_opt.policies.run import _Run
    checked = 0
    for seed in range(150):
        inst = random_instance(seed, min_pinned=1, min_initial=1)
        run = _Run(inst, get_policy("static"))
        for e in range(inst.num_epochs):
            np.testing.assert_array_equal(run.reserve_ahead(e), _reserve_ahead_direct(inst, e))
            checked += 1
    assert checked > 300


@dataclass
class _AsDecision(Policy):
    """A scored policy's decisions as whole residency arrays (``fill_by_score``), where
    the policy itself hands the simulator change lists (``fill_moves``)."""
    inner: str = "lru"

    def decide(self, view):
        if not hasattr(self, "_p"):
            self._p = get_policy(self.inner)
        p = self._p
        expected = p.expected_reads(view) if p.fill == "share" else None
        dec = fill_by_score(view, p.score(view), fill=p.fill, expected_reads=expected)
        assert isinstance(dec, Decision)
        return dec


@dataclass
class _AsMoves(Policy):
    """The same decisions, handed over as shuffled change lists with no-op entries."""
    inner: str = "lru"

    def decide(self, view):
        from hetkv_opt.policies import Moves
        if not hasattr(self, "_p"):
            self._p = _AsDecision(self.inner)
        next_tier, born_tier = self._p.decide(view)
        cur = np.array(view.residency)
        cur[view.born] = born_tier
        nt = np.asarray(next_tier)
        ch = np.flatnonzero(np.asarray(view.alive_next) & (nt >= 0) & (nt != cur))
        # shuffled, with no-op entries and entries for items not alive at e + 1
        extra = np.flatnonzero(~np.asarray(view.alive_next))[:2]
        same = np.flatnonzero(np.asarray(view.alive_next) & (nt == cur))[:2]
        items = np.concatenate([ch, extra, same])[::-1]
        tiers = np.concatenate([nt[ch], np.zeros(extra.size, np.int64), cur[same]])[::-1]
        return Moves(items, tiers, born_tier)


@pytest.mark.parametrize("inner", ["lru", "reactive", "page", "balance"])
def test_change_lists_give_the_same_schedule_as_full_decisions(inner):
    """The policy's own change lists, the whole arrays of fill_by_score, and those made
    into shuffled change lists: three routes through the simulator, one schedule."""
    moved = 0
    for inst in random_ones(25) + [drift_instance(blocks=40, steps=24, seed=5),
                                   drift_instance(blocks=30, steps=16, mode="inclusive",
                                                  seed=6),
                                   drift_instance(blocks=40, steps=24, seed=7,
                                                  hbm_fraction=0.9)]:
        own = simulate(inst, get_policy(inner))
        full = simulate(inst, _AsDecision(inner))
        moves = simulate(inst, _AsMoves(inner))
        assert moves.status == full.status == own.status == "feasible"
        assert moves.total_time_s == full.total_time_s == own.total_time_s
        for other in (full, moves):
            a, b = own.schedule, other.schedule
            np.testing.assert_array_equal(a.item, b.item)
            np.testing.assert_array_equal(a.epoch, b.epoch)
            np.testing.assert_array_equal(a.tier, b.tier)
        moved += own.details["num_moves"]
    assert moved > 0


@dataclass
class _BadMoves(Policy):
    how: str = "dup"

    def decide(self, view):
        from hetkv_opt.policies import Moves
        born = np.asarray(view.forced_birth_tier)[view.born].copy()
        born[born < 0] = view.num_tiers - 1
        if self.how == "dup":
            return Moves(np.array([0, 0]), np.array([0, 1]), born)
        if self.how == "range":
            return Moves(np.array([view.num_items]), np.array([0]), born)
        if self.how == "float":
            return Moves(np.array([0]), np.array([0.5]), born)
        if self.how == "shape":
            return Moves(np.array([0, 1]), np.array([0]), born)
        if self.how == "tier":
            alive = np.flatnonzero(view.alive_next)
            return Moves(alive[:1], np.array([7]), born)
        pinned = np.flatnonzero((np.asarray(view.pinned_tier) == 0)
                                & np.asarray(view.alive_next))
        return Moves(pinned[:1], np.array([1]), born)


@pytest.mark.parametrize("how, words", [
    ("dup", "lists item 0 twice"), ("range", "which does not exist"),
    ("float", "must hold integers"), ("shape", "1-D arrays of one length"),
    ("tier", "which does not exist (tiers 0..1)"), ("pin", "is pinned to tier")])
def test_bad_change_lists_are_named(how, words):
    inst = make_instance(name="m", size_bytes=[1, 1, 1], num_epochs=3, pinned_tier=[0, -1, -1],
                         reads=([0, 1, 2], [0, 1, 2], [1, 1, 1]),
                         tiers=[{"name": "hbm", "capacity_bytes": 3, "bandwidth_Bps": 4.0},
                                {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0}])
    with pytest.raises(PolicyError, match=re.escape(words)):
        simulate(inst, _BadMoves(how))


def test_prefix_instance_is_the_start_of_the_run():
    from hetkv_opt.model.instance import make_instance as mk
    from hetkv_opt.model.parts import prefix_instance
    from hetkv_opt.workloads.paper import paper_instance
    inst = paper_instance(layers=2, prompt_tokens=64, steps=6, sparsity=0.6)
    stop = 5
    cut = prefix_instance(inst, stop)
    assert cut.num_epochs == stop and cut.death.max() <= stop
    assert cut.read_epoch.max() < stop
    born = np.flatnonzero(inst.birth < stop)
    np.testing.assert_array_equal(cut.size_bytes, inst.size_bytes[born])
    r = inst.read_epoch < stop
    np.testing.assert_array_equal(born[cut.read_item], inst.read_item[r])
    # it passes every check of the model
    again = mk(name=cut.name, mode=cut.mode, tiers=cut.tiers, size_bytes=cut.size_bytes,
               num_epochs=cut.num_epochs, birth=cut.birth, death=cut.death,
               pinned_tier=cut.pinned_tier, initial_tier=cut.initial_tier,
               min_time_s=cut.min_time_s, reads=(cut.read_epoch, cut.read_item, cut.read_bytes),
               writes=(cut.write_epoch, cut.write_item, cut.write_bytes))
    assert again.num_items == born.size
    # an online policy's time on the prefix is its time on the first epochs of the whole
    # run, but for the last one (in the whole run, copies for the next epoch run during it)
    whole = run_policy(inst, get_policy("lru")).epoch_times()
    part = run_policy(cut, get_policy("lru")).epoch_times()
    np.testing.assert_allclose(part[:-1], whole[:stop - 1], rtol=1e-12)
    assert part[-1] <= whole[stop - 1]


def test_sa_guided_tunes_on_the_first_steps_when_asked():
    from hetkv_opt.workloads.paper import paper_instance
    inst = paper_instance(layers=2, prompt_tokens=64, steps=12, sparsity=0.6)
    r = simulate(inst, get_policy("sa-guided", iterations=3, tune_steps=4))
    assert r.status == "feasible"
    assert r.details["policy_report"]["tuned_on_epochs"] == 8       # 4 steps x 2 layers
    with pytest.raises(ValueError, match="tune_steps"):
        get_policy("sa-guided", tune_steps=-1)
