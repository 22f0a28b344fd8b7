"""Proven lower bounds on T (docs/model.md section 5).

A bound here is a number proven <= T for every feasible schedule.  The LP bound is not
HiGHS's LP objective (computed in scaled space with tolerances) but a weak-duality bound
recomputed from the dual values: for *any* row prices y, ``sum_r y_r * (active row bound)
+ sum_j min over the column box of (c - A'y)_j x_j`` is below the LP optimum, so it is a
proof whatever the solver's accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hetkv_opt.milp.build import MilpModel


@dataclass
class DualBound:
    """A weak-duality bound and its ingredients."""

    bound_s: float
    margin_s: float


def weak_duality_bound(model: MilpModel, row_dual: np.ndarray) -> DualBound:
    """Lower bound on the model's LP value from arbitrary row prices, in seconds.

    Parameters
    ----------
    model : MilpModel
        Every column must have a finite box (the builder guarantees it).
    row_dual : ndarray, shape (num_row,)
        Any prices; HiGHS's row duals are a good choice.  Both ``y`` and ``-y`` are tried
        (sign conventions differ between solvers), and each is made valid by zeroing the
        price of a row whose active side is infinite.

    Returns
    -------
    DualBound
        ``bound_s`` already has a floating-point safety margin (``margin_s``) subtracted.
    """
    y0 = np.asarray(row_dual, float)
    col_of_nz = np.repeat(np.arange(model.num_col), np.diff(model.a_start))
    best = DualBound(-math.inf, 0.0)
    for sign in (1.0, -1.0):
        y = sign * y0
        y = np.where((y > 0) & ~np.isfinite(model.row_lower), 0.0, y)
        y = np.where((y < 0) & ~np.isfinite(model.row_upper), 0.0, y)
        row_term = np.where(y > 0, y * np.where(np.isfinite(model.row_lower), model.row_lower, 0.0),
                            y * np.where(np.isfinite(model.row_upper), model.row_upper, 0.0))
        aty = np.bincount(col_of_nz, weights=model.a_value * y[model.a_index], minlength=model.num_col)
        d = model.col_cost - aty
        col_term = np.minimum(d * model.col_lower, d * model.col_upper)
        value = math.fsum(row_term.tolist()) + math.fsum(col_term.tolist())
        # rounding in forming d and the sums: a generous relative margin
        abs_aty = np.bincount(col_of_nz, weights=np.abs(model.a_value * y[model.a_index]),
                              minlength=model.num_col)
        box = np.maximum(np.abs(model.col_lower), np.abs(model.col_upper))
        scale = (np.abs(row_term).sum() + np.abs(col_term).sum() + (abs_aty * box).sum()
                 + abs(value))
        margin = 1e-9 * scale + 1e-12
        if value - margin > best.bound_s:
            best = DualBound(value - margin, margin)
    return DualBound(best.bound_s * model.t0_s, best.margin_s * model.t0_s)
