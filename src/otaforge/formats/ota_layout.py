"""OTA layout checks beyond gen_esp32part: the seed's rules for A/B OTA partition tables.

gen_esp32part accepts any table that follows its syntax and placement rules
(:meth:`otaforge.formats.partition_table.PartitionTable.verify`); :func:`check_ota_layout` adds
what an OTA-updatable fleet needs: identical ``ota_N`` slot sizes, contiguous slot numbering,
an otadata partition, a bootable app, and a firmware image that fits every slot.
"""

from __future__ import annotations

from otaforge.formats.partition_csv import FACTORY, OTA_0, TEST, hx
from otaforge.formats.partition_table import PartitionEntry, PartitionTable
from otaforge.formats.record import record
from otaforge.formats.sector import OTADATA_SIZE

__all__ = ["Finding", "check_ota_layout"]


@record
class Finding:
    """One OTA layout finding. ``severity`` is "critical", "warning" or "ok"."""

    severity: str
    code: str
    message: str

    @property
    def critical(self) -> bool:
        """A finding that must fail ``partitions check``."""
        return self.severity == "critical"

    def __str__(self) -> str:
        return f"{self.severity.capitalize()}: {self.message}"


def check_ota_layout(table: PartitionTable, image_size: int | None = None) -> list[Finding]:
    """The seed's OTA checks: identical slot sizes, otadata present, image fits every slot.

    Also: contiguous ``ota_0..ota_N`` numbering and no duplicate slot (the app counts slots up
    to the first gap, the bootloader counts every 0x1X entry), at least one bootable app.

    Args:
        table: the (verified) partition table.
        image_size: size in bytes of the firmware image that must fit every OTA slot/factory.
    """
    out: list[Finding] = []
    slots = table.ota_slots()
    apps = [p for p in table.app_partitions() if p.is_ota_slot or p.subtype in (FACTORY, TEST)]
    if not apps:
        out.append(Finding("critical", "no-app",
                           "no factory, ota_N or test app partition: the bootloader has "
                           "nothing to boot"))
    if slots:
        out.extend(_slot_findings(table, slots))
    elif table.otadata() is not None:
        out.append(Finding("warning", "otadata-without-slots",
                           "an otadata partition but no ota_N app slots: OTA updates are "
                           "impossible with this table"))
    else:
        out.append(Finding("warning", "no-ota-slots",
                           "no ota_N app slots: this table cannot receive OTA updates"))
    if image_size is not None:
        out.extend(_image_findings(table, slots, image_size))
    return out


def _slot_findings(table: PartitionTable, slots: list[PartitionEntry]) -> list[Finding]:
    out: list[Finding] = []
    first = slots[0]
    for other in slots[1:]:
        if other.size != first.size:
            out.append(Finding(
                "critical", "slot-size",
                f"{first.name} and {other.name} must be identical size and large enough for "
                f"your firmware ({first.name} is {hx(first.size)}, {other.name} is "
                f"{hx(other.size)})"))
    numbers = [p.subtype - OTA_0 for p in slots]
    if len(set(numbers)) != len(numbers):
        dupes = sorted({f"ota_{n}" for n in numbers if numbers.count(n) > 1})
        out.append(Finding("critical", "slot-duplicate",
                           f"OTA slot subtype used twice: {', '.join(dupes)}"))
    if sorted(set(numbers)) != list(range(len(set(numbers)))):
        out.append(Finding(
            "critical", "slot-gap",
            f"OTA slots must be numbered ota_0, ota_1, ... without gaps (found "
            f"{', '.join(f'ota_{n}' for n in sorted(set(numbers)))}): the app and the bootloader "
            "would count them differently"))
    otadata = table.otadata()
    if otadata is None:
        out.append(Finding("critical", "otadata-missing",
                           f"{len(slots)} OTA slot(s) but no otadata partition (data, ota, "
                           f"size {hx(OTADATA_SIZE)}): the bootloader cannot select a slot"))
    if len(slots) == 1 and table.factory() is None:
        out.append(Finding("warning", "single-slot",
                           f"only one OTA slot ({first.name}) and no factory app: an update "
                           "would overwrite the running app"))
    elif len(slots) == 1:
        out.append(Finding("warning", "single-slot",
                           f"only one OTA slot ({first.name}): after the first update there is "
                           "no free slot for the next one"))
    if not out and otadata is not None:
        out.append(Finding("ok", "slots",
                           f"{len(slots)} OTA slots of {hx(first.size)} bytes each, otadata "
                           f"{otadata.name!r} at {hx(otadata.offset)}"))
    return out


def _image_findings(table: PartitionTable, slots: list[PartitionEntry],
                    image_size: int) -> list[Finding]:
    out: list[Finding] = []
    targets = [*([f] if (f := table.factory()) else []), *slots]
    if not targets:
        return [Finding("critical", "image-no-slot", "no factory or OTA slot to hold the image")]
    for p in targets:
        if image_size > p.size:
            out.append(Finding(
                "critical", "image-too-large",
                f"image of {image_size} bytes does not fit in {p.name} ({p.size} bytes, "
                f"{image_size - p.size} bytes too many)"))
        elif image_size * 20 > p.size * 19:
            out.append(Finding(
                "warning", "image-tight",
                f"image of {image_size} bytes leaves less than 5% of {p.name} free "
                f"({p.size - image_size} bytes)"))
    if not out:
        smallest = min(p.size for p in targets)
        out.append(Finding("ok", "image-fits",
                           f"image of {image_size} bytes fits every app slot "
                           f"({smallest - image_size} bytes free in the smallest)"))
    return out
