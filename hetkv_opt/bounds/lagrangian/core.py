"""A Lagrangian (decomposition) lower bound on T, with a certificate anyone can check.

The idea (issue 3, part 1).  Price the rows that couple the items:

- the **time rows** ``tau_e >= term_{e,j}`` (every device and link term of MODEL.md
  section 4, and the per-epoch rounding cut of :mod:`hetkv_opt.milp.build`) with
  ``lambda_{e,j} >= 0``, ``sum_j lambda_{e,j} <= 1``;
- the **capacity rows** of every bounded tier with ``mu_{k,e} >= 0``.

For every feasible schedule ``tau_e >= max(c_e, terms) >= (1 - sum_j lambda) c_e +
sum_j lambda_j term_j`` and ``0 >= mu (occupancy - room)``, and every term is a sum of
per-item traffic plus constants.  Hence, for *any* such prices,

``T >= L = sum_e c_e (1 - sum_j lambda_{e,j}) + sum_{e,j} lambda_{e,j} const_{e,j}
+ sum_items SP_i - sum_{k,e} mu_{k,e} room_{k,e}``

where ``SP_i`` is the cheapest path of item i alone through its own time line (one state
per tier per epoch, pins and initial tier respected) when reads, writes, copies and
residency are charged at the prices.  That is weak duality: no solver tolerance enters,
and the best prices reach the value of the LP relaxation of the MILP (the item paths of
the relaxation are convex combinations of integral paths).  The capacity ``room`` is
rounded down to a multiple of the gcd of the free items' sizes (only whole items move),
like the MILP's capacity rows.

:func:`lagrangian_bound` maximises L over the prices (a proximal bundle method; the
oracle solves every item's shortest path at once with numpy, one step per epoch) and
returns the bound and a :class:`BoundCertificate` holding the prices.
:func:`verify_bound` recomputes L from the prices alone with a separate, deliberately
plain implementation (full K x K transitions, no shared arithmetic with the optimizer's
oracle) and refuses a certificate that does not hold.

Floating point: both subtract a margin far larger than the rounding of the sums, so the
number they return stays a proof.

Examples
--------
>>> from hetkv_opt.model.instance import tiny_instance
>>> bound, cert = lagrangian_bound(tiny_instance(), iterations=50)
>>> 1.0 <= bound <= 2.0
True
>>> abs(verify_bound(tiny_instance(), cert) - bound) <= 1e-9 * bound
True
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetkv_opt.model.instance import Instance, ModelError

SCHEMA_CERTIFICATE = "hetkv-bound-certificate"
CERTIFICATE_VERSION = 1
METHOD = "lagrangian"
#: a price sum may exceed 1 by this much (rounding); the bound is divided by (1 + excess)
SUM_TOLERANCE = 1e-12
#: verify_bound refuses a certificate whose claimed bound differs from the recomputed one
#: by more than this relative amount
CLAIM_TOLERANCE = 1e-9
#: iterations of the bundle master's solver at first; multiplied by ITERS_GROW whenever the
#: model sees nothing better near the center, up to the phase's ``master_iters`` (1.5 rather
#: than 2: on drift 1024x256 seeds 0-2 all reach 99.5 % of the LP value within 0.9 s, against
#: 2.1 s for seed 2 with doubling; after 15 s the two are within 0.04 %)
MASTER_ITERS_START = 100
ITERS_GROW = 1.5



class CertificateError(ModelError):
    """A certificate that cannot be read or does not prove what it claims."""


# =============================================================================== terms

def time_terms(inst: Instance) -> list[tuple[str, int, float, bool, bool, bool, bool]]:
    """The priced time rows of every epoch: ``(name, tier, rate_Bps, read, write, copy_in,
    copy_out)``, in the order of MODEL.md section 4 (compute floor excluded).

    >>> [t[0] for t in time_terms(__import__("hetkv_opt").tiny_instance())]
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
    """Names of the rows of the certificate's ``lambda`` array (``cut`` last, exclusive
    mode with two or more tiers)."""
    names = [t[0] for t in time_terms(inst)]
    if inst.mode == "exclusive" and inst.num_tiers >= 2:
        names.append("cut")
    return names


def capacity_tiers(inst: Instance) -> list[int]:
    """Tiers whose capacity rows are priced (rows of the certificate's ``mu`` array)."""
    return [k for k, t in enumerate(inst.tiers) if t.capacity_bytes is not None
            and not (inst.mode == "inclusive" and k == 1)]


def _gcd_sizes(inst: Instance) -> int:
    sizes = inst.size_bytes[inst.pinned_tier < 0].astype(np.int64)
    return int(np.gcd.reduce(sizes)) if sizes.size else 1


def _rooms(inst: Instance) -> np.ndarray:
    """Bytes each priced tier has for free items at each epoch, rounded down to a multiple
    of the gcd of the free items' sizes, shape (C, E)."""
    E = inst.num_epochs
    size = inst.size_bytes.astype(np.int64)
    g = _gcd_sizes(inst)
    rooms = []
    for k in capacity_tiers(inst):
        pin = np.flatnonzero(inst.pinned_tier == k)
        d = np.zeros(E + 1, np.int64)
        np.add.at(d, inst.birth[pin], size[pin])
        np.add.at(d, inst.death[pin], -size[pin])
        room = int(inst.tiers[k].capacity_bytes) - np.cumsum(d)[:E]
        rooms.append(np.floor_divide(room, g) * g)
    return np.asarray(rooms, float).reshape(len(rooms), E)


def _cut(inst: Instance):
    """Per epoch the rounding cut ``tau_e >= A_e + B_e * X_e`` (seconds; X_e = bytes of free
    items read from tier 0), and where it exists.  Same rule as the MILP's cut: with the free
    reads of epoch e all multiples of g bytes, tier 0 serves ``R0pin + g n`` bytes for a
    whole n, and ``tau >= f(n) = max((R0pin + g n)/bw_0, (R - R0pin - g n)/sum_{k>=1} rate_k)``;
    f is convex, so the chord through two consecutive whole numbers is below it at every
    whole n.  Returns (A, B, has) arrays of shape (E,)."""
    E = inst.num_epochs
    A, B, has = np.zeros(E), np.zeros(E), np.zeros(E, bool)
    if inst.mode != "exclusive" or inst.num_tiers < 2 or inst.read_bytes.size == 0:
        return A, B, has
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
    return A, B, use


def _tau_hi(inst: Instance) -> np.ndarray:
    """Per epoch a time no schedule's epoch exceeds (seconds): every read, write and
    possible copy at the slowest rate of the instance (for the rounding margin)."""
    E = inst.num_epochs
    size = inst.size_bytes.astype(float)
    R = inst.reads_per_epoch_bytes()
    W = np.bincount(inst.write_epoch, weights=inst.write_bytes.astype(float), minlength=E)
    alive = np.zeros(E + 1)
    np.add.at(alive, inst.birth, size)
    np.add.at(alive, inst.death, -size)
    S = np.cumsum(alive)[:E]
    slowest = min(min(t.bandwidth_Bps, t.link_read_Bps or math.inf, t.link_write_Bps or math.inf)
                  for t in inst.tiers)
    return np.maximum(inst.min_time_s, (R + W + 2.0 * S) / slowest)


def _margin(inst: Instance, lam: np.ndarray, mu_s: np.ndarray, rooms: np.ndarray,
            value_s: float) -> float:
    """A floating-point safety margin (seconds), far above the rounding of the DP sums.

    Every price multiplies a quantity bounded by ``tau_hi`` (time rows) or by the room and
    the bytes alive (capacity rows); the DP adds at most E terms per item.  A relative
    ``2e-14 (E + 10) + 1e-12`` of these magnitudes is over 100 times the worst rounding.
    """
    E = inst.num_epochs
    size = inst.size_bytes.astype(float)
    alive = np.zeros(E + 1)
    np.add.at(alive, inst.birth, size)
    np.add.at(alive, inst.death, -size)
    S = np.cumsum(alive)[:E]
    A, _, _ = _cut(inst)
    scale = (float(np.sum(np.abs(inst.min_time_s))) + float(np.sum(_tau_hi(inst)))
             + float(np.sum(np.abs(A))) + float(np.sum(mu_s * (np.abs(rooms) + S[None, :])))
             + abs(value_s))
    return (2e-14 * (E + 10) + 1e-12) * scale + 1e-300


