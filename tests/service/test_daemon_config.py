"""Configuration: flags > SGX_QUOTE_HELPER_* environment > TOML --config file > defaults."""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_support import wait_for

from sgx_quote_helper._cli import main
from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.backends import BACKEND_NAMES, BACKENDS
from sgx_quote_helper.service import OPTIONS, ConfigError, Option, ServiceConfig, load_config
from sgx_quote_helper.service._config import MAX_CONFIG_FILE_SIZE

ROOT = Path(__file__).resolve().parents[2]


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
        ("env", "BACKEND", "sgx", "one of sim"),
        ("env", "DRAIN_TIMEOUT", "1e9", "at most 86400 seconds"),
        ("env", "READ_TIMEOUT", "inf", "finite"),
        ("env", "MAX_INFLIGHT", "5000", "at most 4096"),
        ("env", "ALLOW_UID", "4294967295", "at most 4294967294"),
        ("env", "QE_SVN", "-1", "at least 0"),
        ("env", "ALLOW_UID", "no-such-user-here", "no such user"),
        ("env", "SOCKET_GROUP", "no-such-group-here", "no such group"),
        ("env", "ADMIN_LISTEN", "9464", "HOST:PORT or unix:PATH"),
        ("env", "PCCS_URL", "pccs.example:8081", "http:// or https://"),
        ("env", "PCCS_URL", "http://[::1", "without its partner"),
        ("env", "PCCS_URL", "http://pccs:8081?x=1", "a query"),
        ("env", "PCCS_URL", "http://pccs:99999", "1..65535"),
        ("flag", "pccs_url", "http://127.0.0.1:\udcff", "1..65535"),
        ("flag", "admin_listen", "[::1", "pair of brackets"),
        ("flag", "admin_listen", "[nope]:9464", "not an IPv6 address"),
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
    with pytest.raises(ConfigError, match="the sim backend needs --platform"):
        load_config({}, environ={})


def test_only_registered_backends_are_offered() -> None:
    assert BACKEND_NAMES == ("sim", "dcap", "proxy")
    with pytest.raises(ConfigError, match=f"--backend .*must be one of {', '.join(BACKENDS)}"):
        load_config({"platform": "/p", "backend": "epid"}, environ={})
    option = next(option for option in OPTIONS if option.name == "backend")
    assert option.setting.metavar == "|".join(BACKEND_NAMES)


def test_each_backend_names_what_it_needs() -> None:
    with pytest.raises(ConfigError, match="the proxy backend needs --upstream PATH"):
        load_config({"backend": "proxy"}, environ={})
    config = load_config({"backend": "dcap"}, environ={})  # nothing required
    dcap = config.backend_options().dcap
    assert dcap is not None
    assert (dcap.library, str(dcap.enclave_device)) == ("libsgx_dcap_ql.so.1", "/dev/sgx_enclave")


def test_backend_settings_from_every_source(tmp_path: Path) -> None:
    file = write_toml(
        tmp_path / "d.toml",
        'backend = "dcap"\ndcap-queue-depth = 3\nsgx-enclave-device = "/dev/x"\n',
    )
    config = load_config(
        {"dcap_qe3_logic_library": ""},
        environ={"SGX_QUOTE_HELPER_DCAP_LIBRARY": "/opt/libsgx_dcap_ql.so.1"},
        config_file=file,
    )
    dcap = config.backend_options().dcap
    assert dcap is not None
    assert dcap.library == "/opt/libsgx_dcap_ql.so.1"
    assert dcap.qe3_logic_library == ""  # switched off, not the default
    assert dcap.queue_depth == 3
    assert str(dcap.enclave_device) == "/dev/x"
    with pytest.raises(ConfigError, match="--dcap-queue-depth"):
        load_config({"backend": "dcap", "dcap_queue_depth": "0"}, environ={})
    with pytest.raises(ConfigError, match="--upstream-timeout"):
        load_config({"backend": "proxy", "upstream": "/s", "upstream_timeout": "-1"}, environ={})


def test_cli_reports_a_bad_value_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SGX_QUOTE_HELPER_READ_TIMEOUT", "soon")
    assert main(["serve", "--platform", "/nonexistent"]) == 2  # a usage error (issue 11)
    err = capsys.readouterr().err
    assert err.startswith("sgx-quote-helper: error: invalid value for --read-timeout")
    assert "$SGX_QUOTE_HELPER_READ_TIMEOUT" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"socket = " + b"[" * 5000 + b"]" * 5000 + b"\n", "arrays or tables nested too deeply"),
        (b'socket = "\xff"\n', "'utf-8' codec can't decode byte 0xff"),
    ],
)
def test_nested_or_non_utf8_config_files_are_not_valid_toml(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    expected = re.escape(f"config file {path} is not valid TOML: {message}")
    with pytest.raises(ConfigError, match=expected):
        load_config({}, environ={}, config_file=path)


def test_config_file_is_read_only_up_to_its_cap(tmp_path: Path) -> None:
    # Read at most cap + 1 bytes: /dev/zero or a FIFO cannot exhaust memory.
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * MAX_CONFIG_FILE_SIZE + b"\n")
    for path in (big, Path("/dev/zero")):
        with pytest.raises(ConfigError, match=re.escape(f"{path} is larger than 1 MiB")) as caught:
            load_config({}, environ={}, config_file=path)
        assert "it should hold daemon settings (TOML)" in caught.value.diagnostics()
    # A comment line as long as the cap allows is still a valid (empty) config.
    big.write_bytes(b"#" * (MAX_CONFIG_FILE_SIZE - 1) + b"\n")
    assert load_config({}, environ={}, config_file=big, validate=False) == load_config(
        {}, environ={}, validate=False
    )


