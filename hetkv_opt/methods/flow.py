"""The flow-graph heuristic (issue 3, part 2): HBM slots as min-cost flow through time.

Scope: two tiers, exclusive mode (the paper's case).  Other cases raise
:class:`NotImplementedError` naming what is unsupported.

Two graphs, for fixed per-epoch prices ``lam[j, e]`` on the time terms of docs/model.md
section 4 (the rows of :func:`hetkv_opt.model.terms.time_terms`).  In both, nodes
``0..E`` are epoch boundaries, ``F`` units of flow (HBM *slots*) go from node 0 to node
``E``, and "idle" arcs ``t -> t+1`` (capacity ``F``, cost 0) carry empty slots.  A unit
leaving the time line at node ``u`` and re-joining it at node ``v`` is one slot occupied
over epochs ``[u, v)``, so any flow occupies at most ``F`` slots at every epoch: HBM
capacity holds by construction.  A promotion to HBM at epoch ``t`` is copied during
``t - 1`` and occupies HBM then (docs/model.md section 2), so a unit leaves the time line one
epoch before the residency starts (or at the item's birth when it starts in HBM, with
no copy); a demotion is copied during the last resident epoch, which the slot already
covers.  Arc costs are priced seconds: minus the benefit of serving the item's reads
and writes from HBM instead of tier 1, plus the priced copy traffic of promotions
(tier-1 read + HBM write during ``t - 1``) and demotions.

- ``graph="chain"`` (default, exact per item): two nodes per read of a free item, a
  *serve* arc between them (capacity 1, minus the read's benefit), *continue* arcs from
  one read of the item to its next (the slot stays with the item over the gap, gaining
  the writes in between), *enter* arcs from time node ``r - 1`` (promotion cost) or from
  the birth node (no copy), *demote* arcs back to time node ``r + 1`` (demotion cost) and
  a *death* arc from the last read to the death node.  Every choice of residency
  intervals that start and end at reads is a flow, so the only approximations are the
  prices and the slot rule.  About 6 arcs per read: use OR-Tools above ~10^4 arcs.
- ``graph="runs"`` (the small graph): one arc per *run* of an item's reads, a run being
  cut wherever two consecutive reads are more than ``gap`` epochs apart; runs of one item
  are disjoint, so a flow never puts an item twice in HBM.  The heuristic tries several
  ``gaps`` and keeps the best evaluated schedule.  Far fewer arcs, measured 1-6 % worse.

**Slots and mixed sizes** (rule): one slot holds one item of the *largest* free item
size; ``F = floor(min over epochs of (HBM capacity - bytes pinned to HBM) / max size)``.
Smaller items use a whole slot (conservative: never over capacity, may waste room).

**Prices**: fictitious play.  Start from the binding term of the trivial schedule (or
from Lagrangian prices passed as ``prices``); after every flow solve, evaluate the
schedule and average the one-hot vector of each epoch's binding term into ``lam``
(step ``1/(t+2)``); stop after ``patience`` rounds without a better schedule.  Epochs
that flip between HBM-bound and DRAM-bound end with mixed prices, so HBM is filled to
the balanced share rather than to the brim.

**Repair**: initial tiers and pins are imposed on the residency, then while HBM is over
capacity at some epoch the resident (or incoming) item with the smallest priced benefit
leaves HBM for its whole stretch (the idea of :mod:`hetkv_opt.methods.rounding`).  Every
candidate is scored by :func:`hetkv_opt.model.evaluate.evaluate`; only feasible schedules are
kept; the trivial schedule is always a candidate.  Where a bounded tier 1 overflows, the
repair moves the most valuable tier-1 stretch there into HBM instead (and never evicts it
again); when no repair fits, the candidate is dropped, and ``flow_schedule`` may return
None (``solve_flow`` then reports ``bound_only`` with the reason).
"""

from __future__ import annotations

import math
import time

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.child import Abandoned, run_in_child
from hetkv_opt.methods.starts import too_dense, trivial_schedule
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, residency_stretch, schedule_from_residency
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.model.terms import time_terms
from hetkv_opt.result import finish

ENGINES = ("auto", "networkx", "ortools")
GRAPHS = ("chain", "runs")
#: ``engine="auto"`` uses OR-Tools (when installed) above this many arcs (the E idle arcs
#: included: a runs graph of 1.5k interval arcs and 3.8k idle ones took networkx 2.1-2.5 s,
#: where OR-Tools took 0.1-0.2 s on the same instance's runs graphs of 6-7k arcs)
AUTO_ORTOOLS_ARCS = 2000
#: integer cost scale: the largest |arc cost| becomes about this many units
COST_UNITS = 10 ** 6


