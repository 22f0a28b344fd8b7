"""Where the time goes: T attributed to causes, exactly (docs/model.md section 9).

The evaluator gives every epoch its time τ(e) = the largest of its terms (compute floor,
each tier's device time, each link's read and write time; docs/model.md section 4) and
the term that set it.  :func:`breakdown` attributes each τ(e) *wholly to its binding term*,
then splits that term's seconds by the traffic it is made of, in proportion to the bytes:

========================  ====================================================
binding term              τ(e) split into
========================  ====================================================
``compute``               ``compute``
``device:K``              ``device:K`` (reads served by tier K), ``writes``,
                          ``copies`` (copies into and out of K)
``link_read:K``           ``link:K`` (reads of data served by K, over its link),
                          ``copies`` (copies out of K)
``link_write:K``          ``writes``, ``copies`` (copies into K)
========================  ====================================================

Every epoch's parts sum to its τ(e), so the causes sum to T (an epoch's largest part
takes its rounding remainder, and the largest cause takes the remainder of the sum: the
sum of ``breakdown_s`` equals ``total_time_s`` to the last bit under :func:`math.fsum`).
The rule answers "what would have to get faster for this schedule to get faster": only
the binding term of an epoch matters at the margin; a term that does not bind costs
nothing.

>>> from hetkv_opt.model.instance import tiny_instance
>>> from hetkv_opt.model.schedule import Schedule
>>> b = breakdown(tiny_instance(), Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
>>> b.total_time_s, b.binding
(2.0, ['device:dram', 'device:hbm', 'device:hbm'])
>>> {k: v for k, v in b.breakdown_s.items() if v}
{'device:hbm': 0.75, 'device:dram': 1.0, 'writes': 0.25}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hetkv_opt.model.evaluate import Evaluation, evaluate
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule

#: causes that do not belong to one tier
SHARED_CAUSES = ("compute", "writes", "copies")


def causes(instance: Instance) -> list[str]:
    """Every cause :func:`breakdown` may attribute time to, in a fixed order.

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> causes(tiny_instance())
    ['compute', 'device:hbm', 'device:dram', 'link:dram', 'writes', 'copies']
    """
    out = ["compute"]
    out += [f"device:{t.name}" for t in instance.tiers]
    out += [f"link:{t.name}" for t in instance.tiers if t.link_read_Bps is not None]
    return out + ["writes", "copies"]


@dataclass
class Breakdown:
    """T by cause, per epoch and in total (see the module docstring for the rule).

    Attributes
    ----------
    total_time_s : float
        T, as the evaluator computes it.
    breakdown_s : dict of str -> float
        Seconds per cause (:func:`causes`); sums to T.
    binding_s : dict of str -> float
        Seconds per binding term (``compute``, ``device:K``, ``link_read:K``,
        ``link_write:K``); sums to T.
    binding_epochs : dict of str -> int
        Epochs per binding term.
    epoch_time_s : ndarray, shape (E,)
    binding : list of str, length E
    parts_s : ndarray, shape (len(causes), E)
        The per-epoch split; column e sums to τ(e).
    causes : list of str
    feasible : bool
    evaluation : Evaluation
    """

    total_time_s: float
    breakdown_s: dict
    binding_s: dict
    binding_epochs: dict
    epoch_time_s: np.ndarray = field(repr=False)
    binding: list = field(repr=False)
    parts_s: np.ndarray = field(repr=False)
    causes: list = field(repr=False)
    feasible: bool = True
    evaluation: Evaluation | None = field(default=None, repr=False)

    def to_dict(self, instance: Instance | None = None, per_epoch: bool = True) -> dict:
        """JSON-ready: ``total_time_s``, ``breakdown_s``, ``binding_s``, ``binding_epochs``,
        ``feasible``, traffic totals and (``per_epoch=True``) ``per_epoch``: one record per
        epoch with ``epoch``, ``tau_s``, ``binding``, ``parts_s`` (the non-zero causes) and,
        when the instance has them, its ``step`` and ``layer`` labels."""
        ev = self.evaluation
        d = {"total_time_s": self.total_time_s, "feasible": self.feasible,
             "breakdown_s": dict(self.breakdown_s), "binding_s": dict(self.binding_s),
             "binding_epochs": dict(self.binding_epochs)}
        if ev is not None:
            d["violations"] = list(ev.violations[:20])
            d["num_moves"] = ev.num_moves
            d["hbm_read_share"] = ev.hbm_read_share
            d["traffic_bytes"] = {"reads": _per_tier(instance, ev.read_bytes),
                                  "writes": _per_tier(instance, ev.write_bytes),
                                  "copy_in": _per_tier(instance, ev.copy_in_bytes)}
        if per_epoch:
            labels = {} if instance is None else {k: np.asarray(v).tolist()
                                                   for k, v in instance.epoch_labels.items()}
            recs = []
            tau = self.epoch_time_s.tolist()
            parts = self.parts_s
            nz = parts != 0
            for e in range(tau.__len__()):
                rec = {"epoch": e}
                for k, v in labels.items():
                    rec[k] = v[e]
                rec["tau_s"] = tau[e]
                rec["binding"] = self.binding[e]
                rows = np.flatnonzero(nz[:, e])
                rec["parts_s"] = {self.causes[j]: float(parts[j, e]) for j in rows}
                recs.append(rec)
            d["per_epoch"] = recs
        return d


def _per_tier(instance: Instance | None, arr: np.ndarray) -> dict:
    names = [f"tier{k}" for k in range(arr.shape[0])] if instance is None else \
        [t.name for t in instance.tiers]
    return {n: float(v) for n, v in zip(names, arr.sum(axis=1))}


def breakdown(instance: Instance, schedule: Schedule | None = None, *,
              evaluation: Evaluation | None = None) -> Breakdown:
    """Attribute a schedule's T to causes (give the schedule, or its evaluation).

    Parameters
    ----------
    instance : Instance
    schedule : Schedule, optional
    evaluation : Evaluation, optional
        :func:`~hetkv_opt.model.evaluate.evaluate`'s result, if already at hand.

    Returns
    -------
    Breakdown

    Raises
    ------
    ValueError
        A structurally broken schedule (the evaluator gives it no time).
    """
    ev = evaluation if evaluation is not None else evaluate(instance, schedule)
    if not np.isfinite(ev.total_time_s):
        raise ValueError("the schedule has no time (structurally broken): "
                         + "; ".join(ev.violations[:3]))
    names = causes(instance)
    idx = {c: j for j, c in enumerate(names)}
    E = instance.num_epochs
    tau = np.asarray(ev.epoch_time_s, float)
    binding = list(ev.binding)
    parts = np.zeros((len(names), E))
    bnames = np.asarray(binding, dtype=object)
    tiers = {t.name: k for k, t in enumerate(instance.tiers)}
    r, w = ev.read_bytes, ev.write_bytes
    ci, co = ev.copy_in_bytes, ev.copy_out_bytes
    for term in sorted(set(binding)):
        es = np.flatnonzero(bnames == term)
        if term == "compute":
            parts[idx["compute"], es] = tau[es]
            continue
        kind, _, tname = term.partition(":")
        k = tiers[tname]
        if kind == "device":
            comps = [("device:" + tname, r[k, es]), ("writes", w[k, es]),
                     ("copies", ci[k, es] + co[k, es])]
        elif kind == "link_read":
            comps = [("link:" + tname, r[k, es]), ("copies", co[k, es])]
        else:  # link_write
            comps = [("writes", w[k, es]), ("copies", ci[k, es])]
        # (a binding term other than compute has traffic: ties go to compute, the first)
        total = sum(c[1] for c in comps)
        safe = np.where(total > 0, total, 1.0)
        shares = np.array([tau[es] * traffic / safe for _, traffic in comps])
        # the rounding remainder goes to each epoch's largest part (zero parts stay zero)
        big = np.argmax(shares, axis=0)
        cols = np.arange(es.size)
        shares[big, cols] += tau[es] - shares.sum(axis=0)
        for j, (cause, _) in enumerate(comps):
            parts[idx[cause], es] += shares[j]
    T = float(ev.total_time_s)
    sums = {c: math.fsum(parts[j]) for j, c in enumerate(names)}
    _exact(sums, T)
    bsum: dict[str, float] = {}
    bcount: dict[str, int] = {}
    for term in sorted(set(binding)):
        m = bnames == term
        bsum[term] = math.fsum(tau[m])
        bcount[term] = int(m.sum())
    _exact(bsum, T)
    return Breakdown(total_time_s=T, breakdown_s=sums, binding_s=bsum, binding_epochs=bcount,
                     epoch_time_s=tau, binding=binding, parts_s=parts, causes=names,
                     feasible=bool(ev.feasible), evaluation=ev)


def _exact(parts: dict, total: float) -> None:
    """Make ``math.fsum(parts.values()) == total`` by moving the rounding remainder into
    the largest part (a few ulps at most)."""
    if not parts:
        return
    rest = total - math.fsum(parts.values())
    if rest == 0:
        return
    big = max(parts, key=lambda k: abs(parts[k]))
    parts[big] += rest
    for _ in range(64):                 # then ulp by ulp (the sum may straddle total)
        rest = total - math.fsum(parts.values())
        if rest == 0:
            return
        parts[big] = math.nextafter(parts[big], math.inf if rest > 0 else -math.inf)


def compare(a: Breakdown, b: Breakdown) -> dict:
    """Cause by cause, ``a - b`` in seconds (positive: ``a`` loses time there)."""
    keys = list(dict.fromkeys(list(a.breakdown_s) + list(b.breakdown_s)))
    return {k: a.breakdown_s.get(k, 0.0) - b.breakdown_s.get(k, 0.0) for k in keys}


def residency_dense(instance: Instance, schedule: Schedule,
                    items: np.ndarray | None = None) -> np.ndarray:
    """Tier of every (item, epoch), int8, -1 where the item is not alive, without a Python
    loop per entry (a structurally valid schedule).  ``items`` selects rows (ascending).

    >>> from hetkv_opt.model.instance import tiny_instance
    >>> residency_dense(tiny_instance(), Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0])).tolist()
    [[0, 0, 0], [1, 1, 1], [-1, 0, 0]]
    """
    N, E = instance.num_items, instance.num_epochs
    it, ep, ti = schedule.item, schedule.epoch, schedule.tier
    end = instance.death[it].copy()
    if it.size > 1:
        same = it[1:] == it[:-1]
        end[:-1] = np.where(same, ep[1:], end[:-1])
    if items is None:
        rows = np.arange(N)
        row_of = it
    else:
        rows = np.asarray(items, np.int64)
        pos = np.full(N, -1, np.int64)
        pos[rows] = np.arange(rows.size)
        keep = pos[it] >= 0
        it, ep, ti, end = it[keep], ep[keep], ti[keep], end[keep]
        row_of = pos[it]
    M = rows.size
    diff = np.zeros(M * E + 1, np.int16)
    val = (ti + 1).astype(np.int16)
    np.add.at(diff, row_of * E + ep, val)
    np.add.at(diff, row_of * E + end, -val)
    out = np.cumsum(diff[:-1], dtype=np.int16).reshape(M, E) - 1
    return out.astype(np.int8)


__all__ = ["Breakdown", "SHARED_CAUSES", "breakdown", "causes", "compare", "residency_dense"]
