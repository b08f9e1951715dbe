"""Edge cases of the bootloader's choice, each pinned to the ESP-IDF function that decides it.

Companion to test_bootloader.py (same Device helper). Sources: espressif/esp-idf
components/bootloader_support/src/bootloader_utility.c, bootloader_common_loader.c,
flash_partitions.c, esp_image_format.c.
"""

from __future__ import annotations

import hashlib

import pytest

from otaforge.device.boot_image import image_load_error
from otaforge.device.boot_table import BootState, read_partition_table
from otaforge.device.bootloader import BootConfig, BootEfuses, select_boot
from otaforge.formats import record
from otaforge.formats.app_image import AppImage
from otaforge.formats.chips import chip
from otaforge.formats.partition_table import PartitionEntry, PartitionTable
from tests.device.test_bootloader import (
    ABORTED,
    AR,
    ESP32,
    INVALID,
    NEW,
    NO_FACTORY,
    OTADATA,
    PENDING,
    ROLLBACK,
    TWO_OTA,
    VALID,
    WITH_TEST,
    Device,
    app,
    booted,
    entry,
    full,
)

BOTH = {"ota_0": app("v0"), "ota_1": app("v1")}


# --- otadata states (bootloader_common_ota_select_invalid / _valid) ---------------------------


@pytest.mark.parametrize(("state", "expect"), [
    # without CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE a PENDING_VERIFY entry is not aborted and,
    # not being INVALID/ABORTED, it is valid: its slot boots and nothing is written
    (PENDING, "ota_1"),
    (NEW, "ota_1"),
    (5, "ota_1"),  # a state ESP-IDF never writes is neither INVALID nor ABORTED: valid
    (INVALID, "ota_0"),
    (ABORTED, "ota_0"),
])
def test_state_counts_without_rollback(state: int, expect: str) -> None:
    dev = Device(apps=full(), otadata=(entry(1, VALID), entry(2, state)))
    decision = dev.boot(BootConfig(ESP32))
    assert booted(decision) == expect and decision.otadata_ops == ()


def test_bad_crcs_with_live_states_try_all_partitions_and_write_nothing() -> None:
    # bootloader_utility_get_selected_boot_partition: _invalid() ignores the CRC, so two
    # entries with bad CRCs are not "both invalid"; no entry is _valid() either -> "will try
    # all partitions", and ota_has_initial_contents stays false: no "Set actual ota_seq"
    dev = Device(NO_FACTORY, BOTH, otadata=(entry(2, VALID, crc=0), entry(3, VALID, crc=1)))
    decision = dev.boot()
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()
    assert "ota data partition invalid and no factory, will try all partitions" in decision.reason


def test_aborted_entry_with_good_crc_is_not_initial_contents() -> None:
    # both invalid, no factory -> "No factory image, trying OTA 0"; entry 0 has seq != 0xFFFFFFFF
    # and a good CRC, so ota_has_initial_contents is false and otadata is left as it is
    dev = Device(NO_FACTORY, BOTH, otadata=(entry(2, ABORTED), None))
    decision = dev.boot(ROLLBACK)
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()


def test_blank_otadata_with_corrupt_factory_falls_forward_without_writing() -> None:
    # factory present: "Defaulting to factory image" leaves ota_has_initial_contents false, so
    # when the factory image is bad and ota_0 boots, set_actual_ota_seq writes nothing
    dev = Device(apps=full(factory=b"\xe9" + b"\x00" * 64))
    decision = dev.boot()
    assert booted(decision) == "ota_0" and decision.otadata_ops == ()


def test_test_pin_after_selection_still_writes_pending_verify() -> None:
    # selected_boot_partition: the GPIO checks come after get_selected_boot_partition, whose
    # NEW -> PENDING_VERIFY write has already happened when the test app is chosen
    dev = Device(WITH_TEST, full(test=app("t")), otadata=(entry(1, VALID), entry(2, NEW)))
    decision = dev.boot(BootConfig(ESP32, rollback=True, app_test=True), test_requested=True)
    assert booted(decision) == "test"
    assert dev.entry(1).ota_state == PENDING


