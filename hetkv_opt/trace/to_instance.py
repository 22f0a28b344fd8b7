"""From a recorded attention trace to a placement instance, by a read-selection rule.

A trace (:mod:`hetkv_opt.trace.capture`) keeps, for every decode step and layer, the attention of
the new query over the cache.  A *rule* turns one (step, layer) of scores into the set of
tokens read (at sparsity ``s`` the token budget is ``n = max(1, round((1 - s) x ctx))``):

- ``topk`` -- the paper's rule (docs/paper.md): the top ``n`` tokens by the head-averaged
  score (:func:`select_topk`);
- ``kv-union`` -- the top ``n`` tokens of every KV head by its group's score, united: what
  a kernel that selects per KV head has to read (:func:`select_kv_union`);
- ``quest`` -- Quest-style pages (Tang et al., "Quest: Query-Aware Sparsity for Efficient
  Long-Context LLM Inference", ICML 2024): a page's score is the max of its tokens' scores
  over all query heads; whole pages are read, best first, until they hold ``n`` tokens
  (:func:`select_quest`).

Ties are broken by position (earlier first), so the same trace and rule give the same
instance.  The instance follows :mod:`hetkv_opt.workloads.paper`:

- **epochs** are (decode step, layer) pairs, step-major; labels ``step`` and ``layer``
  (the model's layer index);
- **KV items** are pages of ``block_tokens`` tokens of one layer, each of the full page size
  ``block_tokens x kv_bytes_per_token``, with ``kv_bytes_per_token = 2 (K and V) x kv_heads
  x head_dim x dtype_bytes`` (GQA-correct).  Prompt pages exist at epoch 0; a decode page
  is born at the epoch whose new token opens it;
- **reads**: a page's read bytes are its selected tokens x ``kv_bytes_per_token`` (for
  ``quest``, every token it holds);
- **writes**: the new token's K and V (``kv_bytes_per_token``) land in its layer's tail page;
- **weights** (``weights="pinned"``): one item per layer, pinned to HBM and read whole at
  each of its epochs, sized from the model config like
  :meth:`hetkv_opt.presets.ModelSpec.weight_bytes_per_layer`;
- **tiers** from a hardware preset (:func:`hetkv_opt.presets.load_hardware`); HBM capacity
  = the weights + ``hbm_fraction`` of the final KV cache (so small traces are not trivial),
  or ``hbm_bytes``, or the preset's own capacity (``hbm_fraction=None``).

Examples
--------
>>> import numpy as np
>>> kv = np.array([[0.1, 0.5, 0.2, 0.2], [0.4, 0.1, 0.3, 0.2]])   # 2 KV heads x 4 tokens
>>> np.flatnonzero(select_topk(kv, 2))          # head-averaged: 0.25, 0.3, 0.25, 0.2
array([0, 1])
>>> np.flatnonzero(select_kv_union(kv, 1))      # head 0 -> token 1, head 1 -> token 0
array([0, 1])
>>> np.flatnonzero(select_quest(np.array([0.1, 0.9, 0.2, 0.3, 0.05]), 3, block_tokens=2))
array([0, 1, 2, 3])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hetkv_opt.model.instance import Instance, make_instance
from hetkv_opt.trace.capture import Trace

RULES = ("topk", "kv-union", "quest")


# ----------------------------------------------------------------------------- rules

def token_budget(context_tokens: int, sparsity: float) -> int:
    """Tokens read at one (step, layer): ``max(1, round((1 - sparsity) x context))``.

    >>> token_budget(10, 0.6), token_budget(3, 0.99), token_budget(5, 0.5)
    (4, 1, 3)
    """
    return max(1, min(context_tokens, int(math.floor((1.0 - sparsity) * context_tokens + 0.5))))


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest scores, ties to the earlier position."""
    return np.argsort(-score, kind="stable")[:n]


def select_topk(kv_mean: np.ndarray, budget: int) -> np.ndarray:
    """The paper's rule: the ``budget`` tokens with the largest head-averaged score.

    Parameters
    ----------
    kv_mean : ndarray, shape (K, ctx)
        Per KV head, the attention averaged over its query group (groups are equal, so the
        mean over ``K`` is the mean over all query heads).
    budget : int

    Returns
    -------
    ndarray of bool, shape (ctx,)
    """
    mask = np.zeros(kv_mean.shape[1], bool)
    mask[_top(kv_mean.mean(axis=0), budget)] = True
    return mask


