"""The uvicorn set-up of the HTTP servers: bad requests and uvicorn's own lines."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from http_support import raw_exchange
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sgx_quote_helper._http import HTTP_LOGGER, uvicorn_config
from sgx_quote_helper._logging import RateLimitedLog, configure_logging
from sgx_quote_helper._net import listen_tcp


class _Records(logging.Handler):
    """Every record of the project's HTTP logger, whatever the package logger's set-up."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self) -> list[str]:
        """The events of warnings and errors."""
        return [r.getMessage() for r in self.records if r.levelno >= logging.WARNING]


@contextlib.contextmanager
def _server(app: Starlette) -> Iterator[tuple[int, uvicorn.Config, _Records]]:
    """``app`` on uvicorn as the project's servers run it, in a thread; the HTTP log captured."""
    records = _Records()
    http_log = logging.getLogger(HTTP_LOGGER)
    http_log.addHandler(records)
    config = uvicorn_config(app, "test")
    server = uvicorn.Server(config)
    sock = listen_tcp("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            time.sleep(0.01)
        yield sock.getsockname()[1], config, records
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        http_log.removeHandler(records)


async def _answers_at_once(request: Request) -> Response:
    return PlainTextResponse("at once\n")  # without reading the body


async def _reads_the_body(request: Request) -> Response:
    return PlainTextResponse(f"{len(await request.body())} bytes\n")


async def _fails(request: Request) -> Response:
    raise RuntimeError("a bug in the application")


APP = Starlette(
    routes=[
        Route("/at-once", _answers_at_once, methods=["POST"]),
        Route("/body", _reads_the_body, methods=["POST"]),
        Route("/bug", _fails),
    ]
)


def _chunked(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + body


@pytest.mark.parametrize("path", ["/at-once", "/body"])
def test_a_malformed_chunk_is_a_400_and_one_warning(path: str) -> None:
    # The head is fine, so the application starts answering; then h11 refuses the
    # chunk. Before, the application's answer then failed in h11 (LocalProtocolError)
    # and uvicorn logged "Exception in ASGI application" with a traceback.
    with _server(APP) as (port, _, records):
        reply = raw_exchange(port, _chunked(path, b"zz\r\n\r\n"))
        assert reply.startswith(b"HTTP/1.1 400 ")
        assert raw_exchange(port, b"GET /bug HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 500 "  # still serving; and the one line a bug gives, for contrast
        )
    assert records.events() == ["http.bad_request", "http.app_error"]
    warning, bug = (r for r in records.records if r.levelno >= logging.WARNING)
    assert warning.levelno == logging.WARNING
    assert warning.exc_info is None
    fields = getattr(warning, "fields", {})
    assert fields["server"] == "test"
    assert fields["peer"].startswith("127.0.0.1:")
    assert "chunk" in fields["reason"]
    assert bug.levelno == logging.ERROR
    assert bug.exc_info is not None  # a real bug keeps its traceback


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_a_malformed_head_is_a_400_and_one_warning(request_bytes: bytes) -> None:
    with _server(APP) as (port, _, records):
        assert raw_exchange(port, request_bytes).startswith(b"HTTP/1.1 400 ")
    assert records.events() == ["http.bad_request"]
    assert records.records[0].exc_info is None


def test_bad_request_warnings_are_rate_limited() -> None:
    with _server(APP) as (port, config, records):
        limiter: RateLimitedLog = config.http.bad_requests  # type: ignore[union-attr]
        for _ in range(limiter.burst + 3):
            assert raw_exchange(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
        limiter.flush(force=True)
    assert records.events() == ["http.bad_request"] * limiter.burst + ["log.suppressed"]
    assert getattr(records.records[-1], "fields", {})["suppressed"] == 3


def test_uvicorn_lines_are_structured_json(
    keep_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    with _server(APP) as (port, _, _records):
        raw_exchange(port, _chunked("/at-once", b"zz\r\n\r\n"))
        raw_exchange(port, b"GET /bug HTTP/1.1\r\nHost: x\r\n\r\n")
        raw_exchange(port, b"GET /bug HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [record["event"] for record in records] == [
        "http.bad_request",
        "http.app_error",
        "http.app_error",
    ]
    assert "Traceback" not in records[0].get("exception", "")
    assert records[1]["message"] == "Exception in ASGI application"
    assert "RuntimeError: a bug in the application" in records[1]["exception"]
