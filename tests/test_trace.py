"""Real attention traces: capture on a tiny random Llama, the trace file, the selection
rules on hand-made scores, the instances they make, and the CLI's errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, hetkv
from trace_helpers import MODEL, hand_trace
from hetkv_opt.model.evaluate import evaluate
from hetkv_opt.io.files import load_instance
from hetkv_opt.solve import solve
from hetkv_opt.trace.capture import Trace, TraceError, load_trace, save_trace
from hetkv_opt.trace.to_instance import (TraceInstanceParams, select_kv_union, select_quest,
                                      select_topk, token_budget, trace_instance)

# ----------------------------------------------------------------------------- rules

def test_token_budget_rounds_and_reads_at_least_one():
    assert [token_budget(10, s) for s in (0.0, 0.4, 0.6, 0.95, 0.99)] == [10, 6, 4, 1, 1]
    assert token_budget(5, 0.5) == 3            # 2.5 rounds half up


def test_topk_uses_the_head_average_and_breaks_ties_by_position():
    kv = np.array([[0.0, 0.6, 0.1, 0.3, 0.0],
                   [0.5, 0.0, 0.1, 0.1, 0.3]])
    # averages 0.25, 0.3, 0.1, 0.2, 0.15
    assert np.flatnonzero(select_topk(kv, 1)).tolist() == [1]
    assert np.flatnonzero(select_topk(kv, 3)).tolist() == [0, 1, 3]
    tie = np.array([[0.2, 0.2, 0.2, 0.4]])
    assert np.flatnonzero(select_topk(tie, 2)).tolist() == [0, 3]


def test_kv_union_takes_each_heads_top_and_unites():
    kv = np.array([[0.0, 0.6, 0.1, 0.3, 0.0],
                   [0.5, 0.0, 0.1, 0.1, 0.3]])
    # head 0 top-2: {1, 3}; head 1 top-2: {0, 4}
    assert np.flatnonzero(select_kv_union(kv, 2)).tolist() == [0, 1, 3, 4]
    same = np.array([[0.1, 0.7, 0.2], [0.1, 0.8, 0.1]])
    assert np.flatnonzero(select_kv_union(same, 1)).tolist() == [1]   # heads agree: n tokens


def test_quest_reads_whole_pages_by_their_max_until_the_budget():
    hm = np.array([0.05, 0.01, 0.02, 0.9, 0.3, 0.3, 0.4, 0.01, 0.2])
    # pages of 3: [0.05 0.01 0.02] -> 0.05, [0.9 0.3 0.3] -> 0.9, [0.4 0.01 0.2] -> 0.4
    assert np.flatnonzero(select_quest(hm, 1, 3)).tolist() == [3, 4, 5]
    assert np.flatnonzero(select_quest(hm, 4, 3)).tolist() == [3, 4, 5, 6, 7, 8]
    assert select_quest(hm, 9, 3).all()
    # a partly filled tail page counts only the tokens it holds
    hm2 = np.array([0.1, 0.1, 0.1, 0.1, 0.9])       # pages of 4: [0..3] -> 0.1, [4] -> 0.9
    assert np.flatnonzero(select_quest(hm2, 1, 4)).tolist() == [4]
    assert np.flatnonzero(select_quest(hm2, 2, 4)).tolist() == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- file

def test_trace_file_round_trip(tmp_path):
    t = hand_trace()
    p = tmp_path / "t.npz"
    save_trace(t, p)
    u = load_trace(p)
    for name in ("layers", "prompt_ids", "generated_ids", "offsets", "kv_mean", "head_max"):
        assert np.array_equal(getattr(t, name), getattr(u, name)), name
    assert u.metadata == t.metadata and len(u.sha256) == 64
    kv, hm = u.scores(2, 1)
    assert kv.shape == (2, 5 + 3) and hm.shape == (8,)


def test_damaged_and_foreign_trace_files_are_refused(tmp_path):
    p = tmp_path / "t.npz"
    save_trace(hand_trace(), p)
    bad = tmp_path / "cut.npz"
    bad.write_bytes(p.read_bytes()[:200])
    with pytest.raises(TraceError, match="cut.npz"):
        load_trace(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, header=np.array(json.dumps({"schema": "hetkv-instance", "schema_version": 1})))
    with pytest.raises(TraceError, match="schema"):
        load_trace(foreign)
    with zipfile.ZipFile(p) as z:
        assert "kv_mean.npy" in z.namelist()
    with pytest.raises(TraceError, match="offsets"):
        t = hand_trace()
        Trace(metadata=t.metadata, layers=t.layers, prompt_ids=t.prompt_ids,
              generated_ids=t.generated_ids, offsets=t.offsets + 1, kv_mean=t.kv_mean,
              head_max=t.head_max)


# ----------------------------------------------------------------------------- instances

@pytest.mark.parametrize("rule", ["topk", "kv-union", "quest"])
def test_instance_invariants(rule):
    P, S, B = 5, 4, 3
    t = hand_trace(prompt_tokens=P, steps=S)
    inst = trace_instance(t, TraceInstanceParams(rule=rule, sparsity=0.5, block_tokens=B))
    L = 2
    tok_bytes = 2 * MODEL["num_kv_heads"] * MODEL["head_dim"] * MODEL["dtype_bytes"]
    pages = -(-(P + S) // B)                                # 3 pages per layer
    kind = inst.item_labels["kind"]
    assert inst.num_epochs == S * L and (kind == "kv").sum() == pages * L
    assert (inst.pinned_tier[kind == "weight"] == 0).all()
    # births: a page exists from the step whose token opens it (prompt pages: epoch 0)
    blk, lay = inst.item_labels["block"], inst.item_labels["layer"]
    for i in np.flatnonzero(kind == "kv"):
        step = max(blk[i] * B - P, 0)
        lpos = [0, 2].index(int(lay[i]))
        assert inst.birth[i] == step * L + lpos
    # writes: one token per epoch, into the page that holds token P + step, of that layer
    for e in range(inst.num_epochs):
        s, layer = inst.epoch_labels["step"][e], inst.epoch_labels["layer"][e]
        i = inst.write_item[e]
        assert inst.write_epoch[e] == e and inst.write_bytes[e] == tok_bytes
        assert blk[i] == (P + s) // B and lay[i] == layer
    # reads: only alive items, at most the tokens a page holds at that step
    for e, i, b in zip(inst.read_epoch, inst.read_item, inst.read_bytes):
        assert inst.birth[i] <= e < inst.death[i]
        if kind[i] == "kv":
            s = inst.epoch_labels["step"][e]
            held = min(B, P + s + 1 - blk[i] * B)
            assert 0 < b <= held * tok_bytes and b % tok_bytes == 0
            if rule == "quest":
                assert b == held * tok_bytes                # whole pages
    ctx_total = sum(P + s + 1 for s in range(S)) * L
    kv_read_tokens = inst.read_bytes[kind[inst.read_item] == "kv"].sum() / tok_bytes
    assert kv_read_tokens == pytest.approx(inst.metadata["read_fraction_tokens"] * ctx_total, abs=0.5)
    if rule == "topk":
        assert kv_read_tokens == sum(token_budget(P + s + 1, 0.5) for s in range(S)) * L
    # the evaluator accepts what the solver returns, and agrees on its time
    res = solve(inst, "milp", time_limit_s=30)
    assert res.status == "optimal"
    ev = evaluate(inst, res.schedule)
    assert ev.feasible and ev.total_time_s == pytest.approx(res.total_time_s)
    assert res.bound_s <= res.total_time_s * (1 + 1e-9)


def test_topk_instance_reads_the_hand_checked_pages():
    t = hand_trace(prompt_tokens=5, steps=1, layers=(1,))
    kv, _ = t.scores(0, 0)
    want = np.flatnonzero(select_topk(kv, token_budget(6, 0.6)))       # 2 tokens of 6
    inst = trace_instance(t, rule="topk", sparsity=0.6, block_tokens=2, weights="none")
    tok_bytes = inst.metadata["kv_bytes_per_token"]
    got = {int(i): int(b) // tok_bytes for i, b in zip(inst.read_item, inst.read_bytes)}
    expect: dict[int, int] = {}
    for tok in want:
        expect[int(tok) // 2] = expect.get(int(tok) // 2, 0) + 1
    assert got == expect
    assert inst.num_items == 3 and (inst.item_labels["layer"] == 1).all()


def test_options_select_layers_steps_capacity_and_provenance(tmp_path):
    t = hand_trace(steps=4)
    p = tmp_path / "t.npz"
    save_trace(t, p)
    t = load_trace(p)
    inst = trace_instance(t, rule="quest", layers=(2,), steps=2, block_tokens=4,
                          hbm_fraction=0.5, trace_file="t.npz")
    assert inst.num_epochs == 2 and set(inst.epoch_labels["layer"].tolist()) == {2}
    w = inst.size_bytes[inst.item_labels["kind"] == "weight"].sum()
    page = inst.metadata["kv_bytes_per_token"] * 4
    assert inst.tiers[0].capacity_bytes == w + 1 * page           # floor(0.5 x 2 pages)
    m = inst.metadata
    assert m["trace_sha256"] == t.sha256 and m["params"]["rule"] == "quest"
    assert m["params"]["sparsity"] == 0.6 and m["prompt_name"] == "hand"
    with pytest.raises(ValueError, match="layer 1 was not recorded"):
        trace_instance(t, layers=(1,))
    with pytest.raises(ValueError, match="'steps'"):
        trace_instance(t, steps=9)
    with pytest.raises(ValueError, match="'sparsity'"):
        trace_instance(t, sparsity=1.0)


# ----------------------------------------------------------------------------- capture

def test_capture_on_a_tiny_random_llama_matches_a_full_forward(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hetkv_opt.trace.capture import capture_trace, tiny_random_llama
    lm = tiny_random_llama(seed=0)
    prompt = lm.tokenizer.encode("The cache grows by one token per step.")
    P, S = len(prompt), 6
    t = capture_trace(lm, prompt, S, prompt_text="x", prompt_name="tiny")
    assert t.num_steps == S and t.prompt_tokens == P and t.layers.tolist() == [0, 1]
    assert t.kv_mean.shape == (2, 2, sum(P + 1 + s for s in range(S)))
    for s in range(S):
        kv, hm = t.scores(s, 1)
        assert kv.shape[1] == P + s + 1
        assert np.allclose(kv.sum(axis=1), 1.0, atol=5e-3)         # each group's mean sums to 1
        assert (hm >= kv.max(axis=0) - 1e-3).all()                  # max over heads >= any mean
    # independent check: one forward over prompt + fed tokens, no cache
    seq = torch.tensor([prompt + t.generated_ids.tolist()])
    with torch.inference_mode():
        full = lm.model(input_ids=seq, output_attentions=True)
    for layer in (0, 1):
        a = full.attentions[layer][0].float().numpy()                # (heads, len, len)
        for s in range(S):
            row = a[:, P + s, : P + s + 1]                           # query of step s
            kv, hm = t.scores(s, layer)
            assert np.allclose(kv, row.reshape(2, 2, -1).mean(axis=1), atol=2e-3)
            assert np.allclose(hm, row.max(axis=0), atol=2e-3)
    # greedy: each fed token is the argmax after the tokens before it
    logits = full.logits[0].float().numpy()
    assert t.generated_ids.tolist() == [int(logits[P - 1 + s].argmax()) for s in range(S)]
    p = tmp_path / "tiny.npz"
    save_trace(t, p)
    assert load_trace(p).metadata["versions"]["torch"] == torch.__version__


# ----------------------------------------------------------------------------- CLI

def test_cli_trace_then_instance_end_to_end(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    prompt = tmp_path / "story.txt"
    prompt.write_text("Once upon a time a cache met a lighthouse.", encoding="utf-8")
    other = tmp_path / "code.txt"
    other.write_text("def f(x): return x", encoding="utf-8")
    # two prompts, one model load: one trace per prompt in the --out folder
    proc = hetkv("trace", "--model", "tiny-random-llama", "--prompt-file", prompt,
                 "--prompt-file", other, "--steps", 5, "--out", tmp_path / "traces", "-f", "json")
    rows = json.loads(proc.stdout)
    assert [r["prompt"] for r in rows] == ["story", "code"]
    assert [r["prompt_tokens"] for r in rows] == [42, 18] and rows[0]["steps"] == 5
    tr = tmp_path / "traces" / "story.npz"
    assert load_trace(tr).metadata["prompt"]["text"] == prompt.read_text()
    inst_path = tmp_path / "inst.npz"
    proc = hetkv("trace-to-instance", tr, "--rule", "kv-union", "--sparsity", "0.7",
                 "--block-tokens", "8", "--out", inst_path, "-f", "json")
    d = json.loads(proc.stdout)
    inst = load_instance(inst_path)
    assert d["epochs"] == inst.num_epochs == 10 and d["items"] == inst.num_items
    assert inst.metadata["params"]["rule"] == "kv-union"
    assert inst.metadata["trace_sha256"] == load_trace(tr).sha256


def test_cli_errors_are_one_line(tmp_path):
    t = tmp_path / "t.npz"
    save_trace(hand_trace(), t)
    out = tmp_path / "i.json"
    assert_one_line_error(hetkv("trace-to-instance", tmp_path / "nope.npz", "--out", out,
                                check_rc=None), "nope.npz", "no such file")
    assert_one_line_error(hetkv("trace-to-instance", t, "--rule", "lru", "--out", out,
                                check_rc=None), "--rule")
    assert_one_line_error(hetkv("trace-to-instance", t, "--sparsity", "1.2", "--out", out,
                                check_rc=None), "sparsity", "[0, 1)")
    assert_one_line_error(hetkv("trace-to-instance", t, "--layers", "1", "--out", out,
                                check_rc=None), "layer 1 was not recorded")
    assert_one_line_error(hetkv("trace-to-instance", t, "--out", tmp_path / "i.txt",
                                check_rc=None), "--out")
    assert_one_line_error(hetkv("trace", "--model", "tiny-random-llama", "--prompt-file",
                                tmp_path / "missing.txt", "--out", tmp_path / "x.npz",
                                check_rc=None), "missing.txt")
    assert_one_line_error(hetkv("trace", "--model", "no-such-model", "--prompt", "hi", "--out",
                                tmp_path / "x.npz", check_rc=None), "no-such-model")
    assert not out.exists()


def test_cli_trace_without_torch_names_the_extra(tmp_path):
    proc = hetkv("trace", "--model", "tiny-random-llama", "--prompt", "hi", "--out",
                 tmp_path / "x.npz", prelude="sys.modules['torch'] = None", check_rc=None)
    assert_one_line_error(proc, "pip install -e '.[trace]'")
