"""``serve --workers N``: several worker processes on the one AESM socket.

The daemon runs as a real process. What stays node-wide is checked from the
outside: one attestation key whichever worker answers, the per-uid quota over
all workers, metrics summed over workers, one socket and one lock holder; and
the lifecycle: a killed worker is replaced (clients see at most connection
errors meanwhile), SIGTERM drains every worker, workers die with the supervisor.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    DaemonProcess,
    MakeReport,
    daemon_process,
    frame,
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    read_reply,
    response_fields,
    wait_for,
)

from sgx_quote_helper._cpus import usable_cpus
from sgx_quote_helper.service import load_config
from sgx_quote_helper.service._workers import merge, worker_config

COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")
WORKERS = 2


def _workers(daemon: DaemonProcess) -> dict[str, str]:
    """Worker index to pid, from the supervisor's merged metrics."""
    found: dict[str, str] = {}
    for line in daemon.metrics().splitlines():
        match = re.match(r"sgx_quote_helper_worker_connections_total\{(.*)\} ", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            found[labels["worker"]] = labels["pid"]
    return found


def _served(daemon: DaemonProcess) -> dict[str, float]:
    """Worker index to connections it accepted."""
    served: dict[str, float] = {}
    for line in daemon.metrics().splitlines():
        match = re.match(r"sgx_quote_helper_worker_connections_total\{(.*)\} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            served[labels["worker"]] = float(match.group(2))
    return served


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


@pytest.fixture
def workers(sim: Path, run_dir: Path) -> Iterator[DaemonProcess]:
    args = ("--workers", str(WORKERS), "--log-format", "json")
    with daemon_process(sim, run_dir, *args) as daemon:
        yield daemon


def _concurrently(
    daemon: DaemonProcess, body: bytes, clients: int, each: int
) -> list[bytes | None]:
    replies: list[bytes | None] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(each):
            reply = intel_client(daemon.socket, body)
            with lock:
                replies.append(reply)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return replies


def test_every_worker_serves_with_one_attestation_key(workers: DaemonProcess) -> None:
    supervisor = workers.process.pid
    pids = _workers(workers)
    assert sorted(pids) == [str(index) for index in range(WORKERS)]
    assert len(set(pids.values())) == WORKERS
    assert str(supervisor) not in pids.values()
    # Only the supervisor holds the socket's and the state directory's locks.
    lock = workers.socket.with_name(workers.socket.name + ".lock")
    assert lock.read_text().strip() == str(supervisor)
    pub_key_ids: set[bytes] = set()
    for _ in range(50):  # bounded: the kernel spreads accepts over the workers
        for reply in _concurrently(workers, init_quote_ex(True, 32), 8, 5):
            assert reply is not None
            pub_key_id = response_fields(reply, 15)[4]
            assert isinstance(pub_key_id, bytes)
            pub_key_ids.add(pub_key_id)
        if all(count > 0 for count in _served(workers).values()):
            break
    served = _served(workers)
    assert len(served) == WORKERS
    assert all(count > 0 for count in served.values()), served
    # One logical QE: whichever worker answered, the same attestation key.
    assert len(pub_key_ids) == 1
    log = [json.loads(line) for line in workers.log_lines()]
    started = {entry["pid"] for entry in log if entry["event"] == "daemon.started"}
    assert {str(pid) for pid in started} == set(pids.values())
    generated = [entry for entry in log if "generated a new QE3" in entry.get("message", "")]
    assert len(generated) <= 1


def test_metrics_are_summed_over_workers(workers: DaemonProcess) -> None:
    name = "sgx_quote_helper_requests_total"
    labels = {"type": "GET_SUPPORTED_ATT_KEY_ID_NUM", "result": "SUCCESS"}
    before = workers.metric(name, **labels)
    accepted_before = sum(_served(workers).values())
    replies = _concurrently(workers, GET_SUPPORTED_NUM, 8, 25)
    assert replies == [COUNT_REPLY] * 200
    assert workers.metric(name, **labels) == before + 200
    assert sum(_served(workers).values()) == accepted_before + 200
    assert workers.metric("sgx_quote_helper_workers") == WORKERS
    assert workers.metric("sgx_quote_helper_ready") == 1
    assert httpx.get(f"{workers.admin_url}/readyz", timeout=10).status_code == 200


def test_the_per_uid_quota_holds_across_workers(sim: Path, run_dir: Path) -> None:
    quota, opened = 4, 24
    args = ("--workers", str(WORKERS), "--max-connections-per-uid", str(quota))
    with daemon_process(sim, run_dir, *args, "--read-timeout", "600") as daemon:
        base = daemon.metric("sgx_quote_helper_connections_total", uid="0")
        stalled = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(opened)]
        try:
            for sock in stalled:
                sock.connect(str(daemon.socket))
                sock.sendall(b"\x06\x00")  # part of a length: never a whole request

            def handled() -> float:
                # Accepted (and later evicted, or held) or refused at once.
                return daemon.metric("sgx_quote_helper_connections_total", uid="0") + daemon.metric(
                    "sgx_quote_helper_rejected_peers_total", reason="uid_quota"
                )

            wait_for(lambda: handled() >= base + opened, 60, "every stalled connection")
            assert handled() == base + opened
            closed = daemon.metric(
                "sgx_quote_helper_evicted_connections_total", reason="uid_quota"
            ) + daemon.metric("sgx_quote_helper_rejected_peers_total", reason="uid_quota")
            # Each worker holds its share (quota / workers), stretched at most
            # twice while no held connection is stalled yet: as one daemon does.
            assert closed >= opened - 2 * quota
            assert daemon.metric("sgx_quote_helper_active_connections") <= 2 * quota
            # An honest request of the same uid is still answered (it evicts a stalled one).
            assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        finally:
            for sock in stalled:
                sock.close()


def test_a_killed_worker_is_replaced_and_clients_see_only_connection_errors(
    workers: DaemonProcess, make_report: MakeReport
) -> None:
    init = response_fields(intel_client(workers.socket, init_quote_ex(True, 32)) or b"", 15)
    size = response_fields(intel_client(workers.socket, get_quote_size_ex()) or b"", 16)
    assert isinstance(init[2], bytes)
    assert isinstance(size[2], int)
    request = frame(get_quote_ex(make_report(init[2], b"kill".ljust(64, b"\0")), size[2]))
    reply_length = 4 + 4 + 2 + 3 + size[2]
    outcomes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(30)
                    sock.connect(str(workers.socket))
                    sock.sendall(request)
                    reply = read_reply(sock)
            except OSError:
                outcome = "connection_error"
            except AssertionError:  # the stream ended inside a reply: the worker died
                outcome = "cut_short"
            else:
                if reply is None:
                    outcome = "closed"
                elif len(reply) == reply_length and response_fields(reply, 17)[1] == 0:
                    outcome = "ok"
                else:
                    outcome = "bad"
            with lock:
                outcomes[outcome] += 1

    before = _workers(workers)
    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: outcomes["ok"] > 20, 60, "quotes before the kill")
        os.kill(int(before["0"]), signal.SIGKILL)
        wait_for(
            lambda: _workers(workers).get("0") not in (None, before["0"]),
            60,
            "worker 0 to be replaced",
        )
        wait_for(
            lambda: httpx.get(f"{workers.admin_url}/readyz", timeout=10).status_code == 200,
            60,
            "every worker to be ready again",
        )
        served = outcomes["ok"]
        wait_for(lambda: outcomes["ok"] > served + 20, 60, "quotes after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert outcomes["bad"] == 0, outcomes
    assert set(outcomes) <= {"ok", "closed", "connection_error", "cut_short"}, outcomes
    after = _workers(workers)
    assert after["1"] == before["1"]
    assert workers.metric("sgx_quote_helper_worker_restarts_total") == 1
    events = [json.loads(line) for line in workers.log_lines()]
    exited = [entry for entry in events if entry["event"] == "worker.exited"]
    assert len(exited) == 1
    assert exited[0]["code"] == "SIGKILL"
    assert str(exited[0]["pid"]) == before["0"]


def test_sigterm_drains_every_worker(workers: DaemonProcess) -> None:
    pids = [int(pid) for pid in _workers(workers).values()]
    request = frame(GET_SUPPORTED_NUM)
    # One request in progress on as many connections as there are workers,
    # so that (the kernel spreading them) each worker likely holds one.
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2 * WORKERS)]
    try:
        for sock in socks:
            sock.settimeout(30)
            sock.connect(str(workers.socket))
            sock.sendall(request[:4])
        wait_for(
            lambda: workers.metric("sgx_quote_helper_active_connections") == len(socks),
            60,
            "the connections to be accepted",
        )
        workers.process.send_signal(signal.SIGTERM)
        wait_for(lambda: not workers.socket.exists(), 60, "the socket to be unlinked")
        assert workers.process.poll() is None, "the supervisor must wait for the drain"
        for sock in socks:
            sock.sendall(request[4:])
            assert read_reply(sock) == COUNT_REPLY
    finally:
        for sock in socks:
            sock.close()
    assert workers.process.wait(timeout=60) == 0
    assert not any(_alive(pid) for pid in pids)
    events = [json.loads(line)["event"] for line in workers.log_lines()]
    assert events.count("worker.stopped") == WORKERS
    assert events[-1] == "daemon.stopped"
    assert "daemon.drain_timeout" not in events


