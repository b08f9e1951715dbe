"""``otaforge image sign`` / ``image verify`` as a user runs them, with espsecure as the oracle."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from otaforge.crypto import keys as k
from tests.conftest import run_cli, tool


def _espsecure(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("espsecure"), *map(str, args)], capture_output=True, text=True,
                          check=check, timeout=120)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path) -> Path:
    d = tmp_path_factory.mktemp("signcli")
    (d / "app.bin").write_bytes(
        (shared_fixtures / "esptool" / "esp32-app-template.bin").read_bytes())
    for name, scheme in (("rsa", "rsa3072"), ("ec256", "ecdsa256"), ("ec384", "ecdsa384"),
                         ("other", "ecdsa256"), ("rsa2", "rsa3072")):
        (d / f"{name}.pem").write_bytes(k.private_key_pem(k.generate_key(scheme)))
    return d


@pytest.mark.parametrize("key", ["rsa", "ec256", "ec384"])
def test_sign_then_verify_with_both_tools(work: Path, key: str) -> None:
    out = work / f"signed_{key}.bin"
    proc = run_cli("image", "sign", "--version", "2", "--key", str(work / f"{key}.pem"),
                   "-o", str(out), str(work / "app.bin"))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size % 4096 == 0
    _espsecure("verify-signature", "--version", "2", "--keyfile", work / f"{key}.pem", out)
    proc = run_cli("image", "verify", "--version", "2", "--key", str(work / f"{key}.pem"),
                   str(out))
    assert proc.returncode == 0, proc.stderr
    assert "key index 0" in proc.stdout
    # espsecure-signed verifies with ours, with the public key only
    pub = work / f"{key}.pub.pem"
    _espsecure("extract-public-key", "--version", "2", "--keyfile", work / f"{key}.pem", pub)
    es_out = work / f"es_{key}.bin"
    _espsecure("sign-data", "--version", "2", "--keyfile", work / f"{key}.pem", "-o", es_out,
               work / "app.bin")
    assert run_cli("image", "verify", "--key", str(pub), str(es_out)).returncode == 0


def test_verify_reasons_and_exit_codes(work: Path) -> None:
    signed = work / "signed_r.bin"
    assert run_cli("image", "sign", "--key", str(work / "ec256.pem"), "-o", str(signed),
                   str(work / "app.bin")).returncode == 0
    data = signed.read_bytes()
    cases = {
        "wrong key": (data, "other.pem", "signature does not verify with key 0"),
        "unsigned": ((work / "app.bin").read_bytes(), "ec256.pem", "no signature sector"),
        "truncated sector": (data[:-1000], "ec256.pem", "truncated signature sector"),
        "image byte": (data[:100] + bytes([data[100] ^ 1]) + data[101:], "ec256.pem",
                       "image digest mismatch"),
        "block CRC": (data[:-4096 + 1196] + b"\0\0\0\0" + data[-4096 + 1200 :], "ec256.pem",
                      "block 0 bad CRC"),
    }
    for name, (content, key, reason) in cases.items():
        path = work / f"case_{name.replace(' ', '_')}.bin"
        path.write_bytes(content)
        proc = run_cli("image", "verify", "--key", str(work / key), str(path))
        assert proc.returncode == 1, (name, proc.stderr)
        assert reason in proc.stderr, (name, proc.stderr)


def test_verify_with_efuse_digest_and_revocation(work: Path) -> None:
    signed = work / "two_keys.bin"
    proc = run_cli("image", "sign", "--key", str(work / "rsa.pem"), "--key",
                   str(work / "rsa2.pem"), "-o", str(signed), str(work / "app.bin"))
    assert proc.returncode == 0, proc.stderr
    digests = []
    for name in ("rsa", "rsa2"):
        d = work / f"{name}.digest"
        assert run_cli("keys", "digest", str(work / f"{name}.pem"), "-o", str(d)).returncode == 0
        digests += ["--digest", str(d)]
    proc = run_cli("image", "verify", *digests, "--revoke", "0", str(signed))
    assert proc.returncode == 0 and "key index 1" in proc.stdout, proc.stderr
    proc = run_cli("image", "verify", *digests, "--revoke", "0", "--revoke", "1", str(signed))
    assert proc.returncode == 1 and "revoked" in proc.stderr


def test_append_adds_a_block_espsecure_accepts(work: Path) -> None:
    one = work / "one.bin"
    two = work / "two.bin"
    assert run_cli("image", "sign", "--key", str(work / "rsa.pem"), "-o", str(one),
                   str(work / "app.bin")).returncode == 0
    proc = run_cli("image", "sign", "--key", str(work / "rsa2.pem"), "--append", "-o", str(two),
                   str(one))
    assert proc.returncode == 0, proc.stderr
    assert "2 block(s)" in proc.stdout
    for key in ("rsa", "rsa2"):
        _espsecure("verify-signature", "--version", "2", "--keyfile", work / f"{key}.pem", two)
    # re-signing a signed image without --append is refused (it would sign the old sector)
    proc = run_cli("image", "sign", "--key", str(work / "rsa2.pem"), "-o",
                   str(work / "resigned.bin"), str(one))
    assert proc.returncode == 2 and "--append" in proc.stderr
    assert not (work / "resigned.bin").exists()


def test_v1_sign_and_verify_cli(work: Path) -> None:
    key = work / "v1.pem"
    assert run_cli("keys", "generate", "--version", "1", str(key)).returncode == 0
    out = work / "v1.bin"
    proc = run_cli("image", "sign", "--version", "1", "--key", str(key), "-o", str(out),
                   str(work / "app.bin"))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size == (work / "app.bin").stat().st_size + 68
    _espsecure("verify-signature", "--version", "1", "--keyfile", key, out)
    raw = work / "v1.raw"
    assert run_cli("keys", "public", "--version", "1", str(key), "-o", str(raw)).returncode == 0
    assert run_cli("image", "verify", "--version", "1", "--key", str(raw), str(out)).returncode \
        == 0
    proc = run_cli("image", "verify", "--version", "1", "--key", str(work / "other.pem"),
                   str(out))
    assert proc.returncode == 1 and "does not verify" in proc.stderr


def test_failed_sign_leaves_no_output_and_keeps_an_old_one(work: Path) -> None:
    out = work / "keep.bin"
    out.write_bytes(b"previous release")
    junk = work / "junk.pem"
    junk.write_text("not a key")
    for args in (["--key", str(junk)], ["--key", str(work / "missing.pem")],
                 ["--key", str(work / "rsa.pem"), "--key", str(work / "ec256.pem")],
                 ["--version", "1", "--key", str(work / "rsa.pem")]):
        proc = run_cli("image", "sign", *args, "-o", str(out), str(work / "app.bin"))
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("error:")
        assert out.read_bytes() == b"previous release"
    assert not [p for p in work.iterdir() if p.name.startswith(".keep.bin")]


@pytest.mark.parametrize(("case", "expect"), [
    ("output is a directory", "is a directory"),
    ("output folder missing", "does not exist"),
    ("input is a directory", "expected an image file"),
    ("public key given to sign", "signing needs the private key"),
    ("junk key", "junk.pem: not an unencrypted PEM private key"),
])
def test_bad_paths_and_keys_name_the_file_and_write_nothing(work: Path, case: str,
                                                            expect: str) -> None:
    (work / "adir").mkdir(exist_ok=True)
    (work / "junk.pem").write_text("not a key")
    pub = work / "ec256.pub.pem"
    pub.write_bytes(k.public_key_pem(k.load_private_key((work / "ec256.pem").read_bytes())))
    key, out, image = str(work / "ec256.pem"), str(work / "bad-out.bin"), str(work / "app.bin")
    args = {"output is a directory": [key, str(work / "adir"), image],
            "output folder missing": [key, str(work / "nodir" / "x.bin"), image],
            "input is a directory": [key, out, str(work / "adir")],
            "public key given to sign": [str(pub), out, image],
            "junk key": [str(work / "junk.pem"), out, image]}[case]
    before = sorted(p.name for p in work.iterdir())
    proc = run_cli("image", "sign", "--key", args[0], "-o", args[1], args[2])
    assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
    assert ".tmp" not in proc.stderr  # never the temporary file's name
    assert sorted(p.name for p in work.iterdir()) == before
    assert list((work / "adir").iterdir()) == []


def test_sign_and_verify_exit_codes(work: Path) -> None:
    """espsecure's --keyfile spelling, a wrong key (exit 1), a missing key file or none (2)."""
    key = str(work / "ec384.pem")
    out = work / "signed.bin"
    signed = run_cli("image", "sign", "--keyfile", key, "-o", str(out), str(work / "app.bin"))
    assert signed.returncode == 0, signed.stderr
    _espsecure("verify-signature", "--version", "2", "--keyfile", key, out)
    proc = run_cli("image", "verify", "--keyfile", key, str(out))
    assert proc.returncode == 0 and "key index 0" in proc.stdout, proc.stderr
    proc = run_cli("image", "verify", "-k", str(work / "ec256.pem"), str(out))
    assert proc.returncode == 1 and "does not verify" in proc.stderr
    bad = run_cli("image", "sign", "--key", str(work / "nope.pem"), "-o", str(work / "x.bin"),
                  str(work / "app.bin"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    assert not (work / "x.bin").exists()
    assert run_cli("image", "verify", str(work / "app.bin")).returncode == 2  # no key given


def test_verify_json(work: Path) -> None:
    key = str(work / "ec384.pem")
    out = work / "signed.bin"
    assert run_cli("image", "sign", "-k", key, "-o", str(out), str(work / "app.bin")
                   ).returncode == 0
    proc = run_cli("image", "verify", "--json", "-k", key, str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["valid"] is True and report["key_index"] == 0 and report["version"] == 2
    assert report["scheme"] == "ecdsa384" and report["block_count"] == 1
    proc = run_cli("image", "verify", "--json", "-k", str(work / "ec256.pem"), str(out))
    assert proc.returncode == 1
    refused = json.loads(proc.stdout)
    assert refused["valid"] is False and refused["code"] == "bad_signature"
