"""An event-compressed oracle for the Lagrangian bound (two tiers; exclusive or inclusive).

The dense oracle (:func:`hetkv_opt.bounds.lagrangian.oracle.evaluate`) steps every free item through
every epoch of its life.  Between two *events* of an item (its birth, an epoch where it is
read or written, its last epoch) nothing about the item changes but its residency price
and the possible copies, and with per-byte prices those depend only on the item's size.
So, per distinct free-item size ``s``:

- ``P_e`` (e = 1..E-1) is the 2x2 min-plus step matrix of the transition e-1 -> e:
  ``P_e[a, b] = copy(a -> b, run during e-1) + s NS[b, e]``, the copy costing
  ``s (OUT[a, e-1] + IN[b, e-1])`` and +inf where b has no room for the item during e-1,
  the residency +inf where b has no room at e (the dense oracle's ``bad_state``);
- a binary-lifting table ``T[j][e] = P_{e+1} (x) ... (x) P_{e+2^j}`` (min-plus), built with
  one vectorised product per level, keeps for each entry the middle state of its best
  path (``MID``) and whether the best a -> a path stays in a throughout (``STAY``).

Each item's shortest path then jumps from event to event, ``F_k = F_{k-1} (x) M_k +
(read and write costs at event k)``, where the gap matrix ``M_k`` is assembled from the
table entries of the binary digits of the gap, vectorised over every event of every item
(one product per table level); the recursion itself is one vectorised step per event
*rank* (the k-th event of all items at once).  Per-item work is O(events x log E) instead
of O(life).

The supergradient needs the traffic of the optimal paths: states at events by
backtracking (per rank), reads and writes at events, and, between events, the path inside
the gap: most gaps are a constant run (same state at both ends and the table says staying
is optimal: one interval in a difference array); the others are expanded through the
table's ``MID`` entries down to single steps, only where the path moves.

Inclusive mode is the same recursion on the prices of
:func:`hetkv_opt.bounds.lagrangian.problem.tier_prices` (state 0 = "has a tier-0 copy"; a demotion
is free) with the dense oracle's inclusive supergradient.  The constant part of L
(:func:`~hetkv_opt.bounds.lagrangian.problem.constant_term`) and the supergradient from the
paths' traffic (:func:`~hetkv_opt.bounds.lagrangian.problem.gradient_from_traffic`) are the
dense oracle's own functions.

The value equals the dense oracle's up to floating-point reassociation (the same sums
in another order); the supergradient is the dense one up to ties between equally cheap
paths (both are supergradients).  :func:`hetkv_opt.bounds.lagrangian.verify.verify_bound` stays
dense and independent.

Examples
--------
>>> from hetkv_opt.workloads.drift import drift_instance
>>> from hetkv_opt.bounds.lagrangian.problem import prepare
>>> from hetkv_opt.bounds.lagrangian.master import initial_prices
>>> from hetkv_opt.bounds.lagrangian.oracle import evaluate
>>> p = prepare(drift_instance(blocks=12, steps=6))
>>> lam, mu = initial_prices(p)
>>> oracle = EventOracle(p)
>>> abs(oracle.evaluate(lam, mu).value - evaluate(p, lam, mu).value) < 1e-9
True
"""

from __future__ import annotations

import numpy as np

from hetkv_opt.bounds.lagrangian.problem import (Eval, constant_term, gradient_from_traffic,
                                                 paths_value, tier_prices)
from hetkv_opt.model.instance import sorted_unique

#: ``auto`` uses the event oracle when events / free item-epochs is at most this
#: (benchmarks/bench_lagrangian_events.py, time per call vs the dense oracle: 0.8x at
#: density 1.0 and 0.8 (drift, sparsity 0 and 0.2), 1.4x at 0.40 (drift 1024x256),
#: 4.7x at 0.15 (4 layers), 8.5x at 0.077 (8 layers), 28x at 0.019 (32 layers)); its
#: memory is about 200 bytes per event during a call (plus about 90 held) against the
#: dense oracle's 15-21 per item-epoch, so single-layer instances (density ~0.4) stay dense
AUTO_MAX_DENSITY = 0.25
#: ``auto`` needs at least this many free item-epochs (below it, both are fast)
AUTO_MIN_ITEM_EPOCHS = 100_000
#: the event oracle builds one table per distinct free-item size: at most this many
MAX_SIZES = 8


