"""Synthetic instances: one layer's paged KV cache read by a drifting top-k rule.

The drift model: every block has a persistent importance ``mu_i`` (heavy hitters stay
heavy) plus an AR(1) latent ``z_i(t) = phi z_i(t-1) + sqrt(1 - phi^2) eps``; each decode
step reads the attention-sink blocks, the most recent blocks, and the top blocks by
``mu + z`` until a ``1 - sparsity`` fraction of the alive blocks is read (the paper's
top-(100 - s)% rule, docs/paper.md).  Decode appends one token per step to the tail block
(a write), and a new block is born whenever the tail block is full.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from hetkv_opt.model.instance import MAX_EPOCHS, MAX_ITEMS, Instance, make_instance
from hetkv_opt.presets import PresetError, hardware_table, load_hardware

# Hardware presets, read from the data files in hetkv_opt/presets/hardware/ (name ->
# {"source", "tiers"}); "gh200-paper" is GH200 as modelled by the paper (docs/paper.md, "Its
# hardware constants").  Generators set tier 0's capacity themselves.
HARDWARE = hardware_table()

#: reads a drift instance may have (checked before the read list is allocated: 24 bytes
#: each, and more while the instance is validated and written)
MAX_DRIFT_READS = 2 ** 31 - 1


def hardware_entry(name_or_path: str) -> dict:
    """A hardware preset as ``{"source", "tiers"}``: a key of :data:`HARDWARE`, or the path
    of a hardware ``.toml`` file (ValueError naming the option when it is neither)."""
    if name_or_path in HARDWARE:
        return HARDWARE[name_or_path]
    try:
        hw = load_hardware(name_or_path)
    except PresetError as exc:
        raise ValueError(f"generate: option 'hardware': {exc}") from None
    return {"source": hw.source, "tiers": hw.tier_dicts()}


# Llama-3.1-8B: 8 KV heads x 128 head dim, bf16 (2 bytes), K and V.
LLAMA31_8B_KV_HEADS = 8
LLAMA31_8B_HEAD_DIM = 128
BF16_BYTES = 2


def kv_bytes_per_token_layer(kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """Bytes of K and V for one token in one layer (GQA-correct).

    >>> kv_bytes_per_token_layer(LLAMA31_8B_KV_HEADS, LLAMA31_8B_HEAD_DIM, BF16_BYTES)
    4096
    """
    return 2 * kv_heads * head_dim * dtype_bytes


# ----------------------------------------------------------------------------- the read rule
# One implementation of the drift read rule, used by drift_instance (one layer: arrays of
# shape (N,)) and by hetkv_opt.workloads.access.DriftAccess (every layer of a request:
# arrays of shape (L, blocks)).

class DriftLatent:
    """The importance of every block in the drift model: ``mu + z(t)``.

    ``mu ~ N(0, persistence)`` is drawn once (heavy hitters stay heavy), ``z(0) ~ N(0, 1)``,
    and :meth:`advance` steps the AR(1) ``z(t) = phi z(t-1) + sqrt(1 - phi^2) eps``.  The
    draws, in this order, are all that ``rng`` gives (same seed, same scores).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : int or tuple of int
        One score per block (the last axis); e.g. ``(layers, blocks)``.
    persistence, phi : float
        As :class:`DriftParams`.

    Examples
    --------
    >>> lat = DriftLatent(np.random.default_rng(0), (2, 5), persistence=1.0, phi=0.9)
    >>> lat.advance()
    >>> lat.score(3).shape
    (2, 3)
    """

    def __init__(self, rng: np.random.Generator, shape, persistence: float, phi: float):
        self.rng = rng
        self.mu = rng.normal(0.0, persistence, shape)
        self.z = rng.normal(0.0, 1.0, shape)
        self.phi = phi
        self.noise = math.sqrt(max(0.0, 1.0 - phi ** 2))

    def advance(self) -> None:
        """One step of the AR(1) latent (call it before every step but the first)."""
        self.z = self.phi * self.z + self.noise * self.rng.normal(0.0, 1.0, self.z.shape)

    def score(self, alive: int) -> np.ndarray:
        """``mu + z`` of the first ``alive`` blocks (a new array)."""
        return self.mu[..., :alive] + self.z[..., :alive]


def drift_reads_per_step(alive, sparsity: float) -> np.ndarray:
    """How many blocks a step reads: ``max(1, round((1 - sparsity) x alive))`` (half to even).

    >>> drift_reads_per_step(np.array([1, 2, 5, 10]), 0.6).tolist()
    [1, 1, 2, 4]
    """
    return np.maximum(1, np.round((1.0 - sparsity) * np.asarray(alive)).astype(np.int64))


def drift_forced(alive: int, sinks: int, recent: int) -> np.ndarray:
    """The blocks every step reads first: the ``sinks`` first and the ``recent`` last of the
    ``alive`` blocks (bool, shape ``(alive,)``).

    >>> drift_forced(5, 1, 2).tolist()
    [True, False, False, True, True]
    """
    forced = np.zeros(alive, bool)
    forced[:min(sinks, alive)] = True
    forced[max(0, alive - recent):] = True
    return forced


def drift_select(score: np.ndarray, n_read: int, forced: np.ndarray) -> np.ndarray:
    """The blocks a step reads (bool, the shape of ``score``; one choice per row).

    The ``forced`` blocks first (the lowest-indexed ones when there are more than
    ``n_read``), then the highest ``score``; equal scores go to the lower index.  This is
    the order of a stable sort, found with one partition (no full sort per step).

    >>> drift_select(np.array([0.5, 2.0, 1.0, 2.0, -1.0]), 3, drift_forced(5, 0, 1)).tolist()
    [False, True, False, True, True]
    """
    neg = np.where(forced, -np.inf, -score)
    k = min(n_read, neg.shape[-1]) - 1
    thr = np.partition(neg, k, axis=-1)[..., k:k + 1]
    below = neg < thr
    tie = neg == thr
    need = n_read - below.sum(axis=-1, keepdims=True)
    return below | (tie & (np.cumsum(tie, axis=-1) <= need))


@dataclass(frozen=True)
class DriftParams:
    """Parameters of the drift generator.

    Parameters
    ----------
    blocks : int
        Blocks alive at the end (prompt blocks + blocks born during decode).
    steps : int
        Decode steps = epochs (one layer).
    block_tokens : int
        Tokens per KV block (page).
    kv_bytes_per_token : int
        Bytes per token of this layer's K and V (default: Llama-3.1-8B, bf16, 4096).
    sparsity : float
        Fraction of alive blocks *not* read per step (paper: 0.4-0.9).
    hbm_fraction : float
        HBM capacity as a fraction of the final cache size.
    phi : float
        AR(1) coefficient of the latent importance (1 = frozen, 0 = fresh every step).
    persistence : float
        Standard deviation of the persistent per-block importance.
    sinks, recent : int
        Blocks always read at the start (attention sinks) and at the end (recent window).
    token_fraction : float
        Share of a read block's tokens that a step reads (``max(1, round(f x tokens))``
        tokens); 1 reads whole blocks.  Real traces read ~40 % of the bytes of the pages
        they touch (token-level top-k): ``hetkv calibrate`` fits it.
    hardware : str
        A key of :data:`HARDWARE`.
    mode : {"exclusive", "inclusive"}
        Inclusive: the off-package tier keeps a copy of every block; HBM holds extra copies.
    seed : int
    """

    blocks: int = 64
    steps: int = 32
    block_tokens: int = 16
    kv_bytes_per_token: int = kv_bytes_per_token_layer(LLAMA31_8B_KV_HEADS, LLAMA31_8B_HEAD_DIM,
                                                       BF16_BYTES)
    sparsity: float = 0.6
    hbm_fraction: float = 0.3
    phi: float = 0.9
    persistence: float = 1.0
    sinks: int = 1
    recent: int = 1
    hardware: str = "gh200-paper"
    mode: str = "exclusive"
    seed: int = 0
    token_fraction: float = 1.0

    def validate(self) -> None:
        def need(cond, field, why):
            if not cond:
                raise ValueError(f"generate: option '{field}': {why}")
        need(self.steps >= 1, "steps", "must be >= 1")
        need(self.block_tokens >= 1, "block_tokens", "must be >= 1")
        need(self.kv_bytes_per_token >= 1, "kv_bytes_per_token", "must be >= 1")
        born = math.ceil(self.steps / self.block_tokens)
        need(self.blocks > born, "blocks", f"must exceed the {born} blocks born during "
             f"{self.steps} steps of {self.block_tokens}-token blocks")
        need(0.0 <= self.sparsity < 1.0, "sparsity", "must be in [0, 1)")
        need(0.0 <= self.hbm_fraction <= 1.0, "hbm_fraction", "must be in [0, 1]")
        need(0.0 <= self.phi <= 1.0, "phi", "must be in [0, 1]")
        need(self.persistence >= 0, "persistence", "must be >= 0")
        need(0.0 < self.token_fraction <= 1.0, "token_fraction", "must be in (0, 1]")
        need(self.sinks >= 0 and self.recent >= 0, "sinks", "sinks and recent must be >= 0")
        need(self.mode in ("exclusive", "inclusive"), "mode", "must be exclusive or inclusive")
        looks_like_path = str(self.hardware).lower().endswith(".toml") or "/" in str(self.hardware)
        need(self.hardware in HARDWARE or looks_like_path, "hardware",
             f"unknown preset {self.hardware!r} (known: {', '.join(HARDWARE)}; or the path "
             f"of a .toml file)")
        hardware_entry(self.hardware)            # a file: readable and valid
        # sizes, before anything of their size is allocated
        need(self.steps <= MAX_EPOCHS, "steps", f"{self.steps} steps: at most {MAX_EPOCHS:,}")
        need(self.blocks <= MAX_ITEMS, "blocks", f"{self.blocks} blocks: at most {MAX_ITEMS:,}")
        reads = self.num_reads()
        need(reads <= MAX_DRIFT_READS, "blocks", f"{self.blocks} blocks x {self.steps} steps "
             f"at sparsity {self.sparsity:g} read {reads:,} blocks: at most {MAX_DRIFT_READS:,} "
             f"reads (about {24 * reads / 1e9:.3g} GB for the read list alone)")

    def num_reads(self) -> int:
        """How many (step, block) reads the instance has (computed without building it)."""
        born = math.ceil(self.steps / self.block_tokens)
        alive = (self.blocks - born) + np.arange(self.steps) // self.block_tokens + 1
        return int(drift_reads_per_step(alive, self.sparsity).sum())


def _params_meta(p: DriftParams) -> dict:
    """The parameters as recorded in the instance (``token_fraction`` only when it is not 1,
    so that instances made before the knob existed keep their bytes)."""
    d = asdict(p)
    if d["token_fraction"] == 1.0:
        del d["token_fraction"]
    return d


def drift_instance(params: DriftParams | None = None, name: str | None = None, **kw) -> Instance:
    """Generate a drift instance (deterministic by ``seed``: same seed, same instance).

    Examples
    --------
    >>> inst = drift_instance(blocks=8, steps=4, seed=1)
    >>> inst.num_items, inst.num_epochs, inst.tiers[0].name
    (8, 4, 'hbm')
    """
    p = params or DriftParams(**kw)
    p.validate()
    rng = np.random.default_rng(p.seed)
    N, E, B = p.blocks, p.steps, p.block_tokens
    block_bytes = B * p.kv_bytes_per_token
    born_during = math.ceil(E / B)
    prompt_blocks = N - born_during
    # the decode token of step t goes to block prompt_blocks + t // B, born at t % B == 0
    birth = np.zeros(N, np.int64)
    birth[prompt_blocks:] = np.arange(born_during) * B
    size = np.full(N, block_bytes, np.int64)

    latent = DriftLatent(rng, N, p.persistence, p.phi)
    # the read list is filled in place: one copy of it, whatever the size
    alive_t = prompt_blocks + np.arange(E) // B + 1
    n_read_t = drift_reads_per_step(alive_t, p.sparsity)
    ptr = np.zeros(E + 1, np.int64)
    np.cumsum(n_read_t, out=ptr[1:])
    r_e = np.repeat(np.arange(E, dtype=np.int64), n_read_t)
    r_i = np.empty(ptr[-1], np.int64)
    r_b = np.empty(ptr[-1], np.int64)
    for t in range(E):
        if t:
            latent.advance()
        tail = prompt_blocks + t // B
        alive = tail + 1
        forced = drift_forced(alive, p.sinks, p.recent)
        chosen = np.flatnonzero(drift_select(latent.score(alive), int(n_read_t[t]), forced))
        r_i[ptr[t]:ptr[t + 1]] = chosen
        # tokens in each block after this step's append: full, except the tail block
        tokens = np.where(chosen == tail, (t % B) + 1, B)
        if p.token_fraction < 1.0:
            tokens = np.maximum(1, np.round(p.token_fraction * tokens).astype(np.int64))
        r_b[ptr[t]:ptr[t + 1]] = tokens * p.kv_bytes_per_token
    w_e = np.arange(E, dtype=np.int64)
    w_i = prompt_blocks + w_e // B
    w_b = np.full(E, p.kv_bytes_per_token, np.int64)
    hw = hardware_entry(p.hardware)
    tiers = [dict(t) for t in hw["tiers"]]
    tiers[0]["capacity_bytes"] = int(math.floor(p.hbm_fraction * N * block_bytes))
    return make_instance(
        name=name or f"drift-{N}x{E}-s{p.seed}", mode=p.mode, tiers=tiers, size_bytes=size, num_epochs=E,
        birth=birth, reads=(r_e, r_i, r_b), writes=(w_e, w_i, w_b),
        item_labels={"kind": np.full(N, "kv"), "layer": np.zeros(N, np.int64),
                     "block": np.arange(N)},
        epoch_labels={"step": np.arange(E), "layer": np.zeros(E, np.int64)},
        metadata={"generator": "hetkv_opt.workloads.drift.drift_instance", "params": _params_meta(p),
                  "hardware_source": hw["source"]})
