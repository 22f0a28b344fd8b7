"""Access models of the request workloads: what each decode step of a request reads.

:func:`hetkv_opt.workloads.requests.build_workload` asks an access model, once per request,
for a function that returns the tokens of each (layer, block) read at every decode step
(:class:`AccessModel`).  Built in: :class:`DriftAccess` (per-block AR(1) drift + persistent
heavy hitters: the read rule of :mod:`hetkv_opt.workloads.drift`, per layer),
:class:`PaperAccess` (token-level top-(1 - s) with an age bias, low or high variation) and
:class:`hetkv_opt.workloads.trace_replay.TraceAccess` (a real model's recorded attention).
:class:`ExpertRouter` chooses the MoE experts each (step, layer) of a request uses.

Examples
--------
>>> from hetkv_opt.workloads.requests import Request
>>> fn = DriftAccess(sparsity=0.5).for_request(0, Request(40, 4), np.arange(2), 16,
...                                             np.random.default_rng(0))
>>> fn(0, 41).tolist()                 # 3 blocks alive, 2 read per layer (the sink + 1)
[[16, 0, 9], [16, 0, 9]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from hetkv_opt.workloads.drift import (DriftLatent, DriftParams, drift_forced, drift_reads_per_step,
                                       drift_select)

#: the ``phi`` of :class:`PaperAccess` by ``variation``
VARIATIONS = {"low": 0.95, "high": 0.0}

TokensRead = Callable[[int, int], np.ndarray]


class AccessModel(Protocol):
    """Chooses what each decode step of a request reads (the hook for real traces).

    ``for_request`` is called once, when the request arrives (``request`` is a
    :class:`hetkv_opt.workloads.requests.Request`); the function it returns is called once
    per decode step ``t = 0, 1, ..., output_tokens - 1`` in order (so it may keep state)
    with ``context_tokens = prompt_tokens + t + 1`` (the new token included), and returns
    an integer array of shape ``(len(layer_ids), ceil(context_tokens / block_tokens))``:
    the tokens of each (layer, block) read at that step (0 = not read; at most the tokens
    the block holds).
    """

    def for_request(self, request_index: int, request: Any, layer_ids: np.ndarray,
                    block_tokens: int, rng: np.random.Generator) -> TokensRead: ...


def _filled(context_tokens: int, block_tokens: int) -> np.ndarray:
    """Tokens held by each block of a context (full blocks, then the tail block)."""
    alive = -(-context_tokens // block_tokens)
    f = np.full(alive, block_tokens, np.int64)
    f[-1] = context_tokens - (alive - 1) * block_tokens
    return f


@dataclass(frozen=True)
class DriftAccess:
    """Block-level drift model (the rule of :mod:`hetkv_opt.workloads.drift`), per (request, layer).

    Every block has a persistent importance ``mu ~ N(0, persistence)`` (heavy hitters
    stay heavy) and an AR(1) latent ``z(t) = phi z(t-1) + sqrt(1 - phi^2) eps``
    (:class:`~hetkv_opt.workloads.drift.DriftLatent`); a step reads the ``sinks`` first and
    ``recent`` last blocks and the top blocks by ``mu + z`` until ``max(1, round((1 -
    sparsity) x alive blocks))`` are read, each whole (its filled tokens)
    (:func:`~hetkv_opt.workloads.drift.drift_select`).  The defaults are
    :class:`~hetkv_opt.workloads.drift.DriftParams`'.

    One difference from the drift generator is kept so that workloads keep their bytes:
    when more blocks are forced (sinks + recent) than a step reads, the generator reads the
    lowest-indexed of them, this model the ones ``numpy.argpartition`` returns first.
    """

    sparsity: float = DriftParams.sparsity
    phi: float = DriftParams.phi
    persistence: float = DriftParams.persistence
    sinks: int = DriftParams.sinks
    recent: int = DriftParams.recent

    def for_request(self, request_index, request, layer_ids, block_tokens, rng) -> TokensRead:
        L = len(layer_ids)
        nb = -(-(request.prompt_tokens + request.output_tokens) // block_tokens)
        latent = DriftLatent(rng, (L, nb), self.persistence, self.phi)
        rows = np.arange(L)[:, None]

        def tokens_read(t: int, context_tokens: int) -> np.ndarray:
            if t:
                latent.advance()
            filled = _filled(context_tokens, block_tokens)
            alive = filled.size
            n_read = int(drift_reads_per_step(alive, self.sparsity))
            forced = drift_forced(alive, self.sinks, self.recent)
            if np.count_nonzero(forced) <= n_read:
                return np.where(drift_select(latent.score(alive), n_read, forced), filled, 0)
            # more forced blocks than reads: argpartition's pick among them (see the class)
            score = latent.score(alive)
            score[:, forced] = np.inf
            top = np.argpartition(-score, n_read - 1, axis=1)[:, :n_read]
            cnt = np.zeros((L, alive), np.int64)
            cnt[rows, top] = filled[top]
            return cnt
        return tokens_read


@dataclass(frozen=True)
class PaperAccess:
    """Token-level synthetic model after the paper's simulator, with low or high variation.

    At each (step, layer) the ``max(1, round((1 - sparsity) x context))`` tokens with the
    smallest key ``log(age) - z`` are read (``age = context - position``: recent tokens are
    favoured, as in the simulator's age-biased skipping); ``z`` is an AR(1) per token with
    ``phi = 0`` for ``variation="high"`` (a fresh read set every step) and ``0.95`` for
    ``"low"`` (the set drifts slowly), or ``phi`` when given.  ``sink_tokens`` first and
    ``recent_tokens`` last tokens are always read.  A block's read bytes are its read
    tokens x ``kv_bytes_per_token``.  This is our reading of docs/paper.md's "top (100 - s)% of
    tokens by score"; it costs O(layers x context) per step, so use ``drift`` at the
    paper's full scale.
    """

    sparsity: float = 0.6
    variation: str = "high"
    phi: float | None = None
    sink_tokens: int = 0
    recent_tokens: int = 0

    def for_request(self, request_index, request, layer_ids, block_tokens, rng) -> TokensRead:
        L = len(layer_ids)
        T = request.prompt_tokens + request.output_tokens
        phi = VARIATIONS[self.variation] if self.phi is None else float(self.phi)
        noise = np.float32(math.sqrt(max(0.0, 1.0 - phi ** 2)))
        z = rng.standard_normal((L, T), dtype=np.float32)
        log_age = np.log(np.arange(T, 0, -1, dtype=np.float32))   # log(age) for context T
        rows = np.arange(L)[:, None]

        def tokens_read(t: int, context_tokens: int) -> np.ndarray:
            ctx = context_tokens
            if t:
                if phi == 0.0:
                    z[:, :ctx] = rng.standard_normal((L, ctx), dtype=np.float32)
                else:
                    z[:, :ctx] = np.float32(phi) * z[:, :ctx] + noise * rng.standard_normal((L, ctx), dtype=np.float32)
            alive = -(-ctx // block_tokens)
            n_read = max(1, int(round((1.0 - self.sparsity) * ctx)))
            if n_read >= ctx:
                return np.broadcast_to(_filled(ctx, block_tokens), (L, alive)).copy()
            key = log_age[T - ctx:] - z[:, :ctx]
            if self.sink_tokens:
                key[:, :min(self.sink_tokens, ctx)] = -np.inf
            if self.recent_tokens:
                key[:, max(0, ctx - self.recent_tokens):] = -np.inf
            top = np.argpartition(key, n_read - 1, axis=1)[:, :n_read]
            flat = (rows * alive + top // block_tokens).ravel()
            return np.bincount(flat, minlength=L * alive).reshape(L, alive).astype(np.int64)
        return tokens_read


@dataclass(frozen=True)
class ExpertRouter:
    """A seeded MoE router: which ``top_k`` experts each (step, layer) of a request uses.

    Per layer, expert popularity is drawn once from ``Dirichlet(skew)`` (small ``skew`` =
    a few hot experts); each (request, layer) keeps its previous choice with probability
    ``persistence`` and otherwise samples ``top_k`` distinct experts by popularity
    (Gumbel top-k).
    """

    skew: float = 1.0
    persistence: float = 0.5

    def popularity(self, layers: int, experts: int, rng: np.random.Generator) -> np.ndarray:
        """Log-popularity, shape (layers, experts)."""
        p = rng.dirichlet(np.full(experts, self.skew), size=layers)
        return np.log(np.maximum(p, 1e-300))

    def for_request(self, log_pop: np.ndarray, top_k: int, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        L, X = log_pop.shape
        prev = None

        def route(t: int) -> np.ndarray:
            nonlocal prev
            g = -np.log(-np.log(rng.random((L, X)) + 1e-300) + 1e-300)
            choice = np.argpartition(-(log_pop + g), top_k - 1, axis=1)[:, :top_k]
            if prev is not None:
                keep = rng.random(L) < self.persistence
                choice[keep] = prev[keep]
            prev = choice
            return choice
        return route


__all__ = ["AccessModel", "DriftAccess", "ExpertRouter", "PaperAccess", "TokensRead", "VARIATIONS"]
