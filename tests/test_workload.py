"""The workload builder: the invariants it promises, streaming, determinism, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.io.files import instance_hash, load_instance
from hetkv_opt.presets import load_hardware, load_model
from hetkv_opt.workloads.requests import (Request, build_workload,
                                make_requests, paper_workload_params, plan_workload, write_workload)

from cli_helpers import assert_one_line_error, hetkv  # noqa: E402

CASES = {
    "dense-batch": dict(model="smollm2-135m", layers=3, block_tokens=8, sparsity=0.5,
                        requests=[Request(37, 12), Request(8, 20, 3), Request(0, 5, 9)]),
    "moe": dict(model="mixtral-8x7b", hardware="gh200-cxl", layers=2, block_tokens=16,
                requests=[Request(50, 9), Request(20, 6, 2)], compute_floor=True),
    "paper-low": dict(model="llama-3.1-8b", layers=(1, 7), access="paper", variation="low",
                      requests=[Request(70, 10)], weights="free", hbm_fraction=0.25),
    "paper-high": dict(model="llama-3.1-8b", layers=2, access="paper", variation="high",
                       requests=[Request(33, 7), Request(5, 7, 1)], weights="none"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request):
    kw = CASES[request.param]
    return kw, build_workload(**kw)


def _expected_context(reqs):
    """(request, step) -> context tokens after that step's append."""
    return {(r, q.arrival_step + t): q.prompt_tokens + t + 1
            for r, q in enumerate(reqs) for t in range(q.output_tokens)}


def test_every_read_and_write_is_inside_its_items_life(built):
    _, inst = built
    for e, i, b in ((inst.read_epoch, inst.read_item, inst.read_bytes),
                    (inst.write_epoch, inst.write_item, inst.write_bytes)):
        assert np.all(inst.birth[i] <= e) and np.all(e < inst.death[i])
        assert np.all(b > 0) and np.all(b <= inst.size_bytes[i])


def test_births_and_writes_match_appended_tokens(built):
    kw, inst = built
    m = load_model(kw["model"])
    kvb = m.kv_bytes_per_token_layer()
    B = kw["block_tokens"] if "block_tokens" in kw else 16
    L = inst.num_epochs // max(q.arrival_step + q.output_tokens for q in kw["requests"])
    kind = inst.item_labels["kind"]
    req, blk, lay = (inst.item_labels[k] for k in ("request", "block", "layer"))
    layer_pos = {int(l): j for j, l in enumerate(np.unique(inst.epoch_labels["layer"]))}
    for r, q in enumerate(kw["requests"]):
        mine = np.flatnonzero((kind == "kv") & (req == r))
        assert mine.size == L * math.ceil((q.prompt_tokens + q.output_tokens) / B)
        assert np.all(inst.size_bytes[mine] == B * kvb)
        for i in mine:
            first = int(blk[i]) * B
            j = layer_pos[int(lay[i])]
            if first < q.prompt_tokens:
                birth = q.arrival_step * L                 # prompt KV exists on arrival
            else:                                          # the step that appends its first token
                birth = (q.arrival_step + first - q.prompt_tokens) * L + j
            assert inst.birth[i] == birth
            assert inst.death[i] == (q.arrival_step + q.output_tokens) * L
            # writes into the block = its decode tokens x kv bytes
            lo, hi = max(first, q.prompt_tokens), min(first + B, q.prompt_tokens + q.output_tokens)
            written = inst.write_bytes[inst.write_item == i].sum()
            assert written == max(0, hi - lo) * kvb
        total = inst.write_bytes[np.isin(inst.write_item, mine)].sum()
        assert total == q.output_tokens * L * kvb


def test_weights_and_experts(built):
    kw, inst = built
    m = load_model(kw["model"])
    kind = inst.item_labels["kind"]
    w = np.flatnonzero(kind == "weight")
    mode = kw.get("weights", "pinned")
    if mode == "none":
        assert w.size == 0
    else:
        assert np.all(inst.size_bytes[w] == m.weight_bytes_per_layer())
        assert np.all(inst.pinned_tier[w] == (0 if mode == "pinned" else -1))
        # read whole at every epoch with an active request
        ctx = _expected_context(kw["requests"])
        active_steps = {s for (_, s) in ctx}
        step = inst.epoch_labels["step"]
        reads_w = np.isin(inst.read_item, w)
        assert np.all(inst.read_bytes[reads_w] == m.weight_bytes_per_layer())
        assert set(step[inst.read_epoch[reads_w]].tolist()) == active_steps
    cap = inst.tiers[0].capacity_bytes
    pinned = inst.size_bytes[inst.pinned_tier == 0].sum()
    assert cap is None or pinned <= cap
    x = np.flatnonzero(kind == "expert")
    if m.is_moe:
        assert x.size == m.experts * np.unique(inst.epoch_labels["layer"]).size
        assert np.all(inst.size_bytes[x] == m.expert_bytes())
        reads_x = np.isin(inst.read_item, x)
        per_epoch = np.bincount(inst.read_epoch[reads_x], minlength=inst.num_epochs)
        n_active = {}
        for (r, s) in _expected_context(kw["requests"]):
            n_active[s] = n_active.get(s, 0) + 1
        for e in range(inst.num_epochs):
            s = int(inst.epoch_labels["step"][e])
            k = n_active.get(s, 0)
            assert (per_epoch[e] == 0) if k == 0 else (m.top_k <= per_epoch[e] <= min(m.experts, k * m.top_k))
    else:
        assert x.size == 0


