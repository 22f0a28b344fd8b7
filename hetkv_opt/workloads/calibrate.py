"""Fit the drift generator to a trace: synthetic instances that read like the real one.

:func:`fit_drift` chooses :class:`~hetkv_opt.workloads.drift.DriftParams` so that drift instances
reproduce the statistics of a target instance (:func:`hetkv_opt.workloads.stats.instance_stats`,
pooled over its KV layers).  It is moment matching in three steps:

1. **shape** from the target: blocks per layer, steps, tokens per block, bytes per token
   (from the writes) and the HBM room for KV;
2. **direct estimates** for the knobs a statistic pins down on its own: ``token_fraction``
   = byte read fraction / block read fraction, ``sparsity`` from
   the mean read fraction (the generator reads ``round((1 - sparsity) x alive)`` blocks
   per step; the rounding is inverted on the target's shape), ``sinks`` = the leading positions read in at least ``always`` (0.99) of the
   steps, ``recent`` = the same for the newest positions;
3. **a search** for the drift knobs ``phi`` and ``persistence``, which shape the overlap,
   re-read, persistence and concentration statistics together: a grid over
   ``u = -log10(1 - phi)`` in [0, 3] and ``persistence`` in [0, 4], then a compass
   (pattern) search from the best grid point, halving the step until it is below
   ``tol``.  Each candidate is scored on ``len(seeds)`` drift instances of the target's
   shape built with fixed seeds (common random numbers: the objective is a deterministic
   function of the parameters), by a weighted root-mean-square distance between the
   synthetic and target statistics (:data:`FIT_WEIGHTS`).

The result is deterministic: same target, same options, same parameters and report
(``budget_s`` is a wall-clock safety net; when it stops the search the result says so).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from hetkv_opt.workloads.drift import DriftParams, drift_instance
from hetkv_opt.model.instance import Instance, ModelError
from hetkv_opt.workloads.stats import LAGS, instance_stats

SCHEMA_PARAMS = "hetkv-drift-params"
PARAMS_VERSION = 1

# Statistic -> weight in the fit distance (all statistics are shares or probabilities in
# [0, 1], except the run length, compared as log(run length) / 4 so that a factor of
# e^0.4 weighs like 0.1 of a probability).
FIT_WEIGHTS = {
    "read_fraction": 1.0,
    "jaccard_mean": 2.0,
    "turnover_mean": 1.0,
    **{f"reread_prob@{d}": 1.0 for d in LAGS},
    "hh_persistence": 1.0,
    "concentration_top_reads": 1.0,
    "log_run_length": 1.0,
    # set directly by token_fraction (bytes read / bytes of the blocks read)
    "read_fraction_bytes": 1.0,
    # reported, not fitted: the masses set by sinks, recent and the number of blocks
    # rather than by the drift
    "sink_mass": 0.0,
    "recency_mass": 0.0,
}

# The paper's workload (docs/paper.md): a 31,299-token prompt decoded for 10,240 steps.
PAPER_PROMPT_TOKENS = 31_299
PAPER_STEPS = 10_240

_PHI_U_MAX = 3.0          # phi = 1 - 10^-u: u = 3 is phi = 0.999
_PERSISTENCE_MAX = 4.0
_GRID_U = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
_GRID_P = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def _phi(u: float) -> float:
    return round(1.0 - 10.0 ** (-u), 6)


def stat_vector(summary: dict) -> dict:
    """The fitted statistics of a pooled KV summary (``instance_stats(...)["kv"]``)."""
    v = {k: summary.get(k) for k in ("read_fraction", "read_fraction_bytes", "jaccard_mean", "turnover_mean",
                                       "hh_persistence", "concentration_top_reads", "sink_mass",
                                       "recency_mass")}
    for d in LAGS:
        v[f"reread_prob@{d}"] = summary["reread_prob"].get(str(d))
    rl = summary.get("run_length_mean")
    v["log_run_length"] = None if not rl else math.log(rl) / 4.0
    return v


def stat_distance(a: dict, b: dict, weights: dict | None = None) -> float:
    """Weighted root-mean-square difference over the statistics both vectors define."""
    weights = FIT_WEIGHTS if weights is None else weights
    num = den = 0.0
    for k, w in weights.items():
        x, y = a.get(k), b.get(k)
        if x is None or y is None or w <= 0:
            continue
        num += w * (x - y) ** 2
        den += w
    return math.sqrt(num / den) if den else math.inf


@dataclass
class FitResult:
    """What :func:`fit_drift` found.

    Attributes
    ----------
    params : DriftParams
        The fitted parameters at the target's shape (blocks and steps per layer; the
        search itself runs on instances capped at ``max_blocks`` x ``max_steps``).
    paper_params : DriftParams
        The same knobs at the paper's scale (31,299-token prompt, 10,240 steps).
    target, fitted, default : dict
        The statistic vectors of the target, of the fitted drift instances, and of drift
        instances with the generator's default ``phi`` and ``persistence`` (for scale).
    distance, default_distance : float
        Weighted RMS distance of ``fitted`` and ``default`` to ``target``.
    evaluations : int
        Candidates scored (each on ``len(seeds)`` instances).
    stopped_by_budget : bool
    runtime_s : float
    per_layer : list of dict
        One fit per layer (``fit_drift(per_layer=True)``), else empty.
    """

    params: DriftParams
    paper_params: DriftParams
    target: dict
    fitted: dict
    default: dict
    distance: float
    default_distance: float
    evaluations: int
    seeds: tuple
    stopped_by_budget: bool
    runtime_s: float
    source: dict = field(default_factory=dict)
    search_shape: dict = field(default_factory=dict)
    per_layer: list = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per statistic: target, fitted, residual (fitted - target), weight."""
        out = []
        for k, w in FIT_WEIGHTS.items():
            t, f = self.target.get(k), self.fitted.get(k)
            out.append({"statistic": k, "weight": w, "target": t, "fitted": f,
                        "default": self.default.get(k),
                        "residual": None if t is None or f is None else f - t})
        return out

    def to_dict(self) -> dict:
        """The params file (schema ``hetkv-drift-params``), runtime left out."""
        return {
            "schema": SCHEMA_PARAMS, "schema_version": PARAMS_VERSION,
            "source": self.source,
            "params": asdict(self.params),
            "paper_scale_params": asdict(self.paper_params),
            "command": generate_command(self.paper_params, "synthetic-paper.npz"),
            "mirror_command": generate_command(self.params, "synthetic-mirror.npz"),
            "fit": {"distance": self.distance, "default_distance": self.default_distance,
                    "evaluations": self.evaluations, "seeds": list(self.seeds),
                    "stopped_by_budget": self.stopped_by_budget,
                    "search_shape": self.search_shape,
                    "weights": dict(FIT_WEIGHTS), "statistics": self.rows()},
            "per_layer": self.per_layer,
        }


