"""esp_https_ota's begin / perform / finish / abort state machine over a Fetcher and OtaOps.

Names, states and error codes follow components/esp_https_ota/src/esp_https_ota.c (reference
§6): :func:`esp_https_ota_begin` opens the download (resuming with ``Range: bytes=<n>-`` when
``ota_resumption`` is set and at least 1024 bytes are already written),
:func:`esp_https_ota_get_img_desc` reads the first 1024 bytes *before anything is erased*,
:func:`esp_https_ota_perform` is called until it stops returning
``ESP_ERR_HTTPS_OTA_IN_PROGRESS`` (progress = :func:`esp_https_ota_get_image_len_read` of
:func:`esp_https_ota_get_image_size`), :func:`esp_https_ota_finish` runs ``esp_ota_end`` and
``esp_ota_set_boot_partition``.

How the image is fetched (plain, resumed, or in partial-download ranges after a HEAD probe)
is in :mod:`otaforge.agent.ota_requests`. Deliberate choices where ESP-IDF versions differ
(documented in §6.1 step 5):

* Resumption sends ``If-Range: <ETag>`` as well, so an artifact that changed between attempts
  comes back as a full 200 and the download restarts instead of splicing two images.
* Any answer other than 206 to a resumption request (v6.0/master rule) restarts from 0; a
  200 body is used as the from-0 stream directly instead of asking again.
* A 206 whose Content-Range does not start at the requested offset or whose total differs
  from the size recorded for the partial image restarts from 0.
* The body is never written past ``image_length``: a server sending more is an error.
"""

from __future__ import annotations

from otaforge.agent.fetcher import Fetcher
from otaforge.agent.ota_requests import (
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MAX_HTTP_REQUEST_SIZE,
    ESP_ERR_HTTP_NOT_MODIFIED,
    ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE,
    ESP_ERR_HTTPS_OTA_IN_PROGRESS,
    ESP_ERR_INVALID_SIZE,
    ESP_ERR_INVALID_STATE,
    IMAGE_HEADER_SIZE,
    HttpsOtaConfig,
    HttpsOtaHandle,
    HttpsOtaState,
    OtaOpsLike,
    begin_partial,
    open_full,
    open_next_range,
    open_resumed,
)
from otaforge.device.esp_err import ESP_OK, OTA_WITH_SEQUENTIAL_WRITES
from otaforge.errors import ConnectionLost, EspError, TruncatedError
from otaforge.formats.app_desc import APP_DESC_OFFSET, APP_DESC_SIZE, AppDesc, read_app_desc

__all__ = [
    "DEFAULT_BUFFER_SIZE", "DEFAULT_MAX_HTTP_REQUEST_SIZE", "ESP_ERR_HTTPS_OTA_IN_PROGRESS",
    "ESP_ERR_HTTP_NOT_MODIFIED", "ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE", "IMAGE_HEADER_SIZE",
    "OTA_WITH_SEQUENTIAL_WRITES", "HttpsOtaConfig", "HttpsOtaHandle", "HttpsOtaState",
    "OtaOpsLike", "esp_https_ota_abort", "esp_https_ota_begin", "esp_https_ota_finish",
    "esp_https_ota_get_header_bytes", "esp_https_ota_get_image_len_read",
    "esp_https_ota_get_image_size", "esp_https_ota_get_img_desc",
    "esp_https_ota_is_complete_data_received", "esp_https_ota_perform",
]


def esp_https_ota_begin(config: HttpsOtaConfig, fetcher: Fetcher,
                        ota: OtaOpsLike) -> HttpsOtaHandle:
    """Open the image download (state BEGIN, or RESUME when resuming).

    Raises:
        EspError: 304 (ESP_ERR_HTTP_NOT_MODIFIED) or 416 without resumption.
        HTTPStatusError: 401/403/404 and other error statuses.
        TransportError: the server could not be reached.
    """
    staging = config.partition or ota.esp_ota_get_next_update_partition(None)
    handle = HttpsOtaHandle(config, fetcher, ota, staging)
    offset = config.ota_image_bytes_written if config.ota_resumption else 0
    if offset < IMAGE_HEADER_SIZE:
        offset = 0
    if config.partial_http_download:
        begin_partial(handle, offset)
    elif offset:
        open_resumed(handle, offset)
    else:
        open_full(handle, None)
    return handle


