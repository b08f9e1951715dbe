"""The ``otaforge`` command: dispatch by the table in :mod:`otaforge.cli._spec`.

``otaforge GROUP NAME ARGS`` builds the argparse parser of that one command, imports only its
handler module, runs it inside :func:`otaforge.cli._common.handle_errors` (the one mapping of
errors to exit codes) and returns the exit code. Nothing here imports a command's module
before it is known to be the one that runs, so ``otaforge image info`` pays for neither the
server nor the key code.
"""

from __future__ import annotations

import sys

from otaforge.cli import _spec

HELP = ("-h", "--help")


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _unknown(what: str, name: str, known: list[str], prog: str) -> int:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (choose from {', '.join(known)})"
    sys.stderr.write(f"error: unknown {what} '{name}'{hint} (see '{prog} --help')\n")
    return 2


def _root(args: list[str]) -> int:
    """``otaforge``, ``otaforge -h|--help|--version`` or an unknown first word."""
    from otaforge.cli._help import root_help

    if not args:
        sys.stderr.write(root_help())
        return 2
    first = args[0]
    if first in HELP:
        sys.stdout.write(root_help())
        return 0
    if first == "--version":
        from otaforge import __version__

        sys.stdout.write(f"otaforge {__version__}\n")
        return 0
    if first.startswith("-"):
        return _unknown("option", first, [*HELP, "--version"], "otaforge")
    return _unknown("command", first, [*_spec.GROUPS, *_top_level()], "otaforge")


def _top_level() -> list[str]:
    return [c.name for c in _spec.COMMANDS if not c.group]


def _group(group: str, args: list[str]) -> int:
    """``otaforge GROUP``, ``otaforge GROUP --help`` or an unknown command of the group."""
    from otaforge.cli._help import group_help

    if not args:
        sys.stderr.write(group_help(group))
        return 2
    if args[0] in HELP:
        sys.stdout.write(group_help(group))
        return 0
    names = [c.name for c in _spec.COMMANDS if c.group == group]
    what = "option" if args[0].startswith("-") else "command"
    return _unknown(what, args[0], [*names, *HELP] if what == "option" else names,
                    f"otaforge {group}")


def run(cmd: _spec.Cmd, args: list[str]) -> int:
    """Parse ``args`` for ``cmd`` and run its handler; returns the exit code."""
    import importlib

    from otaforge.cli._common import handle_errors
    from otaforge.cli._parser import command_parser

    ns = command_parser(cmd).parse_args(args)
    module, _, function = cmd.handler.partition(":")
    handler = getattr(importlib.import_module(module), function)
    with handle_errors():
        return _exit_code(handler(ns))
    return 1  # pragma: no cover  (handle_errors exits on every error it catches)


def dispatch(args: list[str]) -> int:
    """Run ``otaforge ARGS``; returns the exit code (may raise SystemExit)."""
    if not args:
        return _root([])
    first = args[0]
    if first.startswith("-"):
        return _root(args[:1])
    if first in _spec.GROUPS:
        name = args[1] if len(args) > 1 else ""
        cmd = _spec.find(first, name)
        return run(cmd, args[2:]) if cmd is not None else _group(first, args[1:])
    cmd = _spec.find("", first)
    return run(cmd, args[1:]) if cmd is not None else _root(args[:1])


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: returns the exit code (``sys.exit(main())``)."""
    try:
        return dispatch(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as done:
        return _exit_code(done.code)
    except KeyboardInterrupt:
        sys.stderr.write("otaforge: interrupted\n")
        return 130
    except BrokenPipeError:  # e.g. `otaforge image info x.bin | head -1`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
