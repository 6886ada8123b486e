"""A full listen backlog delays a call instead of failing it (issue 11, item 1).

A non-blocking ``connect()`` to a Unix socket whose backlog is full fails at
once with EAGAIN; Intel's client connects in blocking mode and waits. The
project's clients (sync and asyncio) wait too, within their timeout. The
server here fills its own backlog, answers only after a pause, and then
serves the waiting client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgx_quote_helper import client

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")  # GetSupportedAttKeyIDNum: 1


@contextlib.contextmanager
def _full_backlog(path: Path, pause: float) -> Iterator[list[int]]:
    """A server whose backlog is full; it starts accepting after ``pause`` seconds.

    Yields the count of requests it answered (filled in as it serves).
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    fillers = []
    while True:  # fill the backlog: connect without being accepted
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            filler.connect(str(path))
        except BlockingIOError:
            filler.close()
            break
        fillers.append(filler)
    assert fillers, "the backlog took no connection"
    answered: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(pause):
            return
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    header = conn.recv(4)
                except TimeoutError:
                    continue  # a filler: it sends nothing
                if len(header) == 4:
                    conn.recv(int.from_bytes(header, "little"))
                    conn.sendall(COUNT_REPLY)
                    answered.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=10)
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "aesm.socket"


def test_the_sync_client_waits_for_room_in_the_backlog(path: Path) -> None:
    with _full_backlog(path, pause=0.5) as answered:
        assert client.AesmClient(path, timeout=10).get_supported_att_key_id_num() == 1
    assert answered == [1]


def test_the_async_client_waits_for_room_in_the_backlog(path: Path) -> None:
    async def call() -> int:
        return await client.AsyncAesmClient(path, timeout=10).get_supported_att_key_id_num()

    with _full_backlog(path, pause=0.5) as answered:
        assert asyncio.run(call()) == 1
    assert answered == [1]


@pytest.mark.parametrize("timeout", [0.5, 1e-7])  # below 1 us: still bounded, not 0 = forever
def test_a_backlog_full_for_the_whole_timeout_is_service_unavailable(
    path: Path, timeout: float
) -> None:
    with (
        _full_backlog(path, pause=30),
        pytest.raises(client.ServiceUnavailableError, match="stayed full for the whole timeout"),
    ):
        client.AesmClient(path, timeout=timeout).get_supported_att_key_id_num()
