"""The dense oracle of the Lagrangian bound: L and a supergradient at given prices, every
free item's shortest path through its own time line (one state per tier per epoch, pins
and the initial tier respected) solved at once with numpy, one step per epoch.

The paths are kept (``Eval.states``): the Dantzig-Wolfe master adds them as columns.  The
event oracle (:mod:`hetkv_opt.bounds.lagrangian.events`) gives the same value faster on
sparse two-tier instances, without the paths.

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.bounds.lagrangian.problem import prepare
>>> p = prepare(tiny_instance())
>>> ev = evaluate(p, np.zeros((p.J, p.E)), np.zeros((len(p.cap_tiers), p.E)))
>>> ev.value == float(p.c.sum()), ev.g_lam.shape, ev.states.shape
(True, (5, 3), (3, 3))
"""

from __future__ import annotations

import numpy as np

from hetkv_opt.bounds.lagrangian.problem import (Eval, Problem, constant_term, paths_value,
                                                 gradient_from_traffic, tier_prices)


def evaluate(p: Problem, lam: np.ndarray, mu: np.ndarray, *, gradient: bool = True) -> Eval:
    """L(lambda, mu) and a supergradient, every item's shortest path solved at once."""
    E, K, Nf = p.E, p.K, p.free.size
    NR, NW, NS, OUT, IN = tier_prices(p, lam, mu)
    s = p.s
    inf = np.inf
    const = constant_term(p, lam, mu)
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
    value = paths_value(p, final.min(axis=1) if Nf else np.zeros(0), const)
    if not gradient:
        return Eval(value, None, None, None)
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
    g_lam, g_mu = subgradient(p, lam, states)
    return Eval(value, g_lam, g_mu, states)


def traffic(p: Problem, states: np.ndarray):
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


def subgradient(p: Problem, lam: np.ndarray, states: np.ndarray):
    """The supergradient of L at ``lam`` whose optimal paths are ``states`` (Nf, E)."""
    return gradient_from_traffic(p, lam, *traffic(p, states))


__all__ = ["evaluate", "subgradient", "traffic"]
