"""Large-neighbourhood search: the exact MILP on a window of items x epochs, the rest of the
schedule fixed to the incumbent.

A neighbourhood is a window of epochs ``[a, b)`` and the items worth re-deciding there: the
items the incumbent moves inside the window, then those whose reads in the window weigh the
most, up to :data:`FREE_ITEM_EPOCHS` free item-epochs.  Every other item alive in the window
keeps its incumbent tier (it is pinned there for the window's MILP, which is exact because
the incumbent does not move it inside the window).  The window's MILP starts from the
incumbent's own residency (so it can only find a better window), and its answer is stitched
back and re-scored on the whole instance by the evaluator; only a faster schedule replaces
the incumbent.

Windows are chosen where the incumbent is furthest above a per-epoch lower bound (the
epoch's compute floor and its reads at the combined read rate of all tiers): that is where
time can still be won.
"""

from __future__ import annotations

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.starts import too_dense
from hetkv_opt.methods.exact import solve_milp
from hetkv_opt.methods.rolling import window_instance
from hetkv_opt.milp.build import build_model
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.model.schedule import Schedule, residency_matrix, schedule_from_residency

#: free (re-decided) item-epochs of one neighbourhood: small enough that HiGHS solves or
#: nearly solves the window's MILP in a second or two
FREE_ITEM_EPOCHS = 1500
#: epochs of one window (measured, 30 s of search from the flow schedule, 1024 x 256 drift:
#: high turnover 1.0729 -> 1.0575 x the LP value with 6 epochs, 1.0631 with 12, 1.0685 with
#: 24; default drift 1.0177 -> 1.0170 with 4, 6 or 12 alike)
WINDOW_EPOCHS = 6


def epoch_slack(instance: Instance, schedule: Schedule) -> np.ndarray:
    """Per epoch: the schedule's time less a lower bound on any schedule's time there."""
    ev = evaluate(instance, schedule)
    rate = sum(t.read_rate_Bps() for t in instance.tiers)
    lower = np.maximum(instance.min_time_s, instance.reads_per_epoch_bytes() / rate)
    return np.asarray(ev.epoch_time_s, float) - lower


