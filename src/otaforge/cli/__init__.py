"""otaforge.cli."""
