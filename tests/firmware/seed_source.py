"""The seed's three C snippets, cut verbatim out of ../shared/seed/ (never copied here)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SEED_NAME = "000_d81468eb94c3044b.txt"


def seed_path() -> Path:
    """The seed file beside the repository (OTAFORGE_SHARED_FIXTURES/../seed)."""
    fixtures = os.environ.get("OTAFORGE_SHARED_FIXTURES")
    shared = Path(fixtures).parent if fixtures else Path(__file__).resolve().parents[3] / "shared"
    return shared / "seed" / SEED_NAME


@dataclass(frozen=True)
class Seed:
    """The snippets and the seed's own build files, as text."""

    start_ota: str
    start_ota_with_progress: str
    app_main: str
    component_register: str
    partitions_csv: str
    sdkconfig: str


def _block(lines: list[str], first: str, stop: str) -> str:
    """Lines from the one equal to ``first`` up to (not including) the one starting ``stop``."""
    start = lines.index(first)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(stop))
    return "\n".join(lines[start:end]) + "\n"


def _function(lines: list[str], signature: str) -> str:
    """The function starting at ``signature`` through its closing ``}`` line."""
    start = lines.index(signature)
    depth = 0
    for end in range(start, len(lines)):
        depth += lines[end].count("{") - lines[end].count("}")
        if depth == 0 and "}" in lines[end]:
            return "\n".join(lines[start : end + 1]) + "\n"
    raise ValueError(f"{signature}: no closing brace in the seed")


def load_seed() -> Seed:
    """Cut the seed into its snippets (each exactly as written there)."""
    lines = seed_path().read_text(encoding="utf-8").splitlines()
    start_ota = _block(lines, '#include "esp_https_ota.h"',
                       "esp_err_t start_ota_with_progress")
    progress = _function(lines, "esp_err_t start_ota_with_progress(const char *url)")
    app_main = _block(lines, '#include "esp_ota_ops.h"', "Self-test should verify")
    register = _block(lines, "idf_component_register(", "# Generate signing key")
    partitions = _block(lines, "# Name, Type, SubType, Offset, Size, Flags", "Critical:")
    sdkconfig = _block(lines, "CONFIG_PARTITION_TABLE_CUSTOM=y", "#include")
    return Seed(start_ota, progress, app_main, register, partitions, sdkconfig)
