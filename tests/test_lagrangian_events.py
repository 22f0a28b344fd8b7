"""The event-compressed Lagrangian oracle (hetkv_opt/bounds/lagrangian/events.py) against the dense
one, two tiers, both modes: the same value L, a valid supergradient (the dense one where
paths are unique), and bounds that the independent verifier accepts and that stay below
the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from hetkv_opt.testing import brute_force, num_candidates  # noqa: E402
from hetkv_opt.testing import random_instance  # noqa: E402

from hetkv_opt.workloads.paper import paper_instance  # noqa: E402
from hetkv_opt.workloads.drift import drift_instance  # noqa: E402
from hetkv_opt.model.instance import make_instance  # noqa: E402
from hetkv_opt.bounds.lagrangian import lagrangian_bound, verify_bound  # noqa: E402
from hetkv_opt.bounds.lagrangian.master import initial_prices as _initial_prices  # noqa: E402
from hetkv_opt.bounds.lagrangian.oracle import evaluate as _evaluate  # noqa: E402
from hetkv_opt.bounds.lagrangian.problem import prepare as _prepare  # noqa: E402
from hetkv_opt.bounds.lagrangian.events import EventOracle, applicable, choose  # noqa: E402
from hetkv_opt.model.feasibility import capacity_precheck  # noqa: E402

REL = 1e-9


def _prices(p, rng, *, generic: bool, mu_scale: float):
    """Admissible prices.  ``generic``: every entry strictly positive and continuous (ties
    between paths have probability zero); else many exact zeros (ties everywhere)."""
    J, E, C = p.J, p.E, len(p.cap_tiers)
    lam = rng.random((J, E)) + (1e-3 if generic else 0.0)
    if not generic:
        lam *= rng.random((J, E)) < 0.6
    lam = lam / np.maximum(lam.sum(axis=0), 1e-12) * rng.uniform(0.2, 1.0, E) * (1 - 1e-12)
    if p.jc is not None:
        lam[p.jc] *= p.cut_has
    mu = rng.random((C, E)) * mu_scale
    if not generic:
        mu *= rng.random((C, E)) < 0.5
    if C and rng.random() < 0.5:           # price spikes: tier 0 unattractive for a while
        for _ in range(3):
            a = int(rng.integers(0, E))
            mu[:, a:a + int(rng.integers(1, max(E // 3, 2)))] += 10 * mu_scale * rng.random()
    return lam, mu


def _check(p, oracle, lam, mu, rng, *, same_gradient: bool, probes: int = 3):
    d = _evaluate(p, lam, mu)
    v = oracle.evaluate(lam, mu)
    assert v.value == pytest.approx(d.value, rel=REL, abs=1e-12)
    if same_gradient:
        np.testing.assert_allclose(v.g_lam, d.g_lam, rtol=1e-9, atol=1e-9)
        room = max(float(np.abs(p.rooms).max(initial=1.0)), 1.0)
        np.testing.assert_allclose(v.g_mu, d.g_mu, rtol=1e-9, atol=1e-9 * room)
    # the supergradient inequality at random other prices
    for _ in range(probes):
        lam2, mu2 = _prices(p, rng, generic=bool(rng.random() < 0.5),
                            mu_scale=float(np.max(mu, initial=0.0)) * 2 + 1e-30)
        L2 = _evaluate(p, lam2, mu2, gradient=False).value
        pred = v.value + float(np.sum(v.g_lam * (lam2 - lam))) + float(np.sum(v.g_mu * (mu2 - mu)))
        scale = abs(L2) + abs(pred) + float(np.sum(np.abs(v.g_mu * mu2))) + 1.0
        assert L2 <= pred + 1e-9 * scale
    return d, v


def _medium_instance(seed: int, layers: int = 3):
    """Two tiers, exclusive; items of 'layer' l read only in epochs of that layer (sparse),
    pinned items with short lives on tier 0 so that its room for free items changes over
    time and sometimes drops below an item's size (bad states); a few initial tiers."""
    rng = np.random.default_rng(seed)
    E = int(rng.integers(20, 70))
    N = int(rng.integers(8, 30))
    sizes = rng.choice([2, 3, 5], N)
    birth = rng.integers(0, E // 2, N)
    death = np.minimum(E, birth + rng.integers(1, E, N))
    pinned = np.where(rng.random(N) < 0.2, 0, -1)
    init = np.where((pinned < 0) & (rng.random(N) < 0.2), rng.integers(0, 2, N), -1)
    layer = rng.integers(0, layers, N)
    re, ri, rb, we, wi, wb = [], [], [], [], [], []
    for i in range(N):
        for e in range(int(birth[i]), int(death[i])):
            if e % layers == layer[i] and rng.random() < 0.4:
                re.append(e), ri.append(i), rb.append(int(rng.integers(1, sizes[i] + 1)))
            if rng.random() < 0.03:
                we.append(e), wi.append(i), wb.append(1)
    occ = np.zeros(E + 1, np.int64)            # bytes pinned to tier 0 per epoch
    pin = pinned == 0
    np.add.at(occ, birth[pin], sizes[pin])
    np.add.at(occ, death[pin], -sizes[pin])
    cap = int(np.cumsum(occ).max()) + int(rng.integers(0, 9))
    tiers = [{"name": "hbm", "capacity_bytes": cap, "bandwidth_Bps": float(rng.choice([2.0, 4.0]))},
             {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0,
              "link_read_Bps": float(rng.choice([1.0, 2.0])), "link_write_Bps": None}]
    return make_instance(name=f"medium{seed}", tiers=tiers, size_bytes=sizes, num_epochs=E,
                         birth=birth, death=death, pinned_tier=pinned, initial_tier=init,
                         min_time_s=rng.choice([0.0, 0.5], E), reads=(re, ri, rb),
                         writes=(we, wi, wb))


def _tiny_two_tier(limit: int = 300):
    """Seeded tiny two-tier instances, both modes."""
    out = []
    for seed in range(limit):
        mode = "inclusive" if seed % 3 == 2 else "exclusive"
        inst = random_instance(seed, mode=mode, num_tiers=2)
        if not capacity_precheck(inst):
            out.append(inst)
    return out


TINY = _tiny_two_tier()


def test_tiny_instances_same_value_and_supergradient():
    rng = np.random.default_rng(11)
    n = 0
    for inst in TINY:
        p = _prepare(inst)
        assert applicable(p) or p.free.size == 0
        if not p.free.size:
            continue
        oracle = EventOracle(p)
        for generic in (True, False):
            lam, mu = _prices(p, rng, generic=generic, mu_scale=float(rng.choice([0.1, 1.0, 10.0])))
            try:
                _evaluate(p, lam, mu, gradient=False)
            except ValueError:       # no placement fits: the event oracle says so too
                with pytest.raises(ValueError, match="infeasible"):
                    oracle.evaluate(lam, mu)
                continue
            _check(p, oracle, lam, mu, rng, same_gradient=generic, probes=2)
            n += 1
    assert n >= 300


@pytest.mark.parametrize("seed", range(12))
def test_medium_instances_with_bad_states_and_spikes(seed):
    inst = _medium_instance(seed)
    p = _prepare(inst)
    oracle = EventOracle(p)
    assert oracle.density < 0.5
    rng = np.random.default_rng(seed)
    checked = 0
    for k in range(6):
        lam, mu = _prices(p, rng, generic=k % 2 == 0, mu_scale=float(rng.choice([0.05, 1.0, 20.0])))
        try:
            _evaluate(p, lam, mu, gradient=False)
        except ValueError:
            with pytest.raises(ValueError, match="infeasible"):
                oracle.evaluate(lam, mu)
            continue
        d, _ = _check(p, oracle, lam, mu, rng, same_gradient=k % 2 == 0)
        checked += 1
    assert checked or capacity_precheck(inst)


def _moves(states):
    prev, cur = states[:, :-1], states[:, 1:]
    return int(np.sum((prev >= 0) & (cur >= 0) & (prev != cur)))


@pytest.mark.parametrize("make", [
    lambda: drift_instance(blocks=40, steps=48, seed=3),
    lambda: drift_instance(blocks=30, steps=40, hbm_fraction=0.05, seed=1),
    lambda: drift_instance(blocks=40, steps=48, mode="inclusive", seed=4),
    lambda: paper_instance(layers=4, prompt_tokens=128, steps=20),
    lambda: paper_instance(layers=8, prompt_tokens=192, steps=24, hbm_kv_fraction=0.1, seed=2),
], ids=["drift", "drift-tight", "drift-inclusive", "paper-L4", "paper-L8-tight"])
def test_generated_instances_same_value_and_gradient(make):
    """Drift (one layer) and multi-layer paper instances with pinned weights; per-byte
    capacity prices from tiny to prohibitive, with spikes: the paths move (the gap
    expansion is exercised) and both oracles agree."""
    inst = make()
    p = _prepare(inst)
    oracle = EventOracle(p)
    rng = np.random.default_rng(5)
    per_byte = 1.0 / float(np.max(np.abs(p.rooms)))
    moved = 0
    for scale in (0.0, 1e-3, 0.1, 1.0, 30.0):
        lam, mu = _prices(p, rng, generic=True, mu_scale=scale * per_byte)
        d, _ = _check(p, oracle, lam, mu, rng, same_gradient=True)
        moved += _moves(d.states)
    lam0, mu0 = _initial_prices(p)
    _check(p, oracle, lam0, mu0, rng, same_gradient=False)
    assert moved > 0


def test_bound_with_the_event_oracle_is_verified_and_below_the_optimum():
    cases = 0
    for inst in TINY[::2]:
        if num_candidates(inst) > 600 or not np.any(inst.pinned_tier < 0):
            continue
        bf = brute_force(inst)
        if bf.best_time_s is None:
            continue
        bound, cert = lagrangian_bound(inst, iterations=15, master="bundle", oracle="events")
        assert cert.metadata["oracle"] == "events"
        assert bound <= bf.best_time_s * (1 + 1e-12) + 1e-15, (inst.name, bound, bf.best_time_s)
        assert verify_bound(inst, cert) == pytest.approx(bound, rel=REL, abs=1e-15)
        cases += 1
    assert cases >= 40
    assert {inst.mode for inst in TINY} == {"exclusive", "inclusive"}


def test_bundle_with_either_oracle_reaches_the_same_bound():
    inst = paper_instance(layers=4, prompt_tokens=64, steps=12)
    out = {}
    for oracle in ("dense", "events"):
        bound, cert = lagrangian_bound(inst, iterations=25, master="bundle", oracle=oracle)
        assert cert.metadata["oracle"] == oracle
        assert verify_bound(inst, cert) == pytest.approx(bound, rel=REL)
        out[oracle] = bound
    # same prices sequence up to ties and rounding: the same bound within a hair
    assert out["events"] == pytest.approx(out["dense"], rel=1e-6)


def test_dispatch():
    sparse = _prepare(paper_instance(layers=16, prompt_tokens=256, steps=48))
    assert int((sparse.death - sparse.birth).sum()) >= 100_000
    assert isinstance(choose(sparse), EventOracle)          # auto: sparse events pay
    dense = _prepare(drift_instance(blocks=400, steps=256, sparsity=0.2))
    assert choose(dense) is None                              # one layer, dense reads
    assert isinstance(choose(dense, force=True), EventOracle)
    three = random_instance(next(s for s in range(100)
                                 if random_instance(s).num_tiers == 3
                                 and np.any(random_instance(s).pinned_tier < 0)))
    assert choose(_prepare(three)) is None
    with pytest.raises(ValueError, match="two tiers"):
        lagrangian_bound(three, iterations=2, master="bundle", oracle="events")
    with pytest.raises(ValueError, match="oracle must be"):
        lagrangian_bound(three, iterations=2, oracle="fast")
    incl = drift_instance(blocks=10, steps=6, mode="inclusive")
    assert choose(_prepare(incl)) is None                    # too small to bother
    assert isinstance(choose(_prepare(incl), force=True), EventOracle)
    # the dw master keeps the dense oracle (it needs the paths)
    bound, cert = lagrangian_bound(paper_instance(layers=2, prompt_tokens=32, steps=4),
                                   iterations=10, master="dw", oracle="events")
    assert cert.metadata["oracle"] == "dense"