def check_supported(inst: Instance) -> None:
    """Raise :class:`NotImplementedError` naming what this heuristic does not handle."""
    if inst.mode != "exclusive":
        raise NotImplementedError(f"flow heuristic: mode {inst.mode!r} is not supported "
                                  "(two-tier exclusive only)")
    if inst.num_tiers != 2:
        raise NotImplementedError(f"flow heuristic: {inst.num_tiers} tiers are not supported "
                                  "(two-tier exclusive only)")


def _unit_costs(inst: Instance, lam: np.ndarray):
    """Priced seconds per byte of read / write / copy-in / copy-out, each shape (K, E)."""
    K, E = inst.num_tiers, inst.num_epochs
    out = {key: np.zeros((K, E)) for key in ("r", "w", "ci", "co")}
    for j, (_, k, rate, rd, wr, ci, co) in enumerate(time_terms(inst)):
        for flag, key in ((rd, "r"), (wr, "w"), (ci, "ci"), (co, "co")):
            if flag:
                out[key][k] += lam[j] / rate
    return out


def _term_values(inst: Instance, ev) -> np.ndarray:
    """Every priced time term of an evaluated schedule, shape (J, E)."""
    rows = []
    for _, k, rate, rd, wr, ci, co in time_terms(inst):
        v = np.zeros(inst.num_epochs)
        if rd:
            v = v + ev.read_bytes[k]
        if wr:
            v = v + ev.write_bytes[k]
        if ci:
            v = v + ev.copy_in_bytes[k]
        if co:
            v = v + ev.copy_out_bytes[k]
        rows.append(v / rate)
    return np.vstack(rows)


def _binding_onehot(inst: Instance, ev) -> np.ndarray:
    vals = _term_values(inst, ev)
    J, E = vals.shape
    out = np.zeros((J, E))
    top = vals.argmax(axis=0)
    # an epoch held by its compute floor prices nothing
    live = vals[top, np.arange(E)] > np.asarray(inst.min_time_s, float)
    out[top[live], np.arange(E)[live]] = 1.0
    return out


def _benefit_matrix(inst: Instance, uc) -> np.ndarray:
    """Priced seconds saved by item i being in HBM at epoch e (reads and writes), (N, E)."""
    N, E = inst.num_items, inst.num_epochs
    B = np.zeros((N, E))
    re, ri, rb = inst.read_epoch, inst.read_item, inst.read_bytes.astype(float)
    np.add.at(B, (ri, re), rb * (uc["r"][1, re] - uc["r"][0, re]))
    we, wi, wb = inst.write_epoch, inst.write_item, inst.write_bytes.astype(float)
    np.add.at(B, (wi, we), wb * (uc["w"][1, we] - uc["w"][0, we]))
    return B


def _runs(inst: Instance, gap: int, free: np.ndarray):
    """Candidate intervals: (item, first read, last read) of every run of reads whose
    consecutive reads are at most ``gap`` epochs apart; free items only."""
    re, ri = inst.read_epoch, inst.read_item
    order = np.lexsort((re, ri))
    it, ep = ri[order], re[order]
    keep = free[it]
    it, ep = it[keep], ep[keep]
    if it.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    new = np.ones(it.size, bool)
    new[1:] = (it[1:] != it[:-1]) | (ep[1:] - ep[:-1] > gap)
    starts = np.flatnonzero(new)
    ends = np.concatenate([starts[1:], [it.size]]) - 1
    return it[starts], ep[starts], ep[ends]


