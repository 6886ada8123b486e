"""``python -m bench.floor``: what a Python AESM server costs per connection before any logic.

The daemon's ``cpu_ratio`` compares its CPU per quote with the cryptography
alone. This benchmark splits the rest: the same native load generator as
``make bench`` (one connection per request, as Intel's client does) against
servers that each add one part of the daemon's work, each a separate
process whose CPU is read from ``/proc/PID/stat``:

1. ``asyncio``: ``loop.create_unix_server`` and an ``asyncio.Protocol`` that
   reads the request in ``connection_made`` and writes a fixed 8-byte reply
   (the daemon's connection layer with nothing behind it);
2. ``uvloop``: the same protocol on uvloop's event loop (when installed);
3. ``blocking``: a blocking ``accept``/``recv``/``send``/``close`` loop, the
   least a Python server can do per connection;
4. ``asyncio+codec``: (1) that also decodes the real GetQuoteEx request and
   encodes a real, prepared 4.6 KB quote reply (no quoting);
5. ``asyncio+quote``: (1) with the daemon's whole request path in place:
   frame decoder, request decoding, ``AesmLogic`` over the simulated QE (REPORT
   MAC check, quote assembly, ECDSA signature), reply encoding;
   ``uvloop+codec`` and ``uvloop+quote``: (4) and (5) on uvloop (when installed);
6. ``blocking+quote``: (3) with the same whole request path, the least any
   Python server with this quote path can spend per connection (no event loop,
   no admission, no deadline: one client at a time);
7. ``native``: ``bench/floor_native.c``, a C model of the same work (accept,
   read, AES-CMAC over 384 bytes, ECDSA P-256 over 432 bytes through OpenSSL,
   a reply of the real reply's size, close) with no interpreter: what the
   system calls and the cryptography cost on their own (when a C compiler and
   OpenSSL's headers exist);
8. ``daemon``: ``sgx-quote-helper serve --workers 1``, for comparison.

``--modes`` picks some of them (the daemon always runs first).

Results go to stdout and ``bench/results/floor-<time>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from bench._loadgen import CpuWindow, native_client, run_clients
from bench.daemon import RESULTS, _daemon, _frames, _machine

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_NATIVE_SERVER = Path(__file__).parent / "floor_native.c"
_BY_DSO = ("--sort", "dso", "-g", "none")
#: A GetSupportedAttKeyIDNum-sized reply: little-endian length, then 8 bytes.
_TINY_REPLY = (8).to_bytes(4, "little") + bytes(8)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _answerer(mode: str, sim: Path) -> Callable[[bytes], bytes]:
    """What the server does with one request frame."""
    if mode in ("asyncio", "uvloop", "blocking"):
        return lambda _data: _TINY_REPLY
    from sgx_quote_helper.aesm import (
        MAX_REQUEST_BODY_SIZE,
        FrameDecoder,
        GetQuoteExRequest,
        decode_request,
        frame_response,
    )
    from sgx_quote_helper.backends import SimBackend, pck_source_for
    from sgx_quote_helper.service._logic import AesmLogic
    from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID

    source = pck_source_for(pccs_url=None, platform_dir=sim / "platform", cache_dir=None)
    backend = SimBackend(sim / "platform", sim / "floor-state", pck_source=source)
    logic = AesmLogic(backend, lambda: True)
    key_id = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()
    logic.initialize(logic._key_id(key_id), for_client=True)

    def decode(data: bytes) -> GetQuoteExRequest:
        decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
        decoder.receive_data(data)
        body = decoder.next_frame()
        assert isinstance(body, bytes)
        request = decode_request(body)
        assert isinstance(request, GetQuoteExRequest)
        return request

    if mode.endswith("+codec"):
        prepared: dict[str, Any] = {}

        def codec(data: bytes) -> bytes:
            request = decode(data)
            if "reply" not in prepared:
                prepared["reply"] = logic.handle(request)
            return frame_response(prepared["reply"], request=request)

        return codec

    def quote(data: bytes) -> bytes:
        request = decode(data)
        return frame_response(logic.handle(request), request=request)

    return quote


def _serve(mode: str, path: str, sim: Path) -> None:
    """The server process of one mode (forked; never returns)."""
    answer = _answerer(mode, sim)
    if mode.startswith("blocking"):
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1024)
        while True:
            conn, _ = listener.accept()
            conn.sendall(answer(conn.recv(65536)))
            conn.close()

    import asyncio

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            fd = transport.get_extra_info("socket").fileno()
            try:
                data = os.read(fd, 65536)  # the request is usually there already
            except BlockingIOError:
                return
            os.write(fd, answer(data))
            cast(asyncio.WriteTransport, transport).abort()

        def data_received(self, data: bytes) -> None:
            # uvloop's transports do not derive from asyncio's classes.
            transport = cast(asyncio.WriteTransport, self.transport)
            transport.write(answer(data))
            transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_unix_server(Answer, path, backlog=1024)
        async with server:
            await server.serve_forever()

    if mode.startswith("uvloop"):
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


class _PerfWindow:
    """``perf record`` of one process over a load level's measured window."""

    def __init__(self, pid: int, out: Path) -> None:
        self._pid, self._out = pid, out
        self._thread: threading.Thread | None = None

    def on_window(self, begin: float, stop: float) -> None:
        def run() -> None:
            time.sleep(max(0.0, begin - time.time()))
            command = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2999"]
            command += ["-p", str(self._pid), "-o", str(self._out)]
            command += ["--", "sleep", f"{max(0.1, stop - time.time()):.3f}"]
            subprocess.run(command, check=False, capture_output=True)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def shares(self) -> dict[str, float]:
        """Fraction of the samples in each binary (``[kernel.kallsyms]``, libraries)."""
        if self._thread is not None:
            self._thread.join()
        report = subprocess.run(
            [*("perf", "report", "-i", str(self._out), "--stdio", "--no-children"), *_BY_DSO],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        shares = {}
        for line in report.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0].endswith("%") and not line.startswith("#"):
                shares[fields[1]] = float(fields[0].rstrip("%")) / 100
        return shares


