"""Realistic decode workloads: a batch of requests on a model and a machine from the presets.

The builder turns a model preset (layers, GQA KV size, weight and expert sizes), a
hardware preset (tiers, peak FLOP/s) and a batch of requests into a placement instance
(docs/model.md):

- **epochs**: one per (decode step, layer), in order ``e = step x L + j`` for the ``j``-th
  simulated layer; labels ``step`` and ``layer`` (the model's layer index);
- **requests** ``r``: ``prompt_tokens``, ``output_tokens`` and ``arrival_step``.  The
  prompt's KV exists when the request arrives (prefill happened before), then every decode
  step appends one token to every layer, and the request ends after its last output token;
- **KV items**: paged blocks of ``block_tokens`` tokens of one (request, layer), of size
  ``block_tokens x kv_bytes_per_token`` with ``kv_bytes_per_token = 2 x kv_heads x
  head_dim x dtype_bytes`` (GQA-correct).  A prompt block is born at the request's first
  epoch, a decode block at the epoch that appends its first token; all die when the
  request ends;
- **writes**: every (step, layer) of a request writes ``kv_bytes_per_token`` to the block
  that receives the new token;
- **reads**: an *access model* chooses, for every (step, request), how many tokens of each
  (layer, block) are read; the block's read bytes are those tokens x ``kv_bytes_per_token``.
  Built in (:mod:`hetkv_opt.workloads.access`): :class:`DriftAccess` (per-block AR(1)
  drift + persistent heavy hitters, the rule of :mod:`hetkv_opt.workloads.drift`) and
  :class:`PaperAccess` (token-level top-(1 - s) with an age bias and low or high variation
  between steps), and :class:`hetkv_opt.workloads.trace_replay.TraceAccess`
  (``access="trace"``: a real model's recorded attention, replayed by a selection rule).
  Any object with the same ``for_request`` method (:class:`AccessModel`) plugs in;
- **weights**: one item per layer (attention, norms, router, and the MLP of a dense
  model), read whole at every epoch of its layer while a request is active; pinned to
  tier 0 by default (``weights="free"`` lets the solver place them, ``"none"`` leaves
  them out);
- **experts** (MoE models): one item per (layer, expert), read whole at an epoch when a
  seeded router (:class:`~hetkv_opt.workloads.access.ExpertRouter`: skewed popularity,
  persistent choices) sends
  some active request's token to it;
- **compute floor** (optional): ``c_e = FLOPs(step, layer) / peak_flops`` with the
  FLOPs of :meth:`hetkv_opt.presets.ModelSpec.flops_per_token_layer` summed over the
  active requests and the hardware preset's ``peak_flops``;
- **tier-0 capacity**: the hardware preset's, or with ``hbm_fraction`` the pinned bytes
  plus that fraction of the peak bytes of the unpinned items alive at one time (real HBM
  sizes make small instances trivial).

Large instances stream straight to NPZ (:func:`write_workload`), one decode step at a
time, through :class:`hetkv_opt.io.npz_stream.NpzInstanceWriter`, or to the sharded
layout of one file per layer (a ``.hetkv`` folder) through
:class:`hetkv_opt.io.shards_stream.ShardedInstanceWriter`: the read list is never held in
memory.  Same parameters and seed, same bytes.

Examples
--------
>>> inst = build_workload(model="smollm2-135m", hardware="gh200-paper",
...                       requests=[Request(40, 8), Request(20, 4, arrival_step=2)],
...                       layers=2, sparsity=0.5)
>>> inst.num_epochs, sorted(set(inst.item_labels["kind"].tolist()))
(16, ['kv', 'weight'])
>>> int(inst.size_bytes[0])                      # 16 tokens x 768 B (3 KV heads x 64 x bf16 x 2)
12288
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from hetkv_opt.model.instance import MAX_EPOCHS, MAX_ITEMS, Instance, make_instance
from hetkv_opt.workloads.access import (VARIATIONS, AccessModel, DriftAccess, ExpertRouter,  # noqa: F401
                                        PaperAccess, TokensRead, _filled)
from hetkv_opt.workloads.drift import DriftParams
from hetkv_opt.presets import HardwareSpec, ModelSpec, load_hardware, load_model

ACCESS_MODELS = ("drift", "paper", "trace")
WEIGHTS = ("pinned", "free", "none")
EXPERTS = ("free", "none")


def _need(cond: bool, name: str, why: str) -> None:
    if not cond:
        raise ValueError(f"workload: option '{name}': {why}")


# ----------------------------------------------------------------------------- requests

@dataclass(frozen=True)
class Request:
    """One request: its prompt and output lengths (tokens) and its arrival (decode step)."""

    prompt_tokens: int
    output_tokens: int
    arrival_step: int = 0


def _int_list(spec: str, name: str) -> list[int]:
    try:
        return [int(x) for x in spec.split(",")]
    except ValueError:
        raise ValueError(f"workload: option '{name}': {spec!r} is not an integer, a comma list "
                         f"of integers, or a distribution") from None


def sample_lengths(spec: str | int | Sequence[int], n: int, rng: np.random.Generator,
                   name: str = "lengths", minimum: int = 1) -> np.ndarray:
    """``n`` token counts from a spec: ``"1024"``, ``"512,1024"`` (one per request),
    ``"uniform:LO:HI"`` (inclusive) or ``"lognormal:MEDIAN:SIGMA"``.

    >>> sample_lengths("uniform:10:20", 3, np.random.default_rng(0)).tolist()
    [19, 17, 15]
    """
    if isinstance(spec, (int, np.integer)):
        out = np.full(n, int(spec), np.int64)
    elif not isinstance(spec, str):
        out = np.asarray(list(spec), np.int64)
    elif spec.startswith(("uniform:", "lognormal:")):
        kind, *args = spec.split(":")
        _need(len(args) == 2, name, f"{spec!r}: expected {kind}:A:B")
        try:
            a, b = float(args[0]), float(args[1])
        except ValueError:
            raise ValueError(f"workload: option '{name}': {spec!r}: A and B must be numbers") from None
        if kind == "uniform":
            _need(minimum <= a <= b, name, f"{spec!r}: need {minimum} <= LO <= HI")
            out = rng.integers(int(a), int(b) + 1, n)
        else:
            _need(a >= 1 and b >= 0, name, f"{spec!r}: need MEDIAN >= 1 and SIGMA >= 0")
            out = np.maximum(minimum, np.round(a * np.exp(b * rng.standard_normal(n)))).astype(np.int64)
    else:
        out = np.asarray(_int_list(spec, name), np.int64)
    if out.size == 1 and n > 1:
        out = np.full(n, out[0], np.int64)
    _need(out.size == n, name, f"{out.size} values for {n} requests")
    _need(bool(np.all(out >= minimum)), name, f"every value must be >= {minimum}")
    return out.astype(np.int64)


def sample_arrivals(spec: str | int | Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival steps from a spec: ``"0"`` (all at once), ``"0,4,9"``, ``"every:K"`` (request
    ``r`` at ``r x K``) or ``"poisson:RATE"`` (exponential gaps, RATE requests per step).

    >>> sample_arrivals("every:3", 4, np.random.default_rng(0)).tolist()
    [0, 3, 6, 9]
    """
    if isinstance(spec, str) and spec.startswith(("every:", "poisson:")):
        kind, _, arg = spec.partition(":")
        try:
            x = float(arg)
        except ValueError:
            raise ValueError(f"workload: option 'arrival': {spec!r}: {arg!r} is not a number") from None
        if kind == "every":
            _need(x >= 0 and x == int(x), "arrival", f"{spec!r}: K must be a whole number >= 0")
            return np.arange(n, dtype=np.int64) * int(x)
        _need(x > 0, "arrival", f"{spec!r}: RATE must be > 0")
        gaps = rng.exponential(1.0 / x, n)
        gaps[0] = 0.0
        return np.floor(np.cumsum(gaps)).astype(np.int64)
    return sample_lengths(spec, n, rng, name="arrival", minimum=0)


