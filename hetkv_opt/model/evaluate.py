"""The independent evaluator: the time and feasibility of a schedule (docs/model.md sections 2-4).

This module certifies every number the toolkit prints.  It is written from docs/model.md
alone and shares no arithmetic with the MILP builder: it walks the schedule's list of
changes with sorted look-ups and bin counts, and never sees a constraint matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, check_structure


def format_bytes(n: float) -> str:
    """Bytes in words: ``25.3 GB``, ``512 B`` (decimal units)."""
    n = float(n)
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.4g} B"


@dataclass
class Evaluation:
    """What a schedule costs, as computed by :func:`evaluate`.

    Attributes
    ----------
    feasible : bool
        True when the schedule keeps every rule of docs/model.md.
    violations : list of str
        Broken rules in domain words ("epoch 17: tier hbm holds 25.3 GB > 24.0 GB").
    total_time_s : float
        T, the sum of epoch times (NaN when the schedule is structurally broken).
    epoch_time_s : ndarray, shape (E,)
        τ(e).
    binding : list of str, length E
        Which term set τ(e): ``compute``, ``device:NAME``, ``link_read:NAME``,
        ``link_write:NAME``.
    read_bytes, write_bytes, copy_in_bytes, copy_out_bytes, occupancy_bytes :
        ndarray, shape (K, E), per tier and epoch.
    throughput_steps_per_s, effective_read_Bps, hbm_read_share : float
    """

    feasible: bool
    violations: list[str]
    total_time_s: float
    epoch_time_s: np.ndarray = field(repr=False)
    binding: list[str] = field(repr=False)
    read_bytes: np.ndarray = field(repr=False)
    write_bytes: np.ndarray = field(repr=False)
    copy_in_bytes: np.ndarray = field(repr=False)
    copy_out_bytes: np.ndarray = field(repr=False)
    occupancy_bytes: np.ndarray = field(repr=False)
    throughput_steps_per_s: float | None = None
    effective_read_Bps: float | None = None
    hbm_read_share: float | None = None
    num_moves: int = 0

    def summary(self) -> dict:
        """JSON-ready summary (no per-epoch arrays)."""
        names, counts = np.unique(np.asarray(self.binding, dtype=str), return_counts=True)
        return {"feasible": self.feasible, "violations": list(self.violations[:50]),
                "num_violations": len(self.violations),
                "total_time_s": _num(self.total_time_s),
                "throughput_steps_per_s": _num(self.throughput_steps_per_s),
                "effective_read_Bps": _num(self.effective_read_Bps),
                "hbm_read_share": _num(self.hbm_read_share), "num_moves": self.num_moves,
                "copy_bytes": _num(float(self.copy_in_bytes.sum())),
                "binding_epochs": {str(n): int(c) for n, c in zip(names, counts) if str(n)}}


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def broken(instance: Instance, problems: list[str]) -> Evaluation:
    K, E = instance.num_tiers, instance.num_epochs
    z = np.zeros((K, E))
    return Evaluation(False, problems, float("nan"), np.full(E, np.nan), [""] * E,
                      z, z.copy(), z.copy(), z.copy(), z.copy())


def _segments(instance: Instance, schedule: Schedule):
    """For every schedule entry: its end epoch (next entry of the same item, or death)."""
    it, ep = schedule.item, schedule.epoch
    end = instance.death[it].copy()
    if it.size > 1:
        same = it[1:] == it[:-1]
        end[:-1] = np.where(same, ep[1:], end[:-1])
    return end


#: accesses scored at a time by :func:`_bytes_per_tier`
_SLICE = 1 << 22


def _bytes_per_tier(instance: Instance, schedule: Schedule, pre: str) -> np.ndarray:
    """Bytes read (``pre="read"``) or written per (tier, epoch), shape (K, E), from the
    tier each access finds its item in (binary search in the sorted change list).  Slice
    by slice, so that memory holds the instance and a few slices, not several copies of a
    read list; the bytes are whole numbers, whose float64 sums are exact in any order."""
    K, E = instance.num_tiers, instance.num_epochs
    item, epoch = getattr(instance, f"{pre}_item"), getattr(instance, f"{pre}_epoch")
    nbytes = getattr(instance, f"{pre}_bytes")
    stride = E + 1
    keys = schedule.item * stride + schedule.epoch
    out = np.zeros(K * E)
    for lo in range(0, item.size, _SLICE):
        sl = slice(lo, lo + _SLICE)
        # int64 before the products: a compact instance's slices are int32
        it, ep = item[sl].astype(np.int64), epoch[sl].astype(np.int64)
        at = np.searchsorted(keys, it * stride + ep, side="right") - 1
        out += np.bincount(schedule.tier[at] * E + ep, weights=nbytes[sl], minlength=K * E)
    return out.reshape(K, E)


def schedule_mismatch(instance: Instance, schedule: Schedule) -> str | None:
    """Why ``schedule`` cannot have been made for ``instance`` (another instance's name,
    or items, epochs or tiers the instance does not have), in words; None when it may
    be.  Scoring such a schedule means nothing: the CLI refuses it instead."""
    if schedule.instance != instance.name:
        return f"the schedule is for instance '{schedule.instance}', not '{instance.name}'"
    N, E, K = instance.num_items, instance.num_epochs, instance.num_tiers
    for arr, what, n in ((schedule.item, "items", N), (schedule.epoch, "epochs", E),
                         (schedule.tier, "tiers", K)):
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
            return (f"the schedule uses {what} up to {int(arr.max())}, the instance has {n} "
                    f"{what} (0..{n - 1}): it was made for another instance")
    placed = int(np.unique(schedule.item).size)
    if placed != N:
        return (f"the schedule places {placed} items, the instance has {N} items: it was "
                f"made for another instance")
    return None


def evaluate(instance: Instance, schedule: Schedule) -> Evaluation:
    """Score a schedule: per-epoch time, total time, traffic, and feasibility.

    Parameters
    ----------
    instance : Instance
    schedule : Schedule

    Returns
    -------
    Evaluation
        Always returned; ``feasible`` is False and ``violations`` says why when the
        schedule breaks a rule.  Capacity violations still get a time; structural ones
        (missing birth entries, pins broken, ...) get ``total_time_s = nan``.

    Examples
    --------
    docs/model.md's worked example:

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> from hetkv_opt.model.schedule import Schedule
    >>> ev = evaluate(tiny_instance(), Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    >>> ev.feasible, ev.epoch_time_s.tolist(), ev.total_time_s
    (True, [1.0, 0.5, 0.5], 2.0)
    """
    problems = check_structure(instance, schedule)
    if problems:
        return broken(instance, problems)
    return score(instance, [traffic(instance, schedule)])


@dataclass
class Traffic:
    """What a schedule moves, per tier and epoch, before any time is computed: bytes read,
    written, copied in and out (in the epoch the copy runs) and resident (copies in
    included; inclusive mode: tier 1 is every alive item).  Whole bytes: sums of the
    traffic of disjoint sets of items (the layers of one instance) are exact in any order,
    so :func:`score` of the sum is the evaluation of the whole."""

    reads: np.ndarray
    writes: np.ndarray
    copy_in: np.ndarray
    copy_out: np.ndarray
    occupancy: np.ndarray
    num_moves: int
    read_total: float

    def __add__(self, other: "Traffic") -> "Traffic":
        return Traffic(self.reads + other.reads, self.writes + other.writes,
                       self.copy_in + other.copy_in, self.copy_out + other.copy_out,
                       self.occupancy + other.occupancy, self.num_moves + other.num_moves,
                       self.read_total + other.read_total)


def traffic(instance: Instance, schedule: Schedule) -> Traffic:
    """The :class:`Traffic` of a structurally valid schedule (see :func:`check_structure`)."""
    K, E = instance.num_tiers, instance.num_epochs
    it, ep, ti = schedule.item, schedule.epoch, schedule.tier
    size = instance.size_bytes.astype(float)
    end = _segments(instance, schedule)
    inclusive = instance.mode == "inclusive"

    # occupancy from residency intervals: +size at start, -size at end
    occ_diff = np.zeros((K, E + 1))
    np.add.at(occ_diff, (ti, ep), size[it])
    np.add.at(occ_diff, (ti, end), -size[it])
    occupancy = np.cumsum(occ_diff, axis=1)[:, :E]

    # moves: an entry that is not the item's first, copied during the epoch before it
    is_move = np.zeros(it.size, bool)
    if it.size > 1:
        is_move[1:] = it[1:] == it[:-1]
    mv = np.flatnonzero(is_move)
    src, dst, when, msize = ti[mv - 1], ti[mv], ep[mv] - 1, size[it[mv]]
    copy_in = np.zeros((K, E))
    copy_out = np.zeros((K, E))
    if inclusive:
        promo = dst == 0  # 1 -> 0 copies; demotions drop the copy for free
        np.add.at(copy_in, (dst[promo], when[promo]), msize[promo])
        np.add.at(copy_out, (src[promo], when[promo]), msize[promo])
        # tier 1 holds every alive item all the time; its interval counts were only
        # the "no tier-0 copy" stretches, so rebuild tier 1 occupancy from lives
        life = np.zeros(E + 1)
        np.add.at(life, instance.birth, size)
        np.add.at(life, instance.death, -size)
        occupancy[1] = np.cumsum(life)[:E]
    else:
        np.add.at(copy_in, (dst, when), msize)
        np.add.at(copy_out, (src, when), msize)
    occupancy += copy_in  # a copy occupies its destination during the epoch it is made

    reads = _bytes_per_tier(instance, schedule, "read")
    writes = _bytes_per_tier(instance, schedule, "write")
    return Traffic(reads, writes, copy_in, copy_out, occupancy, int(mv.size),
                   float(instance.read_bytes.sum()))


def score(instance: Instance, pieces) -> Evaluation:
    """The evaluation of the summed :class:`Traffic` of ``pieces`` (the traffic of the
    whole schedule, or of the layer parts of one instance): capacities checked against
    the total occupancy, epoch times of docs/model.md section 4.  ``instance`` gives the
    tiers, mode, compute floors and steps (its items are not read)."""
    total = None
    for piece in pieces:
        total = piece if total is None else total + piece
    occupancy = total.occupancy
    violations: list[str] = []
    for k, tier in enumerate(instance.tiers):
        if tier.capacity_bytes is None:
            continue
        over = np.flatnonzero(occupancy[k] > tier.capacity_bytes)
        for e in over[:20]:
            violations.append(f"epoch {e}: tier {tier.name} holds {format_bytes(occupancy[k, e])} "
                              f"> {format_bytes(tier.capacity_bytes)}")
        if over.size > 20:
            violations.append(f"tier {tier.name}: {over.size - 20} more epochs over capacity")
    reads, writes, copy_in, copy_out = total.reads, total.writes, total.copy_in, total.copy_out
    if instance.mode == "inclusive":
        # writes land in tier 1 always, and in tier 0 too where a copy exists
        writes = writes.copy()
        writes[1] = writes.sum(axis=0)
        reads = _best_inclusive_split(instance, reads, writes, copy_in, copy_out)

    tau, binding = _epoch_times(instance, reads, writes, copy_in, copy_out)
    T = float(tau.sum())
    total_read = total.read_total
    return Evaluation(
        feasible=not violations, violations=violations, total_time_s=T, epoch_time_s=tau,
        binding=binding, read_bytes=reads, write_bytes=writes, copy_in_bytes=copy_in,
        copy_out_bytes=copy_out, occupancy_bytes=occupancy,
        throughput_steps_per_s=(instance.num_steps / T) if T > 0 else None,
        effective_read_Bps=(total_read / T) if T > 0 else None,
        hbm_read_share=(float(reads[0].sum()) / total_read) if total_read > 0 else None,
        num_moves=total.num_moves)


def _terms(instance: Instance, reads, writes, copy_in, copy_out):
    """All time terms of docs/model.md section 4, shape (terms, E), with their names."""
    rows, names = [np.asarray(instance.min_time_s, float)], ["compute"]
    for k, t in enumerate(instance.tiers):
        rows.append((reads[k] + writes[k] + copy_out[k] + copy_in[k]) / t.bandwidth_Bps)
        names.append(f"device:{t.name}")
        if t.link_read_Bps is not None:
            rows.append((reads[k] + copy_out[k]) / t.link_read_Bps)
            names.append(f"link_read:{t.name}")
        if t.link_write_Bps is not None:
            rows.append((writes[k] + copy_in[k]) / t.link_write_Bps)
            names.append(f"link_write:{t.name}")
    return np.vstack(rows), names


def _epoch_times(instance: Instance, reads, writes, copy_in, copy_out):
    terms, names = _terms(instance, reads, writes, copy_in, copy_out)
    tau = terms.max(axis=0)
    which = terms.argmax(axis=0)
    return tau, [names[j] for j in which]


def _best_inclusive_split(instance: Instance, reads, writes, copy_in, copy_out) -> np.ndarray:
    """Inclusive mode: split reads of items with a tier-0 copy to minimise τ(e).

    ``reads[0]`` holds reads of items with a tier-0 copy (they may go to either tier),
    ``reads[1]`` the others.  With H read from tier 0, tier 0's device term grows with H
    and tier 1's device and link-read terms shrink; the best H is where the growing line
    meets the highest shrinking line, clipped to [0, reads[0]].
    """
    t0, t1 = instance.tiers
    copyable = reads[0]
    total = reads[0] + reads[1]
    a0 = writes[0] + copy_in[0] + copy_out[0]      # tier-0 device load besides reads
    # growing line: (H + a0) / bw0.  Shrinking lines: (total - H + d_j) / beta_j.
    shrinking = [(writes[1] + copy_in[1] + copy_out[1], t1.bandwidth_Bps)]
    if t1.link_read_Bps is not None:
        shrinking.append((copy_out[1], t1.link_read_Bps))
    best = np.zeros_like(total)
    for d, beta in shrinking:
        # (H + a0)/bw0 = (total - H + d)/beta  ->  H = (bw0 (total + d) - beta a0) / (bw0 + beta)
        cross = (t0.bandwidth_Bps * (total + d) - beta * a0) / (t0.bandwidth_Bps + beta)
        best = np.maximum(best, cross)
    H = np.clip(best, 0.0, copyable)
    out = reads.copy()
    out[0] = H
    out[1] = total - H
    return out