def _arcs(inst: Instance, B: np.ndarray, uc, gap: int, free: np.ndarray):
    """Interval arcs (item, u, v, res_start, res_end, cost_s) with negative cost."""
    item, first, last = _runs(inst, gap, free)
    size = inst.size_bytes.astype(float)[item]
    birth, death = inst.birth[item], inst.death[item]
    init = inst.initial_tier[item]
    # residency [rs, re_): start in HBM at birth when the run starts within one epoch of it
    # (same slot time, no copy) unless the initial tier forbids it
    at_birth = (first - 1 <= birth) & (init != 1)
    rs = np.where(at_birth, birth, np.maximum(first, birth + 1))
    u = np.where(at_birth, birth, rs - 1)
    re_ = np.minimum(last + 1, death)
    P = np.cumsum(np.concatenate([np.zeros((B.shape[0], 1)), B], axis=1), axis=1)
    gain = P[item, re_] - P[item, rs]
    promo = ~at_birth
    pe = np.maximum(rs - 1, 0)
    promo_cost = np.where(promo, size * (uc["co"][1, pe] + uc["ci"][0, pe]), 0.0)
    demo = re_ < death
    de = np.maximum(re_ - 1, 0)
    demo_cost = np.where(demo, size * (uc["co"][0, de] + uc["ci"][1, de]), 0.0)
    cost = promo_cost + demo_cost - gain
    ok = (cost < 0) & (rs < re_)
    return item[ok], u[ok], re_[ok], rs[ok], re_[ok], cost[ok]


