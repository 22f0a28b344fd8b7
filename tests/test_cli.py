"""The hetkv command, run as a user runs it (a subprocess: stdout must be clean JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetkv_opt.model.instance import make_instance
from hetkv_opt.io.files import load_instance, load_schedule, save_instance
from hetkv_opt.model.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.json"

from cli_helpers import assert_one_line_error, hetkv  # noqa: E402


def test_solve_json_is_clean_and_schedule_round_trips(tmp_path):
    out = tmp_path / "s.json"
    proc = hetkv("solve", TINY, "--format", "json", "--out", out, "--quiet")
    d = json.loads(proc.stdout)          # the whole of stdout is one JSON object
    for key in ("status", "method", "total_time_s", "bound_s", "bound_method", "gap",
                "runtime_s", "throughput_steps_per_s"):
        assert key in d
    assert d["status"] == "optimal" and d["method"] == "auto"
    assert d["total_time_s"] == pytest.approx(2.0)
    assert d["bound_s"] <= d["total_time_s"] and d["bound_s"] >= 2.0 * (1 - 1e-5)
    assert d["throughput_steps_per_s"] == pytest.approx(3 / 2.0)
    sched = load_schedule(out)
    assert evaluate(load_instance(TINY), sched).total_time_s == pytest.approx(2.0)
    ev = json.loads(hetkv("evaluate", TINY, out, "--format", "json", "--per-epoch").stdout)
    assert ev["feasible"] and ev["epoch_time_s"] == pytest.approx([1.0, 0.5, 0.5])


@pytest.mark.parametrize("method,status", [("lp", "bound_only"), ("aggregate", "bound_only"),
                                           ("milp", "optimal")])
def test_solve_methods(method, status):
    d = json.loads(hetkv("solve", TINY, "-m", method, "-f", "json", "-q").stdout)
    assert d["status"] == status and d["method"] == method
    if method == "aggregate":
        assert d["bound_s"] == pytest.approx(1.0) and d["total_time_s"] is None
    if method == "lp":
        assert 1.0 <= d["bound_s"] <= 2.0


def test_table_output_names_the_numbers():
    proc = hetkv("solve", TINY, "-q")
    assert "status" in proc.stdout and "optimal" in proc.stdout and "bound" in proc.stdout


def test_infeasible_instance_says_why(tmp_path):
    inst = make_instance(name="full", tiers=[{"name": "hbm", "capacity_bytes": 1, "bandwidth_Bps": 1.0},
                                             {"name": "dram", "capacity_bytes": 1, "bandwidth_Bps": 1.0}],
                         size_bytes=[1, 1, 1], num_epochs=2, reads=([0], [0], [1]))
    p = tmp_path / "full.json"
    save_instance(inst, p)
    d = json.loads(hetkv("solve", p, "-f", "json", "-q").stdout)
    assert d["status"] == "infeasible" and d["total_time_s"] is None
    assert "epoch 0" in d["message"]


@pytest.mark.parametrize("content,needles", [
    ('{"schema": "hetkv-instance", "schema_version": 7}', ["schema_version", "newer"]),
    ('{"schema": "hetkv-instance"', ["truncated JSON"]),
    ("not json at all", ["not valid JSON"]),
    ('{"schema": "hetkv-instance", "schema_version": 1, "name": "x", "tiers": []}', ["items", "missing"]),
])
def test_bad_instance_files_are_one_line(tmp_path, content, needles):
    p = tmp_path / "bad.json"
    p.write_text(content)
    for cmd in (["solve", p], ["info", p], ["export", p, "--to", tmp_path / "m.mps"]):
        assert_one_line_error(hetkv(*cmd, check_rc=None), str(p), *needles)


def test_bad_options_are_one_line(tmp_path):
    assert_one_line_error(hetkv("solve", TINY, "--time-limit", "-1", check_rc=None), "--time-limit")
    assert_one_line_error(hetkv("solve", TINY, "--method", "bogus", check_rc=None), "--method")
    assert_one_line_error(hetkv("solve", TINY, "--solver-preset", "nope", check_rc=None), "nope")
    assert_one_line_error(hetkv("solve", tmp_path / "missing.json", check_rc=None), "no such file")
    assert_one_line_error(hetkv("generate", tmp_path / "g.json", "--sparsity", "1.5", check_rc=None),
                          "sparsity")
    assert_one_line_error(hetkv("export", TINY, "--to", tmp_path / "m.txt", check_rc=None), ".mps")
    assert_one_line_error(hetkv("evaluate", TINY, TINY, check_rc=None), "hetkv-schedule")


def test_evaluate_reports_infeasible_schedule(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "hetkv-schedule", "schema_version": 1, "instance": "tiny",
                               "moves": {"item": [0, 1, 2], "epoch": [0, 0, 1], "tier": [0, 0, 0]}}))
    proc = hetkv("evaluate", TINY, bad, "-f", "json", check_rc=1)
    d = json.loads(proc.stdout)
    assert not d["feasible"] and any("tier hbm holds 3 B > 2 B" in v for v in d["violations"])


def test_generate_is_deterministic_and_info_agrees(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.npz"
    for p in (a, b, c):
        hetkv("generate", p, "--blocks", 16, "--steps", 8, "--seed", 5, "-f", "json")
    assert a.read_bytes() == b.read_bytes()
    ia = json.loads(hetkv("info", a, "-f", "json").stdout)
    ic = json.loads(hetkv("info", c, "-f", "json").stdout)
    assert ia["sha256"] == ic["sha256"] and ia["items"] == 16 and ia["epochs"] == 8
    other = tmp_path / "d.json"
    hetkv("generate", other, "--blocks", 16, "--steps", 8, "--seed", 6, "-f", "json")
    assert other.read_bytes() != a.read_bytes()


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_export_writes_named_model(tmp_path, suffix):
    p = tmp_path / f"model{suffix}"
    hetkv("export", TINY, "--to", p)
    text = p.read_text()
    assert "tau" in text and "cap" in text


def test_solver_presets_listed():
    rows = json.loads(hetkv("solver-presets", "-f", "json").stdout)
    names = {r["name"] for r in rows}
    assert {"exact", "fast", "ipm-lp", "cbc"} <= names
    d = json.loads(hetkv("solve", TINY, "--solver-preset", "exact", "-f", "json", "-q").stdout)
    assert d["status"] == "optimal" and d["gap"] <= 1e-5


def test_warm_start_from_file(tmp_path):
    out = tmp_path / "s.json"
    hetkv("solve", TINY, "-m", "milp", "--out", out, "-q")
    d = json.loads(hetkv("solve", TINY, "-m", "milp", "--warm-start", out, "-f", "json", "-q").stdout)
    assert d["status"] == "optimal" and d["total_time_s"] == pytest.approx(2.0)


def test_error_messages_keep_their_brackets():
    """An error line is plain text: brackets (field names, extras) are not read as markup."""
    import typer
    from rich.console import Console

    import hetkv_opt.cli.common as cli_mod
    console = Console(record=True, width=200)
    old = cli_mod.err
    cli_mod.err = console
    try:
        with pytest.raises(typer.Exit) as exc:
            cli_mod.fail("tiers[0].capacity_bytes: install '.[trace]'")
    finally:
        cli_mod.err = old
    assert exc.value.exit_code == 2
    assert "error: tiers[0].capacity_bytes: install '.[trace]'" in console.export_text()


def test_method_choices_are_the_solve_methods():
    """``--method`` offers exactly the keys of hetkv_opt.solve.METHODS, in their order (the
    choices are made from the dict, not kept by hand)."""
    import re
    import typing

    from hetkv_opt.cli.solve import Method, solve
    from hetkv_opt.solve import METHODS
    assert typing.get_type_hints(solve)["method"] is Method
    assert [m.value for m in Method] == list(METHODS)
    err = hetkv("solve", TINY, "-m", "bogus", check_rc=2).stderr
    offered = err.split("is not one of", 1)[1].split("(see", 1)[0]
    assert re.findall(r"'([^']+)'", offered) == list(METHODS)
