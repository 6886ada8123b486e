"""The uvicorn set-up of the project's HTTP servers: one configuration, one logging route.

The PCCS, the daemon's admin port and the admission webhook all run on uvicorn,
configured once here (:func:`uvicorn_config`); their sockets come from
``_net.listen_tcp``. A module of its own so that the many users of ``_net`` (URL
checks in the CLI and the clients) do not import uvicorn.

Logging: uvicorn logs on its own loggers, which nothing configures, so its lines
would reach stderr as bare text through Python's last-resort handler and break
``--log-format json``. Here every uvicorn record becomes a structured event of
the project (``http.server``, or ``http.app_error`` with the traceback of a bug
in an application), rate-limited because a peer can trigger most of them. A
request that h11 cannot parse (a malformed chunk, a bad header line) is one
rate-limited ``http.bad_request`` warning with the peer and h11's reason, no
traceback; the peer gets uvicorn's 400 when HTTP still allows an answer, and an
application already answering that request is treated as if the client had gone
(its answer is dropped instead of failing in h11 with a logged traceback).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, ClassVar, cast

import h11
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from sgx_quote_helper._logging import RateLimitedLog

#: The project's logger for what its HTTP servers' machinery (uvicorn, h11) reports.
HTTP_LOGGER = "sgx_quote_helper.http"
#: What uvicorn logs before answering an unparsable request with 400; the protocol
#: below logs that request as ``http.bad_request`` instead.
_UVICORN_BAD_REQUEST = "Invalid HTTP request received."
#: How much of h11's reason a ``http.bad_request`` line repeats (it may quote the peer's bytes).
_REASON_CHARS = 200


class _UvicornRecords(logging.Handler):
    """Re-logs uvicorn's records as the project's structured, rate-limited events."""

    def __init__(self) -> None:
        super().__init__()
        self.log = RateLimitedLog(logging.getLogger(HTTP_LOGGER))

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == _UVICORN_BAD_REQUEST:
            return  # logged by _H11Protocol, with the peer and the reason
        if record.exc_info and isinstance(record.exc_info[1], ClientDisconnect):
            # Starlette's word for a request body that stopped: the client went away,
            # or h11 refused the rest (logged as http.bad_request). Not a bug.
            self.log.log(logging.DEBUG, "http.client_gone")
            return
        event = "http.app_error" if record.exc_info else "http.server"
        self.log.log(
            record.levelno,
            event,
            exc_info=record.exc_info,
            message=record.getMessage().strip(),
            uvicorn_logger=record.name,
        )


_uvicorn_records = _UvicornRecords()


def _route_uvicorn_logs() -> None:
    """Send uvicorn's warnings and errors through :class:`_UvicornRecords` (idempotent)."""
    root = logging.getLogger("uvicorn")
    root.handlers[:] = [_uvicorn_records]
    root.propagate = False
    root.setLevel(logging.WARNING)


class _H11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a request h11 cannot parse is one structured warning.

    ``bad_requests`` and ``server_name`` are set per server by :func:`uvicorn_config`.
    """

    bad_requests: ClassVar[RateLimitedLog]
    server_name: ClassVar[str]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))  # what asyncio gives streams
        # The count of lines left out once a flood is over, at the next connection.
        self.bad_requests.flush()
        _uvicorn_records.log.flush()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this from its ``except h11.RemoteProtocolError`` in
        # handle_events, so the exception being handled is h11's reason.
        error = sys.exc_info()[1]
        reason = str(error) or type(error).__name__
        client = self.client
        self.bad_requests.log(
            logging.WARNING,
            "http.bad_request",
            server=self.server_name,
            peer=f"{client[0]}:{client[1]}" if client else "unix",
            reason=reason[:_REASON_CHARS],
        )
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The application may be answering this request already (its head was
            # fine, its body is not): its answer is dropped, and a receive() that
            # waits for the body gets http.disconnect, as when a client goes away.
            cycle.disconnected = True
            cycle.message_event.set()
        try:
            super().send_400_response(msg)
        except h11.LocalProtocolError:
            # The application's answer had begun: HTTP leaves nothing to send.
            self.transport.close()


def uvicorn_config(app: ASGIApp, server: str, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of one of the project's HTTP servers (named ``server``).

    The applications log their own structured request lines, so uvicorn's access
    log is off and its logging configuration is left alone (``log_config=None``);
    its records are routed as described above. HTTP/1.1 is always h11, even
    where httptools is installed, so that bad requests are handled as here.
    """
    _route_uvicorn_logs()
    protocol = type(
        "_ServerH11Protocol",
        (_H11Protocol,),
        {"bad_requests": RateLimitedLog(logging.getLogger(HTTP_LOGGER)), "server_name": server},
    )
    return uvicorn.Config(
        app,
        http=protocol,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        **options,
    )
