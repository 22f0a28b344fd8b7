"""The policy engine: run an online policy epoch by epoch under the rules of docs/model.md.

Before every epoch e the simulator hands the policy a :class:`~hetkv_opt.policies.base.View`
and checks its :class:`~hetkv_opt.policies.base.Decision`:

- newborns get a tier that exists, their pin, and their initial tier;
- pinned items stay put; every tier is one that exists (inclusive mode: 0 or 1);
- capacity during e: items resident at e plus items being copied in during e (a move at
  e + 1 is a copy made during e, docs/model.md section 2) fit every bounded tier.

A broken rule raises :class:`~hetkv_opt.policies.base.PolicyError` naming the policy, the
epoch and the rule ("policy lru, epoch 17: tier hbm would hold 25.3 GB > 24 GB (...)");
nothing is ever silently repaired.  The simulator keeps its own accounting of traffic and
time; :func:`hetkv_opt.policies.simulate.simulate` re-scores the schedule with the
independent evaluator.

Cost: one Python iteration per epoch with numpy inside; the View's running statistics
(last read, read counts, next read for oracles) are updated in O(reads) per run.
"""

from __future__ import annotations

import time

import numpy as np

from hetkv_opt.model.evaluate import format_bytes
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.policies.base import Accesses, Moves, Policy, PolicyError, View, policy_name


class _MaxTree:
    """Range additions and the maximum over all positions, O(log n) each (integers)."""

    def __init__(self, n: int):
        size = 1
        while size < max(n, 1):
            size *= 2
        self.size = size
        self.t = [0] * (2 * size)      # max of the subtree, the node's own additions included
        self.d = [0] * (2 * size)      # additions made to the whole subtree at this node

    def add(self, lo: int, hi: int, v: int) -> None:
        if lo >= hi:
            return
        t, d = self.t, self.d
        lo += self.size
        hi += self.size
        first, last = lo, hi - 1
        while lo < hi:
            if lo & 1:
                t[lo] += v
                d[lo] += v
                lo += 1
            if hi & 1:
                hi -= 1
                t[hi] += v
                d[hi] += v
            lo >>= 1
            hi >>= 1
        for i in (first, last):
            i >>= 1
            while i >= 1:
                t[i] = max(t[2 * i], t[2 * i + 1]) + d[i]
                i >>= 1

    def max(self) -> int:
        return self.t[1]


def _wide(a: np.ndarray) -> np.ndarray:
    """A slice of an access array as int64 (a view when it is; a read-only copy of a
    compact instance's int32 slice): policies always see int64."""
    if a.dtype == np.int64:
        return a
    a = a.astype(np.int64)
    a.setflags(write=False)
    return a


