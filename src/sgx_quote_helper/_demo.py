"""``sgx-quote-helper demo``: the benefits of out-of-process quoting, shown end to end.

Everything runs on the embedded default: a temporary directory, loopback ports
chosen by the kernel, real processes for the daemon and the applications. The
``sim`` commands run in this process (the same command code, without paying for
another interpreter start: the demo has 30 s on a loaded 2-core machine). The
steps:

 1. ``simulation``: ``sim init`` (a simulated manufacturer and platform), the two
    sample applications' manifests, and the applications' view of the platform:
    ``platform.json`` and ``enclave.secret`` only, as a container that mounts
    ``/dev/sgx_enclave`` but not ``/dev/sgx_provision``.
 2. ``services``: the quote helper daemon (``serve``, hosting this release's
    QE3) as a subprocess, ready when it answers ``/readyz``, and the PCCS for the
    simulated manufacturer in a thread of this process.
 3. ``attest_out_of_process``: the remote attestation sample, two processes with
    their own enclave identities, quoting through the daemon: both verify
    ``UpToDate`` and exchange encrypted messages. One QE3+PCE served both.
 4. ``tcb_recovery``: ``sim tcb-recovery --qe-svn N+1``: QE N is now OutOfDate.
 5. ``in_process_old_qe``: the same sample in process, bundling QE N (and
    needing the provisioning secret): each side now refuses the other,
    ``OutOfDate``.
 6. ``daemon_update``: the daemon restarted hosting QE N+1.
 7. ``attest_after_update``: the unchanged out-of-process applications verify
    ``UpToDate`` again: nothing in them was rebuilt.

Every process started is stopped on the way out, on success or failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sgx_quote_helper._cli import main as cli_main
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.errors import CodedError, SgxQuoteHelperError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.platform import ENCLAVE_SECRET_FILE, PROVISIONING_SECRET_FILE
from sgx_quote_helper.samples import REMOTE_ATTESTATION_MODULE, write_manifests

#: The advisory the demo's TCB recovery publishes (simulated ids never look like Intel's).
DEMO_ADVISORY = "SIM-SA-00001"
SERVICE_START_TIMEOUT = 20.0
PAIR_TIMEOUT = 25.0
STOP_TIMEOUT = 5.0
_PLATFORM_DESCRIPTION = "platform.json"
_LOG_TAIL = 1500


class DemoError(CodedError):
    """A demo step did not show what it should; the message says what happened."""


# ---- processes ---------------------------------------------------------------------------------


def cli_command(*args: str) -> list[str]:
    """``sgx-quote-helper ARGS`` run with this interpreter (works from a venv or a checkout)."""
    return [sys.executable, "-m", "sgx_quote_helper", *args]


def shown(command: Sequence[str]) -> str:
    """A command as a person would type it."""
    words = list(command)
    if words[:3] == cli_command():
        words = ["sgx-quote-helper", *words[3:]]
    return " ".join(words)


def run_command(args: Sequence[str]) -> str:
    """``sgx-quote-helper ARGS`` in this process (the very command code); returns its stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(args))
    if code != 0:
        raise DemoError(f"`sgx-quote-helper {' '.join(args)}` failed: {err.getvalue().strip()}")
    return out.getvalue()


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


