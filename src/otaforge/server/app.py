"""The ASGI application: routes, problem+json errors, load shedding, background flushing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from otaforge import __version__
from otaforge.errors import (
    FormatError,
    InputError,
    NotFound,
    OtaforgeError,
    ServerError,
    StoreUnavailable,
    Unauthorized,
    VerificationError,
)
from otaforge.protocol.problem import PROBLEM_MEDIA_TYPE, problem_body
from otaforge.server import (
    docs,
    routes_admin,
    routes_deltas,
    routes_device,
    routes_ops,
    routes_rollouts,
    ui,
)
from otaforge.server.access_log import redact
from otaforge.server.audit import audited, record_of
from otaforge.server.auth import Principal, bearer
from otaforge.server.clock import Clock
from otaforge.server.db import make_engine, migrate
from otaforge.server.deps import management
from otaforge.server.fastpath import PRINCIPAL, FastPaths
from otaforge.server.guard import UPLOAD_PATH
from otaforge.server.observe import AccessLog, Metrics, route_class
from otaforge.server.settings import Settings
from otaforge.server.store import Store

FLUSH_INTERVAL_S = 1.0
MAX_JSON_BODY = 1024 * 1024  # a fleet's CSV (64 KiB) and keys fit many times over
DOWNLOAD_PATH = re.compile(r"^/dl/([A-Za-z0-9_-]{1,128})\.bin$")
# answered without a token (and not counted against max_in_flight)
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                          "/redoc"})
# the dashboard authenticates with its session cookie (ui.auth); packaged docs assets
PUBLIC_PREFIXES = ("/ui", "/docs/static/")
AUDIT_BODY = 4096  # bytes of a refused answer kept to record its detail
log = logging.getLogger("otaforge.server")


def _snake(name: str) -> str:
    if name == "InputError":
        return "invalid_input"
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return snake.removesuffix("_error")


def problem(status: int, detail: str, reason: str, headers: dict[str, str] | None = None,
            title: str | None = None) -> JSONResponse:
    """An RFC 9457 problem+json response with a machine-readable ``reason``."""
    return JSONResponse(problem_body(status, detail, reason, title), status_code=status,
                        headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def status_of(err: OtaforgeError) -> int:
    """HTTP status for an otaforge error raised while serving a request."""
    if isinstance(err, ServerError):
        return err.status_code
    if isinstance(err, FormatError | InputError | VerificationError):
        return 422
    return 500


async def _otaforge_error(_req: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, OtaforgeError)
    status = status_of(err)
    headers = {"www-authenticate": "Bearer"} if isinstance(err, Unauthorized) else None
    if isinstance(err, StoreUnavailable):
        headers = {"retry-after": str(err.retry_after_s)}
    reason = "not_found" if isinstance(err, NotFound) else _snake(type(err).__name__)
    if type(err) is ServerError:
        reason = {403: "forbidden", 409: "conflict", 413: "too_large",
                  429: "too_many_reports"}.get(status, "refused")
    if isinstance(err, ServerError) and err.reason:
        reason = err.reason
    return problem(status, str(err), reason, headers)


async def _client_gone(request: Request, err: Exception) -> Response:
    """A client that went away mid-request (e.g. during an upload): one log line, no
    traceback; nothing was stored, and the answer goes nowhere."""
    client = request.client.host if request.client else "a client"
    log.warning("%s disconnected during %s %s; request dropped", client, request.method,
             redact(request.url.path))
    return Response(status_code=400)


async def _validation_error(_req: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, RequestValidationError)
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return problem(422, "; ".join(parts) or "invalid request", "invalid_request")


def _allowed_methods(request: Request) -> str:
    """Every method any route serves at this path (starlette lists only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, err: Exception) -> JSONResponse:
    assert isinstance(err, StarletteHTTPException)
    from http import HTTPStatus

    headers = dict(err.headers or {})
    if err.status_code == 405:
        headers["allow"] = _allowed_methods(request)
        headers.pop("Allow", None)
    reason = HTTPStatus(err.status_code).name.lower()
    return problem(err.status_code, str(err.detail), reason, headers)


