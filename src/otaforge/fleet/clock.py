"""The simulation's time: one virtual clock for the devices, the network and the server.

:class:`SimClock` moves only when told (deterministic, as fast as the code runs); it is the
devices' :class:`~otaforge.device.emulator.Clock` and the server's clock seam (``now()``).
:class:`WallClock` is real time, for ``--server URL``: waiting for the next event sleeps.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol

from otaforge.errors import InputError


class FleetClock(Protocol):
    """What the engine needs from time: read it, let it pass, wait for a moment."""

    def now(self) -> float:
        """Seconds since the simulation started."""
        ...

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (a device's download, boot, self-test)."""
        ...

    def advance_to(self, when: float) -> None:
        """Wait until ``when`` (no-op when it already passed)."""
        ...


class SimClock:
    """Virtual seconds since the start; never goes backwards."""

    def __init__(self, start: float = 0.0) -> None:
        self._t = start

    def now(self) -> float:
        """Current virtual time."""
        return self._t

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        if seconds < 0:
            raise InputError("virtual time cannot go backwards")
        self._t += seconds

    def advance_to(self, when: float) -> None:
        """Move forward to ``when`` unless it is already past."""
        self._t = max(self._t, when)


class WallClock:
    """Real seconds since creation; the device model's waits (boot, self-test) are not slept,
    network and event waits are."""

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        """Seconds since the simulation started."""
        return time.monotonic() - self._origin

    def advance(self, seconds: float) -> None:
        """Real time passes on its own: nothing to do."""

    def advance_to(self, when: float) -> None:
        """Sleep until ``when``."""
        delay = when - self.now()
        if delay > 0:
            time.sleep(delay)


class ServerTime:
    """The server's clock seam (:class:`otaforge.server.clock.Clock`) reading a fleet clock:
    aware UTC datetimes, ``origin`` plus the fleet clock's seconds."""

    def __init__(self, clock: FleetClock,
                 origin: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) -> None:
        self.clock = clock
        self.origin = origin

    def now(self) -> dt.datetime:
        """The fleet clock's time as the server sees it."""
        return self.origin + dt.timedelta(seconds=self.clock.now())
