"""The AESM socket: directory, stale and live sockets, mode and owner, peer credentials.

Tests run as root, and root ignores file permissions, so every permission
boundary is exercised from another uid: the test process forks, the child
drops to ``nobody`` (uid and gid 65534) and connects (a subprocess would not
do: ``nobody`` cannot execute the virtualenv's interpreter under /root).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from daemon_support import (
    GET_SUPPORTED_NUM,
    MakeConfig,
    MakeReport,
    frame,
    get_quote_ex,
    init_quote_ex,
    intel_client,
    read_reply,
    response_fields,
    run_daemon,
)

from sgx_quote_helper._cli import main
from sgx_quote_helper.service import StartupError, build_server, load_config

NOBODY = 65534
COUNT_REPLY = bytes.fromhex("07000000 aa0104 0800 1001")

# Exit codes of the unprivileged child.
SERVED, CLOSED_WITHOUT_REPLY, PERMISSION_DENIED, OTHER_ERROR = 0, 10, 11, 12


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("the permission tests need root to drop to uid 65534 (CI runs as root)")


def as_nobody(action: Callable[[], int]) -> int:
    """Run ``action`` in a forked child with uid and gid 65534; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = OTHER_ERROR
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = action()
        except BaseException:
            code = OTHER_ERROR
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def ask_count(path: Path) -> Callable[[], int]:
    """The child's action: one GetSupportedAttKeyIDNum request."""

    def action() -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            try:
                sock.connect(str(path))
            except PermissionError:
                return PERMISSION_DENIED
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(frame(GET_SUPPORTED_NUM))  # refused peers may be closed already
            reply = read_reply(sock)
        if reply is None:
            return CLOSED_WITHOUT_REPLY
        return SERVED if reply == COUNT_REPLY else OTHER_ERROR

    return action


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_creates_the_socket_directory_0755_and_the_socket_0777(
    make_config: MakeConfig, run_dir: Path
) -> None:
    path = run_dir / "var" / "run" / "aesmd" / "aesm.socket"
    with umask(0o077), run_daemon(make_config(socket=str(path))) as daemon:
        for directory in (run_dir / "var", run_dir / "var" / "run", path.parent):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o777  # like aesmd
        assert as_nobody(ask_count(path)) == SERVED
        assert daemon.metric("sgx_quote_helper_connections_total", uid=str(NOBODY)) == 1
    assert not path.exists(), "the socket is removed on shutdown"


