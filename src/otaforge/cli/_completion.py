"""``otaforge completion bash|zsh|fish``: static completion scripts made from the table in
:mod:`otaforge.cli._spec` (groups, commands, every option, option choices).

The scripts never run otaforge while completing, so a TAB costs nothing. zsh uses the bash
script through ``bashcompinit`` (part of zsh).
"""

from __future__ import annotations

import argparse
import sys

from otaforge.cli._spec import COMMANDS, GROUPS, Cmd, Opt


def _spellings(opt: Opt) -> list[str]:
    """Every flag of ``opt``, with ``--no-X`` for a ``--X/--no-X`` option."""
    return [*opt.flags, f"--no-{opt.flags[0][2:]}"] if opt.kind == "bool" else list(opt.flags)


def _flags(cmd: Cmd) -> list[str]:
    return [f for o in cmd.options if not o.positional for f in _spellings(o)] + ["-h", "--help"]


def _choices(cmd: Cmd) -> list[tuple[Opt, str]]:
    return [(o, " ".join(o.choices)) for o in cmd.options if o.choices and not o.positional]


def _top_words() -> list[str]:
    return [*GROUPS, *(c.name for c in COMMANDS if not c.group), "-h", "--help", "--version"]


def _bash_cases() -> list[str]:
    lines: list[str] = []
    for cmd in COMMANDS:
        key = f'"{cmd.group} {cmd.name}"' if cmd.group else f'"{cmd.name} "*'
        lines.append(f"        {key})")
        for opt, words in _choices(cmd):
            pattern = "|".join(opt.flags)
            lines.append(f'            case "$prev" in {pattern}) '
                         f'COMPREPLY=($(compgen -W "{words}" -- "$cur")); return;; esac')
        positional = [o for o in cmd.options if o.positional and o.choices]
        if positional:
            words = " ".join(positional[0].choices or ())
            lines.append(f'            [[ "$cur" != -* ]] && {{ COMPREPLY=($(compgen -W '
                         f'"{words}" -- "$cur")); return; }}')
        lines.append(f'            opts="{" ".join(_flags(cmd))}";;')
    return lines


def bash() -> str:
    """The bash completion script (``eval "$(otaforge completion bash)"``)."""
    groups = []
    for group in GROUPS:
        names = " ".join(c.name for c in COMMANDS if c.group == group)
        groups.append(f'        {group}) COMPREPLY=($(compgen -W "{names} -h --help" '
                      f'-- "$cur")); return;;')
    return "\n".join([
        "# otaforge completion for bash: eval \"$(otaforge completion bash)\"",
        "_otaforge() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local opts=""',
        "    if [[ $COMP_CWORD -eq 1 ]]; then",
        f'        COMPREPLY=($(compgen -W "{" ".join(_top_words())}" -- "$cur")); return',
        "    fi",
        "    if [[ $COMP_CWORD -eq 2 ]]; then",
        '        case "${COMP_WORDS[1]}" in',
        *groups,
        "        esac",
        "    fi",
        '    case "${COMP_WORDS[1]} ${COMP_WORDS[2]}" in',
        *_bash_cases(),
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        "    else",
        '        COMPREPLY=($(compgen -f -- "$cur"))',
        "    fi",
        "}",
        "complete -o default -o bashdefault -F _otaforge otaforge",
        "",
    ])


def zsh() -> str:
    """The zsh completion script: the bash one through zsh's ``bashcompinit``."""
    return ("# otaforge completion for zsh: eval \"$(otaforge completion zsh)\"\n"
            "autoload -U +X compinit && compinit\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash())


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(cond: str, opt: Opt) -> str:
    parts = [f"complete -c otaforge -n {_fish_quote(cond)}"]
    for flag in opt.flags:
        if flag.startswith("--"):
            parts.append(f"-l {flag[2:]}")
        else:
            parts.append(f"-s {flag[1:]}")
    if opt.kind == "bool":
        parts.append(f"-l no-{opt.flags[0][2:]}")
    if opt.choices:
        parts.append(f"-x -a {_fish_quote(' '.join(opt.choices))}")
    elif opt.kind not in ("flag", "bool"):
        parts.append("-r")
    parts.append(f"-d {_fish_quote(opt.help)}")
    return " ".join(parts)


def fish() -> str:
    """The fish completion script (``otaforge completion fish > ~/.config/fish/...``)."""
    lines = ["# otaforge completion for fish", "complete -c otaforge -f",
             "complete -c otaforge -n '__fish_use_subcommand' -l version "
             "-d \"print otaforge's version\""]
    for group, text in GROUPS.items():
        lines.append(f"complete -c otaforge -n '__fish_use_subcommand' -a {group} "
                     f"-d {_fish_quote(text)}")
    for cmd in COMMANDS:
        if cmd.group:
            siblings = " ".join(c.name for c in COMMANDS if c.group == cmd.group)
            pick = _fish_quote(f"__fish_seen_subcommand_from {cmd.group}; and not "
                               f"__fish_seen_subcommand_from {siblings}")
            lines.append(f"complete -c otaforge -n {pick} -a {cmd.name} "
                         f"-d {_fish_quote(cmd.help)}")
            cond = (f"__fish_seen_subcommand_from {cmd.group}; and "
                    f"__fish_seen_subcommand_from {cmd.name}")
        else:
            lines.append(f"complete -c otaforge -n '__fish_use_subcommand' -a {cmd.name} "
                         f"-d {_fish_quote(cmd.help)}")
            cond = f"__fish_seen_subcommand_from {cmd.name}"
        for opt in cmd.options:
            if opt.positional:
                if opt.choices:
                    lines.append(f"complete -c otaforge -n {_fish_quote(cond)} -x -a "
                                 f"{_fish_quote(' '.join(opt.choices))}")
                else:
                    lines.append(f"complete -c otaforge -n {_fish_quote(cond)} -F")
                continue
            lines.append(_fish_option(cond, opt))
    return "\n".join(lines) + "\n"


SCRIPTS = {"bash": bash, "zsh": zsh, "fish": fish}


def main(args: argparse.Namespace) -> int:
    """``completion SHELL``: print the script."""
    sys.stdout.write(SCRIPTS[args.shell]())
    return 0
