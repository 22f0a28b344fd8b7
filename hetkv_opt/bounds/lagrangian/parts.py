"""The Lagrangian bound decomposed by layer, in one process or on Dask workers.

With epochs of (decode step, layer) a layer's items are read and written only in that
layer's epochs; layers share only the capacity of each tier.  For fixed prices (the time
rows' weights and the capacity prices) the Lagrangian separates by item anyway, so it
separates by layer: each layer's items are one *part* with its own event oracle
(:class:`~hetkv_opt.bounds.lagrangian.events.EventOracle`), and the master (the bundle
method of :mod:`~hetkv_opt.bounds.lagrangian.master`) keeps the prices, the constant part
of L and the supergradient for the whole.

Per oracle call the master sends the per-tier prices (10 arrays of E floats); a *group*
of parts (the parts one worker holds) builds the binary-lifting tables once, runs every
part's shortest paths, and returns each part's sum of path costs and the group's traffic
(bytes per tier and epoch: whole numbers, so their sums are exact in any order).  The
master adds the path sums in part order, so the value, the supergradient and hence the
whole run are the same bit for bit whatever the number of workers or groups.

Memory: a part's transient arrays during a call are those of one layer's events; a process
holding every part holds about 90 bytes per event.

>>> from hetkv_opt.workloads.paper import paper_instance
>>> from hetkv_opt.bounds.lagrangian.problem import prepare
>>> from hetkv_opt.bounds.lagrangian.master import initial_prices
>>> from hetkv_opt.bounds.lagrangian.events import EventOracle
>>> inst = paper_instance(layers=3, prompt_tokens=64, steps=8, sparsity=0.6)
>>> p = prepare(inst)
>>> lam, mu = initial_prices(p)
>>> whole, parts = EventOracle(p).evaluate(lam, mu), PartsOracle(p, inst).evaluate(lam, mu)
>>> abs(whole.value - parts.value) < 1e-12 * abs(whole.value), len(PartsOracle(p, inst).parts)
(True, 3)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hetkv_opt.bounds.lagrangian.events import EventOracle, applicable, build_tables
from hetkv_opt.bounds.lagrangian.problem import (Eval, Problem, constant_term, free_item_fields,
                                                 gradient_from_traffic, tier_prices)
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.parts import LayerPart, is_layered, split_by_layer


#: a call whose workers were lost is sent again this many times
RETRIES = 3


def slim(p: Problem) -> Problem:
    """What a part's oracle needs of the whole problem (the price structure and the rooms),
    without the whole instance's items: what a worker receives."""
    empty = free_item_fields_empty(p.E)
    return dataclasses.replace(p, inst=None, const=None, rooms=None, R0pin=None, Rtot=None,
                               c=None, tau_hi=None, born_at=[], last_at=[], **empty)


def free_item_fields_empty(E: int) -> dict:
    z = np.zeros(0, np.int64)
    return dict(free=z, s=np.zeros(0), birth=z, death=z, init=z, r_ptr=np.zeros(E + 1, np.int64),
                r_i=z, r_b=np.zeros(0), w_ptr=np.zeros(E + 1, np.int64), w_i=z, w_b=np.zeros(0))


def part_problem(base: Problem, part: LayerPart) -> Problem:
    """The problem of one part: ``base``'s prices and rooms, the part's free items (their
    ``free`` indices are global item indices)."""
    fields = free_item_fields(part.instance)
    fields["free"] = np.asarray(part.items, np.int64)[fields["free"]]
    return dataclasses.replace(base, inst=part.instance, born_at=[], last_at=[], **fields)


class PartGroup:
    """The parts one process (or one Dask worker) holds, each with its event oracle."""

    def __init__(self, base: Problem, parts: list[LayerPart], sizes: np.ndarray):
        self.base = base
        self.layers = [pt.layer for pt in parts]
        self.oracles = []
        for pt in parts:
            sub = part_problem(base, pt)
            self.oracles.append(EventOracle(sub, sizes=sizes) if sub.free.size else None)
        self.sizes = sizes
        self.levels = max([o.levels for o in self.oracles if o is not None], default=1)
        self.events = sum(o.n_ev for o in self.oracles if o is not None)

    def paths(self, prices, gradient: bool = True):
        """Per part: the sum of its free items' path costs (inf when one has no path, with
        that item's global index); and the group's traffic ``(R, W, Min, Mout, occ)``."""
        tables = build_tables(self.sizes, self.levels, self.base.room_full, *prices[2:])
        sums, traffic, stuck = [], None, None
        for o in self.oracles:
            if o is None:
                sums.append(0.0)
                continue
            shortest, tr = o.paths(prices, tables, gradient=gradient)
            bad = ~np.isfinite(shortest)
            if bad.any() and stuck is None:
                stuck = int(o.p.free[np.flatnonzero(bad)[0]])
            sums.append(float(np.sum(shortest)))
            if gradient:
                traffic = list(tr) if traffic is None else [a + b for a, b in zip(traffic, tr)]
        return sums, traffic, stuck