def test_replaces_a_stale_socket(
    make_config: MakeConfig, run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = run_dir / "aesm.socket"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # a daemon that died without unlinking
    crashed.close()
    assert path.is_socket()
    with (
        caplog.at_level(logging.WARNING, logger="sgx_quote_helper"),
        run_daemon(make_config()) as daemon,
    ):
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
    assert "socket.stale_replaced" in caplog.messages


def test_refuses_to_start_beside_a_live_daemon(make_config: MakeConfig, sim: Path) -> None:
    config = make_config()
    with run_daemon(config) as first:
        # Its own state directory, the first one's socket: the socket's lock
        # refuses it before it probes or unlinks anything.
        second = build_server(make_config(admin_listen="", state_dir=str(sim / "state-2")))
        with (
            pytest.raises(
                StartupError, match=r"another quote helper \(pid \d+\) is using the socket"
            ),
            run_daemon(config, server=second),
        ):
            pass  # pragma: no cover
        # The first daemon is untouched and keeps its socket.
        assert first.socket.is_socket()
        assert intel_client(first.socket, GET_SUPPORTED_NUM) == COUNT_REPLY


def test_refuses_to_start_on_a_state_directory_in_use(
    make_config: MakeConfig, run_dir: Path, sim: Path, make_report: MakeReport
) -> None:
    with run_daemon(make_config()) as first:
        sealed = {
            path.name: path.read_bytes() for path in (sim / "state").iterdir() if path.is_file()
        }
        # Its own socket, the first one's state directory (attestation key).
        with pytest.raises(StartupError, match=r"is using the state directory .*--state-dir"):
            build_server(make_config(socket=str(run_dir / "other.socket")))
        assert not (run_dir / "other.socket").exists()
        assert {
            path.name: path.read_bytes() for path in (sim / "state").iterdir() if path.is_file()
        } == sealed
        init = response_fields(intel_client(first.socket, init_quote_ex(True, 32)) or b"", 15)
        assert isinstance(init[2], bytes)
        reply = intel_client(first.socket, get_quote_ex(make_report(init[2], bytes(64)), 8192))
        assert response_fields(reply or b"", 17)[1] == 0


def test_refuses_a_socket_another_aesm_serves(make_config: MakeConfig, run_dir: Path) -> None:
    """A live listener that holds no lock of ours (aesmd itself) is never replaced."""
    path = run_dir / "aesm.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as aesmd:
        aesmd.bind(str(path))
        aesmd.listen()
        with pytest.raises(StartupError, match="already serving"), run_daemon(make_config()):
            pass  # pragma: no cover
        assert path.is_socket()


def test_refuses_to_replace_a_file_that_is_not_a_socket(
    make_config: MakeConfig, run_dir: Path
) -> None:
    path = run_dir / "aesm.socket"
    path.write_text("precious")
    with pytest.raises(StartupError, match="not a socket"), run_daemon(make_config()):
        pass  # pragma: no cover
    assert path.read_text() == "precious"


def test_socket_mode_and_owner_are_applied_and_enforced(
    make_config: MakeConfig, run_dir: Path
) -> None:
    path = run_dir / "aesm.socket"
    config = make_config(socket_mode="0660", socket_owner="0", socket_group=str(NOBODY))
    with run_daemon(config):
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert (info.st_uid, info.st_gid) == (0, NOBODY)
        assert as_nobody(ask_count(path)) == SERVED  # through the group bits
    with run_daemon(make_config(socket_mode="0600")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert as_nobody(ask_count(path)) == PERMISSION_DENIED
        assert intel_client(path, GET_SUPPORTED_NUM) == COUNT_REPLY  # root still is


def test_uid_allow_list_refuses_other_peers_without_reply(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(allow_uid=["0"])
    with caplog.at_level(logging.WARNING, logger="sgx_quote_helper"), run_daemon(config) as daemon:
        assert as_nobody(ask_count(daemon.socket)) == CLOSED_WITHOUT_REPLY
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY
        metrics = daemon.metrics()
    rejected = [r for r in caplog.records if r.getMessage() == "peer.rejected"]
    assert len(rejected) == 1
    fields = rejected[0].__dict__["fields"]
    assert (fields["uid"], fields["gid"], fields["reason"]) == (NOBODY, NOBODY, "not_allowed")
    assert fields["pid"] > 0
    assert 'sgx_quote_helper_rejected_peers_total{reason="not_allowed"} 1.0' in metrics
    assert 'sgx_quote_helper_connections_total{uid="0"}' in metrics
    assert f'uid="{NOBODY}"' not in metrics.split("rejected_peers")[0]


def test_gid_allow_list_admits_members_of_the_group(make_config: MakeConfig) -> None:
    with run_daemon(make_config(allow_uid=["0"], allow_gid=[str(NOBODY)])) as daemon:
        assert as_nobody(ask_count(daemon.socket)) == SERVED
        assert daemon.metric("sgx_quote_helper_rejected_peers_total", reason="not_allowed") == 0
    with run_daemon(make_config(allow_gid=["0"])) as daemon:
        assert as_nobody(ask_count(daemon.socket)) == CLOSED_WITHOUT_REPLY
        assert intel_client(daemon.socket, GET_SUPPORTED_NUM) == COUNT_REPLY  # gid 0
        assert daemon.metric("sgx_quote_helper_rejected_peers_total", reason="not_allowed") == 1


def test_shutdown_leaves_a_successors_socket_alone(make_config: MakeConfig, run_dir: Path) -> None:
    path = run_dir / "aesm.socket"
    with run_daemon(make_config()):
        # A successor replaced the socket file meanwhile (e.g. after a manual
        # cleanup); stopping the old daemon must not remove the new socket.
        path.unlink()
        successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        successor.bind(str(path))
    try:
        assert path.is_socket()
    finally:
        successor.close()


def test_serve_refuses_a_live_socket_with_one_clear_line(
    make_config: MakeConfig,
    sim: Path,
    keep_logging: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = make_config()
    with run_daemon(config):
        code = main(["serve", "--platform", str(sim / "platform"), "--socket", str(config.socket)])
        assert code == 1
        err = capsys.readouterr().err
        assert err.startswith("sgx-quote-helper: error: another quote helper (pid ")
        assert "is using the socket" in err
        assert "Traceback" not in err
        assert intel_client(config.socket, GET_SUPPORTED_NUM) == COUNT_REPLY


def test_unusable_platform_or_state_dir_fails_before_binding(
    make_config: MakeConfig, run_dir: Path
) -> None:
    """Startup names the directory at fault and leaves no socket behind."""
    with pytest.raises(StartupError, match=r"platform directory .* does not exist"):
        build_server(make_config(platform=str(run_dir / "no-such-platform")))
    blocker = run_dir / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StartupError, match=r"state directory .* is not usable"):
        build_server(make_config(state_dir=str(blocker / "state")))
    assert not (run_dir / "aesm.socket").exists()


def test_the_proxy_backend_needs_no_sim_inputs(run_dir: Path) -> None:
    config = load_config(
        {"backend": "proxy", "upstream": str(run_dir / "upstream.socket")}, environ={}
    )
    server = build_server(config)
    assert server.backend.info().name == "proxy"


def test_shutdown_answers_clients_already_in_the_backlog(make_config: MakeConfig) -> None:
    # A client that completed connect() before shutdown unlinked the socket
    # is accepted and answered before the listener closes.
    async def scenario() -> bytes | None:
        server = build_server(make_config())
        await server.startup()
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with client:
            client.connect(str(server.config.socket))
            client.sendall(frame(GET_SUPPORTED_NUM))  # queued, not yet accepted
            await server.shutdown()
            return read_reply(client)

    assert asyncio.run(scenario()) == COUNT_REPLY
