"""``split``: a balanced static placement, found by local search in O(reads) per round.

HBM and the off-package tier are read at the same time, so an epoch lasts as long as the
slower side; the best placement of a read set is a *split* of its bytes, not "hot data in
HBM" (docs/model.md section 4).  When read sets change slowly or capacity is loose (the
paper's workload: the weights, pinned in HBM, are most of the bytes read), a placement that
never moves can be close to the bound: the question is only *which* items go where so that
every epoch is balanced.

Each item has one tier for its whole life (tiers 0 and 1; pins and initial tiers hold).
Per round, for every item, the change of the total time if it alone went to the other
tier is computed exactly from the per-epoch loads (one vectorised pass over the accesses);
the most helpful share of the items that would gain is flipped at once (into tier 0 only
while every epoch of their lives keeps room: a conservative check, the flips of a round are
treated as overlapping); the round is kept when the true total time (from the loads,
with the compute floors and every time row of docs/model.md section 4) went down, else it is
undone and the share halved.  A third placement, the share of free items in tier 1 that
balances the epochs on average (spread over the items), is the answer when the search has
not passed it in its time.  Memory is O(items + epochs + accesses), never items x epochs.

The schedule returned is re-scored by the evaluator like every other; this module only
proposes it.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.starts import placement_schedule
from hetkv_opt.model.instance import Instance, sorted_unique
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.model.terms import time_terms
from hetkv_opt.result import finish

#: the share of the improving items flipped in the first round (halved after a round that
#: did not pay, grown by GROW after one that did)
FIRST_SHARE = 0.5
GROW = 1.5
#: at most this many rounds (each is one pass over the accesses)
MAX_ROUNDS = 200


class _Loads:
    """Per-tier read and write bytes of every epoch for a placement, and the epoch times."""

    def __init__(self, inst: Instance):
        self.inst = inst
        E = self.E = inst.num_epochs
        rows = [t for t in time_terms(inst) if t[1] <= 1]
        self.rows = [(k, rate, rd, wr) for _, k, rate, rd, wr, _, _ in rows]
        self.c = np.asarray(inst.min_time_s, float)
        # one access per (epoch, item) pair: its read and written bytes
        N = inst.num_items
        r_key = inst.read_epoch * N + inst.read_item
        w_key = inst.write_epoch * N + inst.write_item
        if w_key.size:
            keys = sorted_unique(np.concatenate([r_key, w_key]))
        else:
            keys = r_key
        self.a_e = keys // N
        self.a_i = keys % N
        self.a_r = np.zeros(keys.size)
        self.a_w = np.zeros(keys.size)
        self.a_r[np.searchsorted(keys, r_key)] = inst.read_bytes
        if w_key.size:
            self.a_w[np.searchsorted(keys, w_key)] = inst.write_bytes
        self.R = np.zeros((2, E))
        self.W = np.zeros((2, E))

    def fill(self, x: np.ndarray) -> None:
        t = x[self.a_i]
        E = self.E
        for k in (0, 1):
            on = t == k
            self.R[k] = np.bincount(self.a_e[on], weights=self.a_r[on], minlength=E)
            self.W[k] = np.bincount(self.a_e[on], weights=self.a_w[on], minlength=E)

    def times(self, R, W, c) -> np.ndarray:
        """Epoch times from per-tier read and write loads ``R[k]``, ``W[k]`` and floors c."""
        out = np.asarray(c, float)
        for k, rate, rd, wr in self.rows:
            load = (R[k] if rd else 0.0) + (W[k] if wr else 0.0)
            out = np.maximum(out, np.asarray(load, float) / rate)
        return out

    def epoch_times(self) -> np.ndarray:
        return self.times(self.R, self.W, self.c)

    def flip_gain(self, x: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """Per item: the change of the total time if it alone went to the other tier."""
        e, i = self.a_e, self.a_i
        t = x[i]
        sign = np.where(t == 0, -1.0, 1.0)           # bytes leave tier 0 (t = 0) or join it
        R0 = self.R[0, e] + sign * self.a_r
        W0 = self.W[0, e] + sign * self.a_w
        R1 = self.R[1, e] - sign * self.a_r
        W1 = self.W[1, e] - sign * self.a_w
        new = self.times((R0, R1), (W0, W1), self.c[e])
        return np.bincount(i, weights=new - tau[e], minlength=self.inst.num_items)


def _range_max(values: np.ndarray):
    """A sparse table over ``values``: ``query(lo, hi)`` = max of values[lo:hi] (hi > lo),
    vectorised."""
    table = [values]
    j = 1
    while (1 << j) <= values.size:
        prev = table[-1]
        half = 1 << (j - 1)
        table.append(np.maximum(prev[:-half], prev[half:]))
        j += 1

    def query(lo, hi):
        n = hi - lo
        lvl = np.floor(np.log2(np.maximum(n, 1))).astype(np.int64)
        out = np.empty(lo.size)
        for L in np.unique(lvl):
            m = lvl == L
            tab = table[L]
            out[m] = np.maximum(tab[lo[m]], tab[hi[m] - (1 << L)])
        return out
    return query


def _occupancy(inst: Instance, x: np.ndarray, tier: int) -> np.ndarray:
    E = inst.num_epochs
    on = x == tier
    d = np.zeros(E + 1)
    np.add.at(d, inst.birth[on], inst.size_bytes[on].astype(float))
    np.add.at(d, inst.death[on], -inst.size_bytes[on].astype(float))
    return np.cumsum(d)[:E]


def balanced_placement(inst: Instance, *, deadline: "Deadline | float | None" = None,
                       start: np.ndarray | None = None, info: dict | None = None
                       ) -> Schedule | None:
    """A static placement over tiers 0 and 1 that balances every epoch (module docstring).

    Parameters
    ----------
    inst : Instance
        Exclusive mode, at least two tiers, nothing pinned or born beyond tier 1 (else None).
    deadline : Deadline or seconds, optional
    start : ndarray of int, shape (N,), optional
        Starting tiers (default: every free item in tier 1 or every one in tier 0,
        whichever fits and is faster).
    info : dict, optional
        Filled with ``rounds``, ``flips``, ``start_s`` and ``end_s`` (the loads' totals)
        and ``finished``.

    Returns
    -------
    Schedule or None
        None when the instance is out of scope or the start breaks a capacity.
    """
    info = {} if info is None else info
    dl = Deadline.of(deadline)
    why = out_of_scope(inst)
    if why:
        info["skipped"] = why
        return None
    N = inst.num_items
    fixed = (inst.pinned_tier >= 0) | (inst.initial_tier >= 0)
    fixed_tier = np.where(inst.pinned_tier >= 0, inst.pinned_tier, inst.initial_tier)
    cap = [inst.tiers[k].capacity_bytes for k in (0, 1)]
    ends: list = []                           # the loads of the two end starts
    if start is None:
        starts = [np.full(N, 1, np.int64), np.full(N, 0, np.int64)]
    else:
        x = np.asarray(start, np.int64).copy()
        starts = [np.where((x == 0) | (x == 1), x, 1)]
    loads = _Loads(inst)
    best = None
    broken: list = []
    for x in starts:
        x[fixed] = fixed_tier[fixed]
        loads.fill(x)
        R, W = loads.R.copy(), loads.W.copy()
        if start is None:
            ends.append((R, W))
        broken = [inst.tiers[k].name for k in (0, 1) if cap[k] is not None
                  and _occupancy(inst, x, k).max(initial=0.0) > cap[k]]
        if broken:
            continue
        # of the starts that fit, the fastest (a search stopped early keeps at least it:
        # all in tier 0 when it holds everything is the static schedule)
        tau = loads.times(R, W, loads.c)
        if best is None or math.fsum(tau) < best[2]:
            best = (x, tau, math.fsum(tau))
    if best is None:
        info["skipped"] = (f"no start fits: every free item in one tier breaks the capacity "
                           f"of tier {broken[0]}")
        return None
    # the balanced mix of the two ends: where the search gets only a few rounds it is the
    # better answer; the search itself goes from the faster end, whose local optimum it
    # reaches is better (full scale, one layer: 1.0081 s from the end, 1.0089 s from the mix,
    # 70 s each)
    fallback = None
    if start is None:
        xb = _balanced_start(loads, ends, starts[1], fixed)
        if all(cap[k] is None or _occupancy(inst, xb, k).max(initial=0.0) <= cap[k]
               for k in (0, 1)):
            loads.fill(xb)
            fallback = (xb, math.fsum(loads.epoch_times()))
            info["balanced_s"] = fallback[1]
    x, tau, total = best
    loads.fill(x)
    info["start_s"] = total
    size = inst.size_bytes.astype(float)
    share = FIRST_SHARE
    rounds = flips = 0
    finished = False
    t0 = time.perf_counter()
    while rounds < MAX_ROUNDS:
        if dl.expired():
            break
        rounds += 1
        gain = loads.flip_gain(x, tau)
        gain[fixed] = 0.0
        cand = np.flatnonzero(gain < -1e-15 * max(total, 1e-300))
        if cand.size == 0:
            finished = True
            break
        order = cand[np.argsort(gain[cand] / size[cand], kind="stable")]
        take = order[:max(1, int(share * order.size))]
        chosen = _fit(inst, x, take, cap)
        if chosen.size == 0:
            if share * order.size <= 1:
                finished = True
                break
            share /= 2
            continue
        x_new = x.copy()
        x_new[chosen] = 1 - x_new[chosen]
        old_R, old_W = loads.R.copy(), loads.W.copy()
        loads.fill(x_new)
        tau_new = loads.epoch_times()
        new_total = math.fsum(tau_new)
        if new_total < total:
            x, tau, total = x_new, tau_new, new_total
            flips += int(chosen.size)
            share = min(1.0, share * GROW)
        else:
            loads.R, loads.W = old_R, old_W
            if chosen.size == 1:
                finished = True
                break
            share /= 2
    if fallback is not None and fallback[1] < total:
        x, total = fallback
        info["answer"] = "balanced"
    info.update(rounds=rounds, flips=flips, end_s=total, finished=finished,
                runtime_s=round(time.perf_counter() - t0, 6))
    return placement_schedule(inst, x)


def _balanced_start(loads: _Loads, ends: list, all0: np.ndarray,
                    fixed: np.ndarray) -> np.ndarray:
    """A start with a share p of the free items in tier 1, spread evenly over the items'
    order, p chosen so that the epochs balance on average: were every epoch's free bytes
    split p : 1 - p, the loads would be the mix of "all free in tier 1" and "all free in
    tier 0", and the total time of that mix is convex in p (a sum of maxima of affine
    functions), minimised on a grid and then around its best point.  Where read sets are
    spread over the items this is close to the balance the search looks for.  It is the
    answer when the search (from the faster end: it reaches better local optima from
    there) has not passed it in its time."""
    (R1, W1), (R0, W0) = ends

    def total(p):                             # only to choose p: a plain sum will do
        return float(loads.times(p * R1 + (1 - p) * R0, p * W1 + (1 - p) * W0, loads.c).sum())

    grid = np.linspace(0.0, 1.0, 17)
    p = float(grid[int(np.argmin([total(q) for q in grid]))])
    lo, hi = max(0.0, p - 1 / 16), min(1.0, p + 1 / 16)
    fine = np.linspace(lo, hi, 17)
    p = float(fine[int(np.argmin([total(q) for q in fine]))])
    x = all0.copy()
    free = np.flatnonzero(~fixed)
    j = np.arange(free.size)
    x[free[np.floor((j + 1) * p) > np.floor(j * p)]] = 1
    return x


def out_of_scope(inst: Instance) -> str | None:
    """Why the split heuristic does not apply to ``inst`` (None when it does)."""
    if inst.mode != "exclusive":
        return "inclusive mode (the split places exclusive copies)"
    if inst.num_tiers < 2:
        return "one tier: nothing to split"
    if np.any(inst.pinned_tier >= 2) or np.any(inst.initial_tier >= 2):
        return "items pinned or born beyond tier 1 (it uses tiers 0 and 1)"
    return None


def _fit(inst: Instance, x: np.ndarray, take: np.ndarray, cap) -> np.ndarray:
    """The flips of ``take`` (in order) that keep every bounded tier within capacity when
    made together: each flip into a bounded tier needs the bytes of all the round's flips
    into it to fit in the least room over its own life."""
    keep = np.ones(take.size, bool)
    for k in (0, 1):
        if cap[k] is None:
            continue
        into = np.flatnonzero(x[take] != k)
        if into.size == 0:
            continue
        items = take[into]
        query = _range_max(_occupancy(inst, x, k))
        room = cap[k] - query(inst.birth[items], inst.death[items])
        s = inst.size_bytes[items].astype(float)
        used, least = 0.0, math.inf
        ok = np.zeros(items.size, bool)
        for n in range(items.size):
            lim = min(least, room[n])
            if used + s[n] <= lim:
                used += s[n]
                least = lim
                ok[n] = True
        keep[into[~ok]] = False
    return take[keep]


def solve_split(inst: Instance, *, time_limit_s: "float | Deadline | None" = 30.0,
                bounds: dict | None = None):
    """:func:`balanced_placement` as a :class:`~hetkv_opt.result.SolveResult` (method
    ``split``, status ``feasible``); the bound is the aggregate bound plus any passed in."""
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, "split", status="infeasible", t_start=t_start, message=pre)
    all_bounds = {**basic_bounds(inst), **(bounds or {})}
    info: dict = {}
    sched = balanced_placement(inst, deadline=dl, info=info)
    if sched is None:
        return finish(inst, "split", status="bound_only", bounds=all_bounds, t_start=t_start,
                      details={"split": info}, message=f"the split heuristic found no "
                      f"feasible schedule: {info.get('skipped')}; try auto or milp")
    return finish(inst, "split", status="feasible", schedule=sched, bounds=all_bounds,
                  t_start=t_start, details={"split": info})


__all__ = ["balanced_placement", "out_of_scope", "solve_split"]
