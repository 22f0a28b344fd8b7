"""Test helpers for methods and policies: an exhaustive optimality oracle and tiny random instances.

The project tests every method and policy against these; a policy or method author can
test theirs the same way (README, "Testing your own policy").

- :func:`brute_force` enumerates every residency of a tiny instance, scores each with the
  independent evaluator (:func:`hetkv_opt.model.evaluate.evaluate`) and returns the optimum:
  no method may beat it, an exact method must match it.
- :func:`random_instance` (seeded) and the hypothesis strategies :func:`instances` and
  :func:`instances_with_residency` draw from one family of tiny valid instances (2 or 3
  tiers, links, capacities, pins, initial tiers, births, deaths, reads, writes, compute
  floors), small enough for :func:`brute_force`.

The strategies need `hypothesis <https://hypothesis.readthedocs.io>`_, a development extra
(``pip install 'hetkv-opt[dev]'``); it is imported only when a strategy is built, so the
oracle and the seeded generator work without it.

Examples
--------
>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.solve import solve
>>> bf = brute_force(tiny_instance())
>>> bf.best_time_s, bf.num_candidates, bf.num_feasible
(2.0, 256, 148)
>>> solve(tiny_instance(), "milp").total_time_s == bf.best_time_s
True
>>> inst = random_instance(3)
>>> inst.equals(random_instance(3)), num_candidates(inst) <= MAX_CANDIDATES
(True, True)
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.evaluate import Evaluation, evaluate
from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.model.schedule import Schedule, schedule_from_residency

#: refuse to enumerate more than this many residencies (a test-suite speed guard)
MAX_CANDIDATES = 5000

BANDWIDTHS = (1.0, 2.0, 4.0)
LINKS = (None, 1.0, 2.0, 4.0)
FLOORS = (0.25, 0.5, 1.0, 2.0)
#: at most this many free decisions per instance, by number of tiers (K ** limit <= ~2k)
DECISION_LIMIT = {1: 12, 2: 11, 3: 7}


def _hypothesis_strategies():
    """``hypothesis.strategies``, or an ImportError that says how to install it."""
    try:
        from hypothesis import strategies
    except ImportError:
        raise ImportError("hetkv_opt.testing: the hypothesis strategies need the 'hypothesis' "
                          "package, a development extra: pip install 'hetkv-opt[dev]' "
                          "(or pip install hypothesis)") from None
    return strategies


# ----------------------------------------------------------------------------- the oracle

def free_decisions(inst: Instance) -> list[int]:
    """Per item, the number of epochs whose tier is free to choose.

    Parameters
    ----------
    inst : Instance

    Returns
    -------
    list of int
        0 for a pinned item; its life (``death - birth``) less one when it has an initial
        tier; else its life.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> free_decisions(tiny_instance())
    [3, 3, 2]
    """
    out = []
    for i in range(inst.num_items):
        if inst.pinned_tier[i] >= 0:
            out.append(0)
            continue
        life = int(inst.death[i] - inst.birth[i])
        out.append(life - (1 if inst.initial_tier[i] >= 0 else 0))
    return out


def num_candidates(inst: Instance) -> int:
    """How many residencies :func:`brute_force` enumerates: ``prod_i K ** free_i``.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> num_candidates(tiny_instance())
    256
    """
    return math.prod(inst.num_tiers ** f for f in free_decisions(inst))


def item_paths(inst: Instance, i: int) -> list[tuple[int, ...]]:
    """Every sequence of tiers item ``i`` may take over its life (epochs ``birth .. death-1``).

    Pins and initial tiers are respected; nothing else is pruned.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> item_paths(tiny_instance(), 2)
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    life = int(inst.death[i] - inst.birth[i])
    K = inst.num_tiers
    pin, init = int(inst.pinned_tier[i]), int(inst.initial_tier[i])
    if pin >= 0:
        return [(pin,) * life]
    first = [init] if init >= 0 else list(range(K))
    return list(itertools.product(first, *([range(K)] * (life - 1))))


