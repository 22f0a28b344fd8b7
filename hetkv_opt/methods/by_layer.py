"""Solve a sharded instance one layer at a time (docs/scale.md, "By layer").

For instances too large to hold whole (the paper's workload: 3.0e8 reads), the layers are
loaded one at a time from a sharded folder (:mod:`hetkv_opt.io.shards`):

1. the shares: every layer gets a share of each bounded tier, its pinned bytes plus the
   free room in proportion to its free bytes (a first pass over the shards' item arrays);
   shares that sum to the capacity keep every epoch's total within it;
2. per layer, :func:`~hetkv_opt.methods.split.balanced_placement` on the layer with its
   share, in its share of the time; the layer's :class:`~hetkv_opt.model.evaluate.Traffic`
   under the placement is kept (bytes per tier and epoch), the layer dropped;
3. the evaluation is :func:`~hetkv_opt.model.evaluate.score` of the summed traffic: the
   evaluator's own computation, capacities checked on the totals;
4. the bound is the better of the aggregate-bandwidth line (from the folder's per-epoch
   summary) and the per-epoch bound (:mod:`hetkv_opt.model.epoch_bound`), whose parts
   are summed layer by layer as the layers pass.

Peak memory is one layer's arrays plus O(tiers x epochs).  The schedule (one entry per
item) is for the whole instance.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.io.shards import open_sharded
from hetkv_opt.methods.split import balanced_placement, out_of_scope
from hetkv_opt.model.epoch_bound import epoch_parts, per_epoch_bound_from
from hetkv_opt.methods.starts import placement_schedule
from hetkv_opt.model.evaluate import broken, score, traffic
from hetkv_opt.model.schedule import Schedule, check_structure
from hetkv_opt.result import OPTIMAL_SLACK, SolveResult, finish, gap

#: the time kept back for scoring at the end
RESERVE_SHARE = 0.05

#: ``auto`` solves a layered instance (two layers or more) by layer when it holds more
#: reads than this (held whole, the portfolio's arrays take about 200 bytes per read: 26M
#: reads peaked at 6 GB)
BY_LAYER_MIN_READS = 20_000_000


def goes_by_layer(path) -> bool:
    """Whether ``auto`` takes the by-layer path on the sharded folder ``path`` by default:
    two layers or more and more than :data:`BY_LAYER_MIN_READS` reads (read from the
    manifest alone)."""
    sh = open_sharded(path)
    layered = len([layer for layer in sh.layers if layer >= 0]) >= 2
    return layered and sh.summary()["reads"] > BY_LAYER_MIN_READS


def _item_arrays(sh, entry) -> dict:
    """A shard's item arrays (for planning the shares; the shard is checked in full when
    its layer is loaded)."""
    with np.load(sh.path / entry["file"], allow_pickle=False) as z:
        return {k: z[f"items.{k}"] for k in ("index", "size_bytes", "pinned_tier")}


def capacity_shares(sh) -> dict[int, list]:
    """Per layer, the capacity of every tier it may use: its pinned bytes there plus the
    tier's free room in proportion to the layer's free bytes (None: unbounded)."""
    tpl = sh.template()
    rows = []
    for entry in sh.manifest["shards"]:
        a = _item_arrays(sh, entry)
        size = a["size_bytes"].astype(float)
        pinned = [float(size[a["pinned_tier"] == k].sum()) for k in range(tpl.num_tiers)]
        rows.append((entry["layer"], pinned, float(size[a["pinned_tier"] < 0].sum())))
    free_total = sum(f for _, _, f in rows) or 1.0
    shares = {}
    for layer, pinned, free in rows:
        caps = []
        for k, t in enumerate(tpl.tiers):
            if t.capacity_bytes is None:
                caps.append(None)
                continue
            room = t.capacity_bytes - sum(r[1][k] for r in rows)
            caps.append(int(pinned[k] + max(room, 0.0) * free / free_total))
        shares[layer] = caps
    return shares


def place_layer(source, layer: int, caps: list, budget) -> dict:
    """Load one layer, place it by the split heuristic within its capacity share ``caps``,
    and return what the master keeps of it: its items' global indices, their births and
    tiers (the schedule's entries), its :class:`~hetkv_opt.model.evaluate.Traffic`, its
    :class:`~hetkv_opt.model.epoch_bound.EpochParts` and a record.  A plain function of
    its arguments, so that a Dask worker can run it.

    ``source`` is the sharded folder (a path, opened here) or an open one; ``budget`` is
    the seconds for the whole task, loading included (None: no limit), or a callable
    given the loading's seconds that returns the placement's deadline.
    """
    t0 = time.perf_counter()
    sh = open_sharded(source) if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__") \
        else source
    part = sh.load_part(layer)
    inst = part.instance
    tiers_l = tuple(dataclasses.replace(t, capacity_bytes=c) for t, c in zip(inst.tiers, caps))
    loaded_s = time.perf_counter() - t0
    if callable(budget):
        limit = budget(loaded_s)
    else:
        limit = None if budget is None else max(0.0, budget - loaded_s)
    info: dict = {}
    t1 = time.perf_counter()
    sched = balanced_placement(dataclasses.replace(inst, tiers=tiers_l), deadline=limit, info=info)
    placed_s = time.perf_counter() - t1
    if sched is None:                         # its share holds nothing more: all in place
        sched = placement_schedule(inst, np.full(inst.num_items, inst.num_tiers - 1))
    local = Schedule(inst.name, sched.item, sched.epoch, sched.tier)
    problems = check_structure(inst, local)
    if problems:                              # pragma: no cover - built to be valid
        raise RuntimeError(f"by layer: layer {layer}'s schedule: {problems[0]}")
    out = {"items": part.items[sched.item], "births": sched.epoch, "tiers": sched.tier,
           "traffic": traffic(inst, local), "parts": epoch_parts(inst)}
    runtime = time.perf_counter() - t0
    out["row"] = {"layer": layer, "runtime_s": round(runtime, 3), "rounds": info.get("rounds"),
                  "finished": info.get("finished"), "start_s": info.get("start_s"),
                  "end_s": info.get("end_s"), "overhead_s": runtime - placed_s}
    return out


def _result_bytes(out: dict) -> int:
    """Bytes of the arrays one layer's task hands back (what a worker sends the master)."""
    arrays = [out["items"], out["births"], out["tiers"]]
    arrays += [getattr(out["traffic"], f) for f in ("reads", "writes", "copy_in", "copy_out",
                                                    "occupancy")]
    arrays += [getattr(out["parts"], f) for f in ("reads", "writes", "fixed_reads",
                                                  "fixed_writes", "free_reads", "free_gcd")]
    return int(sum(np.asarray(a).nbytes for a in arrays))


def solve_by_layer(path, *, time_limit_s: "float | Deadline | None" = 600.0,
                   progress=None, client=None) -> SolveResult:
    """The by-layer path of the module docstring on the sharded folder ``path``.

    With a Dask ``client`` (:func:`hetkv_opt.cluster.open_client`) the layers are placed
    on its workers, as many at a time as there are workers, each worker reading its layer
    from ``path`` (so the folder must be where the workers can read it: a shared file
    system on a real cluster).  Where every layer's search finishes in its time, the
    result is the same, entry for entry, as in one process.

    Returns a :class:`~hetkv_opt.result.SolveResult` whose schedule covers every item and
    whose time is the evaluator's (the summed traffic of the layers, scored once).
    """
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    sh = open_sharded(path)
    tpl = sh.template()
    summary = sh.summary()
    bounds = {"aggregate": summary["aggregate_bound_s"]}
    why = out_of_scope(tpl)
    if why:
        return finish(tpl, "auto", status="bound_only", bounds=bounds, t_start=t_start,
                      message=f"by layer: the split heuristic does not apply ({why}); the "
                              f"bound is the aggregate line")
    shares = capacity_shares(sh)
    work = dl.child(fraction=1.0 - RESERVE_SHARE)
    layers = sh.layers
    acc = {"total": None, "parts": None, "items": [], "births": [], "tiers": [], "rows": [],
           "bytes": 0}

    def keep(out):
        acc["total"] = out["traffic"] if acc["total"] is None else acc["total"] + out["traffic"]
        acc["parts"] = out["parts"] if acc["parts"] is None else acc["parts"] + out["parts"]
        for k in ("items", "births", "tiers"):
            acc[k].append(out[k])
        acc["rows"].append(out["row"])
        acc["bytes"] += _result_bytes(out)
        if progress is not None:
            progress({"phase": "by layer", "elapsed_s": time.perf_counter() - t_start,
                      "layer": len(acc["rows"]), "layers": len(layers), "incumbent_s": None,
                      "bound_s": bounds["aggregate"], "gap": None})

    if client is None:
        for n, layer in enumerate(layers):
            overheads = [r["overhead_s"] for r in acc["rows"]]
            keep(place_layer(sh, layer, shares[layer],
                             lambda loaded_s, left=len(layers) - n, o=overheads:
                             work.child(_placement_s(work, left, o, loaded_s))))
    else:
        _on_workers(client, path, layers, shares, work, keep)
    item = np.concatenate(acc["items"])
    order = np.argsort(item, kind="stable")
    schedule = Schedule(tpl.name, item[order], np.concatenate(acc["births"])[order],
                        np.concatenate(acc["tiers"])[order])
    ev = score(tpl, [acc["total"]])
    bounds["per_epoch"] = per_epoch_bound_from(tpl.tiers, tpl.mode, tpl.min_time_s, acc["parts"])
    which = ("the per-epoch bound (fixed reads in their tier)"
             if bounds["per_epoch"] > bounds["aggregate"] else "the aggregate line")
    rows = sorted(acc["rows"], key=lambda r: layers.index(r["layer"]))
    for r in rows:
        r.pop("overhead_s", None)
    details = {"by_layer": rows, "scale_path": True,
               "shares": {str(k): v for k, v in shares.items()}}
    where = "in this process"
    if client is not None:
        nw = len(client.scheduler_info().get("workers", {}))
        details["workers"] = {"count": nw, "bytes_received": acc["bytes"]}
        where = f"on {nw} Dask workers"
    # a schedule on the bound is optimal (within the MILP's own slack on a gap of 0)
    g = gap(ev.total_time_s, max(bounds.values())) if ev.feasible else None
    status = "optimal" if g is not None and g <= OPTIMAL_SLACK else "feasible"
    return finish(tpl, "auto", status=status, schedule=schedule, evaluation=ev,
                  bounds=bounds, t_start=t_start, details=details, gap_tol=0.0,
                  message=f"by layer: {len(layers)} layers {where}, each placed by the split "
                          f"heuristic in its share of the capacity and of the time; bound "
                          f"from {which}")


def _on_workers(client, path, layers, shares, work: Deadline, keep) -> None:
    """Place the layers on the client's workers, one task per layer and at most one per
    worker at a time; a task's time (loading included) is its share of the time left over
    the waves of tasks still to start.  Results are kept as they arrive; a worker lost
    mid-task has its task run again by Dask."""
    import distributed
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    src = str(Path(path).resolve())
    todo = list(layers)
    done = distributed.as_completed()

    def submit():
        layer = todo.pop(0)
        left = work.remaining_s()
        waves = -(-(len(todo) + 1) // workers)
        task_s = None if left is None else left / waves
        done.add(client.submit(place_layer, src, layer, shares[layer], task_s, pure=False,
                               key=f"hetkv-layer-{layer}-{uuid.uuid4().hex[:8]}"))

    for _ in range(min(workers, len(todo))):
        submit()
    for fut in done:
        keep(fut.result())
        fut.release()
        if todo:
            submit()


def _placement_s(work: Deadline, layers_left: int, overheads: list, loaded_s: float):
    """The seconds this layer's placement may take: its share of the time left once every
    layer still to come has had its loading and scoring (measured on the layers so far;
    before any, this one's loading counted twice), at least nothing.  Loading a layer
    cannot be stopped: on a loaded machine it took longer than the placement got, and a
    1200-s run took 1772 s when the shares left it out."""
    left = work.remaining_s()
    if left is None:
        return None
    per_layer = (sum(overheads) / len(overheads)) if overheads else 2.0 * loaded_s
    rest = per_layer * (layers_left - 1) + max(per_layer - loaded_s, 0.0)
    return max(0.0, (left - rest) / layers_left)


def evaluate_sharded(path, schedule: Schedule):
    """The evaluation of a whole-instance ``schedule`` on a sharded folder, one layer at a
    time: each layer's entries are checked against the layer (:func:`check_structure`)
    and its traffic kept; the sum is scored once (:func:`~hetkv_opt.model.evaluate.score`),
    which is what :func:`~hetkv_opt.model.evaluate.evaluate` gives on the whole instance.

    Returns ``(evaluation, mismatch)``: ``mismatch`` says in words why the schedule cannot
    be for this instance (then ``evaluation`` is None).
    """
    sh = open_sharded(path)
    tpl = sh.template()
    N, E, K = sh.manifest["items"]["count"], tpl.num_epochs, tpl.num_tiers
    if schedule.instance != tpl.name:
        return None, f"the schedule is for instance '{schedule.instance}', not '{tpl.name}'"
    for arr, what, n in ((schedule.item, "items", N), (schedule.epoch, "epochs", E),
                         (schedule.tier, "tiers", K)):
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
            return None, (f"the schedule uses {what} up to {int(arr.max())}, the instance has "
                          f"{n} {what}: it was made for another instance")
    if int(np.unique(schedule.item).size) != N:
        return None, (f"the schedule places {int(np.unique(schedule.item).size)} items, the "
                      f"instance has {N} items: it was made for another instance")
    total, problems = None, []
    for layer in sh.layers:
        part = sh.load_part(layer)
        inst = part.instance
        keep = np.isin(schedule.item, part.items)
        local = Schedule(inst.name, np.searchsorted(part.items, schedule.item[keep]),
                         schedule.epoch[keep], schedule.tier[keep])
        found = check_structure(inst, local)
        if found:
            problems += [f"layer {layer}: {p}" for p in found]
            continue
        tr = traffic(inst, local)
        total = tr if total is None else total + tr
    if problems:
        return broken(tpl, problems), None
    return score(tpl, [total]), None


__all__ = ["capacity_shares", "evaluate_sharded", "solve_by_layer"]
