"""Trace statistics (hand-computed numbers) and the drift generator's calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetkv_opt.workloads.calibrate import fit_drift, load_params, save_params
from hetkv_opt.workloads.drift import drift_instance
from hetkv_opt.model.instance import ModelError, make_instance
from hetkv_opt.workloads.stats import instance_stats

from cli_helpers import assert_one_line_error, hetkv  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIERS = [{"name": "hbm", "capacity_bytes": 20, "bandwidth_Bps": 4.0},
         {"name": "dram", "capacity_bytes": None, "bandwidth_Bps": 1.0, "link_read_Bps": 1.0}]


def _reads(sets_by_epoch, nbytes=10):
    e, i = zip(*[(ep, it) for ep, s in enumerate(sets_by_epoch) for it in sorted(s)])
    return list(e), list(i), [nbytes] * len(e)


def test_one_layer_without_labels_by_hand():
    # 4 blocks alive throughout; read sets {0,1} {0,1} {0,2} {0,3}
    inst = make_instance(name="hand", tiers=TIERS, size_bytes=[10] * 4, num_epochs=4,
                         reads=_reads([{0, 1}, {0, 1}, {0, 2}, {0, 3}]))
    s = instance_stats(inst, window_steps=2)
    k = s["kv"]
    assert s["shape"]["layers"] == 1 and s["shape"]["steps"] == 4
    assert k["read_fraction"] == 0.5 and k["read_fraction_bytes"] == 0.5
    # Jaccard 2/2, 1/3, 1/3; turnover 0, 1/2, 1/2
    assert k["jaccard_mean"] == pytest.approx(5 / 9)
    assert k["jaccard_median"] == pytest.approx(1 / 3)
    assert k["turnover_mean"] == pytest.approx(1 / 3)
    # lag 1: of the 6 reads at t < 3, 4 are read again at t + 1; lag 2: 2 of 4
    assert k["reread_prob"] == {"1": pytest.approx(4 / 6), "2": 0.5, }
    # re-reads are all one step apart; 8 reads in 4 runs (0: 0-3, 1: 0-1, 2, 3)
    assert k["reref_distance_mean"] == 1.0 and k["run_length_mean"] == 2.0
    # the first block takes 4 of the 8 reads, the newest (3) one
    assert k["sink_mass"] == 0.5 and k["recency_mass"] == 0.125
    assert k["sink_read_prob"] == [1.0, 0.5, 0.25, 0.25]
    assert k["recent_read_prob"] == [0.25, 0.25, 0.5, 1.0]
    # top 10 % of 4 items = 1 item (block 0): half of the bytes
    assert k["concentration_top"] == 0.5 and k["concentration_top_reads"] == 0.5
    # windows of 2 steps: heavy hitters {0, 1} (2 reads each), then {0}: 1 of 2 stays
    assert k["hh_persistence"] == 0.5 and k["hh_window_pairs"] == 1
    # placement: 20 B of HBM; each step reads 2 blocks of 10 B
    p = s["placement"]
    assert p["hbm_kv_room_bytes"] == 20 and p["working_set_over_kv_room"] == 1.0
    assert p["aggregate_hbm_read_share"] == pytest.approx(0.8)


def _two_layer_instance():
    # items 0-2: layer 0 blocks 0-2; 3-5: layer 1 blocks 0-2; 6: weights (pinned, read always).
    # epoch = 2 x step + layer; blocks 2 and 5 are born at step 1.
    sets = [{0, 1}, {3, 4}, {0, 2}, {3, 4}, {0, 2}, {4, 5}]
    e, i, b = _reads(sets)
    e, i, b = e + list(range(6)), i + [6] * 6, b + [30] * 6
    order = sorted(range(len(e)), key=lambda k: (e[k], i[k]))
    return make_instance(
        name="two-layers", tiers=[dict(TIERS[0], capacity_bytes=100), TIERS[1]],
        size_bytes=[10] * 6 + [30], num_epochs=6, birth=[0, 0, 2, 0, 0, 3, 0],
        pinned_tier=[-1] * 6 + [0],
        reads=([e[k] for k in order], [i[k] for k in order], [b[k] for k in order]),
        item_labels={"kind": ["kv"] * 6 + ["weight"], "layer": [0, 0, 0, 1, 1, 1, 0],
                     "block": [0, 1, 2, 0, 1, 2, -1]},
        epoch_labels={"step": [0, 0, 1, 1, 2, 2], "layer": [0, 1, 0, 1, 0, 1]})


def test_layers_kinds_and_births_by_hand():
    s = instance_stats(_two_layer_instance())
    assert s["shape"]["layers"] == 2 and s["shape"]["steps"] == 3 and s["shape"]["kv_items"] == 6
    k = s["kv"]
    # alive 2, 3, 3 blocks per layer; 2 read each step
    assert k["read_fraction"] == pytest.approx(7 / 9)
    # layer 0: 1/3 then 1; layer 1: 1 then 1/3
    l0, l1 = s["per_layer"]
    assert l0["jaccard_mean"] == pytest.approx(2 / 3) == l1["jaccard_mean"]
    assert k["jaccard_mean"] == pytest.approx(2 / 3)
    # sinks: block 0 read 3 (layer 0) + 2 (layer 1) of 12 reads; the newest alive block
    # is read 3 times in layer 0 and twice in layer 1 (block 5 is new but unread at step 1)
    assert k["sink_mass"] == pytest.approx(5 / 12) and k["recency_mass"] == pytest.approx(5 / 12)
    assert l1["recent_read_prob"][0] == pytest.approx(2 / 3)
    # weights are counted apart: 6 x 30 B of 300 B read
    w = s["other_kinds"]["weight"]
    assert w["items"] == 1 and w["pinned"] == 1 and w["read_share"] == pytest.approx(0.6)
    # HBM room for KV = 100 - 30 pinned; a step reads 4 KV blocks (40 B) over both layers
    p = s["placement"]
    assert p["hbm_kv_room_bytes"] == 70
    assert p["step_working_set_bytes_mean"] == 40.0
    assert s["layer_spread"]["read_fraction"]["std"] == 0.0
    assert s["densest_layers"] == [0, 1]


def test_bad_options_are_refused():
    inst = drift_instance(blocks=8, steps=4)
    with pytest.raises(ValueError, match="window_steps"):
        instance_stats(inst, window_steps=0)
    with pytest.raises(ValueError, match="top_fraction"):
        instance_stats(inst, top_fraction=0)


def test_more_drift_memory_more_overlap():
    low, mid, high = (instance_stats(drift_instance(blocks=96, steps=48, phi=phi, seed=5))["kv"]
                      for phi in (0.2, 0.8, 0.98))
    assert low["jaccard_mean"] < mid["jaccard_mean"] < high["jaccard_mean"]
    assert low["reread_prob"]["1"] < mid["reread_prob"]["1"] < high["reread_prob"]["1"]
    assert low["turnover_mean"] > mid["turnover_mean"] > high["turnover_mean"]
    # persistent importance keeps heavy hitters
    flat, heavy = (instance_stats(drift_instance(blocks=96, steps=48, phi=0.5, persistence=p,
                                                 seed=5))["kv"] for p in (0.0, 3.0))
    assert flat["hh_persistence"] < heavy["hh_persistence"]
    assert flat["reread_prob"]["16"] < heavy["reread_prob"]["16"]


def test_calibration_recovers_known_parameters_deterministically(tmp_path):
    target = drift_instance(blocks=96, steps=64, sparsity=0.7, phi=0.8, persistence=1.0,
                            sinks=2, recent=1, seed=21)
    a = fit_drift(target)
    p = a.params
    # exact: the knobs a statistic pins down (sparsity: every value in [0.697, 0.700] gives
    # the same read counts on this shape); within a stated tolerance: the drift knobs
    assert (p.sinks, p.recent, p.blocks, p.steps) == (2, 1, 96, 64)
    assert 0.697 <= p.sparsity <= 0.700
    assert abs(p.phi - 0.8) <= 0.1
    assert abs(p.persistence - 1.0) <= 0.35
    assert a.distance < a.default_distance and a.distance < 0.02
    b = fit_drift(target)
    assert a.to_dict() == b.to_dict()
    path = tmp_path / "params.json"
    save_params(a, path)
    assert load_params(path) == p
    assert load_params(path, "paper_scale_params").steps == 10_240
    d = json.loads(path.read_text())
    assert d["schema"] == "hetkv-drift-params" and d["schema_version"] == 1
    assert "--phi" in d["command"] and "--blocks 2597" in d["command"]
    d["schema"] = "other"
    path.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="schema"):
        load_params(path)


def test_cli_stats_json_is_clean_and_missing_file_is_one_line(tmp_path):
    proc = hetkv("stats", ROOT / "instances" / "tiny.json", "-f", "json")
    d = json.loads(proc.stdout)
    assert d["schema"] == "hetkv-trace-stats" and d["kv"]["jaccard_mean"] == 0.25
    assert_one_line_error(hetkv("stats", tmp_path / "missing.npz", check_rc=None), "missing.npz")
    table = hetkv("stats", ROOT / "instances" / "drift-32x16.json", "--per-layer")
    assert "Jaccard" in table.stdout


def test_cli_calibrate_writes_params(tmp_path):
    out = tmp_path / "p.json"
    proc = hetkv("calibrate", ROOT / "instances" / "drift-32x16.json", "-f", "json", "--seeds", "1",
                 "--out", out, "-q")
    d = json.loads(proc.stdout)
    assert d["schema"] == "hetkv-drift-params" and d["command"].startswith("hetkv generate ")
    assert json.loads(out.read_text())["params"] == d["params"]
    assert_one_line_error(hetkv("calibrate", ROOT / "instances" / "tiny.json", "--out", tmp_path / "p.txt",
                                check_rc=None), "--out")


def test_readme_stats_commands_run(tmp_path):
    import re
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Trace statistics and calibration", 1)[1].split("\n## ", 1)[0]
    cmds = [ln.split("#", 1)[0].split() for ln in re.search(r"```\n(.*?)```", section, re.S)
            .group(1).splitlines() if ln.strip()]
    assert [c[:2] for c in cmds] == [["hetkv", "stats"], ["hetkv", "calibrate"]]
    try:
        import matplotlib  # noqa: F401
        has_plot = True
    except ImportError:     # without the 'plot' extra the plot option is dropped
        has_plot = False
        for c in cmds:
            if "--plot" in c:
                k = c.index("--plot")
                del c[k:k + 2]
    for c in cmds:
        args = [str(ROOT / a) if a.startswith("instances/") else
                str(tmp_path / a) if a.endswith((".json", ".png")) else a for a in c[1:]]
        hetkv(*args)
    assert load_params(tmp_path / "params.json").phi > 0.8
    if has_plot:
        assert (tmp_path / "fit.png").stat().st_size > 0
