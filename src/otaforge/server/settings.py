"""Where a server keeps its files, and the knobs ``server run`` exposes.

Layout of a data directory made by ``otaforge server init --dir DATA``::

    DATA/server_cert.pem      the CA certificate devices pin (EMBED_TXTFILES it)
    DATA/admin.token          the management token (mode 0600)
    DATA/otaforge.db          the SQLite database (unless --database-url names another)
    DATA/blobs/ab/abcd….bin   firmware images, stored once by SHA-256
    DATA/tls/server.pem       server certificate + CA (the TLS chain)
    DATA/tls/server.key       server private key (mode 0600)
    DATA/tls/ca.key           CA private key (mode 0600; keep it offline)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Server configuration.

    Attributes:
        data_dir: the directory ``server init`` created.
        database_url: SQLAlchemy URL; ``None`` means SQLite in ``data_dir``.
        max_in_flight: requests served at once before answering 503 + Retry-After.
        retry_after_s: the Retry-After value sent when shedding load.
        check_in_interval_s: the base of the next_check_in_s hint.
        check_in_jitter: relative jitter of that hint (0.2 means +-20%).
        max_failures: failed/rolled-back attempts of one release before a device stops
            being offered it (NervesHub's penalty box).
        max_upload_bytes: largest image accepted by the upload endpoint.
        max_reports_per_minute: reports one device may send per minute before 429
            (earlier reports stay recorded).
        chunk_size: bytes per read when streaming firmware.
        public_url: base URL written into manifests; ``None`` uses the request's own.
        stale_deployment_s: a deployment with no report for this long no longer holds one of
            its channel's concurrent-update slots (an offline device must not stall a
            rollout; abort it to free the slot sooner).
        delta_workers: threads making delta patches in the background.
        delta_max_ratio: a patch is offered only when smaller than this share of the full
            image.
        blob_store: where images and patches are stored: ``s3://BUCKET[/PREFIX]``, a
            directory, or None for ``DATA/blobs`` (see :mod:`otaforge.server.blobs`).
        s3_endpoint: the S3 endpoint URL; None reads ``OTAFORGE_S3_ENDPOINT`` (else AWS).
        blob_redirect_s: 0 proxies downloads (devices pin our CA); N > 0 answers
            ``/firmware/{sha256}.bin`` on an S3 store with a 307 to a presigned URL valid N
            seconds (for clients that trust the store's certificate; the stock routes
            always proxy: they count what they serve).
        rollout_tick_s: wall seconds between the background evaluations of rollouts whose
            gates are due (by the server's clock; check-ins evaluate due ones too).
        rollout_eval_on_check_in: a check-in evaluates its rollout's gates when they are
            due; False leaves it to the background tick and ``POST .../evaluate`` (a
            simulator that steps virtual time ticks ``store.rollouts.tick()`` itself, so the
            order of its check-ins cannot change a decision).
        session_ttl_s: how long a dashboard login lasts.
        access_log: one JSON line per request on stderr (batched, at least once a
            second).
        cookie_secure: mark the dashboard's cookies ``Secure`` (HTTPS only).
    """

    data_dir: Path
    database_url: str | None = None
    max_in_flight: int = 256
    retry_after_s: int = 5
    check_in_interval_s: int = 300
    check_in_jitter: float = 0.2
    max_failures: int = 3
    max_upload_bytes: int = 16 * 1024 * 1024
    max_reports_per_minute: int = 120
    chunk_size: int = 256 * 1024
    public_url: str | None = None
    stale_deployment_s: int = 86_400
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    upload_timeout_s: float = 300.0
    max_connections_per_client: int = 64
    delta_workers: int = 1
    delta_max_ratio: float = 0.5
    blob_store: str | None = None
    s3_endpoint: str | None = None
    blob_redirect_s: int = 0
    rollout_tick_s: float = 5.0
    rollout_eval_on_check_in: bool = True
    session_ttl_s: int = 12 * 3600
    access_log: bool = True
    cookie_secure: bool = True

    @property
    def ca_cert_path(self) -> Path:
        return self.data_dir / "server_cert.pem"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def tls_cert_path(self) -> Path:
        return self.tls_dir / "server.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def ca_key_path(self) -> Path:
        return self.tls_dir / "ca.key"

    @property
    def url(self) -> str:
        """The effective database URL."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'otaforge.db').resolve()}"

    def admin_token(self) -> str:
        """The admin token from ``admin.token`` (stripped)."""
        return self.admin_token_path.read_text(encoding="utf-8").strip()