def test_sighup_restarts_the_supervisor_in_place_and_a_worker_ignores_it(
    workers: DaemonProcess,
) -> None:
    supervisor = workers.process.pid
    pids = [int(pid) for pid in _workers(workers).values()]
    os.kill(pids[0], signal.SIGHUP)  # the supervisor decides, not a worker
    wait_for(
        lambda: "daemon.signal_ignored" in _events(workers), 30, "the worker to log the signal"
    )
    assert _alive(pids[0])
    assert "worker.exited" not in _events(workers)
    workers.process.send_signal(signal.SIGHUP)
    wait_for(lambda: _events(workers).count("supervisor.started") == 2, 60, "the restart")
    assert workers.process.poll() is None
    assert workers.process.pid == supervisor

    def serving() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{workers.admin_url}/readyz", timeout=2).status_code == 200
        return False

    wait_for(serving, 60, "the restarted workers to be ready")
    assert not any(_alive(pid) for pid in pids), "the old workers must have stopped"
    assert len(_workers(workers)) == WORKERS
    assert intel_client(workers.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
    events = _events(workers)
    again = events.index("supervisor.started", 1)
    assert events.index("daemon.restarting") < events.index("daemon.stopping") < again
    assert events[:again].count("worker.stopped") == WORKERS
    assert "daemon.forced_exit" not in events
    assert "worker.killed" not in events


def _events(daemon: DaemonProcess) -> list[str]:
    return [json.loads(line)["event"] for line in daemon.log_lines()]


def test_workers_die_with_the_supervisor(workers: DaemonProcess) -> None:
    pids = [int(pid) for pid in _workers(workers).values()]
    workers.process.kill()
    workers.process.wait(timeout=30)
    wait_for(lambda: not any(_alive(pid) for pid in pids), 60, "the workers to exit")


# -- the settings ---------------------------------------------------------------------


def test_the_worker_count_and_its_shares_of_the_limits(sim: Path) -> None:
    default = load_config({"platform": str(sim / "platform")}, environ={})
    assert default.workers == 0  # one per usable core
    assert default.effective_workers() == min(usable_cpus(), 4)
    one = load_config({"platform": str(sim / "platform"), "workers": 1}, environ={})
    assert one.effective_workers() == 1
    three = load_config({"platform": str(sim / "platform"), "workers": 3}, environ={})
    assert three.effective_workers() == 3
    # Every worker's share of the per-uid quota is at least one connection.
    capped = load_config(
        {"platform": str(sim / "platform"), "workers": 8, "max_connections_per_uid": 3},
        environ={},
    )
    assert capped.effective_workers() == 3
    share = worker_config(three, 3)
    assert share.max_connections == 256 // 3
    assert share.max_connections_per_uid == 128 // 3
    assert share.max_connections * 3 <= three.max_connections


def test_merge_sums_counters_and_takes_the_minimum_of_ready() -> None:
    def status(ready: float, active: float, requests: float) -> dict[str, object]:
        return {
            "families": [
                {
                    "name": "sgx_quote_helper_ready",
                    "documentation": "",
                    "type": "gauge",
                    "unit": "",
                    "samples": [["sgx_quote_helper_ready", {}, ready]],
                },
                {
                    "name": "sgx_quote_helper_active_connections",
                    "documentation": "",
                    "type": "gauge",
                    "unit": "",
                    "samples": [["sgx_quote_helper_active_connections", {}, active]],
                },
                {
                    "name": "sgx_quote_helper_requests",
                    "documentation": "",
                    "type": "counter",
                    "unit": "",
                    "samples": [
                        ["sgx_quote_helper_requests_total", {"type": "A"}, requests],
                        ["sgx_quote_helper_requests_created", {"type": "A"}, 100.0 + requests],
                    ],
                },
            ]
        }

    families = {
        family.name: {sample.name: sample.value for sample in family.samples}
        for family in merge([status(1, 3, 5), status(0, 4, 7)])
    }
    assert families["sgx_quote_helper_ready"] == {"sgx_quote_helper_ready": 0}
    assert families["sgx_quote_helper_active_connections"] == {
        "sgx_quote_helper_active_connections": 7
    }
    assert families["sgx_quote_helper_requests"] == {
        "sgx_quote_helper_requests_total": 12,
        "sgx_quote_helper_requests_created": 105.0,
    }
