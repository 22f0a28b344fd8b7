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

from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound
from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.lns import epoch_slack
from hetkv_opt.methods.rolling import window_instance
from hetkv_opt.milp.highs import _import_highspy
from hetkv_opt.model.evaluate import evaluate
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
                     deadline: "Deadline | float | None", info: dict | None = None,
                     exit_tier: np.ndarray | None = None) -> Schedule | None:
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
    exit_tier : ndarray, optional
        Per item of ``inst``: the tier it must be copied to right after the last epoch
        (-1: none), when ``inst`` is a window of a longer instance whose schedule goes on
        (:func:`window_columns`). The copy is charged to the last epoch's time and
        capacity rows, as the evaluator charges it on the whole instance.

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
    rho = residency_matrix(inst, incumbent) if incumbent is not None else None
    if exit_tier is not None:
        # the copies out of the window: on every path, before the LP that decides the fixings
        if rho is not None:
            master.add_paths(rho[p.free])
        _charge_exits(master, np.asarray(exit_tier)[p.free])
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
    if rho is not None:
        master.add_paths(rho[p.free])      # with exits: added and charged above already
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


def _charge_exits(master, exit_free: np.ndarray) -> None:
    """Charge each path column not charged yet with the copy out of the window: an item
    whose path ends in another tier than ``exit_free`` (per free item) is copied during
    the last epoch, which adds to that epoch's time rows and to the capacity of the tier
    it goes to (as :func:`~hetkv_opt.bounds.lagrangian.master._path_entries` charges a
    copy inside the window)."""
    p, h = master.p, master.h
    E, last = master.E, master.E - 1
    done = getattr(master, "exits_charged", 0)
    for c in range(done, len(master.path_item)):
        i = master.path_item[c]
        k, x = int(master.path_states[c][last]), int(exit_free[i])
        if x < 0 or k < 0 or k == x or (p.inclusive and x != 0):
            continue
        col = master.first_path_col + c
        s = float(p.s[i])
        for j in range(master.J):
            v = -(p.CO[j][k] + p.CI[j][x]) * s
            if v:
                h.changeCoeff(j * E + last, col, v)
        if x in p.cap_tiers:
            n = list(p.cap_tiers).index(x)
            h.changeCoeff(master.r_cap + n * E + last, col, s)
    master.exits_charged = len(master.path_item)


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


def free_item_epochs_per_epoch(inst: Instance) -> np.ndarray:
    """Per epoch: how many items are alive there and not pinned (the master's paths)."""
    free = inst.pinned_tier < 0
    d = np.zeros(inst.num_epochs + 1, np.int64)
    np.add.at(d, inst.birth[free], 1)
    np.add.at(d, inst.death[free], -1)
    return np.cumsum(d)[:-1]


def pick_window(weight: np.ndarray, size: np.ndarray, budget: int) -> tuple[int, int] | None:
    """The epochs ``[a, b)`` of largest total ``weight`` whose total ``size`` is at most
    ``budget`` (at least one epoch), or None when no epoch has positive weight."""
    E = weight.size
    best, where = 0.0, None
    cw = np.concatenate([[0.0], np.cumsum(weight)])
    cs = np.concatenate([[0], np.cumsum(size)])
    b = 0
    for a in range(E):
        b = max(b, a + 1)
        while b < E and cs[b + 1] - cs[a] <= budget:
            b += 1
        w = cw[b] - cw[a]
        if w > best:
            best, where = w, (a, b)
    return where


#: free item-epochs of one window of :func:`window_columns`: from auto's 60 s schedule,
#: 120 s of windows took a 5-layer trace replay (900k item-epochs) 3.66 % lower with 10k,
#: 3.75 % with 20k and 1.56 % with 40k, and high-turnover drift 1024 x 256 0.60 % and
#: 0.93 % lower with 10k and 20k (benchmarks/RESULTS.md, "windows of epochs")
WINDOW_ITEM_EPOCHS = 20_000
#: the share of a window's time for its Dantzig-Wolfe master; its MIP has the rest
WINDOW_MASTER_SHARE = 0.35


