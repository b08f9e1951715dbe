"""The optional parts of the install: the server stack (``otaforge[server]``) and the
PostgreSQL driver (``otaforge[postgres]``).

The base install is what the signing and format tools need; a command that serves or
migrates asks for its extra here first, so a missing one is one line naming the ``pip``
command instead of an ImportError traceback. This module imports nothing of the server stack.
"""

from __future__ import annotations

import importlib.util

from otaforge.errors import InputError

# import name -> distribution, in the order the message lists them
SERVER_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "sqlalchemy": "sqlalchemy",
                  "alembic": "alembic", "multipart": "python-multipart", "jinja2": "jinja2",
                  "prometheus_client": "prometheus-client",
                  "pydantic_settings": "pydantic-settings", "fastapi_offline": "fastapi-offline"}
POSTGRES_MODULES = {"psycopg": "psycopg"}
S3_MODULES = {"boto3": "boto3"}
EXTRAS = {"server": SERVER_MODULES, "postgres": POSTGRES_MODULES, "s3": S3_MODULES}


def missing(modules: dict[str, str]) -> list[str]:
    """The distributions of ``modules`` (import name -> distribution) that cannot be imported."""
    absent = []
    for name, dist in modules.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package is broken, or a blocked module
            found = False
        if not found:
            absent.append(dist)
    return absent


def require(extra: str, what: str) -> None:
    """Raise InputError (one line, with the ``pip`` command) unless ``extra`` is installed.

    Args:
        extra: "server", "postgres" or "s3".
        what: the command or feature that needs it, for the message.
    """
    modules = EXTRAS[extra]
    absent = missing(modules)
    if absent:
        raise InputError(f"{what} needs the {extra} extra ({', '.join(absent)} not installed): "
                         f"pip install 'otaforge[{extra}]'")


def require_server(what: str = "the update server") -> None:
    """``require("server", what)``."""
    require("server", what)


def require_database(url: str) -> None:
    """The server extra, and the postgres extra for a PostgreSQL URL."""
    require_server("the update server")
    if url.startswith(("postgresql", "postgres:")):
        require("postgres", "a PostgreSQL --database-url")
