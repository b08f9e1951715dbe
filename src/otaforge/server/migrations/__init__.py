"""Alembic migrations of the server database (run by ``otaforge.server.db.migrate``)."""
