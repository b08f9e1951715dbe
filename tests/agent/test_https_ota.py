"""esp_https_ota's state machine against a real TLS server and the emulated device's OtaOps:
HTTP statuses, resumption rules (206 / 200 / 416 / wrong Content-Range), header reads,
never writing past the announced size."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from otaforge.agent import esp_https_ota as ho
from otaforge.agent.httpx_fetcher import HttpxFetcher
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import compose_flash
from otaforge.device.flash import MemoryFlash
from otaforge.device.ota_ops import OtaConfig, OtaOps
from otaforge.errors import (
    Conflict,
    ConnectionLost,
    EspError,
    HTTPStatusError,
    NotFound,
    ServerError,
    TruncatedError,
    Unauthorized,
)
from otaforge.formats.chips import chip
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionEntry, PartitionTable
from tests.agent.faultserver import FaultServer, etag_of, make_ca

PARTITIONS = """\
nvs,      data, nvs,     0x9000,   0x6000,
otadata,  data, ota,     0xf000,   0x2000,
factory,  app,  factory, 0x20000,  0x100000,
ota_0,    app,  ota_0,   0x120000, 0x100000,
ota_1,    app,  ota_1,   0x220000, 0x100000,
"""
NEW = build_image(version="2.0.0", seed=5, size=0x20000)
OLD = build_image(version="1.0.0", seed=4, size=0x20000)


@dataclass
class Env:
    server: FaultServer
    fetcher: HttpxFetcher
    flash: MemoryFlash
    ota: OtaOps
    slot: PartitionEntry

    @property
    def url(self) -> str:
        return self.server.url + "/fw.bin"

    def read(self, part: Any, off: int, n: int) -> bytes:
        return self.flash.read(part.offset + off, n)

    def resume(self, part: Any, _erase: int, offset: int) -> Any:
        """esp_ota_resume for the test: replay the written bytes (as the agent does)."""
        handle = self.ota.esp_ota_begin(part, ho.OTA_WITH_SEQUENTIAL_WRITES)
        self.ota.esp_ota_write(handle, self.read(part, 0, offset))
        return handle

    def config(self, **kw: Any) -> ho.HttpsOtaConfig:
        base: dict[str, Any] = {"url": self.url, "partition": self.slot,
                                "resume": self.resume, "read_partition": self.read}
        base.update(kw)
        return ho.HttpsOtaConfig(**base)

    def download(self, cfg: ho.HttpsOtaConfig) -> ho.HttpsOtaHandle:
        handle = ho.esp_https_ota_begin(cfg, self.fetcher, self.ota)
        while ho.esp_https_ota_perform(handle) == ho.ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            assert ho.esp_https_ota_get_image_len_read(handle) <= handle.image_length
        return handle

    def slot_image(self, n: int = len(NEW)) -> bytes:
        return self.read(self.slot, 0, n)


@pytest.fixture
def env() -> Iterator[Env]:
    _ca, leaf, ca_pem = make_ca()
    table = PartitionTable.from_csv(PARTITIONS)
    flash = MemoryFlash(4 * 1024 * 1024, compose_flash(table, {"factory": OLD}), strict=True)
    spec = chip("esp32")
    ota = OtaOps(flash, table, Efuses(spec), OtaConfig(chip=spec, rollback=True),
                 running=table.find("factory"))
    slot = table.find("ota_0")
    assert slot is not None
    with FaultServer(leaf, {"/fw.bin": NEW}) as srv, HttpxFetcher(ca_pem) as fetcher:
        yield Env(srv, fetcher, flash, ota, slot)


def test_full_download_finish_selects_the_slot(env: Env) -> None:
    handle = env.download(env.config())
    assert ho.esp_https_ota_is_complete_data_received(handle)
    ho.esp_https_ota_finish(handle)
    assert env.ota.esp_ota_get_boot_partition() == env.slot
    assert env.slot_image() == NEW


def test_img_desc_is_read_before_anything_is_written(env: Env) -> None:
    handle = ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    before = env.flash.op_count
    assert ho.esp_https_ota_get_img_desc(handle).version == "2.0.0"
    assert ho.esp_https_ota_get_image_len_read(handle) == -1
    assert env.flash.op_count == before
    ho.esp_https_ota_abort(handle)


def test_truncated_header_is_reported_not_written(env: Env) -> None:
    env.server.faults.replace_body = NEW[:180]
    handle = ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    with pytest.raises(TruncatedError, match="Complete headers were not received"):
        ho.esp_https_ota_perform(handle)
    ho.esp_https_ota_abort(handle)


def _half(env: Env) -> int:
    """Download, drop at ~half, return the sector-aligned number of bytes in flash."""
    env.server.faults.drop_after = [len(NEW) // 2 + 123]
    handle = ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    with pytest.raises(ConnectionLost):
        while ho.esp_https_ota_perform(handle) == ho.ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            pass
    ho.esp_https_ota_abort(handle)
    written = handle.binary_file_len
    assert 0 < written < len(NEW)
    return written - written % 4096


def test_resume_sends_range_and_if_range_and_completes(env: Env) -> None:
    offset = _half(env)
    handle = env.download(env.config(ota_resumption=True, ota_image_bytes_written=offset,
                                     resume_etag=etag_of(NEW), resume_image_size=len(NEW)))
    assert (handle.start_offset, handle.restarted) == (offset, None)
    last = env.server.faults.requests[-1]
    assert last["range"] == f"bytes={offset}-" and last["if-range"] == etag_of(NEW)
    ho.esp_https_ota_finish(handle)
    assert hashlib.sha256(env.slot_image()).digest() == hashlib.sha256(NEW).digest()


# fmt: off
RESTARTS = {
    "server ignores Range (200)":      ({"ignore_range": True}, {}),
    "ETag changed (If-Range -> 200)":  ({}, {"resume_etag": '"stale"'}),
    "size changed (Content-Range)":    ({}, {"resume_image_size": len(NEW) + 4096}),
    "offset past the end (416)":       ({}, {"ota_image_bytes_written": len(NEW) + 4096}),
}
# fmt: on


@pytest.mark.parametrize("faults,cfg", RESTARTS.values(), ids=RESTARTS.keys())
def test_resumption_that_cannot_continue_restarts_from_zero(
        env: Env, faults: dict[str, Any], cfg: dict[str, Any]) -> None:
    offset = _half(env)
    for name, value in faults.items():
        setattr(env.server.faults, name, value)
    kw: dict[str, Any] = {"ota_resumption": True, "ota_image_bytes_written": offset,
                          "resume_etag": etag_of(NEW), "resume_image_size": len(NEW)}
    kw.update(cfg)
    handle = env.download(env.config(**kw))
    assert handle.start_offset == 0 and handle.restarted
    assert handle.binary_file_len == len(NEW)
    ho.esp_https_ota_finish(handle)
    assert env.slot_image() == NEW


@pytest.mark.parametrize("status,name", [
    (304, "ESP_ERR_HTTP_NOT_MODIFIED"), (416, "ESP_ERR_HTTP_RANGE_NOT_SATISFIABLE")])
def test_304_and_416_are_esp_http_errors(env: Env, status: int, name: str) -> None:
    env.server.faults.status = status
    with pytest.raises(EspError) as info:
        ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    assert info.value.name == name


@pytest.mark.parametrize("status,error", [
    (401, Unauthorized), (403, ServerError), (404, NotFound), (409, Conflict),
    (500, HTTPStatusError), (503, HTTPStatusError)])
def test_error_statuses_map_to_refusals_or_transport_errors(env: Env, status: int,
                                                           error: type[Exception]) -> None:
    """4xx: the server refused (never retried as is); 5xx: the peer failed (transport)."""
    env.server.faults.status = status
    with pytest.raises(error) as info:
        ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    assert type(info.value) is error
    assert info.value.status_code == status  # type: ignore[attr-defined]


def test_finish_before_complete_fails_and_does_not_select(env: Env) -> None:
    handle = ho.esp_https_ota_begin(env.config(), env.fetcher, env.ota)
    ho.esp_https_ota_perform(handle)  # header written, rest not read
    with pytest.raises(EspError):
        ho.esp_https_ota_finish(handle)
    assert env.ota.esp_ota_get_boot_partition().name == "factory"


@pytest.mark.parametrize("no_head", [False, True], ids=["HEAD probe", "HEAD refused: 0-0 probe"])
def test_partial_download_in_ranges(env: Env, no_head: bool) -> None:
    env.server.faults.no_head = no_head
    handle = env.download(env.config(partial_http_download=True,
                                     max_http_request_size=0x8000))
    ho.esp_https_ota_finish(handle)
    assert env.slot_image() == NEW
    gets = [r for r in env.server.faults.requests if r["method"] == "GET"]
    probe = 1 if no_head else 0
    assert gets[0].get("range") == ("bytes=0-0" if no_head else "bytes=0-32767")
    ranges = [r["range"] for r in gets[probe:]]
    chunks = -(-len(NEW) // 0x8000)
    assert len(ranges) == chunks
    assert ranges[-1] == f"bytes={(chunks - 1) * 0x8000}-{len(NEW)}"  # one past the end


def test_partial_download_of_a_small_image_sends_no_range(env: Env) -> None:
    handle = env.download(env.config(partial_http_download=True,
                                     max_http_request_size=len(NEW) + 1))
    ho.esp_https_ota_finish(handle)
    gets = [r for r in env.server.faults.requests if r["method"] == "GET"]
    assert len(gets) == 1 and "range" not in gets[0]


def test_partial_download_resumes_and_checks_etag(env: Env) -> None:
    offset = _half(env)
    handle = env.download(env.config(partial_http_download=True, max_http_request_size=0x8000,
                                     ota_resumption=True, ota_image_bytes_written=offset,
                                     resume_etag=etag_of(NEW), resume_image_size=len(NEW)))
    assert handle.start_offset == offset and not handle.restarted
    ho.esp_https_ota_finish(handle)
    assert env.slot_image() == NEW
    stale = env.config(partial_http_download=True, ota_resumption=True,
                       ota_image_bytes_written=offset, resume_etag='"old"',
                       resume_image_size=len(NEW))
    again = ho.esp_https_ota_begin(stale, env.fetcher, env.ota)
    assert again.start_offset == 0 and again.restarted
    ho.esp_https_ota_abort(again)


def test_partial_download_from_a_server_ignoring_range(env: Env) -> None:
    """A 200 to the first range is the whole image: used as is, never written past its end."""
    env.server.faults.ignore_range = True
    handle = env.download(env.config(partial_http_download=True, max_http_request_size=0x8000))
    ho.esp_https_ota_finish(handle)
    assert env.slot_image() == NEW
    assert len([r for r in env.server.faults.requests if r["method"] == "GET"]) == 1


def test_partial_download_refuses_200_to_a_later_range(env: Env) -> None:
    """Mid-download, a server that stops honouring Range must not be spliced in."""
    handle = ho.esp_https_ota_begin(env.config(partial_http_download=True,
                                               max_http_request_size=0x8000),
                                    env.fetcher, env.ota)
    while handle.binary_file_len < 0x8000:
        ho.esp_https_ota_perform(handle)
    env.server.faults.ignore_range = True
    with pytest.raises(EspError, match="ignored"):
        while ho.esp_https_ota_perform(handle) == ho.ESP_ERR_HTTPS_OTA_IN_PROGRESS:
            pass
    assert handle.binary_file_len == 0x8000
    ho.esp_https_ota_abort(handle)
