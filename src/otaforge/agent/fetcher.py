"""The agent's one network seam: :class:`Fetcher` opens one HTTP request and streams its body.

Modelled on python-tuf's ``FetcherInterface``: implementations provide a single method,
:meth:`Fetcher.open`, and everything above it (the esp_https_ota state machine, the server
client) works on :class:`Request`/:class:`Response` values. The concrete implementation over
httpx with a pinned CA lives in :mod:`otaforge.agent.httpx_fetcher`; tests may plug in any
object with the same method.

Contract for implementations: transport failures (refused, reset, timed out, TLS handshake
failed, body shorter than announced) raise :class:`~otaforge.errors.ConnectionLost` or another
:class:`~otaforge.errors.TransportError`, both from :meth:`Fetcher.open` and while iterating
:attr:`Response.chunks`. HTTP error statuses are *not* exceptions: callers look at
:attr:`Response.status` and map the ones they cannot use with
:func:`otaforge.protocol.http_errors.error_for_status`.

Example::

    with fetcher.open(Request("GET", url, {"Range": "bytes=4096-"})) as resp:
        for chunk in resp.chunks:
            ...
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from otaforge.errors import TransportError
from otaforge.protocol.http_errors import error_for_status


@dataclass(frozen=True)
class Request:
    """One HTTP request.

    Attributes:
        method: ``GET``, ``HEAD``, ``POST``, ...
        url: absolute URL.
        headers: extra request headers.
        body: request body, if any.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _no_close() -> None:
    return None


@dataclass
class Response:
    """A streamed HTTP response; use it as a context manager so the connection is released.

    Attributes:
        status: HTTP status code.
        headers: response headers, keys lower-cased.
        chunks: the body, as an iterator of non-empty byte strings.
        close: releases the connection (safe to call twice).
    """

    status: int
    headers: Mapping[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None] = _no_close

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        return self.headers.get(name.lower())

    def content_length(self) -> int | None:
        """``Content-Length`` as an int, or None when absent or malformed (chunked)."""
        raw = self.header("content-length")
        return int(raw) if raw is not None and raw.strip().isdigit() else None

    def read_all(self, max_length: int) -> bytes:
        """The whole body, refusing to buffer more than ``max_length`` bytes.

        Raises:
            TransportError: the body is longer than ``max_length``.
        """
        out = bytearray()
        for chunk in self.chunks:
            out += chunk
            if len(out) > max_length:
                raise TransportError(f"response body exceeds {max_length} bytes")
        return bytes(out)

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Fetcher(Protocol):
    """Opens HTTP requests; the agent's only way onto the network."""

    def open(self, request: Request) -> Response:
        """Send ``request`` and return the response with its body not yet read.

        Raises:
            TransportError: the request could not be sent or the headers not received.
        """
        ...


MAX_JSON_BYTES = 256 * 1024


def request_json(
    fetcher: Fetcher,
    method: str,
    url: str,
    payload: Any | None = None,
    headers: Mapping[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204),
) -> tuple[int, Any]:
    """Send a JSON request and decode the JSON answer (a small template over :meth:`open`).

    Args:
        fetcher: the network seam.
        method: HTTP method.
        url: absolute URL.
        payload: JSON-serialisable body, or None for no body.
        headers: extra headers (e.g. ``Authorization``).
        ok: statuses that count as success.

    Returns:
        ``(status, decoded body or None when empty)``.

    Raises:
        ServerError: the server refused (a 4xx; see :mod:`otaforge.protocol.http_errors`).
        HTTPStatusError: another status not in ``ok`` (5xx, ...).
        TransportError: network failure, or a body that is not JSON.
    """
    hdrs = {"Accept": "application/json", **(headers or {})}
    body = None
    if payload is not None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        hdrs["Content-Type"] = "application/json"
    with fetcher.open(Request(method, url, hdrs, body)) as resp:
        raw = resp.read_all(MAX_JSON_BYTES)
        status = resp.status
    if status not in ok:
        raise error_for_status(status, raw, f"{method} {url}")
    if not raw.strip():
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError as err:
        raise TransportError(f"{method} {url}: answer is not JSON: {err}") from err
