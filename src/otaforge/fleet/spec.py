"""What a fleet simulation rehearses, as values: the rollout plan, the faults, the bad release.

Parsed from the one-liner flags (``--waves 1%,10%,50%,100%``, ``--soak 1h``,
``--max-failures 5%``, ``--faults power_cut=0.05,drop=0.1``, ``--release-fails 20%:self_test``)
or from TOML files (``--plan PLAN.toml``, ``--faults FAULTS.toml``) with the same keys. Every
parse error is an :class:`~otaforge.errors.InputError` naming the flag or file and the value.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from otaforge.errors import InputError

FailMode = Literal["self_test", "hang", "panic", "silent"]
FAIL_MODES: tuple[FailMode, ...] = get_args(FailMode)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "ms": 0.001}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|m|h|d|)\s*$")


def parse_duration(text: str, what: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d``, ``250ms`` -> seconds."""
    found = _DURATION.match(str(text))
    if found is None:
        raise InputError(f"{what} {text!r}: not a duration; write e.g. 90s, 30m, 2h or 1d")
    return float(found.group(1)) * _UNITS[found.group(2)]


def parse_share(text: str | float, what: str) -> float:
    """``5%`` or ``0.05`` -> 0.05 (a share of the fleet, 0..1)."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InputError(f"{what} {text!r}: not a share; write e.g. 5% or 0.05") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise InputError(f"{what} {text!r}: a share must lie between 0% and 100%")
    return value


@dataclass(frozen=True)
class Amount:
    """A share of a group (``percent``) or an absolute number of devices (``count``)."""

    percent: float | None = None
    count: int | None = None

    def of(self, total: int) -> int:
        """How many devices of ``total`` this amount is (a share rounds up)."""
        if self.count is not None:
            return min(self.count, total)
        return min(total, math.ceil((self.percent or 0.0) * total / 100 - 1e-9))

    def allowance(self, total: int) -> int:
        """How many failures of ``total`` devices this amount tolerates (a share rounds down:
        5% of 10 devices tolerates none)."""
        if self.count is not None:
            return self.count
        return math.floor((self.percent or 0.0) * total / 100 + 1e-9)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


def parse_amount(text: str | int | float, what: str) -> Amount:
    """``10%`` -> 10 percent; ``25`` -> 25 devices."""
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            percent = float(raw[:-1])
            if not 0.0 < percent <= 100.0:
                raise ValueError
            return Amount(percent=percent)
        count = int(raw)
        if count < 0:
            raise ValueError
        return Amount(count=count)
    except ValueError:
        raise InputError(f"{what} {text!r}: write a percentage (10%) or a device count "
                         "(25)") from None


def parse_waves(text: str | list[Any], what: str = "--waves") -> tuple[Amount, ...]:
    """``1%,10%,50%,100%`` (or counts); each wave must be larger than the one before."""
    items = text if isinstance(text, list) else [p for p in str(text).split(",") if p.strip()]
    waves = tuple(parse_amount(item, what) for item in items)
    if not waves:
        raise InputError(f"{what}: give at least one wave, e.g. 1%,10%,50%,100%")
    return waves


@dataclass(frozen=True)
class Plan:
    """How the rollout proceeds.

    Attributes:
        waves: cumulative wave sizes; a device in a wave stays in every later one.
        soak_s: how long a device must keep checking in after confirming before it counts.
        max_failures: failures (rolled back, failed, silent) of a wave that pause it.
        concurrency: devices mid-update at once (None: 1% of the fleet, at least 2).
        check_in_s: the devices' poll interval (each device jitters it by +-``jitter``).
        jitter: relative jitter of the poll interval.
        revert: after a pause, re-target the previous release for the devices that got the
            bad one.
        max_duration_s: virtual time after which the simulation stops in any case.
    """

    waves: tuple[Amount, ...] = (Amount(1.0), Amount(10.0), Amount(50.0), Amount(100.0))
    soak_s: float = 3600.0
    max_failures: Amount = Amount(5.0)
    concurrency: int | None = None
    check_in_s: float = 300.0
    jitter: float = 0.2
    revert: bool = False
    max_duration_s: float = 7 * 86400.0

    def concurrency_for(self, devices: int) -> int:
        """The concurrent-update limit for a fleet of ``devices``."""
        return self.concurrency if self.concurrency is not None else max(2, devices // 100)


@dataclass(frozen=True)
class Faults:
    """Fault profile of the simulated fleet (rates are shares of devices or updates).

    Attributes:
        power_cut: share of updates cut by a power loss at a random flash operation.
        drop: share of downloads whose connection drops mid-way (the agent resumes).
        offline: share of devices that go offline for ``offline_s`` at a random time.
        offline_s: how long an offline device stays away.
        latency_ms: median round-trip latency (log-normal with ``latency_sigma``).
        latency_sigma: spread of the latency (sigma of its logarithm).
        bandwidth_kib_s: median download bandwidth (log-normal with ``bandwidth_sigma``).
        bandwidth_sigma: spread of the bandwidth.
    """

    power_cut: float = 0.0
    drop: float = 0.0
    offline: float = 0.0
    offline_s: float = 4 * 3600.0
    latency_ms: float = 80.0
    latency_sigma: float = 0.5
    bandwidth_kib_s: float = 64.0
    bandwidth_sigma: float = 0.6

    def __str__(self) -> str:
        return (f"power_cut={self.power_cut:g},drop={self.drop:g},offline={self.offline:g}")


@dataclass(frozen=True)
class ReleaseFailure:
    """How the release under test misbehaves, and on which devices.

    Attributes:
        share: share of the fleet it fails on (chosen by a stable hash of the seed and id).
        mode: ``self_test`` (fails its self-test), ``hang`` (watchdog), ``panic`` (crashes at
            boot), ``silent`` (confirms, then stops checking in).
        hardware: fail on every device of this hardware revision instead of a share.
    """

    share: float
    mode: FailMode
    hardware: str | None = None


def parse_release_fails(text: str, what: str = "--release-fails") -> ReleaseFailure:
    """``20%:self_test`` or ``hw=rev3:panic``."""
    target, sep, mode = str(text).rpartition(":")
    if not sep or mode not in FAIL_MODES:
        raise InputError(f"{what} {text!r}: write SHARE:MODE (e.g. 20%:self_test) with MODE "
                         f"one of {', '.join(FAIL_MODES)}")
    if target.startswith("hw="):
        return ReleaseFailure(1.0, mode, target[3:])  # type: ignore[arg-type]
    return ReleaseFailure(parse_share(target, what), mode)  # type: ignore[arg-type]


_FAULT_SHARES = ("power_cut", "drop", "offline")
_FAULT_NUMBERS = ("latency_ms", "latency_sigma", "bandwidth_kib_s", "bandwidth_sigma")


def parse_faults(text: str, what: str = "--faults") -> Faults:
    """``power_cut=0.05,drop=0.1,offline=2%``, or a TOML file's path."""
    if text.endswith(".toml"):
        return faults_from_toml(_load_toml(Path(text), what), f"{what} {text}")
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"{what} {item!r}: write NAME=VALUE, e.g. power_cut=0.05")
        values[key.strip()] = value.strip()
    return faults_from_toml(values, what)


