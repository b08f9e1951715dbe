"""The bootloader's slot choice (select_boot) against ESP-IDF's rules, scenario by scenario.

Every flash here is built with ``flash_image.compose`` from real app images
(``formats.image_builder.build_image``), then damaged the way the field damages it. Expected values
come from the reference (§2.2, §2.4, §2.7, §5) and ESP-IDF's own tests (test_switch_ota.c).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaforge.device.bootloader import (
    BootConfig,
    BootDecision,
    EfuseState,
    FlashOp,
    read_partition_table,
    select_boot,
)
from otaforge.device.flash_image import compose
from otaforge.errors import PartitionTableError
from otaforge.formats.chips import chip
from otaforge.formats.image_builder import build_image
from otaforge.formats.otadata import OtaImgState, OtaSelectEntry
from otaforge.formats.partition_table import PartitionEntry, PartitionTable

ESP32 = chip("esp32")
NEW, PENDING, VALID, INVALID, ABORTED, UNDEF = (
    OtaImgState.NEW, OtaImgState.PENDING_VERIFY, OtaImgState.VALID, OtaImgState.INVALID,
    OtaImgState.ABORTED, OtaImgState.UNDEFINED)

TWO_OTA = """nvs, data, nvs, , 0x4000,
otadata, data, ota, , 0x2000,
phy_init, data, phy, , 0x1000,
factory, app, factory, , 1M,
ota_0, app, ota_0, , 1M,
ota_1, app, ota_1, , 1M,
"""
NO_FACTORY = """nvs, data, nvs, , 0x4000,
otadata, data, ota, , 0x2000,
phy_init, data, phy, , 0x1000,
ota_0, app, ota_0, 0x10000, 1M,
ota_1, app, ota_1, , 1M,
"""
WITH_TEST = TWO_OTA + "test, app, test, , 512K,\n"
THREE_OTA = """otadata, data, ota, 0xd000, 0x2000,
ota_0, app, ota_0, 0x10000, 1M,
ota_1, app, ota_1, , 1M,
ota_2, app, ota_2, , 1M,
"""
OTADATA = 0xD000


@functools.cache
def app(version: str, secure_version: int = 0, chip_name: str = "esp32", **kw: Any) -> bytes:
    """A real app image (cached: building one costs a few ms)."""
    return build_image(version=version, secure_version=secure_version, chip=chip_name,
                       seed=zlib.crc32(version.encode()) & 0xFFFF, **kw)


def entry(seq: int, state: int = UNDEF, crc: int | None = None) -> OtaSelectEntry:
    made = OtaSelectEntry.make(seq, state)
    return made if crc is None else OtaSelectEntry(seq, made.seq_label, int(state), crc)


class Device:
    """A flash image in memory that applies the bootloader's writes, as the emulator does."""

    def __init__(self, csv: str = TWO_OTA, apps: dict[str, bytes] | None = None,
                 otadata: tuple[OtaSelectEntry | None, OtaSelectEntry | None] | None = None,
                 flash_size: int = 0x400000) -> None:
        table = PartitionTable.from_csv(csv)
        self.flash = bytearray(compose(table, apps or {}, flash_size=flash_size,
                                       otadata=otadata))
        self.reads = 0

    def read(self, addr: int, n: int) -> bytes:
        self.reads += 1
        return bytes(self.flash[addr : addr + n])

    def put(self, addr: int, data: bytes) -> None:
        self.flash[addr : addr + len(data)] = data

    def set_entry(self, sector: int, value: OtaSelectEntry | None) -> None:
        """What esp_ota_ops' rewrite_ota_seq does: erase the sector, write 32 bytes."""
        base = OTADATA + sector * 0x1000
        self.flash[base : base + 0x1000] = b"\xff" * 0x1000
        if value is not None:
            self.put(base, value.to_bytes())

    def entry(self, sector: int) -> OtaSelectEntry:
        base = OTADATA + sector * 0x1000
        return OtaSelectEntry.from_bytes(bytes(self.flash[base : base + 32]))

    def boot(self, config: BootConfig | None = None, efuse: EfuseState | None = None,
             **pins: bool) -> BootDecision:
        decision = select_boot(self.read, config or BootConfig(ESP32), efuse or EfuseState(),
                               **pins)
        for op in decision.otadata_ops:
            if op.kind == "erase":
                assert op.addr % 0x1000 == 0
                self.flash[op.addr : op.addr + 0x1000] = b"\xff" * 0x1000
            else:
                for i, byte in enumerate(op.data):
                    self.flash[op.addr + i] &= byte
        return decision


