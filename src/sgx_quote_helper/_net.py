"""TCP listening sockets for the project's HTTP servers (PCCS, the daemon's admin port).

The servers bind their socket themselves and hand it to uvicorn, so that a busy
port fails before serving starts. asyncio switches Nagle's algorithm off
(``TCP_NODELAY``) only on sockets whose protocol number is ``IPPROTO_TCP``; a
socket made with ``socket.socket(family, SOCK_STREAM)`` has protocol 0, and so
have the connections it accepts. uvicorn writes a response's head and body in
two ``write`` calls: with Nagle on, the body waits for the client's ACK of the
head, which a keep-alive client delays by up to 40 ms. Hence the explicit
protocol, and ``TCP_NODELAY`` on the listener, which Linux copies to every
accepted connection.
"""

from __future__ import annotations

import socket


def listen_tcp(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``::1`` style hosts: IPv6) with Nagle off."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        # Listen at once: a client that connects before the server loop runs waits
        # in the backlog instead of being refused.
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock
