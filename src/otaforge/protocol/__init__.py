"""The update protocol: what the agent and the server say to each other, defined once.

Both :mod:`otaforge.agent` and :mod:`otaforge.server` (and the management client) import it;
it imports only :mod:`otaforge.errors`:

* :mod:`.reports` -- report states, otadata states, the check-in and report bodies, and the
  refusal codes a device may send (:class:`otaforge.errors.RefusalCode`);
* :mod:`.problem` -- ``application/problem+json`` (RFC 9457) bodies, built and parsed;
* :mod:`.http_errors` -- the one mapping of HTTP statuses to otaforge errors, and
  :mod:`.httpx_errors` -- the one mapping of httpx/TLS/socket failures, used by every client.
"""
