"""Engine, sessions and migrations; SQLite (WAL) by default, PostgreSQL by URL.

SQLite connections run in WAL mode with ``synchronous=FULL`` so a committed event is on disk
before the server answers 2xx; readers never block the writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from otaforge.errors import ConnectionLost, InputError
from otaforge.server.extras import require

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                   "busy_timeout=10000"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the pragmas or pool settings the server needs.

    Raises:
        InputError: ``url`` is not a database URL SQLAlchemy can use.
    """
    url = normalise_url(url)
    if url.startswith("postgresql"):
        require("postgres", "a PostgreSQL --database-url")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False},
                                   pool_size=20, max_overflow=20)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, TypeError, ValueError) as err:
        raise InputError(f"--database-url {_safe(url)!r}: not a usable database URL ({err}); "
                         "expected e.g. postgresql://user@host/db or sqlite:///path") from None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision.

    Raises:
        ConnectionLost: the database cannot be reached or refuses the login.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except DBAPIError as err:
        first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        raise ConnectionLost(f"database {_safe(str(engine.url))}: {first}") from None


def _safe(url: str) -> str:
    """``url`` without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (we answer from them)."""
    return sessionmaker(engine, expire_on_commit=False)
