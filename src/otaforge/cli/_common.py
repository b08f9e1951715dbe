"""Shared CLI plumbing: error-to-exit-code mapping and console output.

Exit codes: 0 ok; 1 verification failed / device or server refused; 2 bad input or usage;
3 transport failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from otaforge.errors import (
    FormatError,
    InputError,
    OtaforgeError,
    TransportError,
)
from otaforge.fsutil import read_error, read_file

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


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn otaforge errors into a one-line message on stderr and a non-zero exit code."""
    try:
        yield
    except OtaforgeError as err:
        fail(str(err), exit_code_for(err))
    except OSError as err:  # a Path.read_bytes() of a command body: the core's mapping
        fail(str(read_error(err.filename, err)), EXIT_BAD_INPUT)
