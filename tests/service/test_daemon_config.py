"""Configuration: flags > SGX_QUOTE_HELPER_* environment > TOML --config file > defaults."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_support import wait_for

from sgx_quote_helper._cli import main
from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.service import ConfigError, ServiceConfig, load_config


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_match_aesmd() -> None:
    config = load_config({"platform": "/p"}, environ={})
    assert config.socket == Path("/var/run/aesmd/aesm.socket")
    assert config.socket_mode == 0o777
    assert (config.socket_owner, config.socket_group) == (None, None)
    assert (config.allow_uid, config.allow_gid) == ((), ())
    assert (config.backend, config.log_format, config.log_level) == ("sim", "text", "info")
    assert (config.qe_svn, config.pce_svn) == (QE_SVN, PCE_SVN)
    assert config.admin_address() is None
    assert config.effective_state_dir() == Path("/p/state")


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    file = write_toml(
        tmp_path / "daemon.toml",
        """
        platform = "/from/file"
        socket = "/file/aesm.socket"
        socket-mode = "0600"
        log_format = "json"
        drain-timeout = 3.5
        qe-svn = 7
        allow-uid = [1, "2"]
        """,
    )
    environ = {
        "SGX_QUOTE_HELPER_SOCKET": "/env/aesm.socket",
        "SGX_QUOTE_HELPER_SOCKET_MODE": "0640",
        "SGX_QUOTE_HELPER_QE_SVN": "8",
        "SGX_QUOTE_HELPER_ALLOW_GID": "5, 6",
        "SGX_QUOTE_HELPER_UNRELATED": "ignored",
    }
    flags: dict[str, Any] = {"socket": "/flag/aesm.socket", "qe_svn": "9", "allow_uid": []}
    config = load_config(flags, environ=environ, config_file=file)
    assert config.socket == Path("/flag/aesm.socket")  # flag > env > file
    assert config.qe_svn == 9  # flag > env > file
    assert config.socket_mode == 0o640  # env > file
    assert config.allow_gid == (5, 6)  # env
    assert config.allow_uid == (1, 2)  # file (an empty repeatable flag is "not given")
    assert config.log_format == "json"  # file
    assert config.drain_timeout == 3.5  # file
    assert config.platform == Path("/from/file")  # file
    assert config.read_timeout == ServiceConfig.read_timeout  # default


def test_names_resolve_users_and_groups() -> None:
    config = load_config(
        {"platform": "/p", "allow_uid": ["root", "65534"], "socket_group": "root"}, environ={}
    )
    assert config.allow_uid == (0, 65534)
    assert config.socket_group == 0


def test_admin_listen_forms() -> None:
    def admin(text: str) -> object:
        return load_config({"platform": "/p", "admin_listen": text}, environ={}).admin_address()

    assert admin("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert admin("[::1]:0") == ("::1", 0)
    assert admin("unix:/run/sqh/admin.sock") == Path("/run/sqh/admin.sock")


@pytest.mark.parametrize(
    ("source", "name", "value", "message"),
    [
        ("env", "SOCKET_MODE", "rw-rw----", r"--socket-mode from \$SGX_QUOTE_HELPER_SOCKET_MODE"),
        ("env", "SOCKET_MODE", "1777", "not a permission mode"),
        ("env", "QE_SVN", "ten", "expected an integer"),
        ("env", "PCE_SVN", "70000", "16-bit"),
        ("env", "DRAIN_TIMEOUT", "-1", "positive"),
        ("env", "READ_TIMEOUT", "nan", "finite"),
        ("env", "MAX_CONNECTIONS", "0", "at least 1"),
        ("env", "LOG_FORMAT", "xml", "one of text, json"),
        ("env", "BACKEND", "sgx", "one of sim, dcap, proxy"),
        ("env", "ALLOW_UID", "no-such-user-here", "no such user"),
        ("env", "SOCKET_GROUP", "no-such-group-here", "no such group"),
        ("env", "ADMIN_LISTEN", "9464", "HOST:PORT or unix:PATH"),
        ("env", "PCCS_URL", "pccs.example:8081", "http:// or https://"),
        ("env", "PCCS_INSECURE", "maybe", "not a boolean"),
        ("flag", "socket", "", "socket path is empty"),
        ("flag", "admin_listen", "localhost:http", "HOST:PORT"),
    ],
)
def test_bad_values_name_the_setting_and_its_source(
    source: str, name: str, value: str, message: str
) -> None:
    environ = {f"SGX_QUOTE_HELPER_{name}": value} if source == "env" else {}
    flags = {"platform": "/p"} | ({name: value} if source == "flag" else {})
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(flags, environ=environ)
    text = str(caught.value)
    assert text.startswith("invalid value for --")
    assert ("$SGX_QUOTE_HELPER_" in text) == (source == "env")


def test_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'sokcet'"):
        load_config({}, environ={}, config_file=write_toml(tmp_path / "a.toml", 'sokcet = "x"'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config({}, environ={}, config_file=write_toml(tmp_path / "b.toml", "socket = "))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({}, environ={}, config_file=tmp_path / "missing.toml")
    bad = write_toml(tmp_path / "c.toml", 'platform = "/p"\nqe-svn = "x"')
    with pytest.raises(ConfigError, match=f"--qe-svn from {bad}"):
        load_config({}, environ={}, config_file=bad)


def test_settings_across_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs --platform"):
        load_config({}, environ={})
    with pytest.raises(ConfigError, match="needs --upstream"):
        load_config({"backend": "proxy"}, environ={})


def test_cli_reports_a_bad_value_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SGX_QUOTE_HELPER_READ_TIMEOUT", "soon")
    assert main(["serve", "--platform", "/nonexistent"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sgx-quote-helper: error: invalid value for --read-timeout")
    assert "$SGX_QUOTE_HELPER_READ_TIMEOUT" in err
    assert "Traceback" not in err


def test_serve_version_reports_the_svns_after_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_toml(tmp_path / "d.toml", "qe-svn = 20\npce-svn = 21\n")
    monkeypatch.setenv("SGX_QUOTE_HELPER_CONFIG", str(file))
    assert main(["serve", "--version"]) == 0
    assert capsys.readouterr().out == (
        f"sgx-quote-helper {__version__} (hosts QE3 ISVSVN 20, PCE ISVSVN 21)\n"
    )
    monkeypatch.setenv("SGX_QUOTE_HELPER_PCE_SVN", "31")
    assert main(["serve", "--version", "--qe-svn", "30"]) == 0
    assert "QE3 ISVSVN 30, PCE ISVSVN 31" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == (
        f"sgx-quote-helper {__version__} (hosts QE3 ISVSVN {QE_SVN}, PCE ISVSVN {PCE_SVN})"
    )


def test_serve_drops_an_inherited_sgx_aesm_addr(
    sim: Path, run_dir: Path, keep_environ: None, keep_logging: None
) -> None:
    # A webhook may inject SGX_AESM_ADDR into every container, the daemon's
    # included; with it set, Intel's quote library would call the daemon itself.
    os.environ["SGX_AESM_ADDR"] = "1"
    path = run_dir / "aesm.socket"

    def stop_when_serving() -> None:
        wait_for(path.is_socket, 30, "the daemon's socket")
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_serving)
    stopper.start()
    try:
        code = main(["serve", "--platform", str(sim / "platform"), "--socket", str(path)])
    finally:
        stopper.join()
    gc.unfreeze()  # the daemon froze this process's objects for its own sake
    assert code == 0
    assert "SGX_AESM_ADDR" not in os.environ
    assert not path.exists()
