"""What the agent reads from the device for the decision core: eFuse key slots by index."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

from otaforge.agent.decision import check_image
from otaforge.agent.probe import DeviceProbe
from otaforge.crypto.keys import generate_key, public_key_digest
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.emulator import Device, DeviceConfig, compose_flash
from otaforge.device.flash import MemoryFlash
from otaforge.errors import SignatureInvalid
from otaforge.formats.image_builder import build_image
from otaforge.formats.partition_table import PartitionTable

PARTITIONS = """\
nvs,      data, nvs,     0x9000,   0x6000,
otadata,  data, ota,     0xf000,   0x2000,
factory,  app,  factory, 0x20000,  0x80000,
ota_0,    app,  ota_0,   0xA0000,  0x80000,
ota_1,    app,  ota_1,   0x120000, 0x80000,
"""


@lru_cache
def _keys() -> tuple[Any, Any]:
    return generate_key("rsa3072"), generate_key("rsa3072")


def _image(version: str) -> bytes:
    return build_image(version=version, chip="esp32s3", size=0x10000)


def _agent_with_gap_in_key_slots() -> DeviceProbe:
    """ESP32-S3: key A in slot 0, slot 1 empty, key B in slot 2, slot 2 revoked."""
    key_a, key_b = _keys()
    table = PartitionTable.from_csv(PARTITIONS)
    factory = sign_v2(_image("1.0.0"), [key_a])
    flash = MemoryFlash(2 * 1024 * 1024, compose_flash(table, {"factory": factory}))
    device = Device(flash, "esp32s3", DeviceConfig(rollback=True, secure_boot_v2=True))
    device.efuses.burn_key_digest(public_key_digest(key_a), 0)
    device.efuses.burn_key_digest(public_key_digest(key_b), 2)
    device.efuses.revoke_key(2)
    assert device.power_on().status == "running"
    return DeviceProbe(device)  # reads the device only: no network, no state store


def test_key_digests_keep_their_efuse_slot_index() -> None:
    facts = _agent_with_gap_in_key_slots().facts()
    key_a, key_b = _keys()
    assert facts.key_digests == (public_key_digest(key_a), b"", public_key_digest(key_b))
    assert facts.revoked == frozenset({2})


@pytest.mark.parametrize("signer,refused", [(0, False), (1, True)],
                         ids=["key in slot 0: accepted", "revoked key in slot 2: refused"])
def test_revoked_key_after_an_empty_slot_is_refused(signer: int, refused: bool) -> None:
    """With empty slots dropped, key B (slot 2, revoked) would sit at index 1 and pass."""
    facts = _agent_with_gap_in_key_slots().facts()
    data = sign_v2(_image("1.1.0"), [_keys()[signer]])
    if refused:
        with pytest.raises(SignatureInvalid):
            check_image(facts, data)
    else:
        check_image(facts, data)
