"""S3 blob store benchmark, run by hand: ``.venv/bin/python bench/bench_s3.py``.

Firmware download throughput, in the same run, alternating rounds, the same curl client:

1. straight from SeaweedFS's S3 gateway (``weed server -s3`` from PyPI, a presigned GET of
   the stored object, plain HTTP on loopback): the reference;
2. ``otaforge server run --blob-store s3://…`` serving that object over HTTPS (pinned CA,
   device token, keep-alive): each response is one ranged GET to SeaweedFS, proxied;
3. ``otaforge server run`` on the local directory store, for scale.

Prints MB/s medians and the ratio otaforge-through-S3 / SeaweedFS-direct, and the server's
CPU seconds per GB served. The server gets one process; SeaweedFS and curl share the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_server import (
    curl_throughput,
    process_tree_cpu,
    setup,
    wait_up,
)
from tests.server.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

from otaforge.demo.local_server import free_port
from otaforge.server.settings import Settings


def start(settings: Settings, port: int, blob_store: str | None) -> subprocess.Popen[bytes]:
    extra = ["--blob-store", blob_store] if blob_store else []
    return subprocess.Popen(
        [sys.executable, "-m", "otaforge", "server", "run", "--dir", str(settings.data_dir),
         "--port", str(port), "--max-in-flight", "100000",
         "--max-connections-per-client", "100000", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--image-size", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="otaforge-bench-s3-"))
    weed = SeaweedFS(root / "weed")
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                      OTAFORGE_S3_ENDPOINT=weed.endpoint, AWS_DEFAULT_REGION="us-east-1")
    weed.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bucket, prefix = weed.new_store()
        url = f"s3://{bucket}/{prefix}"
        s3_settings, image, tokens = setup(root / "s3", 1, args.image_size, blob_store=url)
        local_settings, _, local_tokens = setup(root / "local", 1, args.image_size)
        sha = hashlib.sha256(image).hexdigest()
        key = f"{prefix}/{sha[:2]}/{sha}.bin"
        direct = weed.client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=7200)
        ports = {"s3": free_port(), "local": free_port()}
        servers = {"s3": start(s3_settings, ports["s3"], url),
                   "local": start(local_settings, ports["local"], None)}
        procs += servers.values()
        for name, settings in (("s3", s3_settings), ("local", local_settings)):
            ctx = ssl.create_default_context(cafile=str(settings.ca_cert_path))
            wait_up(f"https://localhost:{ports[name]}/healthz", ctx, servers[name])
        targets = {
            "seaweedfs direct": (direct, None, []),
            "otaforge via S3": (f"https://localhost:{ports['s3']}/firmware/{sha}.bin",
                                s3_settings, [f"Authorization: Bearer {tokens[0][1]}"]),
            "otaforge local": (f"https://localhost:{ports['local']}/firmware/{sha}.bin",
                               local_settings, [f"Authorization: Bearer {local_tokens[0][1]}"]),
        }
        for parallel in args.parallel:
            print(f"downloads: {len(image)} byte image x {args.repeats} per curl, {parallel} "
                  f"curl process(es), {args.rounds} alternating rounds")
            rates: dict[str, list[float]] = {name: [] for name in targets}
            cpu = {name: 0.0 for name in targets}
            for _ in range(args.rounds):
                for name, (target, settings, headers) in targets.items():
                    pid = weed.proc.pid if settings is None and weed.proc else \
                        servers["s3" if settings is s3_settings else "local"].pid
                    c0 = process_tree_cpu(pid)
                    rates[name].append(_curl(target, settings, headers, args.repeats,
                                             parallel, len(image)))
                    cpu[name] += process_tree_cpu(pid) - c0
            gigabytes = len(image) * args.repeats * parallel * args.rounds / 1e9
            for name, got in rates.items():
                print(f"  {name:17s} {statistics.median(got):8,.0f} MB/s  (rounds: "
                      f"{', '.join(f'{x:.0f}' for x in got)}; serving CPU "
                      f"{cpu[name] / gigabytes:.2f} s/GB)")
            ratio = statistics.median(rates["otaforge via S3"]) / statistics.median(
                rates["seaweedfs direct"])
            print(f"  ratio otaforge-via-S3 / SeaweedFS-direct: {ratio:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        weed.kill()


def _curl(url: str, settings: Settings | None, headers: list[str], repeats: int,
          parallel: int, size: int) -> float:
    if settings is not None:
        return curl_throughput(url, settings.ca_cert_path, headers, repeats, parallel, size)
    cmd = ["curl", "-s", "-o", "/dev/null", "-f", url]
    for _ in range(repeats - 1):
        cmd += ["-o", "/dev/null", url]
    t0 = time.monotonic()
    running = [subprocess.Popen(cmd) for _ in range(parallel)]
    codes = [p.wait() for p in running]
    if any(codes):
        raise SystemExit(f"curl failed: {codes}")
    return size * repeats * parallel / (time.monotonic() - t0) / 1e6


if __name__ == "__main__":
    main()
