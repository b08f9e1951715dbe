"""The simulation loop: every device's check-ins, updates and reboots as timed events.

One event at a time, in (time, sequence) order, on one clock: a device's turn is its real
update agent (:class:`~otaforge.agent.updater.Updater`) talking to the real server over
HTTPS; the time its requests, downloads, boots and self-tests take passes on the clock for
that device only (:meth:`~otaforge.fleet.clock.SimClock.begin_turn`), and its next event is
scheduled after it. An installed update reboots in a later event, so other
devices check in while it is mid-update (the concurrency limit matters). The rollout driver
ticks between device turns. Same seed, same events, same results.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from otaforge.agent.config import AgentConfig
from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.server_api import ServerClient
from otaforge.agent.updater import Updater
from otaforge.device.powercut import CUT_MODES, PowerCutPlan
from otaforge.errors import EspError, PowerCut, ServerError, TransportError
from otaforge.fleet.clock import FleetClock
from otaforge.fleet.driver import Driver
from otaforge.fleet.network import Link, SimFetcher
from otaforge.fleet.population import Population, SimDevice
from otaforge.fleet.spec import Scenario
from otaforge.formats.otadata import OtaImgState

CHECK_IN, REBOOT, TICK = 0, 1, 2
INSTALL_DELAY_S = 5.0  # from "written and selected" to esp_restart()
RETRY_S = 60.0  # a device whose check-in failed tries again this much later


@dataclass(frozen=True)
class Progress:
    """Where a run is (for a progress bar)."""

    t_s: float
    confirmed: int
    installed: int
    devices: int
    state: str


@dataclass(frozen=True)
class Sample:
    """The fleet at one moment (for the report's plot)."""

    t_s: float
    old: int
    new: int
    confirmed: int
    bricked: int
    wave: int
    state: str


@dataclass
class Counters:
    """Work done during a run."""

    check_ins: int = 0
    updates: int = 0
    reboots: int = 0
    power_cuts: int = 0
    drops: int = 0
    offline_waits: int = 0
    transport_errors: int = 0
    events: int = 0
    samples: list[Sample] = field(default_factory=list)


ProgressSink = Callable[[Progress], None]


class Engine:
    """Runs one fleet through one rollout.

    Args:
        population: makes the devices.
        devices: how many.
        fetcher: the devices' network (shared; the link is set per turn).
        server: (url, enrollment token, fleet name) the devices use.
        driver: the rollout driver.
        scenario: plan and faults.
        clock: the simulation clock.
        seed: the run's seed.
        on_progress: called at every driver tick.
        check_ins_only: when > 0, the driver never starts the rollout and the run ends after
            this many rounds of check-ins.
    """

    def __init__(self, population: Population, devices: int, fetcher: SimFetcher,
                 server: tuple[str, str, str], driver: Driver, scenario: Scenario,
                 clock: FleetClock, seed: int, on_progress: ProgressSink | None = None,
                 check_ins_only: int = 0) -> None:
        self.population = population
        self.fetcher = fetcher
        self.url, self.token, self.fleet = server
        self.driver = driver
        self.plan = scenario.plan
        self.faults = scenario.faults
        self.clock = clock
        self.rng = random.Random(f"{seed}:schedule")
        self.on_progress = on_progress or (lambda _p: None)
        self.count = Counters()
        self.devices: list[SimDevice] = [self._make(population, i) for i in range(devices)]
        self._heap: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self._pending_reboots = 0
        self.started = False
        self.check_ins_only = check_ins_only

    def _make(self, population: Population, index: int) -> SimDevice:
        """Device ``index``, powered on at time 0 (its first boot is its own time)."""
        self.clock.begin_turn()
        try:
            return population.make(index)
        finally:
            self.clock.end_turn()

    # --- scheduling -----------------------------------------------------------------------

    def _at(self, when: float, kind: int, index: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, index))

    def _interval(self) -> float:
        jitter = self.plan.jitter
        return self.plan.check_in_s * (1 + self.rng.uniform(-jitter, jitter))

    def run(self) -> Counters:
        """Run until the rollout ended and the fleet settled, or the plan's time limit."""
        for sd in self.devices:
            self._at(self.rng.uniform(0, self.plan.check_in_s), CHECK_IN, sd.index)
        self._at(self.plan.check_in_s * (1 + self.plan.jitter), TICK)
        limit = self.plan.max_duration_s
        if self.check_ins_only:
            # the first round spreads over one interval, each later one over a jittered one
            limit = self.plan.check_in_s * (1 + (self.check_ins_only - 1) * (1 + self.plan.jitter))
        while self._heap:
            when, _, kind, index = heapq.heappop(self._heap)
            if when > limit:
                break
            self.clock.advance_to(when)
            self.count.events += 1
            if kind == TICK:
                if self._tick():
                    break
                continue
            self.clock.begin_turn()  # the device's own time passes while it works
            try:
                if kind == REBOOT:
                    self._reboot(self.devices[index])
                else:
                    self._check_in(self.devices[index])
            finally:
                self.clock.end_turn()
        self._sample()
        return self.count

    # --- the driver -----------------------------------------------------------------------

    def _tick(self) -> bool:
        """Driver tick; True when the run is over."""
        if self.check_ins_only:
            self._sample()
            self._at(self.clock.now() + self.plan.check_in_s, TICK)
            return False
        if not self.started:
            self.driver.start()
            self.started = True
        else:
            self.driver.tick()
        sample = self._sample()
        self.on_progress(Progress(sample.t_s, sample.confirmed,
                                  sum(sd.installed for sd in self.devices), len(self.devices),
                                  self.driver.state))
        if self._finished(sample):
            return True
        self._at(self.clock.now() + self.plan.check_in_s, TICK)
        return False

    def _finished(self, sample: Sample) -> bool:
        driver = self.driver
        if driver.ended_s is None or self._pending_reboots:
            return False
        settle = 3 * self.plan.check_in_s * (1 + self.plan.jitter)
        if driver.state == "complete" or driver.reverted:
            # every device on the release (or, reverting, back on the previous one)
            unsettled = [sd for sd in self.devices if not self._settled(sd, driver.reverted)]
            return not unsettled or self.clock.now() - driver.ended_s > \
                self.faults.offline_s + settle
        return self.clock.now() - driver.ended_s > settle

    def _settled(self, sd: SimDevice, reverting: bool = False) -> bool:
        desc = sd.device.running_desc
        runs_new = desc is not None and desc.version == self.population.images.new_version
        if sd.device.status != "running" or sd.silent:
            return True
        if reverting:
            return not runs_new
        return runs_new or sd.failed or sd.rolled_back

    def _sample(self) -> Sample:
        new_version = self.population.images.new_version
        old = new = confirmed = bricked = 0
        for sd in self.devices:
            device = sd.device
            if device.status != "running":
                bricked += 1
                continue
            desc = device.running_desc
            if desc is not None and desc.version == new_version:
                new += 1
                confirmed += not sd.silent and _valid(sd)
            else:
                old += 1
        sample = Sample(self.clock.now(), old, new, confirmed, bricked,
                        self.driver.current + 1, self.driver.state)
        self.count.samples.append(sample)
        return sample

    # --- device turns ---------------------------------------------------------------------

    def _updater(self, sd: SimDevice) -> Updater:
        config = AgentConfig(self.url, self.fleet, sd.device_id, self.token)
        client = ServerClient(self.fetcher, self.url, sd.device_id, self.token)
        return Updater(sd.device, client, self.fetcher, config)

    def _offline(self, sd: SimDevice) -> float | None:
        window = sd.offline
        now = self.clock.now()
        if window is not None and window[0] <= now < window[1]:
            return window[1]
        return None

    def _check_in(self, sd: SimDevice) -> None:
        if sd.silent or sd.device.status != "running":
            return
        back = self._offline(sd)
        if back is not None:
            self.count.offline_waits += 1
            self._at(back, CHECK_IN, sd.index)
            return
        self._arm(sd)
        self.fetcher.link = Link(sd.latency_s, sd.bandwidth, sd.drop_at)
        before = _writes(sd)
        self.count.check_ins += 1
        try:
            result = self._updater(sd).check_for_update()
        except PowerCut:
            self._power_restored(sd)
            self._at(self.clock.now() + self._interval(), CHECK_IN, sd.index)
            return
        except (ServerError, TransportError):
            self.count.transport_errors += 1
            self._at(self.clock.now() + RETRY_S, CHECK_IN, sd.index)
            return
        finally:
            sd.drop_at = self.fetcher.link.drop_after
            if _writes(sd) != before:
                self.population.pool.share(sd.flash)
        if result.outcome == Outcome.INSTALLED:
            self.count.updates += 1
            if result.version == self.population.images.new_version:
                sd.installed = True
            self._pending_reboots += 1
            self._at(self.clock.now() + INSTALL_DELAY_S, REBOOT, sd.index)
            return
        if result.outcome in (Outcome.FAILED, Outcome.REFUSED):
            sd.failed = True
        if sd.armed and sd.flash.op_count == 0:
            self._disarm(sd)  # no update this turn: the cut waits for the next one
        self._at(self.clock.now() + self._interval(), CHECK_IN, sd.index)

    def _reboot(self, sd: SimDevice) -> None:
        self._pending_reboots -= 1
        self.count.reboots += 1
        if sd.armed:
            # the fault profile cuts power during the update (download, esp_ota_end, setting
            # the boot partition); a cut in the new app's first boot, before it confirms,
            # is a rollback by ESP-IDF's design and no fault of the release
            self._disarm(sd)
        self.fetcher.link = Link(sd.latency_s, sd.bandwidth, None)
        try:
            outcome = self._updater(sd).reboot()
            self._record(sd, outcome)
        except PowerCut:
            self._power_restored(sd)
        finally:
            self.population.pool.share(sd.flash)
        if sd.armed:
            self._disarm(sd)
        sd.cut_op = None  # one power cut per device and update
        failure = self.population.scenario.release_fails
        if sd.bad and failure is not None and failure.mode == "silent" and _valid(sd) \
                and not self.driver.reverted:
            sd.silent = True  # confirmed, and never heard from again
            return
        self._at(self.clock.now() + self._interval(), CHECK_IN, sd.index)

    def _record(self, sd: SimDevice, outcome: BootOutcome) -> None:
        if outcome == BootOutcome.ROLLED_BACK:
            sd.rolled_back = True
        elif outcome == BootOutcome.UNCONFIRMED:
            sd.failed = True

    def _arm(self, sd: SimDevice) -> None:
        if sd.cut_op is None or sd.armed or not self.started:
            return
        mode = CUT_MODES[sd.index % len(CUT_MODES)]
        sd.flash.arm(PowerCutPlan(sd.cut_op, mode, seed=sd.index))
        sd.armed = True

    def _disarm(self, sd: SimDevice) -> None:
        sd.flash.arm(None)
        sd.armed = False

    def _power_restored(self, sd: SimDevice) -> None:
        """Power came back after a cut: boot, run the agent's boot check."""
        self.count.power_cuts += 1
        sd.armed, sd.cut_op = False, None
        boot = sd.device.power_on()
        if boot.status == "running":
            self._record(sd, self._updater(sd).on_boot())
        self.population.pool.share(sd.flash)


def _writes(sd: SimDevice) -> int:
    return sd.flash.program_count + sd.flash.erase_count


def _valid(sd: SimDevice) -> bool:
    """The running app is confirmed (VALID, or a factory app that needs no confirmation)."""
    device = sd.device
    part = device.running_partition
    if part is None or device.status != "running":
        return False
    if not part.is_ota_slot:
        return True
    try:
        return int(device.ota.esp_ota_get_state_partition(part)) == OtaImgState.VALID
    except EspError:  # no readable otadata entry: not confirmed
        return False