# --- anti-rollback (check_anti_rollback / update_anti_rollback / set_actual_ota_seq) -----------


def test_anti_rollback_blank_otadata_with_bad_factory_writes_seq_and_burns() -> None:
    # With CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK, blank otadata sets ota_has_initial_contents even
    # when a factory partition exists (unlike the non-anti-rollback branch), so once the factory
    # image fails, ota_0 boots with "Set actual ota_seq=1" and its secure_version is burned.
    dev = Device(apps=full(factory=b"\xff" * 16, ota_0=app("v0", 3)))
    decision = dev.boot(AR, BootEfuses(secure_version=1))
    assert booted(decision) == "ota_0" and decision.burn_secure_version == 3
    assert dev.entry(0) == entry(1, VALID)


def test_anti_rollback_skips_factory_of_lower_secure_version() -> None:
    # bootloader_utility_load_boot_image: check_anti_rollback() runs for the factory index too
    dev = Device(apps=full(factory=app("f", 0), ota_0=app("v0", 2), ota_1=app("v1", 2)),
                 otadata=(entry(1, INVALID), None))
    decision = dev.boot(AR, BootEfuses(secure_version=2))
    assert booted(decision) == "ota_0"
    assert "Factory app partition (factory) is not bootable: secure_version 0" in decision.reason


def test_anti_rollback_refuses_test_app_of_lower_secure_version() -> None:
    # master checks anti-rollback before the "Falling back to test app" last resort as well
    dev = Device(WITH_TEST, {"test": app("t", 0)}, otadata=(entry(1, VALID), None))
    assert dev.boot(AR, BootEfuses(secure_version=1)).partition is None
    assert booted(dev.boot(AR, BootEfuses(secure_version=0))) == "test"


# --- partition table (esp_partition_table_verify, bootloader_utility_load_partition_table) -----


def _raw_table(*records: bytes) -> bytes:
    body = b"".join(records)
    return body + b"\xff" * (0xC00 - len(body))


def test_md5_record_in_the_middle_drops_the_last_record() -> None:
    # num_partitions = num_parts - md5_found: the MD5 record itself is iterated (type 0xFF) and
    # the record after it is never looked at by bootloader_utility_load_partition_table
    table = PartitionTable.from_csv(TWO_OTA)
    head = b"".join(e.to_bytes() for e in table.entries[:5])
    md5 = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(head).digest()
    raw = _raw_table(head, md5, table.entries[5].to_bytes())
    entries = read_partition_table(lambda a, n: raw[a - 0x8000 : a - 0x8000 + n])
    assert [e.name for e in entries][:5] == [e.name for e in table.entries[:5]]
    assert len(entries) == 6 and entries[5].type == 0xFF
    assert BootState.from_entries(entries).app_count == 1  # ota_1 is gone


def test_partition_end_is_a_uint32_sum() -> None:
    # offset + size is computed in uint32: a size that wraps past 4 GiB passes the chip-size check
    huge = PartitionEntry("wrap", 0x01, 0x82, 0x3F0000, 0xFFC20000)
    factory = PartitionEntry("factory", 0x00, 0x00, 0x10000, 0x100000)
    raw = _raw_table(factory.to_bytes(), huge.to_bytes())
    entries = read_partition_table(lambda a, n: raw[a - 0x8000 : a - 0x8000 + n],
                                   flash_size=0x400000)
    assert [e.name for e in entries] == ["factory", "wrap"]


def test_last_factory_record_wins() -> None:
    # bs->factory = partition->pos for every factory record: the last one counts
    first = PartitionEntry("factory_a", 0x00, 0x00, 0x10000, 0x100000)
    second = PartitionEntry("factory_b", 0x00, 0x00, 0x110000, 0x100000)
    dev = Device(apps={})
    dev.put(0x8000, PartitionTable((first, second)).to_bytes())
    dev.put(0x10000, app("a"))
    dev.put(0x110000, app("b"))
    assert booted(dev.boot()) == "factory_b"


