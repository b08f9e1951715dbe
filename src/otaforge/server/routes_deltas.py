"""Delta patches over HTTP: the download (Range as for images) and the bytes saved."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from otaforge.errors import NotFound
from otaforge.server.auth import Principal
from otaforge.server.blobs import is_sha256
from otaforge.server.deps import caller, get_store, management
from otaforge.server.download import FirmwareResponse, blob_exists
from otaforge.server.routes_admin import FleetName
from otaforge.server.routes_device import (
    FIRMWARE_ROUTE,
    PROBLEMS,
    IfNoneMatchHeader,
    IfRangeHeader,
    RangeHeader,
)
from otaforge.server.store import Store

router = APIRouter()


@router.head("/deltas/{sha256}.bin", operation_id="delta_head", **FIRMWARE_ROUTE)
@router.get("/deltas/{sha256}.bin", operation_id="delta_get", **FIRMWARE_ROUTE)
async def delta_patch(sha256: str, request: Request, who: Principal = Depends(caller),
                      store: Store = Depends(get_store), range_: RangeHeader = None,
                      if_range: IfRangeHeader = None,
                      if_none_match: IfNoneMatchHeader = None) -> FirmwareResponse:
    """Download an esp_delta_ota patch by SHA-256 (Range, If-Range; ETag = sha256)."""
    sha256 = sha256.lower()
    fleet = None if who.is_manager else who.fleet_id
    if not is_sha256(sha256) or not await blob_exists(store.blobs, sha256) or (
            fleet is None and not who.is_manager) or \
            not await run_in_threadpool(store.deltas.may_read, fleet, sha256):
        raise NotFound(f"no delta patch {sha256[:64]!r} for this token's fleet")
    return FirmwareResponse(store.blobs, sha256, request.headers,
                            head=request.method == "HEAD",
                            chunk_size=store.settings.chunk_size)


@router.get("/api/v1/fleets/{fleet}/deltas", dependencies=[Depends(management)], responses=PROBLEMS,
            tags=["admin"])
async def fleet_deltas(fleet: FleetName, store: Store = Depends(get_store)) -> dict[str, Any]:
    """Patches of a fleet (state, size, ratio) and the bytes deltas saved: in total, per
    release and per device (NervesHub's ``saved_bytes``)."""
    def view() -> dict[str, Any]:
        with store.sessions() as s:
            fleet_id = store.fleet(s, fleet).id
        return store.deltas.saved_bytes(fleet_id)

    return await run_in_threadpool(view)
