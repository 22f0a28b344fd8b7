"""Feasibility facts found without a solver: capacity that pins and initial tiers cannot meet.

Every method calls :func:`capacity_precheck` first, so that an instance that has no schedule
is reported ``infeasible`` with the tier and epoch that cannot fit, whatever the method.
"""

from __future__ import annotations

import numpy as np

from hetkv_opt.model.evaluate import format_bytes
from hetkv_opt.model.instance import Instance


def capacity_precheck(inst: Instance) -> str | None:
    """A reason why no schedule can exist, found without a solver (or None).

    Examples
    --------
    >>> from hetkv_opt.model.instance import make_instance
    >>> inst = make_instance(name="x", tiers=[{"name": "hbm", "capacity_bytes": 1,
    ...     "bandwidth_Bps": 1.0}], size_bytes=[2], num_epochs=1)
    >>> capacity_precheck(inst)
    'epoch 0: 2 B of alive items exceed the 1 B of all tiers together'
    """
    E = inst.num_epochs
    size = inst.size_bytes.astype(float)
    caps = [t.capacity_bytes for t in inst.tiers]

    def alive_bytes(mask):
        d = np.zeros(E + 1)
        np.add.at(d, inst.birth[mask], size[mask])
        np.add.at(d, inst.death[mask], -size[mask])
        return np.cumsum(d)[:E]

    for k, t in enumerate(inst.tiers):
        if t.capacity_bytes is None:
            continue
        need = alive_bytes(inst.pinned_tier == k)
        if inst.mode == "inclusive" and k == 1:
            need = alive_bytes(np.ones(inst.num_items, bool))
        over = np.flatnonzero(need > t.capacity_bytes)
        if over.size:
            e = over[0]
            what = "alive items" if inst.mode == "inclusive" and k == 1 else "items pinned to it"
            return (f"epoch {e}: tier {t.name} must hold {format_bytes(need[e])} of {what} "
                    f"> capacity {format_bytes(t.capacity_bytes)}")
    forced = forced_overflow(inst)
    if forced:
        return forced
    if inst.mode == "exclusive" and all(c is not None for c in caps):
        total = alive_bytes(np.ones(inst.num_items, bool))
        over = np.flatnonzero(total > sum(caps))
        if over.size:
            e = over[0]
            return (f"epoch {e}: {format_bytes(total[e])} of alive items exceed the "
                    f"{format_bytes(sum(caps))} of all tiers together")
        biggest = max(caps)
        bad = np.flatnonzero((inst.pinned_tier < 0) & (size > biggest))
        if bad.size:
            i = bad[0]
            return f"item {i} ({format_bytes(size[i])}) fits in no tier"
    init = inst.initial_tier
    for k, t in enumerate(inst.tiers):
        if t.capacity_bytes is None or (inst.mode == "inclusive" and k == 1):
            continue
        bad = np.flatnonzero((init == k) & (size > t.capacity_bytes))
        if bad.size:
            i = bad[0]
            return (f"item {i}: initial tier {t.name} ({format_bytes(t.capacity_bytes)}) is "
                    f"smaller than the item ({format_bytes(size[i])})")
    return None


def forced_overflow(instance: Instance) -> str | None:
    """A proof that no schedule exists, from pins and initial tiers alone (or None).

    At every epoch t a bounded tier k must hold the items pinned to it and alive at t,
    plus the items born at t whose initial tier is k; more than its capacity is
    infeasible whatever the policy does.  (``capacity_precheck`` checks pins only.)

    >>> from hetkv_opt.model.instance import make_instance
    >>> inst = make_instance(name="x", tiers=[{"name": "hbm", "capacity_bytes": 1,
    ...     "bandwidth_Bps": 1.0}, {"name": "dram", "capacity_bytes": None,
    ...     "bandwidth_Bps": 1.0}], size_bytes=[1, 1], initial_tier=[0, 0], num_epochs=1)
    >>> forced_overflow(inst)
    'epoch 0: tier hbm must hold 2 B of pinned items and items starting there > capacity 1 B'
    """
    E, K = instance.num_epochs, instance.num_tiers
    size = instance.size_bytes.astype(float)
    pin, init, birth = instance.pinned_tier, instance.initial_tier, instance.birth
    need = np.zeros((K, E + 1))
    p = pin >= 0
    np.add.at(need, (pin[p], birth[p]), size[p])
    np.add.at(need, (pin[p], instance.death[p]), -size[p])
    need = np.cumsum(need, axis=1)
    q = (pin < 0) & (init >= 0)
    np.add.at(need, (init[q], birth[q]), size[q])
    for k, t in enumerate(instance.tiers):
        if t.capacity_bytes is None or (instance.mode == "inclusive" and k == 1):
            continue
        over = np.flatnonzero(need[k, :E] > t.capacity_bytes)
        if over.size:
            e = over[0]
            return (f"epoch {e}: tier {t.name} must hold {format_bytes(need[k, e])} of pinned "
                    f"items and items starting there > capacity {format_bytes(t.capacity_bytes)}")
    return None


__all__ = ["capacity_precheck", "forced_overflow"]
