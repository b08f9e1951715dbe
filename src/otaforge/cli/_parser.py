"""argparse parsers made from :mod:`otaforge.cli._spec` (the only place options are declared).

Only the parser of the command being run is built (a few hundred microseconds), and help is
formatted for at most 80 columns; ``-h`` and ``--help`` are the same option of the same parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from otaforge.cli._spec import Cmd, Opt

MAX_WIDTH = 80


def _columns() -> int:
    """Terminal width capped at 80, as shutil.get_terminal_size (not imported: start-up)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = MAX_WIDTH
    return min(columns, MAX_WIDTH)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, at most 80 columns wide (narrower terminals wrap narrower)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2, max_help_position=30)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        """``-k, --keyfile, --key KEY`` (argparse repeats the metavar after every flag)."""
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        flags = sorted(action.option_strings, key=lambda f: f.startswith("--"))
        return f"{', '.join(flags)} {self._format_args(action, action.dest.upper())}"


class Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line that points to ``--help``, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        message = message.replace("unrecognized arguments:", "unknown option or extra argument:")
        if message.startswith("argument "):  # "argument --size: 12: must be ..."
            flag, _, rest = message[len("argument "):].partition(": ")
            own = not rest.startswith(("invalid choice", "expected", "not allowed", "ignored"))
            message = f"{flag} {rest}" if own else f"{flag}: {rest}"
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def _number(opt: Opt) -> object:
    """The ``type=`` of an int/float option: parses and checks ``lo``/``hi``."""
    flag = opt.flags[0]
    is_int = opt.kind == "int"

    def convert(text: str) -> int | float:
        try:
            value: int | float = (int(text, 0) if text.lower().startswith(("0x", "0o", "0b"))
                                  else int(text)) if is_int else float(text)
        except ValueError:
            kind = "an integer" if is_int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if opt.lo is not None and value < opt.lo:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {opt.lo}")
        if opt.hi is not None and value > opt.hi:
            raise argparse.ArgumentTypeError(f"{text}: must be at most {opt.hi}")
        return value

    convert.__name__ = f"{flag} value"
    return convert


def _help(opt: Opt) -> str:
    if opt.hidden:
        return argparse.SUPPRESS
    text = opt.help.replace("%", "%%")
    if opt.env:
        text += f" [env {opt.env}]"
    return text


def _add(parser: argparse.ArgumentParser, opt: Opt, environ: Mapping[str, str]) -> None:
    kwargs: dict[str, object] = {"help": _help(opt)}
    env_value = environ.get(opt.env) if opt.env else None
    default = env_value if env_value is not None else opt.default
    if opt.kind == "flag":
        kwargs.update(action="store_true")
    elif opt.kind == "bool":
        kwargs.update(action=argparse.BooleanOptionalAction, default=default)
    else:
        if opt.kind in ("int", "float"):
            kwargs["type"] = _number(opt)
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.metavar and not opt.positional:
            kwargs["metavar"] = opt.metavar
        if opt.many:
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = default
    if opt.positional:
        if not opt.required:
            kwargs["nargs"] = "?"
        kwargs["metavar"] = opt.flags[0].upper()
        parser.add_argument(opt.flags[0], **kwargs)  # type: ignore[arg-type]
        return
    if opt.required and env_value is None:
        kwargs["required"] = True
    parser.add_argument(*opt.flags, dest=opt.dest, **kwargs)  # type: ignore[arg-type]


def command_parser(cmd: Cmd, environ: Mapping[str, str] | None = None
                   ) -> argparse.ArgumentParser:
    """The parser of one command (``prog`` is ``otaforge GROUP NAME``).

    ``environ`` (default ``os.environ``) supplies the defaults of options with an ``env``.
    """
    parser = Parser(prog=f"otaforge {cmd.path}", description=cmd.description or cmd.help,
                    formatter_class=HelpFormatter, allow_abbrev=False)  # --rev is no --revoke
    for opt in cmd.options:
        _add(parser, opt, os.environ if environ is None else environ)
    return parser
