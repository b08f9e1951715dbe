"""The HTTP side of esp_https_ota: the handle, opening the download, resumption and the
partial-download mode (reference §6.1).

* Plain download: one GET; ``image_length`` from Content-Length.
* Resumption (``ota_resumption`` with at least 1024 bytes written): ``Range: bytes=<n>-`` plus
  ``If-Range: <ETag>``; 206 continuing at ``n`` resumes, anything else restarts from 0 (a
  200 body is used as the from-0 stream), 416 restarts with a plain GET.
* Partial download (``partial_http_download``): probe the size with HEAD (304 -> not
  modified; another status -> GET ``Range: bytes=0-0`` and read the total from Content-Range),
  then fetch ``max_http_request_size`` bytes per request with ``Range: bytes=<a>-<b>``; the last
  request asks up to ``image_length`` (one past the end, as ESP-IDF does: servers clamp), and the
  header is omitted when one request covers the whole image.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from otaforge.agent.fetcher import Fetcher, Request, Response
from otaforge.errors import EspError, HTTPStatusError, ServerError, TransportError
from otaforge.protocol.http_errors import error_for_status

IMAGE_HEADER_SIZE = 1024
DEFAULT_BUFFER_SIZE = 4096
ESP_ERR_HTTPS_OTA_IN_PROGRESS = 0x9001
ESP_ERR_HTTP_NOT_MODIFIED = 0x7009
ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE = 0x700A
ESP_ERR_INVALID_STATE = 0x103
ESP_ERR_INVALID_SIZE = 0x104

DEFAULT_MAX_HTTP_REQUEST_SIZE = 64 * 1024
MAX_ERROR_BODY = 4096
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class OtaOpsLike(Protocol):
    """The ``esp_ota_*`` calls esp_https_ota makes (``otaforge.device.ota_ops.OtaOps``)."""

    def esp_ota_begin(self, partition: Any, image_size: int) -> Any: ...
    def esp_ota_write(self, handle: Any, data: bytes) -> None: ...
    def esp_ota_end(self, handle: Any) -> None: ...
    def esp_ota_abort(self, handle: Any) -> None: ...
    def esp_ota_set_boot_partition(self, partition: Any) -> None: ...
    def esp_ota_get_next_update_partition(self, start: Any = None) -> Any: ...


class HttpsOtaState(IntEnum):
    """``esp_https_ota_state``."""

    INIT = 0
    BEGIN = 1
    IN_PROGRESS = 2
    SUCCESS = 3
    RESUME = 4


# resume(partition, image_size, offset) -> handle: esp_ota_resume; read(partition, off, n)
ResumeFn = Callable[[Any, int, int], Any]
ReadFn = Callable[[Any, int, int], bytes]


@dataclass
class HttpsOtaConfig:
    """``esp_https_ota_config_t`` (the fields the agent uses).

    Attributes:
        url: image URL.
        headers: extra request headers (e.g. ``Authorization``).
        partition: staging partition; default ``esp_ota_get_next_update_partition(NULL)``.
        bulk_flash_erase: erase ``image_length`` up front instead of sector by sector.
        ota_resumption: resume from ``ota_image_bytes_written``.
        ota_image_bytes_written: bytes already in the staging partition.
        resume_etag: ETag of the partial image (sent as ``If-Range``).
        resume_image_size: total size of the partial image (checked against Content-Range).
        buffer_size: bytes per read/write.
        partial_http_download: fetch the image in several Range requests.
        max_http_request_size: bytes per request in partial-download mode.
        resume: ``esp_ota_resume(partition, erase_size, offset)`` of the device.
        read_partition: ``esp_partition_read(partition, offset, n)`` of the device.
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    partition: Any = None
    bulk_flash_erase: bool = False
    ota_resumption: bool = False
    ota_image_bytes_written: int = 0
    resume_etag: str | None = None
    resume_image_size: int | None = None
    buffer_size: int = DEFAULT_BUFFER_SIZE
    partial_http_download: bool = False
    max_http_request_size: int = DEFAULT_MAX_HTTP_REQUEST_SIZE
    resume: ResumeFn | None = None
    read_partition: ReadFn | None = None


@dataclass
class HttpsOtaHandle:
    """``esp_https_ota_handle_t``: one download in progress."""

    config: HttpsOtaConfig
    fetcher: Fetcher
    ota: OtaOpsLike
    staging: Any
    state: HttpsOtaState = HttpsOtaState.INIT
    image_length: int = -1
    binary_file_len: int = 0
    start_offset: int = 0
    etag: str | None = None
    restarted: str | None = None  # why a resumption restarted from 0, if it did
    header: bytes = b""  # the first bytes read from the stream, not yet written
    ota_handle: Any = None
    response: Response | None = None
    _chunks: Iterator[bytes] | None = None
    _pending: bytes = b""
    _eof: bool = False


def _request(handle: HttpsOtaHandle, extra: Mapping[str, str], method: str = "GET") -> Response:
    hdrs = {**handle.config.headers, **extra}
    resp = handle.fetcher.open(Request(method, handle.config.url, hdrs))
    if resp.status == 304:
        resp.close()
        raise EspError(ESP_ERR_HTTP_NOT_MODIFIED, "ESP_ERR_HTTP_NOT_MODIFIED",
                       "OTA image not modified since last request")
    if resp.status == 416:
        resp.close()
        raise EspError(ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE, "ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE",
                       "Requested range is incorrect")
    if resp.status not in (200, 206):
        body = _error_body(resp)
        raise error_for_status(resp.status, body, f"{method} {handle.config.url}")
    return resp


def _error_body(resp: Response) -> bytes:
    """The start of an error answer's body (its problem+json), then the connection closed."""
    try:
        return next(iter(resp.chunks), b"")[:MAX_ERROR_BODY]
    except TransportError:
        return b""
    finally:
        resp.close()


