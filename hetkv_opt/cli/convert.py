"""``hetkv convert``: an instance file in another form (JSON, NPZ, a sharded ``.hetkv`` folder).

Added to the main app by :func:`register`; the work is :func:`hetkv_opt.io.reshard.convert_instance`
(``.npz`` to ``.hetkv`` streamed, every other direction loaded whole).
"""

from __future__ import annotations

from pathlib import Path

import typer

from hetkv_opt.cli.common import Format, check_output_path, count_progress, emit_json, err, fail
from hetkv_opt.model.instance import ModelError

_FORMS = (".json", ".npz", ".hetkv")


def convert(
    source: Path = typer.Argument(..., help="The instance: IN.npz, IN.json or a sharded IN.hetkv folder."),
    target: Path = typer.Argument(..., help="Where to write it: OUT.hetkv (a sharded folder, one file per layer), OUT.npz or OUT.json."),
    compress_level: int = typer.Option(6, "--compress-level", help="zlib level of the .hetkv folder's files (6: the same bytes as 'hetkv generate OUT.hetkv'; 1 is faster, larger)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Write an instance in another form.  IN.npz to OUT.hetkv streams: the read and write
    lists are read a chunk at a time and dealt to one spool per layer, so memory stays at
    the items, the epochs and one chunk (the paper's 3.0e8 reads convert in well under
    2 GB), with the loader's checks and messages; the folder is the same bytes as saving
    the loaded instance.  Every other direction (OUT.npz or OUT.json from a .hetkv folder,
    JSON either way) loads the instance whole, as every command does."""
    for path, what in ((source, "the input"), (target, "the output")):
        if path.suffix.lower() not in _FORMS:
            fail(f"{path}: {what} must end in .json, .npz or .hetkv (a sharded folder)")
    if not (0 <= compress_level <= 9):
        fail(f"option '--compress-level': must be 0..9, got {compress_level}")
    check_output_path(target, inputs=[source], option="")
    from hetkv_opt.io.reshard import convert_instance
    progress, stop = count_progress("convert", "accesses", enabled=not quiet)
    try:
        d = convert_instance(source, target, compresslevel=compress_level, progress=progress)
    except ModelError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or target}: {exc.strerror or exc}")
    finally:
        stop()
    if fmt == Format.json:
        emit_json(d)
        return
    shards = f", {len(d['layers'])} shard(s)" if "layers" in d else ""
    how = "streamed" if d["streamed"] else "loaded whole"
    err.print(f"wrote {target}: {d['items']} items x {d['epochs']} epochs, {d['reads']} reads, "
              f"{d['writes']} writes{shards} ({how})", soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the ``hetkv`` app."""
    app.command("convert")(convert)


__all__ = ["convert", "register"]