def make_requests(batch: int = 1, prompt_tokens: str | int | Sequence[int] = 1024,
                  output_tokens: str | int | Sequence[int] = 128,
                  arrival: str | int | Sequence[int] = 0, seed: int = 0) -> tuple[Request, ...]:
    """A batch of requests from length and arrival specs (seeded; see :func:`sample_lengths`).

    >>> make_requests(2, "100,200", 8, "every:4")
    (Request(prompt_tokens=100, output_tokens=8, arrival_step=0), Request(prompt_tokens=200, output_tokens=8, arrival_step=4))
    """
    _need(batch >= 1, "batch", "must be >= 1")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    p = sample_lengths(prompt_tokens, batch, rng, "prompt-tokens", minimum=0)
    o = sample_lengths(output_tokens, batch, rng, "output-tokens", minimum=1)
    a = sample_arrivals(arrival, batch, rng)
    return tuple(Request(int(x), int(y), int(z)) for x, y, z in zip(p, o, a))


# ----------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class WorkloadParams:
    """Everything that defines a workload (same parameters, same bytes).

    Parameters
    ----------
    model, hardware : str
        Preset names or paths of preset files (:mod:`hetkv_opt.presets`).
    requests : tuple of Request
    block_tokens : int
        Tokens per KV block (page).
    layers : int or tuple of int, optional
        Simulate the first ``layers`` layers, or exactly these layer indices; default all.
    access : {"drift", "paper", "trace"}
        Built-in access model (ignored when an ``access_model`` object is given);
        ``trace`` replays ``traces`` by ``rule`` (:class:`hetkv_opt.workloads.trace_replay.TraceAccess`).
    sparsity : float
        Fraction of the context *not* read per (step, layer), in [0, 1).
    phi, persistence, sinks, recent : float, float, int, int
        :class:`DriftAccess` parameters (sinks / recent in blocks); the defaults of these
        and of ``sparsity`` are :class:`~hetkv_opt.workloads.drift.DriftParams`'.
    variation : {"low", "high"}
        :class:`PaperAccess` parameter.
    traces : tuple of str
        ``trace`` access: ``hetkv trace`` files; request ``r`` replays trace ``r mod n``.
    rule : {"topk", "kv-union", "quest"}
        ``trace`` access: the read-selection rule (:mod:`hetkv_opt.trace.to_instance`).
    weights : {"pinned", "free", "none"}
    experts : {"free", "none"}
        Expert items of a MoE model.
    expert_skew, expert_persistence : float
        :class:`ExpertRouter` parameters.
    compute_floor : bool
        Set ``min_time_s`` from FLOPs and the hardware's ``peak_flops``.
    hbm_fraction : float, optional
        Tier-0 capacity = pinned bytes + this fraction of the peak unpinned bytes alive;
        default: the hardware preset's capacity.
    mode : {"exclusive", "inclusive"}
    seed : int
    """

    model: str = "llama-3.1-8b"
    hardware: str = "gh200-paper"
    requests: tuple[Request, ...] = (Request(256, 32),)
    block_tokens: int = 16
    layers: int | tuple[int, ...] | None = None
    access: str = "drift"
    sparsity: float = DriftParams.sparsity
    phi: float = DriftParams.phi
    persistence: float = DriftParams.persistence
    sinks: int = DriftParams.sinks
    recent: int = DriftParams.recent
    variation: str = "high"
    traces: tuple[str, ...] = ()
    rule: str = "topk"
    weights: str = "pinned"
    experts: str = "free"
    expert_skew: float = 1.0
    expert_persistence: float = 0.5
    compute_floor: bool = False
    hbm_fraction: float | None = None
    mode: str = "exclusive"
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option that is out of range."""
        _need(len(self.requests) >= 1, "requests", "at least one request")
        for r, q in enumerate(self.requests):
            _need(q.prompt_tokens >= 0, "prompt-tokens", f"request {r}: must be >= 0")
            _need(q.output_tokens >= 1, "output-tokens", f"request {r}: must be >= 1")
            _need(q.arrival_step >= 0, "arrival", f"request {r}: must be >= 0")
        _need(self.block_tokens >= 1, "block-tokens", "must be >= 1")
        _need(self.access in ACCESS_MODELS, "access", f"must be one of {', '.join(ACCESS_MODELS)}")
        _need(0.0 <= self.sparsity < 1.0, "sparsity", "must be in [0, 1)")
        _need(0.0 <= self.phi <= 1.0, "phi", "must be in [0, 1]")
        _need(self.persistence >= 0, "persistence", "must be >= 0")
        _need(self.sinks >= 0 and self.recent >= 0, "sinks", "sinks and recent must be >= 0")
        _need(self.variation in VARIATIONS, "variation", f"must be one of {', '.join(VARIATIONS)}")
        _need(self.access != "trace" or len(self.traces) >= 1, "trace",
              "--access trace needs at least one trace file (--trace T.npz)")
        _need(self.access == "trace" or not self.traces, "trace", "trace files are read only with --access trace")
        from hetkv_opt.trace.to_instance import RULES
        _need(self.rule in RULES, "rule", f"unknown rule {self.rule!r} (known: {', '.join(RULES)})")
        _need(self.weights in WEIGHTS, "weights", f"must be one of {', '.join(WEIGHTS)}")
        _need(self.experts in EXPERTS, "experts", f"must be one of {', '.join(EXPERTS)}")
        _need(self.expert_skew > 0, "expert-skew", "must be > 0")
        _need(0.0 <= self.expert_persistence <= 1.0, "expert-persistence", "must be in [0, 1]")
        _need(self.hbm_fraction is None or 0.0 <= self.hbm_fraction <= 1.0, "hbm-fraction", "must be in [0, 1]")
        _need(self.mode in ("exclusive", "inclusive"), "mode", "must be exclusive or inclusive")

    def access_model(self) -> AccessModel:
        """The built-in access model these parameters name."""
        if self.access == "paper":
            return PaperAccess(sparsity=self.sparsity, variation=self.variation)
        if self.access == "trace":
            from hetkv_opt.workloads.trace_replay import TraceAccess
            return TraceAccess.from_files(self.traces, rule=self.rule, sparsity=self.sparsity,
                                          model_layers=load_model(self.model).layers)
        return DriftAccess(sparsity=self.sparsity, phi=self.phi, persistence=self.persistence,
                           sinks=self.sinks, recent=self.recent)


def _layer_ids(layers, model: ModelSpec) -> np.ndarray:
    if layers is None:
        return np.arange(model.layers, dtype=np.int64)
    if isinstance(layers, (int, np.integer)):
        _need(1 <= layers <= model.layers, "layers", f"must be 1..{model.layers} for {model.name}")
        return np.arange(int(layers), dtype=np.int64)
    ids = np.asarray(list(layers), np.int64)
    _need(ids.size >= 1, "layers", "at least one layer")
    _need(bool(np.all((ids >= 0) & (ids < model.layers))), "layers",
          f"layer indices must be in 0..{model.layers - 1} for {model.name}")
    _need(np.unique(ids).size == ids.size and bool(np.all(np.diff(ids) > 0)), "layers",
          "layer indices must be increasing and distinct")
    return ids


def _describe(access) -> dict:
    if callable(getattr(access, "describe", None)):
        return dict(access.describe())
    d = {"name": type(access).__name__}
    if dataclasses.is_dataclass(access):
        d.update(asdict(access))
    return d


# ----------------------------------------------------------------------------- the plan

@dataclass
class WorkloadPlan:
    """The static part of a workload instance and a generator of its accesses, step by step.

    Built by :func:`plan_workload`; :func:`build_workload` and :func:`write_workload`
    consume it.  ``items`` and ``epochs`` are the arrays of the instance file.
    """

    name: str
    mode: str
    tiers: list
    num_steps: int
    num_epochs: int
    items: dict
    epochs: dict
    metadata: dict
    params: WorkloadParams
    model: ModelSpec
    hardware: HardwareSpec
    access: Any
    layer_ids: np.ndarray
    kv_offset: np.ndarray
    weight_offset: int
    expert_offset: int
    _seeds: Any = field(repr=False, default=None)

    def chunks(self) -> Iterator[tuple[int, tuple, tuple]]:
        """Yield ``(step, (read_epoch, read_item, read_bytes), (write_epoch, ...))`` for
        every decode step, each sorted by (epoch, item)."""
        p, m = self.params, self.model
        L = self.layer_ids.size
        B = p.block_tokens
        kvb = m.kv_bytes_per_token_layer()
        reqs = p.requests
        arange_l = np.arange(L, dtype=np.int64)
        access_ss, router_ss = self._seeds
        req_seeds = access_ss.spawn(len(reqs))
        route_seeds = router_ss.spawn(len(reqs) + 1)
        moe = m.is_moe and p.experts != "none"
        X, K = m.experts, m.top_k
        if moe:
            router = ExpertRouter(p.expert_skew, p.expert_persistence)
            log_pop = router.popularity(L, X, np.random.default_rng(route_seeds[-1]))
        w_size = self.items["size_bytes"][self.weight_offset] if p.weights != "none" else 0
        ex_size = m.expert_bytes()
        by_arrival = sorted(range(len(reqs)), key=lambda r: (reqs[r].arrival_step, r))
        nxt = 0
        active: dict[int, tuple] = {}
        empty = np.zeros(0, np.int64)
        for t in range(self.num_steps):
            while nxt < len(by_arrival) and reqs[by_arrival[nxt]].arrival_step == t:
                r = by_arrival[nxt]
                nxt += 1
                fn = self.access.for_request(r, reqs[r], self.layer_ids, B,
                                             np.random.default_rng(req_seeds[r]))
                route = (router.for_request(log_pop, K, np.random.default_rng(route_seeds[r]))
                         if moe else None)
                active[r] = (fn, route)
            re, ri, rb, we, wi, wb = [], [], [], [], [], []
            mask = np.zeros((L, X), bool) if moe else None
            e0 = t * L
            for r in sorted(active):
                q = reqs[r]
                fn, route = active[r]
                trel = t - q.arrival_step
                ctx = q.prompt_tokens + trel + 1
                cnt = self._check(np.asarray(fn(trel, ctx)), r, trel, ctx, L, B)
                jj, gg = np.nonzero(cnt)
                re.append(e0 + jj)
                ri.append(self.kv_offset[r] + gg * L + jj)
                rb.append(cnt[jj, gg] * kvb)
                tail = (ctx - 1) // B
                we.append(e0 + arange_l)
                wi.append(self.kv_offset[r] + tail * L + arange_l)
                wb.append(np.full(L, kvb, np.int64))
                if moe:
                    mask[arange_l[:, None], route(trel)] = True
            if active and p.weights != "none":
                re.append(e0 + arange_l)
                ri.append(self.weight_offset + arange_l)
                rb.append(np.full(L, w_size, np.int64))
            if moe and active:
                jj, xx = np.nonzero(mask)
                re.append(e0 + jj)
                ri.append(self.expert_offset + jj * X + xx)
                rb.append(np.full(jj.size, ex_size, np.int64))
            reads = _sorted(re, ri, rb, empty)
            writes = _sorted(we, wi, wb, empty)
            for r in [r for r in active if t - reqs[r].arrival_step + 1 >= reqs[r].output_tokens]:
                del active[r]
            yield t, reads, writes

    def _check(self, cnt: np.ndarray, r: int, t: int, ctx: int, L: int, B: int) -> np.ndarray:
        alive = -(-ctx // B)
        who = f"access model {type(self.access).__name__}: request {r}, step {t}"
        if cnt.shape != (L, alive):
            raise ValueError(f"{who}: returned shape {cnt.shape}, expected {(L, alive)}")
        if cnt.dtype.kind not in "iu":
            raise ValueError(f"{who}: returned {cnt.dtype}, expected integer token counts")
        filled = _filled(ctx, B)
        if cnt.size and (cnt.min() < 0 or np.any(cnt > filled)):
            raise ValueError(f"{who}: token counts must be in 0..tokens held by the block")
        return cnt.astype(np.int64, copy=False)


def _sorted(es, is_, bs, empty):
    if not es:
        return empty, empty, empty
    e, i, b = np.concatenate(es), np.concatenate(is_), np.concatenate(bs)
    order = np.lexsort((i, e))
    return e[order], i[order], b[order]


def plan_workload(params: WorkloadParams | None = None, *, access_model: AccessModel | None = None,
                  name: str | None = None, **kw) -> WorkloadPlan:
    """Resolve presets, lay out items and epochs, and check capacities.

    Raises
    ------
    ValueError
        (:class:`hetkv_opt.presets.PresetError` for presets) naming the option and reason.
    """
    p = params or WorkloadParams(**{k: (tuple(v) if k == "requests" else v) for k, v in kw.items()})
    if params is not None and kw:
        p = dataclasses.replace(params, **kw)
    if not isinstance(p.requests, tuple):
        p = dataclasses.replace(p, requests=tuple(p.requests))
    if isinstance(p.layers, list):
        p = dataclasses.replace(p, layers=tuple(p.layers))
    p.validate()
    model = load_model(p.model)
    hw = load_hardware(p.hardware)
    access = access_model if access_model is not None else p.access_model()
    lid = _layer_ids(p.layers, model)
    L = int(lid.size)
    B = p.block_tokens
    reqs = p.requests
    S = max(q.arrival_step + q.output_tokens for q in reqs)
    E = S * L

    # KV blocks: item of (request r, block g, layer position j) = kv_offset[r] + g * L + j
    P = np.array([q.prompt_tokens for q in reqs], np.int64)
    O = np.array([q.output_tokens for q in reqs], np.int64)
    A = np.array([q.arrival_step for q in reqs], np.int64)
    nb = -(-(P + O) // B)
    kv_offset = np.concatenate([[0], np.cumsum(nb * L)]).astype(np.int64)
    n_kv = int(kv_offset[-1])
    # sizes, before anything of their size is allocated
    if E > MAX_EPOCHS:
        raise ValueError(f"workload: option 'output-tokens': {S} steps x {L} layers = {E:,} "
                         f"epochs: at most {MAX_EPOCHS:,}")
    if n_kv > MAX_ITEMS:
        raise ValueError(f"workload: option 'batch': {len(reqs)} request(s) of {L} layers make "
                         f"{n_kv:,} KV blocks: at most {MAX_ITEMS:,} items")
    req_of = np.repeat(np.arange(len(reqs)), nb * L)
    local = np.arange(n_kv) - kv_offset[req_of]
    blk = local // L
    lay = local % L
    first_tok = blk * B
    prompt_blk = first_tok < P[req_of]
    born_step = A[req_of] + np.maximum(first_tok - P[req_of], 0)
    kv_birth = np.where(prompt_blk, A[req_of] * L, born_step * L + lay)
    kv_death = (A[req_of] + O[req_of]) * L
    kvb = model.kv_bytes_per_token_layer()

    sizes = [np.full(n_kv, B * kvb, np.int64)]
    births, deaths = [kv_birth], [kv_death]
    pins = [np.full(n_kv, -1, np.int64)]
    kinds = [np.full(n_kv, "kv")]
    layers = [lid[lay]]
    requests = [req_of.astype(np.int64)]
    blocks = [blk]
    weight_offset = n_kv
    if p.weights != "none":
        sizes.append(np.full(L, model.weight_bytes_per_layer(), np.int64))
        births.append(np.zeros(L, np.int64))
        deaths.append(np.full(L, E, np.int64))
        pins.append(np.full(L, 0 if p.weights == "pinned" else -1, np.int64))
        kinds.append(np.full(L, "weight"))
        layers.append(lid)
        requests.append(np.full(L, -1, np.int64))
        blocks.append(np.full(L, -1, np.int64))
    expert_offset = weight_offset + (L if p.weights != "none" else 0)
    if model.is_moe and p.experts != "none":
        X = model.experts
        sizes.append(np.full(L * X, model.expert_bytes(), np.int64))
        births.append(np.zeros(L * X, np.int64))
        deaths.append(np.full(L * X, E, np.int64))
        pins.append(np.full(L * X, -1, np.int64))
        kinds.append(np.full(L * X, "expert"))
        layers.append(np.repeat(lid, X))
        requests.append(np.full(L * X, -1, np.int64))
        blocks.append(np.tile(np.arange(X, dtype=np.int64), L))     # the expert's index
    size = np.concatenate(sizes)
    birth = np.concatenate(births)
    death = np.concatenate(deaths)
    pinned = np.concatenate(pins)

    # capacities: tier 0 from the preset, or pinned bytes + a fraction of the peak unpinned bytes
    tiers = hw.tier_dicts()
    pinned_bytes = int(size[pinned == 0].sum())
    free = pinned < 0
    alive_free = np.zeros(E + 1, np.int64)
    np.add.at(alive_free, birth[free], size[free])
    np.add.at(alive_free, death[free], -size[free])
    peak_free = int(np.cumsum(alive_free)[:E].max()) if free.any() else 0
    if p.hbm_fraction is not None:
        tiers[0]["capacity_bytes"] = pinned_bytes + int(math.floor(p.hbm_fraction * peak_free))
    cap0 = tiers[0]["capacity_bytes"]
    if cap0 is not None and pinned_bytes > cap0:
        raise ValueError(f"workload: option 'weights': the pinned weights of {model.name} "
                         f"({pinned_bytes / 1e9:.3g} GB) exceed tier 0 '{tiers[0]['name']}' of "
                         f"{hw.name} ({cap0 / 1e9:.3g} GB); use --weights free, fewer --layers, "
                         f"or another --hardware")
    caps = [t["capacity_bytes"] for t in tiers]
    if p.mode == "exclusive" and all(c is not None for c in caps) and pinned_bytes + peak_free > sum(caps):
        raise ValueError(f"workload: option 'hardware': {hw.name} holds {sum(caps) / 1e9:.4g} GB in all "
                         f"tiers, but the workload needs {(pinned_bytes + peak_free) / 1e9:.4g} GB at its peak")

    step_of_epoch = np.repeat(np.arange(S, dtype=np.int64), L)
    epochs = {"step": step_of_epoch, "layer": np.tile(lid, S)}
    if p.compute_floor:
        if hw.peak_flops is None:
            raise ValueError(f"workload: option 'compute-floor': hardware {hw.name} has no peak_flops")
        flops = np.zeros(S)
        for q in reqs:
            ctx = q.prompt_tokens + np.arange(1, q.output_tokens + 1)
            flops[q.arrival_step:q.arrival_step + q.output_tokens] += model.flops_per_token_layer(ctx)
        epochs["min_time_s"] = flops[step_of_epoch] / hw.peak_flops
    item_arrays = {"size_bytes": size, "birth": birth, "death": death, "pinned_tier": pinned,
                   "kind": np.concatenate(kinds), "layer": np.concatenate(layers),
                   "request": np.concatenate(requests), "block": np.concatenate(blocks)}
    if name is None:
        name = (f"{model.name}-{hw.name}-r{len(reqs)}-S{S}-L{L}-{p.access if access_model is None else 'custom'}"
                f"-s{round(100 * p.sparsity)}-seed{p.seed}")
    params_d = asdict(p)
    metadata = {"generator": "hetkv_opt.workloads.requests", "params": params_d,
                "model": model.name, "model_source": model.source,
                "hardware": hw.name, "hardware_source": hw.source,
                "kv_bytes_per_token": kvb, "block_bytes": B * kvb,
                "weight_bytes_per_layer": model.weight_bytes_per_layer(),
                "expert_bytes": model.expert_bytes(), "access_model": _describe(access),
                "peak_free_bytes": peak_free, "pinned_bytes": pinned_bytes}
    metadata = json.loads(json.dumps(metadata))      # as a file gives it back (lists, not tuples)
    root = np.random.SeedSequence(p.seed)
    return WorkloadPlan(name=name, mode=p.mode, tiers=tiers, num_steps=S, num_epochs=E,
                        items=item_arrays, epochs=epochs, metadata=metadata, params=p,
                        model=model, hardware=hw, access=access, layer_ids=lid,
                        kv_offset=kv_offset, weight_offset=weight_offset,
                        expert_offset=expert_offset, _seeds=tuple(root.spawn(2)))


def build_workload(params: WorkloadParams | None = None, *, access_model: AccessModel | None = None,
                   name: str | None = None, progress: Callable[[int, int], None] | None = None,
                   **kw) -> Instance:
    """Build a workload instance in memory (see the module docstring; small and medium sizes).

    Parameters
    ----------
    params : WorkloadParams, optional
        Or its fields as keyword arguments (``requests`` as a list of :class:`Request`).
    access_model : AccessModel, optional
        Overrides ``params.access`` (e.g. a trace replay).
    name : str, optional
    progress : callable(step_done, steps), optional

    Returns
    -------
    Instance
    """
    plan = plan_workload(params, access_model=access_model, name=name, **kw)
    parts = ([], [], [], [], [], [])
    for t, reads, writes in plan.chunks():
        for lst, arr in zip(parts, (*reads, *writes)):
            lst.append(arr)
        if progress is not None:
            progress(t + 1, plan.num_steps)
    cat = [np.concatenate(x) if x else np.zeros(0, np.int64) for x in parts]
    items = plan.items
    return make_instance(
        name=plan.name, mode=plan.mode, tiers=plan.tiers, size_bytes=items["size_bytes"],
        num_epochs=plan.num_epochs, birth=items["birth"], death=items["death"],
        pinned_tier=items["pinned_tier"], min_time_s=plan.epochs.get("min_time_s"),
        reads=tuple(cat[:3]), writes=tuple(cat[3:]),
        item_labels={k: items[k] for k in ("kind", "layer", "request", "block")},
        epoch_labels={k: plan.epochs[k] for k in ("step", "layer")}, metadata=plan.metadata)


def write_workload(path, params: WorkloadParams | None = None, *, access_model: AccessModel | None = None,
                   name: str | None = None, progress: Callable[[int, int], None] | None = None,
                   compresslevel: int = 6, **kw) -> dict:
    """Build a workload and write it: NPZ and the sharded layout (a ``.hetkv`` folder,
    :mod:`hetkv_opt.io.shards_stream`) are streamed step by step (never the whole read
    list in memory); JSON is built in memory first.

    Returns
    -------
    dict
        ``path, name, items, epochs, steps, reads, writes, read_bytes, write_bytes,
        tier0_capacity_bytes, sha256`` (the :func:`hetkv_opt.io.files.instance_hash`).
    """
    from pathlib import Path
    from hetkv_opt.io.files import instance_hash, save_instance
    from hetkv_opt.io.npz_stream import NpzInstanceWriter
    from hetkv_opt.io.shards_stream import ShardedInstanceWriter
    path = Path(path)
    plan = plan_workload(params, access_model=access_model, name=name, **kw)
    summary = {"path": str(path), "name": plan.name, "model": plan.model.name,
               "hardware": plan.hardware.name, "requests": len(plan.params.requests),
               "layers": int(plan.layer_ids.size), "steps": plan.num_steps,
               "items": int(plan.items["size_bytes"].size), "epochs": plan.num_epochs,
               "tier0_capacity_bytes": plan.tiers[0]["capacity_bytes"]}
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".hetkv"):
        inst = build_workload(plan.params, access_model=access_model, name=plan.name, progress=progress)
        save_instance(inst, path)
        summary.update(reads=int(inst.read_bytes.size), writes=int(inst.write_bytes.size),
                       read_bytes=int(inst.read_bytes.sum()), write_bytes=int(inst.write_bytes.sum()),
                       sha256=instance_hash(inst))
        return summary
    items = dict(plan.items)
    writer = ShardedInstanceWriter if suffix == ".hetkv" else NpzInstanceWriter
    with writer(path, name=plan.name, tiers=plan.tiers, num_epochs=plan.num_epochs,
                           items=items, epochs=plan.epochs, mode=plan.mode, metadata=plan.metadata,
                           compresslevel=compresslevel) as w:
        for t, reads, writes in plan.chunks():
            w.add_reads(*reads)
            w.add_writes(*writes)
            if progress is not None:
                progress(t + 1, plan.num_steps)
    summary.update(reads=w.counts["reads"], writes=w.counts["writes"],
                   read_bytes=w.totals_bytes["reads"], write_bytes=w.totals_bytes["writes"],
                   sha256=w.sha256)
    return summary


# The paper's workload (docs/paper.md, "Its workload"): Llama-3.1-8B on GH200, one request with a
# 31,299-token prompt decoded for 10,240 steps, 16-token pages, 32 layers, 60% sparsity.
PAPER_WORKLOAD = {"model": "llama-3.1-8b", "hardware": "gh200-paper", "batch": 1,
                  "prompt_tokens": 31299, "output_tokens": 10240, "block_tokens": 16,
                  "sparsity": 0.6}


def paper_workload_params(**overrides) -> WorkloadParams:
    """:class:`WorkloadParams` of the paper's full-scale workload (overrides allowed).

    >>> p = paper_workload_params()
    >>> p.requests[0], p.block_tokens, p.sparsity
    (Request(prompt_tokens=31299, output_tokens=10240, arrival_step=0), 16, 0.6)
    """
    w = PAPER_WORKLOAD
    kw = dict(model=w["model"], hardware=w["hardware"], block_tokens=w["block_tokens"],
              sparsity=w["sparsity"],
              requests=(Request(w["prompt_tokens"], w["output_tokens"], 0),))
    kw.update(overrides)
    return WorkloadParams(**kw)


__all__ = ["ACCESS_MODELS", "AccessModel", "DriftAccess", "ExpertRouter", "PAPER_WORKLOAD",
           "PaperAccess", "Request", "WorkloadParams", "WorkloadPlan", "build_workload",
           "make_requests", "paper_workload_params", "plan_workload", "sample_arrivals",
           "sample_lengths", "write_workload"]
