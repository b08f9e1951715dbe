"""otaforge: over-the-air firmware updates for ESP32 fleets.

Layers (imports point downward only)::

    cli -> server | fleet -> agent -> device -> crypto -> formats -> errors
"""

__version__ = "0.1.0"
