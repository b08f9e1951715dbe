"""``server init``: certificates for the given names, refusal to overwrite, the schema that
the Alembic migrations create matches the models (SQLite and PostgreSQL), SQLite in WAL mode."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import text

from otaforge.errors import Conflict, ConnectionLost, InputError
from otaforge.server.db import make_engine, migrate
from otaforge.server.lifecycle import init_server
from otaforge.server.models import Base
from otaforge.server.pki import create_pki
from otaforge.server.settings import Settings


def _sans(pem: bytes) -> list[object]:
    leaf = x509.load_pem_x509_certificate(pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*san.get_values_for_type(x509.DNSName), *san.get_values_for_type(x509.IPAddress)]


def test_default_names_and_ca_chain() -> None:
    pki = create_pki()
    assert _sans(pki.cert) == ["localhost", ipaddress.ip_address("127.0.0.1")]
    ca = x509.load_pem_x509_certificate(pki.ca_cert)
    leaf = x509.load_pem_x509_certificate(pki.cert)
    assert leaf.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf.verify_directly_issued_by(ca)


def test_hostnames_and_ips() -> None:
    pki = create_pki(["updates.example.com", "10.0.0.5", "::1"])
    assert _sans(pki.cert) == ["updates.example.com", ipaddress.ip_address("10.0.0.5"),
                               ipaddress.ip_address("::1")]


@pytest.mark.parametrize("bad", ["", "has space", "http://x", "a/b"])
def test_bad_hostname_refused(bad: str) -> None:
    with pytest.raises(InputError):
        create_pki([bad])


def test_init_layout_and_refusal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_server(data)
    settings = Settings(data_dir=data)
    for path in (settings.ca_cert_path, settings.admin_token_path, settings.tls_cert_path,
                 settings.tls_key_path, settings.ca_key_path, data / "otaforge.db"):
        assert path.is_file(), path
    assert settings.blob_dir.is_dir()
    for secret in (settings.admin_token_path, settings.tls_key_path, settings.ca_key_path):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    before = settings.ca_cert_path.read_bytes()
    with pytest.raises(Conflict, match="refusing to overwrite"):
        init_server(data)
    assert settings.ca_cert_path.read_bytes() == before


def test_init_on_a_file_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError):
        init_server(tmp_path / "f")


def test_migrations_match_models(backend: str, database_url: str | None,
                                 tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert diff == [], backend
    assert version == "0003"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()


@pytest.mark.parametrize(("name", "url", "error"), [
    ("not a URL", "notaurl", InputError),
    ("no driver installed", "mysql://u@h/db", InputError),
    ("database unreachable", "postgresql://nobody@127.0.0.1:1/x", ConnectionLost),
    ("sqlite in a missing directory", "sqlite:////nonexistent-otaforge/x.db", ConnectionLost),
])
def test_init_with_bad_database_leaves_nothing(tmp_path: Path, name: str, url: str,
                                               error: type[Exception]) -> None:
    """A failed init must not leave a half setup that the next init refuses to overwrite."""
    data = tmp_path / "data"
    with pytest.raises(error):
        init_server(data, database_url=url)
    assert not data.exists(), name
    init_server(data)  # the retry works
    assert (data / "server_cert.pem").is_file()


def test_failed_init_keeps_unrelated_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "README").write_text("mine")
    with pytest.raises(ConnectionLost):
        init_server(data, database_url="postgresql://nobody@127.0.0.1:1/x")
    assert sorted(p.name for p in data.iterdir()) == ["README"]
