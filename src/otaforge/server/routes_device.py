"""The device API: check-in, reports, firmware download, and the stock-ESP-IDF image URL."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from otaforge.errors import NotFound
from otaforge.protocol.problem import PROBLEM_MEDIA_TYPE
from otaforge.protocol.reports import ReportState, recorded_reason
from otaforge.server import checkin, stock
from otaforge.server.auth import Principal, forbidden
from otaforge.server.blobs import is_sha256
from otaforge.server.checkin import NEXT_CHECK_IN
from otaforge.server.deps import device_caller, get_store
from otaforge.server.download import FirmwareResponse, blob_exists
from otaforge.server.schemas import (
    NAME,
    CheckIn,
    Manifest,
    Problem,
    Report,
    ReportAck,
)
from otaforge.server.store import Store

router = APIRouter()
DeviceId = Annotated[str, Path(pattern=NAME, description="device id")]
PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for code in (400, 401, 403, 404, 409, 422, 429, 503)
}


HINT_HEADER = {NEXT_CHECK_IN: {"description": "seconds until the next check-in (with jitter)",
                              "schema": {"type": "integer"}}}


@router.post("/api/v1/devices/{device_id}/check-in", response_model=Manifest,
             responses={200: {"headers": HINT_HEADER},
                        204: {"description": "no update", "headers": HINT_HEADER},
                        **PROBLEMS},
             tags=["device"])
async def check_in(device_id: DeviceId, body: CheckIn, request: Request, response: Response,
                   who: Principal = Depends(device_caller),
                   store: Store = Depends(get_store)) -> Response | Manifest:
    """Report the running firmware; 200 with a manifest when an update is due, else 204.

    The response carries an ``X-Next-Check-In-S`` header (also ``next_check_in_s`` in the
    manifest): the server's poll-interval hint, with jitter.
    """
    fleet_id, channel = checkin.admit(store, who, device_id, body)
    hint, manifest = await checkin.answer(store, device_id, fleet_id, channel, body,
                                          lambda: str(request.base_url))
    if manifest is None:
        return Response(status_code=204, headers={NEXT_CHECK_IN: str(hint)})
    response.headers[NEXT_CHECK_IN] = str(hint)
    return manifest


@router.post("/api/v1/devices/{device_id}/events", response_model=ReportAck, status_code=201,
             responses={200: {"model": ReportAck, "description": "already recorded"},
                        **PROBLEMS},
             tags=["device"])
async def report(device_id: DeviceId, body: Report, response: Response,
                 who: Principal = Depends(device_caller),
                 store: Store = Depends(get_store)) -> ReportAck:
    """Record a progress or outcome report; replaying an event id changes nothing (200)."""
    store.authorize_device(who, device_id)
    event, duplicate = await run_in_threadpool(
        store.report, device_id, body.event_id, body.deployment_id, str(body.state),
        recorded_reason(body.code, body.reason), body.bytes)
    if duplicate:
        response.status_code = 200
    elif body.method is not None and body.state == ReportState.DOWNLOADED:
        await run_in_threadpool(store.deltas.record_use, device_id, body.deployment_id,
                                body.method, body.bytes)
    return ReportAck(event_id=event.event_id, deployment_id=event.deployment_id,
                     state=event.state, duplicate=duplicate)


def _firmware_allowed(store: Store, who: Principal, sha256: str) -> bool:
    return who.fleet_id is not None and store.may_read(who.fleet_id, sha256)


_ETAG = {"ETag": {"description": 'the image\'s SHA-256 in quotes ("<sha256>")',
                  "schema": {"type": "string"}}}
_CONTENT_RANGE = {"Content-Range": {"description": "bytes <start>-<end>/<size> (206) or "
                                    "bytes */<size> (416)", "schema": {"type": "string"}}}
FIRMWARE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the image",
          "headers": _ETAG},
    206: {"content": {"application/octet-stream": {}}, "description": "the requested range "
          "(also for bytes=0-, which esp_https_ota sends to probe Range support)",
          "headers": {**_ETAG, **_CONTENT_RANGE}},
    304: {"description": "If-None-Match matched (or the device already runs the image)",
          "headers": _ETAG},
    416: {"description": "the range starts at or past the end of the image",
          "headers": _CONTENT_RANGE}, **PROBLEMS}
RangeHeader = Annotated[str | None, Header(
    alias="range", description="bytes=<start>-[<end>] or bytes=-<suffix>; ends past the image "
    "are clamped; a malformed or multi-part disjoint Range is ignored (200)")]
IfRangeHeader = Annotated[str | None, Header(
    alias="if-range", description='"<sha256>": honour Range only if the image is unchanged')]
IfNoneMatchHeader = Annotated[str | None, Header(
    alias="if-none-match", description='"<sha256>" of the image the client has: 304')]
FIRMWARE_ROUTE: dict[str, Any] = {"tags": ["device"], "responses": FIRMWARE_RESPONSES,
                                  "response_class": Response, "response_model": None}


_BY_DIGEST: dict[str, Any] = {**FIRMWARE_ROUTE, "responses": {**FIRMWARE_RESPONSES, 307: {
    "description": "server run --blob-redirect: fetch the image from the object store at "
    "Location (a presigned URL; Range applies there)"}}}


@router.head("/firmware/{sha256}.bin", operation_id="firmware_head", **_BY_DIGEST)
@router.get("/firmware/{sha256}.bin", operation_id="firmware_get", **_BY_DIGEST)
async def firmware(sha256: str, request: Request, who: Principal = Depends(device_caller),
                   store: Store = Depends(get_store), range_: RangeHeader = None,
                   if_range: IfRangeHeader = None,
                   if_none_match: IfNoneMatchHeader = None) -> Response:
    """Download an image by SHA-256 (Range, If-Range, If-None-Match; ETag = sha256).

    The headers are declared for the schema; the response reads them from the request.
    With ``server run --blob-redirect SECONDS`` on an S3 store, the answer is a 307 to a
    presigned URL of the object (valid that long) instead of the image.
    """
    sha256 = sha256.lower()
    if not is_sha256(sha256) or not await blob_exists(store.blobs, sha256) or \
            not await run_in_threadpool(_firmware_allowed, store, who, sha256):
        raise NotFound(f"no firmware {sha256[:64]!r} for this token's fleet")
    redirect = store.settings.blob_redirect_s
    location = store.blobs.presigned_url(sha256, redirect) if redirect else None
    if location is not None:  # only for clients that trust the store's certificate
        return Response(status_code=307, headers={"location": location,
                                                  "cache-control": "no-store"})
    return FirmwareResponse(store.blobs, sha256, request.headers,
                            head=request.method == "HEAD",
                            chunk_size=store.settings.chunk_size)


@router.head("/ota/{fleet}/{device_id}.bin", operation_id="stock_ota_head", **FIRMWARE_ROUTE)
@router.get("/ota/{fleet}/{device_id}.bin", operation_id="stock_ota_get", **FIRMWARE_ROUTE)
async def stock_ota(fleet: Annotated[str, Path(pattern=NAME)], device_id: DeviceId,
                    request: Request,
                    version: Annotated[str | None, Query(max_length=32,
                                       description="the running app's version")] = None,
                    who: Principal = Depends(device_caller),
                    store: Store = Depends(get_store), range_: RangeHeader = None,
                    if_range: IfRangeHeader = None,
                    if_none_match: IfNoneMatchHeader = None) -> Response:
    """The image this device should run, for an unmodified ``esp_https_ota`` client.

    304 Not Modified when the device already runs it (If-None-Match: "<sha256>", ``?version=``,
    or its last check-in/report), when its eFuse secure_version would refuse it, when it
    already downloaded it completely or rolled it back (so a device that never compares
    versions does not loop), and (without an ETag) while the channel's rollout is paused or
    has not reached this device.
    """
    fleet_id, channel = store.authorize_device(who, device_id)
    if store.fleet_by_id(fleet_id)[0] != fleet:
        raise forbidden(f"device {device_id!r} is not in fleet {fleet!r}")
    return await stock.answer(store, device_id, fleet_id, channel, request, version)


@router.head("/dl/{secret}.bin", operation_id="download_url_head", **FIRMWARE_ROUTE)
@router.get("/dl/{secret}.bin", operation_id="download_url_get", **FIRMWARE_ROUTE)
async def download_url(secret: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$",
                                                   description="the device's download secret")],
                       request: Request,
                       version: Annotated[str | None, Query(max_length=32,
                                          description="the running app's version")] = None,
                       store: Store = Depends(get_store), range_: RangeHeader = None,
                       if_range: IfRangeHeader = None,
                       if_none_match: IfNoneMatchHeader = None) -> Response:
    """The same as ``/ota/{fleet}/{device}.bin`` without any header: the secret in the path
    (``otaforge device add`` prints the URL) grants only that device's firmware; rotating or
    revoking it ends the old URL. The path is never written to the access log.
    """
    device_id = store.download_device(secret)
    if device_id is None:
        raise NotFound("no download at this URL (never issued, or rotated)")
    info = store.device_info(device_id)
    if info is None:
        raise NotFound("no download at this URL (never issued, or rotated)")
    return await stock.answer(store, device_id, info[0], info[1], request, version)
