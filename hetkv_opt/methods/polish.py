"""``polish``: a local search on each item's residency, with exact changes of T.

The flow heuristic and the LP rounding decide residency with *linear* prices, but an epoch
lasts as long as its slowest side: a schedule built from prices puts an epoch on the wrong
side of its balance point wherever the prices are off, and with high turnover (read sets
that change a lot from step to step) that is most epochs.  This pass takes any schedule
and fixes what single-item changes can fix.

A *move* sets one item's tier to ``v`` over an interval of epochs ``[a, b)`` of its life.
The intervals run between the item's *events*: its birth, its death, each epoch it is read
and the epoch after (so a move brings an item in for one read, keeps it over the gap to its
next read, lets it leave between two reads, or ends a stay early); ``v`` is tier 0 or the
item's slower tier (its *home*: the slower tier it already uses, else the one with the
fastest reads).  The change of T is computed exactly from per-epoch loads: the item's
footprint before and after (reads, writes, the copies at each change of tier, charged to
the epoch before it, and the bytes it occupies, in both tiers during a copy, as
docs/model.md section 2 says) over ``[a - 1, b + 1)``, every time term of section 4, and the
compute floor.  A move is made only when it lowers T and every capacity holds; pins and
initial tiers are kept.  A promotion that would lower T but finds tier 0 full is paired
with the eviction of another item over the blocked epochs (:data:`SWAP_CANDIDATES` of
those resident there all along, the fewest read bytes first): the pair is made when
together they lower T and fit.

Items are visited most-read first; each item takes its best improving move until it has
none, and passes repeat until one changes nothing or the deadline comes.  A move costs
O(tiers x epochs it spans); memory is the residency matrix (items x epochs, int8) and the
loads.  The result is a schedule that the caller re-scores with the evaluator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.starts import too_dense
from hetkv_opt.model.evaluate import traffic
from hetkv_opt.model.instance import Instance, accesses_by_item
from hetkv_opt.model.schedule import Schedule, residency_matrix, schedule_from_residency

#: a move spans at most this many consecutive gaps between the item's events
SPAN = 3
#: at most this many passes over the items
MAX_PASSES = 20
#: items a blocked promotion may evict (the fewest read bytes over the blocked epochs first),
#: and how many of them, the best estimated first, are measured exactly
SWAP_CANDIDATES = 16
SWAP_EXACT = 3
#: blocked promotions (the best estimated first) that may look for a swap, per item and move
SWAP_TRIES = 2


def out_of_scope(inst: Instance) -> str | None:
    """Why :func:`polish` does not apply to ``inst`` (None when it does)."""
    if inst.mode != "exclusive":
        return "inclusive mode (tier 1 holds every item; the split is the evaluator's)"
    if inst.num_tiers < 2:
        return "one tier: nothing to decide"
    return too_dense(inst, "polishing")


class Move(NamedTuple):
    """One item's tier set to ``v`` over ``[a, b)``, measured against the current loads."""

    delta_s: float       # change of T
    i: int
    a: int
    b: int
    v: int
    old: np.ndarray      # the item's tiers over [a, b) before
    dR: dict             # (tier, epoch) -> change of read-side bytes
    dW: dict             # ... write-side bytes
    dO: dict             # ... occupancy, besides the change over [a, b) itself
    tt: dict             # (tier, epoch) -> the tier's time after the move
    tau: dict            # epoch -> the epoch's time after the move
    over: np.ndarray     # epochs where tier 0 would hold more than its capacity
    fits: bool           # every capacity holds after the move


