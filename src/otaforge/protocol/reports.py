"""Report states, otadata states and the check-in / report bodies of the device API.

The server validates incoming bodies against these vocabularies (its pydantic schemas use
the enums below), and the agent builds its bodies with :class:`CheckIn` and :class:`Report`,
so a state or a refusal code one side sends is always one the other accepts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from otaforge.errors import RefusalCode

MAX_REASON_LENGTH = 1000


class ReportState(StrEnum):
    """How far a deployment got, as a device reports it (in the usual order)."""

    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    PENDING_VERIFY = "pending_verify"
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


TERMINAL_STATES = frozenset({ReportState.CONFIRMED, ReportState.ROLLED_BACK,
                             ReportState.FAILED})
FAILURE_STATES = frozenset({ReportState.ROLLED_BACK, ReportState.FAILED})
ABORTED = "aborted"  # a deployment state set by an administrator, never reported by a device


class OtadataState(StrEnum):
    """``esp_ota_img_states_t`` of the running app, as the check-in names it."""

    NEW = "new"
    PENDING_VERIFY = "pending_verify"
    VALID = "valid"
    INVALID = "invalid"
    ABORTED = "aborted"
    UNDEFINED = "undefined"


# refusals that say "not needed here", not "something is wrong with the image"
SKIP_CODES = frozenset({RefusalCode.SAME_VERSION, RefusalCode.KNOWN_BAD})


@dataclass(frozen=True)
class CheckIn:
    """``POST /api/v1/devices/{id}/check-in``: what the device tells the server about itself."""

    fleet: str
    chip: str
    version: str | None
    image_sha256: str | None
    running_partition: str | None
    otadata_state: OtadataState | None
    secure_version: int | None
    hw_revision: str | None = None  # the board's revision, for rollout targeting

    def to_json(self) -> dict[str, Any]:
        """The check-in body (fields left out when unknown)."""
        body = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: str(v) if isinstance(v, StrEnum) else v
                for k, v in body.items() if v is not None}


@dataclass(frozen=True)
class Report:
    """``POST /api/v1/devices/{id}/events``: one progress or outcome report.

    ``event_id`` is derived from the content, so sending the same report again is a replay
    the server recognises. ``code`` is the machine-readable refusal reason, ``reason`` the
    human-readable text.
    """

    state: ReportState
    deployment_id: int | None = None
    reason: str | None = None
    bytes: int | None = None
    nonce: str = ""
    code: RefusalCode | None = None
    method: str | None = None  # "delta" or "full": how the release was fetched

    @property
    def event_id(self) -> str:
        """Stable id from the content: sending the same report again is a replay."""
        key = (f"{self.deployment_id}|{self.state}|{self.reason}|{self.bytes}|{self.nonce}"
               + (f"|{self.code}" if self.code is not None else "")
               + (f"|{self.method}" if self.method is not None else ""))
        return "ev-" + hashlib.sha256(key.encode()).hexdigest()[:40]

    def to_json(self) -> dict[str, Any]:
        """The report body."""
        body: dict[str, Any] = {"event_id": self.event_id, "state": str(self.state)}
        if self.deployment_id is not None:
            body["deployment_id"] = self.deployment_id
        if self.code is not None:
            body["code"] = str(self.code)
        if self.reason is not None:
            body["reason"] = self.reason[:MAX_REASON_LENGTH]
        if self.bytes is not None:
            body["bytes"] = self.bytes
        if self.method is not None:
            body["method"] = self.method
        return body


@dataclass(frozen=True)
class DeltaInfo:
    """The manifest's optional delta: an esp_delta_ota patch from the running image.

    Attributes:
        url: where the patch is (Range works as for images).
        size: patch size.
        sha256: SHA-256 of the patch file.
        base_sha256: SHA-256 of the image file the patch applies to.
        target_sha256: SHA-256 of the image file it rebuilds (the manifest's ``sha256``).
    """

    url: str
    size: int
    sha256: str
    base_sha256: str
    target_sha256: str

    @classmethod
    def from_json(cls, body: Any) -> DeltaInfo | None:
        """Parse the untrusted ``delta`` member (None when absent).

        Raises:
            ValueError: a member is missing or has the wrong type.
        """
        if body is None:
            return None
        if not isinstance(body, dict):
            raise ValueError(f"manifest delta is not a JSON object: {type(body).__name__}")
        return cls(url=str(body["url"]), size=int(body["size"]), sha256=str(body["sha256"]),
                   base_sha256=str(body["base_sha256"]),
                   target_sha256=str(body["target_sha256"]))


@dataclass(frozen=True)
class Manifest:
    """The check-in's 200 answer: the release the device should install (what it reads).

    The server's schema has more members (``release_id``, ``signature``, ...); a device needs
    only these.
    """

    deployment_id: int
    version: str
    secure_version: int
    size: int
    sha256: str
    url: str
    delta: DeltaInfo | None = None

    @classmethod
    def from_json(cls, body: Any) -> Manifest:
        """Parse an untrusted manifest.

        Raises:
            ValueError: a member is missing or has the wrong type.
        """
        if not isinstance(body, dict):
            raise ValueError(f"manifest is not a JSON object: {type(body).__name__}")
        try:
            return cls(deployment_id=int(body["deployment_id"]), version=str(body["version"]),
                       secure_version=int(body["secure_version"]), size=int(body["size"]),
                       sha256=str(body["sha256"]), url=str(body["url"]),
                       delta=DeltaInfo.from_json(body.get("delta")))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed manifest ({err!r})") from None


def recorded_reason(code: RefusalCode | None, reason: str | None) -> str | None:
    """The reason text the server records: ``"<code>: <reason>"`` when a code was sent.

    The code comes from the typed field, never from the text, so rewording an agent's message
    leaves the recorded code unchanged.
    """
    if code is None:
        return reason
    return f"{code}: {reason}" if reason else str(code)
