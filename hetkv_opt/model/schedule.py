"""Schedules: the residency of every item, stored as a list of changes (docs/model.md section 6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.instance import Instance, ModelError

SCHEMA_SCHEDULE = "hetkv-schedule"


@dataclass(frozen=True, eq=False)
class Schedule:
    """Residency changes, sorted by (item, epoch).

    Each item has one entry at its birth epoch (its initial tier) and one entry per later
    move.  Build from a dense residency matrix with :func:`schedule_from_residency`.

    Attributes
    ----------
    instance : str
        Name of the instance the schedule is for.
    item, epoch, tier : ndarray of int64, shape (M,)
    """

    instance: str
    item: np.ndarray
    epoch: np.ndarray
    tier: np.ndarray

    def __post_init__(self):
        for name in ("item", "epoch", "tier"):
            arr = np.ascontiguousarray(np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if not (self.item.shape == self.epoch.shape == self.tier.shape):
            raise ModelError("moves", "item, epoch and tier have different lengths")

    @property
    def num_entries(self) -> int:
        return int(self.item.shape[0])

    def equals(self, other: "Schedule") -> bool:
        return (isinstance(other, Schedule) and self.instance == other.instance
                and all(np.array_equal(getattr(self, k), getattr(other, k))
                        for k in ("item", "epoch", "tier")))


def schedule_from_residency(instance: Instance, residency: np.ndarray) -> Schedule:
    """Turn a dense residency matrix into a :class:`Schedule`.

    Parameters
    ----------
    instance : Instance
    residency : ndarray of int, shape (N, E)
        ``residency[i, e]`` is the tier of item i at epoch e; entries outside the item's
        life are ignored.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> import numpy as np
    >>> s = schedule_from_residency(tiny_instance(), np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]]))
    >>> s.item.tolist(), s.epoch.tolist(), s.tier.tolist()
    ([0, 1, 2], [0, 0, 1], [0, 1, 0])
    """
    rho = np.asarray(residency, dtype=np.int64)
    N, E = instance.num_items, instance.num_epochs
    if rho.shape != (N, E):
        raise ModelError("residency", f"shape {rho.shape}, expected {(N, E)}")
    e_idx = np.arange(E)
    alive = (e_idx[None, :] >= instance.birth[:, None]) & (e_idx[None, :] < instance.death[:, None])
    first = e_idx[None, :] == instance.birth[:, None]
    prev = np.concatenate([np.full((N, 1), -2, np.int64), rho[:, :-1]], axis=1)
    entry = alive & (first | (rho != prev))
    items, epochs = np.nonzero(entry)  # row-major: sorted by (item, epoch)
    return Schedule(instance=instance.name, item=items, epoch=epochs, tier=rho[items, epochs])


def residency_stretch(instance: Instance, residency: np.ndarray, item: int,
                      epoch: int) -> tuple[int, int]:
    """The epochs ``[a, b]`` around ``epoch`` over which ``item`` stays in the tier it is in
    at ``epoch`` (within its life), for repairs that move a whole stretch at once."""
    k = residency[item, epoch]
    a = b = epoch
    while a - 1 >= instance.birth[item] and residency[item, a - 1] == k:
        a -= 1
    while b + 1 < instance.death[item] and residency[item, b + 1] == k:
        b += 1
    return a, b


def residency_matrix(instance: Instance, schedule: Schedule) -> np.ndarray:
    """Dense residency, shape (N, E), int8; -1 where the item is not alive.

    Assumes a structurally valid schedule (see :func:`check_structure`).
    """
    N, E = instance.num_items, instance.num_epochs
    rho = np.full((N, E), -1, np.int8)
    it, ep, ti = schedule.item, schedule.epoch, schedule.tier
    end = np.empty_like(ep)
    if it.size:
        same_next = np.zeros(it.size, bool)
        same_next[:-1] = it[1:] == it[:-1]
        end[:] = instance.death[it]
        end[:-1][same_next[:-1]] = ep[1:][same_next[:-1]]
    for i, a, b, k in zip(it.tolist(), ep.tolist(), end.tolist(), ti.tolist()):
        rho[i, a:b] = k
    return rho


def check_structure(instance: Instance, schedule: Schedule) -> list[str]:
    """Structural problems of a schedule against an instance, in words (empty = fine).

    Checks order, ranges, one birth entry per item, entries inside the item's life, that
    every later entry changes the tier, pins and initial tiers.
    """
    problems: list[str] = []
    N, K = instance.num_items, instance.num_tiers
    it, ep, ti = schedule.item, schedule.epoch, schedule.tier
    if schedule.instance != instance.name:
        problems.append(f"schedule is for instance '{schedule.instance}', not '{instance.name}'")
    bad = np.flatnonzero((it < 0) | (it >= N))
    if bad.size:
        problems.append(f"entry {bad[0]}: item {it[bad[0]]} outside 0..{N - 1}")
        return problems
    bad = np.flatnonzero((ti < 0) | (ti >= K))
    if bad.size:
        problems.append(f"entry {bad[0]}: tier {ti[bad[0]]} does not exist")
        return problems
    if it.size > 1:
        order_bad = np.flatnonzero((it[1:] < it[:-1]) | ((it[1:] == it[:-1]) & (ep[1:] <= ep[:-1])))
        if order_bad.size:
            k = order_bad[0] + 1
            problems.append(f"entry {k}: not sorted by (item, epoch) or repeated (item {it[k]}, epoch {ep[k]})")
            return problems
    counts = np.bincount(it, minlength=N)
    first_idx = np.concatenate([[0], np.cumsum(counts)[:-1]])
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        problems.append(f"item {missing[0]}: no entry at its birth epoch {instance.birth[missing[0]]}")
        return problems
    bad = np.flatnonzero(ep[first_idx] != instance.birth)
    if bad.size:
        i = bad[0]
        problems.append(f"item {i}: first entry at epoch {ep[first_idx[i]]}, expected its birth epoch {instance.birth[i]}")
    bad = np.flatnonzero(ep >= instance.death[it])
    if bad.size:
        k = bad[0]
        problems.append(f"item {it[k]}: entry at epoch {ep[k]} after its death at {instance.death[it[k]]}")
    if it.size > 1:
        noop = np.flatnonzero((it[1:] == it[:-1]) & (ti[1:] == ti[:-1]))
        if noop.size:
            k = noop[0] + 1
            problems.append(f"item {it[k]}: entry at epoch {ep[k]} does not change its tier")
    pinned = instance.pinned_tier[it]
    bad = np.flatnonzero((pinned >= 0) & (ti != pinned))
    if bad.size:
        k = bad[0]
        problems.append(f"item {it[k]}: pinned to tier {pinned[k]} but placed in tier {ti[k]} at epoch {ep[k]}")
    init = instance.initial_tier
    bad = np.flatnonzero((init >= 0) & (ti[first_idx] != init))
    if bad.size:
        i = bad[0]
        problems.append(f"item {i}: initial tier must be {init[i]}, schedule puts it in {ti[first_idx[i]]}")
    return problems
