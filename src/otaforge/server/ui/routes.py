"""Dashboard routes (filled in by the dashboard step)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    return None
