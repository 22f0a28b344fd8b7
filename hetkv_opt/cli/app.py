"""The ``hetkv`` command: the Typer app, every command module registered on it, and
:func:`main`, the console-script entry point.

Each command module (:mod:`~hetkv_opt.cli.solve`, :mod:`~hetkv_opt.cli.generate`, ...)
defines ``register(app)`` and imports only :mod:`hetkv_opt.cli.common` and the library;
nothing imports this module back except ``hetkv_opt.__main__`` and the ``hetkv`` script.

Machine output (``--format json``) is the only thing on stdout; progress, logs and
errors go to stderr.  Expected failures (bad files, bad options) print one line and exit
with code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from hetkv_opt.cli import bench, bound, generate, milp, policies, presets, solve, stats, trace
from hetkv_opt.cli.common import err

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hetkv: proven bounds and optimal KV-cache placement for heterogeneous memory.")

# the order of ``hetkv --help``
for _module in (solve, generate, milp, policies, bound, bench, presets, stats, trace):
    _module.register(app)


def _is(exc: BaseException, name: str) -> bool:
    """Click's exception classes by name (typer vendors its own click in newer versions)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors become one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx else "hetkv --help", file=sys.stderr)
            sys.exit(0)
        if _is(exc, "UsageError"):
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx else "hetkv"
            err.print(f"[bold red]error:[/] {exc.format_message()} (see '{cmd} --help')",
                      soft_wrap=True)
            sys.exit(2)
        if _is(exc, "Abort"):
            err.print("interrupted")
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
