"""Writing the sharded instance layout of :mod:`hetkv_opt.io.shards` (docs/model.md
section 6, "Sharded instances"): the file names, the deterministic NPZ writer, the
temporary folder and its rename, the manifest, and :func:`save_sharded` (an instance in
memory).  :mod:`hetkv_opt.io.shards_stream` streams the same folder; both write the same
bytes for the same instance.

>>> shard_file_name(3), is_sharded_path("x.hetkv")
('layer-003.npz', True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from hetkv_opt.io.formats import _ITEM_ARRAYS, _umask_mode, instance_hash
from hetkv_opt.model.instance import Instance, ModelError, tier_specs
from hetkv_opt.model.parts import item_layers

SCHEMA_SHARDED = "hetkv-sharded-instance"
SCHEMA_SHARD = "hetkv-instance-shard"
SCHEMA_EPOCHS = "hetkv-instance-epochs"
SHARDED_VERSION = 1
SUFFIX = ".hetkv"
MANIFEST = "manifest.json"
EPOCHS_FILE = "epochs.npz"
_ACCESS = ("epoch", "item", "bytes")
_I8 = np.dtype("<i8")
_CHUNK = 1 << 20                       # entries per chunk when streaming a member
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)    # zip member times: same content, same bytes
_SHARD_KEYS = ("file", "layer", "items", "first_item", "reads", "writes", "read_bytes",
               "write_bytes", "item_bytes", "item_epochs", "pinned_items", "sha256")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.npz")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def shard_file_name(layer: int) -> str:
    """``layer-007.npz`` for layer 7, ``layer-none.npz`` for items without a layer (-1).

    >>> shard_file_name(7), shard_file_name(-1)
    ('layer-007.npz', 'layer-none.npz')
    """
    return "layer-none.npz" if layer < 0 else f"layer-{layer:03d}.npz"


def is_sharded_path(path: str | os.PathLike) -> bool:
    """True for a path that names a sharded instance: a folder holding ``manifest.json``,
    or any path ending in ``.hetkv``."""
    path = Path(path)
    return path.suffix.lower() == SUFFIX or (path.is_dir() and (path / MANIFEST).is_file())


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(1 << 24)
            if not buf:
                return h.hexdigest()
            h.update(buf)



# ----------------------------------------------------------------------------- writing

class Chunks:
    """An int64 array member written chunk by chunk: ``count`` entries that
    ``chunks()`` yields as int64 arrays (the big arrays of a streamed shard)."""

    def __init__(self, count: int, chunks: Callable[[], Iterable[np.ndarray]]):
        self.count = int(count)
        self.chunks = chunks


def write_npz(path: Path, header: Mapping[str, Any], members: Mapping[str, Any],
              compresslevel: int = 6) -> str:
    """Write an NPZ file (``header`` as JSON, then the members by sorted name; each an
    ndarray or :class:`Chunks`), with fixed member times, so that the same content gives
    the same bytes; fsync it and return its SHA-256."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        def member(name: str):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info._compresslevel = compresslevel      # as ZipFile.open sets it (a property in 3.13)
            info.external_attr = 0o644 << 16
            return zf.open(info, "w", force_zip64=True)
        with member("header") as fh:
            text = json.dumps(header, separators=(",", ":"), allow_nan=False)
            np.lib.format.write_array(fh, np.array(text), allow_pickle=False)
        for name in sorted(members):
            src = members[name]
            with member(name) as fh:
                if isinstance(src, Chunks):
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": np.lib.format.dtype_to_descr(_I8), "fortran_order": False,
                             "shape": (src.count,)})
                    written = 0
                    for chunk in src.chunks():
                        chunk = np.ascontiguousarray(chunk, dtype=_I8)
                        fh.write(chunk.tobytes())
                        written += chunk.size
                    if written != src.count:   # a writer bug, never a user's error
                        raise RuntimeError(f"{path.name}: member {name}: wrote {written} "
                                           f"entries, expected {src.count}")
                else:
                    np.lib.format.write_array(fh, np.ascontiguousarray(src), allow_pickle=False)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())
    return _sha256_file(path)


def _check_target(path: str | os.PathLike) -> Path:
    """The folder to write a sharded instance to: named ``*.hetkv``; absent, or a sharded
    instance (which is replaced); never a file or some other folder."""
    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise ModelError("(file)", f"{path}: a sharded instance is a folder whose name ends in {SUFFIX}")
    if path.exists() and not path.is_dir():
        raise ModelError("(file)", f"{path}: exists and is not a folder; refusing to replace it")
    if path.is_dir() and not (path / MANIFEST).is_file():
        raise ModelError("(file)", f"{path}: an existing folder that is not a sharded instance "
                         f"(no {MANIFEST}); refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def temp_folder(path: Path) -> Path:
    """A fresh folder next to ``path`` to write into before :func:`commit_folder`."""
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))


def commit_folder(tmp: Path, path: Path) -> None:
    """Rename the finished folder ``tmp`` to ``path``.  An old sharded instance there is
    first renamed aside and removed after, so the final name never holds a half folder."""
    os.chmod(tmp, 0o777 & ~_umask_of())
    for f in tmp.iterdir():
        os.chmod(f, _umask_mode())
    _fsync_dir(tmp)
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        os.rmdir(old)
        os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask_of() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def static_members(static: Instance, items: np.ndarray) -> dict:
    """The item arrays of one shard (``items.index`` and every item array and label)."""
    out = {"items.index": np.asarray(items, dtype=np.int64)}
    for k in _ITEM_ARRAYS:
        out[f"items.{k}"] = getattr(static, k)[items]
    for k, v in static.item_labels.items():
        out[f"items.{k}"] = np.asarray(v)[items]
    return out


