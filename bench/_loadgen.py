"""Load generator: concurrent AESM clients replaying one pre-built request frame.

Each client is its own process running blocking sockets, the way enclave
processes on a node reach the daemon: connect, write the frame, read the whole
reply, close (one request per connection, aesm-wire.md section 3), again and
again until the run ends. Processes keep the generator's own cost off the
daemon's profile and out of one GIL; the frame bytes are built once by the
caller, so a request costs the client only its system calls.

``python -m bench._loadgen --socket PATH --frame FILE --start T --stop T``
runs one client and prints one JSON document (latencies in seconds of the
requests that began inside ``[start, stop)``). :func:`run_clients` starts and
collects several.

``bench/loadgen.c`` is the same client in C (built with the machine's ``cc``
on first use, :func:`native_client`): a Python client spends 120-170 us of CPU
per request, which on a 2-core machine takes the core the daemon needs; the
native one spends a few tens.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _exchange(path: str, frame: bytes) -> int:
    """One request; the reply's length, or -1 if the daemon closed without one."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(frame)
        head = b""
        while len(head) < 4:
            chunk = sock.recv(4 - len(head))
            if not chunk:
                return -1
            head += chunk
        remaining = int.from_bytes(head, "little")
        total = 4 + remaining
        while remaining:
            chunk = sock.recv(min(remaining, 1 << 16))
            if not chunk:
                return -1
            remaining -= len(chunk)
        return total
    finally:
        sock.close()


def client(path: str, frame: bytes, start: float, stop: float) -> dict[str, object]:
    """Run requests back to back until ``stop`` (a ``time.time()`` value)."""
    latencies: list[float] = []
    errors = 0
    while time.time() < start:
        time.sleep(min(0.01, max(0.0, start - time.time())))
    clock = time.perf_counter
    cpu = time.process_time()
    while time.time() < stop:
        began = clock()
        try:
            ok = _exchange(path, frame) > 4
        except OSError:
            ok = False
        if ok:
            latencies.append(clock() - began)
        else:
            errors += 1
    return {
        "latencies": latencies,
        "errors": errors,
        "client_cpu_seconds": time.process_time() - cpu,
    }


@dataclass(frozen=True)
class LoadResult:
    """What several clients measured together."""

    clients: int
    duration: float
    latencies: list[float]
    errors: int
    client_cpu_seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.duration


_NATIVE_SOURCE = Path(__file__).parent / "loadgen.c"
_NATIVE_BINARY = Path(__file__).parent / "results" / "loadgen"


def native_client() -> Path | None:
    """The compiled native client, building it when needed; None without a C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = _NATIVE_BINARY
    if not binary.exists() or binary.stat().st_mtime < _NATIVE_SOURCE.stat().st_mtime:
        binary.parent.mkdir(exist_ok=True)
        subprocess.run([compiler, "-O2", "-o", str(binary), str(_NATIVE_SOURCE)], check=True)
    return binary


class CpuWindow:
    """CPU seconds of the server sampled at the start and the end of a window.

    Pass :meth:`on_window` to :func:`run_clients`; :meth:`seconds` waits for
    the sampling thread, which may still be sleeping towards the window's end
    when the load generator returns.
    """

    def __init__(self, measure: Callable[[], float]) -> None:
        self._measure = measure
        self._samples: list[float] = []
        self._thread: threading.Thread | None = None

    def on_window(self, begin: float, stop: float) -> None:
        def run() -> None:
            for at in (begin, stop):
                time.sleep(max(0.0, at - time.time()))
                self._samples.append(self._measure())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def seconds(self) -> float:
        if self._thread is None:
            raise RuntimeError("the load generator never fixed its window")
        self._thread.join()
        return self._samples[1] - self._samples[0]


def run_clients(
    socket_path: Path,
    frame_file: Path,
    clients: int,
    duration: float,
    *,
    warmup: float = 0.5,
    on_window: Callable[[float, float], None] | None = None,
    native: Path | None = None,
) -> LoadResult:
    """``clients`` client processes for ``duration`` seconds after a warm-up.

    ``on_window(begin, stop)`` (``time.time()`` values) is called once the
    measured window is fixed, so that a caller can sample the daemon's CPU
    time exactly over it.
    """
    start = time.time() + 1.0 + 0.02 * clients  # time for every process to start
    begin = start + warmup
    stop = begin + duration
    if on_window is not None:
        on_window(begin, stop)
    if native is not None:
        command = [str(native), str(socket_path), str(frame_file), repr(begin), repr(stop)]
    else:
        command = [sys.executable, "-m", "bench._loadgen", "--socket", str(socket_path)]
        command += ["--frame", str(frame_file), "--start", repr(begin), "--stop", repr(stop)]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent)
        for _ in range(clients)
    ]
    latencies: list[float] = []
    errors = 0
    cpu = 0.0
    for process in processes:
        out, _ = process.communicate(timeout=duration + warmup + 60)
        if process.returncode != 0:
            raise RuntimeError(f"a load generator process failed with {process.returncode}")
        result = json.loads(out)
        latencies += result["latencies"]
        errors += int(result["errors"])
        cpu += float(result["client_cpu_seconds"])
    return LoadResult(clients, duration, latencies, errors, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._loadgen")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--frame", required=True, type=Path, help="file with one request frame")
    parser.add_argument("--start", required=True, type=float, help="time.time() to begin")
    parser.add_argument("--stop", required=True, type=float, help="time.time() to end")
    args = parser.parse_args(argv)
    result = client(args.socket, args.frame.read_bytes(), args.start, args.stop)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
