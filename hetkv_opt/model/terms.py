"""Terms of the model that every method shares: the time terms of an epoch, the capacity
rooms, the per-epoch rounding cut, and the capacity-blind aggregate bound.

Used by the MILP (:mod:`hetkv_opt.milp.build`), the Lagrangian bound
(:mod:`hetkv_opt.bounds.lagrangian`) and the flow heuristic (:mod:`hetkv_opt.methods.flow`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hetkv_opt.model.instance import Instance


def aggregate_bound_s(instance: Instance) -> float:
    """The paper's aggregate-bandwidth bound (docs/model.md section 5), in seconds.

    ``sum_e max(c_e, reads(e) / sum_k min(bandwidth_k, link_read_k))``: every read served at
    the combined read rate of all tiers, ignoring capacity, writes and copies.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> aggregate_bound_s(tiny_instance())
    1.0
    """
    return aggregate_bound_from(instance.tiers, instance.min_time_s, instance.reads_per_epoch_bytes())


def aggregate_bound_from(tiers, min_time_s: np.ndarray, read_bytes_per_epoch: np.ndarray) -> float:
    """:func:`aggregate_bound_s` from its parts: the tiers, the compute floors and the
    read bytes of every epoch (float64, as :meth:`Instance.reads_per_epoch_bytes` gives
    them), so that a file's summary gives the same number without its read list.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> inst = tiny_instance()
    >>> aggregate_bound_from(inst.tiers, inst.min_time_s, inst.reads_per_epoch_bytes())
    1.0
    """
    rate = sum(t.read_rate_Bps() for t in tiers)
    per_epoch = np.asarray(read_bytes_per_epoch, dtype=np.float64) / rate
    return float(np.maximum(min_time_s, per_epoch).sum())


def time_terms(inst: Instance) -> list[tuple[str, int, float, bool, bool, bool, bool]]:
    """The time rows of every epoch: ``(name, tier, rate_Bps, read, write, copy_in,
    copy_out)``, in the order of docs/model.md section 4 (compute floor excluded).

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> [t[0] for t in time_terms(tiny_instance())]
    ['device[0]', 'device[1]', 'link_read[1]', 'link_write[1]']
    """
    out = []
    for k, t in enumerate(inst.tiers):
        out.append((f"device[{k}]", k, float(t.bandwidth_Bps), True, True, True, True))
        if t.link_read_Bps is not None:
            out.append((f"link_read[{k}]", k, float(t.link_read_Bps), True, False, False, True))
        if t.link_write_Bps is not None:
            out.append((f"link_write[{k}]", k, float(t.link_write_Bps), False, True, True, False))
    return out


def term_names(inst: Instance) -> list[str]:
    """Names of the priced time rows: :func:`time_terms`, then ``cut`` (the rounding cut,
    exclusive mode with two or more tiers); the rows of a Lagrangian certificate's
    ``lambda`` array."""
    names = [t[0] for t in time_terms(inst)]
    if inst.mode == "exclusive" and inst.num_tiers >= 2:
        names.append("cut")
    return names


def capacity_tiers(inst: Instance) -> list[int]:
    """Tiers with a capacity row: bounded, and not tier 1 in inclusive mode (it holds every
    item)."""
    return [k for k, t in enumerate(inst.tiers) if t.capacity_bytes is not None
            and not (inst.mode == "inclusive" and k == 1)]


def free_size_gcd(inst: Instance) -> int:
    """The gcd of the free (unpinned) items' sizes in bytes; 1 without free items."""
    sizes = inst.size_bytes[inst.pinned_tier < 0].astype(np.int64)
    return int(np.gcd.reduce(sizes)) if sizes.size else 1


def bytes_alive(inst: Instance, items: np.ndarray | None = None) -> np.ndarray:
    """Bytes of the given items (default: all) alive at each epoch, shape (E,)."""
    E = inst.num_epochs
    size = inst.size_bytes.astype(float)
    birth, death = inst.birth, inst.death
    if items is not None:
        size, birth, death = size[items], birth[items], death[items]
    alive = np.zeros(E + 1)
    np.add.at(alive, birth, size)
    np.add.at(alive, death, -size)
    return np.cumsum(alive)[:E]


