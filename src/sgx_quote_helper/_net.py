"""Network helpers shared by every layer: listening sockets, listen addresses, base URLs.

TCP listening sockets for the project's HTTP servers (PCCS, the daemon's admin port).

The servers bind their socket themselves and hand it to uvicorn, so that a busy
port fails before serving starts. asyncio switches Nagle's algorithm off
(``TCP_NODELAY``) only on sockets whose protocol number is ``IPPROTO_TCP``; a
socket made with ``socket.socket(family, SOCK_STREAM)`` has protocol 0, and so
have the connections it accepts. uvicorn writes a response's head and body in
two ``write`` calls: with Nagle on, the body waits for the client's ACK of the
head, which a keep-alive client delays by up to 40 ms. Hence the explicit
protocol, and ``TCP_NODELAY`` on the listener, which Linux copies to every
accepted connection.

Every option that names an HTTP service (``--pccs-url``, ``doctor --admin-url``,
``--api-server``) is checked by :func:`http_base_url` before anything is sent, so
a typo is a usage error that says what is wrong with the URL instead of a
traceback from the URL parser, a request to a mangled URL ("PCCS has no PCK
CRL") or a "Connection refused" from port 99999. Listen addresses (``--listen``,
``--admin-listen``, ``--metrics-listen``) are read by :func:`host_port`, so an
unpaired bracket is refused as such instead of being looked up as a host name.

Every HTTP answer a client of this project reads from a service it does not run
(a PCCS, Intel PCS, a CRL distribution point, a daemon's admin port) is read by
:func:`get_bounded` (or :func:`aget_bounded`): the body is streamed against a
size cap, compressed bodies are refused (the request asks for ``identity``, so
a gzip bomb cannot expand in memory), and the whole request has one deadline,
so a server that drips a byte a second cannot hold a client past its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

import httpx

from sgx_quote_helper.errors import SgxQuoteHelperError, UsageError

#: What :func:`http_base_url` accepts, as its errors say it.
HTTP_BASE_URL_FORM = "http(s)://HOST[:PORT][/PATH]"


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


def host_port(text: str) -> tuple[str, int]:
    """A listen address, ``HOST:PORT`` or ``[V6]:PORT``, as (host, port); port 0: any free one.

    Raises :class:`UsageError` with the reason alone (the caller names its option
    and gives an example); the brackets of an IPv6 host are removed.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError("expected HOST:PORT")
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise UsageError(f"the port must be a number 0..65535, got {port!r}")
    if "[" in host or "]" in host:
        inner = host[1:-1]
        if host[0] != "[" or host[-1] != "]" or "[" in inner or "]" in inner:
            raise UsageError("an IPv6 host goes in a pair of brackets, as in [::1]:PORT")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise UsageError(f"{inner!r} in brackets is not an IPv6 address") from None
        host = inner
    return host, int(port)


def http_base_url(text: str, *, what: str = "") -> str:
    """``text`` checked as the base URL of an HTTP service; raises :class:`UsageError`.

    A base URL is ``http://`` or ``https://``, a host (a name, an IPv4 address
    or an IPv6 address in brackets), an optional port 1..65535 and an optional
    path prefix. Refused: a query or a fragment (request paths and parameters
    are appended to the base, so ``?x=1`` or ``#f`` would swallow them), a
    ``user:password@`` part (credentials in a URL end up in logs and error
    messages), whitespace or control characters. Returns the URL without
    surrounding whitespace and trailing ``/``. ``what`` names the URL at the
    start of the error ("PCCS URL"; empty where the caller names the option).
    """
    url = text.strip().rstrip("/")
    problem = _base_url_problem(url)
    if problem is not None:
        subject = f"{what} {text!r}" if what else repr(text)
        raise UsageError(
            f"{subject} is not a usable base URL: {problem} "
            f"(expected {HTTP_BASE_URL_FORM}, e.g. http://127.0.0.1:8081)"
        )
    return url


def _base_url_problem(url: str) -> str | None:
    """Why ``url`` is not a base URL :func:`http_base_url` accepts, or ``None``."""
    if not url:
        return "it is empty"
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
        return "it contains whitespace or a control character"
    # Paths and parameters are appended to the base: after a '?' or '#' they would
    # become part of the query or fragment, and the service would answer 404.
    if "#" in url:
        return "it has a fragment ('#...'), which a base URL cannot have"
    if "?" in url:
        return "it has a query ('?...'), which a base URL cannot have"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        if "[" not in url and "]" not in url:
            return str(exc)  # a host name whose NFKC form has URL delimiters in it
        return (
            "the host has a '[' or ']' without its partner, or is not an IPv6 address in "
            "brackets (write IPv6 hosts as in http://[::1]:8081)"
        )
    if parts.scheme not in ("http", "https"):
        given = f", not {parts.scheme}://" if parts.scheme else ""
        return f"it must start with http:// or https://{given}"
    if not parts.netloc:
        return "it has no host"
    if "@" in parts.netloc:
        return "user:password@ is not supported (credentials in a URL end up in logs)"
    host, port = _split_host_port(parts.netloc)
    if not host:
        return "it has no host"
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"the port must be a number 1..65535, got {port!r}"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:  # the client's own rules (an IDNA host name, say)
        return str(exc)
    return None


