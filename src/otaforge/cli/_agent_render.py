"""Rendering shared by ``otaforge demo`` and ``otaforge device run``: a download progress bar
(rich) that appears while bytes flow and closes when the image is complete or a line is
printed.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)


def make_console() -> Console:
    """A console that keeps timeline lines unwrapped when output goes to a file or pipe."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 120, soft_wrap=True)


class DownloadBar:
    """One progress bar per download; ``update(done, total)`` as esp_https_ota reports it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def update(self, label: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` bytes (total <= 0: unknown size)."""
        if self._progress is None:
            self._progress = Progress(
                TextColumn("    [cyan]{task.description}"), BarColumn(),
                DownloadColumn(), TransferSpeedColumn(), console=self.console,
                transient=False)
            self._progress.start()
            self._task = self._progress.add_task(label, total=total if total > 0 else None,
                                                 completed=done)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total if total > 0 else None)
        if total > 0 and done >= total:
            self.close()

    def close(self) -> None:
        """End the current bar (before printing another line)."""
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._task = None
