"""Metrics (Prometheus) and structured access logs for every request.

Per request the hot path pays for two ``perf_counter`` calls, one pre-bound histogram
observation, a counter increment and (unless turned off) one formatted JSON line, written in
batches; everything that
needs the database -- deployments by state, rollout gate state, device counts, bytes saved
by deltas -- is computed when ``/metrics`` is scraped (:class:`FleetCollector`), never
per request. Each app has its own registry (several apps live in one test process).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from otaforge.server.access_log import redact
from otaforge.server.models import Channel, Deployment, Device, Fleet, Rollout, UpdateStat

if TYPE_CHECKING:
    from otaforge.server.store import Store

_CHECK_IN = re.compile(r"^/api/v1/devices/[^/]+/check-in$")
_REPORT = re.compile(r"^/api/v1/devices/[^/]+/events$")
_DOWNLOAD = re.compile(r"^/(firmware|ota|dl|deltas)/")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)
ROUTE_CLASSES = ("check_in", "report", "download", "management", "ui", "other")


def route_class(path: str) -> str:
    """The latency histogram's ``route`` label (a handful of values: bounded cardinality)."""
    if _CHECK_IN.match(path):
        return "check_in"
    if _DOWNLOAD.match(path):
        return "download"
    if _REPORT.match(path):
        return "report"
    if path.startswith("/api/"):
        return "management"
    if path.startswith("/ui"):
        return "ui"
    return "other"


class Metrics:
    """The app's Prometheus registry and its per-request instruments."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("otaforge_request_duration_seconds",
                                 "Time to answer a request, by route class",
                                 ["route"], buckets=BUCKETS, registry=self.registry)
        self.requests = Counter("otaforge_requests", "Requests answered, by route class and "
                                "status class", ["route", "status"], registry=self.registry)
        self.check_ins = Counter("otaforge_check_ins", "Device check-ins by answer "
                                 "(offer: 200 manifest, none: 204, refused: 4xx/5xx)",
                                 ["result"], registry=self.registry)
        self.downloads = Counter("otaforge_downloads", "Firmware and delta downloads answered",
                                 ["status"], registry=self.registry)
        self.download_bytes = Counter("otaforge_download_bytes", "Body bytes of firmware and "
                                      "delta downloads sent", registry=self.registry)
        self._latency = {r: self.latency.labels(r) for r in ROUTE_CLASSES}
        self._offer, self._none = self.check_ins.labels("offer"), self.check_ins.labels("none")
        self._refused = self.check_ins.labels("refused")
        self._counted: dict[tuple[str, int], Any] = {}
        self.registry.register(FleetCollector(store))

    def observe(self, route: str, status: int, sent: int, seconds: float) -> None:
        self._latency[route].observe(seconds)
        key = (route, status // 100)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(route, f"{key[1]}xx")
        counter.inc()
        if route == "check_in":
            (self._offer if status == 200 else self._none if status == 204
             else self._refused).inc()
        elif route == "download":
            self.downloads.labels(str(status)).inc()
            self.download_bytes.inc(sent)


class FleetCollector(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        deps = GaugeMetricFamily("otaforge_deployments", "Deployments by state",
                                 labels=["state"])
        devices = GaugeMetricFamily("otaforge_devices", "Registered devices by fleet",
                                    labels=["fleet"])
        gates = GaugeMetricFamily("otaforge_rollout_paused", "1 when a channel's staged "
                                  "rollout or a rollout is paused (gate closed), else 0",
                                  labels=["fleet", "channel", "kind", "state"])
        waves = GaugeMetricFamily("otaforge_rollout_wave", "The wave a running or paused "
                                  "rollout is at (0: its first)",
                                  labels=["fleet", "channel", "rollout"])
        saved = GaugeMetricFamily("otaforge_delta_saved_bytes", "Bytes deltas saved against "
                                  "full images, all deployments")
        with self.store.sessions() as s:
            for state, n in s.execute(select(Deployment.state, func.count(Deployment.id))
                                      .group_by(Deployment.state)):
                deps.add_metric([str(state)], float(n))
            for name, n in s.execute(select(Fleet.name, func.count(Device.id))
                                     .join(Device, Device.fleet_id == Fleet.id, isouter=True)
                                     .group_by(Fleet.name)):
                devices.add_metric([str(name)], float(n))
            for fleet, chan, paused in s.execute(
                    select(Fleet.name, Channel.name, Channel.paused)
                    .join(Fleet, Fleet.id == Channel.fleet_id)):
                gates.add_metric([fleet, chan, "channel", "paused" if paused else "open"],
                                 1.0 if paused else 0.0)
            for fleet, chan, state, rid, wave in s.execute(
                    select(Fleet.name, Rollout.channel, Rollout.state, Rollout.id, Rollout.wave)
                    .join(Fleet, Fleet.id == Rollout.fleet_id)
                    .where(Rollout.state.in_(("running", "paused")))):
                gates.add_metric([fleet, chan, "rollout", str(state)],
                                 1.0 if state == "paused" else 0.0)
                waves.add_metric([fleet, chan, str(rid)], float(wave))
            total = s.scalar(select(func.coalesce(func.sum(UpdateStat.saved_bytes), 0)))
        saved.add_metric([], float(total or 0))
        yield from (deps, devices, gates, waves, saved)


class AccessLog:
    """One JSON object per request, written to ``stream`` (default stderr) in batches: a line
    is formatted on the request path (a few microseconds, no logging machinery) and written
    with its neighbours at least once a second (:meth:`flush`, called by the app's flush
    loop and at shutdown) or every ``BATCH`` lines."""

    BATCH = 256

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream
        self._lines: list[str] = []

    def line(self, scope: MutableMapping[str, Any], status: int, sent: int, seconds: float,
             who: str | None) -> None:
        if not self.enabled:
            return
        client = scope.get("client")
        path = scope["path"]
        if "/dl/" in path:
            path = redact(path)
        self._lines.append(
            f'{{"ts":{time.time():.3f},"client":{_json(client[0] if client else None)},'
            f'"method":"{scope["method"]}","path":{_json(path)},"status":{status},'
            f'"bytes":{sent},"ms":{seconds * 1000:.2f},"user":{_json(who)}}}')
        if len(self._lines) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stderr loses only logs
            stream.write("\n".join(lines) + "\n")
            stream.flush()


def _json(value: str | None) -> str:
    return "null" if value is None else json.dumps(value)
