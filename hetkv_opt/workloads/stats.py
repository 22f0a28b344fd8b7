"""Trace statistics that matter for placement: how sparse, how stable, how concentrated.

:func:`instance_stats` summarises the *read trace* of an instance (docs/model.md section 1):
which KV items each decode step reads in each layer, and how that set changes from one
step to the next.  These are the quantities that decide how much a placement can gain:

- **read fraction** (1 - sparsity): the share of the alive KV items (and bytes) a step
  reads in a layer; the paper's sparsity knob (docs/paper.md).
- **overlap**: the Jaccard index ``|S_t & S_t+1| / |S_t | S_t+1|`` of the read sets of
  consecutive steps of the same layer, and the *turnover* ``1 - |S_t & S_t+1| / |S_t+1|``
  (the share of a step's read set that was not read the step before: what a reactive
  policy must fetch).
- **re-read probability at lag d**: ``P(i read at t + d | i read at t)``; its decay with d
  separates a drifting importance (falls towards the read fraction) from persistent heavy
  hitters (stays high).
- **heavy-hitter persistence**: of the items at least as read as the top ``top_fraction``
  of the alive items in a window of ``window_steps`` steps (ties included), the fraction
  that are heavy hitters again in the next window.
- **re-reference distance** (steps between two reads of an item) and **run length**
  (consecutive steps an item is read).
- **sink and recency mass**: the share of read bytes that goes to the first block of each
  (layer, request) and to its newest alive block; and the probability that the k-th first
  / k-th newest block is read (1.0 = always read, as attention sinks and the recent window
  are).
- **concentration**: the share of read bytes (and of reads) on the top ``top_fraction``
  of the items by read bytes (by reads).
- **placement**: the mean bytes of KV a step reads (all layers) against the HBM room left
  for KV, and the aggregate-bandwidth bound with the HBM read share it assumes.

Only KV items are counted (``kind == "kv"`` when the instance has a ``kind`` label; every
item otherwise); weights, experts and other kinds are summarised separately.  Without
``step``/``layer`` labels every epoch is one step of one layer.  Items are grouped by
(layer, request); a block's position is its ``block`` label (item index without one).

Everything is computed from the read arrays with numpy (loops run over layers and
windows, never over reads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.model.instance import Instance

SCHEMA_STATS = "hetkv-trace-stats"
STATS_VERSION = 1
LAGS = (1, 2, 4, 8, 16, 32, 64)
POSITIONS = 4          # sink / recency read probability reported for the first 4 positions
_CHUNK_CELLS = 4_000_000


@dataclass
class _Part:
    """Numerators, denominators and samples of one (layer, request) group, to be pooled."""

    layer: int
    items: int = 0
    steps: int = 0
    reads: int = 0
    read_bytes: float = 0.0
    frac: list = field(default_factory=list)           # per-step read fraction (items)
    alive_bytes: float = 0.0
    jaccard: np.ndarray = None
    turnover: np.ndarray = None
    lag_hits: np.ndarray = None                        # per lag: re-reads d steps later
    lag_base: np.ndarray = None                        # per lag: reads with t + d in range
    hh_inter: int = 0
    hh_size: int = 0
    hh_pairs: int = 0
    gaps: np.ndarray = None
    runs: int = 0
    sink_bytes: float = 0.0
    recent_bytes: float = 0.0
    sink_reads: np.ndarray = None                      # per position: reads
    sink_alive: np.ndarray = None                      # per position: steps alive
    recent_reads: np.ndarray = None
    recent_alive: np.ndarray = None
    top_bytes: float = 0.0
    top_reads: int = 0


def _labels(inst: Instance):
    """Per item: KV mask, layer, request, position key; per epoch: step and layer."""
    E, N = inst.num_epochs, inst.num_items
    kind = inst.item_labels.get("kind")
    kv = np.ones(N, bool) if kind is None else (np.asarray(kind).astype(str) == "kv")
    step = inst.epoch_labels.get("step")
    step = np.arange(E, dtype=np.int64) if step is None else np.asarray(step, np.int64)
    e_layer = inst.epoch_labels.get("layer")
    e_layer = None if e_layer is None else np.asarray(e_layer, np.int64)
    i_layer = inst.item_labels.get("layer")
    if i_layer is not None:
        i_layer = np.asarray(i_layer, np.int64)
    elif e_layer is not None:
        # no item label: an item belongs to the layer of the first epoch that reads it
        i_layer = np.zeros(N, np.int64)
        first = np.full(N, E, np.int64)
        np.minimum.at(first, inst.read_item, inst.read_epoch)
        seen = first < E
        i_layer[seen] = e_layer[first[seen]]
    else:
        i_layer = np.zeros(N, np.int64)
    req = inst.item_labels.get("request")
    req = np.zeros(N, np.int64) if req is None else np.asarray(req, np.int64)
    block = inst.item_labels.get("block")
    block = np.arange(N, dtype=np.int64) if block is None else np.asarray(block, np.int64)
    return kv, i_layer, req, block, step, e_layer


def _member(sorted_codes: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.isin(q, sorted_codes)`` for a sorted, duplicate-free ``sorted_codes``."""
    idx = np.searchsorted(sorted_codes, q)
    hit = idx < sorted_codes.size
    hit[hit] = sorted_codes[idx[hit]] == q[hit]
    return hit


