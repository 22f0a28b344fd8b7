"""The sharded instance layout: one folder, a manifest and one NPZ file per layer
(docs/model.md section 6, "Sharded instances").

An instance whose epochs are (decode step, layer) pairs falls apart by layer: a KV page
or the weights of layer l are read and written only in layer l's epochs, and layers share
only the capacity of the tiers.  A folder ``NAME.hetkv/`` keeps each layer's items, reads
and writes in a file of their own, so that a worker reads one layer without the rest:

- ``manifest.json`` (``hetkv-sharded-instance``, version 1): the instance's header (name,
  mode, tiers, number of epochs, metadata), the number of items and their label names,
  the instance hash (:func:`hetkv_opt.io.formats.instance_hash`, the same as the instance's
  JSON or NPZ file), and per shard: file, layer, items, the global index of its first
  item, reads, writes, their bytes, the items' bytes, item-epochs, pinned items, and
  the SHA-256 of the file;
- ``epochs.npz``: the compute floors, the epoch labels, ``summary.read_bytes`` (the
  read bytes of every epoch, float64) and ``summary.reads`` / ``summary.writes`` (their
  numbers per epoch), so that the aggregate-bandwidth bound and every number of
  ``hetkv info`` come from the manifest and this file alone;
- ``layer-LLL.npz`` (``layer-none.npz`` for items without a layer label, layer -1): the
  shard's items (``items.index``: their global indices, ascending, then every item array
  and label) and its reads and writes, with items numbered ``0..n-1`` inside the shard.

The items of one layer need not be contiguous in the global numbering (the request
generators number KV pages page by page, all layers of a page together), so every shard
stores ``items.index`` and a shard is any subset; :meth:`Sharded.load_part` gives exactly
the :class:`~hetkv_opt.model.parts.LayerPart` that :func:`~hetkv_opt.model.parts.split_by_layer`
cuts from the whole instance, and :meth:`Sharded.load_all` the whole instance itself.

Every check of a single file is made here too, naming the file and the field: a shard is
validated as an instance of its own when it is loaded (and its SHA-256 compared with the
manifest's first), and loading everything also checks that the shards partition the
items, agree with the manifest and hash to the manifest's instance hash.  The writers
(:mod:`hetkv_opt.io.shards_write`, whose :func:`save_sharded` is handed on here, and the
streaming :mod:`hetkv_opt.io.shards_stream`) write into a temporary folder next to the
target and rename it: a folder under the final name is always whole.

>>> import os, tempfile
>>> from hetkv_opt.workloads.paper import paper_instance
>>> inst = paper_instance(layers=2, prompt_tokens=32, steps=4)
>>> path = os.path.join(tempfile.mkdtemp(), "p.hetkv")
>>> save_sharded(inst, path)
>>> sh = open_sharded(path)
>>> sh.layers, sh.load_all().equals(inst)
([0, 1], True)
>>> sorted(os.listdir(path))
['epochs.npz', 'layer-000.npz', 'layer-001.npz', 'manifest.json']
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hetkv_opt.io.formats import (_ITEM_ARRAYS, FileFormatError, _read_json, _require, check_header,
                                  instance_hash, read_npz_with_header)
from hetkv_opt.io.shards_write import (_ACCESS, _FILE_NAME, _HEX64, _SHARD_KEYS, EPOCHS_FILE,  # noqa: F401
                                       MANIFEST, SCHEMA_EPOCHS, SCHEMA_SHARD, SCHEMA_SHARDED,
                                       SHARDED_VERSION, SUFFIX, is_sharded_path, save_sharded,
                                       shard_file_name)
from hetkv_opt.model.instance import (EPOCH_LABELS, ITEM_LABELS, MAX_BYTES, MAX_ITEMS,
                                      MAX_TOTAL_ACCESS_BYTES, MODES, Instance, ModelError,
                                      access_dtype, make_instance)
from hetkv_opt.model.parts import LayerPart, item_layers
from hetkv_opt.model.terms import aggregate_bound_from

# ----------------------------------------------------------------------------- reading

def _int(obj: Mapping, key: str, where: str, minimum: int | None = 0) -> int:
    v = _require(obj, key, where)
    field = f"{where}.{key}" if where else key
    if isinstance(v, bool) or not isinstance(v, int):
        raise ModelError(field, f"must be a whole number, got {v!r}")
    if minimum is not None and v < minimum:
        raise ModelError(field, f"must be >= {minimum}, got {v}")
    return v


def _sha(obj: Mapping, key: str, where: str) -> str:
    v = _require(obj, key, where)
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise ModelError(f"{where}.{key}" if where else key,
                         f"must be a SHA-256 (64 lower-case hex digits), got {v!r}")
    return v


def _file_name(obj: Mapping, key: str, where: str) -> str:
    v = _require(obj, key, where)
    if not isinstance(v, str) or not _FILE_NAME.fullmatch(v):
        raise ModelError(f"{where}.{key}", f"must be a file name in the folder ending in .npz "
                         f"(no path), got {v!r}")
    return v


def check_manifest(d: Any) -> dict:
    """Validate a parsed manifest (every field, and the rules across them) and return it."""
    check_header(d, schema=SCHEMA_SHARDED, versions=SHARDED_VERSION)
    known = {"schema", "schema_version", "name", "mode", "tiers", "epochs", "items",
             "instance_sha256", "shards", "metadata"}
    unknown = set(d) - known
    if unknown:
        raise ModelError(sorted(unknown)[0], "unknown key")
    for key in ("name", "mode", "tiers"):
        _require(d, key, "")
    if not isinstance(d["name"], str):
        raise ModelError("name", "must be a string")
    if d["mode"] not in MODES:
        raise ModelError("mode", f"must be one of {', '.join(MODES)}, got {d['mode']!r}")
    if not isinstance(d["tiers"], list):
        raise ModelError("tiers", "must be a list")
    epochs = _require(d, "epochs", "")
    if not isinstance(epochs, dict):
        raise ModelError("epochs", "must be an object")
    for key in set(epochs) - {"count", "file", "sha256"}:
        raise ModelError(f"epochs.{key}", "unknown key")
    _int(epochs, "count", "epochs", 1)
    _file_name(epochs, "file", "epochs")
    _sha(epochs, "sha256", "epochs")
    items = _require(d, "items", "")
    if not isinstance(items, dict):
        raise ModelError("items", "must be an object")
    for key in set(items) - {"count", "labels"}:
        raise ModelError(f"items.{key}", "unknown key")
    n = _int(items, "count", "items", 1)
    labels = _require(items, "labels", "items")
    if not isinstance(labels, list) or any(x not in ITEM_LABELS for x in labels) \
            or len(set(labels)) != len(labels):
        raise ModelError("items.labels", f"must be a list of distinct item labels "
                         f"({', '.join(ITEM_LABELS)}), got {labels!r}")
    _sha(d, "instance_sha256", "")
    if not isinstance(d.get("metadata", {}), dict):
        raise ModelError("metadata", "must be an object")
    shards = _require(d, "shards", "")
    if not isinstance(shards, list) or not shards:
        raise ModelError("shards", "must be a non-empty list")
    files = set()
    for k, s in enumerate(shards):
        w = f"shards[{k}]"
        if not isinstance(s, dict):
            raise ModelError(w, "must be an object")
        for key in set(s) - set(_SHARD_KEYS):
            raise ModelError(f"{w}.{key}", "unknown key")
        name = _file_name(s, "file", w)
        if name in files or name == epochs["file"]:
            raise ModelError(f"{w}.file", f"{name} is named twice in the manifest")
        files.add(name)
        layer = _int(s, "layer", w, -1)
        if k and layer <= shards[k - 1]["layer"]:
            raise ModelError(f"{w}.layer", f"layer {layer} after layer {shards[k - 1]['layer']}: "
                             f"shards must be listed by ascending layer, each once")
        count = _int(s, "items", w, 1)
        first = _int(s, "first_item", w)
        if first + count > n:
            raise ModelError(f"{w}.first_item", f"items {first}.. of {count} items do not fit "
                             f"in the instance's {n} items")
        for key in ("reads", "writes", "read_bytes", "write_bytes", "item_bytes", "item_epochs",
                    "pinned_items"):
            _int(s, key, w)
        _sha(s, "sha256", w)
    total = sum(s["items"] for s in shards)
    if total != n:
        raise ModelError("items.count", f"{n} items, but the shards hold {total}")
    # the header as an instance file's: tiers, mode, epochs, metadata (no items yet)
    make_instance(name=d["name"], mode=d["mode"], tiers=d["tiers"], size_bytes=np.zeros(0, np.int64),
                  num_epochs=epochs["count"], metadata=d.get("metadata", {}))
    return d


def open_sharded(path: str | os.PathLike) -> "Sharded":
    """Open a sharded instance folder: read and check its manifest, and check that every
    file it names is there (their content is checked when they are loaded).

    Raises
    ------
    ModelError
        (:class:`~hetkv_opt.io.formats.FileFormatError`) naming the file, the field and
        the reason.
    """
    path = Path(path)
    mpath = path / MANIFEST
    try:
        if not path.exists():
            raise FileFormatError("(file)", "no such file or folder")
        if not path.is_dir():
            raise FileFormatError("(file)", f"not a sharded instance: a {SUFFIX} instance is "
                                  f"a folder holding {MANIFEST}")
        if not mpath.is_file():
            raise FileFormatError("(file)", "no such file (the manifest of a sharded instance)")
        manifest = check_manifest(_read_json(mpath, "manifest"))
    except ModelError as exc:
        raise exc.with_source(str(mpath if path.is_dir() else path)) from None
    for k, s in enumerate(manifest["shards"]):
        if not (path / s["file"]).is_file():
            raise FileFormatError(f"shards[{k}].file", f"the shard file {s['file']} is missing",
                                  str(mpath))
    if not (path / manifest["epochs"]["file"]).is_file():
        raise FileFormatError("epochs.file", f"the epochs file {manifest['epochs']['file']} is "
                              f"missing", str(mpath))
    return Sharded(path, manifest)


@dataclass
class Sharded:
    """An open sharded instance: the manifest, and each part loaded on demand."""

    path: Path
    manifest: dict

    def __post_init__(self):
        self._template: Instance | None = None
        self._summary: dict | None = None

    @property
    def layers(self) -> list[int]:
        """The layers of the shards, ascending (-1: the items without a layer label)."""
        return [s["layer"] for s in self.manifest["shards"]]

    @property
    def name(self) -> str:
        return self.manifest["name"]

    def _where(self, name: str) -> str:
        return str(self.path / name)

    def _read_checked(self, name: str, sha256: str, field: str, what: str) -> tuple[dict, dict]:
        """The arrays and header of one NPZ file of the folder, after its SHA-256."""
        fpath = self.path / name
        try:
            data = fpath.read_bytes()
        except OSError as exc:
            raise FileFormatError("(file)", f"cannot read it ({exc.strerror or exc})",
                                  str(fpath)) from None
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise FileFormatError(field, f"{name} has SHA-256 {got[:16]}..., the manifest says "
                                  f"{sha256[:16]}...: the file was changed or damaged",
                                  self._where(MANIFEST))
        try:
            return read_npz_with_header(data, what)
        except ModelError as exc:
            raise exc.with_source(str(fpath)) from None

    def template(self) -> Instance:
        """The instance's header and epochs with no items (validated): tiers, mode,
        compute floors, epoch labels, metadata."""
        if self._template is not None:
            return self._template
        m = self.manifest
        name = m["epochs"]["file"]
        arrays, header = self._read_checked(name, m["epochs"]["sha256"], "epochs.sha256", "epochs")
        where = self._where(name)
        try:
            check_header(header, schema=SCHEMA_EPOCHS, versions=SHARDED_VERSION, where="header")
            if header.get("count") != m["epochs"]["count"]:
                raise FileFormatError("header.count", f"{header.get('count')!r} epochs, the "
                                      f"manifest says {m['epochs']['count']}")
            summary = ("summary.read_bytes", "summary.reads", "summary.writes")
            known = {"epochs.min_time_s", *summary} | {f"epochs.{k}" for k in EPOCH_LABELS}
            for key in sorted(set(arrays) - known):
                raise FileFormatError(key, "unknown key")
            for key in ("epochs.min_time_s", *summary):
                if key not in arrays:
                    raise FileFormatError(key, "missing required key")
            E = m["epochs"]["count"]
            for key, dtype in zip(summary, (np.float64, np.int64, np.int64)):
                a = arrays[key]
                if a.dtype != dtype or a.shape != (E,):
                    raise FileFormatError(key, f"must be {E} {np.dtype(dtype).name} numbers, "
                                          f"got {a.dtype} of shape {a.shape}")
                if (a.dtype.kind == "f" and not np.all(np.isfinite(a))) or np.any(a < 0):
                    raise FileFormatError(key, "must be finite and >= 0")
                field = {"summary.read_bytes": "read_bytes"}.get(key, key.split(".")[1])
                total = sum(sh[field] for sh in m["shards"])
                got = float(a.sum()) if a.dtype.kind == "f" else int(a.sum())
                if abs(got - total) > 1e-9 * max(total, 1):
                    raise FileFormatError(key, f"sums to {got:.17g}, the shards of the manifest "
                                          f"to {total} ({field})")
            tpl = make_instance(
                name=m["name"], mode=m["mode"], tiers=m["tiers"], size_bytes=np.zeros(0, np.int64),
                num_epochs=E, min_time_s=arrays["epochs.min_time_s"],
                epoch_labels={k: arrays[f"epochs.{k}"] for k in EPOCH_LABELS if f"epochs.{k}" in arrays},
                metadata=m.get("metadata", {}))
        except ModelError as exc:
            raise exc.with_source(where) from None
        self._template = tpl
        self._summary = {k.split(".")[1]: arrays[k] for k in summary}
        return tpl

    def read_bytes_per_epoch(self) -> np.ndarray:
        """The read bytes of every epoch (float64), from ``epochs.npz``."""
        self.template()
        return self._summary["read_bytes"]

    def accesses_per_epoch(self, kind: str) -> np.ndarray:
        """The number of reads (``kind="reads"``) or writes of every epoch, from ``epochs.npz``."""
        self.template()
        return self._summary[kind]

    def _entry(self, layer: int) -> tuple[int, dict]:
        for k, s in enumerate(self.manifest["shards"]):
            if s["layer"] == layer:
                return k, s
        raise ModelError("layer", f"no shard for layer {layer} (layers: "
                         f"{', '.join(map(str, self.layers))})", self._where(MANIFEST))

    def load_part(self, layer: int) -> LayerPart:
        """One layer's items as :func:`~hetkv_opt.model.parts.split_by_layer` cuts them
        from the whole instance (name ``NAME/layerL``), after the shard's checks."""
        k, s = self._entry(int(layer))
        tpl = self.template()
        arrays, header = self._read_checked(s["file"], s["sha256"], f"shards[{k}].sha256", "shard")
        where = self._where(s["file"])
        try:
            part = self._part(k, s, tpl, arrays, header)
        except ModelError as exc:
            raise exc.with_source(where) from None
        p = part.instance
        got = {"reads": p.read_bytes.size, "writes": p.write_bytes.size,
               "read_bytes": int(p.read_bytes.sum()), "write_bytes": int(p.write_bytes.sum()),
               "item_bytes": int(p.size_bytes.sum()), "item_epochs": int((p.death - p.birth).sum()),
               "pinned_items": int((p.pinned_tier >= 0).sum())}
        for key, val in got.items():
            if val != s[key]:
                raise FileFormatError(f"shards[{k}].{key}", f"{s[key]}, but {s['file']} holds "
                                      f"{val}", self._where(MANIFEST))
        return part

    def _part(self, k: int, s: dict, tpl: Instance, arrays: dict, header: Any) -> LayerPart:
        m = self.manifest
        check_header(header, schema=SCHEMA_SHARD, versions=SHARDED_VERSION, where="header")
        for key in ("instance", "layer"):
            want = m["name"] if key == "instance" else s["layer"]
            if header.get(key) != want:
                raise FileFormatError(f"header.{key}", f"{header.get(key)!r}, the manifest says "
                                      f"{want!r} (a shard of another instance or layer?)")
        labels = set(m["items"]["labels"])
        known = ({"items.index"} | {f"items.{x}" for x in _ITEM_ARRAYS}
                 | {f"items.{x}" for x in labels}
                 | {f"{kind}.{x}" for kind in ("reads", "writes") for x in _ACCESS})
        for key in sorted(set(arrays) - known):
            raise FileFormatError(key, "unknown key" if key.split(".")[-1] not in ITEM_LABELS else
                                  "an item label the manifest's items.labels does not list")
        for key in sorted(known - {f"items.{x}" for x in ("birth", "death", "pinned_tier", "initial_tier")}):
            if key not in arrays:
                raise FileFormatError(key, "missing required key")
        idx = arrays["items.index"]
        n, N = s["items"], m["items"]["count"]
        if idx.dtype.kind not in "iu" or idx.shape != (n,):
            raise FileFormatError("items.index", f"must be {n} integers (the manifest's items), "
                                  f"got {idx.dtype} of shape {idx.shape}")
        idx = idx.astype(np.int64)
        if np.any(idx < 0) or np.any(idx >= N) or np.any(np.diff(idx) <= 0):
            raise FileFormatError("items.index", f"must be ascending, distinct and in 0..{N - 1}")
        if int(idx[0]) != s["first_item"]:
            raise FileFormatError("items.index", f"starts at item {idx[0]}, the manifest's "
                                  f"first_item is {s['first_item']}")
        part = make_instance(
            name=f"{m['name']}/layer{s['layer']}", mode=tpl.mode, tiers=tpl.tiers,
            size_bytes=arrays["items.size_bytes"], num_epochs=tpl.num_epochs,
            birth=arrays.get("items.birth"), death=arrays.get("items.death"),
            pinned_tier=arrays.get("items.pinned_tier"), initial_tier=arrays.get("items.initial_tier"),
            min_time_s=tpl.min_time_s,
            reads=tuple(arrays[f"reads.{x}"] for x in _ACCESS),
            writes=tuple(arrays[f"writes.{x}"] for x in _ACCESS),
            item_labels={x: arrays[f"items.{x}"] for x in labels},
            epoch_labels=tpl.epoch_labels, metadata=tpl.metadata)
        if part.num_items != n:
            raise FileFormatError("items.size_bytes", f"{part.num_items} items, the manifest says {n}")
        lay = item_layers(part)
        bad = np.flatnonzero(lay != s["layer"])
        if bad.size:
            raise FileFormatError("items.layer", f"item {idx[bad[0]]} (entry {bad[0]}) has layer "
                                  f"{lay[bad[0]]}, but this is the shard of layer {s['layer']}")
        idx.setflags(write=False)
        return LayerPart(int(s["layer"]), idx, part)

    def load_all(self, compact: bool = False) -> Instance:
        """The whole instance (equal to the one written), after every check: each shard's,
        the shards partitioning the items, the epochs summary, the instance hash.

        The shards are loaded one at a time and their entries put straight in their
        global places (epoch by epoch from the per-epoch counts of ``epochs.npz``, shards
        in order of layer), so that memory holds the instance and one shard.  With
        ``compact``, the access arrays are put straight into the compact form of
        :func:`~hetkv_opt.model.instance.narrow_accesses` (int32 where the values fit:
        12 bytes per read instead of 24), for the policy engine and the evaluator."""
        m = self.manifest
        tpl = self.template()
        N, E = m["items"]["count"], tpl.num_epochs
        mpath = self._where(m["epochs"]["file"])
        seen = np.zeros(N, np.int64)
        glob = {key: np.zeros(N, np.int64) for key in _ITEM_ARRAYS}
        labels: dict = {}
        acc, running, offset, mixed = {}, {}, {}, np.zeros(E, bool)
        for kind in ("reads", "writes"):
            tot = self.accesses_per_epoch(kind)
            offset[kind] = np.cumsum(tot) - tot
            running[kind] = np.zeros(E, np.int64)
            n = int(tot.sum())
            dts = ((access_dtype(E - 1), access_dtype(N - 1), access_dtype(0)) if compact
                   else (np.int64,) * len(_ACCESS))
            acc[kind] = [np.empty(n, dt) for dt in dts]
        for layer in self.layers:
            part = self.load_part(layer)
            p, idx = part.instance, part.items
            seen[idx] += 1
            for key in _ITEM_ARRAYS:
                glob[key][idx] = getattr(p, key)
            for x, v in p.item_labels.items():
                if x not in labels or labels[x].dtype != np.result_type(labels[x], v):
                    old = labels.get(x)
                    labels[x] = np.zeros(N, dtype=v.dtype if old is None else np.result_type(old, v))
                    if old is not None:
                        labels[x][:] = old
                labels[x][idx] = v
            for kind, pre in (("reads", "read"), ("writes", "write")):
                e = getattr(p, f"{pre}_epoch")
                cnt = np.bincount(e, minlength=E)
                run = running[kind]
                over = np.flatnonzero(run + cnt > self.accesses_per_epoch(kind))
                if over.size:
                    raise FileFormatError(f"summary.{kind}", f"epoch {over[0]}: "
                                          f"{self.accesses_per_epoch(kind)[over[0]]} {kind}, but the "
                                          f"shards up to layer {layer} hold more", mpath)
                mixed |= (cnt > 0) & (run > 0)
                start = np.cumsum(cnt) - cnt
                pos = (offset[kind] + run - start)[e] + np.arange(e.size)
                out_e, out_i, out_b = acc[kind]
                nb = getattr(p, f"{pre}_bytes")
                if (nb.size and out_b.dtype != np.int64
                        and access_dtype(int(nb.max())) == np.int64):
                    out_b = acc[kind][2] = out_b.astype(np.int64)     # bytes past int32
                out_e[pos] = e
                out_i[pos] = idx[getattr(p, f"{pre}_item")]
                out_b[pos] = nb
                run += cnt
            del part, p
        bad = np.flatnonzero(seen != 1)
        if bad.size:
            raise FileFormatError("shards", f"item {bad[0]} is in {seen[bad[0]]} shards: the "
                                  f"shards must hold every item exactly once", self._where(MANIFEST))
        for kind in ("reads", "writes"):
            short = np.flatnonzero(running[kind] != self.accesses_per_epoch(kind))
            if short.size:
                raise FileFormatError(f"summary.{kind}", f"epoch {short[0]}: "
                                      f"{self.accesses_per_epoch(kind)[short[0]]} {kind}, the "
                                      f"shards hold {running[kind][short[0]]}", mpath)
            if mixed.any():
                # epochs that read items of several layers: sort their entries by item
                e, i, b = acc[kind]
                sel = np.flatnonzero(mixed[e])
                order = sel[np.lexsort((i[sel], e[sel]))]
                e[sel], i[sel], b[sel] = e[order], i[order], b[order]
        inst = _assemble(tpl, m["name"], glob, acc, labels, str(self.path))
        rb = inst.reads_per_epoch_bytes()
        want = self.read_bytes_per_epoch()
        if not np.array_equal(rb, want):
            e = int(np.flatnonzero(rb != want)[0])
            raise FileFormatError("summary.read_bytes", f"epoch {e}: {want[e]:.17g} bytes, the "
                                  f"shards read {rb[e]:.17g}", mpath)
        got = instance_hash(inst)
        if got != m["instance_sha256"]:
            raise FileFormatError("instance_sha256", f"the shards hold an instance with hash "
                                  f"{got[:16]}..., the manifest says {m['instance_sha256'][:16]}...",
                                  self._where(MANIFEST))
        return inst

    def summary(self) -> dict:
        """What ``hetkv info`` prints, from the manifest and ``epochs.npz`` alone (the
        shards are not read: their checks run when they are loaded)."""
        m = self.manifest
        tpl = self.template()
        sh = m["shards"]
        return {"name": m["name"], "mode": tpl.mode, "items": m["items"]["count"],
                "epochs": tpl.num_epochs, "steps": tpl.num_steps,
                "item_epochs": sum(s["item_epochs"] for s in sh),
                "reads": sum(s["reads"] for s in sh), "read_bytes": sum(s["read_bytes"] for s in sh),
                "writes": sum(s["writes"] for s in sh), "write_bytes": sum(s["write_bytes"] for s in sh),
                "total_item_bytes": sum(s["item_bytes"] for s in sh),
                "pinned_items": sum(s["pinned_items"] for s in sh),
                "tiers": [{"name": t.name, "capacity_bytes": t.capacity_bytes,
                           "bandwidth_Bps": t.bandwidth_Bps, "link_read_Bps": t.link_read_Bps,
                           "link_write_Bps": t.link_write_Bps} for t in tpl.tiers],
                "aggregate_bound_s": aggregate_bound_from(tpl.tiers, tpl.min_time_s,
                                                          self.read_bytes_per_epoch()),
                "sha256": m["instance_sha256"]}


