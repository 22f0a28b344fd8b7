"""The policy designer's workbench: your own policy from the CLI and in suites, layers in
the view, ``hetkv explain``, ``hetkv sweep``, the look-ahead oracles, ``report -f csv``,
the JSON Schemas, and the model documented in the repository."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, hetkv
from hetkv_opt.bench.report import TIDY_COLUMNS, report
from hetkv_opt.bench.runner import read_record, run_suite
from hetkv_opt.bench.suite import load_suite_file
from hetkv_opt.bench.sweep import scale_instance, sweep
from hetkv_opt.io.files import load_instance, save_instance, save_schedule
from hetkv_opt.io.schema import file_document, load_schema, validate, validate_file
from hetkv_opt.model.breakdown import breakdown, causes, residency_dense
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.feasibility import capacity_precheck, forced_overflow
from hetkv_opt.model.instance import make_instance, tiny_instance
from hetkv_opt.model.schedule import residency_matrix
from hetkv_opt.policies import (ForecastPolicy, PolicyLoadError, get_policy, list_policies,
                                plugin_problems, resolve_policy, simulate, unregister_policy)
from hetkv_opt.policies.base import View
from hetkv_opt.solve import METHODS, solve
from hetkv_opt.testing import random_instance
from hetkv_opt.workloads.drift import drift_instance

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.json"
SMALL_LAYERED = ROOT / "instances" / "smollm2-narrative-qa-topk-s60-L3x32.npz"

POLICY_FILE = '''
from dataclasses import dataclass

import numpy as np

from hetkv_opt.policies import ScoredPolicy


@dataclass
class MostRead(ScoredPolicy):
    """Tier 0 for the items read in the most epochs so far."""

    boost: float = 0.0

    def score(self, view):
        return view.read_count.astype(float) + self.boost
'''


@pytest.fixture
def plugin(tmp_path):
    """A policy file in a temporary folder; every policy it registers is forgotten after."""
    before = {p.name for p in list_policies()}
    path = tmp_path / "mine.py"
    path.write_text(POLICY_FILE)
    yield path
    for p in list_policies():
        if p.name not in before:
            unregister_policy(p.name)


# ----------------------------------------------------------------------------- 1. plugins

def test_a_policy_from_a_file_runs_in_simulate_with_params(plugin):
    spec = f"{plugin}:MostRead"
    pol = get_policy(spec, boost="2")
    assert type(pol).__name__ == "MostRead" and pol.boost == 2.0
    res = simulate(tiny_instance(), pol)
    assert res.status == "feasible" and res.method == "policy:MostRead"
    assert res.details["source"] == spec
    assert resolve_policy(spec) is type(pol)                # imported once per process
    assert evaluate(tiny_instance(), res.schedule).total_time_s == res.total_time_s


def test_cli_simulate_takes_a_file_spec_relative_to_the_current_folder(plugin, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hetkv_opt", "simulate", str(TINY), "--policy",
                           "mine.py:MostRead", "--param", "boost=1", "-f", "json", "--bound",
                           "aggregate"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["method"] == "policy:MostRead" and d["details"]["params"]["boost"] == 1.0
    assert d["details"]["source"] == "mine.py:MostRead"


def test_a_module_spec_and_a_registered_class_by_its_module(tmp_path, monkeypatch):
    pkg = tmp_path / "mypols"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "fresh.py").write_text(POLICY_FILE.replace("MostRead", "FreshMostRead"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        res = simulate(tiny_instance(), "mypols.fresh:FreshMostRead")
        assert res.method == "policy:FreshMostRead"
    finally:
        unregister_policy("FreshMostRead")
    assert resolve_policy("hetkv_opt.policies.classic:LRU") is resolve_policy("lru")


@pytest.mark.parametrize("text, spec, needle", [
    (None, "nofile.py:X", "no such file"),
    ("def f(:\n", "broken.py:X", "does not import: SyntaxError"),
    ("raise RuntimeError('boom')\n", "boom.py:X", "does not import: RuntimeError: boom"),
    (POLICY_FILE, "mine.py:Nope", "no class 'Nope'"),
    (POLICY_FILE, "mine.py:dataclass", "is not a policy"),
    ("class Plain:\n    pass\n", "plain.py:Plain", "is not a policy"),
    ("from hetkv_opt.policies import ScoredPolicy\nclass NoDc(ScoredPolicy):\n"
     "    window: int = 3\n    def score(self, view):\n        return 0\n", "nodc.py:NoDc",
     "must be a @dataclass"),
    (POLICY_FILE.replace("class MostRead", "class LRU"), "clash.py:LRU",
     "clashes with the registered policy 'lru'"),
    (None, "no.such.module:X", "no module named 'no.such.module'"),
    (None, "x:", "expected FILE.py:CLASS"),
])
def test_bad_specs_are_one_clear_line(tmp_path, text, spec, needle):
    if text is not None:
        (tmp_path / spec.split(":")[0]).write_text(text)
    with pytest.raises(PolicyLoadError, match=re.escape(needle)):
        get_policy(str(tmp_path / spec) if ".py" in spec else spec)
    proc = subprocess.run([sys.executable, "-m", "hetkv_opt", "simulate", str(TINY), "-p", spec],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, needle, spec)


def _suite(tmp_path: Path, method: str, extra: str = "") -> Path:
    d = tmp_path / "suites"
    d.mkdir(exist_ok=True)
    p = d / "plug.toml"
    p.write_text(textwrap.dedent(f"""
        schema = "hetkv-suite"
        schema_version = 1
        [[instances]]
        file = "{TINY}"
        [[instances]]
        generator = "drift"
        params = {{ blocks = 8, steps = 4 }}
        [[methods]]
        method = "{method}"
        params = {{ boost = 1.0 }}
        [[methods]]
        method = "policy:lookahead"
        {extra}
        """))
    return p


def test_a_policy_file_in_a_bench_suite_relative_to_the_suite(plugin, tmp_path):
    suite = load_suite_file(_suite(tmp_path, "policy:../mine.py:MostRead"))
    m = suite.methods[0]
    assert m.label == "policy:../mine.py:MostRead" and m.method == f"policy:{plugin}:MostRead"
    assert m.source_sha256 and len(m.source_sha256) == 64
    out = tmp_path / "out"
    run = run_suite(suite, out)
    assert run.ran == 4 and not run.errors, run.errors
    recs = [read_record(p) for p in sorted(out.glob("*.json"))]
    mine = [r for r in recs if r["method"]["label"] == m.label]
    assert len(mine) == 2 and all(r["result"]["status"] == "feasible" for r in mine)
    assert all(r["method"]["source_sha256"] == m.source_sha256 for r in mine)
    assert all(r["oracle"] for r in recs if r["method"]["label"] == "policy:lookahead")
    # the same suite again: nothing runs; an edited policy file: its cells run again
    assert run_suite(load_suite_file(tmp_path / "suites" / "plug.toml"), out).ran == 0
    plugin.write_text(POLICY_FILE + "\n# edited\n")
    again = run_suite(load_suite_file(tmp_path / "suites" / "plug.toml"), out)
    assert again.ran == 2 and again.skipped == 2
    # a report marks the oracle, names the plugin cell by its label
    data = report(out, fmt=None)
    by = {(c["instance"], c["method"]): c for c in data["cells"]}
    assert by[("tiny", "policy:lookahead")]["oracle"] is True
    assert by[("tiny", m.label)]["oracle"] is False


def test_a_bad_policy_spec_in_a_suite_names_the_field(tmp_path):
    from hetkv_opt.bench.suite import SuiteError
    with pytest.raises(SuiteError, match=r"methods\[0\]\.method.*no such file"):
        load_suite_file(_suite(tmp_path, "policy:../missing.py:MostRead"))


def test_cli_bench_with_a_plugin(plugin, tmp_path):
    s = _suite(tmp_path, "policy:../mine.py:MostRead")
    hetkv("bench", s, "--out", tmp_path / "o", "--quiet")
    rows = hetkv("report", tmp_path / "o", "-f", "csv").stdout.splitlines()
    assert rows[0].split(",") == list(TIDY_COLUMNS) and len(rows) == 5
    assert any("policy:../mine.py:MostRead" in r for r in rows)


def test_an_entry_point_policy_is_found_by_name(tmp_path, monkeypatch):
    dist = tmp_path / "fakeplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[hetkv_opt.policies]\nep-most-read = fakeplug_mod:EpMostRead\n"
        "ep-broken = fakeplug_missing:Nothing\n")
    (tmp_path / "fakeplug_mod.py").write_text(POLICY_FILE.replace("MostRead", "EpMostRead"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        res = simulate(tiny_instance(), get_policy("ep-most-read", boost="1"))
        assert res.method == "policy:ep-most-read" and res.status == "feasible"
        names = {p.name for p in list_policies()}
        assert "ep-most-read" in names and "ep-broken" not in names
        assert any("ep-broken" in line and "fakeplug_missing" in line for line in plugin_problems())
    finally:
        unregister_policy("ep-most-read")


# ----------------------------------------------------------------------------- 2. layers

def _views(inst, steps_back=1):
    """Run a probe policy and collect what its views say."""
    from dataclasses import dataclass
    from hetkv_opt.policies import ScoredPolicy
    seen = []

    @dataclass
    class Probe(ScoredPolicy):
        """Records the view's layer fields."""

        def score(self, view: View):
            seen.append((view.epoch, view.step, view.layer, view.next_step, view.next_layer,
                         view.layer_epochs(steps=steps_back).tolist(),
                         view.layer_read_bytes(steps=steps_back).copy()))
            return np.zeros(view.num_items)

    simulate(inst, Probe())
    return seen


