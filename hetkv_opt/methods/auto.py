"""``auto``: the best schedule and the best proof the toolkit can find in the time given.

Up to :data:`AUTO_MILP_MAX_ITEM_EPOCHS` free item-epochs: the LP bound, the LP solution
rounded to a schedule (returned at once when the LP bound already proves it optimal), then
the exact MILP in the time left, started from the best schedule at hand.  Above it (the
"scale path"): the Lagrangian bound, the static and policy schedules, and the flow
heuristic; the best evaluated schedule wins.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from hetkv_opt.bounds.lagrangian import solve_lagrangian
from hetkv_opt.bounds.lagrangian.bound import lagrangian_bound
from hetkv_opt.cluster import open_client
from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.background import MIN_CHILD_S, BackgroundLP, spare_cores
from hetkv_opt.methods.child import Abandoned, Child
from hetkv_opt.methods.columns import (COLUMNS_MAX_ITEM_EPOCHS, WINDOW_ITEM_EPOCHS,
                                      columns_schedule, window_columns)
from hetkv_opt.methods.exact import solve_lp, solve_milp
from hetkv_opt.methods.portfolio import Ledger, predict_lp_s
from hetkv_opt.methods.flow import predict_flow_s, solve_flow
from hetkv_opt.methods.homes import out_of_scope as homes_out_of_scope, spread_homes
from hetkv_opt.methods.lns import improve
from hetkv_opt.methods.polish import out_of_scope as polish_out_of_scope, polish
from hetkv_opt.methods.split import balanced_placement
from hetkv_opt.methods.starts import static_schedule, too_dense, two_fastest_tiers
from hetkv_opt.milp.config import SolverConfig
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck
from hetkv_opt.model.merge import merge_slow_tiers
from hetkv_opt.model.epoch_bound import basic_bounds
from hetkv_opt.model.instance import Instance
from hetkv_opt.model.schedule import Schedule
from hetkv_opt.policies import PolicyError, PolicyOutOfTime, get_policy, run_policy
from hetkv_opt.result import SolveResult, finish, gap

#: the exact phase (LP, MILP) is never tried above this many free item-epochs, whatever the
#: time: its model alone would take gigabytes (about 1.5 kB per item-epoch).  Below it the
#: decision is measured (:func:`~hetkv_opt.methods.portfolio.predict_lp_s`).
AUTO_MILP_MAX_ITEM_EPOCHS = 4_000_000


def item_epochs(inst: Instance) -> int:
    """Free (not pinned) item-epochs: the size measure of the placement problem."""
    free = inst.pinned_tier < 0
    return int((inst.death - inst.birth)[free].sum())


def relay(progress, phase: str, t_start: float, bound=None):
    """Adapt a method's own progress dicts to the ``solve`` contract: ``phase``,
    ``elapsed_s`` (since the solve began), ``incumbent_s``, ``bound_s`` and ``gap``."""
    if progress is None:
        return None
    state = {"bound": bound, "incumbent": None}

    def cb(info):
        if "bound_s" in info:
            state["bound"] = info["bound_s"]
        if info.get("best_s") is not None:
            state["incumbent"] = info["best_s"]
        inc, bnd = state["incumbent"], state["bound"]
        progress({"phase": phase, "elapsed_s": time.perf_counter() - t_start,
                  "incumbent_s": inc, "bound_s": bnd,
                  "gap": gap(inc, bnd) if inc is not None and bnd is not None else None})
    return cb


def solve_auto(instance: Instance, *, time_limit_s: "float | Deadline | None", config: SolverConfig,
               warm_start: Schedule | None = None, log=None, progress=None) -> SolveResult:
    """The ``auto`` method: an anytime portfolio under one deadline.

    1. *Cheap phase* (a few per cent of the budget): the caller's warm start, every "all in
       one tier" schedule and the :data:`CHEAP_POLICIES`, and a short Lagrangian run: from
       here on there is a feasible schedule and a proof better than the aggregate line.
    2. *Exact phase*, where it can finish: the LP relaxation when :func:`predict_lp_s` (a
       measured pilot) says it fits in its share of the time left; its solution rounded;
       then the MILP, started from the best schedule, in the time that is left.
    3. *Scale phase* otherwise: the Lagrangian bound (warm-started from the cheap phase's
       prices) and the flow heuristic (two-tier exclusive, and the two fastest tiers of a
       three-tier instance).

    The best evaluated schedule and the best proof win; ``details["phases"]`` records every
    phase (runtime, bound and best schedule after it, finished or stopped), and the
    message says what happened.  Ctrl-C ends the phase at hand and returns what is known.
    """
    t_start = time.perf_counter()
    dl = Deadline.of(time_limit_s, start=t_start)
    if config.backend == "pulp":
        return solve_milp(instance, time_limit_s=dl, config=config, method_name="auto")
    pre = capacity_precheck(instance)
    if pre:
        return finish(instance, "auto", status="infeasible", t_start=t_start, message=pre)
    book = Ledger(instance, dl, progress)
    for name, value in basic_bounds(instance).items():
        book.prove(name, value)
    # "scale_path": the exact phase (LP, MILP) is out of reach or was not chosen
    details: dict = {"scale_path": True} if item_epochs(instance) > AUTO_MILP_MAX_ITEM_EPOCHS else {}
    interrupted = False
    tol = config.mip_rel_gap
    try:
        with open_client(config.workers, config.scheduler) as client:
            book.client = client
            _cheap_phase(book, warm_start, config, details)
            if not book.closed(tol):
                _main_phases(book, config, details, log, progress, tol)
    except KeyboardInterrupt:
        interrupted = True
    except Infeasible as exc:
        return finish(instance, "auto", status="infeasible", bounds=book.bounds,
                      t_start=t_start, details={"phases": book.phases}, message=str(exc))
    details["phases"] = book.phases
    message = book.summary()
    if interrupted:
        details["interrupted"] = True
        message = "interrupted (Ctrl-C): the best bound and schedule found so far; " + message
    status = "feasible" if book.best is not None else "bound_only"
    if book.best is not None and book.closed(tol):
        status = "optimal"
    if book.best_source is not None:
        details["solved_by"] = book.best_source
    return finish(instance, "auto", status=status, schedule=book.best,
                  solver_objective_s=book.best_objective_s, bounds=book.bounds,
                  t_start=t_start, details=details, message=message, gap_tol=tol)


#: baseline policies whose schedules auto always tries first (cheap; any tiers, either mode)
CHEAP_POLICIES = ("balance", "step-ema", "belady", "lru")
#: shares of the budget the cheap phase's policies and Lagrangian run may take
CHEAP_POLICY_SHARE = 0.15
CHEAP_SPLIT_SHARE = 0.1
CHEAP_LAGRANGIAN_SHARE = 0.05
#: a cheap step runs even past the deadline when it is predicted to take less than this
#: (the first schedule and the first proof are worth a second: "-t 1e-9" still answers)
CHEAP_GRACE_S = 0.5


def _cheap_order(inst: Instance) -> list[str]:
    """:data:`CHEAP_POLICIES`, the one most likely best first: with epochs of (step, layer),
    the step-aware one (a per-epoch score mixes layers: on the shipped 30-layer trace replay
    smollm2-narrative-qa-topk-s60, balance took 4.7x the time of the all-in-HBM-first
    static schedule and step-ema 0.55x)."""
    layered = "layer" in inst.epoch_labels and len(np.unique(inst.epoch_labels["layer"])) > 1
    first = "step-ema" if layered else "balance"
    return [first] + [p for p in CHEAP_POLICIES if p != first]


def _cheap_phase(book: Ledger, warm_start, config: SolverConfig, details: dict) -> None:
    inst, dl = book.instance, book.deadline
    with book.phase("starts"):
        book.offer(warm_start, "warm start")
        for k in range(inst.num_tiers):
            book.offer(static_schedule(inst, k), f"static in tier {inst.tiers[k].name}")
    with book.phase("split") as ph:
        stats: dict = {}
        book.offer(balanced_placement(inst, deadline=dl.child(fraction=CHEAP_SPLIT_SHARE),
                                      info=stats), "split")
        ph.update({k: stats[k] for k in ("rounds", "flips", "skipped") if k in stats})
        ph["finished"] = bool(stats.get("finished", "skipped" in stats))
        details["split"] = stats
    with book.phase("policies") as ph:
        times = {}
        # the cheap policies run while the time left (or, past the deadline, a small grace)
        # holds one more of them at the pace measured so far
        t0, last = time.perf_counter(), 0.0
        allowance = max(dl.share_s(CHEAP_POLICY_SHARE) or math.inf, CHEAP_GRACE_S)
        for name in _cheap_order(inst):
            spent = time.perf_counter() - t0
            if spent + last > allowance or (dl.expired() and spent + last > CHEAP_GRACE_S):
                ph["finished"] = False
                break
            t1 = time.perf_counter()
            try:
                sched = run_policy(inst, get_policy(name), deadline=Deadline.of(
                    max(allowance - spent, CHEAP_GRACE_S))).schedule()
            except PolicyOutOfTime as exc:
                ph.setdefault("abandoned", {})[name] = str(exc)
                ph["finished"] = False
                last = time.perf_counter() - t1
                continue
            except PolicyError:
                continue                 # a policy can corner itself when every tier is bounded
            ev = evaluate(inst, sched)
            last = time.perf_counter() - t1
            if ev.feasible:
                times[name] = ev.total_time_s
                book.offer(sched, f"policy {name}")
        details["policies_s"] = times
    _homes_phase(book)
    # a few iterations: any prices prove a bound, and these warm-start the later runs
    share = dl.share_s(CHEAP_LAGRANGIAN_SHARE)
    _lagrangian_phase(book, details, None, 2.0 if share is None else max(share, CHEAP_GRACE_S),
                      iterations=30, stage="first prices")


def _main_phases(book: Ledger, config: SolverConfig, details: dict, log, progress,
                 tol: float) -> None:
    inst, dl = book.instance, book.deadline
    state = {"lp_done": False, "bg": None, "flow_bg": None}
    _merged_phase(book, config, details)
    if item_epochs(inst) > AUTO_MILP_MAX_ITEM_EPOCHS:
        book.skip("lp", f"more than {AUTO_MILP_MAX_ITEM_EPOCHS} free item-epochs")
        _start_flow_beside(book, config, state)
    elif dl.expired():
        book.skip("lp", "no time left")
    else:
        pred, rec = predict_lp_s(inst, config, deadline=dl)
        share = dl.share_s(LP_SHARE)
        fits = share is None or pred <= share
        if not fits and _second_process_ok(config, dl):
            # it gets all the time left, on the spare core, while the rest runs here (a
            # pilot that did not finish says little: the default 1024 x 256 drift
            # instance's LP took 50 s after one, and proved its flow schedule optimal)
            state["bg"] = BackgroundLP(inst, config.replace(lp_method=rec["lp_method"]), dl)
            state["rec"] = rec
        elif not fits:
            book.skip("lp", f"predicted {pred:.3g} s > its share {share:.3g} s ("
                            + _pilot_words(rec) + ")", **rec)
        else:
            with book.phase("lp") as ph:
                ph.update(rec)
                rounded: list = []
                lp = solve_lp(inst, time_limit_s=dl.child(fraction=LP_SHARE_HARD),
                              config=config.replace(lp_method=rec["lp_method"]), rounding=rounded)
                if lp.status == "infeasible":
                    raise Infeasible(lp.message)
                lp_bound = lp.details.get("bounds_s", {}).get("lp")
                book.prove("lp", lp_bound)
                ph["finished"] = lp_bound is not None
                state["lp_done"] = lp_bound is not None
                state["lp_s"] = lp.runtime_s
                details["lp"] = lp.details.get("lp")
                if rounded and rounded[0] is not None:
                    book.offer(rounded[0], "lp rounding")
    try:
        _after_lp(book, config, details, log, progress, tol, state)
    finally:
        if state["flow_bg"] is not None:
            _collect_flow(book, details, state, wait=False)
        if state["flow_bg"] is not None:
            state["flow_bg"].cancel()
            book.record("flow", time.perf_counter() - state["flow_bg"].started, False,
                        note="stopped: the flow heuristic had not finished when the rest ended")
            state["flow_bg"] = None
        if state["bg"] is not None:
            # the deadline has come (or Ctrl-C): an answer that is in is still used
            _collect_lp(book, details, state, wait=False)
            if state["bg"] is not None:
                state["bg"].cancel()
                book.record("lp", time.perf_counter() - state["bg"].started, False,
                            note="stopped: the LP had not finished when the rest ended",
                            **state["rec"])
                state["bg"] = None


def _start_flow_beside(book: Ledger, config: SolverConfig, state: dict) -> bool:
    """Start the flow heuristic (chain graph) on the spare core, in
    :data:`FLOW_BESIDE_SHARE` of the time left, when it applies; True when it started.
    For instances beyond the LP's size, whose spare core nothing else uses: there one
    chain solve can take most of the time the flow phase would get here (14-16 s on the
    30-layer trace replay smollm2-narrative-qa-topk-s60, which then got no flow schedule
    in 60 s; 2.0 % above the bound with it beside, against 14.6 %)."""
    inst, dl = book.instance, book.deadline
    flow_inst = two_fastest_tiers(inst)
    if flow_inst is None or too_dense(inst, "the flow heuristic") \
            or not _second_process_ok(config, dl):
        return False
    limit = dl.share_s(FLOW_BESIDE_SHARE)
    if limit is not None and limit < MIN_CHILD_S:
        return False
    # a small graph is solved here in less time than a second process takes to start
    free_reads = int((inst.pinned_tier[inst.read_item] < 0).sum())
    if predict_flow_s(CHAIN_ARCS_PER_READ * free_reads + inst.num_epochs, "ortools") \
            < FLOW_BESIDE_MIN_S:
        return False
    state["flow_bg"] = Child("hetkv_opt.methods.flow:flow_beside", (flow_inst, limit))
    state["flow_end"] = math.inf if limit is None else time.perf_counter() + limit
    state["flow_beside"] = True
    return True


def _collect_flow(book: Ledger, details: dict, state: dict, *, wait: bool) -> None:
    """Use the flow heuristic's answer from the spare core when it is in (``wait``: wait
    for it until the deadline)."""
    child = state.get("flow_bg")
    if child is None:
        return
    if not wait and child.running():
        return
    try:
        ans = child.wait(book.deadline) if wait else child.poll()
    except Abandoned as exc:
        ans = {"schedule": None, "flow": {"note": str(exc)},
               "runtime_s": time.perf_counter() - child.started}
    state["flow_bg"] = None
    info = ans["flow"]
    details["flow"] = {**info, "background": True}
    was, book.current = book.current, "flow"
    kept = book.offer(ans["schedule"], "flow") if ans["schedule"] is not None else False
    book.current = was
    book.record("flow", ans["runtime_s"], ans["schedule"] is not None, kept=bool(kept),
                graph=info.get("graph"), **({"note": info["note"]} if "note" in info else {}))


#: the flow heuristic on the spare core may take this share of the time left (the rest is
#: for searching from its schedule)
FLOW_BESIDE_SHARE = 0.7
#: ... and only when its first solve is predicted to take at least this long (the chain
#: graph has up to this many arcs per read of a free item)
FLOW_BESIDE_MIN_S = 1.0
CHAIN_ARCS_PER_READ = 6
#: while the flow heuristic runs beside, a round of the Lagrangian bound takes this share
#: of the time left (its schedule is to be searched when it comes)
LAGRANGIAN_BESIDE_FLOW_SHARE = 0.3


def _merged_phase(book: Ledger, config: SolverConfig, details: dict) -> None:
    """Three or more tiers: the bound of the two-tier relaxation with the slower tiers
    merged (:func:`~hetkv_opt.model.merge.merge_slow_tiers`; a proof for the original),
    by :func:`first_bound`'s rule in :data:`MERGED_SHARE` of the time left; the merged
    LP's rounding (tiers 0 and 1) is offered as a schedule of the original too."""
    inst, dl = book.instance, book.deadline
    merged = merge_slow_tiers(inst)
    if merged is None or dl.expired():
        return
    with book.phase("merged") as ph:
        rounded: list = []
        try:
            bounds, _ = _first_bound_of(merged, dl, config, MERGED_SHARE, rounding=rounded)
        except Infeasible as exc:
            raise Infeasible(f"the slower tiers merged into one: {exc}") from None
        if rounded and rounded[0] is not None:
            ph["rounding_kept"] = book.offer(
                dataclasses.replace(rounded[0], instance=inst.name), "merged lp rounding")
        if bounds:
            how = max(bounds, key=bounds.get)
            book.prove("merged", bounds[how])
            ph["proved_by"] = how
            details["merged"] = {"proved_by": how, "bound_s": bounds[how],
                                 "tiers": merged.tiers[1].name}
        else:
            ph["finished"] = False


