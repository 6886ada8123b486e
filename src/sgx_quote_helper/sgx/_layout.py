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
import struct
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


#: ``struct`` codes of the little-endian unsigned integers a layout may hold.
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class Layout:
    """An ordered, gap-free table of fields that covers a structure exactly.

    ``codec`` is the table compiled to one :class:`struct.Struct` (integers
    decoded, bytes and nested structures as raw bytes); ``nested`` lists the
    positions of nested structures and their classes.
    """

    size: int
    fields: tuple[Field, ...]
    codec: struct.Struct
    nested: tuple[tuple[int, type[Struct]], ...]

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
        self.codec = struct.Struct(
            "<" + "".join(_INT_CODES[f.size] if f.kind is int else f"{f.size}s" for f in rows)
        )
        self.nested = tuple(
            (index, f.kind)
            for index, f in enumerate(rows)
            if f.kind is not int and f.kind is not bytes
        )


class Struct:
    """Base for frozen dataclasses described by a :class:`Layout`.

    Subclasses are ``@dataclass(frozen=True)`` and set ``LAYOUT``; the dataclass
    fields must be exactly the layout's field names, in the same order
    (``from_bytes`` passes the decoded values by position; a test checks every
    subclass).
    """

    LAYOUT: ClassVar[Layout]

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Self:
        raw = bytes(data)
        layout = cls.LAYOUT
        if len(raw) != layout.size:
            raise ParseError(f"{cls.__name__} must be exactly {layout.size} bytes, got {len(raw)}")
        # One struct unpack for the whole table: decoding a report body is on
        # the path of every quote and every verification.
        values = layout.codec.unpack(raw)
        if layout.nested:
            fields = list(values)
            for index, kind in layout.nested:
                fields[index] = kind.from_bytes(fields[index])
            return cls(*fields)
        return cls(*values)

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
