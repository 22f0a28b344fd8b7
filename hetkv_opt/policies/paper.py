"""The seed paper's policies (docs/paper.md, "Its policies"): static, reactive, page, sa-guided.

Fang et al., "Accelerating LLM Inference via Dynamic KV Cache Placement in Heterogeneous
Memory System", arXiv 2508.13231 (2025).  Re-implemented from the paper's description
under this project's model: a move decided before epoch e lands at e + 1 (it is copied
during e), so an online policy acts on what it saw up to e - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.parts import prefix_instance
from hetkv_opt.policies.base import Moves, Policy, ScoredPolicy, View
from hetkv_opt.policies.registry import register_policy
from hetkv_opt.policies.run import run_policy


def place_in_order(view: View, items: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Tiers for ``items`` in the given order: tier 0 while it has ``room``, then tier 1...

    Parameters
    ----------
    view : View
    items : ndarray of int
        Items to place, in priority order.
    room : ndarray of float, shape (K,)
        Bytes available per tier (the last tier takes whatever is left over; in inclusive
        mode tier 1 always holds every item).

    Returns
    -------
    ndarray of int64, aligned with ``items``.
    """
    K = view.num_tiers
    size = view._size_f
    tiers = np.full(items.size, K - 1, np.int64)
    left = np.arange(items.size)
    for k in range(K - 1):
        cum = np.cumsum(size[items[left]])
        n = int(np.searchsorted(cum, room[k], side="right"))
        tiers[left[:n]] = k
        left = left[n:]
    return tiers


@register_policy("static")
@dataclass
class Static(Policy):
    """Static placement (the paper's "Static"): fill HBM with the prompt's KV in order,
    new KV to HBM while there is room, never move anything.

    Items born at the same epoch are placed in index order; tier 0 first, then the next
    tiers in order.  Room that items born later must take (pins, initial tiers) is kept
    free, since nothing ever moves to make room.
    """

    def decide(self, view: View) -> Moves:
        born = np.asarray(view.born)
        forced = view.forced_birth_tier[born]
        born_tier = forced.copy()
        size = view._size_f
        room = np.array(view.free_bytes, float) - view.reserve_ahead_bytes()
        room -= np.bincount(forced[forced >= 0], weights=size[born[forced >= 0]],
                            minlength=view.num_tiers)
        free_born = np.flatnonzero(forced < 0)
        born_tier[free_born] = place_in_order(view, born[free_born], room)
        return Moves.none(born_tier)


@register_policy("reactive")
@dataclass
class Reactive(ScoredPolicy):
    """Reactive migration (the paper's "Reactive"): pull every item read now into HBM,
    evicting when full.

    "Now" is the latest epoch the policy knows (e - 1); those items and new ones are
    copied in during e.  When HBM is full the victims are the items that entered it
    first (FIFO); items not just read are never pulled in.
    """

    def score(self, view: View) -> np.ndarray:
        e = view.epoch
        # older arrivals leave first
        s = np.where(np.asarray(view.residency) == 0, view.tier_since_epoch, -np.inf)
        s[view.reads_in(e - 1, e).item] = e + 1     # read now: pulled in
        s[view.born] = e + 1                        # new KV goes to HBM while room
        return s


def page_ids(view: View) -> np.ndarray:
    """Page of every item: items with the same ``(request, block)`` labels, across all
    layers, form one page; without a ``block`` label every item is its own page."""
    labels = view.item_labels
    if "block" not in labels:
        return np.arange(view.num_items)
    keys = [np.asarray(labels["block"])]
    if "request" in labels:
        keys.append(np.asarray(labels["request"]))
    if "kind" in labels:
        keys.append(np.unique(np.asarray(labels["kind"]), return_inverse=True)[1])
    _, ids = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
    return ids.reshape(-1)


@register_policy("page")
@dataclass
class Page(ScoredPolicy):
    """Page migration (the paper's "Page"): move whole 16-token pages, across all layers,
    that were just read; evict the page read longest ago.

    A page is the set of items sharing ``block`` (and ``request``, ``kind``) labels, all
    layers together (:func:`page_ids`); without labels every item is its own page.  A
    page's score is the latest epoch any of its items was read (or born), so its items
    rank, move and leave together.
    """

    def score(self, view: View) -> np.ndarray:
        e, m = view.epoch, view.memo
        if "page" not in m:
            m["page"] = page_ids(view)
            m["last"] = np.full(int(m["page"].max(initial=-1)) + 1, -1.0)
        page, last = m["page"], m["last"]
        last[page[view.reads_in(e - 1, e).item]] = e - 1
        last[page[view.born]] = e
        s = last[page]                  # a new array: changed in place
        s[s < 0] = -np.inf
        return s


