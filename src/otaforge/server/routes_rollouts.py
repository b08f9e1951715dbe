"""The rollout API (admin token): create, list, show, pause, resume, abort, evaluate; device
targeting (tags, hardware revision) and the penalty box."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from otaforge.server.clock import aware
from otaforge.server.deps import get_store, management
from otaforge.server.models import Device
from otaforge.server.routes_device import PROBLEMS
from otaforge.server.schemas import NAME
from otaforge.server.schemas_rollouts import (
    DecisionOut,
    EvaluateOut,
    RolloutAction,
    RolloutCreate,
    RolloutDetail,
    RolloutSummary,
    TargetingOut,
    TargetingSet,
)
from otaforge.server.store import Store

router = APIRouter(prefix="/api/v1", dependencies=[Depends(management)], responses=PROBLEMS,
                   tags=["rollouts"])
RolloutId = Annotated[int, Path(ge=1, le=2**31 - 1, description="rollout id")]
DeviceId = Annotated[str, Path(pattern=NAME, description="device id")]


@router.post("/fleets/{fleet}/rollouts", response_model=RolloutDetail, status_code=201)
async def create_rollout(fleet: Annotated[str, Path(pattern=NAME)], body: RolloutCreate,
                         store: Store = Depends(get_store)) -> Any:
    """Start rolling a release out to a channel in waves; the first wave opens at once.

    409 when the channel already has a running or paused rollout (abort it first), or
    already points at the release.
    """
    plan = body.plan()
    rollout_id = await run_in_threadpool(store.rollouts.create, fleet, body.channel,
                                         body.release, plan, body.force)
    return await run_in_threadpool(store.rollouts.view, rollout_id)


@router.get("/rollouts", response_model=list[RolloutSummary])
async def list_rollouts(fleet: Annotated[str | None, Query(pattern=NAME)] = None,
                        channel: Annotated[str | None, Query(pattern=NAME)] = None,
                        state: Annotated[str | None, Query(pattern=r"^[a-z]{1,16}$")] = None,
                        store: Store = Depends(get_store)) -> Any:
    """Rollouts, newest first (optionally of one fleet, channel or state)."""
    return await run_in_threadpool(store.rollouts.listing, fleet, channel, state)


@router.get("/rollouts/{rollout_id}", response_model=RolloutDetail)
async def show_rollout(rollout_id: RolloutId, store: Store = Depends(get_store)) -> Any:
    """A rollout: state, plan, each wave's device counts now, its recent decisions."""
    return await run_in_threadpool(store.rollouts.view, rollout_id)


@router.get("/rollouts/{rollout_id}/decisions", response_model=list[DecisionOut])
async def rollout_decisions(rollout_id: RolloutId, store: Store = Depends(get_store)) -> Any:
    """Every decision of the rollout (gates and administrators), oldest first, each with
    the numbers it was based on."""
    return await run_in_threadpool(store.rollouts.decisions, rollout_id)


@router.post("/rollouts/{rollout_id}/pause", response_model=RolloutDetail)
async def pause_rollout(rollout_id: RolloutId, body: RolloutAction | None = None,
                        store: Store = Depends(get_store)) -> Any:
    """Pause: no new offers; devices on the release keep it (``revert``: sent back)."""
    act = body or RolloutAction()
    return await run_in_threadpool(store.rollouts.pause, rollout_id, act.reason, act.revert)


@router.post("/rollouts/{rollout_id}/resume", response_model=RolloutDetail)
async def resume_rollout(rollout_id: RolloutId, store: Store = Depends(get_store)) -> Any:
    """Resume a paused rollout; failures so far stop counting, the rate ramp restarts."""
    return await run_in_threadpool(store.rollouts.resume, rollout_id)


@router.post("/rollouts/{rollout_id}/abort", response_model=RolloutDetail)
async def abort_rollout(rollout_id: RolloutId, body: RolloutAction | None = None,
                        store: Store = Depends(get_store)) -> Any:
    """End the rollout; devices on the release keep it (``revert``: sent back to the
    previous release)."""
    act = body or RolloutAction()
    return await run_in_threadpool(store.rollouts.abort, rollout_id, act.reason, act.revert)


@router.post("/rollouts/{rollout_id}/evaluate", response_model=EvaluateOut)
async def evaluate_rollout(rollout_id: RolloutId, store: Store = Depends(get_store)) -> Any:
    """Evaluate the gates now (they are also evaluated every ``eval_interval_s``)."""
    decision = await run_in_threadpool(store.rollouts.evaluate, rollout_id, True)
    if decision is None:
        return EvaluateOut(evaluated=False, action=None, reason=None, data=None)
    return EvaluateOut(evaluated=True, action=decision.action.value, reason=decision.reason,
                       data=decision.numbers)


def targeting_out(device: Device) -> TargetingOut:
    return TargetingOut(device_id=device.id, tags=list(device.tags or ()),
                        hw_revision=device.hw_revision,
                        penalty_cleared_at=aware(device.penalty_cleared_at)
                        if device.penalty_cleared_at else None)


@router.put("/devices/{device_id}/targeting", response_model=TargetingOut)
async def set_targeting(device_id: DeviceId, body: TargetingSet,
                        store: Store = Depends(get_store)) -> TargetingOut:
    """Set a device's rollout tags and hardware revision (a field left out is kept)."""
    device = await run_in_threadpool(store.rollouts.set_targeting, device_id, body.tags,
                                     body.hw_revision, "hw_revision" in body.model_fields_set)
    return targeting_out(device)


@router.delete("/devices/{device_id}/penalty", response_model=TargetingOut)
async def clear_penalty(device_id: DeviceId, store: Store = Depends(get_store)) -> TargetingOut:
    """Clear the device's penalty box: releases that failed on it are offered again."""
    return targeting_out(await run_in_threadpool(store.rollouts.clear_penalty, device_id))
