"""The one mapping from httpx (and TLS/socket) failures to otaforge errors.

* refused, reset, timed out, closed mid-body -> :class:`ConnectionLost` (retried, resumed);
* server certificate not trusted by the pinned CA -> :class:`TransportError` (a
  configuration problem: retrying cannot help);
* anything else httpx raises -> :class:`TransportError`.

Kept apart from :mod:`otaforge.protocol.http_errors` so that code mapping statuses (the
agent's fetcher seam) does not import httpx.
"""

from __future__ import annotations

import ssl

import httpx

from otaforge.errors import ConnectionLost, TransportError


def _untrusted_certificate(err: BaseException) -> bool:
    seen: BaseException | None = err
    for _ in range(8):  # httpx -> httpcore -> ssl: the cause chain is short
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def transport_error(err: Exception, what: str) -> TransportError:
    """The otaforge error for an httpx (or TLS/socket) failure while sending ``what``."""
    if _untrusted_certificate(err):
        return TransportError(f"{what}: TLS server certificate not trusted by the pinned CA "
                              f"(is the CA file the server's server_cert.pem?): {err}")
    if isinstance(err, httpx.ConnectError):
        return ConnectionLost(f"{what}: cannot connect ({err}); is the server running there?")
    if isinstance(err, httpx.TimeoutException):
        return ConnectionLost(f"{what}: timed out ({err.__class__.__name__})")
    if isinstance(err, httpx.TransportError | ssl.SSLError | OSError):
        return ConnectionLost(f"{what}: connection lost: {err or err.__class__.__name__}")
    return TransportError(f"{what}: {err}")


HTTPX_FAILURES = (httpx.HTTPError, ssl.SSLError, OSError)
"""The exceptions :func:`transport_error` maps (catch these around an httpx call)."""