def neighbourhood(instance: Instance, rho: np.ndarray, a: int, b: int,
                  free_item_epochs: int = FREE_ITEM_EPOCHS, rng=None):
    """The window sub-instance of ``[a, b)`` with every item but the chosen ones pinned to
    its incumbent tier; returns ``(sub, items, free)`` (``items``: the global index of each
    sub-instance item; ``free``: which of them are re-decided).  With ``rng``, the read
    weights that rank the items are randomly perturbed (another neighbourhood of the
    same window)."""
    N = instance.num_items
    start = np.where(rho[:, a] >= 0, rho[:, a], instance.initial_tier.clip(min=0))
    sub, items = window_instance(instance, a, b, start.astype(np.int64))
    W = b - a
    seg = rho[items, a:b]
    alive = seg >= 0
    first = np.where(alive.any(axis=1), seg[np.arange(items.size), alive.argmax(axis=1)], 0)
    moves = (alive & (seg != first[:, None])).any(axis=1)
    pinned = instance.pinned_tier[items] >= 0
    m = (instance.read_epoch >= a) & (instance.read_epoch < b)
    weight = np.zeros(N)
    np.add.at(weight, instance.read_item[m], instance.read_bytes[m].astype(float))
    w = weight[items]
    if rng is not None:
        w = w * rng.uniform(0.25, 1.75, w.size)
    budget = max(1, free_item_epochs // max(W, 1))
    free = moves & ~pinned
    order = np.argsort(-w, kind="stable")
    for j in order:
        if free.sum() >= budget:
            break
        if not pinned[j] and w[j] > 0:
            free[j] = True
    pin = sub.pinned_tier.copy()
    fixed = ~free & (pin < 0)
    pin[fixed] = first[fixed]
    init = sub.initial_tier.copy()
    init[fixed] = first[fixed]
    sub = make_instance(
        name=sub.name, mode=sub.mode, tiers=sub.tiers, size_bytes=sub.size_bytes,
        num_epochs=sub.num_epochs, birth=sub.birth, death=sub.death, pinned_tier=pin,
        initial_tier=init, min_time_s=sub.min_time_s,
        reads=(sub.read_epoch, sub.read_item, sub.read_bytes),
        writes=(sub.write_epoch, sub.write_item, sub.write_bytes))
    return sub, items, free


def improve(instance: Instance, incumbent: Schedule, *, deadline: Deadline | float | None,
            config: SolverConfig | None = None, rounds: int | None = None,
            window: int = WINDOW_EPOCHS, free_item_epochs: int = FREE_ITEM_EPOCHS,
            seed: int = 0, on_better=None, info: dict | None = None) -> Schedule:
    """Improve ``incumbent`` by window MILPs until the deadline (or ``rounds`` windows).

    Parameters
    ----------
    instance : Instance
    incumbent : Schedule
        A feasible schedule (the evaluator must accept it).
    deadline : Deadline, float or None
    config : SolverConfig, optional
        For the window MILPs (gap, seed, threads).
    rounds : int, optional
        At most this many windows (default: until the deadline; with no deadline, two
        passes over the horizon).
    window, free_item_epochs : int
        Epochs per window, and free item-epochs per window.
    on_better : callable(Schedule, float), optional
        Called with every improved schedule and its time (the portfolio's ledger).
    info : dict, optional
        Filled with counters: windows tried, improved, time won.

    Returns
    -------
    Schedule
        The best schedule found (``incumbent`` when nothing better was).
    """
    dl = Deadline.of(deadline)
    why = too_dense(instance, "large-neighbourhood search")
    if why:
        if info is not None:
            info.update(windows=0, improved=0, skipped=why)
        return incumbent
    config = config or SolverConfig()
    # HiGHS 1.16's presolve can loop without end on some window models (seen on a
    # 980-row window of a high-turnover drift instance; it cannot be interrupted): the
    # windows are small, so they are solved without it
    config = config.replace(highs={**config.highs, "presolve": "off"})
    E = instance.num_epochs
    window = max(2, min(int(window), E))
    best = incumbent
    ev = evaluate(instance, best)
    if not ev.feasible:
        raise ValueError("improve: the incumbent schedule is infeasible")
    best_T = ev.total_time_s
    rng = np.random.default_rng(seed)
    stats = {"windows": 0, "improved": 0, "start_s": best_T}
    if rounds is None and dl.unlimited:
        rounds = 2 * max(1, E // window)
    tabu: dict[int, int] = {}
    size, noise = float(free_item_epochs), 0
    while (rounds is None or stats["windows"] < rounds) and not dl.expired(0.05):
        rho = residency_matrix(instance, best).astype(np.int64)
        slack = epoch_slack(instance, best)
        # window start: where the slack over the next `window` epochs is largest, among
        # starts not tried since the last improvement (random ties)
        csum = np.concatenate([[0.0], np.cumsum(slack)])
        starts = np.arange(0, max(1, E - window + 1))
        score = csum[np.minimum(starts + window, E)] - csum[starts]
        score = score + rng.random(score.size) * 1e-12 * (abs(score).max() + 1e-30)
        score[[s for s in tabu if s < score.size]] = -np.inf
        if not np.isfinite(score).any():
            # every window tried since the last improvement: start again with other items
            tabu.clear()
            noise += 1
            if rounds is None and dl.unlimited and noise > 2:
                break
            continue
        a = int(starts[np.argmax(score)])
        b = min(a + window, E)
        tabu[a] = 1
        stats["windows"] += 1
        # the window holds epoch b too, where the re-decided items must be back in their
        # incumbent tier: the move there is paid inside the window, and the stitched
        # schedule differs from the incumbent only inside it
        end = min(b + 1, E)
        sub, items, free = neighbourhood(instance, rho, a, end, int(size),
                                         rng=rng if noise else None)
        if not free.any():
            continue
        ws = schedule_from_residency(sub, rho[items, a:end])
        model = build_model(sub, rounding_cuts=config.rounding_cuts)
        if end > b:
            last = end - 1 - a
            hold = np.flatnonzero(free & (sub.birth <= last) & (sub.death > last))
            if hold.size:
                model = model.with_residency_fixed(hold, last, rho[items[hold], b])
        left = dl.remaining_s()
        slice_s = None if left is None else max(0.05, min(left, max(1.0, 0.1 * left)))
        res = solve_milp(sub, time_limit_s=slice_s, config=config, warm_start=ws, model=model,
                         method_name="lns-window")
        if res.details.get("milp", {}).get("interrupted"):
            stats["interrupted"] = True          # Ctrl-C: keep the best schedule so far
            break
        if res.schedule is None:
            continue
        sub_rho = residency_matrix(sub, res.schedule).astype(np.int64)
        new_rho = rho.copy()
        new_rho[items, a:end] = np.where(sub_rho >= 0, sub_rho, new_rho[items, a:end])
        K = instance.num_tiers
        cand = schedule_from_residency(instance, np.where(new_rho >= 0, new_rho, K - 1))
        ev_c = evaluate(instance, cand)
        if ev_c.feasible and ev_c.total_time_s < best_T * (1 - 1e-12):
            best, best_T = cand, ev_c.total_time_s
            stats["improved"] += 1
            tabu.clear()
            if on_better is not None:
                on_better(best, best_T)
        # adapt the neighbourhood to what HiGHS manages in its slice: larger when it
        # proves the window optimal quickly, smaller when it runs out of time
        took = res.details.get("milp", {}).get("runtime_s", 0.0)
        if res.status == "optimal" and (slice_s is None or took < 0.5 * slice_s):
            size = min(size * 1.3, 20 * free_item_epochs)
        elif res.status != "optimal":
            size = max(size / 1.3, 200)
    stats["end_s"] = best_T
    if info is not None:
        info.update(stats)
    return best


__all__ = ["FREE_ITEM_EPOCHS", "WINDOW_EPOCHS", "epoch_slack", "improve", "neighbourhood"]