#: the share of the time left the merged-tier bound may take
MERGED_SHARE = 0.2


def _second_process_ok(config: SolverConfig, dl: Deadline) -> bool:
    """The LP may run in a second process: a core is spare (this process runs
    single-threaded and no Dask workers share the machine) and there is time for it."""
    left = dl.remaining_s()
    return (spare_cores() >= 1 and config.threads <= 1 and config.workers == 0
            and config.scheduler is None and (left is None or left >= MIN_CHILD_S))


def _lp_expected(state: dict, dl: Deadline) -> bool:
    """The LP in the second process is predicted (by its pilots, with half as much again
    for safety) to finish before the deadline."""
    bg = state.get("bg")
    if bg is None:
        return False
    pred = state["rec"].get("predicted_lp_s", math.inf)
    left = dl.remaining_s()
    if left is None:
        return True
    return math.isfinite(pred) and 1.5 * pred - (time.perf_counter() - bg.started) <= left


def _collect_lp(book: Ledger, details: dict, state: dict, *, wait: bool) -> None:
    """Use the background LP's answer when it is in (``wait``: wait for it until the
    deadline): its bound, its rounded schedule, and a phase record."""
    bg = state["bg"]
    if bg is None:
        return
    ans = bg.wait(book.deadline) if wait else bg.poll()
    if ans is None:
        return
    state["bg"] = None
    if ans["status"] == "infeasible":
        raise Infeasible(ans.get("message") or "the LP relaxation is infeasible")
    book.prove("lp", ans["bound_s"])
    offered = book.offer(ans["schedule"], "lp rounding") if ans["schedule"] is not None else False
    state["lp_done"] = ans["bound_s"] is not None
    details["lp"] = {**ans.get("lp", {}), "background": True}
    info = {k: v for k, v in state["rec"].items()}
    if ans["status"] == "failed":
        info["note"] = ans.get("message", "")
    elif ans["bound_s"] is None:
        info["note"] = ans.get("message") or "the LP did not finish"
    book.record("lp", ans["runtime_s"], ans["bound_s"] is not None,
                rounding_kept=bool(offered), **info)


