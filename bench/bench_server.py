"""Update-server benchmarks, run by hand: ``.venv/bin/python bench/bench_server.py``.

1. Check-ins per second with 10,000 registered devices (each with its own device token),
   steady state: every device already runs the channel's release, so the answer is 204.
   Target: >= 2,000/s on a 2-core machine.
2. Firmware download throughput over loopback HTTPS (pinned CA, keep-alive), ``otaforge
   server run`` against nginx (Debian package) serving the same file with the same certificate
   in the same run, the same curl client for both. Target: >= 70% of nginx.

The server and nginx each get one worker process; the load generator is the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from otaforge.demo.local_server import free_port
from otaforge.formats.image_builder import build_image
from otaforge.server.auth import token_hash
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings

CSV = """\
nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
phy_init, data, phy,     0xf000,  0x1000,
ota_0,    app,  ota_0,   0x10000, 0x600000,
ota_1,    app,  ota_1,   ,        0x600000,
"""


def wait_up(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=ctx, timeout=2)
            return
        except httpx.TransportError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"server exited: {proc.returncode}") from None
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def setup(root: Path, devices: int, image_size: int, blob_store: str | None = None
          ) -> tuple[Settings, bytes, list[tuple[str, str]]]:
    """A data dir with a fleet, a release on ``stable`` and ``devices`` registered devices
    (the image in ``blob_store``: ``DATA/blobs`` by default)."""
    from sqlalchemy import insert

    from otaforge.server.db import make_engine
    from otaforge.server.models import Device, Fleet
    from otaforge.server.store import Store

    data = root / "data"
    init_server(data)
    settings = Settings(data_dir=data, blob_store=blob_store)
    store = Store(make_engine(settings.url), settings)
    image = build_image(version="1.0.0", size=image_size, seed=11)
    store.create_fleet("bench", "esp32", CSV, [], False, None)
    store.publish("bench", image, "stable")
    tokens = [(f"dev{i:05d}", f"otfd_bench{i:05d}") for i in range(devices)]
    with store.tx() as s:
        fleet_id = s.query(Fleet.id).filter(Fleet.name == "bench").scalar()
        s.execute(insert(Device), [
            {"id": dev, "fleet_id": fleet_id, "channel": "stable", "token_hash": token_hash(tok),
             "state": "registered"} for dev, tok in tokens])
    store.engine.dispose()
    return settings, image, tokens


def start_server(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "otaforge", "server", "run", "--dir", str(settings.data_dir),
         "--port", str(port), "--max-in-flight", "100000",
         # the load generator is one address: lift the per-client connection limit
         "--max-connections-per-client", "100000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- check-ins ---------------------------------------------------------------------------


def check_in_requests(tokens: list[tuple[str, str]], sha: str) -> list[bytes]:
    out = []
    for dev, tok in tokens:
        body = (f'{{"fleet":"bench","chip":"esp32","version":"1.0.0","image_sha256":"{sha}",'
                f'"running_partition":"ota_0","otadata_state":"valid","secure_version":0}}')
        out.append((f"POST /api/v1/devices/{dev}/check-in HTTP/1.1\r\nHost: localhost\r\n"
                    f"Authorization: Bearer {tok}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    return out


async def _conn(port: int, ctx: ssl.SSLContext, reqs: list[bytes], stop: float,
                counts: collections.Counter[int], once: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="localhost")
    i = 0
    while time.monotonic() < stop and not (once and i >= len(reqs)):
        writer.write(reqs[i % len(reqs)])
        i += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"content-length:")
        if at >= 0:
            n = int(lower[at + 15:lower.index(b"\r\n", at)])
            if n:
                await reader.readexactly(n)
        counts[status] += 1
    writer.close()


async def _load(port: int, ctx: ssl.SSLContext, reqs: list[bytes], conns: int,
                seconds: float, once: bool = False) -> tuple[collections.Counter[int], float]:
    counts: collections.Counter[int] = collections.Counter()
    t0 = time.monotonic()
    stop = t0 + seconds
    slices = [reqs[i::conns] for i in range(conns)]
    await asyncio.gather(*(_conn(port, ctx, s, stop, counts, once) for s in slices if s))
    return counts, time.monotonic() - t0


def bench_check_ins(port: int, ctx: ssl.SSLContext, reqs: list[bytes], conns: int,
                    seconds: float) -> float:
    """First check-in of every device (cold caches), then ``seconds`` of steady state."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    counts, elapsed = asyncio.run(_load(port, ctx, reqs, conns, 300, once=True))
    print(f"  first check-in of each device (token lookup in the database): "
          f"{sum(counts.values()) / elapsed:,.0f}/s, statuses {dict(counts)}")
    counts, elapsed = asyncio.run(_load(port, ctx, reqs, conns, seconds))
    print(f"  steady state: statuses {dict(counts)}")
    return sum(counts.values()) / elapsed


# --- downloads ---------------------------------------------------------------------------


