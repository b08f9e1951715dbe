"""The boot-time self-test the agent runs with the watchdog armed, on the emulated device.

On a real ESP32 the firmware is the agent plus the application; the application's health is
what the self-test probes (Wi-Fi up, sensors answer, ...). On the emulator the application's
health is the behaviour its image is registered with in the device's
:class:`~otaforge.device.emulator.AppRegistry`. :class:`AgentFirmware` is that registry as the
agent sees it: it tells the emulator that "healthy" and "fails_self_test" apps leave the
confirmation to someone else (``never_confirms``) -- the agent -- while apps that hang or
panic still reset on their own before the agent ever runs.

:func:`run_self_test` arms a watchdog on the device's clock, runs the probe, and says whether
the app may be marked valid. It never marks anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.device.emulator import AppRegistry, Behaviour, Clock, Device

SELF_TEST_DURATION_S = 0.5  # virtual seconds a healthy self-test takes


class AgentFirmware(AppRegistry):
    """An :class:`AppRegistry` whose healthy/failing apps are verified by the update agent."""

    def lookup(self, version: str | None, sha256: str | None) -> Behaviour:
        """What the emulator's ``app_main`` does: confirmation is left to the agent."""
        real = super().lookup(version, sha256)
        return "never_confirms" if real in ("healthy", "fails_self_test") else real

    def health(self, version: str | None, sha256: str | None) -> Behaviour:
        """The application's real behaviour, i.e. what the agent's self-test finds."""
        return super().lookup(version, sha256)


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of one self-test.

    Attributes:
        passed: the app may be marked valid.
        confirms: False when the firmware never calls mark-valid at all ("never_confirms").
        reason: what was found.
        watchdog_fired: the watchdog expired during the test.
    """

    passed: bool
    confirms: bool
    reason: str
    watchdog_fired: bool = False


class Watchdog:
    """A task watchdog on the device clock: armed with a budget, checked when the test ends."""

    def __init__(self, clock: Clock, timeout_s: float) -> None:
        self.clock = clock
        self.timeout_s = timeout_s
        self.deadline: float | None = None

    def arm(self) -> None:
        """Start the budget now."""
        self.deadline = self.clock.now() + self.timeout_s

    def expired(self) -> bool:
        """True when the budget ran out since :meth:`arm`."""
        return self.deadline is not None and self.clock.now() > self.deadline

    def disarm(self) -> None:
        """Stop watching."""
        self.deadline = None


def run_self_test(device: Device, sha256: str | None, timeout_s: float) -> SelfTestResult:
    """Probe the running application with the watchdog armed.

    Args:
        device: the emulated device (its registry says how healthy the app is).
        sha256: SHA-256 of the running image, when known (registry key).
        timeout_s: watchdog budget in (virtual) seconds.
    """
    desc = device.running_desc
    version = desc.version if desc else None
    registry = device.apps
    health = (registry.health(version, sha256) if isinstance(registry, AgentFirmware)
              else registry.lookup(version, sha256))
    watchdog = Watchdog(device.clock, timeout_s)
    watchdog.arm()
    if health == "hangs":
        device.clock.advance(timeout_s + SELF_TEST_DURATION_S)
    else:
        device.clock.advance(SELF_TEST_DURATION_S)
    fired = watchdog.expired()
    watchdog.disarm()
    if fired:
        return SelfTestResult(False, True, f"watchdog fired after {timeout_s:g} s of self-test",
                              watchdog_fired=True)
    if health == "fails_self_test":
        return SelfTestResult(False, True, "self-test failed")
    if health == "never_confirms":
        return SelfTestResult(False, False, "this firmware never confirms itself")
    return SelfTestResult(True, True, "self-test passed")
