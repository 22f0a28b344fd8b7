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
from hetkv_opt.model.schedule import Schedule


#: methods that hold dense items x epochs arrays (the flow graph's benefit matrix, LNS and
#: rolling's residency matrices: 8-24 bytes per cell) do not start above this many cells
#: (about 1.2-3.6 GB); above it the split heuristic and the policies (O(reads) or O(items)
#: per epoch) and the Lagrangian's event oracle (O(events)) carry the portfolio
DENSE_MAX_CELLS = 150_000_000


def dense_cells(inst: Instance) -> int:
    """Items x epochs: what a dense residency or benefit matrix of the instance holds."""
    return int(inst.num_items) * int(inst.num_epochs)


def too_dense(inst: Instance, what: str) -> str | None:
    """Why ``what`` does not run on ``inst`` (None when it does)."""
    cells = dense_cells(inst)
    if cells <= DENSE_MAX_CELLS:
        return None
    return (f"{what} holds items x epochs arrays: {cells:.3g} cells is over the limit of "
            f"{DENSE_MAX_CELLS:.3g} (use auto or split)")


def trivial_schedule(inst: Instance) -> Schedule:
    """Every free item in its initial tier, else in the last tier, and never moved.

    Feasible whenever the last tier can hold every free item (e.g. unbounded DRAM); a
    cheap incumbent that guarantees a long MILP run has a schedule to report.
    """
    return static_schedule(inst, inst.num_tiers - 1)


def static_schedule(inst: Instance, tier: int) -> Schedule:
    """Every free item in its initial tier, else in ``tier``, and never moved (with three
    tiers, "everything in the middle one" is a far better start than the last).  Feasible
    when that tier holds them all.  One entry per item: memory O(items), not items x
    epochs."""
    return placement_schedule(inst, np.full(inst.num_items, int(tier), np.int64))


def placement_schedule(inst: Instance, tiers: np.ndarray) -> Schedule:
    """Item i in ``tiers[i]`` for its whole life (pins and initial tiers win), as a
    :class:`Schedule` of one entry per item."""
    tiers = np.array(tiers, dtype=np.int64, copy=True)
    init = inst.initial_tier >= 0
    tiers[init] = inst.initial_tier[init]
    fixed = inst.pinned_tier >= 0
    tiers[fixed] = inst.pinned_tier[fixed]
    items = np.arange(inst.num_items, dtype=np.int64)
    return Schedule(inst.name, items, inst.birth.astype(np.int64), tiers)


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


__all__ = ["DENSE_MAX_CELLS", "best_schedule", "dense_cells", "placement_schedule", "static_schedule",
           "too_dense", "trivial_schedule", "two_fastest_tiers"]
