"""Benchmark sweeps (issue 4, parts 4-6): suites, resumable runs, reports, plots, Dask."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

import hetkv_opt.bench.report as bench_report
from hetkv_opt.bench import runner
from hetkv_opt.workloads.paper import paper_instance, weight_bytes_per_layer, PaperParams
from hetkv_opt.bench.runner import BenchError, comparable, run_suite
from hetkv_opt.bench.suite import (SuiteError, list_suite_files, load_suite, load_suite_file,
                                   parse_suite, register_suite, unregister_suite)
from hetkv_opt.io.files import instance_hash, load_instance

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.json"

SUITE = f"""
schema = "hetkv-suite"
schema_version = 1
description = "two tiny instances, three methods"
seed = 3

[[instances]]
file = "{TINY}"

[[instances]]
name = "drift-s{{sparsity_pct}}"
generator = "drift"
params = {{ blocks = 8, steps = 4 }}
sweep = {{ sparsity = [0.5] }}

[[methods]]
method = "milp"
time_limit_s = 30

[[methods]]
method = "policy:lru"

[[methods]]
method = "policy:belady"
"""


def write_suite(tmp_path: Path, text: str = SUITE, name: str = "tinysuite") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(textwrap.dedent(text))
    return p


def cell_files(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*.json") if not p.name.startswith("."))


@pytest.fixture
def counted(monkeypatch):
    """Count the cells actually computed (in-process runs call runner.run_cell)."""
    calls = []
    real = runner.run_cell

    def spy(task):
        calls.append(task.cell_id)
        return real(task)
    monkeypatch.setattr(runner, "run_cell", spy)
    return calls


# ----------------------------------------------------------------------------- running

def test_one_file_per_cell_then_resume_skips_finished_cells(tmp_path, counted):
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    events = []
    run = run_suite(suite, out, progress=events.append)
    assert (run.total, run.ran, run.skipped, run.errors, run.failed) == (6, 6, 0, [], [])
    files = cell_files(out)
    assert [p.name for p in files] == sorted([
        "tiny__milp.json", "tiny__policy_lru.json", "tiny__policy_belady.json",
        "drift-s50__milp.json", "drift-s50__policy_lru.json", "drift-s50__policy_belady.json"])
    assert [e["event"] for e in events] == ["plan"] + ["done"] * 6
    rec = json.loads((out / "tiny__milp.json").read_text())
    assert rec["schema"] == "hetkv-bench-cell" and rec["seed"] == 3
    assert rec["result"]["status"] == "optimal" and rec["result"]["total_time_s"] == 2.0
    assert rec["instance"]["sha256"] == instance_hash(load_instance(TINY))
    assert set(rec["versions"]) >= {"numpy", "highspy", "pulp", "hetkv_opt", "python"}
    assert rec["machine"]["platform"] and rec["method"]["config"]["seed"] == 3
    belady = json.loads((out / "tiny__policy_belady.json").read_text())
    assert belady["oracle"] is True and belady["result"]["method"] == "policy:belady"
    assert counted == [t for t in counted] and len(counted) == 6

    mtimes = {p.name: p.stat().st_mtime_ns for p in files}
    counted.clear()
    again = run_suite(suite, out)
    assert (again.ran, again.skipped) == (0, 6)
    assert counted == []                                   # nothing recomputed
    assert {p.name: p.stat().st_mtime_ns for p in cell_files(out)} == mtimes


def test_a_changed_spec_reruns_only_its_cells(tmp_path, counted):
    out = tmp_path / "out"
    run_suite(write_suite(tmp_path), out)
    counted.clear()
    changed = write_suite(tmp_path, SUITE.replace("time_limit_s = 30", "time_limit_s = 31"))
    run = run_suite(changed, out)
    assert (run.ran, run.skipped) == (2, 4)
    assert sorted(counted) == ["drift-s50__milp", "tiny__milp"]


def test_half_written_files_are_ignored_and_redone(tmp_path, counted):
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    run_suite(suite, out)
    # a killed writer leaves its temp file, never the cell's name ...
    (out / "tiny__milp.json").unlink()
    (out / ".tiny__milp.json.k1ll3d.tmp").write_text('{"schema": "hetkv-bench-cell", "cel')
    # ... and a file truncated by hand is not a result either
    full = (out / "tiny__policy_lru.json").read_text()
    (out / "tiny__policy_lru.json").write_text(full[: len(full) // 2])
    counted.clear()
    run = run_suite(suite, out)
    assert sorted(counted) == ["tiny__milp", "tiny__policy_lru"] and run.skipped == 4
    assert json.loads((out / "tiny__milp.json").read_text())["result"]["total_time_s"] == 2.0
    data = bench_report.report(out, fmt=None)
    assert len(data["cells"]) == 6 and data["passed_over"] == []


def test_a_failing_policy_is_a_recorded_error_that_runs_again(tmp_path, counted):
    from dataclasses import dataclass

    import numpy as np

    from hetkv_opt.policies import Decision, Policy, register_policy, unregister_policy

    @register_policy("test-overfill")
    @dataclass
    class Overfill(Policy):
        """Puts everything in tier 0 (breaks the capacity)."""

        def decide(self, view):
            return Decision(np.zeros(view.num_items, np.int64), np.zeros(view.born.size, np.int64))
    try:
        suite = write_suite(tmp_path, SUITE + '\n[[methods]]\nmethod = "policy:test-overfill"\n')
        out = tmp_path / "out"
        run = run_suite(suite, out)
        assert len(run.errors) == 2 and run.ran == 8
        rec = json.loads((out / "tiny__policy_test-overfill.json").read_text())
        assert rec["result"]["status"] == "error"
        assert "policy test-overfill, epoch" in rec["result"]["message"]
        counted.clear()
        assert run_suite(suite, out).ran == 2                  # errors are run again ...
        assert run_suite(suite, out, redo_errors=False).ran == 0  # ... unless told not to
    finally:
        unregister_policy("test-overfill")


def test_process_pool_gives_the_same_results(tmp_path):
    suite = write_suite(tmp_path)
    run_suite(suite, tmp_path / "here")
    pool = run_suite(suite, tmp_path / "pool", workers=2)
    assert pool.ran == 6 and not pool.failed
    for p in cell_files(tmp_path / "here"):
        a = json.loads(p.read_text())
        b = json.loads((tmp_path / "pool" / p.name).read_text())
        assert comparable(a) == comparable(b)
        assert (a["executor"], b["executor"]) == ("here", "pool")


def test_dask_local_cluster_gives_the_same_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    suite = write_suite(tmp_path)
    run_suite(suite, tmp_path / "local")
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        run = run_suite(suite, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert (run.ran, run.failed, run.errors) == (6, [], [])
    local = cell_files(tmp_path / "local")
    assert [p.name for p in local] == [p.name for p in cell_files(tmp_path / "dask")]
    for p in local:
        a = json.loads(p.read_text())
        b = json.loads((tmp_path / "dask" / p.name).read_text())
        assert comparable(a) == comparable(b), p.name
        assert a["result"]["total_time_s"] == b["result"]["total_time_s"]
        assert (a["executor"], b["executor"]) == ("here", "dask")


def test_missing_dask_and_bad_options_are_one_clear_line(tmp_path, monkeypatch):
    suite = write_suite(tmp_path)
    with pytest.raises(BenchError, match="--workers"):
        run_suite(suite, tmp_path / "out", workers=0)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "distributed", None)
        with pytest.raises(BenchError, match=r"hetkv-opt\[dask\]"):
            run_suite(suite, tmp_path / "out", scheduler="tcp://127.0.0.1:1")
    assert not (tmp_path / "out").exists()          # refused before any work
    pytest.importorskip("distributed")
    with pytest.raises(BenchError, match="--scheduler"):
        run_suite(suite, tmp_path / "out", scheduler="not-an-address")


# ----------------------------------------------------------------------------- report

def test_report_prints_the_table(tmp_path):
    out = tmp_path / "out"
    run_suite(write_suite(tmp_path), out)
    buf = io.StringIO()
    data = bench_report.report(out, fmt="table", file=buf)
    text = buf.getvalue()
    for needle in ("tiny", "drift-s50", "policy:lru", "policy:belady", "milp", "oracle",
                   "gap to best bound", "HBM read share", "best proven bound"):
        assert needle in text, needle
    cells = {(c["instance"], c["method"]): c for c in data["cells"]}
    assert cells[("tiny", "milp")]["gap_to_best_bound"] < 1e-5
    assert cells[("tiny", "policy:lru")]["gap_to_best_bound"] > 0
    tiny = next(i for i in data["instances"] if i["instance"] == "tiny")
    assert tiny["best_time_s"] == 2.0 and tiny["aggregate_bound_s"] == 1.0
    assert tiny["bound_over_aggregate"] == pytest.approx(2.0, rel=1e-5)
    md = io.StringIO()
    bench_report.report(out, fmt="md", file=md)
    assert md.getvalue().startswith("| instance | method | T |")
    js = io.StringIO()
    bench_report.report(out, fmt="json", file=js)
    assert json.loads(js.getvalue())["cells"] == data["cells"]
    with pytest.raises(BenchError, match="no benchmark results"):
        bench_report.report(tmp_path, fmt=None)


def test_plots_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    run_suite(write_suite(tmp_path, SUITE.replace("[0.5]", "[0.5, 0.7]")), out)
    data = bench_report.report(out, plots=True, fmt=None)
    names = sorted(Path(p).name for p in data["plots"])
    assert names == ["gap_vs_size.png", "runtime_vs_size.png", "sparsity.png"]
    for p in data["plots"]:
        head = Path(p).read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" and Path(p).stat().st_size < 200_000


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_suite(write_suite(tmp_path), out)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(BenchError, match=r"hetkv-opt\[plot\]"):
        bench_report.report(out, plots=True, fmt=None)


# ----------------------------------------------------------------------------- suites

def test_duplicate_suite_names_are_refused(tmp_path):
    s = parse_suite({"schema": "hetkv-suite", "schema_version": 1,
                     "instances": [{"file": str(TINY)}], "methods": [{"method": "lp"}]},
                    name="test-dup")
    register_suite(s)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_suite(s)
        assert load_suite("test-dup") is s
    finally:
        unregister_suite("test-dup")
    with pytest.raises(ValueError, match="already registered"):
        register_suite(parse_suite({"schema": "hetkv-suite", "schema_version": 1,
                                    "instances": [{"file": str(TINY)}],
                                    "methods": [{"method": "lp"}]}, name="paper"))
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        write_suite(d, name="same")
    with pytest.raises(SuiteError, match="duplicate suite name 'same'"):
        list_suite_files([a, b])
    assert list(list_suite_files([a])) == ["same"]


BAD = [
    ('time_limit_s = 30', 'time_limit_s = -1', "methods[0].time_limit_s", "> 0"),
    ('params = { blocks = 8, steps = 4 }', 'params = { blocks = 8, stepz = 4 }',
     "instances[1].params.stepz", "unknown parameter"),
    ('sweep = { sparsity = [0.5] }', 'sweep = { sparsity = [1.5] }',
     "instances[1].sweep.sparsity", "[0, 1)"),
    ('params = { blocks = 8, steps = 4 }', 'params = { blocks = 8.5, steps = 4 }',
     "instances[1].params.blocks", "whole number"),
    ('method = "policy:lru"', 'method = "policy:nosuch"', "methods[1].method", "unknown policy"),
    ('method = "milp"', 'method = "simplex"', "methods[0].method", "unknown method"),
    ('method = "policy:lru"', 'method = "policy:lru"\nparams = { fill = 3 }',
     "methods[1].params.fill", "fill"),
    ('method = "policy:lru"', 'method = "policy:lru"\ntime_limit_s = 5',
     "methods[1].time_limit_s", "only for solver methods"),
    ('schema_version = 1', 'schema_version = 7', "schema_version", "expected 1"),
    ('seed = 3', 'seed = 3\ncolour = "red"', "colour", "unknown key"),
    (f'file = "{TINY}"', 'file = "nowhere.json"', "instances[0].file", "no such file"),
    ('method = "policy:belady"', 'method = "policy:lru"', "methods", "labelled 'policy:lru'"),
]


@pytest.mark.parametrize("old,new,field,reason", BAD, ids=[b[2] + ":" + b[3] for b in BAD])
def test_bad_suite_files_name_the_file_and_field(tmp_path, old, new, field, reason):
    assert old in SUITE
    p = write_suite(tmp_path, SUITE.replace(old, new, 1), name="bad")
    with pytest.raises(SuiteError) as info:
        load_suite_file(p)
    msg = str(info.value)
    assert msg.startswith(str(p)) and f"field '{field}'" in msg and reason in msg, msg


def test_bad_toml_names_the_file(tmp_path):
    p = write_suite(tmp_path, "schema = \n", name="broken")
    with pytest.raises(SuiteError, match=r"broken\.toml: not valid TOML"):
        load_suite_file(p)


# ----------------------------------------------------------------------------- CLI

def hetkv(*args):
    from cli_helpers import hetkv as run
    return run(*args, check_rc=None)


def test_cli_bench_and_report(tmp_path):
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    proc = hetkv("bench", suite, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "6 cells, 6 run" in proc.stderr and proc.stdout == ""
    assert len(cell_files(out)) == 6
    proc = hetkv("report", out, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["cells"]) == 6


def test_cli_bench_only_runs_the_matching_instances(tmp_path):
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    proc = hetkv("bench", suite, "--out", out, "--quiet", "--only", "drift-*")
    assert proc.returncode == 0, proc.stderr
    assert "3 cells, 3 run" in proc.stderr
    assert [p.name.split("__")[0] for p in cell_files(out)] == ["drift-s50"] * 3
    proc = hetkv("bench", suite, "--out", out, "--quiet")       # the rest, later
    assert "6 cells, 3 run, 3 already done" in proc.stderr
    proc = hetkv("bench", suite, "--out", out, "--only", "nothing-*")
    assert proc.returncode == 2 and "no instance of suite" in proc.stderr
    assert "tiny, drift-s50" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_bench_only_needs_only_its_own_files(tmp_path):
    """A suite of instance files made one at a time (benchmarks/make_paper_full.sh): a run
    of one of them must not need the files of the others; a run that needs a missing file
    still stops, naming it."""
    missing = tmp_path / "not-made-yet.json"
    suite = write_suite(tmp_path, SUITE + f"""
