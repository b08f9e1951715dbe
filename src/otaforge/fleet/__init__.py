"""otaforge.fleet."""
