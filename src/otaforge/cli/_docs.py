"""``docs/cli.md``: every command's ``--help``, made from :mod:`otaforge.cli._spec`.

Regenerate with ``python -m otaforge.cli._docs > docs/cli.md``; ``tests/cli/test_cli_spec.py``
fails when the file is out of date.
"""

from __future__ import annotations

import os
from unittest import mock

from otaforge.cli._help import group_help, root_help
from otaforge.cli._parser import MAX_WIDTH, command_parser
from otaforge.cli._spec import COMMANDS, GROUPS

HEADER = """# The otaforge command line

Generated from `src/otaforge/cli/_spec.py` (do not edit by hand):
`python -m otaforge.cli._docs > docs/cli.md`.

Exit codes: 0 ok; 1 refused or invalid (a bad signature, nothing boots, the
server said no); 2 bad input or usage; 3 transport (server unreachable, download
interrupted).
Shell completion: `otaforge completion bash|zsh|fish`.
"""


def _block(text: str) -> str:
    return f"```text\n{text.rstrip()}\n```\n"


def render() -> str:
    """The whole document (help at 80 columns, without environment defaults)."""
    with mock.patch.dict(os.environ, {"COLUMNS": str(MAX_WIDTH)}):
        parts = [HEADER, "## otaforge\n", _block(root_help())]
        for group in GROUPS:
            parts += [f"## otaforge {group}\n", _block(group_help(group))]
            for cmd in COMMANDS:
                if cmd.group == group:
                    parts += [f"### otaforge {cmd.path}\n",
                              _block(command_parser(cmd, environ={}).format_help())]
        for cmd in COMMANDS:
            if not cmd.group:
                parts += [f"## otaforge {cmd.name}\n",
                          _block(command_parser(cmd, environ={}).format_help())]
    return "\n".join(parts)


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
