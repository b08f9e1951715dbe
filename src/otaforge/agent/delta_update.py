"""The agent's delta path: apply the server's esp_delta_ota patch, or say why to go full.

:class:`DeltaInstaller` is tried first when the offer carries a delta and the running image is
its base. The patch is fetched with Range requests through the :class:`Fetcher` seam
(:class:`HttpPatchSource`) and applied by :class:`~otaforge.device.delta_ota.DeltaOta`, which
checkpoints in flash: a dropped connection or a power cut resumes from the last sector
written. The rebuilt image passes the same whole-image checks as a full download
(:func:`~otaforge.agent.decision.check_image`: digest, chip, signature policy, secure
version) before it is made bootable.

Outcomes: installed; ``ConnectionLost`` (retry: it resumes); a refusal of the rebuilt image
(the full image is byte for byte the same, so it would be refused too); or :class:`DeltaFailed`
-- the base does not match, the patch is corrupt, the device or server failed -- on which the
updater falls back to the full image.
"""

from __future__ import annotations

from dataclasses import replace

from otaforge.agent.decision import DeviceFacts, Offer, check_image
from otaforge.agent.fetcher import Fetcher, Request
from otaforge.agent.reporting import Reporter, Timeline
from otaforge.agent.results import Outcome, UpdateResult
from otaforge.agent.state import Pending, StateStore
from otaforge.device.delta_ota import delta_ota
from otaforge.device.emulator import Device
from otaforge.errors import (
    ConnectionLost,
    DeviceError,
    PowerCut,
    RefusableError,
    ServerError,
    TransportError,
)
from otaforge.protocol.http_errors import error_for_status
from otaforge.protocol.reports import DeltaInfo, ReportState


class DeltaFailed(Exception):
    """The delta cannot be used (the message says why): install the full image instead."""


class RebuiltImageRefused(Exception):
    """The rebuilt image (the release itself) failed a whole-image check."""

    def __init__(self, err: RefusableError) -> None:
        super().__init__(str(err))
        self.error = err


class HttpPatchSource:
    """The patch over HTTP, one Range request per block (a resumed apply asks from its
    checkpoint's offset on).

    Args:
        fetcher: the network seam.
        url: the patch URL.
        headers: authentication headers.
        size: the patch size from the manifest.
    """

    def __init__(self, fetcher: Fetcher, url: str, headers: dict[str, str], size: int) -> None:
        self.fetcher = fetcher
        self.url = url
        self.headers = headers
        self.size = size
        self.fetched = 0

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset``.

        Raises:
            TransportError: the request failed or the answer is not the range asked for.
            ServerError: the server refused (4xx).
        """
        end = min(offset + size, self.size) - 1
        if end < offset:
            return b""
        request = Request("GET", self.url, {**self.headers, "Range": f"bytes={offset}-{end}"})
        with self.fetcher.open(request) as resp:
            if resp.status not in (200, 206):
                raise error_for_status(resp.status, resp.read_all(64 * 1024), f"GET {self.url}")
            body = resp.read_all(self.size)
        if resp.status == 200:  # Range ignored: the whole patch came back
            body = body[offset:end + 1]
        if len(body) != end + 1 - offset:
            raise ConnectionLost(f"GET {self.url}: {len(body)} bytes for range "
                                 f"{offset}-{end}")
        self.fetched += len(body)
        return body


class DeltaInstaller:
    """Installs offers by their delta.

    Args:
        device: the emulated device.
        fetcher: the network seam.
        auth: the device's authentication headers.
        store: persistent agent state (the pending update goes there).
        reporter, timeline: tell the server and the caller.
        state_partition: partition holding the delta checkpoints (next to the agent state).
    """

    def __init__(self, device: Device, fetcher: Fetcher, auth: dict[str, str],
                 store: StateStore, reporter: Reporter, timeline: Timeline,
                 state_partition: str = "nvs") -> None:
        self.device = device
        self.fetcher = fetcher
        self.auth = auth
        self.store = store
        self.report = reporter.report
        self.emit = timeline.emit
        self.state_partition = state_partition

    def usable(self, offer: Offer, running_sha256: str | None) -> bool:
        """Is the offer's delta made for the image that runs here?"""
        delta = offer.delta
        return delta is not None and running_sha256 is not None \
            and delta.base_sha256.lower() == running_sha256.lower() \
            and delta.target_sha256.lower() == offer.sha256.lower()

    def attempt(self, offer: Offer, facts: DeviceFacts) -> UpdateResult:
        """Apply the delta of ``offer`` (resuming a checkpoint) and select the new image.

        Raises:
            ConnectionLost: the connection dropped (call again: the apply resumes).
            RebuiltImageRefused: the rebuilt release failed a whole-image check.
            DeltaFailed: the delta cannot be used; install the full image.
            PowerCut: power failed (the next attempt resumes).
        """
        delta = offer.delta
        assert delta is not None
        ota = self.device.ota
        slot = ota.esp_ota_get_next_update_partition(None)
        assert slot is not None
        source = HttpPatchSource(self.fetcher, delta.url, self.auth, delta.size)
        self.report(ReportState.DOWNLOADING, offer.deployment, nbytes=0, nonce="delta",
                    method="delta")

        def check_rebuilt() -> None:
            image = self.device.flash.read(slot.offset, offer.size)
            try:
                check_image(facts, image, offer)
            except RefusableError as err:
                raise RebuiltImageRefused(err) from err

        try:
            updater = delta_ota(ota, self.device.partition_table(), self.state_partition)
            result = updater.apply(source, delta.size, bytes.fromhex(delta.sha256),
                                   bytes.fromhex(offer.sha256), check_rebuilt)
        except (ConnectionLost, PowerCut):
            raise
        except (RefusableError, DeviceError, ServerError, TransportError, ValueError) as err:
            raise DeltaFailed(str(err)) from err
        self._installed(offer, delta, facts, slot.name, result.resumed_from, source.fetched)
        return UpdateResult(Outcome.INSTALLED, offer.version, "delta")

    def _installed(self, offer: Offer, delta: DeltaInfo, facts: DeviceFacts, slot: str,
                   resumed_from: int, fetched: int) -> None:
        how = f", resumed at byte {resumed_from} of the image" if resumed_from else ""
        self.emit("delta", f"rebuilt {offer.version} from a {delta.size}-byte delta "
                  f"({offer.size} bytes full, {offer.size - delta.size} saved{how})",
                  version=offer.version, size=delta.size, full_size=offer.size,
                  saved=offer.size - delta.size, fetched=fetched, resumed_from=resumed_from)
        self.report(ReportState.DOWNLOADED, offer.deployment, nbytes=delta.size,
                    method="delta")
        state = self.store.load()
        pending = Pending(offer.sha256, offer.version, offer.deployment, slot,
                          facts.running_version)
        self.store.save(replace(state, partial=None, pending=pending))
        self.emit("installed", f"esp_ota_end + esp_ota_set_boot_partition({slot}): "
                  f"{offer.version} boots next", version=offer.version, slot=slot)
        self.report(ReportState.REBOOTING, offer.deployment)

