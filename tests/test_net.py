"""Listening sockets of the HTTP servers: Nagle off on every accepted connection."""

from __future__ import annotations

import asyncio
import socket

from sgx_quote_helper._net import listen_tcp


def _nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_accepted_connections_have_nagle_off() -> None:
    listener = listen_tcp("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == socket.IPPROTO_TCP
            assert _nodelay(accepted)


def test_asyncio_server_on_the_socket_has_nagle_off() -> None:
    """The path uvicorn takes: ``loop.create_server(sock=...)`` with our socket."""
    seen: list[bool] = []

    async def run() -> None:
        connected = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
                connected.set()

        listener = listen_tcp("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            await asyncio.wait_for(connected.wait(), 10)
            writer.close()

    asyncio.run(run())
    assert seen == [True]


def test_plain_socket_would_keep_nagle_on() -> None:
    """Why the helper exists: protocol 0 sockets are left alone by asyncio and the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]):
            accepted, _ = listener.accept()
            with accepted:
                assert not _nodelay(accepted)
