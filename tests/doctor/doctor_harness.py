"""Set-ups for the doctor tests: a real daemon, broken sockets, a privilege drop.

The daemon is the production assembly (``build_server(load_config(...))``) run
on an event loop in a thread, started and always stopped by a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from unprivileged import NOBODY as NOBODY
from unprivileged import run_as_nobody as run_as_nobody

from sgx_quote_helper._cli import main
from sgx_quote_helper.service import QuoteHelperServer, build_server, load_config


def sim_init(directory: Path) -> Path:
    """``sgx-quote-helper sim init DIR``, quietly."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["sim", "init", str(directory)]) == 0
    return directory


def world_dir(path: Path) -> Path:
    """A directory every uid may search, so that ``nobody`` reaches sockets in it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def running_daemon(flags: Mapping[str, Any]) -> Iterator[QuoteHelperServer]:
    """The quote helper built from ``flags`` (as ``serve`` would), serving until exit."""
    config = load_config(dict(flags), environ={})
    loop = asyncio.new_event_loop()
    holder: dict[str, QuoteHelperServer] = {}
    failure: list[BaseException] = []

    async def serve() -> None:
        server = build_server(config)  # on the loop: its primitives belong there
        holder["server"] = server
        await server.serve()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="doctor-test-daemon", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not failure:
        server = holder.get("server")
        if server is not None and server.started.is_set() and server.ready:
            break
        time.sleep(0.01)
    else:
        raise AssertionError(f"the daemon did not start: {failure}")
    server = holder["server"]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.request_exit)
        thread.join(15)
        assert not thread.is_alive(), "the daemon did not stop"
        assert not failure, failure


def stale_socket(path: Path) -> Path:
    """A socket file nobody listens on: what a daemon that died leaves behind."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()
    return path


@contextlib.contextmanager
def silent_listener(path: Path) -> Iterator[socket.socket]:
    """A socket that accepts connections (in its backlog) but never answers: a hung daemon."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(8)
        yield sock
    finally:
        sock.close()


def free_tcp_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
