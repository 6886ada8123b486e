"""Layout tables for fixed-size SGX structures.

Every binary structure has exactly one table of ``(name, offset, size, kind)``
rows. ``from_bytes``/``to_bytes`` are derived from the table, so a structure
cannot drift from its documented layout, and tests check each table against the
sizes and offsets of the public headers (``sgx_report.h``, ``sgx_quote_3.h``).

All integers are little-endian, as SGX lays them out on x86. Reserved fields
are kept as bytes so that arbitrary input round-trips byte for byte.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from sgx_quote_helper.errors import ParseError, UsageError


@dataclass(frozen=True)
class Field:
    """One row of a layout table.

    ``kind`` is ``bytes`` (raw bytes), ``int`` (little-endian unsigned integer of
    ``size`` bytes), or a :class:`Struct` subclass nested at that offset.
    """

    name: str
    offset: int
    size: int
    kind: type[Any]


class Layout:
    """An ordered, gap-free table of fields that covers a structure exactly."""

    size: int
    fields: tuple[Field, ...]

    def __init__(self, size: int, *fields: tuple[str, int, int] | tuple[str, int, int, type[Any]]):
        rows: list[Field] = []
        position = 0
        for row in fields:
            name, offset, width = row[0], row[1], row[2]
            kind: type[Any] = row[3] if len(row) == 4 else bytes
            if offset != position:
                raise AssertionError(f"layout gap or overlap before {name!r} at {offset}")
            if kind is int and width not in (1, 2, 4, 8):
                raise AssertionError(f"integer field {name!r} has width {width}")
            if isinstance(kind, type) and issubclass(kind, Struct) and kind.LAYOUT.size != width:
                raise AssertionError(f"nested field {name!r} is {width}, not {kind.LAYOUT.size}")
            rows.append(Field(name, offset, width, kind))
            position = offset + width
        if position != size:
            raise AssertionError(f"layout covers {position} bytes, structure is {size}")
        self.size = size
        self.fields = tuple(rows)


class Struct:
    """Base for frozen dataclasses described by a :class:`Layout`.

    Subclasses are ``@dataclass(frozen=True)`` and set ``LAYOUT``; the dataclass
    fields must be exactly the layout's field names.
    """

    LAYOUT: ClassVar[Layout]

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        raw = bytes(data)
        if len(raw) != cls.LAYOUT.size:
            raise ParseError(
                f"{cls.__name__} must be exactly {cls.LAYOUT.size} bytes, got {len(raw)}"
            )
        values: dict[str, Any] = {}
        for f in cls.LAYOUT.fields:
            chunk = raw[f.offset : f.offset + f.size]
            if f.kind is int:
                values[f.name] = int.from_bytes(chunk, "little")
            elif f.kind is bytes:
                values[f.name] = chunk
            else:
                values[f.name] = f.kind.from_bytes(chunk)
        return cls(**values)

    def to_bytes(self) -> bytes:
        out = bytearray()
        for f in self.LAYOUT.fields:
            value = getattr(self, f.name)
            if f.kind is int:
                if not 0 <= value < (1 << (8 * f.size)):
                    raise UsageError(f"{type(self).__name__}.{f.name}={value} does not fit")
                out += value.to_bytes(f.size, "little")
            elif f.kind is bytes:
                if len(value) != f.size:
                    raise UsageError(
                        f"{type(self).__name__}.{f.name} must be {f.size} bytes, got {len(value)}"
                    )
                out += value
            else:
                out += value.to_bytes()
        return bytes(out)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (the values are immutable)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def zeroed(cls) -> Self:
        """The all-zero value of the structure."""
        return cls.from_bytes(bytes(cls.LAYOUT.size))
