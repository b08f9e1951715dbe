"""ASGI fast paths for the two requests a fleet sends most: check-ins and firmware downloads.

They answer well-formed, authorised requests before FastAPI's routing, dependency and
middleware machinery (which costs more per request than the check-in itself, and a few
microseconds per 64 KiB chunk of a download), using the same functions as the documented
routes (:mod:`checkin`, :class:`FirmwareResponse`). Anything unusual -- bad JSON, unknown
token, wrong fleet, unknown image -- is handed (body replayed) to the FastAPI app, which
produces the canonical answer (problem+json), so both paths behave identically.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from otaforge.errors import OtaforgeError
from otaforge.server import checkin
from otaforge.server.auth import Principal, bearer
from otaforge.server.download import FirmwareResponse
from otaforge.server.schemas import CheckIn
from otaforge.server.store import Store

CHECK_IN_PATH = re.compile(r"^/api/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/check-in$")
FIRMWARE_PATH = re.compile(r"^/firmware/([0-9a-f]{64})\.bin$")
MAX_BODY = 4096
PRINCIPAL = "otaforge.principal"  # scope["extensions"] key of the authenticated caller
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class FastPaths:
    """Serve check-ins and firmware downloads directly; fall back to ``app`` otherwise."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: App) -> None:
        method, path = scope["method"], scope["path"]
        if method == "POST" and (match := CHECK_IN_PATH.match(path)):
            await self._check_in(scope, receive, send, app, match.group(1))
        elif method in ("GET", "HEAD") and (match := FIRMWARE_PATH.match(path)):
            response = self._firmware(scope, match.group(1))
            await (response or app)(scope, receive, send)
        else:
            await app(scope, receive, send)

    def _who(self, scope: Scope) -> Principal:
        known: Principal | None = scope.get("extensions", {}).get(PRINCIPAL)
        if known is not None:  # authenticated by ServerApp already
            return known
        for key, value in scope["headers"]:
            if key == b"authorization":
                return self.store.authenticate(bearer(value.decode("latin-1")))
        return self.store.authenticate(bearer(None))

    def _firmware(self, scope: Scope, sha256: str) -> FirmwareResponse | None:
        if self.store.settings.blob_redirect_s:
            return None  # the route answers with the redirect
        try:
            who = self._who(scope)
            if who.fleet_id is None or not self.store.may_read(who.fleet_id, sha256):
                return None
        except OtaforgeError:  # (the blob store down, too) the app gives the canonical answer
            return None
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        return FirmwareResponse(self.store.blobs, sha256, headers,
                                head=scope["method"] == "HEAD",
                                chunk_size=self.store.settings.chunk_size)

    async def _check_in(self, scope: Scope, receive: Receive, send: Send, app: App,
                        device_id: str) -> None:
        body, complete = await _read(receive)
        replay = _replayer(body, complete, receive)
        response = await self._answer(scope, device_id, body) if complete else None
        await (response or app)(scope, replay, send)

    async def _answer(self, scope: Scope, device_id: str, body: bytes) -> Response | None:
        try:
            who = self._who(scope)
            parsed = CheckIn.model_validate_json(body)
            fleet_id, channel = checkin.admit(self.store, who, device_id, parsed)
        except (OtaforgeError, ValidationError, ValueError):
            return None  # the full app answers with the canonical error
        hint, manifest = await checkin.answer(self.store, device_id, fleet_id, channel, parsed,
                                              lambda: str(Request(scope).base_url))
        if manifest is None:
            return Response(status_code=204, headers={checkin.NEXT_CHECK_IN: str(hint)})
        return Response(manifest.model_dump_json(), media_type="application/json",
                        headers={checkin.NEXT_CHECK_IN: str(hint)})


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """Up to MAX_BODY bytes of the body; (bytes, True) when that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY:
            return b"".join(chunks), False


def _replayer(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive() that first hands back what was already read."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay
