"""An ESP-IDF project as ``idf.py build`` reads it: components, sources, embeds, Kconfig.

* the top ``CMakeLists.txt``: ``project(NAME)``, ``set(PROJECT_VER ...)``,
  ``set(EXTRA_COMPONENT_DIRS ...)`` (``${CMAKE_CURRENT_LIST_DIR}`` / ``${PROJECT_DIR}``
  expanded);
* components: ``main/``, every ``components/*`` with a ``CMakeLists.txt``, and each
  ``EXTRA_COMPONENT_DIRS`` entry (a component itself, or a directory of components); each
  ``idf_component_register(SRCS ... SRC_DIRS ... INCLUDE_DIRS ... PRIV_INCLUDE_DIRS ...
  EMBED_FILES ... EMBED_TXTFILES ...)``;
* configuration: ESP-IDF's own defaults for the options the host layer reads, then the
  components' ``Kconfig``/``Kconfig.projbuild`` defaults, then ``sdkconfig.defaults``, then
  ``sdkconfig`` when present (what ``idf.py menuconfig`` saved), then
  ``-D NAME=VALUE`` overrides (a choice member set to ``y`` unsets its siblings);
* the version: ``PROJECT_VER`` in CMake, else ``version.txt``, else ``"1"`` (as ESP-IDF does
  without git).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from otaforge.errors import InputError
from otaforge.firmware.kconfig import KconfigTable, Value, parse_kconfig, parse_sdkconfig_line


@dataclass(frozen=True)
class Component:
    """One ``idf_component_register`` call."""

    name: str
    directory: Path
    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...]
    priv_include_dirs: tuple[Path, ...]
    embed_files: tuple[Path, ...]
    embed_txtfiles: tuple[Path, ...]


@dataclass(frozen=True)
class Project:
    """What the build needs from a project directory."""

    directory: Path
    name: str
    version: str
    components: tuple[Component, ...]
    config: dict[str, Value] = field(default_factory=dict)


_COMMENT = re.compile(r"#[^\n]*")
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_KEYWORDS = ("SRCS", "SRC_DIRS", "EXCLUDE_SRCS", "INCLUDE_DIRS", "PRIV_INCLUDE_DIRS", "REQUIRES",
             "PRIV_REQUIRES", "LDFRAGMENTS", "REQUIRED_IDF_TARGETS", "EMBED_FILES",
             "EMBED_TXTFILES", "KCONFIG", "KCONFIG_PROJBUILD", "WHOLE_ARCHIVE")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


def _calls(text: str, command: str) -> list[list[str]]:
    """The argument tokens of every ``command(...)`` in CMake ``text`` (comments removed)."""
    clean = _COMMENT.sub("", text)
    out = []
    for match in re.finditer(rf"\b{command}\s*\(", clean, flags=re.IGNORECASE):
        depth, i = 1, match.end()
        while i < len(clean) and depth:
            depth += {"(": 1, ")": -1}.get(clean[i], 0)
            i += 1
        body = clean[match.end() : i - 1]
        out.append([m.group(1) if m.group(1) is not None else m.group(2)
                    for m in _TOKEN.finditer(body)])
    return out


def _expand(token: str, where: Path, project_dir: Path) -> str:
    return (token.replace("${CMAKE_CURRENT_LIST_DIR}", str(where))
            .replace("${CMAKE_CURRENT_SOURCE_DIR}", str(where))
            .replace("${PROJECT_DIR}", str(project_dir))
            .replace("${COMPONENT_DIR}", str(where)))


def _sets(text: str, where: Path, project_dir: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for args in _calls(text, "set"):
        if args:
            out[args[0]] = [_expand(a, where, project_dir) for a in args[1:]
                            if a not in ("CACHE", "STRING", "PATH", "INTERNAL")]
    return out


def _component(directory: Path, project_dir: Path) -> Component | None:
    cmake = directory / "CMakeLists.txt"
    if not cmake.is_file():
        return None
    calls = _calls(_read(cmake), "idf_component_register")
    if not calls:
        return None
    groups: dict[str, list[str]] = {}
    current = ""
    for token in calls[0]:
        if token in _KEYWORDS:
            current = token
            groups.setdefault(current, [])
        elif current:
            groups[current].append(_expand(token, directory, project_dir))

    def paths(key: str) -> list[Path]:
        return [(directory / p).resolve() for p in groups.get(key, [])]

    sources = paths("SRCS")
    for src_dir in paths("SRC_DIRS"):
        sources += sorted(src_dir.glob("*.c")) + sorted(src_dir.glob("*.S"))
    excluded = set(paths("EXCLUDE_SRCS"))
    for path in [*sources, *paths("EMBED_FILES"), *paths("EMBED_TXTFILES")]:
        if not path.is_file():
            raise InputError(f"{cmake}: {path.name} is listed but {path} does not exist")
    return Component(directory.name, directory.resolve(),
                     tuple(s for s in sources if s not in excluded),
                     tuple(paths("INCLUDE_DIRS")), tuple(paths("PRIV_INCLUDE_DIRS")),
                     tuple(paths("EMBED_FILES")), tuple(paths("EMBED_TXTFILES")))


def _component_dirs(project_dir: Path, extra: list[str]) -> list[Path]:
    dirs = [project_dir / "main"]
    components = project_dir / "components"
    if components.is_dir():
        dirs += sorted(d for d in components.iterdir() if (d / "CMakeLists.txt").is_file())
    for entry in extra:
        path = (project_dir / entry).resolve()
        if not path.is_dir():
            raise InputError(f"{project_dir / 'CMakeLists.txt'}: EXTRA_COMPONENT_DIRS entry "
                             f"{entry} is not a directory")
        if (path / "CMakeLists.txt").is_file():
            dirs.append(path)
        else:
            dirs += sorted(d for d in path.iterdir() if (d / "CMakeLists.txt").is_file())
    return dirs


def _version(project_dir: Path, sets: dict[str, list[str]], override: str | None) -> str:
    if override is not None:
        return override
    if sets.get("PROJECT_VER"):
        return sets["PROJECT_VER"][0]
    version_txt = project_dir / "version.txt"
    if version_txt.is_file():
        return _read(version_txt).strip() or "1"
    return "1"


def load_project(project_dir: Path, *, chip_name: str, chip_id: int,
                 overrides: dict[str, str] | None = None,
                 version: str | None = None) -> Project:
    """Read the project in ``project_dir``.

    Args:
        project_dir: the directory with the top ``CMakeLists.txt``.
        chip_name: ``CONFIG_IDF_TARGET``.
        chip_id: ``CONFIG_IDF_FIRMWARE_CHIP_ID`` (the image header's chip id).
        overrides: ``-D NAME=VALUE`` options.
        version: ``--version`` (wins over PROJECT_VER / version.txt).

    Raises:
        InputError: not an ESP-IDF project, or a malformed/missing file it names.
    """
    top = project_dir / "CMakeLists.txt"
    if not top.is_file():
        raise InputError(f"{project_dir}: no CMakeLists.txt; expected an ESP-IDF project "
                         "directory (project(NAME) in CMakeLists.txt, sources in main/)")
    text = _read(top)
    projects = _calls(text, "project")
    if not projects or not projects[0]:
        raise InputError(f"{top}: no project(NAME) call")
    sets = _sets(text, project_dir.resolve(), project_dir.resolve())
    components: list[Component] = []
    for directory in _component_dirs(project_dir.resolve(), sets.get("EXTRA_COMPONENT_DIRS", [])):
        comp = _component(directory, project_dir.resolve())
        if comp is not None:
            components.append(comp)
    if not any(c.name == "main" for c in components):
        raise InputError(f"{project_dir / 'main' / 'CMakeLists.txt'}: missing or without "
                         "idf_component_register(SRCS ...)")
    config = _configure(project_dir, components, chip_name, chip_id, overrides or {})
    return Project(project_dir.resolve(), projects[0][0], _version(project_dir, sets, version),
                   tuple(components), config)


def _configure(project_dir: Path, components: list[Component], chip_name: str, chip_id: int,
               overrides: dict[str, str]) -> dict[str, Value]:
    table = KconfigTable.with_idf_defaults(chip_name, chip_id)
    for comp in components:
        for name in ("Kconfig", "Kconfig.projbuild"):
            path = comp.directory / name
            if path.is_file():
                parse_kconfig(_read(path), table, str(path))
    # sdkconfig (what `idf.py menuconfig` saved) wins over sdkconfig.defaults, as in ESP-IDF
    for config_file in (project_dir / "sdkconfig.defaults", project_dir / "sdkconfig"):
        if config_file.is_file():
            for number, line in enumerate(_read(config_file).splitlines(), start=1):
                item = parse_sdkconfig_line(line, f"{config_file}:{number}")
                if item is not None:
                    table.set(*item)
    for name, raw in overrides.items():
        item = parse_sdkconfig_line(f"{name}={raw}", f"-D {name}={raw}")
        if item is not None:
            table.set(*item)
    return table.resolved()