def faults_from_toml(values: dict[str, Any], what: str) -> Faults:
    """A :class:`Faults` from a table (``--faults`` items or a FAULTS.toml)."""
    known = {f.name for f in fields(Faults)} | {"offline_duration"}
    out = Faults()
    for key, value in values.items():
        if key not in known:
            raise InputError(f"{what}: unknown fault {key!r}; known: "
                             f"{', '.join(sorted(known - {'offline_s'}))}")
        if key in _FAULT_SHARES:
            out = replace(out, **{key: parse_share(value, f"{what} {key}")})
        elif key in ("offline_s", "offline_duration"):
            out = replace(out, offline_s=parse_duration(value, f"{what} {key}"))
        else:
            out = replace(out, **{key: _positive(value, f"{what} {key}")})
    return out


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r}: not a number") from None
    if not number > 0 or math.isinf(number):
        raise InputError(f"{what} {value!r}: must be a positive number")
    return number


def _load_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{what} {path}: cannot read ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{what} {path}: not valid TOML ({err})") from None


@dataclass(frozen=True)
class Scenario:
    """Everything a simulation needs besides the images: plan, faults, failure, hardware."""

    plan: Plan = field(default_factory=Plan)
    faults: Faults = field(default_factory=Faults)
    release_fails: ReleaseFailure | None = None
    hardware: tuple[tuple[str, float], ...] = (("rev1", 1.0),)


def plan_from_toml(path: Path) -> Scenario:
    """A PLAN.toml: ``waves``, ``soak``, ``max_failures``, ``concurrency``, ``check_in``,
    ``jitter``, ``revert``, ``max_duration``, ``release_fails``, ``[faults]`` and
    ``[hardware]`` (revision -> share of the fleet)."""
    data = _load_toml(path, "--plan")
    what = f"--plan {path}"
    plan, scenario = Plan(), Scenario()
    converters: dict[str, tuple[str, Any]] = {
        "waves": ("waves", lambda v: parse_waves(v, f"{what} waves")),
        "soak": ("soak_s", lambda v: parse_duration(v, f"{what} soak")),
        "max_failures": ("max_failures", lambda v: parse_amount(v, f"{what} max_failures")),
        "concurrency": ("concurrency", lambda v: _count(v, f"{what} concurrency")),
        "check_in": ("check_in_s", lambda v: parse_duration(v, f"{what} check_in")),
        "jitter": ("jitter", lambda v: parse_share(v, f"{what} jitter")),
        "revert": ("revert", bool),
        "max_duration": ("max_duration_s", lambda v: parse_duration(v, f"{what} max_duration")),
    }
    for key, value in data.items():
        if key in converters:
            name, convert = converters[key]
            plan = replace(plan, **{name: convert(value)})
        elif key == "faults":
            scenario = replace(scenario, faults=faults_from_toml(dict(value), f"{what} faults"))
        elif key == "release_fails":
            scenario = replace(scenario, release_fails=parse_release_fails(
                str(value), f"{what} release_fails"))
        elif key == "hardware":
            scenario = replace(scenario, hardware=parse_hardware(dict(value), what))
        else:
            known = sorted([*converters, "faults", "release_fails", "hardware"])
            raise InputError(f"{what}: unknown key {key!r}; known: {', '.join(known)}")
    return replace(scenario, plan=plan)


def parse_hardware(values: dict[str, Any], what: str) -> tuple[tuple[str, float], ...]:
    """``{rev1 = "80%", rev3 = "20%"}`` -> shares summing to 1."""
    mix = tuple((str(k), parse_share(v, f"{what} hardware.{k}")) for k, v in values.items())
    if not mix or abs(sum(s for _, s in mix) - 1.0) > 1e-6:
        raise InputError(f"{what} hardware: the shares must add up to 100%")
    return mix


def _count(value: Any, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} {value!r}: not a whole number") from None
    if number < 1:
        raise InputError(f"{what} {value!r}: must be at least 1")
    return number
