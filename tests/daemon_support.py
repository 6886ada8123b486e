"""Helpers for the daemon tests: hand-laid AESM frames, a blocking client, a daemon in a thread.

Frames are laid out byte by byte from spec/aesm-wire.md (tags of sections 4.1
and 4.3, worked examples of section 5, key id of section 11.2) with a varint
helper, and replies are read with a tiny protobuf field reader, so nothing here
goes through the codec under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sgx_quote_helper.platform import Platform, demo_app_identity
from sgx_quote_helper.service import QuoteHelperServer, ServiceConfig, build_server, load_config
from sgx_quote_helper.sgx import TargetInfo

# ---- protobuf by hand ----


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return tag(number, 2) + varint(len(payload)) + payload


def vi(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return tag(number, 0) + varint(value)


def frame(body: bytes) -> bytes:
    """Section 2: little-endian u32 length, then the body."""
    return len(body).to_bytes(4, "little") + body


TIMEOUT_15000 = bytes.fromhex("489875")  # timeout = 15000, field 9 (section 5)

# Section 11.2: Intel's default ECDSA P-256 attestation key id, as clients send it.
QE3_MRSIGNER = bytes.fromhex("8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff")
_key_id = bytearray(256)
_key_id[4:6] = b"\x20\x00"  # mrsigner_length = 32
_key_id[6:38] = QE3_MRSIGNER
_key_id[0x36] = 1  # prod_id = 1
_key_id[0x9A] = 2  # algorithm_id = 2 (ECDSA P-256)
KEY_ID = bytes(_key_id)
assert KEY_ID[:16].hex(" ") == "00 00 00 00 20 00 8c 4f 57 75 d7 96 50 3e 96 13"


def parse_fields(body: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every field of one message level."""
    fields: list[tuple[int, int, int | bytes]] = []
    position = 0

    def read_varint() -> int:
        nonlocal position
        shift = result = 0
        while True:
            byte = body[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(body):
        key = read_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, 0, read_varint()))
        elif wire_type == 2:
            length = read_varint()
            fields.append((number, 2, body[position : position + length]))
            position += length
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    if position != len(body):
        raise AssertionError("message overruns its body")
    return fields


def response_fields(reply: bytes, kind: int) -> dict[int, int | bytes]:
    """The inner fields of a reply frame whose Response sets field ``kind`` (only)."""
    body = reply[4:]
    assert int.from_bytes(reply[:4], "little") == len(body)
    outer = parse_fields(body)
    assert [(number, wire) for number, wire, _ in outer] == [(kind, 2)], outer
    inner = outer[0][2]
    assert isinstance(inner, bytes)
    fields = parse_fields(inner)
    numbers = [number for number, _, _ in fields]
    assert numbers == sorted(numbers), "fields not in ascending order (section 2)"
    return {number: value for number, _, value in fields}


# ---- request bodies (section 4.3; fields ascending, as Intel's C++ emits) ----


def init_quote_ex(
    b_pub_key_id: bool | None, buf_size: int | None = None, *, key_id: bytes | None = KEY_ID
) -> bytes:
    inner = b"" if key_id is None else ld(1, key_id)
    if b_pub_key_id is not None:
        inner += vi(3, int(b_pub_key_id))
    if buf_size is not None:
        inner += vi(4, buf_size)
    return ld(15, inner + TIMEOUT_15000)


def get_quote_size_ex(key_id: bytes | None = KEY_ID) -> bytes:
    inner = b"" if key_id is None else ld(1, key_id)
    return ld(16, inner + TIMEOUT_15000)


def get_quote_ex(
    report: bytes | None,
    buf_size: int | None,
    *,
    key_id: bytes | None = KEY_ID,
    qe_report_info: bytes | None = None,
) -> bytes:
    inner = b"" if report is None else ld(1, report)
    if key_id is not None:
        inner += ld(2, key_id)
    if qe_report_info is not None:
        inner += ld(3, qe_report_info)
    if buf_size is not None:
        inner += vi(4, buf_size)
    return ld(17, inner + TIMEOUT_15000)


GET_SUPPORTED_NUM = ld(21, TIMEOUT_15000)


# ---- a blocking client ----


def exchange(
    path: Path | str, data: bytes | list[bytes], *, pause: float = 0.0, timeout: float = 20.0
) -> bytes | None:
    """Send ``data`` (a list: one write each) and read one reply frame.

    ``None`` when the daemon closed the connection without sending a byte.
    A reply cut short fails the test: the daemon must never do that.
    """
    parts = data if isinstance(data, list) else [data]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        try:
            for index, part in enumerate(parts):
                if index and pause:
                    time.sleep(pause)
                if part:
                    sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon closed early; what it sent before, if anything, is read below
        return read_reply(sock)


