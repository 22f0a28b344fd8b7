"""Replay recorded attention as a workload access model (``hetkv generate --access trace``).

:mod:`hetkv_opt.trace.to_instance` turns one trace into an instance of its own shape; this
module lets the workload builder (:mod:`hetkv_opt.workloads.requests`) use real attention for *any*
batch of requests on any model preset, with weights, experts and a compute floor.  A
:class:`TraceAccess` holds one or more traces (``hetkv trace`` files) and a selection rule
(:data:`hetkv_opt.trace.to_instance.RULES`); request ``r`` replays trace ``r mod n``:

- **layers**: the workload's layer at depth ``(l + 0.5) / model_layers`` reads like the
  recorded layer nearest to the same depth of the traced model (a 32-layer Llama workload
  from a 30-layer SmolLM2 trace maps layer 31 to layer 29; with ``model_layers=None``
  the simulated layers are spread over the recorded ones by rank);
- **steps**: decode step ``t`` replays trace step ``t mod S`` (a request longer than the
  trace wraps around; :meth:`TraceAccess.describe` counts the trace's steps);
- **context**: the request's ``c`` tokens are stretched onto the trace step's ``c'``
  tokens, token ``p`` taking the scores of trace token ``round(p (c' - 1) / (c - 1))``
  (:func:`stretch_index`: the first token maps to the first, the newest to the newest, so
  sinks and recency survive a change of length); the rule then picks the request's own budget ``max(1, round((1 - s) c))`` in
  the request's own pages, so sparsity and page size are the workload's.

Nothing is random: the same traces, rule and sparsity give the same reads.  Cost is
O(layers x context log context) per step (a sort per layer), like the token-level
``paper`` model.

Examples
--------
>>> stretch_index(4, 2).tolist(), stretch_index(2, 4).tolist()
([0, 0, 1, 1], [0, 3])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hetkv_opt.trace.capture import Trace, load_trace
from hetkv_opt.trace.to_instance import RULES, select, token_budget


def stretch_index(context_tokens: int, trace_tokens: int) -> np.ndarray:
    """For each of ``context_tokens`` request positions ``p``, the trace position whose
    scores it takes: ``round(p (c' - 1) / (c - 1))`` (halves up), so the first token maps
    to the first and the newest to the newest; shape (context_tokens,).  A one-token
    context takes the trace's newest token."""
    c, ct = int(context_tokens), int(trace_tokens)
    if c == 1:
        return np.array([ct - 1], np.int64)
    p = np.arange(c, dtype=np.int64)
    return (2 * p * (ct - 1) + (c - 1)) // (2 * (c - 1))


def layer_rows(trace: Trace, layer_ids: np.ndarray, model_layers: int | None) -> np.ndarray:
    """The recorded row of ``trace`` that each simulated layer replays, shape (L,).

    By depth when ``model_layers`` is known (nearest recorded layer to the same relative
    depth of the traced model, ties to the shallower), else by rank among ``layer_ids``.
    """
    rec = np.asarray(trace.layers, np.int64)
    ids = np.asarray(layer_ids, np.int64)
    if model_layers is None:
        L = ids.size
        return (np.arange(L) * rec.size) // max(L, 1)
    traced = int(trace.metadata["model"]["num_layers"])
    target = (ids + 0.5) / model_layers * traced - 0.5       # depth in traced-layer units
    return np.abs(rec[None, :] - target[:, None]).argmin(axis=1)


@dataclass(frozen=True, eq=False)
class TraceAccess:
    """Reads chosen by a rule on recorded attention, request ``r`` replaying trace
    ``r mod len(traces)`` (module doc: how layers, steps and context lengths map).

    Parameters
    ----------
    traces : sequence of Trace
        Recorded attention (:func:`hetkv_opt.trace.capture.load_trace`); see :meth:`from_files`.
    rule : {"topk", "kv-union", "quest"}
    sparsity : float
        Fraction of the context not read per (step, layer), in [0, 1).
    model_layers : int, optional
        Layers of the workload's model (the builder passes it), for the depth mapping.

    Raises
    ------
    ValueError
        No trace, an unknown rule, or a sparsity outside [0, 1) (naming the option).
    """

    traces: tuple[Trace, ...]
    rule: str = "topk"
    sparsity: float = 0.6
    model_layers: int | None = None

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, why: str) -> None:
            if not cond:
                raise ValueError(f"workload: option '{name}': {why}")
        need(len(self.traces) >= 1, "trace", "at least one trace file for --access trace")
        need(self.rule in RULES, "rule", f"unknown rule {self.rule!r} (known: {', '.join(RULES)})")
        need(0.0 <= self.sparsity < 1.0, "sparsity", "must be in [0, 1)")
        need(self.model_layers is None or self.model_layers >= 1, "model_layers", "must be >= 1")

    @classmethod
    def from_files(cls, paths: Sequence[str | os.PathLike], **kw) -> "TraceAccess":
        """Load ``hetkv-trace`` files (a bad file raises :class:`hetkv_opt.trace.capture.TraceError`
        naming it and the field)."""
        return cls(traces=tuple(load_trace(p) for p in paths), **kw)

    def describe(self) -> dict:
        """What the instance's metadata records of this access model."""
        return {"name": "TraceAccess", "rule": self.rule, "sparsity": self.sparsity,
                "model_layers": self.model_layers,
                "traces": [{"sha256": t.sha256, "model": t.metadata["model"].get("name"),
                            "prompt_tokens": t.prompt_tokens, "steps": t.num_steps,
                            "recorded_layers": int(t.layers.size)} for t in self.traces]}

    def for_request(self, request_index, request, layer_ids, block_tokens, rng):
        trace = self.traces[request_index % len(self.traces)]
        rows = layer_rows(trace, layer_ids, self.model_layers)
        L = rows.size

        def tokens_read(t: int, context_tokens: int) -> np.ndarray:
            ts = t % trace.num_steps
            a, b = int(trace.offsets[ts]), int(trace.offsets[ts + 1])
            q = stretch_index(context_tokens, b - a) + a
            budget = token_budget(context_tokens, self.sparsity)
            alive = -(-context_tokens // block_tokens)
            page = np.arange(context_tokens) // block_tokens
            out = np.zeros((L, alive), np.int64)
            for j, row in enumerate(rows.tolist()):
                kv = trace.kv_mean[row][:, q].astype(np.float32)
                hm = trace.head_max[row][q].astype(np.float32)
                mask = select(self.rule, kv, hm, budget, block_tokens)
                out[j] = np.bincount(page[mask], minlength=alive)
            return out
        return tokens_read
