"""A step that cannot be interrupted runs in a child process that the deadline stops: the
answer comes back when it finishes in time; a child past the deadline is killed at once;
a failing child is said so.  The flow heuristic's solves give the same schedule there."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

import hetkv_opt.methods.flow as flow
from hetkv_opt.deadline import Deadline
from hetkv_opt.methods.child import Abandoned, Child, run_in_child
from hetkv_opt.model.schedule import residency_matrix
from hetkv_opt.workloads.drift import drift_instance

needs_ortools = pytest.mark.skipif(importlib.util.find_spec("ortools") is None,
                                   reason="needs the 'flow' extra (OR-Tools)")


def test_the_answer_comes_back():
    assert run_in_child("math:hypot", (3.0, 4.0), Deadline.of(30)) == 5.0
    arr = run_in_child("numpy:cumsum", (np.arange(5),), Deadline.of(30))
    assert arr.tolist() == [0, 1, 3, 6, 10]


def test_a_child_past_the_deadline_is_killed_at_once():
    t = time.perf_counter()
    with pytest.raises(Abandoned, match="had not finished at the deadline"):
        run_in_child("time:sleep", (30,), Deadline.of(1.0))
    assert time.perf_counter() - t < 3.0


def test_a_failing_child_is_said_so():
    with pytest.raises(Abandoned, match="ValueError"):
        run_in_child("math:sqrt", (-1.0,), Deadline.of(30))


@needs_ortools
def test_flow_solves_in_a_child_give_the_same_schedule(monkeypatch):
    inst = drift_instance(blocks=32, steps=12, seed=2, sparsity=0.8)
    here = flow.solve_flow(inst, time_limit_s=60, graph="chain", engine="ortools", bounds={})
    monkeypatch.setattr(flow, "CHILD_SOLVE_S", 0.0)
    there = flow.solve_flow(inst, time_limit_s=60, graph="chain", engine="ortools", bounds={})
    assert there.details["flow"]["child_solves"] >= 1
    assert "child_solves" not in here.details["flow"]
    assert np.array_equal(residency_matrix(inst, here.schedule), residency_matrix(inst, there.schedule))
    assert there.total_time_s == here.total_time_s


@needs_ortools
def test_a_flow_solve_stopped_in_its_child_falls_back_to_the_small_graph(monkeypatch):
    """The first chain solve may take FIRST_CHILD_SHARE of the time; when it is stopped
    there, the runs graph uses the rest and the schedule is still feasible and in time."""
    inst = drift_instance(blocks=32, steps=12, seed=2, sparsity=0.8)
    monkeypatch.setattr(flow, "CHILD_SOLVE_S", 0.0)
    stopped = []

    def child_that_hangs_on_the_chain_graph(target, args, dl):
        """As run_in_child, but a chain-graph solve (nodes per read, beyond the E + 1
        time nodes) never ends: it is stopped at the deadline like a killed child."""
        if args[0] > inst.num_epochs + 1:
            time.sleep(max(dl.remaining_s(), 0.0))
            stopped.append(dl.elapsed_s())
            raise Abandoned("had not finished at the deadline")
        return flow.min_cost_flow(*args)
    monkeypatch.setattr(flow, "run_in_child", child_that_hangs_on_the_chain_graph)
    t = time.perf_counter()
    res = flow.solve_flow(inst, time_limit_s=4, graph="chain", engine="ortools", bounds={})
    assert time.perf_counter() - t < 4 * 1.05 + 2
    assert len(stopped) == 1 and stopped[0] < 4 * flow.FIRST_CHILD_SHARE + 0.5
    f = res.details["flow"]
    assert f["graph"] == "runs" and f["abandoned_solves"]
    assert res.evaluation.feasible
    assert res.total_time_s < flow.solve_flow(inst, time_limit_s=0.0, bounds={}).total_time_s


def test_a_child_runs_beside_and_stopping_it_stops_what_it_started(tmp_path):
    """Child does not wait: poll() is None while it runs; cancel() kills its whole process
    group, so a process it started does not outlive it."""
    pidfile = tmp_path / "pid"
    child = Child("subprocess:call", (["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"],))
    t = time.perf_counter()
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.perf_counter() - t < 20, "the grandchild never started"
        time.sleep(0.05)
    assert child.poll() is None and child.running()
    pid = int(pidfile.read_text())
    t = time.perf_counter()
    child.cancel()
    assert time.perf_counter() - t < 5       # nothing left holds its pipes open
    assert not child.running()
    with pytest.raises(Abandoned, match="was stopped"):
        child.poll()
    t = time.perf_counter()
    while _alive(pid):
        assert time.perf_counter() - t < 5, "the grandchild outlived its parent's cancel"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed orphan may wait to be reaped)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(ln.startswith("State:") and "Z" in ln for ln in f)
    except FileNotFoundError:
        return False


def test_a_child_answer_is_polled():
    with Child("math:hypot", (5.0, 12.0)) as child:
        t = time.perf_counter()
        while child.poll() is None:
            assert time.perf_counter() - t < 30
            time.sleep(0.02)
        assert child.poll() == 13.0


def test_a_measured_slowdown_applies_only_to_graphs_of_its_size():
    """What a solve measured (measured / predicted time) corrects the prediction of
    graphs of its size only: a small graph's time is mostly fixed costs (a 10.9k-arc graph
    took 37 times its prediction), and that must not stop a large one, nor a large one's
    slowness a small one."""
    dl = Deadline.of(10.0)
    big, small = 600_000, 8_000
    stats = {"flow_solve_s": 0.0, "solve_ratios": {flow._ratio_key(small, "ortools"): 500.0}}
    flow._check_fits(big // 2, "ortools", dl, stats)          # its own prediction: about 4 s
    with pytest.raises(flow._TooSlow):
        flow._check_fits(small, "ortools", Deadline.of(1.0), stats)   # 500 x 6 ms
    stats = {"flow_solve_s": 0.0, "solve_ratios": {flow._ratio_key(big, "ortools"): 50.0}}
    flow._check_fits(small, "ortools", dl, stats)
    with pytest.raises(flow._TooSlow):
        flow._check_fits(big, "ortools", dl, stats)


@needs_ortools
def test_the_engine_is_chosen_on_every_arc_of_the_graph():
    """The idle arcs between epochs count: a runs graph of 1.5k interval arcs and 3.8k
    idle ones took networkx 2 s."""
    assert flow._pick_engine("auto", 1_500 + 3_840) == "ortools"
    assert flow._pick_engine("auto", 1_500) == "networkx"
