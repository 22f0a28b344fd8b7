"""Attention-aware policies: ema-score (heavy hitters), step-ema (the same, decayed per
decode step) and balance (bandwidth share).

They predict an item's next reads by an exponential moving average (EMA) of the bytes
read from it in the past, updated in O(reads) per run.  ``ema-score`` and ``balance``
decay once per *epoch*; on instances whose epochs are (step, layer) that mixes layers
(docs/policies.md, "Layers"), which ``step-ema`` avoids by decaying once per *step*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetkv_opt.policies.base import ScoredPolicy, View
from hetkv_opt.policies.registry import register_policy


def ema_read_bytes(view: View, decay: float) -> np.ndarray:
    """EMA of bytes read per item up to e - 1: ``m = decay * m + (1 - decay) * reads(t)``.

    Kept in ``view.memo`` (one update per epoch), shape (N,).
    """
    m = view.memo
    key = ("ema", decay)
    if key not in m:
        m[key] = [np.zeros(view.num_items), 0]          # value, epochs folded in
    state = m[key]
    for t in range(state[1], view.epoch):
        state[0] *= decay
        acc = view.reads_in(t, t + 1)
        state[0][acc.item] += (1.0 - decay) * acc.bytes
    state[1] = view.epoch
    return state[0]


def step_ema_read_bytes(view: View, decay: float) -> np.ndarray:
    """EMA of bytes read per item, decayed once per decode *step* (not per epoch).

    Each item's average is ``sum over its past reads of (1 - decay) * bytes *
    decay ** (steps since that read)``: an item of layer l is read only in layer l's
    epochs, and its average does not decay in the other layers' epochs.  Without epoch
    labels a step is an epoch and this equals :func:`ema_read_bytes` up to a constant
    factor.  Kept in ``view.memo`` (lazy per item: one update per read), shape (N,).
    """
    m = view.memo
    key = ("step-ema", decay)
    if key not in m:
        m[key] = {"value": np.zeros(view.num_items), "step": np.zeros(view.num_items, np.int64),
                  "upto": 0}
    st = m[key]
    val, last = st["value"], st["step"]
    steps = view.epoch_step
    for t in range(st["upto"], view.epoch):
        acc = view.reads_in(t, t + 1)
        if acc.item.size:
            s_t = steps[t]
            it = acc.item
            val[it] = val[it] * decay ** (s_t - last[it]).astype(float) + (1.0 - decay) * acc.bytes
            last[it] = s_t
    st["upto"] = view.epoch
    return val * decay ** (view.step - last).astype(float)


@register_policy("ema-score")
@dataclass
class EMAScore(ScoredPolicy):
    """Heavy hitters by an EMA of read bytes, in the spirit of H2O (Zhang et al., "H2O:
    Heavy-Hitter Oracle for Efficient Generative Inference of LLMs", NeurIPS 2023).

    H2O keeps the tokens with the largest accumulated attention plus a recent window;
    here the accumulated attention is the EMA of read bytes (``decay`` per epoch), and
    items born or written in the last ``recent_epochs`` epochs are kept like H2O's local
    window.  Items never read and not recent are never pulled into tier 0.
    """

    decay: float = 0.8
    recent_epochs: int = 1

    def __post_init__(self):
        super().__post_init__()
        self._need(0.0 <= self.decay < 1.0, "decay", "must be in [0, 1)")
        self._need(self.recent_epochs >= 0, "recent_epochs", "must be >= 0")

    def score(self, view: View) -> np.ndarray:
        e, r = view.epoch, self.recent_epochs
        s = ema_read_bytes(view, self.decay).copy()
        s[(s <= 0) & (np.asarray(view.residency) != 0)] = -np.inf
        recent = (np.asarray(view.last_write_epoch) >= e - r) | \
            ((view.birth >= e - r) & (view.birth <= e))
        s[recent] = np.inf
        return s


@register_policy("step-ema")
@dataclass
class StepEMA(ScoredPolicy):
    """Heavy hitters by an EMA of read bytes decayed per decode step: ema-score made
    layer-aware, the pattern for instances whose epochs are (step, layer).

    ``decay`` applies once per step, so an item of any layer keeps its average between
    its own layer's epochs; items born or written in the last ``recent_steps`` steps are
    kept in tier 0 like H2O's local window; items never read and not recent are never
    pulled in.  On one-layer instances (no epoch labels, or one layer) it ranks exactly
    like ema-score with the same ``decay``.
    """

    decay: float = 0.95
    recent_steps: int = 1

    def __post_init__(self):
        super().__post_init__()
        self._need(0.0 <= self.decay < 1.0, "decay", "must be in [0, 1)")
        self._need(self.recent_steps >= 0, "recent_steps", "must be >= 0")

    def score(self, view: View) -> np.ndarray:
        s = step_ema_read_bytes(view, self.decay)
        s[(s <= 0) & (np.asarray(view.residency) != 0)] = -np.inf
        steps = view.epoch_step
        lw = np.asarray(view.last_write_epoch)
        write_step = np.where(lw >= 0, steps[np.maximum(lw, 0)], -1)
        born = view.birth <= view.epoch
        birth_step = np.where(born, steps[np.minimum(view.birth, view.num_epochs - 1)], -1)
        now = view.step
        recent = (write_step >= now - self.recent_steps) & (write_step >= 0) | \
            (born & (birth_step >= now - self.recent_steps))
        s[recent] = np.inf
        return s


@register_policy("balance")
@dataclass
class Balance(ScoredPolicy):
    """Bandwidth balance: keep tier 0's share of the next epoch's predicted reads near
    the ideal ``B_0 / (B_0 + sum_k>=1 min(B_k, link_k))`` instead of maximising hits.

    The paper's point (docs/paper.md: HBM and DRAM are read concurrently, so a step lasts
    as long as the slower side); its simulator's "AlphaMigration" aims at the same ratio.
    Predicted reads are an EMA of read bytes (``decay``); the base fills tier 0 in that
    order until the predicted share is reached (``fill="share"``).  Residents of tier 0
    get a ``stickiness`` bonus so that noise does not cause swaps; items never read are
    only placed in tier 0 at birth (no evidence yet), never copied in.
    """

    fill: str = "share"
    decay: float = 0.5
    stickiness: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        self._need(0.0 <= self.decay < 1.0, "decay", "must be in [0, 1)")
        self._need(self.stickiness >= 0.0, "stickiness", "must be >= 0")

    def expected_reads(self, view: View) -> np.ndarray:
        return ema_read_bytes(view, self.decay)

    def score(self, view: View) -> np.ndarray:
        p = ema_read_bytes(view, self.decay)
        in0 = np.asarray(view.residency) == 0
        unknown = in0 | (view.birth == view.epoch)      # residents and newborns: no evidence
        return np.where(p > 0, p * (1.0 + self.stickiness * in0), np.where(unknown, 0.0, -np.inf))