def _after_lp(book: Ledger, config: SolverConfig, details: dict, log, progress, tol: float,
              state: dict) -> None:
    inst, dl = book.instance, book.deadline
    if book.closed(tol):
        return
    milp_ok = state["lp_done"] and not dl.expired() and item_epochs(inst) <= MILP_ITEM_EPOCHS
    if milp_ok:
        _polish_phase(book, POLISH_SHARE_BEFORE_MILP)
        left = dl.remaining_s()
        root = MILP_ROOT_PER_LP * state.get("lp_s", 0.0)
        # a MILP whose root alone takes a good part of the time left rarely improves the
        # start within it (high-turnover 256 x 64: 5.5 % at 60 s): the columns first
        if left is not None and root > COLUMNS_BEFORE_MILP_ROOT_SHARE * left and \
                _dw_phase(book, DW_SHARE, tol):
            _columns_phase(book, COLUMNS_SHARE)
            left = dl.remaining_s()
        if left is not None and root > left:
            # HiGHS checks its time limit only between rounds of cuts at the root node (a
            # round took 4-12 s on a high-turnover 256 x 64): it would overrun the deadline
            book.skip("milp", f"its root node is predicted to take {root:.3g} s "
                              f"({MILP_ROOT_PER_LP:g} x the LP's {state['lp_s']:.3g} s), more "
                              f"than the {left:.3g} s left")
            milp_ok = False
    if milp_ok:
        with book.phase("milp") as ph:
            res = solve_milp(inst, time_limit_s=dl, config=config, warm_start=book.best,
                             extra_bounds={}, log=log, progress=relay(progress, "milp", dl.start),
                             method_name="auto")
            if res.status == "infeasible":
                raise Infeasible(res.message)
            for method, value in res.details.get("bounds_s", {}).items():
                book.prove(method, value)
            book.offer(res.schedule, "milp", res.solver_objective_s)
            ph["finished"] = res.status in ("optimal", "infeasible")
            ph["milp_status"] = str(res.status)
            details["milp"] = res.details.get("milp")
            _stop_if_interrupted(ph, details["milp"])
        return
    if not state["lp_done"]:
        details["scale_path"] = True

    def collect():
        """Use the LP's and the flow heuristic's answers if they are in; True when the
        instance's own Lagrangian bound is no longer needed (the LP, or the merged-tier
        bound, already proves more)."""
        _collect_flow(book, details, state, wait=False)
        _collect_lp(book, details, state, wait=False)
        merged = book.bounds.get("merged", -math.inf)
        return state["lp_done"] or merged > book.bounds.get("lagrangian", -math.inf)
    # a decomposition bound (unless the LP gave a better one), the flow heuristic, and
    # large-neighbourhood search from the best schedule; the bound's prices are refined
    # with what time is left
    # the Dantzig-Wolfe master where it is in reach: its columns for a schedule, and its
    # bound (the LP's value) even where another bound is better (three tiers: merged)
    ran_dw = not dl.expired() and _dw_phase(book, DW_SHARE, tol)
    if not ran_dw and not dl.expired() and not collect():
        _lagrangian_phase(book, details, progress, dl.share_s(SCALE_LAGRANGIAN_SHARE))
    collect()
    flow_inst = two_fastest_tiers(inst)
    if state.get("flow_beside"):
        pass                      # it runs on the spare core; collect() takes its answer
    elif flow_inst is None:
        book.skip("flow", "inclusive mode, or items pinned beyond tier 1")
    elif too_dense(inst, "the flow heuristic"):
        book.skip("flow", too_dense(inst, "the flow heuristic"))
    elif dl.expired():
        book.skip("flow", "no time left")
    else:
        with book.phase("flow") as ph:
            flow = solve_flow(flow_inst, time_limit_s=dl.child(fraction=FLOW_SHARE), bounds={},
                              graph="chain", stop_on_interrupt=True,
                              progress=relay(progress, "flow", dl.start, bound=book.bound_s))
            book.offer(flow.schedule, "flow")
            info = {k: v for k, v in flow.details.items() if k != "bounds_s"}
            details["flow"] = info
            ph["graph"] = info.get("flow", {}).get("graph")
            _stop_if_interrupted(ph, info.get("flow"))
    _homes_phase(book)
    _polish_phase(book, POLISH_SHARE)
    collect()
    if book.closed(tol):
        return
    if _columns_phase(book, COLUMNS_SHARE):
        _homes_phase(book)
        _polish_phase(book, POLISH_SHARE)
    if _windows_phase(book, WINDOWS_SHARE, tol):
        _polish_phase(book, POLISH_SHARE)
    if too_dense(inst, "large-neighbourhood search"):
        book.skip("lns", too_dense(inst, "large-neighbourhood search"))
        if not dl.expired(0.5) and not book.closed(tol) and not collect():
            _lagrangian_phase(book, details, progress, dl.share_s(0.9))
        _collect_flow(book, details, state, wait=True)
        _polish_phase(book, POLISH_SHARE)
        _collect_lp(book, details, state, wait=_lp_expected(state, dl))
        return
    # the rest of the time: search and bound again while either still gains (the bound's
    # runs stop at their call limit, so a long budget would otherwise end early)
    for _ in range(MAX_REFINE_ROUNDS):
        collect()
        _homes_phase(book)                 # a schedule that came in from the spare core
        _polish_phase(book, POLISH_SHARE)
        before = (book.best_s, book.bound_s)
        if book.best is not None and not dl.expired(1.0):
            with book.phase("lns") as ph:
                stats: dict = {}
                lns_dl = dl.child(fraction=LNS_SHARE)
                if state["flow_bg"] is not None and math.isfinite(state["flow_end"]):
                    # until the flow heuristic's answer is due: its schedule is searched next
                    lns_dl = lns_dl.child(max(state["flow_end"] - time.perf_counter(), 1.0))
                improve(inst, book.best, deadline=lns_dl, config=config,
                        on_better=lambda s, T: book.offer(s, "lns"), info=stats)
                ph.update({k: stats[k] for k in ("windows", "improved") if k in stats})
                details["lns"] = _merge_counts(details.get("lns"), stats)
                _stop_if_interrupted(ph, stats)
            _homes_phase(book)
            _polish_phase(book, POLISH_SHARE)
        beside = (state["bg"] is not None and _lp_expected(state, dl)) \
            or state["flow_bg"] is not None
        if not dl.expired(0.5) and not book.closed(tol) and not collect():
            _lagrangian_phase(book, details, progress, dl.share_s(
                0.9 if state["flow_bg"] is None else LAGRANGIAN_BESIDE_FLOW_SHARE))
        collect()
        if book.closed(tol):
            return
        if dl.expired(2.0) or ((book.best_s, book.bound_s) == before and not beside):
            break
    # the flow heuristic is waited for (it has its own limit); the LP only when its pilots
    # say it finishes in time; otherwise the answer is returned now and the LP is stopped
    if state["flow_bg"] is not None:
        _collect_flow(book, details, state, wait=True)
        _homes_phase(book)
        _polish_phase(book, 0.9)
    _collect_lp(book, details, state, wait=_lp_expected(state, dl))


