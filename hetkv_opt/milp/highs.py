"""The thin HiGHS layer: pass a built model to highspy, run it, normalise what comes back.

No raw HiGHS status leaves this module: callers get :class:`RawSolve` with a status word.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import numpy as np

from hetkv_opt.deadline import Deadline
from hetkv_opt.milp.build import MilpModel
from hetkv_opt.milp.raw import RawSolve


def _import_highspy():
    try:
        import highspy
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("highspy is not installed: pip install highspy") from exc
    return highspy


@contextlib.contextmanager
def _stdout_to_devnull():
    """Silence file descriptor 1 (HiGHS writes its banner there from C++)."""
    try:
        sys.stdout.flush()
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def new_highs():
    """A silent ``highspy.Highs`` (no banner on stdout, no log)."""
    highspy = _import_highspy()
    with _stdout_to_devnull():
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    return h


def to_highs_lp(model: MilpModel, *, relax: bool, with_names: bool = False):
    """A ``highspy.HighsLp`` holding the model (CSC, as built; no copy per nonzero)."""
    highspy = _import_highspy()
    lp = highspy.HighsLp()
    lp.num_col_ = model.num_col
    lp.num_row_ = model.num_row
    lp.col_cost_ = model.col_cost
    lp.col_lower_ = model.col_lower
    lp.col_upper_ = model.col_upper
    lp.row_lower_ = np.where(np.isinf(model.row_lower), -highspy.kHighsInf, model.row_lower)
    lp.row_upper_ = np.where(np.isinf(model.row_upper), highspy.kHighsInf, model.row_upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.a_start.astype(np.int32)
    lp.a_matrix_.index_ = model.a_index.astype(np.int32)
    lp.a_matrix_.value_ = model.a_value
    lp.a_matrix_.num_col_ = model.num_col
    lp.a_matrix_.num_row_ = model.num_row
    if not relax:
        lp.integrality_ = [highspy.HighsVarType.kInteger if f else highspy.HighsVarType.kContinuous
                           for f in model.integrality.tolist()]
    if with_names:
        lp.col_names_ = model.col_names()
        lp.row_names_ = model.row_names()
    return lp


def _apply_options(h, options: dict) -> None:
    for key, val in options.items():
        status = h.setOptionValue(key, val)
        if getattr(status, "name", str(status)).endswith("kError"):
            raise ValueError(f"HiGHS option '{key}' = {val!r} was refused")


#: measured on this machine kind (HiGHS 1.16, one thread; benchmarks/RESULTS.md): seconds of
#: presolve per nonzero, and seconds HiGHS runs past its time limit plus what the caller does
#: with its solution, per nonzero (an 11.2M-nonzero MIP: presolve 7.7 s; 2.3 s past a
#: presolve-free limit)
PRESOLVE_S_PER_NZ = {"mip": 7e-7, "lp": 3.5e-7}
RESERVE_S_PER_NZ = {"mip": 3e-7, "lp": 1.5e-7}
#: presolve is skipped when predicted to take more than this share of the time left
PRESOLVE_SHARE = 0.3


@contextlib.contextmanager
def _stop_on_signals(stop: dict):
    """While HiGHS runs: SIGINT and SIGTERM set ``stop["signal"]`` (HiGHS then ends at its
    next callback, keeping its incumbent and bound) and reach the handler there was (the
    CLI's or the bench runner's, which record them and end their deadlines); the
    KeyboardInterrupt such a handler raises is held back: raised inside a HiGHS callback
    it turns the run into "Solve error" and loses the incumbent and the bound."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        stop.setdefault("signal", signum)
        prev = previous.get(signum)
        if callable(prev):
            try:
                prev(signum, frame)
            except KeyboardInterrupt:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM):
        old = signal.getsignal(sig)
        if old is None or old is signal.SIG_IGN:
            continue
        previous[sig] = old
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_highs(model: MilpModel, *, relax: bool, time_limit_s: "float | Deadline | None" = None,
              mip_rel_gap: float = 1e-4, threads: int = 1, seed: int = 0,
              lp_method: str = "auto", warm_start: np.ndarray | None = None,
              options: dict | None = None, log=None, progress=None) -> RawSolve:
    """Solve the model (or its LP relaxation) with HiGHS.

    Parameters
    ----------
    relax : bool
        Solve the LP relaxation (integrality dropped) instead of the MILP.
    time_limit_s : float, Deadline or None
        Seconds for HiGHS's run, or the caller's :class:`~hetkv_opt.deadline.Deadline`: then
        the limit is what is left of it when the model has been passed (the model transfer
        counts against the deadline too).
    mip_rel_gap : float
        Stop the MILP once (incumbent - bound) / incumbent <= this.
    threads : int
    seed : int
        HiGHS ``random_seed``: the same seed and inputs give the same answer.
    lp_method : {"auto", "simplex", "ipm", "pdlp"}
        ``auto`` picks interior point for LPs above 200k nonzeros (3x faster there).
    warm_start : ndarray, optional
        A full scaled column vector (e.g. from a heuristic schedule), given to HiGHS with
        ``setSolution``.
    options : dict
        Extra raw HiGHS options (from a solver preset).
    log : callable(str), optional
        Receives HiGHS's log lines (the CLI sends them to stderr).
    progress : callable(dict), optional
        MILP only: called often with ``elapsed_s``, ``incumbent_s``, ``bound_s``, ``gap``
        (times in seconds of the instance, None while unknown).
    """
    highspy = _import_highspy()
    h = new_highs()
    opts = {"random_seed": int(seed), "threads": int(threads), "mip_rel_gap": float(mip_rel_gap),
            "mip_abs_gap": 0.0}
    deadline = time_limit_s if isinstance(time_limit_s, Deadline) else None
    if deadline is None and time_limit_s is not None and math.isfinite(time_limit_s):
        opts["time_limit"] = float(max(time_limit_s, 0.01))
    if relax:
        method = lp_method
        if method == "auto":
            # measured (benchmarks/bench_core.py): dual simplex beats IPM up to ~1M nonzeros
            # on this formulation (512x128: 5 s vs 21 s); IPM wins far beyond
            method = "ipm" if model.num_nz > 3_000_000 else "simplex"
        opts["solver"] = method
        if method == "ipm":
            # the bound needs only duals (weak duality): skip crossover
            opts["run_crossover"] = "off"
        if method == "simplex":
            # the model is scaled when built; HiGHS's own scaling made 512x128 2x slower
            opts["simplex_scale_strategy"] = 0
    opts.update(options or {})
    _apply_options(h, opts)
    if log is not None:
        h.setOptionValue("output_flag", True)
        h.setOptionValue("log_to_console", False)
        h.cbLogging.subscribe(lambda e: log(e.message.rstrip("\n")))
    if progress is not None and not relax:
        def _on_interrupt(event):
            d = event.data_out
            primal, dual = float(d.mip_primal_bound), float(d.mip_dual_bound)
            progress({"elapsed_s": float(d.running_time),
                      "incumbent_s": primal * model.t0_s if math.isfinite(primal) else None,
                      "bound_s": dual * model.t0_s if math.isfinite(dual) else None,
                      "gap": float(d.mip_gap) if math.isfinite(d.mip_gap) else None})
        h.cbMipInterrupt.subscribe(_on_interrupt)
    stop: dict = {}

    def _cancel(event):
        # Ctrl-C, or the caller's deadline: HiGHS checks its own time limit only now and
        # then (at the root of a MIP it overran a 14.5 s limit by 2.3 s)
        if "signal" in stop:
            event.interrupt()
        elif time.perf_counter() > stop.get("cutoff", math.inf):
            stop["deadline"] = True
            event.interrupt()
    for cb in (h.cbSimplexInterrupt, h.cbIpmInterrupt, h.cbMipInterrupt):
        cb.subscribe(_cancel)
    extra_info: dict = {}
    lp = to_highs_lp(model, relax=relax)
    status = h.passModel(lp)
    if status == highspy.HighsStatus.kError:
        return RawSolve("error", "HiGHS refused the model", None, None, None)
    if deadline is not None and not deadline.unlimited:
        kind = "lp" if relax else "mip"
        left = deadline.remaining_s()
        # HiGHS's presolve cannot be interrupted (7.7 s on an 11M-nonzero MIP, whatever the
        # limit): skip it when it would eat the time; and stop HiGHS early enough for what
        # it does after its limit (MIP set-up, solution transfer) and what follows
        if "presolve" not in (options or {}) and \
                PRESOLVE_S_PER_NZ[kind] * model.num_nz > PRESOLVE_SHARE * left:
            h.setOptionValue("presolve", "off")
            extra_info["presolve_skipped"] = True
        reserve = RESERVE_S_PER_NZ[kind] * model.num_nz
        limit = float(deadline.solver_limit_s(reserve, floor_s=0.01))
        h.setOptionValue("time_limit", limit)
        stop["cutoff"] = time.perf_counter() + limit
    if warm_start is not None and not relax:
        sol = highspy.HighsSolution()
        sol.col_value = list(np.asarray(warm_start, float))
        sol.value_valid = True
        h.setSolution(sol)
    t_start = time.perf_counter()
    if "cutoff" not in stop and "time_limit" in opts:
        stop["cutoff"] = t_start + opts["time_limit"]
    with _stop_on_signals(stop):
        h.run()
    runtime = time.perf_counter() - t_start
    ms = h.getModelStatus()
    info = h.getInfo()
    MS = highspy.HighsModelStatus
    have_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
    sol = h.getSolution()
    x = np.asarray(sol.col_value, float) if have_primal else None
    obj = float(info.objective_function_value) if have_primal else None
    extra = {**extra_info, "highs_status": h.modelStatusToString(ms),
             "simplex_iterations": int(info.simplex_iteration_count),
             "ipm_iterations": int(info.ipm_iteration_count)}
    dual_bound = None
    if not relax:
        extra["mip_nodes"] = int(info.mip_node_count)
        db = float(info.mip_dual_bound)
        dual_bound = db if math.isfinite(db) else None
    if "signal" in stop:
        extra["interrupted"] = True
    if x is not None and warm_start is not None and not relax and "signal" not in stop:
        # HiGHS 1.16 can hand back the warm start's columns with the optimum's objective
        # when presolve solves the whole model: check, and re-solve without the start
        if abs(float(model.col_cost @ x) - obj) > 1e-7 * (1.0 + abs(obj)):
            again = run_highs(model, relax=relax, time_limit_s=time_limit_s,
                              mip_rel_gap=mip_rel_gap, threads=threads, seed=seed,
                              lp_method=lp_method, warm_start=None, options=options, log=log,
                              progress=progress)
            again.info["warm_start_discarded"] = True
            again.runtime_s += runtime
            return again
    row_dual = col_dual = None
    if relax and info.dual_solution_status == 2:
        row_dual = np.asarray(sol.row_dual, float)
        col_dual = np.asarray(sol.col_dual, float)
    if ms == MS.kOptimal:
        word, msg = ("optimal", "")
    elif ms == MS.kInfeasible:
        word, msg = ("infeasible", "HiGHS proved that no schedule satisfies the capacities")
    elif ms in (MS.kUnbounded, MS.kUnboundedOrInfeasible):
        word, msg = ("error", f"HiGHS reports {h.modelStatusToString(ms)}: a modelling bug")
    elif ms in (MS.kTimeLimit, MS.kInterrupt, MS.kIterationLimit, MS.kSolutionLimit,
                MS.kObjectiveBound, MS.kObjectiveTarget, MS.kHighsInterrupt, MS.kMemoryLimit):
        word = "feasible" if have_primal else "time_limit_no_solution"
        msg = f"stopped: {h.modelStatusToString(ms)}"
        if stop.get("deadline"):
            msg = "stopped: Time limit reached (at the deadline, between two HiGHS checks)"
    else:
        word, msg = ("error", f"HiGHS: {h.modelStatusToString(ms)}")
    return RawSolve(word, msg, x, obj, dual_bound, row_dual, col_dual, runtime, extra)


def write_model(model: MilpModel, path: str, *, relax: bool = False) -> None:
    """Write the model as MPS or LP (by suffix) through HiGHS, with stable names."""
    h = new_highs()
    lp = to_highs_lp(model, relax=relax, with_names=True)
    if str(path).lower().endswith(".lp"):
        # HiGHS's LP writer drops every name if one has '[' or ']': use x(0,1,0) there
        table = str.maketrans("[]", "()")
        lp.col_names_ = [n.translate(table) for n in lp.col_names_]
        lp.row_names_ = [n.translate(table) for n in lp.row_names_]
    h.passModel(lp)
    status = h.writeModel(path)
    if getattr(status, "name", str(status)).endswith("kError"):
        raise OSError(f"HiGHS could not write {path}")
