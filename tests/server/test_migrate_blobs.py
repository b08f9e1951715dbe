"""``otaforge server migrate-blobs`` on a real SeaweedFS: a server's local store copied into
S3 (the server then serves its releases from there, byte-identical) and back, every
SHA-256 checked, a second run copying nothing, a corrupt source blob reported and not
copied, and bad arguments refused with nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from otaforge.server.app import create_app
from otaforge.server.lifecycle import init_server
from otaforge.server.settings import Settings
from tests.conftest import run_cli
from tests.server.conftest import PARTITIONS_CSV, auth, publish
from tests.server.seaweedfs import SeaweedFS


def _migrate(src: str, dst: str) -> dict[str, object]:
    done = run_cli("server", "migrate-blobs", "--from", src, "--to", dst, "--json")
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.bin"))}


def _downloads(settings: Settings, images: list[bytes]) -> list[bytes]:
    with TestClient(create_app(settings), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {settings.admin_token()}"
        token = api.post("/api/v1/fleets/f1/devices", json={"id": "dev1"}).json()["token"]
        return [api.get(f"/firmware/{hashlib.sha256(i).hexdigest()}.bin",
                        headers=auth(token)).content for i in images]


def test_local_store_into_s3_and_back_serves_the_same_releases(
        tmp_path: Path, seaweedfs_up: SeaweedFS, image_v1: bytes, image_v2: bytes) -> None:
    init_server(tmp_path / "data")
    local = Settings(data_dir=tmp_path / "data")
    with TestClient(create_app(local), base_url="https://testserver") as api:
        api.headers["authorization"] = f"Bearer {local.admin_token()}"
        assert api.post("/api/v1/fleets", json={"name": "f1", "chip": "esp32",
                                                "partition_csv": PARTITIONS_CSV}
                        ).status_code == 201
        publish(api, image_v1)
        publish(api, image_v2)
    bucket, prefix = seaweedfs_up.new_store()
    url = f"s3://{bucket}/{prefix}"
    out = _migrate(str(local.blob_dir), url)
    assert (out["copied"], out["skipped"], out["corrupt"]) == (2, 0, [])
    assert out["copied_bytes"] == len(image_v1) + len(image_v2)
    assert len(seaweedfs_up.keys(bucket, prefix)) == 2
    # the same server (same database) on the S3 store serves what it published locally
    on_s3 = Settings(data_dir=local.data_dir, blob_store=url)
    assert _downloads(on_s3, [image_v1, image_v2]) == [image_v1, image_v2]
    again = _migrate(str(local.blob_dir), url)
    assert (again["copied"], again["skipped"]) == (0, 2)
    back = tmp_path / "back"
    assert _migrate(url, str(back))["copied"] == 2
    assert _files(back) == _files(local.blob_dir)


def test_corrupt_source_blob_is_reported_and_not_copied(tmp_path: Path,
                                                        seaweedfs_up: SeaweedFS) -> None:
    src = tmp_path / "blobs"
    good = b"good firmware"
    for data, name in ((good, hashlib.sha256(good).hexdigest()),
                       (b"bit rot", hashlib.sha256(b"bit rut").hexdigest())):
        (src / name[:2]).mkdir(parents=True, exist_ok=True)
        (src / name[:2] / f"{name}.bin").write_bytes(data)
    bucket, prefix = seaweedfs_up.new_store()
    done = run_cli("server", "migrate-blobs", "--from", str(src), "--to",
                   f"s3://{bucket}/{prefix}")
    assert done.returncode == 1, done.stderr
    assert hashlib.sha256(b"bit rut").hexdigest() in done.stdout
    sha = hashlib.sha256(good).hexdigest()
    assert seaweedfs_up.keys(bucket, prefix) == [f"{prefix}/{sha[:2]}/{sha}.bin"]
    assert seaweedfs_up.uploads(bucket, prefix) == []


@pytest.mark.parametrize(("name", "src", "dst", "says"), [
    ("missing source", "nowhere", "s3://firmware/x", "no such directory"),
    ("same store", "blobs", "blobs", "same store"),
    ("not a store URL", "blobs", "gs://bucket", "expected s3://"),
    ("bucket name too short", "blobs", "s3://ab", "bucket name"),
])
def test_bad_migration_arguments_are_refused(tmp_path: Path, name: str, src: str, dst: str,
                                             says: str) -> None:
    (tmp_path / "blobs").mkdir()
    done = run_cli("server", "migrate-blobs", "--from", src, "--to", dst, cwd=tmp_path)
    assert done.returncode == 2, (name, done.stderr)
    assert says in done.stderr and done.stderr.count("\n") == 1, (name, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs"]
