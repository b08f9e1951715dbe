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
from typing import Protocol, TypeVar, cast

T = TypeVar("T")

ContentKey = Callable[[int, int], Hashable | None]
"""``content_key(addr, n)``: a key equal only for equal bytes, or None (no caching)."""

DEFAULT_ENTRIES = 32
_LENGTHS_PER_PARTITION = 4


class Region(Protocol):
    """A flash region: a partition entry, or anything with its ``offset`` and ``size``."""

    @property
    def offset(self) -> int: ...

    @property
    def size(self) -> int: ...


def content_key_of(flash: object) -> ContentKey | None:
    """The flash's ``content_key`` method, or None when it has none."""
    key = getattr(flash, "content_key", None)
    return cast(ContentKey, key) if callable(key) else None


class VerifyCache:
    """A bounded least-recently-used memo of check results.

    Args:
        max_entries: entries kept (each keeps the sector objects of its key alive).

    Attributes:
        hits: lookups answered from the memo.
        misses: lookups that ran the check (including those without a key).
    """

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, object] = OrderedDict()
        self._lengths: OrderedDict[Hashable, list[int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: Hashable | None, compute: Callable[[], T]) -> T:
        """The remembered result for ``key``, else ``compute()`` (remembered when keyed).

        ``compute`` must be a pure function of what ``key`` names; what it raises propagates
        and is not remembered.
        """
        if key is None:
            self.misses += 1
            return compute()
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            self.hits += 1
            return cast(T, entries[key])
        self.misses += 1
        value = compute()
        entries[key] = value
        if len(entries) > self.max_entries:
            entries.popitem(last=False)
        return value

    def lookup_image(self, check: Hashable, content_key: ContentKey | None, part: Region,
                     span: Callable[[int], int],
                     compute: Callable[[], tuple[T, int | None]]) -> T:
        """The result of an image check on ``part``, remembered under the image's bytes.

        Args:
            check: names the check and every input besides the flash bytes (partition,
                chip, configuration, eFuse values); must be hashable.
            content_key: the flash's content keys; None runs the check every time.
            part: the partition holding the image.
            span: bytes from the partition start that decide the result of a check that found
                an image of length ``n`` (``n``, or ``n`` plus the signature sector).
            compute: runs the check: ``(result, image length)`` when an image verified, whose
                result then depends only on ``check`` and the first ``span(length)`` bytes;
                ``(result, None)`` otherwise (the result may depend on the whole partition).
        """
        if content_key is None:
            self.misses += 1
            return compute()[0]
        entries = self._entries
        known = (check, part.offset, part.size)
        for seen in self._lengths.get(known, ()):
            key = self._span_key(check, content_key, part, span(seen))
            if key is not None and key in entries:
                entries.move_to_end(key)
                self.hits += 1
                return cast(T, entries[key])
        whole = self._span_key(check, content_key, part, part.size)
        if whole is not None and whole in entries:
            entries.move_to_end(whole)
            self.hits += 1
            return cast(T, entries[whole])
        self.misses += 1
        value, length = compute()
        key = whole if length is None else self._span_key(check, content_key, part, span(length))
        if key is not None:
            entries[key] = value
            if len(entries) > self.max_entries:
                entries.popitem(last=False)
        if length is not None:
            self._remember_length(known, length)
        return value

    @staticmethod
    def _span_key(check: Hashable, content_key: ContentKey, part: Region,
                  span: int) -> Hashable | None:
        content = content_key(part.offset, min(span, part.size))
        return None if content is None else (check, part.offset, part.size, content)

    def _remember_length(self, known: Hashable, length: int) -> None:
        lengths = self._lengths.setdefault(known, [])
        if length in lengths:
            lengths.remove(length)
        lengths.insert(0, length)
        del lengths[_LENGTHS_PER_PARTITION:]
        self._lengths.move_to_end(known)
        if len(self._lengths) > self.max_entries:
            self._lengths.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._lengths.clear()

    def __len__(self) -> int:
        return len(self._entries)
