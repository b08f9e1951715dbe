"""otaforge.device."""
