"""What every hetkv file reader and writer shares (docs/model.md sections 6 and 7).

The one header check (:func:`check_header`), the strict JSON parser (a key given twice
is refused), the NPZ reader of every kind (:func:`read_npz_with_header`), atomic writes
(temporary file in the same folder, then a rename), the instance hash
(:func:`instance_hash`: the same for the JSON, NPZ and sharded forms of one instance) and
:class:`FileFormatError`.  :mod:`hetkv_opt.io.files` (single-file instances and
schedules) and :mod:`hetkv_opt.io.shards` (the sharded layout) both build on it, and
:mod:`hetkv_opt.io.files` hands every name on, so ``from hetkv_opt.io.files import
check_header`` keeps working.
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

from hetkv_opt.model.instance import SCHEMA_INSTANCE, SCHEMA_VERSION, Instance, ModelError, tier_specs

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


#: entries hashed at a time (8 MiB of int64)
_HASH_SLICE = 1 << 20


def hash_array(h, key: str, arr: np.ndarray) -> None:
    """Feed one named array to the instance hash ``h`` (integers as little-endian int64,
    floats as float64, labels as NUL-joined text): the same bytes whatever the dtype."""
    h.update(key.encode())
    if arr.dtype.kind in "iuf":
        # fed in slices, without a copy of the whole array (a read list can be GBs)
        want = "<f8" if arr.dtype.kind == "f" else "<i8"
        flat = arr.reshape(-1)
        for lo in range(0, flat.size, _HASH_SLICE):
            h.update(memoryview(np.ascontiguousarray(flat[lo:lo + _HASH_SLICE], dtype=want)))
    else:
        h.update("\x00".join(arr.astype(str).tolist()).encode())


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False, allow_nan=False)


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


def read_npz_with_header(source: Path | bytes, what: str,
                         error: type[ModelError] = FileFormatError,
                         skip: frozenset = frozenset()) -> tuple[dict, dict]:
    """The arrays of an NPZ file and its ``header`` (a JSON object), for every hetkv NPZ
    kind (instances, schedules, traces, certificates).  ``source`` is a path or the file's
    bytes; any damage is raised as ``error`` naming the field.  The members named in
    ``skip`` are not read (a streaming reader reads them itself)."""
    fh = _io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    if not zipfile.is_zipfile(fh):
        raise error("(file)", f"not an NPZ {what} file (not a zip archive; truncated?)")
    if isinstance(fh, _io.BytesIO):
        fh.seek(0)
    try:
        with np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in skip}
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



__all__ = ["FileFormatError", "atomic_write_bytes", "atomic_write_with", "check_header",
           "check_readable_file", "hash_array", "instance_hash", "instance_to_dict_header",
           "instance_to_dict_tiers", "parse_json", "read_npz_with_header"]