def shard_entry(static: Instance, layer: int, items: np.ndarray, counts: Mapping[str, int],
                sha256: str) -> dict:
    """One shard's row of the manifest."""
    return {"file": shard_file_name(layer), "layer": int(layer), "items": int(items.size),
            "first_item": int(items[0]), "reads": int(counts["reads"]),
            "writes": int(counts["writes"]), "read_bytes": int(counts["read_bytes"]),
            "write_bytes": int(counts["write_bytes"]),
            "item_bytes": int(static.size_bytes[items].sum()),
            "item_epochs": int((static.death[items] - static.birth[items]).sum()),
            "pinned_items": int((static.pinned_tier[items] >= 0).sum()), "sha256": sha256}


def shard_header(static: Instance, layer: int) -> dict:
    return {"schema": SCHEMA_SHARD, "schema_version": SHARDED_VERSION, "instance": static.name,
            "layer": int(layer)}


def write_epochs_file(tmp: Path, static: Instance, read_bytes: np.ndarray, reads: np.ndarray,
                      writes: np.ndarray, compresslevel: int) -> str:
    """``epochs.npz``: compute floors, epoch labels, and per epoch the read bytes and the
    numbers of reads and writes."""
    members = {"epochs.min_time_s": static.min_time_s,
               "summary.read_bytes": np.asarray(read_bytes, dtype=np.float64),
               "summary.reads": np.asarray(reads, dtype=np.int64),
               "summary.writes": np.asarray(writes, dtype=np.int64)}
    members.update({f"epochs.{k}": v for k, v in static.epoch_labels.items()})
    header = {"schema": SCHEMA_EPOCHS, "schema_version": SHARDED_VERSION, "instance": static.name,
              "count": static.num_epochs}
    return write_npz(tmp / EPOCHS_FILE, header, members, compresslevel)


def write_manifest(tmp: Path, static: Instance, entries: list, epochs_sha256: str,
                   instance_sha256: str) -> dict:
    manifest = {"schema": SCHEMA_SHARDED, "schema_version": SHARDED_VERSION, "name": static.name,
                "mode": static.mode, "tiers": tier_specs(static.tiers),
                "epochs": {"count": static.num_epochs, "file": EPOCHS_FILE, "sha256": epochs_sha256},
                "items": {"count": static.num_items, "labels": sorted(static.item_labels)},
                "instance_sha256": instance_sha256, "shards": entries,
                "metadata": dict(static.metadata)}
    text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
    with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    return manifest


def layer_groups(static: Instance) -> list[tuple[int, np.ndarray]]:
    """``(layer, global items ascending)`` of every shard, as :func:`split_by_layer` cuts
    them (ascending layers, the unlabelled items first as layer -1)."""
    lay = item_layers(static)
    return [(int(layer), np.flatnonzero(lay == layer).astype(np.int64)) for layer in np.unique(lay)]


def save_sharded(inst: Instance, path: str | os.PathLike, compresslevel: int = 6) -> None:
    """Write ``inst`` as a sharded instance folder ``path`` (``*.hetkv``), atomically.

    Raises
    ------
    ModelError
        For a path that is not ``*.hetkv``, a file there, or a folder there that is not a
        sharded instance (nothing is replaced then).
    """
    path = _check_target(path)
    if not (0 <= int(compresslevel) <= 9):
        raise ModelError("compresslevel", f"must be 0..9, got {compresslevel}")
    groups = layer_groups(inst)
    pos = np.empty(inst.num_items, np.int64)
    local = np.empty(inst.num_items, np.int64)
    for s, (_, items) in enumerate(groups):
        pos[items] = s
        local[items] = np.arange(items.size)
    small = np.int8 if len(groups) < 127 else np.int32      # a radix sort for the grouping
    cuts = {}
    for kind, pre in (("reads", "read"), ("writes", "write")):
        e, i, b = (getattr(inst, f"{pre}_{k}") for k in _ACCESS)
        order = np.argsort(pos[i].astype(small), kind="stable")
        bounds = np.searchsorted(pos[i][order], np.arange(len(groups) + 1))
        cuts[kind] = (order, bounds, e, i, b)
    tmp = temp_folder(path)
    try:
        entries = []
        for s, (layer, items) in enumerate(groups):
            members = static_members(inst, items)
            counts = {}
            for kind in ("reads", "writes"):
                order, bounds, e, i, b = cuts[kind]
                sel = order[bounds[s]:bounds[s + 1]]
                members.update({f"{kind}.epoch": e[sel], f"{kind}.item": local[i[sel]],
                                f"{kind}.bytes": b[sel]})
                counts[kind] = int(sel.size)
                counts[f"{kind[:-1]}_bytes"] = int(b[sel].sum())
            sha = write_npz(tmp / shard_file_name(layer), shard_header(inst, layer), members,
                            compresslevel)
            entries.append(shard_entry(inst, layer, items, counts, sha))
        E = inst.num_epochs
        esha = write_epochs_file(tmp, inst, inst.reads_per_epoch_bytes(),
                                 np.bincount(inst.read_epoch, minlength=E),
                                 np.bincount(inst.write_epoch, minlength=E), compresslevel)
        write_manifest(tmp, inst, entries, esha, instance_hash(inst))
        commit_folder(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


__all__ = ["EPOCHS_FILE", "MANIFEST", "SCHEMA_SHARDED", "SUFFIX", "Chunks", "commit_folder",
           "is_sharded_path", "layer_groups", "save_sharded", "shard_file_name", "temp_folder",
           "write_npz"]
