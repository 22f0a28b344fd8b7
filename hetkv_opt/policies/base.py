"""The policy API: what an online placement policy sees and what it returns.

A policy is a small ``@dataclass`` whose fields are its hyper-parameters and which
implements *one* method (in the spirit of NVIDIA kvpress's presses):

- :class:`Policy` subclasses implement ``decide(view) -> Decision``: the whole decision;
- :class:`ScoredPolicy` subclasses implement only ``score(view) -> ndarray`` (higher =
  more deserving of tier 0); the base ranks by score and does the mechanics (fill tier 0
  up to its capacity or up to the ideal bandwidth share, respect copy capacity, cascade
  the rest down the tiers) in :func:`fill_by_score`.

The simulator (:mod:`hetkv_opt.policies.simulate`) calls the policy before every epoch e
with a :class:`View`: the past (reads and writes of epochs < e), the current residency,
free capacity per tier, the bandwidths and the items born at e.  The policy returns the
tier of every item born at e (its residency *at* e) and the residency for epoch e + 1:
a move at e + 1 is copied during e and occupies capacity in both tiers during e
(docs/model.md section 2).  A policy that reads the future declares ``uses_future = True``
and gets ``view.future``; results mark it as an oracle.

**What an epoch is.**  An epoch is one unit of the time line in which every read is served
once.  In the drift generator every epoch is one decode step.  In request workloads and
traces an epoch is one (decode step, layer) pair: a step of an L-layer model is L
consecutive epochs, and the items of layer l (its KV pages, its weights) are read only in
the epochs of layer l.  Before epoch e = (s, l) a policy decides the residency of
e + 1 = (s, l + 1), the next layer.  ``view.step``, ``view.layer`` (and ``next_step``,
``next_layer``) say where e is; ``view.layer_reads(layer, steps)`` gives the same layer's
reads at earlier decode steps.  A score updated once per *epoch* (an EMA decayed every
epoch, "read at e - 1") mixes layers: in an L-layer instance it decays L times per step
and looks at another layer's reads; decay per *step* instead (``step-ema`` shows the
pattern; docs/policies.md, "Layers").  Without ``step`` / ``layer`` labels every epoch is
its own step of a single layer 0, so the same code works on both kinds of instance.

Examples
--------
A new scored policy in a few lines (most-read-bytes-ever first):

>>> from dataclasses import dataclass
>>> import numpy as np
>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.policies import ScoredPolicy, simulate
>>> @dataclass
... class MostRead(ScoredPolicy):
...     '''Items with the most bytes read so far go to tier 0.'''
...     def score(self, view):
...         return view.read_bytes_total.astype(float)
>>> simulate(tiny_instance(), MostRead()).status
'feasible'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hetkv_opt.policies.view import (Accesses, Decision, FutureView, Moves, PolicyError,
                                     View)

FILL_MODES = ("capacity", "share")


# --------------------------------------------------------------------------- policies

class Policy:
    """Base of every placement policy: a ``@dataclass`` of hyper-parameters + ``decide``.

    Class attributes
    ----------------
    name : str
        The registered name (set by :func:`register_policy`).
    uses_future : bool
        True for oracles: the policy gets ``view.future``.
    """

    name: ClassVar[str] = ""
    uses_future: ClassVar[bool] = False

    def decide(self, view: View) -> Decision:
        """Tiers of the items born at e, and the residency at e + 1."""
        raise NotImplementedError(f"{type(self).__name__} must implement decide(view)")

    def params(self) -> dict:
        """The hyper-parameters as a dict (the dataclass fields)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} \
            if dataclasses.is_dataclass(self) else {}

    def _need(self, cond: bool, param: str, why: str) -> None:
        if not cond:
            raise ValueError(f"policy {policy_name(self)}: parameter '{param}' {why}, "
                             f"got {getattr(self, param)!r}")


def policy_name(policy: Policy) -> str:
    """Registered name of a policy, or its class name when it is not registered."""
    return type(policy).name or type(policy).__name__


