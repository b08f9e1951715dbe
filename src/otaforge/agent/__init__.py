"""otaforge.agent."""