def _assemble(tpl: Instance, name: str, glob: dict, acc: dict, labels: dict, where: str) -> Instance:
    """The whole instance from its parts' arrays.  Every part passed
    :func:`~hetkv_opt.model.instance.make_instance`, so every rule about one item, one
    access or one epoch holds, and the order (sorted by (epoch, item), no duplicates)
    holds by construction; what is left are the limits on totals, which
    ``make_instance`` checks (and words) when one is passed."""
    size = glob["size_bytes"]
    if (size.size > MAX_ITEMS or float(size.sum(dtype=np.float64)) > MAX_BYTES
            or any(float(acc[k][2].sum(dtype=np.float64)) > MAX_TOTAL_ACCESS_BYTES for k in acc)):
        try:
            make_instance(name=name, mode=tpl.mode, tiers=tpl.tiers, size_bytes=size,
                          num_epochs=tpl.num_epochs, birth=glob["birth"], death=glob["death"],
                          pinned_tier=glob["pinned_tier"], initial_tier=glob["initial_tier"],
                          min_time_s=tpl.min_time_s, reads=acc["reads"], writes=acc["writes"],
                          item_labels=labels, epoch_labels=tpl.epoch_labels, metadata=tpl.metadata)
        except ModelError as exc:
            raise exc.with_source(where) from None
    for arr in (*glob.values(), *labels.values(), *acc["reads"], *acc["writes"]):
        arr.setflags(write=False)
    (re, ri, rb), (we, wi, wb) = acc["reads"], acc["writes"]
    return dataclasses.replace(
        tpl, name=name, size_bytes=size, birth=glob["birth"], death=glob["death"],
        pinned_tier=glob["pinned_tier"], initial_tier=glob["initial_tier"], read_epoch=re,
        read_item=ri, read_bytes=rb, write_epoch=we, write_item=wi, write_bytes=wb,
        item_labels=labels)


def load_sharded(path: str | os.PathLike, compact: bool = False) -> Instance:
    """The whole instance of a sharded folder (:meth:`Sharded.load_all`)."""
    return open_sharded(path).load_all(compact=compact)


__all__ = ["MANIFEST", "SCHEMA_SHARDED", "SUFFIX", "Sharded", "check_manifest", "is_sharded_path",
           "load_sharded", "open_sharded", "save_sharded", "shard_file_name"]