class _Run:
    """The state of one simulation (what a View reads) and its accounting."""

    def __init__(self, instance: Instance, policy: Policy):
        inst = self.instance = instance
        self.policy = policy
        self.policy_name = policy_name(policy)
        self.uses_future = bool(getattr(policy, "uses_future", False))
        N, E, K = inst.num_items, inst.num_epochs, inst.num_tiers
        self.N, self.E, self.K = N, E, K
        self.incl = inst.mode == "inclusive"
        self.size = inst.size_bytes.astype(float)
        self.cap = np.array([np.inf if t.capacity_bytes is None else float(t.capacity_bytes)
                             for t in inst.tiers])
        self.bandwidth = np.array([t.bandwidth_Bps for t in inst.tiers], float)
        self.read_rate = np.array([t.read_rate_Bps() for t in inst.tiers], float)
        self.forced = np.where(inst.pinned_tier >= 0, inst.pinned_tier, inst.initial_tier)
        self.unpinned = inst.pinned_tier < 0
        self.pinned_items = np.flatnonzero(~self.unpinned)
        self.unpinned.setflags(write=False)
        steps = np.arange(E + 1)
        # the epochs to find in the list's own dtype: else numpy searches an int64 copy
        # of a compact (int32) list, as large as the list (3.6 GB at the paper's scale)
        self.rptr = np.searchsorted(inst.read_epoch, steps.astype(inst.read_epoch.dtype))
        self.wptr = np.searchsorted(inst.write_epoch, steps.astype(inst.write_epoch.dtype))
        self.by_birth = np.argsort(inst.birth, kind="stable")
        self.bptr = np.searchsorted(inst.birth[self.by_birth], steps)
        self.by_death = np.argsort(inst.death, kind="stable")
        self.dptr = np.searchsorted(inst.death[self.by_death], np.arange(E + 2))
        # bytes that items born at t with a pinned/initial tier need there, shape (K, E + 1)
        m = self.forced >= 0
        self.reserve = np.zeros((K, E + 1))
        np.add.at(self.reserve, (self.forced[m], inst.birth[m]), self.size[m])
        if self.incl:
            self.reserve[1] = 0.0
        self._ahead: np.ndarray | None = None
        # epochs are (step, layer) in workloads and traces; without labels every epoch is
        # its own step of one layer (docs/policies.md, "What an epoch is")
        labels = inst.epoch_labels
        self.step_of = np.asarray(labels["step"], np.int64) if "step" in labels \
            else np.arange(E, dtype=np.int64)
        self.layer_of = np.asarray(labels["layer"], np.int64) if "layer" in labels \
            else np.zeros(E, np.int64)
        self.steps_sorted = bool(np.all(np.diff(self.step_of) >= 0))
        self.item_layer = np.asarray(inst.item_labels["layer"], np.int64) \
            if "layer" in inst.item_labels else np.full(N, 0 if "layer" not in labels else -1,
                                                        np.int64)
        self._layer_epochs: dict[int, np.ndarray] = {}
        self._num_layers = None
        self._num_steps = None
        # the running state a View exposes, kept up to date in O(births + deaths + moves)
        # per epoch: residency, the items alive at e + 1 that exist at e, the bytes placed
        # per tier (exact integers) and the bytes alive at e
        self.cur = np.full(N, -1, np.int64)
        self.alive_next = np.zeros(N, bool)
        self.used = np.zeros(K, np.int64)
        self.alive_bytes = 0
        self.last_read = np.full(N, -1, np.int64)
        self.last_write = np.full(N, -1, np.int64)
        self.read_count = np.zeros(N, np.int64)
        self.read_bytes_total = np.zeros(N, np.int64)
        self.tier_since = np.full(N, -1, np.int64)
        self.memo: dict = {}
        self.report: dict = {}
        self._next_read = None
        # accounting, shape (K, E)
        self.reads = np.zeros((K, E))
        self.writes = np.zeros((K, E))
        self.copy_in = np.zeros((K, E))
        self.copy_out = np.zeros((K, E))
        self.occupancy = np.zeros((K, E))
        self.copyable = np.zeros(E)          # inclusive: reads of items with a tier-0 copy
        self.entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.num_moves = 0
        self.dying = np.zeros(0, np.int64)   # items alive at the current epoch, not at the next

    # --- what a View asks for -----------------------------------------------------------

    def accesses(self, kind: str, start: int, stop: int) -> Accesses:
        inst = self.instance
        start, stop = max(int(start), 0), min(int(stop), self.E)
        if kind == "read":
            lo, hi = (self.rptr[start], self.rptr[stop]) if stop > start else (0, 0)
            return Accesses(_wide(inst.read_epoch[lo:hi]), _wide(inst.read_item[lo:hi]),
                            _wide(inst.read_bytes[lo:hi]))
        lo, hi = (self.wptr[start], self.wptr[stop]) if stop > start else (0, 0)
        return Accesses(_wide(inst.write_epoch[lo:hi]), _wide(inst.write_item[lo:hi]),
                        _wide(inst.write_bytes[lo:hi]))

    def accesses_at(self, kind: str, epochs: np.ndarray) -> Accesses:
        """Reads or writes of the given epochs (ascending), one slice per run of epochs."""
        epochs = np.asarray(epochs, np.int64)
        if epochs.size == 0:
            return self.accesses(kind, 0, 0)
        if epochs[-1] - epochs[0] + 1 == epochs.size:          # one contiguous range
            return self.accesses(kind, int(epochs[0]), int(epochs[-1]) + 1)
        parts = [self.accesses(kind, int(t), int(t) + 1) for t in epochs]
        return Accesses(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("epoch", "item", "bytes")))

    def layer_epochs(self, layer: int) -> np.ndarray:
        """Every epoch of a layer, ascending (cached)."""
        out = self._layer_epochs.get(layer)
        if out is None:
            out = np.flatnonzero(self.layer_of == layer)
            out.setflags(write=False)
            self._layer_epochs[layer] = out
        return out

    def num_layers(self) -> int:
        if self._num_layers is None:
            self._num_layers = int(np.unique(self.layer_of).size)
        return self._num_layers

    def num_steps(self) -> int:
        if self._num_steps is None:
            self._num_steps = int(np.unique(self.step_of).size)
        return self._num_steps

    def step_window(self, start: int, steps: int) -> np.ndarray:
        """Epochs t >= start with step(t) < step(start) + steps, ascending."""
        E = self.E
        if start >= E or steps <= 0:
            return np.zeros(0, np.int64)
        limit = self.step_of[start] + steps
        if self.steps_sorted:
            stop = int(np.searchsorted(self.step_of, limit, side="left"))
            return np.arange(start, max(stop, start), dtype=np.int64)
        later = np.arange(start, E, dtype=np.int64)
        return later[self.step_of[start:] < limit]

    def free_bytes(self) -> np.ndarray:
        """What is left per tier at the current epoch (before its newborns are placed;
        inclusive tier 1: after every alive item, newborns included)."""
        return self.cap - self._resident()

    def reserve_ahead(self, e: int) -> np.ndarray:
        """max over t > e of the bytes forced items born after e need at t, per tier."""
        if self._ahead is None:
            self._ahead = self._reserve_ahead_table()
        out = self._ahead[:, e].copy()
        out.setflags(write=False)
        return out

    def _reserve_ahead_table(self) -> np.ndarray:
        """:meth:`reserve_ahead` for every epoch, shape (K, E), in O((F log E) + E).

        F = items with a pin or an initial tier.  Pinned items need their bytes on
        [birth, death), items with an initial tier at their birth only.  Sweeping the
        distinct birth epochs of those items downwards, a max-tree per tier adds each
        item's need on its range; the tree's maximum, taken before the items born at b
        are added, is the answer for every epoch e with b_prev <= e < b (no forced item
        is born in between, and at t <= e the items born after e need nothing).
        """
        inst, K, E = self.instance, self.K, self.E
        out = np.zeros((K, E))
        forced = np.flatnonzero(self.forced >= 0)
        if E == 0 or forced.size == 0:
            return out
        births = inst.birth[forced]
        order = np.argsort(births, kind="stable")
        forced, births = forced[order], births[order]
        tree = [_MaxTree(E) for _ in range(K)]
        starts = np.unique(births)
        pos = forced.size
        for j in range(starts.size - 1, -1, -1):
            b = int(starts[j])
            lo = int(np.searchsorted(births, b, side="left"))
            for i in forced[lo:pos]:
                i = int(i)
                pin = int(inst.pinned_tier[i])
                k = pin if pin >= 0 else int(inst.initial_tier[i])
                stop = int(inst.death[i]) if pin >= 0 else b + 1
                tree[k].add(b, min(stop, E), int(inst.size_bytes[i]))
            pos = lo
            # epochs prev <= e < b see exactly the items born at b or later
            prev = int(starts[j - 1]) if j > 0 else 0
            out[:, prev:b] = np.array([float(t.max()) for t in tree])[:, None]
        if self.incl:
            out[1] = 0.0
        return out

    def next_read_epoch(self, t: int) -> np.ndarray:
        """First epoch >= t with a read of each item (E if none), advanced incrementally."""
        inst, E = self.instance, self.E
        st = self._next_read
        if st is None or t < st["t"]:
            # per read: epoch of the same item's next read (E if none)
            order = np.lexsort((inst.read_epoch, inst.read_item))
            nxt = np.full(inst.read_item.size, E, np.int64)
            same = inst.read_item[order[1:]] == inst.read_item[order[:-1]]
            nxt[order[:-1][same]] = inst.read_epoch[order[1:][same]]
            nu = np.full(self.N, E, np.int64)
            first = np.ones(order.size, bool)
            first[1:] = ~same
            nu[inst.read_item[order[first]]] = inst.read_epoch[order[first]]
            st = self._next_read = {"t": 0, "nxt": nxt, "nu": nu}
        lo, hi = self.rptr[st["t"]], self.rptr[min(t, E)]
        if hi > lo:
            # the last read of each item before t tells its next read at or after t
            items, back = np.unique(inst.read_item[lo:hi][::-1], return_index=True)
            st["nu"][items] = st["nxt"][hi - 1 - back]
        st["t"] = max(st["t"], t)
        out = st["nu"].copy()
        out.setflags(write=False)
        return out

    # --- the loop -----------------------------------------------------------------------

    def fail(self, e: int, reason: str):
        raise PolicyError(self.policy_name, e, reason)

    def _tiers(self, arr, what: str, e: int, shape) -> np.ndarray:
        a = np.asarray(arr)
        if a.shape != shape:
            self.fail(e, f"{what} has shape {a.shape}, expected {shape}")
        if a.size and a.dtype.kind not in "iu":
            self.fail(e, f"{what} must hold integer tiers, got dtype {a.dtype}")
        return a.astype(np.int64, copy=False)

    def _check_range(self, e: int, items: np.ndarray, tiers: np.ndarray, when: str) -> None:
        bad = np.flatnonzero((tiers < 0) | (tiers >= self.K))
        if bad.size:
            j = bad[0]
            self.fail(e, f"item {items[j]} is put in tier {tiers[j]} {when}, which does not "
                         f"exist (tiers 0..{self.K - 1})")

    def _tier_name(self, k: int) -> str:
        return self.instance.tiers[int(k)].name

    def step(self, e: int) -> None:
        inst, K, N = self.instance, self.K, self.N
        size = inst.size_bytes
        born = self.by_birth[self.bptr[e]:self.bptr[e + 1]]   # ascending (stable sort)
        dying = self.by_death[self.dptr[e + 1]:self.dptr[e + 2]]   # alive at e, not at e + 1
        alive_next = self.alive_next
        alive_next[born] = True
        alive_next[dying] = False
        self.alive_bytes += int(size[born].sum())
        self.dying = dying
        view = View(self, e, born, alive_next)
        dec = self.policy.decide(view)
        sparse = isinstance(dec, Moves)
        if sparse:
            items, tiers, born_tier = dec
        elif isinstance(dec, tuple) and len(dec) == 2:
            next_tier, born_tier = dec
        else:
            self.fail(e, f"decide() must return a Decision(next_tier, born_tier) or "
                         f"Moves(items, tiers, born_tier), got {type(dec).__name__}")
        born_tier = self._tiers(born_tier, "born_tier", e, born.shape).copy()

        # newborns: tiers exist, pins and initial tiers hold
        self._check_range(e, born, born_tier, f"at its birth (epoch {e})")
        want = self.forced[born]
        bad = np.flatnonzero((want >= 0) & (born_tier != want))
        if bad.size:
            i = born[bad[0]]
            rule = "is pinned to" if inst.pinned_tier[i] >= 0 else "has initial tier"
            self.fail(e, f"item {i} {rule} {self._tier_name(want[bad[0]])} but is placed in "
                         f"tier {self._tier_name(born_tier[bad[0]])} at birth")
        if sparse:
            self.cur[born] = born_tier
            mv_items, mv_dst = self._moves(e, items, tiers)
        else:
            next_tier = self._tiers(next_tier, "next_tier", e, (N,))
            # entries that differ from the residency (a newborn's -1: it stays), read
            # before the residency changes (next_tier may be a view of it)
            differs = next_tier != self.cur
            differs[born[next_tier[born] < 0]] = False
            self.cur[born] = born_tier
            differs[born] &= next_tier[born] != born_tier
            differs &= alive_next
            mv_items = np.flatnonzero(differs)
            mv_dst = next_tier[mv_items].astype(np.int64)
        if born.size:
            self.used += np.bincount(born_tier, weights=size[born], minlength=K).astype(np.int64)
        self.tier_since[born] = e

        # residency at e + 1: tiers exist, pins hold (an unmoved item is where it was)
        self._check_range(e, mv_items, mv_dst, f"for epoch {e + 1}")
        pin = inst.pinned_tier[mv_items]
        bad = np.flatnonzero(pin >= 0)
        if bad.size:
            j = bad[0]
            self.fail(e, f"item {mv_items[j]} is pinned to tier {self._tier_name(pin[j])} but "
                         f"the decision moves it to tier {self._tier_name(mv_dst[j])} at epoch "
                         f"{e + 1}")
        mv_src = self.cur[mv_items]
        msize = self.size[mv_items]

        # copies made during e, and capacity during e (residents + copies in)
        if self.incl:
            promo = mv_dst == 0
            self.copy_in[0, e] = msize[promo].sum()
            self.copy_out[1, e] = msize[promo].sum()
        else:
            self.copy_in[:, e] = np.bincount(mv_dst, weights=msize, minlength=K)
            self.copy_out[:, e] = np.bincount(mv_src, weights=msize, minlength=K)
        resident = self._resident()
        occ = resident + self.copy_in[:, e]
        self.occupancy[:, e] = occ
        over = np.flatnonzero(occ > self.cap)
        if over.size:
            k = over[0]
            self.fail(e, f"tier {self._tier_name(k)} would hold {format_bytes(occ[k])} > "
                         f"{format_bytes(self.cap[k])} ({format_bytes(resident[k])} resident + "
                         f"{format_bytes(self.copy_in[k, e])} being copied in)")

        # traffic of epoch e
        lo, hi = self.rptr[e], self.rptr[e + 1]
        r_items, r_bytes = inst.read_item[lo:hi], inst.read_bytes[lo:hi].astype(float)
        lo_w, hi_w = self.wptr[e], self.wptr[e + 1]
        w_items, w_bytes = inst.write_item[lo_w:hi_w], inst.write_bytes[lo_w:hi_w].astype(float)
        r_tier, w_tier = self.cur[r_items], self.cur[w_items]
        if self.incl:
            has_copy = r_tier == 0
            self.copyable[e] = r_bytes[has_copy].sum()
            self.reads[1, e] = r_bytes.sum()      # total; split chosen in times()
            self.writes[0, e] = w_bytes[w_tier == 0].sum()
            self.writes[1, e] = w_bytes.sum()
        else:
            self.reads[:, e] = np.bincount(r_tier, weights=r_bytes, minlength=K)
            self.writes[:, e] = np.bincount(w_tier, weights=w_bytes, minlength=K)

        # record the schedule's entries, then advance to e + 1
        if born.size:
            self.entries.append((born, np.full(born.size, e, np.int64), born_tier.copy()))
        if mv_items.size:
            self.entries.append((mv_items, np.full(mv_items.size, e + 1, np.int64), mv_dst))
            self.num_moves += int(mv_items.size)
            isize = size[mv_items]
            self.used -= np.bincount(mv_src, weights=isize, minlength=K).astype(np.int64)
            self.used += np.bincount(mv_dst, weights=isize, minlength=K).astype(np.int64)
            self.cur[mv_items] = mv_dst
        if dying.size:
            self.used -= np.bincount(self.cur[dying], weights=size[dying],
                                     minlength=K).astype(np.int64)
            self.alive_bytes -= int(size[dying].sum())
            self.cur[dying] = -1
        self.tier_since[mv_items] = e + 1
        self.last_read[r_items] = e
        self.read_count[r_items] += 1
        self.read_bytes_total[r_items] += inst.read_bytes[lo:hi]
        self.last_write[w_items] = e

    def _resident(self) -> np.ndarray:
        """Bytes resident during the current epoch, per tier (inclusive tier 1: all alive)."""
        out = self.used.astype(float)
        if self.incl:
            out[1] = float(self.alive_bytes)
        return out

    def _moves(self, e: int, items, tiers) -> tuple[np.ndarray, np.ndarray]:
        """The moves of a change list: items alive at e + 1 whose tier changes, ascending."""
        items = np.asarray(items)
        tiers = np.asarray(tiers)
        if items.ndim != 1 or tiers.shape != items.shape:
            self.fail(e, f"Moves.items and Moves.tiers must be 1-D arrays of one length, got "
                         f"shapes {items.shape} and {tiers.shape}")
        if items.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        for name, a in (("items", items), ("tiers", tiers)):
            if a.dtype.kind not in "iu":
                self.fail(e, f"Moves.{name} must hold integers, got dtype {a.dtype}")
        items = items.astype(np.int64, copy=False)
        tiers = tiers.astype(np.int64, copy=False)
        bad = np.flatnonzero((items < 0) | (items >= self.N))
        if bad.size:
            self.fail(e, f"Moves.items holds item {items[bad[0]]}, which does not exist "
                         f"(items 0..{self.N - 1})")
        order = np.argsort(items, kind="stable")
        items, tiers = items[order], tiers[order]
        dup = np.flatnonzero(items[1:] == items[:-1])
        if dup.size:
            self.fail(e, f"Moves.items lists item {items[dup[0]]} twice")
        keep = self.alive_next[items] & (tiers != self.cur[items])
        return items[keep], tiers[keep]

    def run(self) -> None:
        for e in range(self.E):
            self.step(e)

    # --- results ------------------------------------------------------------------------

    def schedule(self) -> Schedule:
        if self.entries:
            item = np.concatenate([a for a, _, _ in self.entries])
            epoch = np.concatenate([b for _, b, _ in self.entries])
            tier = np.concatenate([c for _, _, c in self.entries])
        else:
            item = epoch = tier = np.zeros(0, np.int64)
        order = np.lexsort((epoch, item))
        return Schedule(self.instance.name, item[order], epoch[order], tier[order])

    def epoch_times(self) -> np.ndarray:
        """τ(e) from the simulator's own accounting (docs/model.md section 4).

        Inclusive mode: the tier-0 share H of the reads of items with a tier-0 copy is
        chosen to minimise τ(e); τ is convex in H, so its minimum over [0, copyable] is at
        an end or where tier 0's growing device term meets a shrinking tier-1 term.
        """
        inst = self.instance
        c = np.asarray(inst.min_time_s, float)
        if not self.incl:
            terms = [c]
            for k, t in enumerate(inst.tiers):
                terms.append((self.reads[k] + self.writes[k] + self.copy_in[k] + self.copy_out[k])
                             / t.bandwidth_Bps)
                if t.link_read_Bps is not None:
                    terms.append((self.reads[k] + self.copy_out[k]) / t.link_read_Bps)
                if t.link_write_Bps is not None:
                    terms.append((self.writes[k] + self.copy_in[k]) / t.link_write_Bps)
            return np.max(terms, axis=0)
        t0, t1 = inst.tiers
        total, cap_h = self.reads[1], self.copyable
        load0 = self.writes[0] + self.copy_in[0] + self.copy_out[0]
        # shrinking terms: (total - H + d) / beta
        shrink = [(self.writes[1] + self.copy_in[1] + self.copy_out[1], t1.bandwidth_Bps)]
        if t1.link_read_Bps is not None:
            shrink.append((self.copy_out[1], t1.link_read_Bps))
        fixed = [c]
        if t1.link_write_Bps is not None:
            fixed.append((self.writes[1] + self.copy_in[1]) / t1.link_write_Bps)
        fixed = np.max(fixed, axis=0)

        def tau_at(h):
            vals = [fixed, (h + load0) / t0.bandwidth_Bps]
            vals += [(total - h + d) / beta for d, beta in shrink]
            return np.max(vals, axis=0)

        cands = [np.zeros_like(total), cap_h]
        for d, beta in shrink:
            h = (t0.bandwidth_Bps * (total + d) - beta * load0) / (t0.bandwidth_Bps + beta)
            cands.append(np.clip(h, 0.0, cap_h))
        return np.min([tau_at(h) for h in cands], axis=0)


