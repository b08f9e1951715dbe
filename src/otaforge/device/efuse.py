"""eFuses of the emulated chip: one-time programmable, bits can only ever be set.

Modelled fields: ``SECURE_VERSION`` (anti-rollback, a thermometer code whose width depends on
the chip and ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD``), up to three Secure Boot v2
public-key digests (``KEY_PURPOSE_SECURE_BOOT_DIGESTn`` blocks; ESP32 has one in BLK2) and their
revocation bits (``SECURE_BOOT_KEY_REVOKEn``).

Three types, one job each: :class:`Efuses` is the chip's eFuse block (bits are burned through
it), :class:`BootEfuses` the values the bootloader reads at power-on (:meth:`Efuses.boot_view`),
:class:`EfuseSnapshot` every bit as a plain value (to restore a chip or persist it).

Sources: components/efuse/src/esp_efuse_fields.c (``esp_efuse_read_secure_version``,
``esp_efuse_check_secure_version``, ``esp_efuse_update_secure_version``),
components/bootloader/Kconfig.projbuild (field widths), reference §5.
"""

from __future__ import annotations

from dataclasses import dataclass

from otaforge.device.esp_err import raise_esp
from otaforge.errors import InputError
from otaforge.formats.chips import ChipSpec
from otaforge.formats.chips import chip as chip_spec

KEY_DIGEST_SIZE = 32
MAX_KEY_DIGESTS = 3


@dataclass(frozen=True)
class BootEfuses:
    """The eFuse values the bootloader reads at power-on (made by :meth:`Efuses.boot_view`).

    Attributes:
        secure_version: current anti-rollback value (number of bits set in SECURE_VERSION).
        secure_version_bits: ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD``.
        key_digests: Secure Boot v2 public key digests burned in eFuse (index = key slot;
            ``b""`` for an empty slot).
        revoked: revoked key slots (``SECURE_BOOT_KEY_REVOKEn``).
    """

    secure_version: int = 0
    secure_version_bits: int = 32
    key_digests: tuple[bytes, ...] = ()
    revoked: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        """Refuse what no eFuse block holds: a digest is 32 bytes (16 on ESP32-C2), at most 3.

        An empty digest is an unburned key slot.
        """
        if len(self.key_digests) > 3:
            raise InputError(f"{len(self.key_digests)} key digests; eFuse holds at most 3")
        for slot, digest in enumerate(self.key_digests):
            if digest and len(digest) not in (16, 32):
                raise InputError(f"key digest {slot} is {len(digest)} bytes: a Secure Boot v2 "
                                 "key digest is 32 bytes (16 on ESP32-C2), as made by "
                                 "'espsecure digest-sbv2-public-key'")


@dataclass(frozen=True)
class EfuseSnapshot:
    """Every eFuse bit the emulator keeps, as plain values (to restore a chip or persist it)."""

    secure_version_raw: int
    key_digests: tuple[bytes | None, ...]
    revoked_raw: int
    burns: int


