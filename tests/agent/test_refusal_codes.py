"""Refusal codes are typed: rewording any error message never changes what the server records.

Every :class:`RefusalCode` is produced here by the real decision core (or the real emulated
device) from an input that fails for that reason; then the error's message is replaced by
one full of other reasons' words ("chip id", "doesn't fit", "signature", "magic", ...) and
the reported code must not move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from otaforge.agent.decision import (
    Refusal,
    check_header,
    check_image,
    plan_offer,
    refusal_for,
    refusal_for_device,
)
from otaforge.crypto.keys import generate_key, public_key_digest
from otaforge.crypto.sbv2 import sign_v2
from otaforge.device.emulator import Device, DeviceConfig
from otaforge.errors import EspError, RefusableError, RefusalCode
from tests.agent._inputs import facts as _facts
from tests.agent._inputs import image as _image
from tests.agent._inputs import offer as _offer
from tests.agent._inputs import rsa_key as _key
from tests.conftest import SHARED_FIXTURES
from tests.device._emu_helpers import make_device, seed_table

MISLEADING = ("mismatch chip ID; Image requires chip rev >= 9.9; image doesn't fit, larger than "
              "the slot; not the offered version; the running version; signature key invalid "
              "magic byte; truncated checksum")


def _corrupt(data: bytes) -> bytes:
    """One byte of segment data flipped: the checksum / appended SHA-256 no longer match."""
    return data[:0x200] + bytes([data[0x200] ^ 0xFF]) + data[0x201:]


# --- failures raised by the decision core --------------------------------------------------

Failing = Callable[[], object]


@dataclass(frozen=True)
class Raised:
    """An input that makes the core raise an error carrying ``code``."""

    run: Failing
    code: RefusalCode


# fmt: off
RAISED = {
    "HTML page instead of an image": Raised(lambda: check_header(
        _facts(), b"<!DOCTYPE html>" + b" " * 1200, None), RefusalCode.NOT_AN_IMAGE),
    "header cut at 180 bytes":       Raised(lambda: check_header(
        _facts(), _image()[:180], None), RefusalCode.TRUNCATED),
    "segment byte flipped":          Raised(lambda: check_image(
        _facts(), _corrupt(_image())), RefusalCode.CORRUPT),
    "ESP32-S3 image on an ESP32":    Raised(lambda: check_header(
        _facts(), _image(chip_name="esp32s3")[:1024], None), RefusalCode.WRONG_CHIP),
    "needs chip rev 3.0":            Raised(lambda: check_header(
        _facts(), _image(min_rev=300)[:1024], None), RefusalCode.CHIP_REVISION),
    "announced size over the slot":  Raised(lambda: check_header(
        _facts(slot_size=0x10000), _image()[:1024], 0x20000), RefusalCode.TOO_LARGE),
    "unsigned, signature required":  Raised(lambda: check_image(
        _facts(require_signature=True,
               key_digests=(public_key_digest(generate_key("ecdsa256")),)),
        _image(), _offer(_image())), RefusalCode.BAD_SIGNATURE),
    "secure_version below eFuse":    Raised(lambda: check_header(
        _facts(efuse_secure_version=2), _image()[:1024], None), RefusalCode.SECURE_VERSION),
    "the running version again":     Raised(lambda: check_header(
        _facts(), _image(version="1.0.0")[:1024], None), RefusalCode.SAME_VERSION),
    "bytes are not the release's":   Raised(lambda: check_image(
        _facts(), _image(), _offer(_image(), sha256="00" * 32)), RefusalCode.DIGEST_MISMATCH),
    "image of another release":      Raised(lambda: check_header(
        _facts(), _image(version="1.2.0")[:1024], None, _offer(_image())),
        RefusalCode.VERSION_MISMATCH),
}
# fmt: on

# --- refusals decided from the offer alone (no error, no message) ---------------------------

OFFERED = {
    "version that already failed": (lambda: plan_offer(
        _facts(last_invalid_version="1.1.0"), _offer(_image())), RefusalCode.KNOWN_BAD),
    "offer below the eFuse":       (lambda: plan_offer(
        _facts(efuse_secure_version=2), _offer(_image())), RefusalCode.SECURE_VERSION),
    "offer over the slot":         (lambda: plan_offer(
        _facts(slot_size=0x1000), _offer(_image())), RefusalCode.TOO_LARGE),
    "offer of the running version": (lambda: plan_offer(
        _facts(running_version="1.1.0"), _offer(_image())), RefusalCode.SAME_VERSION),
}


def _raised(run: Failing) -> RefusableError:
    with pytest.raises(RefusableError) as info:
        run()
    return info.value


def _reword(err: Exception, message: str) -> None:
    """Give ``err`` another message, as a later edit of the raise site would."""
    err.args = (message,)
    if isinstance(err, EspError):
        err.detail = message


@pytest.mark.parametrize("case", RAISED.values(), ids=RAISED.keys())
def test_reworded_message_keeps_the_reported_code(case: Raised) -> None:
    err = _raised(case.run)
    assert refusal_for(err).code == case.code, str(err)
    _reword(err, MISLEADING)
    refusal = refusal_for(err)
    assert (refusal.code, refusal.reason) == (case.code, MISLEADING)


@pytest.mark.parametrize("run,code", OFFERED.values(), ids=OFFERED.keys())
def test_offer_refusals_carry_their_code(run: Callable[[], object], code: RefusalCode) -> None:
    refusal = run()
    assert isinstance(refusal, Refusal) and refusal.code == code


def test_same_version_and_known_bad_are_skips_not_faults() -> None:
    assert refusal_for(_raised(RAISED["the running version again"].run)).skip
    assert not refusal_for(_raised(RAISED["secure_version below eFuse"].run)).skip


# --- refusals by the emulated device (esp_ota_write / esp_ota_end) -------------------------


def _device(secure_boot: bool = False) -> Device:
    """An ESP32 running a factory app; with Secure Boot v2, signed by the burned key."""
    factory = _image("1.0.0")
    if secure_boot:
        factory = sign_v2(factory, [_key()])  # type: ignore[list-item]
    config = DeviceConfig(rollback=True, secure_boot_v2=secure_boot)
    device = make_device(seed_table(SHARED_FIXTURES), factory=factory, config=config)
    if secure_boot:
        device.efuses.burn_key_digest(public_key_digest(_key()), 0)  # type: ignore[arg-type]
    assert device.power_on().status == "running"
    return device


def _write_and_end(device: Device, data: bytes) -> None:
    ota = device.ota
    slot = ota.esp_ota_get_next_update_partition(None)
    handle = ota.esp_ota_begin(slot, len(data))
    ota.esp_ota_write(handle, data)
    ota.esp_ota_end(handle)


DEVICE = {
    "esp_ota_write of a non-image": (lambda: _write_and_end(_device(), b"PK\x03\x04" * 64),
                                     RefusalCode.NOT_AN_IMAGE),
    "esp_ota_end of a corrupt image": (lambda: _write_and_end(_device(), _corrupt(_image())),
                                       RefusalCode.CORRUPT),
    "esp_ota_end of an unsigned image, Secure Boot on": (
        lambda: _write_and_end(_device(secure_boot=True), _image()), RefusalCode.BAD_SIGNATURE),
}


@pytest.mark.parametrize("run,code", DEVICE.values(), ids=DEVICE.keys())
def test_device_refusal_keeps_its_code_when_reworded(run: Failing, code: RefusalCode) -> None:
    with pytest.raises(EspError) as info:
        run()
    err = info.value
    refusal = refusal_for_device(err)
    assert refusal is not None and refusal.code == code, str(err)
    _reword(err, MISLEADING)
    if err.cause is not None:
        _reword(err.cause, MISLEADING)
    again = refusal_for_device(err)
    assert again is not None and again.code == code


def test_every_refusal_code_is_produced_by_a_real_failure() -> None:
    """No code exists that nothing can raise (and the tables above cover every code)."""
    covered = ({c.code for c in RAISED.values()} | {code for _, code in OFFERED.values()}
               | {code for _, code in DEVICE.values()})
    assert covered == set(RefusalCode)
