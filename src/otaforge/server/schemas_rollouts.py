"""Request and response bodies of the rollout API (pydantic); part of the OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field

from otaforge.server.schemas import LABEL, NAME, Strict
from otaforge.server.waves import Plan, parse_waves

TAG = r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$"
Tag = Annotated[str, Field(pattern=TAG)]
Label = Annotated[str, Field(min_length=1, max_length=32, pattern=LABEL)]
DeviceName = Annotated[str, Field(pattern=NAME)]


class RolloutCreate(Strict):
    """A rollout: which release, to whom, in which waves, gated how."""

    release: str = Field(min_length=1, max_length=64, pattern=LABEL,
                         description="release id, version or sha256 of a release in the fleet")
    channel: str = Field(default="stable", pattern=NAME)
    waves: str = Field(default="1%,10%,50%,100%", max_length=512,
                       description="cumulative waves: percentages and/or device counts, "
                       "e.g. 1%,10%,50%,100% or 5,50,100%; a final 100% is implied")
    canary: list[DeviceName] = Field(default_factory=list, max_length=1000,
                              description="device ids forming wave 0, before the first wave")
    tags: list[Tag] = Field(default_factory=list, max_length=64,
                            description="a device must carry every one of these tags")
    hw_revisions: list[Label] = Field(default_factory=list, max_length=64,
                                      description="a device must have one of these")
    from_versions: list[Label] = Field(default_factory=list, max_length=64,
                                       description="a device must run one of these versions")
    confirm_percent: float = Field(default=90.0, gt=0, le=100, description="share of a wave "
                                   "that must confirm and soak before the next opens")
    soak_s: int = Field(default=3600, ge=0, le=90 * 86400, description="a confirmed device "
                        "must still check in this long after confirming")
    silent_after_s: int = Field(default=900, ge=1, le=90 * 86400, description="an updated "
                                "device quiet this long is silent (a failure)")
    stuck_timeout_s: int = Field(default=3600, ge=1, le=90 * 86400, description="a device "
                                 "mid-update without a report this long is stuck (a failure)")
    max_failures: int | None = Field(default=None, ge=0, le=2**31 - 1,
                                     description="pause when failures exceed this many")
    max_failures_percent: float | None = Field(
        default=5.0, ge=0, le=100, description="pause when failures exceed this share of the "
        "opened waves' devices")
    revert: bool = Field(default=False, description="when the gates pause the rollout, send "
                         "the devices that installed the release back to the previous one")
    max_in_flight: int | None = Field(default=None, ge=1, le=2**31 - 1,
                                      description="devices mid-update (until confirmed) at "
                                      "once")
    rate_per_min: float | None = Field(default=None, gt=0, le=1e9,
                                       description="new offers in the first minute")
    rate_factor: float = Field(default=2.0, ge=1, le=1000,
                               description="the rate grows by this factor every minute")
    rate_max: float | None = Field(default=None, gt=0, le=1e9)
    penalty_failures: int = Field(default=3, ge=1, le=1000, description="failed attempts "
                                  "of the release after which a device is not offered it "
                                  "until its penalty is cleared")
    eval_interval_s: int = Field(default=30, ge=1, le=86400,
                                 description="how often the gates are evaluated")
    force: bool = Field(default=False, description="even if some devices' eFuse "
                        "secure_version would refuse the release")

    def plan(self) -> Plan:
        """The :class:`Plan` (InputError for malformed waves)."""
        return Plan(waves=parse_waves(self.waves), canary=tuple(dict.fromkeys(self.canary)),
                    tags=tuple(self.tags), hw_revisions=tuple(self.hw_revisions),
                    from_versions=tuple(self.from_versions),
                    confirm_percent=self.confirm_percent, soak_s=self.soak_s,
                    silent_after_s=self.silent_after_s, stuck_timeout_s=self.stuck_timeout_s,
                    max_failures=self.max_failures,
                    max_failures_percent=self.max_failures_percent, revert=self.revert,
                    max_in_flight=self.max_in_flight, rate_per_min=self.rate_per_min,
                    rate_factor=self.rate_factor, rate_max=self.rate_max,
                    penalty_failures=self.penalty_failures,
                    eval_interval_s=self.eval_interval_s)


class RolloutAction(Strict):
    reason: str | None = Field(default=None, max_length=1000, pattern=LABEL)
    revert: bool = Field(default=False, description="send the devices on the release back "
                         "to the previous one")


class RolloutSummary(BaseModel):
    id: int
    fleet: str
    channel: str
    release_id: int
    version: str
    previous_release_id: int | None
    state: str = Field(description="running, paused, aborted, completed or superseded")
    reason: str | None = Field(description="why it is paused, aborted or superseded")
    paused_reason: str | None = Field(description="the reason, while paused")
    reverting: bool
    wave: int = Field(description="index of the newest opened wave")
    wave_name: str
    stages: int
    wave_started_at: dt.datetime
    sizes: list[int] = Field(description="devices each opened wave held when it opened")
    rate_per_min: float | None
    failure_baseline: int
    decisions_count: int
    plan: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


class WaveStatus(BaseModel):
    index: int
    name: str
    opened: bool
    size: int
    reached: int
    offered: int
    in_flight: int
    confirmed: int
    soaked: int
    rolled_back: int
    failed: int
    silent: int
    stuck: int
    aborted: int
    failures: int


class DecisionOut(BaseModel):
    seq: int
    action: str = Field(description="create, hold, advance, complete, pause, resume, abort, "
                        "supersede")
    reason: str | None
    at: dt.datetime
    data: dict[str, Any] = Field(description="the numbers the decision was based on")


class RolloutDetail(RolloutSummary):
    in_flight: int
    waves: list[WaveStatus]
    decisions: list[DecisionOut] = Field(description="the most recent decisions, oldest "
                                         "first")


class EvaluateOut(BaseModel):
    evaluated: bool = Field(description="false when the rollout is not running")
    action: str | None
    reason: str | None
    data: dict[str, Any] | None


class TargetingSet(Strict):
    tags: list[Tag] | None = Field(default=None, max_length=64,
                                   description="replace the device's tags (omit: keep)")
    hw_revision: str | None = Field(default=None, min_length=1, max_length=32, pattern=LABEL,
                                    description="set (null: clear; omit: keep)")


class TargetingOut(BaseModel):
    device_id: str
    tags: list[str]
    hw_revision: str | None
    penalty_cleared_at: dt.datetime | None
