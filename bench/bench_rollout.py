"""Rollout benchmarks, run by hand: ``.venv/bin/python bench/bench_rollout.py``.

1. Check-ins per second over loopback HTTPS (``otaforge server run``, one worker), steady
   state, without a rollout and then with one on the channel (a 1 % first wave: its devices
   get the manifest again, the others are routed to the channel's release they run): the
   cost of rollout routing on the hot path, measured in the same run.
2. One gate evaluation (the tick: tally every device's newest deployment, decide, log) with
   N deployments in the rollout, in process, median of 5.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import _load, check_in_requests, setup, start_server, wait_up

from otaforge.demo.local_server import free_port
from otaforge.formats.image_builder import build_image
from otaforge.server.settings import Settings


def rate(port: int, ctx: ssl.SSLContext, reqs: list[bytes], seconds: float) -> float:
    counts, elapsed = asyncio.run(_load(port, ctx, reqs, 32, seconds))
    print(f"    statuses {dict(counts)}")
    return sum(counts.values()) / elapsed


def create_rollout(settings: Settings) -> int:
    from otaforge.server.db import make_engine
    from otaforge.server.store import Store
    from otaforge.server.waves import Plan, parse_waves

    store = Store(make_engine(settings.url), settings)
    store.publish("bench", build_image(version="2.0.0", size=200_000, seed=12))
    rollout_id = store.rollouts.create("bench", "stable", "2.0.0",
                                       Plan(waves=parse_waves("1%,100%")))
    store.deltas.shutdown()
    store.engine.dispose()
    return rollout_id


def bench_tick(settings: Settings, rollout_id: int, devices: int) -> float:
    """Median seconds of one forced gate evaluation with ``devices`` deployments."""
    from sqlalchemy import insert, select

    from otaforge.server.db import make_engine
    from otaforge.server.models import Deployment, Device, Rollout
    from otaforge.server.store import Store

    store = Store(make_engine(settings.url), settings)
    now = dt.datetime.now(dt.UTC)
    with store.tx() as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        ids = list(s.scalars(select(Device.id)))
        s.execute(insert(Deployment), [
            {"device_id": d, "release_id": ro.release_id, "state": "confirmed",
             "created_at": now, "updated_at": now, "rollout_id": rollout_id, "wave": 0}
            for d in ids[:devices]])
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        store.rollouts.evaluate(rollout_id, force=True)
        times.append(time.perf_counter() - t0)
    store.deltas.shutdown()
    store.engine.dispose()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="otaforge-bench-rollout-") as tmp:
        settings, image, tokens = setup(Path(tmp), args.devices, 200_000)
        import hashlib

        reqs = check_in_requests(tokens, hashlib.sha256(image).hexdigest())
        ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
        results = {}
        for label in ("no rollout", "rollout on the channel"):
            if label != "no rollout":
                rollout_id = create_rollout(settings)
            port = free_port()
            proc = start_server(settings, port)
            try:
                wait_up(f"https://localhost:{port}/healthz", ctx, proc)
                asyncio.run(_load(port, ctx, reqs, 32, 300, once=True))  # warm caches
                print(f"  {label}:")
                results[label] = rate(port, ctx, reqs, args.seconds)
            finally:
                proc.terminate()
                proc.wait(10)
        for label, value in results.items():
            print(f"check-ins/s, {label}: {value:,.0f}")
        ratio = results["rollout on the channel"] / results["no rollout"]
        print(f"rollout routing keeps {ratio:.0%} of the check-in rate")
        tick = bench_tick(settings, rollout_id, args.devices)
        print(f"one gate evaluation over {args.devices:,} deployments: {tick * 1000:.0f} ms")


if __name__ == "__main__":
    main()