def capacity_rooms(inst: Instance) -> np.ndarray:
    """Bytes each tier of :func:`capacity_tiers` has for free items at each epoch (its
    capacity less the pinned items alive), rounded down to a multiple of
    :func:`free_size_gcd` (only whole items move), shape (C, E).

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> capacity_rooms(tiny_instance()).shape
    (1, 3)
    """
    E = inst.num_epochs
    size = inst.size_bytes.astype(np.int64)
    g = free_size_gcd(inst)
    rooms = []
    for k in capacity_tiers(inst):
        pin = np.flatnonzero(inst.pinned_tier == k)
        d = np.zeros(E + 1, np.int64)
        np.add.at(d, inst.birth[pin], size[pin])
        np.add.at(d, inst.death[pin], -size[pin])
        room = int(inst.tiers[k].capacity_bytes) - np.cumsum(d)[:E]
        rooms.append(np.floor_divide(room, g) * g)
    return np.asarray(rooms, float).reshape(len(rooms), E)


class RoundingCut(NamedTuple):
    """The per-epoch rounding cut ``tau_e >= A_e + B_e X_e`` (X_e: bytes of free items read
    from tier 0 at e), all arrays of shape (E,)."""

    A_s: np.ndarray           # seconds (0 where there is no cut)
    B_s_per_byte: np.ndarray  # seconds per byte of free tier-0 reads (0 where no cut)
    has: np.ndarray           # bool: the epoch has a cut
    step_s: np.ndarray        # f(j + 1) - f(j): seconds per read unit
    unit_bytes: np.ndarray    # the read unit g_e (gcd of the epoch's free reads; 1 if none)


def rounding_cut(inst: Instance) -> RoundingCut:
    """Per epoch the rounding cut and where it exists (exclusive mode, two or more tiers).

    With the free reads of epoch e all multiples of ``g`` bytes, tier 0 serves
    ``R0pin + g n`` bytes for a whole n: tier 0 alone needs ``(R0pin + g n) / bw_0`` and
    the other tiers together at least ``(R - R0pin - g n) / sum_{k>=1} rate_k``, so
    ``tau >= f(n) = max((R0pin + g n)/bw_0, (R - R0pin - g n)/sum_{k>=1} rate_k)``.  f is
    convex, so the chord through the two whole numbers around its kink is below f at
    every whole n: a valid inequality that the LP relaxation does not imply.  The MILP
    adds it as a row; the Lagrangian bound prices it.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> rounding_cut(tiny_instance()).has.shape
    (3,)
    """
    E = inst.num_epochs
    A, B, has = np.zeros(E), np.zeros(E), np.zeros(E, bool)
    if inst.mode != "exclusive" or inst.num_tiers < 2 or inst.read_bytes.size == 0:
        return RoundingCut(A, B, has, np.zeros(E), np.ones(E))
    bw0 = inst.tiers[0].bandwidth_Bps
    rest = sum(t.read_rate_Bps() for t in inst.tiers[1:])
    free_r = inst.pinned_tier[inst.read_item] < 0
    re, rb = inst.read_epoch[free_r], inst.read_bytes[free_r].astype(np.int64)
    g = np.zeros(E, np.int64)
    np.gcd.at(g, re, rb)
    free_bytes = np.bincount(re, weights=rb.astype(float), minlength=E)
    pin0 = inst.pinned_tier[inst.read_item] == 0
    R0pin = np.bincount(inst.read_epoch[pin0], weights=inst.read_bytes[pin0].astype(float),
                        minlength=E)
    R = inst.reads_per_epoch_bytes()
    ok = g > 0
    gf = np.where(ok, g, 1).astype(float)
    n_max = free_bytes / gf
    # the kink: (R0pin + g n)/bw0 = (R - R0pin - g n)/rest
    n_star = (bw0 * (R - R0pin) - rest * R0pin) / (gf * (bw0 + rest))
    j = np.floor(n_star)
    frac = n_star - j
    use = ok & (frac > 1e-9) & (frac < 1 - 1e-9) & (j >= 0) & (j + 1 <= n_max)

    def f(n):
        return np.maximum((R0pin + gf * n) / bw0, (R - R0pin - gf * n) / rest)

    f0, f1 = f(j), f(j + 1)
    slope = f1 - f0
    A = np.where(use, f0 - slope * j, 0.0)
    B = np.where(use, slope / gf, 0.0)
    return RoundingCut(A, B, use, slope, gf)
