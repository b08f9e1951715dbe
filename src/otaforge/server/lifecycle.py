"""``server init`` (create a data directory) and ``server run`` (serve it over HTTPS)."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otaforge.errors import Conflict, InputError
from otaforge.fsutil import atomic_write, ensure_dir, first_file_parent
from otaforge.server.auth import new_token
from otaforge.server.extras import require_database
from otaforge.server.pki import create_pki
from otaforge.server.settings import Settings

SETUP_FILES = ("server_cert.pem", "admin.token", "otaforge.db", "tls", "blobs")


@dataclass(frozen=True)
class InitResult:
    """What ``init_server`` made."""

    data_dir: Path
    ca_cert: Path
    admin_token: Path
    hostnames: tuple[str, ...]
    database_url: str


def init_server(data_dir: Path, hostnames: list[str] | None = None,
                database_url: str | None = None) -> InitResult:
    """Create the CA, server certificate, database, blob store and admin token in ``data_dir``.

    Raises:
        Conflict: ``data_dir`` already holds a server setup (nothing is overwritten).
        InputError: ``data_dir`` is a file, or a host name is malformed.
    """
    if data_dir.exists() and not data_dir.is_dir():
        raise InputError(f"{data_dir}: exists and is not a directory")
    blocker = first_file_parent(data_dir)
    if blocker is not None:
        raise InputError(f"{data_dir}: cannot create the directory ({blocker} is a file, not a "
                         "directory): pick another --dir")
    present = [n for n in SETUP_FILES if (data_dir / n).exists()]
    if present:
        raise Conflict(f"{data_dir} already holds a server setup ({', '.join(present)}); "
                       "refusing to overwrite it: pick an empty --dir")
    settings = Settings(data_dir=data_dir, database_url=database_url)
    require_database(settings.url)
    from otaforge.server.db import make_engine, migrate

    pki = create_pki(hostnames)
    engine = make_engine(settings.url)  # a bad URL is refused before anything is written
    made_dir = not data_dir.exists()
    try:
        ensure_dir(settings.tls_dir)
        ensure_dir(settings.blob_dir)
        atomic_write(settings.ca_key_path, pki.ca_key, 0o600)
        atomic_write(settings.tls_key_path, pki.key, 0o600)
        atomic_write(settings.tls_cert_path, pki.cert, 0o644)
        atomic_write(settings.admin_token_path, (new_token("admin") + "\n").encode(), 0o600)
        migrate(engine)
        # last: its presence marks a complete setup
        atomic_write(settings.ca_cert_path, pki.ca_cert, 0o644)
    except BaseException:
        _remove_partial(settings, made_dir)
        raise
    finally:
        engine.dispose()
    return InitResult(data_dir, settings.ca_cert_path, settings.admin_token_path,
                      tuple(hostnames or ("localhost", "127.0.0.1")), settings.url)


@dataclass(frozen=True)
class ReissueResult:
    """What ``reissue_cert`` made."""

    cert: Path
    hostnames: tuple[str, ...]
    not_after: str


def reissue_cert(data_dir: Path, hostnames: list[str] | None = None,
                 days: int = 3650) -> ReissueResult:
    """A new server certificate for ``hostnames`` (default: the current one's names) from the
    same CA, so devices that embed ``server_cert.pem`` keep trusting the server. The
    certificate and key are replaced atomically; a running server picks them up on restart.

    Raises:
        InputError: ``data_dir`` is not a server setup, or a name or ``days`` is invalid.
    """
    from otaforge.server.pki import cert_names, reissue

    settings = Settings(data_dir=data_dir)
    check_setup(settings)
    if not settings.ca_key_path.is_file():
        raise InputError(f"{settings.ca_key_path} is missing: the CA key is needed to issue a "
                         "certificate (put it back from where it is kept offline)")
    names = hostnames or cert_names(settings.tls_cert_path.read_bytes())
    cert, key, expiry = reissue(settings.ca_cert_path.read_bytes(),
                                settings.ca_key_path.read_bytes(), names, days)
    atomic_write(settings.tls_key_path, key, 0o600)
    atomic_write(settings.tls_cert_path, cert, 0o644)
    return ReissueResult(settings.tls_cert_path, tuple(dict.fromkeys(names)),
                         expiry.isoformat())


def _remove_partial(settings: Settings, made_dir: bool) -> None:
    """Undo a failed ``init_server``: it only ever adds the SETUP_FILES (checked absent)."""
    import shutil

    for name in SETUP_FILES:
        path = settings.data_dir / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # absent, or its folder never came to be
                path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            (settings.data_dir / f"otaforge.db{suffix}").unlink(missing_ok=True)
    if made_dir:
        with contextlib.suppress(OSError):
            settings.data_dir.rmdir()


def check_setup(settings: Settings) -> None:
    """Raise InputError unless ``settings.data_dir`` was made by ``server init``."""
    for path in (settings.ca_cert_path, settings.admin_token_path, settings.tls_cert_path,
                 settings.tls_key_path):
        if not path.is_file():
            raise InputError(f"{path} is missing: run 'otaforge server init --dir "
                             f"{settings.data_dir}' first")


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The server-side TLS context (TLS 1.2+, the chain and key from ``server init``)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls_cert_path, settings.tls_key_path)
    return ctx


def run_server(settings: Settings, host: str = "127.0.0.1", port: int = 8443,
               log_level: str = "warning") -> None:
    """Serve HTTPS with uvicorn until interrupted."""
    require_database(settings.url)
    import uvicorn

    from otaforge.server.app import create_app

    check_setup(settings)
    uvicorn.Server(uvicorn_config(create_app(settings), settings, host, port, log_level)).run()


def uvicorn_config(app: Any, settings: Settings, host: str, port: int,
                   log_level: str = "warning", **options: Any) -> Any:
    """The uvicorn configuration every otaforge server runs with (``server run``, the demo's
    loopback server, the tests): TLS from ``server init``, the connection guards of
    :mod:`otaforge.server.guard`, and access logs with download secrets redacted.
    ``options`` are further ``uvicorn.Config`` arguments."""
    import uvicorn

    from otaforge.server.access_log import redact_access_log
    from otaforge.server.guard import Limits, guarded_protocol

    limits = Limits(header_timeout_s=settings.header_timeout_s,
                    body_timeout_s=settings.body_timeout_s,
                    upload_timeout_s=settings.upload_timeout_s,
                    max_connections_per_client=settings.max_connections_per_client)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            ssl_certfile=str(settings.tls_cert_path),
                            ssl_keyfile=str(settings.tls_key_path),
                            timeout_keep_alive=30, lifespan="on",
                            loop=_best("uvloop", "asyncio"),
                            http=guarded_protocol(_http_protocol(), limits), **options)
    redact_access_log()
    return config


def _http_protocol() -> type[Any]:
    """uvicorn's httptools protocol when httptools is installed, else its h11 one."""
    if _best("httptools", "h11") == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return H11Protocol


def _best(fast: str, fallback: str) -> str:
    import importlib.util

    return fast if importlib.util.find_spec(fast) is not None else fallback