def booted(decision: BootDecision) -> str | None:
    return decision.partition.name if decision.partition is not None else None


def full(**kw: bytes) -> dict[str, bytes]:
    return {"factory": app("factory"), "ota_0": app("v0"), "ota_1": app("v1"), **kw}


ROLLBACK = BootConfig(ESP32, rollback=True)


# --- §2.7 worked example: factory -> ota_0 -> ota_1 (crash) -> rollback to ota_0 -----------


def test_worked_example_2_7() -> None:
    dev = Device(apps=full())
    first = dev.boot(ROLLBACK)
    assert booted(first) == "factory" and first.otadata_ops == () and first.ota_state_after is None

    dev.set_entry(0, entry(1, NEW))  # esp_ota_set_boot_partition(ota_0)
    assert dev.entry(0).to_bytes().hex() == "01000000" + "ff" * 20 + "00000000" + "9a984347"
    second = dev.boot(ROLLBACK)
    assert booted(second) == "ota_0"
    assert second.otadata_ops == (
        FlashOp("erase", OTADATA),
        FlashOp("program", OTADATA, bytes.fromhex("01000000" + "ff" * 20 + "01000000"
                                                  + "9a984347")))
    assert second.ota_state_after == PENDING

    dev.set_entry(0, entry(1, VALID))  # esp_ota_mark_app_valid_cancel_rollback()
    assert booted(dev.boot(ROLLBACK)) == "ota_0"

    dev.set_entry(1, entry(2, NEW))  # OTA -> ota_1: other sector, seq 2
    assert dev.entry(1).crc == 0x55F63774
    third = dev.boot(ROLLBACK)
    assert booted(third) == "ota_1" and third.ota_state_after == PENDING
    assert dev.entry(1).ota_state == PENDING

    crashed = dev.boot(ROLLBACK)  # the app reset before confirming
    assert booted(crashed) == "ota_0"
    assert dev.entry(1).ota_state == ABORTED and dev.entry(0).ota_state == VALID
    assert crashed.otadata_ops[0] == FlashOp("erase", OTADATA + 0x1000)
    assert crashed.ota_state_after == VALID
    assert "ABORTED" in crashed.reason


# --- ESP-IDF test_switch_ota.c: zeroed CRC in either sector ----------------------------------


def test_zeroed_crc_sector_0_boots_factory() -> None:
    dev = Device(apps=full(), otadata=(entry(1, VALID, crc=0), None))
    decision = dev.boot()
    assert booted(decision) == "factory"
    assert "ota data partition invalid, falling back to factory" in decision.reason


def test_zeroed_crc_sector_1_boots_ota_0() -> None:
    dev = Device(apps=full(), otadata=(entry(1, VALID), entry(2, VALID, crc=0)))
    assert booted(dev.boot()) == "ota_0"


def test_zeroed_crc_without_factory_tries_all_partitions_and_writes_nothing() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0"), "ota_1": app("v1")},
                 otadata=(entry(2, VALID, crc=0), None))
    decision = dev.boot()
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()
    assert "no factory, will try all partitions" in decision.reason


# --- tables with and without factory, blank otadata ------------------------------------------


@pytest.mark.parametrize(("csv", "apps", "expect", "writes_seq"), [
    (TWO_OTA, full(), "factory", None),
    (NO_FACTORY, {"ota_0": app("v0"), "ota_1": app("v1")}, "ota_0", 1),
    # no factory, ota_0 erased: falls forward to ota_1 and records seq 2 ("Set actual ota_seq")
    (NO_FACTORY, {"ota_1": app("v1")}, "ota_1", 2),
])
def test_blank_otadata(csv: str, apps: dict[str, bytes], expect: str,
                       writes_seq: int | None) -> None:
    dev = Device(csv, apps)
    decision = dev.boot()
    assert booted(decision) == expect
    if writes_seq is None:
        assert decision.otadata_ops == ()
    else:
        assert dev.entry(0) == entry(writes_seq, VALID)
        assert f"Set actual ota_seq={writes_seq} in otadata[0]" in decision.reason
        assert booted(dev.boot()) == expect and dev.boot().otadata_ops == ()


def test_no_otadata_partition_boots_factory() -> None:
    dev = Device("factory, app, factory, 0x10000, 1M,\n", {"factory": app("f")})
    assert booted(dev.boot()) == "factory"


# --- otadata selection rules --------------------------------------------------------------------


