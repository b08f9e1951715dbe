"""What the simulated devices cost in memory, measured on the objects themselves.

A device is its :class:`~otaforge.fleet.population.SimDevice` and everything reachable from
it that the run does not share: its flash's sector map and the sectors only it holds, its
eFuses, bootloader and OTA state, its agent state sector. What every device shares -- the
composed factory image, the content-addressed sector pool, the verification cache, the
clock, the app registries -- is reachable from the :class:`~otaforge.fleet.population.Population`
and counted once, as ``shared_bytes``. Measured on a sample of devices (deterministic: evenly
spaced indices), by walking the object graph with :func:`gc.get_referents` and adding
:func:`sys.getsizeof`.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from otaforge.fleet.population import Population, SimDevice

SAMPLE = 200
_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
         types.MethodType, types.CodeType)


@dataclass(frozen=True)
class MemoryStats:
    """Memory of one run's devices.

    Attributes:
        devices: fleet size.
        sampled: devices measured.
        per_device_bytes: mean bytes a device holds alone (objects not shared with others).
        max_device_bytes: the largest device of the sample.
        private_sector_bytes: mean flash sector bytes a device holds alone (not pooled).
        shared_bytes: bytes shared by every device (base image, pool, caches), once.
        pooled_sectors: sectors in the content-addressed pool.
    """

    devices: int
    sampled: int
    per_device_bytes: float
    max_device_bytes: int
    private_sector_bytes: float
    shared_bytes: int
    pooled_sectors: int

    def to_json(self) -> dict[str, float | int]:
        return {"devices": self.devices, "sampled": self.sampled,
                "per_device_kib": round(self.per_device_bytes / 1024, 1),
                "max_device_kib": round(self.max_device_bytes / 1024, 1),
                "private_sector_kib": round(self.private_sector_bytes / 1024, 1),
                "shared_mib": round(self.shared_bytes / 2**20, 1),
                "pooled_sectors": self.pooled_sectors}


def _walk(roots: Iterable[object], seen: set[int]) -> int:
    """Bytes of every object reachable from ``roots`` not in ``seen`` (which grows)."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def measure(devices: Sequence[SimDevice], population: Population,
            sample: int = SAMPLE) -> MemoryStats:
    """Measure ``sample`` evenly spaced devices against what ``population`` shares."""
    shared: set[int] = set()
    shared_bytes = _walk([population], shared)
    step = max(1, len(devices) // max(1, sample))
    picked = list(devices[::step])[:sample]
    sizes = [_walk([sd], set(shared)) for sd in picked]
    pooled = population.pool.sectors
    sectors = [sd.flash.private_bytes(pooled) for sd in picked]
    n = max(1, len(picked))
    return MemoryStats(len(devices), len(picked), sum(sizes) / n, max(sizes, default=0),
                       sum(sectors) / n, shared_bytes, len(pooled))
