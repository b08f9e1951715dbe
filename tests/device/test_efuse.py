"""eFuses: one-time programmable, secure_version thermometer code, key digests, revocation."""

from __future__ import annotations

import pytest

from otaforge.device.efuse import Efuses
from otaforge.errors import EspError, InputError


@pytest.mark.parametrize(("chip", "width"), [("esp32", 32), ("esp32c2", 4), ("esp32c5", 9),
                                             ("esp32s3", 16), ("esp32c3", 16)])
def test_secure_version_width_per_chip(chip: str, width: int) -> None:
    fuses = Efuses(chip)
    fuses.burn_secure_version(width)
    assert fuses.secure_version == width
    with pytest.raises(EspError) as err:
        fuses.burn_secure_version(width + 1)  # matrix row 31
    assert err.value.name == "ESP_ERR_INVALID_ARG"
    assert f"Max secure version is {width}" in str(err.value)


def test_secure_version_is_a_thermometer_code() -> None:
    fuses = Efuses("esp32")
    fuses.burn_secure_version(3)
    assert fuses.secure_version_raw == 0b111
    fuses.burn_secure_version(3)  # equal: nothing programmed
    assert fuses.burns == 1
    fuses.burn_secure_version(5)
    assert fuses.secure_version_raw == 0b11111 and fuses.burns == 2


def test_secure_version_can_never_go_down() -> None:
    """matrix row 33: bits are only ever set."""
    fuses = Efuses("esp32")
    fuses.burn_secure_version(4)
    with pytest.raises(EspError) as err:
        fuses.burn_secure_version(2)
    assert err.value.name == "ESP_FAIL"
    fuses.program_secure_version_bits(0)  # programming zero bits changes nothing
    assert fuses.secure_version == 4
    assert fuses.check_secure_version(4) and not fuses.check_secure_version(3)


def test_configured_field_width_limits_usable_bits() -> None:
    fuses = Efuses("esp32", secure_version_bits=8)
    fuses.program_secure_version_bits(0xFF00)  # bits beyond the usable field do not count
    assert fuses.secure_version == 0
    with pytest.raises(InputError):
        Efuses("esp32c2", secure_version_bits=5)


def test_three_four_coding_scheme_cannot_update_secure_version() -> None:
    fuses = Efuses("esp32", coding_scheme_none=False)
    with pytest.raises(EspError) as err:
        fuses.burn_secure_version(1)
    assert err.value.name == "ESP_ERR_NOT_SUPPORTED"


def test_key_digests_are_write_once_and_revocation_is_permanent() -> None:
    fuses = Efuses("esp32s3")
    assert fuses.key_slots == 3
    assert fuses.burn_key_digest(b"\x01" * 32) == 0
    assert fuses.burn_key_digest(b"\x02" * 32, 2) == 2
    with pytest.raises(EspError) as err:
        fuses.burn_key_digest(b"\x03" * 32, 0)
    assert err.value.name == "ESP_ERR_EFUSE_REPEATED_PROG"
    fuses.revoke_key(0)
    fuses.revoke_key(0)
    assert fuses.revoked == frozenset({0})
    assert fuses.key_digest_slots == (b"\x01" * 32, None, b"\x02" * 32)
    with pytest.raises(EspError):
        fuses.revoke_key(3)


def test_esp32_has_a_single_key_digest_slot() -> None:
    fuses = Efuses("esp32")
    fuses.burn_key_digest(b"\x01" * 32)
    with pytest.raises(EspError) as err:
        fuses.burn_key_digest(b"\x02" * 32)
    assert err.value.name == "ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS"


def test_snapshot_json_and_copy_round_trip() -> None:
    fuses = Efuses("esp32c3")
    fuses.burn_secure_version(2)
    fuses.burn_key_digest(b"\xaa" * 32, 1)
    fuses.revoke_key(2)
    again = Efuses.from_json(fuses.to_json())
    assert again.snapshot().secure_version_raw == 0b11
    assert again.key_digest_slots == fuses.key_digest_slots and again.revoked == {2}
    twin = fuses.copy()
    twin.burn_secure_version(3)
    assert fuses.secure_version == 2
    with pytest.raises(InputError):
        Efuses.from_json({"chip": "esp32"})