def applicable(p) -> bool:
    """Whether the event oracle handles this problem (two tiers, either mode, few distinct
    free-item sizes, at least one free item)."""
    return p.K == 2 and p.free.size > 0 and np.unique(p.s).size <= MAX_SIZES


def choose(p, *, force: bool = False, sparse_only: bool = False):
    """The event oracle for ``p`` when it pays (``force``: whenever it applies), else None
    (``sparse_only``: True instead of building it when the count of events is surely low).

    ``auto`` rule: at least :data:`AUTO_MIN_ITEM_EPOCHS` free item-epochs and at most
    :data:`AUTO_MAX_DENSITY` events per free item-epoch.

    Raises
    ------
    ValueError
        ``force`` on a problem the event oracle does not handle.
    """
    if p.free.size == 0:
        return None                      # nothing to solve: the dense oracle is instant
    if not applicable(p):
        if force:
            raise ValueError("oracle 'events' needs two tiers and at most "
                             f"{MAX_SIZES} distinct free-item sizes")
        return None
    item_epochs = int((p.death - p.birth).sum())
    if not force:
        # an upper bound on the events, before building anything
        most = 2 * p.free.size + p.r_i.size + p.w_i.size
        if item_epochs < AUTO_MIN_ITEM_EPOCHS or most > AUTO_MAX_DENSITY * item_epochs * 2:
            return None
        if sparse_only and most <= AUTO_MAX_DENSITY * item_epochs:
            return True                   # sparse enough whatever the true count
    oracle = EventOracle(p)
    if not force and oracle.density > AUTO_MAX_DENSITY:
        return None
    return oracle


def _mp(A, B):
    """Min-plus product of 2x2 matrices stored as (4, n) = (00, 01, 10, 11) rows."""
    return np.stack([np.minimum(A[0] + B[0], A[1] + B[2]),
                     np.minimum(A[0] + B[1], A[1] + B[3]),
                     np.minimum(A[2] + B[0], A[3] + B[2]),
                     np.minimum(A[2] + B[1], A[3] + B[3])])


def _mp_mid(A, B):
    """Min-plus product and the middle state of each entry's best path (ties: the row's
    state, i.e. stay as long as it costs nothing more), as (4, n) int8."""
    c = [(A[0] + B[0], A[1] + B[2]), (A[0] + B[1], A[1] + B[3]),
         (A[2] + B[0], A[3] + B[2]), (A[2] + B[1], A[3] + B[3])]
    C = np.stack([np.minimum(x, y) for x, y in c])
    mid = np.stack([c[0][1] < c[0][0], c[1][1] < c[1][0],
                    c[2][1] <= c[2][0], c[3][1] <= c[3][0]]).astype(np.int8)
    return C, mid

