"""The one error hierarchy of otaforge, split by who is at fault.

::

    OtaforgeError
    ├── InputError                  bad option value or missing file
    ├── RefusableError              a reason to refuse an update; carries a RefusalCode
    │   ├── FormatError             untrusted bytes or text do not parse (bad input)
    │   │   ├── TruncatedError      fewer bytes than the format needs
    │   │   ├── BadMagicError       a magic number is wrong ("nothing flashed here?")
    │   │   ├── ChecksumMismatch    a checksum, CRC, MD5 or appended hash does not match
    │   │   └── PartitionTableError a partition CSV/binary breaks one of gen_esp32part's rules
    │   └── VerificationError       the input parses but must not be trusted or installed
    │       ├── SignatureInvalid    no valid signature by an accepted key
    │       ├── DigestMismatch      content differs from the digest it is claimed to have
    │       ├── RollbackRejected    secure_version (anti-rollback) or version policy refuses it
    │       └── ImageRejected       wrong chip, too large for the slot, same version, ...
    ├── TransportError              the network or the peer failed us
    │   ├── HTTPStatusError         an unexpected HTTP status (``status_code``)
    │   └── ConnectionLost          the connection dropped or timed out mid-transfer
    ├── DeviceError                 the (emulated) device refused or failed
    │   ├── EspError                an ESP-IDF API error code (``code``, ``name``)
    │   ├── FlashError              a flash operation broke NOR rules or was out of range
    │   ├── PowerCut                injected power loss: the device stops here
    │   └── Bricked                 the bootloader found no bootable app partition
    └── ServerError                 the update server refused a request (``status_code``)
        ├── NotFound
        ├── Conflict
        ├── Unauthorized
        └── StoreUnavailable        the blob store (S3) cannot be reached: 503 + Retry-After

Every message says what is wrong, where, and (when there is a fix) what to do. What a
*program* acts on is never the message: a :class:`RefusableError` (every
:class:`FormatError` and :class:`VerificationError`) carries a :class:`RefusalCode`
(``err.code``; each class has a default, raise sites name a more precise one), the reason an
update agent reports to the server; :class:`EspError` carries
ESP-IDF's number and, when it wraps a refusal, the otaforge error behind it (``cause``).
"""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    """Why an image is not installed: the machine-readable reason a device reports.

    The server accepts exactly these values (:mod:`otaforge.protocol.reports`); rewording a
    message never changes which one an error carries.
    """

    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    WRONG_CHIP = "wrong_chip"
    CHIP_REVISION = "chip_revision"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    SECURE_VERSION = "secure_version"
    SAME_VERSION = "same_version"
    KNOWN_BAD = "known_bad_version"
    DIGEST_MISMATCH = "digest_mismatch"
    VERSION_MISMATCH = "version_mismatch"


class OtaforgeError(Exception):
    """Base of every error otaforge raises on purpose."""


class InputError(OtaforgeError):
    """The user asked for something impossible: a bad option value or a missing file."""


class RefusableError(OtaforgeError):
    """Met while checking an update, a reason to refuse it.

    Attributes:
        code: the refusal reason: the class default unless the raise site names one.
    """

    code = RefusalCode.CORRUPT

    def __init__(self, message: str = "", *, code: RefusalCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


# --- bad input: bytes or text that do not parse -------------------------------------------


class FormatError(RefusableError):
    """Untrusted bytes or text do not follow the format they claim to be in."""


class TruncatedError(FormatError):
    """The data ends before the format says it should."""

    code = RefusalCode.TRUNCATED


class BadMagicError(FormatError):
    """A magic number is not the one the format requires."""

    code = RefusalCode.NOT_AN_IMAGE


class ChecksumMismatch(FormatError):
    """A checksum, CRC, MD5 or appended SHA-256 does not match the data it covers."""


class PartitionTableError(FormatError):
    """A partition table (CSV or binary) violates one of ESP-IDF's rules.

    Attributes:
        line: 1-based CSV line number the problem is on, when known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.reason = message


# --- verification failed: parses, but must not be trusted ---------------------------------


class VerificationError(RefusableError):
    """The input is well-formed but must not be trusted or installed."""


class SignatureInvalid(VerificationError):
    """No signature by an accepted, unrevoked key verifies over the exact bytes."""

    code = RefusalCode.BAD_SIGNATURE


class DigestMismatch(VerificationError):
    """Content differs from the digest it is claimed to have."""

    code = RefusalCode.DIGEST_MISMATCH


class RollbackRejected(VerificationError):
    """Anti-rollback (secure_version) or the version policy refuses this image.

    Default code SECURE_VERSION; SAME_VERSION when the image is the running version.
    """

    code = RefusalCode.SECURE_VERSION


class ImageRejected(VerificationError):
    """The image is valid but not for this device: wrong chip, too large, same version, ...

    Default code CORRUPT (a layout the bootloader refuses); raise sites name WRONG_CHIP,
    CHIP_REVISION, TOO_LARGE or VERSION_MISMATCH.
    """


# --- transport ---------------------------------------------------------------------------


class TransportError(OtaforgeError):
    """The network or the peer failed."""


class HTTPStatusError(TransportError):
    """The peer answered with an HTTP status the client cannot use."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class ConnectionLost(TransportError):
    """The connection dropped, timed out or was refused."""


# --- device ------------------------------------------------------------------------------


class DeviceError(OtaforgeError):
    """The (emulated) device refused an operation or failed."""


class EspError(DeviceError):
    """An ESP-IDF API error, carrying ESP-IDF's numeric code and its name.

    Attributes:
        code: the ``esp_err_t`` value, e.g. 0x1503.
        name: the constant's name, e.g. ``"ESP_ERR_OTA_VALIDATE_FAILED"``.
        detail: human-readable detail.
        cause: the otaforge error behind a refusal (e.g. the SignatureInvalid behind
            ``ESP_ERR_OTA_VALIDATE_FAILED``), None when there is none.
    """

    def __init__(self, code: int, name: str, detail: str = "",
                 cause: RefusableError | None = None) -> None:
        super().__init__(f"{name} (0x{code:x}){': ' + detail if detail else ''}")
        self.code = code
        self.name = name
        self.detail = detail
        self.cause = cause


class FlashError(DeviceError):
    """A flash operation broke NOR rules or was out of range."""


class PowerCut(DeviceError):
    """Injected power loss: everything after this point on the device did not happen."""


class Bricked(DeviceError):
    """The bootloader found no bootable app partition."""


# --- server ------------------------------------------------------------------------------


class ServerError(OtaforgeError):
    """The update server refused a request.

    Attributes:
        status_code: the HTTP status the server answers with.
        reason: the machine-readable cause of the problem+json answer ("" when unknown).
    """

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code
        self.reason = reason


class NotFound(ServerError):
    status_code = 404


class Conflict(ServerError):
    status_code = 409


class Unauthorized(ServerError):
    status_code = 401


class StoreUnavailable(ServerError):
    """The blob store cannot be reached or failed a request (S3 down, timing out, refusing).

    Answered 503 with ``Retry-After: retry_after_s``; nothing was stored or changed.
    """

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message, reason="store_unavailable")
        self.retry_after_s = retry_after_s
