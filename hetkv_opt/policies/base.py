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
from functools import cached_property
from typing import ClassVar, NamedTuple

import numpy as np

FILL_MODES = ("capacity", "share")


class PolicyError(ValueError):
    """A policy made a decision that breaks the model (or used an API it did not declare).

    The message names the policy, the epoch and what is wrong, e.g.
    ``policy lru, epoch 17: tier hbm would hold 25.3 GB > 24 GB``.

    Attributes
    ----------
    policy : str
    epoch : int or None
    reason : str
    """

    def __init__(self, policy: str, epoch: int | None, reason: str):
        self.policy = policy
        self.epoch = epoch
        self.reason = reason
        where = f"policy {policy}" + ("" if epoch is None else f", epoch {epoch}")
        super().__init__(f"{where}: {reason}")


class Accesses(NamedTuple):
    """Reads or writes as parallel arrays, sorted by ``(epoch, item)``.

    Attributes
    ----------
    epoch, item, bytes : ndarray of int64, shape (M,)
        Read-only slices of the instance's arrays (no copy; read-only int64 copies when
        the instance is in the compact form of
        :func:`~hetkv_opt.model.instance.narrow_accesses`).
    """

    epoch: np.ndarray
    item: np.ndarray
    bytes: np.ndarray

    def per_item(self, num_items: int, weights: np.ndarray | None = None) -> np.ndarray:
        """Sum of ``weights`` (default: the bytes) per item, shape (num_items,), float."""
        w = self.bytes if weights is None else weights
        return np.bincount(self.item, weights=w, minlength=num_items).astype(float)


class Decision(NamedTuple):
    """What a policy returns before epoch e.

    Attributes
    ----------
    next_tier : ndarray of int, shape (N,)
        Residency at epoch e + 1 for every item alive then (``view.alive_next``); other
        entries are ignored.  Inclusive mode: 0 = also has a tier-0 copy, 1 = tier 1 only.
        An item born at e whose entry is -1 stays in its birth tier, so
        ``Decision(view.residency, born_tier)`` means "no moves".
    born_tier : ndarray of int, shape (len(view.born),)
        Tier of each item born at e, at epoch e (aligned with ``view.born``).
    """

    next_tier: np.ndarray
    born_tier: np.ndarray


class Moves(NamedTuple):
    """A decision given as a change list: only the items whose tier changes.

    The same decision as a :class:`Decision` whose ``next_tier`` is the residency with
    ``tiers`` written at ``items``; the simulator's own work per epoch is then in
    proportion to the moves, the births and the reads of the epoch, not to the number
    of items.

    Attributes
    ----------
    items : ndarray of int, shape (M,)
        Distinct items whose residency at epoch e + 1 is given (an item not alive at
        e + 1 is ignored; an entry equal to the item's tier is no move).
    tiers : ndarray of int, shape (M,)
        Their tiers at e + 1 (inclusive mode: 0 = also has a tier-0 copy).
    born_tier : ndarray of int, shape (len(view.born),)
        Tier of each item born at e, at epoch e; items born at e that are not in
        ``items`` stay there at e + 1.

    Examples
    --------
    ``Moves.none(born_tier)`` is "no moves"; ``Moves(np.array([7]), np.array([0]),
    born_tier)`` copies item 7 into tier 0 during e.
    """

    items: np.ndarray
    tiers: np.ndarray
    born_tier: np.ndarray

    @staticmethod
    def none(born_tier: np.ndarray) -> "Moves":
        """No moves: every item keeps its tier; newborns take ``born_tier``."""
        empty = np.zeros(0, np.int64)
        return Moves(empty, empty, born_tier)


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


