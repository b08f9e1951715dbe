"""``otaforge firmware build``: an ESP-IDF project compiled for the emulated ESP32.

The project's C sources are compiled by the host C compiler with ESP-IDF's warning flags for
user code, against otaforge's ESP-IDF API layer (``host/include``; its own C in ``host/src``
is compiled with ``-Wall -Wextra -Werror``), and linked with Debian's libcjson (ESP-IDF's
``json``/cJSON). ``EMBED_FILES``/``EMBED_TXTFILES`` become assembler data as ESP-IDF generates
it (``_binary_<name>_start/_end`` and ``<name>_length``; text files NUL-terminated).

The linked program is stored in the build cache under its SHA-256, with the project's
configuration; the app image written to ``-o`` is a real ESP-IDF app image whose
``esp_app_desc_t.app_elf_sha256`` is that hash, so the emulator finds the program to run for
the image it boots, whatever slot it was flashed or downloaded into.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from otaforge.errors import InputError
from otaforge.firmware.kconfig import Value, sdkconfig_h
from otaforge.firmware.project import Project, load_project
from otaforge.formats.chips import chip as chip_spec
from otaforge.formats.image_builder import build_image
from otaforge.fsutil import atomic_write

HOST_DIR = Path(__file__).resolve().parent / "host"
CJSON_INCLUDE = Path("/usr/include/cjson")
OWN_FLAGS = ("-std=gnu17", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-g")
# tools/cmake/build.cmake: ESP-IDF's compile options for every component
USER_FLAGS = ("-std=gnu17", "-D_GNU_SOURCE", "-ffunction-sections", "-fdata-sections",
              "-Wall", "-Werror", "-Wno-error=unused-function", "-Wno-error=unused-variable",
              "-Wno-error=unused-but-set-variable", "-Wno-error=deprecated-declarations",
              "-Wextra", "-Wno-error=extra", "-Wno-unused-parameter", "-Wno-sign-compare",
              "-Wno-enum-conversion", "-O1", "-g")
PROGRAM = "program"
CONFIG_FILE = "firmware.json"


@dataclass(frozen=True)
class BuildResult:
    """What a build produced.

    Attributes:
        image: the app image bytes (written to ``-o``).
        program: the host program in the cache.
        program_sha256: its SHA-256 (the image's ``app_elf_sha256``).
        project: the project that was built.
    """

    image: bytes
    program: Path
    program_sha256: bytes
    project: Project


def cache_dir() -> Path:
    """The build cache (``OTAFORGE_FIRMWARE_CACHE``, else ``~/.cache/otaforge/firmware``)."""
    env = os.environ.get("OTAFORGE_FIRMWARE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "otaforge" / "firmware"


def program_dir(sha256_hex: str) -> Path:
    """Where the program with this hash (and its configuration) is kept."""
    return cache_dir() / "programs" / sha256_hex


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise InputError("no C compiler found: install gcc (apt-get install gcc) or set CC")
    if not (CJSON_INCLUDE / "cJSON.h").is_file():
        raise InputError("cJSON headers missing: install libcjson-dev (ESP-IDF's json "
                         "component on the host)")
    return cc


def _c_symbol(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def embed_asm(path: Path, text: bool) -> str:
    """Assembler source embedding ``path`` as ESP-IDF's data_file_embed_asm does."""
    data = path.read_bytes()
    length = len(data)
    if text:
        data += b"\x00"
    name = _c_symbol(path.name)
    lines = [f"/* Data converted from {path}{' (null byte appended)' if text else ''} */",
             ".data", ".balign 4", f".global {name}", f"{name}:",
             f".global _binary_{name}_start", f"_binary_{name}_start:"]
    for i in range(0, len(data), 16):
        lines.append(".byte " + ", ".join(f"0x{b:02x}" for b in data[i : i + 16]))
    lines += [f".global _binary_{name}_end", f"_binary_{name}_end:", "",
              f".global {name}_length", f"{name}_length:", f".long {length}", "",
              '.section .note.GNU-stack,"",@progbits', ""]
    return "\n".join(lines)


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InputError(_explain(done.stderr, what))


_MISSING_HEADER = re.compile(r"fatal error: ([\w./-]+\.h): No such file")
_UNDEFINED = re.compile(r"undefined reference to `([^']+)'")
_NO_MEMBER = re.compile(r"‘?'?(\w+)’?'? has no member named ‘?'?(\w+)")


def _explain(stderr: str, what: str) -> str:
    """A one-paragraph message for a failed compile or link, naming unsupported APIs."""
    headers = sorted(set(_MISSING_HEADER.findall(stderr)))
    if headers:
        return (f"{what}: ESP-IDF header(s) {', '.join(headers)} are not provided by otaforge's "
                "host layer (the emulated ESP32 has no such API); guard that code with "
                "#ifdef or stub it for the emulator")
    undefined = sorted(set(_UNDEFINED.findall(stderr)) - {"app_main"})
    if undefined:
        return (f"{what}: unsupported ESP-IDF API(s) {', '.join(undefined)}: otaforge's host "
                "layer does not implement them (see otaforge/firmware/host/include)")
    if "undefined reference to `app_main'" in stderr:
        return f"{what}: no app_main() in the project's sources"
    members = sorted({f"{s}.{m}" for s, m in _NO_MEMBER.findall(stderr)})
    if members:
        return (f"{what}: unsupported ESP-IDF field(s) {', '.join(members)} in otaforge's "
                f"host layer\n{stderr.strip()}")
    return f"{what} failed:\n{stderr.strip()}"


def _host_objects(cc: str, build: Path, sdkconfig: str) -> list[Path]:
    """The API layer compiled for this configuration (cached by sources + sdkconfig.h)."""
    sources = sorted((HOST_DIR / "src").glob("*.c"))
    digest = hashlib.sha256(sdkconfig.encode() + cc.encode())
    for path in sorted((HOST_DIR / "include").rglob("*.h")) + sorted((HOST_DIR / "src").glob("*")):
        digest.update(path.name.encode() + path.read_bytes())
    out = cache_dir() / "host" / digest.hexdigest()[:24]
    objects = [out / f"{src.stem}.o" for src in sources]
    if all(o.is_file() for o in objects):
        return objects
    staging = Path(tempfile.mkdtemp(prefix="host-", dir=build))
    (staging / "sdkconfig.h").write_text(sdkconfig)
    for src in sources:
        _run([cc, *OWN_FLAGS, f"-I{staging}", f"-I{HOST_DIR / 'include'}",
              f"-I{HOST_DIR / 'src'}", "-c", str(src), "-o", str(staging / f"{src.stem}.o")],
             f"otaforge host layer {src.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        with contextlib.suppress(OSError):  # another build got there first
            os.replace(staging, out)
    return objects


def _compile_project(cc: str, project: Project, build: Path) -> list[Path]:
    includes = [f"-I{build}", f"-I{HOST_DIR / 'include'}", f"-I{CJSON_INCLUDE}"]
    for comp in project.components:
        includes += [f"-I{d}" for d in comp.include_dirs]
    objects: list[Path] = []
    for index, comp in enumerate(project.components):
        private = [f"-I{d}" for d in comp.priv_include_dirs]
        for src in comp.sources:
            obj = build / f"{index}_{comp.name}_{src.stem}.o"
            _run([cc, *USER_FLAGS, *includes, *private, "-c", str(src), "-o", str(obj)],
                 f"{src}")
            objects.append(obj)
        for path, text in [(p, False) for p in comp.embed_files] + \
                          [(p, True) for p in comp.embed_txtfiles]:
            asm = build / f"{index}_{comp.name}_{_c_symbol(path.name)}.S"
            asm.write_text(embed_asm(path, text))
            obj = asm.with_suffix(".o")
            _run([cc, "-c", str(asm), "-o", str(obj)], f"embedding {path}")
            objects.append(obj)
    return objects


def _config_json(project: Project) -> bytes:
    config: dict[str, Value] = dict(project.config)
    return (json.dumps({"project": project.name, "version": project.version,
                        "directory": str(project.directory), "sdkconfig": config},
                       indent=1, sort_keys=True) + "\n").encode()


def build_program(project: Project) -> tuple[Path, bytes]:
    """Compile and link ``project``; store the program in the cache; return (path, sha256).

    Raises:
        InputError: no compiler, a compile error, or an unsupported ESP-IDF API (named).
    """
    cc = _compiler()
    sdkconfig = sdkconfig_h(project.config)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=cache_dir()) as tmp:
        build = Path(tmp)
        (build / "sdkconfig.h").write_text(sdkconfig)
        objects = _host_objects(cc, build, sdkconfig) + _compile_project(cc, project, build)
        program = build / PROGRAM
        _run([cc, *map(str, objects), "-lcjson", "-lpthread", "-o", str(program)],
             f"linking {project.name}")
        data = program.read_bytes()
        sha = hashlib.sha256(data).digest()
        dest = program_dir(sha.hex())
        if not (dest / PROGRAM).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            atomic_write(dest / PROGRAM, data, mode=0o755)
        atomic_write(dest / CONFIG_FILE, _config_json(project))
    return dest / PROGRAM, sha


def build(project_dir: Path, *, version: str | None = None, secure_version: int | None = None,
          chip: str = "esp32", defines: dict[str, str] | None = None,
          image_size: int | None = None) -> BuildResult:
    """Build the ESP-IDF project in ``project_dir`` for the emulator (see the module doc).

    Args:
        project_dir: the project.
        version: ``esp_app_desc_t.version`` (default PROJECT_VER / version.txt).
        secure_version: anti-rollback version (default CONFIG_BOOTLOADER_APP_SECURE_VERSION).
        chip: target chip.
        defines: ``-D NAME=VALUE`` sdkconfig overrides.
        image_size: app image size in bytes (default: the host program's size, at least
            64 KiB), so downloads and power-cut sweeps move a realistic amount of flash.

    Raises:
        InputError: bad project, compile/link error, unsupported API, bad option.
    """
    spec = chip_spec(chip)
    project = load_project(project_dir, chip_name=spec.name, chip_id=spec.chip_id,
                           overrides=defines, version=version)
    program, sha = build_program(project)
    sv = secure_version
    if sv is None:
        raw = project.config.get("BOOTLOADER_APP_SECURE_VERSION", 0)
        sv = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
    flash_size = str(project.config.get("ESPTOOLPY_FLASHSIZE", "2MB"))
    size = image_size or max(program.stat().st_size + 0x1000, 0x10000)
    image = build_image(version=project.version, project=project.name, secure_version=sv,
                        chip=spec.name, size=size, seed=int.from_bytes(sha[:8], "little"),
                        flash_size=flash_size, app_elf_sha256=sha)
    return BuildResult(image, program, sha, project)


def load_program_config(sha256_hex: str) -> dict[str, object] | None:
    """The stored build configuration of a cached program, or None when it is not cached."""
    path = program_dir(sha256_hex) / CONFIG_FILE
    if not (program_dir(sha256_hex) / PROGRAM).is_file() or not path.is_file():
        return None
    loaded = json.loads(path.read_text())
    return loaded if isinstance(loaded, dict) else None