def _homes_phase(book: Ledger) -> None:
    """Three or more tiers: spread the best schedule's off-tier-0 items over the slower
    tiers (:func:`~hetkv_opt.methods.homes.spread_homes`); cheap, and the flow heuristic
    and the policies leave the third tier's bandwidth unused."""
    if homes_out_of_scope(book.instance) or book.best is None or book.deadline.expired() \
            or book.best is book.homes_done:
        return
    book.homes_done = book.best
    with book.phase("homes") as ph:
        stats: dict = {}
        spread = spread_homes(book.instance, book.best, deadline=book.deadline, info=stats)
        ph.update(stats)
        ph["kept"] = book.offer(spread, "homes") if spread is not None else False


def _polish_phase(book: Ledger, share: float) -> None:
    """Single-item moves on the best schedule (:func:`~hetkv_opt.methods.polish.polish`),
    in ``share`` of the time left: the flow heuristic and the LP rounding decide with
    linear prices and leave epochs on the wrong side of their balance point."""
    if polish_out_of_scope(book.instance) or book.best is None or book.deadline.expired() \
            or book.best is book.polish_done:
        return
    with book.phase("polish") as ph:
        stats: dict = {}
        better = polish(book.instance, book.best, deadline=book.deadline.child(fraction=share),
                        info=stats)
        ph.update({k: stats[k] for k in ("passes", "moves", "swaps", "skipped") if k in stats})
        ph["finished"] = bool(stats.get("finished", True))
        ph["kept"] = book.offer(better, "polish") if better is not None else False
        book.polish_done = book.best


