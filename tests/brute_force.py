"""Exhaustive search over every residency of a tiny instance: the tests' optimality oracle.

Every free item may sit in every tier at every epoch of its life (pins and initial tiers
respected, nothing else pruned); each candidate residency is turned into a Schedule with
:func:`hetkv_opt.model.schedule.schedule_from_residency` and scored by
:func:`hetkv_opt.model.evaluate.evaluate`.  The best feasible ``total_time_s`` is the optimum.

Keep instances tiny: the number of candidates is the product over items of
``K ** (free epochs)`` (see :func:`num_candidates`).

>>> from hetkv_opt.model.instance import tiny_instance
>>> bf = brute_force(tiny_instance())
>>> bf.best_time_s, bf.num_candidates
(2.0, 256)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from hetkv_opt.model.evaluate import Evaluation, evaluate
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, schedule_from_residency

#: refuse to enumerate more than this many residencies (a test-suite speed guard)
MAX_CANDIDATES = 5000


def free_decisions(inst: Instance) -> list[int]:
    """Per item, the number of epochs whose tier is free to choose."""
    out = []
    for i in range(inst.num_items):
        if inst.pinned_tier[i] >= 0:
            out.append(0)
            continue
        life = int(inst.death[i] - inst.birth[i])
        out.append(life - (1 if inst.initial_tier[i] >= 0 else 0))
    return out


def num_candidates(inst: Instance) -> int:
    """How many residencies :func:`brute_force` enumerates."""
    return math.prod(inst.num_tiers ** f for f in free_decisions(inst))


def item_paths(inst: Instance, i: int) -> list[tuple[int, ...]]:
    """Every sequence of tiers item ``i`` may take over its life (birth .. death-1)."""
    life = int(inst.death[i] - inst.birth[i])
    K = inst.num_tiers
    pin, init = int(inst.pinned_tier[i]), int(inst.initial_tier[i])
    if pin >= 0:
        return [(pin,) * life]
    first = [init] if init >= 0 else list(range(K))
    return list(itertools.product(first, *([range(K)] * (life - 1))))


@dataclass
class BruteForceResult:
    """The optimum found by enumeration (``best_*`` are None when nothing is feasible)."""

    best_time_s: float | None
    best_residency: np.ndarray | None
    best_schedule: Schedule | None
    best_evaluation: Evaluation | None
    num_candidates: int
    num_feasible: int


def brute_force(inst: Instance, max_candidates: int = MAX_CANDIDATES) -> BruteForceResult:
    """Enumerate every residency of ``inst`` and return the best feasible one.

    Raises
    ------
    ValueError
        When the instance has more than ``max_candidates`` residencies.
    AssertionError
        When the evaluator calls a structurally valid candidate malformed (it must only
        ever say "over capacity" about these candidates).
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
