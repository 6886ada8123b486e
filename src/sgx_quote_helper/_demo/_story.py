"""The demo's story: seven steps, each a method of :class:`Demo`, and their account.

Everything runs on the embedded default: a temporary directory, loopback ports
chosen by the kernel, real processes for the daemon and the applications. What
the ``sim`` commands do runs in this process, through the same ``pcs`` and
``platform`` functions (without paying for another interpreter start: the demo
has 30 s on a loaded 2-core machine). The steps:

 1. ``simulation``: ``sim init`` (a simulated manufacturer and platform), the two
    sample applications' manifests, and the applications' view of the platform:
    ``platform.json`` and ``enclave.secret`` only, as a container that mounts
    ``/dev/sgx_enclave`` but not ``/dev/sgx_provision`` (``application_view``).
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
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgx_quote_helper._demo._errors import DemoError
from sgx_quote_helper._demo._pair import (
    SampleSetup,
    expect_pair,
    expect_refusal,
    pair_lines,
    run_pair,
)
from sgx_quote_helper._demo._processes import (
    DaemonSpec,
    ManagedProcess,
    daemon_metrics,
    reserve_port,
    shown,
    start_daemon,
    wait_daemon_ready,
)
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.pcs import Manufacturer, create_simulation, serve_in_thread
from sgx_quote_helper.platform import (
    DESCRIPTION_FILE,
    ENCLAVE_SECRET_FILE,
    PROVISIONING_SECRET_FILE,
    application_view,
)
from sgx_quote_helper.samples import REMOTE_ATTESTATION_MODULE, write_manifests

#: The advisory the demo's TCB recovery publishes (simulated ids never look like Intel's).
DEMO_ADVISORY = "SIM-SA-00001"


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
        simulation = create_simulation(self.sim_dir, pccs_url=self.pccs_url)
        root_ca = simulation.manufacturer.root_ca_path
        manifests = write_manifests(self.work_dir / "apps")
        self.setup = SampleSetup(manifests=manifests, root_ca=root_ca, pccs_url=self.pccs_url)
        # What an application container gets: the enclave device, not the provisioning one.
        application_view(self.platform_dir, self.app_platform_dir)
        lines = [
            f"$ sgx-quote-helper sim init {self.sim_dir} --pccs-url {self.pccs_url}   "
            "(in this process, through the same functions)",
            f"simulated platform FMSPC {simulation.platform.fmspc.hex().upper()}; "
            f"trust anchor {root_ca}",
            f"applications see {self.app_platform_dir}: {DESCRIPTION_FILE} and "
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
        expect_pair(outcomes, status="UpToDate", qe_svn=qe_svn, mode="out-of-process")
        for name, outcome in outcomes.items():
            if outcome.event("platform").get("provisioning_secret") != "absent":
                raise DemoError(f"{name} could see the provisioning secret; it should not")
        served = daemon_metrics(self.spec).get("quotes_served", 0.0) - before
        self.outcomes[outcome_key] = "UpToDate"
        alice = outcomes["alice"]
        lines = [
            f"$ SGX_AESM_ADDR=unix:{self.spec.socket} python -m {REMOTE_ATTESTATION_MODULE} "
            "--manifest alice.toml --peer-manifest bob.toml ...   (and bob, likewise)",
            *pair_lines(outcomes),
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
        manufacturer = Manufacturer.load(self.sim_dir)
        manufacturer.tcb_recovery(qe_svn=QE_SVN + 1, advisory_ids=[DEMO_ADVISORY])
        lines = [
            f"$ sgx-quote-helper sim tcb-recovery {self.sim_dir} --qe-svn {QE_SVN + 1} "
            f"--advisory {DEMO_ADVISORY}   (in this process, through the same functions)",
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
        reason = expect_refusal(in_process, status="OutOfDate")
        for name, outcome in in_process.items():
            if outcome.event("quote").get("mode") != "in-process":
                raise DemoError(f"{name} did not quote in process")
        self.outcomes["in_process_old_qe_after_recovery"] = "OutOfDate"

        hosted = daemon_metrics(self.spec).get("qe_svn")
        lines = [
            "the same sample in process (SGX_AESM_ADDR unset), each application bundling "
            f"QE3 ISVSVN {QE_SVN} and reading the provisioning secret itself (2 QE3+PCE pairs):",
            *pair_lines(in_process),
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