def build_tables(sizes, levels: int, room, NS, OUT, IN):
    """The binary-lifting tables of the step matrices at given prices: T (G, levels, 4, E),
    MID (G, levels, 4, E) int8 (level 0 unused) and STAY (G, levels, 2, E) bool, for every
    distinct free-item size (``room``: the bytes each tier has for free items, (2, E))."""
    E, Lv = NS.shape[1], levels
    G = sizes.size
    inf = np.inf
    T = np.full((G, Lv, 4, E), inf)
    MID = np.zeros((G, Lv, 4, E), np.int8)
    STAY = np.zeros((G, Lv, 2, E), bool)
    for g, sg in enumerate(sizes):
        bad = sg > room                                       # (2, E)
        node = np.where(bad, inf, sg * NS)                    # residency at e
        if E < 2:
            continue
        cin = np.where(bad[:, :-1], inf, sg * IN[:, :-1])     # copy into b during e
        cout = sg * OUT[:, :-1]
        n0, n1 = node[0, 1:], node[1, 1:]
        T[g, 0, 0, :E - 1] = n0
        T[g, 0, 1, :E - 1] = cout[0] + cin[1] + n1
        T[g, 0, 2, :E - 1] = cout[1] + cin[0] + n0
        T[g, 0, 3, :E - 1] = n1
        STAY[g, 0, :, :E - 1] = True
        for j in range(1, Lv):
            h = 1 << (j - 1)
            m = E - 1 - 2 * h + 1            # entries e with e + 2^j <= E - 1
            if m <= 0:
                break
            A = T[g, j - 1, :, :m]
            B = T[g, j - 1, :, h:h + m]
            C, mid = _mp_mid(A, B)
            T[g, j, :, :m] = C
            MID[g, j, :, :m] = mid
            S = STAY[g, j - 1]
            STAY[g, j, 0, :m] = (mid[0] == 0) & S[0, :m] & S[0, h:h + m]
            STAY[g, j, 1, :m] = (mid[3] == 1) & S[1, :m] & S[1, h:h + m]
    return T, MID, STAY