def _attach(handle: HttpsOtaHandle, resp: Response, offset: int, length: int) -> None:
    handle.response = resp
    handle._chunks = iter(resp.chunks)
    handle._eof = False
    handle.etag = resp.header("etag") or handle.etag
    handle.start_offset = handle.binary_file_len = offset
    handle.image_length = length
    handle.state = HttpsOtaState.RESUME if offset else HttpsOtaState.BEGIN


def open_full(handle: HttpsOtaHandle, resp: Response | None) -> None:
    """Plain download from 0 (``resp``: an already-open 200/206 answer to reuse)."""
    if resp is None:
        resp = _request(handle, {})
    length = resp.content_length()
    if resp.status == 206:
        parsed = content_range(resp.header("content-range"))
        length = parsed[2] if parsed and parsed[0] == 0 else length
    _attach(handle, resp, 0, length if length is not None else -1)


def open_resumed(handle: HttpsOtaHandle, offset: int) -> None:
    """Resume at ``offset`` with Range + If-Range; restart from 0 when that cannot work."""
    extra = {"Range": f"bytes={offset}-"}
    if handle.config.resume_etag:
        extra["If-Range"] = handle.config.resume_etag
    try:
        resp = _request(handle, extra)
    except EspError as err:
        if err.code != ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE:
            raise
        handle.restarted = "server answered 416 to the resumption range"
        open_full(handle, None)
        return
    if resp.status == 200:
        handle.restarted = ("server ignored the Range header (200)" if not
                            handle.config.resume_etag else
                            "server sent the whole image (200): Range ignored or ETag changed")
        open_full(handle, resp)
        return
    parsed = content_range(resp.header("content-range"))
    expected = handle.config.resume_image_size
    if parsed is None or parsed[0] != offset or (expected is not None and parsed[2] != expected):
        resp.close()
        handle.restarted = (f"Content-Range {resp.header('content-range')!r} does not continue "
                            f"the partial image at {offset}")
        open_full(handle, None)
        return
    etag, wanted = resp.header("etag"), handle.config.resume_etag
    if etag and wanted and etag != wanted:  # a server that ignored If-Range: never splice
        resp.close()
        handle.restarted = f"206 for ETag {etag}, but the partial image is {wanted}"
        open_full(handle, None)
        return
    _attach(handle, resp, offset, parsed[2])


def content_range(value: str | None) -> tuple[int, int, int] | None:
    """``(first, last, total)`` of a ``Content-Range: bytes a-b/n`` header, else None."""
    match = _CONTENT_RANGE.match(value or "")
    if match is None or match.group(3) == "*":
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


# --- partial download ----------------------------------------------------------------------


def _probe_length(handle: HttpsOtaHandle) -> int:
    """The image size: HEAD, else GET ``Range: bytes=0-0`` (ESP-IDF master's probes)."""
    try:
        head = _request(handle, {}, "HEAD")
    except (HTTPStatusError, ServerError):
        head = None
    if head is not None:
        head.close()
        handle.etag = head.header("etag")
        length = head.content_length()
        if head.status == 200 and length is not None:
            return length
    probe = _request(handle, {"Range": "bytes=0-0"})
    try:
        handle.etag = probe.header("etag")
        if probe.status == 206:
            parsed = content_range(probe.header("content-range"))
            if parsed is not None:
                return parsed[2]
        elif probe.content_length() is not None:
            return int(probe.content_length() or 0)
    finally:
        probe.close()
    raise EspError(-1, "ESP_FAIL", "image size unknown: no Content-Length or Content-Range")


def _range_headers(handle: HttpsOtaHandle, start: int) -> dict[str, str]:
    size = handle.image_length
    end = start + handle.config.max_http_request_size - 1
    if start == 0 and end >= size - 1:
        return {}
    return {"Range": f"bytes={start}-{end if end < size - 1 else size}"}


def open_next_range(handle: HttpsOtaHandle, if_range: str | None = None) -> None:
    """Request the next ``max_http_request_size`` bytes, from ``binary_file_len`` on.

    Raises:
        EspError: the server ignored the Range header mid-download or answered another range.
        ConnectionLost: the previous range ended without any data.
    """
    start = handle.binary_file_len
    hdrs = _range_headers(handle, start)
    if if_range and hdrs:
        hdrs["If-Range"] = if_range
    resp = _request(handle, hdrs)
    if hdrs and resp.status == 206:
        parsed = content_range(resp.header("content-range"))
        if parsed is None or parsed[0] != start or parsed[2] != handle.image_length:
            resp.close()
            raise EspError(-1, "ESP_FAIL", f"server answered Content-Range "
                           f"{resp.header('content-range')!r} to {hdrs['Range']!r}")
    elif hdrs and start > 0:
        resp.close()
        raise EspError(ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE, "ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE",
                       f"server ignored {hdrs['Range']!r} of a partial download (HTTP "
                       f"{resp.status})")
    handle.response = resp
    handle._chunks = iter(resp.chunks)
    handle._eof = False


def begin_partial(handle: HttpsOtaHandle, offset: int) -> None:
    """Partial-download begin: probe the size, then open the first range (at ``offset``)."""
    handle.image_length = _probe_length(handle)
    expected = handle.config.resume_image_size
    if offset and (expected not in (None, handle.image_length) or offset >= handle.image_length
                   or (handle.config.resume_etag and handle.etag != handle.config.resume_etag)):
        handle.restarted = "the image changed (size or ETag) since the partial download"
        offset = 0
    handle.start_offset = handle.binary_file_len = offset
    handle.state = HttpsOtaState.RESUME if offset else HttpsOtaState.BEGIN
    open_next_range(handle, handle.config.resume_etag if offset else None)
