"""JSON Schemas of the instance and schedule files and of the sharded instance's
manifest, and a small validator for them.

The schemas (``hetkv_opt/io/schemas/{instance,schedule,sharded}.schema.json``, JSON
Schema draft 2020-12) describe every field with its unit and default (docs/model.md
section 6); any JSON Schema tool can use them.  ``hetkv schema instance|schedule|sharded``
prints them (``sharded``: the ``manifest.json`` of a ``.hetkv`` folder).

:func:`validate` implements the part of JSON Schema they use (``type``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``enum``, ``const``, ``minimum``,
``exclusiveMinimum``, ``minLength``, ``minItems``, local ``$ref``), with a fast
path for numpy arrays, so that NPZ files (:func:`file_document`: the same object, arrays
kept as arrays) are checked in milliseconds.  It needs nothing beyond numpy; the tests
also check the schemas with the ``jsonschema`` package when it is installed.

A file can match its schema and still be refused by the loader: the schema checks the
shape of each field, the loader also the rules across fields (lengths, ranges against the
numbers of items, epochs and tiers, lives, sizes).

>>> from hetkv_opt.io.files import instance_to_dict
>>> from hetkv_opt.model.instance import tiny_instance
>>> validate(instance_to_dict(tiny_instance()), load_schema("instance"))
[]
>>> validate({"schema": "hetkv-schedule"}, load_schema("schedule"))[0]
"(top level): missing required key 'schema_version'"
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
KINDS = ("instance", "schedule", "sharded")


@lru_cache(maxsize=None)
def _load(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown schema {kind!r} (known: {', '.join(KINDS)})")
    return (SCHEMA_DIR / f"{kind}.schema.json").read_text(encoding="utf-8")


def load_schema(kind: str) -> dict:
    """The JSON Schema of a file kind (``instance``, ``schedule`` or ``sharded``), as a dict."""
    return json.loads(_load(kind))


def schema_text(kind: str) -> str:
    """The schema file's text, as shipped."""
    return _load(kind)


def file_document(path: str | Path) -> Any:
    """A JSON or NPZ file as one JSON-shaped object (NPZ: the header with every array
    member put at its dotted path, arrays kept as numpy arrays; a sharded instance folder:
    its ``manifest.json``)."""
    from hetkv_opt.io.files import read_npz_with_header
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if path.suffix.lower() != ".npz":
        return json.loads(path.read_text(encoding="utf-8"))
    arrays, header = read_npz_with_header(path, "hetkv")
    doc = json.loads(json.dumps(header))
    if not isinstance(doc, dict):
        return doc
    for dotted, arr in arrays.items():
        node = doc
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = arr
    return doc


def _type_ok(x: Any, t: str) -> bool:
    if t == "null":
        return x is None
    if t == "boolean":
        return isinstance(x, (bool, np.bool_))
    if t == "integer":
        if isinstance(x, (bool, np.bool_)):
            return False
        if isinstance(x, (int, np.integer)):
            return True
        return isinstance(x, (float, np.floating)) and float(x).is_integer()
    if t == "number":
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
    if t == "string":
        return isinstance(x, (str, np.str_))
    if t == "array":
        return isinstance(x, (list, tuple, np.ndarray))
    if t == "object":
        return isinstance(x, dict)
    raise ValueError(f"schema type {t!r} is not supported by this validator")


def _array_fast(arr: np.ndarray, items: dict, where: str, errors: list[str]) -> bool:
    """Check an ndarray against a simple ``items`` schema at numpy speed; False when the
    item schema needs the general path."""
    simple = {"type", "minimum", "exclusiveMinimum", "description"}
    if not set(items) <= simple or not isinstance(items.get("type"), str):
        return False
    t = items["type"]
    flat = arr.reshape(-1)
    kind = flat.dtype.kind
    if t == "string":
        if flat.size and kind not in "US":
            errors.append(f"{where}: must hold strings, got dtype {arr.dtype}")
        return True
    if t not in ("integer", "number"):
        return False
    if flat.size == 0:
        return True
    if kind == "b" or kind not in "iuf":
        errors.append(f"{where}: must hold {t}s, got dtype {arr.dtype}")
        return True
    if kind == "f":
        if not np.all(np.isfinite(flat)):
            errors.append(f"{where}: must hold finite numbers")
            return True
        if t == "integer" and np.any(flat != np.round(flat)):
            errors.append(f"{where}: must hold whole numbers")
            return True
    if "minimum" in items and flat.min() < items["minimum"]:
        k = int(np.argmin(flat))
        errors.append(f"{where}[{k}]: {flat[k]} is below the minimum {items['minimum']}")
    if "exclusiveMinimum" in items and flat.min() <= items["exclusiveMinimum"]:
        k = int(np.argmin(flat))
        errors.append(f"{where}[{k}]: {flat[k]} must be > {items['exclusiveMinimum']}")
    return True