def _all_on_window(
    watchers: list[CpuWindow | _PerfWindow],
) -> Callable[[float, float], None]:
    def on_window(begin: float, stop: float) -> None:
        for watcher in watchers:
            watcher.on_window(begin, stop)

    return on_window


def _measure(
    pid: int,
    socket_path: Path,
    frame: Path,
    levels: list[int],
    duration: float,
    native: Path,
    perf: Path | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for clients in levels:
        window = CpuWindow(lambda: _cpu_seconds(pid))
        recorder = None if perf is None else _PerfWindow(pid, perf / f"{pid}-{clients}.data")
        watchers: list[CpuWindow | _PerfWindow] = [window]
        if recorder is not None:
            watchers.append(recorder)
        result = run_clients(
            socket_path,
            frame,
            clients,
            duration,
            on_window=_all_on_window(watchers),
            native=native,
        )
        count = len(result.latencies)
        cpu = window.seconds()
        per_request = round(cpu / count * 1e6, 1) if count else None
        row: dict[str, Any] = {
            "clients": clients,
            "requests": count,
            "requests_per_second": round(result.throughput, 1),
            "server_cpu_us_per_request": per_request,
            "errors": result.errors,
        }
        if recorder is not None and per_request is not None:
            # Where each request's CPU goes, by binary: the kernel, the
            # interpreter, the cryptography, protobuf, libc.
            row["us_per_request_by_binary"] = {
                binary: round(share * per_request, 1)
                for binary, share in recorder.shares().items()
                if share >= 0.005
            }
        rows.append(row)
    return rows


def _mode(
    mode: str,
    work: Path,
    frame: Path,
    levels: list[int],
    duration: float,
    native: Path,
    perf: Path | None,
) -> list[dict[str, Any]]:
    path = work / f"{mode}.socket"
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if mode == "native":
                binary = str(_native_server())
                # Replaces the forked child, so that its pid is the measured one.
                os.execv(binary, [binary, str(path), str(work / "quote.reply")])  # noqa: S606
            with contextlib.redirect_stdout(sys.stderr):
                _serve(mode, str(path), work / "sim")
        finally:
            os._exit(status)
    try:
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline or os.waitpid(pid, os.WNOHANG)[0]:
                raise RuntimeError(f"the {mode} server did not start")
            time.sleep(0.05)
        return _measure(pid, path, frame, levels, duration, native, perf)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _native_server() -> Path:
    """``bench/floor_native.c`` compiled (once per change of the source)."""
    binary = RESULTS / "floor_native"
    if not binary.exists() or binary.stat().st_mtime < _NATIVE_SERVER.stat().st_mtime:
        compiler = shutil.which("cc") or shutil.which("gcc") or "cc"
        binary.parent.mkdir(parents=True, exist_ok=True)
        command = [compiler, "-O2", "-o", str(binary), str(_NATIVE_SERVER), "-lcrypto"]
        subprocess.run(command, check=True, capture_output=True)
    return binary


def native_available() -> bool:
    """Whether the native model can be built here (a compiler and OpenSSL 3's headers)."""
    try:
        _native_server()
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def _reply_template(socket_path: Path, frame: Path, out: Path) -> None:
    """A real framed GetQuoteEx reply from the daemon, the native model's template."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(socket_path))
        sock.sendall(frame.read_bytes())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if len(reply) < 4 or len(reply) != 4 + int.from_bytes(reply[:4], "little"):
        raise RuntimeError("the daemon did not answer the quote request in whole")
    out.write_bytes(reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load level")
    parser.add_argument("--clients", default="8,32", help="comma-separated client counts")
    parser.add_argument("--out", type=Path, help="where to write the JSON")
    parser.add_argument("--modes", help="comma-separated modes (default: all available)")
    parser.add_argument(
        "--perf",
        action="store_true",
        help="also record each server with Linux perf over the measured window and split "
        "its CPU per request by binary (kernel, interpreter, cryptography, ...)",
    )
    args = parser.parse_args(argv)
    native = native_client()
    if native is None:
        print("bench.floor needs a C compiler for the native load generator", file=sys.stderr)
        return 2
    levels = [int(item) for item in args.clients.split(",") if item]
    modes = ["asyncio", "uvloop", "blocking", "asyncio+codec", "asyncio+quote"]
    modes += ["uvloop+codec", "uvloop+quote", "blocking+quote", "native"]
    if args.modes:
        unknown = set(args.modes.split(",")) - set(modes)
        if unknown:
            parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
        modes = [mode for mode in modes if mode in args.modes.split(",")]
    try:
        import uvloop  # noqa: F401
    except ImportError:
        modes = [mode for mode in modes if not mode.startswith("uvloop")]
    if "native" in modes and not native_available():
        print("skipping native: no C compiler or no OpenSSL 3 headers", file=sys.stderr)
        modes.remove("native")
    results: dict[str, Any] = {"machine_before": _machine()}
    work = Path(tempfile.mkdtemp(prefix="sqh-floor-"))
    perf = None
    if args.perf:
        if shutil.which("perf") is None:
            parser.error("--perf needs Linux perf (the linux-perf package)")
        perf = work / "perf"
        perf.mkdir()
    try:
        from sgx_quote_helper._cli import main as cli_main

        with contextlib.redirect_stdout(sys.stderr):
            cli_main(["sim", "init", str(work / "sim")])
        with _daemon(work, loop="asyncio", profile=None, extra=["--workers", "1"]) as daemon:
            quote_frame, _count = _frames(work, daemon)
            _reply_template(daemon.socket, quote_frame, work / "quote.reply")
            results["daemon"] = _measure(
                daemon.process.pid,
                daemon.socket,
                quote_frame,
                levels,
                args.duration,
                native,
                perf,
            )
            print(f"{'daemon':14s} {results['daemon']}")
        for mode in modes:
            results[mode] = _mode(mode, work, quote_frame, levels, args.duration, native, perf)
            print(f"{mode:14s} {results[mode]}")
        results["machine_after"] = _machine()
        out = args.out or RESULTS / f"floor-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