class Search:
    """The loads of a schedule (read side, write side, occupancy and time of every tier and
    epoch) and exact single-item moves on it."""

    def __init__(self, inst: Instance, schedule: Schedule):
        self.inst = inst
        self.K, self.E = inst.num_tiers, inst.num_epochs
        self.rho = residency_matrix(inst, schedule)
        tr = traffic(inst, schedule)
        self.R = tr.reads + tr.copy_out
        self.W = tr.writes + tr.copy_in
        self.occ = tr.occupancy.copy()
        tiers = inst.tiers
        self.bw = [t.bandwidth_Bps for t in tiers]
        self.lr = [math.inf if t.link_read_Bps is None else t.link_read_Bps for t in tiers]
        self.lw = [math.inf if t.link_write_Bps is None else t.link_write_Bps for t in tiers]
        self.cap = [math.inf if t.capacity_bytes is None else float(t.capacity_bytes)
                    for t in tiers]
        bw, lr, lw = self._cols = tuple(np.array(x, float)[:, None]
                                        for x in (self.bw, self.lr, self.lw))
        self.tt = np.maximum((self.R + self.W) / bw, np.maximum(self.R / lr, self.W / lw))
        self.c = np.asarray(inst.min_time_s, float)
        self.tau = np.maximum(self.c, self.tt.max(axis=0))
        self.bind = np.where(self.tt.max(axis=0) >= self.tau, self.tt.argmax(axis=0), -1)
        self.size = inst.size_bytes.astype(float)
        self.birth, self.death = inst.birth, inst.death
        self.r_ep, self.r_b, self.r_st = accesses_by_item(inst, "read")
        self.w_ep, self.w_b, self.w_st = accesses_by_item(inst, "write")

    def total_s(self) -> float:
        return float(self.tau.sum())

    def _tier_time(self, k: int, r: float, w: float) -> float:
        return max((r + w) / self.bw[k], r / self.lr[k], w / self.lw[k])

    def move(self, i: int, a: int, b: int, v: int) -> Move | None:
        """The exact effect of setting item i to tier v over [a, b) (None: no change)."""
        rho_i = self.rho[i]
        old = rho_i[a:b].copy()
        m = old != v
        if not m.any():
            return None
        b0, d0, s = int(self.birth[i]), int(self.death[i]), float(self.size[i])
        dR: dict = {}
        dW: dict = {}
        dO: dict = {}

        def add(d, key, x):
            d[key] = d.get(key, 0.0) + x

        for ep_, by, st, d in ((self.r_ep, self.r_b, self.r_st, dR),
                               (self.w_ep, self.w_b, self.w_st, dW)):
            s0, s1 = st[i], st[i + 1]
            if s1 == s0:
                continue
            lo_i, hi_i = np.searchsorted(ep_[s0:s1], (a, b))
            for e, x in zip(ep_[s0 + lo_i:s0 + hi_i].tolist(), by[s0 + lo_i:s0 + hi_i].tolist()):
                k0 = int(rho_i[e])
                if k0 != v:
                    add(d, (k0, e), -x)
                    add(d, (v, e), x)
        # the copies of the changes of tier at epochs a..b (each during the epoch before)
        t_lo, t_hi = max(a, b0 + 1), min(b, d0 - 1)
        if t_hi >= t_lo:
            for t in (np.flatnonzero(rho_i[t_lo - 1:t_hi] != rho_i[t_lo:t_hi + 1]) + t_lo).tolist():
                src, dst = int(rho_i[t - 1]), int(rho_i[t])
                add(dR, (src, t - 1), -s)
                add(dW, (dst, t - 1), -s)
                add(dO, (dst, t - 1), -s)
        if a > b0 and int(rho_i[a - 1]) != v:
            add(dR, (int(rho_i[a - 1]), a - 1), s)
            add(dW, (v, a - 1), s)
            add(dO, (v, a - 1), s)
        if b < d0 and int(rho_i[b]) != v:
            dst = int(rho_i[b])
            add(dR, (v, b - 1), s)
            add(dW, (dst, b - 1), s)
            add(dO, (dst, b - 1), s)
        # capacities: tier v over [a, b), and every other (tier, epoch) whose occupancy grows
        fits = True
        over = np.zeros(0, np.int64)
        grow_v = np.where(m, s, 0.0)
        for (k, e), x in dO.items():
            if k == v and a <= e < b:
                grow_v[e - a] += x
        if math.isfinite(self.cap[v]):
            bad = (grow_v > 0) & (self.occ[v, a:b] + grow_v > self.cap[v])
            if bad.any():
                fits = False
                if v == 0:
                    over = a + np.flatnonzero(bad)
        for (k, e), x in dO.items():
            if k == v and a <= e < b:
                continue
            net = x - (s if a <= e < b and m[e - a] and int(old[e - a]) == k else 0.0)
            if net > 0 and self.occ[k, e] + net > self.cap[k]:
                fits = False
                if k == 0:
                    over = np.union1d(over, [e])
        # the time of every epoch whose loads change
        tt: dict = {}
        tau: dict = {}
        delta = 0.0
        for e in {e for (_, e) in dR} | {e for (_, e) in dW}:
            top = self.c[e]
            for k in range(self.K):
                if (k, e) in dR or (k, e) in dW:
                    x = self._tier_time(k, self.R[k, e] + dR.get((k, e), 0.0),
                                        self.W[k, e] + dW.get((k, e), 0.0))
                    tt[(k, e)] = x
                else:
                    x = self.tt[k, e]
                top = max(top, x)
            tau[e] = top
            delta += top - self.tau[e]
        return Move(delta, i, a, b, v, old, dR, dW, dO, tt, tau, over, fits)

    def apply(self, mv: Move, sign: int = 1) -> None:
        """Make the move (``sign=-1``: undo it; the move must be the last one made)."""
        i, a, b, v, old = mv.i, mv.a, mv.b, mv.v, mv.old
        s = float(self.size[i])
        m = old != v
        idx = np.flatnonzero(m)
        self.rho[i, a:b] = v if sign > 0 else old
        self.occ[v, a:b] += sign * s * m
        np.add.at(self.occ, (old[idx].astype(np.int64), a + idx), -sign * s)
        for (k, e), x in mv.dO.items():
            self.occ[k, e] += sign * x
        for (k, e), x in mv.dR.items():
            self.R[k, e] += sign * x
        for (k, e), x in mv.dW.items():
            self.W[k, e] += sign * x
        for (k, e) in mv.tt:
            self.tt[k, e] = mv.tt[(k, e)] if sign > 0 else self._tier_time(
                k, self.R[k, e], self.W[k, e])
        for e in mv.tau:
            col = self.tt[:, e]
            self.tau[e] = max(self.c[e], float(col.max()))
            self.bind[e] = int(col.argmax()) if col.max() >= self.tau[e] else -1

    def single_deltas(self, e: np.ndarray, dR: np.ndarray, dW: np.ndarray) -> np.ndarray:
        """The exact change of each epoch ``e[n]``'s time when only the loads of that one
        epoch change, by ``dR[:, n]`` (read side) and ``dW[:, n]`` (write side)."""
        R, W = self.R[:, e] + dR, self.W[:, e] + dW
        bw, lr, lw = self._cols
        tt = np.maximum((R + W) / bw, np.maximum(R / lr, W / lw))
        return np.maximum(self.c[e], tt.max(axis=0)) - self.tau[e]

    def estimate_many(self, moves) -> np.ndarray:
        """:meth:`estimates` of the moves ``(i, a, b, v)`` given, without the changes of
        tier they may remove (cheaper; for the evictions of a swap), in one batch."""
        K = self.K
        eps, grp, src, dst, rb, wb = [], [], [], [], [], []
        for g, (i, a, b, v) in enumerate(moves):
            rho_i, s = self.rho[i], float(self.size[i])
            s0, s1 = self.r_st[i], self.r_st[i + 1]
            lo, hi = np.searchsorted(self.r_ep[s0:s1], (a, b))
            e, x = self.r_ep[s0 + lo:s0 + hi], self.r_b[s0 + lo:s0 + hi]
            cur = rho_i[e].astype(np.int64)
            keep = cur != v
            n = int(keep.sum())
            eps.append(e[keep])
            grp.append(np.full(n, g))
            src.append(cur[keep])
            dst.append(np.full(n, v))
            rb.append(x[keep])
            wb.append(np.zeros(n))
            for at, f, t in ((a - 1, int(rho_i[a - 1]) if a > self.birth[i] else v, v),
                             (b - 1, v, int(rho_i[b]) if b < self.death[i] else v)):
                if f != t:          # a copy: read from f, written to t
                    eps.append(np.array([at]))
                    grp.append(np.array([g]))
                    src.append(np.array([f]))
                    dst.append(np.array([t]))
                    rb.append(np.array([s]))
                    wb.append(np.array([s]))
        e, g = np.concatenate(eps).astype(np.int64), np.concatenate(grp).astype(np.int64)
        f, t = np.concatenate(src).astype(np.int64), np.concatenate(dst).astype(np.int64)
        r, w = np.concatenate(rb), np.concatenate(wb)
        col = np.arange(e.size)
        dR, dW = np.zeros((K, e.size)), np.zeros((K, e.size))
        # a moved read leaves tier f for tier t; a copy reads from f and writes to t
        dR[f, col] -= np.where(w > 0, -r, r)
        dR[t, col] += np.where(w > 0, 0.0, r)
        dW[t, col] += w
        return np.bincount(g, weights=self.single_deltas(e, dR, dW), minlength=len(moves))

    def estimates(self, i: int, pts: np.ndarray, pos: np.ndarray, tiers, init: int):
        """Every candidate move of item i: ``(estimate, start, end, tier)``, where the move
        sets tier ``tier`` over ``[pts[start], pts[end])`` (at most :data:`SPAN` gaps) and
        the estimate of its change of T is the sum of its parts, each measured exactly as
        if it were the only change in its epoch: every read it moves, the copy into the
        interval and the copy out of it; minus, for every change of tier it may remove,
        the most that copy can cost.  Exact for most moves (their parts fall in distinct
        epochs), it orders the candidates and skips those that cannot pay."""
        K = self.K
        b0, d0, s = int(self.birth[i]), int(self.death[i]), float(self.size[i])
        rho_i = self.rho[i]
        e = self.r_ep[self.r_st[i]:self.r_st[i + 1]]
        x = self.r_b[self.r_st[i]:self.r_st[i + 1]]
        n = len(pts)
        if n < 2:
            z = np.zeros(0, np.int64)
            return np.zeros(0), z, z, z
        ja = np.concatenate([np.arange(n - d) for d in range(1, min(SPAN, n - 1) + 1)])
        kb = np.concatenate([np.arange(d, n) for d in range(1, min(SPAN, n - 1) + 1)])
        a_ep, b_ep = pts[ja], pts[kb]
        # the changes of tier of the item's life, each charged to the epoch before
        row = rho_i[b0:d0]
        t_ch = b0 + np.flatnonzero(row[1:] != row[:-1]) + 1
        amax = np.array([max(1 / self.bw[k], 1 / self.lr[k], 1 / self.lw[k]) for k in range(K)])
        h = np.minimum(self.tau[t_ch - 1] - self.c[t_ch - 1],
                       s * (amax[rho_i[t_ch - 1]] + amax[rho_i[t_ch]]))
        hc = np.concatenate([[0.0], np.cumsum(h)])
        dropped = hc[np.searchsorted(t_ch, b_ep, side="right")] - hc[np.searchsorted(t_ch, a_ep)]
        out_e, out_j, out_k, out_v = [], [], [], []
        cur = rho_i[e].astype(np.int64)
        ar = np.arange(e.size)
        for v in tiers:
            # every read moved from its tier to v
            dR = np.zeros((K, e.size))
            dR[cur, ar] -= x
            dR[v] += x
            d_read = np.where(cur != v, self.single_deltas(e, dR, np.zeros_like(dR)), 0.0)
            pc = np.concatenate([[0.0], np.cumsum(d_read)])
            est = pc[pos[kb]] - pc[pos[ja]] - dropped
            # the copy in (during the epoch before the start) and out (during the last epoch)
            vv = np.full(a_ep.size, v)
            for idx, src, dst, when in (
                    (np.flatnonzero(a_ep > b0), rho_i[np.maximum(a_ep - 1, 0)], vv, a_ep - 1),
                    (np.flatnonzero(b_ep < d0), vv, rho_i[np.minimum(b_ep, d0 - 1)], b_ep - 1)):
                src, dst, when = src[idx].astype(np.int64), dst[idx].astype(np.int64), when[idx]
                moving = src != dst
                idx, src, dst, when = idx[moving], src[moving], dst[moving], when[moving]
                if idx.size:
                    dRc = np.zeros((K, idx.size))
                    dWc = np.zeros((K, idx.size))
                    dRc[src, np.arange(idx.size)] = s
                    dWc[dst, np.arange(idx.size)] = s
                    est[idx] += self.single_deltas(when, dRc, dWc)
            ok = ~((a_ep == b0) & (init >= 0) & (v != init))
            out_e.append(est[ok])
            out_j.append(ja[ok])
            out_k.append(kb[ok])
            out_v.append(np.full(int(ok.sum()), v))
        return (np.concatenate(out_e), np.concatenate(out_j), np.concatenate(out_k),
                np.concatenate(out_v))

    def events(self, i: int) -> np.ndarray:
        """Where a move of item i may start or end: its birth, death, reads and the epoch
        after each read."""
        b0, d0 = int(self.birth[i]), int(self.death[i])
        e = self.r_ep[self.r_st[i]:self.r_st[i + 1]]
        pts = np.unique(np.concatenate([[b0, d0], e, e + 1]))
        return pts[(pts >= b0) & (pts <= d0)]

    def home(self, i: int, default: int) -> int:
        """The slower tier item i uses (the first one in its life), else ``default``."""
        row = self.rho[i, int(self.birth[i]):int(self.death[i])]
        off = row[row > 0]
        return int(off[0]) if off.size else default