def test_no_otadata_and_no_factory_boots_first_loadable_ota_slot() -> None:
    # bs->ota_info.offset == 0 -> FACTORY_INDEX; no factory: the forward loop tries ota_0, ota_1
    csv = "ota_0, app, ota_0, 0x10000, 1M,\nota_1, app, ota_1, , 1M,\n"
    dev = Device(csv, {"ota_1": app("v1")})
    decision = dev.boot(ROLLBACK)
    assert booted(decision) == "ota_1" and decision.otadata_ops == ()


# --- per-image checks (esp_image_format.c image_load) ---------------------------------------------


def _with_blk_rev(image: bytes, lo: int) -> bytes:
    parsed = AppImage.from_bytes(image)
    assert parsed.app_desc is not None
    return parsed.with_app_desc(record.replace(parsed.app_desc,
                                                    min_efuse_blk_rev_full=lo)).to_bytes()


def test_efuse_blk_rev_is_checked_when_chip_revision_is_unknown() -> None:
    # process_segment_data -> bootloader_common_check_efuse_blk_validity runs on non-ESP32 chips
    # whatever the chip revision; an unknown --chip-rev must not switch it off
    c3 = chip("esp32c3")
    needs_v2 = _with_blk_rev(app("b", chip_name="esp32c3"), 200)
    dev = Device(NO_FACTORY, {"ota_0": app("a", chip_name="esp32c3"), "ota_1": needs_v2},
                 otadata=(entry(2, VALID), None))
    for rev in (None, 3):
        decision = dev.boot(BootConfig(c3, chip_rev=rev, efuse_blk_rev=100))
        assert booted(decision) == "ota_0", rev
        assert "efuse blk rev >= v2.0" in decision.reason
    assert booted(dev.boot(BootConfig(c3, chip_rev=None, efuse_blk_rev=200))) == "ota_1"


def test_unknown_chip_revision_still_refuses_an_image_no_chip_can_run() -> None:
    # bootloader_common_check_chip_revision_validity: min <= rev <= max (max set); with
    # min_chip_rev_full 3.0 > max_chip_rev_full 1.99 every revision is refused
    impossible = app("x", min_chip_rev_full=300, max_chip_rev_full=199)
    dev = Device(apps=full(ota_1=impossible), otadata=(entry(2, VALID), None))
    decision = dev.boot(BootConfig(ESP32, chip_rev=None))
    assert booted(decision) == "ota_0" and "chip rev" in decision.reason
    ok = Device(apps=full(ota_1=app("y", min_chip_rev_full=300)), otadata=(entry(2, VALID), None))
    assert booted(ok.boot(BootConfig(ESP32, chip_rev=None))) == "ota_1"  # minimum assumed met


def _bad_hash(image: bytes) -> bytes:
    out = bytearray(image)
    out[-1] ^= 0xFF  # the last byte of the appended SHA-256; the XOR checksum is untouched
    return bytes(out)


def test_signed_boot_checks_signature_instead_of_simple_hash() -> None:
    # image_load: with SECURE_BOOT_CHECK_SIGNATURE verify_secure_boot_signature() replaces
    # verify_simple_hash(); the signed digest covers the (wrong) appended hash, so it boots.
    from otaforge.crypto.keys import generate_key, v1_public_key_bytes
    from otaforge.crypto.sbv1 import sign_v1

    key = generate_key("v1")
    signed_bad_hash = sign_v1(_bad_hash(app("v0")), key)
    dev = Device(NO_FACTORY, {"ota_0": signed_bad_hash}, otadata=(entry(1, VALID), None))
    config = BootConfig(ESP32, signed_app_v1=True, v1_public_key=v1_public_key_bytes(key))
    assert booted(dev.boot(config)) == "ota_0"
    # without signature checking the simple hash is what catches it
    plain = Device(NO_FACTORY, {"ota_0": _bad_hash(app("v0"))}, otadata=(entry(1, VALID), None))
    assert plain.boot().partition is None
    # and a corrupted signed image (checksum broken) is still refused
    broken = bytearray(signed_bad_hash)
    broken[0x3000] ^= 1
    dev.put(0x10000, bytes(broken))
    assert dev.boot(config).partition is None


