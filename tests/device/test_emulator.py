"""Device lifecycle: app behaviours, watchdog in virtual time, reset loops, bricks, pins,
power cuts inside boot and mark-valid, Secure Boot v2 / signed-app enforcement on update.
Rows refer to reliability-matrix.md §6."""

from __future__ import annotations

import pytest

from otaforge.crypto.keys import generate_key, public_key_digest
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.config import DeviceConfig
from otaforge.device.efuse import Efuses
from otaforge.device.emulator import AppRegistry, VirtualClock
from otaforge.device.powercut import PowerCutPlan
from otaforge.errors import DeviceError, EspError, PowerCut
from otaforge.formats.otadata import OtaImgState
from otaforge.formats.partition_table import PartitionTable
from tests.device._emu_helpers import NO_FACTORY_CSV, image, install, make_device


@pytest.mark.parametrize(("behaviour", "reset"), [("hangs", "task watchdog"), ("panics", "panic"),
                                                  ("fails_self_test", "rollback restart")])
def test_a_bad_new_app_is_rolled_back(behaviour: str, reset: str) -> None:
    """Rows 15/62: the new app never confirms; the bootloader returns to the old one."""
    clock = VirtualClock()
    dev = make_device(factory=image("1.0"), apps=AppRegistry({"2.0": behaviour}))  # type: ignore[dict-item]
    dev.clock = clock
    dev.power_on()
    install(dev, image("2.0"))
    result = dev.reboot()
    assert result.status == "running" and result.partition.name == "factory"  # type: ignore[union-attr]
    assert result.resets == (reset,)
    ota_0 = dev.partition("ota_0")
    want = OtaImgState.INVALID if behaviour == "fails_self_test" else OtaImgState.ABORTED
    assert dev.ota.esp_ota_get_state_partition(ota_0) == want
    if behaviour == "hangs":
        assert clock.now() >= dev.config.watchdog_timeout_s


def test_panicking_app_without_rollback_is_a_reset_loop() -> None:
    config = DeviceConfig(rollback=False, max_boots=5)
    dev = make_device(factory=image("1.0"), config=config, apps=AppRegistry({"2.0": "panics"}))
    dev.power_on()
    install(dev, image("2.0"))
    result = dev.reboot()
    assert result.status == "reset_loop" and result.boots >= 5
    with pytest.raises(DeviceError, match="reset_loop"):
        dev.ota  # noqa: B018


def test_both_slots_corrupt_and_no_factory_is_bricked() -> None:
    """Row 13: reported, never silent."""
    table = PartitionTable.from_csv(NO_FACTORY_CSV)
    bad = bytearray(image("1.0"))
    bad[0x300] ^= 1
    dev = make_device(table, images={"ota_0": bytes(bad), "ota_1": bytes(bad)})
    result = dev.power_on()
    assert result.status == "bricked" and result.partition is None
    assert dev.status == "bricked"


def test_fallback_when_the_selected_slot_is_corrupt() -> None:
    """Row 12: boots the other slot; otadata is not rewritten (running != boot partition)."""
    dev = make_device(factory=image("1.0"))
    dev.power_on()
    install(dev, image("2.0"))
    dev.reboot()
    install(dev, image("3.0"))
    dev.reboot()  # ota_1 valid
    ota_1 = dev.partition("ota_1")
    dev.flash.program(ota_1.offset + 0x200, bytes(16))
    result = dev.reboot()
    assert result.partition.name == "ota_0"  # type: ignore[union-attr]
    assert dev.ota.esp_ota_get_boot_partition() == ota_1
    assert dev.ota.esp_ota_get_next_update_partition() == ota_1
    before = dev.flash.read(0xF000, 32)  # otadata[0]: the running ota_0's entry
    install(dev, image("4.0"))
    assert dev.flash.read(0xF000, 32) == before  # v6: active entry rewritten, not the running one
    assert dev.reboot().desc.version == "4.0"  # type: ignore[union-attr]


def test_erase_otadata_returns_to_factory() -> None:
    dev = make_device(factory=image("1.0"))
    dev.power_on()
    install(dev, image("2.0"))
    dev.reboot()
    dev.erase_otadata()
    assert dev.flash.read(0xF000, 0x2000) == b"\xff" * 0x2000
    assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]


