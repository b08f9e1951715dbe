"""``application/problem+json`` (RFC 9457): the body of every error the server answers.

The server builds bodies with :func:`problem_body`; clients read them with
:func:`parse_problem`. Beyond RFC 9457's members, ``reason`` is a machine-readable cause
(e.g. ``signature_invalid``) that scripts may act on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_DETAIL = 300  # characters of a problem's detail quoted in client-side messages


@dataclass(frozen=True)
class Problem:
    """A decoded problem+json body (or the start of a non-JSON error body).

    Attributes:
        status: the HTTP status.
        detail: what went wrong, for people.
        reason: the machine-readable cause ("" when the body did not say).
    """

    status: int
    detail: str
    reason: str = ""


def problem_body(status: int, detail: str, reason: str, title: str | None = None) -> dict[str, Any]:
    """The JSON object of a problem+json answer."""
    return {"type": "about:blank", "title": title or HTTPStatus(status).phrase,
            "status": status, "detail": detail, "reason": reason}


def parse_problem(status: int, raw: bytes) -> Problem:
    """The problem an error answer describes; any body is accepted (HTML, text, nothing)."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and ("detail" in body or "reason" in body):
        return Problem(status, str(body.get("detail") or "")[:MAX_DETAIL],
                       str(body.get("reason") or ""))
    text = raw[:MAX_DETAIL].decode("utf-8", errors="replace").strip()
    return Problem(status, text)