def generate_command(p: DriftParams, out: str) -> str:
    """The ``hetkv generate`` command line that builds a drift instance with ``p``.

    >>> print(generate_command(DriftParams(blocks=8, steps=4), "x.npz"))
    hetkv generate x.npz --blocks 8 --steps 4 --sparsity 0.6 --phi 0.9 --persistence 1 --sinks 1 --recent 1 --block-tokens 16 --kv-bytes-per-token 4096 --hbm-fraction 0.3 --seed 0
    """
    parts = [f"hetkv generate {out}", f"--blocks {p.blocks}", f"--steps {p.steps}",
             f"--sparsity {p.sparsity:.6g}", f"--phi {p.phi:.6g}",
             f"--persistence {p.persistence:.6g}", f"--sinks {p.sinks}", f"--recent {p.recent}",
             f"--block-tokens {p.block_tokens}", f"--kv-bytes-per-token {p.kv_bytes_per_token}",
             f"--hbm-fraction {p.hbm_fraction:.6g}"]
    if p.mode != "exclusive":
        parts.append(f"--mode {p.mode}")
    if p.hardware != "gh200-paper":
        parts.append(f"--hardware {p.hardware}")
    if p.token_fraction != 1.0:
        parts.append(f"--token-fraction {p.token_fraction:.6g}")
    parts.append(f"--seed {p.seed}")
    return " ".join(parts)


