"""Starting schedules and the "best evaluated schedule of these" rule.

Every method that needs an incumbent (the MILP's warm start, auto's portfolio, the flow
heuristic's fallback) takes it from here, and every choice among candidate schedules goes
through :func:`best_schedule`, so that the same rule (lowest evaluated time, the earlier
candidate on ties, infeasible ones dropped) holds everywhere.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, schedule_from_residency


def trivial_schedule(inst: Instance) -> Schedule:
    """Every free item in its initial tier, else in the last tier, and never moved.

    Feasible whenever the last tier can hold every free item (e.g. unbounded DRAM); a
    cheap incumbent that guarantees a long MILP run has a schedule to report.
    """
    return static_schedule(inst, inst.num_tiers - 1)


def static_schedule(inst: Instance, tier: int) -> Schedule:
    """Every free item in its initial tier, else in ``tier``, and never moved (with three
    tiers, "everything in the middle one" is a far better start than the last).  Feasible
    when that tier holds them all."""
    rho = np.full((inst.num_items, inst.num_epochs), int(tier), np.int64)
    fixed = inst.pinned_tier >= 0
    rho[fixed] = inst.pinned_tier[fixed, None]
    init = (inst.initial_tier >= 0) & ~fixed
    rho[init] = inst.initial_tier[init, None]
    return schedule_from_residency(inst, rho)


def two_fastest_tiers(inst: Instance) -> Instance | None:
    """The instance the flow heuristic runs on: itself (two tiers, exclusive), or with
    tiers 0 and 1 only when there are more and nothing is pinned or born beyond tier 1 (a
    schedule of the two-tier copy is a schedule of the original that leaves the slower tiers
    unused); None where that does not apply (inclusive mode)."""
    if inst.mode != "exclusive" or inst.num_tiers < 2:
        return None
    if inst.num_tiers == 2:
        return inst
    if np.any(inst.pinned_tier >= 2) or np.any(inst.initial_tier >= 2):
        return None
    return dataclasses.replace(inst, tiers=tuple(inst.tiers[:2]))


def best_schedule(instance: Instance, candidates: Iterable[Schedule | None]
                  ) -> tuple[Schedule | None, float | None]:
    """The candidate the evaluator finds fastest, and its time (``(None, None)`` when none
    is feasible).  None entries are skipped; on a tie the earlier candidate wins.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> inst = tiny_instance()
    >>> s, T = best_schedule(inst, [None, trivial_schedule(inst)])
    >>> T == evaluate(inst, trivial_schedule(inst)).total_time_s
    True
    """
    best = best_T = None
    for s in candidates:
        if s is None:
            continue
        ev = evaluate(instance, s)
        if ev.feasible and (best_T is None or ev.total_time_s < best_T):
            best, best_T = s, ev.total_time_s
    return best, best_T


__all__ = ["best_schedule", "static_schedule", "trivial_schedule", "two_fastest_tiers"]
