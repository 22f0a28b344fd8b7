"""The sharded instance layout (docs/model.md section 6, "Sharded instances"): round trips
are identities, a layer loads alone exactly as split_by_layer cuts it, writes are atomic,
every damaged or inconsistent folder is refused naming the file and the field, and
``hetkv info`` reads only the manifest and the epochs file, with the NPZ file's numbers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from cli_helpers import assert_one_line_error, hetkv
from hetkv_opt.io import shards_write as shards_mod
from hetkv_opt.io.files import instance_hash, load_instance, save_instance
from hetkv_opt.io.formats import read_npz_with_header
from hetkv_opt.io.schema import load_schema, validate, validate_file
from hetkv_opt.io.shards import MANIFEST, open_sharded, save_sharded
from hetkv_opt.io.shards_write import write_npz
from hetkv_opt.io.shards_stream import ShardedInstanceWriter, stream_sharded
from hetkv_opt.io.summary import _npz_summary, describe, instance_summary
from hetkv_opt.model.instance import ModelError, make_instance, tiny_instance
from hetkv_opt.model.parts import split_by_layer
from hetkv_opt.testing import instances, random_instance
from hetkv_opt.workloads.drift import DriftParams, drift_instance
from hetkv_opt.workloads.paper import paper_instance
from hetkv_opt.workloads.requests import Request, build_workload, write_workload

FILES = settings(max_examples=25, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def _paper():
    return paper_instance(layers=3, prompt_tokens=48, steps=6)


def _mixed():
    """Items of several layers read in the same epochs (every 7th item unlabelled)."""
    base = _paper()
    labels = dict(base.item_labels)
    layer = labels["layer"].copy()
    layer[::7] = -1
    labels["layer"] = layer
    return make_instance(
        name="mixed", tiers=base.tiers, size_bytes=base.size_bytes, num_epochs=base.num_epochs,
        birth=base.birth, pinned_tier=base.pinned_tier,
        reads=(base.read_epoch, base.read_item, base.read_bytes),
        writes=(base.write_epoch, base.write_item, base.write_bytes),
        item_labels=labels, epoch_labels=base.epoch_labels, metadata={"why": ("a", "tuple")})


def _workload():
    return build_workload(model="smollm2-135m", hardware="gh200-paper", layers=2, sparsity=0.5,
                          requests=[Request(40, 8), Request(20, 4, arrival_step=2)])


CASES = {
    "paper": _paper,
    "drift-one-layer": lambda: drift_instance(DriftParams(blocks=16, steps=8)),
    "three-tier-unlabelled": lambda: random_instance(3, num_tiers=3, labels=True),
    "inclusive": lambda: random_instance(5, mode="inclusive", labels=True),
    "mixed-layers": _mixed,
    "requests": _workload,
    "tiny": tiny_instance,
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def _same_dtypes(a, b):
    for f in ("size_bytes", "birth", "death", "pinned_tier", "initial_tier", "min_time_s",
              "read_epoch", "read_item", "read_bytes", "write_epoch", "write_item", "write_bytes"):
        assert getattr(a, f).dtype == getattr(b, f).dtype, f
    for labels in ("item_labels", "epoch_labels"):
        x, y = getattr(a, labels), getattr(b, labels)
        assert set(x) == set(y)
        for k in x:
            assert x[k].dtype == y[k].dtype, (labels, k)


# ----------------------------------------------------------------------------- round trips

def test_round_trip_is_the_identity(tmp_path, case):
    path = tmp_path / "x.hetkv"
    save_sharded(case, path)
    back = open_sharded(path).load_all()
    assert back.equals(case)
    _same_dtypes(back, case)
    assert instance_hash(back) == instance_hash(case)
    assert load_instance(path).equals(case)              # every command's loader


def test_load_part_is_split_by_layer(tmp_path, case):
    path = tmp_path / "x.hetkv"
    save_sharded(case, path)
    sh = open_sharded(path)
    parts = split_by_layer(case)
    assert sh.layers == [p.layer for p in parts]
    for want in parts:
        got = sh.load_part(want.layer)
        assert got.layer == want.layer
        assert got.instance.name == want.instance.name == f"{case.name}/layer{want.layer}"
        assert got.instance.equals(want.instance)
        _same_dtypes(got.instance, want.instance)
        assert got.items.dtype == want.items.dtype and np.array_equal(got.items, want.items)


def test_layout_of_the_folder(tmp_path):
    inst = _mixed()
    path = tmp_path / "m.hetkv"
    save_sharded(inst, path)
    assert sorted(os.listdir(path)) == ["epochs.npz", "layer-000.npz", "layer-001.npz",
                                        "layer-002.npz", "layer-none.npz", MANIFEST]
    m = json.loads((path / MANIFEST).read_text())
    assert m["schema"] == "hetkv-sharded-instance" and m["schema_version"] == 1
    assert [s["layer"] for s in m["shards"]] == [-1, 0, 1, 2]
    assert m["instance_sha256"] == instance_hash(inst)
    assert m["items"] == {"count": inst.num_items, "labels": sorted(inst.item_labels)}
    for s, part in zip(m["shards"], split_by_layer(inst)):
        assert s["items"] == part.instance.num_items and s["first_item"] == int(part.items[0])
        assert s["reads"] == part.instance.read_item.size
        assert s["read_bytes"] == int(part.instance.read_bytes.sum())
        arrays, header = read_npz_with_header((path / s["file"]).read_bytes(), "shard")
        assert header["layer"] == s["layer"]
        assert np.array_equal(arrays["items.index"], part.items)
        # item indices local to the shard
        assert arrays["reads.item"].max() < s["items"]
    arrays, _ = read_npz_with_header((path / "epochs.npz").read_bytes(), "epochs")
    assert np.array_equal(arrays["summary.read_bytes"], inst.reads_per_epoch_bytes())
    assert arrays["summary.read_bytes"].dtype == np.float64
    assert np.array_equal(arrays["summary.reads"], np.bincount(inst.read_epoch, minlength=inst.num_epochs))


@FILES
@given(instances(labels=True))
def test_round_trips_of_random_instances(tmp_path_factory, inst):
    path = tmp_path_factory.mktemp("h") / "r.hetkv"
    save_sharded(inst, path)
    sh = open_sharded(path)
    assert sh.load_all().equals(inst)
    for want in split_by_layer(inst):
        assert sh.load_part(want.layer).instance.equals(want.instance)
    assert describe(path) == instance_summary(inst)


def test_save_and_load_instance_take_the_hetkv_suffix(tmp_path):
    inst = _paper()
    save_instance(inst, tmp_path / "a.hetkv")
    assert (tmp_path / "a.hetkv" / MANIFEST).is_file()
    assert load_instance(tmp_path / "a.hetkv").equals(inst)
    # a folder holding a manifest is a sharded instance whatever its name
    shutil.copytree(tmp_path / "a.hetkv", tmp_path / "copy")
    assert load_instance(tmp_path / "copy").equals(inst)


def test_saving_again_replaces_a_sharded_folder(tmp_path):
    path = tmp_path / "x.hetkv"
    save_sharded(_paper(), path)
    other = drift_instance(DriftParams(blocks=8, steps=4))
    save_sharded(other, path)
    assert load_instance(path).equals(other)
    assert sorted(os.listdir(path)) == ["epochs.npz", "layer-000.npz", MANIFEST]
    assert sorted(os.listdir(tmp_path)) == ["x.hetkv"]          # nothing left beside it


def test_writes_are_deterministic(tmp_path):
    inst = _workload()
    save_sharded(inst, tmp_path / "a.hetkv")
    save_sharded(inst, tmp_path / "b.hetkv")
    for f in os.listdir(tmp_path / "a.hetkv"):
        assert (tmp_path / "a.hetkv" / f).read_bytes() == (tmp_path / "b.hetkv" / f).read_bytes()


def test_the_manifest_matches_its_schema(tmp_path):
    path = tmp_path / "x.hetkv"
    save_sharded(_mixed(), path)
    assert validate_file(path) == []
    assert validate_file(path / MANIFEST, "sharded") == []
    m = json.loads((path / MANIFEST).read_text())
    m["shards"][0]["colour"] = 1
    assert any("shards[0].colour" in p for p in validate(m, load_schema("sharded")))
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(load_schema("sharded"))
    jsonschema.validate(json.loads((path / MANIFEST).read_text()), load_schema("sharded"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(m, load_schema("sharded"))


# ----------------------------------------------------------------------------- streaming

@pytest.mark.parametrize("chunk", [None, 5])
def test_the_streaming_writer_writes_the_same_folder(tmp_path, monkeypatch, case, chunk):
    if chunk is not None:   # long runs cut in pieces, many batches
        import hetkv_opt.io.shards_stream as ss
        monkeypatch.setattr(ss, "_CHUNK", chunk)
    save_sharded(case, tmp_path / "a.hetkv")
    sha = stream_sharded(case, tmp_path / "b.hetkv", epochs_per_chunk=2)
    assert sha == instance_hash(case)
    names = sorted(os.listdir(tmp_path / "a.hetkv"))
    assert names == sorted(os.listdir(tmp_path / "b.hetkv"))
    for f in names:
        assert (tmp_path / "a.hetkv" / f).read_bytes() == (tmp_path / "b.hetkv" / f).read_bytes(), f
    assert load_instance(tmp_path / "b.hetkv").equals(case)


def test_write_workload_streams_the_sharded_layout(tmp_path):
    kw = dict(model="smollm2-135m", hardware="gh200-paper", layers=3, sparsity=0.6,
              requests=[Request(64, 10), Request(32, 6, arrival_step=3)])
    a = write_workload(tmp_path / "w.hetkv", **kw)
    b = write_workload(tmp_path / "w.npz", **kw)
    inst = build_workload(**kw)
    assert a["sha256"] == b["sha256"] == instance_hash(inst)
    assert {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}
    assert load_instance(tmp_path / "w.hetkv").equals(inst)
    assert describe(tmp_path / "w.hetkv") == describe(tmp_path / "w.npz") == instance_summary(inst)


def test_the_streaming_writer_checks_what_it_is_given(tmp_path):
    inst = tiny_instance()
    w = ShardedInstanceWriter(tmp_path / "s.hetkv", name="s", tiers=inst.tiers, num_epochs=3,
                              items={"size_bytes": [1, 1, 1], "birth": [0, 0, 2],
                                     "layer": [0, 1, 0]})
    w.add_reads([1, 1], [0, 1], [1, 1])
    with pytest.raises(ModelError, match="not after"):
        w.add_reads([0], [0], [1])
    with pytest.raises(ModelError, match="outside its life"):
        w.add_reads([1], [2], [1])
    with pytest.raises(ModelError, match="exceed its size"):
        w.add_writes([2], [2], [2])
    w.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(ModelError, match="unknown key"):
        ShardedInstanceWriter(tmp_path / "s.hetkv", name="s", tiers=inst.tiers, num_epochs=3,
                              items={"size_bytes": [1], "colour": [2]})
    with pytest.raises(ModelError, match=r"\.hetkv"):
        ShardedInstanceWriter(tmp_path / "s.npz", name="s", tiers=inst.tiers, num_epochs=3,
                              items={"size_bytes": [1]})
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes

def _fail_on_second_shard(monkeypatch, exc=RuntimeError("disk full")):
    calls = {"n": 0}
    real = shards_mod.write_npz

    def flaky(path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise exc
        return real(path, *a, **kw)
    monkeypatch.setattr(shards_mod, "write_npz", flaky)
    return calls


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_no_folder(tmp_path, monkeypatch, exc):
    _fail_on_second_shard(monkeypatch, exc)
    with pytest.raises(type(exc)):
        save_sharded(_paper(), tmp_path / "x.hetkv")
    assert os.listdir(tmp_path) == []          # no x.hetkv, no temporary folder


def test_a_failed_write_keeps_the_old_folder(tmp_path, monkeypatch):
    old = drift_instance(DriftParams(blocks=8, steps=4))
    save_sharded(old, tmp_path / "x.hetkv")
    _fail_on_second_shard(monkeypatch)
    with pytest.raises(RuntimeError):
        save_sharded(_paper(), tmp_path / "x.hetkv")
    assert os.listdir(tmp_path) == ["x.hetkv"]
    assert load_instance(tmp_path / "x.hetkv").equals(old)


def test_a_failed_stream_leaves_no_folder(tmp_path, monkeypatch):
    import hetkv_opt.io.shards_stream as ss
    calls = {"n": 0}
    real = ss.write_npz

    def flaky(path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(path, *a, **kw)
    monkeypatch.setattr(ss, "write_npz", flaky)
    with pytest.raises(OSError):
        stream_sharded(_paper(), tmp_path / "x.hetkv")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ZeroDivisionError):       # an error while adding: abort, nothing left
        with ShardedInstanceWriter(tmp_path / "y.hetkv", name="y", tiers=_paper().tiers,
                                   num_epochs=2, items={"size_bytes": [1, 1]}) as w:
            w.add_reads([0], [0], [1])
            1 / 0
    assert os.listdir(tmp_path) == []


def test_refuses_to_replace_what_is_not_a_sharded_folder(tmp_path):
    (tmp_path / "f.hetkv").write_text("mine")
    (tmp_path / "d.hetkv").mkdir()
    (tmp_path / "d.hetkv" / "notes.txt").write_text("mine too")
    with pytest.raises(ModelError, match="not a folder"):
        save_sharded(_paper(), tmp_path / "f.hetkv")
    with pytest.raises(ModelError, match="not a sharded instance"):
        save_sharded(_paper(), tmp_path / "d.hetkv")
    with pytest.raises(ModelError, match=r"ends in \.hetkv"):
        save_sharded(_paper(), tmp_path / "x.npz")
    assert (tmp_path / "f.hetkv").read_text() == "mine"
    assert os.listdir(tmp_path / "d.hetkv") == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["d.hetkv", "f.hetkv"]


# ----------------------------------------------------------------------------- validation

@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "v.hetkv"
    save_sharded(_paper(), path)
    return path


def _edit_manifest(path: Path, change) -> None:
    m = json.loads((path / MANIFEST).read_text())
    change(m)
    (path / MANIFEST).write_text(json.dumps(m))


def _rewrite_shard(path: Path, k: int, change) -> None:
    """Change shard k's arrays (or header) and write it back with a matching SHA-256."""
    m = json.loads((path / MANIFEST).read_text())
    s = m["shards"][k]
    arrays, header = read_npz_with_header((path / s["file"]).read_bytes(), "shard")
    change(arrays, header)
    s["sha256"] = write_npz(path / s["file"], header, arrays)
    (path / MANIFEST).write_text(json.dumps(m))