def test_reads_follow_the_sparsity_rule(built):
    kw, inst = built
    m = load_model(kw["model"])
    kvb = m.kv_bytes_per_token_layer()
    B = kw.get("block_tokens", 16)
    s = kw.get("sparsity", 0.6)
    kv = inst.item_labels["kind"][inst.read_item] == "kv"
    req = inst.item_labels["request"][inst.read_item]
    for (r, step), ctx in _expected_context(kw["requests"]).items():
        for e in np.flatnonzero(inst.epoch_labels["step"] == step):
            sel = kv & (req == r) & (inst.read_epoch == e)
            if kw.get("access", "drift") == "paper":       # tokens
                assert inst.read_bytes[sel].sum() == max(1, round((1 - s) * ctx)) * kvb
            else:                                           # whole blocks
                assert sel.sum() == max(1, round((1 - s) * math.ceil(ctx / B)))


def test_compute_floor_and_capacity():
    kw = CASES["moe"]
    inst = build_workload(**kw)
    m, hw = load_model("mixtral-8x7b"), load_hardware("gh200-cxl")
    # step 3: request 0 at context 54, request 1 at context 22 (arrived at 2)
    e = int(np.flatnonzero(inst.epoch_labels["step"] == 3)[0])
    assert inst.min_time_s[e] == pytest.approx((m.flops_per_token_layer(54) + m.flops_per_token_layer(22)) / hw.peak_flops)
    assert inst.tiers[0].capacity_bytes == hw.tiers[0].capacity_bytes
    low = build_workload(**CASES["paper-low"])
    free = low.pinned_tier < 0
    alive = [low.size_bytes[free & (low.birth <= e) & (e < low.death)].sum() for e in range(low.num_epochs)]
    assert low.tiers[0].capacity_bytes == math.floor(0.25 * max(alive))


