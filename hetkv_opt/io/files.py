"""Reading and writing instance and schedule files (docs/model.md section 6).

JSON for small files, NPZ for large ones, with the same content; a path ending in
``.hetkv`` is the sharded layout of :mod:`hetkv_opt.io.shards` (a folder: a manifest and
one NPZ file per layer), which :func:`load_instance` and :func:`save_instance` take too.
Every loader validates everything before returning, and every error names the file, the
field and the reason.  Every writer writes to a temporary file (or folder) and renames
it, so a file is whole or absent.  What all file kinds share (the header check, atomic
writes, the instance hash) is :mod:`hetkv_opt.io.formats`; its names are handed on here.
"""

from __future__ import annotations

import io as _io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hetkv_opt.io.formats import (_ITEM_ARRAYS, FileFormatError, _instance_arrays,  # noqa: F401
                                  _json_dumps, _read_json, _require, _StrictJsonError,
                                  _umask_mode, atomic_write_bytes, atomic_write_with,
                                  check_header, check_readable_file, hash_array, instance_hash,
                                  instance_to_dict_header, instance_to_dict_tiers, parse_json,
                                  read_npz_with_header)
from hetkv_opt.model.instance import (EPOCH_LABELS, ITEM_LABELS, SCHEMA_INSTANCE, SCHEMA_VERSION,
                                      Instance, ModelError, make_instance, narrow_accesses)
from hetkv_opt.io.shards import SUFFIX, is_sharded_path, load_sharded, save_sharded
from hetkv_opt.model.schedule import SCHEMA_SCHEDULE, Schedule

# ----------------------------------------------------------------------------- instances

def instance_to_dict(inst: Instance) -> dict:
    """The JSON object of an instance (docs/model.md section 6)."""
    tiers = instance_to_dict_tiers(inst)
    items = {k: getattr(inst, k).tolist() for k in _ITEM_ARRAYS}
    items.update({k: v.tolist() for k, v in inst.item_labels.items()})
    epochs = {"count": inst.num_epochs, "min_time_s": inst.min_time_s.tolist()}
    epochs.update({k: v.tolist() for k, v in inst.epoch_labels.items()})
    return {"schema": SCHEMA_INSTANCE, "schema_version": SCHEMA_VERSION, "name": inst.name,
            "mode": inst.mode, "tiers": tiers, "items": items, "epochs": epochs,
            "reads": {"epoch": inst.read_epoch.tolist(), "item": inst.read_item.tolist(),
                      "bytes": inst.read_bytes.tolist()},
            "writes": {"epoch": inst.write_epoch.tolist(), "item": inst.write_item.tolist(),
                       "bytes": inst.write_bytes.tolist()},
            "metadata": dict(inst.metadata)}


def instance_from_dict(d: Any) -> Instance:
    """Validate a parsed instance object and build an :class:`Instance`."""
    check_header(d, schema=SCHEMA_INSTANCE, versions=SCHEMA_VERSION)
    known = {"schema", "schema_version", "name", "mode", "tiers", "items", "epochs", "reads",
             "writes", "metadata"}
    unknown = set(d) - known
    if unknown:
        raise ModelError(sorted(unknown)[0], "unknown key")
    name = _require(d, "name", "")
    tiers = _require(d, "tiers", "")
    if not isinstance(tiers, list):
        raise ModelError("tiers", "must be a list")
    items = _require(d, "items", "")
    if not isinstance(items, dict):
        raise ModelError("items", "must be an object")
    for key in set(items) - set(_ITEM_ARRAYS) - set(ITEM_LABELS):
        raise ModelError(f"items.{key}", "unknown key")
    epochs = _require(d, "epochs", "")
    if not isinstance(epochs, dict):
        raise ModelError("epochs", "must be an object")
    for key in set(epochs) - {"count", "min_time_s"} - set(EPOCH_LABELS):
        raise ModelError(f"epochs.{key}", "unknown key")
    count = _require(epochs, "count", "epochs")
    size = _require(items, "size_bytes", "items")
    if hasattr(size, "__len__") and not isinstance(size, (str, bytes, dict)) and len(size) == 0:
        # a file has nothing to place: refused here, by every command, in one line (the
        # library keeps empty instances possible for windows of an instance)
        raise ModelError("items.size_bytes", "no items: an instance file needs at least one "
                         "item to place")
    reads = _require(d, "reads", "")
    writes = d.get("writes", {"epoch": [], "item": [], "bytes": []})
    acc = []
    for label, block in (("reads", reads), ("writes", writes)):
        if not isinstance(block, dict):
            raise ModelError(label, "must be an object")
        for key in set(block) - {"epoch", "item", "bytes"}:
            raise ModelError(f"{label}.{key}", "unknown key")
        acc.append(tuple(_require(block, k, label) for k in ("epoch", "item", "bytes")))
    metadata = d.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelError("metadata", "must be an object")
    return make_instance(
        name=name, mode=d.get("mode", "exclusive"), tiers=tiers, size_bytes=size,
        num_epochs=count, birth=items.get("birth"), death=items.get("death"),
        pinned_tier=items.get("pinned_tier"), initial_tier=items.get("initial_tier"),
        min_time_s=epochs.get("min_time_s"), reads=acc[0], writes=acc[1],
        item_labels={k: items[k] for k in ITEM_LABELS if k in items},
        epoch_labels={k: epochs[k] for k in EPOCH_LABELS if k in epochs},
        metadata=metadata)


