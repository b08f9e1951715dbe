"""Both directions against the real espsecure (esptool from PyPI) for every scheme.

What otaforge signs must verify with ``espsecure verify-signature``; what espsecure signs must
verify in otaforge; keys made by either work in the other; the eFuse key digests agree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otaforge.crypto import keys as k
from otaforge.crypto import sbv1, sbv2
from otaforge.errors import SignatureInvalid
from otaforge.formats.signature_block import SECTOR_SIZE, SIG_BLOCK_SIZE
from tests.crypto.conftest import V2_SCHEMES, espsecure

SCHEMES = pytest.mark.parametrize("scheme", V2_SCHEMES)
# bytes of a block that do not depend on the random signature: header, digest, key fields
FIXED_PART = {"rsa3072": 812, "ecdsa256": 101, "ecdsa384": 149}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, app_template: bytes) -> Path:
    d = tmp_path_factory.mktemp("interop")
    (d / "app.bin").write_bytes(app_template)
    return d


@pytest.fixture(scope="module")
def es_keys(work: Path) -> dict[str, Path]:
    """A key per scheme made by ``espsecure generate-signing-key``."""
    out = {}
    for scheme in V2_SCHEMES:
        path = work / f"es_{scheme}.pem"
        espsecure("generate-signing-key", "--version", "2", "--scheme", scheme, path)
        out[scheme] = path
    path = work / "es_v1.pem"
    espsecure("generate-signing-key", "--version", "1", path)
    out["v1"] = path
    return out


@pytest.fixture(scope="module")
def our_keys(work: Path) -> dict[str, Path]:
    """A key per scheme made by otaforge, written as ``otaforge keys generate`` does."""
    out = {}
    for scheme in (*V2_SCHEMES, "v1"):
        path = work / f"our_{scheme}.pem"
        path.write_bytes(k.private_key_pem(k.generate_key(scheme)))
        out[scheme] = path
    return out


def _es_digest(key: Path, work: Path) -> bytes:
    out = work / (key.stem + ".digest")
    espsecure("digest-sbv2-public-key", "--keyfile", key, "-o", out)
    return out.read_bytes()


@SCHEMES
def test_key_digest_equals_espsecure_for_keys_from_both_tools(
        scheme: str, es_keys: dict, our_keys: dict, work: Path) -> None:
    for key_path in (es_keys[scheme], our_keys[scheme]):
        ours = k.public_key_digest(k.load_private_key(key_path.read_bytes()))
        assert ours == _es_digest(key_path, work)
        # also from the public key PEM espsecure extracts
        pub = work / (key_path.stem + ".pub.pem")
        espsecure("extract-public-key", "--version", "2", "--keyfile", key_path, pub)
        assert k.public_key_digest(k.load_public_key(pub.read_bytes())) == ours


@SCHEMES
def test_otaforge_signed_verifies_with_espsecure(
        scheme: str, es_keys: dict, our_keys: dict, work: Path, app_template: bytes) -> None:
    for key_path in (es_keys[scheme], our_keys[scheme]):
        signed = sbv2.sign_v2(app_template, [k.load_private_key(key_path.read_bytes())])
        out = work / f"ours_{key_path.stem}.bin"
        out.write_bytes(signed)
        proc = espsecure("verify-signature", "--version", "2", "--keyfile", key_path, out)
        assert "Signature block 0 verification successful" in proc.stdout
        info = espsecure("signature-info-v2", out).stdout
        match = re.search(r"Public key digest for block 0: ([0-9a-f ]+)", info)
        assert match, info
        assert bytes.fromhex(match.group(1).replace(" ", "")) == _es_digest(key_path, work)


@SCHEMES
def test_espsecure_signed_verifies_with_otaforge(
        scheme: str, es_keys: dict, our_keys: dict, work: Path, app_template: bytes) -> None:
    for key_path in (es_keys[scheme], our_keys[scheme]):
        out = work / f"es_signed_{key_path.stem}.bin"
        espsecure("sign-data", "--version", "2", "--keyfile", key_path, "-o", out,
                  work / "app.bin")
        theirs = out.read_bytes()
        key = k.load_private_key(key_path.read_bytes())
        result = sbv2.verify_v2(theirs, keys=[k.load_public_key(key_path.read_bytes())])
        assert (result.scheme, result.key_index) == (scheme, 0)
        assert sbv2.verify_v2(theirs, digests=[_es_digest(key_path, work)]).key_index == 0
        # same layout byte for byte except the (randomised) signature
        ours = sbv2.sign_v2(app_template, [key])
        assert len(ours) == len(theirs)
        assert ours[:-SECTOR_SIZE] == theirs[:-SECTOR_SIZE]
        cut = FIXED_PART[scheme]
        assert ours[-SECTOR_SIZE:][:cut] == theirs[-SECTOR_SIZE:][:cut]
        assert ours[-SECTOR_SIZE + SIG_BLOCK_SIZE :] == theirs[-SECTOR_SIZE + SIG_BLOCK_SIZE :]


@SCHEMES
def test_both_tools_reject_the_same_tampering(
        scheme: str, our_keys: dict, es_keys: dict, work: Path, app_template: bytes) -> None:
    key_path = our_keys[scheme]
    signed = bytearray(sbv2.sign_v2(app_template, [k.load_private_key(key_path.read_bytes())]))
    signed[0x1000] ^= 0x01  # one image byte
    tampered = work / f"tampered_{scheme}.bin"
    tampered.write_bytes(bytes(signed))
    assert espsecure("verify-signature", "--version", "2", "--keyfile", key_path, tampered,
                     check=False).returncode != 0
    with pytest.raises(SignatureInvalid, match="image digest mismatch"):
        sbv2.verify_v2(bytes(signed), keys=[k.load_private_key(key_path.read_bytes())])
    # wrong key: both refuse
    signed[0x1000] ^= 0x01
    good = work / f"good_{scheme}.bin"
    good.write_bytes(bytes(signed))
    assert espsecure("verify-signature", "--version", "2", "--keyfile", es_keys[scheme], good,
                     check=False).returncode != 0
    with pytest.raises(SignatureInvalid, match="does not verify with key 0"):
        sbv2.verify_v2(bytes(signed), keys=[k.load_private_key(es_keys[scheme].read_bytes())])


def test_multi_key_sectors_and_append_interoperate(
        es_keys: dict, our_keys: dict, work: Path, app_template: bytes) -> None:
    """Three RSA blocks by otaforge checked by espsecure; espsecure --append-signatures onto
    an otaforge-signed image (and the reverse) checked by both."""
    extra = work / "es_rsa_2.pem"
    espsecure("generate-signing-key", "--version", "2", "--scheme", "rsa3072", extra)
    paths = [our_keys["rsa3072"], es_keys["rsa3072"], extra]
    keys = [k.load_private_key(p.read_bytes()) for p in paths]
    three = work / "three.bin"
    three.write_bytes(sbv2.sign_v2(app_template, keys))
    for path in paths:
        espsecure("verify-signature", "--version", "2", "--keyfile", path, three)
    # espsecure appends to ours
    one = work / "one.bin"
    one.write_bytes(sbv2.sign_v2(app_template, keys[:1]))
    two = work / "two.bin"
    espsecure("sign-data", "--version", "2", "--keyfile", paths[1], "--append-signatures",
              "-o", two, one)
    result = sbv2.verify_v2(two.read_bytes(), keys=[keys[1]])
    assert (result.block_index, result.block_count) == (1, 2)
    # we append to espsecure's
    three_again = sbv2.sign_v2(two.read_bytes(), keys[2:], append_to=two.read_bytes())
    (work / "three_again.bin").write_bytes(three_again)
    espsecure("verify-signature", "--version", "2", "--keyfile", paths[2],
              work / "three_again.bin")
    digests = [k.public_key_digest(key) for key in keys]
    assert sbv2.verify_v2(three_again, digests=digests, revoked={0, 1}).block_index == 2


def test_v1_both_ways_byte_identical(
        es_keys: dict, our_keys: dict, work: Path, app_template: bytes) -> None:
    for key_path in (es_keys["v1"], our_keys["v1"]):
        key = k.load_private_key(key_path.read_bytes())
        ours = sbv1.sign_v1(app_template, key)
        theirs_path = work / f"v1_es_{key_path.stem}.bin"
        espsecure("sign-data", "--version", "1", "--keyfile", key_path, "-o", theirs_path,
                  work / "app.bin")
        assert theirs_path.read_bytes() == ours  # deterministic ECDSA on both sides
        ours_path = work / f"v1_ours_{key_path.stem}.bin"
        ours_path.write_bytes(ours)
        assert "Signature is valid" in espsecure(
            "verify-signature", "--version", "1", "--keyfile", key_path, ours_path).stdout
        raw = work / f"v1_{key_path.stem}.raw"
        espsecure("extract-public-key", "--version", "1", "--keyfile", key_path, raw)
        assert raw.read_bytes() == k.v1_public_key_bytes(key)
        assert sbv1.verify_v1(theirs_path.read_bytes(),
                              keys=[k.load_v1_public_key(raw.read_bytes())]).key_index == 0
        bad = bytearray(ours)
        bad[-1] ^= 1
        ours_path.write_bytes(bytes(bad))
        assert espsecure("verify-signature", "--version", "1", "--keyfile", key_path,
                         ours_path, check=False).returncode != 0
        with pytest.raises(SignatureInvalid):
            sbv1.verify_v1(bytes(bad), keys=[key])


def test_legacy_p192_keys_from_espsecure_work_both_ways(work: Path, app_template: bytes) -> None:
    """ESP32-C2 on older ESP-IDF used ECDSA P-192 (generated only by espsecure; read here)."""
    key_path = work / "es_p192.pem"
    espsecure("generate-signing-key", "--version", "2", "--scheme", "ecdsa192", key_path)
    key = k.load_private_key(key_path.read_bytes())
    assert k.public_key_digest(key) == _es_digest(key_path, work)
    ours = work / "p192_ours.bin"
    ours.write_bytes(sbv2.sign_v2(app_template, [key]))
    espsecure("verify-signature", "--version", "2", "--keyfile", key_path, ours)
    theirs = work / "p192_es.bin"
    espsecure("sign-data", "--version", "2", "--keyfile", key_path, "-o", theirs,
              work / "app.bin")
    assert sbv2.verify_v2(theirs.read_bytes(), keys=[key]).scheme == "ecdsa192"