def _slots(inst: Instance, free: np.ndarray) -> int:
    cap = inst.tiers[0].capacity_bytes
    if not free.any():
        return 0
    smax = int(inst.size_bytes[free].max())
    if cap is None:
        return int(free.sum())
    E = inst.num_epochs
    pinned = inst.pinned_tier == 0
    d = np.zeros(E + 1)
    np.add.at(d, inst.birth[pinned], inst.size_bytes[pinned].astype(float))
    np.add.at(d, inst.death[pinned], -inst.size_bytes[pinned].astype(float))
    room = cap - np.cumsum(d)[:E].max(initial=0.0)
    return int(max(0, min(room // smax, free.sum())))


# ------------------------------------------------------------------------------- engines

def _ortools_module():
    try:
        from ortools.graph.python import min_cost_flow
    except ImportError:
        raise ImportError("engine='ortools' needs OR-Tools: pip install 'hetkv-opt[flow]' "
                          "(or pip install ortools)") from None
    return min_cost_flow


def _pick_engine(engine: str, n_arcs: int) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if n_arcs > AUTO_ORTOOLS_ARCS:
        try:
            _ortools_module()
            return "ortools"
        except ImportError:
            pass
    return "networkx"


def predict_flow_s(n_arcs: int, engine: str) -> float:
    """Predicted seconds of one min-cost-flow solve of ``n_arcs`` arcs (measured on this
    machine kind: OR-Tools 0.13 s at 26k arcs, 8.7 s at 417k, 161 s at 1.7M; networkx 2.3 s
    at 26k).  One solve cannot be interrupted, so a round runs only when this fits."""
    if engine == "ortools":
        return 8.7 * (max(n_arcs, 1) / 4.17e5) ** 1.8
    return 2.3 * (max(n_arcs, 1) / 2.6e4) ** 1.3


#: a solve in this process runs only when this many times its predicted time fits in the
#: time left (the prediction is an idle machine's; a loaded one is up to twice as slow)
FLOW_TIME_SAFETY = 2.0
#: an OR-Tools solve predicted to take at least this long runs in a child process that is
#: killed at the deadline (:mod:`hetkv_opt.methods.child`): the time of one solve is not a
#: function of its size alone (418k arcs: 2 s on a high-turnover drift instance, 34 s on a
#: default one), so a prediction alone could overrun the deadline by many times
CHILD_SOLVE_S = 0.5
#: until a solve of this run has measured how far off the prediction is, a child solve may
#: take this share of the time left (the rest is for the smaller graph, if it is stopped)
FIRST_CHILD_SHARE = 0.6


class _TooSlow(Exception):
    """A flow solve predicted to outlast the deadline (nothing was solved)."""


def _in_child(n_arcs: int, engine: str, deadline: Deadline | None) -> bool:
    return (engine == "ortools" and deadline is not None and not deadline.unlimited
            and predict_flow_s(n_arcs, engine) >= CHILD_SOLVE_S)


def _check_fits(n_arcs: int, engine: str, deadline: Deadline | None, stats: dict) -> None:
    """Raise :class:`_TooSlow` when the solve is predicted not to fit: the prediction
    corrected by what this run's solves measured; twice that must fit for a solve in this
    process, once for one in a child (which the deadline stops)."""
    if deadline is None:
        return
    left = deadline.remaining_s()
    pred = predict_flow_s(n_arcs, engine) * stats.get("solve_ratios", {}).get(
        _ratio_key(n_arcs, engine), 1.0)
    safety = 1.0 if _in_child(n_arcs, engine, deadline) else FLOW_TIME_SAFETY
    if left is not None and safety * pred > left:
        stats.setdefault("skipped_solves", []).append(
            {"arcs": int(n_arcs), "predicted_s": round(pred, 3), "left_s": round(left, 3)})
        raise _TooSlow


def _timed_solve(n_nodes: int, tails, heads, caps, costs, sup, engine: str,
                 deadline: Deadline | None, stats: dict) -> np.ndarray:
    """:func:`min_cost_flow`, in a child process when :func:`_in_child` says so (then
    :class:`_TooSlow` when the deadline stops it); records the measured / predicted time."""
    n_arcs = len(tails)
    t0 = time.perf_counter()
    if _in_child(n_arcs, engine, deadline):
        known = _ratio_key(n_arcs, engine) in stats.get("solve_ratios", {})
        stop = deadline if known else deadline.child(fraction=FIRST_CHILD_SHARE)
        try:
            x = run_in_child("hetkv_opt.methods.flow:min_cost_flow",
                             (n_nodes, tails, heads, caps, costs, sup, engine), stop)
        except Abandoned as exc:
            stats.setdefault("abandoned_solves", []).append(
                {"arcs": int(n_arcs), "after_s": round(time.perf_counter() - t0, 3),
                 "why": str(exc)})
            stats["flow_solve_s"] += time.perf_counter() - t0
            raise _TooSlow from None
        stats["child_solves"] = stats.get("child_solves", 0) + 1
    else:
        x = min_cost_flow(n_nodes, tails, heads, caps, costs, sup, engine)
    took = time.perf_counter() - t0
    stats["flow_solve_s"] += took
    stats.setdefault("solve_ratios", {})[_ratio_key(n_arcs, engine)] = round(
        took / max(predict_flow_s(n_arcs, engine), 1e-9), 3)
    return x


def _ratio_key(n_arcs: int, engine: str) -> str:
    """Measured / predicted time is kept per engine and size (within a factor of 2): a
    small graph's time is mostly fixed costs, which the size-only prediction leaves out
    (10.9k arcs: 0.45 s measured against 0.012 s predicted, where 648k arcs took 16 s
    against 15.5 s), so one graph's ratio says nothing about another size's."""
    return f"{engine}:{int(math.log2(max(n_arcs, 1)))}"


def min_cost_flow(num_nodes: int, tails: np.ndarray, heads: np.ndarray, caps: np.ndarray,
                  costs: np.ndarray, supplies: np.ndarray, engine: str) -> np.ndarray:
    """Optimal integral flow of a min-cost flow problem with integer costs (arcs may be
    parallel; costs may be negative on a DAG); returns the flow of every arc."""
    tails, heads = np.asarray(tails, np.int64), np.asarray(heads, np.int64)
    caps, costs = np.asarray(caps, np.int64), np.asarray(costs, np.int64)
    supplies = np.asarray(supplies, np.int64)
    if engine == "ortools":
        mcf = _ortools_module()
        smcf = mcf.SimpleMinCostFlow()
        arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
        smcf.set_nodes_supplies(np.arange(num_nodes, dtype=np.int64), supplies)
        status = smcf.solve()
        if status != smcf.OPTIMAL:
            raise RuntimeError(f"OR-Tools min-cost flow failed with status {status}")
        return np.asarray(smcf.flows(arcs), np.int64)
    import networkx as nx
    G = nx.MultiDiGraph()
    for n, sup in enumerate(supplies.tolist()):
        G.add_node(n, demand=-sup)
    for a, (u, v, c, w) in enumerate(zip(tails.tolist(), heads.tolist(), caps.tolist(),
                                         costs.tolist())):
        G.add_edge(u, v, key=a, capacity=c, weight=w)
    _, flow = nx.network_simplex(G)
    return np.array([flow[u][v][a] for a, (u, v) in enumerate(zip(tails.tolist(),
                                                                   heads.tolist()))], np.int64)


def min_cost_flow_dag(E: int, F: int, u: np.ndarray, v: np.ndarray, cost: np.ndarray,
                      engine: str, deadline: Deadline | None = None,
                      stats: dict | None = None) -> np.ndarray:
    """Route F units from node 0 to node E through idle arcs t -> t+1 (capacity F, cost 0)
    and unit-capacity arcs u -> v with integer costs; returns the 0/1 flow on the latter."""
    n = u.size
    if n == 0 or F == 0:
        return np.zeros(n, np.int64)
    t = np.arange(E, dtype=np.int64)
    sup = np.zeros(E + 1, np.int64)
    sup[0], sup[E] = F, -F
    x = _timed_solve(E + 1, np.concatenate([t, u]), np.concatenate([t + 1, v]),
                     np.concatenate([np.full(E, F), np.ones(n, np.int64)]),
                     np.concatenate([np.zeros(E, np.int64), cost]), sup, engine, deadline,
                     {"flow_solve_s": 0.0} if stats is None else stats)
    return x[E:]


def _chain_graph(inst: Instance, B: np.ndarray, uc, free: np.ndarray):
    """The chain graph: two nodes per read of a free item (in, out) after the E + 1 time
    nodes; arcs of kinds serve / cont / enter (promotion) / birth / demote / death."""
    E = inst.num_epochs
    re, ri = inst.read_epoch, inst.read_item
    order = np.lexsort((re, ri))
    it, ep = ri[order], re[order]
    keep = free[it]
    it, ep = it[keep], ep[keep]
    R = it.size
    m = np.arange(R)
    first = np.ones(R, bool)
    first[1:] = it[1:] != it[:-1]
    last = np.ones(R, bool)
    last[:-1] = it[1:] != it[:-1]
    P = np.cumsum(np.concatenate([np.zeros((B.shape[0], 1)), B], axis=1), axis=1)
    size = inst.size_bytes.astype(float)[it]
    birth, death, init = inst.birth[it], inst.death[it], inst.initial_tier[it]
    nin, nout = E + 1 + 2 * m, E + 2 + 2 * m
    T, H, C, K_, M = [], [], [], [], []   # tails, heads, costs (s), kind, read index

    def add(mask, tail, head, cost, kind):
        T.append(tail[mask]); H.append(head[mask]); C.append(cost[mask])
        K_.append(np.full(int(mask.sum()), kind)); M.append(m[mask])

    allm = np.ones(R, bool)
    add(allm, nin, nout, -B[it, ep], 0)                                        # serve
    nxt = np.minimum(m + 1, R - 1)
    add(~last, nout, nin[nxt], -(P[it, ep[nxt]] - P[it, np.minimum(ep + 1, E)]), 1)  # cont
    pe = np.maximum(ep - 1, 0)
    add(ep - 1 >= birth, pe, nin, size * (uc["co"][1, pe] + uc["ci"][0, pe]), 2)  # enter
    add(first & (init != 1), birth, nin, -(P[it, ep] - P[it, birth]), 3)        # birth
    de = ep
    add(ep + 1 < death, nout, np.minimum(ep + 1, E),
        size * (uc["co"][0, de] + uc["ci"][1, de]), 4)                          # demote
    add(last, nout, death, -(P[it, death] - P[it, np.minimum(ep + 1, E)]), 5)  # death
    return (E + 1 + 2 * R, np.concatenate(T), np.concatenate(H), np.concatenate(C),
            np.concatenate(K_), np.concatenate(M), it, ep)


def _chain_flow(inst: Instance, B: np.ndarray, uc, free: np.ndarray, F: int, engine: str,
                stats: dict, deadline: Deadline | None = None) -> np.ndarray:
    """Solve the chain graph; return the residency (0 = HBM) it implies."""
    E = inst.num_epochs
    rho = np.ones((inst.num_items, E), np.int64)
    n_nodes, T, H, C, kind, m, it, ep = _chain_graph(inst, B, uc, free)
    if F == 0 or T.size == 0:
        return rho
    eng = _pick_engine(engine, T.size + E)
    _check_fits(T.size + E, eng, deadline, stats)
    stats["engine"] = eng
    stats["arcs_max"] = max(stats["arcs_max"], int(T.size + E))
    scale = COST_UNITS / max(float(np.abs(C).max(initial=0.0)), 1e-300)
    icost = np.round(C * scale).astype(np.int64)
    t = np.arange(E, dtype=np.int64)
    sup = np.zeros(n_nodes, np.int64)
    sup[0], sup[E] = F, -F
    x = _timed_solve(n_nodes, np.concatenate([t, T]), np.concatenate([t + 1, H]),
                     np.concatenate([np.full(E, F), np.ones(T.size, np.int64)]),
                     np.concatenate([np.zeros(E, np.int64), icost]), sup, eng, deadline,
                     stats)[E:]
    on = np.flatnonzero(x > 0)
    death = inst.death
    for k, j in zip(kind[on].tolist(), m[on].tolist()):
        i, e = int(it[j]), int(ep[j])
        if k == 0:
            rho[i, e] = 0
        elif k == 1:
            rho[i, e:int(ep[j + 1]) + 1] = 0
        elif k == 3:
            rho[i, int(inst.birth[i]):e + 1] = 0
        elif k == 5:
            rho[i, e:int(death[i])] = 0
    return rho


# ------------------------------------------------------------------------------- repair

def _alive(inst: Instance) -> np.ndarray:
    e = np.arange(inst.num_epochs)
    return (e[None, :] >= inst.birth[:, None]) & (e[None, :] < inst.death[:, None])


def _holders(inst: Instance, rho: np.ndarray, k: int, e: int, movable: np.ndarray):
    """Movable items that occupy tier ``k`` at ``e`` (resident, or being copied in for
    e + 1), and the epoch whose stretch to move for each."""
    N, E = rho.shape
    resident = rho[:, e] == k
    incoming = np.zeros(N, bool)
    if e + 1 < E:
        incoming = (rho[:, e + 1] == k) & (rho[:, e] != k) & (inst.birth < e + 1)
    alive = (inst.birth <= e) & (inst.death > e)
    cand = np.flatnonzero((resident | incoming) & alive & movable)
    return cand, np.where(resident, e, e + 1)


def repair(inst: Instance, rho: np.ndarray, value: np.ndarray | None = None,
           time_budget_s: float = 10.0) -> Schedule | None:
    """Impose pins and initial tiers on a two-tier residency, then fix capacity until the
    evaluator accepts it: where HBM overflows, the item with the smallest ``value`` there
    leaves HBM for its whole stretch; where a bounded tier 1 overflows, the item with the
    largest ``value`` moves its tier-1 stretch into HBM (and is not evicted again).
    Returns None when no repair is found."""
    rho = np.array(rho, np.int64, copy=True)
    N, E = rho.shape
    pin = inst.pinned_tier
    p = pin >= 0
    rho[p] = pin[p, None]
    q = (~p) & (inst.initial_tier >= 0)
    rho[np.flatnonzero(q), inst.birth[q]] = inst.initial_tier[q]
    if value is None:
        value = np.zeros((N, E))
    caps = [t.capacity_bytes for t in inst.tiers]
    locked = np.zeros(N, bool)            # promoted to relieve tier 1: never evicted again
    t_end = time.perf_counter() + time_budget_s
    while True:
        sched = schedule_from_residency(inst, rho)
        ev = evaluate(inst, sched)
        if ev.feasible:
            return sched
        if time.perf_counter() > t_end:
            return None
        over = [np.flatnonzero(ev.occupancy_bytes[k] > c) if c is not None else np.zeros(0, int)
                for k, c in enumerate(caps)]
        if over[0].size == 0 and over[1].size == 0:
            return None                   # not a capacity problem: nothing to repair
        # the earliest overflow first; HBM before tier 1 at the same epoch
        k = 0 if over[0].size and (over[1].size == 0 or over[0][0] <= over[1][0]) else 1
        e = int(over[k][0])
        cand, t_of = _holders(inst, rho, k, e, ~p & ~locked if k == 0 else ~p)
        if cand.size == 0:
            return None
        val = value[cand, np.minimum(t_of[cand], E - 1)]
        order = cand[np.argsort(val if k == 0 else -val, kind="stable")]
        moved = False
        for i in order.tolist():
            a, b = residency_stretch(inst, rho, i, int(t_of[i]))
            if a == inst.birth[i] and inst.initial_tier[i] == k:
                continue                  # its initial tier is fixed
            rho[i, a:b + 1] = 1 - k
            locked[i] |= k == 1
            moved = True
            break
        if not moved:
            return None


def _runs_flow(inst: Instance, B: np.ndarray, uc, free: np.ndarray, F: int, engine: str,
               stats: dict, gap: int, deadline: Deadline | None = None) -> np.ndarray:
    """Solve the runs graph of one gap value; return the residency (0 = HBM) it implies."""
    E = inst.num_epochs
    item, u, v, rs, re_, cost = _arcs(inst, B, uc, gap, free)
    eng = _pick_engine(engine, item.size + E)
    _check_fits(item.size + E, eng, deadline, stats)
    stats["engine"] = eng
    stats["arcs_max"] = max(stats["arcs_max"], int(item.size + E))
    scale = COST_UNITS / max(float(-cost.min(initial=0.0)), 1e-300)
    icost = np.minimum(np.round(cost * scale), -1).astype(np.int64)
    x = min_cost_flow_dag(E, F, u, v, icost, eng, deadline, stats)
    rho = np.ones((inst.num_items, E), np.int64)
    for i, a, b in zip(item[x > 0].tolist(), rs[x > 0].tolist(), re_[x > 0].tolist()):
        rho[i, a:b] = 0
    return rho


# ------------------------------------------------------------------------------- main

def _prices_from(inst: Instance, prices) -> np.ndarray:
    J = len(time_terms(inst))
    lam = getattr(prices, "lam", prices)
    lam = np.asarray(lam, float)
    if lam.ndim != 2 or lam.shape[1] != inst.num_epochs or lam.shape[0] < J:
        raise ValueError(f"prices must have shape ({J}, {inst.num_epochs}) (extra rows "
                         f"ignored), got {lam.shape}")
    return np.clip(lam[:J], 0.0, None)


def flow_schedule(inst: Instance, *, iterations: int = 12, time_limit_s: float | None = 30.0,
                  engine: str = "auto", graph: str = "chain", gaps=None, prices=None,
                  patience: int = 8, info: dict | None = None, progress=None,
                  stop_on_interrupt: bool = False) -> Schedule | None:
    """The best evaluated feasible schedule of the flow heuristic (see the module doc).

    Parameters
    ----------
    inst : Instance
        Two tiers, exclusive mode.
    iterations : int
        Price updates (one flow solve per gap value each).
    time_limit_s : float, Deadline or None
        Stop by then with the best schedule so far.  A flow solve cannot be interrupted:
        one runs only when :func:`predict_flow_s` says it ends in the time left (a chain
        graph that does not fit gives way to the runs graph).
    engine : {"auto", "networkx", "ortools"}
        Min-cost flow solver; ``auto`` picks OR-Tools for large graphs when installed.
    gaps : sequence of int, optional
        Run-splitting thresholds to try (default 1, 2, 4, 8, 16, E).
    prices : BoundCertificate or ndarray (J, E), optional
        Starting prices on the time terms, e.g. a Lagrangian certificate.
    patience : int
        Stop after this many rounds without a better schedule.
    info : dict, optional
        Filled with counters (iterations, arcs, engine, solve seconds, best gap value).
    progress : callable(dict), optional
        Called after every round with ``round``, ``elapsed_s`` and ``best_s`` (the best
        evaluated T so far).
    stop_on_interrupt : bool
        Ctrl-C ends the rounds and returns the best schedule so far (``info["interrupted"]``)
        instead of propagating.  (A min-cost-flow solve itself is not interruptible.)

    Returns
    -------
    Schedule or None
        None only when not even the trivial schedule is feasible and no repair worked.
    """
    check_supported(inst)
    info = {} if info is None else info
    why = too_dense(inst, "the flow heuristic")
    if why:
        info["too_large"] = why
        return None
    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
    t_start = time.perf_counter()
    E = inst.num_epochs
    free = inst.pinned_tier < 0
    F = _slots(inst, free)
    if gaps is None:
        gaps = sorted({1, 2, 4, 8, 16, E})
    gaps = [max(1, int(g)) for g in gaps]
    best, best_T, best_gap = None, float("inf"), None
    triv = trivial_schedule(inst)
    ev = evaluate(inst, triv)
    if ev.feasible:
        best, best_T = triv, ev.total_time_s
    lam = _prices_from(inst, prices) if prices is not None else _binding_onehot(inst, ev)
    stats = {"slots": F, "engine": None, "arcs_max": 0, "flow_solve_s": 0.0, "rounds": 0,
             "history_s": [], "graph": graph}
    best_box = [best, best_T, best_gap]
    try:
        _flow_rounds(inst, iterations, Deadline.of(time_limit_s, start=t_start), t_start, graph,
                     gaps, engine, free, F,
                     lam, stats, patience, progress, best_box)
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            raise
        stats["interrupted"] = True     # Ctrl-C: keep the best schedule so far
    best, best_T, best_gap = best_box
    stats["best_gap_rule"] = best_gap
    stats["runtime_s"] = time.perf_counter() - t_start
    if info is not None:
        info.update(stats)
    return best


def _flow_rounds(inst, iterations, dl, t_start, graph, gaps, engine, free, F, lam,
                 stats, patience, progress, box):
    """The price rounds of :func:`flow_schedule`; the best schedule is kept in ``box``
    (schedule, T, gap rule) as it improves, so an interruption loses nothing."""
    best_T = box[1]
    stale = 0
    for it in range(max(1, int(iterations))):
        uc = _unit_costs(inst, lam)
        B = _benefit_matrix(inst, uc)
        round_best, improved = None, False
        gap_list = gaps if graph == "runs" else [None]
        k = 0
        while k < len(gap_list):
            gap = gap_list[k]
            k += 1
            if it > 0 and dl.expired():
                break
            try:
                if graph == "chain":
                    rho = _chain_flow(inst, B, uc, free, F, engine, stats, dl)
                else:
                    rho = _runs_flow(inst, B, uc, free, F, engine, stats, gap, dl)
            except _TooSlow:
                if graph == "chain":
                    # the chain graph does not fit the time left: the interval graph does
                    # the same job with far fewer arcs
                    graph = stats["graph"] = "runs"
                    stats["graph_switched"] = True
                    gap_list, k = gaps, 0
                continue
            sched = repair(inst, rho, value=B)
            if sched is None:
                continue
            ev_s = evaluate(inst, sched)
            if not ev_s.feasible:
                continue
            if round_best is None or ev_s.total_time_s < round_best[0]:
                round_best = (ev_s.total_time_s, ev_s)
            if ev_s.total_time_s < best_T * (1 - 1e-12):
                best_T = ev_s.total_time_s
                box[:] = [sched, best_T, gap]
                improved = True
        stats["rounds"] = it + 1
        if round_best is not None:
            stats["history_s"].append(round_best[0])
        if progress is not None:
            progress({"round": it + 1, "elapsed_s": time.perf_counter() - t_start,
                      "best_s": None if box[0] is None else best_T})
        stale = 0 if improved else stale + 1
        if stale >= patience:
            break
        if round_best is not None:
            # fictitious play: average the binding terms of this round's best schedule in
            lam = lam + (_binding_onehot(inst, round_best[1]) - lam) / (it + 2)
        if dl.expired():
            break


def flow_beside(inst: Instance, limit_s: float) -> dict:
    """:func:`flow_schedule` (chain graph) in ``limit_s`` seconds, for a second process
    (:class:`~hetkv_opt.methods.child.Child`): ``{"schedule", "flow" (its details),
    "runtime_s"}``."""
    t0 = time.perf_counter()
    info: dict = {}
    sched = flow_schedule(inst, time_limit_s=limit_s, graph="chain", info=info)
    info.pop("history_s", None)
    return {"schedule": sched, "flow": info, "runtime_s": time.perf_counter() - t0}


def solve_flow(inst: Instance, *, iterations: int = 12, time_limit_s: "float | Deadline | None" = 30.0,
               engine: str = "auto", graph: str = "chain", gaps=None, prices=None,
               bounds: dict | None = None, progress=None, stop_on_interrupt: bool = False):
    """:func:`flow_schedule` as a :class:`hetkv_opt.result.SolveResult` (method ``flow``,
    status ``feasible``); the bound is the aggregate bound plus any passed in ``bounds``
    (e.g. ``{"lp": ..., "lagrangian": ...}``)."""
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, "flow", status="infeasible", t_start=t_start, message=pre)
    all_bounds = basic_bounds(inst)
    all_bounds.update(bounds or {})
    info: dict = {}
    sched = flow_schedule(inst, iterations=iterations, time_limit_s=dl, engine=engine,
                          graph=graph, gaps=gaps, prices=prices, info=info, progress=progress,
                          stop_on_interrupt=stop_on_interrupt)
    info.pop("history_s", None)
    if sched is not None:
        return finish(inst, "flow", status="feasible", schedule=sched, bounds=all_bounds,
                      t_start=t_start, details={"flow": info})
    if info.get("too_large"):
        return finish(inst, "flow", status="bound_only", bounds=all_bounds, t_start=t_start,
                      details={"flow": info}, message=info["too_large"])
    # a heuristic that finds nothing is not a time limit: say what it is, keep the bounds
    limited = info.get("interrupted") or dl.expired()
    return finish(inst, "flow", status="time_limit_no_solution" if limited else "bound_only",
                  bounds=all_bounds, t_start=t_start, details={"flow": info},
                  message="the flow heuristic found no feasible schedule (its repair only "
                          "moves whole stretches between the two tiers); try auto or milp")
