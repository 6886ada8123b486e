"""What tests of the project's HTTP servers share: raw bytes in, raw bytes out."""

from __future__ import annotations

import socket


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` to a loopback server and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply
