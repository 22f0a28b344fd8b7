"""Rolling-horizon MILP (issue 3, part 3): exact MILPs on overlapping windows of epochs.

Windows ``[a, a + W)`` advance by ``W - overlap`` epochs.  Each window is a sub-instance
(:func:`window_instance`): the epochs of the window, the items alive in it, each item's
tier at the window start fixed through ``initial_tier`` (the tier the already committed
epochs left it in; items born inside the window keep their own initial tier).  Its MILP
(:func:`hetkv_opt.solve.solve_milp`) is warm-started from the best feasible of: the
previous window's solution continued by the flow (or trivial) schedule, and the trivial
schedule of the window.  The first ``W - overlap`` epochs of the window's solution are
committed (all of them for the last window); the next window starts where the committed
part ends.

Why stitching is consistent: epoch ``e``'s traffic depends on the residency at ``e`` and
``e + 1`` only.  The last committed epoch ``e`` and the next epoch ``e + 1`` come from the
same window, and the next window fixes the residency at ``e + 1`` as its initial tier, so
every committed epoch has exactly the traffic and occupancy its window's MILP checked.

The time limit is split across the remaining windows; when it runs out (or a window's MILP
finds nothing), the rest of the horizon is filled by the fallback (the flow schedule where
it agrees with the committed residency, else "stay where you are"), and the stitched
schedule is scored by the evaluator.  Windows cannot see past their end (no terminal
value), so when the guide schedule (the caller's ``warm_start`` or the flow schedule) is
faster than the stitched one, the guide is returned (``details["returned"]`` says which;
``details["stitched_s"]`` and ``details["guide_s"]`` hold both times).  The status is
``feasible`` (never ``optimal``).
"""

from __future__ import annotations

import time

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.exact import solve_milp
from hetkv_opt.methods.flow import flow_schedule
from hetkv_opt.methods.starts import best_schedule, too_dense
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.result import finish
from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.model.schedule import Schedule, residency_matrix, schedule_from_residency


def window_instance(inst: Instance, a: int, b: int, start_tier: np.ndarray):
    """The sub-instance of epochs ``[a, b)`` and the global indices of its items.

    ``start_tier[i]`` is item i's tier at epoch ``a`` (used for items born before ``a``).
    """
    alive = (inst.birth < b) & (inst.death > a)
    items = np.flatnonzero(alive)
    birth = np.maximum(inst.birth[items], a) - a
    death = np.minimum(inst.death[items], b) - a
    init = inst.initial_tier[items].copy()
    before = inst.birth[items] < a
    init[before] = start_tier[items[before]]
    pinned = inst.pinned_tier[items]
    init[pinned >= 0] = pinned[pinned >= 0]
    remap = np.full(inst.num_items, -1, np.int64)
    remap[items] = np.arange(items.size)

    def cut(ep, it, nb):
        m = (ep >= a) & (ep < b) & alive[it]
        return ep[m] - a, remap[it[m]], nb[m]

    sub = make_instance(
        name=f"{inst.name}[{a}:{b}]", mode=inst.mode, tiers=inst.tiers,
        size_bytes=inst.size_bytes[items], num_epochs=b - a, birth=birth, death=death,
        pinned_tier=pinned, initial_tier=init, min_time_s=inst.min_time_s[a:b],
        reads=cut(inst.read_epoch, inst.read_item, inst.read_bytes),
        writes=cut(inst.write_epoch, inst.write_item, inst.write_bytes))
    return sub, items


def _stay(inst: Instance, rho: np.ndarray, a: int) -> None:
    """From epoch a on: every item stays in its tier at a-1; items born later go to their
    initial tier (pins respected), else the last tier."""
    K = inst.num_tiers
    for i in range(inst.num_items):
        b0, d0 = int(inst.birth[i]), int(inst.death[i])
        if d0 <= a:
            continue
        if inst.pinned_tier[i] >= 0:
            t = inst.pinned_tier[i]
        elif b0 < a:
            t = rho[i, a - 1]
        elif inst.initial_tier[i] >= 0:
            t = inst.initial_tier[i]
        else:
            t = K - 1
        rho[i, max(a, b0):d0] = t


def _continuation(inst: Instance, rho: np.ndarray, a: int, guide: np.ndarray | None) -> np.ndarray:
    """A full residency equal to ``rho`` before ``a``, then ``guide`` (when given) for
    items whose guide tier at ``a`` matches their committed tier, else staying put."""
    out = rho.copy()
    _stay(inst, out, a)
    if guide is not None and a < inst.num_epochs:
        same = (inst.birth >= a) | ((inst.birth < a) & (guide[:, a] == out[:, a]))
        same &= inst.death > a
        out[same, a:] = np.where(guide[same, a:] >= 0, guide[same, a:], out[same, a:])
    return out


