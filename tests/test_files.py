"""Instance and schedule files (docs/model.md section 6): every loader error names the file, the
field and the reason; JSON and NPZ round trips are identities; saving is deterministic."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hetkv_opt.testing import instances, instances_with_residency  # noqa: E402

from hetkv_opt.model.instance import ModelError, Tier, make_instance, tiny_instance  # noqa: E402
from hetkv_opt.io.files import (instance_hash, instance_to_dict, load_instance,  # noqa: E402
                          load_schedule, save_instance, save_schedule)
from hetkv_opt.model.schedule import Schedule  # noqa: E402

FILES = settings(max_examples=40, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

ARRAY_BLOCKS = ("items", "reads", "writes")
NPZ_REASON = r"not (a readable|an) NPZ (instance|schedule) file"


def base() -> dict:
    """docs/model.md's tiny instance as a JSON object (3 items, 3 epochs, 2 tiers)."""
    return instance_to_dict(tiny_instance())


def write_json(path: pathlib.Path, d) -> pathlib.Path:
    path.write_text(json.dumps(d))
    return path


def write_npz(path: pathlib.Path, d: dict) -> pathlib.Path:
    """An instance object as NPZ: arrays under dotted names, the rest in ``header``."""
    header = copy.deepcopy(d)
    arrays = {}
    for block in ARRAY_BLOCKS:
        if isinstance(header.get(block), dict):
            for key, val in list(header[block].items()):
                arrays[f"{block}.{key}"] = np.asarray(val)
            del header[block]
    if isinstance(header.get("epochs"), dict):
        for key in list(header["epochs"]):
            if key != "count":
                arrays[f"epochs.{key}"] = np.asarray(header["epochs"].pop(key))
    np.savez(path, header=np.array(json.dumps(header)), **arrays)
    return path


def expect_error(path: pathlib.Path, field: str, reason: str, loader=load_instance) -> ModelError:
    with pytest.raises(ModelError) as info:
        loader(path)
    exc = info.value
    text = str(exc)
    assert str(path) in text, text
    assert exc.source == str(path)
    assert exc.field == field, text
    if field != "(file)":   # a whole-file error has no field to name
        assert f"'{field}'" in text, text
    assert re.search(reason, exc.reason), (reason, text)
    return exc


# ------------------------------------------------------------------ content errors

