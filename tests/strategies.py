"""Tiny random instances and schedules, for hypothesis and for plain seeded loops.

One builder (:func:`build_instance`) draws every choice through a small ``Draw`` object,
so the hypothesis strategies (:func:`instances`, :func:`instances_with_residency`) and
the seeded generator (:func:`random_instance`) produce the same family of instances:

- 2 or 3 tiers (inclusive mode: exactly 2), tier 0 without a link, tiers >= 1 with link
  limits set or null, bounded or unbounded capacities;
- sizes 1-3 bytes, bandwidths 1, 2 or 4 B/s (so times are short binary fractions);
- births, deaths, pins, initial tiers, reads, writes and compute floors;
- few enough free decisions that :mod:`brute_force` can enumerate every residency.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import strategies as st

from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.model.schedule import Schedule, schedule_from_residency

BANDWIDTHS = (1.0, 2.0, 4.0)
LINKS = (None, 1.0, 2.0, 4.0)
FLOORS = (0.25, 0.5, 1.0, 2.0)
#: at most this many free decisions per instance, by number of tiers (K ** limit <= ~2k)
DECISION_LIMIT = {1: 12, 2: 11, 3: 7}


class RandomDraw:
    """Draws from a seeded :class:`random.Random`."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class HypothesisDraw:
    """Draws through hypothesis' ``draw`` (shrinks towards the first choice / False)."""

    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def chance(self, p: float) -> bool:
        return self.draw(st.integers(0, 999)) >= round(1000 * (1 - p))


def build_instance(d, *, name: str = "rand", mode: str | None = None,
                   num_tiers: int | None = None, bounded: bool | None = None,
                   min_pinned: int = 0, min_initial: int = 0, labels: bool = False,
                   decision_limit: int | None = None) -> Instance:
    """Draw one tiny valid instance.

    Parameters
    ----------
    d : RandomDraw or HypothesisDraw
    mode : "exclusive", "inclusive" or None (drawn)
    num_tiers : 2, 3 or None (drawn; inclusive mode always has 2)
    bounded : None (capacities drawn), False (every tier unbounded), True (tier 0 bounded)
    min_pinned, min_initial : at least this many items pinned / with an initial tier
    labels : also draw item/epoch labels and metadata (for file round trips)
    decision_limit : cap on free decisions (default :data:`DECISION_LIMIT`)
    """
    if mode is None:
        mode = d.choice(("exclusive", "exclusive", "inclusive"))
    K = 2 if mode == "inclusive" else (num_tiers or d.choice((2, 3)))
    limit = DECISION_LIMIT[K] if decision_limit is None else decision_limit
    E = d.choice((1, 2, 3, 3, 4, 4) if K == 2 else (1, 2, 3, 3))
    N = max(min_pinned + min_initial, d.choice((1, 2, 3, 3, 4, 4) if K == 2 else (1, 2, 3, 3)))
    size = [d.int(1, 3) for _ in range(N)]
    birth, death, pinned, initial = [], [], [], []
    used = 0
    for i in range(N):
        b = 0 if d.chance(0.5) else d.int(0, E - 1)        # long lives are common
        e_end = E if d.chance(0.5) else d.int(b + 1, E)
        pin = init = -1
        if i < min_pinned or d.chance(0.15):
            pin = d.int(0, K - 1)
        if i >= min_pinned and i < min_pinned + min_initial or d.chance(0.2):
            init = pin if pin >= 0 else d.int(0, K - 1)
        free = 0 if pin >= 0 else (e_end - b) - (1 if init >= 0 else 0)
        if used + free > limit:  # too many decisions: pin it (keeps the instance valid)
            pin = init if init >= 0 else d.int(0, K - 1)
            free = 0
        used += free
        birth.append(b)
        death.append(e_end)
        pinned.append(pin)
        initial.append(init)
    total = sum(size)
    tiers = []
    for k in range(K):
        t = {"name": ("hbm", "dram", "ssd")[k], "bandwidth_Bps": d.choice(BANDWIDTHS)}
        if bounded is False:
            p_bounded = 0.0
        elif k == 0:
            p_bounded = 1.0 if bounded else 0.8
        elif mode == "inclusive":
            p_bounded = 0.2
        else:
            p_bounded = 0.5 if k < K - 1 else 0.2
        t["capacity_bytes"] = d.int(0, total + 1) if d.chance(p_bounded) else None
        if k >= 1:
            t["link_read_Bps"] = d.choice(LINKS)
            t["link_write_Bps"] = d.choice(LINKS)
        tiers.append(t)
    reads = ([], [], [])
    writes = ([], [], [])
    for e in range(E):
        for i in range(N):
            if not birth[i] <= e < death[i]:
                continue
            if d.chance(0.6):
                for arr, v in zip(reads, (e, i, d.int(1, size[i]))):
                    arr.append(v)
            if d.chance(0.25):
                for arr, v in zip(writes, (e, i, d.int(1, size[i]))):
                    arr.append(v)
    floors = [d.choice(FLOORS) if d.chance(0.3) else 0.0 for _ in range(E)]
    item_labels = epoch_labels = metadata = None
    if labels:
        item_labels, epoch_labels, metadata = {}, {}, {}
        if d.chance(0.5):
            item_labels["kind"] = [d.choice(("kv", "weight", "expert", "other")) for _ in range(N)]
        for key in ("layer", "request", "block"):
            if d.chance(0.4):
                item_labels[key] = [d.int(0, 3) for _ in range(N)]
        if d.chance(0.5):
            epoch_labels["step"] = sorted(d.int(0, 2) for _ in range(E))
        if d.chance(0.3):
            epoch_labels["layer"] = [d.int(0, 3) for _ in range(E)]
        if d.chance(0.5):
            metadata = {"source": d.choice(("unit", "test")), "seed": d.int(0, 9),
                        "nested": {"a": [1, 2.5, None]}}
    return make_instance(name=name, tiers=tiers, size_bytes=size, num_epochs=E, birth=birth,
                         death=death, pinned_tier=pinned, initial_tier=initial,
                         min_time_s=floors, reads=reads, writes=writes, mode=mode,
                         item_labels=item_labels, epoch_labels=epoch_labels, metadata=metadata)


