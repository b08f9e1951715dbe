"""Rendering shared by ``otaforge demo`` and ``otaforge device run``: timeline lines and a
download progress bar (rich) that appears while bytes flow and closes when the image is
complete or a line is printed. ``quiet`` (``--json``) shows neither.
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

ACTOR_STYLE = {"device": "[green]device[/]", "server": "[blue]server[/]", "demo": "[dim]demo[/]"}


def make_console() -> Console:
    """A console that keeps timeline lines unwrapped when output goes to a file or pipe."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 120, soft_wrap=True)


class Timeline:
    """What the device and the server did, one line each (nothing when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = make_console()
        self.quiet = quiet

    def line(self, actor: str, message: str, error: bool = False) -> None:
        """``  device  message`` (actor in colour, red when ``error``; message literal)."""
        if self.quiet:
            return
        label = f"[red]{actor}[/]" if error else ACTOR_STYLE.get(actor, actor)
        self.console.print(f"  {label:>6}  ", end="")
        self.console.print(message, markup=False)

    def plain(self, text: str) -> None:
        """A line without markup."""
        if not self.quiet:
            self.console.print(text, markup=False)

    def print(self, markup: str) -> None:
        """A line with rich markup."""
        if not self.quiet:
            self.console.print(markup)


class DownloadBar:
    """One progress bar per download; ``update(done, total)`` as esp_https_ota reports it."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def update(self, label: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` bytes (total <= 0: unknown size)."""
        if self.timeline.quiet:
            return
        if self._progress is None:
            self._progress = Progress(
                TextColumn("    [cyan]{task.description}"), BarColumn(),
                DownloadColumn(), TransferSpeedColumn(), console=self.timeline.console,
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
