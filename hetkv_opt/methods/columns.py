"""A schedule from the Lagrangian bound's columns: the restricted master as a MIP.

The Dantzig-Wolfe master of the Lagrangian bound (``master="dw"``,
:func:`~hetkv_opt.bounds.lagrangian.master.dw_phase`) ends with a few paths per item (its
tier at every epoch of its life, with the copies between) and an LP solution that mixes
them to reach the LP relaxation's value. Choosing exactly one path per item, under the same
epoch-time and capacity rows, is a MIP over those columns (price-and-branch). Its schedules
are feasible by construction, and the evaluator re-scores them.

The MIP is made small and its answer good by two choices, measured on trace replay and
on high-turnover drift (benchmarks/RESULTS.md, "A schedule from the Lagrangian bound's
columns"; `benchmarks/bench_columns.py` runs it alone):

1. **Items the LP does not split are fixed.** An item whose LP weight sits on one path
   (to within ``FIX_TOL``) keeps that path. In the cases measured, 70-94 % of the items
   are like that, and the MIP decides only the rest. On the first 160 epochs of a 5-layer
   trace replay, left whole, HiGHS stayed at the root node for 60 s and found nothing
   better than the incumbent. With the fixings, it found a schedule 6.6 % above the LP,
   where the incumbent was 13 % above. The price: on the first 40 epochs, where the
   whole MIP is solved in 3 s, the fixings keep it 2.3 % above the optimum it finds.
2. **The incumbent's paths are columns too**, so the items the MIP decides can keep what
   the best schedule so far gives them.

Nothing here is a bound: the MIP's own dual bound is over a subset of the columns.
"""

from __future__ import annotations

import time

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.milp.highs import _import_highspy
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, residency_matrix, schedule_from_residency

#: an item whose LP weight on one path is at least 1 - FIX_TOL keeps that path
FIX_TOL = 1e-6

#: capacity slack (a share of the tier's room) above which the master's LP is taken to
#: need it, and no item is fixed
SLACK_TOL = 1e-3

#: free item-epochs up to which ``auto`` runs the Dantzig-Wolfe master for its columns
#: (it reached the LP value in 11-13 s on a 105,850 item-epoch trace replay; on 260k
#: item-epoch high-turnover drift and the whole 900k trace replay it had not in 45 s)
COLUMNS_MAX_ITEM_EPOCHS = 120_000