def _build_group(base, parts, sizes):
    return PartGroup(base, parts, sizes)


def _group_paths(group, prices, gradient):
    return group.paths(prices, gradient)


def _load_shard_parts(path, layers):
    """A worker's parts read from a sharded instance (only its own layers)."""
    from hetkv_opt.io.shards import open_sharded        # the io layer is below this one
    sh = open_sharded(path)
    return [sh.load_part(layer) for layer in layers]


def _build_group_from_shards(base, path, layers, sizes):
    return PartGroup(base, _load_shard_parts(path, layers), sizes)


class PartsOracle:
    """The Lagrangian oracle as a sum over layer parts (module docstring).

    Parameters
    ----------
    p : Problem
        The prepared whole problem (prices, constants, rooms).
    inst : Instance, optional
        Split by :func:`~hetkv_opt.model.parts.split_by_layer` (default ``p.inst``).
    parts : list of LayerPart, optional
        Already split (instead of ``inst``).
    groups : int
        Parts are dealt round-robin into this many groups (one per worker).
    client : dask.distributed.Client, optional
        Run the groups on its workers (each holds its group between calls; a lost worker's
        group is rebuilt by Dask from the same inputs, so results do not change).
    shards : str, optional
        A sharded instance directory: workers read their own layers from it instead of
        receiving the parts.
    """

    def __init__(self, p: Problem, inst: Instance | None = None, *, parts=None, groups: int = 1,
                 client=None, shards: str | None = None, layers=None):
        self.p = p
        if parts is None and shards is None:
            parts = split_by_layer(inst if inst is not None else p.inst)
        self.sizes = np.unique(p.s)
        base = slim(p)
        if shards is not None:
            layer_ids = list(layers)
        else:
            layer_ids = [pt.layer for pt in parts]
        self.parts = layer_ids
        G = max(1, min(int(groups), len(layer_ids)))
        deal = [list(range(g, len(layer_ids), G)) for g in range(G)]
        self.client = client
        self.order = [j for d in deal for j in d]          # part index of each returned sum
        if client is None:
            self.groups = [PartGroup(base, [parts[j] for j in d], self.sizes) for d in deal]
        else:
            if shards is not None:
                self.groups = [client.submit(_build_group_from_shards, base, shards,
                                             [layer_ids[j] for j in d], self.sizes, pure=False)
                               for d in deal]
            else:
                self.groups = [client.submit(_build_group, base, [parts[j] for j in d],
                                             self.sizes, pure=False) for d in deal]
        self.calls = 0
        self.retries = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def density(self) -> float:
        return 0.0

    def _run(self, prices, gradient):
        if self.client is None:
            return [g.paths(prices, gradient) for g in self.groups]
        # the prices travel inside each task (not scattered: a scattered array lives only
        # where it was put, and a lost worker would take it along; a task can be re-run)
        for attempt in range(RETRIES + 1):
            futs = [self.client.submit(_group_paths, g, prices, gradient, pure=False)
                    for g in self.groups]
            try:
                out = self.client.gather(futs)
                break
            except Exception as exc:          # a worker lost mid-call: Dask rebuilds its group
                if attempt == RETRIES or isinstance(exc, (ValueError, KeyboardInterrupt)):
                    raise
                self.retries += 1
        self.bytes_sent += len(self.groups) * sum(a.nbytes for a in prices)
        self.bytes_received += sum(8 * len(s) + sum(a.nbytes for a in (t or ()))
                                   for s, t, _ in out)
        return out

    def evaluate(self, lam, mu, *, gradient: bool = True) -> Eval:
        """L at the prices, and (with ``gradient``) a supergradient: the same as one event
        oracle over every item, up to the order of the path sums."""
        p = self.p
        self.calls += 1
        prices = tier_prices(p, lam, mu)
        out = self._run(prices, gradient)
        sums = np.zeros(len(self.order))
        traffic = None
        for (s, tr, stuck), idx in zip(out, _chunks(self.order, [len(o[0]) for o in out])):
            if stuck is not None:
                raise ValueError(f"infeasible: item {stuck} has no placement that fits the "
                                 f"capacities at every epoch of its life")
            sums[idx] = s
            if gradient:
                traffic = list(tr) if traffic is None else [a + b for a, b in zip(traffic, tr)]
        value = constant_term(p, lam, mu) + math.fsum(sums)
        if not gradient:
            return Eval(value, None, None, None)
        return Eval(value, *gradient_from_traffic(p, lam, *traffic), None)


def _chunks(order, lengths):
    out, k = [], 0
    for n in lengths:
        out.append(order[k:k + n])
        k += n
    return out


def decomposable(p: Problem, inst: Instance) -> bool:
    """Whether the bound can run by layer: the event oracle applies and the instance's
    epochs each touch one layer's items."""
    return applicable(p) and is_layered(inst)


__all__ = ["PartGroup", "PartsOracle", "decomposable", "part_problem", "slim"]
