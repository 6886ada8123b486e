"""What tests of the project's HTTP servers and clients share: raw exchanges, a hostile server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Self


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` to a loopback server and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


class ServedInThread:
    """An ``http.server`` server answering in a daemon thread for a ``with`` block."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class HostileHttpServer(ServedInThread):
    """A loopback HTTP/1.1 server whose every answer is ``answer(path, wfile)``.

    ``answer`` writes the whole response (status line, headers, body) itself, so
    a test can send what no well-behaved server sends: a huge or dripping body,
    a compressed one. A write to a client that went away ends the answer.
    Use as a context manager; ``url`` is ``http://127.0.0.1:PORT``.
    """

    def __init__(self, answer: Callable[[str, BufferedIOBase], None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    answer(self.path, self.wfile)

        server = self
        self.requests: list[tuple[str, dict[str, str]]] = []
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        super().__init__(httpd)
        self.url = f"http://127.0.0.1:{self.port}"


def head(status: int, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 status line and headers, ready to write."""
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
