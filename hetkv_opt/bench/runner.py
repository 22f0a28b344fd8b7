"""Run a suite: every (instance, method) cell, one JSON result file per cell.

- **Whole or absent**: a cell's file is written to a temporary file and renamed
  (:func:`hetkv_opt.io.files.atomic_write_bytes`), so a killed sweep leaves finished cells and
  nothing half-written under a cell's name.
- **Resumable**: a cell whose file exists and carries the same ``cell_sha256`` (a hash of
  the instance's *content*, the method spec and the seed) is skipped; change the
  instance, a parameter or a time limit and the cell runs again.  Cells that ended in
  ``status = "error"`` run again by default.
- **Executors**: in this process (``workers=1``, the default), a local process pool
  (``workers=N``, :mod:`concurrent.futures`, nothing to install), or an existing Dask
  cluster (``scheduler="tcp://HOST:PORT"``, needs the ``dask`` extra).  Workers regenerate
  generated instances from their spec and check the content hash, so every executor runs
  the same instance; file instances are shipped whole.  The parent writes every file, so
  Dask workers need no shared file system.
- **Interruptible**: Ctrl-C (SIGINT) or SIGTERM while a cell runs in this process stops
  the sweep: the interrupted cell is not stored (a solver that absorbed the signal
  returns a truncated result, which must not pass for the cell's), its time budget ends at
  once, and :func:`run_suite` raises KeyboardInterrupt; a rerun runs that cell again.
- **Same numbers everywhere**: solvers run single-threaded with the suite's seed, and
  policies are deterministic; only runtimes (and, for time-limited MILPs that stop at
  their limit, the incumbent reached) depend on the machine.

A cell file (``schema = "hetkv-bench-cell"``) holds the :class:`~hetkv_opt.solve.SolveResult`
as ``result`` (the ``hetkv solve --format json`` object), the instance's name, hash, source
and size, the method spec, the seed, package versions, the machine and the executor
(``here``, ``pool``, ``dask``); no timestamps.

Scripts that call :func:`run_suite` with ``workers > 1`` need the usual
``if __name__ == "__main__":`` guard: pool workers are started with ``spawn`` (a fresh
interpreter, never a fork of a process that ran HiGHS), which imports the main script.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import importlib
import json
import math
import multiprocessing
import os
import platform
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hetkv_opt.bench.suite import (InstanceSpec, MethodSpec, Suite, SuiteError, build_instance,
                                   load_suite, spec_json)
from hetkv_opt.deadline import Deadline
from hetkv_opt.io.files import check_header
from hetkv_opt.model.instance import Instance, ModelError

CELL_SCHEMA = "hetkv-bench-cell"
CELL_SCHEMA_VERSION = 1
# keys whose values depend on the machine or the run, not on the problem: wall-clock
# measurements (any key ending in one of these) and where the cell ran
VOLATILE_SUFFIXES = ("runtime_s", "build_s", "rounding_s", "elapsed_s")
VOLATILE_KEYS = frozenset({"machine", "executor"})


def _volatile(key: str) -> bool:
    return key in VOLATILE_KEYS or key.endswith(VOLATILE_SUFFIXES)
DASK_HINT = "pip install 'hetkv-opt[dask]'  (dask[distributed])"


class BenchError(RuntimeError):
    """The sweep cannot run (an executor is missing or unreachable); one line for users."""


@dataclass(frozen=True)
class Task:
    """One cell to run: everything a worker needs, picklable."""

    suite: str
    cell_id: str
    cell_sha256: str
    seed: int
    instance: InstanceSpec
    method: MethodSpec
    instance_sha256: str
    size: dict
    payload: Instance | None = None   # the instance itself (files; in-process runs)
    bound_cache: str | None = None    # where proven bounds are kept (policies' ``bound``)

    def cost_hint(self) -> float:
        """Rough cost used to start long cells first."""
        tl = self.method.time_limit_s or 0.0
        return tl + 1e-6 * self.size.get("item_epochs", 0)


@dataclass
class SuiteRun:
    """What :func:`run_suite` did.

    Attributes
    ----------
    total, ran, skipped : int
        Cells in the suite, cells run now, cells already done (files kept).
    errors : list of str
        Cells whose result has ``status = "error"`` (written; run again next time).
    failed : list of str
        Cells that produced no result (worker crashed); nothing written.
    paths : list of Path
        Every cell file of the suite that exists now.
    runtime_s : float
    """

    suite: str
    out_dir: Path
    total: int = 0
    ran: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    runtime_s: float = 0.0


# ----------------------------------------------------------------------------- provenance

def package_versions() -> dict:
    """Versions of the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for key, dist in (("numpy", "numpy"), ("highspy", "highspy"), ("pulp", "pulp"),
                      ("hetkv_opt", "hetkv-opt")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out


def machine_info() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version()}


def cell_id(instance_name: str, label: str) -> str:
    """File-name-safe cell id: ``INSTANCE__LABEL`` with other characters as ``_``.

    >>> cell_id("drift-s40", "policy:lru")
    'drift-s40__policy_lru'
    """
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{instance_name}__{label}")


def _cell_sha256(instance_sha: str, method: MethodSpec, seed: int) -> str:
    spec = {"cell_schema_version": CELL_SCHEMA_VERSION, "instance_sha256": instance_sha,
            "method": method.to_dict(), "seed": seed}
    return hashlib.sha256(spec_json(spec).encode()).hexdigest()


def instance_size(inst: Instance) -> dict:
    """Sizes a report plots against (item-epochs: the MILP's residency variables)."""
    from hetkv_opt.model.terms import aggregate_bound_s
    return {"items": inst.num_items, "epochs": inst.num_epochs, "steps": inst.num_steps,
            "item_epochs": int((inst.death - inst.birth).sum()),
            "reads": int(inst.read_bytes.size), "read_bytes": int(inst.read_bytes.sum()),
            "aggregate_bound_s": aggregate_bound_s(inst)}


def sharded_size(sh) -> dict:
    """:func:`instance_size` of a sharded folder, from its manifest and epochs file."""
    m = sh.summary()
    return {"items": m["items"], "epochs": m["epochs"], "steps": m["steps"],
            "item_epochs": m["item_epochs"], "reads": m["reads"], "read_bytes": m["read_bytes"],
            "aggregate_bound_s": m["aggregate_bound_s"],
            **workload_of(sh.manifest.get("metadata") or {})}


def workload_of(metadata) -> dict:
    """What a report groups an instance file by, from the metadata its generator wrote:
    ``sparsity`` and ``hardware`` where present (an instance made by ``hetkv generate``)."""
    params = metadata.get("params") if isinstance(metadata, dict) else None
    out = {}
    if isinstance(params, dict) and isinstance(params.get("sparsity"), (int, float)):
        out["sparsity"] = float(params["sparsity"])
    hw = metadata.get("hardware") if isinstance(metadata, dict) else None
    if isinstance(hw, str):
        out["hardware"] = hw
    return out


# ----------------------------------------------------------------------------- planning

def plan(suite: Suite, *, keep_instances: bool = False) -> list[Task]:
    """The suite's cells as tasks (builds or loads each instance once, to hash it).

    Raises
    ------
    SuiteError
        An instance file that cannot be loaded, or a generator that fails.
    """
    from hetkv_opt.io.files import instance_hash, load_instance
    from hetkv_opt.io.shards import is_sharded_path, open_sharded
    tasks: list[Task] = []
    ids: dict[str, str] = {}
    for spec in suite.instances:
        where = f"instances[{spec.index}]"
        sharded = spec.file is not None and is_sharded_path(spec.file)
        try:
            if sharded:
                # planned from the manifest alone; the shards are checked (hash included)
                # when the cell loads them
                sh = open_sharded(spec.file)
                inst = None
                h, size = sh.manifest["instance_sha256"], sharded_size(sh)
            elif spec.file is not None:
                inst = load_instance(spec.file)
            else:
                inst = build_instance(spec.generator, spec.params, spec.name)
        except (ModelError, ValueError) as exc:
            raise SuiteError(f"{where}.{'file' if spec.file else 'params'}", str(exc),
                             suite.source) from None
        if inst is not None:
            h = instance_hash(inst)
            size = instance_size(inst)
            if spec.file is not None:
                size.update(workload_of(dict(inst.metadata)))
        for m in suite.methods:
            cid = cell_id(spec.name, m.label)
            if cid in ids:
                raise SuiteError("methods", f"cells {ids[cid]!r} and "
                                 f"{spec.name + '/' + m.label!r} share the file name {cid!r}",
                                 suite.source)
            ids[cid] = f"{spec.name}/{m.label}"
            payload = inst if (spec.file is not None or keep_instances) else None
            tasks.append(Task(suite=suite.name, cell_id=cid,
                              cell_sha256=_cell_sha256(h, m, suite.seed), seed=suite.seed,
                              instance=spec, method=m, instance_sha256=h, size=size,
                              payload=payload))
    return tasks


