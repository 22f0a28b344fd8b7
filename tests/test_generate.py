"""The drift generator: the workload it promises, deterministically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hetkv_opt.workloads.drift import DriftParams, drift_instance, kv_bytes_per_token_layer
from hetkv_opt.io.files import instance_hash


def test_llama_kv_bytes_are_gqa_correct():
    # Llama-3.1-8B: 8 KV heads x 128 dims x bf16, K and V: 4 KiB per token per layer
    assert kv_bytes_per_token_layer(8, 128, 2) == 4096


@pytest.mark.parametrize("sparsity", [0.4, 0.6, 0.9])
def test_reads_follow_the_topk_rule(sparsity):
    p = DriftParams(blocks=40, steps=40, sparsity=sparsity, block_tokens=16, sinks=2, recent=1, seed=3)
    inst = drift_instance(p)
    born = math.ceil(p.steps / p.block_tokens)
    prompt = p.blocks - born
    for t in range(p.steps):
        alive = prompt + t // p.block_tokens + 1
        items = inst.read_item[inst.read_epoch == t]
        assert items.size == max(1, round((1 - sparsity) * alive))
        assert {0, 1} <= set(items.tolist())               # attention sinks
        assert alive - 1 in set(items.tolist())            # the tail block (recent window)
        assert items.max() < alive                         # only alive blocks
    # one token appended per step to the tail block
    assert inst.write_epoch.tolist() == list(range(p.steps))
    assert np.all(inst.write_bytes == p.kv_bytes_per_token)
    assert inst.write_item.tolist() == [prompt + t // p.block_tokens for t in range(p.steps)]


def test_partial_tail_block_reads_only_its_tokens():
    p = DriftParams(blocks=10, steps=5, block_tokens=16, sparsity=0.0, seed=0)
    inst = drift_instance(p)
    tail = p.blocks - 1
    sel = inst.read_item == tail
    # block born at step 0 of decode, holds t+1 tokens at step t
    assert inst.read_bytes[sel].tolist() == [(t + 1) * p.kv_bytes_per_token for t in range(5)]


def test_capacity_is_the_fraction_of_the_cache():
    p = DriftParams(blocks=50, steps=8, hbm_fraction=0.3)
    inst = drift_instance(p)
    assert inst.tiers[0].capacity_bytes == math.floor(0.3 * 50 * 16 * 4096)
    assert inst.tiers[0].bandwidth_Bps == 4900e9 and inst.tiers[1].link_read_Bps == 450e9
    assert inst.tiers[1].capacity_bytes is None


def test_same_seed_same_instance_other_seed_other():
    a = drift_instance(blocks=30, steps=12, seed=9)
    b = drift_instance(blocks=30, steps=12, seed=9)
    c = drift_instance(blocks=30, steps=12, seed=10)
    assert a.equals(b) and instance_hash(a) == instance_hash(b)
    assert instance_hash(a) != instance_hash(c)


def test_drift_persistence_controls_overlap():
    """phi = 1 with no persistent spread freezes the ranking: consecutive read sets agree."""
    frozen = drift_instance(blocks=60, steps=20, block_tokens=1000, phi=1.0, seed=1)
    fresh = drift_instance(blocks=60, steps=20, block_tokens=1000, phi=0.0, persistence=0.0, seed=1)

    def overlap(inst):
        sets = [set(inst.read_item[inst.read_epoch == t].tolist()) for t in range(inst.num_epochs)]
        return np.mean([len(a & b) / len(a) for a, b in zip(sets, sets[1:])])

    assert overlap(frozen) == 1.0
    assert overlap(fresh) < 0.8


@pytest.mark.parametrize("bad", [dict(blocks=1, steps=32), dict(sparsity=1.0), dict(phi=2.0),
                                 dict(hardware="nope"), dict(mode="weird")])
def test_bad_parameters_name_the_field(bad):
    with pytest.raises(ValueError) as exc:
        drift_instance(**bad)
    assert next(iter(bad)) in str(exc.value)


def test_inclusive_mode():
    inst = drift_instance(blocks=12, steps=4, mode="inclusive")
    assert inst.mode == "inclusive" and inst.num_tiers == 2


def test_generate_from_a_calibrated_params_file(tmp_path):
    """'hetkv calibrate --out' -> 'hetkv generate --params': the file's knobs, with the sizes
    and seed given on the command line overriding it."""
    import json
    from cli_helpers import assert_one_line_error, hetkv

    from hetkv_opt.workloads.calibrate import load_params
    from hetkv_opt.io.files import load_instance
    target = tmp_path / "t.npz"
    params = tmp_path / "p.json"
    out = tmp_path / "g.npz"
    hetkv("generate", str(target), "--blocks", "48", "--steps", "24", "--phi", "0.5", "-f", "json")
    hetkv("calibrate", str(target), "--out", str(params), "-q", "-f", "json")
    r = hetkv("generate", str(out), "--params", str(params), "--blocks", "96", "--seed", "3", "-f", "json")
    p = load_params(params)
    inst = load_instance(out)
    got = inst.metadata["params"]
    assert got["blocks"] == 96 and got["steps"] == p.steps and got["seed"] == 3
    assert got["phi"] == p.phi and got["persistence"] == p.persistence and got["sparsity"] == p.sparsity
    assert json.loads(r.stdout)["items"] == 96
    bad = hetkv("generate", str(out), "--params", str(tmp_path / "missing.json"), check_rc=2)
    assert_one_line_error(bad, "missing.json")


def test_token_fraction_reads_part_of_each_block():
    """token_fraction < 1 reads max(1, round(f x tokens)) tokens of each chosen block; the
    chosen blocks are the same; 1 keeps the whole-block bytes (and the recorded params)."""
    whole = drift_instance(blocks=40, steps=20, seed=5)
    part = drift_instance(blocks=40, steps=20, seed=5, token_fraction=0.4)
    assert np.array_equal(whole.read_item, part.read_item)
    assert np.array_equal(whole.read_epoch, part.read_epoch)
    kv = whole.metadata["params"]["kv_bytes_per_token"]
    tokens = whole.read_bytes // kv
    assert np.array_equal(part.read_bytes, np.maximum(1, np.round(0.4 * tokens)).astype(np.int64) * kv)
    assert "token_fraction" not in whole.metadata["params"]
    assert part.metadata["params"]["token_fraction"] == 0.4
    with pytest.raises(ValueError, match="token_fraction"):
        drift_instance(blocks=40, steps=20, token_fraction=0.0)


def test_calibrate_recovers_the_token_fraction():
    from hetkv_opt.workloads.calibrate import fit_drift
    target = drift_instance(blocks=64, steps=32, seed=9, token_fraction=0.45)
    res = fit_drift(target, max_evals=20)
    assert res.params.token_fraction == pytest.approx(0.45, abs=0.03)
