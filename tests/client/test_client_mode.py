"""Mode selection: DCAP's SGX_AESM_ADDR presence rule, our socket extension, one mode a process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_client_helpers import TestPlatform, make_platform

from sgx_quote_helper import client
from sgx_quote_helper.client import DEFAULT_SOCKET_PATH, Mode
from sgx_quote_helper.errors import UsageError

OUT, IN = Mode.OUT_OF_PROCESS, Mode.IN_PROCESS


@pytest.fixture(autouse=True)
def _fresh_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SGX_AESM_ADDR", raising=False)
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> TestPlatform:
    return make_platform(tmp_path_factory.mktemp("mode"))


def in_process(platform: TestPlatform, tmp_path: Path) -> client.InProcessQuoter:
    return client.in_process(
        platform.path, state_dir=tmp_path / "state", pck_source=platform.pck_source
    )


@pytest.mark.parametrize(
    ("value", "mode", "socket"),
    [
        (None, IN, None),  # absent: in process
        ("1", OUT, DEFAULT_SOCKET_PATH),  # present: out of process, value ignored
        ("", OUT, DEFAULT_SOCKET_PATH),  # present but empty: still out of process
        ("true", OUT, DEFAULT_SOCKET_PATH),
        ("/run/qh/aesm.socket", OUT, "/run/qh/aesm.socket"),  # absolute path: that socket
        ("unix:/run/qh/aesm.socket", OUT, "/run/qh/aesm.socket"),  # unix:PATH: that socket
        ("aesm.socket", OUT, DEFAULT_SOCKET_PATH),  # relative: the default path
        ("./run/aesm.socket", OUT, DEFAULT_SOCKET_PATH),
        ("unix:aesm.socket", OUT, DEFAULT_SOCKET_PATH),
        ("unix:", OUT, DEFAULT_SOCKET_PATH),
    ],
)
def test_choice_from_environ(value: str | None, mode: Mode, socket: str | None) -> None:
    environ = {} if value is None else {"SGX_AESM_ADDR": value}
    choice = client.choice_from_environ(environ)
    assert (choice.mode, choice.socket_path) == (mode, socket)
    assert choice.value == value


def test_relative_path_value_is_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", "sockets/aesm.socket")
    with caplog.at_level(logging.WARNING, logger="sgx_quote_helper.client"):
        quoter = client.quoter()
    assert isinstance(quoter, client.OutOfProcessQuoter)
    assert quoter.socket_path == DEFAULT_SOCKET_PATH
    assert "not an absolute path" in caplog.text


@pytest.mark.parametrize(
    ("value", "socket"),
    [
        ("", DEFAULT_SOCKET_PATH),
        ("1", DEFAULT_SOCKET_PATH),
        ("/tmp/qh/aesm.socket", "/tmp/qh/aesm.socket"),
        ("unix:/tmp/qh/aesm.socket", "/tmp/qh/aesm.socket"),
        ("relative.socket", DEFAULT_SOCKET_PATH),
    ],
)
def test_quoter_goes_out_of_process_when_the_variable_is_present(
    monkeypatch: pytest.MonkeyPatch, value: str, socket: str
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", value)
    quoter = client.quoter(platform_dir="/does/not/matter")
    assert isinstance(quoter, client.OutOfProcessQuoter)
    assert quoter.mode is OUT
    assert quoter.socket_path == socket
    assert client.current_mode() is OUT


def test_quoter_goes_in_process_when_the_variable_is_absent(
    platform: TestPlatform, tmp_path: Path
) -> None:
    quoter = client.quoter(
        platform_dir=platform.path, state_dir=tmp_path / "s", pck_source=platform.pck_source
    )
    assert isinstance(quoter, client.InProcessQuoter)
    assert client.current_mode() is IN


def test_in_process_without_a_platform_is_a_usage_error_and_fixes_nothing() -> None:
    with pytest.raises(UsageError, match="needs the simulated platform directory"):
        client.quoter()
    assert client.current_mode() is None
    assert isinstance(client.out_of_process(), client.OutOfProcessQuoter)


def test_the_variable_is_read_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", "unix:/first/aesm.socket")
    assert client.environment_choice().socket_path == "/first/aesm.socket"
    monkeypatch.delenv("SGX_AESM_ADDR")  # as with DCAP, too late: already read
    quoter = client.quoter()
    assert isinstance(quoter, client.OutOfProcessQuoter)
    assert quoter.socket_path == "/first/aesm.socket"
    monkeypatch.setenv("SGX_AESM_ADDR", "unix:/second/aesm.socket")
    assert client.out_of_process().socket_path == "/first/aesm.socket"
    assert client.AesmClient().socket_path == "/first/aesm.socket"


def test_first_use_reads_the_variable_even_for_explicit_entry_points(
    monkeypatch: pytest.MonkeyPatch, platform: TestPlatform, tmp_path: Path
) -> None:
    in_process(platform, tmp_path)  # first use, variable absent
    monkeypatch.setenv("SGX_AESM_ADDR", "1")
    assert client.environment_choice().mode is IN


def test_out_of_process_then_in_process_raises(platform: TestPlatform, tmp_path: Path) -> None:
    client.out_of_process("/tmp/x.socket")
    with pytest.raises(client.ModeConflictError) as info:
        in_process(platform, tmp_path)
    message = str(info.value)
    assert "in_process() asks for in-process quoting" in message
    assert "already quotes out-of-process (fixed by out_of_process())" in message
    assert "mutually exclusive" in message
    assert "0xE03E" in message
    assert client.current_mode() is OUT


def test_in_process_then_out_of_process_raises(platform: TestPlatform, tmp_path: Path) -> None:
    first = in_process(platform, tmp_path)
    assert in_process(platform, tmp_path) is first  # one in-process QE per process
    with pytest.raises(client.ModeConflictError, match="fixed by in_process"):
        client.out_of_process()
    with pytest.raises(client.ModeConflictError):
        client.AsyncOutOfProcessQuoter()
    assert client.current_mode() is IN


def test_environment_default_conflicts_with_an_explicit_choice(
    monkeypatch: pytest.MonkeyPatch, platform: TestPlatform, tmp_path: Path
) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", "1")
    in_process(platform, tmp_path)  # a program may choose for itself...
    with pytest.raises(client.ModeConflictError, match="quoter\\(\\) because SGX_AESM_ADDR"):
        client.quoter()  # ...but the environment's default is then the other mode


def test_a_failed_start_does_not_fix_the_mode(tmp_path: Path) -> None:
    with pytest.raises(client.NoDeviceError):
        client.in_process(tmp_path / "no-platform")
    assert client.current_mode() is None
    client.out_of_process()
    assert client.current_mode() is OUT


def test_async_entry_points_share_the_rule(
    monkeypatch: pytest.MonkeyPatch, platform: TestPlatform, tmp_path: Path
) -> None:
    quoter = client.async_in_process(
        platform.path, state_dir=tmp_path / "s", pck_source=platform.pck_source
    )
    assert quoter.mode is IN
    target = asyncio.run(quoter.get_target_info())
    assert target.mr_enclave != bytes(32)
    with pytest.raises(client.ModeConflictError):
        client.async_out_of_process()
    client._reset_mode_for_tests()
    monkeypatch.setenv("SGX_AESM_ADDR", "")
    assert isinstance(client.async_quoter(), client.AsyncOutOfProcessQuoter)
    with pytest.raises(client.ModeConflictError):
        client.in_process(platform.path, pck_source=platform.pck_source)


def test_reset_for_tests_forgets_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGX_AESM_ADDR", "unix:/a.socket")
    client.out_of_process()
    client._reset_mode_for_tests()
    monkeypatch.setenv("SGX_AESM_ADDR", "unix:/b.socket")
    assert client.current_mode() is None
    assert client.out_of_process().socket_path == "/b.socket"