def select_kv_union(kv_mean: np.ndarray, budget: int) -> np.ndarray:
    """Per KV head the ``budget`` best tokens by that head's group score, united.

    Between ``budget`` and ``K x budget`` tokens are read: KV heads that agree read less.
    """
    mask = np.zeros(kv_mean.shape[1], bool)
    for row in kv_mean:
        mask[_top(row, budget)] = True
    return mask


def select_quest(head_max: np.ndarray, budget: int, block_tokens: int) -> np.ndarray:
    """Quest-style pages: page score = max over its tokens (and all heads); whole pages
    are read, best first (ties: earlier page), until they hold ``budget`` tokens.

    Parameters
    ----------
    head_max : ndarray, shape (ctx,)
        Per token, the attention maximised over all query heads.
    budget : int
    block_tokens : int
        Tokens per page; page ``g`` holds tokens ``g x B .. (g + 1) x B - 1`` (the last one
        may be partly filled).
    """
    ctx = head_max.shape[0]
    pages = -(-ctx // block_tokens)
    padded = np.full(pages * block_tokens, -np.inf)
    padded[:ctx] = head_max
    page_score = padded.reshape(pages, block_tokens).max(axis=1)
    filled = np.minimum(block_tokens, ctx - np.arange(pages) * block_tokens)
    order = _top(page_score, pages)
    # the first pages in order whose cumulative size reaches the budget
    take = order[: int(np.searchsorted(np.cumsum(filled[order]), budget)) + 1]
    mask = np.zeros(pages * block_tokens, bool).reshape(pages, block_tokens)
    mask[take] = True
    return mask.reshape(-1)[:ctx]


def select(rule: str, kv_mean: np.ndarray, head_max: np.ndarray, budget: int,
           block_tokens: int) -> np.ndarray:
    """Apply a rule by name (one of :data:`RULES`) to one (step, layer) of scores."""
    if rule == "topk":
        return select_topk(kv_mean, budget)
    if rule == "kv-union":
        return select_kv_union(kv_mean, budget)
    if rule == "quest":
        return select_quest(head_max, budget, block_tokens)
    raise ValueError(f"trace-to-instance: option 'rule': unknown rule {rule!r} "
                     f"(known: {', '.join(RULES)})")


# ----------------------------------------------------------------------------- instance

@dataclass(frozen=True)
class TraceInstanceParams:
    """How to turn a trace into an instance.

    Parameters
    ----------
    rule : {"topk", "kv-union", "quest"}
    sparsity : float
        Fraction of the context not read per (step, layer), in [0, 1).
    block_tokens : int
        Tokens per KV page.
    hardware : str
        A hardware preset name or TOML path (:func:`hetkv_opt.presets.load_hardware`).
    hbm_fraction : float or None
        HBM room for KV after the weights, as a fraction of the final KV cache (rounded
        down to whole pages); ``None``: the preset's own capacity (unless ``hbm_bytes``).
    hbm_bytes : int or None
        HBM capacity in bytes (overrides ``hbm_fraction``).
    weights : {"pinned", "none"}
        One weight item per layer pinned to HBM, or none.
    layers : tuple of int or None
        Model layers to keep (must have been recorded); default every recorded layer.
    steps : int or None
        Keep the first ``steps`` decode steps; default all.
    dtype_bytes : int or None
        Bytes per KV and weight element; default the traced model's dtype.
    """

    rule: str = "topk"
    sparsity: float = 0.6
    block_tokens: int = 16
    hardware: str = "gh200-paper"
    hbm_fraction: float | None = 0.3
    hbm_bytes: int | None = None
    weights: str = "pinned"
    layers: tuple[int, ...] | None = None
    steps: int | None = None
    dtype_bytes: int | None = None

    def validate(self) -> None:
        def need(cond, name, why):
            if not cond:
                raise ValueError(f"trace-to-instance: option '{name}': {why}")
        need(self.rule in RULES, "rule", f"unknown rule {self.rule!r} (known: {', '.join(RULES)})")
        need(isinstance(self.sparsity, (int, float)) and 0.0 <= self.sparsity < 1.0,
             "sparsity", f"must be in [0, 1), got {self.sparsity}")
        need(self.block_tokens >= 1, "block_tokens", "must be >= 1")
        need(self.hbm_fraction is None or 0.0 <= self.hbm_fraction <= 1.0, "hbm_fraction",
             "must be in [0, 1]")
        need(self.hbm_bytes is None or self.hbm_bytes >= 0, "hbm_bytes", "must be >= 0")
        need(self.weights in ("pinned", "none"), "weights", "must be pinned or none")
        need(self.steps is None or self.steps >= 1, "steps", "must be >= 1")
        need(self.dtype_bytes is None or self.dtype_bytes >= 1, "dtype_bytes", "must be >= 1")
        need(self.layers is None or len(self.layers) >= 1, "layers", "must name a layer")


def weight_bytes_per_layer(model: dict, dtype_bytes: int) -> int:
    """Bytes of one Llama-style layer's weights from a traced model's config: q and o
    (hidden x heads x head_dim), k and v (hidden x kv_heads x head_dim), a SwiGLU MLP
    (3 x hidden x intermediate) and two norms (2 x hidden); as
    :meth:`hetkv_opt.presets.ModelSpec.weight_bytes_per_layer` for a dense model.

    >>> weight_bytes_per_layer({"hidden_size": 576, "num_heads": 9, "num_kv_heads": 3,
    ...                         "head_dim": 64, "intermediate_size": 1536}, 2)
    7080192
    """
    h, hd = model["hidden_size"], model["head_dim"]
    params = (2 * h * model["num_heads"] * hd + 2 * h * model["num_kv_heads"] * hd
              + 3 * h * model["intermediate_size"] + 2 * h)
    return int(params * dtype_bytes)


def trace_instance(trace: Trace, params: TraceInstanceParams | None = None, *,
                   name: str | None = None, trace_file: str | None = None, **kw) -> Instance:
    """Build a placement instance from a trace and a read-selection rule.

    Parameters
    ----------
    trace : Trace
    params : TraceInstanceParams, optional
        Or its fields as keyword arguments.
    name : str, optional
        Default ``trace-{prompt}-{rule}-s{sparsity %}``.
    trace_file : str, optional
        Recorded in the metadata (with the trace's SHA-256).

    Returns
    -------
    Instance
        Exclusive mode, the preset's tiers; items labelled ``kind`` (kv | weight),
        ``layer``, ``block``; epochs labelled ``step`` and ``layer``.  The metadata holds
        the provenance: trace file and hash, model, prompt, rule, sparsity, the read
        fraction achieved.

    Raises
    ------
    ValueError
        An option out of range, or layers / steps the trace does not have.
    """
    from hetkv_opt.presets import load_hardware
    p = params or TraceInstanceParams(**kw)
    p.validate()
    model = dict(trace.metadata["model"])
    recorded = [int(x) for x in trace.layers]
    keep = list(recorded) if p.layers is None else sorted(set(int(x) for x in p.layers))
    missing = [x for x in keep if x not in recorded]
    if missing:
        raise ValueError(f"trace-to-instance: option 'layers': layer {missing[0]} was not "
                         f"recorded (recorded: {_ranges(recorded)})")
    S = trace.num_steps if p.steps is None else p.steps
    if S > trace.num_steps:
        raise ValueError(f"trace-to-instance: option 'steps': the trace has only "
                         f"{trace.num_steps} steps, asked for {S}")
    hw = load_hardware(p.hardware)
    pos = [recorded.index(x) for x in keep]
    L, P, B = len(keep), trace.prompt_tokens, p.block_tokens
    dtype_bytes = p.dtype_bytes or int(model.get("dtype_bytes", 2))
    tok_bytes = 2 * model["num_kv_heads"] * model["head_dim"] * dtype_bytes
    page_bytes = B * tok_bytes
    pages = -(-(P + S) // B)                 # pages per layer after the last step's append
    n_kv = L * pages
    # items: page g of kept layer j is g * L + j; then one weight item per layer
    page_of_item = np.repeat(np.arange(pages), L)
    lpos_of_item = np.tile(np.arange(L), pages)
    birth_step = np.maximum(page_of_item * B - P, 0)   # the step whose token opens the page
    kv_birth = birth_step * L + lpos_of_item
    w_bytes = weight_bytes_per_layer(model, dtype_bytes) if p.weights == "pinned" else 0
    n_w = L if p.weights == "pinned" else 0

    r_e, r_i, r_b = [], [], []
    read_tokens = 0
    total_ctx = 0
    for s in range(S):
        ctx = P + s + 1
        n = token_budget(ctx, p.sparsity)
        tok_page = np.arange(ctx) // B
        for j, lp in enumerate(pos):
            kv_mean, head_max = trace.scores(s, lp)
            mask = select(p.rule, kv_mean, head_max, n, B)
            cnt = np.bincount(tok_page[mask], minlength=pages)
            pg = np.flatnonzero(cnt)
            e = s * L + j
            r_e.append(np.full(pg.size + (1 if n_w else 0), e))
            r_i.append(np.concatenate([pg * L + j, [n_kv + j] if n_w else []]).astype(np.int64))
            r_b.append(np.concatenate([cnt[pg] * tok_bytes, [w_bytes] if n_w else []]).astype(np.int64))
            read_tokens += int(mask.sum())
            total_ctx += ctx
    E = S * L
    steps_arr = np.repeat(np.arange(S), L)
    lpos_arr = np.tile(np.arange(L), S)
    # the new token of step s (index P + s) lands in its layer's page (P + s) // B
    w_e = np.arange(E)
    w_i = ((P + steps_arr) // B) * L + lpos_arr

    layer_ids = np.asarray(keep, np.int64)
    size = np.concatenate([np.full(n_kv, page_bytes, np.int64), np.full(n_w, w_bytes, np.int64)])
    birth = np.concatenate([kv_birth, np.zeros(n_w, np.int64)])
    pinned = np.concatenate([np.full(n_kv, -1, np.int64), np.zeros(n_w, np.int64)])
    tiers = hw.tier_dicts()
    if p.hbm_bytes is not None:
        tiers[0]["capacity_bytes"] = int(p.hbm_bytes)
        capacity_rule = "hbm_bytes"
    elif p.hbm_fraction is not None:
        tiers[0]["capacity_bytes"] = n_w * w_bytes + int(math.floor(p.hbm_fraction * n_kv)) * page_bytes
        capacity_rule = f"weights + {p.hbm_fraction:g} x final KV cache (whole pages)"
    else:
        capacity_rule = f"hardware preset {hw.name}"
    kind = np.array(["kv"] * n_kv + ["weight"] * n_w)
    prompt = trace.metadata.get("prompt") or {}
    inst_name = name or f"trace-{prompt.get('name') or 'prompt'}-{p.rule}-s{round(100 * p.sparsity)}"
    meta = {
        "generator": "hetkv_opt.trace.to_instance.trace_instance",
        "params": {**asdict(p), "layers": keep, "steps": S, "dtype_bytes": dtype_bytes},
        "trace_file": trace_file, "trace_sha256": trace.sha256,
        "model": {k: model.get(k) for k in ("name", "num_layers", "num_heads", "num_kv_heads",
                                             "head_dim", "hidden_size", "intermediate_size",
                                             "dtype")},
        "prompt_name": prompt.get("name"), "prompt_tokens": P,
        "generated_text": (trace.metadata.get("generation") or {}).get("text"),
        "kv_bytes_per_token": tok_bytes, "weight_bytes_per_layer": w_bytes,
        "read_fraction_tokens": round(read_tokens / max(total_ctx, 1), 6),
        "hbm_capacity_rule": capacity_rule, "hardware": hw.name, "hardware_source": hw.source,
        "versions": trace.metadata.get("versions"),
    }
    return make_instance(
        name=inst_name, tiers=tiers, size_bytes=size, num_epochs=E, birth=birth,
        pinned_tier=pinned,
        reads=(np.concatenate(r_e), np.concatenate(r_i), np.concatenate(r_b)),
        writes=(w_e, w_i, np.full(E, tok_bytes, np.int64)),
        item_labels={"kind": kind,
                     "layer": np.concatenate([layer_ids[lpos_of_item], layer_ids[:n_w]]),
                     "block": np.concatenate([page_of_item, np.full(n_w, -1)])},
        epoch_labels={"step": steps_arr, "layer": layer_ids[lpos_arr]},
        metadata=meta)


def _ranges(xs: list[int]) -> str:
    return ",".join(str(x) for x in xs) if len(xs) <= 8 else f"{xs[0]}..{xs[-1]} ({len(xs)} layers)"


__all__ = ["RULES", "TraceInstanceParams", "select", "select_kv_union", "select_quest",
           "select_topk", "token_budget", "trace_instance", "weight_bytes_per_layer"]
