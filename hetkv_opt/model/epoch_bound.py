"""The per-epoch bound: every epoch alone at its best split of reads, with the reads whose
tier no schedule can change kept in that tier (docs/model.md section 5, "per_epoch").

The aggregate line lets every read go to whichever tier is free.  Reads of pinned items
cannot: on the paper's workload the weights are pinned in HBM and are 88 % of the read
bytes, so HBM's own time is a floor that no split of the KV pages lowers.  Per epoch e,
with ``F_k`` the read bytes fixed in tier k (pinned items; items with an initial tier, at
their birth epoch), ``D`` all read bytes and ``r_k = min(B_k, L^r_k)``::

    tau(e) >= c_e,  D / sum_k r_k,  F_k / r_k,  (D + W) / sum_k B_k,
              and the fixed writes' device and link terms,
    tau(e) >= min over whole n of max((F_0 + g n) / r_0, (D - F_0 - g n) / sum_{k>=1} r_k)

where g divides every free read of the epoch (the reads tier 0 serves beyond ``F_0`` are a
sum of free reads).  Each line is one of the time terms of docs/model.md section 4 with
some of its bytes left out, so the sum over epochs is below T for every schedule.  Blind
to capacity and copies, like the aggregate line, and never below it.

The parts of the bound are sums (and a gcd) over accesses, so an instance held one layer
at a time gives them layer by layer (:meth:`EpochParts.__add__`).

>>> from hetkv_opt.model.instance import tiny_instance
>>> round(per_epoch_bound_s(tiny_instance()), 12)   # the aggregate line: 1.0; the optimum: 2.0
1.4
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.instance import Instance

#: accesses handled at once (bounds the temporaries at about 40 bytes per access of it)
CHUNK = 1 << 22


@dataclass(frozen=True, eq=False)
class EpochParts:
    """Per epoch: ``reads`` and ``writes`` (all bytes, shape (E,)); ``fixed_reads`` and
    ``fixed_writes`` (bytes whose tier no schedule changes, shape (K, E)); ``free_reads``
    (read bytes of the rest, exclusive mode) and ``free_gcd`` (their gcd, 0 where there
    are none)."""

    reads: np.ndarray
    writes: np.ndarray
    fixed_reads: np.ndarray
    fixed_writes: np.ndarray
    free_reads: np.ndarray
    free_gcd: np.ndarray

    def __add__(self, other: "EpochParts") -> "EpochParts":
        """The parts of two sets of items of one instance (disjoint), together."""
        return EpochParts(self.reads + other.reads, self.writes + other.writes,
                          self.fixed_reads + other.fixed_reads,
                          self.fixed_writes + other.fixed_writes,
                          self.free_reads + other.free_reads,
                          np.gcd(self.free_gcd, other.free_gcd))


def _fixed_tier(inst: Instance, epoch: np.ndarray, item: np.ndarray) -> np.ndarray:
    """The tier each access must use whatever the schedule (-1: the schedule decides).
    Inclusive mode: only an item held in tier 1 alone fixes where its reads come from."""
    t = inst.pinned_tier[item].astype(np.int64)
    init = inst.initial_tier[item]
    at_birth = (t < 0) & (init >= 0) & (epoch == inst.birth[item])
    t = np.where(at_birth, init, t)
    if inst.mode == "inclusive":
        t = np.where(t == 1, 1, -1)
    return t


def _accumulate(inst: Instance, epoch, item, nbytes, fixed: np.ndarray, free=None, gcd=None):
    E = inst.num_epochs
    for lo in range(0, epoch.size, CHUNK):
        e = np.asarray(epoch[lo:lo + CHUNK], dtype=np.int64)
        i = np.asarray(item[lo:lo + CHUNK], dtype=np.int64)
        b = np.asarray(nbytes[lo:lo + CHUNK])
        t = _fixed_tier(inst, e, i)
        bf = b.astype(np.float64)
        for k in range(inst.num_tiers):
            m = t == k
            if m.any():
                fixed[k] += np.bincount(e[m], weights=bf[m], minlength=E)
        if free is not None:
            m = t < 0
            if m.any():
                free += np.bincount(e[m], weights=bf[m], minlength=E)
                np.gcd.at(gcd, e[m], b[m].astype(np.int64))


def epoch_parts(inst: Instance) -> EpochParts:
    """The parts of the per-epoch bound of ``inst`` (or of one layer's part of an instance:
    add the parts of every layer to get the whole's)."""
    E, K = inst.num_epochs, inst.num_tiers
    fr, fw = np.zeros((K, E)), np.zeros((K, E))
    free, gcd = np.zeros(E), np.zeros(E, np.int64)
    _accumulate(inst, inst.read_epoch, inst.read_item, inst.read_bytes, fr, free, gcd)
    _accumulate(inst, inst.write_epoch, inst.write_item, inst.write_bytes, fw)
    reads = inst.reads_per_epoch_bytes()
    writes = np.bincount(inst.write_epoch, weights=inst.write_bytes.astype(np.float64),
                         minlength=E) if inst.write_bytes.size else np.zeros(E)
    return EpochParts(reads, writes, fr, fw, free, gcd)


def per_epoch_times(tiers, mode: str, min_time_s: np.ndarray, parts: EpochParts) -> np.ndarray:
    """The per-epoch lower bound on ``tau(e)`` of the module docstring, shape (E,)."""
    r = np.array([t.read_rate_Bps() for t in tiers], dtype=np.float64)
    bw = np.array([t.bandwidth_Bps for t in tiers], dtype=np.float64)
    D, W = parts.reads, parts.writes
    v = np.maximum(np.asarray(min_time_s, dtype=np.float64), D / r.sum())
    v = np.maximum(v, (D + W) / bw.sum())
    for k, t in enumerate(tiers):
        v = np.maximum(v, parts.fixed_reads[k] / r[k])
    if mode == "exclusive":
        for k, t in enumerate(tiers):
            v = np.maximum(v, (parts.fixed_reads[k] + parts.fixed_writes[k]) / bw[k])
            if t.link_write_Bps is not None:
                v = np.maximum(v, parts.fixed_writes[k] / t.link_write_Bps)
    elif len(tiers) >= 2:               # inclusive: every write lands in tier 1
        v = np.maximum(v, (parts.fixed_reads[1] + W) / bw[1])
        if tiers[1].link_write_Bps is not None:
            v = np.maximum(v, W / tiers[1].link_write_Bps)
    if mode == "exclusive" and len(tiers) >= 2:
        v = np.maximum(v, _whole_split(r[0], r[1:].sum(), D, parts))
    return v


def _whole_split(r0: float, rest: float, D: np.ndarray, parts: EpochParts) -> np.ndarray:
    """Per epoch ``min over whole n in [0, n_max] of max((F_0 + g n)/r0, (D - F_0 - g n)/rest)``
    (0 where the epoch has no free read): tier 0 serves its fixed reads plus a sum of free
    reads, a multiple of g."""
    g = parts.free_gcd
    ok = g > 0
    gf = np.where(ok, g, 1).astype(np.float64)
    F0 = parts.fixed_reads[0]
    n_max = np.where(ok, np.round(parts.free_reads / gf), 0.0)
    n_star = (r0 * (D - F0) - rest * F0) / (gf * (r0 + rest))
    lo = np.clip(np.floor(n_star), 0.0, n_max)
    hi = np.clip(np.ceil(n_star), 0.0, n_max)

    def f(n):
        return np.maximum((F0 + gf * n) / r0, (D - F0 - gf * n) / rest)

    return np.where(ok, np.minimum(f(lo), f(hi)), 0.0)


def per_epoch_bound_from(tiers, mode: str, min_time_s: np.ndarray, parts: EpochParts) -> float:
    """:func:`per_epoch_bound_s` from an instance's tiers, mode, compute floors and parts."""
    return float(per_epoch_times(tiers, mode, min_time_s, parts).sum())


def per_epoch_bound_s(inst: Instance) -> float:
    """The per-epoch bound of the module docstring, in seconds: at least the aggregate line.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> from hetkv_opt.model.terms import aggregate_bound_s
    >>> inst = tiny_instance()
    >>> per_epoch_bound_s(inst) >= aggregate_bound_s(inst)
    True
    """
    return per_epoch_bound_from(inst.tiers, inst.mode, inst.min_time_s, epoch_parts(inst))


def basic_bounds(inst: Instance) -> dict[str, float]:
    """The two bounds every method reports whatever else it proves: the paper's aggregate
    line and the per-epoch bound (one pass over the accesses each).

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> {k: round(v, 12) for k, v in basic_bounds(tiny_instance()).items()}
    {'aggregate': 1.0, 'per_epoch': 1.4}
    """
    from hetkv_opt.model.terms import aggregate_bound_s
    return {"aggregate": aggregate_bound_s(inst), "per_epoch": per_epoch_bound_s(inst)}