# =============================================================================== oracle

@dataclass
class _Problem:
    """Everything the fast oracle needs, in scaled units (times in ``t0`` seconds)."""

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


def _prepare(inst: Instance) -> _Problem:
    from hetkv_opt.milp.build import time_unit_s
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
    size = inst.size_bytes.astype(float)
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
    A, B, has = _cut(inst)
    if jc is not None:
        const[jc] = A / t0
    cap_tiers = capacity_tiers(inst)
    rooms = _rooms(inst)
    room_full = np.full((K, E), np.inf)
    for n, k in enumerate(cap_tiers):
        room_full[k] = rooms[n]
    free = np.flatnonzero(inst.pinned_tier < 0)
    fidx = np.full(inst.num_items, -1, np.int64)
    fidx[free] = np.arange(free.size)
    fr, fw = pin_r < 0, pin_w < 0
    r_ptr, r_i, r_b = _csr_by_epoch(E, inst.read_epoch[fr], fidx[inst.read_item[fr]], rb_all[fr])
    w_ptr, w_i, w_b = _csr_by_epoch(E, inst.write_epoch[fw], fidx[inst.write_item[fw]], wb_all[fw])
    birth, death = inst.birth[free].astype(np.int64), inst.death[free].astype(np.int64)
    born_at = [np.flatnonzero(birth == e) for e in range(E)]
    order = np.argsort(death - 1, kind="stable")
    bounds = np.searchsorted((death - 1)[order], np.arange(E + 1))
    last_at = [order[bounds[e]:bounds[e + 1]] for e in range(E)]
    return _Problem(
        inst=inst, t0=t0, E=E, K=K, inclusive=inclusive, names=names, J=J, jc=jc,
        CR=CR, CW=CW, CI=CI, CO=CO, const=const, cut_B=B / t0, cut_has=has,
        c=inst.min_time_s.astype(float) / t0, cap_tiers=cap_tiers, rooms=rooms,
        room_full=room_full, R0pin=R0pin, Rtot=Rtot, free=free, s=size[free], birth=birth,
        death=death, init=inst.initial_tier[free].astype(np.int64), r_ptr=r_ptr, r_i=r_i,
        r_b=r_b, w_ptr=w_ptr, w_i=w_i, w_b=w_b, born_at=born_at, last_at=last_at,
        tau_hi=_tau_hi(inst) / t0)


@dataclass
class _Eval:
    value: float                 # L in t0 units (no margin)
    g_lam: np.ndarray | None     # (J, E) supergradient
    g_mu: np.ndarray | None      # (C, E)
    states: np.ndarray | None    # (Nf, E) int8, -1 outside the life


def _tier_prices(p: _Problem, lam: np.ndarray, mu: np.ndarray):
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


def _evaluate(p: _Problem, lam: np.ndarray, mu: np.ndarray, *, gradient: bool = True) -> _Eval:
    """L(lambda, mu) and a supergradient, every item's shortest path solved at once."""
    E, K, Nf = p.E, p.K, p.free.size
    NR, NW, NS, OUT, IN = _tier_prices(p, lam, mu)
    s = p.s
    inf = np.inf
    const = (float(np.sum(p.c)) - float(np.sum(lam.sum(axis=0) * p.c))
             + float(np.sum(lam * p.const)) - float(np.sum(mu * p.rooms)))
    if p.inclusive:
        PR = p.CR.T @ lam
        const += float(np.sum(np.minimum(PR[0] - PR[1], 0.0) * p.R0pin))
    F = np.zeros((Nf, K))
    final = np.zeros((Nf, K))
    pred = np.zeros((E, Nf, K), np.int8) if gradient else None
    ar = np.arange(K)
    room = p.room_full
    bad_state = s[None, :, None] > room.T[:, None, :]            # (E, Nf, K)
    for e in range(E):
        node = s[:, None] * NS[:, e][None, :]
        lo, hi = p.r_ptr[e], p.r_ptr[e + 1]
        if hi > lo:
            node[p.r_i[lo:hi]] += p.r_b[lo:hi, None] * NR[:, e][None, :]
        lo, hi = p.w_ptr[e], p.w_ptr[e + 1]
        if hi > lo:
            node[p.w_i[lo:hi]] += p.w_b[lo:hi, None] * NW[:, e][None, :]
        node[bad_state[e]] = inf
        if e > 0:
            out_c = F + s[:, None] * OUT[:, e - 1][None, :]
            in_c = s[:, None] * IN[:, e - 1][None, :]
            in_c[bad_state[e - 1]] = inf           # the copy occupies its destination in e-1
            if K == 2:
                other = out_c[:, ::-1]
                src = np.broadcast_to(ar[::-1], (Nf, 2))
            else:
                a1 = np.argmin(out_c, axis=1)
                m1 = out_c[np.arange(Nf), a1]
                tmp = out_c.copy()
                tmp[np.arange(Nf), a1] = inf
                a2 = np.argmin(tmp, axis=1)
                m2 = tmp[np.arange(Nf), a2]
                is1 = ar[None, :] == a1[:, None]
                other = np.where(is1, m2[:, None], m1[:, None])
                src = np.where(is1, a2[:, None], a1[:, None])
            move = other + in_c
            moved = move < F
            if gradient:
                pred[e] = np.where(moved, src, ar[None, :])
            F = np.where(moved, move, F) + node
        else:
            F = node
        b = p.born_at[e]
        if b.size:
            nb = node[b]
            ini = p.init[b]
            fixed = ini >= 0
            if fixed.any():
                mask = np.zeros((b.size, K), bool)
                mask[fixed] = ar[None, :] != ini[fixed, None]
                nb = np.where(mask, inf, nb)
            F[b] = nb
        d = p.last_at[e]
        if d.size:
            final[d] = F[d]
    sp = final.min(axis=1) if Nf else np.zeros(0)
    if Nf and not np.all(np.isfinite(sp)):
        i = int(p.free[np.flatnonzero(~np.isfinite(sp))[0]])
        raise ValueError(f"infeasible: item {i} has no placement that fits the capacities "
                         f"at every epoch of its life")
    value = const + float(np.sum(sp))
    if not gradient:
        return _Eval(value, None, None, None)
    # ---- backtrack the paths
    states = np.full((Nf, E), -1, np.int8)
    cur = np.zeros(Nf, np.int64)
    idx = np.arange(Nf)
    for e in range(E - 1, -1, -1):
        d = p.last_at[e]
        if d.size:
            cur[d] = np.argmin(final[d], axis=1)
        alive = (p.birth <= e) & (p.death > e)
        states[alive, e] = cur[alive]
        if e > 0:
            nxt = pred[e][idx, cur]
            cur = np.where(alive & (p.birth < e), nxt, cur)
    g_lam, g_mu = _subgradient(p, lam, states)
    return _Eval(value, g_lam, g_mu, states)


