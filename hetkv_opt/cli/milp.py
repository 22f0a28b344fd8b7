"""``hetkv export`` and ``hetkv solver-presets``: the MILP for other solvers, and the presets
of ours.

Added to the main app by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hetkv_opt.cli.common import Format, emit_json, err, fail, load_instance, out


def export(
    instance: Path = typer.Argument(..., help="Instance file."),
    to: Path = typer.Option(..., "--to", help="model.mps or model.lp"),
    relax: bool = typer.Option(False, "--relax", help="Write the LP relaxation (no integers)."),
    no_cuts: bool = typer.Option(False, "--no-cuts", help="Leave out the rounding cuts and count columns."),
):
    """Write the MILP (MPS or LP, with readable names) for any other solver.

    The objective is T / t0 with t0 the time unit printed here (seconds)."""
    from hetkv_opt.milp.highs import write_model
    from hetkv_opt.milp.build import build_model
    if to.suffix.lower() not in (".mps", ".lp"):
        fail(f"option '--to': {to} must end in .mps or .lp")
    inst = load_instance(instance)
    model = build_model(inst, rounding_cuts=not no_cuts, count_vars=not no_cuts)
    try:
        write_model(model, str(to), relax=relax)
    except OSError as exc:
        fail(str(exc))
    err.print(f"wrote {to}: {model.num_col} columns, {model.num_row} rows, {model.num_nz} nonzeros; "
              f"objective = T / {model.t0_s:.9g} s")


def solver_presets(fmt: Format = typer.Option(Format.table, "--format", "-f")):
    """List the named solver presets (solvers/*.toml)."""
    from hetkv_opt.milp.config import list_presets, load_preset
    rows = []
    for name, path in sorted(list_presets().items()):
        try:
            cfg = load_preset(str(path))
            rows.append({"name": name, "path": str(path), "description": cfg.description,
                         "backend": cfg.backend, "mip_rel_gap": cfg.mip_rel_gap})
        except ValueError as exc:
            rows.append({"name": name, "path": str(path), "error": str(exc)})
    if fmt == Format.json:
        emit_json(rows)
        return
    t = Table(title="solver presets")
    for col in ("name", "backend", "gap", "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r.get("backend", "?"), str(r.get("mip_rel_gap", "?")),
                  r.get("description", r.get("error", "")))
    out.print(t)


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``solver-presets`` to the ``hetkv`` app."""
    app.command("export")(export)
    app.command("solver-presets")(solver_presets)


__all__ = ["export", "register", "solver_presets"]