#: shares of the time left for polishing the best schedule: before the MILP (its start),
#: and after the flow heuristic and each round of large-neighbourhood search
POLISH_SHARE_BEFORE_MILP = 0.05
POLISH_SHARE = 0.25


#: at most this many rounds of (LNS, Lagrangian) in the scale phase
MAX_REFINE_ROUNDS = 20


def _dw_phase(book: Ledger, share: float, tol: float) -> bool:
    """The Lagrangian bound by its Dantzig-Wolfe master (which reaches the LP value), in
    ``share`` of the time left, for its columns: once per run, two tiers, up to
    :data:`~hetkv_opt.methods.columns.COLUMNS_MAX_ITEM_EPOCHS` free item-epochs, when the
    best schedule is more than :data:`COLUMNS_MIN_GAP` above the bound.  The master is
    kept for :func:`_columns_phase`.  True when it ran."""
    inst, dl = book.instance, book.deadline
    if book.columns_done or book.best is None or dl.remaining_s() is None or dl.expired(1.0):
        return False                       # without a limit, the MILP or search has time
    if item_epochs(inst) > COLUMNS_MAX_ITEM_EPOCHS or inst.num_tiers != 2:
        # three tiers: on g0 and g3 of benchmarks/bench_auto.py the master took 3-16 s
        # and its MIP found nothing in 20 s that search did not find anyway
        return False
    g = gap(book.best_s, book.bound_s)
    if g is not None and g <= max(COLUMNS_MIN_GAP, tol):
        return False                       # the MILP or the search closes the rest
    book.columns_done = True
    with book.phase("lagrangian") as ph:
        ph["stage"] = "dw"
        keep: dict = {}
        bound, cert = lagrangian_bound(inst, time_limit_s=dl.share_s(share), master="dw",
                                       prices=book.prices, keep=keep, stop_on_interrupt=True)
        book.prove("lagrangian", bound)
        if bound >= book.bounds.get("lagrangian", -math.inf) * (1 - 1e-12):
            book.prices = cert
        master = book.dw_master = keep.get("dw_master")
        ph["dw_converged"] = bool(master is not None and master.converged)
        if not ph["dw_converged"]:
            ph["finished"] = False
            ph["note"] = "the Dantzig-Wolfe master had not reached the LP value in its time"
    return True


