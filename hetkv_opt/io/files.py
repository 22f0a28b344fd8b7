"""Reading and writing instance and schedule files (docs/model.md section 6).

JSON for small files, NPZ for large ones, with the same content.  Every loader validates
everything before returning, and every error names the file, the field and the reason.
Every writer writes to a temporary file and renames it, so a file is whole or absent.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hetkv_opt.model.instance import (EPOCH_LABELS, ITEM_LABELS, SCHEMA_INSTANCE, SCHEMA_VERSION,
                                Instance, ModelError, make_instance, tier_specs)
from hetkv_opt.model.schedule import SCHEMA_SCHEDULE, Schedule

_ITEM_ARRAYS = ("size_bytes", "birth", "death", "pinned_tier", "initial_tier")


class FileFormatError(ModelError):
    """A file that cannot be read as a hetkv file (not JSON/NPZ, truncated, wrong schema)."""


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temp file in the same folder + rename)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    atomic_write_with(path, write)


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> None:
    """Let ``writer(tmp_path)`` write a file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def hash_array(h, key: str, arr: np.ndarray) -> None:
    """Feed one named array to the instance hash ``h`` (integers as little-endian int64,
    floats as float64, labels as NUL-joined text): the same bytes whatever the dtype."""
    h.update(key.encode())
    if arr.dtype.kind in "iu":
        h.update(np.ascontiguousarray(arr, dtype="<i8").tobytes())
    elif arr.dtype.kind == "f":
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    else:
        h.update("\x00".join(arr.astype(str).tolist()).encode())


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False, allow_nan=False)


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