@dataclass
class ScoredPolicy(Policy):
    """A policy that only ranks items: implement ``score(view) -> ndarray`` of shape (N,).

    Higher scores are more deserving of tier 0.  ``-inf`` means "never copy into tier 0"
    (the item may stay there while room allows); NaN counts as ``-inf``.  The mechanics are
    :func:`fill_by_score`'s.

    Parameters
    ----------
    fill : {"capacity", "share"}
        ``capacity``: fill tier 0 to the brim with the best-ranked items.  ``share``: also
        stop admitting items once tier 0 would serve its ideal share of the next epoch's
        predicted reads, ``B_0 / (B_0 + sum_k>=1 min(bandwidth_k, link_read_k))``
        (docs/paper.md, "Its model": both sides finish together), with reads predicted by :meth:`expected_reads`.
    """

    fill: str = "capacity"

    def __post_init__(self):
        self._need(self.fill in FILL_MODES, "fill", f"must be one of {', '.join(FILL_MODES)}")

    def score(self, view: View) -> np.ndarray:
        """Per-item score, shape (N,); higher = more deserving of tier 0."""
        raise NotImplementedError(f"{type(self).__name__} must implement score(view)")

    def expected_reads(self, view: View) -> np.ndarray:
        """Predicted read bytes per item at epoch e + 1, used by ``fill="share"``.

        Default: the exact reads of e + 1 for oracles; otherwise what the layer of e + 1
        read at its latest past step (``view.layer_read_bytes()``; without epoch labels,
        the reads of e - 1, the latest epoch an online policy knows).  Override to plug in
        a better predictor.
        """
        if self.uses_future:
            return view.future.read_bytes_at(view.epoch + 1)
        return view.layer_read_bytes()

    def decide(self, view: View) -> Moves:
        expected = self.expected_reads(view) if self.fill == "share" else None
        return fill_moves(view, self.score(view), fill=self.fill, expected_reads=expected)


def _prefix_within(weights: np.ndarray, budget: float) -> int:
    """How many leading entries fit: largest n with sum(weights[:n]) <= budget.

    The weights are sizes: whole, non-negative bytes, whose sums are exact in float64
    in any order, so when all of them fit the answer is their number without a running
    sum."""
    if weights.size == 0:
        return 0
    if weights.sum() <= budget:
        return weights.size
    cum = np.cumsum(weights)
    return int(np.searchsorted(cum, budget, side="right"))


def _share_prefix(p: np.ndarray, target: float) -> int:
    """Length of the prefix whose cumulative predicted reads come closest to ``target``."""
    if p.size == 0:
        return 0
    cum = np.cumsum(p)
    n = int(np.searchsorted(cum, target, side="right"))
    if n < cum.size:
        below = cum[n - 1] if n > 0 else 0.0
        if cum[n] - target < target - below:
            n += 1
    return n


def fill_by_score(view: View, score: np.ndarray, *, fill: str = "capacity",
                  expected_reads: np.ndarray | None = None) -> Decision:
    """Turn a ranking into a feasible decision (the mechanics of :class:`ScoredPolicy`).

    1. Rank the free (unpinned) items alive at e + 1 or born at e by score (ties: the
       item already in the lower tier first, then the lower index).
    2. Targets for e + 1: the best-ranked prefix goes to tier 0 up to its capacity, less
       pinned items and ``reserve_next_bytes``; the next prefix to tier 1, and so on; the
       rest to the last tier.  With ``fill="share"`` tier 0 admits only the prefix whose
       predicted reads come closest to the ideal share ``view.ideal_tier0_share``; the
       residents ranked after it stay while they are within capacity (evicting them
       just to lower the share would cost copies).
    3. Items born at e go to their pin or initial tier, else to their target tier if it
       has room at e, else down the tiers in order (never to tier 0 if scored ``-inf``).
    4. Moves towards the targets are admitted in rank order while the destination has
       room *during e* (a copy occupies both tiers); a refused promotion stays where it
       is, a refused demotion tries the next tier down.  Items scored ``-inf`` are never
       promoted.  Inclusive mode: dropping a tier-0 copy is free and always admitted.
    5. If refused moves leave a tier without the room that pinned items and forced
       newborns need at e + 1, its worst-ranked stayers move down while there is room.

    Parameters
    ----------
    view : View
    score : ndarray of float, shape (N,)
    fill : {"capacity", "share"}
    expected_reads : ndarray of float, shape (N,), optional
        Predicted read bytes at e + 1 (needed for ``fill="share"``).

    Returns
    -------
    Decision
    """
    items, tiers, born_tier = fill_moves(view, score, fill=fill, expected_reads=expected_reads)
    nxt = np.array(view.residency, dtype=np.int64)
    nxt[view.born] = born_tier
    nxt[items] = tiers
    return Decision(nxt, born_tier)