class EventOracle:
    """The event-compressed oracle for one prepared problem (see the module docstring).

    Built once per :class:`hetkv_opt.bounds.lagrangian.problem.Problem` (the static event
    structure); :meth:`evaluate` takes the prices like the dense oracle and returns an
    :class:`~hetkv_opt.bounds.lagrangian.problem.Eval` without ``states``.
    """

    def __init__(self, p, sizes: np.ndarray | None = None):
        if not applicable(p):
            raise ValueError("the event oracle needs two tiers and at most "
                             f"{MAX_SIZES} distinct free-item sizes")
        self.p = p
        E, Nf = p.E, p.free.size
        self.E, self.Nf = E, Nf
        if sizes is None:                 # the tables' sizes: this problem's own, or shared
            sizes, grp = np.unique(p.s, return_inverse=True)
        else:                             # with other parts of one instance (parts.py)
            sizes = np.asarray(sizes, float)
            grp = np.searchsorted(sizes, p.s)
            if np.any(grp >= sizes.size) or np.any(sizes[np.minimum(grp, sizes.size - 1)] != p.s):
                raise ValueError("the shared sizes miss some of this problem's item sizes")
        self.sizes, self.grp = sizes, grp.astype(np.int64)
        r_ep = np.repeat(np.arange(E), np.diff(p.r_ptr))
        w_ep = np.repeat(np.arange(E), np.diff(p.w_ptr))
        items = np.arange(Nf, dtype=np.int64)
        r_key = p.r_i * E + r_ep
        w_key = p.w_i * E + w_ep
        keys = sorted_unique(np.concatenate([items * E + p.birth, items * E + p.death - 1,
                                             r_key, w_key]))
        n = keys.size
        self.n_ev = n
        ev_item = keys // E
        ev_ep = keys % E
        self.ev_item, self.ev_ep = ev_item, ev_ep
        self.ev_rb = np.bincount(np.searchsorted(keys, r_key), weights=p.r_b, minlength=n)
        self.ev_wb = np.bincount(np.searchsorted(keys, w_key), weights=p.w_b, minlength=n)
        cnt = np.bincount(ev_item, minlength=Nf)
        first = np.zeros(Nf, np.int64)
        np.cumsum(cnt[:-1], out=first[1:])
        self.first, self.last = first, first + cnt - 1
        is_first = np.zeros(n, bool)
        is_first[first] = True
        prev_ep = np.where(is_first, ev_ep, np.roll(ev_ep, 1))
        self.prev_ep = prev_ep
        self.gap = ev_ep - prev_ep                     # 0 at first events
        self.ev_grp = self.grp[ev_item]
        self.ev_size = p.s[ev_item]
        # the k-th event of every item that has one, k = 1, 2, ...
        order = np.argsort(-cnt, kind="stable")
        first_sorted = first[order]
        cnt_sorted = cnt[order]
        self.maxc = int(cnt.max())
        self.rank_pos = [first_sorted[:int(np.searchsorted(-cnt_sorted, -k, side="left"))] + k
                         for k in range(1, self.maxc)]
        # binary digits of the gaps: level j (largest first) and the table position
        max_gap = int(self.gap.max(initial=0))
        self.levels = max(max_gap.bit_length(), 1)
        self.digits = []        # (j, events whose first digit is j, their table position,
        for j in range(self.levels - 1, -1, -1):          # events with a later digit j, ...)
            bit = ((self.gap >> j) & 1).astype(bool)
            top = bit & ((self.gap >> (j + 1)) == 0)
            idx_top = np.flatnonzero(top)
            idx = np.flatnonzero(bit & ~top)
            pos = prev_ep[idx] + ((self.gap[idx] >> (j + 1)) << (j + 1))
            self.digits.append((j, idx_top, prev_ep[idx_top], idx, pos))
        self.item_epochs = int((p.death - p.birth).sum())

    @property
    def density(self) -> float:
        """Events per free item-epoch (the dense oracle's unit of work)."""
        return self.n_ev / max(self.item_epochs, 1)

    # ------------------------------------------------------------------ tables

    def _tables(self, NS, OUT, IN):
        return build_tables(self.sizes, self.levels, self.p.room_full, NS, OUT, IN)

    def _gather(self, arr, j, pos, grp):
        if self.sizes.size == 1:
            return arr[0, j][:, pos]
        return arr[grp, j, :, pos].T

    # ------------------------------------------------------------------ oracle

    def evaluate(self, lam, mu, *, gradient: bool = True):
        """L at the prices (``Eval``; with ``gradient`` a supergradient too)."""
        p = self.p
        prices = tier_prices(p, lam, mu)
        tables = self._tables(*prices[2:])
        shortest, traffic = self.paths(prices, tables, gradient=gradient)
        value = paths_value(p, shortest, constant_term(p, lam, mu))
        if not gradient:
            return Eval(value, None, None, None)
        return Eval(value, *gradient_from_traffic(p, lam, *traffic), None)

    def paths(self, prices, tables, *, gradient: bool = True):
        """Every free item's shortest path at the given :func:`tier_prices` and
        :func:`build_tables` (built with at least this oracle's ``levels``): the path costs
        (per free item, scaled) and, with ``gradient``, the traffic of the paths ``(R, W,
        Min, Mout, occ)`` (bytes per tier and epoch: whole numbers, so sums over parts are
        exact in any order)."""
        p, n = self.p, self.n_ev
        inf = np.inf
        NR, NW, NS, OUT, IN = prices
        T, MID, STAY = tables
        # gap matrices M (4, n): identity at first events
        M = np.empty((4, n))
        M[0] = 0.0
        M[1] = inf
        M[2] = inf
        M[3] = 0.0
        stay = np.ones((2, n), bool)    # the best a -> a path of the gap stays in a
        for j, idx_top, pos_top, idx, pos in self.digits:
            if idx_top.size:              # the gap's first piece: M = T[j][pos]
                g = self.ev_grp[idx_top]
                M[:, idx_top] = self._gather(T, j, pos_top, g)
                if gradient and j > 0:
                    stay[:, idx_top] = self._gather(STAY, j, pos_top, g)
            if idx.size == 0:
                continue
            g = self.ev_grp[idx]
            Q = self._gather(T, j, pos, g)
            A = M[:, idx]
            if gradient:
                s0 = A[0] + Q[0] <= A[1] + Q[2]
                s1 = A[3] + Q[3] <= A[2] + Q[1]
                if j > 0:
                    S = self._gather(STAY, j, pos, g)
                    s0 &= S[0]
                    s1 &= S[1]
                stay[0, idx] &= s0
                stay[1, idx] &= s1
            M[:, idx] = _mp(A, Q)
        # event costs: reads and writes at the event, residency at first events
        ep = self.ev_ep
        X0 = self.ev_rb * NR[0, ep] + self.ev_wb * NW[0, ep]
        X1 = self.ev_rb * NR[1, ep] + self.ev_wb * NW[1, ep]
        F0 = np.empty(n)
        F1 = np.empty(n)
        fi = self.first
        sf = self.ev_size[fi]
        b = ep[fi]
        room = p.room_full
        F0[fi] = np.where(sf > room[0, b], inf, sf * NS[0, b]) + X0[fi]
        F1[fi] = np.where(sf > room[1, b], inf, sf * NS[1, b]) + X1[fi]
        init = p.init
        F0[fi[init == 1]] = inf
        F1[fi[init == 0]] = inf
        for pos in self.rank_pos:
            a0, a1 = F0[pos - 1], F1[pos - 1]
            F0[pos] = np.minimum(a0 + M[0, pos], a1 + M[2, pos]) + X0[pos]
            F1[pos] = np.minimum(a0 + M[1, pos], a1 + M[3, pos]) + X1[pos]
        la = self.last
        shortest = np.minimum(F0[la], F1[la])
        if not gradient:
            return shortest, None
        # ---- states at events
        # the state before each gap given the state after it (ties: the same state)
        del X0, X1
        ch0 = np.zeros(n, bool)                        # into 0: from 1?
        ch1 = np.ones(n, bool)                         # into 1: from 1?
        ch0[1:] = F1[:-1] + M[2, 1:] < F0[:-1] + M[0, 1:]
        ch1[1:] = ~(F0[:-1] + M[1, 1:] < F1[:-1] + M[3, 1:])
        x = np.zeros(n, np.int8)
        x[la] = F1[la] < F0[la]
        del F0, F1
        for pos in reversed(self.rank_pos):
            x[pos - 1] = np.where(x[pos] == 0, ch0[pos], ch1[pos])
        del M, ch0, ch1
        return shortest, self._traffic(x, stay, T, MID, STAY)

    # ------------------------------------------------------------------ traffic

    def _traffic(self, x, stay, T, MID, STAY):
        p, E, n = self.p, self.E, self.n_ev
        K = 2
        xi = x.astype(np.int64)
        ep = self.ev_ep
        R = np.bincount(xi * E + ep, weights=self.ev_rb, minlength=K * E).reshape(K, E)
        W = np.bincount(xi * E + ep, weights=self.ev_wb, minlength=K * E).reshape(K, E)
        is_first = self.gap == 0
        xprev = np.empty(n, np.int64)
        xprev[1:] = xi[:-1]
        xprev[is_first] = xi[is_first]
        trivial = is_first | ((xprev == xi) & stay[xi, np.arange(n)])
        # constant runs: the event's state over (prev event, event]
        t = np.flatnonzero(trivial)
        starts = [np.where(is_first[t], ep[t], self.prev_ep[t] + 1)]
        ends = [ep[t]]
        st = [xi[t]]
        sz = [self.ev_size[t]]
        mv_e, mv_a, mv_b, mv_s = [], [], [], []
        hard = np.flatnonzero(~trivial)
        if hard.size:
            # recompose the gap, keeping the middle states of the start state's row
            a0 = xprev[hard]
            gap, prev = self.gap[hard], self.prev_ep[hard]
            grp = self.ev_grp[hard]
            M0 = np.where(a0 == 0, 0.0, np.inf)
            M1 = np.where(a0 == 1, 0.0, np.inf)
            recs = []
            for j in range(self.levels - 1, -1, -1):
                sel = np.flatnonzero((gap >> j) & 1)
                if sel.size == 0:
                    continue
                pos = prev[sel] + ((gap[sel] >> (j + 1)) << (j + 1))
                Q = self._gather(T, j, pos, grp[sel])
                A0, A1 = M0[sel], M1[sel]
                c00, c10 = A0 + Q[0], A1 + Q[2]        # into state 0 via 0 / via 1
                c01, c11 = A0 + Q[1], A1 + Q[3]
                ar = a0[sel]
                mid0 = np.where(ar == 0, c10 < c00, c10 <= c00).astype(np.int8)
                mid1 = np.where(ar == 0, c11 < c01, c11 <= c01).astype(np.int8)
                M0[sel] = np.minimum(c00, c10)
                M1[sel] = np.minimum(c01, c11)
                recs.append((j, sel, pos, mid0, mid1))
            cur = xi[hard].copy()
            pj, pp, pa, pb, pg = [], [], [], [], []
            for j, sel, pos, mid0, mid1 in reversed(recs):
                after = cur[sel]
                before = np.where(after == 0, mid0, mid1).astype(np.int64)
                pj.append(np.full(sel.size, j))
                pp.append(pos)
                pa.append(before)
                pb.append(after)
                pg.append(grp[sel])
                cur[sel] = before
            pj, pp, pa, pb, pg = (np.concatenate(v) for v in (pj, pp, pa, pb, pg))
            while pj.size:
                psize = self.sizes[pg]
                leaf = pj == 0
                if leaf.any():
                    l = np.flatnonzero(leaf)
                    starts.append(pp[l] + 1)
                    ends.append(pp[l] + 1)
                    st.append(pb[l])
                    sz.append(psize[l])
                    m = l[pa[l] != pb[l]]
                    mv_e.append(pp[m])
                    mv_a.append(pa[m])
                    mv_b.append(pb[m])
                    mv_s.append(psize[m])
                inner = np.flatnonzero(~leaf)
                if inner.size == 0:
                    break
                j, pos, a, b, g = pj[inner], pp[inner], pa[inner], pb[inner], pg[inner]
                sflag = (a == b) & STAY[g, j, a, pos]
                c = np.flatnonzero(sflag)
                starts.append(pos[c] + 1)
                ends.append(pos[c] + (1 << j[c]))
                st.append(a[c])
                sz.append(self.sizes[g[c]])
                d = np.flatnonzero(~sflag)
                j, pos, a, b, g = j[d], pos[d], a[d], b[d], g[d]
                m = MID[g, j, 2 * a + b, pos].astype(np.int64)
                h = 1 << (j - 1)
                pj = np.concatenate([j - 1, j - 1])
                pp = np.concatenate([pos, pos + h])
                pa = np.concatenate([a, m])
                pb = np.concatenate([m, b])
                pg = np.concatenate([g, g])
        starts, ends, st, sz = (np.concatenate(v) for v in (starts, ends, st, sz))
        diff = np.bincount(st * (E + 1) + starts, weights=sz, minlength=K * (E + 1))
        diff -= np.bincount(st * (E + 1) + ends + 1, weights=sz, minlength=K * (E + 1))
        occ = np.cumsum(diff.reshape(K, E + 1), axis=1)[:, :E]
        if mv_e:
            mv_e, mv_a, mv_b, mv_s = (np.concatenate(v) for v in (mv_e, mv_a, mv_b, mv_s))
        else:
            mv_e = mv_a = mv_b = np.zeros(0, np.int64)
            mv_s = np.zeros(0)
        if p.inclusive:              # a demotion 0 -> 1 drops the tier-0 copy: no traffic
            keep = mv_b == 0
            mv_e, mv_a, mv_b, mv_s = mv_e[keep], mv_a[keep], mv_b[keep], mv_s[keep]
        Min = np.bincount(mv_b * E + mv_e, weights=mv_s, minlength=K * E).reshape(K, E)
        Mout = np.bincount(mv_a * E + mv_e, weights=mv_s, minlength=K * E).reshape(K, E)
        occ = occ + Min
        return R, W, Min, Mout, occ


__all__ = ["AUTO_MAX_DENSITY", "AUTO_MIN_ITEM_EPOCHS", "EventOracle", "applicable", "build_tables",
           "choose"]
