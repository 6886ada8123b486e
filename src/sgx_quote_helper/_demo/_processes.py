"""The demo's processes: the quote helper daemon as a child, and how to reach it.

The daemon runs as a real process (``sgx-quote-helper serve`` with this
interpreter), with its output in a log file; it is ready when its admin socket
answers ``/readyz``, and its ``/metrics`` say how many quotes it served and
which QE3 it hosts. Every process is stopped with SIGTERM (a graceful
shutdown), then SIGKILL if it does not exit in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sgx_quote_helper._demo._errors import DemoError

SERVICE_START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
#: How much of a log a failure message quotes.
LOG_TAIL = 1500


def cli_command(*args: str) -> list[str]:
    """``sgx-quote-helper ARGS`` run with this interpreter (works from a venv or a checkout)."""
    return [sys.executable, "-m", "sgx_quote_helper", *args]


def shown(command: Sequence[str]) -> str:
    """A command as a person would type it."""
    words = list(command)
    if words[:3] == cli_command():
        words = ["sgx-quote-helper", *words[3:]]
    return " ".join(words)


def child_environment(aesm_socket: Path | None) -> dict[str, str]:
    """This environment without anything that would steer the children, plus the mode.

    ``SGX_AESM_ADDR`` present selects out-of-process quoting (on this socket);
    absent, in-process. The daemon's ``SGX_QUOTE_HELPER_*`` settings are dropped
    so that the user's environment cannot change what the demo shows.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "SGX_AESM_ADDR" and not key.startswith("SGX_QUOTE_HELPER_")
    }
    if aesm_socket is not None:
        env["SGX_AESM_ADDR"] = f"unix:{aesm_socket}"
    return env


def flags(options: Mapping[str, object]) -> list[str]:
    """``{"--a": 1, "--b": x}`` as ``["--a", "1", "--b", "x"]``."""
    return [word for flag, value in options.items() for word in (flag, str(value))]


def reserve_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free loopback port the kernel chose, to hold the port.

    The port is known before the service that will use it can start (``sim
    init`` writes it into the CRL distribution points first); while this socket
    is open the kernel gives the port to nobody else. Close it just before
    binding the port for real.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


def tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-LOG_TAIL:].strip()


class ManagedProcess:
    """A long-running child (the daemon) with its output in a log file."""

    def __init__(self, name: str, command: Sequence[str], log_path: Path, env: Mapping[str, str]):
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,  # a Ctrl-C of the demo reaches it only through stop()
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise DemoError(
                f"the {self.name} exited with status {code} before it was ready; its log "
                f"({self.log_path}):\n{tail(self.log_path)}"
            )

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def wait_until(
    probe: Callable[[], bool], process: ManagedProcess, what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        process.check_running()
        if probe():
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"{what} not within {timeout:.0f}s; log of the {process.name} "
                f"({process.log_path}):\n{tail(process.log_path)}"
            )
        time.sleep(0.05)


def _http_ok(url: str, *, uds: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), timeout=2.0) as http:
            return http.get(url).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class DaemonSpec:
    """Where and how the quote helper daemon runs."""

    platform_dir: Path
    socket: Path
    admin_socket: Path
    state_dir: Path
    pccs_url: str

    def command(self, qe_svn: int) -> list[str]:
        return cli_command(
            "serve",
            *flags(
                {
                    "--platform": self.platform_dir,
                    "--socket": self.socket,
                    "--pccs-url": self.pccs_url,
                    "--state-dir": self.state_dir,
                    "--admin-listen": f"unix:{self.admin_socket}",
                    "--qe-svn": qe_svn,
                }
            ),
        )


def start_daemon(spec: DaemonSpec, qe_svn: int, log_path: Path) -> ManagedProcess:
    return ManagedProcess("daemon", spec.command(qe_svn), log_path, child_environment(None))


def wait_daemon_ready(daemon: ManagedProcess, spec: DaemonSpec) -> None:
    wait_until(
        lambda: (
            spec.admin_socket.exists() and _http_ok("http://daemon/readyz", uds=spec.admin_socket)
        ),
        daemon,
        "the daemon answered /readyz",
        SERVICE_START_TIMEOUT,
    )


def daemon_metrics(spec: DaemonSpec) -> dict[str, float]:
    """The quote count and the hosted QE SVN, from the daemon's ``/metrics``."""
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(spec.admin_socket))) as http:
            text = http.get("http://daemon/metrics", timeout=2.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name.endswith("_requests_total")
                and sample.labels.get("type") == "GET_QUOTE_EX"
            ):
                found["quotes_served"] = found.get("quotes_served", 0.0) + sample.value
            elif sample.name.endswith("_qe_svn"):
                found["qe_svn"] = sample.value
    return found
