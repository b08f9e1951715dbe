"""The one CLI definition (``cli/_spec.py``) and everything made from it cannot drift apart.

- every option of every command is reachable under each of its spellings and lands on the
  attribute its handler reads; every handler exists and takes the parsed namespace
- ``-h`` and ``--help`` print the same text, at most 80 columns wide, naming every option
- the bash completion (run in a real bash) offers every option of every command, and the
  fish script declares each one; ``docs/cli.md`` is the current rendering
- no command is defined outside the table: no parser or typer app anywhere else in cli/
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import subprocess
from pathlib import Path

import pytest

from otaforge.cli import _completion, _docs
from otaforge.cli._parser import command_parser
from otaforge.cli._spec import COMMANDS, GROUPS, Cmd, Opt
from otaforge.cli.main import main
from tests.conftest import ROOT

CLI = ROOT / "src" / "otaforge" / "cli"
IDS = [c.path for c in COMMANDS]


def _value(opt: Opt) -> str:
    if opt.choices:
        return opt.choices[-1]
    if opt.kind in ("int", "float"):
        return str(opt.hi if opt.hi is not None else (opt.lo or 0) + 1)
    return f"value-of-{opt.dest}"


def _required_argv(cmd: Cmd, skip: Opt | None = None) -> list[str]:
    argv: list[str] = []
    for opt in cmd.options:
        if opt is skip or not opt.required:
            continue
        argv += [_value(opt)] if opt.positional else [opt.flags[0], _value(opt)]
    return argv


def _expected(opt: Opt, text: str) -> object:
    value: object = text
    if opt.kind == "int":
        value = int(text)
    elif opt.kind == "float":
        value = float(text)
    return [value] if opt.many else value


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_every_option_is_reachable_under_every_spelling(cmd: Cmd) -> None:
    parser = command_parser(cmd, environ={})
    for opt in cmd.options:
        base = _required_argv(cmd, skip=opt)
        if opt.positional:
            ns = parser.parse_args(_required_argv(cmd))
            assert hasattr(ns, opt.dest), opt.dest
            continue
        for flag in opt.flags:
            if opt.kind == "flag":
                ns = parser.parse_args([*base, flag])
                assert getattr(ns, opt.dest) is True, flag
                assert getattr(parser.parse_args(base), opt.dest) is False, flag
            elif opt.kind == "bool":
                assert getattr(parser.parse_args([*base, flag]), opt.dest) is True
                assert getattr(parser.parse_args([*base, f"--no-{flag[2:]}"]), opt.dest) is False
            else:
                text = _value(opt)
                ns = parser.parse_args([*base, flag, text])
                assert getattr(ns, opt.dest) == _expected(opt, text), flag


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_handler_exists_and_takes_the_namespace(cmd: Cmd) -> None:
    module, _, name = cmd.handler.partition(":")
    handler = getattr(importlib.import_module(module), name)
    params = list(inspect.signature(handler).parameters.values())
    assert len(params) == 1 and params[0].annotation in ("argparse.Namespace",
                                                         argparse.Namespace), cmd.handler
    source = inspect.getsource(handler)
    used = set()
    for node in ast.walk(ast.parse(inspect.cleandoc("\n" + source))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == params[0].name:
            used.add(node.attr)
    dests = {o.dest for o in cmd.options}
    assert used <= dests, f"{cmd.handler} reads {sorted(used - dests)}, not in the table"


def test_int_ranges_are_checked_with_the_option_named(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["server", "run", "--dir", "d", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --port 70000: must be at most 65535")
    assert len(err.splitlines()) == 1


def _help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", ["80", "200"])
@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_help_fits_80_columns_and_names_every_option(cmd: Cmd, columns: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    argv = cmd.path.split()
    short, long = _help(capsys, [*argv, "-h"]), _help(capsys, [*argv, "--help"])
    assert short == long
    assert all(len(line) <= 80 for line in long.splitlines()), long
    words = set(long.replace(",", " ").replace("[", " ").replace("]", " ").split())
    for opt in cmd.options:
        if opt.hidden:
            continue
        names = [opt.flags[0].upper()] if opt.positional else list(opt.flags)
        for name in names:
            assert name in words, f"{cmd.path}: {name} missing from --help"
    assert "seed's" not in long and "the seed" not in long  # project jargon


def test_group_and_root_help_fit_and_list_everything(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    root = _help(capsys, ["--help"])
    assert root == _help(capsys, ["-h"])
    assert all(len(line) <= 80 for line in root.splitlines()), root
    for group in GROUPS:
        assert f"  {group} " in root
        text = _help(capsys, [group, "--help"])
        assert all(len(line) <= 80 for line in text.splitlines()), text
        for cmd in COMMANDS:
            if cmd.group == group:
                assert f"  {cmd.name} " in text
    for cmd in COMMANDS:
        if not cmd.group:
            assert f"  {cmd.name} " in root


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from otaforge import __version__

    assert _help(capsys, ["--version"]) == f"otaforge {__version__}\n"


def test_no_short_option_has_two_meanings() -> None:
    meaning: dict[str, set[str]] = {}
    for cmd in COMMANDS:
        for opt in cmd.options:
            for flag in opt.flags:
                if flag.startswith("-") and not flag.startswith("--"):
                    meaning.setdefault(flag, set()).add(opt.dest)
    assert {f: d for f, d in meaning.items() if len(d) > 1} == {}
    assert meaning.get("-v") in (None, {"verbose"})


def test_bash_completion_offers_every_option_of_every_command(tmp_path: Path) -> None:
    script = tmp_path / "otaforge.bash"
    script.write_text(_completion.bash())
    probe = [f"source {script}"]
    for cmd in COMMANDS:
        words = " ".join(["otaforge", *cmd.path.split(), "-"])
        probe += [f"COMP_WORDS=({words}); COMP_CWORD={len(cmd.path.split()) + 1}; _otaforge",
                  f'echo "{cmd.path}|${{COMPREPLY[*]}}"']
    probe += ['COMP_WORDS=(otaforge ""); COMP_CWORD=1; _otaforge; echo "|${COMPREPLY[*]}"']
    done = subprocess.run(["bash", "-c", "\n".join(probe)], capture_output=True, text=True,
                          check=True, timeout=60)
    offered = dict(line.split("|", 1) for line in done.stdout.splitlines())
    for cmd in COMMANDS:
        got = set(offered[cmd.path].split())
        want = {f for o in cmd.options if not o.positional for f in _completion._spellings(o)
                if f[1] == "-"}
        assert want <= got, f"{cmd.path}: completion lacks {sorted(want - got)}"
    top = set(offered[""].split())
    assert set(GROUPS) <= top and {"demo", "completion", "--version"} <= top


def test_fish_and_zsh_scripts_declare_every_option() -> None:
    fish = _completion.fish()
    for cmd in COMMANDS:
        for opt in cmd.options:
            for flag in opt.flags if not opt.positional else ():
                spelled = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
                assert spelled in fish, f"{cmd.path}: {flag}"
    assert "bashcompinit" in _completion.zsh() and "_otaforge" in _completion.zsh()


def test_completion_command_prints_the_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert _help(capsys, ["completion", shell]) == _completion.SCRIPTS[shell]()


def test_docs_are_current() -> None:
    """docs/cli.md is regenerated by ``python -m otaforge.cli._docs > docs/cli.md``."""
    assert (ROOT / "docs" / "cli.md").read_text() == _docs.render()


def test_no_command_is_defined_outside_the_table() -> None:
    """Only _parser.py builds argparse parsers; nothing in src/ imports typer or click."""
    for path in sorted((ROOT / "src" / "otaforge").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                assert not any(n.split(".")[0] in ("typer", "click") for n in names), path
            if path.parent == CLI and path.name != "_parser.py" \
                    and isinstance(node, ast.Attribute):
                assert node.attr not in ("add_argument", "add_parser", "ArgumentParser",
                                         "add_subparsers"), f"{path.name}:{node.lineno}"
    handlers = {c.handler for c in COMMANDS}
    for path in sorted(CLI.glob("*.py")):
        module = f"otaforge.cli.{path.stem}"
        for name, func in inspect.getmembers(importlib.import_module(module),
                                             inspect.isfunction):
            if func.__module__ != module or name.startswith("_"):
                continue
            params = list(inspect.signature(func).parameters.values())
            if len(params) == 1 and params[0].annotation in ("argparse.Namespace",
                                                             argparse.Namespace):
                assert f"{module}:{name}" in handlers, f"{module}:{name} is not in the table"


def test_environment_supplies_required_options(monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = next(c for c in COMMANDS if c.path == "fleet list")
    monkeypatch.setenv("OTAFORGE_SERVER", "https://x:1")
    monkeypatch.setenv("OTAFORGE_TOKEN", "t")
    ns = command_parser(cmd).parse_args([])
    assert (ns.server, ns.token) == ("https://x:1", "t")
    with pytest.raises(SystemExit):
        command_parser(cmd, environ={}).parse_args([])
    assert os.environ["OTAFORGE_SERVER"] == "https://x:1"


def test_abbreviated_options_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """``--rev`` for ``--revoke`` would break the day another ``--rev...`` option is added."""
    assert main(["image", "verify", "--rev", "1", "x.bin"]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_only_the_command_run_is_imported(shared_fixtures: Path) -> None:
    """``image info`` loads its own handler module and no other command's (nor argparse's
    help machinery for --help, nor any handler at all)."""
    import sys

    app = shared_fixtures / "esptool" / "esp32-app-template.bin"
    handlers = sorted({c.handler.partition(":")[0] for c in COMMANDS})
    code = ("import io, sys; sys.stdout = io.StringIO(); from otaforge.cli.main import main; "
            "rc = main(sys.argv[1:]); sys.stdout = sys.__stdout__; "
            f"print(rc, sorted(m for m in {handlers!r} if m in sys.modules), "
            "'argparse' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for argv, expect in ((["image", "info", str(app)], "0 ['otaforge.cli.image'] True"),
                         (["--help"], "0 [] False"), (["image", "--help"], "0 [] False")):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, env=env, check=False, timeout=60)
        assert done.stdout.strip() == expect, done.stdout + done.stderr
