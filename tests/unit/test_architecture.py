"""The architecture rules of DEVELOPERS.md, checked on the source tree.

- imports point downward: cli -> demo | fleet -> server | client -> agent -> device -> crypto
  -> formats -> errors, with protocol/ below both agent/ and server/ (it imports only errors)
- only cli/ imports click or rich, or prints (typer is not used at all)
- every struct format string states its byte order
- the CLI's management commands do not load the server stack
- binary layouts live in formats/ (and crypto/): only they use the struct module
- formats/ and crypto/ have no import cycles, not even through function-level imports
- chip facts live on ChipSpec: no code branches on, or keys a table by, a chip's name
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "otaforge"

# layer -> rank; a module may import only from layers of lower or equal rank
RANK = {
    "errors": 0, "fsutil": 0, "protocol": 1, "formats": 1, "crypto": 2, "delta": 2,
    "device": 3,
    "agent": 4, "firmware": 4, "server": 5, "client": 5, "demo": 6, "fleet": 6, "cli": 7,
    "__main__": 8,
    "__init__": 0,
}
# layers of equal rank that must not import each other
INDEPENDENT = {frozenset({"protocol", "formats"}), frozenset({"server", "client"}),
               frozenset({"crypto", "delta"}), frozenset({"agent", "firmware"})}
UI_MODULES = {"typer", "click", "rich"}  # cli/ may use rich (progress bars); never typer
LAYOUT_LAYERS = {"formats", "crypto"}  # the only layers that may use the struct module


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_downward(path: Path) -> None:
    layer = _layer(path)
    tree = ast.parse(path.read_text())
    for lineno, name in _imports(tree):
        parts = name.split(".")
        if parts[0] == "otaforge" and len(parts) > 1:
            target = parts[1]
            assert RANK[target] <= RANK[layer], (
                f"{path.name}:{lineno}: {layer} must not import {name} ({target} is above it)"
            )
            assert frozenset({layer, target}) not in INDEPENDENT, (
                f"{path.name}:{lineno}: {layer} must not import {name} (they are independent)"
            )
        if layer != "cli":
            assert parts[0] not in UI_MODULES, (
                f"{path.name}:{lineno}: only cli/ may import {parts[0]}"
            )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_only_cli_prints(path: Path) -> None:
    if _layer(path) in ("cli", "__main__"):
        return
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{path.name}:{node.lineno}: print outside cli/"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_struct_formats_state_byte_order(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(
            func.value, ast.Name) else ""
        if owner == "struct" and name in {"Struct", "pack", "unpack", "pack_into",
                                          "unpack_from", "calcsize", "iter_unpack"}:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                assert first.value[:1] in "<>!", (
                    f"{path.name}:{node.lineno}: struct format {first.value!r} has no byte order"
                )


def test_management_commands_do_not_load_the_server_stack() -> None:
    """``otaforge fleet list`` against an unreachable server imports no FastAPI/SQLAlchemy."""
    code = (
        "import sys\n"
        "from otaforge.cli.main import main\n"
        "code = main(['fleet', 'list', '--server', 'https://127.0.0.1:9', '--token', 't'])\n"
        "assert code == 3, code\n"
        "heavy = sorted(m for m in ('fastapi', 'starlette', 'sqlalchemy', 'uvicorn', 'alembic',\n"
        "               'psycopg', 'otaforge.server') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"management command loaded {done.stdout.strip()}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_struct_only_in_formats_and_crypto(path: Path) -> None:
    if _layer(path) in LAYOUT_LAYERS:
        return
    tree = ast.parse(path.read_text())
    for lineno, name in _imports(tree):
        assert name.split(".")[0] != "struct", (
            f"{path.name}:{lineno}: imports struct: binary layouts belong in formats/ "
            "(add or use a from_bytes/to_bytes there)"
        )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert node.value.id != "struct", (
                f"{path.name}:{node.lineno}: struct.{node.attr} outside formats/ and crypto/"
            )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(["otaforge", *(parts[:-1] if parts[-1] == "__init__" else parts)])


def test_formats_and_crypto_have_no_import_cycles() -> None:
    """A lazy import inside a function counts: it is how a cycle hides behind a shim."""
    graph: dict[str, set[str]] = {}
    for path in _modules():
        if _layer(path) in LAYOUT_LAYERS:
            found = {name for _, name in _imports(ast.parse(path.read_text()))}
            graph[_module_name(path)] = found
    for mod in graph:
        graph[mod] = {dep for dep in graph[mod] if dep in graph and dep != mod}

    def cycle_from(start: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for dep in sorted(graph[node]):
                if dep == start:
                    return [*trail, dep]
                if dep not in trail:
                    stack.append((dep, [*trail, dep]))
        return None

    for mod in sorted(graph):
        cycle = cycle_from(mod)
        assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def _chip_names() -> set[str]:
    from otaforge.formats.chips import CHIPS

    return set(CHIPS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_chip_policy_is_data_on_chipspec(path: Path) -> None:
    """``if chip.name == "esp32"`` or ``{"esp32": ...}`` outside chips.py is a ChipSpec field
    waiting to be written."""
    if path.relative_to(SRC).as_posix() == "formats/chips.py":
        return
    names = _chip_names()

    def is_chip_name(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value in names

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            elements = [e for o in operands if isinstance(o, ast.Tuple | ast.Set | ast.List)
                        for e in o.elts]
            assert not any(is_chip_name(o) for o in [*operands, *elements]), (
                f"{path.name}:{node.lineno}: compares against a chip name: make it a ChipSpec "
                "field (formats/chips.py)"
            )
        if isinstance(node, ast.Dict):
            assert not any(is_chip_name(key) for key in node.keys), (
                f"{path.name}:{node.lineno}: a table keyed by chip name: make it a ChipSpec field"
            )
