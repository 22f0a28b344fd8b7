"""Hostile input, solver options and signals: always a clear answer, never a false proof,
nothing lost.

Every test here was written against the code before the fix and failed there.  Commands
run as a user runs them (a subprocess): an expected failure is one line on stderr and
exit code 2, an interruption exit 130 (SIGINT) or 143 (SIGTERM), an unexpected exception
one line and exit 1; ``-f json`` stdout is empty or one valid JSON document.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hetkv_opt.io.files import load_instance, load_schedule, save_instance
from hetkv_opt.milp.config import load_preset
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.model.instance import ModelError, make_instance, tiny_instance

from cli_helpers import assert_one_line_error, hetkv

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "instances" / "tiny.json"
DRIFT32 = ROOT / "instances" / "drift-32x16.json"
DRIFT256 = ROOT / "instances" / "drift-256x64.npz"
LAYERED = ROOT / "instances" / "smollm2-narrative-qa-topk-s60-L3x32.npz"
HW_PRESET = ROOT / "hetkv_opt" / "presets" / "hardware" / "gh200-paper.toml"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ----------------------------------------------------------------------------- helpers

def tiny_dict() -> dict:
    return json.loads(TINY.read_text())


def variant(tmp_path: Path, change, name: str = "v.json") -> Path:
    """The tiny instance with ``change(d)`` applied to its JSON object, written to a file."""
    d = tiny_dict()
    change(d)
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def start(*args, prelude: str = "", cwd=None):
    """``hetkv ARGS`` in the background (for signals)."""
    if prelude:
        cmd = [sys.executable, "-c", "import sys; " + prelude
               + "\nfrom hetkv_opt.cli.app import main; main(sys.argv[1:])"]
    else:
        cmd = [sys.executable, "-m", "hetkv_opt"]
    return subprocess.Popen([*cmd, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd)


def wait_for(cond, timeout: float = 60.0, step: float = 0.05) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("timed out waiting")
        time.sleep(step)


#: a prelude that makes the command's real work exit with code 99 (so a check that
#: should come first is seen to come first)
NO_SOLVE = "import hetkv_opt.solve as _s; _s.solve = lambda *a, **k: sys.exit(99)"
NO_DRIFT = ("import hetkv_opt.workloads.drift as _d; "
            "_d.drift_instance = lambda *a, **k: sys.exit(99)")
NO_BENCH = "import hetkv_opt.bench.runner as _r; _r.run_suite = lambda *a, **k: sys.exit(99)"
NO_FIT = "import hetkv_opt.workloads.calibrate as _c; _c.fit_drift = lambda *a, **k: sys.exit(99)"
NO_STATS = ("import hetkv_opt.workloads.stats as _st; "
            "_st.instance_stats = lambda *a, **k: sys.exit(99)")
NO_MATPLOTLIB = "sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None"


# ============================================================================= proofs

FORGED_PRESETS = [
    ("[highs]\nobjective_bound = 0.0\n", "objective_bound"),
    ("[highs]\nobjective_target = 1.0\n", "objective_target"),
    ("[highs]\nmip_rel_gap = 0.5\n", "mip_rel_gap"),
    ("[highs]\nmip_abs_gap = 1.0\n", "mip_abs_gap"),
    ("mip_rel_gap = 1.0\n", "mip_rel_gap"),
    ("mip_rel_gap = 2.0\n", "mip_rel_gap"),
    ("mip_rel_gap = nan\n", "mip_rel_gap"),
    ("mip_rel_gap = inf\n", "mip_rel_gap"),
    ("mip_rel_gap = true\n", "mip_rel_gap"),
    ("[highs]\nprimal_feasibility_tolerance = 0.1\n", "primal_feasibility_tolerance"),
    ("[highs]\ndual_feasibility_tolerance = 0.1\n", "dual_feasibility_tolerance"),
    ("[highs]\nmip_feasibility_tolerance = 0.5\n", "mip_feasibility_tolerance"),
    ("[highs]\nsmall_matrix_value = 0.5\n", "small_matrix_value"),
    ("threads = 100000\n", "threads"),
    ("threads = 0\n", "threads"),
    ("threads = 2.5\n", "threads"),
    ("[highs]\nthreads = 4\n", "threads"),
    ("[highs]\noutput_flag = true\n", "output_flag"),
    ("[highs]\nlog_to_console = true\n", "log_to_console"),
    ("[highs]\nwrite_solution_to_file = true\n", "write_solution_to_file"),
    ('[highs]\nsolution_file = "sol.txt"\n', "solution_file"),
    ('[highs]\nlog_file = "highs.log"\n', "log_file"),
    ("[highs]\nwrite_model_to_file = true\n", "write_model_to_file"),
    ("[highs]\ntime_limit = 5.0\n", "time_limit"),
    ("[highs]\nrandom_seed = 3\n", "random_seed"),
    ("[highs]\nno_such_option = 1\n", "no_such_option"),
    ('[highs]\npresolve = "sometimes"\n', "presolve"),
    ("[highs]\nmip_heuristic_effort = 2.0\n", "mip_heuristic_effort"),
    ("highs = 3\n", "highs"),
    ("seed = 1.5\n", "seed"),
    ("seed = -1\n", "seed"),
    ('rounding_cuts = "no"\n', "rounding_cuts"),
    ("description = 3\n", "description"),
    ('name = "x"\n', "name"),
]


@pytest.mark.parametrize("text,field", FORGED_PRESETS, ids=[f for _, f in FORGED_PRESETS])
def test_a_preset_can_only_set_what_cannot_change_a_proof(tmp_path, text, field):
    p = tmp_path / "mine.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=field) as info:
        load_preset(str(p))
    assert str(p) in str(info.value)


def test_a_forged_bound_preset_is_refused_and_safe_presets_still_solve(tmp_path):
    p = tmp_path / "forged.toml"
    p.write_text("[highs]\nobjective_bound = 0.0\n")
    proc = hetkv("solve", DRIFT32, "-m", "milp", "-f", "json", "-q", "--solver-preset", p,
                 check_rc=None)
    assert_one_line_error(proc, "objective_bound")
    assert proc.stdout == ""
    for name in ("exact", "fast", "ipm-lp", "pulp-highs", "cbc"):
        load_preset(name)
    p = tmp_path / "safe.toml"
    p.write_text('mip_rel_gap = 0.001\nthreads = 1\nseed = 3\nrounding_cuts = false\n'
                 '[highs]\nmip_heuristic_effort = 0.3\npresolve = "on"\n'
                 'mip_detect_symmetry = false\n')
    cfg = load_preset(str(p))
    assert cfg.highs["presolve"] == "on" and cfg.mip_rel_gap == 0.001 and cfg.seed == 3
    d = json.loads(hetkv("solve", TINY, "-m", "milp", "-f", "json", "-q",
                         "--solver-preset", p).stdout)
    assert d["status"] == "optimal"


def test_a_preset_path_that_is_not_a_toml_preset_says_so(tmp_path):
    proc = hetkv("solve", TINY, "--solver-preset", ROOT / "README.md", check_rc=None)
    assert_one_line_error(proc, "README.md", ".toml")
    assert "no such preset or file" not in proc.stderr
    proc = hetkv("solve", TINY, "--solver-preset", tmp_path, check_rc=None)
    assert_one_line_error(proc, "directory")
    proc = hetkv("solve", TINY, "--solver-preset", tmp_path / "missing.toml", check_rc=None)
    assert_one_line_error(proc, "missing.toml", "no such file")


BAD_NUMBERS = [
    (["solve", TINY, "-t", "nan"], "--time-limit"),
    (["solve", TINY, "--gap", "nan"], "--gap"),
    (["solve", TINY, "--gap", "inf"], "--gap"),
    (["solve", TINY, "--gap", "2"], "--gap"),
    (["solve", TINY, "--gap", "1"], "--gap"),
    (["solve", TINY, "--threads", "100000"], "--threads"),
    (["solve", TINY, "--seed", "-1"], "--seed"),
    (["bound", TINY, "-t", "nan"], "--time-limit"),
    (["simulate", TINY, "--policy", "lru", "--bound-time-limit", "0"], "--bound-time-limit"),
    (["simulate", TINY, "--policy", "lru", "--bound-time-limit", "nan"], "--bound-time-limit"),
]


@pytest.mark.parametrize("args,option", BAD_NUMBERS,
                         ids=[" ".join(map(str, a[2:])) + f" ({a[0]})" for a, _ in BAD_NUMBERS])
def test_command_line_numbers_that_cannot_mean_anything_are_refused(args, option):
    proc = hetkv(*args, "-f", "json", check_rc=None)
    assert_one_line_error(proc, option)
    assert proc.stdout == ""


def test_a_nan_time_limit_is_refused_and_an_infinite_one_means_no_limit():
    assert_one_line_error(hetkv("solve", TINY, "-t", "nan", check_rc=None), "--time-limit")
    d = json.loads(hetkv("solve", TINY, "-t", "inf", "-f", "json", "-q").stdout)
    assert d["status"] == "optimal"


# ============================================================================= files

def _no_items(d):
    d["items"] = {k: [] for k in d["items"]}
    d["reads"] = {"epoch": [], "item": [], "bytes": []}
    d["writes"] = {"epoch": [], "item": [], "bytes": []}


def test_an_instance_file_without_items_is_refused(tmp_path):
    for name in ("none.json", "none.npz"):
        p = tmp_path / name
        save_instance(make_instance(name="none", tiers=[{"name": "hbm", "capacity_bytes": None,
                                                         "bandwidth_Bps": 1.0}],
                                    size_bytes=[], num_epochs=2), p)
        with pytest.raises(ModelError, match="items.size_bytes.*no items"):
            load_instance(p)


@pytest.mark.parametrize("cmd", [["solve", "-m", "milp"], ["solve", "-m", "flow"],
                                 ["solve", "-m", "rolling"], ["solve", "-m", "auto"],
                                 ["simulate", "--policy", "lru"], ["stats"], ["info"], ["bound"]],
                         ids=lambda c: " ".join(c))
def test_an_instance_without_items_is_one_line_everywhere(tmp_path, cmd):
    p = variant(tmp_path, _no_items)
    proc = hetkv(cmd[0], p, *cmd[1:], "-f", "json", check_rc=None)
    assert_one_line_error(proc, str(p), "items.size_bytes", "no items")


HUGE_NUMBERS = [
    (lambda d: d["tiers"][0].__setitem__("capacity_bytes", 2 ** 70), "tiers[0].capacity_bytes"),
    (lambda d: d["tiers"][1].__setitem__("capacity_bytes", 2 ** 62), "tiers[1].capacity_bytes"),
    (lambda d: d["items"].__setitem__("size_bytes", [2 ** 62] * 3), "items.size_bytes"),
    (lambda d: d["items"].__setitem__("size_bytes", [2 ** 52] * 3), "items.size_bytes"),
    (lambda d: d["tiers"][1].__setitem__("bandwidth_Bps", 5e-324), "tiers[1].bandwidth_Bps"),
    (lambda d: d["tiers"][0].__setitem__("bandwidth_Bps", 1e300), "tiers[0].bandwidth_Bps"),
    (lambda d: d["tiers"][1].__setitem__("link_read_Bps", 5e-324), "tiers[1].link_read_Bps"),
    (lambda d: d["tiers"][1].__setitem__("link_write_Bps", 1e-320), "tiers[1].link_write_Bps"),
    (lambda d: d["epochs"].__setitem__("min_time_s", [1e308, 0.0, 0.0]), "epochs.min_time_s"),
    (lambda d: d["epochs"].__setitem__("min_time_s", [5e-324, 0.0, 0.0]), "epochs.min_time_s"),
]


#: the first change of each field
HUGE = {}
for _change, _field in HUGE_NUMBERS:
    HUGE.setdefault(_field, _change)


@pytest.mark.parametrize("change,field", HUGE_NUMBERS, ids=[f for _, f in HUGE_NUMBERS])
def test_numbers_whose_sums_or_times_do_not_fit_are_refused(tmp_path, change, field):
    p = variant(tmp_path, change)
    with pytest.raises(ModelError) as info:
        load_instance(p)
    assert info.value.field == field, str(info.value)


@pytest.mark.parametrize("change,field,cmd", [
    (HUGE["tiers[0].capacity_bytes"], "capacity_bytes", ["solve", "-m", "lagrangian"]),
    (HUGE["tiers[0].capacity_bytes"], "capacity_bytes", ["bound"]),
    (HUGE["items.size_bytes"], "size_bytes", ["info"]),
    (HUGE["items.size_bytes"], "size_bytes", ["bound"]),
    (HUGE["tiers[1].bandwidth_Bps"], "bandwidth_Bps", ["solve", "-m", "milp"]),
    (HUGE["tiers[1].bandwidth_Bps"], "bandwidth_Bps", ["solve", "-m", "lagrangian"]),
    (HUGE["tiers[1].bandwidth_Bps"], "bandwidth_Bps", ["solve", "-m", "auto"]),
    (HUGE["epochs.min_time_s"], "min_time_s", ["solve", "-m", "milp"]),
    (HUGE["epochs.min_time_s"], "min_time_s", ["solve", "-m", "lagrangian"]),
], ids=lambda x: x if isinstance(x, str) else (" ".join(x) if isinstance(x, list) else None))
def test_numbers_that_do_not_fit_are_one_line_in_the_cli(tmp_path, change, field, cmd):
    p = variant(tmp_path, change)
    proc = hetkv(cmd[0], p, *cmd[1:], "-f", "json", check_rc=None)
    assert_one_line_error(proc, str(p), field)
    assert proc.stdout == ""


@pytest.mark.parametrize("count", [10 ** 9, 2 ** 40])
def test_a_huge_epoch_count_is_refused_before_allocating(tmp_path, count):
    def change(d):
        d["epochs"] = {"count": count}
        d["items"] = {"size_bytes": [1, 1, 1]}
    p = variant(tmp_path, change)
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as info:
        load_instance(p)
    assert info.value.field == "epochs.count" and time.perf_counter() - t0 < 5
    assert_one_line_error(hetkv("info", p, check_rc=None), "epochs.count")


def test_generate_refuses_a_drift_instance_too_big_to_build(tmp_path):
    proc = hetkv("generate", tmp_path / "big.npz", "--blocks", 10_000_000, "--steps", 1000,
                 check_rc=None)
    assert_one_line_error(proc, "blocks")
    assert not (tmp_path / "big.npz").exists()


def test_a_memory_error_anywhere_is_one_line_exit_2():
    prelude = ("import hetkv_opt.model.terms as _t\n"
               "def _oom(*a, **k):\n    raise MemoryError()\n"
               "_t.aggregate_bound_s = _oom")
    proc = hetkv("info", TINY, prelude=prelude, check_rc=None)
    assert_one_line_error(proc, "memory")


WRONG_TYPES = [
    (lambda d: d["items"].__setitem__("size_bytes", [True, 1, 1]), "items.size_bytes"),
    (lambda d: d["items"].__setitem__("pinned_tier", [False, -1, -1]), "items.pinned_tier"),
    (lambda d: d["epochs"].__setitem__("min_time_s", ["0", 0, 0]), "epochs.min_time_s"),
    (lambda d: d["epochs"].__setitem__("min_time_s", [False, 0, 0]), "epochs.min_time_s"),
    (lambda d: d["reads"].__setitem__("bytes", [1, 1, 1, 1, True]), "reads.bytes"),
]


@pytest.mark.parametrize("change,field", WRONG_TYPES, ids=[f for _, f in WRONG_TYPES])
def test_booleans_and_strings_are_not_numbers(tmp_path, change, field):
    p = variant(tmp_path, change)
    with pytest.raises(ModelError) as info:
        load_instance(p)
    assert info.value.field == field, str(info.value)


def test_a_boolean_tier_in_a_schedule_is_refused(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"schema": "hetkv-schedule", "schema_version": 1, "instance": "tiny",
                             "moves": {"item": [0, 1, 2], "epoch": [0, 0, 1],
                                       "tier": [0, True, 0]}}))
    with pytest.raises(ModelError, match="moves.tier"):
        load_schedule(p)


def test_duplicate_json_keys_are_refused(tmp_path):
    text = TINY.read_text()
    assert '"capacity_bytes":2,' in text
    p = tmp_path / "dup.json"
    p.write_text(text.replace('"capacity_bytes":2,', '"capacity_bytes":2,"capacity_bytes":null,'))
    with pytest.raises(ModelError, match="duplicate key 'capacity_bytes'"):
        load_instance(p)
    assert_one_line_error(hetkv("info", p, check_rc=None), "duplicate key 'capacity_bytes'")
    s = tmp_path / "dup-s.json"
    s.write_text('{"schema": "hetkv-schedule", "schema_version": 1, "instance": "tiny", '
                 '"instance": "other", "moves": {"item": [], "epoch": [], "tier": []}}')
    with pytest.raises(ModelError, match="duplicate key 'instance'"):
        load_schedule(s)


def test_a_trailing_comma_is_not_called_truncated(tmp_path):
    p = tmp_path / "comma.json"
    p.write_text(TINY.read_text().rstrip().removesuffix("}") + ",}\n")
    with pytest.raises(ModelError) as info:
        load_instance(p)
    assert "trailing comma" in str(info.value) and "truncated" not in str(info.value)
    q = tmp_path / "comma2.json"
    q.write_text(TINY.read_text().replace('"size_bytes":[1,1,1]', '"size_bytes":[1,1,1,]'))
    with pytest.raises(ModelError, match="trailing comma"):
        load_instance(q)


def test_what_is_wrong_with_a_path_is_said(tmp_path):
    proc = hetkv("solve", ROOT / "instances", check_rc=None)
    assert_one_line_error(proc, "is a directory")
    proc = hetkv("info", "/dev/null", check_rc=None)
    assert_one_line_error(proc, "/dev/null", "not a regular file")
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert_one_line_error(hetkv("info", empty, check_rc=None), "empty file")
    with pytest.raises(ModelError, match="is a directory"):
        load_schedule(tmp_path)


def test_generate_drift_takes_a_hardware_file(tmp_path):
    copy = tmp_path / "my-gh200.toml"
    shutil.copy(HW_PRESET, copy)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    hetkv("generate", a, "--blocks", 8, "--steps", 4, "--hardware", copy)
    hetkv("generate", b, "--blocks", 8, "--steps", 4, "--hardware", "gh200-paper")
    assert load_instance(a).tiers == load_instance(b).tiers
    assert_one_line_error(hetkv("generate", tmp_path / "c.json", "--hardware",
                                tmp_path / "nope.toml", check_rc=None), "nope.toml")


# ============================================================================= output paths

def _suite(tmp_path: Path, *instances: Path, method: str = "milp", time_limit_s: float = 60) -> Path:
    p = tmp_path / "s.toml"
    body = "".join(f'[[instances]]\nfile = "{i}"\n\n' for i in instances)
    p.write_text(f'schema = "hetkv-suite"\nschema_version = 1\nseed = 0\n\n{body}'
                 f'[[methods]]\nmethod = "{method}"\ntime_limit_s = {time_limit_s}\n')
    return p


def _out_cases(tmp_path: Path):
    """(argv, prelude) for solve, generate and bench writing to ``target``."""
    suite = _suite(tmp_path, TINY)
    return {
        "solve": lambda target: (["solve", TINY, "--out", target, "-q"], NO_SOLVE),
        "generate": lambda target: (["generate", target, "--blocks", 8, "--steps", 4], NO_DRIFT),
        "bench": lambda target: (["bench", suite, "--out", target, "-q"], NO_BENCH),
    }


def _sys_is_read_only() -> bool:
    try:
        Path("/sys/hetkv-probe.json").open("w").close()
    except OSError:
        return True
    os.unlink("/sys/hetkv-probe.json")   # pragma: no cover - a writable /sys
    return False


@pytest.mark.parametrize("command", ["solve", "generate", "bench"])
@pytest.mark.parametrize("where", ["proc", "read-only sys", "directory", "file-as-folder"])
def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path, command, where):
    case = _out_cases(tmp_path)[command]
    folder = tmp_path / "somewhere.json"
    folder.mkdir()
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    if where == "proc":
        target = Path("/proc/hetkv-test/out.json") if command != "bench" else Path("/proc/hetkv-test")
    elif where == "read-only sys":            # read-only even for root
        if not _sys_is_read_only():
            pytest.skip("/sys is writable here")
        target = Path("/sys/hetkv-test.json") if command != "bench" else Path("/sys/hetkv-test")
    elif where == "directory":
        target = folder if command != "bench" else plain   # bench writes a folder
    else:
        target = plain / "out.json"                        # a file where a folder should be
    args, prelude = case(target)
    proc = hetkv(*args, prelude=prelude, check_rc=None)
    assert_one_line_error(proc, str(target if where != "file-as-folder" else plain))


@pytest.mark.skipif(IS_ROOT, reason="root may write into a read-only folder")
@pytest.mark.parametrize("command", ["solve", "generate", "bench"])
def test_an_output_in_a_read_only_folder_is_refused_before_the_work(tmp_path, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        args, prelude = _out_cases(tmp_path)[command](ro / ("out" if command == "bench" else "out.json"))
        assert_one_line_error(hetkv(*args, prelude=prelude, check_rc=None), str(ro))
    finally:
        ro.chmod(0o755)


def test_a_missing_output_folder_is_made_and_said(tmp_path):
    out = tmp_path / "new" / "sub" / "s.json"
    proc = hetkv("solve", TINY, "--out", out, "-q")
    assert out.is_file() and "created folder" in proc.stderr and str(out.parent) in proc.stderr


def test_solve_says_what_it_wrote_and_refuses_other_suffixes(tmp_path):
    out = tmp_path / "s.json"
    proc = hetkv("solve", TINY, "-o", out, "-q")
    assert f"wrote {out}" in proc.stderr
    proc = hetkv("solve", TINY, "-o", tmp_path / "s.txt", "-q", prelude=NO_SOLVE, check_rc=None)
    assert_one_line_error(proc, "s.txt", ".json or .npz")


def test_no_command_overwrites_its_input(tmp_path):
    x = tmp_path / "x.json"
    shutil.copy(TINY, x)
    before = x.read_bytes()
    assert_one_line_error(hetkv("solve", x, "--out", x, "-q", prelude=NO_SOLVE, check_rc=None),
                          "overwrite", str(x))
    assert_one_line_error(hetkv("solve", x, "--out", tmp_path / "." / "x.json", "-q",
                                check_rc=None), "overwrite")
    sched = tmp_path / "w.json"
    hetkv("solve", x, "--out", sched, "-q")
    assert_one_line_error(hetkv("solve", x, "--warm-start", sched, "--out", sched, "-q",
                                check_rc=None), "overwrite")
    npz = tmp_path / "x.npz"
    save_instance(tiny_instance(), npz)
    npz_before = npz.read_bytes()
    assert_one_line_error(hetkv("bound", npz, "--cert", npz, check_rc=None), "overwrite")
    assert_one_line_error(hetkv("calibrate", x, "--out", x, prelude=NO_FIT, check_rc=None),
                          "overwrite")
    assert x.read_bytes() == before and npz.read_bytes() == npz_before


def test_simulate_does_not_overwrite_its_input(tmp_path):
    """(cli/policies.py: needs the two lines given in the report)"""
    x = tmp_path / "x.json"
    shutil.copy(TINY, x)
    before = x.read_bytes()
    assert_one_line_error(hetkv("simulate", x, "--policy", "lru", "--out", x, check_rc=None),
                          "overwrite")
    assert x.read_bytes() == before


# ============================================================================= signals

def test_ctrl_c_in_bench_stores_nothing_stops_the_suite_and_the_rerun_completes_it(tmp_path):
    suite = _suite(tmp_path, TINY, DRIFT256, time_limit_s=4)
    out = tmp_path / "out"
    proc = start("bench", suite, "--out", out, "-q")
    wait_for(lambda: (out / "tiny__milp.json").is_file())
    time.sleep(1.5)                         # inside drift-256x64's MILP (4 s)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["tiny__milp.json"]
    again = hetkv("bench", suite, "--out", out, "-q")
    assert "1 run, 1 already done" in again.stderr
    cell = json.loads((out / "drift-256x64__milp.json").read_text())
    assert cell["result"]["status"] in ("feasible", "optimal")


@pytest.mark.parametrize("method", ["milp", "auto"])
def test_ctrl_c_in_solve_prints_the_best_so_far_and_exits_130(method):
    proc = start("solve", DRIFT256, "-m", method, "-t", 120, "-q", "-f", "json")
    time.sleep(3.0)                         # the import, the build, then branch and bound
    t_sig = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert time.monotonic() - t_sig < 20    # Ctrl-C stops the solve, no retry runs on
    d = strict_json(stdout)
    assert d["status"] in ("feasible", "bound_only") and "interrupted" in d["message"]
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_ctrl_c_in_bound_writes_no_certificate_and_exits_130(tmp_path):
    cert = tmp_path / "c.npz"
    prelude = ("import time, hetkv_opt.bounds.lagrangian as _l; "
               "_l.lagrangian_bound = lambda *a, **k: time.sleep(120)")
    proc = start("bound", TINY, "--cert", cert, prelude=prelude)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert not cert.exists() and "Traceback" not in stderr


def test_sigterm_in_generate_leaves_no_spool_and_no_file(tmp_path):
    out = tmp_path / "paper.npz"
    proc = start("generate", out, "--preset-workload", "paper", "-q")
    try:
        wait_for(lambda: any(tmp_path.glob(".paper.npz.spool.*")), timeout=120)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, (stdout, stderr)
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    assert "Traceback" not in stderr


# ============================================================================= small things

def test_errors_are_printed_without_markup_or_emoji(tmp_path):
    proc = hetkv("generate", tmp_path / "w.npz", "--model", "smollm2-135m",
                 "--prompt-tokens", "uniform:A:B", check_rc=None)
    assert_one_line_error(proc, "uniform:A:B")
    proc = hetkv("info", tmp_path / "[bold]x:smile:.json", check_rc=None)
    assert_one_line_error(proc, "[bold]x:smile:.json")


def test_evaluate_refuses_another_instances_schedule(tmp_path):
    sched = tmp_path / "tiny-s.json"
    hetkv("solve", TINY, "--out", sched, "-q")
    proc = hetkv("evaluate", DRIFT32, sched, "-f", "json", check_rc=None)
    assert_one_line_error(proc, "tiny", "drift-32x16-s1")
    assert proc.stdout == ""
    # the same name, another shape (a fourth item the schedule knows nothing of)
    bigger = variant(tmp_path, lambda d: d["items"].update(
        size_bytes=[1, 1, 1, 1], birth=[0, 0, 1, 0], death=[3, 3, 3, 3],
        pinned_tier=[-1] * 4, initial_tier=[-1] * 4))
    assert load_instance(bigger).name == "tiny"
    proc = hetkv("evaluate", bigger, sched, check_rc=None)
    assert_one_line_error(proc, "4 items")
    # the library's summary of a broken schedule names no empty term
    ev = evaluate(load_instance(DRIFT32), load_schedule(sched))
    assert not ev.feasible and "" not in ev.summary()["binding_epochs"]


def test_per_epoch_is_shown_in_table_mode(tmp_path):
    sched = tmp_path / "s.json"
    hetkv("solve", TINY, "--out", sched, "-q")
    proc = hetkv("evaluate", TINY, sched, "--per-epoch")
    assert "per epoch" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if "link_read:dram" in ln or "device:" in ln
            or "compute" in ln]
    assert len(rows) >= 3, proc.stdout


def test_tables_are_not_cut_at_80_columns():
    proc = hetkv("stats", LAYERED, "--per-layer")
    assert "…" not in proc.stdout and "Jaccard" in proc.stdout
    shape = [ln for ln in proc.stdout.splitlines() if "KV items of" in ln]
    assert len(shape) == 1 and "epochs" in shape[0]


def test_plot_without_matplotlib_fails_before_the_work(tmp_path):
    params = tmp_path / "p.json"
    proc = hetkv("calibrate", TINY, "--out", params, "--plot", tmp_path / "f.png",
                 prelude=NO_MATPLOTLIB + "\n" + NO_FIT, check_rc=None)
    assert_one_line_error(proc, "matplotlib")
    assert not params.exists()
    proc = hetkv("stats", TINY, "--plot", tmp_path / "s.png",
                 prelude=NO_MATPLOTLIB + "\n" + NO_STATS, check_rc=None)
    assert_one_line_error(proc, "matplotlib")


@pytest.mark.parametrize("suffix", [".mps", ".lp"])
def test_the_exported_model_records_its_time_unit(tmp_path, suffix):
    import highspy
    p = tmp_path / f"m{suffix}"
    proc = hetkv("export", TINY, "--to", p)
    t0 = float(proc.stderr.split("objective = T / ")[1].split()[0])
    text = p.read_text()
    head = "\n".join(text.splitlines()[:5])
    assert "time unit" in head and f"{t0:.9g}" in head
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(p)) == highspy.HighsStatus.kOk
    assert h.getNumCol() > 0
    assert "time unit" in hetkv("export", "--help").stdout


# ============================================================================= the last net

BOOM = ("import hetkv_opt.model.terms as _t\n"
        "def _boom(*a, **k):\n    raise RuntimeError('boom')\n"
        "_t.aggregate_bound_s = _boom")


def test_an_unexpected_exception_is_one_line_exit_1_with_a_debug_hint():
    proc = hetkv("info", TINY, prelude=BOOM, check_rc=None)
    assert proc.returncode == 1, proc.stderr
    no_traceback(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "boom" in lines[0] and "--debug" in lines[0]
    proc = hetkv("--debug", "info", TINY, prelude=BOOM, check_rc=None)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert "--debug" in hetkv("--help").stdout + hetkv("--help").stderr


def test_json_stdout_is_json_even_when_a_number_is_not_finite():
    prelude = ("import hetkv_opt.model.terms as _t\n"
               "_t.aggregate_bound_s = lambda *a, **k: float('inf')")
    proc = hetkv("info", TINY, "-f", "json", prelude=prelude, check_rc=None)
    assert proc.returncode == 0, proc.stderr
    assert strict_json(proc.stdout)["aggregate_bound_s"] is None
