"""Kconfig for host builds: option types and defaults, sdkconfig lines, ``sdkconfig.h``.

Only what a build needs: ``config``/``choice`` blocks with their type and first unconditional
``default`` (a conditional ``default X if Y`` is taken when ``Y`` is a set bool option), and
ESP-IDF's own defaults for the options otaforge's API layer and emulated bootloader read.
"""

from __future__ import annotations

import re

from otaforge.errors import InputError

Value = bool | int | str

# ESP-IDF defaults (v5.5 Kconfig) of the options the host layer and the bootloader read.
IDF_DEFAULTS: dict[str, Value] = {
    "LOG_DEFAULT_LEVEL": 3,
    "LOG_MAXIMUM_LEVEL": 3,
    "FREERTOS_HZ": 100,
    "ESP_TASK_WDT_EN": True,
    "ESP_TASK_WDT_INIT": True,
    "ESP_TASK_WDT_TIMEOUT_S": 5,
    "ESP_TASK_WDT_PANIC": False,
    "ESP_TASK_WDT_CHECK_IDLE_TASK_CPU0": True,
    "ESP_MAIN_TASK_STACK_SIZE": 3584,
    "BOOTLOADER_APP_ROLLBACK_ENABLE": False,
    "BOOTLOADER_APP_ANTI_ROLLBACK": False,
    "BOOTLOADER_APP_SECURE_VERSION": 0,
    "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD": 32,
    "BOOTLOADER_FACTORY_RESET": False,
    "BOOTLOADER_APP_TEST": False,
    "PARTITION_TABLE_OFFSET": 0x8000,
    "PARTITION_TABLE_CUSTOM": False,
    "PARTITION_TABLE_SINGLE_APP": True,
    "ESP_HTTPS_OTA_ALLOW_HTTP": False,
    "ESP_HTTPS_OTA_ENABLE_PARTIAL_DOWNLOAD": True,
    "ESPTOOLPY_FLASHSIZE_2MB": True,
    "APP_PROJECT_VER_FROM_CONFIG": False,
    "SECURE_BOOT": False,
    "SECURE_SIGNED_APPS_NO_SECURE_BOOT": False,
}
_HEX_OPTIONS = {"PARTITION_TABLE_OFFSET", "IDF_FIRMWARE_CHIP_ID"}
_CONFIG_LINE = re.compile(r"^\s*(menu)?config\s+(\w+)\s*$")
_TYPE_LINE = re.compile(r'^\s*(bool|tristate|int|hex|string)\b(?:\s+"[^"]*")?\s*$')
_DEFAULT_LINE = re.compile(r'^\s*default\s+("(?:[^"\\]|\\.)*"|\S+)(?:\s+if\s+(!?\w+))?\s*$')


class KconfigTable:
    """Options by name (without ``CONFIG_``): type, value, and choice groups."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}
        self.values: dict[str, Value] = {}
        self.choices: list[set[str]] = []

    @classmethod
    def with_idf_defaults(cls, chip_name: str, chip_id: int) -> KconfigTable:
        """A table holding ESP-IDF's defaults for ``chip_name``."""
        table = cls()
        for name, value in IDF_DEFAULTS.items():
            table.declare(name, _type_of(name, value))
            table.values[name] = value
        table.choices.append({n for n in IDF_DEFAULTS if n.startswith("ESPTOOLPY_FLASHSIZE_")}
                             | {f"ESPTOOLPY_FLASHSIZE_{s}MB" for s in (1, 4, 8, 16, 32)})
        table.choices.append({f"PARTITION_TABLE_{kind}" for kind in (
            "SINGLE_APP", "SINGLE_APP_LARGE", "TWO_OTA", "TWO_OTA_LARGE", "CUSTOM")})
        for name, value in (("IDF_TARGET", chip_name), (f"IDF_TARGET_{chip_name.upper()}", True),
                            ("IDF_FIRMWARE_CHIP_ID", chip_id)):
            table.declare(name, _type_of(name, value))
            table.values[name] = value
        return table

    def declare(self, name: str, kind: str) -> None:
        """Record ``name``'s type (the first declaration wins, as in Kconfig)."""
        self.types.setdefault(name, kind)

    def set(self, name: str, value: Value) -> None:
        """Set an option; a choice member set to y unsets the others of its choice."""
        self.values[name] = value
        if value is True:
            for group in self.choices:
                if name in group:
                    for other in group - {name}:
                        self.values[other] = False

    def resolved(self) -> dict[str, Value]:
        """Every option with a value (derived ESPTOOLPY_FLASHSIZE string included)."""
        out = dict(self.values)
        for name, value in self.values.items():
            if name.startswith("ESPTOOLPY_FLASHSIZE_") and value is True:
                out["ESPTOOLPY_FLASHSIZE"] = name.removeprefix("ESPTOOLPY_FLASHSIZE_")
        return out