def test_factory_reset_pin_boots_factory() -> None:
    dev = make_device(factory=image("1.0"), config=DeviceConfig(rollback=True,
                                                                factory_reset=True))
    dev.power_on()
    install(dev, image("2.0"))
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    assert dev.power_on(factory_reset=True).partition.name == "factory"  # type: ignore[union-attr]


def test_old_bootloader_without_rollback_leaves_state_new() -> None:
    """Row 63 / pitfall #5: the app has rollback, the bootloader in the field does not."""
    dev = make_device(factory=image("1.0"),
                      config=DeviceConfig(rollback=True, bootloader_rollback=False))
    dev.power_on()
    install(dev, image("2.0"))
    result = dev.reboot()
    assert result.partition.name == "ota_0"  # type: ignore[union-attr]
    assert result.boot_state == result.ota_state == OtaImgState.NEW


def test_cut_during_mark_valid_after_the_erase_reverts_to_the_previous_app() -> None:
    """Row 9: NEW->PENDING (ops 0,1), mark valid erases the active sector (op 2): cut after."""
    dev = make_device(factory=image("1.0"))
    dev.power_on()
    install(dev, image("2.0"))
    dev.flash.arm(PowerCutPlan(2, "after"))  # type: ignore[attr-defined]
    with pytest.raises(PowerCut):
        dev.reboot()
    assert dev.status == "off"
    assert dev.power_on().partition.name == "factory"  # type: ignore[union-attr]


def test_cut_between_valid_write_and_efuse_burn_heals_on_next_boot() -> None:
    """Row 32: the bootloader burns the secure version for an already VALID entry."""
    dev = make_device(factory=image("1.0"),
                      config=DeviceConfig(rollback=True, anti_rollback=True))
    dev.power_on()
    install(dev, image("2.0", secure_version=3))
    dev.flash.arm(PowerCutPlan(3, "after"))  # type: ignore[attr-defined]  # VALID program
    with pytest.raises(PowerCut):
        dev.reboot()
    assert dev.efuses.secure_version == 0
    result = dev.power_on()
    assert result.partition.name == "ota_0"  # type: ignore[union-attr]
    assert dev.efuses.secure_version == 3


# --- signatures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> tuple[object, object]:
    return generate_key("ecdsa256"), generate_key("ecdsa256")


def _signed_device(keys: tuple[object, object], *, hw: bool, revoke: bool = False):  # type: ignore[no-untyped-def]
    key_a, key_b = keys
    fuses = Efuses("esp32c6")
    config = DeviceConfig(rollback=True, secure_boot_v2=hw, signed_app=not hw)
    if hw:
        fuses.burn_key_digest(public_key_digest(key_a))  # type: ignore[arg-type]
        fuses.burn_key_digest(public_key_digest(key_b))  # type: ignore[arg-type]
        if revoke:
            fuses.revoke_key(0)
    factory = sign_v2(image("1.0", chip="esp32c6"), [key_b if revoke else key_a])  # type: ignore[list-item]
    dev = make_device(factory=factory, config=config, efuses=fuses, chip="esp32c6")
    assert dev.power_on().partition.name == "factory"  # type: ignore[union-attr]
    return dev


@pytest.mark.parametrize("hw", [True, False], ids=["secure_boot_v2", "signed_app"])
def test_unsigned_or_wrongly_signed_images_never_become_bootable(
        keys: tuple[object, object], hw: bool) -> None:
    """Rows 28/29: esp_ota_end refuses; otadata is never switched."""
    key_a, key_b = keys
    unsigned = image("2.0", chip="esp32c6")
    for bad in (unsigned, sign_v2(unsigned, [generate_key("ecdsa256")])) + \
            (() if hw else (sign_v2(unsigned, [key_b]),)):  # type: ignore[list-item]
        dev = _signed_device(keys, hw=hw)
        with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
            install(dev, bad)
        assert dev.reboot().partition.name == "factory"  # type: ignore[union-attr]
    dev = _signed_device(keys, hw=hw)
    install(dev, sign_v2(unsigned, [key_a]))  # type: ignore[list-item]
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]


def test_revoked_key_index_is_honoured(keys: tuple[object, object]) -> None:
    key_a, key_b = keys
    unsigned = image("2.0", chip="esp32c6")
    dev = _signed_device(keys, hw=True, revoke=True)
    with pytest.raises(EspError, match="revoked"):
        install(dev, sign_v2(unsigned, [key_a]))  # type: ignore[list-item]
    install(dev, sign_v2(unsigned, [key_b]))  # type: ignore[list-item]
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]