def test_image_load_error_reads_past_a_short_dump_as_erased() -> None:
    # a dump that ends inside the partition: the rest reads 0xFF, as erased flash does
    image = app("v0")
    part = PartitionEntry("ota_0", 0x00, 0x10, 0x10000, 0x100000)
    dump = b"\xff" * 0x10000 + image

    def read(addr: int, n: int) -> bytes:
        return dump[addr : addr + n]

    assert image_load_error(read, part, BootConfig(ESP32), BootEfuses()) is None
    truncated = dump[: 0x10000 + len(image) // 2]
    why = image_load_error(lambda a, n: truncated[a : a + n], part, BootConfig(ESP32),
                           BootEfuses())
    assert why is not None


def test_otadata_rewrite_keeps_seq_label_and_crc() -> None:
    # write_otadata() rewrites the in-RAM copy: a PENDING_VERIFY -> ABORTED rewrite keeps the
    # seq_label bytes as read and the stored CRC (it covers only ota_seq)
    dev = Device(apps=full(), otadata=(entry(1, VALID), entry(2, PENDING)))
    label = bytes(range(20))
    dev.put(OTADATA + 0x1000 + 4, label)  # 0xFF -> these bytes (programming clears bits)
    select_boot(dev.read, ROLLBACK, BootEfuses())
    decision = dev.boot(ROLLBACK)
    assert booted(decision) == "ota_0"
    assert dev.entry(1).seq_label == label and dev.entry(1).crc == entry(2).crc
    assert dev.entry(1).ota_state == ABORTED


def _segment0_patched(image: bytes, patch: dict[int, bytes]) -> bytes:
    """The image with bytes of segment 0 replaced (checksum and hash recomputed)."""
    from otaforge.formats.app_image import Segment, assemble_image

    parsed = AppImage.from_bytes(image, check=False)
    first = bytearray(parsed.segments[0].data)
    for offset, data in patch.items():
        first[offset : offset + len(data)] = data
    segments = (Segment(parsed.segments[0].load_addr, bytes(first)), *parsed.segments[1:])
    return assemble_image(parsed.header, segments)


@pytest.mark.parametrize(("patch", "boots"), [
    # min 0xFFFF is "not set" (IS_FIELD_SET): no requirement
    ({0xB0: b"\xff\xff"}, "ota_1"),
    # no esp_app_desc_t magic: the fields are read anyway (pitfall "efuse blk rev >= v251.85")
    ({0x00: b"\x00\x00\x00\x00", 0xB0: b"\xd3\x03"}, "ota_0"),
])
def test_efuse_blk_rev_fields_as_process_segment_data_reads_them(patch: dict[int, bytes],
                                                                 boots: str) -> None:
    c3 = chip("esp32c3")
    odd = _segment0_patched(app("b", chip_name="esp32c3"), patch)
    dev = Device(NO_FACTORY, {"ota_0": app("a", chip_name="esp32c3"), "ota_1": odd},
                 otadata=(entry(2, VALID), None))
    assert booted(dev.boot(BootConfig(c3, chip_rev=3, efuse_blk_rev=100))) == boots


@pytest.mark.parametrize(("seq", "expect"), [
    (1, "ota_1"),  # slot 0 is missing: down to factory (none), then up: index 1 -> ota_1
    (2, "ota_1"),
    (3, "ota_1"),  # (3-1) % 2 == 0 again; ota_2 (index 2 >= app_count) is never reachable
])
def test_table_without_ota_0(seq: int, expect: str) -> None:
    # bootloader_utility_load_partition_table: ota[subtype & 0x0F], app_count counts entries;
    # index_to_partition refuses index >= app_count
    csv = "otadata, data, ota, 0xd000, 0x2000,\nota_1, app, ota_1, 0x10000, 1M,\n" \
          "ota_2, app, ota_2, , 1M,\n"
    dev = Device(csv, {"ota_1": app("v1"), "ota_2": app("v2")}, otadata=(entry(seq, VALID), None))
    decision = dev.boot()
    assert booted(decision) == expect and decision.otadata_ops == ()