def _is_npz(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def save_instance(inst: Instance, path: str | os.PathLike) -> None:
    """Write an instance as JSON (``.json``), NPZ (``.npz``) or, for a path ending in
    ``.hetkv``, as a sharded instance folder (:func:`hetkv_opt.io.shards.save_sharded`),
    atomically."""
    path = Path(path)
    if path.suffix.lower() == SUFFIX:
        save_sharded(inst, path)
    elif _is_npz(path):
        arrays, header = _instance_arrays(inst)
        buf = _io.BytesIO()
        np.savez_compressed(buf, header=np.array(_json_dumps(header)), **arrays)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_bytes(path, (_json_dumps(instance_to_dict(inst)) + "\n").encode())


def _unflatten(header: dict, arrays: dict) -> dict:
    d = json.loads(json.dumps(header))
    for dotted, arr in arrays.items():
        parts = dotted.split(".")
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise FileFormatError(dotted, "conflicts with the header")
        node[parts[-1]] = arr
    return d


def load_instance(path: str | os.PathLike, compact: bool = False) -> Instance:
    """Load and validate an instance file (JSON or NPZ), or a sharded instance folder
    (all of it: :func:`hetkv_opt.io.shards.load_sharded`).

    With ``compact``, the access arrays come in the compact form of
    :func:`~hetkv_opt.model.instance.narrow_accesses` (for simulating policies): a
    sharded folder is loaded straight into it, one shard at a time; a file is loaded
    whole, then narrowed.

    Raises
    ------
    ModelError
        Naming the file, the field and the reason; nothing is half-loaded.

    Examples
    --------
    >>> import tempfile, os
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> p = os.path.join(tempfile.mkdtemp(), "tiny.json")
    >>> save_instance(tiny_instance(), p)
    >>> load_instance(p).equals(tiny_instance())
    True
    """
    path = Path(path)
    if is_sharded_path(path):
        return load_sharded(path, compact=compact)
    if compact:
        return narrow_accesses(load_instance(path))
    try:
        check_readable_file(path)
        if _is_npz(path):
            arrays, header = read_npz_with_header(path, "instance")
            if isinstance(header, dict) and header.get("schema") == SCHEMA_INSTANCE:
                check_header(header, schema=SCHEMA_INSTANCE, versions=SCHEMA_VERSION)
            d = _unflatten(header, arrays) if isinstance(header, dict) else header
        else:
            d = _read_json(path, "instance")
        return instance_from_dict(d)
    except ModelError as exc:
        raise exc.with_source(str(path)) from None


# ----------------------------------------------------------------------------- schedules

def schedule_to_dict(s: Schedule) -> dict:
    return {"schema": SCHEMA_SCHEDULE, "schema_version": SCHEMA_VERSION, "instance": s.instance,
            "moves": {"item": s.item.tolist(), "epoch": s.epoch.tolist(), "tier": s.tier.tolist()}}


def schedule_from_dict(d: Any) -> Schedule:
    check_header(d, schema=SCHEMA_SCHEDULE, versions=SCHEMA_VERSION)
    unknown = set(d) - {"schema", "schema_version", "instance", "moves", "metadata"}
    if unknown:
        raise ModelError(sorted(unknown)[0], "unknown key")
    name = _require(d, "instance", "")
    if not isinstance(name, str):
        raise ModelError("instance", "must be a string")
    moves = _require(d, "moves", "")
    from hetkv_opt.model.instance import _int_array
    item = _int_array(_require(moves, "item", "moves"), "moves.item")
    epoch = _int_array(_require(moves, "epoch", "moves"), "moves.epoch", item.shape[0])
    tier = _int_array(_require(moves, "tier", "moves"), "moves.tier", item.shape[0])
    return Schedule(instance=name, item=item, epoch=epoch, tier=tier)


def save_schedule(s: Schedule, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write a schedule as JSON or NPZ (by suffix), atomically.

    ``extra`` goes into the file's ``metadata`` (provenance: method, instance hash...).
    """
    path = Path(path)
    if _is_npz(path):
        header = {"schema": SCHEMA_SCHEDULE, "schema_version": SCHEMA_VERSION,
                  "instance": s.instance}
        if extra:
            header["metadata"] = extra
        buf = _io.BytesIO()
        np.savez_compressed(buf, header=np.array(_json_dumps(header)), **{
            "moves.item": s.item, "moves.epoch": s.epoch, "moves.tier": s.tier})
        atomic_write_bytes(path, buf.getvalue())
    else:
        d = schedule_to_dict(s)
        if extra:
            d["metadata"] = extra
        atomic_write_bytes(path, (_json_dumps(d) + "\n").encode())


def load_schedule(path: str | os.PathLike) -> Schedule:
    """Load a schedule file (JSON or NPZ); structural checks against an instance are
    done by :func:`hetkv_opt.model.evaluate.evaluate`."""
    path = Path(path)
    try:
        check_readable_file(path)
        if _is_npz(path):
            arrays, header = read_npz_with_header(path, "schedule")
            d = _unflatten(header, arrays) if isinstance(header, dict) else header
        else:
            d = _read_json(path, "schedule")
        return schedule_from_dict(d)
    except ModelError as exc:
        raise exc.with_source(str(path)) from None
