"""otaforge.formats."""
