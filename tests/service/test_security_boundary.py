"""The security boundary of docs/security.md, shown from the attacker's side.

An application container runs as another uid (``nobody`` here, in a forked
child: root ignores file modes, so the test could not fail as root). It may
read what an SGX application needs (``enclave.secret``, the simulated
``/dev/sgx_enclave``) and talk to the socket, but never read the provisioning
secret, the manufacturer's master secret or the sealed attestation key.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeReport,
    config_for,
    frame,
    get_quote_ex,
    init_quote_ex,
    intel_client,
    read_reply,
    response_fields,
    run_daemon,
    short_dir,
)
from unprivileged import NOBODY, run_as_nobody

from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.platform import Platform
from sgx_quote_helper.platform._enclave import quoting_enclave_identity
from sgx_quote_helper.platform._qe import ATTESTATION_KEY_FILE
from sgx_quote_helper.platform._sealing import unseal


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("the permission tests need root to drop to uid 65534 (CI runs as root)")


@pytest.fixture
def node(sim: Path) -> Iterator[Path]:
    """The `sim init` DIR in a world-traversable place, as on a node (/var/lib/...).

    pytest's own temporary directories are 0700: there every read by ``nobody``
    would be refused by the parent directory, and the test would prove nothing
    about the files' own modes.
    """
    for path in short_dir():
        shutil.copytree(sim, path / "sim", symlinks=True)
        yield path / "sim"


def _try_read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"error {exc.errno}"
    return "read"


def test_an_application_uid_cannot_read_the_secrets_of_the_quote_helper(node: Path) -> None:
    state = node / "state"
    with run_daemon(config_for(node, node, state_dir=str(state))):
        pass  # start-up generated and sealed the attestation key
    sealed = state / ATTESTATION_KEY_FILE
    assert sealed.is_file()
    files = {
        "enclave": node / "platform" / "enclave.secret",
        "platform": node / "platform" / "platform.json",
        "provisioning": node / "platform" / "provision.secret",
        "sealed_key": sealed,
        "master": node / "pcs" / "master.secret",
        "root_ca_key": node / "pcs" / "root-ca.key",
    }
    result = run_as_nobody(lambda: {name: _try_read(str(p)) for name, p in files.items()})
    # What an SGX application needs stays readable (the positive control) ...
    assert result["enclave"] == "read"
    assert result["platform"] == "read"
    # ... the quote helper's and the manufacturer's secrets do not.
    assert result["provisioning"] == "denied"
    assert result["sealed_key"] == "denied"
    assert result["master"] == "denied"
    assert result["root_ca_key"] == "denied"


def test_in_simulation_enclave_secret_and_the_blob_unseal_the_attestation_key(
    node: Path,
) -> None:
    # docs/security.md, "What simulation does not protect": the simulated CPU's
    # seal key derives from enclave.secret, which every application reads. Whoever
    # also gets the sealed blob (here: root, or a mistaken file mode) unseals the
    # attestation key. Only the blob's file mode (the test above) stands between.
    state = node / "state"
    with run_daemon(config_for(node, node, state_dir=str(state))):
        pass
    blob = (state / ATTESTATION_KEY_FILE).read_bytes()
    application_view = Platform.load(node / "platform", need_provisioning=False)
    secret, _ = unseal(application_view.cpu(), quoting_enclave_identity(QE_SVN), blob)
    assert len(secret) == 32  # the P-256 scalar of the attestation key


def test_a_refused_peer_is_closed_before_any_request_byte_is_read(
    sim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for run_dir in short_dir():
        config = config_for(sim, run_dir, allow_uid=["0"])
        with (
            caplog.at_level(logging.WARNING, logger="sgx_quote_helper"),
            run_daemon(config) as daemon,
        ):

            def connect_and_wait() -> dict[str, object]:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(30)  # a safety net; the close comes first
                    sock.connect(str(daemon.socket))
                    # Not one byte sent: the refusal cannot depend on the request.
                    try:
                        data = sock.recv(1)
                    except ConnectionResetError:
                        data = b""
                    except TimeoutError:
                        return {"outcome": "still open"}
                return {"outcome": "closed" if data == b"" else "answered"}

            assert run_as_nobody(connect_and_wait)["outcome"] == "closed"
            refused = daemon.metric("sgx_quote_helper_rejected_peers_total", reason="not_allowed")
            # The allowed uid is still served on the same socket.
            assert intel_client(daemon.socket, GET_SUPPORTED_NUM) is not None
        assert refused == 1
        rejected = [r for r in caplog.records if r.getMessage() == "peer.rejected"]
        assert [r.__dict__["fields"]["uid"] for r in rejected] == [NOBODY]


def _attestation_key_scalar(sim: Path, state: Path) -> bytes:
    blob = (state / ATTESTATION_KEY_FILE).read_bytes()
    cpu = Platform.load(sim / "platform", need_provisioning=False).cpu()
    secret, _ = unseal(cpu, quoting_enclave_identity(QE_SVN), blob)
    return secret


def _spellings(secret: bytes) -> list[bytes]:
    return [
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret)[:24],
        base64.urlsafe_b64encode(secret)[:24],
    ]


def test_no_secret_in_debug_logs_metrics_or_error_answers(
    sim: Path, caplog: pytest.LogCaptureFixture, make_report: MakeReport
) -> None:
    # A full run at debug level: start-up (key generation and sealing), quotes,
    # a forged REPORT, a malformed frame, /metrics, /healthz, /readyz. None of the
    # provisioning secret, master secret or attestation key may show, in hex or
    # base64, in any log record, metric or answer.
    state = sim / "state"
    answers: list[bytes] = []
    with (
        caplog.at_level(logging.DEBUG, logger="sgx_quote_helper"),
        run_daemon(config_for(sim, sim, state_dir=str(state), log_level="debug")) as daemon,
    ):
        init = intel_client(daemon.socket, init_quote_ex(True, 32)) or b""
        answers.append(init)
        target = response_fields(init, 15)[2]
        assert isinstance(target, bytes)
        report = make_report(target, b"\x11" * 64)
        forged = bytes([report[0] ^ 1]) + report[1:]
        for body in (get_quote_ex(report, 8192), get_quote_ex(forged, 8192)):
            answers.append(intel_client(daemon.socket, body) or b"")
        assert response_fields(answers[1], 17)[1] == 0  # quoted
        assert response_fields(answers[2], 17)[1] == 47  # refused: the MAC is forged
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(daemon.socket))
            sock.sendall(frame(b"\xff" * 40))
            with contextlib.suppress(OSError):
                answers.append(read_reply(sock) or b"")
        for path in ("/metrics", "/healthz", "/readyz"):
            answers.append(httpx.get(f"{daemon.admin_url}{path}", timeout=10).content)
    output = "\n".join(
        f"{record.getMessage()} {record.__dict__.get('fields', '')} {record.exc_text or ''}"
        for record in caplog.records
    ).encode()
    output += b"\n".join(answers)
    assert b"quote.served" in output  # debug level: the run did log each quote
    secrets = [
        (sim / "platform" / "provision.secret").read_bytes(),
        (sim / "pcs" / "master.secret").read_bytes(),
        _attestation_key_scalar(sim, state),
    ]
    for secret in secrets:
        for spelled in _spellings(secret):
            assert spelled not in output


def test_the_state_directory_is_private_whatever_the_umask(sim: Path) -> None:
    # In simulation an application can seal with the QE's key (it reads
    # enclave.secret); a state directory it could write to would let it plant
    # an attestation key it knows. The daemon creates it 0700 even under umask 000.
    state = sim / "fresh-state"
    previous = os.umask(0)
    try:
        for run_dir in short_dir():
            with run_daemon(config_for(sim, run_dir, state_dir=str(state))):
                pass
    finally:
        os.umask(previous)
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "pck-cache").stat().st_mode & 0o777 == 0o700
    assert (state / ATTESTATION_KEY_FILE).stat().st_mode & 0o777 == 0o600
