"""Forecast policies and their look-ahead oracles: separate forecasting error from
placement error (docs/policies.md, "Forecasting error vs placement error").

A :class:`ForecastPolicy` ranks items by a *forecast*: the bytes each item will be read
over the next ``window`` decode steps, starting at e + 1 (the epoch being decided).  Write
``forecast(view)`` and the base does the rest (rank, fill tier 0 by
:func:`~hetkv_opt.policies.base.fill_by_score`).  ``lookahead`` is the same rule with the
true future in place of the forecast (an oracle: results mark it so).  Run both with the
same ``window`` and ``fill``:

- T(your policy) - T(lookahead) is what your forecast costs (the rule is the same);
- T(lookahead) - the proven bound is what the rule itself costs even with a perfect
  forecast of ``window`` steps (placement error), plus whatever lies beyond the window.

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.policies import simulate
>>> r = simulate(tiny_instance(), "lookahead")
>>> r.details["oracle"], r.total_time_s >= 2.0
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetkv_opt.policies.base import ScoredPolicy, View
from hetkv_opt.policies.registry import register_policy


def future_read_bytes(view: View, window: int, decay: float = 1.0) -> np.ndarray:
    """True bytes read per item over the next ``window`` decode steps from e + 1, each
    step ``k`` steps after e + 1's weighted ``decay ** k`` (oracles only), shape (N,)."""
    acc = view.future.reads_in_steps(window)
    if acc.item.size == 0:
        return np.zeros(view.num_items)
    if decay == 1.0:
        return acc.per_item(view.num_items)
    steps = view.epoch_step
    ahead = (steps[acc.epoch] - steps[view.epoch + 1]).astype(float)
    return acc.per_item(view.num_items, acc.bytes * decay ** ahead)


@dataclass
class ForecastPolicy(ScoredPolicy):
    """Base of forecast policies: rank by ``forecast(view)``, the predicted read bytes of
    every item over the next ``window`` decode steps from e + 1.

    Items forecast to be read are ranked by their forecast; items forecast never to be
    read within the window are never copied into tier 0 (they may stay while room
    allows).  With ``fill="share"``, the forecast of the next epoch
    (:meth:`expected_reads`) sets tier 0's share.

    Parameters
    ----------
    window : int
        Decode steps ahead (>= 1); with (step, layer) epochs a step is every layer.
    decay : float
        Weight of a read k steps after e + 1's step: ``decay ** k`` (1: all equal).
    """

    window: int = 4
    decay: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        self._need(self.window >= 1, "window", "must be >= 1")
        self._need(0.0 < self.decay <= 1.0, "decay", "must be in (0, 1]")

    def forecast(self, view: View) -> np.ndarray:
        """Predicted read bytes per item over the window, shape (N,)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forecast(view)")

    def score(self, view: View) -> np.ndarray:
        f = np.asarray(self.forecast(view), dtype=float)
        return np.where(f > 0, f, -np.inf)


@register_policy("lookahead")
@dataclass
class LookAhead(ForecastPolicy):
    """Look-ahead oracle: the forecast rule with the true reads of the next ``window``
    decode steps (an oracle: it reads the future).

    Tier 0 is filled, before every epoch, with the items the next ``window`` steps read
    most (``decay`` discounts later steps).  Compare a forecast policy with the same
    ``window`` and ``fill`` against it to measure the forecast's cost; its own gap to
    the bound is the rule's.
    """

    uses_future = True

    def forecast(self, view: View) -> np.ndarray:
        return future_read_bytes(view, self.window, self.decay)


@register_policy("lookahead-share")
@dataclass
class LookAheadShare(LookAhead):
    """Look-ahead oracle that fills tier 0 only up to its ideal bandwidth share of the
    next epoch's (true) reads: ``lookahead`` with ``fill="share"`` (an oracle).

    The share is ``B_0 / (B_0 + sum_k>=1 min(B_k, link_k))``, where every tier finishes
    the epoch's reads together; beyond it, serving more from tier 0 makes tier 0 the
    slower side.
    """

    fill: str = "share"


__all__ = ["ForecastPolicy", "LookAhead", "LookAheadShare", "future_read_bytes"]
