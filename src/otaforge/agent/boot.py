"""Boot-time verification: the first thing the agent does after every boot.

If the running app is PENDING_VERIFY, run the self-test with the watchdog armed, then
``esp_ota_mark_app_valid_cancel_rollback`` (report ``confirmed``) or
``esp_ota_mark_app_invalid_rollback_and_reboot`` (report ``rolled_back`` from the app that boots
instead). An update that is no longer running after a reset was reverted by the bootloader
(report ``rolled_back``). Never marks anything valid before the self-test passed.
"""

from __future__ import annotations

from dataclasses import replace

from otaforge.agent.decision import BootStep, boot_step
from otaforge.agent.probe import DeviceProbe
from otaforge.agent.reporting import Reporter, Timeline
from otaforge.agent.results import BootOutcome
from otaforge.agent.selftest import run_self_test
from otaforge.agent.state import AgentState, Pending, StateStore
from otaforge.errors import EspError
from otaforge.formats.otadata import OtaImgState
from otaforge.protocol.reports import ReportState


class BootVerifier:
    """The boot-time half of the agent.

    Args:
        probe: reads the device.
        store: the agent's persisted state.
        reporter: tells the server.
        timeline: tells the caller.
        self_test_timeout_s: watchdog budget of the self-test (emulated seconds).
    """

    def __init__(self, probe: DeviceProbe, store: StateStore, reporter: Reporter,
                 timeline: Timeline, self_test_timeout_s: float) -> None:
        self.probe = probe
        self.device = probe.device
        self.store = store
        self.emit = timeline.emit
        self.report = reporter.report
        self.self_test_timeout_s = self_test_timeout_s

    def on_boot(self) -> BootOutcome:
        """Verify a freshly updated app, or learn that the bootloader reverted it.

        Raises:
            PowerCut: power failed while writing otadata or the agent state.
        """
        state = self.store.load()
        running = self.device.running_partition
        desc = self.device.running_desc
        version = desc.version if desc else None
        ota_state = self.probe.running_state()
        pending = state.pending
        where = running.name if running else "?"
        self.emit("boot", f"booted {version} from {where}"
                  + (f" ({ota_state.name})" if ota_state is not None else ""),
                  version=version, partition=where,
                  otadata_state=ota_state.name if ota_state is not None else None)
        if pending is not None and (running is None or running.name != pending.slot
                                    or version != pending.version):
            return self._reverted(state, pending, version)
        step = boot_step(ota_state, pending is not None)
        if step == BootStep.SELF_TEST:
            return self._verify(state, pending)
        if step == BootStep.NO_ROLLBACK_BOOTLOADER and pending is not None:
            self.emit("warning", "bootloader does not support rollback: the new app stays "
                      f"{ota_state.name if ota_state is not None else '?'} and cannot be "
                      "verified", version=version)
            if self.report(ReportState.PENDING_VERIFY, pending.deployment,
                           "bootloader without rollback support; not confirmed"):
                self.store.save(replace(state, pending=None))
            return BootOutcome.UNVERIFIABLE
        if pending is not None and ota_state == OtaImgState.VALID:
            # confirmed earlier, but the report did not get out before a reset
            if self.report(ReportState.CONFIRMED, pending.deployment, nbytes=None):
                self.store.save(replace(state, pending=None))
            return BootOutcome.CONFIRMED
        return BootOutcome.NOTHING

    def _reverted(self, state: AgentState, pending: Pending, version: str | None) -> BootOutcome:
        reason = pending.failure or (
            f"{pending.version} did not confirm before a reset; the bootloader rolled back "
            f"to {version}")
        self.emit("rolled_back", f"running {version}: update to {pending.version} was rolled "
                  f"back ({reason})", version=version, failed_version=pending.version,
                  reason=reason)
        if self.report(ReportState.ROLLED_BACK, pending.deployment, reason):
            self.store.save(replace(state, pending=None))
        return BootOutcome.ROLLED_BACK

    def _verify(self, state: AgentState, pending: Pending | None) -> BootOutcome:
        deployment = pending.deployment if pending else None
        version = self.device.running_desc.version if self.device.running_desc else None
        self.report(ReportState.PENDING_VERIFY, deployment)
        sha = pending.sha256 if pending else self.probe.running_sha256()
        result = run_self_test(self.device, sha, self.self_test_timeout_s)
        self.emit("self_test", f"self-test of {version} with the watchdog armed: "
                  f"{result.reason}", passed=result.passed, version=version)
        if not result.confirms:
            return BootOutcome.UNCONFIRMED
        if result.passed:
            self.device.ota.esp_ota_mark_app_valid_cancel_rollback()
            self.emit("confirmed", f"esp_ota_mark_app_valid_cancel_rollback: {version} is "
                      f"VALID (eFuse secure_version {self.device.efuses.secure_version})",
                      version=version)
            if self.report(ReportState.CONFIRMED, deployment):
                self.store.save(replace(state, pending=None))
            return BootOutcome.CONFIRMED
        failed = pending or Pending("", version or "", None, "?", "")
        self.store.save(replace(state, pending=replace(failed, failure=result.reason)))
        self.emit("rollback", f"esp_ota_mark_app_invalid_rollback_and_reboot: {result.reason}",
                  version=version)
        try:
            self.device.ota.esp_ota_mark_app_invalid_rollback_and_reboot()
        except EspError as err:  # ESP_ERR_OTA_ROLLBACK_FAILED: nothing else can boot
            self.emit("failed", f"cannot roll back: {err}", code=err.name)
            if self.report(ReportState.FAILED, deployment, f"{result.reason}; rollback impossible: "
                           f"{err}"):
                self.store.save(replace(state, pending=None))
            return BootOutcome.UNCONFIRMED
        return self.on_boot()

    def reboot(self) -> BootOutcome:
        """``esp_restart()`` into the selected app, then the boot-time check.

        Raises:
            PowerCut: power failed during boot.
        """
        result = self.device.reboot()
        self.emit("reset", f"esp_restart(): bootloader: {result.reason}", status=result.status)
        return self.on_boot()

