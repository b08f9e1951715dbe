"""A memo of image checks, keyed on everything that decides their result.

Verifying an app image (``esp_image_verify`` / ``bootloader_load_image``) reads and hashes the
whole partition; a device re-verifies the same unchanged image at every boot, in
``esp_ota_end`` and in ``esp_ota_set_boot_partition``. :class:`VerifyCache` remembers results
under a key built from

* the *content key* of the flash range (:meth:`otaforge.device.flash.MemoryFlash.content_key`:
  equal keys mean equal bytes, and any program or erase in the range changes the key), and
* every other input of the check: the partition, the chip and its revision, the build
  configuration, and the eFuse values the check reads (key digests, revocations).

A check whose inputs changed is never skipped: a changed image, a burned or revoked key digest
or another configuration gives another key. A flash without content keys (or a range that one
boot's own writes overlay) gives no key, and the check simply runs.

An image that verified is remembered under the bytes it occupies (its length, plus the
signature sector when signatures are checked), not the whole partition: what lies after it
(erased flash, or the rest of an older, longer image) does not change the result, so a slot
that receives the same image again is not verified again. A failed check is remembered under
the whole partition.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

T = TypeVar("T")

ContentKey = Callable[[int, int], Hashable | None]
"""``content_key(addr, n)``: a key equal only for equal bytes, or None (no caching)."""

PER_REGION = 1
MAX_REGIONS = 16


class Region(Protocol):
    """A flash region: a partition entry, or anything with its ``offset`` and ``size``."""

    @property
    def offset(self) -> int: ...

    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class _Result:
    """One remembered result: the other inputs and the content key of the bytes that
    decided it."""

    inputs: Hashable
    span: int
    content: Hashable
    value: object


def content_key_of(flash: object) -> ContentKey | None:
    """The flash's ``content_key`` method, or None when it has none."""
    key = getattr(flash, "content_key", None)
    return cast(ContentKey, key) if callable(key) else None


class VerifyCache:
    """Remembered results of image checks, per (check, partition), newest first.

    Args:
        per_region: results kept per check and partition. 1 (a device's own cache) keeps only
            the latest, so an image that was overwritten is not kept alive once its slot was
            checked again; a sweep, whose cases show a slot several contents, keeps more.
        max_regions: (check, partition) pairs kept, least recently used dropped first.

    A remembered result holds references to the (immutable) flash sectors its content key
    names, so at most ``per_region * max_regions`` images are kept alive beyond what the
    flash holds.

    Attributes:
        hits: checks answered from memory.
        misses: checks that ran (including those without a content key).
    """

    def __init__(self, per_region: int = PER_REGION, max_regions: int = MAX_REGIONS) -> None:
        self.per_region = per_region
        self.max_regions = max_regions
        self._regions: OrderedDict[Hashable, list[_Result]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup_image(self, check: str, inputs: Hashable, content_key: ContentKey | None,
                     part: Region, span: Callable[[int], int],
                     compute: Callable[[], tuple[T, int | None]]) -> T:
        """The result of an image check on ``part``, remembered under the image's bytes.

        Args:
            check: names the check.
            inputs: every input of the check besides the flash bytes and the partition
                (chip, configuration, eFuse values); compared with ``==``.
            content_key: the flash's content keys; None runs the check every time.
            part: the partition holding the image.
            span: bytes from the partition start that decide the result of a check that found
                an image of length ``n`` (``n``, or ``n`` plus the signature sector).
            compute: runs the check (reading, never writing, the flash): ``(result, image
                length)`` when an image verified, whose result then depends only on ``check``,
                ``inputs`` and the first ``span(length)`` bytes; ``(result, None)`` otherwise
                (the result may depend on the whole partition).
        """
        if content_key is None:
            self.misses += 1
            return compute()[0]
        region = (check, part.offset, part.size)
        results = self._regions.get(region, [])
        for result in results:
            if result.inputs == inputs and \
                    content_key(part.offset, result.span) == result.content:
                self._regions.move_to_end(region)
                self.hits += 1
                return cast(T, result.value)
        self.misses += 1
        value, length = compute()
        decided = part.size if length is None else min(span(length), part.size)
        content = content_key(part.offset, decided)
        if content is not None:
            kept = [_Result(inputs, decided, content, value), *results][: self.per_region]
            self._regions[region] = kept
            self._regions.move_to_end(region)
            if len(self._regions) > self.max_regions:
                self._regions.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every result."""
        self._regions.clear()

    def __len__(self) -> int:
        return sum(len(results) for results in self._regions.values())