def _error(fn, *needles) -> ModelError:
    with pytest.raises(ModelError) as info:
        fn()
    text = str(info.value)
    for n in needles:
        assert n in text, (n, text)
    return info.value


def _swap(a, key, i, j):
    a[key] = a[key].copy()
    a[key][[i, j]] = a[key][[j, i]]


MANIFEST_ERRORS = [
    (lambda m: m.update(schema="hetkv-instance"), "field 'schema'", "expected 'hetkv-sharded-instance'"),
    (lambda m: m.update(schema_version=2), "field 'schema_version'", "newer"),
    (lambda m: m.update(colour=1), "field 'colour'", "unknown key"),
    (lambda m: m.pop("shards"), "field 'shards'", "missing"),
    (lambda m: m["shards"][0].update(sha256="abc"), "field 'shards[0].sha256'", "SHA-256"),
    (lambda m: m["shards"][1].update(file="../x.npz"), "field 'shards[1].file'", "no path"),
    (lambda m: m["shards"][1].update(layer=0), "field 'shards[1].layer'", "ascending"),
    (lambda m: m["shards"][2].update(items=m["shards"][2]["items"] + 1), "field 'items.count'", "shards hold"),
    (lambda m: m["shards"][0].update(reads=-1), "field 'shards[0].reads'", ">= 0"),
    (lambda m: m["items"].update(labels=["colour"]), "field 'items.labels'", "distinct item labels"),
    (lambda m: m["tiers"][0].update(bandwidth_Bps=0), "field 'tiers[0].bandwidth_Bps'", "> 0"),
    (lambda m: m["epochs"].update(count=0), "field 'epochs.count'", ">= 1"),
    (lambda m: m.update(mode="inclusive", tiers=m["tiers"] * 2), "field 'tiers'", "distinct"),
]


