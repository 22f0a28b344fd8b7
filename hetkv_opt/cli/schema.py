"""``hetkv schema``: the JSON Schemas of instance and schedule files and of the sharded
instance's manifest, and a check of a file (or a ``.hetkv`` folder) against them.

Added to the main app by :func:`register`; the schemas and the validator are
:mod:`hetkv_opt.io.schema` (fields, units and defaults: docs/model.md section 6).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import fail, out


class Kind(str, Enum):
    instance = "instance"
    schedule = "schedule"
    sharded = "sharded"


def schema_cmd(
    kind: Kind = typer.Argument(..., help="instance, schedule, or sharded (the manifest.json of a .hetkv folder)."),
    check: Optional[Path] = typer.Option(None, "--check", help="Validate this file (.json or .npz, or a .hetkv folder's manifest) against the schema instead of printing it (exit 1 if it does not match)."),
):
    """Print the JSON Schema of instance or schedule files or of a sharded instance's
    manifest (draft 2020-12), or check a file against it (the loader checks the rules
    across fields besides)."""
    from hetkv_opt.io.schema import schema_text, validate, file_document, load_schema
    if check is None:
        sys.stdout.write(schema_text(kind.value))
        return
    if not (check.is_file() or (check.is_dir() and (check / "manifest.json").is_file())):
        fail(f"{check}: no such file")
    try:
        doc = file_document(check)
    except Exception as exc:  # noqa: BLE001 - not JSON, not an NPZ: one line
        fail(f"{check}: not a readable {kind.value} file ({type(exc).__name__}: {exc})")
    problems = validate(doc, load_schema(kind.value))
    if not problems:
        tag = "hetkv-sharded-instance" if kind == Kind.sharded else f"hetkv-{kind.value}"
        out.print(f"{check}: matches the {tag} schema", markup=False, highlight=False)
        return
    for p in problems:
        out.print(f"{check}: {p}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add ``schema`` to a typer app (a second call does nothing)."""
    if "schema" not in {c.name for c in app.registered_commands}:
        app.command("schema")(schema_cmd)


__all__ = ["register", "schema_cmd"]
