"""Frames between the two applications: a 4-byte big-endian length, then a JSON object.

Bounded on both axes: a frame longer than :data:`MAX_FRAME_SIZE` is refused
before anything is read into it, and every read and write has a timeout.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from sgx_quote_helper.samples._errors import ChannelError

#: A quote with its PCK chain is about 5 KB (7 KB in base64); leave room, no more.
MAX_FRAME_SIZE = 64 * 1024
_LENGTH = struct.Struct(">I")


def encode_frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
    if len(body) > MAX_FRAME_SIZE:
        raise ValueError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_SIZE}")
    return _LENGTH.pack(len(body)) + body


def decode_body(body: bytes, step: str) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChannelError(step, f"the peer sent a frame that is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ChannelError(step, "the peer sent a frame without a message type")
    return message


class FramedChannel:
    """A connected stream socket carrying length-prefixed JSON frames."""

    def __init__(self, sock: socket.socket, *, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        sock.settimeout(timeout)

    def send(self, message: dict[str, Any], *, step: str) -> None:
        try:
            self.sock.sendall(encode_frame(message))
        except TimeoutError:
            raise ChannelError(
                step, f"sending to the peer timed out after {self.timeout}s"
            ) from None
        except OSError as exc:
            raise ChannelError(step, f"cannot send to the peer: {exc}") from None

    def receive(self, *, step: str) -> dict[str, Any]:
        (length,) = _LENGTH.unpack(self._read_exactly(_LENGTH.size, step))
        if length > MAX_FRAME_SIZE:
            raise ChannelError(
                step, f"the peer announced a {length}-byte frame; at most {MAX_FRAME_SIZE} allowed"
            )
        return decode_body(self._read_exactly(length, step), step)

    def _read_exactly(self, size: int, step: str) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            try:
                chunk = self.sock.recv(min(remaining, 65536))
            except TimeoutError:
                raise ChannelError(
                    step, f"no answer from the peer within {self.timeout}s"
                ) from None
            except OSError as exc:
                raise ChannelError(step, f"cannot read from the peer: {exc}") from None
            if not chunk:
                raise ChannelError(step, "the peer closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()
