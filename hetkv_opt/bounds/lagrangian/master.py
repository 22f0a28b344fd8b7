"""The masters that maximise the Lagrangian bound over the prices.

- :func:`bundle_phase`: a proximal bundle method on the concave dual (aggregated cutting
  planes, a diagonal metric, serious and null steps; memory O(E) per cut, any size);
- :func:`dw_phase`: disaggregated cutting planes (Dantzig-Wolfe column generation,
  :class:`DWMaster` solved by HiGHS), which reaches the LP relaxation's value; its master
  grows with items x paths.

Both work on :class:`Space` (the prices as one scaled vector, projected onto the price
set) and call the oracle through :class:`Tracker` (counts calls, keeps the best prices,
reports progress, watches the clock).  :func:`initial_prices` is the aggregate-bandwidth
balance they start from.

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.bounds.lagrangian.problem import prepare
>>> lam, mu = initial_prices(prepare(tiny_instance()))
>>> lam.shape, mu.shape, bool(lam.sum(axis=0).max() <= 1.0)
((5, 3), (1, 3), True)
"""

from __future__ import annotations

import math
import time

import numpy as np

from hetkv_opt.bounds.lagrangian.oracle import evaluate as dense_evaluate
from hetkv_opt.bounds.lagrangian.problem import Eval, Problem
from hetkv_opt.milp.highs import _import_highspy, new_highs
from hetkv_opt.model.terms import time_terms

#: iterations of the bundle master's solver at first; multiplied by ITERS_GROW whenever the
#: model sees nothing better near the center, up to the phase's ``master_iters`` (1.5 rather
#: than 2: on drift 1024x256 seeds 0-2 all reach 99.5 % of the LP value within 0.9 s, against
#: 2.1 s for seed 2 with doubling; after 15 s the two are within 0.04 %)
MASTER_ITERS_START = 100
ITERS_GROW = 1.5


# =============================================================================== projection

def project_simplex_rows(v: np.ndarray, allowed: np.ndarray,
                          blocked: np.ndarray | None = None) -> np.ndarray:
    """Euclidean projection of each column of v (J, E) onto {x >= 0, sum x <= 1}, with the
    entries where ``allowed`` is False fixed to 0.  ``blocked`` (optional, for speed: this
    runs hundreds of times per master solve) is ``np.where(allowed, 0, -1e30)``."""
    if blocked is None:
        blocked = np.where(allowed, 0.0, -1e30)
    w = v + blocked                          # a blocked entry is never positive
    x = np.maximum(w, 0.0)
    s = x.sum(axis=0)
    over = s > 1.0
    if not over.any():
        return x                             # every column sum is <= 1 already
    w = w[:, over]
    u = -np.sort(-w, axis=0)
    css = np.cumsum(u, axis=0) - 1.0
    ind = np.arange(1, u.shape[0] + 1)[:, None]
    cond = (u - css / ind) > 0
    rho = cond.shape[0] - 1 - np.argmax(cond[::-1], axis=0)
    theta = css[rho, np.arange(u.shape[1])] / (rho + 1)
    x[:, over] = clip_sums(np.maximum(w - theta[None, :], 0.0))
    return x


def clip_sums(x: np.ndarray) -> np.ndarray:
    """Make every column sum <= 1 in floating point (rescale the rare column over it)."""
    x = np.maximum(x, 0.0)
    s = x.sum(axis=0)
    bad = s > 1.0
    if bad.any():
        x[:, bad] = x[:, bad] / s[bad] * (1.0 - 4e-16)
        s = x.sum(axis=0)
        still = s > 1.0
        if still.any():
            x[:, still] *= (1.0 - 1e-12)
    return x


# =============================================================================== optimiser

def _allowed(p: Problem) -> np.ndarray:
    allowed = np.ones((p.J, p.E), bool)
    if p.jc is not None:
        allowed[p.jc] = p.cut_has
    return allowed


