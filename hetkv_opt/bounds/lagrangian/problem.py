"""The prepared problem of the Lagrangian bound, and what both oracles share.

:func:`prepare` turns an instance into a :class:`Problem`: the priced rows (the time terms
of :func:`hetkv_opt.model.terms.time_terms` and the rounding cut) as per-byte coefficients
per tier, their constants (pinned traffic, the cut's offset), the capacity rooms, and the
free items' reads and writes by epoch, all in scaled time units (``t0`` seconds).  Both
oracles, the dense one (:mod:`hetkv_opt.bounds.lagrangian.oracle`) and the event one
(:mod:`hetkv_opt.bounds.lagrangian.events`), work on it and share: the per-tier prices
(:func:`tier_prices`), the constant part of L (:func:`constant_term`) and the
supergradient given the paths' traffic (:func:`gradient_from_traffic`); they return an
:class:`Eval`.

:func:`finish_value` turns a computed L into a proof (a margin far above the rounding of
the sums); the optimiser and the verifier both end with it.

>>> from hetkv_opt.model.instance import tiny_instance
>>> p = prepare(tiny_instance())
>>> p.names, p.J, p.jc, p.cap_tiers
(['device[0]', 'device[1]', 'link_read[1]', 'link_write[1]', 'cut'], 5, 4, [0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.milp.build import time_unit_s
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.terms import (bytes_alive, capacity_rooms, capacity_tiers, rounding_cut,
                                   term_names, time_terms)


@dataclass
class Problem:
    """Everything the fast oracles need, in scaled units (times in ``t0`` seconds)."""

    inst: Instance
    t0: float
    E: int
    K: int
    inclusive: bool
    names: list
    J: int                      # priced rows per epoch (terms + cut)
    jc: int | None              # row of the cut
    CR: np.ndarray              # (J, K) per-byte coefficient of reads served by tier k
    CW: np.ndarray
    CI: np.ndarray
    CO: np.ndarray
    const: np.ndarray           # (J, E) constants of each row (pinned traffic, cut A)
    cut_B: np.ndarray           # (E,) per byte of free tier-0 reads (scaled)
    cut_has: np.ndarray         # (E,) bool
    c: np.ndarray               # (E,) compute floors (scaled)
    cap_tiers: list
    rooms: np.ndarray           # (C, E) bytes
    room_full: np.ndarray       # (K, E) bytes, inf for unpriced tiers
    R0pin: np.ndarray           # (E,) inclusive: bytes read from items pinned to tier 0
    Rtot: np.ndarray
    # free items
    free: np.ndarray
    s: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    init: np.ndarray
    r_ptr: np.ndarray
    r_i: np.ndarray
    r_b: np.ndarray
    w_ptr: np.ndarray
    w_i: np.ndarray
    w_b: np.ndarray
    born_at: list = field(default_factory=list)   # per epoch: free items born there
    last_at: list = field(default_factory=list)   # per epoch: free items whose last epoch it is
    tau_hi: np.ndarray | None = None


def _csr_by_epoch(E, epoch, item, nbytes):
    order = np.argsort(epoch, kind="stable")
    epoch, item, nbytes = epoch[order], item[order], nbytes[order]
    ptr = np.zeros(E + 1, np.int64)
    np.cumsum(np.bincount(epoch, minlength=E), out=ptr[1:])
    return ptr, item.astype(np.int64), nbytes.astype(float)


def prepare(inst: Instance) -> Problem:
    """The :class:`Problem` of an instance (built once per bound computation)."""
    E, K = inst.num_epochs, inst.num_tiers
    inclusive = inst.mode == "inclusive"
    if inclusive and K != 2:  # pragma: no cover - the instance validator forbids it
        raise NotImplementedError("inclusive mode with other than 2 tiers")
    t0 = time_unit_s(inst)
    terms = time_terms(inst)
    names = term_names(inst)
    J = len(names)
    jc = J - 1 if names and names[-1] == "cut" else None
    CR, CW, CI, CO = (np.zeros((J, K)) for _ in range(4))
    for j, (_, k, rate, r, w, ci, co) in enumerate(terms):
        c = 1.0 / (rate * t0)
        CR[j, k], CW[j, k], CI[j, k], CO[j, k] = c * r, c * w, c * ci, c * co
    rb_all, wb_all = inst.read_bytes.astype(float), inst.write_bytes.astype(float)
    pin_r, pin_w = inst.pinned_tier[inst.read_item], inst.pinned_tier[inst.write_item]
    Rtot = inst.reads_per_epoch_bytes()
    Wtot = np.bincount(inst.write_epoch, weights=wb_all, minlength=E)
    const = np.zeros((J, E))
    R0pin = np.zeros(E)
    for j, (_, k, rate, r, w, ci, co) in enumerate(terms):
        c = 1.0 / (rate * t0)
        if inclusive:
            if k == 1:       # tier 1 serves every read (less the split) and takes every write
                const[j] += c * (r * Rtot + w * Wtot)
            else:            # tier 0: writes of items pinned there (reads: by the split)
                m = pin_w == 0
                const[j] += c * w * np.bincount(inst.write_epoch[m], weights=wb_all[m], minlength=E)
        else:
            mr, mw = pin_r == k, pin_w == k
            const[j] += c * r * np.bincount(inst.read_epoch[mr], weights=rb_all[mr], minlength=E)
            const[j] += c * w * np.bincount(inst.write_epoch[mw], weights=wb_all[mw], minlength=E)
    if inclusive:
        m = pin_r == 0
        R0pin = np.bincount(inst.read_epoch[m], weights=rb_all[m], minlength=E)
    cut = rounding_cut(inst)
    if jc is not None:
        const[jc] = cut.A_s / t0
    cap_tiers = capacity_tiers(inst)
    rooms = capacity_rooms(inst)
    room_full = np.full((K, E), np.inf)
    for n, k in enumerate(cap_tiers):
        room_full[k] = rooms[n]
    fields = free_item_fields(inst)
    birth, death = fields["birth"], fields["death"]
    born_at = [np.flatnonzero(birth == e) for e in range(E)]
    order = np.argsort(death - 1, kind="stable")
    bounds = np.searchsorted((death - 1)[order], np.arange(E + 1))
    last_at = [order[bounds[e]:bounds[e + 1]] for e in range(E)]
    return Problem(
        inst=inst, t0=t0, E=E, K=K, inclusive=inclusive, names=names, J=J, jc=jc,
        CR=CR, CW=CW, CI=CI, CO=CO, const=const, cut_B=cut.B_s_per_byte / t0, cut_has=cut.has,
        c=inst.min_time_s.astype(float) / t0, cap_tiers=cap_tiers, rooms=rooms,
        room_full=room_full, R0pin=R0pin, Rtot=Rtot, born_at=born_at, last_at=last_at,
        tau_hi=tau_hi(inst) / t0, **fields)


def free_item_fields(inst: Instance) -> dict:
    """The free (not pinned) items of an instance as the :class:`Problem` holds them: their
    indices ``free``, sizes, lives and initial tiers, and their reads and writes by epoch
    (CSR over epochs, items numbered among the free ones)."""
    E = inst.num_epochs
    pin_r, pin_w = inst.pinned_tier[inst.read_item], inst.pinned_tier[inst.write_item]
    free = np.flatnonzero(inst.pinned_tier < 0)
    fidx = np.full(inst.num_items, -1, np.int64)
    fidx[free] = np.arange(free.size)
    fr, fw = pin_r < 0, pin_w < 0
    r_ptr, r_i, r_b = _csr_by_epoch(E, inst.read_epoch[fr], fidx[inst.read_item[fr]],
                                    inst.read_bytes[fr].astype(float))
    w_ptr, w_i, w_b = _csr_by_epoch(E, inst.write_epoch[fw], fidx[inst.write_item[fw]],
                                    inst.write_bytes[fw].astype(float))
    return dict(free=free, s=inst.size_bytes[free].astype(float),
                birth=inst.birth[free].astype(np.int64), death=inst.death[free].astype(np.int64),
                init=inst.initial_tier[free].astype(np.int64), r_ptr=r_ptr, r_i=r_i, r_b=r_b,
                w_ptr=w_ptr, w_i=w_i, w_b=w_b)


# =============================================================================== shared by the oracles

@dataclass
class Eval:
    """One oracle call: L and (unless ``gradient=False``) a supergradient."""

    value: float                 # L in t0 units (no margin)
    g_lam: np.ndarray | None     # (J, E) supergradient
    g_mu: np.ndarray | None      # (C, E)
    states: np.ndarray | None    # (Nf, E) int8, -1 outside the life (dense oracle only)


def tier_prices(p: Problem, lam: np.ndarray, mu: np.ndarray):
    """Per-byte prices of each tier and epoch (scaled): node reads NR, writes NW, residency
    NS; copies out of (OUT) and into (IN) a tier, charged in the epoch the copy runs."""
    PR = p.CR.T @ lam          # (K, E)
    PW = p.CW.T @ lam
    PI = p.CI.T @ lam
    PO = p.CO.T @ lam
    MU = np.zeros((p.K, p.E))
    for n, k in enumerate(p.cap_tiers):
        MU[k] = mu[n]
    if p.jc is not None:
        PR[0] = PR[0] + lam[p.jc] * p.cut_B
    if not p.inclusive:
        return PR, PW, MU, PO, PI + MU
    a = np.minimum(PR[0] - PR[1], 0.0)        # a tier-0 copy lets the reader use tier 0
    z = np.zeros(p.E)
    NR = np.vstack([a, z])
    NW = np.vstack([PW[0], z])
    NS = np.vstack([MU[0], z])
    OUT = np.vstack([z, PO[1]])               # promotion 1 -> 0: read out of tier 1 ...
    IN = np.vstack([PI[0] + MU[0], z])        # ... written into tier 0; demotion is free
    return NR, NW, NS, OUT, IN


def constant_term(p: Problem, lam: np.ndarray, mu: np.ndarray) -> float:
    """The part of L that no item's path changes (scaled): the compute floors weighted by
    ``1 - sum_j lambda``, the rows' constants, minus the priced rooms, and (inclusive) the
    saving of the reads of items pinned to tier 0."""
    const = (float(np.sum(p.c)) - float(np.sum(lam.sum(axis=0) * p.c))
             + float(np.sum(lam * p.const)) - float(np.sum(mu * p.rooms)))
    if p.inclusive:
        PR = p.CR.T @ lam
        const += float(np.sum(np.minimum(PR[0] - PR[1], 0.0) * p.R0pin))
    return const


def gradient_from_traffic(p: Problem, lam: np.ndarray, R, W, Min, Mout, occ):
    """The supergradient ``(g_lam (J, E), g_mu (C, E))`` of L at prices whose optimal paths
    carry the given traffic: bytes per tier and epoch read ``R``, written ``W``, copied in
    ``Min`` and out ``Mout`` (in the epoch the copy runs), occupied ``occ`` (copies in
    included)."""
    g = p.const - p.c[None, :]
    if p.inclusive:
        PR = p.CR.T @ lam
        use = (PR[0] - PR[1]) < 0
        H = np.where(use, R[0] + p.R0pin, 0.0)       # reads served by tier-0 copies
        g = g + np.outer(p.CR[:, 0] - p.CR[:, 1], H)
        g = g + np.outer(p.CW[:, 0], W[0]) + np.outer(p.CI[:, 0], Min[0]) + np.outer(p.CO[:, 1], Mout[1])
    else:
        g = g + p.CR @ R + p.CW @ W + p.CI @ Min + p.CO @ Mout
        if p.jc is not None:
            g[p.jc] += p.cut_B * R[0]
    g_mu = np.vstack([occ[k] - p.rooms[n] for n, k in enumerate(p.cap_tiers)]) if p.cap_tiers \
        else np.zeros((0, p.E))
    return g, g_mu


# =============================================================================== the proof

def tau_hi(inst: Instance) -> np.ndarray:
    """Per epoch a time no schedule's epoch exceeds (seconds): every read, write and
    possible copy at the slowest rate of the instance (for the rounding margin)."""
    E = inst.num_epochs
    R = inst.reads_per_epoch_bytes()
    W = np.bincount(inst.write_epoch, weights=inst.write_bytes.astype(float), minlength=E)
    S = bytes_alive(inst)
    slowest = min(min(t.bandwidth_Bps, t.link_read_Bps or math.inf, t.link_write_Bps or math.inf)
                  for t in inst.tiers)
    return np.maximum(inst.min_time_s, (R + W + 2.0 * S) / slowest)


def margin(inst: Instance, lam: np.ndarray, mu_s: np.ndarray, rooms: np.ndarray,
           value_s: float) -> float:
    """A floating-point safety margin (seconds), far above the rounding of the DP sums.

    Every price multiplies a quantity bounded by ``tau_hi`` (time rows) or by the room and
    the bytes alive (capacity rows); the DP adds at most E terms per item.  A relative
    ``2e-14 (E + 10) + 1e-12`` of these magnitudes is over 100 times the worst rounding.
    """
    E = inst.num_epochs
    S = bytes_alive(inst)
    A = rounding_cut(inst).A_s
    scale = (float(np.sum(np.abs(inst.min_time_s))) + float(np.sum(tau_hi(inst)))
             + float(np.sum(np.abs(A))) + float(np.sum(mu_s * (np.abs(rooms) + S[None, :])))
             + abs(value_s))
    return (2e-14 * (E + 10) + 1e-12) * scale + 1e-300


def finish_value(inst: Instance, lam: np.ndarray, mu_s: np.ndarray, rooms: np.ndarray,
                 value_s: float) -> float:
    """Turn a computed L (seconds) into a proof: allow for price sums a hair over 1 and
    subtract the rounding margin."""
    excess = max(0.0, float(np.max(lam.sum(axis=0), initial=0.0)) - 1.0)
    v = value_s / (1.0 + excess) if value_s > 0 else value_s
    return float(v - margin(inst, lam, mu_s, rooms, value_s))


def paths_value(p: Problem, shortest: np.ndarray, const: float) -> float:
    """L at given prices: the constant term plus every free item's shortest-path cost (the
    same for both oracles).  An item with no finite path has no placement at all.

    Raises
    ------
    ValueError
        ``"infeasible: item I ..."`` when some item fits in no tier at some epoch.
    """
    if shortest.size and not np.all(np.isfinite(shortest)):
        i = int(p.free[np.flatnonzero(~np.isfinite(shortest))[0]])
        raise ValueError(f"infeasible: item {i} has no placement that fits the capacities "
                         f"at every epoch of its life")
    return const + float(np.sum(shortest))


__all__ = ["Eval", "Problem", "constant_term", "finish_value", "free_item_fields",
           "gradient_from_traffic", "margin",
           "paths_value", "prepare", "tau_hi", "tier_prices"]
