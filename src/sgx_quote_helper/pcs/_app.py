"""The PCCS v4 HTTP application of the simulated manufacturer (dcap-quote.md section 7).

A Starlette application whose only state is the manufacturer directory: every
request sees the current policy and registry (``Manufacturer`` re-reads them
when they change), so a recovery, a revocation or a re-issue made by a ``sim``
command or by another replica is served without a restart.

Responses follow PCCS: percent-encoded PEM issuer chains in headers, DER CRLs
with ``encoding=der`` and hex otherwise, TCB Info under both the v4 and v3
issuer-chain header names. Errors carry ``Error-Code`` and ``Error-Message``;
bad parameters are 400, unknown platforms, FMSPCs and collateral are 404, and
no client input causes a 500. One log line per request.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sgx_quote_helper._http import uvicorn_config
from sgx_quote_helper._net import listen_tcp
from sgx_quote_helper._time import Clock, utc_now
from sgx_quote_helper.pccs import PckCertificateQuery
from sgx_quote_helper.pcs._errors import InvalidRequestError, NotFoundError, PcsError
from sgx_quote_helper.pcs._manufacturer import Manufacturer
from sgx_quote_helper.pcs._openapi import openapi_document

logger = logging.getLogger("sgx_quote_helper.pcs.http")

V4 = "/sgx/certification/v4"
ROOT_CRL_PATH = "/sim/root-ca.crl"

_T = TypeVar("_T")
_HEX_RE = re.compile(r"[0-9A-Fa-f]*")
_DIGITS_RE = re.compile(r"[0-9]{1,10}")
_MAX_EVALUATION_NUMBER = 0x7FFFFFFF
_MAX_QE_ID_HEX = 260
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@functools.lru_cache(maxsize=32)
def percent_encode(pem: str) -> str:
    """An issuer chain as a header value: every byte but RFC 3986 unreserved ones escaped.

    Cached: a manufacturer has a handful of issuer chains, sent with every
    response, and ``quote`` walks them a byte at a time in Python.
    """
    return quote(pem, safe="")


#: What a client learns when the manufacturer directory is unusable: nothing of
#: the server's file system (the log line ``pccs.manufacturer_error`` has it).
SERVICE_UNAVAILABLE_MESSAGE = (
    "the collateral service cannot read its manufacturer state; the operator should see "
    "the pccs.manufacturer_error line in the service log"
)


class _BadParameter(InvalidRequestError):
    pass


def _header_text(text: str, limit: int = 300) -> str:
    # Header values must stay printable ASCII: never echo raw input into a header.
    # Cut before cleaning: a 16 KiB query string costs 300 steps here, not 16,384
    # (this runs for every request's log line, whatever its level).
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


def _error_response(status: int, code: str, message: str) -> Response:
    message = _header_text(message)
    return PlainTextResponse(
        message + "\n",
        status_code=status,
        headers={"Error-Code": code, "Error-Message": message},
    )


def _param(request: Request, name: str, *, required: bool = True) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        if required:
            raise _BadParameter(f"the query parameter {name} is required")
        return None
    return value


def _hex_param(
    request: Request,
    name: str,
    *,
    size: int | None = None,
    max_hex: int | None = None,
    required: bool = True,
) -> bytes | None:
    value = _param(request, name, required=required)
    if value is None:
        return None
    if not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise _BadParameter(f"{name} must be hex digits (an even number of them)")
    if size is not None and len(value) != 2 * size:
        raise _BadParameter(f"{name} must be {2 * size} hex digits ({size} bytes)")
    if max_hex is not None and len(value) > max_hex:
        raise _BadParameter(f"{name} must be at most {max_hex} hex digits")
    return bytes.fromhex(value)


def _choice(request: Request, name: str, choices: tuple[str, ...], *, required: bool) -> str | None:
    value = _param(request, name, required=required)
    if value is None:
        return None
    if value.lower() not in choices:
        raise _BadParameter(f"{name} must be one of {', '.join(choices)}")
    return value.lower()


def _evaluation_number(request: Request) -> int | None:
    """``update`` or ``tcbEvaluationDataNumber`` (not both, as PCS requires)."""
    update = _choice(request, "update", ("standard", "early"), required=False)
    number_text = _param(request, "tcbEvaluationDataNumber", required=False)
    if number_text is None:
        return None
    if update is not None:
        raise _BadParameter("give either update or tcbEvaluationDataNumber, not both")
    if not _DIGITS_RE.fullmatch(number_text) or int(number_text) > _MAX_EVALUATION_NUMBER:
        raise _BadParameter("tcbEvaluationDataNumber must be a non-negative 32-bit integer")
    return int(number_text)


class PccsApplication:
    """Request handlers over one :class:`Manufacturer`."""

    def __init__(self, manufacturer: Manufacturer, *, offload: bool = True) -> None:
        self.manufacturer = manufacturer
        self.offload = offload

    async def _call(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        # Signing and file locks stay off the event loop (unless a single-request
        # driver asked for the calls inline: see create_app).
        if not self.offload:
            return func(*args, **kwargs)
        return await run_in_threadpool(func, *args, **kwargs)

    async def pck_certificate(self, request: Request) -> Response:
        query = PckCertificateQuery(
            qe_id=_hex_param(request, "qeid", max_hex=_MAX_QE_ID_HEX) or b"",
            cpu_svn=_hex_param(request, "cpusvn", size=16) or b"",
            pce_svn=int.from_bytes(_hex_param(request, "pcesvn", size=2) or b"", "little"),
            pce_id=_hex_param(request, "pceid", size=2) or b"",
            encrypted_ppid=_hex_param(request, "encrypted_ppid", size=384, required=False),
        )
        certificate = await self._call(self.manufacturer.issue_pck_certificate, query)
        return Response(
            certificate.leaf_pem,
            media_type="application/x-pem-file",
            headers={
                "SGX-PCK-Certificate-Issuer-Chain": percent_encode(certificate.issuer_chain_pem),
                "SGX-TCBm": certificate.tcbm.hex().upper(),
                "SGX-FMSPC": certificate.fmspc.hex().upper(),
                "SGX-PCK-Certificate-CA-Type": certificate.ca_type,
            },
        )

    async def pck_crl(self, request: Request) -> Response:
        ca = _choice(request, "ca", ("processor", "platform"), required=True) or "processor"
        encoding = _choice(request, "encoding", ("der", "pem"), required=False)
        crl = await self._call(self.manufacturer.pck_crl, ca)
        headers = {
            "SGX-PCK-CRL-Issuer-Chain": percent_encode(
                self.manufacturer.pck_crl_issuer_chain_pem(ca)
            )
        }
        if encoding == "der":
            return Response(crl, media_type="application/pkix-crl", headers=headers)
        # PCCS answers anything but encoding=der with the DER as a hex string.
        return PlainTextResponse(crl.hex(), headers=headers)

    async def tcb_info(self, request: Request) -> Response:
        fmspc = _hex_param(request, "fmspc", size=6) or b""
        number = _evaluation_number(request)
        signed = await self._call(
            self.manufacturer.tcb_info, fmspc, tcb_evaluation_data_number=number
        )
        chain = percent_encode(signed.issuer_chain_pem)
        return Response(
            signed.body,
            media_type="application/json",
            headers={"TCB-Info-Issuer-Chain": chain, "SGX-TCB-Info-Issuer-Chain": chain},
        )

    async def qe_identity(self, request: Request) -> Response:
        number = _evaluation_number(request)
        signed = await self._call(self.manufacturer.qe_identity, tcb_evaluation_data_number=number)
        chain = percent_encode(signed.issuer_chain_pem)
        return Response(
            signed.body,
            media_type="application/json",
            headers={"SGX-Enclave-Identity-Issuer-Chain": chain},
        )

    async def root_ca_crl_hex(self, request: Request) -> Response:
        crl = await self._call(self.manufacturer.root_ca_crl)
        return PlainTextResponse(crl.hex())

    async def root_ca_crl_der(self, request: Request) -> Response:
        crl = await self._call(self.manufacturer.root_ca_crl)
        return Response(crl, media_type="application/pkix-crl")

    async def tdx(self, request: Request) -> Response:
        raise NotFoundError("TDX collateral is not simulated by this service")

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def health(self, request: Request) -> Response:
        await self._call(self.manufacturer.policy)
        return PlainTextResponse("ok\n")


class _RequestLog:
    """ASGI middleware: a ``Request-ID`` on every response, one log line per request,
    and the mapping of errors to status codes (in this one place)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        started = time.monotonic()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if status:  # the response had started: nothing more can be sent
                raise
            logger.exception("pccs.unhandled", extra={"fields": {"request_id": request_id}})
            response = _error_response(500, "InternalError", "internal error; see the log")
            await response(scope, receive, send_with_id)
        finally:
            logger.info(
                "pccs.request",
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": scope.get("method", ""),
                        "path": scope.get("path", ""),
                        "query": _header_text(scope.get("query_string", b"").decode("latin-1")),
                        "status": status,
                        "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    }
                },
            )