@dataclass
class BruteForceResult:
    """The optimum found by enumeration.

    Attributes
    ----------
    best_time_s : float or None
        The optimal ``total_time_s``; None when no residency is feasible.
    best_residency : ndarray of int64, shape (N, E), or None
        Tier of every item at every epoch of its life (0 outside it).
    best_schedule : Schedule or None
        The same residency as moves (:func:`hetkv_opt.model.schedule.schedule_from_residency`).
    best_evaluation : Evaluation or None
        The evaluator's verdict on it.
    num_candidates, num_feasible : int
        Residencies enumerated, and how many of them fit the capacities.
    """

    best_time_s: float | None
    best_residency: np.ndarray | None
    best_schedule: Schedule | None
    best_evaluation: Evaluation | None
    num_candidates: int
    num_feasible: int


def brute_force(inst: Instance, max_candidates: int = MAX_CANDIDATES) -> BruteForceResult:
    """Enumerate every residency of ``inst`` and return the best feasible one.

    Every free item may sit in every tier at every epoch of its life (pins and initial
    tiers respected, nothing else pruned); each candidate becomes a :class:`Schedule` and
    is scored by :func:`hetkv_opt.model.evaluate.evaluate`.  The best feasible
    ``total_time_s`` is the optimum.  Keep instances tiny (:func:`num_candidates`).

    Parameters
    ----------
    inst : Instance
    max_candidates : int
        Refuse instances with more residencies than this.

    Returns
    -------
    BruteForceResult

    Raises
    ------
    ValueError
        When the instance has more than ``max_candidates`` residencies.
    AssertionError
        When the evaluator calls a structurally valid candidate malformed (it must only
        ever say "over capacity" about these candidates).

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> bf = brute_force(tiny_instance())
    >>> bf.best_time_s, bf.best_residency.tolist()
    (2.0, [[0, 0, 0], [0, 1, 1], [0, 0, 0]])
    >>> bf.best_evaluation.feasible
    True
    """
    count = num_candidates(inst)
    if count > max_candidates:
        raise ValueError(f"{count} residencies to enumerate > {max_candidates}")
    N, E = inst.num_items, inst.num_epochs
    paths = [item_paths(inst, i) for i in range(N)]
    births = inst.birth.tolist()
    deaths = inst.death.tolist()
    rho = np.zeros((N, E), np.int64)
    best_t = None
    best = None
    feasible = 0
    for combo in itertools.product(*paths):
        for i, path in enumerate(combo):
            rho[i, births[i]:deaths[i]] = path
        schedule = schedule_from_residency(inst, rho)
        ev = evaluate(inst, schedule)
        if not math.isfinite(ev.total_time_s):
            raise AssertionError(f"evaluator rejects a well-formed residency {rho.tolist()}: "
                                 f"{ev.violations}")
        if not ev.feasible:
            continue
        feasible += 1
        if best_t is None or ev.total_time_s < best_t:
            best_t = ev.total_time_s
            best = (rho.copy(), schedule, ev)
    return BruteForceResult(best_t, best[0] if best else None, best[1] if best else None,
                            best[2] if best else None, count, feasible)


# ----------------------------------------------------------------------------- instances

