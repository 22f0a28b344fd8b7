"""``hetkv export`` and ``hetkv solver-presets``: the MILP for other solvers, and the presets
of ours.

Added to the main app by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from hetkv_opt.cli.common import (Format, check_output_path, emit_json, err, fail, load_instance,
                                  out)


def export(
    instance: Path = typer.Argument(..., help="Instance file."),
    to: Path = typer.Option(..., "--to", help="model.mps or model.lp"),
    relax: bool = typer.Option(False, "--relax", help="Write the LP relaxation (no integers)."),
    no_cuts: bool = typer.Option(False, "--no-cuts", help="Leave out the rounding cuts and count columns."),
):
    """Write the MILP (MPS or LP, with readable names) for any other solver.

    Times in the model are in a time unit t0 (seconds), so that they are O(1): the
    objective is T / t0.  The time unit is printed here and written in the file's first
    comment lines ('* hetkv: time unit t0 = ... s' in MPS, '\\ hetkv: ...' in LP)."""
    import os
    import shutil
    import tempfile

    from hetkv_opt.io.files import atomic_write_with, instance_hash
    from hetkv_opt.milp.highs import write_model
    from hetkv_opt.milp.build import build_model
    if to.suffix.lower() not in (".mps", ".lp"):
        fail(f"option '--to': {to} must end in .mps or .lp")
    check_output_path(to, inputs=[instance], option="--to")
    inst = load_instance(instance)
    model = build_model(inst, rounding_cuts=not no_cuts, count_vars=not no_cuts)
    mark = "*" if to.suffix.lower() == ".mps" else "\\"
    head = (f"{mark} hetkv: time unit t0 = {model.t0_s:.9g} s: the objective is T / t0, T the "
            f"decode time in seconds\n"
            f"{mark} hetkv: instance {inst.name}, sha256 {instance_hash(inst)}"
            f"{', LP relaxation' if relax else ''}\n")

    def write(tmp: str) -> None:
        fd, raw = tempfile.mkstemp(prefix=f".{to.stem}.highs.", suffix=to.suffix, dir=to.parent)
        os.close(fd)
        try:
            write_model(model, raw, relax=relax)
            with open(tmp, "w", encoding="utf-8") as dst, open(raw, encoding="utf-8") as src:
                dst.write(head)
                shutil.copyfileobj(src, dst)
        finally:
            os.unlink(raw)
    try:
        atomic_write_with(to, write)
    except OSError as exc:
        fail(f"{to}: cannot write the model ({exc.strerror or exc})")
    err.print(f"wrote {to}: {model.num_col} columns, {model.num_row} rows, {model.num_nz} nonzeros; "
              f"objective = T / {model.t0_s:.9g} s", markup=False, highlight=False)


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