def _read(handle: HttpsOtaHandle, n: int) -> bytes:
    """Up to ``n`` bytes from the stream (fewer only at its end)."""
    buf = bytearray(handle._pending)
    handle._pending = b""
    assert handle._chunks is not None
    while len(buf) < n and not handle._eof:
        chunk = next(handle._chunks, None)
        if chunk is None:
            handle._eof = True
        else:
            buf += chunk
    handle._pending = bytes(buf[n:])
    return bytes(buf[:n])


def _peek(handle: HttpsOtaHandle) -> bool:
    """Whether more body bytes are available (buffers the next chunk)."""
    first = _read(handle, 1)
    handle._pending = first + handle._pending
    return bool(first)


def _read_header(handle: HttpsOtaHandle) -> bytes:
    want = IMAGE_HEADER_SIZE  # as ESP-IDF: an image shorter than 1024 bytes is refused
    if len(handle.header) < want:
        handle.header += _read(handle, want - len(handle.header))
    if len(handle.header) < want:
        raise TruncatedError(
            f"Complete headers were not received: {len(handle.header)} of {want} bytes "
            f"(image_length {handle.image_length})")
    return handle.header


def esp_https_ota_get_img_desc(handle: HttpsOtaHandle) -> AppDesc:
    """The new image's ``esp_app_desc_t``, read before anything is erased.

    Raises:
        EspError: called in the wrong state.
        TruncatedError / BadMagicError: the first bytes are not an app image.
    """
    return read_app_desc(esp_https_ota_get_header_bytes(handle))


def esp_https_ota_get_header_bytes(handle: HttpsOtaHandle) -> bytes:
    """The first bytes of the image (up to 1024): from the stream, or from flash on resume.

    Raises:
        EspError: wrong state.
        TruncatedError: the stream ended before the header was complete.
    """
    if handle.state == HttpsOtaState.RESUME:
        read = handle.config.read_partition
        if read is None:
            raise EspError(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE",
                           "resumption needs read_partition to read the written header")
        return read(handle.staging, 0, max(IMAGE_HEADER_SIZE, APP_DESC_OFFSET + APP_DESC_SIZE))
    if handle.state != HttpsOtaState.BEGIN:
        raise EspError(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE",
                       "esp_https_ota_get_img_desc: state is not BEGIN")
    return _read_header(handle)


