"""What a placement policy sees and returns: :class:`View`, :class:`FutureView`,
:class:`Decision`, :class:`Moves`, :class:`Accesses` and :class:`PolicyError`.

The policy API itself (:class:`~hetkv_opt.policies.base.Policy`,
:class:`~hetkv_opt.policies.base.ScoredPolicy` and the fill mechanics) is in
:mod:`hetkv_opt.policies.base`, which re-exports these names.
"""

from __future__ import annotations

from functools import cached_property
from typing import NamedTuple

import numpy as np


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


__all__ = ["Accesses", "Decision", "FutureView", "Moves", "PolicyError", "View"]
