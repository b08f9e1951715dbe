"""The server's clock: a one-method seam, so a fleet simulator can run the server in virtual
time.

Everything the server decides by time -- when a device checked in, how long a deployment has
been mid-update, whether a wave has soaked, the report rate limit -- reads ``clock.now()`` of
the :class:`~otaforge.server.store.Store` (``create_app(settings, clock=...)``). Timestamps are
timezone-aware UTC. :class:`ManualClock` is virtual time: it moves only when told to.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Protocol


class Clock(Protocol):
    """Where the server reads the time."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The wall clock (the default)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class ManualClock:
    """Virtual time: starts at ``start`` and moves only by :meth:`advance` or :meth:`set`.

    Thread-safe (the server reads it from its worker threads while a simulator moves it).
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        begin = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        if begin.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = begin.astimezone(dt.UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> dt.datetime:
        """Move forward by ``seconds`` (never backwards); returns the new time."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds} s)")
        with self._lock:
            self._now += dt.timedelta(seconds=seconds)
            return self._now

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (not earlier than now)."""
        with self._lock:
            if when < self._now:
                raise ValueError(f"time cannot go backwards ({when} < {self._now})")
            self._now = when


SYSTEM_CLOCK = SystemClock()


def aware(when: dt.datetime) -> dt.datetime:
    """``when`` as aware UTC (SQLite hands back naive UTC datetimes)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