class PolicyOutOfTime(Exception):
    """The run was abandoned: at the pace measured so far it would not finish by the
    deadline (``run_policy(..., deadline=)``).  Carries the epochs done and the projection."""

    def __init__(self, done: int, total: int, projected_s: float):
        self.done, self.total, self.projected_s = done, total, projected_s
        super().__init__(f"abandoned after {done} of {total} epochs: projected "
                         f"{projected_s:.3g} s in all")


#: a run with a deadline checks its pace after this many epochs, then every CHECK_EVERY
FIRST_CHECK, CHECK_EVERY = 8, 64


def run_policy(instance: Instance, policy: Policy, *, deadline=None) -> _Run:
    """Simulate ``policy`` on ``instance`` and return the raw run (schedule + accounting).

    Most callers want :func:`simulate`, which also re-scores the schedule with the
    evaluator and returns a :class:`~hetkv_opt.solve.SolveResult`.

    ``deadline`` (a :class:`~hetkv_opt.deadline.Deadline`, optional): the run is abandoned
    (:class:`PolicyOutOfTime`) as soon as the pace of the epochs done says it would end
    after the deadline, or the deadline has passed, so a caller with a budget never waits
    for a run it cannot use (one epoch's work, a policy's set-up included, is the most it
    can overrun by).

    Raises
    ------
    PolicyError
        When a decision breaks a rule of the model.
    PolicyOutOfTime
        When a deadline was given and the run would not finish by it.
    """
    run = _Run(instance, policy)
    if deadline is None or deadline.unlimited:
        run.run()
        return run
    # the pace is measured after the first epochs (which carry a policy's one-time set-up)
    t0 = time.perf_counter()
    E, check, mark = run.E, FIRST_CHECK, None
    for e in range(E):
        run.step(e)
        if e + 1 < E and deadline.expired():
            # the time is up (a policy's set-up in its first epochs can take longer than
            # the share it was given): stop now rather than at the next pace check
            now = time.perf_counter()
            raise PolicyOutOfTime(e + 1, E, (now - t0) / (e + 1) * E)
        if e + 1 == check and e + 1 < E:
            now = time.perf_counter()
            left = deadline.remaining_s()
            if mark is None:
                pace, slack = (now - t0) / (e + 1), 4.0    # set-up included: be lenient
            else:
                pace, slack = (now - mark[1]) / (e + 1 - mark[0]), 1.0
            projected = pace * (E - e - 1)
            if left is not None and projected > slack * left:
                raise PolicyOutOfTime(e + 1, E, now - t0 + projected)
            mark = (e + 1, now)
            check += CHECK_EVERY
    return run


__all__ = ["PolicyOutOfTime", "run_policy"]