@pytest.mark.parametrize(("e0", "e1", "expect"), [
    (entry(1, VALID), entry(2, VALID), "ota_1"),
    (entry(3, VALID), entry(2, VALID), "ota_0"),
    (entry(1, VALID), entry(2, INVALID), "ota_0"),
    (entry(1, ABORTED), entry(2, INVALID), "factory"),  # both invalid: "Defaulting to factory"
    (entry(5, UNDEF), None, "ota_0"),  # without rollback UNDEFINED counts as valid
    (entry(0xFFFFFFFF, VALID), entry(4, VALID), "ota_1"),
])
def test_highest_valid_seq_wins(e0: OtaSelectEntry, e1: OtaSelectEntry | None,
                                expect: str) -> None:
    assert booted(Device(apps=full(), otadata=(e0, e1)).boot()) == expect


def test_equal_seq_resolves_to_sector_0() -> None:
    # sector 0 VALID, sector 1 NEW with the same seq: sector 0 wins, so nothing is written
    dev = Device(apps=full(), otadata=(entry(1, VALID), entry(1, NEW)))
    decision = dev.boot(ROLLBACK)
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()
    assert "otadata[0] active" in decision.reason


def test_seq_zero_wraps_as_uint32() -> None:
    # (0 - 1) % 3 in uint32 is 0xFFFFFFFF % 3 == 0, not Python's -1 % 3 == 2
    dev = Device(THREE_OTA, {"ota_0": app("v0"), "ota_1": app("v1"), "ota_2": app("v2")},
                 otadata=(entry(0, VALID), None))
    assert booted(dev.boot()) == "ota_0"


@pytest.mark.parametrize(("seq", "with_seq_3", "alone"), [
    (0xFFFFFFFE, "ota_1", "ota_1"),  # highest seq; (0xFFFFFFFD % 2) == 1
    (0xFFFFFFFF, "ota_0", "factory"),  # unused entry: only seq 3 counts, or nothing
])
def test_seq_near_wrap_is_deterministic(seq: int, with_seq_3: str, alone: str) -> None:
    """Reliability matrix row 14: seq near wrap, no crash, deterministic choice."""
    assert booted(Device(apps=full(), otadata=(entry(seq, VALID), entry(3, VALID))).boot()) \
        == with_seq_3
    assert booted(Device(apps=full(), otadata=(entry(seq, VALID), None)).boot()) == alone


def test_without_rollback_new_state_is_never_advanced() -> None:
    dev = Device(apps=full(), otadata=(entry(1, NEW), None))
    decision = dev.boot(BootConfig(ESP32, rollback=False))
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()
    assert decision.ota_state_after == NEW


def test_pending_verify_in_both_sectors_aborts_both() -> None:
    dev = Device(apps=full(), otadata=(entry(1, PENDING), entry(2, PENDING)))
    decision = dev.boot(ROLLBACK)
    assert booted(decision) == "factory"
    assert [op.addr for op in decision.otadata_ops] == [OTADATA, OTADATA, OTADATA + 0x1000,
                                                        OTADATA + 0x1000]
    assert dev.entry(0).ota_state == dev.entry(1).ota_state == ABORTED


# --- corrupt or foreign images: fallback order (down to factory, up through slots, test) ------


def _flip(image: bytes, offset: int) -> bytes:
    out = bytearray(image)
    out[offset] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(("damage", "why"), [
    (b"\xff" * 64, "invalid magic byte"),
    (_flip(app("v1"), 0x2000), "hecksum"),
    (_flip(app("v1"), len(app("v1")) - 1), "hash"),
    (app("v1", chip_name="esp32s3"), "mismatch chip ID"),
    (app("v1", min_chip_rev_full=300), "chip rev"),
])
def test_corrupt_selected_slot_falls_back_down(damage: bytes, why: str) -> None:
    dev = Device(apps=full(ota_1=damage), otadata=(entry(1, VALID), entry(2, VALID)))
    decision = dev.boot(BootConfig(ESP32, chip_rev=100))
    assert booted(decision) == "ota_0"
    assert why in decision.reason and "OTA app partition slot 1" in decision.reason
    assert decision.otadata_ops == ()  # a fallback does not rewrite otadata (pitfall 8)


def test_fallback_goes_up_after_factory() -> None:
    dev = Device(apps=full(factory=b"\xff", ota_0=b"\x00" * 32),
                 otadata=(entry(1, VALID), None))
    assert booted(dev.boot()) == "ota_1"


