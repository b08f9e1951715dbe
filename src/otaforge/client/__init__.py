"""Clients of the update server's management API, for the CLI and the demo.

Kept out of :mod:`otaforge.server` on purpose: talking to a server needs httpx and
:mod:`otaforge.protocol`, never the server stack (FastAPI, SQLAlchemy, uvicorn).
"""
