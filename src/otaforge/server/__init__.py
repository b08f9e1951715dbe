"""The otaforge update server: HTTPS firmware hosting and a device API.

``otaforge server init --dir DATA`` makes a private CA (``DATA/server_cert.pem``, the file a
device embeds), a server certificate, the database and ``DATA/admin.token``;
``otaforge server run --dir DATA`` serves HTTPS with uvicorn. The schema is served at
``/openapi.json``. Every error is ``application/problem+json`` with a ``reason``.

Device API (``Authorization: Bearer <device token | fleet enrollment token>``)::

    POST /api/v1/devices/{id}/check-in   {fleet, chip, version, image_sha256,
                                          running_partition, otadata_state, secure_version}
        204 no update | 200 {deployment_id, release_id, version, secure_version, size,
                             sha256, url, signature, next_check_in_s}
        header X-Next-Check-In-S on both; 503 + Retry-After when shedding load
    POST /api/v1/devices/{id}/events     {event_id, deployment_id, state, reason, bytes}
        201 recorded | 200 replay of the same event_id | 409 contradicts a finished
        deployment | 429 too many reports
    GET|HEAD /firmware/{sha256}.bin      Range / If-Range / If-None-Match, ETag "<sha256>"
    GET|HEAD /ota/{fleet}/{id}.bin       the image the device should run (stock
        esp_https_ota); 304 when it already runs it (If-None-Match, ?version=, last report),
        its eFuse secure_version would refuse it, it downloaded it completely or rolled it
        back (see ``stock``)
    GET|HEAD /dl/{secret}.bin            the same without any header: the per-device
        download secret (``device add`` prints it; rotate/revoke; redacted from logs)

Requests are counted against ``max_in_flight`` once authenticated (401 at once otherwise);
header and body read times and connections per client address are bounded per connection
(``guard``).

Management API (the bootstrap admin token, or a user's ``otfu_`` token with a role: viewer
reads, operator publishes/rolls out/pauses, admin manages users, fleets and devices):
``/api/v1/fleets``, ``/api/v1/fleets/{f}/releases``, ``/api/v1/fleets/{f}/channels/{c}``,
``/api/v1/fleets/{f}/devices``, ``/api/v1/devices``, ``/api/v1/devices/{id}/download-url``,
``/api/v1/users``, ``/api/v1/audit``, ``.../retire``, ``/metrics`` (Prometheus). Management
tokens are refused (403) on device routes. The dashboard is ``/ui/`` (session cookie + CSRF),
the API docs ``/docs`` and ``/redoc`` (packaged assets, no CDN). Every mutating management
request lands in the append-only audit log.

Modules: ``app`` (ASGI factory, errors, load shedding), ``fastpath`` (check-in and download
fast paths), ``routes_device`` / ``routes_admin``, ``checkin`` and ``service`` (business
rules), ``store`` (SQL + blobs), ``models`` / ``migrations`` / ``db``, ``ranges`` /
``download`` (HTTP Range), ``stock`` / ``download_urls`` / ``delivery`` (stock-device
downloads), ``guard`` / ``access_log`` (connection deadlines, log redaction), ``extras``
(the optional install), ``pki``, ``auth``, ``lifecycle`` (init/run/cert reissue), ``users``,
``deps`` (roles), ``audit``, ``observe`` (metrics, access log), ``config`` (settings from
TOML + environment), ``retire``, ``routes_ops``, ``docs``, ``ui`` (the dashboard). Report states,
refusal codes and problem+json are :mod:`otaforge.protocol`; the management client is
:mod:`otaforge.client.management`.
"""
