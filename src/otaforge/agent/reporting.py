"""The agent's two outputs besides the flash: its timeline (events for the caller) and its
reports to the server (best effort, replay-safe).
"""

from __future__ import annotations

from typing import Any

from otaforge.agent.results import AgentEvent, EventSink
from otaforge.agent.server_api import ServerClient
from otaforge.errors import RefusalCode, ServerError, TransportError
from otaforge.protocol.reports import Report, ReportState

# refusals of a report that retrying cannot change: the deployment ended, is gone, or the
# report contradicts it
TERMINAL_REFUSALS = frozenset({409, 410, 422})


def _ignore(_event: AgentEvent) -> None:
    return None


class Timeline:
    """Sends :class:`AgentEvent` values to the caller's sink (or nowhere)."""

    def __init__(self, sink: EventSink | None = None) -> None:
        self.sink = sink or _ignore

    def emit(self, kind: str, message: str, **data: Any) -> None:
        """One event: ``kind`` (machine name), ``message`` (text), details."""
        self.sink(AgentEvent(kind, message, data))


class Reporter:
    """Reports deployment progress to the server; every report is also a timeline event.

    Args:
        client: the server's device API.
        timeline: where the outcome of each report is told.
    """

    def __init__(self, client: ServerClient, timeline: Timeline) -> None:
        self.client = client
        self.timeline = timeline

    def report(self, state: ReportState, deployment: str | None, reason: str | None = None,
               nbytes: int | None = None, nonce: str = "",
               code: RefusalCode | None = None, method: str | None = None) -> bool:
        """Best-effort report; False when the server could not be told (retried later).

        Returns True also when the server refused it for good (409/410/422): the report
        must not be retried then.
        """
        dep = int(deployment) if deployment and deployment.isdigit() else None
        report = Report(state, dep, reason, nbytes, nonce, code, method)
        emit = self.timeline.emit
        try:
            new = self.client.report(report)
        except ServerError as err:
            emit("report_refused", f"server refused the {state} report: HTTP "
                 f"{err.status_code}", state=str(state), status=err.status_code)
            return err.status_code in TERMINAL_REFUSALS
        except TransportError as err:
            emit("report_failed", f"could not report {state}: {err}", state=str(state))
            return False
        shown = f"{code}: {reason}" if code is not None else reason
        emit("report", f"reported {state}" + (f" ({shown})" if shown else ""),
             state=str(state), reason=reason, code=str(code) if code else None, bytes=nbytes,
             event_id=report.event_id, duplicate=not new)
        return True
