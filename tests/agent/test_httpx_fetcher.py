"""The real fetcher against a real TLS server on loopback: pinning, Range, drops, keep-alive."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import trustme

from otaforge.agent.fetcher import Request, request_json
from otaforge.agent.httpx_fetcher import HttpxFetcher
from otaforge.errors import ConnectionLost, HTTPStatusError, InputError, NotFound, TransportError
from tests.agent.faultserver import FaultServer, etag_of, make_ca

BLOB = os.urandom(100_000)


@pytest.fixture
def pki() -> tuple[trustme.CA, trustme.LeafCert, bytes]:
    return make_ca()


@pytest.fixture
def server(pki: tuple[trustme.CA, trustme.LeafCert, bytes]) -> Iterator[FaultServer]:
    with FaultServer(pki[1], {"/fw.bin": BLOB}) as srv:
        yield srv


def _get(fetcher: HttpxFetcher, url: str, headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, str], bytes]:
    with fetcher.open(Request("GET", url, headers or {})) as resp:
        return resp.status, dict(resp.headers), b"".join(resp.chunks)


def test_pinned_ca_downloads_whole_image(server: FaultServer, pki: tuple) -> None:
    with HttpxFetcher(pki[2]) as fetcher:
        status, headers, body = _get(fetcher, server.url + "/fw.bin")
    assert (status, body) == (200, BLOB)
    assert headers["etag"] == etag_of(BLOB)
    # no compressed bodies (esp_http_client asks for none): Content-Length is the image size
    assert server.faults.requests[0]["accept-encoding"] == "identity"


def test_unknown_ca_is_refused_before_any_byte(server: FaultServer) -> None:
    other_ca = trustme.CA()
    with HttpxFetcher(other_ca.cert_pem.bytes()) as fetcher, \
            pytest.raises(TransportError, match="not trusted by the pinned CA"):
        fetcher.open(Request("GET", server.url + "/fw.bin"))
    assert server.faults.requests == []


def test_hostname_not_in_certificate_is_refused(pki: tuple) -> None:
    leaf = pki[0].issue_cert("update.example.com")
    with FaultServer(leaf, {"/fw.bin": BLOB}) as srv, HttpxFetcher(pki[2]) as fetcher, \
            pytest.raises(TransportError):
        fetcher.open(Request("GET", srv.url + "/fw.bin"))


def test_range_with_matching_if_range_is_206(server: FaultServer, pki: tuple) -> None:
    with HttpxFetcher(pki[2]) as fetcher:
        status, headers, body = _get(fetcher, server.url + "/fw.bin",
                                     {"Range": "bytes=4096-", "If-Range": etag_of(BLOB)})
    assert status == 206
    assert body == BLOB[4096:]
    assert headers["content-range"] == f"bytes 4096-{len(BLOB) - 1}/{len(BLOB)}"


def test_drop_mid_transfer_raises_connection_lost(server: FaultServer, pki: tuple) -> None:
    server.faults.drop_after = [10_000]
    got = bytearray()
    with HttpxFetcher(pki[2]) as fetcher, pytest.raises(ConnectionLost), \
            fetcher.open(Request("GET", server.url + "/fw.bin")) as resp:
        for chunk in resp.chunks:
            got += chunk
    assert bytes(got) == BLOB[:len(got)]
    assert len(got) <= 10_000


def test_stalled_transfer_times_out_as_connection_lost(server: FaultServer,
                                                       pki: tuple) -> None:
    """Matrix row 49: a server that stops sending mid-body is a timeout, not a hang."""
    server.faults.stall_after = 5000
    server.faults.stall_s = 2.0
    with HttpxFetcher(pki[2], timeout=0.3) as fetcher, \
            pytest.raises(ConnectionLost, match="timed out"), \
            fetcher.open(Request("GET", server.url + "/fw.bin")) as resp:
        for _ in resp.chunks:
            pass


def test_default_timeout_is_esp_http_client_10_s(pki: tuple) -> None:
    fetcher = HttpxFetcher(pki[2])
    assert fetcher._client.timeout.read == 10.0  # timeout_ms = 10000
    fetcher.close()


def test_keep_alive_reuses_one_connection(server: FaultServer, pki: tuple) -> None:
    ports: set[int] = set()
    original = server.httpd.RequestHandlerClass.setup

    def spy(handler: object) -> None:
        ports.add(handler.client_address[1])  # type: ignore[attr-defined]
        original(handler)  # type: ignore[arg-type]

    server.httpd.RequestHandlerClass.setup = spy  # type: ignore[method-assign]
    with HttpxFetcher(pki[2]) as fetcher:
        for _ in range(3):
            assert _get(fetcher, server.url + "/fw.bin")[0] == 200
    assert len(ports) == 1


def test_connection_refused_is_connection_lost(pki: tuple) -> None:
    with HttpxFetcher(pki[2], timeout=2.0) as fetcher, pytest.raises(ConnectionLost):
        fetcher.open(Request("GET", "https://127.0.0.1:9/fw.bin"))


def test_request_json_maps_error_status(server: FaultServer, pki: tuple) -> None:
    with HttpxFetcher(pki[2]) as fetcher, pytest.raises(NotFound) as info:
        request_json(fetcher, "GET", server.url + "/missing")
    assert info.value.status_code == 404


def test_request_json_maps_server_failure_to_transport_error(server: FaultServer,
                                                            pki: tuple) -> None:
    server.faults.status = 503
    with HttpxFetcher(pki[2]) as fetcher, pytest.raises(HTTPStatusError) as info:
        request_json(fetcher, "GET", server.url + "/fw.bin")
    assert info.value.status_code == 503 and isinstance(info.value, TransportError)


def test_bad_ca_file_is_input_error(tmp_path: object) -> None:
    with pytest.raises(InputError, match="not a usable PEM"):
        HttpxFetcher(b"not a certificate")


@pytest.mark.parametrize("how", ["http:// URL", "redirect to http://"])
def test_plain_http_is_never_fetched(server: FaultServer, pki: tuple, how: str) -> None:
    """Pinned TLS only: a manifest URL or a redirect to plain HTTP is refused, not followed."""
    plain = server.url.replace("https://", "http://") + "/plain.bin"
    url = plain
    if how.startswith("redirect"):
        server.faults.redirect_to = plain
        url = server.url + "/fw.bin"
    with HttpxFetcher(pki[2]) as fetcher, pytest.raises(TransportError, match="only https"):
        fetcher.open(Request("GET", url))
    assert len(server.faults.requests) == (1 if how.startswith("redirect") else 0)


def test_redirect_to_https_is_followed(server: FaultServer, pki: tuple) -> None:
    server.files["/moved.bin"] = BLOB
    server.faults.redirect_to = server.url + "/moved.bin"
    with HttpxFetcher(pki[2]) as fetcher:
        status, _headers, body = _get(fetcher, server.url + "/fw.bin")
    assert (status, body) == (200, BLOB)
    assert [r["path"] for r in server.faults.requests] == ["/fw.bin", "/moved.bin"]



def test_expired_server_certificate_is_refused(pki: tuple) -> None:
    """Matrix row 41: a certificate past its notAfter, from the pinned CA, is refused."""
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    leaf = pki[0].issue_cert("127.0.0.1", not_before=now - datetime.timedelta(days=30),
                             not_after=now - datetime.timedelta(days=1))
    with FaultServer(leaf, {"/fw.bin": BLOB}) as srv, HttpxFetcher(pki[2]) as fetcher, \
            pytest.raises(TransportError, match="not trusted"):
        fetcher.open(Request("GET", srv.url + "/fw.bin"))


def test_two_root_bundle_survives_a_ca_rotation(pki: tuple) -> None:
    """Matrix row 42: firmware that pins old + new CA keeps updating after the server moves
    to a certificate from the new CA; pinning only the old CA does not."""
    new_ca = trustme.CA()
    leaf = new_ca.issue_cert("127.0.0.1")
    with FaultServer(leaf, {"/fw.bin": BLOB}) as srv:
        with HttpxFetcher(pki[2] + new_ca.cert_pem.bytes()) as both:
            assert _get(both, srv.url + "/fw.bin")[0] == 200
        with HttpxFetcher(pki[2]) as old_only, pytest.raises(TransportError):
            old_only.open(Request("GET", srv.url + "/fw.bin"))