def _flags(options: Mapping[str, object]) -> list[str]:
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


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-_LOG_TAIL:].strip()


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
                f"({self.log_path}):\n{_tail(self.log_path)}"
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
                f"({process.log_path}):\n{_tail(process.log_path)}"
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
            *_flags(
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


# ---- the sample, two processes -----------------------------------------------------------------


@dataclass
class PartyOutcome:
    """What one sample process reported (its JSON lines) and how it exited."""

    name: str
    exit_code: int | None
    events: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.result.get("ok") is True

    def event(self, step: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("step") == step:
                return event
        return {}

    @property
    def peer_status(self) -> str | None:
        """The status this side verified for its peer (also when the appraisal refused it)."""
        status = self.result.get("peer_status") or self.event("verify_peer").get("status")
        return str(status) if status is not None else None

    def summary(self) -> dict[str, Any]:
        quote = self.event("quote")
        document = {
            "exit_code": self.exit_code,
            "ok": self.ok,
            "mode": quote.get("mode"),
            "qe_svn": quote.get("qe_svn"),
            "mr_enclave": self.event("platform").get("mr_enclave"),
            "provisioning_secret": self.event("platform").get("provisioning_secret"),
            "peer_status": self.peer_status,
        }
        if self.ok:
            document["received"] = self.result.get("received")
            document["key_fingerprint"] = self.result.get("key_fingerprint")
        else:
            document["failed_step"] = self.result.get("failed_step")
            document["reason"] = self.result.get("reason") or self.stderr[-_LOG_TAIL:]
        return document


@dataclass(frozen=True)
class SampleSetup:
    """What both sample processes are given."""

    manifests: Mapping[str, Path]
    root_ca: Path
    pccs_url: str


def _parse_party(name: str, exit_code: int | None, stdout: str, stderr: str) -> PartyOutcome:
    outcome = PartyOutcome(name, exit_code, stderr=stderr.strip())
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict):
            continue
        if document.get("step") == "result":
            outcome.result = document
        else:
            outcome.events.append(document)
    return outcome


def run_pair(
    setup: SampleSetup,
    *,
    platform_dir: Path,
    aesm_socket: Path | None,
    work_dir: Path,
    extra_args: Mapping[str, Sequence[str]] | None = None,
    ends: Mapping[str, socket.socket] | None = None,
    timeout: float = PAIR_TIMEOUT,
) -> dict[str, PartyOutcome]:
    """Run alice and bob, each its own process, connected by an inherited socketpair.

    With ``aesm_socket`` they quote out of process through it; without, in
    process. ``extra_args`` adds options per side (``{"alice": [...]}``);
    ``ends`` replaces the socketpair by one connected socket per side (to put
    something between them); they are closed here once inherited.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    env = child_environment(aesm_socket)
    sides = {"alice": ("alice.toml", "bob.toml"), "bob": ("bob.toml", "alice.toml")}
    if ends is None:
        ends = dict(zip(sides, socket.socketpair(), strict=True))
    processes: dict[str, tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]] = {}
    files = contextlib.ExitStack()
    try:
        for name, (own, peer) in sides.items():
            end = ends[name]
            options = {
                "--manifest": setup.manifests[own],
                "--peer-manifest": setup.manifests[peer],
                "--platform": platform_dir,
                "--root-ca": setup.root_ca,
                "--pccs-url": setup.pccs_url,
                "--peer-fd": end.fileno(),
                "--name": name,
                "--timeout": timeout,
            }
            command = [sys.executable, "-m", REMOTE_ATTESTATION_MODULE, *_flags(options)]
            command += ["--json", *(extra_args or {}).get(name, ())]
            stdout = files.enter_context((work_dir / f"{name}.jsonl").open("w+b"))
            stderr = files.enter_context((work_dir / f"{name}.log").open("w+b"))
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                pass_fds=(end.fileno(),),
            )
            processes[name] = (process, stdout, stderr)
            end.close()  # the child has its copy; EOF reaches the peer when the child exits
        deadline = time.monotonic() + timeout + 5.0
        outcomes: dict[str, PartyOutcome] = {}
        for name, (process, out_file, err_file) in processes.items():
            try:
                code: int | None = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                code = None
            out_file.seek(0)
            err_file.seek(0)
            outcomes[name] = _parse_party(
                name,
                code,
                out_file.read().decode(errors="replace"),
                err_file.read().decode(errors="replace"),
            )
        return outcomes
    finally:
        for end in ends.values():
            end.close()
        for process, _, _ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        files.close()


# ---- the demo ----------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    name: str
    title: str
    ok: bool
    seconds: float
    lines: list[str]
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "account": self.lines,
            **self.data,
        }


@dataclass
class DemoReport:
    ok: bool
    seconds: float
    steps: list[StepOutcome]
    outcomes: dict[str, Any]
    failed_step: str | None = None
    error: str | None = None
    work_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "failed_step": self.failed_step,
            "error": self.error,
            "outcomes": self.outcomes,
            "steps": [step.to_dict() for step in self.steps],
            "work_dir": self.work_dir,
        }


StepBody = Callable[[], tuple[list[str], dict[str, Any]]]


def _pair_lines(outcomes: Mapping[str, PartyOutcome]) -> list[str]:
    lines = []
    for name, outcome in outcomes.items():
        quote = outcome.event("quote")
        verdict = f"verified its peer: {outcome.peer_status or '—'}"
        if outcome.ok:
            verdict += f"; received {outcome.result.get('received', '')!r}"
        else:
            verdict += f"; FAILED at {outcome.result.get('failed_step', '?')}"
        lines.append(
            f"{name}: MRENCLAVE {str(outcome.event('platform').get('mr_enclave', '?'))[:16]}…, "
            f"quoted {quote.get('via', '?')} by QE3 ISVSVN {quote.get('qe_svn', '?')}; " + verdict
        )
    return lines


def _expect_pair(
    outcomes: Mapping[str, PartyOutcome], *, status: str, qe_svn: int, mode: str
) -> None:
    """Both sides completed, quoted by ``qe_svn`` in ``mode``, and saw ``status``."""
    for name, outcome in outcomes.items():
        if not outcome.ok:
            detail = outcome.result.get("diagnostics") or outcome.stderr[-_LOG_TAIL:]
            raise DemoError(
                f"{name} did not complete the exchange (exit {outcome.exit_code}): {detail}"
            )
        if outcome.peer_status != status:
            raise DemoError(f"{name} verified its peer as {outcome.peer_status}, expected {status}")
        quote = outcome.event("quote")
        if quote.get("qe_svn") != qe_svn or quote.get("mode") != mode:
            raise DemoError(
                f"{name} quoted {quote.get('mode')} with QE3 ISVSVN {quote.get('qe_svn')}, "
                f"expected {mode} with {qe_svn}"
            )
    alice, bob = outcomes["alice"], outcomes["bob"]
    if alice.result.get("key_fingerprint") != bob.result.get("key_fingerprint"):
        raise DemoError("alice and bob derived different session keys")


def _expect_refusal(outcomes: Mapping[str, PartyOutcome], *, status: str) -> str:
    """Both sides stopped (non-zero) because the other's quote verified as ``status``."""
    reason = ""
    for name, outcome in outcomes.items():
        if outcome.exit_code in (0, None):
            raise DemoError(f"{name} exited {outcome.exit_code}; it should have refused its peer")
        if outcome.peer_status != status:
            detail = outcome.result.get("diagnostics") or outcome.stderr[-_LOG_TAIL:]
            raise DemoError(
                f"{name} stopped, but not because its peer verified {status} "
                f"(peer status {outcome.peer_status}): {detail}"
            )
        reason = reason or str(outcome.result.get("reason", ""))
    return reason


class Demo:
    """The demo's state: the work directory, the processes, and the account so far."""

    def __init__(self, work_dir: Path, on_step: Callable[[StepOutcome], None] | None) -> None:
        self.work_dir = work_dir
        self.on_step = on_step
        self.steps: list[StepOutcome] = []
        self.outcomes: dict[str, Any] = {}
        self.sim_dir = work_dir / "sim"
        self.platform_dir = self.sim_dir / "platform"
        self.app_platform_dir = work_dir / "app-view" / "platform"
        self.logs = work_dir / "logs"
        self.daemon: ManagedProcess | None = None
        self._services = contextlib.ExitStack()
        self._port_hold: socket.socket | None = None
        self.pccs_url = ""
        self.spec: DaemonSpec | None = None
        self.setup: SampleSetup | None = None

    # -- running steps --------------------------------------------------------------------------

    def step(self, name: str, title: str, body: StepBody) -> None:
        started = time.monotonic()
        try:
            lines, data = body()
        except Exception as exc:
            message = exc.diagnostics(guide) if isinstance(exc, SgxQuoteHelperError) else repr(exc)
            outcome = StepOutcome(
                name, title, False, time.monotonic() - started, [f"FAILED: {message}"], {}
            )
            self._record(outcome)
            raise _StepFailed(name, message) from exc
        self._record(StepOutcome(name, title, True, time.monotonic() - started, lines, data))

    def _record(self, outcome: StepOutcome) -> None:
        self.steps.append(outcome)
        if self.on_step is not None:
            self.on_step(outcome)

    def stop_all(self) -> None:
        if self.daemon is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.daemon.stop()
        self._services.close()  # the PCCS thread (or the port held for it)

    # -- the steps ------------------------------------------------------------------------------

    def simulation(self) -> tuple[list[str], dict[str, Any]]:
        self.logs.mkdir(parents=True, exist_ok=True)
        self._port_hold = self._services.enter_context(reserve_port())
        self.pccs_url = f"http://127.0.0.1:{self._port_hold.getsockname()[1]}"
        args = ["sim", "init", str(self.sim_dir), "--pccs-url", self.pccs_url]
        created = json.loads(run_command([*args, "--json"]))
        root_ca = Path(created["root_ca"])
        manifests = write_manifests(self.work_dir / "apps")
        self.setup = SampleSetup(manifests=manifests, root_ca=root_ca, pccs_url=self.pccs_url)

        # What an application container gets: the enclave device, not the provisioning one.
        self.app_platform_dir.mkdir(parents=True)
        for file_name in (_PLATFORM_DESCRIPTION, ENCLAVE_SECRET_FILE):
            shutil.copy2(self.platform_dir / file_name, self.app_platform_dir / file_name)
        platform = created.get("platform", {})
        lines = [
            f"$ sgx-quote-helper {' '.join(args)}",
            f"simulated platform FMSPC {platform.get('fmspc', '?')}; trust anchor {root_ca}",
            f"applications see {self.app_platform_dir}: {_PLATFORM_DESCRIPTION} and "
            f"{ENCLAVE_SECRET_FILE} only (no {PROVISIONING_SECRET_FILE})",
        ]
        data = {
            "sim_dir": str(self.sim_dir),
            "root_ca": str(root_ca),
            "pccs_url": self.pccs_url,
            "app_platform_dir": str(self.app_platform_dir),
        }
        return lines, data

    def services(self) -> tuple[list[str], dict[str, Any]]:
        self.spec = DaemonSpec(
            platform_dir=self.platform_dir,
            socket=self.work_dir / "run" / "aesm.socket",
            admin_socket=self.work_dir / "run" / "admin.socket",
            state_dir=self.work_dir / "daemon-state",
            pccs_url=self.pccs_url,
        )
        # The daemon starts (a new interpreter) while the PCCS comes up here.
        self.daemon = start_daemon(self.spec, QE_SVN, self.logs / "daemon.log")
        port = int(self.pccs_url.rsplit(":", 1)[1])
        if self._port_hold is not None:
            self._port_hold.close()
        pccs = self._services.enter_context(serve_in_thread(self.sim_dir, port=port))
        wait_daemon_ready(self.daemon, self.spec)
        lines = [
            f"PCCS for the simulated manufacturer on {pccs.url} (in this process, as "
            f"`sgx-quote-helper pccs --sim {self.sim_dir} --listen 127.0.0.1:{port}` would)",
            f"$ {shown(self.daemon.command)}   (pid {self.daemon.pid}, ready)",
            f"the daemon hosts QE3 ISVSVN {QE_SVN} and the PCE, with the provisioning secret",
        ]
        data = {
            "pccs_url": pccs.url,
            "daemon_pid": self.daemon.pid,
            "socket": str(self.spec.socket),
            "daemon_qe_svn": QE_SVN,
        }
        return lines, data

    def _attest_out_of_process(
        self, label: str, qe_svn: int, outcome_key: str
    ) -> tuple[list[str], dict[str, Any]]:
        assert self.setup is not None
        assert self.spec is not None
        before = daemon_metrics(self.spec).get("quotes_served", 0.0)
        outcomes = run_pair(
            self.setup,
            platform_dir=self.app_platform_dir,
            aesm_socket=self.spec.socket,
            work_dir=self.work_dir / label,
        )
        _expect_pair(outcomes, status="UpToDate", qe_svn=qe_svn, mode="out-of-process")
        for name, outcome in outcomes.items():
            if outcome.event("platform").get("provisioning_secret") != "absent":
                raise DemoError(f"{name} could see the provisioning secret; it should not")
        served = daemon_metrics(self.spec).get("quotes_served", 0.0) - before
        self.outcomes[outcome_key] = "UpToDate"
        alice = outcomes["alice"]
        lines = [
            f"$ SGX_AESM_ADDR=unix:{self.spec.socket} python -m {REMOTE_ATTESTATION_MODULE} "
            "--manifest alice.toml --peer-manifest bob.toml ...   (and bob, likewise)",
            *_pair_lines(outcomes),
            f"session key agreed (fingerprint {alice.result.get('key_fingerprint')}); "
            "one AES-256-GCM message each way",
            "provisioning secret in the applications: "
            f"{alice.event('platform').get('provisioning_secret')} (only the daemon holds it)",
            f"EPC: 2 applications, 1 QE3+PCE pair (in the daemon, pid "
            f"{self.daemon.pid if self.daemon else '?'}), {served:.0f} quotes served",
        ]
        data = {
            "parties": {name: outcome.summary() for name, outcome in outcomes.items()},
            "qe_instances": 1,
            "daemon_quotes_served": int(served),
        }
        return lines, data

    def attest_out_of_process(self) -> tuple[list[str], dict[str, Any]]:
        return self._attest_out_of_process(
            "run-1-out-of-process", QE_SVN, "out_of_process_before_recovery"
        )

    def tcb_recovery(self) -> tuple[list[str], dict[str, Any]]:
        args = ["sim", "tcb-recovery", str(self.sim_dir), "--qe-svn", str(QE_SVN + 1)]
        args += ["--advisory", DEMO_ADVISORY]
        run_command(args)
        lines = [
            f"$ sgx-quote-helper {' '.join(args)}",
            f"the manufacturer now publishes QE3 ISVSVN {QE_SVN + 1} as UpToDate and "
            f"{QE_SVN} as OutOfDate ({DEMO_ADVISORY}); the running PCCS serves it at once",
        ]
        return lines, {"qe_svn_up_to_date": QE_SVN + 1, "advisory": DEMO_ADVISORY}

    def in_process_old_qe(self) -> tuple[list[str], dict[str, Any]]:
        assert self.setup is not None
        assert self.spec is not None
        state = self.work_dir / "in-process-state"
        in_process = run_pair(
            self.setup,
            platform_dir=self.platform_dir,  # in process needs the provisioning secret
            aesm_socket=None,
            work_dir=self.work_dir / "run-2-in-process",
            extra_args={
                name: ["--qe-svn", str(QE_SVN), "--state-dir", str(state / name)]
                for name in ("alice", "bob")
            },
        )
        reason = _expect_refusal(in_process, status="OutOfDate")
        for name, outcome in in_process.items():
            if outcome.event("quote").get("mode") != "in-process":
                raise DemoError(f"{name} did not quote in process")
        self.outcomes["in_process_old_qe_after_recovery"] = "OutOfDate"

        hosted = daemon_metrics(self.spec).get("qe_svn")
        lines = [
            "the same sample in process (SGX_AESM_ADDR unset), each application bundling "
            f"QE3 ISVSVN {QE_SVN} and reading the provisioning secret itself (2 QE3+PCE pairs):",
            *_pair_lines(in_process),
            f"reason: {reason}",
            f"the daemon still hosts QE3 ISVSVN {hosted if hosted is None else int(hosted)} "
            "(its /metrics): one update there fixes every application on the node",
        ]
        data = {
            "in_process": {name: o.summary() for name, o in in_process.items()},
            "qe_instances_in_process": 2,
            "daemon_qe_svn": None if hosted is None else int(hosted),
        }
        return lines, data

    def daemon_update(self) -> tuple[list[str], dict[str, Any]]:
        assert self.spec is not None
        assert self.daemon is not None
        old_pid = self.daemon.pid
        code = self.daemon.stop()
        self.daemon = start_daemon(self.spec, QE_SVN + 1, self.logs / "daemon-updated.log")
        wait_daemon_ready(self.daemon, self.spec)
        hosted = daemon_metrics(self.spec).get("qe_svn")
        if hosted is not None and int(hosted) != QE_SVN + 1:
            raise DemoError(f"the updated daemon reports QE3 ISVSVN {hosted:.0f}")
        lines = [
            f"daemon pid {old_pid} stopped (SIGTERM, exit {code}); one node-level update:",
            f"$ {shown(self.daemon.command)}   (pid {self.daemon.pid}, ready)",
        ]
        return lines, {
            "old_pid": old_pid,
            "daemon_pid": self.daemon.pid,
            "daemon_qe_svn": QE_SVN + 1,
        }

    def attest_after_update(self) -> tuple[list[str], dict[str, Any]]:
        lines, data = self._attest_out_of_process(
            "run-4-after-update", QE_SVN + 1, "out_of_process_after_daemon_update"
        )
        lines.insert(1, "the same applications, same manifests and code, nothing rebuilt:")
        return lines, data


class _StepFailed(DemoError):
    """Stops the run after a failed step (already recorded with its diagnostics)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


#: (name, title, method) in the order they run.
STEPS: tuple[tuple[str, str, str], ...] = (
    ("simulation", "a simulated manufacturer and platform", "simulation"),
    ("services", "the PCCS and the quote helper daemon", "services"),
    (
        "attest_out_of_process",
        "remote attestation, two applications out of process through the daemon",
        "attest_out_of_process",
    ),
    ("tcb_recovery", f"a TCB recovery: QE3 ISVSVN {QE_SVN + 1} required", "tcb_recovery"),
    (
        "in_process_old_qe",
        f"stale components: in-process applications bundling QE3 ISVSVN {QE_SVN}",
        "in_process_old_qe",
    ),
    ("daemon_update", f"update the daemon to QE3 ISVSVN {QE_SVN + 1}", "daemon_update"),
    (
        "attest_after_update",
        "the unchanged out-of-process applications attest again",
        "attest_after_update",
    ),
)


@contextlib.contextmanager
def _work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sgx-quote-helper-demo-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def run_demo(
    *, on_step: Callable[[StepOutcome], None] | None = None, keep: bool = False
) -> DemoReport:
    """Run every step; stops everything it started, whatever happens."""
    started = time.monotonic()
    failed_step: str | None = None
    error: str | None = None
    with _work_directory(keep) as work_dir:
        demo = Demo(work_dir, on_step)
        try:
            for name, title, method in STEPS:
                demo.step(name, title, getattr(demo, method))
        except _StepFailed as exc:
            failed_step, error = exc.step, exc.message
        finally:
            demo.stop_all()
    return DemoReport(
        ok=failed_step is None,
        seconds=time.monotonic() - started,
        steps=demo.steps,
        outcomes=demo.outcomes,
        failed_step=failed_step,
        error=error,
        work_dir=str(work_dir) if keep else None,
    )