def _traffic(p: _Problem, states: np.ndarray):
    """Bytes per tier and epoch of the free items on the given paths: reads, writes,
    copies in and out (in the epoch they run), occupancy (with copies in), shape (K, E)."""
    E, K = p.E, p.K
    rows = np.repeat(np.arange(E), np.diff(p.r_ptr))
    rt = states[p.r_i, rows].astype(np.int64)
    R = np.bincount(rt * E + rows, weights=p.r_b, minlength=K * E).reshape(K, E)
    wrows = np.repeat(np.arange(E), np.diff(p.w_ptr))
    wt = states[p.w_i, wrows].astype(np.int64)
    W = np.bincount(wt * E + wrows, weights=p.w_b, minlength=K * E).reshape(K, E)
    prev, cur = states[:, :-1], states[:, 1:]
    mv_i, mv_e = np.nonzero((prev >= 0) & (cur >= 0) & (prev != cur))   # copy during mv_e
    src = prev[mv_i, mv_e].astype(np.int64)
    dst = cur[mv_i, mv_e].astype(np.int64)
    sz = p.s[mv_i]
    if p.inclusive:
        keep = dst == 0
        src, dst, sz, mv_e = src[keep], dst[keep], sz[keep], mv_e[keep]
    Min = np.bincount(dst * E + mv_e, weights=sz, minlength=K * E).reshape(K, E)
    Mout = np.bincount(src * E + mv_e, weights=sz, minlength=K * E).reshape(K, E)
    occ = np.zeros((K, E))
    for k in range(K):
        occ[k] = (p.s[:, None] * (states == k)).sum(axis=0)
    occ += Min
    return R, W, Min, Mout, occ


def _subgradient(p: _Problem, lam: np.ndarray, states: np.ndarray):
    R, W, Min, Mout, occ = _traffic(p, states)
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


# =============================================================================== projection

def _project_simplex_rows(v: np.ndarray, allowed: np.ndarray,
                          blocked: np.ndarray | None = None) -> np.ndarray:
    """Euclidean projection of each column of v (J, E) onto {x >= 0, sum x <= 1}, with the
    entries where ``allowed`` is False fixed to 0.  ``blocked`` (optional, for speed: this
    runs hundreds of times per master solve) is ``np.where(allowed, 0, -1e30)``."""
    if blocked is None:
        blocked = np.where(allowed, 0.0, -1e30)
    w = v + blocked                          # a blocked entry is never positive
    x = np.maximum(w, 0.0)
    s = x.sum(axis=0)
    over = s > 1.0
    if not over.any():
        return x                             # every column sum is <= 1 already
    w = w[:, over]
    u = -np.sort(-w, axis=0)
    css = np.cumsum(u, axis=0) - 1.0
    ind = np.arange(1, u.shape[0] + 1)[:, None]
    cond = (u - css / ind) > 0
    rho = cond.shape[0] - 1 - np.argmax(cond[::-1], axis=0)
    theta = css[rho, np.arange(u.shape[1])] / (rho + 1)
    x[:, over] = _clip_sums(np.maximum(w - theta[None, :], 0.0))
    return x


def _clip_sums(x: np.ndarray) -> np.ndarray:
    """Make every column sum <= 1 in floating point (rescale the rare column over it)."""
    x = np.maximum(x, 0.0)
    s = x.sum(axis=0)
    bad = s > 1.0
    if bad.any():
        x[:, bad] = x[:, bad] / s[bad] * (1.0 - 4e-16)
        s = x.sum(axis=0)
        still = s > 1.0
        if still.any():
            x[:, still] *= (1.0 - 1e-12)
    return x


# =============================================================================== optimiser

def _allowed(p: _Problem) -> np.ndarray:
    allowed = np.ones((p.J, p.E), bool)
    if p.jc is not None:
        allowed[p.jc] = p.cut_has
    return allowed


