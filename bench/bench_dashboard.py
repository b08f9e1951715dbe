"""Dashboard and operations benchmarks, run by hand: ``.venv/bin/python bench/bench_dashboard.py``.

1. Dashboard pages with 10,000 devices (one deployment each, in every state) and 100,000
   events: server time of every view (in-process, median of ``--repeats`` renders with a
   logged-in session; the views flush pending check-in facts first, as they do when served).
   Target: every page < 300 ms.
2. Check-ins per second of this tree (metrics, JSON access log, audit hook all on, as by
   default) against otaforge at ``--before-commit`` (``git archive``; no dashboard, no metrics),
   each ``otaforge server run`` with 10,000 devices, measured interleaved for ``--rounds``
   rounds in the same run with the same load generator (``bench_server.py``'s).
   Target: this tree >= the earlier one (median of rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import os
import re
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_server

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("/ui/", "/ui/?fleet=bench", "/ui/devices", "/ui/devices?page=150",
         "/ui/devices?version=1.0.0&q=dev01", "/ui/devices/dev04242", "/ui/releases",
         "/ui/rollouts", "/ui/audit")
STATES = ("confirmed", "confirmed", "confirmed", "confirmed", "rolled_back", "failed",
          "pending_verify", "downloading", "offered", "confirmed")

SETUP = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import bench_server
settings, image, tokens = bench_server.setup(Path(sys.argv[1]), int(sys.argv[2]), 1 << 20)
print(settings.data_dir)
"""


