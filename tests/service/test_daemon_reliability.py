"""Reliability under abuse: a connect/close flood, running out of file descriptors.

- A loop of connect/close from another process keeps the daemon's listen
  backlog full; the project's client waits for room (as Intel's blocking
  connect does) instead of failing with EAGAIN, so it still quotes.
- With a low ``RLIMIT_NOFILE`` both listeners (AESM and admin) run out of
  descriptors: they pause and log it once, never a traceback per failed
  ``accept()``, and ``/healthz`` answers again once descriptors are free.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from daemon_support import daemon_process, wait_for

from sgx_quote_helper import client
from sgx_quote_helper.platform import Platform, demo_app_identity
from sgx_quote_helper.sgx import TargetInfo

# One flooding process: non-blocking connect + close in a loop until stop;
# prints how often the backlog was full (EAGAIN) and how many got through.
_FLOOD = """
import errno, json, socket, sys, time
path, stop = sys.argv[1], float(sys.argv[2])
full = connected = 0
while time.time() < stop:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(path)
        connected += 1
    except BlockingIOError:
        full += 1
    except OSError:
        pass
    sock.close()
json.dump({"full": full, "connected": connected}, sys.stdout)
"""
FLOODERS = 4
QUOTES = 10


def test_the_client_quotes_through_a_connect_close_flood(sim: Path, run_dir: Path) -> None:
    cpu = Platform.load(sim / "platform", need_provisioning=False).cpu()
    with daemon_process(sim, run_dir, "--log-level", "error") as daemon:
        quoter = client.out_of_process(daemon.socket)
        target = quoter.get_target_info()
        report = cpu.ereport(
            demo_app_identity(), TargetInfo.from_bytes(target.to_bytes()), bytes(64)
        )
        stop = time.time() + 600  # ended by the test once the quotes are done
        flood = [
            subprocess.Popen(
                [sys.executable, "-c", _FLOOD, str(daemon.socket), repr(stop)],
                stdout=subprocess.DEVNULL,
            )
            for _ in range(FLOODERS)
        ]
        try:
            time.sleep(0.5)  # the flood is running
            quotes = [quoter.get_quote(report) for _ in range(QUOTES)]
        finally:
            for process in flood:
                process.terminate()
        # terminate() ends the loop early without output; re-run one short
        # burst to show that the backlog really was full under this flood.
        burst_stop = time.time() + 2
        burst = [
            subprocess.Popen(
                [sys.executable, "-c", _FLOOD, str(daemon.socket), repr(burst_stop)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(FLOODERS)
        ]
        counts = [json.loads(process.communicate(timeout=60)[0]) for process in burst]
        for process in flood:
            process.wait(timeout=30)
        # ...and the client still quotes while such a burst runs.
        assert quoter.get_quote(report)
    assert len(quotes) == QUOTES
    assert all(quote[:2] == b"\x03\x00" for quote in quotes)  # quote version 3
    assert sum(count["full"] for count in counts) > 0, counts


def _limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_both_listeners_back_off_when_descriptors_run_out(sim: Path, run_dir: Path) -> None:
    with daemon_process(sim, run_dir, preexec=_limit_open_files) as daemon:
        host, port = daemon.admin_url.removeprefix("http://").rsplit(":", 1)
        held: list[socket.socket] = []
        try:
            # Idle admin connections take every descriptor the daemon has left
            # (once they are gone, further ones wait in the backlog: stop there).
            for _ in range(120):
                try:
                    sock = socket.create_connection((host, int(port)), timeout=2)
                except OSError:
                    break
                held.append(sock)
            for _ in range(40):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                try:
                    sock.connect(str(daemon.socket))
                except OSError:
                    sock.close()
                    continue
                held.append(sock)

            def exhausted() -> bool:
                text = daemon.log.read_text()
                return "accept.out_of_resources.admin" in text

            wait_for(exhausted, 60, "the admin listener to run out of descriptors")
            time.sleep(2.5)  # asyncio retries accept() every second meanwhile
        finally:
            for sock in held:
                sock.close()

        def healthy() -> bool:
            try:
                return httpx.get(f"{daemon.admin_url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "/healthz to answer again")
        assert daemon.metric("sgx_quote_helper_accept_errors_total", listener="admin") > 1
    log = daemon.log.read_text()  # complete: the daemon has stopped
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 600) :][:3000]
    assert "out of system resource" not in log  # asyncio's own line, once per failure
    # Once each (the summary at exit says how many more there were).
    assert log.count("error accept.out_of_resources.admin ") == 1
    assert log.count("error accept.out_of_resources.aesm ") <= 1
    assert "log.suppressed event=accept.out_of_resources.admin" in log