class View:
    """What a policy sees before epoch e (built by the simulator; valid during one call).

    Arrays are read-only views of the simulator's state, cheap to access; properties are
    computed on first use.  Item arrays have shape (N,), tier arrays shape (K,).

    Attributes
    ----------
    epoch : int
        e, the epoch about to run.
    num_items, num_epochs, num_tiers : int
    mode : {"exclusive", "inclusive"}
    tier_names : tuple of str
    size_bytes, birth, death, pinned_tier, initial_tier : ndarray of int64
        The instance's static item data (not the trace).
    item_labels, epoch_labels : dict of str -> ndarray
    residency : ndarray of int64
        Tier of every item at epoch e; -1 if not alive at e, and for items born at e
        (not placed yet).  Inclusive mode: 0 = has a tier-0 copy.
    born : ndarray of int64
        Items born at e (ascending); the decision gives their tier at e.
    alive_next : ndarray of bool
        Items alive at e + 1 that exist at e: their entry of ``next_tier`` counts.
    capacity_bytes, free_bytes : ndarray of float, shape (K,)
        Capacity (inf = unbounded) and what is left at epoch e after the items already
        placed (inclusive tier 1: after every alive item, newborns included).
    bandwidth_Bps, read_rate_Bps : ndarray of float, shape (K,)
        Device bandwidth; best read rate ``min(bandwidth, link_read)``.
    reserve_next_bytes : ndarray of float, shape (K,)
        Bytes that items born at e + 1 with a pinned or initial tier will need there.
    forced_birth_tier : ndarray of int64
        The tier an item must take at birth: its pin, else its initial tier, else -1.
    last_read_epoch, last_write_epoch : ndarray of int64
        Latest epoch < e with a read / write of the item (-1: none yet).
    last_access_epoch : ndarray of int64
        Latest of those and the item's birth (items born at e: e).
    read_count, read_bytes_total : ndarray of int64
        Past epochs with a read of the item, and the bytes read from it so far.
    tier_since_epoch : ndarray of int64
        Epoch since which the item has been in its current tier (birth or last move).
    reads, writes : Accesses
        Every read / write of epochs < e (slices, no copy); ``reads_in(a, b)`` for a
        range, ``read_bytes_at(t)`` and ``last_read_bytes()`` per item.
    step, layer : int
        The labels of epoch e (``epochs.step`` / ``epochs.layer``; without labels: e and 0).
    next_step, next_layer : int
        The labels of epoch e + 1, the epoch the decision is for (-1 after the last epoch).
    epoch_step, epoch_layer : ndarray of int64, shape (E,)
        The labels of every epoch (static data, not the trace).
    num_steps, num_layers : int
        Distinct labels.
    item_layer : ndarray of int64, shape (N,)
        The ``layer`` label of every item (-1 where unknown; 0 without labels).
    last_read_step : ndarray of int64, shape (N,)
        The step of the item's latest read before e (-1: none yet).
    layer_epochs(layer, steps), layer_reads(layer, steps), layer_read_bytes(layer, steps)
        Past epochs of a layer (default: ``next_layer``), at most its ``steps`` latest
        decode steps, and their reads (``Accesses``; bytes per item).
    future : FutureView
        Epochs >= e; only for policies with ``uses_future = True`` (else an error).
    memo : dict
        Scratch space kept across the epochs of one run (for incremental state such as
        an EMA); empty at epoch 0.
    report : dict
        Anything the policy wants in the result's ``details["policy_report"]``.
    """

    def __init__(self, run, epoch: int, born: np.ndarray, alive_next: np.ndarray):
        self._run = run
        self.epoch = epoch
        self.born = _ro(born)
        # the run's arrays change in place, never get replaced: their read-only views
        # and the static data are made once per run and shared by every epoch's View
        shared = run.__dict__.get("_view_shared")
        if shared is None:
            inst = run.instance
            shared = run._view_shared = {
                "num_items": inst.num_items, "num_epochs": inst.num_epochs,
                "num_tiers": inst.num_tiers, "mode": inst.mode,
                "inclusive": inst.mode == "inclusive",
                "tier_names": tuple(t.name for t in inst.tiers),
                "size_bytes": inst.size_bytes,
                "_size_f": _ro(run.size),          # the sizes as float
                "birth": inst.birth, "death": inst.death,
                "pinned_tier": inst.pinned_tier, "initial_tier": inst.initial_tier,
                "item_labels": inst.item_labels, "epoch_labels": inst.epoch_labels,
                "capacity_bytes": _ro(run.cap), "bandwidth_Bps": _ro(run.bandwidth),
                "read_rate_Bps": _ro(run.read_rate), "residency": _ro(run.cur),
                "last_read_epoch": _ro(run.last_read),
                "last_write_epoch": _ro(run.last_write),
                "read_count": _ro(run.read_count),
                "read_bytes_total": _ro(run.read_bytes_total),
                "tier_since_epoch": _ro(run.tier_since),
                "memo": run.memo, "report": run.report, "policy_name": run.policy_name,
                "epoch_step": _ro(run.step_of), "epoch_layer": _ro(run.layer_of),
                "item_layer": _ro(run.item_layer),
                "alive_next": _ro(run.alive_next)}
        self.__dict__.update(shared)
        if alive_next is not run.alive_next:
            self.alive_next = _ro(alive_next)
        self.step = int(run.step_of[epoch])
        self.layer = int(run.layer_of[epoch])
        nxt = epoch + 1 < run.E
        self.next_step = int(run.step_of[epoch + 1]) if nxt else -1
        self.next_layer = int(run.layer_of[epoch + 1]) if nxt else -1

    # --- layers and steps ----------------------------------------------------------------

    @property
    def num_steps(self) -> int:
        return self._run.num_steps()

    @property
    def num_layers(self) -> int:
        return self._run.num_layers()

    @cached_property
    def last_read_step(self) -> np.ndarray:
        """Step of each item's latest read before e; -1 when it was never read."""
        lr = self._run.last_read
        return _ro(np.where(lr >= 0, self._run.step_of[np.maximum(lr, 0)], -1))

    def layer_epochs(self, layer: int | None = None, steps: int | None = None) -> np.ndarray:
        """Past epochs (< e) of ``layer`` (default ``next_layer``, the layer the decision
        is for; at the last epoch, ``layer``), ascending; only the latest ``steps`` decode
        steps of them when given.

        Without labels there is one layer, so ``layer_epochs(steps=1)`` is ``[e - 1]``.
        """
        lay = self._layer_arg(layer)
        ep = self._run.layer_epochs(lay)
        ep = ep[:int(np.searchsorted(ep, self.epoch))]
        if steps is not None and ep.size:
            if steps <= 0:
                return ep[:0]
            st = self._run.step_of[ep]
            if self._run.steps_sorted:          # O(steps log n): walk back step by step
                idx = int(np.searchsorted(st, st[-1], side="left"))
                for _ in range(steps - 1):
                    if idx == 0:
                        break
                    idx = int(np.searchsorted(st, st[idx - 1], side="left"))
                ep = ep[idx:]
            else:
                seen = np.unique(st)
                if seen.size > steps:
                    ep = ep[st >= seen[-steps]]
        return ep

    def layer_reads(self, layer: int | None = None, steps: int = 1) -> Accesses:
        """Reads of ``layer`` (default ``next_layer``) at its latest ``steps`` past decode
        steps: for epoch e + 1 = (s, l + 1), ``layer_reads()`` is what layer l + 1 read
        at step s - 1, the best online guess of what e + 1 will read."""
        return self._run.accesses_at("read", self.layer_epochs(layer, steps))

    def layer_read_bytes(self, layer: int | None = None, steps: int = 1) -> np.ndarray:
        """Bytes read per item by :meth:`layer_reads`, shape (N,), float."""
        return self.layer_reads(layer, steps).per_item(self.num_items)

    def _layer_arg(self, layer: int | None) -> int:
        if layer is not None:
            return int(layer)
        return self.next_layer if self.next_layer >= 0 else self.layer

    # --- derived, computed on first use -------------------------------------------------

    @property
    def ideal_tier0_share(self) -> float:
        """B_0 / (sum_k read rate_k): tier 0's share of reads when all tiers finish together."""
        return float(self._run.read_rate[0] / self._run.read_rate.sum())

    @cached_property
    def forced_birth_tier(self) -> np.ndarray:
        """Tier every item must take at birth: its pin, else its initial tier, else -1."""
        return _ro(self._run.forced)

    @cached_property
    def free_bytes(self) -> np.ndarray:
        return _ro(self._run.free_bytes())

    @cached_property
    def reserve_next_bytes(self) -> np.ndarray:
        return _ro(self._run.reserve[:, self.epoch + 1].copy())

    def reserve_ahead_bytes(self) -> np.ndarray:
        """Per tier, the most bytes that items born after e with a pinned or initial tier
        will ever need there at once (a policy that never moves keeps this room free)."""
        return self._run.reserve_ahead(self.epoch)

    @cached_property
    def last_access_epoch(self) -> np.ndarray:
        """Latest epoch < e with a read or write of the item, or its birth (<= e); -1 unborn."""
        born = np.where(self.birth <= self.epoch, self.birth, -1)
        return _ro(np.maximum(np.maximum(self._run.last_read, self._run.last_write), born))

    # --- the past ---------------------------------------------------------------------

    @property
    def reads(self) -> Accesses:
        """Every read of epochs < e."""
        return self.reads_in(0, self.epoch)

    @property
    def writes(self) -> Accesses:
        """Every write of epochs < e."""
        return self.writes_in(0, self.epoch)

    def reads_in(self, start: int, stop: int) -> Accesses:
        """Reads of epochs ``start <= t < stop`` (stop <= e; use ``future`` beyond)."""
        self._past(stop, "reads_in")
        return self._run.accesses("read", start, stop)

    def writes_in(self, start: int, stop: int) -> Accesses:
        """Writes of epochs ``start <= t < stop`` (stop <= e)."""
        self._past(stop, "writes_in")
        return self._run.accesses("write", start, stop)

    def read_bytes_at(self, t: int) -> np.ndarray:
        """Bytes read per item at past epoch t (zeros when t < 0), shape (N,), float."""
        return self.reads_in(t, t + 1).per_item(self.num_items)

    def last_read_bytes(self) -> np.ndarray:
        """Bytes read per item at epoch e - 1 (the latest epoch a policy knows)."""
        return self.read_bytes_at(self.epoch - 1)

    def _past(self, stop: int, what: str) -> None:
        if stop > self.epoch:
            raise PolicyError(self.policy_name, self.epoch,
                              f"view.{what}(..., {stop}) reaches into the future; "
                              f"use view.future (and declare uses_future = True)")

    # --- the future (oracles only) ----------------------------------------------------

    @cached_property
    def future(self) -> "FutureView":
        """Reads and writes of epochs >= e; only for policies with ``uses_future = True``."""
        if not self._run.uses_future:
            raise PolicyError(self.policy_name, self.epoch,
                              "reads view.future but does not declare uses_future = True")
        return FutureView(self._run, self.epoch)