def _initial_prices(p: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """The aggregate-bandwidth balance: per epoch, weight tier 0's device row and every
    other tier's tightest read row so that a byte read costs the same wherever it is
    (the value is then the aggregate-bandwidth bound); capacity free."""
    lam = np.zeros((p.J, p.E))
    terms = time_terms(p.inst)
    weights = []
    for k, t in enumerate(p.inst.tiers):
        name = (f"link_read[{k}]" if t.link_read_Bps is not None and t.link_read_Bps < t.bandwidth_Bps
                else f"device[{k}]")
        weights.append(([n for n, tt in enumerate(terms) if tt[0] == name][0], t.read_rate_Bps()))
    tot = sum(w for _, w in weights)
    for j, w in weights:
        lam[j] = w / tot
    return _clip_sums(lam), np.zeros((len(p.cap_tiers), p.E))


def _proj_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of a vector onto the unit simplex."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, v.size + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    theta = css[cond][-1] / rho
    return np.maximum(v - theta, 0.0)


class _Space:
    """Prices as one vector ``y = (lambda.ravel(), mu.ravel())``, scaled so that a unit step
    in a capacity price moves L about as much as one in a time price: each priced tier by
    its own room (one scale for all would let a roomy tier, e.g. 480 GB of LPDDR, freeze
    the HBM price at zero)."""

    def __init__(self, p: _Problem):
        self.p = p
        self.J, self.E, self.C = p.J, p.E, len(p.cap_tiers)
        self.nl = self.J * self.E
        self.allowed = _allowed(p)
        self.blocked = np.where(self.allowed, 0.0, -1e30)
        self.scale = np.ones(self.nl + self.C * self.E)
        if self.C:
            per_tier = 1.0 / np.maximum(np.abs(p.rooms).max(axis=1), 1.0)
            self.scale[self.nl:] = np.repeat(per_tier, self.E)

    def split(self, y):
        return y[:self.nl].reshape(self.J, self.E), y[self.nl:].reshape(self.C, self.E)

    def join(self, lam, mu):
        return np.concatenate([np.asarray(lam, float).ravel(), np.asarray(mu, float).ravel()])

    def proj(self, y):
        lam = _project_simplex_rows(y[:self.nl].reshape(self.J, self.E), self.allowed,
                                    self.blocked)
        return np.concatenate([lam.ravel(), np.maximum(y[self.nl:], 0.0)])


class _Tracker:
    """Counts oracle calls, keeps the best prices, reports progress, watches the clock."""

    def __init__(self, p, space, t_start, time_limit_s, iterations, progress):
        self.p, self.space = p, space
        self.t_start, self.time_limit_s, self.iterations = t_start, time_limit_s, iterations
        self.progress = progress
        self.calls = 0
        self.best_v, self.best_y = -math.inf, None
        self.upper = None          # the restricted master's value: an upper bound on max L
        self.phase = "bundle"
        self.target = None         # scaled; stop once the bound is this close
        self.events = None         # an EventOracle for the bundle phase (no paths), or None

    def out_of_budget(self) -> bool:
        if self.calls >= self.iterations:
            return True
        if self.target is not None and self.best_v >= self.target:
            return True
        if self.time_limit_s is None:
            return False
        elapsed = time.perf_counter() - self.t_start
        # stop before a call that would end past the limit: one more step (oracle and
        # master) plus the final value-only evaluation, at the pace so far
        per_call = elapsed / self.calls if self.calls else 0.0
        return elapsed + 2.0 * per_call >= self.time_limit_s

    def evaluate(self, y) -> _Eval:
        if self.events is not None and self.phase == "bundle":
            ev = self.events.evaluate(*self.space.split(y))     # states: None
        else:
            ev = _evaluate(self.p, *self.space.split(y))
        self.calls += 1
        if ev.value > self.best_v:
            self.best_v, self.best_y = ev.value, y.copy()
        if self.progress:
            t0 = self.p.t0
            self.progress({"phase": self.phase, "iteration": self.calls,
                           "elapsed_s": time.perf_counter() - self.t_start,
                           "bound_s": self.best_v * t0,
                           "upper_s": None if self.upper is None else self.upper * t0})
        return ev


def _solve_master(zc: np.ndarray, G: np.ndarray, off: np.ndarray, t: float, proj,
                  iters: int, alpha0: np.ndarray | None):
    """max_z min_b (off_b + G_b z) - ||z - zc||^2 / (2 t) over the price set, through its
    dual over the bundle weights alpha (a simplex): ``z(alpha) = proj(zc + t G' alpha)``;
    an accelerated projected gradient on alpha with adaptive restart, stopped by the
    duality gap.  Any alpha gives a candidate z: accuracy only affects the step, never
    the bound."""
    m = G.shape[0]
    alpha = np.full(m, 1.0 / m) if alpha0 is None or alpha0.size != m else alpha0.copy()
    Lc = t * float(np.sum(G * G)) + 1e-300
    z_a, theta = alpha.copy(), 1.0
    best_z, best_p = None, -math.inf
    phi_prev = math.inf
    for it in range(iters):
        z = proj(zc + t * (G.T @ z_a))
        Gz = G @ z
        a_new = _proj_simplex(z_a - (off + Gz) / Lc)
        th_new = 0.5 * (1 + math.sqrt(1 + 4 * theta * theta))
        z_a = a_new + ((theta - 1) / th_new) * (a_new - alpha)
        alpha, theta = a_new, th_new
        if it % 5 == 4 or it == iters - 1:
            z = proj(zc + t * (G.T @ alpha))
            Gz = G @ z
            prox = float(np.sum((z - zc) ** 2)) / (2 * t)
            phi = float(alpha @ (off + Gz)) - prox          # dual value (>= primal optimum)
            prim = float(np.min(off + Gz)) - prox           # primal value of z
            if prim > best_p:
                best_p, best_z = prim, z
            if phi > phi_prev:                               # restart the momentum
                z_a, theta = alpha.copy(), 1.0
            phi_prev = phi
            if phi - best_p <= 1e-4 * max(abs(phi - float(np.min(off + G @ zc))), 1e-12):
                break
    return best_z, alpha, float(np.min(off + G @ best_z))


def _bundle_phase(tr: _Tracker, y0: np.ndarray, max_calls: int, tol: float,
                  paths: list | None = None, max_bundle: int = 30,
                  master_iters: int = 600) -> np.ndarray:
    """Proximal bundle method on the concave dual (aggregated cutting planes, a diagonal
    metric, serious/null steps); returns the last stability center."""
    space = tr.space
    sc = space.scale

    def proj_z(z):
        return space.proj(z * sc) / sc

    y = space.proj(y0)
    ev = tr.evaluate(y)
    if paths is not None:
        paths.append(ev.states)
    g = space.join(ev.g_lam, ev.g_mu)
    Gs, offs = [g * sc], [ev.value - float(g @ y)]
    center, center_v = y, ev.value
    gg = float(np.sum((g * sc) ** 2))
    t = max(0.5 * max(abs(ev.value), 1.0) / gg, 1e-12) if gg > 0 else 1.0
    alpha = None
    start = tr.calls
    widen = resets = 0
    center_cut = (Gs[0], offs[0])
    cur_iters = MASTER_ITERS_START
    while tr.calls - start < max_calls and not tr.out_of_budget():
        # an inexact master is enough far from the optimum (any z is a valid candidate);
        # it is solved harder each time the model sees nothing better near the center
        iters = min(master_iters, cur_iters)
        z, alpha, model = _solve_master(center / sc, np.asarray(Gs), np.asarray(offs), t,
                                        proj_z, iters, alpha)
        y_new = z * sc
        pred = model - center_v
        if pred <= tol * max(abs(center_v), 1e-12):
            # the model sees nothing better near the center: look further, then (the
            # master being approximate) restart the model from the center's own cut
            widen += 1
            cur_iters = int(cur_iters * ITERS_GROW)
            if widen <= 2:
                t *= 4.0
                continue
            resets += 1
            if resets > 3:
                break
            Gs, offs, alpha, widen = [center_cut[0]], [center_cut[1]], None, 0
            t = max(t / 64.0, 1e-12)
            continue
        widen = 0
        ev = tr.evaluate(y_new)
        if paths is not None:
            paths.append(ev.states)
        g = space.join(ev.g_lam, ev.g_mu)
        Gs.append(g * sc)
        offs.append(ev.value - float(g @ y_new))
        alpha = np.concatenate([alpha, [0.0]]) if alpha is not None else None
        if ev.value - center_v >= 0.1 * pred:          # serious step
            if ev.value - center_v >= 0.5 * pred:
                t *= 2.0
            center, center_v = y_new, ev.value
            center_cut = (Gs[-1], offs[-1])
            resets = 0
        else:                                          # null step
            t *= 0.7
        if len(Gs) > max_bundle and alpha is not None:   # drop the least used cuts
            keep = np.sort(np.union1d(np.argsort(-alpha)[:max_bundle - 8], [len(Gs) - 1]))
            Gs = [Gs[k] for k in keep]
            offs = [offs[k] for k in keep]
            alpha = alpha[keep]
            alpha = alpha / alpha.sum() if alpha.sum() > 0 else None
        elif len(Gs) > max_bundle:
            Gs, offs = Gs[-(max_bundle - 8):], offs[-(max_bundle - 8):]
    return center


class _Master:
    """The restricted Dantzig-Wolfe master (primal of the disaggregated cutting-plane
    model): per item a convex combination of the paths seen so far, the epoch times, and
    the coupling rows.  Its row duals are prices; HiGHS solves it (primal simplex, warm)."""

    def __init__(self, p: _Problem):
        from hetkv_opt.milp.highs import _import_highspy, new_highs
        hs = _import_highspy()
        self.p = p
        self.h = h = new_highs()
        h.setOptionValue("simplex_scale_strategy", 0)
        h.setOptionValue("simplex_strategy", 4)         # primal: columns keep coming
        h.setOptionValue("threads", 1)
        inf = hs.kHighsInf
        E, J, C, Nf = p.E, p.J, len(p.cap_tiers), p.free.size
        self.E, self.J, self.C, self.Nf = E, J, C, Nf
        inc = p.inclusive
        self.r_cap = J * E
        self.r_split = J * E + C * E
        self.r_conv = self.r_split + (E if inc else 0)
        self.nrow = self.r_conv + Nf
        const = p.const.copy()
        rl = np.concatenate([const.ravel(), np.full(C * E, -inf),
                             np.full(E if inc else 0, -inf), np.ones(Nf)])
        ru = np.concatenate([np.full(J * E, inf), p.rooms.ravel(),
                             p.R0pin if inc else np.zeros(0), np.ones(Nf)])
        h.addRows(self.nrow, rl, ru, 0, np.zeros(self.nrow, np.int32), np.zeros(0, np.int32), np.zeros(0))
        allowed = _allowed(p)
        # tau_e >= c_e: a 1 in every time row of its epoch (rows of absent cuts: 0 too)
        rows, cols = np.nonzero(allowed.T)          # (e, j)
        idx = cols * E + rows
        self._add(np.ones(E), p.c, np.full(E, inf), rows, idx, np.ones(idx.size), E)
        if C:   # over-capacity slack at a high price keeps the master feasible
            big = 1e3 * max(float(p.tau_hi.max(initial=1.0)), 1.0)
            self._add(np.full(C * E, big), np.zeros(C * E), np.full(C * E, inf),
                      np.arange(C * E), self.r_cap + np.arange(C * E),
                      -np.full(C * E, max(float(np.max(np.abs(p.rooms))), 1.0)), C * E)
        if inc:  # h_e: bytes read from tier-0 copies
            e_idx = np.arange(E)
            coef = p.CR[:, 0] - p.CR[:, 1]
            jj, ee = np.nonzero(np.broadcast_to(coef[:, None] != 0, (J, E)))
            r = np.concatenate([jj * E + ee, self.r_split + e_idx])
            c = np.concatenate([ee, e_idx])
            v = np.concatenate([-coef[jj], np.ones(E)])
            self._add(np.zeros(E), np.zeros(E), p.Rtot.copy(), c, r, v, E)
        self.seen: set = set()
        self.num_paths = 0

    def _add(self, cost, lo, hi, col, row, val, n):
        col, row, val = np.asarray(col, np.int64), np.asarray(row, np.int64), np.asarray(val, float)
        key = col * self.nrow + row
        uk, inv = np.unique(key, return_inverse=True)
        val = np.bincount(inv, weights=val, minlength=uk.size)
        nz = val != 0
        uk, val = uk[nz], val[nz]
        col, row = uk // self.nrow, uk % self.nrow
        start = np.zeros(n, np.int64)
        start[1:] = np.cumsum(np.bincount(col, minlength=n))[:-1]
        self.h.addCols(n, np.asarray(cost, float), np.asarray(lo, float), np.asarray(hi, float),
                       int(val.size), start.astype(np.int32), row.astype(np.int32), val)

    def add_paths(self, states: np.ndarray) -> int:
        """Add every item's path from ``states`` (Nf, E) that the master does not have."""
        p = self.p
        new = []
        for i in range(self.Nf):
            key = (i, states[i].tobytes())
            if key not in self.seen:
                self.seen.add(key)
                new.append(i)
        if not new:
            return 0
        items = np.asarray(new, np.int64)
        r, c, v = _path_entries(p, states, items, self.r_cap, self.r_split, self.r_conv)
        self._add(np.zeros(items.size), np.zeros(items.size), np.full(items.size, np.inf),
                  c, r, v, items.size)
        self.num_paths += items.size
        return items.size

    def solve(self):
        """Solve; return (objective, lambda, mu) or None when HiGHS gives no duals."""
        self.h.run()
        info = self.h.getInfo()
        sol = self.h.getSolution()
        if not sol.dual_valid:
            return None
        rd = np.asarray(sol.row_dual)
        J, E, C = self.J, self.E, self.C
        lam = np.maximum(rd[:J * E].reshape(J, E), 0.0)
        mu = np.maximum(-rd[self.r_cap:self.r_cap + C * E].reshape(C, E), 0.0)
        return float(info.objective_function_value), lam, mu


def _path_entries(p: _Problem, states, items, r_cap, r_split, r_conv):
    """Master-column entries (row, local column, value) of the given items' paths."""
    E, J = p.E, p.J
    loc = np.full(p.free.size, -1, np.int64)
    loc[items] = np.arange(items.size)
    R, Cc, V = [], [], []

    def add(rows, cols, vals):
        nz = vals != 0
        R.append(rows[nz])
        Cc.append(cols[nz])
        V.append(vals[nz])

    rows_e = np.repeat(np.arange(E), np.diff(p.r_ptr))
    m = loc[p.r_i] >= 0
    ri, re, rb = p.r_i[m], rows_e[m], p.r_b[m]
    k = states[ri, re].astype(np.int64)
    if p.inclusive:      # reads of items with a copy may be served from it: split row
        add(r_split + re, loc[ri], np.where(k == 0, -rb, 0.0))
    else:
        for j in range(J):
            coef = np.where(k == 0, p.cut_B[re], 0.0) * rb if j == p.jc else p.CR[j][k] * rb
            add(j * E + re, loc[ri], -coef)
    wrows = np.repeat(np.arange(E), np.diff(p.w_ptr))
    m = loc[p.w_i] >= 0
    wi, we, wb = p.w_i[m], wrows[m], p.w_b[m]
    k = states[wi, we].astype(np.int64)
    for j in range(J):
        coef = (np.where(k == 0, p.CW[j][0], 0.0) if p.inclusive else p.CW[j][k]) * wb
        add(j * E + we, loc[wi], -coef)
    sub = states[items]
    prev, cur = sub[:, :-1], sub[:, 1:]
    mi, me = np.nonzero((prev >= 0) & (cur >= 0) & (prev != cur))    # copy during me
    a, b = prev[mi, me].astype(np.int64), cur[mi, me].astype(np.int64)
    s = p.s[items[mi]]
    if p.inclusive:
        keep = b == 0
        mi, me, a, b, s = mi[keep], me[keep], a[keep], b[keep], s[keep]
    for j in range(J):
        add(j * E + me, mi, -(p.CO[j][a] + p.CI[j][b]) * s)
    for n, kk in enumerate(p.cap_tiers):
        ii, ee = np.nonzero(sub == kk)
        add(r_cap + n * E + ee, ii, p.s[items[ii]])
        add(r_cap + n * E + me, mi, np.where(b == kk, s, 0.0))
    add(r_conv + items, np.arange(items.size), np.ones(items.size))
    return np.concatenate(R), np.concatenate(Cc), np.concatenate(V)


def _dw_phase(tr: _Tracker, y_center: np.ndarray, paths: list, tol: float) -> None:
    """Disaggregated cutting planes (Dantzig-Wolfe column generation): every oracle call
    adds each item's best path to the restricted master; the master's duals are the next
    prices.  Stops when the master's value (an upper bound on the best L) and the best L
    agree within ``tol``, when no item has a new path, or at the budget."""
    p, space = tr.p, tr.space
    tr.phase = "dw"
    master = _Master(p)
    for st in paths[-3:]:          # the warm-up's latest paths (the early ones are poor)
        master.add_paths(st)
    ev = tr.evaluate(y_center)
    master.add_paths(ev.states)
    stall = 0
    while not tr.out_of_budget():
        if tr.time_limit_s is not None:
            left = tr.time_limit_s - (time.perf_counter() - tr.t_start)
            master.h.setOptionValue("time_limit", max(left, 0.01))
        res = master.solve()
        if res is None:
            break
        obj, lam, mu = res
        tr.upper = obj if tr.upper is None else min(tr.upper, obj)
        if tr.best_v >= tr.upper - tol * max(abs(tr.upper), 1e-12):
            break
        y = space.proj(space.join(lam, mu))
        ev = tr.evaluate(y)
        added = master.add_paths(ev.states)
        if added == 0:
            stall += 1
            if stall >= 2:
                break
        else:
            stall = 0


def lagrangian_bound(inst: Instance, *, iterations: int = 300, time_limit_s: float | None = None,
                     prices=None, progress=None, target_s: float | None = None,
                     tol: float = 1e-6, master: str = "auto",
                     dw_max_item_epochs: int = 70_000,
                     stop_on_interrupt: bool = False,
                     oracle: str = "auto") -> tuple[float, "BoundCertificate"]:
    """Maximise the Lagrangian bound over the prices; return it and its certificate.

    Parameters
    ----------
    inst : Instance
    iterations : int
        Oracle calls at most (each call solves every item's shortest path once).
    time_limit_s : float, optional
        Stop after about this many seconds with the best prices so far.
    prices : BoundCertificate or (lambda, mu_s_per_byte), optional
        Warm start, e.g. the certificate of an earlier run on the same instance.
    progress : callable(dict), optional
        Called after every oracle call with ``phase``, ``iteration``, ``elapsed_s``,
        ``bound_s`` (best so far, before the margin) and ``upper_s`` (the restricted
        master's value: no price set can do better than it; None before the master runs).
    target_s : float, optional
        A known schedule time: the bundle phase stops once the bound is within ``tol``.
    tol : float
        Relative stopping tolerance.
    master : {"auto", "bundle", "dw"}
        ``bundle``: a proximal bundle method with aggregated cuts (memory O(E) per cut;
        scales to any instance).  ``dw``: a short bundle warm-up, then disaggregated
        cutting planes (Dantzig-Wolfe column generation, the master solved by HiGHS), which
        reaches the LP relaxation's value; its master grows with items x paths.
        ``auto``: ``dw`` up to ``dw_max_item_epochs`` free item-epochs, else ``bundle``.
    stop_on_interrupt : bool
        Ctrl-C (KeyboardInterrupt) ends the optimisation and returns the bound of the best
        prices so far (``metadata["interrupted"]``) instead of propagating.
    oracle : {"auto", "dense", "events"}
        The bundle master's oracle: ``dense`` steps every item through every epoch;
        ``events`` (two tiers) works only at each item's events
        (:mod:`hetkv_opt.bounds.lagrangian.events`; same value, a supergradient); ``auto`` picks
        ``events`` when the instance's events are sparse enough.  The ``dw`` master (it
        needs the paths) always uses the dense oracle; the final value comes from the
        oracle the bundle used.  ``metadata["oracle"]`` says which.

    Returns
    -------
    (bound_s, certificate)
        ``bound_s`` is proven <= T of every feasible schedule (margin subtracted).

    Raises
    ------
    ValueError
        When the instance is infeasible (an item fits no tier at some epoch) or the
        warm-start prices have the wrong shape.
    """
    if master not in ("auto", "bundle", "dw"):
        raise ValueError(f"master must be auto, bundle or dw, got {master!r}")
    if oracle not in ("auto", "dense", "events"):
        raise ValueError(f"oracle must be auto, dense or events, got {oracle!r}")
    t_start = time.perf_counter()
    p = _prepare(inst)
    space = _Space(p)
    C = space.C
    if prices is None:
        lam0, mu0 = _initial_prices(p)
    else:
        lam0, mu0s = ((prices.lam, prices.mu_s_per_byte) if isinstance(prices, BoundCertificate)
                      else prices)
        lam0, mu0 = np.asarray(lam0, float), np.asarray(mu0s, float) / p.t0
        if lam0.shape != (p.J, p.E) or mu0.shape != (C, p.E):
            raise ValueError(f"warm-start prices have shapes {lam0.shape}, {mu0.shape}; this "
                             f"instance needs {(p.J, p.E)}, {(C, p.E)}")
    tr = _Tracker(p, space, t_start, time_limit_s, max(int(iterations), 1), progress)
    if target_s is not None and target_s > 0:
        tr.target = target_s / p.t0 * (1 - tol)
    item_epochs = int((p.death - p.birth).sum())
    use_dw = master == "dw" or (master == "auto" and item_epochs <= dw_max_item_epochs)
    if not use_dw and oracle != "dense":
        from hetkv_opt.bounds.lagrangian import events as lagrangian_events
        tr.events = lagrangian_events.choose(p, force=oracle == "events")
    y0 = space.join(lam0, mu0)
    interrupted = False
    try:
        if use_dw and p.free.size:
            paths: list = []
            center = _bundle_phase(tr, y0, max_calls=min(20, max(tr.iterations // 4, 1)),
                                   tol=tol, paths=paths, master_iters=100)
            _dw_phase(tr, center, paths, tol)
        else:
            _bundle_phase(tr, y0, max_calls=tr.iterations, tol=tol * 1e-2)
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            raise
        interrupted = True        # Ctrl-C: the best prices so far still give a proof
    lam, mu = space.split(tr.best_y if tr.best_y is not None else space.proj(y0))
    lam = _clip_sums(lam.copy())
    mu_s = np.maximum(mu, 0.0) * p.t0
    final = tr.events.evaluate if tr.events is not None else (
        lambda la, m, gradient: _evaluate(p, la, m, gradient=gradient))
    value_s = final(lam, mu_s / p.t0, gradient=False).value * p.t0
    bound_s = _finish_value(inst, lam, mu_s, p.rooms, value_s)
    meta = {"method": METHOD, "master": "dw" if use_dw else "bundle",
            "oracle": "dense" if tr.events is None else "events", "oracle_calls": tr.calls,
            "runtime_s": round(time.perf_counter() - t_start, 6)}
    if interrupted:
        meta["interrupted"] = True
    if tr.upper is not None:
        meta["master_value_s"] = tr.upper * p.t0
        meta["gap_to_master"] = max(0.0, (tr.upper * p.t0 - bound_s) / (tr.upper * p.t0)) \
            if tr.upper > 0 else 0.0
    cert = BoundCertificate(
        instance_sha256=_instance_hash(inst), instance_name=inst.name, mode=inst.mode,
        terms=list(p.names), capacity_tiers=list(p.cap_tiers), lam=lam, mu_s_per_byte=mu_s,
        bound_s=bound_s, metadata=meta)
    return bound_s, cert


def solve_lagrangian(inst: Instance, *, time_limit_s: float | None = 60.0, iterations: int = 300,
                     master: str = "auto", progress=None, prices=None,
                     stop_on_interrupt: bool = False):
    """The Lagrangian bound as a :class:`hetkv_opt.solve.SolveResult` (``bound_only``).

    ``details["lagrangian"]`` holds the optimiser's counters (JSON-ready); the
    :class:`BoundCertificate` is the result's extra attribute ``certificate`` (write it with
    ``.save(path)``).

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> r = solve_lagrangian(tiny_instance())
    >>> r.status, r.bound_method, round(r.bound_s, 6)
    ('bound_only', 'lagrangian', 1.8)
    """
    from hetkv_opt.model.terms import aggregate_bound_s
    from hetkv_opt.result import finish
    from hetkv_opt.model.feasibility import capacity_precheck
    t_start = time.perf_counter()
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, METHOD, status="infeasible", t_start=t_start, message=pre)
    bounds = {"aggregate": aggregate_bound_s(inst)}
    try:
        bound, cert = lagrangian_bound(inst, iterations=iterations, time_limit_s=time_limit_s,
                                       master=master, progress=progress, prices=prices,
                                       stop_on_interrupt=stop_on_interrupt)
    except ValueError as exc:
        if str(exc).startswith("infeasible"):
            return finish(inst, METHOD, status="infeasible", bounds=bounds, t_start=t_start, message=str(exc))
        raise
    bounds[METHOD] = bound
    return finish(inst, METHOD, status="bound_only", bounds=bounds, t_start=t_start,
                  details={"lagrangian": dict(cert.metadata)}, certificate=cert)


def _finish_value(inst, lam, mu_s, rooms, value_s) -> float:
    """Turn a computed L (seconds) into a proof: allow for price sums a hair over 1 and
    subtract the rounding margin."""
    excess = max(0.0, float(np.max(lam.sum(axis=0), initial=0.0)) - 1.0)
    v = value_s / (1.0 + excess) if value_s > 0 else value_s
    return float(v - _margin(inst, lam, mu_s, rooms, value_s))


def _instance_hash(inst: Instance) -> str:
    from hetkv_opt.io.files import instance_hash
    return instance_hash(inst)


# =============================================================================== certificate

def _prices_digest(lam: np.ndarray, mu_s: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(lam, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(mu_s, dtype="<f8").tobytes())
    h.update(repr((lam.shape, mu_s.shape)).encode())
    return h.hexdigest()


@dataclass
class BoundCertificate:
    """The prices that prove a Lagrangian bound (schema ``hetkv-bound-certificate``).

    Attributes
    ----------
    instance_sha256 : str
        :func:`hetkv_opt.io.files.instance_hash` of the instance the prices are for.
    terms : list of str
        Rows of ``lam``: ``device[k]``, ``link_read[k]``, ``link_write[k]``, ``cut``.
    capacity_tiers : list of int
        Rows of ``mu_s_per_byte``.
    lam : ndarray (J, E)
        Time-row prices: >= 0, every column sums to <= 1.
    mu_s_per_byte : ndarray (C, E)
        Capacity prices (seconds per byte), >= 0.
    bound_s : float
        The bound the prices prove (margin subtracted), as claimed by the writer.
    """

    instance_sha256: str
    instance_name: str
    mode: str
    terms: list
    capacity_tiers: list
    lam: np.ndarray
    mu_s_per_byte: np.ndarray
    bound_s: float
    metadata: dict = field(default_factory=dict)

    def header(self) -> dict:
        return {"schema": SCHEMA_CERTIFICATE, "schema_version": CERTIFICATE_VERSION,
                "method": METHOD, "instance": self.instance_name,
                "instance_sha256": self.instance_sha256, "mode": self.mode,
                "terms": list(self.terms), "capacity_tiers": [int(k) for k in self.capacity_tiers],
                "bound_s": float(self.bound_s),
                "prices_sha256": _prices_digest(self.lam, self.mu_s_per_byte),
                "metadata": self.metadata}

    def to_bytes(self) -> bytes:
        buf = _io.BytesIO()
        np.savez_compressed(buf, header=np.array(json.dumps(self.header(), allow_nan=False)),
                            **{"prices.lambda": np.asarray(self.lam, "<f8"),
                               "prices.mu_s_per_byte": np.asarray(self.mu_s_per_byte, "<f8")})
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> None:
        """Write the certificate (NPZ) atomically."""
        from hetkv_opt.io.files import atomic_write_bytes
        atomic_write_bytes(path, self.to_bytes())


def load_certificate(path: str | os.PathLike) -> BoundCertificate:
    """Read a certificate file; structural problems raise :class:`CertificateError` naming
    the file, the field and the reason.  (Whether it proves anything: :func:`verify_bound`.)"""
    path = Path(path)
    try:
        return _load_certificate(path)
    except CertificateError as exc:
        raise exc.with_source(str(path)) from None


def _load_certificate(path: Path) -> BoundCertificate:
    if not path.is_file():
        raise CertificateError("(file)", "no such file")
    from hetkv_opt.io.files import read_npz_with_header
    arrays, header = read_npz_with_header(path, "certificate", CertificateError)
    if not isinstance(header, dict):
        raise CertificateError("header", "must be a JSON object")
    if header.get("schema") != SCHEMA_CERTIFICATE:
        raise CertificateError("schema", f"expected {SCHEMA_CERTIFICATE!r}, got {header.get('schema')!r}")
    if header.get("schema_version") != CERTIFICATE_VERSION:
        raise CertificateError("schema_version", f"unsupported version {header.get('schema_version')!r} "
                               f"(this reader knows {CERTIFICATE_VERSION})")
    for key, typ in (("instance_sha256", str), ("mode", str), ("terms", list),
                     ("capacity_tiers", list), ("bound_s", (int, float)), ("prices_sha256", str)):
        if key not in header:
            raise CertificateError(key, "missing required key")
        if not isinstance(header[key], typ) or isinstance(header[key], bool):
            raise CertificateError(key, "wrong type")
    for key in ("prices.lambda", "prices.mu_s_per_byte"):
        if key not in arrays:
            raise CertificateError(key, "missing required array")
        if arrays[key].dtype.kind != "f" or arrays[key].ndim != 2:
            raise CertificateError(key, f"must be a 2-D float array, got {arrays[key].dtype} "
                                   f"with {arrays[key].ndim} dimensions")
    return BoundCertificate(
        instance_sha256=header["instance_sha256"], instance_name=str(header.get("instance", "")),
        mode=header["mode"], terms=[str(t) for t in header["terms"]],
        capacity_tiers=list(header["capacity_tiers"]),
        lam=arrays["prices.lambda"].astype(float), mu_s_per_byte=arrays["prices.mu_s_per_byte"].astype(float),
        bound_s=float(header["bound_s"]), metadata=dict(header.get("metadata") or {}) | {
            "prices_sha256": header["prices_sha256"]})


# =============================================================================== verifier

def verify_bound(inst: Instance, cert: BoundCertificate | str | os.PathLike) -> float:
    """Recompute the bound from the certificate's prices alone, and check it.

    A separate, plain implementation (no code shared with the optimiser's oracle): the
    time terms and their per-item traffic are rebuilt from MODEL.md section 4, each item
    is a dynamic programme over its epochs with a full K x K transition table (numpy
    across items, one step per epoch), and the sum is taken with ``math.fsum``.

    Checks: the instance hash, the mode, the term and tier lists, the shapes, every price
    finite and >= 0, every epoch's time prices summing to <= 1, the cut price zero where
    the instance has no cut, the prices' checksum, and that the bound the certificate
    claims is the one the prices prove (relative ``1e-9``).

    Returns
    -------
    float
        The proven bound in seconds (margin subtracted).

    Raises
    ------
    CertificateError
        Naming the field and what is wrong.
    """
    if not isinstance(cert, BoundCertificate):
        cert = load_certificate(cert)
    E = inst.num_epochs
    h = _instance_hash(inst)
    if cert.instance_sha256 != h:
        raise CertificateError("instance_sha256", f"the certificate is for instance "
                               f"{cert.instance_sha256[:16]}..., not this one ({h[:16]}...)")
    if cert.mode != inst.mode:
        raise CertificateError("mode", f"{cert.mode!r} does not match the instance's {inst.mode!r}")
    names = term_names(inst)
    if list(cert.terms) != names:
        raise CertificateError("terms", f"{cert.terms} does not match the instance's {names}")
    caps = capacity_tiers(inst)
    if [int(k) for k in cert.capacity_tiers] != caps:
        raise CertificateError("capacity_tiers", f"{cert.capacity_tiers} does not match the "
                               f"instance's {caps}")
    lam = np.asarray(cert.lam, float)
    mu_s = np.asarray(cert.mu_s_per_byte, float)
    if lam.shape != (len(names), E):
        raise CertificateError("prices.lambda", f"shape {lam.shape}, expected {(len(names), E)}")
    if mu_s.shape != (len(caps), E):
        raise CertificateError("prices.mu_s_per_byte", f"shape {mu_s.shape}, expected {(len(caps), E)}")
    for label, arr in (("prices.lambda", lam), ("prices.mu_s_per_byte", mu_s)):
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            raise CertificateError(label, f"entry {tuple(bad[0].tolist())} is not finite")
        bad = np.argwhere(arr < 0)
        if bad.size:
            r, e = bad[0].tolist()
            raise CertificateError(label, f"negative price {arr[r, e]!r} (row {r}, epoch {e})")
    sums = lam.sum(axis=0)
    over = np.flatnonzero(sums > 1.0 + SUM_TOLERANCE)
    if over.size:
        e = int(over[0])
        raise CertificateError("prices.lambda", f"epoch {e}: time prices sum to {sums[e]!r} > 1")
    A_s, B_s, has = _verify_cut(inst)
    if names and names[-1] == "cut":
        bad = np.flatnonzero(~has & (lam[-1] != 0))
        if bad.size:
            raise CertificateError("prices.lambda", f"epoch {int(bad[0])}: a cut price where "
                                   f"the instance has no cut")
    digest = cert.metadata.get("prices_sha256") if cert.metadata else None
    if digest is not None and digest != _prices_digest(lam, mu_s):
        raise CertificateError("prices", "the price arrays do not match their checksum "
                               "(prices_sha256): the certificate was changed after it was written")
    value = _plain_value(inst, lam, mu_s, A_s, B_s)
    rooms = _plain_rooms(inst)
    bound = _finish_value(inst, lam, mu_s, rooms, value)
    claimed = float(cert.bound_s)
    if not math.isfinite(claimed) or abs(claimed - bound) > CLAIM_TOLERANCE * max(abs(bound), 1e-300):
        raise CertificateError("bound_s", f"the certificate claims {claimed!r} s but its prices "
                               f"prove {bound!r} s")
    return bound


def _verify_cut(inst: Instance):
    """The rounding cut, rebuilt per epoch in plain Python (seconds; see :func:`_cut`)."""
    E = inst.num_epochs
    A, B, has = np.zeros(E), np.zeros(E), np.zeros(E, bool)
    if inst.mode != "exclusive" or inst.num_tiers < 2:
        return A, B, has
    bw0 = float(inst.tiers[0].bandwidth_Bps)
    rest = 0.0
    for t in inst.tiers[1:]:
        rest += min(t.bandwidth_Bps, t.link_read_Bps) if t.link_read_Bps is not None else t.bandwidth_Bps
    g = [0] * E
    free_b = [0.0] * E
    pin0 = [0.0] * E
    tot = [0.0] * E
    for e, i, r in zip(inst.read_epoch.tolist(), inst.read_item.tolist(), inst.read_bytes.tolist()):
        tot[e] += r
        if inst.pinned_tier[i] < 0:
            g[e] = math.gcd(g[e], int(r))
            free_b[e] += r
        elif inst.pinned_tier[i] == 0:
            pin0[e] += r
    for e in range(E):
        if g[e] == 0:
            continue
        gg = float(g[e])
        n_star = (bw0 * (tot[e] - pin0[e]) - rest * pin0[e]) / (gg * (bw0 + rest))
        j = math.floor(n_star)
        frac = n_star - j
        if not (1e-9 < frac < 1 - 1e-9 and j >= 0 and j + 1 <= free_b[e] / gg):
            continue

        def f(n, e=e, gg=gg):
            return max((pin0[e] + gg * n) / bw0, (tot[e] - pin0[e] - gg * n) / rest)

        slope = f(j + 1) - f(j)
        A[e], B[e], has[e] = f(j) - slope * j, slope / gg, True
    return A, B, has


def _plain_rooms(inst: Instance) -> np.ndarray:
    """Room per priced tier and epoch for free items, gcd-rounded (plain loops)."""
    E = inst.num_epochs
    free_sizes = [int(s) for s, pin in zip(inst.size_bytes.tolist(), inst.pinned_tier.tolist()) if pin < 0]
    g = 0
    for s in free_sizes:
        g = math.gcd(g, s)
    g = g or 1
    out = []
    for k in capacity_tiers(inst):
        room = []
        mine = inst.pinned_tier == k
        for e in range(E):
            here = mine & (inst.birth <= e) & (e < inst.death)
            r = int(inst.tiers[k].capacity_bytes) - int(inst.size_bytes[here].sum())
            room.append(float((r // g) * g))
        out.append(room)
    return np.asarray(out, float).reshape(len(out), E)


def _plain_value(inst: Instance, lam: np.ndarray, mu_s: np.ndarray, A_s, B_s) -> float:
    """L in seconds, straight from MODEL.md: per epoch the convex combination of the time
    terms, evaluated on a tier-traffic vector, with one DP per item over full K x K moves."""
    E, K, N = inst.num_epochs, inst.num_tiers, inst.num_items
    inclusive = inst.mode == "inclusive"
    terms = time_terms(inst)
    J = len(terms)
    lam_t = lam[:J]
    lam_cut = lam[J] if lam.shape[0] > J else np.zeros(E)
    caps = capacity_tiers(inst)
    rooms = _plain_rooms(inst)
    mu_tier = np.zeros((K, E))
    for n, k in enumerate(caps):
        mu_tier[k] = mu_s[n]
    room_tier = np.full((K, E), np.inf)
    for n, k in enumerate(caps):
        room_tier[k] = rooms[n]

    def per_byte(kind: str, k: int) -> np.ndarray:
        """Seconds per byte of one kind of traffic on tier k, priced per epoch (E,)."""
        col = {"read": 3, "write": 4, "in": 5, "out": 6}[kind]
        v = np.zeros(E)
        for j, t in enumerate(terms):
            if t[1] == k and t[col]:
                v = v + lam_t[j] / t[2]
        return v

    read_p = np.array([per_byte("read", k) for k in range(K)])      # (K, E)
    write_p = np.array([per_byte("write", k) for k in range(K)])
    in_p = np.array([per_byte("in", k) for k in range(K)])
    out_p = np.array([per_byte("out", k) for k in range(K)])
    # constant part: compute floors and the terms' traffic of pinned items / tier 1
    total = [float(np.sum(inst.min_time_s * (1.0 - lam.sum(axis=0))))]
    total.append(float(np.sum(A_s * lam_cut)))
    total.append(-float(np.sum(mu_s * rooms)))
    rb, wb = inst.read_bytes.astype(float), inst.write_bytes.astype(float)
    pin = inst.pinned_tier
    if inclusive:
        split = np.minimum(read_p[0] - read_p[1], 0.0)   # per byte a tier-0 copy may save
        R_all = np.bincount(inst.read_epoch, weights=rb, minlength=E)
        W_all = np.bincount(inst.write_epoch, weights=wb, minlength=E)
        total.append(float(np.sum(read_p[1] * R_all + write_p[1] * W_all)))
        m = pin[inst.read_item] == 0
        total.append(float(np.sum(split * np.bincount(inst.read_epoch[m], weights=rb[m], minlength=E))))
        m = pin[inst.write_item] == 0
        w_0 = np.bincount(inst.write_epoch[m], weights=wb[m], minlength=E)
        total.append(float(np.sum(write_p[0] * w_0)))
    else:
        for k in range(K):
            m = pin[inst.read_item] == k
            r_k = np.bincount(inst.read_epoch[m], weights=rb[m], minlength=E)
            m = pin[inst.write_item] == k
            w_k = np.bincount(inst.write_epoch[m], weights=wb[m], minlength=E)
            total.append(float(np.sum(read_p[k] * r_k + write_p[k] * w_k)))
    # per-item DP over free items; dense read/write bytes per (item, epoch)
    free = np.flatnonzero(pin < 0)
    n = free.size
    if n == 0:
        return math.fsum(total)
    pos = np.full(N, -1, np.int64)
    pos[free] = np.arange(n)
    r_dense = np.zeros((n, E))
    m = pin[inst.read_item] < 0
    np.add.at(r_dense, (pos[inst.read_item[m]], inst.read_epoch[m]), rb[m])
    w_dense = np.zeros((n, E))
    m = pin[inst.write_item] < 0
    np.add.at(w_dense, (pos[inst.write_item[m]], inst.write_epoch[m]), wb[m])
    size = inst.size_bytes[free].astype(float)
    birth, death = inst.birth[free], inst.death[free]
    init = inst.initial_tier[free]
    # state cost of item in tier k at epoch e, and the cost of a copy a -> b run in epoch e
    value = np.full((n, K), np.inf)
    result = np.zeros(n)
    for e in range(E):
        cost = np.zeros((n, K))
        for k in range(K):
            if inclusive:
                if k == 0:
                    cost[:, 0] = (r_dense[:, e] * split[e] + w_dense[:, e] * write_p[0, e]
                                  + size * mu_tier[0, e])
            else:
                cost[:, k] = (r_dense[:, e] * (read_p[k, e] + (B_s[e] * lam_cut[e] if k == 0 else 0.0))
                              + w_dense[:, e] * write_p[k, e] + size * mu_tier[k, e])
            cost[size > room_tier[k, e], k] = np.inf
        if e == 0:
            new = np.full((n, K), np.inf)
        else:
            # trans[i, a, b]: copy of item i from a to b run during e-1
            trans = np.zeros((n, K, K))
            for a in range(K):
                for b in range(K):
                    if a == b:
                        continue
                    if inclusive:
                        c_ab = (size * (in_p[0, e - 1] + out_p[1, e - 1] + mu_tier[0, e - 1])
                                if (a, b) == (1, 0) else np.zeros(n))
                    else:
                        c_ab = size * (out_p[a, e - 1] + in_p[b, e - 1] + mu_tier[b, e - 1])
                    trans[:, a, b] = np.where(size > room_tier[b, e - 1], np.inf, c_ab)
            new = np.min(value[:, :, None] + trans, axis=1) + cost
        born = birth == e
        start = cost.copy()
        has_init = init >= 0
        for k in range(K):
            start[has_init & (init != k), k] = np.inf
        new[born] = start[born]
        alive = (birth <= e) & (e < death)
        value = np.where(alive[:, None], new, np.inf)
        ending = death == e + 1
        result[ending] = value[ending].min(axis=1)
    if not np.all(np.isfinite(result)):
        raise CertificateError("(instance)", "infeasible instance: an item fits no tier")
    total.extend(result.tolist())
    return math.fsum(total)
