"""No client starves another: cheap requests stay fast under full quote load.

32 client processes request quotes back to back from a daemon process while
the test measures GetSupportedAttKeyIDNum. The daemon answers quotes in short
slices and cheap requests between them, so the probe does not queue behind
the quotes. No absolute bound here (the machine running the tests is
shared): ``python -m bench`` measures the latency and reports it against its
target (p99 <= 5 ms).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeReport,
    daemon_process,
    exchange,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    response_fields,
)

QUOTE_CLIENTS = 32
COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")

# One quote client: blocking requests until the deadline; prints its latencies.
_CLIENT = """
import json, socket, sys, time
path, frame, start, stop = sys.argv[1], bytes.fromhex(sys.argv[2]), *map(float, sys.argv[3:5])
latencies, errors = [], 0
while time.time() < start:
    time.sleep(0.005)
while time.time() < stop:
    began = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(frame)
        reply = sock.makefile("rb")
        length = int.from_bytes(reply.read(4), "little")
        ok = length > 0 and len(reply.read(length)) == length
    latencies.append(time.perf_counter() - began)
    errors += not ok
json.dump({"latencies": latencies, "errors": errors}, sys.stdout)
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def test_key_id_count_stays_fast_under_full_quote_load(
    sim: Path, run_dir: Path, make_report: MakeReport
) -> None:
    # One process: the slices are a property of one event loop (with several
    # workers, each has its own).
    with daemon_process(sim, run_dir, "--log-level", "warning", "--workers", "1") as daemon:
        init = response_fields(intel_client(daemon.socket, init_quote_ex(True, 32)) or b"", 15)
        size = response_fields(intel_client(daemon.socket, get_quote_size_ex()) or b"", 16)
        assert isinstance(init[2], bytes)
        assert isinstance(size[2], int)
        request = frame(get_quote_ex(make_report(init[2], bytes(64)), size[2]))
        start = time.time() + 2.0  # every client process started
        stop = start + 3.0
        arguments = [str(daemon.socket), request.hex(), repr(start), repr(stop)]
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", _CLIENT, *arguments], stdout=subprocess.PIPE, text=True
            )
            for _ in range(QUOTE_CLIENTS)
        ]
        try:
            time.sleep(max(0.0, start + 0.5 - time.time()))
            probe: list[float] = []
            while time.time() < stop - 0.5:
                began = time.perf_counter()
                assert exchange(daemon.socket, frame(GET_SUPPORTED_NUM)) == COUNT_REPLY
                probe.append(time.perf_counter() - began)
                time.sleep(0.005)
            results = [json.loads(client.communicate(timeout=60)[0]) for client in clients]
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()
    quotes = [latency for result in results for latency in result["latencies"]]
    assert sum(result["errors"] for result in results) == 0
    assert len(quotes) > QUOTE_CLIENTS * 10, "the quote load did not run"
    assert len(probe) > 50
    probe_p50 = _percentile(probe, 0.5)
    quote_p50 = statistics.median(quotes)
    # Cheap requests do not wait for the queue of quotes (with one FIFO queue
    # they would take at least as long as a quote). A new connection passes
    # through a few event-loop iterations, each of which may answer a slice
    # of quotes, hence no larger margin here; bench/ measures the latency.
    assert probe_p50 < quote_p50, (probe_p50, quote_p50)
