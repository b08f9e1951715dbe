"""Issue 4 part 3 end to end: signatures and anti-rollback enforced by the emulated device.

An ESP32-C6 with hardware Secure Boot v2 (key digests A and B burned, C unknown), rollback and
anti-rollback (eFuse secure_version 2). Every attack is tried twice: through the OTA API
(``esp_ota_end`` / ``esp_ota_set_boot_partition`` must refuse it and leave otadata alone) and
behind the API's back (the bytes of an installed, selected slot replaced in flash: the
bootloader must refuse to boot them and fall back). Rows refer to reliability-matrix.md §6.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from otaforge.crypto import keys as k
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import Device, DeviceConfig
from otaforge.errors import EspError
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.signature_block import CRC_OFFSET, SECTOR_SIZE, SIG_BLOCK_SIZE
from tests.device._emu_helpers import image, install, make_device

CHIP = "esp32c6"
EFUSE_SV = 2


@pytest.fixture(scope="module")
def keys() -> dict[str, k.PrivateKey]:
    """A and B are burned into eFuse (slots 0, 1); C is nobody's key."""
    return {name: k.generate_key("ecdsa256") for name in "abc"}


def _app(version: str, sv: int = EFUSE_SV, chip: str = CHIP) -> bytes:
    return image(version, secure_version=sv, chip=chip)


def _device(keys: dict[str, k.PrivateKey], *, hw: bool = True,
            revoke: tuple[int, ...] = ()) -> Device:
    fuses = Efuses(CHIP)
    if hw:
        fuses.burn_key_digest(k.public_key_digest(keys["a"]))
        fuses.burn_key_digest(k.public_key_digest(keys["b"]))
    fuses.burn_secure_version(EFUSE_SV)
    for index in revoke:
        fuses.revoke_key(index)
    config = DeviceConfig(rollback=True, anti_rollback=True, secure_boot_v2=hw, signed_app=not hw)
    factory = sign_v2(_app("1.0"), [keys["a"], keys["b"]])
    dev = make_device(factory=factory, config=config, efuses=fuses, chip=CHIP)
    assert dev.power_on().partition.name == "factory"  # type: ignore[union-attr]
    return dev


def _flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def _replace_slot(dev: Device, name: str, data: bytes) -> None:
    """Rewrite a slot's bytes directly (a flasher or an attacker, not the OTA API)."""
    part = dev.partition(name)
    dev.flash.erase_range(part.offset, part.size)
    dev.flash.program(part.offset, data)


# attack -> (image bytes given the keys, revoked eFuse key slots, reason the device gives)
Attack = Callable[[dict[str, k.PrivateKey]], bytes]
ATTACKS: dict[str, tuple[Attack, tuple[int, ...], str]] = {
    "unsigned image": (lambda ks: _app("2.0"), (), "no signature sector"),
    "signed by an unknown key": (lambda ks: sign_v2(_app("2.0"), [ks["c"]]), (),
                                 "does not verify"),
    "signed only by a revoked key": (lambda ks: sign_v2(_app("2.0"), [ks["a"]]), (0,),
                                     "revoked"),
    "image byte changed after signing": (
        lambda ks: _flip(sign_v2(_app("2.0"), [ks["a"]]), 0x2000), (), ""),
    "signature block byte changed (CRC fixed up)": (
        lambda ks: _forge_block(sign_v2(_app("2.0"), [ks["a"]])), (), "does not verify"),
    "signature sector cut short": (
        lambda ks: sign_v2(_app("2.0"), [ks["a"]])[: -SECTOR_SIZE + 600], (), ""),
    "unknown key's block first, then a block copied from a trusted image": (
        lambda ks: _graft(sign_v2(_app("2.0"), [ks["c"]]),
                          sign_v2(_app("9.9"), [ks["a"]])), (), "digest mismatch"),
}


def _forge_block(signed: bytes) -> bytes:
    """Change one signature byte of block 0 and recompute its CRC (ESP-IDF's own test)."""
    import zlib

    sector = len(signed) - SECTOR_SIZE
    out = bytearray(signed)
    out[sector + 150] ^= 0x01  # inside r||s of an ECDSA P-256 block
    out[sector + CRC_OFFSET : sector + CRC_OFFSET + 4] = \
        zlib.crc32(bytes(out[sector : sector + CRC_OFFSET])).to_bytes(4, "little")
    return bytes(out)


def _graft(own: bytes, donor: bytes) -> bytes:
    """Put the donor's (trusted, valid) block 0 into slot 1 of ``own``'s sector."""
    sector = len(own) - SECTOR_SIZE
    block = donor[len(donor) - SECTOR_SIZE : len(donor) - SECTOR_SIZE + SIG_BLOCK_SIZE]
    return own[: sector + SIG_BLOCK_SIZE] + block + own[sector + 2 * SIG_BLOCK_SIZE :]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_ota_api_refuses_the_attack_and_keeps_booting_the_old_app(
        keys: dict[str, k.PrivateKey], attack: str) -> None:
    """Rows 28/29: esp_ota_end refuses, set_boot_partition refuses, otadata never switches."""
    make, revoked, reason = ATTACKS[attack]
    dev = _device(keys, revoke=revoked)
    bad = make(keys)
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED") as err:
        install(dev, bad)
    assert reason in str(err.value)
    # esp_ota_end skipped: the partition holds the bytes, set_boot_partition must still refuse
    ota = dev.ota
    part = ota.esp_ota_get_next_update_partition()
    handle = ota.esp_ota_begin(part)
    ota.esp_ota_write(handle, bad)
    ota.esp_ota_abort(handle)
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        ota.esp_ota_set_boot_partition(part)
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_bootloader_refuses_the_attack_behind_the_ota_apis_back(
        keys: dict[str, k.PrivateKey], attack: str) -> None:
    """A selected slot whose bytes were replaced after a good install never boots."""
    make, revoked, _ = ATTACKS[attack]
    dev = _device(keys)
    install(dev, sign_v2(_app("2.0"), [keys["a"]]))  # good: otadata now selects ota_0
    _replace_slot(dev, "ota_0", make(keys))
    for index in revoked:
        dev.efuses.revoke_key(index)
    result = dev.reboot()
    assert result.status == "running"
    assert result.partition.name == "factory"  # type: ignore[union-attr]


