"""Faults and bad input between the device and the real server, injected by an HTTPS proxy
(reliability matrix §6 rows 20-26, 37, 39, 40, 46, 47). Every refusal must leave the running app
and otadata untouched and reach the server with its reason."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from otaforge.agent.results import BootOutcome, Outcome
from otaforge.agent.updater import run_cycle
from otaforge.formats.image_builder import build_image
from tests.e2e.conftest import IMAGE_SIZE, SLOT, image

V2 = ("1.1.0", 0, 1)  # version, secure_version, seed of the offered release
HTML = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>"
        + b"<p>Please log in to the captive portal.</p>" * 40 + b"</body></html>\n")


def _offered() -> bytes:
    return image(*V2)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@dataclass(frozen=True)
class Bad:
    body: Any  # () -> bytes served instead of the release
    code: str
    erases: bool  # whether the slot may be written before the refusal


# fmt: off
BAD_BODIES = {
    "truncated image (64000 B)":      Bad(lambda: _offered()[:64000], "digest_mismatch", False),
    "truncated header (180 B)":       Bad(lambda: _offered()[:180], "truncated", False),
    "HTML page instead of image":     Bad(lambda: HTML, "not_an_image", False),
    "random garbage":                 Bad(lambda: bytes(range(7, 251)) * 64, "not_an_image",
                                          False),
    "JSON error instead of image":    Bad(lambda: b'{"detail": "not found"}' + b" " * 2048,
                                          "not_an_image", False),
    "wrong chip (esp32s3 image)":     Bad(lambda: image("1.1.0", seed=1, chip="esp32s3"),
                                          "wrong_chip", False),
    "chip revision too old (v3.0+)":  Bad(lambda: build_image(version="1.1.0", seed=1,
                                                              size=IMAGE_SIZE,
                                                              min_chip_rev_full=300),
                                          "chip_revision", False),
    "larger than the slot":           Bad(lambda: image("1.1.0", seed=1, size=SLOT + 0x1000),
                                          "too_large", False),
    "trailing bytes appended":        Bad(lambda: _offered() + b"\x00" * 4096,
                                          "digest_mismatch", False),
    "one byte flipped in the body":   Bad(lambda: _flip(_offered(), 100_000), "digest_mismatch",
                                          True),
    "another release's image":        Bad(lambda: image("1.2.0", seed=2), "version_mismatch",
                                          False),
}
# fmt: on


@pytest.mark.parametrize("bad", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_download_is_refused_and_reported(rig_factory: Any, proxy: Any, bad: Bad) -> None:
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    otadata = rig.slot_bytes("otadata")
    slot = rig.slot_bytes("ota_0", 0x10000)
    fault.faults.replace_body = bad.body()
    result = rig.agent().check_for_update()
    assert (result.outcome, result.code) == (Outcome.REFUSED, bad.code), result.reason
    assert rig.running() == ("1.0.0", "factory")
    assert rig.slot_bytes("otadata") == otadata
    if not bad.erases:
        assert rig.slot_bytes("ota_0", 0x10000) == slot  # checked before erasing
    failed = [e for e in rig.server_events() if e["state"] == "failed"]
    assert failed and failed[0]["reason"].startswith(bad.code)
    assert rig.device.reboot().partition.name == "factory"


def _install(rig: Any) -> Any:
    result = run_cycle(rig.agent())
    assert result.after_reboot == BootOutcome.CONFIRMED, rig.kinds()
    return result


def test_resume_after_connection_drop(rig_factory: Any, proxy: Any) -> None:
    """Row 46: the socket dies mid-body; the agent resumes with Range + If-Range (206)."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [150_000]
    _install(rig)
    gets = [r for r in fault.faults.requests if r["path"].startswith("/firmware/")]
    assert len(gets) == 2 and "range" not in gets[0]
    offset = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 150_000 and offset % 4096 == 0
    assert gets[1]["if-range"] == f'"{hashlib.sha256(_offered()).hexdigest()}"'
    assert "resumed" in rig.kinds() and "restarted" not in rig.kinds()
    assert rig.running() == ("1.1.0", "ota_0")


def test_server_answering_200_to_range_restarts_from_zero(rig_factory: Any,
                                                          proxy: Any) -> None:
    """Row 46: a Range request answered 200 restarts from 0 and never overruns the image."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [120_000]
    fault.faults.ignore_range = True
    _install(rig)
    assert "restarted" in rig.kinds()
    size = len(_offered())
    assert all(done <= total == size for done, total in rig.progress)
    assert rig.running() == ("1.1.0", "ota_0")


def test_artifact_changed_between_attempts_restarts_not_splices(rig_factory: Any,
                                                                proxy: Any) -> None:
    """Row 47: If-Range with the old ETag gets the new artifact whole (200): no splice."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [100_000]
    agent = rig.agent()
    original = agent.on_event

    def swap(event: Any) -> None:
        original(event)
        if event.kind == "connection_lost":
            fault.faults.replace_body = image("1.1.0", seed=9)  # same version, new bytes

    agent.on_event = swap
    result = agent.check_for_update()
    assert "restarted" in rig.kinds() and "resumed" not in rig.kinds()
    assert (result.outcome, result.code) == (Outcome.REFUSED, "digest_mismatch")
    assert rig.device.ota.esp_ota_get_boot_partition().name == "factory"