def read_reply(sock: socket.socket) -> bytes | None:
    """Read exactly one frame, as Intel's client does (4 bytes, then the body)."""
    received = bytearray()
    wanted = 4
    while len(received) < wanted:
        try:
            chunk = sock.recv(wanted - len(received))
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if not received:
                return None
            raise AssertionError(f"reply cut short after {len(received)} bytes")
        received += chunk
        if len(received) == 4 and wanted == 4:
            wanted = 4 + int.from_bytes(received, "little")
    return bytes(received)


def intel_client(path: Path | str, body: bytes) -> bytes | None:
    """Intel's libsgx_quote_ex: the 4-byte length and the body as two writes (section 14)."""
    return exchange(path, [len(body).to_bytes(4, "little"), body])


# ---- the daemon in a thread ----


@dataclass
class RunningDaemon:
    server: QuoteHelperServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def socket(self) -> Path:
        return self.server.config.socket

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.server.admin_port}"

    def metrics(self) -> str:
        return httpx.get(f"{self.admin_url}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.metrics(), name, **labels)

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_for(lambda: self.server.ready, timeout, "the daemon to become ready")


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(3))
    return 0.0


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@contextlib.contextmanager
def run_daemon(
    config: ServiceConfig,
    *,
    server: QuoteHelperServer | None = None,
    ready: bool = True,
) -> Iterator[RunningDaemon]:
    """Build (unless given) and run a daemon in a thread; always stopped on exit."""
    server = server or build_server(config)
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    thread = threading.Thread(target=main, name="daemon", daemon=True)
    thread.start()
    running = RunningDaemon(server, loop, thread)
    try:
        wait_for(
            lambda: server.started.is_set() or failure or not thread.is_alive(),
            30,
            "the daemon to start",
        )
        if failure:
            raise failure[0]
        if ready:
            running.wait_ready()
        yield running
    finally:
        if thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(server.request_exit)
            thread.join(timeout=30)
        assert not thread.is_alive(), "the daemon did not stop"


# ---- the daemon as a real process ----


@dataclass
class DaemonProcess:
    process: subprocess.Popen[bytes]
    socket: Path
    admin_url: str
    log: Path

    def metrics(self) -> str:
        return httpx.get(f"{self.admin_url}/metrics", timeout=10).text

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.metrics(), name, **labels)

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def daemon_process(
    sim: Path, run_dir: Path, *extra: str, preexec: Callable[[], None] | None = None
) -> Iterator[DaemonProcess]:
    """``python -m sgx_quote_helper serve`` on a temporary socket, ready; always stopped.

    ``preexec`` runs in the child before the daemon starts (resource limits).
    """
    sock = run_dir / "aesm.socket"
    log = run_dir / "daemon.log"
    admin = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "sgx_quote_helper", "serve"]
    command += ["--platform", str(sim / "platform"), "--socket", str(sock)]
    command += ["--admin-listen", admin, *extra]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=preexec
        )
    running = DaemonProcess(process, sock, f"http://{admin}", log)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with {process.returncode}: {log.read_text()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{running.admin_url}/readyz", timeout=2).status_code == 200
            return False

        wait_for(ready, 60, "the daemon process to become ready")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ---- configs and REPORTs for daemon tests (used by the fixtures in tests/conftest.py) ----

MakeConfig = Callable[..., ServiceConfig]
MakeReport = Callable[[bytes, bytes], bytes]


def short_dir() -> Iterator[Path]:
    """A short, world-traversable directory under /tmp, removed afterwards.

    Unix socket paths are limited to 107 bytes, and the unprivileged side of
    the permission tests must be able to reach the socket (pytest's own
    temporary directories are 0700).
    """
    path = Path(tempfile.mkdtemp(prefix="sqh-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def config_for(sim: Path, run_dir: Path, **overrides: Any) -> ServiceConfig:
    flags: dict[str, Any] = {
        "platform": str(sim / "platform"),
        "socket": str(run_dir / "aesm.socket"),
        "admin_listen": "127.0.0.1:0",
        "state_dir": str(sim / "state"),
    }
    flags.update(overrides)
    return load_config(flags, environ={})


def report_maker(sim: Path) -> MakeReport:
    cpu = Platform.load(sim / "platform", need_provisioning=False).cpu()

    def make(target_info: bytes, report_data: bytes) -> bytes:
        report = cpu.ereport(demo_app_identity(), TargetInfo.from_bytes(target_info), report_data)
        return report.to_bytes()

    return make