class FutureView:
    """The future, for oracle policies: reads and writes of epochs >= e.

    Attributes
    ----------
    instance : Instance
        The whole instance (an oracle may simulate it, e.g. to tune hyper-parameters).
    """

    def __init__(self, run, epoch: int):
        self._run = run
        self.epoch = epoch
        self.instance = run.instance

    @property
    def reads(self) -> Accesses:
        """Every read of epochs >= e."""
        return self._run.accesses("read", self.epoch, self._run.instance.num_epochs)

    @property
    def writes(self) -> Accesses:
        """Every write of epochs >= e."""
        return self._run.accesses("write", self.epoch, self._run.instance.num_epochs)

    def reads_in(self, start: int, stop: int) -> Accesses:
        """Reads of epochs ``start <= t < stop``, with ``start >= e``."""
        return self._run.accesses("read", max(start, self.epoch), stop)

    def writes_in(self, start: int, stop: int) -> Accesses:
        """Writes of epochs ``start <= t < stop``, with ``start >= e``."""
        return self._run.accesses("write", max(start, self.epoch), stop)

    def read_bytes_at(self, t: int) -> np.ndarray:
        """Bytes read per item at epoch t >= e (zeros past the horizon), shape (N,)."""
        return self.reads_in(t, t + 1).per_item(self._run.instance.num_items)

    def step_window(self, steps: int, start: int | None = None) -> np.ndarray:
        """Epochs t >= ``start`` (default e + 1, the epoch being decided) whose decode
        step is within ``steps`` steps of ``start``'s: ``step(t) < step(start) + steps``.
        Without labels: ``start .. start + steps - 1``."""
        start = self.epoch + 1 if start is None else max(int(start), self.epoch)
        return self._run.step_window(start, int(steps))

    def reads_in_steps(self, steps: int, start: int | None = None) -> Accesses:
        """Reads of :meth:`step_window` (every layer of the next ``steps`` decode steps)."""
        return self._run.accesses_at("read", self.step_window(steps, start))

    def next_read_epoch(self, t: int) -> np.ndarray:
        """First epoch >= t (t >= e) at which each item is read; E if never again.

        Maintained incrementally by the simulator: O(reads) over a whole run.
        """
        return self._run.next_read_epoch(max(t, self.epoch))


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
