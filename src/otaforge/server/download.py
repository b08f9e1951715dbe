"""Streaming firmware responses with Range, If-Range and If-None-Match (ETag = SHA-256).

A small ASGI response instead of starlette's FileResponse: it answers exactly what
esp_https_ota expects (206 for ``bytes=0-``, clamped range ends, 416 with ``bytes */len``),
sends large chunks read straight from the page cache (or, from S3, one ranged GET read in
a thread), and never buffers a whole image.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from otaforge.errors import StoreUnavailable
from otaforge.protocol.problem import PROBLEM_MEDIA_TYPE, problem_body
from otaforge.server.blobs import BlobHandle, BlobStore
from otaforge.server.delivery import connection, wait_delivered
from otaforge.server.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    if_range_allows,
    none_match,
    parse_range,
)

log = logging.getLogger("otaforge.server")
DELIVERY_TIMEOUT_S = 20.0  # how long a complete body may wait for TCP's acknowledgement


async def blob_exists(blobs: BlobStore, sha256: str) -> bool:
    """``blobs.exists`` -- in a thread for a remote store, so the event loop never waits on
    it (StoreUnavailable propagates: the caller answers 503)."""
    if blobs.remote:
        return await run_in_threadpool(blobs.exists, sha256)
    return blobs.exists(sha256)


def etag_of(sha256: str) -> str:
    """The strong ETag of an image: its SHA-256 in quotes."""
    return f'"{sha256}"'


def _headers(pairs: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs.items()]


class FirmwareResponse(Response):
    """An ASGI response answering one GET/HEAD for a stored blob.

    Args:
        blobs: the blob store (local directory or S3).
        sha256: the blob's digest (ETag).
        request_headers: the request's headers (range, if-range, if-none-match).
        head: answer without a body.
        chunk_size: bytes per body message.
        extra_headers: added to every answer (e.g. Cache-Control).
        tracker: told what of a body was sent (see :class:`DownloadTracker`).

    A store that fails before the first byte is sent makes the answer a 503 problem with
    Retry-After; one that fails mid-body ends the response short (the client resumes with
    Range, as after any dropped connection), and the tracker counts what was sent.
    """

    def __init__(self, blobs: BlobStore, sha256: str, request_headers: Mapping[str, str], *,
                 head: bool = False, chunk_size: int = 1024 * 1024,
                 extra_headers: Mapping[str, str] | None = None,
                 tracker: DownloadTracker | None = None) -> None:
        super().__init__(status_code=200)
        self.tracker = tracker
        self.blobs, self.sha256, self.head = blobs, sha256, head
        self.chunk_size = chunk_size
        self.req = request_headers
        self.extra = dict(extra_headers or {})

    def _plan(self, size: int) -> tuple[int, dict[str, str], ByteRange | None]:
        etag = etag_of(self.sha256)
        base = {"etag": etag, "accept-ranges": "bytes",
                "cache-control": "private, max-age=0, must-revalidate", **self.extra}
        if none_match(self.req.get("if-none-match"), etag):
            return 304, base, None
        header = self.req.get("range")
        if header and if_range_allows(self.req.get("if-range"), etag):
            try:
                rng = parse_range(header, size)
            except RangeNotSatisfiable as err:
                return 416, {**base, "content-range": err.content_range,
                             "content-type": PROBLEM_MEDIA_TYPE}, None
            if rng is not None:
                return 206, {**base, "content-range": rng.content_range,
                             "content-length": str(rng.length),
                             "content-type": "application/octet-stream"}, rng
        return 200, {**base, "content-length": str(size),
                     "content-type": "application/octet-stream"}, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            handle = await run_in_threadpool(self.blobs.open, self.sha256) \
                if self.blobs.remote else self.blobs.open(self.sha256)
        except StoreUnavailable as err:
            await _unavailable(err, send)
            return
        try:
            await self._answer(handle, scope, receive, send)
        finally:
            handle.close()

    async def _answer(self, handle: BlobHandle, scope: Scope, receive: Receive,
                      send: Send) -> None:
        size = handle.size
        status, headers, rng = self._plan(size)
        body416 = b""
        if status == 416:
            body416 = json.dumps(problem_body(
                416, "requested range starts past the end of the image",
                "range_not_satisfiable"), separators=(",", ":")).encode()
            headers["content-length"] = str(len(body416))
        start, length = (rng.start, rng.length) if rng else (0, size)
        first = b""
        if not self.head and status in (200, 206) and length > 0:
            try:  # a store that is down answers 503 here, before any header went out
                first = await _read(handle, start, min(self.chunk_size, length),
                                    start + length)
            except StoreUnavailable as err:
                await _unavailable(err, send)
                return
        await send({"type": "http.response.start", "status": status,
                    "headers": _headers(headers)})
        if self.head or status == 304:
            await send({"type": "http.response.body", "body": b""})
            return
        if status == 416:
            await send({"type": "http.response.body", "body": body416})
            return
        reader = _Reader(handle, start, start + length, first, self.chunk_size)
        try:
            if self.tracker is None:
                await self._stream(reader, start, length, send)
                return
            await self._watched(reader, start, length, size, scope, receive, send)
        except StoreUnavailable as err:
            log.warning("blob %s: %s; response cut short at byte %d", self.sha256[:12], err,
                        reader.given)
            if self.tracker is not None:
                await self.tracker.sent(start, reader.given, size)
        finally:
            await reader.settle()

    async def _stream(self, reader: _Reader, start: int, length: int, send: Send) -> None:
        offset, remaining = start, length
        while remaining > 0:
            chunk = await reader.next(min(self.chunk_size, remaining))
            if not chunk:
                break  # file shrank: impossible for blobs, but never loop forever
            offset += len(chunk)
            remaining -= len(chunk)
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": remaining > 0})
        if remaining > 0:
            await send({"type": "http.response.body", "body": b""})

    async def _watched(self, reader: _Reader, start: int, length: int, size: int,
                       scope: Scope, receive: Receive, send: Send) -> None:
        """:meth:`_stream` while listening for the client going away, telling the tracker
        what was handed over (a chunk sent after the client left is not counted).

        A complete body is reported *before* its last chunk goes out (a client that has the
        whole image may ask again at once, and must find it recorded); when TCP then says it
        never arrived, the tracker hears that too.
        """
        tracker = self.tracker
        assert tracker is not None
        gone = asyncio.Event()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        listener = asyncio.ensure_future(listen())
        offset, remaining = start, length
        try:
            while remaining > 0:
                chunk = await reader.next(min(self.chunk_size, remaining))
                if not chunk:
                    break
                conn = connection(scope)
                if gone.is_set() or (conn is not None and conn.lost):
                    break
                if len(chunk) >= remaining:  # the last chunk: completing the response ends
                    listener.cancel()        # the request, which is no disconnect
                    end = offset + len(chunk)
                    await tracker.sent(start, end, size)
                    await send({"type": "http.response.body", "body": chunk})
                    delivered, unacked = await wait_delivered(scope, DELIVERY_TIMEOUT_S)
                    await tracker.settled(start, end, size, delivered, unacked)
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await asyncio.sleep(0)  # let a disconnect be noticed
                if gone.is_set():
                    break
                offset += len(chunk)
                remaining -= len(chunk)
            if not gone.is_set():
                await send({"type": "http.response.body", "body": b""})
        finally:
            listener.cancel()
        await tracker.sent(start, offset, size)


async def _read(handle: BlobHandle, offset: int, length: int, end: int) -> bytes:
    """``handle.read`` in a thread when it waits on the network, else in the event loop."""
    if handle.blocking:
        return await run_in_threadpool(handle.read, offset, length, end)
    return handle.read(offset, length, end)


class _Reader:
    """Sequential reads of ``start..end`` from a handle, the first chunk read already.

    From a remote store, the next ``handle.read_size`` bytes are read (in a thread) while
    the current ones are being sent, so the store's latency and the TLS send overlap.
    """

    def __init__(self, handle: BlobHandle, start: int, end: int, first: bytes,
                 chunk_size: int) -> None:
        self.handle, self.end, self.first, self.chunk_size = handle, end, first, chunk_size
        self.offset = start + len(first)  # the next byte to read
        self.given = start  # every byte before this was handed to the caller
        self._ahead: asyncio.Future[bytes] | None = None
        self._prefetch()

    def _prefetch(self) -> None:
        if self.handle.blocking and self._ahead is None and self.offset < self.end:
            length = min(max(self.chunk_size, self.handle.read_size), self.end - self.offset)
            self._ahead = asyncio.ensure_future(_read(self.handle, self.offset, length,
                                                      self.end))

    async def next(self, length: int) -> bytes:
        if not self.first:
            if self._ahead is not None:
                ahead, self._ahead = self._ahead, None
                self.first = await ahead
            else:
                self.first = await _read(self.handle, self.offset, length, self.end)
            self.offset += len(self.first)
        chunk, self.first = self.first[:length], self.first[length:]
        self.given += len(chunk)
        self._prefetch()
        return chunk

    async def settle(self) -> None:
        """Wait for a read still running (before the handle closes under it)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            with contextlib.suppress(Exception):
                await ahead


async def _unavailable(err: StoreUnavailable, send: Send) -> None:
    body = json.dumps(problem_body(503, str(err), err.reason), separators=(",", ":")).encode()
    headers = {"content-type": PROBLEM_MEDIA_TYPE, "content-length": str(len(body)),
               "retry-after": str(err.retry_after_s), "cache-control": "no-store"}
    await send({"type": "http.response.start", "status": 503, "headers": _headers(headers)})
    await send({"type": "http.response.body", "body": body})


class DownloadTracker(Protocol):
    """What a :class:`FirmwareResponse` tells about the body it streams."""

    async def sent(self, start: int, end: int, size: int) -> None:
        """Bytes ``start..end`` (end exclusive) of a ``size``-byte image were handed over."""

    async def settled(self, start: int, end: int, size: int, delivered: bool | None,
                      unacked: int) -> None:
        """After a complete body: whether TCP acknowledged it (None: cannot tell), and how
        many bytes were still unacknowledged when it gave up."""
