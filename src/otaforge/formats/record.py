"""``@record``: frozen dataclasses for the format modules, without importing ``dataclasses``.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``...): about 6 ms
of every ``otaforge`` start, more than parsing a partition table. ``@record`` makes the same
methods ``@dataclass(frozen=True)`` makes -- ``__init__`` (fields in order, defaults),
``__repr__``, ``__eq__``/``__hash__`` over the compared fields, ``__setattr__``/``__delattr__``
that refuse (:class:`FrozenInstanceError`), ``__match_args__``. Nothing is compiled per class
(dataclasses compiles each ``__init__``: ~0.3 ms a class): the methods are shared and read
the class's field tuples. :func:`field` takes ``default``,
``default_factory``, ``compare`` and ``repr``; :func:`replace` is ``dataclasses.replace``
(which, like ``dataclasses.fields`` and ``asdict``, also works on records: they get a
``__dataclass_fields__`` made on demand).
Type checkers see a frozen dataclass (PEP 681 ``dataclass_transform``).

Not supported (the format modules do not use them): ``init=False`` fields, ``InitVar``,
``__post_init__``, ``kw_only``, ``slots``, ordering.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a record (like ``dataclasses.FrozenInstanceError``)."""


_MISSING = object()


class Field:
    """One field's options (what :func:`field` returns, replaced by the default)."""

    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(self, default: object = _MISSING, default_factory: object = _MISSING,
                 compare: bool = True, repr: bool = True) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr
        self.name = ""


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True,
          repr: bool = True) -> Any:
    """Options of one field: ``name: int = field(default=0, compare=False)``."""
    return Field(default, default_factory, compare, repr)


def _fields(cls: type) -> list[Field]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            found[f.name] = f
    own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063  (inspect costs start-up)
    for name, annotation in own.items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        found[name] = f
        if f.default is _MISSING:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, f.default)
    return list(found.values())


class _Factory:
    """A ``default_factory`` in a class's defaults tuple."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def _init(self: object, *args: object, **kwargs: object) -> None:
    """``__init__(field0, field1, ...)`` of every record: positional or keyword, in order."""
    cls = type(self)
    names: tuple[str, ...] = cls.__record_names__  # type: ignore[attr-defined]
    defaults: tuple[object, ...] = cls.__record_defaults__  # type: ignore[attr-defined]
    given = len(args)
    if given > len(names):
        raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but "
                        f"{given} were given")
    values = self.__dict__
    values.update(zip(names, args, strict=False))  # fewer args than names: the rest below
    for index in range(given, len(names)):
        name = names[index]
        if name in kwargs:
            values[name] = kwargs.pop(name)
            continue
        default = defaults[index]
        if default is _MISSING:
            raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
        values[name] = default.make() if type(default) is _Factory else default
    if kwargs:
        name = next(iter(kwargs))
        how = "multiple values for" if name in names else "an unexpected keyword"
        raise TypeError(f"{cls.__name__}() got {how} argument {name!r}")


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    if not names:
        return lambda obj: ()
    return attrgetter(*names)


def _repr(self: object) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}"
                      for name in type(self).__record_repr__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({shown})"


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented  # type: ignore[no-any-return]
    key = type(self).__record_key__  # type: ignore[attr-defined]
    return bool(key(self) == key(other))


def _hash(self: object) -> int:
    return hash(type(self).__record_key__(self))  # type: ignore[attr-defined]


def _setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


class _DataclassFields:
    """``__dataclass_fields__`` on demand, so ``dataclasses.replace``/``fields``/``asdict``
    (and type checkers' view of a dataclass) work on records too. ``dataclasses`` is imported
    only when something asks."""

    def __get__(self, obj: object, owner: type) -> dict[str, Any]:
        import dataclasses

        out: dict[str, Any] = {}
        for f in owner.__record_fields__:  # type: ignore[attr-defined]
            spec: Any = dataclasses.field(
                default=dataclasses.MISSING if f.default is _MISSING else f.default,
                default_factory=(dataclasses.MISSING if f.default_factory is _MISSING
                                 else f.default_factory),
                compare=f.compare, repr=f.repr)
            spec.name = f.name
            spec.type = owner.__annotations__.get(f.name, "")
            spec._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
            out[f.name] = spec
        return out


def _make(cls: type[T]) -> type[T]:
    fields = _fields(cls)
    methods = {"__init__": _init, "__repr__": _repr, "__eq__": _eq, "__hash__": _hash,
               "__setattr__": _setattr, "__delattr__": _delattr}
    own = cls.__dict__
    explicit_hash = own.get("__hash__") is not None
    for name, method in methods.items():
        if (name == "__hash__" and explicit_hash) or (name != "__hash__" and name in own):
            continue  # what the class body defines wins, as with dataclasses
        setattr(cls, name, method)
    cls.__record_fields__ = tuple(fields)  # type: ignore[attr-defined]
    cls.__record_names__ = tuple(f.name for f in fields)  # type: ignore[attr-defined]
    cls.__record_defaults__ = tuple(  # type: ignore[attr-defined]
        _Factory(f.default_factory) if f.default_factory is not _MISSING  # type: ignore[arg-type]
        else f.default for f in fields)
    if "__dataclass_fields__" not in own:
        cls.__dataclass_fields__ = _DataclassFields()  # type: ignore[attr-defined]
    cls.__record_repr__ = tuple(f.name for f in fields if f.repr)  # type: ignore[attr-defined]
    cls.__record_key__ = _getter(tuple(f.name for f in fields if f.compare))  # type: ignore[attr-defined]
    setattr(cls, "__match_args__", tuple(f.name for f in fields))  # noqa: B010
    return cls


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` (as ``dataclasses.replace``)."""
    fields = type(obj).__record_fields__  # type: ignore[attr-defined]
    values = {f.name: getattr(obj, f.name) for f in fields}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


if TYPE_CHECKING:
    @dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
    def record(cls: type[T]) -> type[T]:
        """A frozen dataclass-like class."""
else:
    record = _make


__all__ = ["Field", "FrozenInstanceError", "field", "record", "replace"]