async def _pcs_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, InvalidRequestError):
        return _error_response(400, "InvalidRequestSyntax", str(exc))
    if isinstance(exc, NotFoundError):
        return _error_response(404, "NotFound", str(exc))
    # The manufacturer directory itself is broken (bad policy file, unreadable key):
    # a server-side condition, reported as unavailable rather than as a crash. The
    # details name server paths, so they go to the log only, never to the client.
    logger.error("pccs.manufacturer_error", extra={"fields": {"error": str(exc)}})
    return _error_response(503, "ServiceUnavailable", SERVICE_UNAVAILABLE_MESSAGE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "NotFound", 405: "MethodNotAllowed"}
    response = _error_response(
        exc.status_code, codes.get(exc.status_code, "InvalidRequestSyntax"), str(exc.detail)
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def create_app(
    source: Manufacturer | str | os.PathLike[str],
    *,
    clock: Clock = utc_now,
    offload: bool = True,
) -> Starlette:
    """The PCCS v4 ASGI application for a manufacturer (or a simulation directory).

    The manufacturer's calls (signing, file locks) run in a worker thread so that
    the event loop keeps serving. ``offload=False`` runs them inline instead: only
    for a driver that sends one request at a time and waits for it (the fuzzer),
    where the thread hop per request costs more than the request itself.
    """
    manufacturer = (
        source if isinstance(source, Manufacturer) else Manufacturer.load(source, clock=clock)
    )
    handlers = PccsApplication(manufacturer, offload=offload)
    routes = [
        Route(f"{V4}/pckcert", handlers.pck_certificate, methods=["GET"]),
        Route(f"{V4}/pckcrl", handlers.pck_crl, methods=["GET"]),
        Route(f"{V4}/tcb", handlers.tcb_info, methods=["GET"]),
        Route(f"{V4}/qe/identity", handlers.qe_identity, methods=["GET"]),
        Route(f"{V4}/rootcacrl", handlers.root_ca_crl_hex, methods=["GET"]),
        Route(ROOT_CRL_PATH, handlers.root_ca_crl_der, methods=["GET"]),
        Route("/tdx/certification/v4/{rest:path}", handlers.tdx, methods=["GET"]),
        Route("/openapi.json", handlers.openapi, methods=["GET"]),
        Route("/healthz", handlers.health, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={PcsError: _pcs_error, HTTPException: _http_error},
    )
    app.state.manufacturer = manufacturer
    app.add_middleware(_RequestLog)
    return app


# -- running it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningService:
    """A service started by :func:`serve_in_thread`."""

    url: str
    host: str
    port: int
    manufacturer: Manufacturer


class _Server(uvicorn.Server):
    """uvicorn's server, whose signal handlers only set the exit flag.

    uvicorn re-raises a captured SIGTERM after shutting down, which makes a clean
    shutdown look like a crash to a supervisor; here the process then exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def serve_in_thread(
    source: Manufacturer | str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Clock = utc_now,
    startup_timeout: float = 10.0,
) -> Iterator[RunningService]:
    """Run the service on ``host:port`` (0: an ephemeral port) in a thread, for tests and demos.

    The socket is bound before the thread starts (fail before serving); on exit
    the server stops accepting, drains and the thread is joined.
    """
    app = create_app(source, clock=clock)
    manufacturer: Manufacturer = app.state.manufacturer
    sock = listen_tcp(host, port)
    server = uvicorn.Server(uvicorn_config(app, "pccs"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="pccs", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise PcsError("the simulated PCCS did not start")
            time.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield RunningService(
            url=f"http://{url_host}:{bound_port}",
            host=bound_host,
            port=bound_port,
            manufacturer=manufacturer,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()


def serve(
    source: Manufacturer | str | os.PathLike[str],
    *,
    host: str,
    port: int,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> None:
    """Run the service in the foreground until SIGINT/SIGTERM (what ``pccs`` does).

    The manufacturer is loaded and the socket bound before serving starts, so a
    broken directory or a busy port fails at once.
    """
    app = create_app(source)
    sock = listen_tcp(host, port)
    config = uvicorn_config(app, "pccs", ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    bound = sock.getsockname()
    logger.info(
        "pccs.listening",
        extra={
            "fields": {
                "host": bound[0],
                "port": bound[1],
                "tls": ssl_certfile is not None,
                "sim_dir": str(app.state.manufacturer.sim_dir),
            }
        },
    )
    try:
        _Server(config).run(sockets=[sock])
    finally:
        sock.close()
    logger.info("pccs.stopped", extra={"fields": {"host": bound[0], "port": bound[1]}})