def _archive(commit: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _setup_dir(root: Path, src: Path, devices: int) -> Path:
    """``bench_server.setup`` run by the otaforge at ``src`` (its own schema)."""
    root.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", SETUP, str(root), str(devices),
                          str(Path(__file__).resolve().parent)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def _serve(data: Path, src: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen(
        [sys.executable, "-m", "otaforge", "server", "run", "--dir", str(data), "--port",
         str(port), "--max-in-flight", "100000", "--max-connections-per-client", "100000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def bench_check_ins(args: argparse.Namespace, tmp: Path) -> None:
    before_src = _archive(args.before_commit, tmp / "before")
    trees = {"before": before_src, "this tree": ROOT / "src"}
    servers, reqs = {}, {}
    try:
        for name, src in trees.items():
            data = _setup_dir(tmp / ("data-" + name.replace(" ", "_")), src, args.devices)
            port = bench_server.free_port()
            servers[name] = (_serve(data, src, port), port,
                             ssl.create_default_context(cafile=str(data / "server_cert.pem")))
            bench_server.wait_up(f"https://localhost:{port}/healthz", servers[name][2],
                                 servers[name][0])
            sha = _running_sha(data)
            reqs[name] = bench_server.check_in_requests(
                [(f"dev{i:05d}", f"otfd_bench{i:05d}") for i in range(args.devices)], sha)
        rates: dict[str, list[float]] = {n: [] for n in trees}
        cpu: dict[str, list[float]] = {n: [] for n in trees}
        print(f"check-ins: {args.devices} devices, {args.connections} connections, "
              f"{args.rounds} interleaved rounds of {args.seconds:g} s steady state "
              f"(before = {args.before_commit}); first a cold pass per server")
        for name in trees:
            proc, port, ctx = servers[name]
            counts, took = asyncio.run(bench_server._load(port, ctx, reqs[name],
                                                          args.connections, 600, once=True))
            print(f"  {name}: first check-in of every device {sum(counts.values()) / took:,.0f}/s"
                  f" {dict(counts)}")
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
            for name in order:
                proc, port, ctx = servers[name]
                used = bench_server.process_tree_cpu(proc.pid)
                counts, took = asyncio.run(bench_server._load(port, ctx, reqs[name],
                                                              args.connections, args.seconds))
                used = bench_server.process_tree_cpu(proc.pid) - used
                assert set(counts) == {204}, counts
                done = sum(counts.values())
                rates[name].append(done / took)
                cpu[name].append(used / done * 1e6)
                print(f"  round {rnd + 1} {name}: {rates[name][-1]:,.0f}/s, server CPU "
                      f"{cpu[name][-1]:,.0f} us per check-in")
        before = statistics.median(rates["before"])
        now = statistics.median(rates["this tree"])
        print(f"  median: before {before:,.0f}/s, this tree {now:,.0f}/s, ratio "
              f"{now / before:.3f} (target >= 1.0: {'met' if now >= before else 'NOT met'})")
        print(f"  server CPU per check-in, median: before {statistics.median(cpu['before']):,.0f}"
              f" us, this tree {statistics.median(cpu['this tree']):,.0f} us (the measure "
              "least disturbed by other load on the machine)")
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait(10)


def _running_sha(data: Path) -> str:
    import sqlite3

    with sqlite3.connect(data / "otaforge.db") as conn:
        return str(conn.execute("SELECT sha256 FROM releases").fetchone()[0])


def populate(data: Path, devices: int, events: int) -> None:
    """``devices`` devices with one deployment each (every state) and ``events`` events."""
    from sqlalchemy import insert

    from otaforge.server.db import make_engine
    from otaforge.server.lifecycle import init_server
    from otaforge.server.models import Deployment, Device, Event, Fleet, Release
    from otaforge.server.settings import Settings
    from otaforge.server.store import Store

    init_server(data)
    settings = Settings(data_dir=data)
    store = Store(make_engine(settings.url), settings)
    from otaforge.formats.image_builder import build_image

    store.create_fleet("bench", "esp32", bench_server.CSV, [], False, None)
    store.publish("bench", build_image(version="0.9.0", size=200_000, seed=1))
    store.publish("bench", build_image(version="1.0.0", size=200_000, seed=2), "stable")
    store.users.add("bench", "viewer", "bench-password")
    now = dt.datetime.now(dt.UTC)
    with store.tx() as s:
        fleet_id = s.query(Fleet.id).filter(Fleet.name == "bench").scalar()
        rel = {v: i for i, v in s.query(Release.id, Release.version)}
        s.execute(insert(Device), [{
            "id": f"dev{i:05d}", "fleet_id": fleet_id, "channel": "stable",
            "token_hash": f"{i:064x}", "state": STATES[i % 10],
            "running_version": "1.0.0" if STATES[i % 10] == "confirmed" else "0.9.0",
            "last_check_in": now - dt.timedelta(minutes=i % 20000), "tags": ["bench"],
            "created_at": now} for i in range(devices)])
        s.execute(insert(Deployment), [{
            "device_id": f"dev{i:05d}", "release_id": rel["1.0.0"], "state": STATES[i % 10],
            "bytes": 1000, "created_at": now, "updated_at": now - dt.timedelta(hours=i % 48)}
            for i in range(devices)])
        per = max(1, events // devices)
        for start in range(0, events, 20_000):
            s.execute(insert(Event), [{
                "device_id": f"dev{(n // per) % devices:05d}", "event_id": f"e{n}",
                "deployment_id": (n // per) % devices + 1, "state": "downloading",
                "bytes": n % 100_000, "received_at": now} for n in range(start,
                                                                  min(events, start + 20_000))])
    store.engine.dispose()


def bench_pages(args: argparse.Namespace, tmp: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from otaforge.server.app import create_app
    from otaforge.server.settings import Settings

    data = tmp / "pages"
    t0 = time.perf_counter()
    populate(data, args.devices, args.events)
    print(f"dashboard: {args.devices} devices, {args.events} events "
          f"(populated in {time.perf_counter() - t0:.1f} s); server time per page, median of "
          f"{args.repeats}")
    settings = Settings(data_dir=data, access_log=False)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get("/ui/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        r = client.post("/ui/login", data={"name": "bench", "password": "bench-password",
                                           "csrf": csrf.group(1)}, follow_redirects=False)
        assert r.status_code == 303, r.text
        worst = 0.0
        for path in PAGES:
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, (path, r.status_code)
            med = statistics.median(times) * 1000
            worst = max(worst, med)
            print(f"  {path:40s} {med:7.1f} ms  ({len(r.content):,} bytes)")
        print(f"  slowest page {worst:.1f} ms (target < 300 ms: "
              f"{'met' if worst < 300 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--before-commit", default="9a2ced9")
    parser.add_argument("--only", choices=("pages", "check-ins"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="otaforge-bench-dash-") as tmp:
        if args.only != "check-ins":
            bench_pages(args, Path(tmp))
        if args.only != "pages":
            bench_check_ins(args, Path(tmp))


if __name__ == "__main__":
    main()