class Efuses:
    """One chip's eFuses.

    Args:
        chip: the chip (name or :class:`ChipSpec`); fixes the maximum secure_version width.
        secure_version_bits: ``CONFIG_BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD`` (1..chip width);
            default: the chip's full width.
        coding_scheme_none: False models an ESP32 with 3/4 coding, where updating the secure
            version is ESP_ERR_NOT_SUPPORTED.

    Attributes:
        burns: how many burn operations changed bits (a counter for tests).
    """

    def __init__(self, chip: ChipSpec | str = "esp32", *,
                 secure_version_bits: int | None = None,
                 coding_scheme_none: bool = True) -> None:
        self.chip = chip_spec(chip) if isinstance(chip, str) else chip
        width = self.chip.secure_version_bits
        bits = width if secure_version_bits is None else secure_version_bits
        if not 1 <= bits <= width:
            raise InputError(
                f"secure_version field width {bits}: {self.chip.name} allows 1..{width} bits"
            )
        self.secure_version_bits = bits
        self.coding_scheme_none = coding_scheme_none
        self._sv_raw = 0
        self._digests: list[bytes | None] = [None] * self.key_slots
        self._revoked_raw = 0
        self.burns = 0

    @property
    def key_slots(self) -> int:
        """How many Secure Boot v2 key digests the chip holds (``ChipSpec.key_digest_slots``)."""
        return self.chip.key_digest_slots

    # --- secure version (anti-rollback) ---------------------------------------------------

    @property
    def secure_version_raw(self) -> int:
        """The raw SECURE_VERSION field bits (all bits, usable or not)."""
        return self._sv_raw

    @property
    def secure_version(self) -> int:
        """``esp_efuse_read_secure_version``: popcount of the usable field bits."""
        usable = self._sv_raw & ((1 << self.secure_version_bits) - 1)
        return usable.bit_count()

    def check_secure_version(self, version: int) -> bool:
        """``esp_efuse_check_secure_version``: may an app with ``version`` run?"""
        return version >= self.secure_version

    def burn_secure_version(self, version: int) -> None:
        """``esp_efuse_update_secure_version``: raise the field to ``version``.

        Only the missing bits are programmed; equal is a no-op.

        Raises:
            EspError: ESP_ERR_INVALID_ARG past the field width ("Max secure version is N"),
                ESP_ERR_NOT_SUPPORTED with a non-NONE coding scheme, ESP_FAIL when
                ``version`` is lower than the burned value (bits cannot be cleared).
        """
        if version > self.secure_version_bits:
            raise_esp("ESP_ERR_INVALID_ARG", f"Max secure version is {self.secure_version_bits}")
        if not self.coding_scheme_none:
            raise_esp("ESP_ERR_NOT_SUPPORTED", "secure version: eFuse coding scheme is not NONE")
        current = self.secure_version
        if version < current:
            raise_esp("ESP_FAIL", f"secure version {version} is lower than eFuse {current}")
        if version > current:
            self._program_sv(((1 << version) - 1) & ~((1 << current) - 1))

    def _program_sv(self, bits: int) -> None:
        self._sv_raw |= bits
        self.burns += 1

    def program_secure_version_bits(self, bits: int) -> None:
        """Set raw SECURE_VERSION bits (OTP: bits already set stay set, none are cleared)."""
        if bits < 0:
            raise InputError("eFuse bits to program must be a non-negative bit mask")
        self._program_sv(bits)

    # --- Secure Boot v2 key digests and revocation ----------------------------------------

    @property
    def key_digests(self) -> tuple[bytes, ...]:
        """Burned, unrevoked-or-not key digests in slot order (empty slots left out)."""
        return tuple(d for d in self._digests if d is not None)

    @property
    def key_digest_slots(self) -> tuple[bytes | None, ...]:
        """Every digest slot, None where nothing is burned."""
        return tuple(self._digests)

    def burn_key_digest(self, digest: bytes, index: int | None = None) -> int:
        """Burn a 32-byte public-key digest into slot ``index`` (default: first empty).

        Returns:
            The slot index used.

        Raises:
            EspError: ESP_ERR_INVALID_ARG for a bad digest or slot, ESP_ERR_EFUSE_REPEATED_PROG
                when the slot already holds a digest, ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS when
                every slot is used.
        """
        if len(digest) != KEY_DIGEST_SIZE:
            raise_esp("ESP_ERR_INVALID_ARG", f"key digest must be 32 bytes, got {len(digest)}")
        if index is None:
            free = [i for i, d in enumerate(self._digests) if d is None]
            if not free:
                raise_esp("ESP_ERR_NOT_ENOUGH_UNUSED_KEY_BLOCKS", "every key digest slot is used")
            index = free[0]
        if not 0 <= index < self.key_slots:
            raise_esp("ESP_ERR_INVALID_ARG", f"key digest slot {index}: 0..{self.key_slots - 1}")
        if self._digests[index] is not None:
            raise_esp("ESP_ERR_EFUSE_REPEATED_PROG", f"key digest slot {index} is already burned")
        self._digests[index] = bytes(digest)
        self.burns += 1
        return index

    @property
    def revoked(self) -> frozenset[int]:
        """Revoked key digest indices (``SECURE_BOOT_KEY_REVOKEn`` set)."""
        return frozenset(i for i in range(MAX_KEY_DIGESTS) if self._revoked_raw >> i & 1)

    def revoke_key(self, index: int) -> None:
        """Burn ``SECURE_BOOT_KEY_REVOKE<index>`` (irreversible; repeating it is a no-op).

        Raises:
            EspError: ESP_ERR_INVALID_ARG for an index outside 0..2.
        """
        if not 0 <= index < MAX_KEY_DIGESTS:
            raise_esp("ESP_ERR_INVALID_ARG",
                      f"Invalid Index found for public key revocation {index}")
        if not self._revoked_raw >> index & 1:
            self._revoked_raw |= 1 << index
            self.burns += 1

    # --- snapshots --------------------------------------------------------------------------

    def boot_view(self) -> BootEfuses:
        """The values the bootloader reads (``b""`` for an empty key digest slot)."""
        return BootEfuses(secure_version=self.secure_version,
                          secure_version_bits=self.secure_version_bits,
                          key_digests=tuple(d or b"" for d in self._digests),
                          revoked=self.revoked)

    def snapshot(self) -> EfuseSnapshot:
        """Every bit, as an immutable value."""
        return EfuseSnapshot(self._sv_raw, tuple(self._digests), self._revoked_raw, self.burns)

    def restore(self, snap: EfuseSnapshot) -> None:
        """Load bits from a snapshot (a new chip with these fuses, not an un-burn)."""
        self._sv_raw = snap.secure_version_raw
        self._digests = list(snap.key_digests)
        self._revoked_raw = snap.revoked_raw
        self.burns = snap.burns

    def copy(self) -> Efuses:
        """An independent chip with the same fuses."""
        twin = Efuses(self.chip, secure_version_bits=self.secure_version_bits,
                      coding_scheme_none=self.coding_scheme_none)
        twin.restore(self.snapshot())
        return twin

    def to_json(self) -> dict[str, object]:
        """JSON-ready dict (for ``device run`` state files)."""
        return {
            "chip": self.chip.name,
            "secure_version_bits": self.secure_version_bits,
            "secure_version_raw": self._sv_raw,
            "key_digests": [d.hex() if d is not None else None for d in self._digests],
            "revoked": sorted(self.revoked),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Efuses:
        """Inverse of :meth:`to_json`.

        Raises:
            InputError: malformed data.
        """
        try:
            bits = int(str(data["secure_version_bits"]))
            fuses = cls(str(data["chip"]), secure_version_bits=bits)
            fuses._sv_raw = int(str(data["secure_version_raw"]))
            digests = data.get("key_digests") or []
            assert isinstance(digests, list)
            for i, d in enumerate(digests[: fuses.key_slots]):
                fuses._digests[i] = bytes.fromhex(str(d)) if d is not None else None
            revoked = data.get("revoked") or []
            assert isinstance(revoked, list)
            for i in revoked:
                fuses._revoked_raw |= 1 << int(i)
        except (KeyError, ValueError, TypeError, AssertionError) as err:
            raise InputError(f"eFuse state: malformed ({err})") from None
        return fuses