def test_the_view_knows_steps_and_layers():
    inst = load_instance(SMALL_LAYERED)          # 32 steps x 3 layers (0, 10, 20)
    step, layer = inst.epoch_labels["step"], inst.epoch_labels["layer"]
    seen = _views(inst, steps_back=2)
    for e, s, lay, ns, nl, past, rb in seen:
        assert (s, lay) == (step[e], layer[e])
        if e + 1 < inst.num_epochs:
            assert (ns, nl) == (step[e + 1], layer[e + 1])
        else:
            assert (ns, nl) == (-1, -1)
        want_layer = nl if nl >= 0 else lay
        want = [t for t in range(e) if layer[t] == want_layer][-2:]
        assert past == want
        ref = np.zeros(inst.num_items)
        for t in want:
            m = inst.read_epoch == t
            np.add.at(ref, inst.read_item[m], inst.read_bytes[m])
        assert np.array_equal(rb, ref)


def test_without_labels_an_epoch_is_a_step_of_one_layer():
    inst = drift_instance(blocks=10, steps=6, seed=1)
    inst = make_instance(name="nolabels", tiers=inst.tiers, size_bytes=inst.size_bytes,
                         num_epochs=inst.num_epochs, birth=inst.birth, death=inst.death,
                         reads=(inst.read_epoch, inst.read_item, inst.read_bytes))
    for e, s, lay, ns, nl, past, rb in _views(inst):
        assert (s, lay) == (e, 0) and past == ([e - 1] if e else [])


def test_step_ema_is_ema_score_on_one_layer_and_beats_it_on_layers():
    one = drift_instance(blocks=48, steps=32, sparsity=0.5, seed=2)
    a = simulate(one, get_policy("ema-score", decay=0.9))
    b = simulate(one, get_policy("step-ema", decay=0.9))
    assert a.schedule.equals(b.schedule)
    layered = load_instance(ROOT / "instances" / "smollm2-code-review-kvunion-s80.npz")
    per_epoch = simulate(layered, "ema-score")
    per_step = simulate(layered, "step-ema")
    # the per-epoch average decays 30 times a step and churns HBM
    assert per_step.total_time_s < 0.2 * per_epoch.total_time_s
    assert per_step.details["num_moves"] < 0.1 * per_epoch.details["num_moves"]


# ----------------------------------------------------------------------------- 3. explain

def _servable(count: int, **kw) -> list:
    out, seed = [], 0
    while len(out) < count:
        inst = random_instance(seed, **kw)
        seed += 1
        last_open = inst.mode == "inclusive" or inst.tiers[-1].capacity_bytes is None
        if last_open and capacity_precheck(inst) is None and forced_overflow(inst) is None:
            out.append(inst)
    return out


def _check_breakdown(inst, sched):
    b = breakdown(inst, sched)
    ev = evaluate(inst, sched)
    assert b.total_time_s == ev.total_time_s
    assert math.fsum(b.breakdown_s.values()) == b.total_time_s        # exactly
    assert math.fsum(b.binding_s.values()) == b.total_time_s
    assert set(b.breakdown_s) == set(causes(inst))
    assert np.allclose(b.parts_s.sum(axis=0), ev.epoch_time_s, rtol=1e-12, atol=0)
    assert (b.parts_s >= -1e-15 * max(1.0, ev.epoch_time_s.max())).all()
    assert sum(b.binding_epochs.values()) == inst.num_epochs
    # compute seconds only where the floor binds; a tier's device reads only where it binds
    comp = b.parts_s[b.causes.index("compute")]
    assert np.all((comp > 0) <= (np.asarray(b.binding) == "compute"))
    return b


