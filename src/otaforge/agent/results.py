"""What the update agent tells its caller: timeline events and the results of its steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class AgentEvent:
    """One line of the device's timeline.

    Attributes:
        kind: short machine name (``check_in``, ``offer``, ``refused``, ``resumed``, ...).
        message: human-readable text.
        data: details (version, bytes, reason, ...).
    """

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[AgentEvent], None]
ProgressSink = Callable[[int, int], None]


class Outcome(StrEnum):
    """How one check-for-update ended."""

    NO_UPDATE = "no_update"
    INSTALLED = "installed"  # written and selected: reboot to run it
    REFUSED = "refused"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"  # connection lost; resumes at the next check-in
    FAILED = "failed"
    BUSY = "busy"  # running app not yet confirmed


@dataclass(frozen=True)
class UpdateResult:
    """Result of :meth:`~otaforge.agent.updater.Updater.check_for_update` and friends.

    Attributes:
        outcome: how it ended.
        version: the release concerned, when known.
        reason: human-readable reason.
        code: machine-readable reason (a refusal code or an ESP-IDF error name).
    """

    outcome: Outcome
    version: str | None = None
    reason: str = ""
    code: str | None = None


class BootOutcome(StrEnum):
    """What the boot-time check found and did."""

    NOTHING = "nothing"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"
    UNCONFIRMED = "unconfirmed"  # firmware never confirms: left PENDING_VERIFY
    UNVERIFIABLE = "unverifiable"  # bootloader without rollback support


@dataclass(frozen=True)
class CycleResult:
    """One agent cycle: boot check, check-in/update, and the boot after an update.

    Attributes:
        boot: what the boot check found.
        update: the check-in's result.
        after_reboot: the boot check after installing an update (None without one).
    """

    boot: BootOutcome
    update: UpdateResult
    after_reboot: BootOutcome | None

    @property
    def ok(self) -> bool:
        """True unless something was refused, failed or rolled back."""
        bad_boot = {BootOutcome.ROLLED_BACK, BootOutcome.UNVERIFIABLE}
        if self.boot in bad_boot or self.after_reboot in bad_boot:
            return False
        return self.update.outcome in (Outcome.NO_UPDATE, Outcome.INSTALLED, Outcome.SKIPPED,
                                       Outcome.BUSY)