def _set(path, value):
    def f(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return f


def _del(path):
    def f(d):
        node = d
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return f


def _add_tier(d):
    d["tiers"].append({"name": "ssd", "capacity_bytes": None, "bandwidth_Bps": 0.5,
                       "link_read_Bps": None, "link_write_Bps": None})


def _inclusive3(d):
    d["mode"] = "inclusive"
    _add_tier(d)


# (id, mutation, field, reason regex, also as NPZ)
CASES = [
    # schema
    ("wrong-schema", _set(["schema"], "hetkv-schedule"), "schema", r"expected 'hetkv-instance'", True),
    ("future-version", _set(["schema_version"], 2), "schema_version", r"version 2 is newer", True),
    ("unknown-version", _set(["schema_version"], 0), "schema_version", r"unknown version 0", True),
    ("string-version", _set(["schema_version"], "1"), "schema_version", r"must be an integer", True),
    ("float-version", _set(["schema_version"], 1.5), "schema_version", r"must be an integer", True),
    ("no-version", _del(["schema_version"]), "schema_version", r"missing required key", True),
    ("no-schema", _del(["schema"]), "schema", r"missing required key", True),
    # missing required keys
    ("no-name", _del(["name"]), "name", r"missing required key", True),
    ("no-tiers", _del(["tiers"]), "tiers", r"missing required key", True),
    ("no-items", _del(["items"]), "items", r"missing required key", False),
    ("no-epochs", _del(["epochs"]), "epochs", r"missing required key", False),
    ("no-reads", _del(["reads"]), "reads", r"missing required key", False),
    ("no-size", _del(["items", "size_bytes"]), "items.size_bytes", r"missing required key", True),
    ("no-count", _del(["epochs", "count"]), "epochs.count", r"missing required key", True),
    ("no-bandwidth", _del(["tiers", 1, "bandwidth_Bps"]), "tiers[1].bandwidth_Bps", r"missing required key", True),
    ("no-tier-name", _del(["tiers", 0, "name"]), "tiers[0].name", r"missing required key", True),
    ("no-read-bytes", _del(["reads", "bytes"]), "reads.bytes", r"missing required key", True),
    ("no-write-item", _del(["writes", "item"]), "writes.item", r"missing required key", True),
    # unknown keys and wrong types
    ("unknown-top", _set(["colour"], 1), "colour", r"unknown key", True),
    ("unknown-items", _set(["items", "colour"], [1, 2, 3]), "items.colour", r"unknown key", True),
    ("unknown-epochs", _set(["epochs", "colour"], [1, 2, 3]), "epochs.colour", r"unknown key", True),
    ("unknown-reads", _set(["reads", "colour"], [1, 2, 3, 4, 5]), "reads.colour", r"unknown key", True),
    ("unknown-tier-key", _set(["tiers", 0, "speed"], 1.0), "tiers[0].speed", r"unknown key", True),
    ("tiers-not-list", _set(["tiers"], {"hbm": 1}), "tiers", r"must be a list", False),
    ("tier-not-object", _set(["tiers", 1], 5), "tiers[1]", r"must be an object", True),
    ("items-not-object", _set(["items"], [1, 2]), "items", r"must be an object", False),
    ("name-not-string", _set(["name"], 7), "name", r"must be a string", True),
    ("metadata-not-object", _set(["metadata"], [1]), "metadata", r"must be an object", True),
    ("size-not-integer", _set(["items", "size_bytes"], [1, 1.5, 1]), "items.size_bytes", r"whole numbers", True),
    ("size-strings", _set(["items", "size_bytes"], ["1", "1", "1"]), "items.size_bytes", r"integers", False),
    ("ragged", _set(["items", "size_bytes"], [1, [1, 2], 1]), "items.size_bytes", r"not an array|flat|integers", False),
    ("bandwidth-string", _set(["tiers", 0, "bandwidth_Bps"], "fast"), "tiers[0].bandwidth_Bps", r"must be a number", True),
    ("unknown-mode", _set(["mode"], "shared"), "mode", r"must be one of", True),
    ("duplicate-tier-names", _set(["tiers", 1, "name"], "hbm"), "tiers", r"distinct", True),
    ("zero-epochs", _set(["epochs", "count"], 0), "epochs.count", r">= 1", True),
    # arrays of different lengths
    ("short-birth", _set(["items", "birth"], [0, 0]), "items.birth", r"has 2 entries, expected 3", True),
    ("long-death", _set(["items", "death"], [3, 3, 3, 3]), "items.death", r"has 4 entries, expected 3", True),
    ("short-pins", _set(["items", "pinned_tier"], [-1]), "items.pinned_tier", r"has 1 entries, expected 3", True),
    ("short-initial", _set(["items", "initial_tier"], [-1, -1]), "items.initial_tier", r"has 2 entries, expected 3", True),
    ("short-read-item", _set(["reads", "item"], [0, 1, 2, 0]), "reads.item", r"has 4 entries, expected 5", True),
    ("long-read-bytes", _set(["reads", "bytes"], [1, 1, 1, 1, 1, 1]), "reads.bytes", r"has 6 entries, expected 5", True),
    ("short-write-bytes", _set(["writes", "bytes"], []), "writes.bytes", r"has 0 entries, expected 1", True),
    ("short-floors", _set(["epochs", "min_time_s"], [0.0, 0.0]), "epochs.min_time_s", r"has 2 entries, expected 3", True),
    ("short-label", _set(["items", "layer"], [0, 1]), "items.layer", r"has 2 entries, expected 3", True),
    ("short-step", _set(["epochs", "step"], [0]), "epochs.step", r"has 1 entries, expected 3", True),
    # zero / negative sizes and bandwidths
    ("zero-size", _set(["items", "size_bytes"], [0, 1, 1]), "items.size_bytes", r"item 0: size 0 must be > 0", True),
    ("negative-size", _set(["items", "size_bytes"], [1, -2, 1]), "items.size_bytes", r"item 1: size -2 must be > 0", True),
    ("zero-bandwidth", _set(["tiers", 0, "bandwidth_Bps"], 0), "tiers[0].bandwidth_Bps", r"must be > 0, got 0", True),
    ("negative-bandwidth", _set(["tiers", 1, "bandwidth_Bps"], -1.0), "tiers[1].bandwidth_Bps", r"must be > 0, got -1", True),
    ("zero-link-read", _set(["tiers", 1, "link_read_Bps"], 0.0), "tiers[1].link_read_Bps", r"must be > 0", True),
    ("negative-link-write", _set(["tiers", 1, "link_write_Bps"], -4), "tiers[1].link_write_Bps", r"must be > 0, got -4", True),
    ("nan-bandwidth", _set(["tiers", 1, "bandwidth_Bps"], float("nan")), "tiers[1].bandwidth_Bps", r"must be > 0", True),
    ("negative-capacity", _set(["tiers", 0, "capacity_bytes"], -1), "tiers[0].capacity_bytes", r">= 0", True),
    ("fractional-capacity", _set(["tiers", 0, "capacity_bytes"], 1.5), "tiers[0].capacity_bytes", r"whole number", True),
    ("tier0-link", _set(["tiers", 0, "link_read_Bps"], 1.0), "tiers[0].link_read_Bps", r"no link", True),
    ("negative-floor", _set(["epochs", "min_time_s"], [0.0, -1.0, 0.0]), "epochs.min_time_s", r"epoch 1: must be >= 0", True),
    # indices out of range
    ("read-item-range", _set(["reads", "item"], [0, 1, 2, 0, 3]), "reads.item", r"entry 4: item 3 outside 0\.\.2", True),
    ("read-epoch-range", _set(["reads", "epoch"], [0, 0, 1, 2, 3]), "reads.epoch", r"entry 4: epoch 3 outside 0\.\.2", True),
    ("write-item-negative", _set(["writes", "item"], [-1]), "writes.item", r"item -1 outside 0\.\.2", True),
    ("write-epoch-range", _set(["writes", "epoch"], [7]), "writes.epoch", r"epoch 7 outside 0\.\.2", True),
    ("birth-range", _set(["items", "birth"], [0, 0, 3]), "items.birth", r"item 2: 3 outside 0\.\.2", True),
    ("death-range", _set(["items", "death"], [3, 4, 3]), "items.death", r"item 1: 4 outside 1\.\.3", True),
    ("death-before-birth", _set(["items", "death"], [3, 3, 1]), "items.death", r"item 2: death 1 must be after birth 1", True),
    # reads / writes outside an item's life or larger than it
    ("read-before-birth", _set(["reads", "item"], [2, 1, 2, 0, 2]), "reads.epoch", r"item 2 is accessed at epoch 0 outside its life \[1, 3\)", True),
    ("write-before-birth", _set(["writes", "epoch"], [0]), "writes.epoch", r"item 2 is accessed at epoch 0 outside its life", True),
    ("read-too-big", _set(["reads", "bytes"], [1, 2, 1, 1, 1]), "reads.bytes", r"2 bytes of item 1 exceed its size 1", True),
    ("write-too-big", _set(["writes", "bytes"], [5]), "writes.bytes", r"5 bytes of item 2 exceed its size 1", True),
    ("zero-read", _set(["reads", "bytes"], [1, 1, 0, 1, 1]), "reads.bytes", r"0 bytes, must be > 0", True),
    # duplicate (epoch, item) pairs
    ("duplicate-read", _set(["reads", "item"], [0, 0, 2, 0, 2]), "reads.item", r"duplicate entry for epoch 0, item 0", True),
    ("duplicate-write", lambda d: d.update(writes={"epoch": [1, 2, 1], "item": [2, 0, 2], "bytes": [1, 1, 1]}),
     "writes.item", r"duplicate entry for epoch 1, item 2", True),
    # pins and initial tiers
    ("pin-missing-tier", _set(["items", "pinned_tier"], [-1, 2, -1]), "items.pinned_tier", r"item 1: tier 2 does not exist", True),
    ("pin-negative", _set(["items", "pinned_tier"], [-2, -1, -1]), "items.pinned_tier", r"item 0: tier -2 does not exist", True),
    ("initial-missing-tier", _set(["items", "initial_tier"], [-1, -1, 5]), "items.initial_tier", r"item 2: tier 5 does not exist", True),
    ("initial-contradicts-pin", lambda d: d["items"].update(pinned_tier=[0, -1, -1], initial_tier=[1, -1, -1]),
     "items.initial_tier", r"item 0: initial tier 1 contradicts pin to tier 0", True),
    # modes
    ("inclusive-3-tiers", _inclusive3, "mode", r"inclusive mode needs exactly 2 tiers, got 3", True),
]


@pytest.mark.parametrize("mutate, field, reason", [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
def test_instance_json_errors(tmp_path, mutate, field, reason):
    d = base()
    d["items"]["layer"] = [0, 1, 2]
    d["epochs"]["step"] = [0, 1, 2]
    mutate(d)
    expect_error(write_json(tmp_path / "bad.json", d), field, reason)


@pytest.mark.parametrize("mutate, field, reason", [c[1:4] for c in CASES if c[4]],
                         ids=[c[0] for c in CASES if c[4]])
def test_instance_npz_errors(tmp_path, mutate, field, reason):
    d = base()
    d["items"]["layer"] = [0, 1, 2]
    d["epochs"]["step"] = [0, 1, 2]
    mutate(d)
    expect_error(write_npz(tmp_path / "bad.npz", d), field, reason)


def test_unmutated_base_loads(tmp_path):
    """The cases above fail because of their mutation, not because of the base."""
    d = base()
    d["items"]["layer"] = [0, 1, 2]
    d["epochs"]["step"] = [0, 1, 2]
    for path in (write_json(tmp_path / "ok.json", d), write_npz(tmp_path / "ok.npz", d)):
        inst = load_instance(path)
        assert inst.num_items == 3 and inst.item_labels["layer"].tolist() == [0, 1, 2]


def test_optional_keys_take_their_defaults(tmp_path):
    d = {"schema": "hetkv-instance", "schema_version": 1, "name": "min",
         "tiers": [{"name": "hbm", "bandwidth_Bps": 2}],
         "items": {"size_bytes": [1, 2]}, "epochs": {"count": 2},
         "reads": {"epoch": [1], "item": [1], "bytes": [2]}}
    inst = load_instance(write_json(tmp_path / "min.json", d))
    assert inst.mode == "exclusive" and inst.tiers[0].capacity_bytes is None
    assert inst.birth.tolist() == [0, 0] and inst.death.tolist() == [2, 2]
    assert inst.pinned_tier.tolist() == [-1, -1] and inst.initial_tier.tolist() == [-1, -1]
    assert inst.min_time_s.tolist() == [0.0, 0.0] and inst.write_item.size == 0
    assert inst.metadata == {}


# ------------------------------------------------------------------ file-level errors

def test_truncated_json(tmp_path):
    text = json.dumps(base())
    p = tmp_path / "cut.json"
    p.write_text(text[: len(text) // 2])
    expect_error(p, "(file)", r"truncated JSON")
    p.write_text("")
    expect_error(p, "(file)", r"truncated JSON")


def test_invalid_json_text(tmp_path):
    p = tmp_path / "text.json"
    p.write_text("{ this is not json }")
    expect_error(p, "(file)", r"not valid JSON.*line 1")


def test_non_json_bytes(tmp_path):
    p = tmp_path / "binary.json"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
    expect_error(p, "(file)", r"not UTF-8")


def test_top_level_not_an_object(tmp_path):
    expect_error(write_json(tmp_path / "list.json", [1, 2]), "(top level)", r"must be a JSON object")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nowhere.json", "(file)", r"no such file")
    expect_error(tmp_path / "nowhere.npz", "(file)", r"no such file")


def test_npz_garbage(tmp_path):
    p = tmp_path / "garbage.npz"
    p.write_bytes(b"this is not a zip file at all")
    expect_error(p, "(file)", NPZ_REASON)


def test_json_saved_as_npz(tmp_path):
    p = tmp_path / "json.npz"
    p.write_text(json.dumps(base()))
    expect_error(p, "(file)", NPZ_REASON)


def test_npz_truncated(tmp_path):
    p = tmp_path / "full.npz"
    save_instance(tiny_instance(), p)
    data = p.read_bytes()
    for n in (0, 10, len(data) // 3, len(data) // 2, len(data) - 10):
        q = tmp_path / f"cut{n}.npz"
        q.write_bytes(data[:n])
        expect_error(q, "(file)", NPZ_REASON)


def test_npz_without_header(tmp_path):
    p = tmp_path / "nohead.npz"
    np.savez(p, **{"items.size_bytes": np.array([1])})
    expect_error(p, "header", r"missing required key")


def test_npz_header_not_json(tmp_path):
    p = tmp_path / "badhead.npz"
    np.savez(p, header=np.array("{not json"), **{"items.size_bytes": np.array([1])})
    expect_error(p, "header", r"not valid JSON")


def test_npz_with_pickled_object_array(tmp_path):
    p = tmp_path / "pickle.npz"
    d = base()
    np.savez(p, header=np.array(json.dumps({k: v for k, v in d.items() if k not in ARRAY_BLOCKS})),
             **{"items.size_bytes": np.array([1, None, 1], dtype=object)})
    expect_error(p, "(file)", NPZ_REASON)




def test_npz_corrupted_bytes_give_model_error(tmp_path):
    """Flip each byte of the first member's compressed data (and of the central
    directory): the loader may accept the file (CRC permitting) or refuse it, but only
    with a ModelError."""
    p = tmp_path / "ok.npz"
    save_instance(tiny_instance(), p)
    data = p.read_bytes()
    with zipfile.ZipFile(p) as z:
        info = z.infolist()[0]
        cd_start = z.start_dir                       # the central directory
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    positions = list(range(start, start + info.compress_size)) + list(range(cd_start, len(data)))
    escaped = []
    q = tmp_path / "bad.npz"
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        q.write_bytes(bytes(bad))
        try:
            load_instance(q)
        except ModelError as exc:
            assert str(q) in str(exc)
        except Exception as exc:  # noqa: BLE001 - that is the point
            escaped.append((pos, f"{type(exc).__module__}.{type(exc).__name__}"))
    assert not escaped, escaped[:5]


# -------------------------------------------------------------- schedule file errors

def sched_base() -> dict:
    return {"schema": "hetkv-schedule", "schema_version": 1, "instance": "tiny",
            "moves": {"item": [0, 1, 2], "epoch": [0, 0, 1], "tier": [0, 1, 0]}}


SCHED_CASES = [
    ("wrong-schema", _set(["schema"], "hetkv-instance"), "schema", r"expected 'hetkv-schedule'"),
    ("future-version", _set(["schema_version"], 3), "schema_version", r"newer"),
    ("unknown-version", _set(["schema_version"], -1), "schema_version", r"unknown version"),
    ("no-moves", _del(["moves"]), "moves", r"missing required key"),
    ("no-instance", _del(["instance"]), "instance", r"missing required key"),
    ("instance-not-string", _set(["instance"], 3), "instance", r"must be a string"),
    ("no-tier", _del(["moves", "tier"]), "moves.tier", r"missing required key"),
    ("short-epoch", _set(["moves", "epoch"], [0, 0]), "moves.epoch", r"has 2 entries, expected 3"),
    ("long-tier", _set(["moves", "tier"], [0, 1, 0, 1]), "moves.tier", r"has 4 entries, expected 3"),
    ("fractional-tier", _set(["moves", "tier"], [0, 1.5, 0]), "moves.tier", r"whole numbers"),
    ("string-item", _set(["moves", "item"], ["a", "b", "c"]), "moves.item", r"integers"),
    ("unknown-key", _set(["colour"], 1), "colour", r"unknown key"),
]


@pytest.mark.parametrize("mutate, field, reason", [c[1:] for c in SCHED_CASES],
                         ids=[c[0] for c in SCHED_CASES])
def test_schedule_json_errors(tmp_path, mutate, field, reason):
    d = sched_base()
    mutate(d)
    expect_error(write_json(tmp_path / "bad.json", d), field, reason, loader=load_schedule)


def test_schedule_file_level_errors(tmp_path):
    text = json.dumps(sched_base())
    p = tmp_path / "cut.json"
    p.write_text(text[:-5])
    expect_error(p, "(file)", r"truncated JSON", loader=load_schedule)
    p = tmp_path / "junk.npz"
    p.write_bytes(b"PK\x03\x04 but not really a zip")
    expect_error(p, "(file)", NPZ_REASON, loader=load_schedule)
    p = tmp_path / "missing.json"
    expect_error(p, "(file)", r"no such file", loader=load_schedule)
    p = tmp_path / "nohead.npz"
    np.savez(p, **{"moves.item": np.array([0])})
    expect_error(p, "header", r"missing required key", loader=load_schedule)


# ---------------------------------------------------- validation of tiers (once library bugs)



def test_tier0_link_write_error_names_link_write(tmp_path):
    d = base()
    d["tiers"][0]["link_write_Bps"] = 1.0
    expect_error(write_json(tmp_path / "bad.json", d), "tiers[0].link_write_Bps", r"no link")




@pytest.mark.parametrize("tiers, field", [
    ([Tier("hbm", None, 4.0, link_read_Bps=1.0), Tier("dram", None, 1.0)], "tiers[0].link_read_Bps"),
    ([Tier("hbm", None, 0.0), Tier("dram", None, 1.0)], "tiers[0].bandwidth_Bps"),
    ([Tier("hbm", None, 4.0), Tier("dram", None, -1.0)], "tiers[1].bandwidth_Bps"),
    ([Tier("hbm", -3, 4.0), Tier("dram", None, 1.0)], "tiers[0].capacity_bytes"),
], ids=["tier0-link", "zero-bandwidth", "negative-bandwidth", "negative-capacity"])
def test_tier_objects_are_validated(tiers, field):
    with pytest.raises(ModelError) as info:
        make_instance(name="t", tiers=tiers, size_bytes=[1], num_epochs=1)
    assert info.value.field == field


def test_hash_of_tier_objects_survives_a_round_trip(tmp_path):
    inst = make_instance(name="t", tiers=[Tier("hbm", 2, 4), Tier("dram", None, 1)],
                         size_bytes=[1], num_epochs=1, reads=([0], [0], [1]))
    save_instance(inst, tmp_path / "t.json")
    back = load_instance(tmp_path / "t.json")
    assert back.equals(inst)
    assert instance_hash(back) == instance_hash(inst)


def test_tier_mappings_are_validated():
    """The mapping path refuses what the Tier-object path above lets through."""
    for spec, field in (({"name": "hbm", "capacity_bytes": None, "bandwidth_Bps": 0.0}, "tiers[0].bandwidth_Bps"),
                        ({"name": "hbm", "capacity_bytes": -3, "bandwidth_Bps": 1.0}, "tiers[0].capacity_bytes")):
        with pytest.raises(ModelError) as info:
            make_instance(name="t", tiers=[spec], size_bytes=[1], num_epochs=1)
        assert info.value.field == field


# ------------------------------------------------------------------------ round trips

def only_file(tmp_path, name):
    """The writer is atomic: no temporary file is left next to the result."""
    assert sorted(os.listdir(tmp_path)) == sorted(name), os.listdir(tmp_path)


@FILES
@given(instances(labels=True))
def test_instance_round_trips(tmp_path_factory, inst):
    tmp = tmp_path_factory.mktemp("rt")
    pj, pn = tmp / "i.json", tmp / "i.npz"
    save_instance(inst, pj)
    save_instance(inst, pn)
    only_file(tmp, ["i.json", "i.npz"])
    from_json, from_npz = load_instance(pj), load_instance(pn)
    assert from_json.equals(inst) and from_npz.equals(inst) and from_json.equals(from_npz)
    assert from_json.metadata == inst.metadata == from_npz.metadata
    assert instance_hash(from_json) == instance_hash(from_npz) == instance_hash(inst)
    # saving the same instance twice gives the same bytes (and so does a reloaded copy)
    save_instance(inst, tmp / "j.json")
    save_instance(from_npz, tmp / "k.json")
    save_instance(inst, tmp / "j.npz")
    save_instance(from_json, tmp / "k.npz")
    assert pj.read_bytes() == (tmp / "j.json").read_bytes() == (tmp / "k.json").read_bytes()
    assert pn.read_bytes() == (tmp / "j.npz").read_bytes() == (tmp / "k.npz").read_bytes()


def rebuild(inst, **over):
    kw = dict(name=inst.name, tiers=inst.tiers, size_bytes=inst.size_bytes,
              num_epochs=inst.num_epochs, birth=inst.birth, death=inst.death,
              pinned_tier=inst.pinned_tier, initial_tier=inst.initial_tier,
              min_time_s=inst.min_time_s, mode=inst.mode, item_labels=inst.item_labels,
              epoch_labels=inst.epoch_labels, metadata=inst.metadata,
              reads=(inst.read_epoch, inst.read_item, inst.read_bytes),
              writes=(inst.write_epoch, inst.write_item, inst.write_bytes))
    kw.update(over)
    return make_instance(**kw)


@FILES
@given(instances(labels=True))
def test_instance_hash_sees_every_change(inst):
    h = instance_hash(inst)
    assert instance_hash(rebuild(inst)) == h and rebuild(inst).equals(inst)
    changed = [rebuild(inst, name=inst.name + "x"),
               rebuild(inst, min_time_s=inst.min_time_s + 0.5),
               rebuild(inst, size_bytes=inst.size_bytes + 1),
               rebuild(inst, metadata={**inst.metadata, "extra": 1}),
               rebuild(inst, reads=(inst.read_epoch, inst.read_item, inst.read_bytes * 0 + 1),
                       writes=((), (), ()))]
    for other in changed[:4]:
        assert instance_hash(other) != h
        assert not other.equals(inst) or other.metadata != inst.metadata
    if inst.read_bytes.sum() != inst.read_bytes.size or inst.write_item.size:
        assert instance_hash(changed[4]) != h and not changed[4].equals(inst)


def test_tiny_instance_file_is_the_model_md_example(tmp_path):
    """docs/model.md section 6 prints this instance's JSON: loading that text gives it."""
    text = """{"schema": "hetkv-instance", "schema_version": 1, "name": "tiny", "mode": "exclusive",
     "tiers": [{"name": "hbm", "capacity_bytes": 2, "bandwidth_Bps": 4.0},
               {"name": "dram", "capacity_bytes": null, "bandwidth_Bps": 1.0,
                "link_read_Bps": 1.0, "link_write_Bps": 1.0}],
     "items":  {"size_bytes": [1, 1, 1], "birth": [0, 0, 1], "death": [3, 3, 3],
                "pinned_tier": [-1, -1, -1], "initial_tier": [-1, -1, -1]},
     "epochs": {"count": 3, "min_time_s": [0, 0, 0]},
     "reads":  {"epoch": [0, 0, 1, 2, 2], "item": [0, 1, 2, 0, 2], "bytes": [1, 1, 1, 1, 1]},
     "writes": {"epoch": [1], "item": [2], "bytes": [1]},
     "metadata": {}}"""
    p = tmp_path / "tiny.json"
    p.write_text(text)
    inst = load_instance(p)
    assert inst.equals(tiny_instance())
    assert instance_hash(inst) == instance_hash(tiny_instance())
    s = tmp_path / "s.json"
    s.write_text('{"schema": "hetkv-schedule", "schema_version": 1, "instance": "tiny",'
                 ' "moves": {"item": [0, 1, 2], "epoch": [0, 0, 1], "tier": [0, 1, 0]}}')
    assert load_schedule(s).equals(Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))


@FILES
@given(instances_with_residency())
def test_schedule_round_trips(tmp_path_factory, case):
    inst, rho, sched = case
    tmp = tmp_path_factory.mktemp("srt")
    extra = {"method": "test", "instance_hash": instance_hash(inst)}
    for name, kw in (("s.json", {}), ("s.npz", {}), ("m.json", {"extra": extra}),
                     ("m.npz", {"extra": extra})):
        save_schedule(sched, tmp / name, **kw)
        back = load_schedule(tmp / name)
        assert back.equals(sched), name
        assert back.item.dtype == np.int64
        again = tmp / ("again-" + name)
        save_schedule(back, again, **kw)
        assert again.read_bytes() == (tmp / name).read_bytes(), name
    only_file(tmp, ["s.json", "s.npz", "m.json", "m.npz", "again-s.json", "again-s.npz",
                    "again-m.json", "again-m.npz"])
    meta = json.loads((tmp / "m.json").read_text())["metadata"]
    assert meta == extra


def test_empty_schedule_round_trips(tmp_path):
    empty = Schedule("none", [], [], [])
    for name in ("e.json", "e.npz"):
        save_schedule(empty, tmp_path / name)
        assert load_schedule(tmp_path / name).equals(empty)


def test_schedule_equals_is_strict():
    a = Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0])
    assert a.equals(Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    assert not a.equals(Schedule("tiny", [0, 1, 2], [0, 0, 1], [0, 1, 1]))
    assert not a.equals(Schedule("other", [0, 1, 2], [0, 0, 1], [0, 1, 0]))
    with pytest.raises(ModelError):
        Schedule("tiny", [0, 1], [0], [0, 1])