class RandomDraw:
    """The choices of :func:`build_instance`, drawn from a seeded :class:`random.Random`.

    Parameters
    ----------
    seed : int
    """

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` (both included)."""
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        """One element of ``seq``."""
        return seq[self.rng.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        """True with probability ``p``."""
        return self.rng.random() < p


class HypothesisDraw:
    """The choices of :func:`build_instance`, drawn through hypothesis' ``draw``.

    Shrinks towards the first choice / False.  Use it inside your own
    ``@hypothesis.strategies.composite`` to draw an instance and more from one example.

    Parameters
    ----------
    draw : callable
        The ``draw`` argument of a hypothesis composite strategy.
    """

    def __init__(self, draw):
        self.draw = draw
        self._st = _hypothesis_strategies()

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]`` (both included)."""
        return self.draw(self._st.integers(lo, hi))

    def choice(self, seq):
        """One element of ``seq``."""
        return self.draw(self._st.sampled_from(list(seq)))

    def chance(self, p: float) -> bool:
        """True with probability about ``p``."""
        return self.draw(self._st.integers(0, 999)) >= round(1000 * (1 - p))


def build_instance(d, *, name: str = "rand", mode: str | None = None,
                   num_tiers: int | None = None, bounded: bool | None = None,
                   min_pinned: int = 0, min_initial: int = 0, labels: bool = False,
                   decision_limit: int | None = None) -> Instance:
    """Draw one tiny valid instance.

    2 or 3 tiers (inclusive mode: exactly 2), tier 0 without a link, tiers >= 1 with link
    limits set or null, bounded or unbounded capacities; sizes 1-3 bytes, bandwidths 1, 2
    or 4 B/s (so times are short binary fractions); births, deaths, pins, initial tiers,
    reads, writes and compute floors; few enough free decisions that :func:`brute_force`
    can enumerate every residency.

    Parameters
    ----------
    d : RandomDraw or HypothesisDraw
        Where the choices come from.
    name : str
    mode : {"exclusive", "inclusive"}, optional
        Drawn when None.
    num_tiers : {2, 3}, optional
        Drawn when None; inclusive mode always has 2.
    bounded : bool, optional
        None: capacities drawn; False: every tier unbounded; True: tier 0 bounded.
    min_pinned, min_initial : int
        At least this many items pinned / with an initial tier.
    labels : bool
        Also draw item/epoch labels and metadata (for file round trips).
    decision_limit : int, optional
        Cap on free decisions (default :data:`DECISION_LIMIT` by number of tiers).

    Returns
    -------
    Instance

    Examples
    --------
    >>> inst = build_instance(RandomDraw(0), num_tiers=3, mode="exclusive")
    >>> inst.num_tiers, num_candidates(inst) <= 3 ** DECISION_LIMIT[3]
    (3, True)
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
    """Draw a structurally valid residency of ``inst`` (pins and initial tiers kept).

    Capacities are not considered, so the residency may be infeasible.

    Parameters
    ----------
    d : RandomDraw or HypothesisDraw
    inst : Instance

    Returns
    -------
    ndarray of int64, shape (N, E)
        Tier of every item at every epoch of its life; -1 outside it.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> rho = build_residency(RandomDraw(1), tiny_instance())
    >>> rho.shape, int(rho[2, 0])
    ((3, 3), -1)
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
    """One tiny random instance, by seed: the family of :func:`instances` without hypothesis.

    Parameters
    ----------
    seed : int
    **kw
        As :func:`build_instance` (``mode``, ``num_tiers``, ``bounded``, ...).

    Returns
    -------
    Instance
        Named ``rand{seed}``; the same seed gives the same instance.

    Examples
    --------
    >>> random_instance(3).equals(random_instance(3))
    True
    """
    return build_instance(RandomDraw(seed), name=f"rand{seed}", **kw)


def instances(**kw):
    """Hypothesis strategy: one tiny valid instance.

    Parameters
    ----------
    **kw
        As :func:`build_instance`.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of Instance

    Raises
    ------
    ImportError
        Without hypothesis (``pip install 'hetkv-opt[dev]'``).

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(instances(mode="inclusive"))
    ... def test_inclusive_has_two_tiers(inst):
    ...     assert inst.num_tiers == 2
    >>> test_inclusive_has_two_tiers()
    """
    st = _hypothesis_strategies()

    @st.composite
    def _instances(draw) -> Instance:
        return build_instance(HypothesisDraw(draw), **kw)
    return _instances()


def instances_with_residency(**kw):
    """Hypothesis strategy: (instance, structurally valid residency, its schedule).

    Parameters
    ----------
    **kw
        As :func:`build_instance`.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of (Instance, ndarray, Schedule)
        The residency as :func:`build_residency` draws it (-1 outside an item's life); the
        schedule of it, with ``-1`` read as tier 0 (cells outside a life carry no move).

    Raises
    ------
    ImportError
        Without hypothesis (``pip install 'hetkv-opt[dev]'``).
    """
    st = _hypothesis_strategies()

    @st.composite
    def _with_residency(draw) -> tuple[Instance, np.ndarray, Schedule]:
        d = HypothesisDraw(draw)
        inst = build_instance(d, **kw)
        rho = build_residency(d, inst)
        return inst, rho, schedule_from_residency(inst, np.where(rho < 0, 0, rho))
    return _with_residency()


__all__ = ["BANDWIDTHS", "BruteForceResult", "DECISION_LIMIT", "FLOORS", "HypothesisDraw", "LINKS",
           "MAX_CANDIDATES", "RandomDraw", "brute_force", "build_instance", "build_residency",
           "free_decisions", "instances", "instances_with_residency", "item_paths",
           "num_candidates", "random_instance"]
