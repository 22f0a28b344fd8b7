"""Hardware and model presets: sizes against hand-computed figures, sources, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetkv_opt.presets import (PresetError, list_presets, load_hardware, load_model)

from cli_helpers import assert_one_line_error, hetkv  # noqa: E402

HARDWARE = ["gh200-paper", "gh200-96g", "gh200-144g", "gb200", "h100-sxm-ddr5", "gh200-cxl"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "smollm2-135m"]
GiB = 2 ** 30


def test_the_issue_presets_are_all_there():
    found = list_presets()
    assert set(HARDWARE) <= set(found["hardware"])
    assert set(MODELS) <= set(found["model"])


# Hand-computed, bf16 (2 bytes):
#   KV per token per layer = 2 (K, V) x kv_heads x head_dim x 2
#   weights per layer = 2 x (q + k + v + o + [3 x hidden x intermediate if dense] + 2 x hidden
#                            + [hidden x experts router if MoE])
LLAMA8_LAYER = 2 * (4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096)
LLAMA70_LAYER = 2 * (8192 * 8192 + 2 * 8192 * 1024 + 8192 * 8192 + 3 * 8192 * 28672 + 2 * 8192)
MIXTRAL_LAYER = 2 * (4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 2 * 4096 + 4096 * 8)
SMOL_LAYER = 2 * (576 * 576 + 2 * 576 * 192 + 576 * 576 + 3 * 576 * 1536 + 2 * 576)


@pytest.mark.parametrize("name,kv,layer_bytes,expert_bytes,layers,params_b", [
    ("llama-3.1-8b", 4096, LLAMA8_LAYER, 0, 32, 8.03),
    ("llama-3.1-70b", 4096, LLAMA70_LAYER, 0, 80, 70.55),
    ("mixtral-8x7b", 4096, MIXTRAL_LAYER, 2 * 3 * 4096 * 14336, 32, 46.70),
    ("smollm2-135m", 768, SMOL_LAYER, 0, 30, 0.1345),
])
def test_model_sizes_match_hand_computed_figures(name, kv, layer_bytes, expert_bytes, layers, params_b):
    m = load_model(name)
    assert m.kv_bytes_per_token_layer() == kv          # GQA-correct, not 16 KiB
    assert m.weight_bytes_per_layer() == layer_bytes
    assert m.expert_bytes() == expert_bytes
    assert m.layers == layers
    # the published parameter counts (8.03B, 70.6B, 46.7B, 134.5M)
    assert m.total_params() / 1e9 == pytest.approx(params_b, rel=2e-3)


def test_llama_8b_numbers_spelled_out():
    m = load_model("llama-3.1-8b")
    assert m.kv_bytes_per_token_layer() == 4096
    assert m.weight_bytes_per_layer() == 436_224_000
    # one decode token at 1000 tokens of context: 2 x 218,103,808 MACs + 4 x 32 x 128 x 1000
    assert m.flops_per_token_layer(1000) == 2 * 218_103_808 + 4 * 32 * 128 * 1000


@pytest.mark.parametrize("name", HARDWARE)
def test_every_hardware_preset_loads_with_a_source_per_number(name):
    hw = load_hardware(name)
    assert hw.name == name and hw.summary and hw.source
    assert hw.tiers[0].link_read_Bps is None
    for k, t in enumerate(hw.tiers):
        assert f"tiers[{k}].bandwidth_Bps" in hw.sources
        if t.capacity_bytes is not None:
            assert f"tiers[{k}].capacity_bytes" in hw.sources
        if k > 0 and t.link_read_Bps is not None:
            assert f"tiers[{k}].link_read_Bps" in hw.sources
    if hw.peak_flops is not None:
        assert "peak_flops" in hw.sources


def test_hardware_sizes():
    assert load_hardware("gh200-96g").tiers[0].capacity_bytes == 96 * GiB
    assert load_hardware("gh200-96g").tiers[0].bandwidth_Bps == 4.0e12
    assert load_hardware("gh200-144g").tiers[0].capacity_bytes == 144 * GiB
    gb = load_hardware("gb200")
    assert gb.tiers[1].capacity_bytes == 240 * GiB and gb.tiers[1].link_read_Bps == 225e9
    assert len(load_hardware("gh200-cxl").tiers) == 3
    assert load_hardware("h100-sxm-ddr5").tiers[1].link_read_Bps == 63e9


def test_gh200_paper_is_the_papers_constants_and_drift_uses_it():
    hw = load_hardware("gh200-paper")
    hbm, lp = hw.tiers
    assert hbm.bandwidth_Bps == 4900e9
    assert (lp.capacity_bytes, lp.bandwidth_Bps, lp.link_read_Bps, lp.link_write_Bps) == (None, 500e9, 450e9, 450e9)
    from hetkv_opt.workloads.drift import HARDWARE as GEN
    assert GEN["gh200-paper"]["source"] == hw.source
    assert GEN["gh200-paper"]["tiers"][1]["bandwidth_Bps"] == 500e9


@pytest.mark.parametrize("name", MODELS)
def test_every_model_number_has_a_source(name):
    m = load_model(name)
    for key in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "dtype_bytes"):
        assert m.sources[key]


def _copy(tmp_path, kind: str, name: str, edit=None) -> Path:
    text = list_presets(kind)[kind][name].read_text()
    if edit:
        text = edit(text)
    p = tmp_path / f"mine-{name}.toml"
    p.write_text(text)
    return p


def test_a_user_file_by_path_works(tmp_path):
    p = _copy(tmp_path, "model", "llama-3.1-8b", lambda s: s.replace('name = "llama-3.1-8b"', 'name = "my-llama"')
              .replace("kv_heads = 8", "kv_heads = 4"))
    m = load_model(str(p))
    assert m.name == "my-llama" and m.kv_bytes_per_token_layer() == 2048 and m.path == str(p)
    h = _copy(tmp_path, "hardware", "gh200-96g")
    assert load_hardware(h).tiers[0].capacity_bytes == 96 * GiB


@pytest.mark.parametrize("edit,field", [
    (lambda s: s.replace("bandwidth_Bps = 4.0e12", "bandwidth_Bps = -1.0"), "tiers[0].bandwidth_Bps"),
    (lambda s: s.replace('bandwidth_Bps_source = "GH200 datasheet: HBM3 4 TB/s"\n', ""), "tiers[0].bandwidth_Bps_source"),
    (lambda s: s.replace('schema = "hetkv-hardware"', 'schema = "hetkv-model"'), "schema"),
    (lambda s: s.replace("schema_version = 1", "schema_version = 2"), "schema_version"),
    (lambda s: s + '\nbandwith_Bps = 3\n', "tiers[1].bandwith_Bps"),  # in the last [[tiers]]
    (lambda s: s.replace('name = "hbm"', 'name = "hbm"\nlink_read_Bps = 1.0\nlink_read_Bps_source = "x"'), "tiers[0].link_read_Bps"),
])
def test_a_broken_hardware_file_names_the_file_and_the_field(tmp_path, edit, field):
    p = _copy(tmp_path, "hardware", "gh200-96g", edit)
    with pytest.raises(PresetError) as ei:
        load_hardware(p)
    assert ei.value.field == field and str(p) in str(ei.value)


@pytest.mark.parametrize("edit,field", [
    (lambda s: s.replace("kv_heads = 8\n", "kv_heads = 0\n"), "kv_heads"),
    (lambda s: s.replace("kv_heads = 8\n", "kv_heads = 5\n"), "kv_heads"),
    (lambda s: s.replace("layers = 32\n", 'layers = "32"\n'), "layers"),
    (lambda s: s.replace("layers = 32\n", ""), "layers"),
    (lambda s: s.replace("hidden = 4096", "hidden = 4096\n[oops]"), "oops"),
])
def test_a_broken_model_file_names_the_field(tmp_path, edit, field):
    p = _copy(tmp_path, "model", "llama-3.1-8b", edit)
    with pytest.raises(PresetError) as ei:
        load_model(p)
    assert ei.value.field == field and str(p) in str(ei.value)


def test_bad_toml_and_unknown_names(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("schema = [unclosed\n")
    with pytest.raises(PresetError, match="not valid TOML"):
        load_hardware(p)
    with pytest.raises(PresetError, match="unknown model preset 'llama-9'"):
        load_model("llama-9")
    with pytest.raises(PresetError, match="no such file"):
        load_model(tmp_path / "missing.toml")


def test_cli_lists_and_checks_presets(tmp_path):
    rows = json.loads(hetkv("presets", "-f", "json").stdout)
    names = {(r["kind"], r["name"]) for r in rows}
    assert {("hardware", h) for h in HARDWARE} | {("model", m) for m in MODELS} <= names
    rows = json.loads(hetkv("presets", "--kind", "model", "-f", "json").stdout)
    assert {r["kind"] for r in rows} == {"model"}
    mine = _copy(tmp_path, "model", "smollm2-135m")
    (row,) = json.loads(hetkv("presets", mine, "-f", "json").stdout)
    assert row["kv_bytes_per_token_layer"] == 768 and row["path"] == str(mine)


def test_cli_broken_preset_is_one_line_exit_2(tmp_path):
    p = _copy(tmp_path, "hardware", "gh200-96g", lambda s: s.replace("bandwidth_Bps = 4.0e12", "bandwidth_Bps = 0"))
    assert_one_line_error(hetkv("presets", p, check_rc=None), str(p), "tiers[0].bandwidth_Bps")
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", "smollm2-135m", "--hardware", p,
                                check_rc=None), "tiers[0].bandwidth_Bps")
    m = _copy(tmp_path, "model", "smollm2-135m", lambda s: s.replace("heads = 9\n", "heads = -9\n"))
    assert_one_line_error(hetkv("generate", tmp_path / "x.npz", "--model", m, check_rc=None), str(m), "heads")
    assert_one_line_error(hetkv("presets", "nope", check_rc=None), "nope")
