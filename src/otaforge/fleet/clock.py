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

    def begin_turn(self) -> None:
        """A device's turn starts."""
        ...

    def end_turn(self) -> float:
        """A device's turn ended; how long it took in this clock's time."""
        ...


class SimClock:
    """Virtual seconds since the start.

    The fleet's time moves only by :meth:`advance_to` (the next event). Inside a device's
    turn (:meth:`begin_turn` .. :meth:`end_turn`) :meth:`advance` is that device's own time
    passing -- its requests' latency, its download, its boot -- so :meth:`now` reads the
    turn's start plus what the device spent; the turn's end takes the clock back to the
    fleet's time. Devices thus update side by side, as a real fleet does, instead of one
    after another (10,000 downloads of ten seconds are not 28 hours).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._t = start
        self._turn = 0.0

    def now(self) -> float:
        """Current virtual time (the fleet's, plus the current turn's)."""
        return self._t + self._turn

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the device whose turn it is."""
        if seconds < 0:
            raise InputError("virtual time cannot go backwards")
        self._turn += seconds

    def advance_to(self, when: float) -> None:
        """Move the fleet forward to ``when`` unless it is already past."""
        self._t = max(self._t, when)

    def begin_turn(self) -> None:
        """A device's turn starts at the fleet's time."""
        self._turn = 0.0

    def end_turn(self) -> float:
        """The turn is over; returns how long it took the device."""
        spent, self._turn = self._turn, 0.0
        return spent


class WallClock:
    """Real seconds since creation; the device model's waits (boot, self-test) are not slept,
    network and event waits are."""

    def __init__(self) -> None:
        self._origin = time.monotonic()
        self._turn_start = 0.0

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

    def begin_turn(self) -> None:
        """Real time: turns need no bookkeeping."""
        self._turn_start = self.now()

    def end_turn(self) -> float:
        """Seconds the turn took."""
        return self.now() - self._turn_start


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