def _columns_phase(book: Ledger, share: float) -> bool:
    """The MIP over the kept Dantzig-Wolfe master's columns (:mod:`hetkv_opt.methods.columns`)
    with the best schedule's paths added, in ``share`` of the time left.  True when it
    ran."""
    master = book.dw_master
    if master is None or book.best is None or book.deadline.expired(1.0):
        return False
    book.dw_master = None                  # the MIP changes it: used once
    with book.phase("columns") as ph:
        stats: dict = {}
        sched = columns_schedule(book.instance, master, book.best,
                                 deadline=book.deadline.child(fraction=share), info=stats)
        ph.update({k: v for k, v in stats.items() if k != "runtime_s"})
        ph["finished"] = stats.get("mip_status") == "Optimal"
        ph["kept"] = book.offer(sched, "columns") if sched is not None else False
    return True


#: the restricted master: the shares of the time left for its Dantzig-Wolfe master (in
#: the scale phase it is the first bound, in place of the bundle's) and for its MIP, and
#: the gap under which neither is run
DW_SHARE = 0.35
COLUMNS_SHARE = 0.5
COLUMNS_MIN_GAP = 0.01
#: before the MILP, the columns run when its predicted root node takes more than this
#: share of the time left (on a 64 x 32 the MILP itself does better with the time)
COLUMNS_BEFORE_MILP_ROOT_SHARE = 0.2


