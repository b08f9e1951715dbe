"""otaforge.crypto."""
