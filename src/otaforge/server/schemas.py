"""Request and response bodies of the HTTP API (pydantic); they make the OpenAPI schema."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from otaforge.errors import RefusalCode
from otaforge.protocol.reports import MAX_REASON_LENGTH, OtadataState, ReportState

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# device-supplied labels: no control characters (PostgreSQL text cannot even hold NUL)
LABEL = r"^[^\x00-\x1f\x7f]*$"
SHA256 = r"^[0-9a-fA-F]{64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(BaseModel):
    """application/problem+json (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    reason: str = Field(description="machine-readable cause, e.g. 'bad_signature'")


class CheckIn(Strict):
    """What a device reports when it asks for an update."""

    fleet: str = Field(pattern=NAME)
    chip: str = Field(max_length=32, pattern=LABEL)
    version: str | None = Field(default=None, max_length=32, pattern=LABEL,
                                description="esp_app_desc_t.version of the running app")
    image_sha256: str | None = Field(default=None, pattern=SHA256,
                                     description="SHA-256 of the running image file")
    running_partition: str | None = Field(default=None, max_length=16, pattern=LABEL)
    otadata_state: OtadataState | None = None
    secure_version: int | None = Field(default=None, ge=0, le=2**32 - 1,
                                       description="the device's eFuse SECURE_VERSION")
    hw_revision: str | None = Field(default=None, min_length=1, max_length=32, pattern=LABEL,
                                    description="the board's hardware revision (rollouts "
                                    "can target it)")


class SignatureInfo(BaseModel):
    scheme: str
    verified: bool
    key_index: int | None = None
    key_digest: str | None = None
    key_digests: list[str] | None = None
    block_count: int | None = None
    signed_len: int | None = None


def sig_info(stored: dict[str, Any] | None) -> SignatureInfo | None:
    """The stored signature description as a model."""
    return SignatureInfo(**stored) if stored else None


class DeltaManifest(BaseModel):
    """An esp_delta_ota patch that rebuilds the release from the image the device runs."""

    url: str = Field(description="HTTPS URL of the patch; supports Range")
    size: int
    sha256: str = Field(description="SHA-256 of the patch file")
    base_sha256: str = Field(description="SHA-256 of the release file the patch applies to")
    target_sha256: str = Field(description="SHA-256 of the release file it rebuilds")


class Manifest(BaseModel):
    """An update offer: the release the device should install."""

    deployment_id: int
    release_id: int
    version: str
    secure_version: int
    size: int
    sha256: str
    url: str = Field(description="HTTPS URL of the image; supports Range")
    signature: SignatureInfo | None
    next_check_in_s: int
    delta: DeltaManifest | None = Field(
        default=None, description="a smaller patch from the running image; the full image "
        "at ``url`` stays the fallback")


class Report(Strict):
    """A progress or outcome report; idempotent by ``event_id``."""

    event_id: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    deployment_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    state: ReportState
    code: RefusalCode | None = Field(default=None, description="why the device refused the "
                                     "release (a failed report); recorded with the reason")
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH,
                               description="free text; NUL characters are stored as U+FFFD")
    bytes: int | None = Field(default=None, ge=0, le=2**40)
    method: Literal["full", "delta"] | None = Field(
        default=None, description="how the release was fetched; on the ``downloaded`` report, "
        "with ``bytes`` sent, the server records the bytes a delta saved")

    @field_validator("reason")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        """Keep the report (it must not be lost), but without NUL, which SQL text refuses."""
        return value.replace("\x00", "\ufffd") if value else value


class ReportAck(BaseModel):
    event_id: str
    deployment_id: int | None
    state: str
    duplicate: bool


class FleetCreate(Strict):
    name: str = Field(pattern=NAME)
    chip: str = Field(max_length=32, pattern=LABEL)
    partition_csv: str = Field(max_length=64 * 1024, pattern=r"^[^\x00]*$")
    public_keys: list[str] = Field(default_factory=list, max_length=3,
                                   description="PEM public keys (or private: only the public "
                                   "part is kept)")
    require_signature: bool = False
    secure_version_bits: int | None = Field(default=None, ge=1, le=32)


class FleetOut(BaseModel):
    name: str
    chip: str
    ota_slot_size: int
    require_signature: bool
    key_digests: list[str]
    secure_version_bits: int
    channels: dict[str, int | None]
    enrollment_token: str | None = Field(default=None,
                                         description="only in the response to create")
    retired_at: dt.datetime | None = None


class ReleaseOut(BaseModel):
    id: int
    fleet: str
    version: str
    project_name: str
    idf_ver: str
    secure_version: int
    sha256: str
    size: int
    app_desc: dict[str, Any]
    signature: SignatureInfo | None
    created_at: dt.datetime
    retired_at: dt.datetime | None = None


class ChannelSet(Strict):
    release: str = Field(min_length=1, max_length=64, pattern=LABEL,
                         description="release id, version, or sha256 of a release in the fleet")
    force: bool = Field(default=False, description="point the channel at the release even "
                        "when some of its devices' eFuse secure_version would refuse it")


class ChannelOut(BaseModel):
    fleet: str
    name: str
    release_id: int | None
    version: str | None


class DeviceCreate(Strict):
    id: str = Field(pattern=NAME)
    channel: str = Field(default="stable", pattern=NAME)


class DeviceOut(BaseModel):
    id: str
    fleet: str
    channel: str
    state: str
    running_version: str | None
    running_sha256: str | None
    running_partition: str | None
    otadata_state: str | None
    efuse_secure_version: int | None
    last_check_in: dt.datetime | None
    tags: list[str] = Field(default_factory=list, description="rollout targeting tags")
    hw_revision: str | None = None
    penalty_cleared_at: dt.datetime | None = None
    retired_at: dt.datetime | None = None
    token: str | None = Field(default=None, description="only in the response to create")
    download_url: str | None = Field(
        default=None, description="the device's header-less stock download URL "
        "(/dl/<secret>.bin); only in the response to create")


class DownloadUrlOut(BaseModel):
    device_id: str
    download_url: str = Field(description="the new /dl/<secret>.bin URL (shown once); the "
                              "previous one no longer works")


class EventOut(BaseModel):
    event_id: str
    deployment_id: int | None
    state: str
    reason: str | None
    bytes: int | None
    received_at: dt.datetime


class DeviceDetail(DeviceOut):
    deployments: list[dict[str, Any]]
    events: list[EventOut]


class AbortRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000, pattern=LABEL,
                               description="why; shown in the device's history")


class DeploymentOut(BaseModel):
    id: int
    device_id: str
    release_id: int
    state: str
    reason: str | None


class RolloutSet(Strict):
    max_in_flight: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="at most this many devices of the channel mid-update at once; null: no "
                    "limit (others get 204 and retry after next_check_in_s)")
    failure_threshold: int | None = Field(
        default=None, ge=0, le=2**31 - 1,
        description="pause the rollout when more deployments than this fail or roll back; "
                    "null: never pause")
    rollout_percent: int | None = Field(
        default=None, ge=1, le=100,
        description="offer the release only to this percentage of the channel's devices "
                    "(chosen by a hash of release and device id); null: all")


class RolloutOut(BaseModel):
    fleet: str
    channel: str
    release_id: int | None
    max_in_flight: int | None
    rollout_percent: int | None
    failure_threshold: int | None
    failure_count: int
    paused: bool
    paused_reason: str | None