def _windows_phase(book: Ledger, share: float, tol: float) -> bool:
    """The restricted master's MIP on windows of epochs
    (:func:`~hetkv_opt.methods.columns.window_columns`), in ``share`` of the time left:
    two tiers, a finite deadline, and a gap above :data:`COLUMNS_MIN_GAP`; not when one
    window is the whole instance and the whole instance's columns have run.  True when it
    ran."""
    inst, dl = book.instance, book.deadline
    if book.best is None or dl.remaining_s() is None or dl.expired(WINDOWS_MIN_S) \
            or inst.num_tiers != 2 or too_dense(inst, "large-neighbourhood search"):
        return False
    if book.columns_done and item_epochs(inst) <= WINDOW_ITEM_EPOCHS:
        return False                       # one window is the whole instance: its columns ran
    g = gap(book.best_s, book.bound_s)
    if g is not None and g <= max(COLUMNS_MIN_GAP, tol):
        return False
    with book.phase("windows") as ph:
        stats: dict = {}
        wdl = dl.child(fraction=share)
        window_columns(inst, book.best, deadline=wdl, window_s=WINDOW_SHARE * wdl.remaining_s(),
                       on_better=lambda s, T: book.offer(s, "windows"), info=stats)
        ph.update({"windows": len(stats.get("windows", [])), "improved": stats.get("improved", 0),
                   "passes": stats.get("passes", 0)})
    return True


#: the restricted master's MIP on windows of epochs (the scale phase, two tiers): its share
#: of the time left, the share of that for one window, and the least time worth starting
WINDOWS_SHARE = 0.7
WINDOW_SHARE = 0.25
WINDOWS_MIN_S = 5.0


def _merge_counts(old: dict | None, new: dict) -> dict:
    """LNS counters over several runs: windows and improvements add up, the first start
    and the last end are kept."""
    if not old:
        return dict(new)
    out = dict(new)
    for k in ("windows", "improved"):
        out[k] = old.get(k, 0) + new.get(k, 0)
    if "start_s" in old:
        out["start_s"] = old["start_s"]
    return out


def _lagrangian_phase(book: Ledger, details: dict, progress, limit_s, *, iterations: int = 300,
                      stage: str | None = None) -> None:
    """The Lagrangian bound, warm-started from the best prices so far (which it replaces
    when it proves at least as much)."""
    with book.phase("lagrangian") as ph:
        if stage:
            ph["stage"] = stage
        lag = solve_lagrangian(book.instance, time_limit_s=limit_s, iterations=iterations,
                               stop_on_interrupt=True, prices=book.prices, client=book.client,
                               reuse=book.lagrangian_cache,
                               progress=relay(progress, "lagrangian", book.deadline.start))
        book.prove("lagrangian", lag.details.get("bounds_s", {}).get("lagrangian"))
        if lag.certificate is not None and lag.bound_s is not None and \
                lag.bound_s >= book.bounds.get("lagrangian", -math.inf) * (1 - 1e-12):
            book.prices = lag.certificate
        details["lagrangian"] = lag.details.get("lagrangian") or {}
        _stop_if_interrupted(ph, details["lagrangian"])