def test_a_good_signed_image_boots_with_either_unrevoked_key(
        keys: dict[str, k.PrivateKey]) -> None:
    """The control for the two tables above: the same path with a good image switches."""
    for signers, revoked in ((["a"], ()), (["b"], (0,)), (["c", "b"], (0,))):
        dev = _device(keys, revoke=revoked)
        install(dev, sign_v2(_app("2.0"), [keys[s] for s in signers]))
        assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]


def test_a_key_revoked_after_install_stops_that_image_booting(
        keys: dict[str, k.PrivateKey]) -> None:
    dev = _device(keys)
    install(dev, sign_v2(_app("2.0"), [keys["a"]]))
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    dev.efuses.revoke_key(0)
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


def test_lower_secure_version_is_refused_erased_and_skipped(
        keys: dict[str, k.PrivateKey]) -> None:
    """Row 30: validly signed but older than eFuse: SMALL_SEC_VER, slot erased, never booted."""
    dev = _device(keys)
    old = sign_v2(_app("0.9", sv=EFUSE_SV - 1), [keys["a"]])
    ota_0 = dev.partition("ota_0")
    with pytest.raises(EspError, match="ESP_ERR_OTA_SMALL_SEC_VER"):
        install(dev, old)
    assert dev.flash.read(ota_0.offset, ota_0.size) == b"\xff" * ota_0.size
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]
    # behind the API's back: the bootloader skips it too
    install(dev, sign_v2(_app("2.0"), [keys["a"]]))
    _replace_slot(dev, "ota_0", old)
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


def test_efuse_is_burned_only_when_the_higher_image_is_marked_valid(
        keys: dict[str, k.PrivateKey]) -> None:
    dev = _device(keys)
    install(dev, sign_v2(_app("3.0", sv=EFUSE_SV + 1), [keys["a"]]))
    assert dev.efuses.secure_version == EFUSE_SV  # not on set_boot_partition
    result = dev.reboot()  # healthy app: PENDING_VERIFY -> mark valid -> burn
    assert result.partition.name == "ota_0"  # type: ignore[union-attr]
    assert result.ota_state == OtaImgState.VALID
    assert dev.efuses.secure_version == EFUSE_SV + 1
    with pytest.raises(EspError, match="ESP_ERR_OTA_SMALL_SEC_VER"):
        install(dev, sign_v2(_app("2.1", sv=EFUSE_SV), [keys["a"]]))
    # the factory app (secure_version 2) is now below eFuse: not even a fallback any more
    _replace_slot(dev, "ota_0", _app("junk"))
    assert dev.reboot().status == "bricked"


def test_esp32_checks_signature_block_0_only(v2_keys: dict[str, k.PrivateKey],
                                             other_keys: dict[str, k.PrivateKey]) -> None:
    """ESP32 ECO3: one key digest, SECURE_BOOT_NUM_BLOCKS 1 -- a trusted block 1 is ignored."""
    trusted, stranger = v2_keys["rsa3072"], other_keys["rsa3072"]
    fuses = Efuses("esp32")
    fuses.burn_key_digest(k.public_key_digest(trusted))
    config = DeviceConfig(rollback=True, secure_boot_v2=True)
    dev = make_device(factory=sign_v2(_app("1.0", 0, "esp32"), [trusted]), config=config,
                      efuses=fuses)
    assert dev.power_on().partition.name == "factory"  # type: ignore[union-attr]
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        install(dev, sign_v2(_app("2.0", 0, "esp32"), [stranger, trusted]))
    install(dev, sign_v2(_app("2.0", 0, "esp32"), [trusted, stranger]))
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]


def test_signed_apps_without_secure_boot_trust_the_running_apps_first_valid_block(
        keys: dict[str, k.PrivateKey]) -> None:
    """CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT: trusted = the key of the running app's
    first valid block (secure_boot_signatures_app.c compacts the valid blocks' digests);
    only block 0 of the new image counts."""
    dev = _device(keys, hw=False)  # factory signed [A, B]
    for bad in (_app("2.0"), sign_v2(_app("2.0"), [keys["b"]]),
                sign_v2(_app("2.0"), [keys["b"], keys["a"]])):
        with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
            install(dev, bad)
    install(dev, sign_v2(_app("2.0"), [keys["a"], keys["c"]]))
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    # the running app's block 0 damaged: its block 1 (key B) becomes the trusted key
    running = sign_v2(_app("3.0"), [keys["a"], keys["b"]])
    sector = len(running) - SECTOR_SIZE
    damaged = _flip(running, sector + CRC_OFFSET)
    _replace_slot(dev, "ota_0", damaged)
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        install(dev, sign_v2(_app("4.0"), [keys["a"]]))
    install(dev, sign_v2(_app("4.0"), [keys["b"]]))
    assert dev.reboot().partition.name == "ota_1"  # type: ignore[union-attr]
