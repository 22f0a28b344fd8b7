"""A Llama-3.1-8B-like decode workload on GH200, after Fang et al. (arXiv 2508.13231).

The paper (docs/paper.md) simulates Llama-3.1-8B decoding a 31,299-token prompt for 10,240 steps
on a GH200: per (decode step, layer) the read set is the top (100 - s)% of tokens by
attention score, weights are read every step from HBM (about 41% of the read bytes), HBM
(4900 GB/s) and LPDDR5X (500 GB/s behind a 450 GB/s NVLink-C2C) are read at the same time,
and a step lasts as long as the slower side.  This module builds the same kind of trace,
scaled down so that an exact MILP and an LP bound are within reach:

- **epochs** are (decode step, layer) pairs, in order; labels ``step`` and ``layer``;
- **KV items** are 16-token pages of one layer, each the full page size
  ``block_tokens x kv_bytes_per_token`` where ``kv_bytes_per_token = 2 (K and V) x
  kv_heads x head_dim x dtype_bytes`` = 4096 B for Llama-3.1-8B in bf16 (GQA-correct; the
  paper used 16 KiB).  A decode page is born at the epoch of its first token;
- **reads**: at epoch (s, l) the new token attends to the ``prompt_tokens + s + 1`` tokens of
  layer l; the top ``1 - sparsity`` fraction by score is read (attention sinks and a recent
  window always), and a page's read bytes are its read tokens x ``kv_bytes_per_token``;
- **scores** mix a persistent page importance, a drifting page importance (AR(1), the
  set of important tokens changes every step, docs/paper.md) and per-token terms, so important
  tokens cluster in pages as they do in real attention maps;
- **writes**: the new token's K and V (``kv_bytes_per_token``) land in its layer's tail
  page;
- **weights**: one item per layer pinned to HBM and read whole at each of its epochs.  Its
  size is set so that weights are ``weight_share`` (0.41) of the read bytes at
  ``reference_sparsity`` (60%), as in the paper's numbers (its best-case column is
  ``W + (1 - s) K`` with W / (W + 0.4 K) = 0.40 at 60%); the same weights are used at
  every sparsity, so the instances of a sweep differ only in their read sets;
- **HBM capacity** = the weights + ``hbm_kv_fraction`` of the final KV cache (the paper
  sweeps 18-25 GiB for 16 GB of weights, to force pressure).

Examples
--------
>>> inst = paper_instance(layers=2, prompt_tokens=64, steps=8, sparsity=0.6)
>>> inst.num_epochs, int((inst.pinned_tier == 0).sum())
(16, 2)
>>> int(inst.size_bytes[inst.item_labels["kind"] == "kv"][0])   # 16 tokens x 4096 B
65536
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from hetkv_opt.workloads.drift import (BF16_BYTES, HARDWARE, LLAMA31_8B_HEAD_DIM, LLAMA31_8B_KV_HEADS,
                                kv_bytes_per_token_layer)
from hetkv_opt.model.instance import Instance, make_instance

# The paper's published numbers (docs/paper.md, "Its numbers"): seconds for 10,240 steps of
# Llama-3.1-8B, by sparsity; and the tier-0 read shares it reports at 60% sparsity.
PAPER_SECONDS = {
    0.4: {"best": 31.91, "static": 189.70, "reactive": 147.86, "page": 95.91, "sa-guided": 40.31},
    0.5: {"best": 28.25, "static": 166.80, "reactive": 117.07, "page": 69.84, "sa-guided": 34.25},
    0.6: {"best": 24.60, "static": 140.01, "reactive": 85.95, "page": 47.74, "sa-guided": 25.70},
    0.8: {"best": 16.89, "static": 76.15, "reactive": 31.04, "page": 19.62, "sa-guided": 17.35},
    0.9: {"best": 13.43, "static": 39.51, "reactive": 15.72, "page": 13.77, "sa-guided": 13.64},
}
PAPER_HBM_SHARE_AT_60 = {"static": 0.58, "reactive": 0.76, "page": 0.89, "sa-guided": 0.91}


@dataclass(frozen=True)
class PaperParams:
    """Parameters of :func:`paper_instance` (sizes in tokens and bytes).

    Parameters
    ----------
    layers : int
        Transformer layers simulated (Llama-3.1-8B has 32).
    prompt_tokens : int
        Prompt length (paper: 31,299).
    steps : int
        Decode steps (paper: 10,240).
    block_tokens : int
        Tokens per KV page (16, as the paper's page policy).
    kv_heads, head_dim, dtype_bytes : int
        KV heads (GQA: 8), head dimension (128) and bytes per element (bf16: 2).
    sparsity : float
        Fraction of tokens *not* read per (step, layer), in [0, 1).
    weight_share : float
        Share of read bytes that are weights at ``reference_sparsity``.
    reference_sparsity : float
    hbm_kv_fraction : float
        HBM room for KV after the weights, as a fraction of the final KV cache.
    sink_tokens, recent_tokens : int
        Tokens always read at the start and at the end of the context.
    phi : float
        AR(1) coefficient of the drifting page importance (per step).
    page_persistence, page_drift, token_persistence, token_noise : float
        Standard deviations of the score terms.
    hardware : str
        A key of :data:`hetkv_opt.workloads.drift.HARDWARE`.
    seed : int
    """

    layers: int = 4
    prompt_tokens: int = 192
    steps: int = 32
    block_tokens: int = 16
    kv_heads: int = LLAMA31_8B_KV_HEADS
    head_dim: int = LLAMA31_8B_HEAD_DIM
    dtype_bytes: int = BF16_BYTES
    sparsity: float = 0.6
    weight_share: float = 0.41
    reference_sparsity: float = 0.6
    hbm_kv_fraction: float = 0.3
    sink_tokens: int = 4
    recent_tokens: int = 16
    phi: float = 0.9
    page_persistence: float = 1.0
    page_drift: float = 1.0
    token_persistence: float = 0.3
    token_noise: float = 0.3
    hardware: str = "gh200-paper"
    seed: int = 0

    @property
    def kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token_layer(self.kv_heads, self.head_dim, self.dtype_bytes)

    def validate(self) -> None:
        def need(cond, name, why):
            if not cond:
                raise ValueError(f"paper workload: option '{name}': {why}")
        for name in ("layers", "prompt_tokens", "steps", "block_tokens", "kv_heads", "head_dim",
                     "dtype_bytes"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(0.0 <= self.sparsity < 1.0, "sparsity", "must be in [0, 1)")
        need(0.0 <= self.reference_sparsity < 1.0, "reference_sparsity", "must be in [0, 1)")
        need(0.0 <= self.weight_share < 1.0, "weight_share", "must be in [0, 1)")
        need(0.0 <= self.hbm_kv_fraction <= 1.0, "hbm_kv_fraction", "must be in [0, 1]")
        need(self.sink_tokens >= 0 and self.recent_tokens >= 0, "sink_tokens",
             "sink_tokens and recent_tokens must be >= 0")
        need(0.0 <= self.phi <= 1.0, "phi", "must be in [0, 1]")
        for name in ("page_persistence", "page_drift", "token_persistence", "token_noise"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(self.hardware in HARDWARE, "hardware",
             f"unknown preset {self.hardware!r} (known: {', '.join(HARDWARE)})")


PARAM_NAMES = tuple(f.name for f in fields(PaperParams))


def weight_bytes_per_layer(p: PaperParams) -> int:
    """Size of one layer's weights: ``weight_share`` of the reads at ``reference_sparsity``.

    Uses the expected KV read bytes of an average (step, layer) at the reference sparsity,
    ``(1 - s_ref) x (prompt_tokens + (steps + 1) / 2) x kv_bytes_per_token``, so every
    instance of a sparsity sweep has the same weights.

    >>> weight_bytes_per_layer(PaperParams(prompt_tokens=1000, steps=1, weight_share=0.5,
    ...                                    reference_sparsity=0.5))
    2050048
    """
    mean_tokens = p.prompt_tokens + (p.steps + 1) / 2
    kv_read = (1.0 - p.reference_sparsity) * mean_tokens * p.kv_bytes_per_token
    return int(round(p.weight_share / (1.0 - p.weight_share) * kv_read))


def paper_instance(params: PaperParams | None = None, name: str | None = None, **kw) -> Instance:
    """Build the scaled-down Llama-3.1-8B / GH200 decode trace (same seed, same instance).

    Parameters
    ----------
    params : PaperParams, optional
        Or the same fields as keyword arguments.
    name : str, optional
        Instance name (default ``paper-L{layers}-P{prompt}-S{steps}-s{sparsity %}``).

    Returns
    -------
    Instance
        Two tiers (``hbm``, ``lpddr``), exclusive mode; items labelled ``kind`` (kv |
        weight), ``layer`` and ``block``; epochs labelled ``step`` and ``layer``.

    Raises
    ------
    ValueError
        Naming the option that is out of range.
    """
    p = params or PaperParams(**kw)
    p.validate()
    rng = np.random.default_rng(p.seed)
    L, P, S, B = p.layers, p.prompt_tokens, p.steps, p.block_tokens
    E = S * L
    tok_bytes = p.kv_bytes_per_token
    page_bytes = B * tok_bytes
    max_tokens = P + S                       # context after the last step's append
    pages = math.ceil(max_tokens / B)        # pages per layer at the end

    # items in token order: page 0 of every layer, page 1 of every layer, ...; then one
    # weight item per layer.  Item of (page g, layer l) = g * L + l.
    page_of_item = np.repeat(np.arange(pages), L)
    layer_of_item = np.tile(np.arange(L), pages)
    first_tok = page_of_item * B
    birth_step = np.maximum(first_tok - P, 0)          # the step whose token opens the page
    kv_birth = birth_step * L + layer_of_item
    n_kv = L * pages
    w_bytes = weight_bytes_per_layer(p)

    # per-layer, per-page and per-token score terms
    page_mu = rng.normal(0.0, p.page_persistence, (L, pages))
    page_z = rng.normal(0.0, 1.0, (L, pages))
    tok_mu = rng.normal(0.0, p.token_persistence, (L, max_tokens))
    drift_noise = math.sqrt(max(0.0, 1.0 - p.phi ** 2))

    r_e, r_i, r_b, w_e, w_i, w_b = [], [], [], [], [], []
    for s in range(S):
        if s:
            page_z = p.phi * page_z + drift_noise * rng.normal(0.0, 1.0, (L, pages))
        ctx = P + s + 1                  # tokens attended at step s, the new one included
        n_read = max(1, int(round((1.0 - p.sparsity) * ctx)))
        tok_page = np.arange(ctx) // B
        noise = rng.normal(0.0, p.token_noise, (L, ctx))
        score = (page_mu[:, tok_page] + p.page_drift * page_z[:, tok_page]
                 + tok_mu[:, :ctx] + noise)
        score[:, :min(p.sink_tokens, ctx)] = np.inf
        score[:, max(0, ctx - p.recent_tokens):] = np.inf
        # top n_read tokens per layer (ties broken by position: stable)
        top = np.argsort(-score, axis=1, kind="stable")[:, :n_read]
        for layer in range(L):
            e = s * L + layer
            cnt = np.bincount(tok_page[top[layer]], minlength=pages)
            pg = np.flatnonzero(cnt)
            r_e.append(np.full(pg.size + 1, e))
            r_i.append(np.concatenate([pg * L + layer, [n_kv + layer]]))
            r_b.append(np.concatenate([cnt[pg] * tok_bytes, [w_bytes]]))
            # the new token (index ctx - 1) is written to its page
            w_e.append([e])
            w_i.append([((ctx - 1) // B) * L + layer])
            w_b.append([tok_bytes])

    size = np.concatenate([np.full(n_kv, page_bytes, np.int64), np.full(L, w_bytes, np.int64)])
    birth = np.concatenate([kv_birth, np.zeros(L, np.int64)])
    pinned = np.concatenate([np.full(n_kv, -1, np.int64), np.zeros(L, np.int64)])
    hw = HARDWARE[p.hardware]
    tiers = [dict(t) for t in hw["tiers"]]
    kv_room = int(math.floor(p.hbm_kv_fraction * n_kv)) * page_bytes
    tiers[0]["capacity_bytes"] = L * w_bytes + kv_room
    kind = np.array(["kv"] * n_kv + ["weight"] * L)
    return make_instance(
        name=name or f"paper-L{L}-P{P}-S{S}-s{round(100 * p.sparsity)}", tiers=tiers,
        size_bytes=size, num_epochs=E, birth=birth, pinned_tier=pinned,
        reads=(np.concatenate(r_e), np.concatenate(r_i), np.concatenate(r_b)),
        writes=(np.concatenate(w_e), np.concatenate(w_i), np.concatenate(w_b)),
        item_labels={"kind": kind, "layer": np.concatenate([layer_of_item, np.arange(L)]),
                     "block": np.concatenate([page_of_item, np.full(L, -1)])},
        epoch_labels={"step": np.repeat(np.arange(S), L), "layer": np.tile(np.arange(L), S)},
        metadata={"generator": "hetkv_opt.workloads.paper.paper_instance",
                  "params": asdict(p), "weight_bytes_per_layer": w_bytes,
                  "kv_bytes_per_token": tok_bytes, "hardware_source": hw["source"],
                  "source": "Fang et al., arXiv 2508.13231 (scaled down)"})


__all__ = ["PAPER_HBM_SHARE_AT_60", "PAPER_SECONDS", "PARAM_NAMES", "PaperParams",
           "paper_instance", "weight_bytes_per_layer"]
