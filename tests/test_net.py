"""Shared network helpers: listening sockets with Nagle off, the one base URL check and the
one listen address parser."""

from __future__ import annotations

import asyncio
import re
import socket

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgx_quote_helper._net import host_port, http_base_url, listen_tcp
from sgx_quote_helper.errors import UsageError


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


# -- http_base_url: every --pccs-url, --admin-url and --api-server -----------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        (" https://pccs.example/ ", "https://pccs.example"),
        (
            "https://pccs.example:8081/sgx/certification/v4/",
            "https://pccs.example:8081/sgx/certification/v4",
        ),
        ("http://[::1]:8081", "http://[::1]:8081"),
        ("http://[::1]", "http://[::1]"),
        ("https://host/prefix/", "https://host/prefix"),
        ("http://h:65535", "http://h:65535"),
        ("http://h:1", "http://h:1"),
    ],
)
def test_base_urls_accepted(given: str, expected: str) -> None:
    assert http_base_url(given) == expected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        # Each of these crashed with ValueError/httpx.InvalidURL, or was sent as a
        # mangled request that was then misdiagnosed (audit of URL handling).
        ("http://[::1", "'[' or ']' without its partner"),
        ("http://[zz]:1", "not an IPv6 address"),
        ("http://127.0.0.1:\udcff", "port must be a number 1..65535"),
        ("http://127.0.0.1:99999", "port must be a number 1..65535, got '99999'"),
        ("http://127.0.0.1:0", "port must be a number 1..65535, got '0'"),
        ("http://127.0.0.1:", "port must be a number 1..65535, got ''"),
        ("http://h:+1", "port must be a number"),
        ("http://h:\u0661", "port must be a number"),  # an Arabic-Indic digit
        ("http://127.0.0.1:8081?x=1", "a query"),
        ("http://127.0.0.1:8081/p?", "a query"),
        ("http://127.0.0.1:8081#frag", "a fragment"),
        ("http://user:secret@127.0.0.1:8081", "user:password@ is not supported"),
        ("http://:8081", "no host"),
        ("http://", "no host"),
        ("https:///path", "no host"),
        ("pccs.example:8081", "must start with http:// or https://"),
        ("ftp://h", "must start with http:// or https://, not ftp://"),
        ("file:///etc/passwd", "not file://"),
        ("", "empty"),
        ("http://a b", "whitespace or a control character"),
        ("http://a\x00b", "whitespace or a control character"),
    ],
)
def test_malformed_base_urls_say_what_is_wrong(bad: str, reason: str) -> None:
    with pytest.raises(UsageError) as caught:
        http_base_url(bad, what="--pccs-url")
    text = str(caught.value)
    assert text.startswith(f"--pccs-url {bad!r} is not a usable base URL: ")
    assert reason in text
    assert "http(s)://HOST[:PORT][/PATH]" in text


@given(st.text(max_size=40))
def test_base_url_check_raises_only_usage_error(tail: str) -> None:
    """Whatever follows the scheme: a checked URL or UsageError, never ValueError/InvalidURL."""
    for text in (tail, "http://" + tail, "https://[" + tail, "http://h:" + tail):
        try:
            url = http_base_url(text)
        except UsageError:
            continue
        assert httpx.URL(url).host  # the client accepts what the check accepts


# -- host_port: --listen, --admin-listen, --metrics-listen --------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:8081", ("127.0.0.1", 8081)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_listen_addresses_accepted(given: str, expected: tuple[str, int]) -> None:
    assert host_port(given) == expected


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("[::1", "a pair of brackets"),  # was bound as host "[:" and failed as "unknown name"
        ("::1]:80", "a pair of brackets"),
        ("[::1]]:80", "a pair of brackets"),
        ("[zz]:80", "'zz' in brackets is not an IPv6 address"),
        ("localhost", "expected HOST:PORT"),
        (":80", "expected HOST:PORT"),
        ("h:65536", "port must be a number 0..65535"),
        ("h:http", "port must be a number 0..65535"),
    ],
)
def test_malformed_listen_addresses_say_what_is_wrong(bad: str, reason: str) -> None:
    with pytest.raises(UsageError, match=re.escape(reason)):
        host_port(bad)
