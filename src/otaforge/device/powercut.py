"""Power-cut injection: every flash program and erase is counted; power fails at op N.

A :class:`PowerCutPlan` names the counted operation (0-based, counted from when the plan was
armed) and how power fails there:

* ``before``: the operation never starts;
* ``after``: the operation completes, then power fails before anything else happens;
* ``torn``: the operation is interrupted. A program leaves a prefix of its bytes programmed at
  4-byte granularity (ESP-IDF's host emulator ``esp_partition_fail_after`` counts one cycle per
  4 bytes); an erase leaves a prefix of the sector erased and the rest as it was.

The torn length is fixed by ``torn_fraction`` or drawn from ``seed`` and the op index, so a
failing case can be replayed exactly. Sources: reliability-matrix.md §2.5 and §7.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from otaforge.errors import InputError

CutMode = Literal["before", "after", "torn"]
CUT_MODES: tuple[CutMode, ...] = ("before", "after", "torn")
TORN_UNIT = 4  # bytes: a program or erase is torn on a 4-byte word boundary


@dataclass(frozen=True)
class PowerCutPlan:
    """Where and how power fails.

    Attributes:
        op_index: the counted flash operation (0-based) at which power fails.
        mode: ``"before"``, ``"after"`` or ``"torn"``.
        torn_fraction: for ``torn``, the share of the operation done (0 < f < 1), rounded down
            to whole 4-byte words; None draws it from ``seed``.
        seed: seeds the torn length when ``torn_fraction`` is None (combined with op_index).
    """

    op_index: int
    mode: CutMode = "before"
    torn_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.op_index < 0:
            raise InputError(f"power cut op_index must be >= 0, got {self.op_index}")
        if self.mode not in CUT_MODES:
            raise InputError(f"power cut mode {self.mode!r}: choose one of {', '.join(CUT_MODES)}")
        if self.torn_fraction is not None and not 0.0 <= self.torn_fraction <= 1.0:
            raise InputError(f"torn_fraction must be within 0..1, got {self.torn_fraction}")

    def torn_length(self, length: int) -> int:
        """How many of ``length`` bytes a torn operation completes (a multiple of 4).

        Strictly partial whenever the operation spans more than one word: at least one word
        done and at least one word not done, so the result differs from both ``before`` and
        ``after``.
        """
        words = (length + TORN_UNIT - 1) // TORN_UNIT
        if words <= 1:
            return 0
        if self.torn_fraction is not None:
            done = int(words * self.torn_fraction)
        else:
            done = random.Random(self.seed * 1_000_003 + self.op_index).randrange(1, words)
        return min(max(done, 1), words - 1) * TORN_UNIT


def parse_modes(text: str) -> tuple[CutMode, ...]:
    """Parse ``"before,after,torn"`` into modes (order kept, duplicates dropped).

    Raises:
        InputError: an unknown mode name.
    """
    modes: list[CutMode] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in CUT_MODES:
            raise InputError(
                f"--modes: unknown power-cut mode {name!r}; choose from {', '.join(CUT_MODES)}"
            )
        mode: CutMode = name  # type: ignore[assignment]
        if mode not in modes:
            modes.append(mode)
    if not modes:
        raise InputError("--modes: give at least one of before, after, torn")
    return tuple(modes)
