"""The update agent: one device's boot-time check, check-in, download and reports.

:class:`Updater` composes the collaborators, each with one job:

* :class:`~otaforge.agent.probe.DeviceProbe` reads the device (facts, running image);
* :class:`~otaforge.agent.boot.BootVerifier` runs the boot-time check (self-test, confirm or
  roll back, report ``confirmed`` / ``rolled_back``);
* :class:`~otaforge.agent.download.Downloader` runs one esp_https_ota download into the
  inactive slot, checked by the pure core in :mod:`otaforge.agent.decision`;
* :class:`~otaforge.agent.reporting.Reporter` / :class:`~otaforge.agent.reporting.Timeline`
  tell the server and the caller.

The seed's flow: :meth:`Updater.on_boot`, then :meth:`Updater.check_for_update` (check in;
for an offer, download with resumption after drops and power cuts); the caller reboots
(:meth:`Updater.reboot`). Every report carries an event id derived from its content, so a
retry is a harmless replay.
"""

from __future__ import annotations

from otaforge.agent import esp_https_ota as ho
from otaforge.agent.boot import BootVerifier
from otaforge.agent.config import AgentConfig
from otaforge.agent.decision import DeviceFacts, Offer, Refusal, plan_offer, refusal_for
from otaforge.agent.delta_update import DeltaFailed, DeltaInstaller, RebuiltImageRefused
from otaforge.agent.download import Downloader, SplicedImage
from otaforge.agent.fetcher import Fetcher
from otaforge.agent.probe import DeviceProbe, state_store_for
from otaforge.agent.reporting import Reporter, Timeline
from otaforge.agent.results import (
    BootOutcome,
    CycleResult,
    EventSink,
    Outcome,
    ProgressSink,
    UpdateResult,
)
from otaforge.agent.server_api import ServerClient
from otaforge.agent.state import StateStore
from otaforge.device.emulator import Device
from otaforge.errors import ConnectionLost, EspError, ServerError, TransportError
from otaforge.formats.otadata import OtaImgState
from otaforge.protocol.reports import CheckIn, OtadataState, ReportState


