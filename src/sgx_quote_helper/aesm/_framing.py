"""AESM frames: a little-endian u32 body length, then the body (section 2).

There is no magic, version or type field. Intel's receiver allocates whatever
length arrives; here the length is checked against a named maximum as soon as
the four header bytes are in, before any body byte is waited for or kept.
"""

from __future__ import annotations

import enum
from typing import Final

from sgx_quote_helper.aesm._constants import FRAME_HEADER_SIZE
from sgx_quote_helper.aesm._errors import AesmProtocolError
from sgx_quote_helper.errors import UsageError

_U32_LIMIT: Final = 1 << 32


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`."""

    NEED_DATA = "NEED_DATA"


class ConnectionClosed(enum.Enum):
    """Type of :data:`CONNECTION_CLOSED`."""

    CONNECTION_CLOSED = "CONNECTION_CLOSED"


#: :meth:`FrameDecoder.next_frame`: the buffered bytes do not yet hold a frame.
NEED_DATA: Final = NeedData.NEED_DATA
#: :meth:`FrameDecoder.next_frame`: the peer closed cleanly between frames.
CONNECTION_CLOSED: Final = ConnectionClosed.CONNECTION_CLOSED


def encode_frame(body: bytes, *, max_body_size: int) -> bytes:
    """Prefix ``body`` with its length (section 2).

    Raises :class:`UsageError` if ``body`` is longer than ``max_body_size``: the
    peer would refuse it, so sending it is the caller's mistake.
    """
    if len(body) > max_body_size or len(body) >= _U32_LIMIT:
        raise UsageError(
            f"AESM message body of {len(body)} bytes exceeds the limit of {max_body_size}"
        )
    return len(body).to_bytes(FRAME_HEADER_SIZE, "little") + body


def whole_frame(data: bytes, *, max_body_size: int) -> bytes | None:
    """The body of the frame ``data`` starts with, if all of it is there; else None.

    For a receiver whose first read usually holds a whole request (Intel's
    client writes one right after connecting): it skips a
    :class:`FrameDecoder` then. None means "not this way": the frame is
    incomplete or announces more than ``max_body_size``, and a
    :class:`FrameDecoder` fed the same bytes tells which. Bytes after the
    frame are left out, as :attr:`FrameDecoder.trailing_data` would keep them.
    """
    if len(data) < FRAME_HEADER_SIZE:
        return None
    end = FRAME_HEADER_SIZE + int.from_bytes(data[:FRAME_HEADER_SIZE], "little")
    if end - FRAME_HEADER_SIZE > max_body_size or len(data) < end:
        return None
    return data[FRAME_HEADER_SIZE:end]


def decode_frame_header(header: bytes, *, max_body_size: int) -> int:
    """The body length announced by a 4-byte frame header.

    For transports that read the header and then ``readexactly`` the body.
    Raises :class:`AesmProtocolError` if the length exceeds ``max_body_size``,
    so the caller never reads or allocates an oversized body.
    """
    if len(header) != FRAME_HEADER_SIZE:
        raise UsageError(f"an AESM frame header is {FRAME_HEADER_SIZE} bytes, got {len(header)}")
    length = int.from_bytes(header, "little")
    if length > max_body_size:
        raise AesmProtocolError(
            f"AESM frame announces a {length}-byte body; the limit is {max_body_size}"
        )
    return length


class FrameDecoder:
    """Incremental frame parser in the style of h11's ``Connection``.

    Feed bytes with :meth:`receive_data` (``b""`` means the peer closed), then
    call :meth:`next_frame` until it returns :data:`NEED_DATA`. Frames may
    arrive in any split: Intel's client writes the header and the body with two
    ``write()`` calls (section 14). Bytes after a frame stay buffered and are
    visible as :attr:`trailing_data`; an AESM server reads only one request per
    connection (section 3) and ignores them.

    After an :class:`AesmProtocolError` the decoder is unusable: every further
    :meth:`next_frame` raises the same error.
    """

    def __init__(self, *, max_body_size: int) -> None:
        if not 0 <= max_body_size < _U32_LIMIT:
            raise UsageError(f"max_body_size must be a u32, got {max_body_size}")
        self._max_body_size = max_body_size
        self._buffer = bytearray()
        self._eof = False
        self._error: AesmProtocolError | None = None

    @property
    def max_body_size(self) -> int:
        return self._max_body_size

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not (yet) returned as part of a frame."""
        return bytes(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` records end of stream."""
        if self._eof and data:
            raise UsageError("data received after end of stream")
        if not data:
            self._eof = True
            return
        self._buffer += data

    def next_frame(self) -> bytes | NeedData | ConnectionClosed:
        """The next complete body, :data:`NEED_DATA`, or :data:`CONNECTION_CLOSED`.

        Raises :class:`AesmProtocolError` for an oversized length prefix (as
        soon as the prefix is complete) or a stream that ends inside a frame.
        """
        if self._error is not None:
            raise self._error
        buffered = len(self._buffer)
        if buffered < FRAME_HEADER_SIZE:
            if not self._eof:
                return NEED_DATA
            if buffered == 0:
                return CONNECTION_CLOSED
            raise self._fail(f"stream ended after {buffered} of 4 frame header bytes")
        length = int.from_bytes(self._buffer[:FRAME_HEADER_SIZE], "little")
        if length > self._max_body_size:
            raise self._fail(
                f"AESM frame announces a {length}-byte body; the limit is {self._max_body_size}"
            )
        end = FRAME_HEADER_SIZE + length
        if buffered < end:
            if not self._eof:
                return NEED_DATA
            raise self._fail(
                f"stream ended after {buffered - FRAME_HEADER_SIZE} of {length} body bytes"
            )
        body = bytes(self._buffer[FRAME_HEADER_SIZE:end])
        del self._buffer[:end]
        return body

    def _fail(self, message: str) -> AesmProtocolError:
        self._error = AesmProtocolError(message)
        return self._error
