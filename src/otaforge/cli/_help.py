"""``otaforge --help`` and ``otaforge GROUP --help``: listings made from the table.

Plain string building (argparse is imported only for a command's own parser): the root help
is benchmarked (< 60 ms).
"""

from __future__ import annotations

from otaforge.cli._spec import COMMANDS, GROUPS


def _listing(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join([f"{title}:", *(f"  {name:<{width}}{text}" for name, text in rows)])


def root_help() -> str:
    """``otaforge --help``: the groups and top-level commands (no argparse: start-up)."""
    groups = list(GROUPS.items())
    roots = [(c.name, c.help) for c in COMMANDS if not c.group]
    return "\n\n".join([
        "usage: otaforge [-h] [--version] COMMAND ...",
        "Over-the-air firmware updates for ESP32 fleets.",
        _listing("options", [("-h, --help", "show this help message and exit"),
                             ("--version", "print otaforge's version")]),
        _listing("command groups", groups), _listing("commands", roots),
        "Run 'otaforge COMMAND --help' for a command's options.",
    ]) + "\n"


def group_help(group: str) -> str:
    """``otaforge GROUP --help``: the group's commands."""
    rows = [(c.name, c.help) for c in COMMANDS if c.group == group]
    return "\n\n".join([
        f"usage: otaforge {group} [-h] COMMAND ...",
        GROUPS[group][:1].upper() + GROUPS[group][1:] + ".",
        _listing("options", [("-h, --help", "show this help message and exit")]),
        _listing("commands", rows),
        f"Run 'otaforge {group} COMMAND --help' for a command's options.",
    ]) + "\n"