def start_nginx(root: Path, settings: Settings, port: int, blob: Path) -> subprocess.Popen[bytes]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise FileNotFoundError("nginx")
    conf = root / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/nginx-tmp;
  proxy_temp_path {root}/nginx-tmp; fastcgi_temp_path {root}/nginx-tmp;
  uwsgi_temp_path {root}/nginx-tmp; scgi_temp_path {root}/nginx-tmp;
  sendfile on;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {settings.tls_cert_path};
    ssl_certificate_key {settings.tls_key_path};
    location /firmware/ {{ alias {blob.parent}/; default_type application/octet-stream; }}
  }}
}}
""")
    (root / "nginx-tmp").mkdir(exist_ok=True)
    return subprocess.Popen([nginx, "-p", str(root), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its children (nginx workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        pending += [int(c) for c in children]
    return total


def curl_throughput(url: str, ca: Path, headers: list[str], repeats: int, parallel: int,
                    size: int) -> float:
    """MB/s of ``parallel`` curl processes each fetching ``url`` ``repeats`` times (keep-alive)."""
    args = ["curl", "-s", "--cacert", str(ca), "-o", "/dev/null"]
    for h in headers:
        args += ["-H", h]
    cmd = [*args, url]
    for _ in range(repeats - 1):
        cmd += ["-o", "/dev/null", url]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd) for _ in range(parallel)]
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - t0
    if any(codes):
        raise SystemExit(f"curl failed: {codes}")
    return size * repeats * parallel / elapsed / 1e6


def bench_downloads(settings: Settings, root: Path, port: int, server_pid: int, sha: str,
                    size: int, token: str, args: argparse.Namespace) -> None:
    """Alternate rounds against both servers (the machine may be busy); compare medians."""
    import statistics

    blob = settings.blob_dir / sha[:2] / f"{sha}.bin"
    nport = free_port()
    try:
        nginx = start_nginx(root, settings, nport, blob)
    except FileNotFoundError:
        print("  nginx: NOT INSTALLED (apt-get install nginx); no reference measured")
        return
    ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    ours_url = f"https://localhost:{port}/firmware/{sha}.bin"
    ref_url = f"https://localhost:{nport}/firmware/{sha}.bin"
    try:
        wait_up(ref_url, ctx, nginx)
        for parallel in args.parallel:
            print(f"downloads: {size} byte image x {args.repeats} per curl, {parallel} curl "
                  f"process(es), keep-alive, pinned CA, {args.rounds} alternating rounds")
            ours, ref = [], []
            cpu = {"ours": 0.0, "nginx": 0.0}
            for _ in range(args.rounds):
                c0 = process_tree_cpu(server_pid)
                ours.append(curl_throughput(ours_url, settings.ca_cert_path,
                                            [f"Authorization: Bearer {token}"],
                                            args.repeats, parallel, size))
                cpu["ours"] += process_tree_cpu(server_pid) - c0
                c0 = process_tree_cpu(nginx.pid)
                ref.append(curl_throughput(ref_url, settings.ca_cert_path, [], args.repeats,
                                           parallel, size))
                cpu["nginx"] += process_tree_cpu(nginx.pid) - c0
            gigabytes = size * args.repeats * parallel * args.rounds / 1e9
            mine, theirs = statistics.median(ours), statistics.median(ref)
            print(f"  otaforge: {mine:,.0f} MB/s (rounds: {', '.join(f'{x:.0f}' for x in ours)})")
            print(f"  nginx:    {theirs:,.0f} MB/s (rounds: {', '.join(f'{x:.0f}' for x in ref)})")
            print(f"  ratio otaforge/nginx: {mine / theirs:.2f}  (target >= 0.70: "
                  f"{'met' if mine / theirs >= 0.7 else 'NOT met'})")
            ours_cpu, ref_cpu = cpu["ours"] / gigabytes, cpu["nginx"] / gigabytes
            print(f"  server CPU per GB served: otaforge {ours_cpu:.2f} s, nginx {ref_cpu:.2f} s"
                  f" -> CPU-bound throughput ratio {ref_cpu / ours_cpu:.2f} (less sensitive "
                  "than MB/s to other load on the machine)")
    finally:
        nginx.terminate()
        nginx.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--image-size", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="otaforge-bench-"))
    try:
        settings, image, tokens = setup(root, args.devices, args.image_size)
        sha = hashlib.sha256(image).hexdigest()
        ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
        port = free_port()
        server = start_server(settings, port)
        try:
            wait_up(f"https://localhost:{port}/healthz", ctx, server)
            print(f"check-ins: {args.devices} devices with their own tokens, "
                  f"{args.connections} keep-alive HTTPS connections; steady state "
                  f"{args.seconds:.0f} s (token->device cached after first sight, device row "
                  "re-read after 1 s)")
            rate = bench_check_ins(port, ctx, check_in_requests(tokens, sha),
                                   args.connections, args.seconds)
            print(f"  steady state: {rate:,.0f} check-ins/s  (target >= 2,000/s: "
                  f"{'met' if rate >= 2000 else 'NOT met'})")
            bench_downloads(settings, root, port, server.pid, sha, len(image), tokens[0][1],
                            args)
        finally:
            server.terminate()
            server.wait(10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