# ----------------------------------------------------------------------------- one cell

def _jsonable(obj: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _solver_config(m: MethodSpec):
    from hetkv_opt.milp.config import SolverConfig, load_preset
    cfg = load_preset(m.preset) if m.preset else SolverConfig()
    return dataclasses.replace(cfg, **dict(m.config))


class _Signals:
    """The first SIGINT/SIGTERM during a sweep, and the budgets of the cells it ends."""

    def __init__(self):
        self.signum: int | None = None
        self.deadlines: list[Deadline] = []

    def deadline(self, limit_s: float | None) -> Deadline:
        dl = Deadline(limit_s)
        self.deadlines.append(dl)
        return dl

    def check(self) -> None:
        """Raise KeyboardInterrupt once a signal came (a cell that absorbed it returned)."""
        if self.signum is not None:
            raise KeyboardInterrupt


#: the signal watch of the sweep running in this process (None elsewhere, e.g. in workers)
_WATCH: "_Signals | None" = None


@contextmanager
def _watch_signals():
    """While the sweep runs: SIGINT and SIGTERM are remembered, end the running cell's
    budget, then go to the handler there was (the CLI's, or Python's KeyboardInterrupt).
    A signal that was ignored stays ignored; off the main thread nothing is installed."""
    global _WATCH
    watch = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    previous = {}

    def handler(signum, frame):
        if watch.signum is None:
            watch.signum = signum
        for dl in watch.deadlines:
            dl.limit_s = max(0.0, dl.elapsed_s())
        prev = previous.get(signum)
        if callable(prev):
            prev(signum, frame)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old is signal.SIG_IGN:
            continue
        previous[sig] = old
        signal.signal(sig, handler)
    _WATCH = watch
    try:
        yield watch
    finally:
        _WATCH = None
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _run_method(inst: Instance, m: MethodSpec, deadline: Deadline | None = None,
                bound_cache: str | None = None) -> tuple[dict, bool, dict | None]:
    """Run one method; returns (result dict, oracle flag, warm-start report)."""
    if m.kind == "policy":
        from hetkv_opt.policies import get_policy, simulate
        bounds, source = {}, None
        if m.bound is not None:
            from hetkv_opt.bench.bounds import proven_bound
            source = proven_bound(inst, m.bound, time_limit_s=m.bound_time_limit_s,
                                  cache_dir=bound_cache)
            bounds = source["bounds_s"]
        res = simulate(inst, get_policy(m.policy, **dict(m.params)), bounds=bounds)
        d = res.to_dict()
        if source is not None:
            d["details"]["bound_source"] = {k: source[k] for k in (
                "asked", "time_limit_s", "bound_method", "bound_s", "cached", "note")
                if k in source}
        return d, bool(res.details.get("oracle", False)), None
    from hetkv_opt.solve import solve
    warm, ws_report = None, None
    if m.warm_start:
        from hetkv_opt.policies import get_policy, simulate
        t0 = time.perf_counter()
        times, chosen = {}, None
        for name in m.warm_start:
            r = simulate(inst, get_policy(name))
            times[name] = r.total_time_s
            if r.total_time_s is not None and r.schedule is not None and (
                    chosen is None or r.total_time_s < times[chosen]):
                warm, chosen = r.schedule, name
        ws_report = {"policies_s": times, "chosen": chosen,
                     "runtime_s": round(time.perf_counter() - t0, 6)}
    # the cell's budget as a deadline, which a signal ends (the Lagrangian method takes
    # plain seconds)
    limit = m.time_limit_s if deadline is None or m.method == "lagrangian" else deadline
    res = solve(inst, m.method, time_limit_s=limit, config=_solver_config(m), warm_start=warm)
    return res.to_dict(), False, ws_report


def run_cell(task: Task) -> dict:
    """Run one cell and return its record (never raises for a failing method: the record
    says ``status = "error"`` and why).  Top-level, so process pools and Dask can call it.
    In a sweep run here, the cell's budget is a deadline a signal ends."""
    t0 = time.perf_counter()
    warm = None
    oracle = False
    try:
        from hetkv_opt.io.files import instance_hash, load_instance
        inst, by_layer = task.payload, False
        if inst is None and task.instance.file is not None:
            # a sharded folder, planned from its manifest: auto goes by layer where the
            # CLI would; anything else loads it whole (every shard and the hash checked)
            from hetkv_opt.io.shards import open_sharded
            from hetkv_opt.methods.by_layer import goes_by_layer
            got = open_sharded(task.instance.file).manifest["instance_sha256"]
            if got != task.instance_sha256:
                raise RuntimeError(f"instance {task.instance.name}: {task.instance.file} now "
                                   f"holds content {got[:12]}, planned {task.instance_sha256[:12]}")
            by_layer = (task.method.method == "auto" and not task.method.warm_start
                        and goes_by_layer(task.instance.file))
            if not by_layer:
                # a policy takes the compact form (int32 read lists where they fit)
                inst = load_instance(task.instance.file,
                                     compact=task.method.kind == "policy")
        elif inst is None:
            inst = build_instance(task.instance.generator, task.instance.params,
                                  task.instance.name)
            got = instance_hash(inst)
            if got != task.instance_sha256:
                raise RuntimeError(f"instance {task.instance.name}: this worker generated "
                                   f"content {got[:12]}, the planner {task.instance_sha256[:12]} "
                                   f"(different package versions?)")
        t0 = time.perf_counter()
        watch = _WATCH
        dl = None if watch is None else watch.deadline(task.method.time_limit_s)
        if by_layer:
            from hetkv_opt.methods.by_layer import solve_by_layer
            result = solve_by_layer(task.instance.file, time_limit_s=(
                task.method.time_limit_s if dl is None else dl)).to_dict()
        else:
            result, oracle, warm = _run_method(inst, task.method, dl, task.bound_cache)
    except Exception as exc:  # a failing method is a result, not a crash of the sweep
        result = {"status": "error", "method": task.method.method,
                  "instance": task.instance.name, "total_time_s": None, "bound_s": None,
                  "bound_method": None, "gap": None, "hbm_read_share": None,
                  "runtime_s": round(time.perf_counter() - t0, 6),
                  "message": f"{type(exc).__name__}: {exc}", "details": {}}
    rec = {"schema": CELL_SCHEMA, "schema_version": CELL_SCHEMA_VERSION,
           "suite": task.suite, "cell": task.cell_id, "cell_sha256": task.cell_sha256,
           "seed": task.seed,
           "instance": {"name": task.instance.name, "group": task.instance.group,
                        "index": task.instance.index, "sha256": task.instance_sha256,
                        "source": task.instance.source(), **task.size},
           "method": {**task.method.to_dict(), "index": task.method.index},
           "oracle": oracle, "result": result, "warm_start": warm,
           "runtime_s": round(time.perf_counter() - t0, 6),
           "versions": package_versions(), "machine": machine_info()}
    return _jsonable(rec)


def comparable(record: dict) -> dict:
    """A record without its machine- and run-dependent fields (runtimes, machine).

    Two runs of the same cell on any executor give equal ``comparable`` records (for
    time-limited MILPs: when both finish before the limit).
    """
    if isinstance(record, dict):
        return {k: comparable(v) for k, v in record.items() if not _volatile(k)}
    if isinstance(record, list):
        return [comparable(v) for v in record]
    return record


# ----------------------------------------------------------------------------- files

def encode_record(record: dict) -> bytes:
    return (json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def read_record(path: Path) -> dict | None:
    """A cell file's record, or None when it is not a readable cell file."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    try:
        check_header(d, schema=CELL_SCHEMA, versions=CELL_SCHEMA_VERSION)
    except ModelError:
        return None
    return d


def _is_done(path: Path, sha: str, redo_errors: bool) -> bool:
    if not path.is_file():
        return False
    rec = read_record(path)
    if rec is None or rec.get("cell_sha256") != sha:
        return False
    status = (rec.get("result") or {}).get("status")
    return not (redo_errors and status == "error")


# ----------------------------------------------------------------------------- executors

def _run_here(todo: list[Task], done: Callable, watch: _Signals) -> None:
    for t in todo:
        rec = run_cell(t)
        watch.check()                      # interrupted: this cell's record is not kept
        done(t, rec, None)


def _run_pool(todo: list[Task], workers: int, done: Callable, watch: _Signals) -> None:
    ctx = multiprocessing.get_context("spawn")     # no fork of a process that ran HiGHS
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        futs = {ex.submit(run_cell, t): t for t in todo}
        for fut in cf.as_completed(futs):
            t = futs[fut]
            watch.check()
            try:
                rec = fut.result()
            except Exception as exc:     # a worker died (killed, out of memory)
                done(t, None, exc)
                continue
            watch.check()                # a worker's cell may have absorbed the same Ctrl-C
            done(t, rec, None)
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _require_dask():
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise BenchError(f"--scheduler needs Dask, which is not installed: "
                         f"{DASK_HINT}") from None


def _scheduler_address(scheduler) -> str:
    address = getattr(scheduler, "scheduler_address", scheduler)
    if not isinstance(address, str) or not re.match(r"^[a-z][a-z0-9+]*://\S+$", address):
        raise BenchError(f"option '--scheduler': expected an address such as "
                         f"tcp://HOST:PORT, got {address!r}")
    return address


def dask_client(scheduler):
    """A ``distributed.Client`` for an address (or the client/cluster given), and whether
    we opened it (and must close it)."""
    distributed = _require_dask()
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    address = _scheduler_address(scheduler)
    try:
        return distributed.Client(address, timeout="20s"), True
    except (OSError, TimeoutError) as exc:
        raise BenchError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def _run_dask(todo: list[Task], scheduler, done: Callable, watch: _Signals) -> None:
    from distributed import as_completed
    client, owned = dask_client(scheduler)
    try:
        futs = client.map(run_cell, todo, pure=False)
        by_key = {f.key: t for f, t in zip(futs, todo)}
        for fut in as_completed(futs):
            t = by_key[fut.key]
            watch.check()
            try:
                rec = fut.result()
            except Exception as exc:
                done(t, None, exc)
                continue
            watch.check()
            done(t, rec, None)
    finally:
        if owned:
            client.close()


# ----------------------------------------------------------------------------- the sweep

def run_suite(suite: Suite | str | os.PathLike, out_dir: str | os.PathLike, *,
              workers: int = 1, scheduler=None, progress: Callable[[dict], None] | None = None,
              redo_errors: bool = True) -> SuiteRun:
    """Run every cell of a suite that has no up-to-date result in ``out_dir``.

    Parameters
    ----------
    suite : Suite, or a suite name / path (see :func:`hetkv_opt.bench.suite.load_suite`)
    out_dir : path
        One ``CELL.json`` per cell is written there (``CELL`` = ``INSTANCE__METHOD``).
    workers : int
        1: run in this process.  N > 1: a local process pool of N workers.
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler (or a ``distributed.Client`` /
        cluster object): cells run on its workers, files are written here.
    progress : callable(dict), optional
        Called with ``{"event": "plan"|"skip"|"done"|"fail", "cell", "done", "total",
        "status"}`` as cells finish.
    redo_errors : bool
        Run again the cells whose stored result has ``status = "error"``.

    Returns
    -------
    SuiteRun

    Raises
    ------
    SuiteError
        A bad suite (naming the file, the field and the reason).
    BenchError
        Dask missing or unreachable, or a bad ``workers``.
    KeyboardInterrupt
        Ctrl-C or SIGTERM: the cells finished before it are written, the interrupted one
        is not (run again to resume).

    Examples
    --------
    >>> import os, tempfile
    >>> from hetkv_opt.bench.suite import parse_suite
    >>> from hetkv_opt.io.files import save_instance
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> tiny = os.path.join(tempfile.mkdtemp(), "tiny.json")
    >>> save_instance(tiny_instance(), tiny)
    >>> s = parse_suite({"schema": "hetkv-suite", "schema_version": 1,
    ...     "instances": [{"file": tiny}],
    ...     "methods": [{"method": "milp"}, {"method": "policy:static"}]}, name="doc")
    >>> out = tempfile.mkdtemp()
    >>> r = run_suite(s, out)
    >>> r.ran, r.skipped, run_suite(s, out).skipped
    (2, 0, 2)
    """
    t_start = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise BenchError(f"option '--workers': must be a whole number >= 1, got {workers!r}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if scheduler is not None:          # fail before any work, not after the planning
        distributed = _require_dask()
        if not isinstance(scheduler, distributed.Client):
            _scheduler_address(scheduler)
    out_dir = Path(out_dir)
    in_process = scheduler is None and workers == 1
    tasks = plan(suite, keep_instances=in_process)
    # proven bounds of policy cells are computed once per instance, kept beside the results
    tasks = [dataclasses.replace(t, bound_cache=str(out_dir / "bounds")) for t in tasks]
    out_dir.mkdir(parents=True, exist_ok=True)
    run = SuiteRun(suite=suite.name, out_dir=out_dir, total=len(tasks))
    emit = progress or (lambda ev: None)
    emit({"event": "plan", "cell": None, "done": 0, "total": run.total, "status": None})
    todo: list[Task] = []
    for t in tasks:
        if _is_done(out_dir / f"{t.cell_id}.json", t.cell_sha256, redo_errors):
            run.skipped += 1
            emit({"event": "skip", "cell": t.cell_id, "done": run.skipped, "total": run.total,
                  "status": "skipped"})
        else:
            todo.append(t)
    if not in_process:
        todo.sort(key=lambda t: -t.cost_hint())
    executor = "dask" if scheduler is not None else ("pool" if workers > 1 else "here")

    def done(t: Task, rec: dict | None, exc: BaseException | None) -> None:
        finished = run.skipped + run.ran + len(run.failed) + 1
        if rec is None:
            run.failed.append(f"{t.cell_id}: {type(exc).__name__}: {exc}")
            emit({"event": "fail", "cell": t.cell_id, "done": finished, "total": run.total,
                  "status": "failed"})
            return
        from hetkv_opt.io.files import atomic_write_bytes
        rec["executor"] = executor
        atomic_write_bytes(out_dir / f"{t.cell_id}.json", encode_record(rec))
        run.ran += 1
        status = rec["result"]["status"]
        if status == "error":
            run.errors.append(f"{t.cell_id}: {rec['result'].get('message', '')}")
        emit({"event": "done", "cell": t.cell_id, "done": finished, "total": run.total,
              "status": status})

    if todo:
        with _watch_signals() as watch:
            if scheduler is not None:
                _run_dask(todo, scheduler, done, watch)
            elif workers > 1:
                _run_pool(todo, workers, done, watch)
            else:
                _run_here(todo, done, watch)
    run.paths = [out_dir / f"{t.cell_id}.json" for t in tasks
                 if (out_dir / f"{t.cell_id}.json").is_file()]
    run.runtime_s = time.perf_counter() - t_start
    return run


__all__ = ["BenchError", "CELL_SCHEMA", "SuiteRun", "Task", "cell_id", "comparable",
           "dask_client", "machine_info", "package_versions", "plan", "read_record",
           "run_cell", "run_suite"]