def test_image_too_large_for_its_partition_is_not_bootable() -> None:
    csv = "otadata, data, ota, 0xd000, 0x2000,\nota_0, app, ota_0, 0x10000, 0x10000,\n" \
          "ota_1, app, ota_1, 0x20000, 1M,\n"
    dev = Device(csv, {"ota_1": app("v1")}, otadata=(entry(1, VALID), None))
    dev.put(0x10000, app("v0"))  # 196 KB image in a 64 KB slot, overlapping ota_1's start
    decision = dev.boot()
    assert "doesn't fit in partition length 65536" in decision.reason
    assert booted(decision) is None  # ota_1's header was overwritten too: bricked


def test_test_app_is_the_last_resort() -> None:
    dev = Device(WITH_TEST, {"test": app("t")}, otadata=(entry(1, VALID), None))
    decision = dev.boot()
    assert booted(decision) == "test"
    assert "Falling back to test app as only bootable partition" in decision.reason


def test_nothing_bootable_is_bricked() -> None:
    dev = Device(apps={"factory": b"\xe9" + b"\x00" * 100})
    decision = dev.boot()
    assert decision.partition is None
    assert "No bootable app partitions in the partition table" in decision.reason
    assert "E boot: No bootable app partitions in the partition table" in decision.log


# --- GPIO paths ---------------------------------------------------------------------------------


def test_factory_reset_pin_erases_nvs_and_otadata_then_boots_factory() -> None:
    dev = Device(apps=full(), otadata=(entry(1, VALID), entry(2, NEW)))
    dev.put(0x9000, b"wifi-credentials")
    config = BootConfig(ESP32, rollback=True, factory_reset=True)
    decision = dev.boot(config, factory_reset_requested=True)
    assert booted(decision) == "factory"
    erased = [op.addr for op in decision.otadata_ops if op.kind == "erase"]
    # first selection marks ota_1 PENDING_VERIFY, then the reset erases nvs and otadata
    assert erased == [OTADATA + 0x1000, 0x9000, 0xA000, 0xB000, 0xC000, OTADATA, OTADATA + 0x1000]
    assert dev.flash[0x9000:0xD000 + 0x2000] == b"\xff" * 0x6000


def test_factory_reset_pin_ignored_when_not_configured() -> None:
    dev = Device(apps=full(), otadata=(entry(1, VALID), None))
    assert booted(dev.boot(factory_reset_requested=True)) == "ota_0"


def test_test_pin_boots_test_app_or_fails_without_one() -> None:
    config = BootConfig(ESP32, app_test=True)
    with_test = Device(WITH_TEST, full(test=app("t")), otadata=(entry(1, VALID), None))
    assert booted(with_test.boot(config, test_requested=True)) == "test"
    without = Device(apps=full(), otadata=(entry(1, VALID), None))
    decision = without.boot(config, test_requested=True)
    assert decision.partition is None
    assert "Test firmware is not found in partition table" in decision.reason


# --- anti-rollback (§5) -----------------------------------------------------------------------


AR = BootConfig(ESP32, rollback=True, anti_rollback=True)


def test_anti_rollback_ignores_entry_of_lower_secure_version() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 2), "ota_1": app("v1", 1)},
                 otadata=(entry(1, VALID), entry(2, NEW)))
    decision = dev.boot(AR, EfuseState(secure_version=2))
    assert booted(decision) == "ota_0"
    assert dev.entry(1).ota_state == NEW  # the refused entry is not touched
    assert decision.burn_secure_version is None
    assert "secure_version 1 < eFuse secure version 2" in decision.reason


def test_anti_rollback_burns_efuse_for_valid_entry() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 1), "ota_1": app("v1", 3)},
                 otadata=(entry(1, VALID), entry(2, VALID)))
    decision = dev.boot(AR, EfuseState(secure_version=1))
    assert booted(decision) == "ota_1" and decision.burn_secure_version == 3


def test_anti_rollback_does_not_burn_for_pending_image() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 1), "ota_1": app("v1", 3)},
                 otadata=(entry(1, VALID), entry(2, NEW)))
    decision = dev.boot(AR, EfuseState(secure_version=1))
    assert booted(decision) == "ota_1" and decision.burn_secure_version is None
    assert decision.ota_state_after == PENDING


def test_anti_rollback_initial_state_writes_seq_and_burns() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 2), "ota_1": app("v1", 5)})
    decision = dev.boot(AR, EfuseState(secure_version=0))
    assert booted(decision) == "ota_0" and decision.burn_secure_version == 2
    assert dev.entry(0) == entry(1, VALID)