def _sum_by_code(code: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct codes (sorted) and the sum of ``weights`` of each, by sorting (no hashing)."""
    if code.size and np.any(code[1:] < code[:-1]):
        o = np.argsort(code, kind="stable")
        code, weights = code[o], weights[o]
    if code.size == 0:
        return code, weights.astype(np.float64)
    starts = np.flatnonzero(np.concatenate([[True], code[1:] != code[:-1]]))
    return code[starts], np.add.reduceat(weights.astype(np.float64), starts)


def _quantile(x: np.ndarray, q: float):
    return None if x.size == 0 else float(np.quantile(x, q))


def _ratio(a, b):
    return None if not b else float(a) / float(b)


def _group_part(inst: Instance, items: np.ndarray, layer: int, ep_of_step: np.ndarray,
                r_t: np.ndarray, r_item: np.ndarray, r_bytes: np.ndarray,
                window_steps: int, top_fraction: float) -> _Part:
    """Statistics of one (layer, request) group.

    ``items`` are the group's items in position order; ``ep_of_step`` the epoch of each of
    the group's steps (ascending); ``r_t``/``r_item``/``r_bytes`` the group's reads with
    step index and *local* item index (position), one entry per (step, item).
    """
    n, T = items.size, ep_of_step.size
    P = _Part(layer=layer, items=int(n), steps=int(T))
    birth, death = inst.birth[items], inst.death[items]
    size = inst.size_bytes[items].astype(np.float64)
    # alive items / bytes at each step's epoch
    ob, od = np.argsort(birth, kind="stable"), np.argsort(death, kind="stable")
    nb = np.searchsorted(birth[ob], ep_of_step, side="right")
    nd = np.searchsorted(death[od], ep_of_step, side="right")
    alive = nb - nd
    cs_b = np.concatenate([[0.0], np.cumsum(size[ob])])
    cs_d = np.concatenate([[0.0], np.cumsum(size[od])])
    alive_bytes = cs_b[nb] - cs_d[nd]
    cnt = np.bincount(r_t, minlength=T)
    P.reads = int(r_t.size)
    P.read_bytes = float(r_bytes.sum())
    P.alive_bytes = float(alive_bytes.sum())
    has = alive > 0
    P.frac = (cnt[has] / alive[has]).tolist()

    # overlap of consecutive steps and re-reads at lag d (codes t * n + item are sorted)
    code = r_t * n + r_item
    hit1 = _member(code, code + n)
    inter = np.bincount(r_t[hit1], minlength=T)[:T - 1] if T > 1 else np.zeros(0, np.int64)
    union = cnt[:-1] + cnt[1:] - inter
    ok = union > 0
    P.jaccard = inter[ok] / union[ok]
    ok = cnt[1:] > 0
    P.turnover = 1.0 - inter[ok] / cnt[1:][ok]
    P.lag_hits = np.zeros(len(LAGS))
    P.lag_base = np.zeros(len(LAGS))
    for k, d in enumerate(LAGS):
        if d >= T:
            continue
        base = r_t < T - d
        P.lag_base[k] = base.sum()
        P.lag_hits[k] = _member(code, code[base] + d * n).sum()

    # re-reference distance and runs: reads sorted by (item, step)
    o = np.lexsort((r_t, r_item))
    it, tt = r_item[o], r_t[o]
    same = it[1:] == it[:-1]
    P.gaps = (tt[1:] - tt[:-1])[same]
    P.runs = int(r_t.size - np.count_nonzero(same & (tt[1:] - tt[:-1] == 1)))

    # heavy hitters per window: counts (windows x items), top set with ties
    w = window_steps
    K = T // w if w >= 1 else 0
    if K >= 2:
        sel = r_t < K * w
        counts = np.bincount((r_t[sel] // w) * n + r_item[sel], minlength=K * n).reshape(K, n)
        alive_end = alive[np.arange(K) * w + w - 1]
        m = np.clip(np.ceil(top_fraction * alive_end).astype(np.int64), 1, n)
        srt = np.sort(counts, axis=1)
        q = np.maximum(srt[np.arange(K), n - m], 1)
        H = counts >= q[:, None]
        P.hh_inter = int((H[:-1] & H[1:]).sum())
        P.hh_size = int(H[:-1].sum())
        P.hh_pairs = K - 1

    # sinks: the first positions; read probability = reads / steps alive
    first = min(POSITIONS, n)
    steps_alive = (np.searchsorted(np.sort(ep_of_step), death, side="left")
                   - np.searchsorted(np.sort(ep_of_step), birth, side="left"))
    reads_of = np.bincount(r_item, minlength=n)
    P.sink_reads = np.zeros(POSITIONS)
    P.sink_alive = np.zeros(POSITIONS)
    P.sink_reads[:first] = reads_of[:first]
    P.sink_alive[:first] = steps_alive[:first]
    P.sink_bytes = float(r_bytes[r_item == 0].sum())

    # recency: how many alive items of the group are newer (later position) at that step
    newer = np.empty(r_t.size, np.int64)
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        ep = ep_of_step[t0:t1, None]
        alive_m = (birth[None, :] <= ep) & (ep < death[None, :])
        after = np.cumsum(alive_m[:, ::-1], axis=1)[:, ::-1] - alive_m   # alive & later
        sel = (r_t >= t0) & (r_t < t1)
        newer[sel] = after[r_t[sel] - t0, r_item[sel]]
    P.recent_reads = np.bincount(np.minimum(newer, POSITIONS), minlength=POSITIONS + 1)[:POSITIONS].astype(float)
    P.recent_alive = np.array([(alive > k).sum() for k in range(POSITIONS)], float)
    P.recent_bytes = float(r_bytes[newer == 0].sum())

    # concentration: read bytes of the top items over the whole trace
    tot = np.bincount(r_item, weights=r_bytes, minlength=n)
    m = max(1, math.ceil(top_fraction * n))
    P.top_bytes = float(np.sort(tot)[::-1][:m].sum())
    P.top_reads = int(np.sort(reads_of)[::-1][:m].sum())
    return P


def _summary(parts: list[_Part]) -> dict:
    """Pool the parts of several groups into one summary (sums over sums, pooled samples)."""
    reads = sum(p.reads for p in parts)
    rb = sum(p.read_bytes for p in parts)
    frac = np.array([f for p in parts for f in p.frac], float)
    jac = np.concatenate([p.jaccard for p in parts]) if parts else np.zeros(0)
    turn = np.concatenate([p.turnover for p in parts]) if parts else np.zeros(0)
    gaps = np.concatenate([p.gaps for p in parts]) if parts else np.zeros(0)
    lag_hits = sum(p.lag_hits for p in parts)
    lag_base = sum(p.lag_base for p in parts)
    hh_size = sum(p.hh_size for p in parts)
    sink_r = sum(p.sink_reads for p in parts)
    sink_a = sum(p.sink_alive for p in parts)
    rec_r = sum(p.recent_reads for p in parts)
    rec_a = sum(p.recent_alive for p in parts)
    return {
        "groups": len(parts),
        "items": sum(p.items for p in parts),
        "steps": max((p.steps for p in parts), default=0),
        "reads": reads,
        "read_bytes": rb,
        "read_fraction": None if frac.size == 0 else float(frac.mean()),
        "read_fraction_p10": _quantile(frac, 0.1),
        "read_fraction_p90": _quantile(frac, 0.9),
        "read_fraction_bytes": _ratio(rb, sum(p.alive_bytes for p in parts)),
        "jaccard_mean": None if jac.size == 0 else float(jac.mean()),
        "jaccard_median": _quantile(jac, 0.5),
        "jaccard_p10": _quantile(jac, 0.1),
        "turnover_mean": None if turn.size == 0 else float(turn.mean()),
        "reread_prob": {str(d): _ratio(h, b) for d, h, b in zip(LAGS, lag_hits, lag_base) if b},
        "hh_persistence": _ratio(sum(p.hh_inter for p in parts), hh_size),
        "hh_window_pairs": sum(p.hh_pairs for p in parts),
        "reref_distance_mean": None if gaps.size == 0 else float(gaps.mean()),
        "reref_distance_median": _quantile(gaps, 0.5),
        "reref_distance_p90": _quantile(gaps, 0.9),
        "run_length_mean": _ratio(reads, sum(p.runs for p in parts)),
        "sink_mass": _ratio(sum(p.sink_bytes for p in parts), rb),
        "recency_mass": _ratio(sum(p.recent_bytes for p in parts), rb),
        "sink_read_prob": [_ratio(r, a) for r, a in zip(sink_r, sink_a)],
        "recent_read_prob": [_ratio(r, a) for r, a in zip(rec_r, rec_a)],
        "concentration_top": _ratio(sum(p.top_bytes for p in parts), rb),
        "concentration_top_reads": _ratio(sum(p.top_reads for p in parts), reads),
    }


# the per-layer metrics whose spread across layers is reported
SPREAD_KEYS = ("read_fraction", "read_fraction_bytes", "jaccard_mean", "turnover_mean",
               "hh_persistence", "run_length_mean", "sink_mass", "recency_mass",
               "concentration_top")


def instance_stats(inst: Instance, *, window_steps: int = 8, top_fraction: float = 0.1) -> dict:
    """Placement-relevant statistics of an instance's read trace.

    Parameters
    ----------
    inst : Instance
        Any instance; labels ``kind``, ``layer``, ``request``, ``block`` (items) and
        ``step``, ``layer`` (epochs) are used when present.
    window_steps : int
        Steps per window for the heavy-hitter persistence (reduced to half the steps when
        the trace is shorter than two windows).
    top_fraction : float
        The heavy hitters' share of the alive items, and the share of items whose read
        bytes the concentration counts, in (0, 1].

    Returns
    -------
    dict
        ``schema`` (``"hetkv-trace-stats"``), ``kv`` (the summary over every KV group),
        ``per_layer`` (the same summary for each layer), ``layer_spread`` (min, max and
        standard deviation across layers of the main metrics, with the layers that reach
        them), ``densest_layers``, ``other_kinds`` (weights, experts: items, bytes, read
        share) and ``placement`` (HBM room vs working set, aggregate bound).  Fractions
        are in [0, 1], sizes in bytes, distances in steps; ``None`` where undefined.

    Raises
    ------
    ValueError
        When ``window_steps`` < 1 or ``top_fraction`` is outside (0, 1].

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> s = instance_stats(tiny_instance())
    >>> s["kv"]["read_fraction"], s["kv"]["jaccard_mean"]
    (0.6666666666666666, 0.25)
    """
    if window_steps < 1:
        raise ValueError("stats: option 'window_steps': must be >= 1")
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError("stats: option 'top_fraction': must be in (0, 1]")
    kv, i_layer, req, block, step, e_layer = _labels(inst)
    re, ri, rb = inst.read_epoch, inst.read_item, inst.read_bytes
    kv_read = kv[ri]
    re, ri, rb = re[kv_read], ri[kv_read], rb[kv_read].astype(np.float64)

    kv_items = np.flatnonzero(kv)
    keys = np.stack([i_layer[kv_items], req[kv_items]], axis=1)
    groups = np.unique(keys, axis=0) if kv_items.size else np.zeros((0, 2), np.int64)
    steps_all = np.unique(step)
    T_steps = int(steps_all.size)
    win = window_steps if T_steps >= 2 * window_steps else max(1, T_steps // 2)
    parts: list[_Part] = []
    for layer, request in groups.tolist():
        items = kv_items[(keys[:, 0] == layer) & (keys[:, 1] == request)]
        items = items[np.lexsort((items, block[items]))]           # position order
        local = np.full(inst.num_items, -1, np.int64)
        local[items] = np.arange(items.size)
        # the group's steps: epochs of its layer (every epoch without layer labels)
        eps = np.arange(inst.num_epochs) if e_layer is None else np.flatnonzero(e_layer == layer)
        if eps.size == 0:
            continue
        g_steps, first = np.unique(step[eps], return_index=True)
        ep_of_step = eps[first]
        sel = local[ri] >= 0
        if e_layer is not None:
            sel &= e_layer[re] == layer
        t_idx = np.searchsorted(g_steps, step[re[sel]])
        li = local[ri[sel]]
        # one entry per (step, item): sum the bytes of several epochs of a step
        code, by = _sum_by_code(t_idx * items.size + li, rb[sel])
        parts.append(_group_part(inst, items, int(layer), ep_of_step, code // items.size,
                                 code % items.size, by, win, top_fraction))

    layers = sorted({p.layer for p in parts})
    per_layer = []
    for layer in layers:
        d = _summary([p for p in parts if p.layer == layer])
        d["layer"] = layer
        per_layer.append(d)
    spread = {}
    for k in SPREAD_KEYS:
        vals = [(d[k], d["layer"]) for d in per_layer if d[k] is not None]
        if not vals:
            continue
        v = np.array([x for x, _ in vals])
        spread[k] = {"min": float(v.min()), "max": float(v.max()), "std": float(v.std()),
                     "min_layer": vals[int(v.argmin())][1], "max_layer": vals[int(v.argmax())][1]}
    dens = sorted((d for d in per_layer if d["read_fraction"] is not None),
                  key=lambda d: (-d["read_fraction"], d["layer"]))
    return {
        "schema": SCHEMA_STATS, "schema_version": STATS_VERSION, "instance": inst.name,
        "parameters": {"window_steps": win, "top_fraction": top_fraction, "lags": list(LAGS),
                       "positions": POSITIONS},
        "labels": {"items": sorted(inst.item_labels), "epochs": sorted(inst.epoch_labels)},
        "shape": {"items": inst.num_items, "kv_items": int(kv_items.size),
                  "epochs": inst.num_epochs, "steps": T_steps, "layers": len(layers),
                  "groups": len(parts)},
        "kv": _summary(parts),
        "per_layer": per_layer,
        "layer_spread": spread,
        "densest_layers": [d["layer"] for d in dens[:3]],
        "other_kinds": _other_kinds(inst, kv),
        "placement": _placement(inst, kv, step),
    }


def _other_kinds(inst: Instance, kv: np.ndarray) -> dict:
    kind = inst.item_labels.get("kind")
    if kind is None:
        return {}
    kind = np.asarray(kind).astype(str)
    total = float(inst.read_bytes.sum())
    per_item = np.bincount(inst.read_item, weights=inst.read_bytes, minlength=inst.num_items)
    out = {}
    for k in sorted(set(kind.tolist())):
        m = kind == k
        out[k] = {"items": int(m.sum()), "bytes": int(inst.size_bytes[m].sum()),
                  "pinned": int((inst.pinned_tier[m] >= 0).sum()),
                  "read_bytes": float(per_item[m].sum()),
                  "read_share": _ratio(per_item[m].sum(), total)}
    return out


def _placement(inst: Instance, kv: np.ndarray, step: np.ndarray) -> dict:
    """HBM room for KV against the KV bytes a step reads; the aggregate bound's split."""
    from hetkv_opt.model.terms import aggregate_bound_s
    cap = inst.tiers[0].capacity_bytes
    pinned0 = int(inst.size_bytes[inst.pinned_tier == 0].sum())
    kv_bytes = int(inst.size_bytes[kv].sum())
    sel = kv[inst.read_item]
    # working set of a step: every KV item read in it (all layers), at its full size
    steps, s_of_epoch = np.unique(step, return_inverse=True)
    items = inst.read_item[sel]
    pair, _ = _sum_by_code(s_of_epoch[inst.read_epoch[sel]] * inst.num_items + items,
                           np.zeros(items.size))
    ws = np.bincount(pair // inst.num_items, weights=inst.size_bytes[pair % inst.num_items],
                     minlength=steps.size)
    ws_mean = float(ws.mean()) if ws.size else 0.0
    ep_ws = np.bincount(inst.read_epoch[sel], weights=inst.size_bytes[items],
                        minlength=inst.num_epochs)
    rates = [t.read_rate_Bps() for t in inst.tiers]
    room = None if cap is None else max(0, cap - pinned0)
    return {
        "hbm_capacity_bytes": cap,
        "hbm_pinned_bytes": pinned0,
        "hbm_kv_room_bytes": room,
        "kv_bytes": kv_bytes,
        "hbm_kv_fraction": _ratio(room, kv_bytes) if room is not None else None,
        "step_working_set_bytes_mean": ws_mean,
        "step_working_set_bytes_max": float(ws.max()) if ws.size else 0.0,
        "working_set_over_kv_room": _ratio(ws_mean, room) if room else None,
        "epoch_read_set_bytes_mean": float(ep_ws.mean()) if ep_ws.size else 0.0,
        "epoch_read_set_over_capacity": _ratio(ep_ws.mean(), cap) if cap else None,
        "aggregate_bound_s": aggregate_bound_s(inst),
        "aggregate_hbm_read_share": _ratio(rates[0], sum(rates)),
    }


__all__ = ["LAGS", "POSITIONS", "SCHEMA_STATS", "instance_stats"]