def test_revoke_public_key_needs_another_key_that_signs_the_running_app(
        keys: tuple[object, object]) -> None:
    key_a, key_b = keys
    dev = _signed_device(keys, hw=True)  # factory signed with key A only
    only_a = sign_v2(image("1.5", chip="esp32c6"), [key_a])  # type: ignore[list-item]
    install(dev, only_a)
    assert dev.reboot().ota_state == OtaImgState.VALID
    with pytest.raises(EspError, match=r"ESP_FAIL.*other than the one being revoked"):
        dev.ota.esp_ota_revoke_secure_boot_public_key(0)
    assert dev.efuses.revoked == frozenset()
    both = sign_v2(image("2.0", chip="esp32c6"), [key_a, key_b])  # type: ignore[list-item]
    install(dev, both)
    dev.reboot()
    dev.ota.esp_ota_revoke_secure_boot_public_key(0)
    assert dev.efuses.revoked == frozenset({0})
    with pytest.raises(EspError, match="ESP_ERR_INVALID_ARG"):
        dev.ota.esp_ota_revoke_secure_boot_public_key(3)


def test_revoke_public_key_from_factory_fails_with_rollback(keys: tuple[object, object]) -> None:
    """esp_ota_get_state_partition(factory) is NOT_SUPPORTED, so the C code returns ESP_FAIL
    even though the factory app verifies with key B."""
    key_a, key_b = keys
    fuses = Efuses("esp32c6")
    fuses.burn_key_digest(public_key_digest(key_a))  # type: ignore[arg-type]
    fuses.burn_key_digest(public_key_digest(key_b))  # type: ignore[arg-type]
    factory = sign_v2(image("1.0", chip="esp32c6"), [key_a, key_b])  # type: ignore[list-item]
    dev = make_device(factory=factory, efuses=fuses, chip="esp32c6",
                      config=DeviceConfig(rollback=True, secure_boot_v2=True))
    assert dev.power_on().partition.name == "factory"  # type: ignore[union-attr]
    with pytest.raises(EspError, match=r"ESP_FAIL.*not marked as a valid image"):
        dev.ota.esp_ota_revoke_secure_boot_public_key(0)
    assert dev.efuses.revoked == frozenset()


def _corrupt_block(signed: bytes, index: int) -> bytes:
    """The signed image with signature block ``index`` failing its CRC (key bytes changed)."""
    out = bytearray(signed)
    sector = len(out) - 0x1000
    out[sector + 1216 * index + 40] ^= 0x01  # inside the public key: CRC no longer matches
    return bytes(out)


def test_signed_app_trusts_the_first_valid_block_of_the_running_app(
        keys: tuple[object, object]) -> None:
    """CONFIG_SECURE_SIGNED_ON_UPDATE_NO_SECURE_BOOT (v6.0+ secure_boot_signatures_app.c): the
    running app's valid blocks' key digests are packed from index 0 and only index 0 is
    compared with the new image's block 0. So a running app signed [A, B] trusts A only; one
    whose block 0 is broken trusts B (its first valid block); the new image's block 1 is never
    looked at."""
    key_a, key_b = keys
    unsigned = image("2.0", chip="esp32c6")
    config = DeviceConfig(rollback=True, signed_app=True)
    factory = sign_v2(image("1.0", chip="esp32c6"), [key_a, key_b])  # type: ignore[list-item]
    dev = make_device(factory=factory, config=config, chip="esp32c6")
    dev.power_on()
    for refused in ([key_b], [key_b, key_a]):
        with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
            install(dev, sign_v2(unsigned, refused))  # type: ignore[arg-type]
    install(dev, sign_v2(unsigned, [key_a]))  # type: ignore[list-item]
    assert dev.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
    broken0 = make_device(factory=_corrupt_block(factory, 0), config=config, chip="esp32c6")
    broken0.power_on()
    with pytest.raises(EspError, match="ESP_ERR_OTA_VALIDATE_FAILED"):
        install(broken0, sign_v2(unsigned, [key_a]))  # type: ignore[list-item]
    install(broken0, sign_v2(unsigned, [key_b]))  # type: ignore[list-item]
    assert broken0.reboot().partition.name == "ota_0"  # type: ignore[union-attr]