#: shares of the time left in the scale phase: the Lagrangian bound, the flow heuristic,
#: and large-neighbourhood search (the rest refines the bound)
SCALE_LAGRANGIAN_SHARE = 0.3
FLOW_SHARE = 0.4
LNS_SHARE = 0.8
#: the MILP's root node (its LP, then rounds of cuts, between which alone HiGHS checks its
#: time limit) takes about this many times the LP relaxation (measured: 17 s against an LP
#: of 3.3-3.9 s on a high-turnover 256 x 64 drift instance); the MILP is not started with
#: less time left than that
MILP_ROOT_PER_LP = 6.0
#: above this many free item-epochs the MILP of the whole instance does not help in the
#: time a user gives (1024 x 256 drift: 262k; its MILP stays at the LP rounding for
#: minutes), and large-neighbourhood search takes its place
MILP_ITEM_EPOCHS = 60_000


def _pilot_words(rec: dict) -> str:
    """What the LP pilots measured, in words (for the skip message)."""
    if "pilot_shrink" not in rec:
        return str(rec.get("pilot", "no pilot"))
    words = [f"pilot shrunk {rec['pilot_shrink']}x: {rec['pilot_nonzeros']} nonzeros"]
    for m, v in (rec.get("predicted_by_method") or {rec["lp_method"]: rec["predicted_lp_s"]}).items():
        words.append(f"{m} predicted {v:.3g} s" if math.isfinite(v) else
                     f"{m} did not finish its pilot in {rec.get('pilot_limit_s', 0):.3g} s")
    return "; ".join(words)


def _stop_if_interrupted(ph: dict, info: dict | None) -> None:
    """A phase that Ctrl-C stopped (and that kept what it had) ends the portfolio."""
    if (info or {}).get("interrupted"):
        ph["finished"] = False
        ph["interrupted"] = True
        raise KeyboardInterrupt


#: the LP runs when predicted to need at most this share of the time left; it is stopped at
#: LP_SHARE_HARD of it (a prediction can be wrong; the rest of the portfolio still runs)
LP_SHARE = 0.35
LP_SHARE_HARD = 0.6


class Infeasible(Exception):
    """A phase proved that no schedule exists (the message says why)."""


def first_bound(instance: Instance, deadline: Deadline, config: SolverConfig,
                share: float) -> tuple[dict, str]:
    """The best proof for a heuristic to be measured against, in ``share`` of the time
    left: the LP bound when :func:`predict_lp_s` says it fits, else the Lagrangian bound;
    with three or more tiers, also the bound of the slower tiers merged
    (:func:`~hetkv_opt.model.merge.merge_slow_tiers`), in the first half of the share.

    Returns ``({method: seconds}, what happened in words)``; raises ``Infeasible`` when
    the LP proves that no schedule exists.
    """
    merged = merge_slow_tiers(instance)
    if merged is None:
        return _first_bound_of(instance, deadline, config, share)
    budget = deadline.child(fraction=share)
    mb, _ = _first_bound_of(merged, budget, config, 0.5)
    out, words = _first_bound_of(instance, budget, config, 1.0)
    if mb:
        out = {**out, "merged": max(mb.values())}
        words += "; and the bound of the slower tiers merged into one"
    return out, words


def _first_bound_of(instance: Instance, deadline: Deadline, config: SolverConfig,
                    share: float, rounding: list | None = None) -> tuple[dict, str]:
    """:func:`first_bound` for one instance (``rounding``: as :func:`solve_lp`'s)."""
    budget = deadline.child(fraction=share)
    if item_epochs(instance) <= AUTO_MILP_MAX_ITEM_EPOCHS and not budget.expired():
        pred, rec = predict_lp_s(instance, config, deadline=budget)
        left = budget.remaining_s()
        if left is None or pred <= left:
            lp = solve_lp(instance, config=config.replace(lp_method=rec["lp_method"]),
                          time_limit_s=budget, rounding=rounding)
            if lp.status == "infeasible":
                raise Infeasible(lp.message)
            bound = lp.details.get("bounds_s", {}).get("lp")
            if bound is not None:
                return {"lp": bound}, "LP bound"
    lag = solve_lagrangian(instance, time_limit_s=max(budget.remaining_s() or 0.0, CHEAP_GRACE_S)
                           if not budget.unlimited else None, stop_on_interrupt=True)
    if lag.status == "infeasible":
        raise Infeasible(lag.message)
    bound = lag.details.get("bounds_s", {}).get("lagrangian")
    return ({"lagrangian": bound} if bound is not None else {}), "Lagrangian bound (the LP " \
        "was predicted not to finish in its share)"


__all__ = ["AUTO_MILP_MAX_ITEM_EPOCHS", "CHEAP_POLICIES", "first_bound", "item_epochs", "relay",
           "solve_auto"]