def polish(inst: Instance, schedule: Schedule, *, deadline: "Deadline | float | None" = None,
           info: dict | None = None) -> Schedule | None:
    """``schedule`` improved by single-item moves (see the module text); None when no move
    helped or the method does not apply.  ``info`` receives ``passes``, ``moves``,
    ``swaps``, ``tried``, ``finished`` and ``start_s``/``end_s`` (the search's own
    totals, which the evaluator's T matches)."""
    info = info if info is not None else {}
    why = out_of_scope(inst)
    if why:
        info["skipped"] = why
        return None
    dl = Deadline.of(deadline)
    N, E = inst.num_items, inst.num_epochs
    S = Search(inst, schedule)
    rho = S.rho
    rates = np.array([t.read_rate_Bps() for t in inst.tiers[1:]], float)
    fastest_slow = 1 + int(np.argmax(rates))
    start_s = S.total_s()
    eps = 1e-12 * start_s + 1e-300
    # the read bytes of many items over an interval at once: prefix sums by (item, epoch)
    r_key = np.repeat(np.arange(N, dtype=np.int64), np.diff(S.r_st)) * (E + 1) + S.r_ep
    r_cum = np.concatenate([[0.0], np.cumsum(S.r_b)])
    free_item = inst.pinned_tier < 0

    def swap(mv: Move):
        """Room for the promotion ``mv`` (tier 0 full at ``mv.over``): the best eviction
        of another item over the blocked epochs, as (total change of T, eviction), or
        None."""
        e1, e2 = int(mv.over[0]), int(mv.over[-1]) + 1
        cand = np.flatnonzero(np.all(rho[:, e1:e2] == 0, axis=1) & free_item)
        cand = cand[cand != mv.i]
        if cand.size == 0:
            return None
        wgt = (r_cum[np.searchsorted(r_key, cand * (E + 1) + e2)]
               - r_cum[np.searchsorted(r_key, cand * (E + 1) + e1)])
        cand = cand[np.argsort(wgt, kind="stable")[:SWAP_CANDIDATES]]
        S.apply(mv)
        # each candidate's eviction: from the event before the blocked epochs to the one
        # after, estimated first; the most promising few are measured exactly
        ev_moves = []
        for j in cand.tolist():
            pts = events[j]
            aj = int(pts[np.searchsorted(pts, e1, side="right") - 1])
            bj = int(pts[np.searchsorted(pts, e2, side="left")])
            if aj == S.birth[j] and inst.initial_tier[j] == 0:
                continue
            ev_moves.append((j, aj, bj, S.home(j, fastest_slow)))
        if not ev_moves:
            S.apply(mv, -1)
            return None
        guess = S.estimate_many(ev_moves)
        if mv.delta_s + guess.min() >= 0:
            S.apply(mv, -1)         # not even the best estimated eviction pays for it
            return None
        ev_moves = [ev_moves[k] for k in np.argsort(guess, kind="stable")]
        best = None
        for j, aj, bj, home in ev_moves[:SWAP_EXACT]:
            ev = S.move(j, aj, bj, home)
            if ev is None or not (best is None or mv.delta_s + ev.delta_s < best[0]):
                continue
            # tier 0 over the promotion's epochs once both are made (the eviction's own
            # capacity test already counts the promotion's occupancy)
            S.apply(ev)
            ok = ev.fits and not np.any(S.occ[0, mv.a - 1 if mv.a > 0 else 0:mv.b] > S.cap[0])
            S.apply(ev, -1)
            if ok:
                best = (mv.delta_s + ev.delta_s, ev)
        S.apply(mv, -1)
        return best

    free = np.flatnonzero(free_item)
    events = [S.events(i) if free_item[i] else None for i in range(N)]
    weight = np.bincount(inst.read_item, weights=inst.read_bytes.astype(float), minlength=N)
    order = free[np.argsort(-weight[free], kind="stable")]
    passes = moves = swaps = tried = 0
    finished = True
    while passes < MAX_PASSES:
        passes += 1
        changed = 0
        for i in order.tolist():
            if dl.expired():
                finished = False
                break
            pts = events[i]
            pos = np.searchsorted(S.r_ep[S.r_st[i]:S.r_st[i + 1]], pts)
            init = int(inst.initial_tier[i])
            while not dl.expired():
                home = S.home(i, fastest_slow)
                best = None
                # candidate moves, the most promising first (see :meth:`Search.estimates`);
                # none is tried whose estimate cannot beat the best move measured so far
                est, ja, kb, vs = S.estimates(i, pts, pos, (0, home), init)
                swaps_left = SWAP_TRIES
                for c in np.argsort(est, kind="stable").tolist():
                    if dl.expired() or est[c] >= -eps or (best is not None and est[c] >= best[0]):
                        break
                    a, b, v = int(pts[ja[c]]), int(pts[kb[c]]), int(vs[c])
                    mv = S.move(i, a, b, v)
                    if mv is None or mv.delta_s >= -eps:
                        continue
                    tried += 1
                    if mv.fits:
                        if best is None or mv.delta_s < best[0]:
                            best = (mv.delta_s, mv, None)
                    elif v == 0 and mv.over.size and swaps_left > 0 and \
                            (best is None or mv.delta_s < best[0]):
                        swaps_left -= 1
                        pair = swap(mv)
                        if pair is not None and pair[0] < -eps and (best is None or pair[0] < best[0]):
                            best = (pair[0], mv, pair[1])
                if best is None:
                    break
                S.apply(best[1])
                if best[2] is not None:
                    S.apply(best[2])     # measured in this very state (the promotion made)
                    swaps += 1
                changed += 1
            if not finished:
                break
        moves += changed
        if not finished or changed == 0:
            break
    info.update({"passes": passes, "moves": moves, "swaps": swaps, "tried": tried,
                 "finished": finished, "start_s": start_s, "end_s": S.total_s()})
    if moves == 0:
        return None
    return schedule_from_residency(inst, rho)


__all__ = ["Move", "Search", "out_of_scope", "polish"]