def _shape(inst: Instance, stats: dict) -> dict:
    """Blocks per layer, steps, tokens per block, bytes per token, HBM fraction."""
    kind = inst.item_labels.get("kind")
    kv = np.ones(inst.num_items, bool) if kind is None else np.asarray(kind).astype(str) == "kv"
    kv_w = kv[inst.write_item]
    sizes = inst.size_bytes[kv]
    block_bytes = int(np.median(sizes)) if sizes.size else 16 * 4096
    if kv_w.any():
        tok = int(np.median(inst.write_bytes[kv_w]))
        block_tokens = max(1, int(round(block_bytes / tok)))
    else:
        block_tokens = 16
        tok = max(1, block_bytes // block_tokens)
    groups = max(1, stats["kv"]["groups"])
    steps = max(1, stats["shape"]["steps"])
    blocks = max(int(round(stats["kv"]["items"] / groups)), math.ceil(steps / block_tokens) + 1)
    frac = stats["placement"]["hbm_kv_fraction"]
    frac = 0.3 if frac is None else float(min(1.0, max(0.0, frac)))
    return {"blocks": blocks, "steps": steps, "block_tokens": block_tokens,
            "kv_bytes_per_token": tok, "hbm_fraction": round(frac, 6)}


def _always(probs: list, always: float) -> int:
    n = 0
    for p in probs:
        if p is None or p < always:
            break
        n += 1
    return n


def _sparsity_for(read_fraction: float, shape: dict) -> float:
    """The sparsity (0.001 grid) whose drift instances of ``shape`` read ``read_fraction``.

    The generator reads ``max(1, round((1 - s) x alive))`` of the ``alive`` blocks each step,
    so ``1 - read_fraction`` is biased by the rounding on small caches; this inverts the
    rule on the shape's alive counts (ties, a range of sparsities giving the same counts:
    the middle of the range).
    """
    B, T, N = shape["block_tokens"], shape["steps"], shape["blocks"]
    alive = (N - math.ceil(T / B)) + np.arange(T) // B + 1
    cand = np.round(np.arange(0, 991) / 1000, 3)
    n_read = np.maximum(1, np.round((1.0 - cand)[:, None] * alive[None, :]))
    err = np.abs((n_read / alive).mean(axis=1) - read_fraction)
    best = np.flatnonzero(err <= err.min() + 1e-12)
    return float(cand[best[(best.size - 1) // 2]])


def _synthetic(p: DriftParams, seeds) -> dict:
    """Mean statistic vector of drift instances with ``p`` and each seed."""
    vecs = [stat_vector(instance_stats(drift_instance(replace(p, seed=s)))["kv"]) for s in seeds]
    out = {}
    for k in vecs[0]:
        vals = [v[k] for v in vecs if v[k] is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def _fit_one(target: dict, base: DriftParams, seeds, tol: float, max_evals: int,
             deadline: float | None, progress: Callable[[dict], None] | None, label: str):
    """Grid then compass search over (u, persistence); returns (params, fitted, dist, evals, stopped)."""
    cache: dict = {}
    stopped = False

    def score(u, pers):
        key = (round(u, 6), round(pers, 6))
        if key not in cache:
            vec = _synthetic(replace(base, phi=_phi(u), persistence=round(pers, 6)), seeds)
            cache[key] = (stat_distance(vec, target), vec)
        return cache[key]

    best = None
    for u in _GRID_U:
        for pers in _GRID_P:
            d, _ = score(u, pers)
            if best is None or d < best[0]:
                best = (d, u, pers)
    if progress:
        progress({"phase": label, "stage": "grid", "evaluations": len(cache), "distance": best[0]})
    d, u, pers = best
    step_u, step_p = 0.25, 0.5
    while (step_u >= tol or step_p >= tol) and len(cache) < max_evals:
        if deadline is not None and time.monotonic() > deadline:
            stopped = True
            break
        moved = False
        for du, dp in ((step_u, 0), (-step_u, 0), (0, step_p), (0, -step_p)):
            nu = min(_PHI_U_MAX, max(0.0, u + du))
            npers = min(_PERSISTENCE_MAX, max(0.0, pers + dp))
            if (nu, npers) == (u, pers):
                continue
            nd, _ = score(nu, npers)
            if nd < d - 1e-12:
                d, u, pers, moved = nd, nu, npers, True
                break
        if not moved:
            step_u, step_p = step_u / 2, step_p / 2
        if progress:
            progress({"phase": label, "stage": "search", "evaluations": len(cache), "distance": d})
    d, vec = score(u, pers)
    return replace(base, phi=_phi(u), persistence=round(pers, 6)), vec, d, len(cache), stopped


def fit_drift(inst: Instance, *, seeds=(0, 1, 2), max_blocks: int = 256, max_steps: int = 96,
              always: float = 0.99, tol: float = 0.02, max_evals: int = 120,
              budget_s: float | None = None, per_layer: bool = False,
              progress: Callable[[dict], None] | None = None) -> FitResult:
    """Fit :class:`DriftParams` to an instance's read statistics (see the module docstring).

    Parameters
    ----------
    inst : Instance
        The target (a real trace, or any instance with KV reads).
    seeds : tuple of int
        Seeds of the synthetic instances each candidate is scored on.
    max_blocks, max_steps : int
        Caps on the synthetic shape (blocks per layer, steps), for speed.
    always : float
        A position read in at least this share of the steps counts as always read
        (attention sinks, recent window).
    tol : float
        The compass search stops when its steps (in ``-log10(1 - phi)`` and
        ``persistence``) are below this.
    max_evals : int
        Candidates scored at most (the 49 grid points included), per fit.
    budget_s : float, optional
        Wall-clock seconds after which the search stops early (reported).
    per_layer : bool
        Also fit every layer on its own (``FitResult.per_layer``).
    progress : callable, optional
        Called with a dict (phase, stage, evaluations, distance) as the search goes.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        When the instance has no KV reads, or an option is out of range.

    Examples
    --------
    >>> from hetkv_opt.workloads.drift import drift_instance
    >>> target = drift_instance(blocks=48, steps=32, phi=0.9, persistence=1.0, seed=7)
    >>> res = fit_drift(target, seeds=(0,), max_evals=60)
    >>> res.params.sparsity, res.params.sinks, res.params.recent
    (0.6, 1, 1)
    """
    if not seeds:
        raise ValueError("calibrate: option 'seeds': need at least one seed")
    if max_blocks < 4 or max_steps < 2:
        raise ValueError("calibrate: options 'max_blocks' >= 4 and 'max_steps' >= 2")
    if not 0.5 <= always <= 1.0:
        raise ValueError("calibrate: option 'always': must be in [0.5, 1]")
    if budget_s is not None and budget_s <= 0:
        raise ValueError("calibrate: option 'budget_s': must be > 0")
    t0 = time.monotonic()
    deadline = None if budget_s is None else t0 + budget_s
    stats = instance_stats(inst)
    if not stats["kv"]["reads"]:
        raise ValueError(f"calibrate: instance '{inst.name}' has no KV reads to fit")
    shape = _shape(inst, stats)
    # the synthetic instances of the search: the target's shape, capped for speed
    fit_steps = min(max_steps, shape["steps"])
    fit_shape = dict(shape, steps=fit_steps,
                     blocks=max(min(max_blocks, shape["blocks"]), math.ceil(fit_steps / shape["block_tokens"]) + 2))
    seeds = tuple(int(s) for s in seeds)

    def base_for(summary: dict) -> DriftParams:
        sparsity = _sparsity_for(summary["read_fraction"] or 0.0, shape)
        # the share of a read block's bytes that is read (token-level selections read part
        # of a page): byte read fraction / block read fraction
        rf, rfb = summary["read_fraction"] or 0.0, summary.get("read_fraction_bytes") or 0.0
        token_fraction = float(min(1.0, max(0.01, round(rfb / rf, 3)))) if rf > 0 and rfb > 0 else 1.0
        return DriftParams(sparsity=sparsity, sinks=_always(summary["sink_read_prob"], always),
                           recent=_always(summary["recent_read_prob"], always),
                           token_fraction=token_fraction, **fit_shape)

    target = stat_vector(stats["kv"])
    base = base_for(stats["kv"])
    params, fitted, dist, evals, stopped = _fit_one(target, base, seeds, tol, max_evals,
                                                    deadline, progress, "all layers")
    layer_fits = []
    if per_layer:
        for d in stats["per_layer"]:
            t_l = stat_vector(d)
            b_l = base_for(d)
            p_l, f_l, d_l, e_l, s_l = _fit_one(t_l, b_l, seeds[:2], tol * 2, max(49, max_evals // 2),
                                               deadline, progress, f"layer {d['layer']}")
            layer_fits.append({"layer": d["layer"], "sparsity": p_l.sparsity, "phi": p_l.phi,
                               "persistence": p_l.persistence, "sinks": p_l.sinks,
                               "recent": p_l.recent, "distance": d_l, "evaluations": e_l,
                               "target": t_l, "fitted": f_l})
            stopped = stopped or s_l
    default = _synthetic(base, seeds)
    params = replace(params, **shape)
    born = math.ceil(PAPER_STEPS / params.block_tokens)
    paper = replace(params, blocks=math.ceil(PAPER_PROMPT_TOKENS / params.block_tokens) + born,
                    steps=PAPER_STEPS, seed=0)
    from hetkv_opt.io.files import instance_hash
    source = {"instance": inst.name, "instance_sha256": instance_hash(inst),
              "layers": stats["shape"]["layers"], "steps": stats["shape"]["steps"],
              "kv_items": stats["shape"]["kv_items"]}
    return FitResult(params=params, paper_params=paper, target=target, fitted=fitted,
                     default=default, distance=dist,
                     default_distance=stat_distance(default, target), evaluations=evals,
                     seeds=seeds, stopped_by_budget=stopped,
                     runtime_s=time.monotonic() - t0, source=source, per_layer=layer_fits,
                     search_shape={"blocks": base.blocks, "steps": base.steps})


def save_params(res: FitResult, path) -> None:
    """Write the params file (``hetkv-drift-params``, version 1) atomically."""
    from hetkv_opt.io.files import atomic_write_bytes
    text = json.dumps(res.to_dict(), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, text.encode())


def load_params(path, which: str = "params") -> DriftParams:
    """Read the :class:`DriftParams` of a params file (``which``: params | paper_scale_params).

    Raises
    ------
    ModelError
        Naming the file and the field when the file is not a valid params file.
    """
    src = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
    except OSError as exc:
        raise ModelError("(file)", f"cannot read ({exc.strerror or exc})", src) from None
    except json.JSONDecodeError as exc:
        raise ModelError("(file)", f"not valid JSON ({exc.msg}, line {exc.lineno})", src) from None
    from hetkv_opt.io.files import check_header
    check_header(d, schema=SCHEMA_PARAMS, versions=PARAMS_VERSION, path=src)
    p = d.get(which)
    if not isinstance(p, dict):
        raise ModelError(which, "missing or not an object", src)
    known = set(DriftParams.__dataclass_fields__)
    unknown = sorted(set(p) - known)
    if unknown:
        raise ModelError(f"{which}.{unknown[0]}", "unknown key", src)
    try:
        params = DriftParams(**p)
        params.validate()
    except (TypeError, ValueError) as exc:
        raise ModelError(which, str(exc), src) from None
    return params


__all__ = ["FIT_WEIGHTS", "FitResult", "SCHEMA_PARAMS", "fit_drift", "generate_command",
           "load_params", "save_params", "stat_distance", "stat_vector"]
