"""Turn an LP relaxation's solution into a feasible schedule (a cheap incumbent).

The LP of this model is often nearly integral: rounding residency at 0.5 and repairing
capacity gives a schedule whose evaluated time is frequently within the LP bound's
tolerance, i.e. proven optimal without branch and bound, and otherwise a far better
MILP warm start than "everything in the last tier".
"""

from __future__ import annotations


import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import Instance
from hetkv_opt.milp.build import MilpModel, _positions
from hetkv_opt.model.schedule import Schedule, residency_stretch, schedule_from_residency


def _membership(model: MilpModel, v: np.ndarray) -> np.ndarray:
    """LP value of "item i is in tier k at e", shape (N, E, K); pinned items 1 in their tier."""
    inst = model.instance
    N, E, K = inst.num_items, inst.num_epochs, inst.num_tiers
    m = np.zeros((N, E, K))
    pinned = np.flatnonzero(inst.pinned_tier >= 0)
    m[pinned, :, inst.pinned_tier[pinned]] = 1.0
    pos_item, pos_epoch = _positions(inst, model.free_items, model.pos_offset)
    P = pos_item.size
    if inst.mode == "inclusive":
        x = np.clip(v[model.x_off:model.x_off + P], 0.0, 1.0)
        m[pos_item, pos_epoch, 0] = x
        m[pos_item, pos_epoch, 1] = 1.0 - x
    elif model.nx == 0:
        m[pos_item, pos_epoch, 0] = 1.0
    else:
        x = np.clip(v[model.x_off:model.x_off + P * model.nx].reshape(P, model.nx), 0.0, 1.0)
        m[pos_item, pos_epoch, :model.nx] = x
        m[pos_item, pos_epoch, K - 1] = np.clip(1.0 - x.sum(axis=1), 0.0, 1.0)
    return m


def _occupancy(inst: Instance, rho: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Bytes held per tier and epoch, copies included (docs/model.md section 3), shape (K, E)."""
    K, E = inst.num_tiers, inst.num_epochs
    size = inst.size_bytes.astype(float)
    occ = np.zeros((K, E))
    for k in range(K):
        occ[k] = size @ ((rho == k) & alive)
    # a move into k at e+1 is copied during e and occupies k then
    moving = alive[:, 1:] & alive[:, :-1] & (rho[:, 1:] != rho[:, :-1])
    for k in range(K):
        occ[k, :-1] += size @ (moving & (rho[:, 1:] == k))
    if inst.mode == "inclusive":
        occ[1] = size @ alive          # tier 1 keeps every alive item
    return occ


def round_lp_solution(model: MilpModel, v: np.ndarray, *,
                      time_budget_s: "float | Deadline | None" = None) -> Schedule | None:
    """Round an LP solution to residency and repair capacity greedily.

    While some bounded tier is over capacity at some epoch, the item there that the LP
    wanted least in that tier leaves it for the whole stretch it spends there (moving to
    the last tier).  Returns None when no repair is found within the budget.

    Parameters
    ----------
    model : MilpModel
    v : ndarray, shape (model.num_col,)
        A primal solution of the model or of its LP relaxation (scaled columns).
    time_budget_s : float, Deadline or None
        Seconds for the repair, or the caller's deadline (None: until it is done).
    """
    inst = model.instance
    N, E, K = inst.num_items, inst.num_epochs, inst.num_tiers
    if N == 0:
        return schedule_from_residency(inst, np.zeros((0, E), np.int64))
    dl = Deadline.of(time_budget_s)
    member = _membership(model, v)
    rho = np.argmax(member, axis=2).astype(np.int64)
    e_idx = np.arange(E)
    alive = (e_idx[None, :] >= inst.birth[:, None]) & (e_idx[None, :] < inst.death[:, None])
    last = K - 1
    caps = [t.capacity_bytes for t in inst.tiers]
    locked = inst.pinned_tier >= 0
    while not dl.expired():
        occ = _occupancy(inst, rho, alive)
        bad = None
        for k in range(K):
            if caps[k] is None or (inst.mode == "inclusive" and k == 1):
                continue
            over = np.flatnonzero(occ[k] > caps[k])
            if over.size and (bad is None or over[0] < bad[1]):
                bad = (k, int(over[0]))
        if bad is None:
            sched = schedule_from_residency(inst, rho)
            # only what the independent evaluator accepts (e.g. tier-1 capacity in
            # inclusive mode is not a row of the model)
            return sched if evaluate(inst, sched).feasible else None
        k, e = bad
        if k == last:
            return None                      # nowhere further to send items
        resident = alive[:, e] & (rho[:, e] == k)
        incoming = np.zeros(N, bool)
        if e + 1 < E:
            incoming = alive[:, e] & alive[:, e + 1] & (rho[:, e + 1] == k) & (rho[:, e] != k)
        cand = (resident | incoming) & ~locked
        t_of = np.where(resident, e, e + 1)
        # an item whose stretch in k starts at birth with initial tier k cannot leave it
        cand_idx = np.flatnonzero(cand)
        if cand_idx.size == 0:
            return None
        value = member[cand_idx, np.minimum(t_of[cand_idx], E - 1), k]
        order = cand_idx[np.argsort(value, kind="stable")]
        moved = False
        for i in order.tolist():
            a, b = residency_stretch(inst, rho, i, int(t_of[i]))
            if a == inst.birth[i] and inst.initial_tier[i] == k:
                continue
            rho[i, a:b + 1] = last
            moved = True
            break
        if not moved:
            return None
    return None