def _type_of(name: str, value: Value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "hex" if name in _HEX_OPTIONS else "int"
    return "string"


def _parse_value(raw: str, kind: str, where: str) -> Value:
    if kind in ("bool", "tristate"):
        return raw in ("y", "m")
    if kind in ("int", "hex"):
        try:
            return int(raw, 0)
        except ValueError:
            raise InputError(f"{where}: {raw!r} is not a number") from None
    return _unquote(raw)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return bytes(raw[1:-1], "utf-8").decode("unicode_escape")
    return raw


def parse_kconfig(text: str, table: KconfigTable, where: str) -> None:
    """Add the ``config`` options and ``choice`` groups of a Kconfig file to ``table``."""
    current: str | None = None
    choice: set[str] | None = None
    choice_default: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        match = _CONFIG_LINE.match(line)
        if match:
            current = match.group(2)
            if choice is not None:
                choice.add(current)
                table.declare(current, "bool")
            continue
        if stripped.startswith("choice"):
            choice, choice_default, current = set(), None, None
            continue
        if stripped == "endchoice" and choice is not None:
            table.choices.append(choice)
            if choice_default is not None and not any(table.values.get(n) for n in choice):
                table.set(choice_default, True)
            for member in choice:
                table.values.setdefault(member, False)
            choice, current = None, None
            continue
        type_match = _TYPE_LINE.match(line)
        if type_match and current is not None:
            table.declare(current, type_match.group(1))
            continue
        default = _DEFAULT_LINE.match(line)
        if default is None:
            continue
        raw, cond = default.group(1), default.group(2)
        if cond is not None and not _condition(table, cond):
            continue
        if current is None and choice is not None:
            choice_default = choice_default or raw
        elif current is not None and current not in table.values:
            kind = table.types.get(current, "string")
            table.values[current] = _parse_value(raw, kind, f"{where}:{number}")


def _condition(table: KconfigTable, cond: str) -> bool:
    negate = cond.startswith("!")
    value = bool(table.values.get(cond.lstrip("!"), False))
    return not value if negate else value


def parse_sdkconfig_line(line: str, where: str) -> tuple[str, Value] | None:
    """One ``sdkconfig.defaults`` line as (name without CONFIG_, value); None for blanks.

    Raises:
        InputError: a line that is not ``CONFIG_NAME=VALUE`` or ``# CONFIG_NAME is not set``.
    """
    stripped = line.strip()
    unset = re.match(r"^#\s*CONFIG_(\w+) is not set$", stripped)
    if unset:
        return unset.group(1), False
    if not stripped or stripped.startswith("#"):
        return None
    name, sep, raw = stripped.partition("=")
    name = name.strip().removeprefix("CONFIG_")
    if not sep or not re.fullmatch(r"\w+", name):
        raise InputError(f"{where}: expected CONFIG_NAME=VALUE, got {line.strip()!r}")
    raw = raw.strip()
    if raw in ("y", "n"):
        return name, raw == "y"
    if raw.startswith('"'):
        return name, _unquote(raw)
    try:
        return name, int(raw, 0)
    except ValueError:
        return name, raw


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def sdkconfig_h(config: dict[str, Value]) -> str:
    """``sdkconfig.h`` as ESP-IDF generates it: y -> 1, n -> absent, strings quoted."""
    lines = ["/* Automatically generated by otaforge firmware build; do not edit */",
             "#pragma once"]
    for name in sorted(config):
        value = config[name]
        if value is False:
            continue
        if value is True:
            text = "1"
        elif isinstance(value, int):
            text = f"0x{value:x}" if name in _HEX_OPTIONS else str(value)
        else:
            text = _c_string(value)
        lines.append(f"#define CONFIG_{name} {text}")
    return "\n".join(lines) + "\n"