def _require(d: Any, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise ModelError(where or "(top level)", "must be an object")
    if key not in d:
        raise ModelError(f"{where}.{key}" if where else key, "missing required key")
    return d[key]


def check_header(d: Any, *, schema: str, versions: int | Sequence[int], where: str = "(top level)",
                 path: str | os.PathLike | None = None,
                 error: Callable[..., Exception] = ModelError) -> int:
    """Check the ``schema`` / ``schema_version`` header of a hetkv file; the one check every
    file kind uses (instances, schedules, traces, certificates, drift params, bench cells,
    suites, presets).

    Parameters
    ----------
    d : object
        The parsed file (a JSON object, an NPZ ``header``, a TOML table).
    schema : str
        The expected ``schema`` value, e.g. ``"hetkv-instance"``.
    versions : int or sequence of int
        The ``schema_version`` values this reader understands.
    where : str
        The field named when ``d`` is not an object: ``"(top level)"`` for a JSON file,
        ``"header"`` for an NPZ file's header.
    path : str or PathLike, optional
        The file, named in the error (else the caller adds it, e.g. ``exc.with_source``).
    error : exception class
        Raised as ``error(field, reason, source)``; a :class:`ModelError` subclass
        (or anything with that constructor, such as ``SuiteError``).

    Returns
    -------
    int
        The file's ``schema_version``.

    Raises
    ------
    ModelError
        (``error``) naming the field, ``schema`` or ``schema_version``, and the reason.

    Examples
    --------
    >>> check_header({"schema": "hetkv-instance", "schema_version": 1},
    ...              schema="hetkv-instance", versions=1)
    1
    >>> check_header({"schema": "hetkv-instance", "schema_version": 2},
    ...              schema="hetkv-instance", versions=1, path="x.json")
    Traceback (most recent call last):
    ...
    hetkv_opt.model.instance.ModelError: x.json: field 'schema_version': version 2 is newer than this hetkv_opt understands (expected 1)
    """
    known = (versions,) if isinstance(versions, int) else tuple(versions)
    source = None if path is None else str(path)

    def fail(field: str, reason: str):
        return error(field, reason, source)
    if not isinstance(d, Mapping):
        raise fail(where, "must be a JSON object")
    if "schema" not in d:
        raise fail("schema", "missing required key")
    got = d["schema"]
    if got != schema:
        raise fail("schema", f"expected '{schema}', got {got!r}")
    if "schema_version" not in d:
        raise fail("schema_version", "missing required key")
    ver = d["schema_version"]
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise fail("schema_version", f"must be an integer, got {ver!r}")
    expected = " or ".join(str(v) for v in known)
    if ver > max(known):
        raise fail("schema_version", f"version {ver} is newer than this hetkv_opt understands (expected {expected})")
    if ver not in known:
        raise fail("schema_version", f"unknown version {ver} (expected {expected})")
    return ver


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


def _instance_arrays(inst: Instance) -> tuple[dict, dict]:
    d = instance_to_dict_header(inst)
    arrays = {f"items.{k}": getattr(inst, k) for k in _ITEM_ARRAYS}
    arrays.update({f"items.{k}": v for k, v in inst.item_labels.items()})
    arrays["epochs.min_time_s"] = inst.min_time_s
    arrays.update({f"epochs.{k}": v for k, v in inst.epoch_labels.items()})
    for label, pre in (("reads", "read"), ("writes", "write")):
        for k in ("epoch", "item", "bytes"):
            arrays[f"{label}.{k}"] = getattr(inst, f"{pre}_{k}")
    return arrays, d


def instance_to_dict_header(inst: Instance) -> dict:
    """Everything of the instance except its arrays (the NPZ ``header``)."""
    return {"schema": SCHEMA_INSTANCE, "schema_version": SCHEMA_VERSION, "name": inst.name,
            "mode": inst.mode, "tiers": instance_to_dict_tiers(inst), "epochs": {"count": inst.num_epochs},
            "metadata": dict(inst.metadata)}


def instance_to_dict_tiers(inst: Instance) -> list:
    return tier_specs(inst.tiers)


def _is_npz(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def save_instance(inst: Instance, path: str | os.PathLike) -> None:
    """Write an instance as JSON (``.json``) or NPZ (``.npz``), atomically."""
    path = Path(path)
    if _is_npz(path):
        arrays, header = _instance_arrays(inst)
        buf = _io.BytesIO()
        np.savez_compressed(buf, header=np.array(_json_dumps(header)), **arrays)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_bytes(path, (_json_dumps(instance_to_dict(inst)) + "\n").encode())


def read_npz_with_header(source: Path | bytes, what: str,
                         error: type[ModelError] = FileFormatError) -> tuple[dict, dict]:
    """The arrays of an NPZ file and its ``header`` (a JSON object), for every hetkv NPZ
    kind (instances, schedules, traces, certificates).  ``source`` is a path or the file's
    bytes; any damage is raised as ``error`` naming the field."""
    fh = _io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    if not zipfile.is_zipfile(fh):
        raise error("(file)", f"not an NPZ {what} file (not a zip archive; truncated?)")
    if isinstance(fh, _io.BytesIO):
        fh.seek(0)
    try:
        with np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile, zlib, numpy: any damage means the same to the user
        raise error("(file)", f"not a readable NPZ {what} file: damaged or truncated "
                    f"({type(exc).__name__}: {exc})") from None
    if "header" not in arrays:
        raise error("header", "missing required key")
    try:
        header = parse_json(str(arrays.pop("header")))
    except json.JSONDecodeError as exc:
        raise error("header", f"not valid JSON ({exc.msg})") from None
    except _StrictJsonError as exc:
        raise error("header", str(exc)) from None
    return arrays, header


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


def load_instance(path: str | os.PathLike) -> Instance:
    """Load and validate an instance file (JSON or NPZ).

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


class _StrictJsonError(ValueError):
    """What JSON allows but a hetkv file may not hold (a key twice in one object)."""


def _unique_keys(pairs: list) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _StrictJsonError(f"duplicate key '{key}' in one object (JSON readers keep "
                                   f"only one of them: write it once)")
        out[key] = value
    return out


def parse_json(text: str) -> Any:
    """``json.loads`` for hetkv files: a key given twice in one object is refused
    (:class:`_StrictJsonError`) instead of one of them being silently kept.  (``NaN`` is
    read, and refused by the field it is in.)"""
    return json.loads(text, object_pairs_hook=_unique_keys)


def check_readable_file(path: Path) -> None:
    """Raise :class:`FileFormatError` saying what is wrong with ``path`` as an input file:
    missing, a directory, not a regular file, unreadable."""
    if not path.exists():
        raise FileFormatError("(file)", "no such file")
    if path.is_dir():
        raise FileFormatError("(file)", "is a directory, not a file")
    if not path.is_file():
        raise FileFormatError("(file)", "not a regular file (a device, a pipe or a socket)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise FileFormatError("(file)", f"cannot read it ({exc.strerror or exc})") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FileFormatError("(file)", f"not a JSON {what} file (not UTF-8 text; NPZ files need the .npz suffix)") from None
    except OSError as exc:
        raise FileFormatError("(file)", f"cannot read it ({exc.strerror or exc})") from None
    if not text.strip():
        raise FileFormatError("(file)", "truncated JSON: empty file")
    try:
        return parse_json(text)
    except _StrictJsonError as exc:
        raise FileFormatError("(file)", str(exc)) from None
    except json.JSONDecodeError as exc:
        raise FileFormatError("(file)", _json_error(text, exc)) from None


def _json_error(text: str, exc: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text, in words: a trailing comma, a truncated file, or
    other invalid JSON, with the line and column."""
    where = f"at line {exc.lineno} column {exc.colno}"
    before = text[:exc.pos].rstrip()
    after = text[exc.pos:exc.pos + 1]
    if before.endswith(",") and after in ("}", "]"):
        return f"not valid JSON: a trailing comma before '{after}' {where}"
    if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated"):
        return f"truncated JSON: {exc.msg} {where}"
    return f"not valid JSON: {exc.msg} {where}"


def instance_hash(inst: Instance) -> str:
    """A stable SHA-256 of an instance's content (same for its JSON and NPZ files).

    Examples
    --------
    >>> from hetkv_opt.model.instance import tiny_instance
    >>> instance_hash(tiny_instance())[:12] == instance_hash(tiny_instance())[:12]
    True
    """
    arrays, header = _instance_arrays(inst)
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for key in sorted(arrays):
        hash_array(h, key, arrays[key])
    return h.hexdigest()


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
