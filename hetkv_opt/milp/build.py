"""The time-expanded MILP of docs/model.md, built from numpy arrays.

Variables (all scaled: times in units of ``t0`` seconds, see :class:`MilpModel`):

- ``x[i,e,k]`` binary, item i is in tier k at epoch e, for k < K-1; tier K-1 is implied
  (``1 - sum_k x``), which halves the binaries of the two-tier case.  Inclusive mode:
  ``x[i,e]`` = item i has a tier-0 copy at epoch e.
- ``in[i,e,k]`` in [0, 1], item i is copied into tier k for epoch e (the copy runs during
  e-1).  ``out[i,e,k]`` likewise for copies out of k; with two tiers a copy out of one
  tier is a copy into the other, so ``out[.,.,k]`` is ``in[.,.,1-k]``.
- ``tau[e]`` >= c_e, the time of epoch e;  ``h[e]`` (inclusive only) the bytes of epoch e
  read from tier-0 copies.

Rows: one family per block below, each built with vectorised numpy.  Names are stable
(``x[i,e,k]``, ``cap[k,e]``, ...) and only generated when asked for (export).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule, residency_matrix
from hetkv_opt.model.terms import aggregate_bound_s, rounding_cut

INF = math.inf


@dataclass
class _Block:
    """A family of rows: COO entries (local row, col, value) and row bounds."""

    name: str
    rows: list = field(default_factory=list)
    cols: list = field(default_factory=list)
    vals: list = field(default_factory=list)
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    labels: object = None  # callable() -> list[str] of row names
    offset: int = 0

    def add(self, r, c, v):
        r = np.asarray(r, np.int64).ravel()
        c = np.asarray(c, np.int64).ravel()
        v = np.broadcast_to(np.asarray(v, float), r.shape).ravel()
        self.rows.append(r)
        self.cols.append(c)
        self.vals.append(v)


class _Columns:
    """Allocates column ranges; keeps bounds, costs, integrality and names per group."""

    def __init__(self):
        self.n = 0
        self.lower, self.upper, self.cost, self.integer, self.names = [], [], [], [], []

    def add(self, count: int, lower, upper, *, integer: bool = False, cost: float = 0.0,
            names=None) -> int:
        off = self.n
        self.n += count
        if count == 0:
            return off
        self.lower.append(np.broadcast_to(np.asarray(lower, float), (count,)).copy())
        self.upper.append(np.broadcast_to(np.asarray(upper, float), (count,)).copy())
        self.cost.append(np.full(count, cost))
        self.integer.append(np.full(count, 1 if integer else 0, np.uint8))
        self.names.append(names or (lambda: []))
        return off

    def arrays(self):
        cat = (lambda xs, dt=float: np.concatenate(xs) if xs else np.zeros(0, dt))
        return cat(self.lower), cat(self.upper), cat(self.cost), cat(self.integer, np.uint8)


@dataclass
class MilpModel:
    """A built model: CSC matrix, bounds, integrality, and the maps back to the instance.

    Attributes
    ----------
    t0_s : float
        Time unit: the objective is ``T / t0_s``.
    num_col, num_row : int
    col_cost, col_lower, col_upper : ndarray, shape (num_col,)
    row_lower, row_upper : ndarray, shape (num_row,)
    a_start, a_index, a_value : CSC arrays of the constraint matrix
    integrality : ndarray of uint8 (1 = integer)
    """

    instance: Instance
    t0_s: float
    num_col: int
    num_row: int
    col_cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    integrality: np.ndarray
    free_items: np.ndarray        # items with variables
    pos_offset: np.ndarray        # first item-epoch position of each free item
    nx: int                       # x columns per position
    x_off: int
    in_off: int
    out_off: int
    tau_off: int
    h_off: int
    move_pos: np.ndarray          # positions that can be a move (epoch > birth)
    num_moves_k: int              # in-columns per move position
    has_out: bool
    defined_cols: np.ndarray      # aggregate columns defined by an equality row ...
    defining_rows: np.ndarray     # ... (sum of terms) - column = 0
    byte_unit: float = 1.0        # bytes per unit in aggregate columns
    col_names_fn: object = None
    row_names_fn: object = None
    block_names: list = field(default_factory=list)

    @property
    def num_nz(self) -> int:
        return int(self.a_index.size)

    def col_names(self) -> list[str]:
        return self.col_names_fn()

    def row_names(self) -> list[str]:
        return self.row_names_fn()

    def row_activity(self, v: np.ndarray) -> np.ndarray:
        """A @ v for a column vector."""
        col_of_nz = np.repeat(np.arange(self.num_col), np.diff(self.a_start))
        return np.bincount(self.a_index, weights=self.a_value * v[col_of_nz], minlength=self.num_row)

    # ----------------------------------------------------------------- solutions
    def vector_from_schedule(self, schedule: Schedule, evaluation) -> np.ndarray:
        """A full column vector (scaled) for a schedule, e.g. for a warm start."""
        inst = self.instance
        rho = residency_matrix(inst, schedule).astype(np.int64)
        v = np.zeros(self.num_col)
        pos_item, pos_epoch = _positions(inst, self.free_items, self.pos_offset)
        tier = rho[pos_item, pos_epoch]
        P = tier.size
        if inst.mode == "inclusive":
            v[self.x_off + np.arange(P)] = (tier == 0)
        else:
            for k in range(self.nx):
                v[self.x_off + np.arange(P) * self.nx + k] = (tier == k)
        mp = self.move_pos
        prev, cur = tier[mp - 1], tier[mp]
        moved = prev != cur
        for k in range(self.num_moves_k):
            v[self.in_off + np.arange(mp.size) * self.num_moves_k + k] = moved & (cur == k)
            if self.has_out:
                v[self.out_off + np.arange(mp.size) * self.num_moves_k + k] = moved & (prev == k)
        E = inst.num_epochs
        v[self.tau_off:self.tau_off + E] = evaluation.epoch_time_s / self.t0_s
        if inst.mode == "inclusive":
            v[self.h_off:self.h_off + E] = evaluation.read_bytes[0] / self.byte_unit
        # aggregates: the activity of their defining rows (which do not involve them)
        act = self.row_activity(v)
        v[self.defined_cols] = act[self.defining_rows]
        return v

    def with_residency_fixed(self, items: np.ndarray, epoch: int, tiers: np.ndarray) -> "MilpModel":
        """The same model with items ``items`` held in tiers ``tiers`` at ``epoch`` (column
        bounds only; the caller makes sure every item is free and alive at ``epoch``)."""
        inst = self.instance
        where = np.full(inst.num_items, -1, np.int64)
        where[self.free_items] = np.arange(self.free_items.size)
        items = np.asarray(items, np.int64)
        tiers = np.asarray(tiers, np.int64)
        j = where[items]
        if np.any(j < 0) or np.any(inst.birth[items] > epoch) or np.any(inst.death[items] <= epoch):
            raise ValueError("with_residency_fixed: every item must be free and alive then")
        pos = self.pos_offset[j] + (epoch - inst.birth[items])
        lo, hi = self.col_lower.copy(), self.col_upper.copy()
        if inst.mode == "inclusive":
            cols = self.x_off + pos
            lo[cols] = hi[cols] = (tiers == 0).astype(float)
        else:
            for k in range(self.nx):
                cols = self.x_off + pos * self.nx + k
                lo[cols] = hi[cols] = (tiers == k).astype(float)
        return dataclasses.replace(self, col_lower=lo, col_upper=hi)

    def residency_from_vector(self, v: np.ndarray) -> np.ndarray:
        """Dense residency (N, E) from a solution vector (x rounded at 0.5)."""
        inst = self.instance
        N, E = inst.num_items, inst.num_epochs
        rho = np.zeros((N, E), np.int8)
        pinned = inst.pinned_tier >= 0
        rho[pinned, :] = inst.pinned_tier[pinned, None]
        pos_item, pos_epoch = _positions(inst, self.free_items, self.pos_offset)
        P = pos_item.size
        if inst.mode == "inclusive":
            x = v[self.x_off:self.x_off + P]
            rho[pos_item, pos_epoch] = np.where(x > 0.5, 0, 1)
        elif self.nx == 0:
            rho[pos_item, pos_epoch] = 0
        else:
            x = v[self.x_off:self.x_off + P * self.nx].reshape(P, self.nx)
            full = np.concatenate([x, 1.0 - x.sum(axis=1, keepdims=True)], axis=1)
            rho[pos_item, pos_epoch] = np.argmax(full > 0.5, axis=1)
        return rho


def _positions(inst: Instance, free_items: np.ndarray, pos_offset: np.ndarray):
    """(item, epoch) of every position, in position order."""
    life = (inst.death - inst.birth)[free_items]
    P = int(life.sum())
    pos_item = np.repeat(free_items, life)
    start = np.repeat(pos_offset[:-1], life)
    pos_epoch = inst.birth[pos_item] + (np.arange(P) - start)
    return pos_item, pos_epoch


def time_unit_s(inst: Instance) -> float:
    """A time unit that makes per-epoch times O(1) in the model (HiGHS's tolerances are
    absolute; with times in seconds, ~1e-6, they would be meaningless)."""
    agg = aggregate_bound_s(inst)
    if agg > 0:
        return agg / inst.num_epochs
    total = float(inst.write_bytes.sum()) + float(inst.size_bytes.sum())
    bw = max(t.bandwidth_Bps for t in inst.tiers)
    return max(total / bw / inst.num_epochs, 1e-12)


def build_model(inst: Instance, *, rounding_cuts: bool = True, count_vars: bool = True) -> MilpModel:
    """Build the time-expanded MILP of an instance.

    Parameters
    ----------
    inst : Instance
    rounding_cuts : bool
        Add one valid inequality per epoch that lifts the LP relaxation to the best time
        achievable with a *whole* number of read units in tier 0 (exclusive mode only).
    count_vars : bool
        Add integer columns counting the copies into each tier and the reads served by
        tier 0 per epoch (branching on them closes the gap much faster; useless for LPs).

    Returns
    -------
    MilpModel

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> m = build_model(tiny_instance())
    >>> m.num_col > 0 and m.num_row > 0
    True
    """
    K, E, N = inst.num_tiers, inst.num_epochs, inst.num_items
    inclusive = inst.mode == "inclusive"
    t0 = time_unit_s(inst)
    size = inst.size_bytes.astype(float)
    rb = inst.read_bytes.astype(float)
    wb = inst.write_bytes.astype(float)
    R_tot = inst.reads_per_epoch_bytes()
    W_tot = np.bincount(inst.write_epoch, weights=wb, minlength=E)
    # bytes are counted in units of u inside aggregate columns (keeps coefficients O(1))
    u = float(max(R_tot.max(initial=0.0), size.max(initial=1.0), 1.0))

    # ---------------------------------------------------------------- positions
    free = np.flatnonzero(inst.pinned_tier < 0)
    life = (inst.death - inst.birth)[free]
    pos_offset = np.concatenate([[0], np.cumsum(life)]).astype(np.int64)
    P = int(pos_offset[-1])
    pos_of_item = np.full(N, -1, np.int64)
    pos_of_item[free] = pos_offset[:-1]
    pos_item, pos_epoch = _positions(inst, free, pos_offset)
    nx = 1 if inclusive else K - 1               # x columns per position
    nmk = 1 if inclusive else (K if K >= 2 else 0)   # in-columns per move position
    has_out = (not inclusive) and K >= 3
    move_pos = np.flatnonzero(pos_epoch > inst.birth[pos_item])
    Q = move_pos.size
    qi = np.arange(Q)
    m_item = pos_item[move_pos]
    m_e = pos_epoch[move_pos] - 1                # copies for epoch e run during e-1
    m_s = size[m_item]

    # per-epoch constants from pinned items
    pinned = inst.pinned_tier >= 0
    r_pin, w_pin = pinned[inst.read_item], pinned[inst.write_item]

    def by_tier_epoch(mask, tiers, epochs, weights):
        return np.bincount(tiers[mask] * E + epochs[mask], weights=weights[mask],
                           minlength=K * E).reshape(K, E)

    R_pin = by_tier_epoch(r_pin, inst.pinned_tier[inst.read_item], inst.read_epoch, rb)
    W_pin = by_tier_epoch(w_pin, inst.pinned_tier[inst.write_item], inst.write_epoch, wb)
    pin_items = np.flatnonzero(pinned)
    life_pin = np.zeros((K, E + 1))
    np.add.at(life_pin, (inst.pinned_tier[pin_items], inst.birth[pin_items]), size[pin_items])
    np.add.at(life_pin, (inst.pinned_tier[pin_items], inst.death[pin_items]), -size[pin_items])
    occ_pin = np.cumsum(life_pin, axis=1)[:, :E]
    alive_free = np.zeros(E + 1)
    np.add.at(alive_free, inst.birth[free], size[free])
    np.add.at(alive_free, inst.death[free], -size[free])
    S_free = np.cumsum(alive_free)[:E]           # bytes of free items alive at e

    r_free, w_free = ~r_pin, ~w_pin
    r_e, r_b = inst.read_epoch[r_free], rb[r_free]
    r_pos = pos_of_item[inst.read_item[r_free]] + (r_e - inst.birth[inst.read_item[r_free]])
    w_e, w_b = inst.write_epoch[w_free], wb[w_free]
    w_pos = pos_of_item[inst.write_item[w_free]] + (w_e - inst.birth[inst.write_item[w_free]])
    R_free = np.bincount(r_e, weights=r_b, minlength=E)
    W_free = np.bincount(w_e, weights=w_b, minlength=E)
    M_max = np.bincount(m_e, weights=m_s, minlength=E)   # all possible copy bytes per epoch

    # ---------------------------------------------------------------- columns
    cols = _Columns()
    pi_l, pe_l = pos_item.tolist, pos_epoch.tolist
    if inclusive:
        x_off = cols.add(P, 0, 1, integer=True,
                         names=lambda: [f"x[{i},{e}]" for i, e in zip(pi_l(), pe_l())])
    else:
        x_off = cols.add(P * nx, 0, 1, integer=True, names=lambda: [
            f"x[{i},{e},{k}]" for i, e in zip(pi_l(), pe_l()) for k in range(nx)])
    mi_l, me_l = (lambda: m_item.tolist()), (lambda: (m_e + 1).tolist())
    in_off = cols.add(Q * nmk, 0, 1, names=lambda: [
        f"in[{i},{e},{k}]" for i, e in zip(mi_l(), me_l()) for k in range(nmk)])
    out_off = cols.add(Q * nmk if has_out else 0, 0, 1, names=lambda: [
        f"out[{i},{e},{k}]" for i, e in zip(mi_l(), me_l()) for k in range(nmk)])
    # tau's upper bound: no optimal schedule exceeds it (keeps weak duality finite)
    slowest = min(min(t.bandwidth_Bps, t.link_read_Bps or INF, t.link_write_Bps or INF)
                  for t in inst.tiers)
    tau_hi = np.maximum(inst.min_time_s, (R_tot + W_tot + 2.0 * M_max) / slowest) / t0
    tau_off = cols.add(E, inst.min_time_s / t0, tau_hi * (1 + 1e-9) + 1e-9, cost=1.0,
                       names=lambda: [f"tau[{e}]" for e in range(E)])
    h_off = cols.add(E if inclusive else 0, 0, R_tot / u, names=lambda: [f"h[{e}]" for e in range(E)])
    n_rd = 0 if inclusive else nx
    rd_off = cols.add(n_rd * E, 0, np.tile(R_free / u, n_rd),
                      names=lambda: [f"rd[{k},{e}]" for k in range(n_rd) for e in range(E)])
    n_cp = nmk if Q else 0
    cin_off = cols.add(n_cp * E, 0, np.tile(M_max / u, n_cp),
                       names=lambda: [f"cin[{k},{e}]" for k in range(n_cp) for e in range(E)])
    cout_off = cols.add(n_cp * E if has_out else 0, 0, np.tile(M_max / u, n_cp),
                        names=lambda: [f"cout[{k},{e}]" for k in range(n_cp) for e in range(E)])
    n_cnt_in = n_cp if count_vars else 0
    n_cnt_read = 1 if (count_vars and not inclusive and K >= 2) else 0
    cnt_off = cols.add(E * (n_cnt_in + n_cnt_read), 0, float(max(N, 1)), integer=True,
                       names=lambda: [f"ncopy[{k},{e}]" for k in range(n_cnt_in) for e in range(E)]
                       + [f"nread0[{e}]" for _ in range(n_cnt_read) for e in range(E)])
    num_col = cols.n
    col_lower, col_upper, col_cost, integrality = cols.arrays()

    def xcol(p, k):
        return x_off + p * nx + k

    def incol(q, k):
        return in_off + q * nmk + k

    def rdcol(k, e):
        return rd_off + k * E + e

    def cincol(k, e):
        return cin_off + k * E + e

    def coutcol(k, e):
        if has_out:
            return cout_off + k * E + e
        return cincol(1 - k, e)     # two tiers: a copy out of k is a copy into the other

    # items that never fit a tier: x fixed to 0 there
    for k, t in enumerate(inst.tiers[:nx]):
        if t.capacity_bytes is not None:
            col_upper[xcol(np.flatnonzero(size[pos_item] > t.capacity_bytes), k)] = 0.0
    # initial tiers fix x at birth
    init = inst.initial_tier[free]
    has_init = init >= 0
    birth_pos = pos_offset[:-1][has_init]
    for k in range(nx):
        val = (init[has_init] == k).astype(float)
        col_lower[xcol(birth_pos, k)] = val
        col_upper[xcol(birth_pos, k)] = np.minimum(val, col_upper[xcol(birth_pos, k)])

    blocks: list[_Block] = []
    defined_cols, defining_rows = [], []
    row_count = [0]

    def new_block(name):
        b = _Block(name)
        b.offset = row_count[0]
        blocks.append(b)
        return b

    def close(b, lower, upper, labels):
        b.lower, b.upper, b.labels = np.asarray(lower, float), np.asarray(upper, float), labels
        row_count[0] += b.lower.size

    e_idx = np.arange(E)

    # -- moves: a copy into k at e, or out of k, whenever the residency changes
    if Q and nmk:
        b = new_block("move")
        p1, p0 = move_pos, move_pos - 1
        if inclusive:  # in >= x(e) - x(e-1); dropping a copy is free
            b.add(qi, incol(qi, 0), 1.0)
            b.add(qi, xcol(p1, 0), -1.0)
            b.add(qi, xcol(p0, 0), 1.0)
            close(b, np.zeros(Q), np.full(Q, INF), lambda: [
                f"promote[{i},{e}]" for i, e in zip(mi_l(), me_l())])
        elif not has_out:  # two tiers: in0 - in1 = x0(e) - x0(e-1)
            b.add(qi, incol(qi, 0), 1.0)
            b.add(qi, incol(qi, 1), -1.0)
            b.add(qi, xcol(p1, 0), -1.0)
            b.add(qi, xcol(p0, 0), 1.0)
            close(b, np.zeros(Q), np.zeros(Q), lambda: [
                f"move[{i},{e}]" for i, e in zip(mi_l(), me_l())])
        else:  # in_k - out_k = x_k(e) - x_k(e-1), with x_{K-1} = 1 - sum_j x_j
            for k in range(K):
                rows = k * Q + qi
                b.add(rows, incol(qi, k), 1.0)
                b.add(rows, out_off + qi * nmk + k, -1.0)
                for j in ([k] if k < K - 1 else range(nx)):
                    sign = 1.0 if k < K - 1 else -1.0
                    b.add(rows, xcol(p1, j), -sign)
                    b.add(rows, xcol(p0, j), sign)
            close(b, np.zeros(K * Q), np.zeros(K * Q), lambda: [
                f"move[{i},{e},{k}]" for k in range(K) for i, e in zip(mi_l(), me_l())])

    # -- one tier each (K >= 3): sum_{k<K-1} x_k <= 1
    if not inclusive and nx >= 2:
        b = new_block("one")
        for k in range(nx):
            b.add(np.arange(P), xcol(np.arange(P), k), 1.0)
        close(b, np.full(P, -INF), np.ones(P),
              lambda: [f"one[{i},{e}]" for i, e in zip(pi_l(), pe_l())])

    # -- capacity: bytes resident in k at e + bytes being copied into k during e <= cap_k
    cap_tiers = [k for k, t in enumerate(inst.tiers) if t.capacity_bytes is not None
                 and not (inclusive and k == 1)]
    if cap_tiers:
        b = new_block("cap")
        uppers = []
        for n, k in enumerate(cap_tiers):
            cap = float(inst.tiers[k].capacity_bytes)
            scale = 1.0 / max(cap, 1.0)
            rows = n * E + pos_epoch
            room = cap - occ_pin[k]
            if k < nx:
                b.add(rows, xcol(np.arange(P), k), size[pos_item] * scale)
            else:  # implied tier: its free items are S_free - sum_j (items in j)
                for j in range(nx):
                    b.add(rows, xcol(np.arange(P), j), -size[pos_item] * scale)
                room = room - S_free
            if Q and nmk:
                b.add(n * E + m_e, incol(qi, k), m_s * scale)
            if k < nx:
                # sizes are multiples of g, so a schedule with whole copies uses a multiple
                # of g bytes: round the room down (a Chvatal-Gomory cut on the row)
                room = _round_down_to_gcd(room, inst.size_bytes[free])
            uppers.append(room * scale)
        close(b, np.full(len(cap_tiers) * E, -INF), np.concatenate(uppers),
              lambda: [f"cap[{k},{e}]" for k in cap_tiers for e in range(E)])

    # -- aggregates: bytes read from tier k, bytes copied into / out of k, per epoch
    b = new_block("traffic")
    nrow = 0

    def define(epochs, cols_, coefs, agg_col0):
        """Rows: sum over entries of epoch e of coef * column - agg[e] = 0."""
        nonlocal nrow
        b.add(nrow + epochs, cols_, coefs)
        b.add(nrow + e_idx, agg_col0 + e_idx, -1.0)
        defined_cols.append(agg_col0 + e_idx)
        defining_rows.append(b.offset + nrow + e_idx)
        nrow += E

    for k in range(n_rd):                      # rd[k,e] = sum r x_k / u
        define(r_e, xcol(r_pos, k), r_b / u, rdcol(k, 0))
    for k in range(n_cp):                      # cin[k,e] = sum s in_k / u
        define(m_e, incol(qi, k), m_s / u, cincol(k, 0))
    for k in range(n_cp if has_out else 0):    # cout[k,e] = sum s out_k / u
        define(m_e, out_off + qi * nmk + k, m_s / u, coutcol(k, 0))
    for k in range(n_cnt_in):                  # whole numbers of copies
        define(m_e, incol(qi, k), 1.0, cnt_off + k * E)
    if n_cnt_read:                             # whole numbers of reads served by tier 0
        define(r_e, xcol(r_pos, 0), 1.0, cnt_off + n_cnt_in * E)
    traffic_names = ([f"rddef[{k},{e}]" for k in range(n_rd) for e in range(E)]
                     + [f"cindef[{k},{e}]" for k in range(n_cp) for e in range(E)]
                     + [f"coutdef[{k},{e}]" for k in range(n_cp if has_out else 0) for e in range(E)]
                     + [f"ncopydef[{k},{e}]" for k in range(n_cnt_in) for e in range(E)]
                     + [f"nread0def[{e}]" for _ in range(n_cnt_read) for e in range(E)])
    close(b, np.zeros(nrow), np.zeros(nrow), lambda: traffic_names)

    # -- inclusive: reads from tier-0 copies are at most the reads of items with a copy
    if inclusive:
        b = new_block("split")
        b.add(e_idx, h_off + e_idx, u)
        b.add(r_e, xcol(r_pos, 0), -r_b)
        close(b, np.full(E, -INF), R_pin[0].copy(), lambda: [f"split[{e}]" for e in range(E)])

    # -- time: tau_e >= every device and link term of docs/model.md section 4
    b = new_block("time")
    lower, names = [], []
    nrow = 0

    def term(rate_Bps, k, read, write, cin, cout, label):
        """Row: tau_e - (selected traffic of tier k) / (t0 rate) >= constants / (t0 rate)."""
        nonlocal nrow
        c = 1.0 / (t0 * rate_Bps)
        rows = nrow + e_idx
        b.add(rows, tau_off + e_idx, 1.0)
        const = np.zeros(E)
        if read:
            if inclusive:
                const += R_tot if k == 1 else 0.0
                b.add(rows, h_off + e_idx, (-c if k == 0 else c) * u)
            else:
                const += R_pin[k]
                if k < n_rd:
                    b.add(rows, rdcol(k, e_idx), -c * u)
                else:                       # implied tier: every free read not served above
                    const += R_free
                    for j in range(n_rd):
                        b.add(rows, rdcol(j, e_idx), c * u)
        if write:
            if inclusive and k == 1:
                const += W_tot                  # tier 1 takes every write
            elif inclusive or k < nx:
                const += W_pin[k]
                b.add(nrow + w_e, xcol(w_pos, k), -c * w_b)
            else:
                const += W_pin[k] + W_free
                for j in range(nx):
                    b.add(nrow + w_e, xcol(w_pos, j), c * w_b)
        if n_cp:
            if inclusive:                       # promotions: into 0, out of 1
                if (cin and k == 0) or (cout and k == 1):
                    b.add(rows, cincol(0, e_idx), -c * u)
            else:
                if cin:
                    b.add(rows, cincol(k, e_idx), -c * u)
                if cout:
                    b.add(rows, coutcol(k, e_idx), -c * u)
        lower.append(const * c)
        names.append(label)
        nrow += E

    for k, t in enumerate(inst.tiers):
        term(t.bandwidth_Bps, k, True, True, True, True, f"dev[{k},")
        if t.link_read_Bps is not None:
            term(t.link_read_Bps, k, True, False, False, True, f"lread[{k},")
        if t.link_write_Bps is not None:
            term(t.link_write_Bps, k, False, True, True, False, f"lwrite[{k},")
    cut_epochs: list = []
    if rounding_cuts and not inclusive and K >= 2 and r_b.size:
        cut = rounding_cut(inst)
        if cut.has.any():
            # tau >= A + (step / g) X, X = bytes of free reads in tier 0 (t0 units here)
            ce = np.flatnonzero(cut.has)
            slope_scaled = cut.step_s[ce] / (cut.unit_bytes[ce] * t0)
            rhs = cut.A_s[ce] / t0
            b.add(nrow + np.arange(ce.size), tau_off + ce, 1.0)
            b.add(nrow + np.arange(ce.size), rdcol(0, ce), -slope_scaled * u)
            lower.append(rhs)
            cut_epochs = ce.tolist()
            nrow += ce.size
    close(b, np.concatenate(lower), np.full(nrow, INF),
          lambda: [f"{nm}{e}]" for nm in names for e in range(E)] + [f"cut[{e}]" for e in cut_epochs])

    # ---------------------------------------------------------------- assemble CSC
    rows_all, cols_all, vals_all = [], [], []
    for blk in blocks:
        for r, c, v in zip(blk.rows, blk.cols, blk.vals):
            rows_all.append(r + blk.offset)
            cols_all.append(c)
            vals_all.append(v)
    num_row = row_count[0]
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
    a_start, a_index, a_value = _coo_to_csc(cat(rows_all, np.int64), cat(cols_all, np.int64),
                                            cat(vals_all, float), num_row, num_col)

    def col_names():
        out = []
        for fn in cols.names:
            out += fn()
        return out

    def row_names():
        out = []
        for blk in blocks:
            out += blk.labels()
        return out

    model = MilpModel(
        instance=inst, t0_s=t0, num_col=num_col, num_row=num_row, col_cost=col_cost,
        col_lower=col_lower, col_upper=col_upper,
        row_lower=cat([blk.lower for blk in blocks], float),
        row_upper=cat([blk.upper for blk in blocks], float), a_start=a_start, a_index=a_index,
        a_value=a_value, integrality=integrality, free_items=free, pos_offset=pos_offset, nx=nx,
        x_off=x_off, in_off=in_off, out_off=out_off, tau_off=tau_off, h_off=h_off,
        move_pos=move_pos, num_moves_k=nmk, has_out=has_out,
        defined_cols=cat(defined_cols, np.int64), defining_rows=cat(defining_rows, np.int64),
        byte_unit=u, col_names_fn=col_names, row_names_fn=row_names,
        block_names=[blk.name for blk in blocks])
    return model


def _round_down_to_gcd(room: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Round capacity room down to a multiple of the gcd of the item sizes."""
    if sizes.size == 0:
        return room
    g = float(np.gcd.reduce(sizes.astype(np.int64)))
    return np.floor(room / g + 1e-9) * g


def _coo_to_csc(r, c, v, num_row: int, num_col: int):
    """Sum duplicates and convert COO triplets to CSC arrays (no per-nonzero Python loop)."""
    keep = v != 0
    r, c, v = r[keep], c[keep], v[keep]
    key = c.astype(np.int64) * max(num_row, 1) + r
    order = np.argsort(key, kind="stable")
    key, v = key[order], v[order]
    if key.size:
        uniq, first = np.unique(key, return_index=True)
        v = np.add.reduceat(v, first)
        key = uniq
        nz = v != 0
        key, v = key[nz], v[nz]
    cols = key // max(num_row, 1)
    rows = key - cols * max(num_row, 1)
    start = np.zeros(num_col + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=num_col), out=start[1:])
    return start, rows.astype(np.int32), v


def model_details(model: MilpModel, build_s: float) -> dict:
    """The ``details["model"]`` record of a built model: its size and the time unit."""
    return {"model": {"columns": model.num_col, "rows": model.num_row, "nonzeros": model.num_nz,
                      "integer_columns": int(model.integrality.sum()), "build_s": round(build_s, 6),
                      "time_unit_s": model.t0_s}}
