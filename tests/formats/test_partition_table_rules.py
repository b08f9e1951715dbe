"""Every rule of ESP-IDF's gen_esp32part.py (master), one scenario each, with its verdict.

Verdicts were derived from gen_esp32part.py's source (``PartitionTable.from_csv``/``verify``/
``to_binary``, ``PartitionDefinition.from_csv``/``verify``, ``parse_int``).
``test_gen_esp32part_differential`` runs every scenario here (and generated tables) through the
real script in ``../shared/fixtures/esp-idf/``; ``test_gen_esp32part_wording`` checks each
error's wording against it.
"""

from __future__ import annotations

import pytest

from otaforge.errors import InputError, PartitionTableError
from otaforge.formats.partition_table import PartitionTable, convert_table

NVS = "nvs, data, nvs, , 0x4000\n"

# (scenario id, csv, options, expected: None = accepted, else (line or None, message part))
REJECTED: list[tuple[str, str, dict[str, int], tuple[int | None, str]]] = [
    ("type-empty", "a, , nvs, , 4K\n", {}, (1, "type field can't be empty")),
    ("type-unknown-keyword", "a, dta, nvs, , 4K\n", {}, (1, "type 'dta' is not valid")),
    ("subtype-unknown-keyword", "a, data, nvz, , 4K\n", {}, (1, "subtype 'nvz' is not valid")),
    ("subtype-name-on-custom-type", "a, 0x40, fat, , 4K\n", {}, (1, "invalid subtype 'fat'")),
    ("ota_16-does-not-exist", "a, app, ota_16, , 1M\n", {}, (1, "subtype 'ota_16'")),
    ("app-subtype-empty", "a, app, , , 1M\n", {}, (1, "cannot have an empty subtype")),
    ("size-empty", "a, data, fat, 0x10000, \n", {}, (1, "size field can't be empty")),
    ("size-missing-field", "a, data, fat\n", {}, (1, "size field can't be empty")),
    ("offset-garbage", "a, data, fat, 0x1000g, 4K\n", {}, (1, "invalid offset '0x1000g'")),
    ("offset-leading-zero-decimal", "a, data, fat, 010, 4K\n", {}, (1, "invalid offset '010'")),
    ("size-fraction", "a, data, fat, , 1.5M\n", {}, (1, "invalid size '1.5M'")),
    # gen_esp32part strips K/M before naming the value ('datu'); we name what was written
    ("type-keyword-ending-in-m", "a, datum, fat, , 4K\n", {}, (1, "type 'datum' is not valid")),
    ("unknown-flag", "a, data, fat, , 4K, secret\n", {}, (1, "unknown flag 'secret'")),
    ("flag-case-sensitive", "a, data, fat, , 4K, Encrypted\n", {}, (1, "unknown flag")),
    ("trailing-comment-is-a-flag", "a, data, fat, , 4K, # note\n", {},
     (1, "unknown flag '# note'")),
    ("flag-space-after-colon", "a, data, fat, , 4K, encrypted: readonly\n", {},
     (1, "unknown flag ' readonly'")),
    ("unknown-variable-at-line-start", "$NO_SUCH_VAR_X, data, fat, , 4K\n", {},
     (1, "unknown variable 'NO_SUCH_VAR_X'")),
    ("first-offset-in-table-sector", "a, data, fat, 0x8000, 4K\n", {},
     (1, "overlaps the partition table sector at 0x8000")),
    ("explicit-offset-overlaps-previous", NVS + "b, data, fat, 0xc000, 4K\n", {},
     (2, "overlaps the previous partition 'nvs' (0x9000-0xd000")),
    ("data-offset-not-4k-aligned", "a, data, fat, 0x9800, 4K\n", {},
     (1, "offset 0x9800 is not aligned to 0x1000")),
    ("custom-type-offset-not-4k-aligned", "a, 0x40, 0, 0x9100, 4K\n", {},
     (1, "offset 0x9100 is not aligned to 0x1000")),
    ("app-offset-not-64k-aligned", NVS + "f, app, factory, 0x11000, 1M\n", {},
     (2, "offset 0x11000 is not aligned to 0x10000")),
    ("app-size-not-4k-aligned", "f, app, factory, , 0x100800\n", {},
     (1, "size 0x100800 is not aligned to 0x1000")),
    ("app-size-not-64k-aligned-secure-v1", "f, app, factory, , 0x101000\n", {"secure_v1": 1},
     (1, "size 0x101000 is not aligned to 0x10000")),
    ("otadata-readonly", "o, data, ota, , 8K, readonly\n", {}, (1, "cannot be flagged readonly")),
    ("coredump-readonly", "c, data, coredump, , 64K, readonly\n", {},
     (1, "cannot be flagged readonly")),
    ("nvs-below-12k-read-write", "n, data, nvs, , 8K\n", {}, (1, "must be flagged 'readonly'")),
    ("duplicate-name", NVS + "nvs, data, fat, , 4K\n", {}, (2, "name 'nvs' is used twice")),
    ("duplicate-empty-name", ", data, fat, , 4K\n, data, fat, , 4K\n", {}, (2, "used twice")),
    # gen_esp32part reports the overlap this causes (line 3); we name the cause (line 2)
    ("below-table-after-negative-size", "a, data, fat, , 4K\nb, data, fat, , -0x9000\n"
     "c, data, fat, , 4K\n", {}, (2, "size -0x9000 means 'ends at 0x9000', but the partition "
     "starts at 0xa000")),
    ("recovery-bootloader-overlaps-app", "bl, bootloader, recovery, , \n"
     "f, app, factory, 0x10000, 1M\n",
     {"primary_bootloader_offset": 0x1000, "recovery_bootloader_offset": 0x10000},
     (2, "overlaps the previous partition 'bl' (0x10000-0x17000")),
    ("two-otadata", "o1, data, ota, , 8K\no2, data, ota, , 8K\n", {},
     (2, "multiple otadata partitions")),
    ("otadata-wrong-size", "o, data, ota, , 12K\n", {}, (1, "must be 0x2000")),
    ("two-tee-otadata", "t1, data, tee_ota, , 8K\nt2, data, tee_ota, , 8K\n", {},
     (2, "multiple TEE otadata")),
    ("tee-otadata-wrong-size", "t, data, tee_ota, , 4K\n", {}, (1, "must be 0x2000")),
    ("bootloader-without-offset-option", "bl, bootloader, primary, , \n", {},
     (1, "--primary-bootloader-offset")),
    ("bootloader-ota-needs-primary-offset", "bl, bootloader, ota, , \n", {},
     (1, "--primary-bootloader-offset")),
    ("recovery-bootloader-without-option", "bl, bootloader, recovery, , \n",
     {"primary_bootloader_offset": 0x1000}, (1, "--recovery-bootloader-offset")),
    ("type-256-does-not-fit", "a, 256, 0, , 4K\n", {}, (1, "type 0x100 does not fit")),
    ("subtype-with-k-suffix-overflows", "a, data, fatk, , 4K\n", {}, (1, "subtype 0x20400")),
    ("negative-size-before-offset", "a, data, fat, 0x10000, -0x9000\n", {},
     (1, "size -0x9000 means 'ends at 0x9000', but the partition starts at 0x10000")),
    ("offset-beyond-32-bits", "a, data, fat, 0x100000000, 4K\n", {}, (1, "does not fit")),
    ("95-partitions-with-md5", "".join(f"p{i}, data, fat, , 4K\n" for i in range(95)), {},
     (None, "at most 94 partitions")),
]

