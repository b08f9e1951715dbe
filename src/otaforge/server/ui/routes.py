"""The dashboard's pages and forms, server-rendered with Jinja2 (autoescaped).

Server-rendered because every view is a query plus a table: no build step, no JavaScript
framework, nothing fetched from a CDN (``static/`` holds the one stylesheet and one small
script, which polls the page's ``#live`` part every few seconds for live updates). Pages need
a session (:mod:`.auth`); forms need its CSRF token and the role the action needs, the same
roles as the API (viewer reads, operator publishes, pauses/resumes/aborts rollouts, admin
manages users and retires devices).
"""

from __future__ import annotations

import datetime as dt
import re
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from otaforge.errors import InputError, NotFound, OtaforgeError, ServerError
from otaforge.server import retire
from otaforge.server.schemas import NAME
from otaforge.server.ui import auth, queries
from otaforge.server.users import SessionInfo, new_password

HERE = resources.files("otaforge.server.ui")
ENV = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                  autoescape=select_autoescape(("html",)), trim_blocks=True,
                  lstrip_blocks=True)
HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; "
           "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
           "x-frame-options": "DENY", "x-content-type-options": "nosniff",
           "referrer-policy": "same-origin", "cache-control": "no-store"}


def _ago(when: dt.datetime | None) -> str:
    if when is None:
        return "never"
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    s = int((dt.datetime.now(dt.UTC) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{max(s, 0)} s ago"


ENV.filters["ago"] = _ago
ENV.filters["size"] = lambda n: f"{n / 1024:,.0f} KiB" if n is not None else "-"


def render(request: Request, name: str, info: SessionInfo | None, status: int = 200,
           **ctx: Any) -> HTMLResponse:
    partial = request.headers.get("x-partial") == "1"
    html = ENV.get_template(name).render(
        partial=partial, user=info.principal if info else None,
        csrf=info.csrf if info else "", path=request.url.path, **ctx)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _error(request: Request, info: SessionInfo | None, err: OtaforgeError) -> HTMLResponse:
    from otaforge.server.app import status_of

    return render(request, "error.html", info, status=status_of(err), message=str(err))


def _back(request: Request, fallback: str) -> RedirectResponse:
    ref = request.headers.get("referer", "")
    target = fallback
    if ref.startswith(str(request.base_url).rstrip("/") + "/ui"):
        target = ref[len(str(request.base_url).rstrip("/")):]
    return RedirectResponse(target, status_code=303)


async def _form(request: Request, info: SessionInfo, role: str) -> dict[str, Any]:
    form = await request.form()
    auth.check_csrf(info, form.get("csrf"))
    auth.require(info, role)
    return dict(form)


def install(app: FastAPI) -> None:
    """Mount ``/ui/static`` and every dashboard route."""
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.exception_handler(auth.LoginRequired)
    async def _login_first(request: Request, _err: Exception) -> Response:
        if request.method != "GET":
            return render(request, "error.html", None, status=401,
                          message="your session ended: log in again")
        query = urlencode({"next": request.url.path})
        return RedirectResponse(f"/ui/login?{query}", status_code=303)

    _pages(app)
    _actions(app)


def _pages(app: FastAPI) -> None:
    get = app.get

    @get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @get("/ui/login", include_in_schema=False)
    async def login_form(request: Request) -> HTMLResponse:
        token = auth.login_csrf(request)
        page = render(request, "login.html", None, login_csrf=token,
                      next=request.query_params.get("next", "/ui/"), failed=False)
        auth.set_login_csrf(page, token, _secure(request))
        return page

    @get("/ui/", include_in_schema=False)
    async def overview(request: Request, fleet: str | None = None) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)

        def read() -> queries.Overview:
            store.flush()
            with store.sessions() as s:
                fid = store.fleet(s, fleet).id if fleet else None
                st = store.settings
                return queries.overview(s, store.clock.now(), 2 * st.check_in_interval_s,
                                        st.stale_deployment_s, fid)
        try:
            data = await run_in_threadpool(read)
        except NotFound as err:
            return _error(request, info, err)
        top = max((n for _, n in data.versions), default=1)
        return render(request, "overview.html", info, o=data, fleet=fleet, top=top)

    @get("/ui/devices", include_in_schema=False)
    async def devices(request: Request) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)
        q = request.query_params
        try:
            page = max(1, int(q.get("page", "1")))
        except ValueError:
            page = 1
        flt = queries.DeviceFilter(**{k: q.get(k) or None for k in
                                      ("fleet", "state", "version", "q", "tag")}, page=page)

        def read() -> tuple[list[dict[str, Any]], int, list[str]]:
            store.flush()
            with store.sessions() as s:
                rows, total = queries.device_page(s, flt, store.clock.now(),
                                                  store.settings.stale_deployment_s)
                return rows, total, [f.name for f in store.fleets()]
        rows, total, fleets = await run_in_threadpool(read)
        pages = max(1, -(-total // queries.PAGE))
        args = {k: v for k, v in q.items() if k != "page" and v}
        return render(request, "devices.html", info, rows=rows, total=total, flt=flt,
                      pages=pages, fleets=fleets, args=urlencode(args))

    @get("/ui/devices/{device_id}", include_in_schema=False)
    async def device(request: Request, device_id: str) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)

        def read() -> dict[str, Any]:
            dev, fleet, _, _ = store.device_detail(device_id, limit=1)
            with store.sessions() as s:
                return {"d": dev, "fleet": fleet, "deps": queries.device_deployments(s, dev.id),
                        "events": queries.device_events(s, dev.id),
                        "revoked": (dev.token_hash or "").startswith("revoked:")}
        try:
            data = await run_in_threadpool(read)
        except NotFound as err:
            return _error(request, info, err)
        return render(request, "device.html", info, **data)

    @get("/ui/releases", include_in_schema=False)
    async def releases(request: Request, fleet: str | None = None) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)

        def read() -> list[tuple[Any, list[dict[str, Any]]]]:
            with store.sessions() as s:
                chosen = [f for f in store.fleets() if fleet in (None, f.name)]
                return [(f, queries.releases(s, f, store.clock.now(),
                                             store.settings.stale_deployment_s))
                        for f in chosen]
        return render(request, "releases.html", info, fleets=await run_in_threadpool(read),
                      fleet=fleet)

    @get("/ui/rollouts", include_in_schema=False)
    async def rollouts(request: Request) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)

        def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            store.flush()
            with store.sessions() as s:
                now = store.clock.now()
                return (queries.channels(s, now, store.settings.stale_deployment_s),
                        queries.rollouts(s, now))
        chans, rolls = await run_in_threadpool(read)
        return render(request, "rollouts.html", info, channels=chans, rollouts=rolls)

    @get("/ui/users", include_in_schema=False)
    async def users(request: Request) -> HTMLResponse:
        info = auth.current(request)
        try:
            auth.require(info, "admin")
        except ServerError as err:
            return _error(request, info, err)
        rows = await run_in_threadpool(auth.store_of(request).users.list)
        return render(request, "users.html", info, rows=rows, created=None, live=False)

    @get("/ui/audit", include_in_schema=False)
    async def audit(request: Request) -> HTMLResponse:
        info = auth.current(request)
        store = auth.store_of(request)
        q = request.query_params
        before = int(q["before"]) if q.get("before", "").isdigit() else None
        rows = await run_in_threadpool(store.audit.entries, 50, before,
                                       q.get("actor") or None, q.get("action") or None)
        return render(request, "audit.html", info, rows=rows,
                      actor=q.get("actor") or "", action=q.get("action") or "")