@pytest.mark.parametrize("change, field, reason", MANIFEST_ERRORS)
def test_bad_manifests_are_refused_on_open(folder, change, field, reason):
    _edit_manifest(folder, change)
    err = _error(lambda: open_sharded(folder), f"{folder / MANIFEST}: {field}", reason)
    assert isinstance(err, ModelError)


def test_a_manifest_that_is_not_json(folder):
    text = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(text[: len(text) // 2])
    _error(lambda: open_sharded(folder), str(folder / MANIFEST), "truncated JSON")


def test_a_folder_without_manifest_or_a_file(tmp_path):
    (tmp_path / "e.hetkv").mkdir()
    _error(lambda: load_instance(tmp_path / "e.hetkv"), "manifest.json", "no such file")
    _error(lambda: load_instance(tmp_path / "gone.hetkv"), "gone.hetkv", "no such file")
    (tmp_path / "f.hetkv").write_text("{}")
    _error(lambda: load_instance(tmp_path / "f.hetkv"), "f.hetkv", "a folder holding manifest.json")


def test_a_missing_shard_file(folder):
    os.unlink(folder / "layer-001.npz")
    _error(lambda: open_sharded(folder), f"{folder / MANIFEST}: field 'shards[1].file'",
           "layer-001.npz is missing")
    _error(lambda: describe(folder), "shards[1].file", "missing")


def test_a_missing_epochs_file(folder):
    os.unlink(folder / "epochs.npz")
    _error(lambda: open_sharded(folder), "field 'epochs.file'", "epochs.npz is missing")


def test_a_damaged_shard_is_refused_when_it_is_loaded(folder):
    data = bytearray((folder / "layer-002.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "layer-002.npz").write_bytes(bytes(data))
    sh = open_sharded(folder)                       # the manifest is fine
    sh.load_part(0)                                 # and so are the other shards
    sh.load_part(1)
    _error(lambda: sh.load_part(2), f"{folder / MANIFEST}: field 'shards[2].sha256'",
           "layer-002.npz has SHA-256", "changed or damaged")
    _error(lambda: load_instance(folder), "shards[2].sha256")


def test_a_damaged_epochs_file(folder):
    data = bytearray((folder / "epochs.npz").read_bytes())
    data[-30] ^= 0xFF
    (folder / "epochs.npz").write_bytes(bytes(data))
    _error(lambda: open_sharded(folder).summary(), "field 'epochs.sha256'", "epochs.npz")


def test_counts_that_disagree_with_the_shard(folder):
    _edit_manifest(folder, lambda m: m["shards"][1].update(pinned_items=5))
    sh = open_sharded(folder)
    sh.load_part(0)
    _error(lambda: sh.load_part(1), f"{folder / MANIFEST}: field 'shards[1].pinned_items'",
           "5, but layer-001.npz holds 1")


def test_read_counts_that_disagree_with_the_epochs_file(folder):
    _edit_manifest(folder, lambda m: m["shards"][1].update(reads=m["shards"][1]["reads"] + 1))
    _error(lambda: open_sharded(folder).load_part(0), "epochs.npz: field 'summary.reads'",
           "the shards of the manifest")


def test_shard_reads_outside_the_layers_items(folder):
    def change(a, h):
        a["reads.item"] = a["reads.item"].copy()
        a["reads.item"][3] = a["items.index"].size          # one past the shard's items
    _rewrite_shard(folder, 1, change)
    n = open_sharded(folder).manifest["shards"][1]["items"]
    _error(lambda: open_sharded(folder).load_part(1), f"{folder / 'layer-001.npz'}: field 'reads.item'",
           f"outside 0..{n - 1}")


@pytest.mark.parametrize("change, field, reason", [
    (lambda a, h: _swap(a, "items.index", 0, 1), "items.index", "ascending"),
    (lambda a, h: a.update({"items.index": a["items.index"][:-1]}), "items.index", "must be"),
    (lambda a, h: h.update(layer=2), "header.layer", "another instance or layer"),
    (lambda a, h: h.update(schema="hetkv-instance"), "schema", "expected 'hetkv-instance-shard'"),
    (lambda a, h: a.pop("reads.bytes"), "reads.bytes", "missing required key"),
    (lambda a, h: a.update({"items.colour": a["items.size_bytes"]}), "items.colour", "unknown key"),
    (lambda a, h: a.update({"items.layer": np.full_like(a["items.layer"], 2)}), "items.layer",
     "shard of layer 1"),
    (lambda a, h: a.update({"reads.bytes": a["reads.bytes"] * 0}), "reads.bytes", "must be > 0"),
    (lambda a, h: a.update({"items.death": a["items.birth"]}), "items.death", "outside 1.."),
])
def test_bad_shards_are_refused(folder, change, field, reason):
    _rewrite_shard(folder, 1, change)
    _error(lambda: open_sharded(folder).load_part(1), f"{folder / 'layer-001.npz'}: field '{field}'",
           reason)


def test_shards_that_do_not_partition_the_items(folder):
    m = json.loads((folder / MANIFEST).read_text())
    first0 = m["shards"][0]["first_item"]

    def change(a, h):
        # shard 1 claims one of shard 0's items instead of one of its own
        idx = a["items.index"].copy()
        idx[0] = first0
        a["items.index"] = idx
    _rewrite_shard(folder, 1, change)
    _edit_manifest(folder, lambda m: m["shards"][1].update(first_item=first0))
    _error(lambda: load_instance(folder), f"{folder / MANIFEST}: field 'shards'",
           f"item {first0} is in 2 shards")


def test_an_instance_hash_that_does_not_hold(folder):
    _edit_manifest(folder, lambda m: m.update(instance_sha256="0" * 64))
    open_sharded(folder).load_part(0)               # a part alone cannot tell
    _error(lambda: load_instance(folder), "field 'instance_sha256'", "the manifest says 0000")


def test_an_unknown_layer(folder):
    _error(lambda: open_sharded(folder).load_part(7), "field 'layer'", "no shard for layer 7")


# ----------------------------------------------------------------------------- info

def test_summary_reads_only_the_manifest_and_the_epochs_file(folder):
    inst = load_instance(folder)
    for f in folder.glob("layer-*.npz"):             # shards unreadable: info does not care
        f.write_bytes(b"garbage")
    assert describe(folder) == instance_summary(inst)
    assert open_sharded(folder).summary()["sha256"] == instance_hash(inst)


def test_npz_summary_streams_and_agrees(tmp_path, case):
    path = tmp_path / "x.npz"
    save_instance(case, path)
    fast = _npz_summary(path)
    assert fast is not None                          # the streaming path, not the loader
    assert fast == instance_summary(case) == describe(path)


def test_npz_summary_chunked(tmp_path, monkeypatch):
    import hetkv_opt.io.summary as summ
    monkeypatch.setattr(summ, "_CHUNK", 7)
    inst = _workload()
    save_instance(inst, tmp_path / "x.npz")
    assert _npz_summary(tmp_path / "x.npz") == instance_summary(inst)


def test_npz_summary_leaves_odd_files_to_the_loader(tmp_path):
    from hetkv_opt.io.formats import _instance_arrays
    inst = _paper()
    arrays, header = _instance_arrays(inst)
    # unsorted reads (allowed in a file: the loader sorts them) and int32 members
    order = np.random.default_rng(0).permutation(inst.read_epoch.size)
    odd = dict(arrays)
    for k in ("epoch", "item", "bytes"):
        odd[f"reads.{k}"] = arrays[f"reads.{k}"][order]
    np.savez(tmp_path / "unsorted.npz", header=np.array(json.dumps(header)), **odd)
    small = {k: (v.astype(np.int32) if v.dtype == np.int64 else v) for k, v in arrays.items()}
    np.savez(tmp_path / "int32.npz", header=np.array(json.dumps(header)), **small)
    for name in ("unsorted.npz", "int32.npz"):
        assert describe(tmp_path / name) == instance_summary(inst)
    # a damaged file: the loader's own message
    save_instance(inst, tmp_path / "ok.npz")
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(ModelError) as a:
        load_instance(tmp_path / "bad.npz")
    with pytest.raises(ModelError) as b:
        describe(tmp_path / "bad.npz")
    assert str(a.value) == str(b.value)


# ----------------------------------------------------------------------------- the CLI

def test_cli_generate_and_info_agree_with_the_npz(tmp_path):
    args = ["--preset-workload", "paper", "--output-tokens", "128", "-q"]
    hetkv("generate", tmp_path / "x.hetkv", *args)
    hetkv("generate", tmp_path / "x.npz", *args)
    assert (tmp_path / "x.hetkv" / MANIFEST).is_file()
    a = json.loads(hetkv("info", tmp_path / "x.hetkv", "-f", "json").stdout)
    b = json.loads(hetkv("info", tmp_path / "x.npz", "-f", "json").stdout)
    assert a == b
    assert a["epochs"] == 128 * 32 and a["items"] > 0 and a["reads"] > 1_000_000
    ta = hetkv("info", tmp_path / "x.hetkv").stdout
    tb = hetkv("info", tmp_path / "x.npz").stdout
    assert ta == tb and "aggregate-bandwidth bound" in ta


def test_cli_generate_drift_and_commands_on_a_sharded_folder(tmp_path):
    path = tmp_path / "d.hetkv"
    hetkv("generate", path, "--blocks", "12", "--steps", "6")
    inst = load_instance(path)
    assert inst.equals(drift_instance(DriftParams(blocks=12, steps=6)))
    sched = tmp_path / "s.json"
    hetkv("solve", path, "-m", "milp", "-t", "30", "-q", "-o", sched)
    ev = json.loads(hetkv("evaluate", path, sched, "-f", "json").stdout)
    assert ev["feasible"] and ev["total_time_s"] > 0
    assert "hetkv stats" in hetkv("stats", path).stdout
    info = json.loads(hetkv("info", path, "-f", "json").stdout)
    assert info == instance_summary(inst)


def test_cli_refuses_bad_folders_in_one_line(tmp_path):
    path = tmp_path / "v.hetkv"
    save_sharded(_paper(), path)
    data = bytearray((path / "layer-001.npz").read_bytes())
    data[100] ^= 0xFF
    (path / "layer-001.npz").write_bytes(bytes(data))
    assert_one_line_error(hetkv("stats", path, check_rc=None), "manifest.json", "shards[1].sha256")
    os.unlink(path / "layer-002.npz")
    assert_one_line_error(hetkv("info", path, check_rc=None), "manifest.json", "shards[2].file", "missing")
    _edit_manifest(path, lambda m: m.update(schema_version=9))
    assert_one_line_error(hetkv("info", path, check_rc=None), "schema_version", "newer")
    (tmp_path / "plain.hetkv").write_text("x")
    assert_one_line_error(hetkv("generate", tmp_path / "plain.hetkv", "--blocks", "4", "--steps", "2",
                                check_rc=None), "plain.hetkv", "not a sharded instance folder")
    assert (tmp_path / "plain.hetkv").read_text() == "x"


# ----------------------------------------------------------------------------- converting an NPZ file

def _folder_bytes(path: Path) -> dict:
    return {f: (path / f).read_bytes() for f in sorted(os.listdir(path))}


def _converted(tmp_path, inst, monkeypatch=None, chunk=None):
    """``inst`` saved as NPZ, converted by npz_to_sharded and by save_sharded(load_instance)."""
    from hetkv_opt.io import reshard
    if chunk is not None:
        monkeypatch.setattr(reshard, "_CHUNK", chunk)
    save_instance(inst, tmp_path / "x.npz")
    got = reshard.npz_to_sharded(tmp_path / "x.npz", tmp_path / "x.hetkv")
    save_sharded(load_instance(tmp_path / "x.npz"), tmp_path / "ref.hetkv")
    return got


@pytest.mark.parametrize("chunk", [None, 7])
def test_npz_to_sharded_writes_the_bytes_of_save_sharded(tmp_path, monkeypatch, case, chunk):
    from hetkv_opt.io import reshard

    def no_loading(*a, **kw):
        raise AssertionError("the streaming path must not load the instance")
    real_load = reshard.load_instance
    monkeypatch.setattr(reshard, "load_instance", no_loading)
    save_instance(case, tmp_path / "x.npz")
    if chunk is not None:
        monkeypatch.setattr(reshard, "_CHUNK", chunk)
    seen = []
    got = reshard.npz_to_sharded(tmp_path / "x.npz", tmp_path / "x.hetkv",
                                 progress=lambda done, total: seen.append((done, total)))
    save_sharded(real_load(tmp_path / "x.npz"), tmp_path / "ref.hetkv")
    a, b = _folder_bytes(tmp_path / "x.hetkv"), _folder_bytes(tmp_path / "ref.hetkv")
    assert list(a) == list(b) and a == b                 # every file, byte for byte
    assert got["streamed"] is True
    assert got["sha256"] == instance_hash(case)
    assert got["layers"] == [p.layer for p in split_by_layer(case)]
    assert (got["items"], got["epochs"], got["reads"], got["writes"]) == (
        case.num_items, case.num_epochs, case.read_bytes.size, case.write_bytes.size)
    n = case.read_bytes.size + case.write_bytes.size
    assert seen[-1] == (n, n) and all(x[0] <= y[0] for x, y in zip(seen, seen[1:]))
    if chunk == 7 and n > 7:
        assert len(seen) >= n // 7                       # really a chunk at a time
    assert open_sharded(tmp_path / "x.hetkv").load_all().equals(case)
    assert sorted(os.listdir(tmp_path)) == ["ref.hetkv", "x.hetkv", "x.npz"]   # no spool left


def test_npz_to_sharded_of_an_instance_without_layer_labels(tmp_path):
    inst = drift_instance(DriftParams(blocks=12, steps=6))
    labels = {k: v for k, v in inst.item_labels.items() if k != "layer"}
    bare = make_instance(name="bare", tiers=inst.tiers, size_bytes=inst.size_bytes,
                         num_epochs=inst.num_epochs, birth=inst.birth, death=inst.death,
                         reads=(inst.read_epoch, inst.read_item, inst.read_bytes),
                         item_labels=labels)
    got = _converted(tmp_path, bare)
    assert got["streamed"] and got["layers"] == [-1]
    assert sorted(os.listdir(tmp_path / "x.hetkv")) == ["epochs.npz", "layer-none.npz", MANIFEST]
    assert _folder_bytes(tmp_path / "x.hetkv") == _folder_bytes(tmp_path / "ref.hetkv")


def _npz_with(path: Path, inst, change=None, drop=(), header_change=None) -> Path:
    from hetkv_opt.io.formats import _instance_arrays
    arrays, header = _instance_arrays(inst)
    arrays = {k: np.array(v) for k, v in arrays.items() if k not in drop}
    if change:
        change(arrays)
    if header_change:
        header_change(header)
    np.savez_compressed(path, header=np.array(json.dumps(header)), **arrays)
    return path


def test_odd_but_valid_files_are_converted_by_loading_them(tmp_path):
    from hetkv_opt.io.reshard import npz_to_sharded
    inst = _paper()
    order = np.random.default_rng(1).permutation(inst.read_epoch.size)

    def shuffle(a):                      # any order is allowed in a file: the loader sorts
        for c in ("epoch", "item", "bytes"):
            a[f"reads.{c}"] = a[f"reads.{c}"][order]

    def int32(a):
        for k, v in a.items():
            if v.dtype == np.int64:
                a[k] = v.astype(np.int32)
    save_sharded(inst, tmp_path / "ref.hetkv")
    want = _folder_bytes(tmp_path / "ref.hetkv")
    for name, change in (("unsorted", shuffle), ("int32", int32)):
        src = _npz_with(tmp_path / f"{name}.npz", inst, change)
        got = npz_to_sharded(src, tmp_path / f"{name}.hetkv")
        assert got["streamed"] is False
        assert _folder_bytes(tmp_path / f"{name}.hetkv") == want, name


def _swap_last_two(a):
    for c in ("epoch", "item", "bytes"):
        a[f"reads.{c}"][[-1, -2]] = a[f"reads.{c}"][[-2, -1]]


def _dup_after_unsorted(a):
    """Reads out of order, and a duplicate of the first read at the end."""
    for c in ("epoch", "item", "bytes"):
        a[f"reads.{c}"] = np.concatenate([a[f"reads.{c}"][::-1], a[f"reads.{c}"][:1]])


def _dup(a):
    a["reads.item"][-1] = a["reads.item"][-2]
    a["reads.epoch"][-1] = a["reads.epoch"][-2]


def _set(key, k, value):
    def change(a):
        a[key][k] = value
    return change


def _both(*changes):
    def change(a):
        for c in changes:
            c(a)
    return change


HOSTILE = {
    # name: (change, dropped members, header change, field, words in the message)
    "unsorted-with-a-duplicate": (_dup_after_unsorted, (), None, "reads.item", "duplicate entry"),
    "sorted-with-a-duplicate": (_dup, (), None, "reads.item", "duplicate entry"),
    "unsorted-and-an-item-out-of-range": (_both(_swap_last_two, _set("reads.item", 3, 999)), (), None,
                                          "reads.item", "entry 3: item 999 outside"),
    "item-out-of-range": (_set("reads.item", -4, 10 ** 6), (), None, "reads.item", "item 1000000 outside"),
    "epoch-out-of-range": (_set("writes.epoch", 0, -1), (), None, "writes.epoch", "epoch -1 outside"),
    "bytes-over-the-size": (_set("reads.bytes", 5, 10 ** 12), (), None, "reads.bytes", "exceed its size"),
    "zero-bytes": (_set("reads.bytes", 9, 0), (), None, "reads.bytes", "must be > 0"),
    "first-problem-in-the-loaders-order": (_both(_set("reads.epoch", -1, 10 ** 6), _set("reads.item", 0, -1)),
                                           (), None, "reads.epoch", "epoch 1000000 outside"),
    "lengths": (lambda a: a.update({"reads.bytes": a["reads.bytes"][:-1]}), (), None, "reads.bytes",
                "entries, expected"),
    "missing-member": (None, ("reads.item",), None, "reads.item", "missing required key"),
    "bad-label-after-the-reads": (lambda a: a.update({"items.layer": a["items.layer"][:-1]}), (), None,
                                  "items.layer", "entries, expected"),
    "bad-label-and-bad-read": (_both(lambda a: a.update({"items.layer": a["items.layer"][:-1]}),
                                     _set("reads.item", 2, -5)), (), None, "reads.item", "item -5 outside"),
    "newer-header": (None, (), lambda h: h.update(schema_version=3), "schema_version", "newer"),
    "bad-tier": (None, (), lambda h: h["tiers"][0].update(bandwidth_Bps=-1), "tiers[0].bandwidth_Bps", "> 0"),
}


@pytest.mark.parametrize("chunk", [None, 5])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_npz_files_are_refused_as_the_loader_refuses_them(tmp_path, monkeypatch, name, chunk):
    from hetkv_opt.io import reshard
    if chunk is not None:
        monkeypatch.setattr(reshard, "_CHUNK", chunk)
    change, drop, header_change, field, words = HOSTILE[name]
    src = _npz_with(tmp_path / "bad.npz", _paper(), change, drop, header_change)
    with pytest.raises(ModelError) as want:
        load_instance(src)
    with pytest.raises(ModelError) as got:
        reshard.npz_to_sharded(src, tmp_path / "bad.hetkv")
    assert str(got.value) == str(want.value)             # the loader's very words
    assert got.value.source == str(src) and got.value.field == field
    assert words in got.value.reason
    assert os.listdir(tmp_path) == ["bad.npz"]           # no folder, no temporary folder


def test_a_damaged_access_member_is_refused(tmp_path):
    import zipfile
    from hetkv_opt.io.reshard import npz_to_sharded
    save_instance(_paper(), tmp_path / "ok.npz")
    with zipfile.ZipFile(tmp_path / "ok.npz") as zf:
        infos = zf.infolist()
    nxt = next(k for k, i in enumerate(infos) if i.filename == "reads.item.npy") + 1
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[infos[nxt].header_offset - 8] ^= 0xFF           # inside reads.item's compressed data
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(ModelError) as want:
        load_instance(tmp_path / "bad.npz")
    with pytest.raises(ModelError) as got:
        npz_to_sharded(tmp_path / "bad.npz", tmp_path / "bad.hetkv")
    assert got.value.source == str(tmp_path / "bad.npz") and got.value.field == "(file)"
    assert "damaged or truncated" in str(got.value) and "damaged or truncated" in str(want.value)
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "ok.npz"]


def test_a_failed_conversion_leaves_no_half_folder(tmp_path, monkeypatch):
    import hetkv_opt.io.shards_stream as ss
    from hetkv_opt.io.reshard import npz_to_sharded
    old = drift_instance(DriftParams(blocks=8, steps=4))
    save_sharded(old, tmp_path / "x.hetkv")
    save_instance(_paper(), tmp_path / "x.npz")
    # refused in the writes, after every read was spooled: the old folder stays, whole
    bad = _npz_with(tmp_path / "bad.npz", _paper(), _set("writes.item", -1, 10 ** 6))
    with pytest.raises(ModelError, match="writes.item"):
        npz_to_sharded(bad, tmp_path / "x.hetkv")
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "x.hetkv", "x.npz"]
    assert load_instance(tmp_path / "x.hetkv").equals(old)
    # the disk fills while the shards are written
    calls = {"n": 0}
    real = ss.write_npz

    def flaky(path, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(path, *a, **kw)
    monkeypatch.setattr(ss, "write_npz", flaky)
    with pytest.raises(OSError):
        npz_to_sharded(tmp_path / "x.npz", tmp_path / "y.hetkv")
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "x.hetkv", "x.npz"]
    assert load_instance(tmp_path / "x.hetkv").equals(old)
    # a target that is not a sharded folder: refused before anything is read or written
    (tmp_path / "f.hetkv").write_text("mine")
    with pytest.raises(ModelError, match="not a folder"):
        npz_to_sharded(tmp_path / "x.npz", tmp_path / "f.hetkv")
    assert (tmp_path / "f.hetkv").read_text() == "mine"


def test_cli_convert_both_ways(tmp_path):
    inst = _workload()
    save_instance(inst, tmp_path / "x.npz")
    save_sharded(inst, tmp_path / "ref.hetkv")
    proc = hetkv("convert", tmp_path / "x.npz", tmp_path / "x.hetkv")
    assert f"wrote {tmp_path / 'x.hetkv'}" in proc.stderr and "(streamed)" in proc.stderr
    assert proc.stdout == ""
    assert _folder_bytes(tmp_path / "x.hetkv") == _folder_bytes(tmp_path / "ref.hetkv")
    d = json.loads(hetkv("convert", tmp_path / "x.hetkv", tmp_path / "back.npz", "-f", "json").stdout)
    assert d["streamed"] is False and d["sha256"] == instance_hash(inst) and d["reads"] == inst.read_bytes.size
    back = load_instance(tmp_path / "back.npz")
    assert back.equals(inst)
    _same_dtypes(back, inst)
    d = json.loads(hetkv("convert", tmp_path / "back.npz", tmp_path / "y.hetkv", "-f", "json", "-q").stdout)
    assert d["streamed"] is True and d["layers"] == [p.layer for p in split_by_layer(inst)]
    assert "--compress-level" in hetkv("convert", "--help").stdout
    assert "loads the instance" in " ".join(hetkv("convert", "--help").stdout.split())


def test_cli_convert_refuses_in_one_line(tmp_path):
    src = _npz_with(tmp_path / "bad.npz", _paper(), _set("reads.item", 4, -3))
    assert_one_line_error(hetkv("convert", src, tmp_path / "bad.hetkv", check_rc=None),
                          "bad.npz", "field 'reads.item'", "entry 4: item -3 outside")
    assert not (tmp_path / "bad.hetkv").exists()
    save_instance(_paper(), tmp_path / "ok.npz")
    assert_one_line_error(hetkv("convert", tmp_path / "ok.npz", tmp_path / "ok.npz", check_rc=None),
                          "is an input of this command")
    assert_one_line_error(hetkv("convert", tmp_path / "ok.npz", tmp_path / "ok.txt", check_rc=None),
                          "ok.txt", ".hetkv")
    (tmp_path / "d.hetkv").mkdir()
    assert_one_line_error(hetkv("convert", tmp_path / "ok.npz", tmp_path / "d.hetkv", check_rc=None),
                          "d.hetkv", "not a sharded instance folder")
    assert_one_line_error(hetkv("convert", tmp_path / "none.npz", tmp_path / "n.hetkv", check_rc=None),
                          "none.npz", "no such file")
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "d.hetkv", "ok.npz"]
