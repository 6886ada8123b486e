"""The remote attestation sample as two processes, alice and bob, and what they reported.

Each side is ``python -m sgx_quote_helper.samples.remote_attestation --json``
with its own manifest (its own enclave identity), connected to the other by an
inherited socket. Each prints one JSON line per step and a final ``result``
line; :class:`PartyOutcome` is that account and the exit code.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sgx_quote_helper._demo._errors import DemoError
from sgx_quote_helper._demo._processes import LOG_TAIL, child_environment, flags
from sgx_quote_helper.samples import REMOTE_ATTESTATION_MODULE

PAIR_TIMEOUT = 25.0


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
            document["reason"] = self.result.get("reason") or self.stderr[-LOG_TAIL:]
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
    if ends is None:
        ends = dict(zip(_SIDES, socket.socketpair(), strict=True))
    parties: dict[str, _Party] = {}
    with contextlib.ExitStack() as files:
        try:
            for name in _SIDES:
                command = _party_command(setup, name, platform_dir, ends[name], timeout)
                command += (extra_args or {}).get(name, ())
                parties[name] = _start_party(files, command, work_dir / name, env, ends[name])
            deadline = time.monotonic() + timeout + 5.0
            return {name: party.outcome(name, deadline) for name, party in parties.items()}
        finally:
            for end in ends.values():
                end.close()
            for party in parties.values():
                party.kill()


#: Each side and the manifests it runs with: (its own, its peer's).
_SIDES = {"alice": ("alice.toml", "bob.toml"), "bob": ("bob.toml", "alice.toml")}


@dataclass
class _Party:
    """One running side: its process and the files that take its output."""

    process: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    def outcome(self, name: str, deadline: float) -> PartyOutcome:
        """Wait for it (until ``deadline`` at most) and read what it reported."""
        try:
            code: int | None = self.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        self.stdout.seek(0)
        self.stderr.seek(0)
        return _parse_party(
            name,
            code,
            self.stdout.read().decode(errors="replace"),
            self.stderr.read().decode(errors="replace"),
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _party_command(
    setup: SampleSetup, name: str, platform_dir: Path, end: socket.socket, timeout: float
) -> list[str]:
    own, peer = _SIDES[name]
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
    return [sys.executable, "-m", REMOTE_ATTESTATION_MODULE, *flags(options), "--json"]


def _start_party(
    files: contextlib.ExitStack,
    command: list[str],
    log_stem: Path,
    env: Mapping[str, str],
    end: socket.socket,
) -> _Party:
    """Start one side with its end of the connection; its output goes to ``log_stem``.*."""
    stdout = files.enter_context(log_stem.with_suffix(".jsonl").open("w+b"))
    stderr = files.enter_context(log_stem.with_suffix(".log").open("w+b"))
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        pass_fds=(end.fileno(),),
    )
    end.close()  # the child has its copy; EOF reaches the peer when the child exits
    return _Party(process, stdout, stderr)


def pair_lines(outcomes: Mapping[str, PartyOutcome]) -> list[str]:
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


def expect_pair(
    outcomes: Mapping[str, PartyOutcome], *, status: str, qe_svn: int, mode: str
) -> None:
    """Both sides completed, quoted by ``qe_svn`` in ``mode``, and saw ``status``."""
    for name, outcome in outcomes.items():
        if not outcome.ok:
            detail = outcome.result.get("diagnostics") or outcome.stderr[-LOG_TAIL:]
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


def expect_refusal(outcomes: Mapping[str, PartyOutcome], *, status: str) -> str:
    """Both sides stopped (non-zero) because the other's quote verified as ``status``."""
    reason = ""
    for name, outcome in outcomes.items():
        if outcome.exit_code in (0, None):
            raise DemoError(f"{name} exited {outcome.exit_code}; it should have refused its peer")
        if outcome.peer_status != status:
            detail = outcome.result.get("diagnostics") or outcome.stderr[-LOG_TAIL:]
            raise DemoError(
                f"{name} stopped, but not because its peer verified {status} "
                f"(peer status {outcome.peer_status}): {detail}"
            )
        reason = reason or str(outcome.result.get("reason", ""))
    return reason