def fill_moves(view: View, score: np.ndarray, *, fill: str = "capacity",
               expected_reads: np.ndarray | None = None) -> Moves:
    """:func:`fill_by_score`'s decision as a change list (:class:`Moves`).

    The same decision, item for item; what :class:`ScoredPolicy` returns.  When every
    free item alive at e + 1 fits in tier 0 (the common case when capacity is not tight)
    the work beyond a few passes over the scores is in proportion to the births, deaths,
    pinned items and moves of the epoch: the occupancy of e + 1 is the simulator's
    running count, corrected by them, rather than a sum over every item.
    """
    N, K, e = view.num_items, view.num_tiers, view.epoch
    s = np.asarray(score, dtype=float)
    if s.shape != (N,):
        raise PolicyError(view.policy_name, e, f"score has shape {s.shape}, expected ({N},)")
    nan = np.isnan(s)
    if nan.any():
        s = np.where(nan, -np.inf, s)
    run = view._run
    size = view._size_f
    cap = np.asarray(view.capacity_bytes)
    incl = view.inclusive
    cur0 = np.asarray(view.residency)
    born = np.asarray(view.born)
    alive_next = np.asarray(view.alive_next)
    pinned = view.pinned_tier
    forced = np.asarray(view.forced_birth_tier)
    free = np.array(view.free_bytes, dtype=float)
    unpinned = run.unpinned
    pin_next = run.pinned_items[alive_next[run.pinned_items]]   # pinned, alive at e + 1
    reserve = np.asarray(view.reserve_next_bytes)

    # 1. forced newborns take their room first (inclusive: tier 1 is already counted)
    born_tier = forced[born].copy()
    fb = born[born_tier >= 0]
    used = np.bincount(forced[fb], weights=size[fb], minlength=K)
    if incl:
        used[1] = 0.0
    free -= used

    # 2. the free items alive at e + 1 or born now (the pool), and their ranking: by
    #    score, ties to the item already in the lower tier (newborns last), then the lower
    #    index.  The key is a total order, so any subset is ranked alone (by_rank); the
    #    whole pool is sorted only when a tier takes part of it
    def by_rank(items: np.ndarray) -> np.ndarray:
        c = cur0[items]
        return items[np.lexsort((items, np.where(c >= 0, c, K), -s[items]))]

    def size_next(items: np.ndarray) -> np.ndarray:
        """Bytes the items take at e + 1 (none for those born now that die at once)."""
        return np.where(alive_next[items], size[items], 0.0)

    # 3. target tiers for e + 1, tier by tier.  When the whole pool fits in tier 0 (or
    #    there is one tier) every pool item's target is tier 0 and no array is built:
    #    the pool's bytes at e + 1 are the alive bytes less the dying and pinned ones
    budget = cap - np.bincount(pinned[pin_next], weights=size[pin_next], minlength=K) - reserve
    pool_next_bytes = float(run.alive_bytes - int(view.size_bytes[run.dying].sum())) \
        - size[pin_next].sum()
    uniform = K == 1 or (fill != "share" and pool_next_bytes <= budget[0])
    target = None
    if not uniform:
        pool = alive_next & unpinned
        pool[born[unpinned[born]]] = True
        target = np.full(N, K - 1, np.int64)
        rest = by_rank(np.flatnonzero(pool))   # the ranked items not placed yet
        for k in range(K - 1):
            if size_next(rest).sum() <= budget[k] and not (k == 0 and fill == "share"):
                target[rest] = k
                rest = rest[:0]
                continue
            n = _prefix_within(size_next(rest), budget[k])
            if k == 0 and fill == "share":
                if expected_reads is None:
                    raise PolicyError(view.policy_name, e, "fill='share' needs expected_reads")
                p = np.where(alive_next, np.maximum(np.asarray(expected_reads, float), 0.0), 0.0)
                goal = view.ideal_tier0_share * p.sum() - p[pin_next[pinned[pin_next] == 0]].sum()
                n_share = min(n, _share_prefix(p[rest], goal))
                # past the share, residents stay while capacity allows (evicting them only
                # to lower the share would cost copies); nobody else comes in
                stay = rest[n_share:n][cur0[rest[n_share:n]] == 0]
                target[rest[:n_share]] = 0
                target[stay] = 0
                left = np.ones(rest.size, bool)
                left[:n_share] = False
                left[n_share:n] = cur0[rest[n_share:n]] != 0
                rest = rest[left]
                continue
            target[rest[:n]] = k
            rest = rest[n:]

    def target_of(items: np.ndarray) -> np.ndarray:
        if target is not None:
            return target[items]
        in_pool = unpinned[items] & (alive_next[items] | _member(items, born))
        return np.where(in_pool, 0, K - 1)

    # 4. place the free newborns (rank order): their target tier if it has room, else down
    fnb = by_rank(born[forced[born] < 0])
    place = target_of(fnb).copy()
    if K > 1:
        place[(place == 0) & np.isneginf(s[fnb])] = 1   # -inf: does not deserve tier 0
    for k in range(K):
        m = np.flatnonzero(place == k)
        if m.size == 0 or (incl and k == 1):
            continue
        n = _prefix_within(size[fnb[m]], free[k] - reserve[k]) if k < K - 1 else m.size
        free[k] -= size[fnb[m[:n]]].sum()
        place[m[n:]] = k + 1
    born_tier[np.searchsorted(born, fnb)] = place

    def cur_of(items: np.ndarray) -> np.ndarray:
        """Tiers at e, newborns in the tier just chosen."""
        c = cur0[items].copy()
        if born.size and items.size:
            j = np.minimum(np.searchsorted(born, items), born.size - 1)
            hit = born[j] == items
            c[hit] = born_tier[j[hit]]
        return c

    # the bytes in each tier at e + 1 if nothing moved (exact: sums of whole sizes)
    dying = run.dying
    occ_next = run.used.astype(float) \
        + np.bincount(born_tier, weights=size[born], minlength=K) \
        - np.bincount(cur_of(dying), weights=size[dying], minlength=K)

    # 5. moves towards the targets, admitted while the destination has room during e
    cur = None                               # tiers at e, newborns placed (built if needed)
    if target is not None:
        cur = cur0.copy()
        cur[born] = born_tier
        cand = np.flatnonzero(alive_next & (target != cur) & unpinned)
    elif K == 1 or occ_next[1:].sum() == size[pin_next[pinned[pin_next] >= 1]].sum():
        cand = np.zeros(0, np.int64)         # every free item is in tier 0 already
    else:
        cur = cur0.copy()
        cur[born] = born_tier
        cand = np.flatnonzero(alive_next & (cur != 0) & unpinned)
    mv = by_rank(cand)
    cur_mv = cur_of(mv)
    dest = target_of(mv).copy()
    promote = dest < cur_mv
    keep = ~(promote & np.isneginf(s[mv]))
    mv, dest, cur_mv = mv[keep], dest[keep], cur_mv[keep]
    moved = np.full(mv.size, -1, np.int64)   # the tier each candidate gets at e + 1
    for k in range(K):
        m = np.flatnonzero(dest == k)
        if m.size == 0:
            continue
        if incl and k == 1:            # dropping a tier-0 copy: free, always admitted
            moved[m] = 1
            continue
        n = _prefix_within(size[mv[m]], free[k])
        free[k] -= size[mv[m[:n]]].sum()
        moved[m[:n]] = k
        refused = m[n:]
        demoted = refused[dest[refused] > cur_mv[refused]]
        dest[refused] = -1
        if k + 1 < K:
            dest[demoted] = k + 1      # try the next tier down
    done = moved >= 0
    items, tiers = mv[done], moved[done]
    occ_next += np.bincount(tiers, weights=size[items], minlength=K) \
        - np.bincount(cur_mv[done], weights=size[items], minlength=K)

    # 6. room at e + 1 for pinned items and forced newborns: if refused moves left a
    #    tier too full, send its worst-ranked stayers down while lower tiers have room
    nxt = None
    for k in range(K - 1):
        if nxt is None:
            over = occ_next[k] + reserve[k] - cap[k]
        else:
            over = size[alive_next & (nxt == k)].sum() + reserve[k] - cap[k]
        if not over > 0:
            continue
        if nxt is None:                # rare: work on whole arrays from here on
            if cur is None:
                cur = cur0.copy()
                cur[born] = born_tier
            nxt = cur.copy()
            nxt[items] = tiers
        stayers = by_rank(np.flatnonzero(alive_next & (nxt == k) & (cur == k)
                                         & unpinned))[::-1]
        cand = stayers[:min(stayers.size, _prefix_within(size[stayers], over - 1e-9) + 1)]
        for j in range(k + 1, K):
            if incl:
                nxt[cand] = 1          # dropping a tier-0 copy is free
                break
            n = _prefix_within(size[cand], free[j])
            free[j] -= size[cand[:n]].sum()
            nxt[cand[:n]] = j
            cand = cand[n:]
            if cand.size == 0:
                break
    if nxt is not None:
        items = np.flatnonzero(alive_next & (nxt != cur))
        tiers = nxt[items]
    return Moves(items, tiers, born_tier)


def _member(items: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of ``items`` are in the ascending array ``sorted_set``."""
    if sorted_set.size == 0 or items.size == 0:
        return np.zeros(items.size, bool)
    j = np.minimum(np.searchsorted(sorted_set, items), sorted_set.size - 1)
    return sorted_set[j] == items


__all__ = ["Accesses", "Decision", "FILL_MODES", "FutureView", "Moves", "Policy", "PolicyError",
           "ScoredPolicy", "View", "fill_by_score", "fill_moves", "policy_name"]