@pytest.mark.parametrize("version", [[], ["--version"]])
def test_serve_refuses_a_nested_config_with_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: list[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["serve", *version, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err
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


# One non-default value per setting, as a user would write it, and what it
# becomes. A new setting must be added here, so that its flag, environment
# variable and TOML key are all shown to work.
SAMPLES: dict[str, tuple[str, object]] = {
    "socket": ("/run/x/aesm.socket", Path("/run/x/aesm.socket")),
    "socket_mode": ("0660", 0o660),
    "socket_owner": ("65534", 65534),
    "socket_group": ("root", 0),
    "allow_uid": ("root", (0,)),
    "allow_gid": ("65534", (65534,)),
    "backend": ("DCAP", "dcap"),
    "workers": ("3", 3),
    "platform": ("/p2", Path("/p2")),
    "pccs_url": ("https://pccs:8081", "https://pccs:8081"),
    "pccs_insecure": ("true", True),
    "pccs_ca_file": ("/ca.pem", Path("/ca.pem")),
    "state_dir": ("/s", Path("/s")),
    "admin_listen": ("127.0.0.1:9", "127.0.0.1:9"),
    "log_format": ("json", "json"),
    "log_level": ("debug", "debug"),
    "drain_timeout": ("2.5", 2.5),
    "read_timeout": ("1", 1.0),
    "max_connections": ("7", 7),
    "max_connections_per_uid": ("5", 5),
    "max_inflight": ("3", 3),
    "qe_svn": ("4", 4),
    "pce_svn": ("5", 5),
    "upstream": ("/run/host-aesmd/aesm.socket", Path("/run/host-aesmd/aesm.socket")),
    "upstream_timeout": ("0.5", 0.5),
    "dcap_library": ("/opt/intel/libsgx_dcap_ql.so.1", "/opt/intel/libsgx_dcap_ql.so.1"),
    "dcap_qe3_logic_library": ("libsgx_qe3_logic.so", "libsgx_qe3_logic.so"),
    "dcap_quote_provider": ("libsgx_dcap_quoteprov.so.1", "libsgx_dcap_quoteprov.so.1"),
    "dcap_qe3_path": ("/q/libsgx_qe3.signed.so", Path("/q/libsgx_qe3.signed.so")),
    "dcap_pce_path": ("/q/libsgx_pce.signed.so", Path("/q/libsgx_pce.signed.so")),
    "dcap_qpl_path": ("/q/libdcap_quoteprov.so.1", Path("/q/libdcap_quoteprov.so.1")),
    "dcap_ide_path": ("/q/libsgx_id_enclave.signed.so", Path("/q/libsgx_id_enclave.signed.so")),
    "sgx_enclave_device": ("/dev/sgx/enclave", Path("/dev/sgx/enclave")),
    "sgx_provision_device": ("/dev/sgx/provision", Path("/dev/sgx/provision")),
    "dcap_queue_depth": ("8", 8),
    "dcap_queue_timeout": ("2", 2.0),
}


def test_every_setting_has_a_sample() -> None:
    assert set(SAMPLES) == {option.name for option in OPTIONS}


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_each_setting_is_read_from_its_flag_environment_and_toml_key(
    option: Option, tmp_path: Path
) -> None:
    text, expected = SAMPLES[option.name]
    assert getattr(ServiceConfig(), option.name) != expected
    base: dict[str, object] = {} if option.name == "platform" else {"platform": "/p"}
    flag_value: object = [text] if option.setting.repeatable else text
    by_flag = load_config(base | {option.name: flag_value}, environ={})
    by_env = load_config(base, environ={option.env: text})
    toml_value = f"[{text!r}]" if option.setting.repeatable else repr(text)
    file = write_toml(tmp_path / "s.toml", f"{option.toml_key} = {toml_value}\n")
    by_file = load_config(base, environ={}, config_file=file)
    for config in (by_flag, by_env, by_file):
        assert getattr(config, option.name) == expected


def test_defaults_read_back_as_their_shown_text() -> None:
    # The docs show each default as text; that text must mean the default.
    for option in OPTIONS:
        default = getattr(ServiceConfig(), option.name)
        if default not in (None, ()) and not option.setting.switch:
            assert option.setting.parse(option.setting.default_text.split(" ")[0]) == default


def test_serve_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for option in OPTIONS:
        assert option.flag in text
        assert option.env in text


def test_serve_help_lists_each_backends_options_under_its_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    sections: dict[str, str] = {}
    name = "options"
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            name = line[:-1]
        sections[name] = sections.get(name, "") + line + "\n"
    grouped = {option.flag: option.setting.group for option in OPTIONS}
    assert {group for group in grouped.values() if group} == set(BACKENDS)
    for flag, group in grouped.items():
        section = f"{group} backend" if group else "options"
        assert f"  {flag}" in sections[section], (flag, section)
    assert "--platform" in sections["sim backend"]
    assert "--upstream" in sections["proxy backend"]


def test_daemon_docs_table_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_daemon_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    table = (ROOT / "docs" / "daemon.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.env}`" in table
