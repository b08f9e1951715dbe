"""Check every function prototype of otaforge's host headers against ESP-IDF's own headers.

Usage: python scripts/check_idf_signatures.py ESP_IDF_GIT_DIR [REV]

ESP_IDF_GIT_DIR is a clone (bare is fine) of espressif/esp-idf. For each function declared in
src/otaforge/firmware/host/include, the declaration with the same name is looked up in ESP-IDF's
component headers and the parameter and return types are compared (parameter names and
spacing are ignored). Prints one line per mismatch or function not found; exit 1 if any.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HOST = Path(__file__).resolve().parents[1] / "src" / "otaforge" / "firmware" / "host" / "include"
# otaforge's own internals and ESP-IDF example helpers have no ESP-IDF counterpart here
OWN = {"otaforge_host_log", "esp_log_buffer_hex_internal", "_esp_error_check_failed",
       "_esp_error_check_failed_without_abort", "example_connect", "example_disconnect"}
_PROTO = re.compile(r"^([A-Za-z_][\w \t\*\n]{0,80}?)\b(\w+)[ \t]*\(([^;{()]*?)\)\s*"
                    r"(?:[A-Z_]+[ \t]*){0,3}(?:__attribute__\(\(.*?\)\)\s*)?[;{]",
                    re.MULTILINE | re.DOTALL)


def _strip(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"__attribute__\s*\(\s*\((?:[^()]|\([^()]*\))*\)\s*\)", "", text)
    text = text.replace("configSTACK_DEPTH_TYPE", "uint32_t")  # FreeRTOSConfig.h on ESP-IDF
    text = re.sub(r"^[ \t]+", "", text, flags=re.MULTILINE)  # indented declarations too
    return re.sub(r"^#.*$", "", text, flags=re.MULTILINE)


def _type_of(param: str) -> str:
    param = re.sub(r"\s+", " ", param.replace("*", " * ")).strip()
    if param in ("void", "..."):
        return param
    words = param.split(" ")
    if len(words) > 1 and re.fullmatch(r"\w+", words[-1]) and words[-1] not in ("int", "char"):
        words = words[:-1]  # the parameter name
    return " ".join(w for w in words if w not in ("const",)).replace(" *", "*") + \
        (" const" if "const" in words else "")


def prototypes(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (return type, parameter types)."""
    out = {}
    for ret, name, params in _PROTO.findall(_strip(text)):
        ret = re.sub(r"\b(extern|static|inline|__inline|IRAM_ATTR)\b", "", ret)
        ret = re.sub(r"\s+", " ", ret).strip()
        if ret in ("return", "else", "") or "typedef" in ret:
            continue
        out[name] = (_type_of(ret + " x"), tuple(_type_of(p) for p in params.split(",")
                                                  if p.strip()))
    return out


def idf_headers(git_dir: str, rev: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    files = subprocess.run(["git", "-C", git_dir, "ls-tree", "-r", "--name-only", rev,
                            "components"], capture_output=True, text=True,
                           check=True).stdout.split()
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for path in files:
        if not path.endswith(".h") or "/include/" not in path or "/test" in path:
            continue
        text = subprocess.run(["git", "-C", git_dir, "show", f"{rev}:{path}"],
                              capture_output=True, text=True, errors="replace").stdout
        for name, proto in prototypes(text).items():
            found.setdefault(name, proto)
    return found


def main() -> int:
    git_dir, rev = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "HEAD"
    ours: dict[str, tuple[str, tuple[str, ...]]] = {}
    for header in sorted(HOST.rglob("*.h")):
        ours.update(prototypes(header.read_text()))
    theirs = idf_headers(git_dir, rev)
    problems = 0
    for name, proto in sorted(ours.items()):
        if name in OWN:
            continue
        if name not in theirs:
            print(f"not in ESP-IDF: {name}")
            problems += 1
        elif theirs[name] != proto:
            print(f"differs: {name}: ours {proto} ESP-IDF {theirs[name]}")
            problems += 1
    print(f"{len(ours) - len(OWN & set(ours))} functions checked, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