def esp_https_ota_perform(handle: HttpsOtaHandle) -> int:
    """One step of the download: returns ESP_ERR_HTTPS_OTA_IN_PROGRESS or ESP_OK when done.

    Raises:
        EspError: a device error (``esp_ota_begin``/``write``), or more data than announced.
        TruncatedError: the header could not be read.
        ConnectionLost: the connection closed before the whole image arrived.
    """
    cfg = handle.config
    if handle.state == HttpsOtaState.BEGIN:
        header = _read_header(handle)
        erase = handle.image_length if cfg.bulk_flash_erase and handle.image_length > 0 \
            else OTA_WITH_SEQUENTIAL_WRITES
        handle.ota_handle = handle.ota.esp_ota_begin(handle.staging, erase)
        handle.state = HttpsOtaState.IN_PROGRESS
        _write(handle, header)
        handle.header = b""
        return ESP_ERR_HTTPS_OTA_IN_PROGRESS
    if handle.state == HttpsOtaState.RESUME:
        if cfg.resume is None:
            raise EspError(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE",
                           "resumption needs the device's esp_ota_resume")
        handle.ota_handle = cfg.resume(handle.staging, OTA_WITH_SEQUENTIAL_WRITES,
                                       handle.start_offset)
        handle.state = HttpsOtaState.IN_PROGRESS
        return ESP_ERR_HTTPS_OTA_IN_PROGRESS
    if handle.state != HttpsOtaState.IN_PROGRESS:
        raise EspError(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE",
                       f"esp_https_ota_perform in state {handle.state.name}")
    want = cfg.buffer_size - handle.binary_file_len % cfg.buffer_size
    data = _read(handle, want)
    if data:
        _write(handle, data)
        return ESP_ERR_HTTPS_OTA_IN_PROGRESS
    if cfg.partial_http_download and 0 <= handle.binary_file_len < handle.image_length:
        before = handle.binary_file_len
        _close(handle)
        open_next_range(handle)
        if not _peek(handle):
            raise ConnectionLost(f"range request at {before} returned no data")
        return ESP_ERR_HTTPS_OTA_IN_PROGRESS
    if handle.image_length >= 0 and handle.binary_file_len != handle.image_length:
        raise ConnectionLost(
            f"Connection closed before complete data was received! "
            f"({handle.binary_file_len} of {handle.image_length} bytes)")
    handle.state = HttpsOtaState.SUCCESS
    return ESP_OK


def _write(handle: HttpsOtaHandle, data: bytes) -> None:
    if handle.image_length >= 0 and handle.binary_file_len + len(data) > handle.image_length:
        raise EspError(ESP_ERR_INVALID_SIZE, "ESP_ERR_INVALID_SIZE",
                       f"server sent more than the image size {handle.image_length}")
    handle.ota.esp_ota_write(handle.ota_handle, data)
    handle.binary_file_len += len(data)


def esp_https_ota_get_image_len_read(handle: HttpsOtaHandle) -> int:
    """Bytes of the image written so far (-1 before IN_PROGRESS, as ESP-IDF)."""
    if handle.state in (HttpsOtaState.INIT, HttpsOtaState.BEGIN):
        return -1
    return handle.binary_file_len


def esp_https_ota_get_image_size(handle: HttpsOtaHandle) -> int:
    """The image size announced by the server (-1 when unknown)."""
    return handle.image_length


def esp_https_ota_is_complete_data_received(handle: HttpsOtaHandle) -> bool:
    """True when every announced byte was received and written."""
    return handle.image_length >= 0 and handle.binary_file_len == handle.image_length


def esp_https_ota_finish(handle: HttpsOtaHandle) -> None:
    """``esp_ota_end`` (validates the image) and, when complete, ``set_boot_partition``.

    Raises:
        EspError: validation failed (ESP_ERR_OTA_VALIDATE_FAILED), incomplete data, or the
            device refused the boot partition (e.g. ESP_ERR_OTA_SMALL_SEC_VER).
    """
    try:
        if handle.state not in (HttpsOtaState.SUCCESS, HttpsOtaState.IN_PROGRESS):
            raise EspError(ESP_ERR_INVALID_STATE, "ESP_ERR_INVALID_STATE",
                           f"esp_https_ota_finish in state {handle.state.name}")
        ota_handle, handle.ota_handle = handle.ota_handle, None  # esp_ota_end always frees it
        handle.ota.esp_ota_end(ota_handle)
        if handle.state != HttpsOtaState.SUCCESS:
            raise EspError(-1, "ESP_FAIL", "image download incomplete")
        handle.ota.esp_ota_set_boot_partition(handle.staging)
    finally:
        _close(handle)


def esp_https_ota_abort(handle: HttpsOtaHandle) -> None:
    """Drop the download: ``esp_ota_abort`` (the slot stays partially written)."""
    try:
        if handle.ota_handle is not None:
            handle.ota.esp_ota_abort(handle.ota_handle)
            handle.ota_handle = None
    finally:
        _close(handle)


def _close(handle: HttpsOtaHandle) -> None:
    if handle.response is not None:
        handle.response.close()
        handle.response = None