@pytest.mark.parametrize("etag", [True, False], ids=["206 with new ETag", "no ETags"])
def test_broken_server_splicing_a_changed_artifact_is_caught(rig_factory: Any, proxy: Any,
                                                             etag: bool) -> None:
    """Row 47 with a server that ignores If-Range: the new ETag on the 206 restarts at once;
    without ETags the spliced image fails its digest, is fetched again from 0, and the
    changed artifact is refused -- it never boots."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [100_000]
    fault.faults.ignore_if_range = True
    fault.faults.no_etag = not etag
    agent = rig.agent()
    original = agent.on_event

    def swap(event: Any) -> None:
        original(event)
        if event.kind == "connection_lost":
            fault.faults.replace_body = image("1.1.0", seed=9)

    agent.on_event = swap
    result = agent.check_for_update()
    assert "restarted" in rig.kinds()
    assert ("resumed" in rig.kinds()) == (not etag)
    assert (result.outcome, result.code) == (Outcome.REFUSED, "digest_mismatch")
    assert rig.device.ota.esp_ota_get_boot_partition().name == "factory"


def test_drops_on_every_attempt_resume_at_next_check_in(rig_factory: Any,
                                                        proxy: Any) -> None:
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [40_000, 40_000, 40_000]
    first = rig.agent().check_for_update()
    assert first.outcome == Outcome.INTERRUPTED
    assert rig.running() == ("1.0.0", "factory")
    waiting = [e for e in rig.server_events() if e["state"] == "downloading" and e["reason"]]
    assert waiting and "will resume" in waiting[0]["reason"]
    _install(rig)
    assert "resumed" in rig.kinds()
    assert rig.running() == ("1.1.0", "ota_0")


def test_partial_download_against_the_server_resumes_after_drop(rig_factory: Any,
                                                                proxy: Any) -> None:
    """esp_https_ota's partial-download mode (HEAD probe, 32 KiB ranges) through the real
    server, with a drop in the middle: resumes in ranges, image intact."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.drop_after = [0x8000 - 1000, 0x8000 - 100]
    kw = {"partial_http_download": True, "max_http_request_size": 0x8000}
    result = rig.agent(**kw).check_for_update()
    assert result.outcome == Outcome.INSTALLED, rig.kinds()
    assert rig.agent(**kw).reboot() == BootOutcome.CONFIRMED
    gets = [r for r in fault.faults.requests if r["method"] == "GET"]
    assert all("range" in r for r in gets[1:])
    assert "connection_lost" in rig.kinds()


def test_partial_download_direct_to_server(rig_factory: Any) -> None:
    """No proxy: the server's own HEAD, Range clamping (end one past the image) and 206s."""
    rig = rig_factory(factory=image("1.0.0"))
    rig.publish(_offered())
    agent = rig.agent(partial_http_download=True, max_http_request_size=0x5000)
    assert agent.check_for_update().outcome == Outcome.INSTALLED
    assert rig.agent().reboot() == BootOutcome.CONFIRMED
    assert rig.running() == ("1.1.0", "ota_0")


def test_chunked_download_without_content_length_installs(rig_factory: Any,
                                                          proxy: Any) -> None:
    """``Transfer-Encoding: chunked`` (image_length -1 in esp_https_ota): the release's size
    from the manifest bounds the download."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    fault.faults.chunked = True
    _install(rig)
    assert rig.running() == ("1.1.0", "ota_0")
    assert rig.progress[-1] == (len(_offered()), len(_offered()))


def test_endless_chunked_body_stops_at_the_release_size(rig_factory: Any, proxy: Any) -> None:
    """Row 39: a body longer than the release, with no length announced: the agent stops at
    the release's size, never writes past it, reports the error; the running app stays."""
    fault, ca = proxy
    rig = rig_factory(factory=image("1.0.0"), base_url=fault.url, ca_pem=ca)
    rig.publish(_offered())
    size = len(_offered())
    fault.faults.chunked = True
    fault.faults.replace_body = _offered() + b"\xa5" * 0x40000
    result = rig.agent().check_for_update()
    assert result.outcome == Outcome.FAILED and result.code == "ESP_ERR_INVALID_SIZE"
    slot = rig.slot_bytes("ota_0", size + 0x2000)
    end = size + (-size % 4096)  # the sector holding the image's last byte may be erased
    assert slot[:0x10000] == _offered()[:0x10000]  # it did download
    assert slot[end:] == b"\xff" * (len(slot) - end)  # but wrote nothing past the release
    assert rig.running() == ("1.0.0", "factory")
    assert rig.device.ota.esp_ota_get_boot_partition().name == "factory"
    failed = [e for e in rig.server_events() if e["state"] == "failed"]
    assert failed and "ESP_ERR_INVALID_SIZE" in failed[0]["reason"]