class ServerApp(FastAPI):
    """FastAPI plus what runs before its middleware stack: authentication of the caller, load
    shedding (503 + Retry-After once ``max_in_flight`` authenticated requests are being
    served) and the device fast paths.

    A request counts against ``max_in_flight`` only once its token (or download secret) is
    known: a request without one is answered 401 (404 for an unknown download URL) at once,
    before any of its body is read, so unauthenticated clients cannot hold the slots real
    devices need. Header and body read times are bounded per connection by
    :mod:`otaforge.server.guard`.
    """

    fast: FastPaths | None = None
    store: Store | None = None
    metrics: Metrics | None = None
    access: AccessLog | None = None
    max_in_flight = 256
    retry_after_s = 5
    in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request, timing it for the metrics and the access log, and recording
        it in the audit log when it is a management action (:mod:`audit`)."""
        if scope["type"] != "http" or self.metrics is None:
            await self._serve(scope, receive, send)
            return
        start = time.perf_counter()
        audit = audited(scope["method"], scope["path"])
        status, sent, kept = 500, 0, bytearray()

        async def watch(message: Message) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                body = message.get("body", b"")
                sent += len(body)
                if audit and status >= 400 and len(kept) < AUDIT_BODY:
                    kept.extend(body[:AUDIT_BODY])
            await send(message)

        try:
            await self._serve(scope, receive, watch)
        finally:
            who: Principal | None = scope.get("extensions", {}).get(PRINCIPAL)
            seconds = time.perf_counter() - start
            self.metrics.observe(route_class(scope["path"]), status, sent, seconds)
            if self.access is not None:
                self.access.line(scope, status, sent, seconds, who.user if who else None)
            if audit:
                await self._audit(scope, who, status, bytes(kept))

    async def _audit(self, scope: Scope, who: Principal | None, status: int,
                     body: bytes) -> None:
        """Record a management action (after its answer went out; never fails the request)."""
        if self.store is None:
            return
        rec = record_of(scope, who if who is not None and who.is_manager else None, status,
                        body)
        with contextlib.suppress(Exception):
            await run_in_threadpool(self.store.audit.append, rec)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await super().__call__(scope, receive, send)
            return
        refusal = self._refuse_unauthenticated(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            response = problem(503, f"server busy ({self.in_flight} requests in flight); "
                               f"retry after {self.retry_after_s} s", "overloaded",
                               {"retry-after": str(self.retry_after_s)})
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            bounded = await _bounded_body(scope, receive, send)
            if bounded is None:
                return
            if self.fast is not None:
                await self.fast(scope, bounded, send, super().__call__)
            else:
                await super().__call__(scope, bounded, send)
        finally:
            self.in_flight -= 1

    def _refuse_unauthenticated(self, scope: Scope) -> JSONResponse | None:
        """The answer to a request with no known token or download secret, else None."""
        if self.store is None:
            return None
        secret = DOWNLOAD_PATH.match(scope["path"])
        if secret is not None:
            if self.store.download_device(secret.group(1)) is not None:
                return None
            return problem(404, "no download at this URL (never issued, or rotated)",
                           "not_found", {"connection": "close"})
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        try:
            who = self.store.authenticate(bearer(header.decode("latin-1") if header else None))
        except Unauthorized as err:
            return problem(401, str(err), "unauthorized",
                           {"www-authenticate": "Bearer", "connection": "close"})
        scope.setdefault("extensions", {})[PRINCIPAL] = who  # the fast paths reuse it
        return None


async def _bounded_body(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """``receive`` for a request whose body fits the JSON limit, or None after answering 413.

    Image uploads have their own (larger) limit; every other body is a small JSON document,
    so a client streaming megabytes at a JSON endpoint is refused instead of buffered.
    """
    if scope["method"] in ("GET", "HEAD") or UPLOAD_PATH.match(scope["path"]):
        return receive
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if declared is not None:
        if declared.isdigit() and (len(declared) > 18 or int(declared) > MAX_JSON_BODY):
            await _too_large(scope, receive, send)
            return None
        return receive  # the HTTP server delivers exactly Content-Length bytes
    chunks: list[bytes] = []
    size = 0
    while True:  # chunked: read it here (it is small) and replay it
        message = await receive()
        if message["type"] != "http.request":
            return receive
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_JSON_BODY:
            await _too_large(scope, receive, send)
            return None
        if not message.get("more_body", False):
            break
    body, sent = b"".join(chunks), False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(413, f"request body exceeds {MAX_JSON_BODY} bytes", "too_large",
                       {"connection": "close"})
    await response(scope, receive, send)


async def _flush_loop(store: Store, access: AccessLog) -> None:
    while True:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        access.flush()
        with contextlib.suppress(Exception):  # a failed flush is retried on the next tick
            await run_in_threadpool(store.flush)


async def _rollout_loop(store: Store) -> None:
    while True:
        await asyncio.sleep(store.settings.rollout_tick_s)
        try:
            await run_in_threadpool(store.rollouts.tick)
        except Exception as err:  # retried on the next tick; the server keeps serving
            log.warning("rollout tick failed: %s", err)


def create_app(settings: Settings, *, migrate_db: bool = True,
               clock: Clock | None = None) -> ServerApp:
    """Build the server app for ``settings`` (runs migrations unless told not to).

    ``clock`` is where the server reads the time (default: the wall clock; a fleet simulator
    passes a :class:`~otaforge.server.clock.ManualClock`).
    """
    engine = make_engine(settings.url)
    if migrate_db:
        migrate(engine)
    store = Store(engine, settings, clock)
    access = AccessLog(settings.access_log)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_flush_loop(store, access))
        ticker = asyncio.create_task(_rollout_loop(store))
        await run_in_threadpool(store.deltas.recover)  # patches queued before a restart
        try:
            yield
        finally:
            store.deltas.shutdown()
            for running in (task, ticker):
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            store.flush()
            access.flush()
            engine.dispose()

    app = ServerApp(title="otaforge update server", version=__version__, lifespan=lifespan,
                    description="Device API (check-in, reports, firmware with Range) and "
                    "management API of an otaforge update server.", docs_url=None,
                    redoc_url=None)
    app.state.store = store
    app.add_exception_handler(OtaforgeError, _otaforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.fast, app.store = FastPaths(store), store
    app.max_in_flight, app.retry_after_s = settings.max_in_flight, settings.retry_after_s
    app.include_router(routes_device.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_deltas.router)
    app.include_router(routes_rollouts.router)
    app.include_router(routes_ops.router)
    app.metrics, app.access = Metrics(store), access
    docs.install(app)
    ui.install(app)

    @app.get("/metrics", tags=["ops"], dependencies=[Depends(management)],
             response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus metrics (viewer role or above): check-ins, downloads and bytes, request
        latency, deployments by state, rollout gate state, bytes saved by deltas."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        assert app.metrics is not None
        text = await run_in_threadpool(generate_latest, app.metrics.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """Liveness: 200 while the server runs."""
        return {"status": "ok"}

    return app
