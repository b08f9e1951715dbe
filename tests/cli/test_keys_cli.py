"""``otaforge keys generate|digest|public`` as a user runs them, with espsecure as the oracle."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from otaforge.crypto import keys as k
from tests.conftest import run_cli, tool


def _espsecure(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("espsecure"), *map(str, args)], capture_output=True, text=True,
                          check=True, timeout=120)


@pytest.mark.parametrize(("args", "scheme", "header"), [
    (["--version", "2", "--scheme", "rsa3072"], "rsa3072", "RSA PRIVATE KEY"),
    (["--version", "2", "--scheme", "ecdsa256"], "ecdsa256", "EC PRIVATE KEY"),
    (["--version", "2", "--scheme", "ecdsa384"], "ecdsa384", "EC PRIVATE KEY"),
    (["--version", "1"], "ecdsa256", "EC PRIVATE KEY"),
])
def test_generate_writes_0600_pem_usable_by_espsecure(
        tmp_path: Path, args: list[str], scheme: str, header: str) -> None:
    out = tmp_path / "signing.pem"
    proc = run_cli("keys", "generate", *args, str(out))
    assert proc.returncode == 0, proc.stderr
    pem = out.read_bytes()
    assert f"-----BEGIN {header}-----".encode() in pem
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # never printed
    body = pem.decode().splitlines()[1]
    assert body not in proc.stdout + proc.stderr and "PRIVATE KEY" not in proc.stdout
    assert "KEEP IT SAFE" in proc.stderr
    assert k.scheme_of(k.load_private_key(pem)) == scheme
    # espsecure reads it and agrees on the eFuse digest
    es_digest = tmp_path / "es.bin"
    _espsecure("digest-sbv2-public-key", "--keyfile", out, "-o", es_digest)
    ours = tmp_path / "ours.bin"
    assert run_cli("keys", "digest", str(out), "-o", str(ours)).returncode == 0
    assert ours.read_bytes() == es_digest.read_bytes()
    assert len(ours.read_bytes()) == 32


def test_generate_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "key.pem"
    out.write_bytes(b"precious")
    proc = run_cli("keys", "generate", "--scheme", "ecdsa256", str(out))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert out.read_bytes() == b"precious"
    proc = run_cli("keys", "generate", "--scheme", "ecdsa256", "--force", str(out))
    assert proc.returncode == 0, proc.stderr
    assert b"EC PRIVATE KEY" in out.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("args", [
    ["--version", "2", "--scheme", "rsa2048"],
    ["--version", "1", "--scheme", "rsa3072"],
    ["--version", "3"],
])
def test_generate_bad_options_exit_2_and_write_nothing(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "k.pem"
    proc = run_cli("keys", "generate", *args, str(out))
    assert proc.returncode == 2 and proc.stderr.startswith("error:")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_digest_of_espsecure_key_and_public_pem(tmp_path: Path) -> None:
    key = tmp_path / "es.pem"
    _espsecure("generate-signing-key", "--version", "2", "--scheme", "ecdsa384", key)
    pub = tmp_path / "es.pub.pem"
    _espsecure("extract-public-key", "--version", "2", "--keyfile", key, pub)
    es_digest = tmp_path / "es.bin"
    _espsecure("digest-sbv2-public-key", "--keyfile", key, "-o", es_digest)
    for source in (key, pub):
        out = tmp_path / f"{source.name}.digest"
        proc = run_cli("keys", "digest", str(source), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == es_digest.read_bytes()
    raw = tmp_path / "v1.raw"
    assert run_cli("keys", "public", "--version", "2", str(key), "-o", str(raw)).returncode == 0
    assert b"PUBLIC KEY" in raw.read_bytes()


def test_digest_of_missing_or_junk_key_is_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    for path in (tmp_path / "missing.pem", junk):
        proc = run_cli("keys", "digest", str(path), "-o", str(tmp_path / "d.bin"))
        assert proc.returncode == 2 and "error:" in proc.stderr
    assert not (tmp_path / "d.bin").exists()


def test_outputs_that_are_directories_or_in_missing_folders_are_bad_input(
        tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run_cli("keys", "generate", "--scheme", "ecdsa256", str(key)).returncode == 0
    (tmp_path / "adir").mkdir()
    for args in (["generate", str(tmp_path / "adir")],
                 ["digest", str(key), "-o", str(tmp_path / "adir")],
                 ["public", str(key), "-o", str(tmp_path / "adir")],
                 ["digest", str(key), "-o", str(tmp_path / "nodir" / "d.bin")],
                 ["digest", str(tmp_path / "adir"), "-o", str(tmp_path / "d.bin")]):
        proc = run_cli("keys", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert ("is a directory" in proc.stderr or "does not exist" in proc.stderr), proc.stderr
        assert ".tmp" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "k.pem"]