def test_same_seed_same_bytes_and_streaming_matches_memory(tmp_path):
    kw = CASES["moe"]
    a, b = build_workload(**kw), build_workload(**kw)
    assert a.equals(b) and instance_hash(a) == instance_hash(b)
    assert instance_hash(build_workload(**kw, seed=1)) != instance_hash(a)
    d = write_workload(tmp_path / "w.npz", **kw)
    back = load_instance(tmp_path / "w.npz")
    assert d["sha256"] == instance_hash(a) == instance_hash(back) and back.equals(a)
    assert d["reads"] == a.read_bytes.size and d["read_bytes"] == a.read_bytes.sum()
    j = write_workload(tmp_path / "w.json", **kw)
    assert j["sha256"] == d["sha256"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no spool left


def test_a_custom_access_model_plugs_in():
    class LastBlock:
        """Reads only the newest block: the shape a trace replay returns."""
        def for_request(self, request_index, request, layer_ids, block_tokens, rng):
            def read(t, ctx):
                out = np.zeros((len(layer_ids), -(-ctx // block_tokens)), np.int64)
                out[:, -1] = ctx - (out.shape[1] - 1) * block_tokens
                return out
            return read
    inst = build_workload(model="smollm2-135m", layers=2, requests=[Request(20, 4)], access_model=LastBlock())
    kv = inst.item_labels["kind"][inst.read_item] == "kv"
    assert kv.sum() == inst.num_epochs and inst.metadata["access_model"]["name"] == "LastBlock"

    class Bad:
        def for_request(self, *a):
            return lambda t, ctx: np.zeros((1, 1), np.int64)
    with pytest.raises(ValueError, match="returned shape"):
        build_workload(model="smollm2-135m", layers=2, requests=[Request(20, 4)], access_model=Bad())


def test_errors_name_the_option():
    with pytest.raises(ValueError, match="'weights'.*exceed tier 0"):
        plan_workload(model="llama-3.1-70b", hardware="h100-sxm-ddr5")
    with pytest.raises(ValueError, match="'sparsity'"):
        plan_workload(sparsity=1.0)
    with pytest.raises(ValueError, match="'layers'"):
        plan_workload(model="smollm2-135m", layers=31)
    with pytest.raises(ValueError, match="'prompt-tokens'"):
        make_requests(2, "1,2,3", 4)


def test_request_specs_are_seeded():
    a = make_requests(5, "uniform:10:100", "lognormal:50:0.5", "poisson:0.5", seed=3)
    assert a == make_requests(5, "uniform:10:100", "lognormal:50:0.5", "poisson:0.5", seed=3)
    assert all(10 <= q.prompt_tokens <= 100 and q.output_tokens >= 1 for q in a)
    assert [q.arrival_step for q in a] == sorted(q.arrival_step for q in a) and a[0].arrival_step == 0


def test_paper_workload_shape_without_building_it():
    plan = plan_workload(paper_workload_params())
    assert plan.num_epochs == 10240 * 32
    kv = plan.items["kind"] == "kv"
    assert kv.sum() == 32 * math.ceil((31299 + 10240) / 16)        # 2,597 pages per layer
    assert plan.items["size_bytes"][kv][0] == 16 * 4096


def test_a_small_workload_solves_and_evaluates():
    from hetkv_opt.solve import solve
    inst = build_workload(model="smollm2-135m", layers=2, block_tokens=16, hbm_fraction=0.3,
                          requests=[Request(40, 6), Request(16, 4, 1)], weights="pinned")
    res = solve(inst, method="auto", time_limit_s=30)
    assert res.status in ("optimal", "feasible") and res.schedule is not None
    ev = evaluate(inst, res.schedule)
    assert ev.feasible and ev.total_time_s == pytest.approx(res.total_time_s)
    assert res.bound_s <= ev.total_time_s * (1 + 1e-6)


def test_cli_generate_workload_json_is_clean(tmp_path):
    out = tmp_path / "w.npz"
    proc = hetkv("generate", out, "--model", "smollm2-135m", "--batch", 2, "--prompt-tokens", "30,12",
                 "--output-tokens", 6, "--arrival", "every:2", "--layers", 2, "--seed", 4, "-f", "json")
    d = json.loads(proc.stdout)
    inst = build_workload(model="smollm2-135m", layers=2, seed=4,
                          requests=[Request(30, 6, 0), Request(12, 6, 2)])
    assert d["sha256"] == instance_hash(inst) == instance_hash(load_instance(out))
    p = json.loads(hetkv("generate", tmp_path / "p.npz", "--preset-workload", "paper", "--prompt-tokens", 40,
                         "--output-tokens", 3, "--layers", "0,31", "-f", "json").stdout)
    assert p["model"] == "llama-3.1-8b" and p["epochs"] == 6 and p["layers"] == 2


def test_cli_generate_workload_errors_are_one_line(tmp_path):
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "smollm2-135m", "--blocks", 8,
                                check_rc=None), "--blocks")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "nope", check_rc=None), "nope")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "llama-3.1-70b", "--hardware",
                                "h100-sxm-ddr5", "--output-tokens", 2, check_rc=None), "weights")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--batch", 2, "--prompt-tokens", "uniform:9",
                                check_rc=None), "prompt-tokens")
    assert not (tmp_path / "x.npz").exists()


def test_readme_preset_and_workload_commands_run(tmp_path):
    """The commands of README's 'Presets and workloads' (all but the full paper build)."""
    import re
    import shlex
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Presets and workloads", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, flags=re.S).group(1).replace("\\\n", " ")
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]
    ran = 0
    for cmd in commands:
        assert cmd[0] == "hetkv"
        if "--preset-workload" in cmd:
            continue
        args = [str(tmp_path / a) if a.endswith(".npz") else a for a in cmd[1:]]
        hetkv(*args, "-q" if args[0] == "generate" else "-f", *([] if args[0] == "generate" else ["json"]))
        ran += 1
    assert ran >= 4 and (tmp_path / "moe.npz").is_file()


def test_the_paper_workload_generator_writes_the_same_bytes_as_documented(tmp_path):
    """The paper workload's content hash, on a slice small enough for a test (same command
    as benchmarks/RESULTS.md, 8 decode steps and 2 layers): a change to the generator's
    bytes shows here, and the documented full-scale hash must then be re-measured."""
    import json
    from cli_helpers import hetkv
    p = hetkv("generate", tmp_path / "pw.npz", "--preset-workload", "paper", "--access", "drift",
              "--output-tokens", "8", "--layers", "2", "-q", "-f", "json")
    d = json.loads(p.stdout)
    assert (d["items"], d["epochs"], d["reads"]) == (3916, 16, 12544)
    assert d["sha256"] == "e353f2b8d0449e5ee37d711dc3bb563b67168a7687ec4c1268aa35a7d82d8d54"