class Updater:
    """One device's update agent.

    Args:
        device: the emulated device (powered on).
        client: the server's device API.
        fetcher: the network seam used for downloads.
        config: settings and limits.
        store: persistent agent state (default: a sector of the ``nvs`` partition).
        on_event: receives every timeline event.
        on_progress: receives (bytes written, image size) while downloading.
    """

    def __init__(self, device: Device, client: ServerClient, fetcher: Fetcher,
                 config: AgentConfig, store: StateStore | None = None,
                 on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None) -> None:
        self.device = device
        self.client = client
        self.config = config
        self.store = store or state_store_for(device, config.state_partition)
        self.timeline = Timeline(on_event)
        self.reporter = Reporter(client, self.timeline)
        self.probe = DeviceProbe(device)
        self.boot = BootVerifier(self.probe, self.store, self.reporter, self.timeline,
                                 config.self_test_timeout_s)
        self.downloader = Downloader(device, fetcher, client.auth, config, self.store,
                                     self.reporter, self.timeline, on_progress)
        self.deltas = DeltaInstaller(device, fetcher, client.auth, self.store, self.reporter,
                                     self.timeline, config.state_partition)

    @property
    def on_event(self) -> EventSink:
        """The sink receiving every timeline event (may be replaced at any time)."""
        return self.timeline.sink

    @on_event.setter
    def on_event(self, sink: EventSink) -> None:
        self.timeline.sink = sink

    def on_boot(self) -> BootOutcome:
        """The boot-time check (see :meth:`BootVerifier.on_boot`)."""
        return self.boot.on_boot()

    def reboot(self) -> BootOutcome:
        """``esp_restart()`` into the selected app, then the boot-time check."""
        return self.boot.reboot()

    def facts(self) -> DeviceFacts:
        """The device as the decision core sees it (see :meth:`DeviceProbe.facts`)."""
        return self.probe.facts()

    def check_in(self) -> tuple[Offer | None, DeviceFacts]:
        """Tell the server what runs here; returns its offer (or None) and the facts used.

        Raises:
            ServerError: the server refused the check-in.
            TransportError: the server is unreachable.
        """
        facts = self.probe.facts()
        running = self.device.running_partition
        ota_state = self.probe.running_state()
        body = CheckIn(
            fleet=self.config.fleet, chip=self.device.chip.name,
            version=facts.running_version or None, image_sha256=self.probe.running_sha256(),
            running_partition=running.name if running else None,
            otadata_state=OtadataState(ota_state.name.lower()) if ota_state is not None
            else None,
            secure_version=self.device.efuses.secure_version)
        offer, _raw = self.client.check_in(body)
        emit = self.timeline.emit
        if offer is None:
            emit("check_in", f"checked in running {facts.running_version}: no update",
                 version=facts.running_version)
        else:
            emit("offer", f"server offers {offer.version} ({offer.size} bytes, "
                 f"secure_version {offer.secure_version})", version=offer.version,
                 size=offer.size, deployment=offer.deployment)
        return offer, facts

    def check_for_update(self) -> UpdateResult:
        """Check in and, when offered a new release, install it into the inactive slot.

        Raises:
            PowerCut: power failed (the download resumes after the next power-on).
            ServerError / TransportError: the check-in failed.
        """
        busy = self.probe.running_state() == OtaImgState.PENDING_VERIFY
        offer, facts = self.check_in()  # the server learns the state either way
        if busy:
            self.timeline.emit("busy", "running app is still PENDING_VERIFY: no update before "
                               "it is confirmed (esp_ota_begin would fail with "
                               "ROLLBACK_INVALID_STATE)")
            return UpdateResult(Outcome.BUSY, reason="running app not confirmed")
        if offer is None:
            return UpdateResult(Outcome.NO_UPDATE)
        return self.install(offer, facts)

    def install(self, offer: Offer, facts: DeviceFacts | None = None) -> UpdateResult:
        """Download ``offer`` into the inactive slot and select it for the next boot.

        Raises:
            PowerCut: power failed mid-way.
        """
        facts = facts or self.probe.facts()
        plan = plan_offer(facts, offer)
        if isinstance(plan, Refusal):
            return self.downloader.refuse(offer, plan)
        if offer.delta is not None:
            by_delta = self._install_delta(offer, facts)
            if by_delta is not None:
                return by_delta
        emit, report = self.timeline.emit, self.reporter.report
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return self.downloader.attempt(offer, facts)
            except ConnectionLost as err:
                emit("connection_lost", f"attempt {attempt}: {err}", attempt=attempt)
            except SplicedImage as err:
                emit("restarted", f"resumed image does not verify ({err}); downloading it "
                     "again from 0", reason=str(err))
            except (ServerError, TransportError) as err:
                report(ReportState.FAILED, offer.deployment, f"download failed: {err}")
                return UpdateResult(Outcome.FAILED, offer.version, str(err))
        done = self.downloader.partial_written()
        report(ReportState.DOWNLOADING, offer.deployment,
               f"connection lost; will resume from {done} bytes", done)
        return UpdateResult(Outcome.INTERRUPTED, offer.version, "connection lost")

    def _install_delta(self, offer: Offer, facts: DeviceFacts) -> UpdateResult | None:
        """Install by the offer's delta; None to fall back to the full image."""
        emit = self.timeline.emit
        if not self.deltas.usable(offer, self.probe.running_sha256()):
            emit("delta_skipped", "the offered delta is not for the running image: "
                 "downloading the full image")
            return None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                return self.deltas.attempt(offer, facts)
            except ConnectionLost as err:
                emit("connection_lost", f"delta attempt {attempt}: {err}", attempt=attempt)
            except RebuiltImageRefused as err:
                return self.downloader.refuse(offer, refusal_for(err.error))
            except DeltaFailed as err:
                emit("delta_failed", f"delta not usable ({err}): downloading the full image",
                     reason=str(err))
                return None
        self.reporter.report(ReportState.DOWNLOADING, offer.deployment,
                             "connection lost during the delta; will resume", method="delta")
        return UpdateResult(Outcome.INTERRUPTED, offer.version, "connection lost")

    def fetch_stock(self, url: str) -> UpdateResult:
        """Update the way an unmodified esp_https_ota client does: GET one fixed URL.

        Sends ``If-None-Match`` with the running image's SHA-256, so the server answers 304
        when this image is already running. Whatever comes back passes the same first-bytes
        and whole-image checks as a managed update (the manifest's digest aside).

        Raises:
            PowerCut: power failed mid-way.
        """
        facts = self.probe.facts()
        running = self.probe.running_sha256()
        extra = {"If-None-Match": f'"{running}"'} if running else {}
        stock = Offer(version="", sha256="", size=facts.slot_size, url=url)
        emit = self.timeline.emit
        try:
            return self.downloader.attempt(stock, facts, extra)
        except EspError as err:
            if err.code != ho.ESP_ERR_HTTP_NOT_MODIFIED:
                emit("failed", f"GET {url}: {err}", code=err.name)
                self.reporter.report(ReportState.FAILED, None, str(err))
                return UpdateResult(Outcome.FAILED, None, str(err), err.name)
            emit("not_modified", f"GET {url}: 304 Not Modified, {facts.running_version} is "
                 "what the server wants here", url=url)
            return UpdateResult(Outcome.NO_UPDATE, facts.running_version, "304 Not Modified")
        except (ServerError, TransportError) as err:
            emit("failed", f"GET {url}: {err}")
            return UpdateResult(Outcome.FAILED, None, str(err))


def run_cycle(updater: Updater) -> CycleResult:
    """Boot check, check in, install an offered update, reboot into it and verify it.

    Raises:
        PowerCut: injected power loss (state is in flash; run again to resume).
        ServerError / TransportError: the server could not be reached for the check-in.
    """
    boot = updater.on_boot()
    update = updater.check_for_update()
    after = updater.reboot() if update.outcome == Outcome.INSTALLED else None
    return CycleResult(boot, update, after)