def test_the_breakdown_sums_to_T_for_every_method_and_policy():
    insts = _servable(4) + _servable(2, mode="inclusive") + _servable(2, num_tiers=3)
    checked = 0
    for inst in insts:
        for method in METHODS:
            try:
                res = solve(inst, method, time_limit_s=10)
            except ValueError:          # flow: two-tier exclusive only
                continue
            if res.schedule is not None:
                _check_breakdown(inst, res.schedule)
                checked += 1
        for p in list_policies():
            if p.name == "sa-guided":
                pol = get_policy(p.name, iterations=2)
            else:
                pol = get_policy(p.name)
            _check_breakdown(inst, simulate(inst, pol).schedule)
            checked += 1
    assert checked > 8 * len(list_policies())


def test_the_breakdown_of_the_worked_example():
    from hetkv_opt.model.schedule import Schedule
    b = breakdown(tiny_instance(), Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    assert b.binding == ["device:dram", "device:hbm", "device:hbm"]
    assert {k: v for k, v in b.breakdown_s.items() if v} == {
        "device:hbm": 0.75, "device:dram": 1.0, "writes": 0.25}


def test_residency_dense_matches_the_reference():
    for inst in _servable(5):
        sched = solve(inst, "milp", time_limit_s=10).schedule
        assert np.array_equal(residency_dense(inst, sched), residency_matrix(inst, sched))
        rows = np.array([0, inst.num_items - 1])
        assert np.array_equal(residency_dense(inst, sched, rows),
                              residency_matrix(inst, sched)[rows])


def test_cli_explain_json_vs_and_plot(tmp_path):
    inst_path = tmp_path / "d.json"
    inst = drift_instance(blocks=16, steps=8, seed=1)
    save_instance(inst, inst_path)
    a, b = simulate(inst, "lru"), simulate(inst, "static")
    save_schedule(a.schedule, tmp_path / "a.json")
    save_schedule(b.schedule, tmp_path / "b.npz")
    d = json.loads(hetkv("explain", inst_path, tmp_path / "a.json", "-f", "json").stdout)
    assert {"total_time_s", "breakdown_s", "per_epoch", "binding_s"} <= set(d)
    assert d["total_time_s"] == a.total_time_s
    assert math.fsum(d["breakdown_s"].values()) == d["total_time_s"]
    assert len(d["per_epoch"]) == inst.num_epochs
    assert {"epoch", "tau_s", "binding", "parts_s"} <= set(d["per_epoch"][0])
    png = tmp_path / "x.png"
    import importlib.util
    can_plot = importlib.util.find_spec("matplotlib") is not None   # the plot extra
    d = json.loads(hetkv("explain", inst_path, tmp_path / "a.json", "--vs", tmp_path / "b.npz",
                         *(("--plot", png) if can_plot else ()), "-f", "json").stdout)
    assert d["vs"]["total_time_s"] == b.total_time_s
    assert d["difference_total_s"] == pytest.approx(a.total_time_s - b.total_time_s)
    for k, v in d["difference_s"].items():
        assert v == pytest.approx(d["breakdown_s"][k] - d["vs"]["breakdown_s"][k])
    assert not can_plot or (png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n")
    table = hetkv("explain", inst_path, tmp_path / "a.json", "--vs", tmp_path / "b.npz").stdout
    assert "T (total)" in table and "difference" in table


def test_cli_explain_errors_are_one_line(tmp_path):
    save_schedule(simulate(drift_instance(blocks=8, steps=4), "lru").schedule, tmp_path / "o.json")
    assert_one_line_error(hetkv("explain", TINY, tmp_path / "o.json", check_rc=None),
                          "schedule is for instance")
    assert_one_line_error(hetkv("explain", TINY, tmp_path / "none.json", check_rc=None),
                          "no such file")
    assert_one_line_error(hetkv("explain", TINY, tmp_path / "o.json", "--plot", "x.jpg",
                                check_rc=None), "must end in .png")


def test_explain_at_a_million_item_epochs_is_fast(tmp_path):
    inst = drift_instance(blocks=1000, steps=1000, seed=0)
    assert (inst.death - inst.birth).sum() >= 1e6 * 0.7
    a, b = simulate(inst, "step-ema").schedule, simulate(inst, "lru").schedule
    pytest.importorskip("matplotlib")
    from hetkv_opt.cli.explain import _pyplot, draw
    t0 = time.perf_counter()
    ba, bb = breakdown(inst, a), breakdown(inst, b)
    ba.to_dict(inst)
    draw(_pyplot(), inst, a, ba, tmp_path / "big.png", names=("a", "b"), other=(b, bb))
    assert time.perf_counter() - t0 < 10.0
    assert (tmp_path / "big.png").stat().st_size < 400_000


# ----------------------------------------------------------------------------- 4. sweep

def test_scale_instance():
    inst = drift_instance(blocks=16, steps=8, seed=1)
    s = scale_instance(inst, hbm_scale=0.5, link_scale=2.0)
    assert s.tiers[0].capacity_bytes == inst.tiers[0].capacity_bytes // 2
    assert s.tiers[1].link_read_Bps == 2 * inst.tiers[1].link_read_Bps
    assert s.tiers[1].bandwidth_Bps == inst.tiers[1].bandwidth_Bps
    assert s.read_item is inst.read_item                     # no copy of the trace
    with pytest.raises(ValueError, match="must be a number > 0"):
        scale_instance(inst, hbm_scale=0)
    unbounded = make_instance(name="u", tiers=[{"name": "h", "capacity_bytes": None,
                                                "bandwidth_Bps": 1.0}], size_bytes=[1],
                              num_epochs=1)
    with pytest.raises(ValueError, match="unbounded"):
        scale_instance(unbounded, hbm_scale=2.0)


def test_the_sweep_bound_holds_at_every_point_and_resumes(tmp_path):
    inst = drift_instance(blocks=16, steps=8, seed=1)
    res = sweep(inst, tmp_path / "sw", hbm_scales=[0.5, 1, 2], policies=["static", "lru"],
                time_limit_s=10)
    pts = res["points"]
    assert [p["hbm_scale"] for p in pts] == [0.5, 1.0, 2.0]
    for p in pts:
        assert p["bound_s"] <= p["total_time_s"] * (1 + 1e-12)
        for q in p["policies"].values():
            assert p["bound_s"] <= q["total_time_s"] * (1 + 1e-12)
        assert Path(p["file"]).is_file()
        assert json.loads(Path(p["file"]).read_text())["schema"] == "hetkv-sweep-point"
    # more HBM never makes the optimum slower (here: each point solved to optimality)
    assert pts[0]["bound_s"] >= pts[2]["total_time_s"] * (1 - 1e-6)
    assert res["cells"]["ran"] == 9
    if res["plot"]:
        assert Path(res["plot"]).read_bytes()[:4] == b"\x89PNG"
    again = sweep(inst, tmp_path / "sw", hbm_scales=[0.5, 1, 2], policies=["static", "lru"],
                  time_limit_s=10, plot=False)
    assert again["cells"]["ran"] == 0 and again["cells"]["skipped"] == 9


def test_a_sweep_runs_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    inst = drift_instance(blocks=10, steps=6, seed=4)
    here = sweep(inst, tmp_path / "here", hbm_scales=[0.5, 1], policies=["lru"],
                 time_limit_s=10, plot=False)
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        dask = sweep(inst, tmp_path / "dask", hbm_scales=[0.5, 1], policies=["lru"],
                     time_limit_s=10, plot=False, scheduler=cluster.scheduler_address)
    assert dask["cells"]["ran"] == 4 and not dask["cells"]["errors"]
    for a, b in zip(here["points"], dask["points"]):
        assert a["total_time_s"] == b["total_time_s"] and a["bound_s"] == b["bound_s"]


def test_cli_sweep_json_links_and_a_plugin(plugin, tmp_path):
    inst_path = tmp_path / "d.json"
    save_instance(drift_instance(blocks=12, steps=6, seed=2), inst_path)
    proc = hetkv("sweep", inst_path, "--link-scale", "0.5,2", "--policy", f"{plugin}:MostRead",
                 "--param", "boost=1", "-t", "10", "--out", tmp_path / "o", "-f", "json", "-q",
                 "--workers", "2")            # spawned workers import the plugin file too
    d = json.loads(proc.stdout)
    assert [p["link_scale"] for p in d["points"]] == [0.5, 2.0]
    for p in d["points"]:
        assert {"hbm_scale", "total_time_s", "bound_s", "bound_method", "policies"} <= set(p)
        assert p["bound_s"] <= p["total_time_s"] * (1 + 1e-12)
        assert list(p["policies"]) == [f"policy:{plugin}:MostRead"]
    assert d["points"][0]["bound_s"] >= d["points"][1]["bound_s"] * (1 - 1e-9)
    assert_one_line_error(hetkv("sweep", inst_path, "--hbm-scale", "1,x", "--out",
                                tmp_path / "b", check_rc=None), "--hbm-scale")
    assert_one_line_error(hetkv("sweep", inst_path, "--policy", "lru", "--param", "nope=1",
                                "--out", tmp_path / "b", check_rc=None), "'nope'")


# ----------------------------------------------------------------------------- 5. look-ahead

def test_lookahead_is_an_oracle_that_sees_the_next_steps():
    inst = load_instance(SMALL_LAYERED)
    for name in ("lookahead", "lookahead-share"):
        res = simulate(inst, get_policy(name, window=2))
        assert res.details["oracle"] is True and res.status == "feasible"
    from hetkv_opt.policies.lookahead import future_read_bytes
    from dataclasses import dataclass
    from hetkv_opt.policies import ScoredPolicy
    step = inst.epoch_labels["step"]
    checked = []

    @dataclass
    class Check(ScoredPolicy):
        """Compares the window helper with a brute-force sum."""

        uses_future = True

        def score(self, view):
            if view.epoch + 1 < view.num_epochs:
                got = future_read_bytes(view, 3)
                s0 = step[view.epoch + 1]
                ref = np.zeros(view.num_items)
                m = (inst.read_epoch > view.epoch) & (step[inst.read_epoch] < s0 + 3)
                np.add.at(ref, inst.read_item[m], inst.read_bytes[m])
                assert np.array_equal(got, ref)
                checked.append(view.epoch)
            return np.zeros(view.num_items)

    simulate(inst, Check())
    assert len(checked) == inst.num_epochs - 1


def test_a_forecast_policy_and_its_oracle_twin_share_the_rule():
    from dataclasses import dataclass
    from hetkv_opt.policies.lookahead import future_read_bytes

    @dataclass
    class Cheat(ForecastPolicy):
        """A forecast that is the truth: must give lookahead's schedule."""

        uses_future = True

        def forecast(self, view):
            return future_read_bytes(view, self.window, self.decay)

    inst = drift_instance(blocks=24, steps=12, seed=3)
    a = simulate(inst, Cheat(window=3))
    b = simulate(inst, get_policy("lookahead", window=3))
    assert a.schedule.equals(b.schedule)
    with pytest.raises(ValueError, match="window"):
        get_policy("lookahead", window=0)


# ----------------------------------------------------------------------------- 6. csv

def test_report_csv_and_parquet(tmp_path):
    s = tmp_path / "s.toml"
    s.write_text(textwrap.dedent(f"""
        schema = "hetkv-suite"
        schema_version = 1
        [[instances]]
        file = "{TINY}"
        [[methods]]
        method = "lp"
        [[methods]]
        method = "policy:belady"
        """))
    run_suite(load_suite_file(s), tmp_path / "o")
    import csv
    import io
    buf = io.StringIO()
    report(tmp_path / "o", fmt="csv", file=buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(rows[0]) == list(TIDY_COLUMNS) and len(rows) == 2
    bel = next(r for r in rows if r["method"] == "policy:belady")
    assert bel["oracle"] == "True" and float(bel["total_time_s"]) >= float(bel["best_bound_s"])
    report(tmp_path / "o", fmt="csv", out_path=tmp_path / "t.csv", file=io.StringIO())
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(tmp_path / "t.csv")
    assert df["total_time_s"].dtype.kind == "f" and len(df) == 2
    pytest.importorskip("pyarrow")
    report(tmp_path / "o", fmt="parquet", out_path=tmp_path / "t.parquet", file=io.StringIO())
    assert list(pd.read_parquet(tmp_path / "t.parquet").columns) == list(TIDY_COLUMNS)


def test_report_parquet_needs_an_output_file(tmp_path):
    assert_one_line_error(hetkv("report", tmp_path, "-f", "parquet", check_rc=None), "--out")


# ----------------------------------------------------------------------------- 7. schemas

SHIPPED = sorted(p for p in (ROOT / "instances").iterdir() if p.suffix in (".json", ".npz"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_instance_matches_the_schema(path):
    assert validate_file(path, "instance") == []
    assert validate_file(path) == []


def _as_json(doc):
    if isinstance(doc, dict):
        return {k: _as_json(v) for k, v in doc.items()}
    if isinstance(doc, np.ndarray):
        return doc.tolist()
    return doc


def test_the_schemas_are_valid_json_schema_and_agree_with_jsonschema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    for kind in ("instance", "schedule"):
        jsonschema.Draft202012Validator.check_schema(load_schema(kind))
    small = [p for p in SHIPPED if p.stat().st_size < 20_000]
    for p in small:
        jsonschema.validate(_as_json(file_document(p)), load_schema("instance"))
    sched = tmp_path / "s.npz"
    save_schedule(solve(tiny_instance(), "milp").schedule, sched, extra={"method": "milp"})
    for f in (sched, tmp_path / "s.json"):
        if f.suffix == ".json":
            save_schedule(solve(tiny_instance(), "milp").schedule, f)
        jsonschema.validate(_as_json(file_document(f)), load_schema("schedule"))
        assert validate_file(f) == []


@pytest.mark.parametrize("change, needle", [
    (lambda d: d.update(mode="both"), "mode"),
    (lambda d: d["tiers"][0].update(bandwidth_Bps=0), "tiers[0].bandwidth_Bps"),
    (lambda d: d["tiers"][1].update(capacity_bytes=-1), "tiers[1].capacity_bytes"),
    (lambda d: d["items"].update(size_bytes=[1, 0, 1]), "items.size_bytes[1]"),
    (lambda d: d["items"].update(colour=[1, 2, 3]), "items.colour"),
    (lambda d: d["reads"].pop("bytes"), "reads"),
    (lambda d: d.update(schema_version=2), "schema_version"),
    (lambda d: d["epochs"].update(min_time_s=[0, -1, 0]), "epochs.min_time_s[1]"),
])
def test_the_validator_and_jsonschema_both_refuse_bad_files(change, needle):
    from hetkv_opt.io.files import instance_to_dict
    d = instance_to_dict(tiny_instance())
    change(d)
    problems = validate(d, load_schema("instance"))
    assert problems and any(needle in p for p in problems), problems
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, load_schema("instance"))


def test_cli_schema_prints_and_checks(tmp_path):
    d = json.loads(hetkv("schema", "instance").stdout)
    assert d["properties"]["schema"]["const"] == "hetkv-instance"
    assert json.loads(hetkv("schema", "schedule").stdout)["title"].startswith("hetkv-schedule")
    assert "matches" in hetkv("schema", "instance", "--check", TINY).stdout
    bad = tmp_path / "bad.json"
    bad.write_text(TINY.read_text().replace('"bandwidth_Bps":4.0', '"bandwidth_Bps":-4.0')
                   .replace('"bandwidth_Bps": 4.0', '"bandwidth_Bps": -4.0'))
    proc = hetkv("schema", "instance", "--check", bad, check_rc=1)
    assert "tiers[0].bandwidth_Bps" in proc.stdout


def test_the_schemas_ship_as_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"hetkv_opt.io" = ["schemas/*.json"]' in text


# ----------------------------------------------------------------------------- 7. docs

TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".json", ".cfg"}


def test_nothing_cites_files_that_are_not_in_the_repository():
    bad = []
    for p in ROOT.rglob("*"):
        if not p.is_file() or p.suffix not in TEXT_SUFFIXES or p.name == "test_workbench.py":
            continue
        if any(part.startswith(".") or part.endswith(".egg-info") or part in (
                "build", "bench-results", "node_modules") for part in p.relative_to(ROOT).parts):
            continue
        text = p.read_text(encoding="utf-8", errors="replace")
        for name in ("MODEL.md", "PAPER.md"):
            for m in re.finditer(re.escape(name), text):
                before = text[max(0, m.start() - 5):m.start()]
                if not before.endswith("docs/") and not (ROOT / name).is_file():
                    bad.append(f"{p.relative_to(ROOT)}: {name}")
    assert bad == [], sorted(set(bad))


def test_docs_exist_and_every_docs_link_resolves():
    for name in ("model.md", "policies.md", "paper.md"):
        assert (ROOT / "docs" / name).is_file()
    model = (ROOT / "docs" / "model.md").read_text()
    for section in ("## 1. Entities", "## 2. Residency, moves and copies", "## 3. Capacity",
                    "## 4. The time of an epoch", "## 5. Bounds and the certificate",
                    "## 6. Instance and schedule files", "## 9. Where the time goes"):
        assert section in model
    refs = set()
    for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "hetkv_opt").rglob("*.py")]:
        refs |= set(re.findall(r"docs/[A-Za-z0-9_.-]+\.(?:md|png)", p.read_text(encoding="utf-8")))
    assert refs, "nothing cites docs/"
    for r in sorted(refs):
        assert (ROOT / r).is_file(), r
    for png in (ROOT / "docs").glob("*.png"):
        assert png.stat().st_size < 150_000, png


def test_every_instance_field_is_documented():
    model = (ROOT / "docs" / "model.md").read_text()
    schema = load_schema("instance")
    fields = [f"tiers[k].{k}" for k in schema["$defs"]["tier"]["properties"]]
    for block in ("items", "epochs"):
        fields += [f"{block}.{k}" for k in schema["properties"][block]["properties"]]
    fields += [k for k in schema["properties"] if k not in ("items", "epochs", "tiers",
                                                            "reads", "writes")]
    for f in fields:
        assert f"`{f}`" in model or f.split(".")[-1] in model, f


def test_a_policy_written_from_docs_policies_md_runs_end_to_end(tmp_path, monkeypatch):
    """The docs' policy file, its tests, its library run, then the CLI and a suite."""
    doc = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 3
    (tmp_path / "recently_hot.py").write_text(blocks[0])
    (tmp_path / "instances").symlink_to(ROOT / "instances")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ns = {"__name__": "docs"}
    try:
        for b in blocks[1:]:
            exec(compile(b, "docs/policies.md", "exec", dont_inherit=True), ns)
    finally:
        for name in ("RecentlyHot",):
            if name in {p.name for p in list_policies()}:
                unregister_policy(name)
        sys.modules.pop("recently_hot", None)
    proc = subprocess.run([sys.executable, "-m", "hetkv_opt", "simulate", str(SMALL_LAYERED),
                           "--policy", "recently_hot.py:RecentlyHot", "--param", "window=16",
                           "--bound", "aggregate", "--out", "rh.npz", "-f", "json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "feasible"
    proc = subprocess.run([sys.executable, "-m", "hetkv_opt", "explain", str(SMALL_LAYERED),
                           "rh.npz", "-f", "json", "--no-per-epoch"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert math.fsum(d["breakdown_s"].values()) == d["total_time_s"]
    toml = re.search(r"```toml\n(\[\[methods\]\].*?)```", doc, flags=re.S).group(1)
    suites = tmp_path / "a" / "b"
    suites.mkdir(parents=True)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "recently_hot.py").write_text(blocks[0])
    (suites / "rh.toml").write_text(f'schema = "hetkv-suite"\nschema_version = 1\n'
                                    f'[[instances]]\nfile = "{TINY}"\n' + toml)
    proc = subprocess.run([sys.executable, "-m", "hetkv_opt", "bench", str(suites / "rh.toml"),
                           "--out", "cells", "--quiet"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_help_lists_the_new_commands():
    text = hetkv("--help").stdout
    for cmd in ("explain", "sweep", "schema"):
        assert cmd in text
