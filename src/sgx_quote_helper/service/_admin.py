"""The admin listener: ``/metrics``, ``/healthz`` and ``/readyz``.

Served by uvicorn (a real HTTP stack) inside the daemon's event loop, on a
loopback TCP address or a Unix socket (``unix:PATH``). Liveness never depends
on the PCCS: ``/healthz`` answers while the loop runs; ``/readyz`` says whether
quotes can be produced (the PCK chain is at hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sgx_quote_helper._http import uvicorn_config
from sgx_quote_helper._net import listen_tcp
from sgx_quote_helper.service._config import AdminAddress
from sgx_quote_helper.service._metrics import DaemonMetrics

#: Why the daemon cannot quote yet, or None when it can.
NotReadyReason = Callable[[], Awaitable[str | None]]


def admin_routes(
    metrics_body: Callable[[], Awaitable[bytes]], not_ready: NotReadyReason
) -> Starlette:
    """The three endpoints, for one daemon process or a supervisor of workers."""

    async def metrics_endpoint(request: Request) -> Response:
        return Response(await metrics_body(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        reason = await not_ready()
        if reason is None:
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"not ready: {reason}\n", status_code=503)

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


def build_admin_app(metrics: DaemonMetrics, is_ready: Callable[[], bool]) -> Starlette:
    async def metrics_body() -> bytes:
        return generate_latest(metrics.registry)

    async def not_ready() -> str | None:
        if is_ready():
            return None
        return (
            "quoting is not available yet (no PCK certificate chain, or the "
            "backend's upstream is unusable; see the daemon log)"
        )

    return admin_routes(metrics_body, not_ready)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AdminServer:
    """Runs the admin app as a task of the daemon's loop.

    The listening socket is bound here, before uvicorn starts, so that a busy
    port or a bad path is an ``OSError`` for the daemon's startup to report
    (uvicorn itself would log and exit the process).
    """

    def __init__(
        self,
        listen: AdminAddress,
        metrics: DaemonMetrics | None = None,
        is_ready: Callable[[], bool] | None = None,
        *,
        app: Starlette | None = None,
    ) -> None:
        """Serve ``metrics`` and ``is_ready`` (one process), or ``app`` (a supervisor)."""
        if app is None:
            assert metrics is not None
            assert is_ready is not None
            app = build_admin_app(metrics, is_ready)
        self._app = app
        self._listen = listen
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def bound_port(self) -> int | None:
        """The TCP port actually bound (useful with port 0)."""
        if self._socket is None or isinstance(self._listen, Path):
            return None
        return int(self._socket.getsockname()[1])

    @property
    def address(self) -> str:
        """Where the listener is bound, as ``--admin-listen`` would name it."""
        if isinstance(self._listen, Path):
            return f"unix:{self._listen}"
        host = self._listen[0]
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{self.bound_port if self._socket is not None else self._listen[1]}"

    def _bind(self) -> socket.socket:
        listen = self._listen
        if isinstance(listen, Path):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if listen.is_socket():
                    listen.unlink()
                sock.bind(str(listen))
            except BaseException:
                sock.close()
                raise
        else:
            host, port = listen
            sock = listen_tcp(host, port)
        return sock

    async def start(self) -> None:
        """Bind (raising ``OSError``) and serve in the background."""
        self._socket = self._bind()
        # A modest backlog: asyncio also tries that many accept()s per
        # readiness event, and as many retries when they fail for lack of
        # descriptors (uvicorn's default is 2048).
        config = uvicorn_config(self._app, "admin", backlog=64)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError("the admin listener stopped during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
            if isinstance(self._listen, Path):
                with contextlib.suppress(OSError):
                    self._listen.unlink()
