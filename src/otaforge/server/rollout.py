"""Rollout controls of a channel, in SQL: the concurrent-update limit, the failure threshold
that pauses a rollout, and aborting one device's deployment.

The functions take the caller's session so they run inside its transaction. Both start with
a write to the channel row, which locks it on PostgreSQL and takes SQLite's single write lock
(a ``SELECT ... FOR UPDATE`` would be a no-op there), so two check-ins cannot both take the
last free slot and two failure reports cannot lose a count.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from otaforge.protocol.reports import FAILURE_STATES
from otaforge.server import service
from otaforge.server.models import Channel, Deployment, Device


def in_flight(s: Session, target: service.Target, stale_after_s: int,
              now: dt.datetime) -> int:
    """Devices of the target's channel mid-update to its release (locks the channel row).

    Deployments without a report for ``stale_after_s`` seconds do not count.
    """
    _lock(s, target.channel_id)
    since = now - dt.timedelta(seconds=stale_after_s)
    busy = s.scalar(
        select(func.count(func.distinct(Deployment.device_id)))
        .join(Device, Device.id == Deployment.device_id)
        .join(Channel, (Channel.fleet_id == Device.fleet_id) & (Channel.name == Device.channel))
        .where(Channel.id == target.channel_id,
               Deployment.release_id == target.release_id,
               Deployment.state.not_in(service.ENDED_STATES),
               Deployment.updated_at > since))
    return int(busy or 0)


def count_failure(s: Session, device_id: str, release_id: int) -> bool:
    """Count a failed or rolled-back deployment against the device's channel.

    Only while the channel still points at ``release_id``. Returns True when this failure
    paused the rollout (failures exceed the channel's threshold).
    """
    chan_id = s.scalar(
        select(Channel.id)
        .join(Device, (Device.fleet_id == Channel.fleet_id) & (Device.channel == Channel.name))
        .where(Device.id == device_id, Channel.release_id == release_id))
    if chan_id is None:
        return False
    s.execute(update(Channel).where(Channel.id == chan_id)
              .values(failure_count=Channel.failure_count + 1))
    chan = s.scalars(select(Channel).where(Channel.id == chan_id)
                     .execution_options(populate_existing=True)).one()
    if chan.paused or not service.must_pause(chan.failure_count, chan.failure_threshold):
        return False
    chan.paused = True
    chan.paused_reason = (f"{chan.failure_count} deployments failed or rolled back "
                          f"(threshold {chan.failure_threshold}); resume when fixed")
    return True


def _lock(s: Session, channel_id: int) -> None:
    """Lock a channel row for the rest of the transaction (a write that changes nothing)."""
    s.execute(update(Channel).where(Channel.id == channel_id)
              .values(max_in_flight=Channel.max_in_flight))


def failures(s: Session, device_id: str, release_id: int) -> int:
    """Failed or rolled-back attempts of the release on the device since its penalty box
    was last cleared."""
    cleared = s.scalar(select(Device.penalty_cleared_at).where(Device.id == device_id))
    query = select(func.count(Deployment.id)).where(
        Deployment.device_id == device_id, Deployment.release_id == release_id,
        Deployment.state.in_(FAILURE_STATES))
    if cleared is not None:
        query = query.where(Deployment.updated_at > cleared)
    return int(s.scalar(query) or 0)