ACCEPTED: list[tuple[str, str, dict[str, int]]] = [
    ("empty-file", "", {}),
    ("only-comments", "# Name, Type\n\n   # x\n", {}),
    ("keywords-case-insensitive", "n, DATA, NVS, , 16K\nf, App, Factory, , 1M\n", {}),
    ("numeric-types", "n, 1, 2, , 16K\nf, 0, 0x10, , 1M\n", {}),
    ("custom-type-empty-subtype-is-undefined", "c, 0x40, , , 4K\n", {}),
    ("k-m-suffixes-any-case", "a, data, fat, , 4k\nb, data, fat, , 1m\n"
     "c, data, fat, , 0x10K\n", {}),
    ("octal-binary-underscore-numbers", "a, data, fat, 0o110000, 0b1000000000000\n"
     "b, data, fat, , 4_096\n", {}),
    ("extra-fields-ignored", "a, data, fat, , 4K, , whatever, more\n", {}),
    ("missing-flags-field", "a, data, fat, , 4K\n", {}),
    ("both-flags", "a, data, nvs_keys, , 4K, encrypted:readonly\n", {}),
    ("empty-flag-between-colons", "a, data, fat, , 4K, encrypted::readonly:\n", {}),
    ("nvs-small-readonly", "n, data, nvs, , 8K, readonly\n", {}),
    ("negative-size-means-end-address", "a, data, fat, 0x10000, -0x20000\n", {}),
    ("zero-size", "a, data, fat, , 0\nb, data, fat, , 0\n", {}),
    ("long-name-truncated", "averyveryverylongname1, data, fat, , 4K\n", {}),
    ("unicode-name", "dätä, data, fat, , 4K\n", {}),
    ("crlf-and-tabs", "\tnvs ,\tdata , nvs, , 0x4000\r\nf, app, factory, , 1M\r\n", {}),
    ("comment-after-indent", "   # indented comment\nn, data, nvs, , 16K\n", {}),
    ("dollar-later-in-line-is-literal-name", "a$NO_SUCH_VAR_X, data, fat, , 4K\n", {}),
    ("unknown-braced-variable-is-literal", "${NO_SUCH_VAR_X}, data, fat, , 4K\n", {}),
    ("94-partitions-with-md5", "".join(f"p{i}, data, fat, , 4K\n" for i in range(94)), {}),
    ("all-app-subtypes", "".join(f"o{i}, app, ota_{i}, , 64K\n" for i in range(16))
     + "t, app, test, , 64K\nt0, app, tee_0, , 64K\nt1, app, tee_1, , 64K\n", {}),
    ("all-data-subtypes", "".join(f"d{s}, data, {s}, , 16K\n" for s in (
        "phy", "nvs", "coredump", "nvs_keys", "efuse", "undefined", "esphttpd", "fat",
        "spiffs", "littlefs")) + "o, data, ota, , 8K\nt, data, tee_ota, , 8K\n", {}),
    ("bootloader-and-table-entries", "bl, bootloader, primary, , \npt, partition_table, primary,"
     " , \nnvs, data, nvs, , 16K\nf, app, factory, , 1M\n", {"primary_bootloader_offset": 0x1000}),
    ("recovery-bootloader", "nvs, data, nvs, , 16K\nrb, bootloader, recovery, , \n",
     {"primary_bootloader_offset": 0x1000, "recovery_bootloader_offset": 0x3F0000}),
    ("ota-partition-table-entry", "pt, partition_table, ota, , \n", {}),
    ("app-after-data-padded-to-64k", "n, data, nvs, , 0x5000\nf, app, factory, , 1M\n", {}),
    ("custom-type-padded-to-4k", "n, data, fat, , 0x1800\nc, 0x40, 1, , 4K\n", {}),
]


