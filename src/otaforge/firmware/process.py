"""One boot's firmware process: spawn the host program, serve its calls, watch it.

The program gets two pipe ends in ``OTAFORGE_FW_FDS`` (replies in, requests out); its stdout
and stderr are its UART console. Before each call is answered, the console output written
before it is passed on, so the log keeps its order. The boot ends when the program exits idle,
restarts, crashes (a signal or an unexpected exit is a panic), when the virtual task watchdog
fires with panic, or when it sends nothing for ``wall_timeout_s`` (a hang).
"""

from __future__ import annotations

import os
import selectors
import subprocess
from collections.abc import Callable
from pathlib import Path

from otaforge.errors import DeviceError
from otaforge.firmware.serve import FirmwareSession, SessionEnd
from otaforge.formats.fw_frame import (
    FRAME_HEADER,
    decode_request,
    encode_reply,
    frame_length,
)

EXIT_PIPE_CLOSED = 3


class _Console:
    def __init__(self, fd: int, sink: Callable[[str], None]) -> None:
        self.fd, self.sink, self.pending = fd, sink, b""
        os.set_blocking(fd, False)

    def drain(self) -> bool:
        """Pass on complete lines; False at end of file."""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                self.flush()
                return False
            self.pending += chunk
            *lines, self.pending = self.pending.split(b"\n")
            for line in lines:
                self.sink(line.decode("utf-8", errors="replace").rstrip("\r"))

    def flush(self) -> None:
        if self.pending:
            self.sink(self.pending.decode("utf-8", errors="replace"))
            self.pending = b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[n:]


def _serve(proc: subprocess.Popen[bytes], session: FirmwareSession, req_fd: int, rep_fd: int,
           console: _Console, wall_timeout_s: float) -> SessionEnd:
    sel = selectors.DefaultSelector()
    sel.register(req_fd, selectors.EVENT_READ)
    sel.register(console.fd, selectors.EVENT_READ)
    buffer = b""
    console_open = True
    try:
        while True:
            events = sel.select(timeout=wall_timeout_s)
            if not events:
                return SessionEnd("watchdog", "task watchdog (firmware hung: no progress for "
                                  f"{wall_timeout_s:g} s)")
            for key, _ in events:
                if key.fd == console.fd:
                    if console_open and not console.drain():
                        sel.unregister(console.fd)
                        console_open = False
                    continue
                chunk = os.read(req_fd, 1 << 20)
                if not chunk:
                    return _process_died(proc, console)
                buffer += chunk
                buffer = _handle_frames(buffer, session, rep_fd, console)
    finally:
        sel.close()


def _handle_frames(buffer: bytes, session: FirmwareSession, rep_fd: int,
                   console: _Console) -> bytes:
    while len(buffer) >= FRAME_HEADER.size:
        length = frame_length(buffer[: FRAME_HEADER.size])
        end = FRAME_HEADER.size + length
        if len(buffer) < end:
            break
        request = decode_request(buffer[FRAME_HEADER.size : end])
        buffer = buffer[end:]
        console.drain()
        err, fields = session.handle(request)
        session.check_watchdog()
        _write_all(rep_fd, encode_reply(err, session.now_us(), fields))
    return buffer


def _process_died(proc: subprocess.Popen[bytes], console: _Console) -> SessionEnd:
    code = proc.wait()
    while console.drain():
        pass
    if code == EXIT_PIPE_CLOSED:
        raise DeviceError("firmware process lost its pipe to the emulator")
    if code < 0:
        return SessionEnd("panic", f"crashed with signal {-code}")
    return SessionEnd("panic", f"exited with status {code} without esp_restart()")


def run_boot(program: Path, session: FirmwareSession, wall_timeout_s: float,
             console: Callable[[str], None]) -> SessionEnd:
    """Run ``program`` for one boot, serving it with ``session``; how the boot ended.

    Raises:
        PowerCut: a flash operation lost power (the process is killed first).
        DeviceError: the program broke the protocol.
    """
    rep_r, rep_w = os.pipe()
    req_r, req_w = os.pipe()
    out_r, out_w = os.pipe()
    env = {**os.environ, "OTAFORGE_FW_FDS": f"{rep_r},{req_w}"}
    try:
        proc = subprocess.Popen([str(program)], stdin=subprocess.DEVNULL, stdout=out_w,
                                stderr=out_w, pass_fds=(rep_r, req_w), env=env)
    except OSError as err:
        for fd in (rep_r, rep_w, req_r, req_w, out_r, out_w):
            os.close(fd)
        raise DeviceError(f"cannot start the firmware program {program}: {err}") from None
    for fd in (rep_r, req_w, out_w):
        os.close(fd)
    out = _Console(out_r, console)
    try:
        try:
            return _serve(proc, session, req_r, rep_w, out, wall_timeout_s)
        except SessionEnd as end:
            return end
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        while out.drain():
            pass
        session.http.close_all()
        for fd in (req_r, rep_w, out_r):
            os.close(fd)
