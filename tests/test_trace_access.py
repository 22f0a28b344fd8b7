"""Recorded attention replayed as a workload access model (``--access trace``): the
position and layer maps, the reads against the rules applied by hand, the builder's
invariants with it, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, hetkv
from trace_helpers import hand_trace
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.io.files import instance_hash, load_instance
from hetkv_opt.solve import solve
from hetkv_opt.methods.starts import trivial_schedule
from hetkv_opt.trace.capture import save_trace
from hetkv_opt.workloads.trace_replay import TraceAccess, layer_rows, stretch_index
from hetkv_opt.trace.to_instance import select_kv_union, select_quest, select_topk, token_budget
from hetkv_opt.workloads.requests import Request, WorkloadParams, build_workload


def test_stretch_index_keeps_both_ends_and_order():
    assert stretch_index(7, 7).tolist() == list(range(7))
    assert stretch_index(1, 5).tolist() == [4]                  # the one token is the newest
    for c, ct in ((40, 9), (9, 40), (5, 1), (2, 2), (31299, 2121)):
        q = stretch_index(c, ct)
        assert q.shape == (c,) and q[0] == 0 and q[-1] == ct - 1, (c, ct)
        assert np.all(np.diff(q) >= 0) and q.min() >= 0 and q.max() < ct
        if c >= ct:                                              # stretching uses every trace token
            assert np.unique(q).size == ct
    assert stretch_index(4, 2).tolist() == [0, 0, 1, 1]


def test_layers_map_by_depth_or_by_rank():
    t = hand_trace(layers=(0, 1, 2))                 # a 3-layer model, every layer recorded
    assert layer_rows(t, np.arange(3), 3).tolist() == [0, 1, 2]
    assert layer_rows(t, np.array([0, 31]), 32).tolist() == [0, 2]      # first -> first, last -> last
    assert layer_rows(t, np.arange(6), 6).tolist() == [0, 0, 1, 1, 2, 2]
    t2 = hand_trace(layers=(0, 2))                   # layer 1 not recorded: nearest (ties: shallower)
    assert layer_rows(t2, np.arange(3), 3).tolist() == [0, 0, 1]
    assert layer_rows(t2, np.array([5, 9, 11, 12]), None).tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("rule", ["topk", "kv-union", "quest"])
def test_same_length_replay_is_the_rule_on_the_recorded_scores(rule):
    t = hand_trace(prompt_tokens=11, steps=5, layers=(0, 1, 2), seed=3)
    acc = TraceAccess((t,), rule=rule, sparsity=0.6, model_layers=3)
    B = 4
    fn = acc.for_request(0, Request(11, 5), np.array([0, 2]), B, None)
    for step in range(5):
        ctx = 11 + step + 1
        got = fn(step, ctx)
        assert got.shape == (2, -(-ctx // B))
        n = token_budget(ctx, 0.6)
        for j, row in enumerate((0, 2)):
            kv, hm = t.scores(step, row)
            mask = {"topk": lambda: select_topk(kv, n), "kv-union": lambda: select_kv_union(kv, n),
                    "quest": lambda: select_quest(hm, n, B)}[rule]()
            want = np.bincount(np.flatnonzero(mask) // B, minlength=got.shape[1])
            assert np.array_equal(got[j], want), (rule, step, j)


def test_longer_requests_keep_their_budget_and_wrap_around_the_trace():
    t = hand_trace(prompt_tokens=6, steps=3, seed=1)
    acc = TraceAccess((t,), rule="topk", sparsity=0.75, model_layers=3)
    fn = acc.for_request(0, Request(50, 7), np.array([0, 1, 2]), 16, None)
    for step in range(7):
        ctx = 50 + step + 1
        got = fn(step, ctx)
        filled = np.minimum(16, ctx - 16 * np.arange(got.shape[1]))
        assert np.all(got <= filled) and np.all(got >= 0)
        assert np.all(got.sum(axis=1) == token_budget(ctx, 0.75)), step
    # decode step 3 wraps to trace step 0: its scores, stretched to the request's context
    one = acc.for_request(0, Request(50, 7), np.array([2]), 1, None)
    for step in range(4):
        got = one(step, 51 + step)[0]
    kv, _ = t.scores(0, 1)                            # model layer 2 is recorded row 1
    q = stretch_index(54, 7)
    want = select_topk(kv[:, q], token_budget(54, 0.75)).astype(np.int64)
    assert np.array_equal(got, want)


def test_bad_options_name_the_option():
    t = hand_trace()
    with pytest.raises(ValueError, match="'rule'"):
        TraceAccess((t,), rule="h2o")
    with pytest.raises(ValueError, match="'sparsity'"):
        TraceAccess((t,), sparsity=1.0)
    with pytest.raises(ValueError, match="'trace'"):
        TraceAccess(())
    with pytest.raises(ValueError, match="'trace'"):
        WorkloadParams(access="trace").validate()
    with pytest.raises(ValueError, match="'trace'"):
        WorkloadParams(access="drift", traces=("x.npz",)).validate()


def test_a_trace_workload_is_valid_reproducible_and_solvable(tmp_path):
    traces = [tmp_path / "a.npz", tmp_path / "b.npz"]
    save_trace(hand_trace(prompt_tokens=20, steps=6, seed=0), traces[0])
    save_trace(hand_trace(prompt_tokens=9, steps=4, seed=1), traces[1])
    params = WorkloadParams(model="smollm2-135m", hardware="gh200-paper", layers=2, access="trace",
                            traces=tuple(map(str, traces)), rule="quest", sparsity=0.5,
                            requests=(Request(40, 8), Request(9, 4, 2), Request(20, 3, 1)),
                            hbm_fraction=0.3)
    inst = build_workload(params)
    assert instance_hash(inst) == instance_hash(build_workload(params))        # same input, same bytes
    acc = inst.metadata["access_model"]
    assert acc["name"] == "TraceAccess" and acc["rule"] == "quest" and acc["model_layers"] == 30
    assert [d["steps"] for d in acc["traces"]] == [6, 4] and all(len(d["sha256"]) == 64 for d in acc["traces"])
    # every read inside its item's life, at most the item's bytes
    re_, ri, rb = inst.read_epoch, inst.read_item, inst.read_bytes
    assert np.all(inst.birth[ri] <= re_) and np.all(re_ < inst.death[ri]) and np.all(rb <= inst.size_bytes[ri])
    kv = inst.item_labels["kind"][ri] == "kv"
    assert kv.any() and (inst.item_labels["kind"][ri] == "weight").any()
    ev = evaluate(inst, trivial_schedule(inst))
    assert ev.feasible
    res = solve(inst, "auto", time_limit_s=30)
    assert res.schedule is not None and res.bound_s <= res.total_time_s
    assert evaluate(inst, res.schedule).total_time_s == res.total_time_s


def test_cli_trace_access_defaults_lengths_from_the_trace(tmp_path):
    tr = tmp_path / "t.npz"
    save_trace(hand_trace(prompt_tokens=12, steps=5, seed=2), tr)
    out = tmp_path / "w.npz"
    d = json.loads(hetkv("generate", out, "--model", "smollm2-135m", "--access", "trace", "--trace", tr,
                         "--rule", "kv-union", "--layers", 3, "--sparsity", 0.7, "-f", "json").stdout)
    inst = load_instance(out)
    assert d["sha256"] == instance_hash(inst)
    want = build_workload(WorkloadParams(model="smollm2-135m", layers=3, access="trace", traces=(str(tr),),
                                         rule="kv-union", sparsity=0.7, requests=(Request(12, 5),)))
    assert instance_hash(want) == d["sha256"]
    assert inst.num_epochs == 5 * 3


def test_cli_trace_access_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "smollm2-135m", "--access", "trace",
                                "--prompt-tokens", 8, "--output-tokens", 2, check_rc=None), "--trace")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "smollm2-135m", "--access", "trace",
                                "--trace", bad, check_rc=None), "bad.npz")
    tr = tmp_path / "t.npz"
    save_trace(hand_trace(), tr)
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "smollm2-135m", "--access", "trace",
                                "--trace", tr, "--rule", "h2o", check_rc=None), "rule")
    assert not (tmp_path / "x.npz").exists()
