"""An ASGI fast path for device check-ins, the one request every device sends every few minutes.

It answers well-formed, authorised check-ins without FastAPI's routing and dependency
machinery, using the same :mod:`checkin` functions as the documented route. Anything unusual
(bad JSON, unknown token, wrong fleet, ...) is handed, body replayed, to the FastAPI app, which
produces the canonical answer (problem+json), so both paths behave identically.
"""

from __future__ import annotations

import re

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from otaforge.errors import OtaforgeError
from otaforge.server import checkin
from otaforge.server.auth import bearer
from otaforge.server.schemas import CheckIn
from otaforge.server.store import Store

CHECK_IN_PATH = re.compile(r"^/api/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/check-in$")
MAX_BODY = 4096


class CheckInFastPath:
    """Pure ASGI middleware serving ``POST /api/v1/devices/{id}/check-in``."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (CHECK_IN_PATH.match(scope["path"]) if scope["type"] == "http"
                 and scope["method"] == "POST" else None)
        if match is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read(receive)
        replay = _replayer(body, complete, receive)
        response = await self._answer(scope, match.group(1), body) if complete else None
        if response is None:
            await self.app(scope, replay, send)
        else:
            await response(scope, replay, send)

    async def _answer(self, scope: Scope, device_id: str, body: bytes) -> Response | None:
        headers = dict(scope["headers"])
        try:
            token = bearer(headers.get(b"authorization", b"").decode("latin-1"))
            parsed = CheckIn.model_validate_json(body)
            who = self.store.authenticate(token)
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
