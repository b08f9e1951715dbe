"""``formats/record.py`` behaves as ``@dataclass(frozen=True)`` for what formats/ uses."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest

from otaforge.formats.record import FrozenInstanceError, field, record, replace


@record
class Point:
    """A record with every kind of field."""

    x: int
    y: int = 0
    label: bytes = field(default=b"", compare=False)
    tags: list[str] = field(default_factory=list, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Twin:
    x: int
    y: int = 0
    label: bytes = dataclasses.field(default=b"", compare=False)
    tags: list[str] = dataclasses.field(default_factory=list, repr=False, compare=False)


@record
class Point3(Point):
    z: int = 0


def test_same_methods_as_a_frozen_dataclass() -> None:
    a, b = Point(1, 2, b"a"), Point(1, 2, b"b")
    assert repr(a) == repr(Twin(1, 2, b"a")).replace("Twin", "Point")
    assert a == b and hash(a) == hash(b) and a != Point(1, 3) and a != Twin(1, 2)
    assert Point(1).tags == [] and Point(1).tags is not Point(1).tags
    assert Point.__match_args__ == Twin.__match_args__  # type: ignore[attr-defined]
    with pytest.raises(FrozenInstanceError):
        a.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.x  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    match a:
        case Point(1, y):
            assert y == 2
        case _:
            pytest.fail("positional match")


def test_replace_copy_pickle_and_subclasses() -> None:
    a = Point(1, 2, b"x", ["t"])
    assert replace(a, y=5) == Point(1, 5) and replace(a, y=5).label == b"x"
    with pytest.raises(TypeError):
        replace(a, nope=1)
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a).tags == ["t"]
    p = Point3(1, z=3)
    assert repr(p) == "Point3(x=1, y=0, label=b'', z=3)" and p != Point(1)


def test_the_dataclasses_functions_work_on_records() -> None:
    a = Point(1, 2, b"x", ["t"])
    assert dataclasses.is_dataclass(a)
    assert [f.name for f in dataclasses.fields(a)] == ["x", "y", "label", "tags"]
    assert dataclasses.asdict(a) == {"x": 1, "y": 2, "label": b"x", "tags": ["t"]}
    assert dataclasses.replace(a, x=9) == Point(9, 2)


def test_formats_start_without_dataclasses_or_inspect() -> None:
    code = ("import sys; import otaforge.formats.app_image, otaforge.formats.partition_table, "
            "otaforge.formats.signature_block; "
            "print(sorted(m for m in ('dataclasses', 'inspect', 'typing') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout
