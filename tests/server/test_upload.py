"""Upload checks (reliability matrix rows 31, 59, 60): every bad upload is refused with its
reason and nothing is stored; good (and correctly signed) uploads are accepted once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from otaforge.crypto import keys as k
from otaforge.crypto.sbv1 import sign_v1
from otaforge.crypto.sbv2 import sign_v2
from otaforge.formats.app_image import AppImage
from otaforge.formats.image_builder import build_image
from otaforge.server.settings import Settings
from tests.server.conftest import PARTITIONS_CSV, SLOT


def _desc_changed(**changes: object) -> bytes:
    image = AppImage.from_bytes(build_image(version="1.0.0", size=100_000))
    assert image.app_desc is not None
    return image.with_app_desc(image.app_desc.replace(**changes)).to_bytes()


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


@dataclass(frozen=True)
class BadUpload:
    name: str
    make: Callable[[], bytes]
    reason: str
    says: str


GOOD = build_image(version="1.0.0", size=100_000)
BAD_UPLOADS = [
    BadUpload("empty file", lambda: b"", "image_rejected", "empty"),
    BadUpload("html error page", lambda: b"<html>404</html>" * 10, "bad_magic", "magic"),
    BadUpload("short file", lambda: GOOD[:20], "truncated", "24 bytes"),
    BadUpload("truncated image", lambda: GOOD[:64000], "truncated", ""),
    BadUpload("bit flip in segment data", lambda: _flip(GOOD, 5000), "checksum_mismatch", ""),
    BadUpload("image for another chip", lambda: build_image(version="1", chip="esp32s3"),
              "image_rejected", "chip"),
    BadUpload("does not fit the OTA slot", lambda: build_image(version="1", size=SLOT + 8192),
              "image_rejected", "doesn't fit"),
    BadUpload("no app description", lambda: _desc_changed(magic_word=0), "image_rejected",
              "app description"),
    BadUpload("bogus version string", lambda: _desc_changed(version="\x01\x02"),
              "image_rejected", "version"),
    BadUpload("secure_version beyond the 32-bit eFuse", lambda: build_image(
        version="1", secure_version=33), "rollback_rejected", "exceeds"),
]


def _nothing_stored(api: TestClient, settings: Settings, fleet: str = "f1") -> None:
    assert api.get(f"/api/v1/fleets/{fleet}/releases").json() == []
    assert not any(p.is_file() for p in Path(settings.blob_dir).rglob("*"))


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=lambda c: c.name)
def test_bad_upload_refused_with_reason(api: TestClient, fleet: str, settings: Settings,
                                        case: BadUpload) -> None:
    r = api.post("/api/v1/fleets/f1/releases", content=case.make())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["reason"] == case.reason
    assert case.says.lower() in problem["detail"].lower()
    _nothing_stored(api, settings)


def test_good_upload_is_stored_once(api: TestClient, fleet: str, settings: Settings) -> None:
    first = api.post("/api/v1/fleets/f1/releases", content=GOOD)
    again = api.post("/api/v1/fleets/f1/releases", content=GOOD)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["app_desc"]["version"] == "1.0.0"
    blobs = [p for p in Path(settings.blob_dir).rglob("*.bin")]
    assert len(blobs) == 1 and blobs[0].read_bytes() == GOOD


def test_narrow_efuse_field(api: TestClient) -> None:
    r = api.post("/api/v1/fleets", json={"name": "narrow", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV,
                                         "secure_version_bits": 4})
    assert r.status_code == 201
    ok = api.post("/api/v1/fleets/narrow/releases",
                  content=build_image(version="4", secure_version=4))
    bad = api.post("/api/v1/fleets/narrow/releases",
                   content=build_image(version="5", secure_version=5))
    assert ok.status_code == 201
    assert bad.status_code == 422 and "4 bits" in bad.json()["detail"]


@pytest.fixture
def signed_fleet(api: TestClient, ec_key: k.PrivateKey) -> str:
    pem = k.public_key_pem(ec_key).decode()
    r = api.post("/api/v1/fleets", json={"name": "sig", "chip": "esp32c6",
                                         "partition_csv": PARTITIONS_CSV,
                                         "public_keys": [pem], "require_signature": True})
    assert r.status_code == 201, r.text
    assert r.json()["key_digests"] == [k.public_key_digest(ec_key).hex()]
    return "sig"


C6_IMAGE = build_image(version="3.0.0", chip="esp32c6", size=100_000)


@pytest.mark.parametrize(("name", "make"), [
    ("unsigned image", lambda key, other: C6_IMAGE),
    ("signed with an unknown key", lambda key, other: sign_v2(C6_IMAGE, [other])),
    ("signature sector damaged", lambda key, other: _flip(sign_v2(C6_IMAGE, [key]), -3000)),
    ("signed image altered after signing",
     lambda key, other: _flip(sign_v2(C6_IMAGE, [key]), 0x18)),
])
def test_signature_required(api: TestClient, settings: Settings, signed_fleet: str,
                            ec_key: k.PrivateKey, other_ec_key: k.PrivateKey, name: str,
                            make: Callable[[k.PrivateKey, k.PrivateKey], bytes]) -> None:
    r = api.post("/api/v1/fleets/sig/releases", content=make(ec_key, other_ec_key))
    assert r.status_code == 422, name
    assert r.json()["reason"] in {"signature_invalid", "checksum_mismatch", "bad_magic",
                                  "image_rejected"}
    _nothing_stored(api, settings, "sig")


def test_correctly_signed_image_accepted(api: TestClient, signed_fleet: str,
                                         ec_key: k.PrivateKey) -> None:
    r = api.post("/api/v1/fleets/sig/releases", content=sign_v2(C6_IMAGE, [ec_key]))
    assert r.status_code == 201, r.text
    sig = r.json()["signature"]
    assert sig["verified"] is True and sig["scheme"] == "ecdsa256"
    assert sig["key_digest"] == k.public_key_digest(ec_key).hex()


def test_v1_signed_esp32_image(api: TestClient, ec_key: k.PrivateKey,
                               other_ec_key: k.PrivateKey) -> None:
    pem = k.public_key_pem(ec_key).decode()
    r = api.post("/api/v1/fleets", json={"name": "v1", "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV,
                                         "public_keys": [pem], "require_signature": True})
    assert r.status_code == 201, r.text
    good = api.post("/api/v1/fleets/v1/releases", content=sign_v1(GOOD, ec_key))
    bad = api.post("/api/v1/fleets/v1/releases", content=sign_v1(GOOD, other_ec_key))
    assert good.status_code == 201 and good.json()["signature"]["scheme"] == "v1"
    assert bad.status_code == 422 and bad.json()["reason"] == "signature_invalid"


@pytest.mark.parametrize(("name", "body", "says"), [
    ("unknown chip", {"chip": "esp8266"}, "chip"),
    ("single OTA slot", {"partition_csv": "otadata, data, ota, 0xd000, 0x2000,\n"
                         "ota_0, app, ota_0, 0x10000, 1M,\n"}, "OTA"),
    ("overlapping partitions",
     {"partition_csv": PARTITIONS_CSV + "x, data, nvs, 0x9000, 0x1000,\n"}, ""),
    ("signature required without key", {"require_signature": True}, "key"),
    ("key not a key", {"public_keys": ["hello"]}, "PEM"),
])
def test_bad_fleet_refused(api: TestClient, name: str, body: dict[str, object],
                           says: str) -> None:
    full = {"name": "bad", "chip": "esp32", "partition_csv": PARTITIONS_CSV, **body}
    r = api.post("/api/v1/fleets", json=full)
    assert r.status_code == 422, name
    assert says.lower() in r.json()["detail"].lower()
    assert api.get("/api/v1/fleets").json() == []


def _esp32_fleet(api: TestClient, name: str, key: k.PrivateKey) -> None:
    r = api.post("/api/v1/fleets", json={"name": name, "chip": "esp32",
                                         "partition_csv": PARTITIONS_CSV,
                                         "public_keys": [k.public_key_pem(key).decode()],
                                         "require_signature": True})
    assert r.status_code == 201, r.text


def test_esp32_refuses_an_ecdsa_secure_boot_v2_signature(api: TestClient, settings: Settings,
                                                         ec_key: k.PrivateKey) -> None:
    """ESP32 verifies Secure Boot v2 only with RSA-3072 (its ECDSA key is for v1 signing):
    an SBv2 ECDSA block by the fleet's own key would be refused by the device."""
    _esp32_fleet(api, "e32", ec_key)
    r = api.post("/api/v1/fleets/e32/releases", content=sign_v2(GOOD, [ec_key]))
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "signature_invalid"
    assert "rsa3072" in r.json()["detail"]
    _nothing_stored(api, settings, "e32")


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[k.PrivateKey, k.PrivateKey]:
    return k.generate_key("rsa3072"), k.generate_key("rsa3072")


def test_esp32_checks_only_signature_block_0(api: TestClient, settings: Settings,
                                             rsa_keys: tuple[k.PrivateKey, k.PrivateKey]
                                             ) -> None:
    """ESP32 ECO3 reads block 0 only: a trusted key in block 1 does not make it bootable."""
    trusted, other = rsa_keys
    _esp32_fleet(api, "e32rsa", trusted)
    refused = api.post("/api/v1/fleets/e32rsa/releases",
                       content=sign_v2(GOOD, [other, trusted]))
    assert refused.status_code == 422, refused.text
    assert refused.json()["reason"] == "signature_invalid"
    _nothing_stored(api, settings, "e32rsa")
    ok = api.post("/api/v1/fleets/e32rsa/releases", content=sign_v2(GOOD, [trusted]))
    assert ok.status_code == 201, ok.text
    assert ok.json()["signature"]["scheme"] == "rsa3072"
