"""The remote attestation sample: two application processes attesting through a real daemon.

One node for the module: a ``sim init`` directory, the PCCS on an ephemeral
loopback port (in a thread), and the quote helper daemon as a subprocess on a
temporary socket, always stopped. Each test runs the two sample processes
(``python -m sgx_quote_helper.samples.remote_attestation``), out of process.
Failures are provoked the way they happen: a relying party expecting another
identity, and a man in the middle altering the evidence in flight.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sgx_quote_helper import _demo
from sgx_quote_helper._cli import main
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.samples import (
    MANIFESTS,
    MAX_FRAME_SIZE,
    STEPS,
    ChannelError,
    FramedChannel,
    _crypto,
    encode_frame,
    sample_identity,
    write_manifests,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "remote_attestation"

# ---- the node: simulation, PCCS, daemon --------------------------------------------------------


@dataclass(frozen=True)
class Node:
    work: Path
    setup: _demo.SampleSetup
    platform_dir: Path
    app_platform_dir: Path
    socket: Path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("ra")
    sim_dir = work / "sim"
    with _demo.reserve_port() as hold:
        port = hold.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["sim", "init", str(sim_dir), "--pccs-url", url]) == 0
    # The applications' view of the platform: no provisioning secret.
    app_platform = work / "app-view"
    app_platform.mkdir()
    for name in ("platform.json", "enclave.secret"):
        (app_platform / name).write_bytes((sim_dir / "platform" / name).read_bytes())
    spec = _demo.DaemonSpec(
        platform_dir=sim_dir / "platform",
        socket=work / "run" / "aesm.socket",
        admin_socket=work / "run" / "admin.socket",
        state_dir=work / "daemon-state",
        pccs_url=url,
    )
    with serve_in_thread(sim_dir, port=port) as pccs:
        assert pccs.url == url
        daemon = _demo.start_daemon(spec, QE_SVN, work / "daemon.log")
        try:
            _demo.wait_daemon_ready(daemon, spec)
            setup = _demo.SampleSetup(
                manifests=write_manifests(work / "apps"),
                root_ca=sim_dir / "pcs" / "root-ca.der",
                pccs_url=url,
            )
            yield Node(work, setup, sim_dir / "platform", app_platform, spec.socket)
        finally:
            assert daemon.stop() == 0, (work / "daemon.log").read_text()


def run_pair(node: Node, label: str, **options: Any) -> dict[str, _demo.PartyOutcome]:
    return _demo.run_pair(
        node.setup,
        platform_dir=node.app_platform_dir,
        aesm_socket=node.socket,
        work_dir=node.work / label,
        timeout=20.0,
        **options,
    )


# ---- the exchange ------------------------------------------------------------------------------


def test_two_applications_attest_each_other_out_of_process(node: Node) -> None:
    outcomes = run_pair(node, "ok")
    alice, bob = outcomes["alice"], outcomes["bob"]
    for outcome in (alice, bob):
        assert outcome.ok, outcome.stderr
        assert [event["step"] for event in outcome.events] == list(STEPS)
        quote = outcome.event("quote")
        assert quote["mode"] == "out-of-process"
        assert str(node.socket) in quote["via"]
        assert quote["qe_svn"] == QE_SVN
        assert outcome.peer_status == "UpToDate"
        platform = outcome.event("platform")
        assert platform["provisioning_secret"] == "absent"
        assert platform["loaded_provisioning_secret"] is False
        assert outcome.event("verify_peer")["report_data_binding"] == "ok"
        assert outcome.event("verify_peer")["simulated"] is True

    identities = {name: sample_identity(f"{name}.toml") for name in ("alice", "bob")}
    assert alice.event("platform")["mr_enclave"] == identities["alice"].mr_enclave.hex()
    assert bob.event("platform")["mr_enclave"] == identities["bob"].mr_enclave.hex()
    assert alice.result["peer_mr_enclave"] == identities["bob"].mr_enclave.hex()
    assert bob.result["peer_mr_enclave"] == identities["alice"].mr_enclave.hex()
    # Each side's REPORTDATA binds the public key the other side received.
    assert (
        alice.event("key")["public_key_sha256"]
        == bob.event("receive_evidence")["public_key_sha256"]
    )
    assert alice.result["key_fingerprint"] == bob.result["key_fingerprint"]
    assert alice.result["received"] == bob.result["sent"]
    assert bob.result["received"] == alice.result["sent"]


def test_wrong_expected_identity_fails_on_both_sides(node: Node) -> None:
    bob_mrenclave = sample_identity("bob.toml").mr_enclave.hex()
    alice_mrenclave = sample_identity("alice.toml").mr_enclave.hex()
    # Bob expects to talk to another bob: alice's quote is genuine but not who he wants.
    outcomes = run_pair(
        node, "wrong-identity", extra_args={"bob": ["--expect-mrenclave", bob_mrenclave]}
    )
    alice, bob = outcomes["alice"], outcomes["bob"]

    assert bob.exit_code == 1
    assert bob.result["failed_step"] == "verify_peer"
    assert bob.result["error"] == "AppraisalError"
    assert f"mr_enclave: expected {bob_mrenclave}, got {alice_mrenclave}" in bob.result["reason"]
    assert bob.peer_status == "UpToDate"  # genuine and current, just not the expected enclave

    assert alice.exit_code == 1
    assert alice.result["failed_step"] == "peer_verdict"
    assert alice.result["error"] == "AppraisalError"
    assert "bob refused our evidence" in alice.result["reason"]
    assert f"mr_enclave: expected {bob_mrenclave}" in alice.result["reason"]
    assert alice.peer_status == "UpToDate"  # alice did accept bob
    assert "receive_message" not in [event["step"] for event in alice.events]


# ---- a man in the middle -----------------------------------------------------------------------

Tamper = Callable[[dict[str, Any]], dict[str, Any]]


def _relay(source: socket.socket, target: socket.socket, tamper: Tamper) -> None:
    incoming = FramedChannel(source, timeout=20.0)
    outgoing = FramedChannel(target, timeout=20.0)
    try:
        while True:
            outgoing.send(tamper(incoming.receive(step="relay")), step="relay")
    except ChannelError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _flip_report_byte(message: dict[str, Any]) -> dict[str, Any]:
    if message["type"] != "evidence":
        return message
    quote = bytearray(base64.b64decode(message["quote"]))
    quote[48 + 64] ^= 0x01  # the first byte of MRENCLAVE in the ISV enclave report
    return {**message, "quote": base64.b64encode(bytes(quote)).decode()}


def _substitute_public_key(message: dict[str, Any]) -> dict[str, Any]:
    if message["type"] != "evidence":
        return message
    mallory = _crypto.public_bytes(_crypto.generate_key())
    return {**message, "public_key": mallory.hex()}


@pytest.mark.parametrize(
    ("tamper", "error", "reason"),
    [
        (_flip_report_byte, "InvalidSignature", "signature is invalid"),
        (_substitute_public_key, "AppraisalError", "report_data: expected"),
    ],
    ids=["altered-quote", "substituted-public-key"],
)
def test_evidence_altered_in_flight_is_refused_on_both_sides(
    node: Node, tamper: Tamper, error: str, reason: str
) -> None:
    alice_end, alice_relay = socket.socketpair()
    bob_end, bob_relay = socket.socketpair()
    relays = [
        threading.Thread(target=_relay, args=(alice_relay, bob_relay, tamper), daemon=True),
        threading.Thread(target=_relay, args=(bob_relay, alice_relay, dict), daemon=True),
    ]
    for relay in relays:
        relay.start()
    try:
        outcomes = run_pair(node, f"mitm-{error}", ends={"alice": alice_end, "bob": bob_end})
    finally:
        for relay in relays:
            relay.join(timeout=10)
        alice_relay.close()
        bob_relay.close()
    alice, bob = outcomes["alice"], outcomes["bob"]

    assert bob.exit_code == 1
    assert bob.result["failed_step"] == "verify_peer"
    assert bob.result["error"] == error
    assert reason in bob.result["reason"]

    assert alice.exit_code == 1
    assert alice.result["failed_step"] == "peer_verdict"
    assert alice.result["error"] == error
    assert "bob refused our evidence" in alice.result["reason"]
    assert reason in alice.result["reason"]


# ---- the launchers in examples/, over loopback TCP ---------------------------------------------


def test_example_launchers_over_tcp(node: Node) -> None:
    env = _demo.child_environment(node.socket)
    common = ["--platform", str(node.app_platform_dir), "--root-ca", str(node.setup.root_ca)]
    common += ["--pccs-url", node.setup.pccs_url, "--timeout", "20", "--json"]
    alice = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "alice.py"), *common, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert alice.stdout is not None
        listening = json.loads(alice.stdout.readline())
        assert listening["step"] == "listening"
        connect = f"127.0.0.1:{listening['port']}"
        bob = subprocess.run(
            [sys.executable, str(EXAMPLES / "bob.py"), *common, "--connect", connect],
            capture_output=True,
            env=env,
            text=True,
            timeout=30,
            check=False,
        )
        alice_out, alice_err = alice.communicate(timeout=30)
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait()
    assert bob.returncode == 0, bob.stderr
    assert alice.returncode == 0, alice_err
    bob_result = json.loads(bob.stdout.splitlines()[-1])
    alice_result = json.loads(alice_out.splitlines()[-1])
    assert (alice_result["peer_name"], bob_result["peer_name"]) == (
        "ra-sample-bob",
        "ra-sample-alice",
    )
    assert alice_result["peer_status"] == bob_result["peer_status"] == "UpToDate"
    assert alice_result["received"] == bob_result["sent"]


def test_usage_errors_exit_2(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    from sgx_quote_helper.samples.remote_attestation import main as sample_main

    args = ["--manifest", str(node.setup.manifests["alice.toml"]), "--root-ca", "x"]
    args += ["--pccs-url", "http://127.0.0.1:1", "--platform", str(node.app_platform_dir)]
    assert sample_main([*args, "--connect", "127.0.0.1:1"]) == 2
    assert "--peer-manifest FILE, or --expect-mrenclave" in capsys.readouterr().err
    args += ["--peer-manifest", str(node.setup.manifests["bob.toml"])]
    assert sample_main([*args, "--connect", "nowhere"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    # Numbers out of range are usage errors, not tracebacks from the socket layer.
    for bad, message in (
        (["--timeout", "inf"], "--timeout: inf is out of range"),
        (["--timeout", "nan"], "--timeout: nan is out of range"),
        (["--timeout", "-1"], "--timeout: -1 is out of range"),
        (["--timeout", "soon"], "--timeout: 'soon' is not a number of seconds"),
        (["--qe-svn", "70000"], "--qe-svn: 70000 is out of range: an ISVSVN from 0 to 65535"),
        (["--peer-fd", "-3"], "--peer-fd: -3 is out of range"),
        # Checked before the peer is contacted, not when the peer's quote is verified.
        (["--pccs-url", "http://[::1"], "--pccs-url: PCCS URL 'http://[::1' is not a usable"),
        (["--pccs-url", "http://127.0.0.1:1?x=1"], "it has a query"),
    ):
        channel = [] if "--peer-fd" in bad else ["--connect", "127.0.0.1:1"]
        with pytest.raises(SystemExit) as exit_info:
            sample_main([*args, *channel, *bad])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


# ---- the pieces, without processes -------------------------------------------------------------


def test_example_manifests_are_the_bundled_ones() -> None:
    for name, text in MANIFESTS.items():
        assert (EXAMPLES / name).read_text(encoding="utf-8") == text
    alice, bob = sample_identity("alice.toml"), sample_identity("bob.toml")
    assert alice.mr_enclave != bob.mr_enclave
    assert alice.mr_signer == bob.mr_signer
    assert not alice.attributes.debug
    assert not bob.attributes.debug


def test_key_agreement_binds_and_agrees() -> None:
    a, b = _crypto.generate_key(), _crypto.generate_key()
    a_pub, b_pub = _crypto.public_bytes(a), _crypto.public_bytes(b)
    assert len(_crypto.report_data_for(a_pub)) == 64
    assert _crypto.report_data_for(a_pub) != _crypto.report_data_for(b_pub)
    key = _crypto.derive_session_key(a, a_pub, b_pub)
    assert key == _crypto.derive_session_key(b, b_pub, a_pub)
    nonce, sealed = _crypto.seal(key, b"hi", a_pub)
    assert _crypto.open_sealed(key, nonce, sealed, a_pub) == b"hi"
    with pytest.raises(_crypto.KeyAgreementError, match="does not decrypt"):
        _crypto.open_sealed(key, nonce, sealed, b_pub)  # reflected back to its sender
    with pytest.raises(_crypto.KeyAgreementError, match="not on P-256"):
        _crypto.load_public_key(b"\x04" + bytes(64))
    with pytest.raises(_crypto.KeyAgreementError, match="uncompressed"):
        _crypto.load_public_key(a_pub[:33])


def test_channel_frames_are_bounded() -> None:
    left, right = socket.socketpair()
    with left, right:
        sender, receiver = FramedChannel(left, timeout=2.0), FramedChannel(right, timeout=0.2)
        sender.send({"type": "evidence", "x": 1}, step="t")
        assert receiver.receive(step="t") == {"type": "evidence", "x": 1}
        left.sendall((MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
        with pytest.raises(ChannelError, match="at most"):
            receiver.receive(step="t")
        left.sendall(encode_frame({"no": "type"}))
        with pytest.raises(ChannelError, match="without a message type"):
            receiver.receive(step="t")
        with pytest.raises(ChannelError, match="no answer from the peer within"):
            receiver.receive(step="t")
        left.sendall(b"\x00\x00")
        left.shutdown(socket.SHUT_WR)
        with pytest.raises(ChannelError, match="closed the connection"):
            receiver.receive(step="t")
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame({"type": "x", "pad": "a" * MAX_FRAME_SIZE})


def test_sample_code_sits_above_client_and_verify() -> None:
    # Lower layers never import the samples (DESIGN.md section 2).
    package = Path(_demo.__file__).parent.parent  # sgx_quote_helper/ (_demo is a package)
    layers = ("sgx", "aesm", "platform", "pccs", "pcs", "verify", "backends", "client", "service")
    checked = 0
    for layer in layers:
        for path in (package / layer).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "sgx_quote_helper.samples" not in text, path
            assert "import samples" not in text, path
            checked += 1
    assert checked > len(layers)