def columns_schedule(inst: Instance, master, incumbent: Schedule | None, *,
                     deadline: "Deadline | float | None", info: dict | None = None
                     ) -> Schedule | None:
    """The best schedule the MIP over ``master``'s columns finds within ``deadline``.

    Parameters
    ----------
    inst : Instance
        The instance the master was built for.
    master : DWMaster
        The Dantzig-Wolfe master, best converged (``master.converged``: its LP is at the
        LP relaxation's value; short of that its LP solution still says which items to
        fix). It is changed: its path columns become integer and capacity slack is
        forbidden, so it is of no further use as a master.
    incumbent : Schedule, optional
        The best schedule so far; its paths are added as columns.
    deadline : Deadline or float or None
    info : dict, optional
        Filled with ``items``, ``fixed``, ``columns``, ``mip_status``, ``runtime_s`` and
        the MIP's own time of its schedule ``objective_s``, or ``skipped`` and why.

    Returns
    -------
    Schedule or None
        None when the master's LP or the MIP found nothing in time.
    """
    info = {} if info is None else info
    t0 = time.perf_counter()
    dl = Deadline.of(deadline)
    hs = _import_highspy()
    h, p = master.h, master.p
    # the master's LP once more (warm: columns may have come after its last solve); the
    # items it does not split are fixed below, so it must have solved
    limit = dl.solver_limit_s()
    h.setOptionValue("time_limit", float("inf") if limit is None else max(limit, 1e-3))
    h.run()
    info["converged"] = bool(master.converged)
    if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
        info["skipped"] = "the Dantzig-Wolfe master's LP did not solve in time"
        return None
    first = master.first_path_col
    n_lp = len(master.path_item)
    weight = np.asarray(h.getSolution().col_value)[first:first + n_lp]
    rho = residency_matrix(inst, incumbent) if incumbent is not None else None
    if rho is not None:
        master.add_paths(rho[p.free])
    n = len(master.path_item)
    cols = np.arange(first, first + n, dtype=np.int32)
    h.changeColsIntegrality(n, cols, np.full(n, hs.HighsVarType.kInteger, dtype=np.uint8))
    sl = np.arange(master.E, master.E + master.C * master.E, dtype=np.int32)
    x_lp = np.asarray(h.getSolution().col_value)
    # an LP that needs capacity slack (its paths cannot fit) says nothing about which
    # items to fix; else the items it does not split keep their path
    fix = np.zeros(0, np.int32) if (sl.size and x_lp[sl].max() > SLACK_TOL) else \
        np.flatnonzero(weight >= 1.0 - FIX_TOL).astype(np.int32) + first
    if fix.size:
        h.changeColsBounds(fix.size, fix, np.ones(fix.size), np.ones(fix.size))
    if sl.size:
        # the master's capacity slack (at a high price) kept it feasible; a schedule has none
        h.changeColsBounds(sl.size, sl, np.zeros(sl.size), np.zeros(sl.size))
    h.setOptionValue("simplex_strategy", 1)          # dual simplex in the branch and bound
    h.setOptionValue("mip_rel_gap", 1e-4)
    status = _run_mip(h, dl)
    info.update({"items": int(p.free.size), "fixed": int(fix.size), "columns": int(n),
                 "mip_status": status})
    if not h.getSolution().value_valid and fix.size and not dl.expired():
        # the fixings left no schedule: every path free again, the incumbent's as the start
        h.changeColsBounds(fix.size, fix, np.zeros(fix.size), np.ones(fix.size))
        if rho is not None:
            _start_from(h, master, rho[p.free], n)
        info["unfixed"] = True
        info["mip_status"] = status = _run_mip(h, dl)
    info["runtime_s"] = round(time.perf_counter() - t0, 6)
    sol = h.getSolution()
    if not sol.value_valid:
        return None
    info["objective_s"] = float(h.getInfo().objective_function_value) * p.t0
    x = np.asarray(sol.col_value)[first:first + n]
    states = np.full((p.free.size, p.E), -1, np.int8) if rho is None else rho[p.free].copy()
    chosen = np.flatnonzero(x > 0.5)
    for c in chosen:
        states[master.path_item[c]] = master.path_states[c]
    if np.unique(np.asarray(master.path_item)[chosen]).size != p.free.size:
        info["note"] = "the MIP's answer does not choose one path per item"
        return None
    full = np.full((inst.num_items, inst.num_epochs), -1, np.int64) if rho is None \
        else rho.astype(np.int64)
    full[p.free] = states
    if rho is None:
        fixed_items = np.setdiff1d(np.arange(inst.num_items), p.free)
        full[fixed_items] = _pinned_rows(inst, fixed_items)
    return schedule_from_residency(inst, full)


def _run_mip(h, dl: Deadline) -> str:
    limit = dl.solver_limit_s()
    h.setOptionValue("time_limit", float("inf") if limit is None else max(limit, 1e-3))
    h.run()
    return h.modelStatusToString(h.getModelStatus())


def _start_from(h, master, states: np.ndarray, n: int) -> None:
    """Offer HiGHS the incumbent as a start: its path columns at 1 (every item's path is a
    column: they were added), each epoch's time at a value no schedule exceeds, no split
    (inclusive: every read from tier 1), no slack; HiGHS improves the times itself."""
    hs = _import_highspy()
    first = master.first_path_col
    want = {(i, states[i].tobytes()) for i in range(states.shape[0])}
    idx = [first + c for c in range(n)
           if (master.path_item[c], master.path_states[c].tobytes()) in want]
    sol = hs.HighsSolution()
    x = np.zeros(h.getNumCol())
    x[:master.E] = master.p.tau_hi * (1.0 + 1e-9)
    x[idx] = 1.0
    sol.col_value = x.tolist()
    sol.value_valid = True
    h.setSolution(sol)


def _pinned_rows(inst: Instance, items: np.ndarray) -> np.ndarray:
    """The residency rows of items that are not free (pinned): their tier over their life."""
    e = np.arange(inst.num_epochs)
    alive = (e[None, :] >= inst.birth[items, None]) & (e[None, :] < inst.death[items, None])
    tier = np.where(inst.pinned_tier[items] >= 0, inst.pinned_tier[items], inst.initial_tier[items])
    return np.where(alive, tier[:, None], -1)


__all__ = ["COLUMNS_MAX_ITEM_EPOCHS", "FIX_TOL", "SLACK_TOL", "columns_schedule"]