def _run(csv: str, opts: dict[str, int]) -> bytes:
    kwargs = dict(opts)
    secure = "v1" if kwargs.pop("secure_v1", 0) else None
    return convert_table(csv.encode(), secure=secure,
                         primary_bootloader_offset=kwargs.pop("primary_bootloader_offset", None),
                         recovery_bootloader_offset=kwargs.pop("recovery_bootloader_offset", None),
                         offset=kwargs.pop("offset", 0x8000)).output


@pytest.mark.parametrize(("name", "csv", "opts", "expected"), REJECTED,
                         ids=[r[0] for r in REJECTED])
def test_rejected(name: str, csv: str, opts: dict[str, int],
                  expected: tuple[int | None, str]) -> None:
    line, text = expected
    with pytest.raises(PartitionTableError) as info:
        _run(csv, opts)
    assert info.value.line == line
    assert text in str(info.value)


@pytest.mark.parametrize(("name", "csv", "opts"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted(name: str, csv: str, opts: dict[str, int]) -> None:
    out = _run(csv, opts)
    assert len(out) == 0xC00
    back = PartitionTable.from_bytes(out)
    assert [e.name.encode()[:16] for e in back.entries] == [
        e.name.encode()[:16] for e in PartitionTable.from_csv(csv, **_csv_opts(opts)).entries]


def _csv_opts(opts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in opts.items() if k != "secure_v1"}


def test_placement_follows_alignment_rules() -> None:
    table = PartitionTable.from_csv(
        "n, data, nvs, , 0x5000\nf, app, factory, , 1M\nc, 0x40, 1, , 4K\nd, data, fat, , 0x800\n"
        "e, data, fat, , 4K\n")
    assert [(e.offset, e.size) for e in table.entries] == [
        (0x9000, 0x5000), (0x10000, 0x100000), (0x110000, 0x1000), (0x111000, 0x800),
        (0x112000, 0x1000)]


def test_table_offset_moves_first_free_address() -> None:
    table = PartitionTable.from_csv("n, data, nvs, , 16K\n", offset=0x10000)
    assert table.entries[0].offset == 0x11000
    with pytest.raises(PartitionTableError, match="below 0x11000"):
        PartitionTable.from_bytes(PartitionTable.from_csv(
            "n, data, nvs, 0x9000, 16K\n").to_bytes()).verify(table_offset=0x10000)


def test_environment_variables_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTAFORGE_TEST_OFFSET", "0x20000")
    monkeypatch.setenv("OTAFORGE_TEST_NAME", "store")
    table = PartitionTable.from_csv("$OTAFORGE_TEST_NAME, data, fat, ${OTAFORGE_TEST_OFFSET}, 4K")
    assert (table.entries[0].name, table.entries[0].offset) == ("store", 0x20000)


def test_flash_size_check_uses_partition_with_highest_offset() -> None:
    table = PartitionTable.from_csv("a, data, fat, , 0x3F7000\n")  # ends exactly at 4 MB
    table.verify(flash_size=4 << 20)
    with pytest.raises(PartitionTableError, match="does not fit in a 2MB flash") as info:
        table.verify(flash_size=2 << 20)
    assert info.value.line == 1


def test_primary_bootloader_must_be_below_table() -> None:
    with pytest.raises(InputError, match="below the partition table offset"):
        convert_table(b"n, data, nvs, , 16K\n", primary_bootloader_offset=0x8000)


def test_bootloader_entries_get_fixed_offsets_and_sizes() -> None:
    table = PartitionTable.from_csv(
        "bl, bootloader, primary, 0x123000, 5\npt, partition_table, primary, 0x5, 7\n",
        primary_bootloader_offset=0x1000)
    assert [(e.offset, e.size) for e in table.entries] == [(0x1000, 0x7000), (0x8000, 0x1000)]