def _secure(request: Request) -> bool:
    return bool(auth.store_of(request).settings.cookie_secure)


def _actions(app: FastAPI) -> None:
    post = app.post

    @post("/ui/login", include_in_schema=False, name="ui_login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        nxt = str(form.get("next", "/ui/"))
        nxt = nxt if nxt.startswith("/ui/") and "//" not in nxt else "/ui/"
        try:
            cookie, _ = await run_in_threadpool(auth.login, request, name, password,
                                                str(form.get("csrf", "")))
        except ServerError as err:
            token = auth.login_csrf(request)
            page = render(request, "login.html", None, status=err.status_code,
                          login_csrf=token, next=nxt, failed=True, message=str(err))
            auth.set_login_csrf(page, token, _secure(request))
            return page
        out = RedirectResponse(nxt, status_code=303)
        auth.set_session(out, cookie, _secure(request),
                         auth.store_of(request).settings.session_ttl_s)
        return out

    @post("/ui/logout", include_in_schema=False, name="ui_logout")
    async def logout(request: Request) -> Response:
        info = auth.current(request)
        await _form(request, info, "viewer")
        await run_in_threadpool(auth.store_of(request).users.logout,
                                request.cookies.get(auth.COOKIE, ""))
        out = RedirectResponse("/ui/login", status_code=303)
        auth.clear_session(out, _secure(request))
        return out

    @post("/ui/channels/{fleet}/{channel}/{verb}", include_in_schema=False,
          name="ui_channel_control")
    async def channel_control(request: Request, fleet: str, channel: str,
                              verb: str) -> Response:
        info = auth.current(request)
        store = auth.store_of(request)
        try:
            await _form(request, info, "operator")
            if verb == "pause":
                await run_in_threadpool(store.pause, fleet, channel,
                                        f"paused by {info.principal.user} (dashboard)")
            elif verb == "resume":
                await run_in_threadpool(store.resume, fleet, channel)
            else:
                raise NotFound(f"no channel action {verb!r}")
        except OtaforgeError as err:
            return _error(request, info, err)
        return _back(request, "/ui/rollouts")

    @post("/ui/rollouts/{rollout_id}/{verb}", include_in_schema=False,
          name="ui_rollout_control")
    async def rollout_control(request: Request, rollout_id: int, verb: str) -> Response:
        info = auth.current(request)
        service = auth.store_of(request).rollouts
        try:
            await _form(request, info, "operator")
            if verb == "pause":
                await run_in_threadpool(service.pause, rollout_id, f"paused by "
                                        f"{info.principal.user} (dashboard)")
            elif verb == "resume":
                await run_in_threadpool(service.resume, rollout_id)
            elif verb == "abort":
                await run_in_threadpool(service.abort, rollout_id, f"aborted by "
                                        f"{info.principal.user} (dashboard)")
            else:
                raise NotFound(f"no rollout action {verb!r}")
        except OtaforgeError as err:
            return _error(request, info, err)
        return _back(request, "/ui/rollouts")

    @post("/ui/devices/{device_id}/revoke", include_in_schema=False, name="ui_device_revoke")
    async def device_revoke(request: Request, device_id: str) -> Response:
        info = auth.current(request)
        store = auth.store_of(request)
        try:
            await _form(request, info, "operator")
            await run_in_threadpool(retire.revoke_device_token, store, device_id)
        except OtaforgeError as err:
            return _error(request, info, err)
        return RedirectResponse(f"/ui/devices/{device_id}", status_code=303)

    @post("/ui/users", include_in_schema=False, name="ui_user_add")
    async def user_add(request: Request) -> Response:
        info = auth.current(request)
        users = auth.store_of(request).users
        try:
            form = await _form(request, info, "admin")
            name, role = str(form.get("name", "")), str(form.get("role", ""))
            if not re.fullmatch(NAME, name):
                raise InputError(f"user name {name!r}: letters, digits, . _ - (1-64)")
            password = new_password()
            await run_in_threadpool(users.add, name, role, password)
        except OtaforgeError as err:
            return _error(request, info, err)
        rows = await run_in_threadpool(users.list)
        return render(request, "users.html", info, status=201, rows=rows,
                      created=(name, role, password), live=False)

    @post("/ui/users/{name}/revoke", include_in_schema=False, name="ui_user_revoke")
    async def user_revoke(request: Request, name: str) -> Response:
        info = auth.current(request)
        try:
            await _form(request, info, "admin")
            await run_in_threadpool(auth.store_of(request).users.revoke, name)
        except OtaforgeError as err:
            return _error(request, info, err)
        return RedirectResponse("/ui/users", status_code=303)

    @post("/ui/devices/{device_id}/retire", include_in_schema=False, name="ui_device_retire")
    async def device_retire(request: Request, device_id: str) -> Response:
        info = auth.current(request)
        try:
            await _form(request, info, "admin")
            await run_in_threadpool(retire.retire_device, auth.store_of(request), device_id)
        except OtaforgeError as err:
            return _error(request, info, err)
        return RedirectResponse(f"/ui/devices/{device_id}", status_code=303)

    @post("/ui/releases/publish", include_in_schema=False, name="ui_publish")
    async def publish(request: Request) -> Response:
        info = auth.current(request)
        store = auth.store_of(request)
        limit = store.settings.max_upload_bytes
        try:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit + 65536:
                raise ServerError(f"image exceeds the upload limit of {limit} bytes",
                                  status_code=413)
            form = await _form(request, info, "operator")
            upload = form.get("image")
            if upload is None or not hasattr(upload, "read"):
                raise InputError("choose an image file to publish")
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise ServerError(f"image exceeds the upload limit of {limit} bytes",
                                  status_code=413)
            fleet = str(form.get("fleet", ""))
            channel = str(form.get("channel") or "") or None
            await run_in_threadpool(store.publish, fleet, data, channel, False)
        except OtaforgeError as err:
            return _error(request, info, err)
        return RedirectResponse(f"/ui/releases?{urlencode({'fleet': fleet})}",
                                status_code=303)