def test_anti_rollback_skips_lower_version_when_falling_back() -> None:
    # ota_1 (VALID, secure_version 2) is corrupt after its app desc; the burn to 2 happens at
    # selection, so ota_0 (secure_version 1) is refused too: the device bricks
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 1), "ota_1": _flip(app("v1", 2), 0x3000)},
                 otadata=(entry(1, VALID), entry(2, VALID)))
    decision = dev.boot(AR, EfuseState(secure_version=1))
    assert decision.burn_secure_version == 2 and decision.partition is None


def test_secure_version_beyond_efuse_field_is_not_burned() -> None:
    dev = Device(NO_FACTORY, {"ota_0": app("v0", 40)}, otadata=(entry(1, VALID), None))
    decision = dev.boot(AR, EfuseState(secure_version=3, secure_version_bits=32))
    assert booted(decision) == "ota_0" and decision.burn_secure_version is None
    assert any("Max secure version is 32" in line for line in decision.log)


# --- partition table as the bootloader verifies it --------------------------------------------


def test_partition_table_problems_leave_nothing_to_boot() -> None:
    dev = Device(apps=full())
    dev.flash[0x8000 + 0xC0 + 20] ^= 0xFF  # MD5 record
    bad_md5 = dev.boot()
    assert bad_md5.partition is None and "Incorrect MD5 checksum" in bad_md5.reason
    dev.flash[0x8000:0x9000] = b"\xff" * 0x1000
    assert dev.boot().partition is None
    dev.flash[0x8000:0x8002] = b"\x00\x00"
    assert "invalid magic number 0x0" in dev.boot().reason


def test_missing_md5_is_accepted_and_flash_size_is_checked() -> None:
    dev = Device(apps=full())
    table = PartitionTable.from_csv(TWO_OTA)
    dev.put(0x8000, table.to_bytes(md5=False))
    assert booted(dev.boot()) == "factory"
    small = dev.boot(BootConfig(ESP32, flash_size=0x200000))
    assert small.partition is None and "exceeds flash chip size 0x200000" in small.reason


def test_otadata_smaller_than_two_sectors_is_a_reset_loop() -> None:
    entries = (PartitionEntry("otadata", 1, 0, 0xD000, 0x1000),
               PartitionEntry("factory", 0, 0, 0x10000, 0x100000))
    dev = Device(apps={})
    dev.put(0x8000, PartitionTable(entries).to_bytes())
    dev.put(0x10000, app("f"))
    decision = dev.boot()
    assert decision.partition is None and "is too small (minimum 8192 bytes)" in decision.reason


def test_ota_slot_gap_maps_seq_to_missing_slot() -> None:
    csv = "otadata, data, ota, 0xd000, 0x2000,\nota_0, app, ota_0, 0x10000, 1M,\n" \
          "ota_2, app, ota_2, , 1M,\n"
    dev = Device(csv, {"ota_0": app("v0"), "ota_2": app("v2")}, otadata=(entry(2, VALID), None))
    assert booted(dev.boot()) == "ota_0"  # slot 1 does not exist; ota_2 is unreachable


def test_read_partition_table_raises_on_second_md5() -> None:
    table = PartitionTable.from_csv(TWO_OTA).to_bytes()
    doubled = table[:0xE0] + table[0xC0:0xE0] + b"\xff" * 0x20
    with pytest.raises(PartitionTableError, match="Only one MD5"):
        read_partition_table(lambda a, n: doubled[a - 0x8000 : a - 0x8000 + n])


# --- signed apps ------------------------------------------------------------------------------


def test_secure_boot_v2_checks_efuse_digests_and_revocation() -> None:
    from otaforge.crypto.keys import generate_key, public_key_digest
    from otaforge.crypto.sbv2 import sign_v2

    c6 = chip("esp32c6")
    key = generate_key("ecdsa256")
    signed = sign_v2(app("s1", chip_name="esp32c6"), [key])
    dev = Device(NO_FACTORY, {"ota_0": app("u0", chip_name="esp32c6"), "ota_1": signed},
                 otadata=(entry(1, VALID), entry(2, VALID)))
    config = BootConfig(c6, secure_boot_v2=True)
    trusted = EfuseState(key_digests=(public_key_digest(key),))
    assert booted(dev.boot(config, trusted)) == "ota_1"
    revoked = dev.boot(config, EfuseState(key_digests=trusted.key_digests,
                                          revoked=frozenset({0})))
    assert revoked.partition is None and "revoked" in revoked.reason
    assert dev.boot(config, EfuseState(key_digests=(b"\x00" * 32,))).partition is None


