"""The simulated devices' HTTPS client against the real server: TLS pinned to the server's
CA (another CA is refused as a TLS failure, not a dropped connection), kept-alive
connections reused across requests, a download and a report open at once, only the
server's own URLs fetched."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
import trustme

from otaforge.agent.fetcher import Request, request_json
from otaforge.demo.local_server import LocalServer, ServerInfo
from otaforge.errors import ConnectionLost, TransportError
from otaforge.fleet.wire import WireFetcher


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    with LocalServer(tmp_path_factory.mktemp("wire") / "server") as info:
        yield info


def _fleets(fetcher: WireFetcher, info: ServerInfo) -> object:
    return request_json(fetcher, "GET", f"{info.url}/api/v1/fleets",
                        headers={"Authorization": f"Bearer {info.admin_token}"})[1]


def test_requests_reuse_one_kept_alive_connection(server: ServerInfo,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    connects = []
    real = http.client.HTTPSConnection.connect

    def connect(self: http.client.HTTPSConnection) -> None:
        connects.append(self.port)
        real(self)

    monkeypatch.setattr(http.client.HTTPSConnection, "connect", connect)
    with WireFetcher(server.url, server.ca_pem) as fetcher:
        answers = [_fleets(fetcher, server) for _ in range(20)]
    assert answers == [[]] * 20
    assert len(connects) == 1


def test_a_second_request_while_a_body_is_open_gets_its_own_connection(
        server: ServerInfo) -> None:
    with WireFetcher(server.url, server.ca_pem) as fetcher:
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        with fetcher.open(Request("GET", f"{server.url}/api/v1/fleets", headers)) as first:
            assert _fleets(fetcher, server) == []  # the agent reports mid-download
            assert first.read_all(1024) == b"[]"


def test_another_ca_is_a_tls_failure_not_a_dropped_connection(server: ServerInfo) -> None:
    other = trustme.CA().cert_pem.bytes()
    with WireFetcher(server.url, other) as fetcher, pytest.raises(TransportError) as err:
        _fleets(fetcher, server)
    assert not isinstance(err.value, ConnectionLost)
    assert "TLS verification failed" in str(err.value)


def test_only_the_servers_own_https_urls_are_fetched(server: ServerInfo) -> None:
    with WireFetcher(server.url, server.ca_pem) as fetcher, \
            pytest.raises(TransportError, match="not a URL of"):
        fetcher.open(Request("GET", "https://example.invalid/api/v1/fleets"))
    with pytest.raises(TransportError, match="only https"):
        WireFetcher(server.url.replace("https", "http"), server.ca_pem)