@register_policy("sa-guided")
@dataclass
class SAGuided(ScoredPolicy):
    """Look-ahead placement tuned by simulated annealing (the paper's "SA-guided"; an
    oracle: it reads the future trace).

    Before epoch e, every item scores ``sum over its reads at e < t <= e + window of
    1 / (t - e)``; the top ``fraction`` of the items with a positive score are wanted in
    tier 0 (the base fills it in score order).  With ``tune=True``, simulated annealing
    first searches ``(window, fraction)`` for the lowest evaluated time on this very
    instance, ``iterations`` simulations from the given values, deterministic by ``seed``;
    with ``tune_steps > 0``, on its first ``tune_steps`` decode steps only (the
    simulations then cost that share of a run: on the paper's 10,240 steps a full
    annealing is 17 runs of the whole instance).
    """

    uses_future = True
    window: int = 8
    fraction: float = 0.5
    tune: bool = True
    iterations: int = 16
    max_window: int = 32
    seed: int = 0
    tune_steps: int = 0

    def __post_init__(self):
        super().__post_init__()
        self._need(self.window >= 1, "window", "must be >= 1")
        self._need(0.0 < self.fraction <= 1.0, "fraction", "must be in (0, 1]")
        self._need(self.iterations >= 0, "iterations", "must be >= 0")
        self._need(self.max_window >= 1, "max_window", "must be >= 1")
        self._need(self.tune_steps >= 0, "tune_steps", "must be >= 0 (0: the whole instance)")

    def score(self, view: View) -> np.ndarray:
        m = view.memo
        if "window" not in m:
            m["window"], m["fraction"] = self.window, self.fraction
            if self.tune and self.iterations > 0:
                m["window"], m["fraction"] = self._anneal(view)
        e, W, f = view.epoch, m["window"], m["fraction"]
        ahead = view.future.reads_in(e + 1, e + 1 + W)
        s = ahead.per_item(view.num_items, 1.0 / (ahead.epoch - e))
        positive = np.flatnonzero(s > 0)
        sp = s[positive]
        n_top = math.ceil(f * positive.size)
        if n_top < positive.size:
            # the n_top-th largest score; those below it are not wanted
            cut = np.partition(sp, positive.size - n_top)[positive.size - n_top] \
                if n_top > 0 else np.inf
            keep = sp >= cut
            positive, sp = positive[keep], sp[keep]
        out = np.full(view.num_items, -np.inf)
        out[positive] = sp
        return out

    def _anneal(self, view: View) -> tuple[int, float]:
        """Simulated annealing over (window, fraction), scored by the evaluator."""
        inst = view.future.instance
        if self.tune_steps > 0:
            # the epochs of the first tune_steps steps, when they come first
            steps = np.asarray(view.epoch_step)
            stop = int(np.searchsorted(steps, self.tune_steps)) \
                if np.all(np.diff(steps) >= 0) else inst.num_epochs
            if 0 < stop < inst.num_epochs:
                inst = prefix_instance(inst, stop)
            view.report["tuned_on_epochs"] = inst.num_epochs
        rng = np.random.default_rng(self.seed)
        cache: dict[tuple[int, float], float] = {}

        def cost(w: int, f: float) -> float:
            key = (w, round(f, 2))
            if key not in cache:
                run = run_policy(inst, SAGuided(fill=self.fill, window=w, fraction=key[1],
                                                tune=False))
                ev = evaluate(inst, run.schedule())      # the evaluator's T, as simulate's
                cache[key] = ev.total_time_s if ev.feasible else math.inf
            return cache[key]

        w_max = max(1, min(self.max_window, inst.num_epochs))
        cur = (min(self.window, w_max), round(self.fraction, 2))
        cur_cost = cost(*cur)
        best, best_cost = cur, cur_cost
        temp0, temp1 = 0.05, 0.001        # relative worsening accepted with prob. 1/e
        for it in range(self.iterations):
            temp = temp0 * (temp1 / temp0) ** (it / max(1, self.iterations - 1))
            w, f = cur
            if rng.random() < 0.5:
                step = max(1, w // 4) * int(rng.choice([-2, -1, 1, 2]))
                w = int(np.clip(w + step, 1, w_max))
            else:
                f = float(np.clip(round(f + float(rng.choice([-0.2, -0.1, 0.1, 0.2])), 2),
                                  0.05, 1.0))
            c = cost(w, f)
            rel = (c - cur_cost) / cur_cost if cur_cost > 0 else 0.0
            if rel <= 0 or rng.random() < math.exp(-rel / temp):
                cur, cur_cost = (w, f), c
                if c < best_cost:
                    best, best_cost = (w, f), c
        view.report.update({"tuned_window": best[0], "tuned_fraction": best[1],
                            "tuned_time_s": best_cost, "tuning_simulations": len(cache)})
        return best