def solve_rolling(inst: Instance, *, window: int = 32, overlap: int = 16,
                  time_limit_s: "float | Deadline | None" = 60.0, config=None,
                  warm_start: Schedule | None = None, bounds: dict | None = None,
                  use_flow: bool = True, progress=None):
    """Rolling-horizon MILP; a :class:`hetkv_opt.solve.SolveResult` with method ``rolling``.

    Parameters
    ----------
    inst : Instance
    window, overlap : int
        Window length W and overlap (``0 <= overlap < W``); windows advance by W - overlap.
    time_limit_s : float or None
        For the whole call; split evenly over the windows still to solve.
    config : SolverConfig, optional
        Passed to every window's MILP.
    warm_start : Schedule, optional
        A schedule of the whole instance guiding the warm starts (default: the flow
        schedule on two-tier exclusive instances when ``use_flow``, else none).
    bounds : dict, optional
        Proven bounds to report alongside (e.g. ``{"lp": ...}``); the aggregate is added.
    progress : callable(dict), optional
        Called after each window with ``window``, ``epochs_done``, ``elapsed_s``.
    """
    config = config or SolverConfig()
    window, overlap = int(window), int(overlap)
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    all_bounds = basic_bounds(inst)
    all_bounds.update(bounds or {})
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, "rolling", status="infeasible", t_start=t_start, message=pre)
    why = too_dense(inst, "the rolling horizon")
    if why:
        return finish(inst, "rolling", status="bound_only", bounds=all_bounds, t_start=t_start,
                      message=why)

    N, E, K = inst.num_items, inst.num_epochs, inst.num_tiers
    guide = None
    details: dict = {"window": window, "overlap": overlap, "windows": []}
    if warm_start is not None and evaluate(inst, warm_start).feasible:
        guide = residency_matrix(inst, warm_start).astype(np.int64)
    elif use_flow and inst.mode == "exclusive" and K == 2:
        fs = flow_schedule(inst, time_limit_s=dl.child(fraction=0.15), iterations=6)
        if fs is not None:
            guide = residency_matrix(inst, fs).astype(np.int64)
            details["flow_s"] = evaluate(inst, fs).total_time_s
    rho = np.full((N, E), -1, np.int64)
    step = window - overlap
    starts = list(range(0, E, step))
    # the last window that reaches the end makes later starts redundant
    cut_at = next((k for k, a in enumerate(starts) if a + window >= E), len(starts) - 1)
    starts = starts[:cut_at + 1]
    a = 0
    stopped = ""
    for w, a in enumerate(starts):
        rem = dl.remaining_s()
        if rem is not None and rem <= 0.05:
            stopped = f"time limit reached after {w} of {len(starts)} windows"
            break
        b = min(a + window, E)
        last = b == E
        commit_end = b if last else a + step
        start_tier = rho[:, a - 1] if a > 0 else np.full(N, -1, np.int64)
        sub, items = window_instance(inst, a, b, start_tier)
        if items.size == 0:
            # nothing alive in the window: nothing to decide
            details["windows"].append({"epochs": [a, b], "status": "empty"})
            a = E if last else commit_end
            continue
        # warm starts: the committed residency continued by the guide, and staying put
        cands = []
        for g in ((guide, None) if guide is not None else (None,)):
            full = _continuation(inst, rho, a, g)
            cands.append(schedule_from_residency(sub, full[items, a:b]))
        if use_flow and inst.mode == "exclusive" and K == 2:
            fs = flow_schedule(sub, iterations=3,
                               time_limit_s=dl.child(fraction=0.1 / (len(starts) - w)))
            if fs is not None:
                cands.append(fs)
        ws, _ = best_schedule(sub, cands)
        # the window's share of what is left (its model building counts against it too)
        res = solve_milp(sub, time_limit_s=dl.child(fraction=1.0 / (len(starts) - w)),
                         config=config, warm_start=ws,
                         method_name="rolling-window")
        sched = res.schedule if res.schedule is not None else ws
        if sched is None:
            stopped = f"window {w} [{a}, {b}): no feasible schedule ({res.status}: {res.message})"
            break
        sub_rho = residency_matrix(sub, sched).astype(np.int64)
        seg = sub_rho[:, :commit_end - a]
        cur = rho[items, a:commit_end]
        rho[items, a:commit_end] = np.where(seg >= 0, seg, cur)
        if not last:
            # the tier at the next window's start is decided here (its copy runs in a
            # committed epoch); carry it as that window's initial tier
            nxt = sub_rho[:, commit_end - a]
            tmp = rho[items, commit_end]
            rho[items, commit_end] = np.where(nxt >= 0, nxt, tmp)
        details["windows"].append({"epochs": [a, b], "status": res.status,
                                   "runtime_s": round(res.runtime_s, 4),
                                   "gap": res.gap})
        if progress is not None:
            progress({"window": w, "epochs_done": commit_end,
                      "elapsed_s": time.perf_counter() - t_start})
        a = commit_end
        if last:
            a = E
    if a < E:
        # fill what no window reached: from a + 1 on (the tier at a is already decided
        # when a > 0), either stay put or follow the guide; keep the better feasible one
        f0 = a + 1 if a > 0 else 0
        fills = [_continuation(inst, rho, f0, g) for g in ((None, guide) if guide is not None
                                                          else (None,))]
        scored = []
        for full in fills:
            s_full = schedule_from_residency(inst, np.where(full >= 0, full, K - 1))
            ev = evaluate(inst, s_full)
            scored.append((0 if ev.feasible else 1, ev.total_time_s, len(scored), full))
        rho = min(scored, key=lambda t: t[:3])[3]
    sched = schedule_from_residency(inst, np.where(rho >= 0, rho, K - 1))
    details["stopped"] = stopped
    ev = evaluate(inst, sched)
    details["stitched_s"] = ev.total_time_s if ev.feasible else None
    details["returned"] = "stitched windows"
    if guide is not None:
        # never worse than the warm start: windows are myopic (they cannot see past
        # their end), so the flow schedule sometimes beats the stitched one
        g_sched = schedule_from_residency(inst, np.where(guide >= 0, guide, K - 1))
        g_ev = evaluate(inst, g_sched)
        details["guide_s"] = g_ev.total_time_s if g_ev.feasible else None
        if g_ev.feasible and (not ev.feasible or g_ev.total_time_s < ev.total_time_s):
            sched = g_sched
            details["returned"] = "guide (flow / warm start)"
    return finish(inst, "rolling", status="feasible", schedule=sched, bounds=all_bounds,
                  t_start=t_start, details=details, message=stopped)
