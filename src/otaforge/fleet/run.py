"""``otaforge fleet simulate``: a rollout rehearsed on N emulated ESP32s, as values.

By default a real otaforge server is started in this process (``server init`` in a
temporary directory, uvicorn over TLS on loopback) and the run happens in virtual time: the
devices, their network and the rollout driver share one :class:`~otaforge.fleet.clock.SimClock`,
so hours of soak take seconds. With ``server=`` the devices talk to a running server in real
time (the fleet is created there under a fresh name). Nothing here prints; progress goes to
a callback.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from otaforge.client.management import ManagementClient
from otaforge.errors import InputError
from otaforge.fleet.clock import FleetClock, ServerTime, SimClock, WallClock
from otaforge.fleet.driver import ChannelDriver, Driver
from otaforge.fleet.engine import Engine, ProgressSink
from otaforge.fleet.memory import measure
from otaforge.fleet.network import SimFetcher
from otaforge.fleet.population import CHIP, Population, read_images
from otaforge.fleet.result import FINAL_KEYS, SimResult, final_state, judge_spread
from otaforge.fleet.rollout_driver import RolloutDriver
from otaforge.fleet.spec import Scenario
from otaforge.fleet.wire import WireFetcher

CHANNEL = "stable"
MAX_DEVICES = 1_000_000
NO_BACKGROUND_TICK_S = 10.0**9


@dataclass(frozen=True)
class RemoteServer:
    """A running otaforge server to rehearse against (real time).

    Attributes:
        url: ``https://host:port``.
        token: the admin token.
        ca: the CA certificate to pin (``DATA/server_cert.pem``).
    """

    url: str
    token: str
    ca: Path


@dataclass(frozen=True)
class SimSpec:
    """One rehearsal.

    Attributes:
        devices: fleet size.
        partitions_csv: the fleet's partition table.
        old: the image the fleet runs (``--from``).
        new: the release (``--release``).
        scenario: plan, faults, failing share, hardware mix.
        seed: makes the run reproducible.
        server: rehearse against this server instead of an in-process one.
        check_ins_only: when > 0, no rollout: the release is published but no channel points
            at it, and every device checks in this many rounds (the check-in load alone).
        driver: ``rollout`` (the server's rollout API and its gates decide) or ``channel``
            (a client-side controller over the channel's staged percentage, for servers
            without the rollout API).
    """

    devices: int
    partitions_csv: str
    old: bytes
    new: bytes
    scenario: Scenario = field(default_factory=Scenario)
    seed: int = 0
    server: RemoteServer | None = None
    check_ins_only: int = 0
    driver: Literal["rollout", "channel"] = "rollout"


@dataclass(frozen=True)
class _Target:
    url: str
    admin: ManagementClient
    ca_pem: bytes
    fleet: str


def simulate(spec: SimSpec, on_progress: ProgressSink | None = None) -> SimResult:
    """Run the rehearsal; raises only for bad input or an unreachable server.

    Raises:
        InputError / FormatError: bad images, partition table or scenario.
        TransportError / ServerError: the server could not be reached or refused setup.
    """
    if not 1 <= spec.devices <= MAX_DEVICES:
        raise InputError(f"--devices {spec.devices}: give 1 to {MAX_DEVICES} devices")
    images = read_images(spec.old, spec.new)
    started = time.perf_counter()
    clock: FleetClock = WallClock() if spec.server else SimClock()
    population = Population(spec.partitions_csv, images, spec.scenario, spec.seed, clock)
    with ExitStack() as stack:
        target = stack.enter_context(_server(spec, clock))
        admin = target.admin
        enroll = admin.create_fleet(target.fleet, CHIP, spec.partitions_csv)["enrollment_token"]
        old_id = int(admin.publish(target.fleet, images.old)["id"])
        new_id = int(admin.publish(target.fleet, images.new)["id"])
        fetcher = SimFetcher(stack.enter_context(WireFetcher(target.url, target.ca_pem)), clock)
        ids = [f"sim-{i:06d}" for i in range(spec.devices)]
        make = RolloutDriver if spec.driver == "rollout" else ChannelDriver
        driver: Driver = make(admin, target.fleet, CHANNEL, (old_id, new_id),
                              images.new_version, ids, spec.scenario.plan, clock)
        engine = Engine(population, spec.devices, fetcher, (target.url, enroll, target.fleet),
                        driver, spec.scenario, clock, spec.seed, on_progress,
                        check_ins_only=spec.check_ins_only)
        counters = engine.run()
        counters.drops = fetcher.drops
        memory = measure(engine.devices, population)
    final = dict.fromkeys(FINAL_KEYS, 0)
    for sd in engine.devices:
        final[final_state(sd, images.new_version)] += 1
    blast = sum(sd.installed for sd in engine.devices)
    return SimResult(
        devices=spec.devices, wall_s=time.perf_counter() - started,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        final=final, rollout=driver.to_json(), blast_radius=blast,
        bytes_served=fetcher.firmware_bytes, sim_s=clock.now(), counters=counters,
        decisions=[d.to_json() for d in driver.decisions],
        spread=judge_spread(driver, engine.devices, blast),
        versions=(images.old_version, images.new_version),
        pooled_kib=population.pool.pooled_bytes / 1024, memory=memory)


@contextmanager
def _server(spec: SimSpec, clock: FleetClock) -> Iterator[_Target]:
    """The server the devices talk to: the remote one, or one started here."""
    if spec.server is not None:
        remote = spec.server
        try:
            ca_pem = remote.ca.read_bytes()
        except OSError as err:
            raise InputError(f"--ca {remote.ca}: cannot read ({err.strerror})") from None
        with ManagementClient(remote.url, remote.token, remote.ca) as admin:
            yield _Target(remote.url, admin, ca_pem, f"fleetsim-{spec.seed}-{int(time.time())}")
        return
    from otaforge.demo.local_server import LOOPBACK_CONNECTIONS, LocalServer
    from otaforge.server.settings import Settings

    shm = Path("/dev/shm")
    where = shm if shm.is_dir() else None  # a throwaway database: no fsync to a disk
    with tempfile.TemporaryDirectory(prefix="otaforge-fleet-", dir=where) as tmp:
        data = Path(tmp) / "server"
        # the gates are evaluated on the virtual clock by check-ins and by the driver's
        # ticks only: the app's wall-clock background tick would decide at a moment of
        # virtual time that depends on how fast this machine is
        # (and no access log: a rehearsal makes a line per check-in of every device)
        settings = Settings(data_dir=data, max_connections_per_client=LOOPBACK_CONNECTIONS,
                            rollout_tick_s=NO_BACKGROUND_TICK_S, access_log=False)
        with LocalServer(data, settings, clock=ServerTime(clock)) as info, \
                info.admin() as admin:
            yield _Target(info.url, admin, info.ca_pem, "sim")
