"""The ``hetkv`` command: the Typer app, every command module registered on it, and
:func:`main`, the console-script entry point.

Each command module (:mod:`~hetkv_opt.cli.solve`, :mod:`~hetkv_opt.cli.generate`, ...)
defines ``register(app)`` and imports only :mod:`hetkv_opt.cli.common` and the library;
nothing imports this module back except ``hetkv_opt.__main__`` and the ``hetkv`` script.

Machine output (``--format json``) is the only thing on stdout; progress, logs and
errors go to stderr.  Expected failures (bad files, bad options) print one line and exit
with code 2, never a traceback; an unexpected exception is one line and exit code 1
(``--debug`` shows the traceback); Ctrl-C exits 130, SIGTERM 143.
"""

from __future__ import annotations

import os
import sys

import typer

from hetkv_opt.cli import (bench, bound, convert, explain, generate, milp, policies, presets,
                           schema, solve, stats, sweep, trace)
from hetkv_opt.cli.common import (install_signal_handlers, interrupt_exit_code, interrupted_by,
                                  interruption_reported, print_error, say)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hetkv: proven bounds and optimal KV-cache placement for heterogeneous "
                       "memory.  Exit codes: 0 done; 1 an error result, or an unexpected error "
                       "(--debug shows its traceback); 2 a bad file, option or output path, or "
                       "out of memory; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).")


@app.callback()
def _root(debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback of an unexpected error (which is "
        "otherwise one line, exit code 1).")) -> None:
    """hetkv: proven bounds and optimal KV-cache placement for heterogeneous memory.

    Exit codes: 0 done, 1 an error result or an unexpected error, 2 a bad file, option or
    output path (or out of memory), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)."""


# the order of ``hetkv --help``
for _module in (solve, generate, convert, milp, policies, explain, bound, bench, sweep, presets,
                stats, trace, schema):
    _module.register(app)


def _is(exc: BaseException, name: str) -> bool:
    """Click's exception classes by name (typer vendors its own click in newer versions)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _take_debug(argv: list[str]) -> bool:
    """Remove ``--debug`` from the arguments (anywhere before ``--``); also HETKV_DEBUG=1."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = "--debug" in argv[:end]
    if found:
        argv[:end] = [a for a in argv[:end] if a != "--debug"]
    return found or os.environ.get("HETKV_DEBUG", "") not in ("", "0")


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    return text


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Usage errors, bad files and options: one line, exit code 2; out of memory: one line,
    exit 2; Ctrl-C: exit 130 (SIGTERM: 143), after what the command prints on the way
    out; any other exception: one line, exit 1, and ``--debug`` shows its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _take_debug(argv)
    install_signal_handlers()
    try:
        rv = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(interrupt_exit_code())
    except MemoryError:
        if debug:
            raise
        print_error("out of memory: the instance or the options ask for more memory than "
                    "this machine has (try a smaller instance)")
        sys.exit(2)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx else "hetkv --help", file=sys.stderr)
            sys.exit(0)
        if _is(exc, "UsageError"):
            ctx = getattr(exc, "ctx", None)
            cmd = ctx.command_path if ctx else "hetkv"
            print_error(f"{exc.format_message()} (see '{cmd} --help')")
            sys.exit(2)
        if _is(exc, "Abort"):
            say("interrupted")
            sys.exit(interrupt_exit_code())
        if debug:
            raise
        print_error(f"unexpected {type(exc).__name__}: {_oneline(exc)} (a bug? rerun with "
                    f"--debug for the traceback)")
        sys.exit(1)
    if interrupted_by() is not None:     # whatever the command returned: a signal stopped it
        if not interruption_reported():
            say("interrupted")
        sys.exit(interrupt_exit_code())
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
