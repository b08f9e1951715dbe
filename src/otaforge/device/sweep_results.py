"""What a power-cut sweep found: one :class:`CaseResult` per case, totals in a
:class:`SweepReport` (:mod:`otaforge.device.sweep` runs the cases)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from otaforge.device.powercut import CutMode


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one (flow, op, mode) case."""

    flow: str
    op_index: int
    mode: CutMode
    phase: str
    outcome: str
    ok: bool
    detail: str = ""


@dataclass
class SweepReport:
    """Totals of a sweep."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[CaseResult] = field(default_factory=list)
    ops_per_flow: dict[str, int] = field(default_factory=dict)

    @property
    def bricked(self) -> int:
        """Cases that ended without a bootable valid image or failed a check."""
        return len(self.failures)

    def add(self, result: CaseResult) -> None:
        """Count one case."""
        self.cases += 1
        self.outcomes[f"{result.flow}: {result.outcome}"] += 1
        if not result.ok:
            self.failures.append(result)