def test_signed_app_v1_checks_embedded_key() -> None:
    from otaforge.crypto.keys import generate_key, v1_public_key_bytes
    from otaforge.crypto.sbv1 import sign_v1

    key, other = generate_key("v1"), generate_key("v1")
    dev = Device(NO_FACTORY, {"ota_0": sign_v1(app("v0"), key), "ota_1": app("v1")},
                 otadata=(entry(1, VALID), entry(2, VALID)))
    good = dev.boot(BootConfig(ESP32, signed_app_v1=True, v1_public_key=v1_public_key_bytes(key)))
    assert booted(good) == "ota_0"  # ota_1 is unsigned: refused, falls back to ota_0
    bad = dev.boot(BootConfig(ESP32, signed_app_v1=True,
                              v1_public_key=v1_public_key_bytes(other)))
    assert bad.partition is None


# --- purity and a differential model ----------------------------------------------------------


def test_select_boot_is_pure() -> None:
    dev = Device(apps=full(), otadata=(entry(1, NEW), None))
    before = bytes(dev.flash)
    first = select_boot(dev.read, ROLLBACK, EfuseState())
    assert bytes(dev.flash) == before and dev.reads > 0
    assert select_boot(dev.read, ROLLBACK, EfuseState()) == first


def _model(e0: OtaSelectEntry, e1: OtaSelectEntry, factory: bool, rollback: bool) -> str:
    """Reference §2.4 written out independently (all images valid, no anti-rollback)."""
    es = [e.with_state(ABORTED) if rollback and e.ota_state == PENDING else e for e in (e0, e1)]
    def invalid(e: OtaSelectEntry) -> bool:
        return e.ota_seq == 0xFFFFFFFF or e.ota_state in (INVALID, ABORTED)
    if invalid(es[0]) and invalid(es[1]):
        return "factory" if factory else "ota_0"
    ok = [not invalid(e) and e.crc_ok for e in es]
    if not any(ok):
        return "factory" if factory else "ota_0"
    active = 0 if ok[0] and (not ok[1] or es[0].ota_seq >= es[1].ota_seq) else 1
    return f"ota_{((es[active].ota_seq - 1) & 0xFFFFFFFF) % 2}"


_entries = st.builds(
    lambda seq, state, good: entry(seq, state, None if good else 0),
    st.sampled_from([0, 1, 2, 3, 4, 7, 0xFFFFFFFE, 0xFFFFFFFF]),
    st.sampled_from([0, 1, 2, 3, 4, 5, 0xFFFFFFFF]), st.booleans())
_DEVICES: dict[bool, Callable[[], Device]] = {
    True: functools.cache(lambda: Device(apps=full())),
    False: functools.cache(lambda: Device(NO_FACTORY, {"ota_0": app("v0"), "ota_1": app("v1")})),
}


@settings(max_examples=150, deadline=None)
@given(_entries, _entries, st.booleans(), st.booleans())
def test_selection_matches_model(e0: OtaSelectEntry, e1: OtaSelectEntry, factory: bool,
                                 rollback: bool) -> None:
    base = _DEVICES[factory]()
    dev = Device.__new__(Device)
    dev.flash, dev.reads = bytearray(base.flash), 0
    dev.set_entry(0, e0)
    dev.set_entry(1, e1)
    decision = dev.boot(BootConfig(ESP32, rollback=rollback))
    assert booted(decision) == _model(e0, e1, factory, rollback)
    ops = decision.otadata_ops
    assert [op.kind for op in ops] == ["erase", "program"] * (len(ops) // 2)
    assert all(op.addr in (OTADATA, OTADATA + 0x1000) for op in ops)


def test_partition_past_the_flash_end_reads_as_erased() -> None:
    from otaforge.device.flash import MemoryFlash

    csv = "otadata, data, ota, 0xd000, 0x2000,\nota_0, app, ota_0, 0x10000, 1M,\n" \
          "ota_1, app, ota_1, , 1M,\n"
    dev = Device(csv, {"ota_0": app("v0")}, otadata=(entry(2, VALID), None))
    flash = MemoryFlash(0x180000, bytes(dev.flash[:0x180000]))  # ota_1 runs past the chip
    decision = select_boot(flash.read, BootConfig(ESP32), EfuseState())
    assert booted(decision) == "ota_0"
    assert "OTA app partition slot 1 (ota_1) is not bootable" in decision.reason
