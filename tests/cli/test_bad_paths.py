"""Every command with a wrong thing where each path argument goes: one line, exit 1-3, no trace.

For each path argument of each command, the other arguments are good and this one is, in
turn: missing, a directory, a path under a regular file (``afile/x``), an empty file, garbage
bytes, an unreadable file (``/proc/self/mem``: read() fails even for root), and for outputs
``/proc/version`` (a file whose folder takes no new files) and ``/sys/x`` (permission denied).
The command must refuse with an ``error:`` line and a non-zero exit, raise no exception (a
traceback for the user), and leave no temporary or half-written file behind.

Commands run in this process (``otaforge.cli.main.main``), so the whole table stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otaforge.cli.main import main
from otaforge.crypto.keys import generate_key, private_key_pem
from otaforge.device.flash_image import compose
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable

TABLE = ("nvs, data, nvs, , 0x4000,\notadata, data, ota, , 0x2000,\n"
         "factory, app, factory, , 1M,\nota_0, app, ota_0, , 1M,\nota_1, app, ota_1, , 1M,\n")
NET = ("--server", "https://127.0.0.1:9", "--token", "t", "--ca", "ca.pem")

INPUT_BAD = ("missing", "directory", "under-a-file", "empty", "garbage", "unreadable")
OUTPUT_BAD = ("directory", "under-a-file", "proc-file", "no-permission")
NOT_EMPTY = ("missing", "directory", "under-a-file", "garbage", "unreadable")
READ_BAD = ("missing", "directory", "under-a-file", "unreadable")

# (case id, argv with one "{}" for the swept path, which variants)
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("image-info", ("image", "info", "{}"), INPUT_BAD),
    ("image-build-output", ("image", "build", "-o", "{}", "--version", "1"), OUTPUT_BAD),
    # espsecure sign-data signs any bytes (bootloaders, raw data); so does image sign
    ("image-sign-input", ("image", "sign", "{}", "-o", "o.bin", "-k", "key.pem"), READ_BAD),
    ("image-sign-key", ("image", "sign", "app.bin", "-o", "o.bin", "-k", "{}"), INPUT_BAD),
    ("image-sign-output", ("image", "sign", "app.bin", "-o", "{}", "-k", "key.pem"),
     OUTPUT_BAD),
    ("image-verify-input", ("image", "verify", "{}", "-k", "key.pem"), INPUT_BAD),
    ("image-verify-key", ("image", "verify", "app.bin", "-k", "{}"), INPUT_BAD),
    ("image-verify-digest", ("image", "verify", "app.bin", "--digest", "{}"), INPUT_BAD),
    ("keys-generate-output", ("keys", "generate", "{}"), OUTPUT_BAD),
    ("keys-digest-key", ("keys", "digest", "{}", "-o", "d.bin"), INPUT_BAD),
    ("keys-digest-output", ("keys", "digest", "key.pem", "-o", "{}"), OUTPUT_BAD),
    ("keys-public-key", ("keys", "public", "{}", "-o", "p.pem"), INPUT_BAD),
    ("keys-public-output", ("keys", "public", "key.pem", "-o", "{}"), OUTPUT_BAD),
    # an empty CSV is an empty table to gen_esp32part too (a warning, exit 0): not swept
    ("partitions-convert-input", ("partitions", "convert", "{}", "t.bin"), NOT_EMPTY),
    ("partitions-convert-output", ("partitions", "convert", "t.csv", "{}"), OUTPUT_BAD),
    ("partitions-check-input", ("partitions", "check", "{}"), NOT_EMPTY),
    ("partitions-check-image", ("partitions", "check", "t.csv", "--image", "{}"), INPUT_BAD),
    ("flash-inspect-input", ("flash", "inspect", "{}"), ("missing", "directory",
                                                       "under-a-file", "empty", "unreadable")),
    ("flash-inspect-key-digest", ("flash", "inspect", "flash.bin", "--key-digest", "{}"),
     INPUT_BAD),
    ("flash-compose-partitions", ("flash", "compose", "--partitions", "{}", "-o", "f.bin",
                                  "--factory", "app.bin"), INPUT_BAD),
    ("flash-compose-factory", ("flash", "compose", "--partitions", "t.csv", "-o", "f.bin",
                               "--factory", "{}"), INPUT_BAD),
    ("flash-compose-ota", ("flash", "compose", "--partitions", "t.csv", "-o", "f.bin",
                           "--ota-0", "{}"), INPUT_BAD),
    ("flash-compose-bootloader", ("flash", "compose", "--partitions", "t.csv", "-o", "f.bin",
                                  "--factory", "app.bin", "--bootloader", "{}"), INPUT_BAD),
    ("flash-compose-output", ("flash", "compose", "--partitions", "t.csv", "-o", "{}",
                              "--factory", "app.bin"), OUTPUT_BAD),
    ("flash-erase-otadata", ("flash", "erase-otadata", "{}"), INPUT_BAD),
    ("device-sweep-partitions", ("device", "sweep", "--partitions", "{}", "--from", "app.bin",
                                 "--to", "app2.bin"), INPUT_BAD),
    ("device-sweep-from", ("device", "sweep", "--partitions", "t.csv", "--from", "{}",
                           "--to", "app2.bin"), INPUT_BAD),
    ("device-sweep-to", ("device", "sweep", "--partitions", "t.csv", "--from", "app.bin",
                         "--to", "{}"), INPUT_BAD),
    ("device-run-flash", ("device", "run", "--flash", "{}", "--fleet", "f", *NET), INPUT_BAD),
    ("device-run-ca", ("device", "run", "--flash", "flash.bin", "--fleet", "f", "--server",
                       "https://127.0.0.1:9", "--token", "t", "--ca", "{}"), INPUT_BAD),
    ("device-run-secure-boot-key", ("device", "run", "--flash", "flash.bin", "--fleet", "f",
                                    *NET, "--secure-boot-key", "{}"), INPUT_BAD),
    ("device-run-token-file", ("device", "run", "--flash", "flash.bin", "--fleet", "f",
                               "--server", "https://127.0.0.1:9", "--ca", "ca.pem",
                               "--token", "@{}"), ("missing", "directory", "under-a-file")),
    ("server-init-dir", ("server", "init", "--dir", "{}"), ("under-a-file", "garbage",
                                                            "proc-file", "no-permission")),
    ("server-run-dir", ("server", "run", "--dir", "{}"), ("missing", "directory",
                                                          "under-a-file", "garbage")),
    ("fleet-create-partitions", ("fleet", "create", "f", "--partitions", "{}", *NET),
     INPUT_BAD),
    ("fleet-create-ca", ("fleet", "create", "f", "--partitions", "t.csv", "--server",
                         "https://127.0.0.1:9", "--token", "t", "--ca", "{}"), INPUT_BAD),
    ("fleet-create-signature-key", ("fleet", "create", "f", "--partitions", "t.csv", *NET,
                                    "--require-signature", "{}"), INPUT_BAD),
    ("release-publish-image", ("release", "publish", "{}", "--fleet", "f", *NET), INPUT_BAD),
    ("fleet-list-token-file", ("fleet", "list", "--server", "https://127.0.0.1:9", "--ca",
                               "ca.pem", "--token", "@{}"), ("missing", "directory")),
    ("demo-keep", ("demo", "--keep", "{}"), ("under-a-file", "garbage", "no-permission")),
]


def _params() -> Iterator[object]:
    for name, argv, variants in CASES:
        for variant in variants:
            yield pytest.param(argv, variant, id=f"{name}-{variant}")


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a good input for every argument that is not being swept."""
    work = tmp_path_factory.mktemp("good")
    table = PartitionTable.from_csv(TABLE)
    (work / "t.csv").write_text(TABLE)
    (work / "app.bin").write_bytes(build_image(version="1.0.0"))
    (work / "app2.bin").write_bytes(build_image(version="1.1.0", seed=1))
    (work / "key.pem").write_bytes(private_key_pem(generate_key("ecdsa256")))
    (work / "flash.bin").write_bytes(compose(table, {"factory": build_image(version="1.0.0")}))
    (work / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")
    return work


def _bad(work: Path, variant: str) -> str:
    (work / "afile").write_bytes(b"x")
    (work / "adir").mkdir(exist_ok=True)
    (work / "empty.bin").write_bytes(b"")
    (work / "garbage.bin").write_bytes(bytes((i * 37 + 11) % 251 for i in range(8192)))
    return {"missing": "nope/none.bin", "directory": "adir", "under-a-file": "afile/x.bin",
            "empty": "empty.bin", "garbage": "garbage.bin", "proc-file": "/proc/version",
            "unreadable": "/proc/self/mem",  # read() fails (EIO), even for root
            "no-permission": "/sys/otaforge-out.bin"}[variant]  # EACCES, even for root


@pytest.mark.parametrize(("argv", "variant"), list(_params()))
def test_wrong_path_is_one_error_line_and_nothing_written(
        good: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], variant: str) -> None:
    for item in good.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    monkeypatch.chdir(tmp_path)
    for var in ("OTAFORGE_TOKEN", "OTAFORGE_CA", "OTAFORGE_SERVER", "OTAFORGE_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    bad = _bad(tmp_path, variant)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    # main() returns the exit code; any exception escaping it is a traceback for users
    code = main([a.replace("{}", bad) for a in argv])
    err = capsys.readouterr().err
    assert code in (1, 2, 3), err
    assert "error" in err.lower() and "Traceback" not in err
    after = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert not [p for p in after if p.name.endswith(".tmp")], "a temporary file was left"
    assert {p: p.read_bytes() for p in before} == before, "an input was changed"
    created = sorted(str(p.relative_to(tmp_path)) for p in after - set(before))
    assert created == [], f"written although the command failed: {created}"
