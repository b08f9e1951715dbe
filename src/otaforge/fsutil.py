"""Atomic file output: a reader sees the old file or the new one, never half of one.

Every ``OSError`` of writing (the destination is a directory, a parent is a file, no such
folder, permission denied, a read-only or special file system, disk full) becomes one
:class:`~otaforge.errors.InputError` that names the path and says what to do, and nothing is
left behind: no temporary file, no half-written destination.
"""

from __future__ import annotations

import errno
import os
import stat

from otaforge.errors import InputError


def first_file_parent(dest: str | os.PathLike[str]) -> str | None:
    """The nearest existing ancestor of ``dest`` that is not a directory, if any."""
    parent = os.path.dirname(os.path.abspath(os.fspath(dest)))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent if parent and not os.path.isdir(parent) else None


def _nearest_existing(path: str) -> str:
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def write_error(dest: str, err: OSError, doing: str = "write") -> InputError:
    """One clear :class:`InputError` for an ``OSError`` met while writing ``dest``."""
    folder = os.path.dirname(dest) or "."
    blocker = first_file_parent(dest)
    if blocker is not None:
        why = f"{blocker} is a file, not a directory: choose another output path"
    elif os.path.isdir(dest):
        why = "is a directory: give a file name to write"
    elif err.errno == errno.ENOENT and doing != "write":  # makedirs makes missing parents
        why = f"{_nearest_existing(dest)} does not take new directories: choose another path"
    elif err.errno == errno.ENOENT and not os.path.isdir(folder):
        why = f"no such directory {folder}: create it first or choose another path"
    elif err.errno == errno.ENOENT:  # /proc, /sys: the folder takes no new files
        why = f"{folder} does not take new files: choose an ordinary writable directory"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied: choose a path you may write to"
    elif err.errno == errno.EROFS:
        why = "read-only file system: choose another output path"
    elif err.errno == errno.ENOSPC:
        why = "no space left on the device"
    else:
        why = f"{err.strerror or err}: choose an ordinary file in a writable directory"
    return InputError(f"{dest}: cannot {doing} ({why})")


def read_error(path: str | os.PathLike[str] | None, err: OSError,
               what: str = "input") -> InputError:
    """One clear :class:`InputError` for an ``OSError`` met while reading ``path``."""
    name = os.fspath(path) if path is not None else "input"
    article = "an" if what[:1] in "aeiou" else "a"
    expected = f"{article} {what} file"
    blocker = first_file_parent(name)
    if blocker is not None:
        return InputError(f"{name}: no such file ({blocker} is a file, not a directory; "
                          f"expected {expected})")
    if isinstance(err, FileNotFoundError):
        return InputError(f"{name}: no such file (expected {expected})")
    if isinstance(err, IsADirectoryError):
        return InputError(f"{name}: is a directory, expected {expected}")
    if isinstance(err, PermissionError):
        return InputError(f"{name}: permission denied (reading {expected})")
    return InputError(f"{name}: cannot read {expected} ({err.strerror or err})")


def read_file(path: str | os.PathLike[str], what: str = "input") -> bytes:
    """The bytes of ``path``; any ``OSError`` becomes one :class:`InputError` naming it."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise read_error(path, err, what) from None


def ensure_dir(path: str | os.PathLike[str]) -> None:
    """``mkdir -p path``; an ``OSError`` becomes a clear :class:`InputError`."""
    dest = os.fspath(path)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise InputError(f"{dest}: cannot create the directory ({dest} is a file, not a "
                         "directory): choose another output path")
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as err:
        raise write_error(dest, err, "create the directory") from None


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The new file gets ``mode`` when given (e.g. ``0o600`` for private keys), otherwise the usual
    ``0o666`` less the process umask, like any file the user creates.

    Args:
        path: destination file.
        data: the complete new contents.
        mode: permission bits for the new file.

    Raises:
        InputError: the file cannot be written there (the message says why and what to do).
    """
    dest = os.fspath(path)
    try:
        _write_replace(dest, data, mode)
    except OSError as err:
        raise write_error(dest, err) from None


def _write_replace(dest: str, data: bytes, mode: int | None) -> None:
    folder, name = os.path.split(dest)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    if os.path.isdir(dest):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", dest)
    if os.path.exists(dest) and not os.path.isfile(dest):
        kind = os.stat(dest).st_mode
        if not (stat.S_ISCHR(kind) or stat.S_ISFIFO(kind)):  # a socket, a block device
            raise OSError(errno.EINVAL, "not a regular file", dest)
        with open(dest, "wb") as stream:  # /dev/null, /dev/stdout, a pipe: a stream, no rename
            stream.write(data)
        return
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # exact bits, whatever the umask
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        import contextlib  # only on failure: every CLI run imports this module

        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> None:
    """Text variant of :func:`atomic_write` (UTF-8)."""
    atomic_write(path, text.encode("utf-8"), mode)
