"""The one mapping from HTTP answers and httpx failures to otaforge errors.

Every client (the agent's fetcher and device API, the management client) goes through it, so
a status means the same thing everywhere:

* 401 -> :class:`Unauthorized`, 404 -> :class:`NotFound`, 409 -> :class:`Conflict`, any other
  4xx -> :class:`ServerError` (the server refused: exit 1, never retried as is);
* 5xx and any other unexpected status -> :class:`HTTPStatusError`, a transport failure (the
  peer failed us: exit 3, retried later);
* httpx/TLS/socket failures -> :class:`ConnectionLost` (refused, reset, timed out) or
  :class:`TransportError` (server certificate not trusted by the pinned CA).

The server's problem+json ``reason`` is kept on the error (``ServerError.reason``).
"""

from __future__ import annotations

import ssl

import httpx

from otaforge.errors import (
    Conflict,
    ConnectionLost,
    HTTPStatusError,
    NotFound,
    ServerError,
    TransportError,
    Unauthorized,
)
from otaforge.protocol.problem import parse_problem

_REFUSALS: dict[int, type[ServerError]] = {401: Unauthorized, 404: NotFound, 409: Conflict}


def error_for_status(status: int, body: bytes, what: str) -> ServerError | HTTPStatusError:
    """The otaforge error for an answer with status ``status`` (not a success).

    Args:
        status: the HTTP status.
        body: the answer's body (problem+json, or anything else).
        what: the request, for the message (e.g. ``"POST https://h/api/v1/fleets"``).
    """
    problem = parse_problem(status, body)
    label = f"{status} {problem.reason}".strip()
    detail = f": {problem.detail}" if problem.detail else ""
    if 400 <= status < 500:
        cls = _REFUSALS.get(status, ServerError)
        return cls(f"{what}: server refused ({label}){detail}", status_code=status,
                   reason=problem.reason)
    return HTTPStatusError(f"{what}: HTTP {label}{detail}", status)



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
