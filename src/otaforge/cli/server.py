"""``otaforge server``: create a server data directory (``init``) and serve it (``run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from otaforge.cli._common import handle_errors
from otaforge.server.extras import require_server

DataDir = Annotated[Path, typer.Option("--dir", help="Server data directory.")]


def init(
    data_dir: DataDir,
    hostname: Annotated[list[str] | None, typer.Option(
        "--hostname", help="DNS name or IP the certificate is valid for (repeatable; default "
        "localhost and 127.0.0.1).")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="SQLAlchemy URL (default: SQLite in --dir).")] = None,
) -> None:
    """Create a private CA, a server certificate, the database, blob store and admin token."""
    from otaforge.server.lifecycle import init_server

    with handle_errors():
        require_server("otaforge server init")
        result = init_server(data_dir, hostname, database_url)
    typer.echo(f"created {result.data_dir}")
    typer.echo(f"  CA certificate (embed in firmware): {result.ca_cert}")
    typer.echo(f"  admin token: {result.admin_token}")
    typer.echo(f"  certificate valid for: {', '.join(result.hostnames)}")
    typer.echo(f"next: otaforge server run --dir {result.data_dir}")


def run(
    data_dir: DataDir,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8443,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="OTAFORGE_DATABASE_URL",
        help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in --dir).")
    ] = None,
    max_in_flight: Annotated[int, typer.Option(
        "--max-in-flight", min=1,
        help="Requests served at once before 503 + Retry-After.")] = 256,
    check_in_interval: Annotated[int, typer.Option(
        "--check-in-interval", min=1,
        help="Seconds between device check-ins (hint, +-20%).")] = 300,
    public_url: Annotated[str | None, typer.Option(
        "--public-url", help="Base URL written into manifests (default: the request's).")
    ] = None,
    max_connections_per_client: Annotated[int, typer.Option(
        "--max-connections-per-client", min=1,
        help="Connections one client address may hold open.")] = 64,
    header_timeout: Annotated[float, typer.Option(
        "--header-timeout", min=0.1, help="Seconds a client has to send request headers.")
    ] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        "--body-timeout", min=0.1, help="Seconds a client has to send a request body.")
    ] = 30.0,
    upload_timeout: Annotated[float, typer.Option(
        "--upload-timeout", min=0.1, help="Seconds for the body of a release upload.")
    ] = 300.0,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
) -> None:
    """Serve the update server over HTTPS with the certificate from ``server init``."""
    from otaforge.server.lifecycle import check_setup, run_server
    from otaforge.server.settings import Settings

    settings = Settings(data_dir=data_dir, database_url=database_url,
                        max_in_flight=max_in_flight, check_in_interval_s=check_in_interval,
                        public_url=public_url, header_timeout_s=header_timeout,
                        body_timeout_s=body_timeout, upload_timeout_s=upload_timeout,
                        max_connections_per_client=max_connections_per_client)
    with handle_errors():
        require_server("otaforge server run")
        check_setup(settings)
        typer.echo(f"otaforge server on https://{host}:{port} (data {data_dir})", err=True)
        run_server(settings, host, port, log_level)


def wait(
    server: Annotated[str, typer.Option("--server", envvar="OTAFORGE_SERVER",
                                        help="Server URL, e.g. https://localhost:8443.")],
    ca: Annotated[Path | None, typer.Option("--ca", envvar="OTAFORGE_CA",
                                            help="CA certificate to pin (DATA/server_cert.pem).")
                  ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0,
                                           help="Seconds to wait before giving up.")] = 30.0,
) -> None:
    """Wait until a server answers (e.g. after `server run ... &`); exit 3 on timeout."""
    from otaforge.client.management import ManagementClient

    with handle_errors(), ManagementClient(server, "", ca, timeout=5.0) as client:
        client.wait_until_up(timeout)
    typer.echo(f"{server} is up")


def register(app: typer.Typer) -> None:
    """Add ``init``, ``run`` and ``wait`` to the ``server`` group."""
    app.command("init")(init)
    app.command("run")(run)
    app.command("wait")(wait)