def window_columns(inst: Instance, incumbent: Schedule, *, deadline: "Deadline | float | None",
                   window_item_epochs: int = WINDOW_ITEM_EPOCHS, window_s: float | None = None,
                   on_better=None, info: dict | None = None) -> Schedule:
    """The master and its MIP (:func:`columns_schedule`) on windows of epochs, for
    instances too large for one master: a window of about ``window_item_epochs`` free
    item-epochs where the incumbent is furthest above a per-epoch lower bound
    (:func:`~hetkv_opt.methods.lns.epoch_slack`) is cut out
    (:func:`~hetkv_opt.methods.rolling.window_instance`, items entering it in their
    incumbent tier), its master and MIP are run with the incumbent's paths as columns, and
    the answer is stitched back into the incumbent (the rest of the schedule unchanged) and
    re-scored by the evaluator. An item that leaves the window in another tier than the
    incumbent has at the next epoch is copied during the window's last epoch; the MIP is
    charged for that copy (``exit_tier`` of :func:`columns_schedule`). Windows follow one
    another until the deadline, each over epochs not yet tried, and a new pass starts
    while the last one gained.

    ``window_s`` caps one window's time (default: what is left). ``on_better(schedule, T)``
    is called with every faster schedule. Returns the best schedule (``incumbent`` when
    nothing was faster). Nothing here is a bound: a window's master proves a bound on the
    window alone, with its entry fixed.
    """
    info = {} if info is None else info
    dl = Deadline.of(deadline)
    t0 = time.perf_counter()
    best = incumbent
    best_T = evaluate(inst, best).total_time_s
    size = free_item_epochs_per_epoch(inst)
    tried = np.zeros(inst.num_epochs, bool)
    windows = info.setdefault("windows", [])
    passes, pass_gain = 1, False
    while not dl.expired(1.0):
        slack = np.where(tried, 0.0, np.maximum(epoch_slack(inst, best), 0.0))
        win = pick_window(slack, size, window_item_epochs)
        if win is None:
            if not pass_gain or not tried.any():
                break                      # a whole pass found nothing, or nothing to win
            tried[:] = False               # another pass over the improved schedule
            passes, pass_gain = passes + 1, False
            continue
        a, b = win
        tried[a:b] = True
        rec = {"epochs": [a, b], "item_epochs": int(size[a:b].sum())}
        windows.append(rec)
        wdl = dl if window_s is None else dl.child(window_s)
        rho = residency_matrix(inst, best)
        start = np.where(rho[:, a] >= 0, rho[:, a], inst.initial_tier.clip(min=0))
        sub, items = window_instance(inst, a, b, start.astype(np.int64))
        sub_inc = schedule_from_residency(sub, rho[items, a:b])
        exit_tier = rho[items, b] if b < inst.num_epochs else np.full(items.size, -1)
        keep: dict = {}
        lagrangian_bound(sub, master="dw", time_limit_s=wdl.share_s(WINDOW_MASTER_SHARE),
                         keep=keep, stop_on_interrupt=True, dw_max_item_epochs=10**9)
        master = keep.get("dw_master")
        rec["converged"] = bool(master is not None and master.converged)
        if master is None or wdl.expired(0.5):
            rec["skipped"] = "no Dantzig-Wolfe master in time"
            continue
        stats: dict = {}
        got = columns_schedule(sub, master, sub_inc, deadline=wdl, info=stats,
                               exit_tier=exit_tier)
        rec.update({k: stats[k] for k in ("fixed", "items", "mip_status", "skipped")
                    if k in stats})
        if got is None:
            continue
        full = rho.copy()
        seg = residency_matrix(sub, got)
        alive = seg >= 0
        full[items, a:b] = np.where(alive, seg, full[items, a:b])
        cand = schedule_from_residency(inst, full)
        ev = evaluate(inst, cand)
        rec["T"] = float(ev.total_time_s) if ev.feasible else None
        if ev.feasible and ev.total_time_s < best_T * (1 - 1e-12):
            best, best_T = cand, float(ev.total_time_s)
            rec["improved"] = pass_gain = True
            if on_better is not None:
                on_better(best, best_T)
    info["passes"] = passes
    info["improved"] = sum(1 for w in windows if w.get("improved"))
    info["runtime_s"] = round(time.perf_counter() - t0, 6)
    return best


__all__ = ["COLUMNS_MAX_ITEM_EPOCHS", "FIX_TOL", "SLACK_TOL", "WINDOW_ITEM_EPOCHS",
           "columns_schedule", "free_item_epochs_per_epoch", "pick_window", "window_columns"]