def build_residency(d, inst: Instance) -> np.ndarray:
    """Draw a structurally valid residency (pins and initial tiers kept), shape (N, E).

    Capacities are not considered; cells outside an item's life are -1.
    """
    rho = np.full((inst.num_items, inst.num_epochs), -1, np.int64)
    K = inst.num_tiers
    for i in range(inst.num_items):
        b, e_end = int(inst.birth[i]), int(inst.death[i])
        pin, init = int(inst.pinned_tier[i]), int(inst.initial_tier[i])
        for e in range(b, e_end):
            if pin >= 0:
                rho[i, e] = pin
            elif e == b and init >= 0:
                rho[i, e] = init
            elif e > b and d.chance(0.5):
                rho[i, e] = rho[i, e - 1]   # stay: makes runs, not only moves
            else:
                rho[i, e] = d.int(0, K - 1)
    return rho


def random_instance(seed: int, **kw) -> Instance:
    """The seeded (non-hypothesis) generator: same family as :func:`instances`.

    >>> random_instance(3).equals(random_instance(3))
    True
    """
    return build_instance(RandomDraw(seed), name=f"rand{seed}", **kw)


@st.composite
def instances(draw, **kw) -> Instance:
    """Hypothesis strategy: one tiny valid instance (keywords as :func:`build_instance`)."""
    return build_instance(HypothesisDraw(draw), **kw)


@st.composite
def instances_with_residency(draw, **kw) -> tuple[Instance, np.ndarray, Schedule]:
    """Hypothesis strategy: (instance, structurally valid residency, its schedule)."""
    d = HypothesisDraw(draw)
    inst = build_instance(d, **kw)
    rho = build_residency(d, inst)
    return inst, rho, schedule_from_residency(inst, np.where(rho < 0, 0, rho))