def _split_host_port(netloc: str) -> tuple[str, str | None]:
    """``HOST[:PORT]`` or ``[V6][:PORT]`` as (host, port text or ``None``)."""
    if netloc.startswith("["):
        host, _, rest = netloc.partition("]")
        if not rest:
            return host[1:], None
        return host[1:], rest[1:] if rest.startswith(":") else rest
    host, sep, port = netloc.rpartition(":")
    return (host, port) if sep else (netloc, None)


# -- bounded HTTP GET -----------------------------------------------------------


class BodyRefused(SgxQuoteHelperError):
    """An HTTP answer :func:`get_bounded` will not read: too large, or compressed.

    The caller maps it to its own error (the PCCS client to a malformed answer).
    """


def _identity_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    # Ask for the body as is: a compressed body's size says nothing of what it
    # expands to, and the documents read here are small.
    return {**(headers or {}), "Accept-Encoding": "identity"}


def _check_head(response: httpx.Response, max_bytes: int) -> None:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyRefused(
            f"the server sent a compressed body (Content-Encoding: {encoding}) although the "
            "request asked for identity"
        )
    length = response.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise BodyRefused(
            f"the body is {int(length)} bytes (Content-Length), more than the "
            f"{max_bytes}-byte limit"
        )


def _add_chunk(body: bytearray, chunk: bytes, max_bytes: int) -> None:
    body += chunk
    if len(body) > max_bytes:
        raise BodyRefused(f"the body is larger than the {max_bytes}-byte limit")


def _past_deadline(deadline: float, timeout: float, response: httpx.Response) -> None:
    if time.monotonic() > deadline:
        raise httpx.ReadTimeout(
            f"the whole answer took more than {timeout:g}s", request=response.request
        )


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    if response.is_stream_consumed:  # a body given whole (httpx.MockTransport)
        yield response.content
    else:
        yield from response.iter_raw()


#: Limits for a client whose requests go through :func:`get_bounded`: no kept-alive
#: connections, so that every request opens its own and its deadline can close it.
BOUNDED_LIMITS = httpx.Limits(max_keepalive_connections=0)


class _Deadline:
    """Shuts a synchronous request's socket down when its deadline passes.

    A blocking read cannot be told to stop: the per-read timeout restarts with
    every byte, so a server dripping its headers a byte at a time would hold the
    request for ever. httpcore reports each new connection (and its TLS
    stream) through the ``trace`` request extension; at the deadline a timer
    shuts that socket down, which ends the blocked read at once.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: Mapping[str, object]) -> None:
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            stream = info.get("return_value")
            get_extra_info = getattr(stream, "get_extra_info", None)
            sock = get_extra_info("socket") if get_extra_info is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._socket = sock

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._socket is not None:
                with contextlib.suppress(OSError):
                    self._socket.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._socket = None


def get_bounded(
    client: httpx.Client,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    params: tuple[tuple[str, str], ...] = (),
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET ``url`` with at most ``max_bytes`` of body, within ``timeout`` seconds in all.

    Returns the response with its body read. Raises :class:`BodyRefused` for a
    larger or a compressed body, :class:`httpx.TimeoutException` when the
    answer is not complete after ``timeout`` seconds (the deadline is checked
    after every read, and every read waits at most ``timeout``), and any other
    :class:`httpx.HTTPError` of the request.
    """
    deadline = time.monotonic() + timeout
    with _Deadline(deadline) as watch:
        try:
            with client.stream(
                "GET",
                url,
                params=params,
                headers=_identity_headers(headers),
                timeout=timeout,
                extensions={"trace": watch.trace},
            ) as response:
                _check_head(response, max_bytes)
                body = bytearray()
                _past_deadline(deadline, timeout, response)
                for chunk in _raw_chunks(response):
                    _add_chunk(body, chunk, max_bytes)
                    _past_deadline(deadline, timeout, response)
        except httpx.TransportError as exc:
            if not watch.fired or isinstance(exc, httpx.TimeoutException):
                raise
            # The socket was shut down at the deadline: say so, not "disconnected".
            raise httpx.ReadTimeout(
                f"the whole answer took more than {timeout:g}s", request=exc.request
            ) from exc
    return _with_body(response, bytes(body))


async def aget_bounded(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    params: tuple[tuple[str, str], ...] = (),
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """:func:`get_bounded` for an ``httpx.AsyncClient``; the deadline cancels the request."""
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "GET", url, params=params, headers=_identity_headers(headers), timeout=timeout
            ) as response:
                _check_head(response, max_bytes)
                body = bytearray()
                if response.is_stream_consumed:  # a body given whole (httpx.MockTransport)
                    _add_chunk(body, response.content, max_bytes)
                else:
                    async for chunk in response.aiter_raw():
                        _add_chunk(body, chunk, max_bytes)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"the whole answer took more than {timeout:g}s") from exc
    return _with_body(response, bytes(body))
