"""The verifier of a Lagrangian certificate: the bound recomputed from the prices alone.

Deliberately a second implementation.  The per-item dynamic programme (full K x K
transitions, ``math.fsum``), the constant part of L (in seconds, from per-byte prices
rebuilt term by term from docs/model.md section 4), the rounding cut (:func:`_verify_cut`) and
the capacity rooms (:func:`_plain_rooms`) are written here again, in plain loops, rather
than taken from the optimiser's oracle (:mod:`hetkv_opt.bounds.lagrangian.problem`,
:mod:`hetkv_opt.bounds.lagrangian.oracle`) or from :mod:`hetkv_opt.model.terms`: a slip in
one copy then shows as a certificate whose claimed bound the verifier refuses, instead of
a wrong bound both agree on.  Shared with the optimiser: the row lists
(:func:`~hetkv_opt.model.terms.time_terms`, ``term_names``, ``capacity_tiers``: checked
against the certificate's own lists) and the final rounding margin
(:func:`hetkv_opt.bounds.lagrangian.problem.finish_value`).

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound
>>> bound, cert = lagrangian_bound(tiny_instance(), iterations=50)
>>> abs(verify_bound(tiny_instance(), cert) - bound) <= 1e-9 * bound
True
"""

from __future__ import annotations

import math
import os

import numpy as np

from hetkv_opt.bounds.lagrangian.certificate import (BoundCertificate, CertificateError,
                                                     load_certificate, prices_digest)
from hetkv_opt.bounds.lagrangian.problem import finish_value
from hetkv_opt.io.files import instance_hash
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.terms import capacity_tiers, term_names, time_terms

#: a price sum may exceed 1 by this much (rounding); the bound is divided by (1 + excess)
SUM_TOLERANCE = 1e-12
#: verify_bound refuses a certificate whose claimed bound differs from the recomputed one
#: by more than this relative amount
CLAIM_TOLERANCE = 1e-9


def verify_bound(inst: Instance, cert: BoundCertificate | str | os.PathLike) -> float:
    """Recompute the bound from the certificate's prices alone, and check it.

    A separate, plain implementation (no code shared with the optimiser's oracle): the
    time terms and their per-item traffic are rebuilt from docs/model.md section 4, each item
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
    h = instance_hash(inst)
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
    if digest is not None and digest != prices_digest(lam, mu_s):
        raise CertificateError("prices", "the price arrays do not match their checksum "
                               "(prices_sha256): the certificate was changed after it was written")
    value = _plain_value(inst, lam, mu_s, A_s, B_s)
    rooms = _plain_rooms(inst)
    bound = finish_value(inst, lam, mu_s, rooms, value)
    claimed = float(cert.bound_s)
    if not math.isfinite(claimed) or abs(claimed - bound) > CLAIM_TOLERANCE * max(abs(bound), 1e-300):
        raise CertificateError("bound_s", f"the certificate claims {claimed!r} s but its prices "
                               f"prove {bound!r} s")
    return bound


def _verify_cut(inst: Instance):
    """The rounding cut, rebuilt per epoch in plain Python (seconds; the same rule as
    :func:`hetkv_opt.model.terms.rounding_cut`, written again on purpose: see the module
    docstring)."""
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
    """Room per priced tier and epoch for free items, gcd-rounded (plain loops; the same
    numbers as :func:`hetkv_opt.model.terms.capacity_rooms`, written again on purpose)."""
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
    """L in seconds, straight from docs/model.md: per epoch the convex combination of the time
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


__all__ = ["CLAIM_TOLERANCE", "SUM_TOLERANCE", "verify_bound"]
