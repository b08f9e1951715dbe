"""The one mapping from HTTP answers to otaforge errors.

Every client (the agent's fetcher and device API, the management client) goes through it, so
a status means the same thing everywhere:

* 401 -> :class:`Unauthorized`, 404 -> :class:`NotFound`, 409 -> :class:`Conflict`, any other
  4xx -> :class:`ServerError` (the server refused: exit 1, never retried as is);
* 5xx and any other unexpected status -> :class:`HTTPStatusError`, a transport failure (the
  peer failed us: exit 3, retried later).

The server's problem+json ``reason`` is kept on the error (``ServerError.reason``). Failures
below HTTP (httpx, TLS, sockets) are mapped by :mod:`otaforge.protocol.httpx_errors`.
"""

from __future__ import annotations

from otaforge.errors import (
    Conflict,
    HTTPStatusError,
    NotFound,
    ServerError,
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
