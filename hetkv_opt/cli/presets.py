"""``hetkv presets``: list the hardware and model presets, or check and show one file.

Added to the main app by :func:`register`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from hetkv_opt.cli.common import Format, emit_json, fail, out


class Kind(str, Enum):
    hardware = "hardware"
    model = "model"


def _row(kind: str, spec) -> dict:
    d = {"kind": kind, "name": spec.name, "summary": spec.summary, "source": spec.source,
         "path": spec.path}
    if kind == "hardware":
        d["peak_flops"] = spec.peak_flops
        d["tiers"] = spec.tier_dicts()
    else:
        d.update(layers=spec.layers, kv_bytes_per_token_layer=spec.kv_bytes_per_token_layer(),
                 weight_bytes_per_layer=spec.weight_bytes_per_layer(),
                 experts=spec.experts, top_k=spec.top_k, expert_bytes=spec.expert_bytes(),
                 total_params=spec.total_params())
    return d


def _kind_of(path: Path) -> str | None:
    """The kind a preset file declares (its ``schema``), or None if unreadable."""
    from hetkv_opt.presets import SCHEMA_HARDWARE, SCHEMA_MODEL, tomllib
    try:
        schema = tomllib.loads(path.read_text(encoding="utf-8")).get("schema")
    except Exception:
        return None
    return {SCHEMA_HARDWARE: "hardware", SCHEMA_MODEL: "model"}.get(schema)


def presets_cmd(
    preset: Optional[str] = typer.Argument(None, help="Show (and check) one preset: a name or the path of a .toml file."),
    kind: Optional[Kind] = typer.Option(None, "--kind", "-k", help="hardware or model (default: both)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
):
    """List the hardware and model presets (name, summary, file); with PRESET, check and
    show one, which may be your own file."""
    from rich.table import Table

    from hetkv_opt.model.instance import ModelError
    from hetkv_opt.presets import list_presets, load_hardware, load_model
    loaders = {"hardware": load_hardware, "model": load_model}
    rows = []
    try:
        if preset is not None:
            if kind is not None:
                kinds = [kind.value]
            elif Path(preset).is_file():
                k = _kind_of(Path(preset))
                kinds = [k] if k else ["hardware"]        # the loader names what is wrong
            else:
                kinds = [k for k, names in list_presets().items() if preset in names]
                if not kinds:
                    fail(f"unknown preset {preset!r} (see 'hetkv presets'; or give the path of a .toml file)")
            rows = [_row(k, loaders[k](preset)) for k in kinds]
        else:
            for k, names in list_presets(kind.value if kind else None).items():
                rows.extend(_row(k, loaders[k](path)) for path in names.values())
    except ModelError as exc:
        fail(str(exc))
    if fmt == Format.json:
        emit_json(rows)
        return
    if preset is not None:
        for r in rows:
            t = Table(title=f"{r['kind']} preset {r['name']}", show_header=False)
            t.add_column("what", style="bold")
            t.add_column("value")
            for key, val in r.items():
                if key != "tiers":
                    t.add_row(key, str(val))
            for k, tier in enumerate(r.get("tiers", [])):
                t.add_row(f"tier {k}", ", ".join(f"{a}={b}" for a, b in tier.items()))
            out.print(t)
        return
    t = Table(title="presets")
    for col in ("kind", "name", "summary", "file"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["kind"], r["name"], r["summary"], r["path"])
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``hetkv presets`` to the main app."""
    app.command("presets")(presets_cmd)