def validate(doc: Any, schema: dict, *, max_errors: int = 20) -> list[str]:
    """Problems of ``doc`` against ``schema``, in words (empty = valid).

    Each message names the dotted path, e.g. ``tiers[1].bandwidth_Bps: -1 must be > 0``.
    """
    errors: list[str] = []
    root = schema

    def resolve(s: dict) -> dict:
        while "$ref" in s:
            ref = s["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local $ref are supported, got {ref!r}")
            node: Any = root
            for part in ref[2:].split("/"):
                node = node[part]
            s = node
        return s

    def check(x: Any, s: dict, where: str) -> None:
        if len(errors) >= max_errors:
            return
        s = resolve(s)
        name = where or "(top level)"
        if "const" in s and not _equal(x, s["const"]):
            errors.append(f"{name}: must be {s['const']!r}, got {_show(x)}")
            return
        if "enum" in s and not any(_equal(x, v) for v in s["enum"]):
            errors.append(f"{name}: must be one of {', '.join(map(repr, s['enum']))}, got {_show(x)}")
            return
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not any(_type_ok(x, t) for t in types):
                errors.append(f"{name}: must be {' or '.join(types)}, got {_show(x)}")
                return
        if x is None:
            return
        if _type_ok(x, "number"):
            v = float(x)
            if "minimum" in s and v < s["minimum"]:
                errors.append(f"{name}: {_show(x)} is below the minimum {s['minimum']}")
            if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
                errors.append(f"{name}: {_show(x)} must be > {s['exclusiveMinimum']}")
        if isinstance(x, (str, np.str_)) and "minLength" in s and len(x) < s["minLength"]:
            errors.append(f"{name}: must have at least {s['minLength']} character(s)")
        if isinstance(x, dict):
            props = s.get("properties", {})
            for key in s.get("required", ()):
                if key not in x:
                    errors.append(f"{name}: missing required key {key!r}")
            extra = s.get("additionalProperties", True)
            for key, val in x.items():
                sub = f"{where}.{key}" if where else str(key)
                if key in props:
                    check(val, props[key], sub)
                elif extra is False:
                    errors.append(f"{sub}: unknown key (known: {', '.join(props)})")
                elif isinstance(extra, dict):
                    check(val, extra, sub)
        if isinstance(x, (list, tuple, np.ndarray)):
            n = len(x) if not isinstance(x, np.ndarray) else x.reshape(-1).size
            if "minItems" in s and n < s["minItems"]:
                errors.append(f"{name}: must have at least {s['minItems']} entries, got {n}")
            items = s.get("items")
            if items is not None:
                items = resolve(items)
                if isinstance(x, np.ndarray) and _array_fast(x, items, name, errors):
                    return
                if not isinstance(x, np.ndarray) and _list_fast(x, items, name, errors):
                    return
                for k, v in enumerate(x):
                    check(v, items, f"{name}[{k}]")
                    if len(errors) >= max_errors:
                        return

    check(doc, schema, "")
    return errors


def _list_fast(x, items: dict, where: str, errors: list[str]) -> bool:
    """A long list of plain numbers: check it as an array (JSON files of big instances)."""
    if len(x) < 64 or items.get("type") not in ("integer", "number"):
        return False
    if not all(type(v) in (int, float) for v in x[:64]):
        return False
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError):
        return False
    if arr.dtype.kind not in "iuf" or arr.ndim != 1:
        return False
    return _array_fast(arr, items, where, errors)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, (bool, np.bool_)) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except (ValueError, TypeError):
        return False


def _show(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"an array of dtype {x.dtype}"
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_file(path: str | Path, kind: str | None = None) -> list[str]:
    """Problems of a file against its kind's schema (the kind from the file's ``schema``
    key when not given: ``hetkv-instance``, ``hetkv-schedule`` or, for a sharded folder
    or its manifest, ``hetkv-sharded-instance``)."""
    doc = file_document(path)
    if kind is None:
        tag = doc.get("schema") if isinstance(doc, dict) else None
        kind = {"hetkv-instance": "instance", "hetkv-schedule": "schedule",
                "hetkv-sharded-instance": "sharded"}.get(tag)
        if kind is None:
            return [f"(top level): schema must be 'hetkv-instance', 'hetkv-schedule' or "
                    f"'hetkv-sharded-instance', got {tag!r}"]
    return validate(doc, load_schema(kind))


__all__ = ["KINDS", "SCHEMA_DIR", "file_document", "load_schema", "schema_text", "validate",
           "validate_file"]
