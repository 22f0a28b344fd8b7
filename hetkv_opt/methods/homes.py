"""Spreading the items that live off tier 0 over the slower tiers ("homes").

With three or more tiers (HBM, LPDDR over NVLink-C2C, CXL over PCIe) the hard decision is
still which items sit in tier 0 when; the flow heuristic makes it on the two fastest tiers
and leaves every other item in tier 1.  But tiers 1, 2, ... are read *at the same time*
too: an epoch bound by tier 1's link goes faster when some of its reads come from tier 2.
On a three-tier 256 x 64 drift instance (GH200 + CXL expander) the two-tier optimum is
12 % above the LP bound, almost exactly the share of off-package bandwidth the CXL link
adds (63 of 513 GB/s).

:func:`spread_homes` keeps *when* each item is in tier 0 and chooses, for each stretch
an item spends off tier 0, the one slower tier ("home") it spends it in: a local search
over stretches, most read bytes first, that moves a stretch's whole footprint (its reads,
writes, the copies from and to tier 0 at its ends, and its bytes) to the home that lowers
T the most, while every capacity holds.  Each trial costs O(tiers x epochs of the stretch).
The result is a schedule; the caller re-scores it with the evaluator.
"""

from __future__ import annotations

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.model.evaluate import traffic
from hetkv_opt.model.instance import Instance, accesses_by_item
from hetkv_opt.model.schedule import Schedule, residency_matrix, schedule_from_residency
from hetkv_opt.methods.starts import too_dense


def out_of_scope(inst: Instance) -> str | None:
    """Why :func:`spread_homes` has nothing to do on ``inst`` (None when it applies)."""
    if inst.mode != "exclusive":
        return "inclusive mode has two tiers"
    if inst.num_tiers < 3:
        return "fewer than three tiers: one home off tier 0"
    return too_dense(inst, "spreading homes")


def spread_homes(inst: Instance, schedule: Schedule, *,
                 deadline: "Deadline | float | None" = None, info: dict | None = None
                 ) -> Schedule | None:
    """``schedule`` with each stretch off tier 0 moved to the slower tier that
    lowers T the most (see the module text); None when nothing improved or the method
    does not apply.  ``info`` receives ``rounds``, ``moved`` and ``finished``."""
    info = info if info is not None else {}
    why = out_of_scope(inst)
    if why:
        info["skipped"] = why
        return None
    dl = Deadline.of(deadline)
    K = inst.num_tiers
    rho = residency_matrix(inst, schedule)          # int8, -1 where not alive
    tiers = inst.tiers
    size = inst.size_bytes.astype(float)
    tr = traffic(inst, schedule)
    R = tr.reads + tr.copy_out                  # bytes over each tier's read side
    W = tr.writes + tr.copy_in                  # ... and write side
    occ = tr.occupancy.copy()
    cap = np.array([np.inf if t.capacity_bytes is None else float(t.capacity_bytes)
                    for t in tiers])
    bw = np.array([t.bandwidth_Bps for t in tiers], float)
    lr = np.array([np.inf if t.link_read_Bps is None else t.link_read_Bps for t in tiers])
    lw = np.array([np.inf if t.link_write_Bps is None else t.link_write_Bps for t in tiers])

    def tier_time(k, r, w):
        return np.maximum((r + w) / bw[k], np.maximum(r / lr[k], w / lw[k]))

    base = np.maximum(np.asarray(inst.min_time_s, float), tier_time(0, R[0], W[0]))
    tt = np.vstack([tier_time(k, R[k], W[k]) for k in range(K)])
    r_ep, r_b, r_st = accesses_by_item(inst, "read")
    w_ep, w_b, w_st = accesses_by_item(inst, "write")

    def footprint(i, a, b):
        """Epochs touched by item i's stretch [a, b) off tier 0 and, on them, its
        read-side, write-side and resident bytes; and its home (None: not movable)."""
        row = rho[i, a:b]
        h = int(row[0])
        if h <= 0 or np.any(row != h):
            return None
        birth, death = int(inst.birth[i]), int(inst.death[i])
        lo, hi = max(a - 1, birth), b             # the copy in runs in epoch a - 1
        n = hi - lo
        rd, wr, oc = np.zeros(n), np.zeros(n), np.zeros(n)
        oc[a - lo:b - lo] = size[i]
        for ep_, b_, st, out in ((r_ep, r_b, r_st, rd), (w_ep, w_b, w_st, wr)):
            sl = slice(st[i], st[i + 1])
            e = ep_[sl]
            keep = (e >= a) & (e < b)
            np.add.at(out, e[keep] - lo, b_[sl][keep])
        if a > birth:                             # copied in from tier 0 during a - 1
            wr[0] += size[i]
            oc[0] += size[i]
        if b < death:                             # copied out to tier 0 during b - 1
            rd[b - 1 - lo] += size[i]
        nz = np.flatnonzero((rd > 0) | (wr > 0) | (oc > 0))
        return h, nz + lo, rd[nz], wr[nz], oc[nz]

    # the stretches: maximal runs of epochs off tier 0, one tier each, of free items (a
    # run that starts at birth with a fixed initial tier stays where it is)
    stretches = []
    for i in np.flatnonzero((inst.pinned_tier < 0) & np.any(rho > 0, axis=1)).tolist():
        birth, death = int(inst.birth[i]), int(inst.death[i])
        row = rho[i, birth:death]
        off = np.concatenate([[False], row > 0, [False]])
        starts = np.flatnonzero(off[1:] & ~off[:-1])
        ends = np.flatnonzero(~off[1:] & off[:-1])
        for a, b in zip((starts + birth).tolist(), (ends + birth).tolist()):
            if a == birth and inst.initial_tier[i] >= 0:
                continue
            sl = slice(r_st[i], r_st[i + 1])
            e = r_ep[sl]
            stretches.append((-float(r_b[sl][(e >= a) & (e < b)].sum()), i, a, b))
    stretches.sort()
    moved = 0
    rounds = 0
    finished = True
    while True:
        rounds += 1
        changed = 0
        for _, i, a, b in stretches:
            if dl.expired():
                finished = False
                break
            fp = footprint(i, a, b)
            if fp is None:
                continue
            h, ep, rd, wr, oc = fp
            if ep.size == 0:
                continue
            old_tau = np.maximum(base[ep], tt[1:, ep].max(axis=0))
            th_without = tier_time(h, R[h, ep] - rd, W[h, ep] - wr)
            best, best_k, best_row = 0.0, None, None
            for k in range(1, K):
                if k == h or np.any(occ[k, ep] + oc > cap[k]):
                    continue
                tk = tier_time(k, R[k, ep] + rd, W[k, ep] + wr)
                others = [tt[j, ep] for j in range(1, K) if j not in (h, k)]
                new_tau = np.maximum.reduce([base[ep], th_without, tk, *others])
                delta = float((new_tau - old_tau).sum())
                if delta < best - 1e-12 * float(old_tau.sum() + 1e-300):
                    best, best_k, best_row = delta, k, tk
            if best_k is None:
                continue
            k = best_k
            R[h, ep] -= rd
            W[h, ep] -= wr
            occ[h, ep] -= oc
            R[k, ep] += rd
            W[k, ep] += wr
            occ[k, ep] += oc
            tt[h, ep] = th_without
            tt[k, ep] = best_row
            rho[i, a:b] = k
            changed += 1
        moved += changed
        if not finished or changed == 0 or rounds >= 20:
            break
    info.update({"rounds": rounds, "moved": moved, "finished": finished})
    if moved == 0:
        return None
    return schedule_from_residency(inst, rho)


__all__ = ["out_of_scope", "spread_homes"]
