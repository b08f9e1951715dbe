"""The web dashboard at ``/ui/`` (see :mod:`otaforge.server.ui.routes`)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Mount the dashboard's routes and packaged static assets on ``app``."""
    from otaforge.server.ui import routes

    routes.install(app)