[[instances]]
name = "later"
file = "{missing}"
""")
    out = tmp_path / "out"
    proc = hetkv("bench", suite, "--out", out, "--quiet", "--only", "drift-*")
    assert proc.returncode == 0, proc.stderr
    assert "3 cells, 3 run" in proc.stderr
    proc = hetkv("bench", suite, "--out", out, "--quiet", "--only", "lat*")
    assert proc.returncode == 2 and "no such file" in proc.stderr and "instances[2].file" in proc.stderr
    proc = hetkv("bench", suite, "--out", out, "--quiet")
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_bad_suite_is_one_line_exit_2(tmp_path):
    p = write_suite(tmp_path, SUITE.replace("time_limit_s = 30", "time_limit_s = 0"), name="bad")
    proc = hetkv("bench", p, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.toml" in lines[0] and "methods[0].time_limit_s" in lines[0]
    proc = hetkv("report", tmp_path / "nowhere")
    assert proc.returncode == 2 and "no such folder" in proc.stderr


# ----------------------------------------------------------------------------- paper suite

def test_paper_workload_is_gqa_correct_and_calibrated():
    p = PaperParams(layers=2, prompt_tokens=128, steps=16, sparsity=0.6)
    inst = paper_instance(p)
    kind = inst.item_labels["kind"]
    assert set(inst.size_bytes[kind == "kv"].tolist()) == {16 * 8 * 128 * 2 * 2}   # 64 KiB
    assert (inst.pinned_tier[kind == "weight"] == 0).all()
    assert (inst.size_bytes[kind == "weight"] == weight_bytes_per_layer(p)).all()
    weights = kind[inst.read_item] == "weight"
    share = inst.read_bytes[weights].sum() / inst.read_bytes.sum()
    assert share == pytest.approx(0.41, abs=0.02)
    assert inst.num_epochs == 32 and inst.num_steps == 16
    assert instance_hash(paper_instance(p)) == instance_hash(inst)          # deterministic
    cap = inst.tiers[0].capacity_bytes
    kv_total = inst.size_bytes[kind == "kv"].sum()
    assert cap - inst.size_bytes[kind == "weight"].sum() < 0.31 * kv_total   # HBM pressure


def test_paper_suite_parses():
    s = load_suite("paper")
    labels = [m.label for m in s.methods]
    for need in ("policy:static", "policy:reactive", "policy:page", "policy:sa-guided", "lp",
                 "auto"):
        assert need in labels
    sparsities = sorted({i.params["sparsity"] for i in s.instances})
    assert sparsities == [0.4, 0.5, 0.6, 0.8, 0.9]
