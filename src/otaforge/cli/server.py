"""``otaforge server``: create a server data directory (``init``), serve it (``run``), and
wait until a server answers (``wait``)."""

from __future__ import annotations

import argparse
import sys


def init(args: argparse.Namespace) -> int:
    """``server init --dir DIR``: private CA, certificate, database, blobs, admin token."""
    from pathlib import Path

    from otaforge.server.extras import require_server

    require_server("otaforge server init")
    from otaforge.server.lifecycle import init_server

    names = [*args.hostname, *_ips(args.ip)]
    result = init_server(Path(args.dir), names or None, args.database_url)
    print(f"created {result.data_dir}")
    print(f"  CA certificate (embed in firmware): {result.ca_cert}")
    print(f"  admin token: {result.admin_token}")
    print(f"  certificate valid for: {', '.join(result.hostnames)}")
    print(f"next: otaforge server run --dir {result.data_dir}")
    return 0


def _ips(values: list[str]) -> list[str]:
    import ipaddress

    from otaforge.errors import InputError

    for value in values:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise InputError(f"--ip {value!r}: not an IPv4 or IPv6 address (names go to "
                             "--hostname)") from None
    return list(values)


def run(args: argparse.Namespace) -> int:
    """``server run --dir DIR``: serve over HTTPS with the certificate from ``server init``;
    settings from the command line over OTAFORGE_* over the config file (``server.config``)."""
    from pathlib import Path

    from otaforge.server.extras import require_server

    require_server("otaforge server run")
    from otaforge.server.config import load_config
    from otaforge.server.lifecycle import check_setup, run_server

    data = Path(args.dir)
    cfg = load_config(
        data, Path(args.config) if args.config else None, host=args.host, port=args.port,
        log_level=args.log_level, database_url=args.database_url,
        max_in_flight=args.max_in_flight, check_in_interval_s=args.check_in_interval,
        public_url=args.public_url, header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout, upload_timeout_s=args.upload_timeout,
        max_connections_per_client=args.max_connections_per_client,
        max_upload_bytes=args.max_upload_bytes, max_failures=args.max_failures,
        stale_deployment_s=args.stale_deployment,
        blob_store=args.blob_store or None, rollout_tick_s=args.rollout_tick,
        blob_redirect_s=args.blob_redirect)
    settings = cfg.to_settings(data)
    check_setup(settings)
    from otaforge.errors import InputError
    from otaforge.server.blobs import open_blob_store

    blobs = open_blob_store(settings.blob_store, settings.blob_dir)
    blobs.check()  # a wrong bucket or credentials: one line now, not 503s later
    if settings.blob_redirect_s and not blobs.remote:
        raise InputError("--blob-redirect needs an S3 --blob-store (a directory has no URL "
                         "to redirect to)")
    sys.stderr.write(f"otaforge server on https://{cfg.host}:{cfg.port} (data {args.dir}, "
                     f"blobs {blobs.url}; dashboard /ui/, API docs /docs)\n")
    run_server(settings, cfg.host, cfg.port, cfg.log_level)
    return 0


def cert(args: argparse.Namespace) -> int:
    """``server cert reissue --dir DIR [--hostname N]... [--ip A]... [--days N]``."""
    from pathlib import Path

    from otaforge.server.extras import require_server

    require_server("otaforge server cert")
    from otaforge.server.lifecycle import reissue_cert

    names = [*args.hostname, *_ips(args.ip)]
    result = reissue_cert(Path(args.dir), names or None, args.days)
    print(f"reissued {result.cert} (same CA: devices need no change)")
    print(f"  valid for: {', '.join(result.hostnames)}")
    print(f"  expires: {result.not_after}")
    print("restart 'otaforge server run' to serve it")
    return 0


def wait(args: argparse.Namespace) -> int:
    """``server wait``: until the server answers; exit 3 on timeout."""
    from pathlib import Path

    from otaforge.client.management import ManagementClient

    ca = Path(args.ca) if args.ca else None
    with ManagementClient(args.server, "", ca, timeout=5.0) as client:
        client.wait_until_up(args.timeout)
    print(f"{args.server} is up")
    return 0
