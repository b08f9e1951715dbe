"""Shared CLI plumbing: the one mapping of errors to exit codes, and input reading.

Exit codes: 0 ok; 1 verification failed / device or server refused; 2 bad input or usage;
3 transport failure. Every command runs inside :class:`handle_errors` (``cli/main.py``), so a
handler only raises otaforge errors and never picks an exit code for them itself.

Imported by every command: no ``typing``/``contextlib`` here (start-up time).
"""

from __future__ import annotations

import os
import sys

from otaforge.errors import (
    FormatError,
    InputError,
    OtaforgeError,
    TransportError,
)
from otaforge.fsutil import read_error, read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TRANSPORT = 3


def exit_code_for(err: OtaforgeError) -> int:
    """The process exit code for an otaforge error."""
    if isinstance(err, FormatError | InputError):
        return EXIT_BAD_INPUT
    if isinstance(err, TransportError):
        return EXIT_TRANSPORT
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)


def read_input(path: str | os.PathLike[str], what: str) -> bytes:
    """Read an input file (``-`` is standard input).

    Raises:
        InputError: the file is missing, a directory or unreadable; the message names the file
            and what it should have been (``what``, e.g. ``"partition table"``).
    """
    if os.fspath(path) == "-":
        return sys.stdin.buffer.read()
    return read_file(path, what)


class handle_errors:
    """Turn otaforge errors into a one-line message on stderr and a non-zero exit code.

    ``OtaforgeError`` -> :func:`exit_code_for`; an ``OSError`` a handler let through (a
    ``read_bytes()``) -> exit 2 with the path named.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(err, OtaforgeError):
            fail(str(err), exit_code_for(err))
        if isinstance(err, OSError) and not isinstance(err, BrokenPipeError):
            fail(str(read_error(err.filename, err)), EXIT_BAD_INPUT)
