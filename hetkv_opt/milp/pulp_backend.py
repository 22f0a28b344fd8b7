"""The PuLP backend: the same time-expanded MILP, built as a PuLP problem.

:func:`build_pulp_problem` translates a built :class:`~hetkv_opt.milp.build.MilpModel`
(CSC arrays) into a ``pulp.LpProblem``: one variable per column, one constraint per row,
with the model's names.  :func:`solve_milp_pulp` solves it with PuLP's in-process HiGHS
(``pulp.HiGHS``, through highspy) or with CBC (``pulp.COIN_CMD``), and reports through the
same :func:`hetkv_opt.solve.finish` as the highspy backend, so the schedule is re-scored
by the evaluator and the status words are the same.

Only PuLP's non-deprecated (PuLP 4.0-ready) API is used: ``LpProblem.add_variable``,
``LpAffineExpression``/``LpConstraint``, ``LpProblem.addConstraint``, ``pulp.HiGHS`` and
``pulp.COIN_CMD`` (never ``LpVariable(...)`` or ``PULP_CBC_CMD``).

Names: PuLP replaces the characters ``-+[] ->/`` in names by ``_``, so the column
``x[0,1,0]`` is the PuLP variable ``x_0,1,0_`` (and the row ``cap[0,2]`` the constraint
``cap_0,2_``).  :func:`hetkv_opt.milp.highs.write_model` keeps the original names in
MPS files and writes ``x(0,1,0)`` in LP files (HiGHS's LP writer drops names with brackets).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from hetkv_opt.milp.build import MilpModel, build_model, model_details
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.milp.raw import RawSolve, milp_result
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.result import finish

PULP_SOLVERS = ("HiGHS", "CBC")

CBC_INSTALL_HINT = ("CBC is not available to PuLP: pip install 'pulp[cbc]' (the cbcbox "
                    "package, which puts a 'cbc' program on PATH) or apt-get install coinor-cbc")


def _import_pulp():
    try:
        import pulp
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError("PuLP is not installed: pip install 'pulp>=3.3'") from exc
    return pulp


@dataclass
class PulpProblem:
    """A model translated to PuLP.

    Attributes
    ----------
    prob : pulp.LpProblem
    variables : list of pulp.LpVariable
        In the model's column order (``variables[j]`` is column j).
    constraints : list of pulp.LpConstraint
        In the model's row order.  A ranged row (both bounds finite and different; the
        model builds none today) becomes two constraints, ``name_lo`` and ``name_hi``;
        a free row (both bounds infinite) none.
    """

    prob: object
    variables: list
    constraints: list


def _csr(model: MilpModel):
    """Row-wise copy of the CSC matrix: (row_start, col indices, values) as Python lists."""
    counts = np.diff(model.a_start)
    col_of_nz = np.repeat(np.arange(model.num_col, dtype=np.int64), counts)
    order = np.argsort(model.a_index, kind="stable")
    row_start = np.zeros(model.num_row + 1, np.int64)
    np.cumsum(np.bincount(model.a_index, minlength=model.num_row), out=row_start[1:])
    return row_start.tolist(), col_of_nz[order].tolist(), model.a_value[order].tolist()


def build_pulp_problem(model: MilpModel, *, name: str = "hetkv") -> PulpProblem:
    """Translate a built model into a ``pulp.LpProblem`` (minimise, scaled units).

    Every column becomes a variable named as in ``model.col_names()`` (binary where
    ``integrality == 1``; an integer column whose bounds are fixed keeps them), every row
    a constraint named as in ``model.row_names()``.  Each column is also put in the
    objective, with coefficient 0 where it has no cost, so that PuLP knows every column
    even if it appears in no row (``LpProblem.add_variable`` does not attach it).

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> from hetkv_opt.milp.build import build_model
    >>> m = build_model(tiny_instance())
    >>> p = build_pulp_problem(m)
    >>> len(p.variables) == m.num_col, len(p.constraints) == m.num_row
    (True, True)
    >>> p.variables[0].name
    'x_0,0,0_'
    """
    pulp = _import_pulp()
    prob = pulp.LpProblem(name.replace(" ", "_"), pulp.LpMinimize)
    col_names = model.col_names()
    lower = model.col_lower.tolist()
    upper = model.col_upper.tolist()
    integ = model.integrality.tolist()
    variables = []
    for j, nm in enumerate(col_names):
        lo = lower[j] if math.isfinite(lower[j]) else None
        up = upper[j] if math.isfinite(upper[j]) else None
        if integ[j]:
            cat = pulp.LpBinary if (lo == 0.0 and up == 1.0) else pulp.LpInteger
        else:
            cat = pulp.LpContinuous
        variables.append(prob.add_variable(nm, lo, up, cat))
    prob.setObjective(pulp.LpAffineExpression(zip(variables, model.col_cost.tolist())))

    row_start, cols, vals = _csr(model)
    row_names = model.row_names()
    row_lower = model.row_lower.tolist()
    row_upper = model.row_upper.tolist()
    GE, LE, EQ = pulp.LpConstraintGE, pulp.LpConstraintLE, pulp.LpConstraintEQ
    constraints = []
    get_var = variables.__getitem__
    for r, nm in enumerate(row_names):
        s, e = row_start[r], row_start[r + 1]
        terms = list(zip(map(get_var, cols[s:e]), vals[s:e]))
        lo, up = row_lower[r], row_upper[r]
        lo_f, up_f = math.isfinite(lo), math.isfinite(up)
        if lo_f and up_f and lo == up:
            parts = [(EQ, lo, nm)]
        elif lo_f and up_f:
            parts = [(GE, lo, nm + "_lo"), (LE, up, nm + "_hi")]
        elif lo_f:
            parts = [(GE, lo, nm)]
        elif up_f:
            parts = [(LE, up, nm)]
        else:
            parts = []
        for sense, rhs, cname in parts:
            con = pulp.LpConstraint(pulp.LpAffineExpression(terms), sense, cname, rhs)
            prob.addConstraint(con)
            constraints.append(con)
    return PulpProblem(prob, variables, constraints)


# ------------------------------------------------------------------------- solvers
def cbc_path() -> str | None:
    """The CBC program PuLP's ``COIN_CMD`` will run, or None when there is none.

    ``cbc`` on PATH first (``pip install 'pulp[cbc]'`` puts it there), else the binary that
    PuLP 3.x still ships inside its package (removed in PuLP 4.0).
    """
    found = shutil.which("cbc")
    if found:
        return found
    try:
        from pulp.apis import coin_api
    except ImportError:  # pragma: no cover
        return None
    bundled = getattr(coin_api, "pulp_cbc_path", None)
    if bundled and os.path.isfile(bundled) and os.access(bundled, os.X_OK):
        return os.path.realpath(bundled)
    return None


def cbc_available() -> bool:
    """True when :func:`solve_milp_pulp` can run CBC."""
    return cbc_path() is not None


def _check_highs_options(options: dict) -> None:
    """Refuse unknown HiGHS options the way the highspy backend does (pulp.HiGHS ignores
    the status of ``setOptionValue``, so a typo would pass unnoticed)."""
    if not options:
        return
    from hetkv_opt.milp.highs import _apply_options, new_highs
    _apply_options(new_highs(), dict(options))


def _highs_outcome(prob, pulp):
    """Status word, message, dual bound and counters from the highspy object of pulp.HiGHS."""
    import highspy
    h = getattr(prob, "solverModel", None)
    if h is None:
        return "error", "PuLP's HiGHS did not run", None, {}, False
    ms = h.getModelStatus()
    info = h.getInfo()
    MS = highspy.HighsModelStatus
    have_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
    db = float(info.mip_dual_bound)
    extra = {"highs_status": h.modelStatusToString(ms), "mip_nodes": int(info.mip_node_count),
             "simplex_iterations": int(info.simplex_iteration_count),
             "pulp_status": pulp.LpStatus.get(prob.status, str(prob.status)),
             "pulp_sol_status": pulp.LpSolution.get(prob.sol_status, str(prob.sol_status))}
    if ms == MS.kOptimal:
        word, msg = "optimal", ""
    elif ms == MS.kInfeasible:
        word, msg = "infeasible", "HiGHS (via PuLP) proved that no schedule satisfies the capacities"
    elif ms in (MS.kUnbounded, MS.kUnboundedOrInfeasible):
        word, msg = "error", f"HiGHS reports {h.modelStatusToString(ms)}: a modelling bug"
    elif ms in (MS.kTimeLimit, MS.kInterrupt, MS.kIterationLimit, MS.kSolutionLimit,
                MS.kObjectiveBound, MS.kObjectiveTarget, MS.kHighsInterrupt, MS.kMemoryLimit):
        word = "feasible" if have_primal else "time_limit_no_solution"
        msg = f"stopped: {h.modelStatusToString(ms)}"
    else:
        word, msg = "error", f"HiGHS (via PuLP): {h.modelStatusToString(ms)}"
    return word, msg, (db if math.isfinite(db) else None), extra, have_primal


def _highs_column_values(pp: PulpProblem) -> np.ndarray | None:
    """The primal values of HiGHS's solution, in the model's column order.

    ``pulp.HiGHS`` gives each variable the index of its HiGHS column (PuLP orders the
    columns by name, not by our column order).
    """
    h = pp.prob.solverModel
    col_value = np.asarray(h.getSolution().col_value, float)
    try:
        idx = np.fromiter((v.index for v in pp.variables), np.int64, len(pp.variables))
    except AttributeError:
        return None
    if col_value.size <= (idx.max() if idx.size else -1):
        return None
    return col_value[idx]


_CBC_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def _printed_floor(text: str) -> float:
    """A number as CBC printed it, less one unit of its last printed digit.

    CBC prints its lower bound with few digits (``Lower bound: 99.521``), rounded to
    nearest: the printed value may exceed the true bound, the value less one unit may not.
    """
    mant, _, exp = text.lower().partition("e")
    decimals = len(mant.partition(".")[2])
    unit = 10.0 ** (-decimals + (int(exp) if exp else 0))
    return float(text) - unit


def _parse_cbc_log(text: str) -> dict:
    """The end summary of a CBC log: result line, objective value, lower bound (rounded
    down, see :func:`_printed_floor`), enumerated nodes."""
    out = {}
    m = re.search(r"^Result - (.+)$", text, re.M)
    if m:
        out["result"] = m.group(1).strip()
    m = re.search(rf"^Objective value:\s*{_CBC_NUM}", text, re.M)
    if m:
        out["objective"] = float(m.group(1))
    m = re.search(rf"^Lower bound:\s*{_CBC_NUM}", text, re.M)
    if m:
        out["lower_bound"] = _printed_floor(m.group(1))
    m = re.search(r"^Enumerated nodes:\s*(\d+)", text, re.M)
    if m:
        out["nodes"] = int(m.group(1))
    return out


def _cbc_outcome(prob, pulp, log_text: str, gap: float, have_time_limit: bool):
    """Status word, message, dual bound (scaled) and counters of a COIN_CMD run."""
    summary = _parse_cbc_log(log_text)
    sol = prob.sol_status
    extra = {"cbc_result": summary.get("result"), "mip_nodes": summary.get("nodes"),
             "pulp_status": pulp.LpStatus.get(prob.status, str(prob.status)),
             "pulp_sol_status": pulp.LpSolution.get(sol, str(sol))}
    have_primal = sol in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
    if sol == pulp.LpSolutionOptimal and prob.status == pulp.LpStatusOptimal:
        word, msg = "optimal", ""
    elif sol == pulp.LpSolutionIntegerFeasible:
        # PuLP reports a CBC run stopped by its time limit with an incumbent as
        # LpStatusOptimal: only sol_status tells that it is not a proof
        word, msg = "feasible", f"stopped: {summary.get('result', 'CBC stopped early')}"
    elif prob.status == pulp.LpStatusInfeasible or sol == pulp.LpSolutionInfeasible:
        word, msg = "infeasible", "CBC (via PuLP) proved that no schedule satisfies the capacities"
    elif prob.status == pulp.LpStatusUnbounded or sol == pulp.LpSolutionUnbounded:
        word, msg = "error", "CBC reports the model unbounded: a modelling bug"
    elif have_time_limit and prob.status == pulp.LpStatusNotSolved:
        word, msg = "time_limit_no_solution", f"stopped: {summary.get('result', 'time limit')}"
    else:
        word, msg = "error", f"CBC (via PuLP): {pulp.LpStatus.get(prob.status, prob.status)}"
    bound = summary.get("lower_bound")
    if bound is None and word == "optimal":
        # CBC prints no "Lower bound" line when it proves optimality: the bound is the
        # objective less the relative gap it was allowed to stop at
        obj = pulp.value(prob.objective)
        if obj is not None and obj >= 0:
            bound = float(obj) * (1.0 - gap)
    return word, msg, bound, extra, have_primal


def _make_solver(pulp, config: SolverConfig, time_limit: float | None, log_path: str | None):
    if config.pulp_solver == "HiGHS":
        params = {"random_seed": int(config.seed), "mip_abs_gap": 0.0}
        params.update(config.highs or {})
        params.pop("output_flag", None)
        params.pop("log_to_console", None)
        return pulp.HiGHS(mip=True, msg=False, gapRel=float(config.mip_rel_gap), gapAbs=0.0,
                          threads=int(config.threads), timeLimit=time_limit, **params)
    if config.pulp_solver == "CBC":
        path = cbc_path()
        if path is None:
            raise RuntimeError(CBC_INSTALL_HINT)
        options = [f"randomCbcSeed {int(config.seed)}"] if config.seed > 0 else []
        return pulp.COIN_CMD(mip=True, msg=False, timeLimit=time_limit,
                             gapRel=float(config.mip_rel_gap), gapAbs=0.0,
                             threads=int(config.threads), options=options, path=path,
                             logPath=log_path)
    raise ValueError(f"pulp_solver must be one of {', '.join(PULP_SOLVERS)}, "
                     f"got {config.pulp_solver!r}")


def solve_milp_pulp(inst: Instance, *, time_limit_s: float | None = None,
                    config: SolverConfig = SolverConfig(backend="pulp"),
                    extra_bounds: dict | None = None, method_name: str = "milp"):
    """Solve the exact MILP through PuLP (``config.pulp_solver``: "HiGHS" or "CBC").

    Parameters
    ----------
    inst : Instance
    time_limit_s : float or None
        Wall-clock limit for the whole call (model building included).
    config : SolverConfig
        ``pulp_solver``, ``mip_rel_gap``, ``threads``, ``seed``, ``rounding_cuts``;
        ``highs`` options are passed to pulp.HiGHS (ignored by CBC).
    extra_bounds : dict, optional
        Bounds already proven (seconds, by method), kept in the result.
    method_name : str

    Returns
    -------
    SolveResult
        As :func:`hetkv_opt.solve.solve_milp`: a time limit with an incumbent is
        ``feasible``, never ``optimal``.

    Raises
    ------
    RuntimeError
        ``pulp_solver="CBC"`` and no CBC program is installed (the message says what to
        install).
    ValueError
        An unknown ``pulp_solver`` or a HiGHS option HiGHS refuses.

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> r = solve_milp_pulp(tiny_instance(), config=SolverConfig(backend="pulp"))
    >>> r.status, round(r.total_time_s, 9)
    ('optimal', 2.0)
    """
    t_start = time.perf_counter()
    check_pulp_config(config)
    bounds = basic_bounds(inst)
    bounds.update(extra_bounds or {})
    pre = capacity_precheck(inst)
    if pre:
        return finish(inst, method_name, status="infeasible", t_start=t_start, message=pre)
    t_b = time.perf_counter()
    model = build_model(inst, rounding_cuts=config.rounding_cuts)
    details = model_details(model, time.perf_counter() - t_b)
    remaining = None
    if time_limit_s is not None and math.isfinite(time_limit_s):
        remaining = max(time_limit_s - (time.perf_counter() - t_start), 0.01)
    raw = run_pulp(model, config=config, time_limit_s=remaining,
                   name=f"hetkv_{inst.name}" if inst.name else "hetkv")
    details["milp"] = {"runtime_s": round(raw.runtime_s, 6), **raw.info}
    return milp_result(inst, model, raw, method=method_name, bounds=bounds, t_start=t_start,
                       details=details, gap_tol=None)


def check_pulp_config(config: SolverConfig) -> None:
    """Refuse a PuLP configuration that cannot run, before any model is built.

    Raises
    ------
    RuntimeError
        CBC asked for and not installed (the message says what to install).
    ValueError
        An unknown ``pulp_solver`` or a HiGHS option HiGHS refuses.
    """
    if config.pulp_solver not in PULP_SOLVERS:
        raise ValueError(f"pulp_solver must be one of {', '.join(PULP_SOLVERS)}, "
                         f"got {config.pulp_solver!r}")
    if config.pulp_solver == "CBC" and not cbc_available():
        raise RuntimeError(CBC_INSTALL_HINT)
    if config.pulp_solver == "HiGHS":
        _check_highs_options(config.highs)


def run_pulp(model: MilpModel, *, config: SolverConfig, time_limit_s: float | None = None,
             name: str = "hetkv") -> RawSolve:
    """Solve a built model through PuLP (HiGHS or CBC): the same :class:`RawSolve` as
    :func:`hetkv_opt.milp.highs.run_highs` gives, in the model's scaled units."""
    pulp = _import_pulp()
    check_pulp_config(config)
    t_p = time.perf_counter()
    pp = build_pulp_problem(model, name=name)
    pulp_build_s = time.perf_counter() - t_p
    remaining = time_limit_s
    with tempfile.TemporaryDirectory(prefix="hetkv_pulp_") as tmp:
        log_path = os.path.join(tmp, "cbc.log") if config.pulp_solver == "CBC" else None
        solver = _make_solver(pulp, config, remaining, log_path)
        t_s = time.perf_counter()
        crash = None
        try:
            if config.pulp_solver == "HiGHS":
                from hetkv_opt.milp.highs import _stdout_to_devnull
                with _stdout_to_devnull():  # highspy.Highs() prints its banner on stdout
                    pp.prob.solve(solver)
            else:
                pp.prob.solve(solver)
        except Exception as exc:  # PulpSolverError, or PuLP failing to read a result
            crash = f"{type(exc).__name__}: {exc}"
        runtime = time.perf_counter() - t_s
        log_text = ""
        if log_path and os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                log_text = f.read()

    x = None
    if config.pulp_solver == "HiGHS":
        # judged from the highspy object itself: PuLP maps a time limit with an incumbent
        # to LpStatusOptimal, and has no entry for some HiGHS statuses (kSolutionLimit
        # raises KeyError in PuLP 3.3 after the solve), so its status is not used
        word, msg, dual_bound, extra, have_primal = _highs_outcome(pp.prob, pulp)
        if have_primal:
            x = _highs_column_values(pp)
            if x is None:
                word, msg, have_primal = "error", "PuLP's HiGHS gave no column values", False
    elif crash is None:
        word, msg, dual_bound, extra, have_primal = _cbc_outcome(
            pp.prob, pulp, log_text, float(config.mip_rel_gap), remaining is not None)
        if have_primal:
            vals = [v.varValue for v in pp.variables]
            if any(v is None for v in vals):
                word, msg, have_primal = "error", "PuLP returned no value for some columns", False
            else:
                x = np.asarray(vals, float)
    else:
        word, msg, dual_bound, extra, have_primal = "error", "", None, {}, False
    if crash is not None:
        extra["pulp_error"] = crash
        if word == "error" or (config.pulp_solver == "CBC"):
            word, msg, have_primal = "error", f"PuLP/{config.pulp_solver} failed: {crash}", False

    info = {"backend": "pulp", "pulp_solver": config.pulp_solver,
            "pulp_version": pulp.__version__, "pulp_build_s": round(pulp_build_s, 6), **extra}
    if not (have_primal and x is not None and word in ("optimal", "feasible")):
        x = None
    obj = float(model.col_cost @ x) if x is not None else None
    return RawSolve(word, msg, x, obj, dual_bound, runtime_s=runtime, info=info)
