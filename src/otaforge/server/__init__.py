"""otaforge.server."""