def initial_prices(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The aggregate-bandwidth balance: per epoch, weight tier 0's device row and every
    other tier's tightest read row so that a byte read costs the same wherever it is
    (the value is then the aggregate-bandwidth bound); capacity free."""
    lam = np.zeros((p.J, p.E))
    terms = time_terms(p.inst)
    weights = []
    for k, t in enumerate(p.inst.tiers):
        name = (f"link_read[{k}]" if t.link_read_Bps is not None and t.link_read_Bps < t.bandwidth_Bps
                else f"device[{k}]")
        weights.append(([n for n, tt in enumerate(terms) if tt[0] == name][0], t.read_rate_Bps()))
    tot = sum(w for _, w in weights)
    for j, w in weights:
        lam[j] = w / tot
    return clip_sums(lam), np.zeros((len(p.cap_tiers), p.E))


def _proj_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of a vector onto the unit simplex."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    ind = np.arange(1, v.size + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    theta = css[cond][-1] / rho
    return np.maximum(v - theta, 0.0)


class Space:
    """Prices as one vector ``y = (lambda.ravel(), mu.ravel())``, scaled so that a unit step
    in a capacity price moves L about as much as one in a time price: each priced tier by
    its own room (one scale for all would let a roomy tier, e.g. 480 GB of LPDDR, freeze
    the HBM price at zero)."""

    def __init__(self, p: Problem):
        self.p = p
        self.J, self.E, self.C = p.J, p.E, len(p.cap_tiers)
        self.nl = self.J * self.E
        self.allowed = _allowed(p)
        self.blocked = np.where(self.allowed, 0.0, -1e30)
        self.scale = np.ones(self.nl + self.C * self.E)
        if self.C:
            per_tier = 1.0 / np.maximum(np.abs(p.rooms).max(axis=1), 1.0)
            self.scale[self.nl:] = np.repeat(per_tier, self.E)

    def split(self, y):
        return y[:self.nl].reshape(self.J, self.E), y[self.nl:].reshape(self.C, self.E)

    def join(self, lam, mu):
        return np.concatenate([np.asarray(lam, float).ravel(), np.asarray(mu, float).ravel()])

    def proj(self, y):
        lam = project_simplex_rows(y[:self.nl].reshape(self.J, self.E), self.allowed,
                                    self.blocked)
        return np.concatenate([lam.ravel(), np.maximum(y[self.nl:], 0.0)])


class Tracker:
    """Counts oracle calls, keeps the best prices, reports progress, watches the clock."""

    def __init__(self, p, space, t_start, time_limit_s, iterations, progress):
        self.p, self.space = p, space
        self.t_start, self.time_limit_s, self.iterations = t_start, time_limit_s, iterations
        self.progress = progress
        self.calls = 0
        self.best_v, self.best_y = -math.inf, None
        self.upper = None          # the restricted master's value: an upper bound on max L
        self.phase = "bundle"
        self.target = None         # scaled; stop once the bound is this close
        self.events = None         # an EventOracle for the bundle phase (no paths), or None

    def out_of_budget(self) -> bool:
        if self.calls >= self.iterations:
            return True
        if self.target is not None and self.best_v >= self.target:
            return True
        if self.time_limit_s is None:
            return False
        elapsed = time.perf_counter() - self.t_start
        # stop before a call that would end past the limit: one more step (oracle and
        # master) plus the final value-only evaluation, at the pace so far
        per_call = elapsed / self.calls if self.calls else 0.0
        return elapsed + 2.0 * per_call >= self.time_limit_s

    def evaluate(self, y) -> Eval:
        if self.events is not None and self.phase == "bundle":
            ev = self.events.evaluate(*self.space.split(y))     # states: None
        else:
            ev = dense_evaluate(self.p, *self.space.split(y))
        self.calls += 1
        if ev.value > self.best_v:
            self.best_v, self.best_y = ev.value, y.copy()
        if self.progress:
            t0 = self.p.t0
            self.progress({"phase": self.phase, "iteration": self.calls,
                           "elapsed_s": time.perf_counter() - self.t_start,
                           "bound_s": self.best_v * t0,
                           "upper_s": None if self.upper is None else self.upper * t0})
        return ev


def _solve_master(zc: np.ndarray, G: np.ndarray, off: np.ndarray, t: float, proj,
                  iters: int, alpha0: np.ndarray | None):
    """max_z min_b (off_b + G_b z) - ||z - zc||^2 / (2 t) over the price set, through its
    dual over the bundle weights alpha (a simplex): ``z(alpha) = proj(zc + t G' alpha)``;
    an accelerated projected gradient on alpha with adaptive restart, stopped by the
    duality gap.  Any alpha gives a candidate z: accuracy only affects the step, never
    the bound."""
    m = G.shape[0]
    alpha = np.full(m, 1.0 / m) if alpha0 is None or alpha0.size != m else alpha0.copy()
    Lc = t * float(np.sum(G * G)) + 1e-300
    z_a, theta = alpha.copy(), 1.0
    best_z, best_p = None, -math.inf
    phi_prev = math.inf
    for it in range(iters):
        z = proj(zc + t * (G.T @ z_a))
        Gz = G @ z
        a_new = _proj_simplex(z_a - (off + Gz) / Lc)
        th_new = 0.5 * (1 + math.sqrt(1 + 4 * theta * theta))
        z_a = a_new + ((theta - 1) / th_new) * (a_new - alpha)
        alpha, theta = a_new, th_new
        if it % 5 == 4 or it == iters - 1:
            z = proj(zc + t * (G.T @ alpha))
            Gz = G @ z
            prox = float(np.sum((z - zc) ** 2)) / (2 * t)
            phi = float(alpha @ (off + Gz)) - prox          # dual value (>= primal optimum)
            prim = float(np.min(off + Gz)) - prox           # primal value of z
            if prim > best_p:
                best_p, best_z = prim, z
            if phi > phi_prev:                               # restart the momentum
                z_a, theta = alpha.copy(), 1.0
            phi_prev = phi
            if phi - best_p <= 1e-4 * max(abs(phi - float(np.min(off + G @ zc))), 1e-12):
                break
    return best_z, alpha, float(np.min(off + G @ best_z))


def bundle_phase(tr: Tracker, y0: np.ndarray, max_calls: int, tol: float,
                  paths: list | None = None, max_bundle: int = 30,
                  master_iters: int = 600) -> np.ndarray:
    """Proximal bundle method on the concave dual (aggregated cutting planes, a diagonal
    metric, serious/null steps); returns the last stability center."""
    space = tr.space
    sc = space.scale

    def proj_z(z):
        return space.proj(z * sc) / sc

    y = space.proj(y0)
    ev = tr.evaluate(y)
    if paths is not None:
        paths.append(ev.states)
    g = space.join(ev.g_lam, ev.g_mu)
    Gs, offs = [g * sc], [ev.value - float(g @ y)]
    center, center_v = y, ev.value
    gg = float(np.sum((g * sc) ** 2))
    t = max(0.5 * max(abs(ev.value), 1.0) / gg, 1e-12) if gg > 0 else 1.0
    alpha = None
    start = tr.calls
    widen = resets = 0
    center_cut = (Gs[0], offs[0])
    cur_iters = MASTER_ITERS_START
    while tr.calls - start < max_calls and not tr.out_of_budget():
        # an inexact master is enough far from the optimum (any z is a valid candidate);
        # it is solved harder each time the model sees nothing better near the center
        iters = min(master_iters, cur_iters)
        z, alpha, model = _solve_master(center / sc, np.asarray(Gs), np.asarray(offs), t,
                                        proj_z, iters, alpha)
        y_new = z * sc
        pred = model - center_v
        if pred <= tol * max(abs(center_v), 1e-12):
            # the model sees nothing better near the center: look further, then (the
            # master being approximate) restart the model from the center's own cut
            widen += 1
            cur_iters = int(cur_iters * ITERS_GROW)
            if widen <= 2:
                t *= 4.0
                continue
            resets += 1
            if resets > 3:
                break
            Gs, offs, alpha, widen = [center_cut[0]], [center_cut[1]], None, 0
            t = max(t / 64.0, 1e-12)
            continue
        widen = 0
        ev = tr.evaluate(y_new)
        if paths is not None:
            paths.append(ev.states)
        g = space.join(ev.g_lam, ev.g_mu)
        Gs.append(g * sc)
        offs.append(ev.value - float(g @ y_new))
        alpha = np.concatenate([alpha, [0.0]]) if alpha is not None else None
        if ev.value - center_v >= 0.1 * pred:          # serious step
            if ev.value - center_v >= 0.5 * pred:
                t *= 2.0
            center, center_v = y_new, ev.value
            center_cut = (Gs[-1], offs[-1])
            resets = 0
        else:                                          # null step
            t *= 0.7
        if len(Gs) > max_bundle and alpha is not None:   # drop the least used cuts
            keep = np.sort(np.union1d(np.argsort(-alpha)[:max_bundle - 8], [len(Gs) - 1]))
            Gs = [Gs[k] for k in keep]
            offs = [offs[k] for k in keep]
            alpha = alpha[keep]
            alpha = alpha / alpha.sum() if alpha.sum() > 0 else None
        elif len(Gs) > max_bundle:
            Gs, offs = Gs[-(max_bundle - 8):], offs[-(max_bundle - 8):]
    return center


class DWMaster:
    """The restricted Dantzig-Wolfe master (primal of the disaggregated cutting-plane
    model): per item a convex combination of the paths seen so far, the epoch times, and
    the coupling rows.  Its row duals are prices; HiGHS solves it (primal simplex, warm)."""

    def __init__(self, p: Problem):
        hs = _import_highspy()
        self.p = p
        self.h = h = new_highs()
        h.setOptionValue("simplex_scale_strategy", 0)
        h.setOptionValue("simplex_strategy", 4)         # primal: columns keep coming
        h.setOptionValue("threads", 1)
        inf = hs.kHighsInf
        E, J, C, Nf = p.E, p.J, len(p.cap_tiers), p.free.size
        self.E, self.J, self.C, self.Nf = E, J, C, Nf
        inc = p.inclusive
        self.r_cap = J * E
        self.r_split = J * E + C * E
        self.r_conv = self.r_split + (E if inc else 0)
        self.nrow = self.r_conv + Nf
        const = p.const.copy()
        rl = np.concatenate([const.ravel(), np.full(C * E, -inf),
                             np.full(E if inc else 0, -inf), np.ones(Nf)])
        ru = np.concatenate([np.full(J * E, inf), p.rooms.ravel(),
                             p.R0pin if inc else np.zeros(0), np.ones(Nf)])
        h.addRows(self.nrow, rl, ru, 0, np.zeros(self.nrow, np.int32), np.zeros(0, np.int32), np.zeros(0))
        allowed = _allowed(p)
        # tau_e >= c_e: a 1 in every time row of its epoch (rows of absent cuts: 0 too)
        rows, cols = np.nonzero(allowed.T)          # (e, j)
        idx = cols * E + rows
        self._add(np.ones(E), p.c, np.full(E, inf), rows, idx, np.ones(idx.size), E)
        if C:   # over-capacity slack at a high price keeps the master feasible
            big = 1e3 * max(float(p.tau_hi.max(initial=1.0)), 1.0)
            self._add(np.full(C * E, big), np.zeros(C * E), np.full(C * E, inf),
                      np.arange(C * E), self.r_cap + np.arange(C * E),
                      -np.full(C * E, max(float(np.max(np.abs(p.rooms))), 1.0)), C * E)
        if inc:  # h_e: bytes read from tier-0 copies
            e_idx = np.arange(E)
            coef = p.CR[:, 0] - p.CR[:, 1]
            jj, ee = np.nonzero(np.broadcast_to(coef[:, None] != 0, (J, E)))
            r = np.concatenate([jj * E + ee, self.r_split + e_idx])
            c = np.concatenate([ee, e_idx])
            v = np.concatenate([-coef[jj], np.ones(E)])
            self._add(np.zeros(E), np.zeros(E), p.Rtot.copy(), c, r, v, E)
        self.seen: set = set()
        self.num_paths = 0
        # the path columns, in the order added: their free item and states (for the
        # restricted master as a MIP, :mod:`hetkv_opt.methods.columns`)
        self.first_path_col = h.getNumCol()
        self.path_item: list[int] = []
        self.path_states: list[np.ndarray] = []
        self.optimal = False        # the last solve ended optimal
        self.converged = False      # dw_phase stopped at the LP's value (not at the clock)

    def _add(self, cost, lo, hi, col, row, val, n):
        col, row, val = np.asarray(col, np.int64), np.asarray(row, np.int64), np.asarray(val, float)
        key = col * self.nrow + row
        uk, inv = np.unique(key, return_inverse=True)
        val = np.bincount(inv, weights=val, minlength=uk.size)
        nz = val != 0
        uk, val = uk[nz], val[nz]
        col, row = uk // self.nrow, uk % self.nrow
        start = np.zeros(n, np.int64)
        start[1:] = np.cumsum(np.bincount(col, minlength=n))[:-1]
        self.h.addCols(n, np.asarray(cost, float), np.asarray(lo, float), np.asarray(hi, float),
                       int(val.size), start.astype(np.int32), row.astype(np.int32), val)

    def add_paths(self, states: np.ndarray) -> int:
        """Add every item's path from ``states`` (Nf, E) that the master does not have."""
        p = self.p
        new = []
        for i in range(self.Nf):
            key = (i, states[i].tobytes())
            if key not in self.seen:
                self.seen.add(key)
                new.append(i)
        if not new:
            return 0
        items = np.asarray(new, np.int64)
        self.path_item.extend(new)
        self.path_states.extend(states[i].copy() for i in new)
        r, c, v = _path_entries(p, states, items, self.r_cap, self.r_split, self.r_conv)
        self._add(np.zeros(items.size), np.zeros(items.size), np.full(items.size, np.inf),
                  c, r, v, items.size)
        self.num_paths += items.size
        return items.size

    def solve(self):
        """Solve; return (objective, lambda, mu) or None when HiGHS gives no duals."""
        self.h.run()
        info = self.h.getInfo()
        sol = self.h.getSolution()
        self.optimal = self.h.getModelStatus() == _import_highspy().HighsModelStatus.kOptimal
        if not sol.dual_valid:
            return None
        rd = np.asarray(sol.row_dual)
        J, E, C = self.J, self.E, self.C
        lam = np.maximum(rd[:J * E].reshape(J, E), 0.0)
        mu = np.maximum(-rd[self.r_cap:self.r_cap + C * E].reshape(C, E), 0.0)
        return float(info.objective_function_value), lam, mu


def _path_entries(p: Problem, states, items, r_cap, r_split, r_conv):
    """Master-column entries (row, local column, value) of the given items' paths."""
    E, J = p.E, p.J
    loc = np.full(p.free.size, -1, np.int64)
    loc[items] = np.arange(items.size)
    R, Cc, V = [], [], []

    def add(rows, cols, vals):
        nz = vals != 0
        R.append(rows[nz])
        Cc.append(cols[nz])
        V.append(vals[nz])

    rows_e = np.repeat(np.arange(E), np.diff(p.r_ptr))
    m = loc[p.r_i] >= 0
    ri, re, rb = p.r_i[m], rows_e[m], p.r_b[m]
    k = states[ri, re].astype(np.int64)
    if p.inclusive:      # reads of items with a copy may be served from it: split row
        add(r_split + re, loc[ri], np.where(k == 0, -rb, 0.0))
    else:
        for j in range(J):
            coef = np.where(k == 0, p.cut_B[re], 0.0) * rb if j == p.jc else p.CR[j][k] * rb
            add(j * E + re, loc[ri], -coef)
    wrows = np.repeat(np.arange(E), np.diff(p.w_ptr))
    m = loc[p.w_i] >= 0
    wi, we, wb = p.w_i[m], wrows[m], p.w_b[m]
    k = states[wi, we].astype(np.int64)
    for j in range(J):
        coef = (np.where(k == 0, p.CW[j][0], 0.0) if p.inclusive else p.CW[j][k]) * wb
        add(j * E + we, loc[wi], -coef)
    sub = states[items]
    prev, cur = sub[:, :-1], sub[:, 1:]
    mi, me = np.nonzero((prev >= 0) & (cur >= 0) & (prev != cur))    # copy during me
    a, b = prev[mi, me].astype(np.int64), cur[mi, me].astype(np.int64)
    s = p.s[items[mi]]
    if p.inclusive:
        keep = b == 0
        mi, me, a, b, s = mi[keep], me[keep], a[keep], b[keep], s[keep]
    for j in range(J):
        add(j * E + me, mi, -(p.CO[j][a] + p.CI[j][b]) * s)
    for n, kk in enumerate(p.cap_tiers):
        ii, ee = np.nonzero(sub == kk)
        add(r_cap + n * E + ee, ii, p.s[items[ii]])
        add(r_cap + n * E + me, mi, np.where(b == kk, s, 0.0))
    add(r_conv + items, np.arange(items.size), np.ones(items.size))
    return np.concatenate(R), np.concatenate(Cc), np.concatenate(V)


def dw_phase(tr: Tracker, y_center: np.ndarray, paths: list, tol: float) -> "DWMaster":
    """Disaggregated cutting planes (Dantzig-Wolfe column generation): every oracle call
    adds each item's best path to the restricted master; the master's duals are the next
    prices.  Stops when the master's value (an upper bound on the best L) and the best L
    agree within ``tol``, when no item has a new path, or at the budget.  Returns the
    master (``converged``: it stopped at the LP relaxation's value, its last solve
    optimal)."""
    p, space = tr.p, tr.space
    tr.phase = "dw"
    master = DWMaster(p)
    for st in paths[-3:]:          # the warm-up's latest paths (the early ones are poor)
        master.add_paths(st)
    ev = tr.evaluate(y_center)
    master.add_paths(ev.states)
    stall = 0
    while not tr.out_of_budget():
        if tr.time_limit_s is not None:
            left = tr.time_limit_s - (time.perf_counter() - tr.t_start)
            master.h.setOptionValue("time_limit", max(left, 0.01))
        res = master.solve()
        if res is None:
            break
        obj, lam, mu = res
        tr.upper = obj if tr.upper is None else min(tr.upper, obj)
        if tr.best_v >= tr.upper - tol * max(abs(tr.upper), 1e-12):
            master.converged = master.optimal
            break
        y = space.proj(space.join(lam, mu))
        ev = tr.evaluate(y)
        added = master.add_paths(ev.states)
        if added == 0:
            stall += 1
            if stall >= 2:
                master.converged = master.optimal
                break
        else:
            stall = 0
    return master


__all__ = ["DWMaster", "ITERS_GROW", "MASTER_ITERS_START", "Space", "Tracker", "bundle_phase",
           "clip_sums", "dw_phase", "initial_prices", "project_simplex_rows"]
