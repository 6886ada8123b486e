"""The doctor's pure parts: permission logic, mountinfo, build info, validity, the report.

The permission logic is tested for other identities than the caller's (the
suite runs as root, which passes every mode check); test_doctor.py runs the
same checks for real as ``nobody``.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BufferedIOBase
from pathlib import Path

import pytest
from doctor_harness import stale_socket, world_dir
from http_support import HostileHttpServer, head
from hypothesis import given
from hypothesis import strategies as st

from sgx_quote_helper._cli._doctor import render
from sgx_quote_helper.doctor import (
    CheckResult,
    CheckStatus,
    DoctorOptions,
    DoctorReport,
    Identity,
    StatusCode,
    ValidityItem,
    assess_validity,
    check_environment,
    check_socket,
    codes_of,
    fetch_build_info,
    may_access,
    parse_build_info,
    parse_mount_points,
    permission_class,
)
from sgx_quote_helper.doctor._daemon import MAX_METRICS_SIZE
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.sgx import AesmError, Quote3Error, SgxStatus

ROOT = Identity(0, 0)
NOBODY = Identity(65534, 65534)
USER = Identity(1000, 1000, frozenset({1000, 27}))


# ---- permissions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "owner", "group", "who", "expected"),
    [
        (0o700, 0, 0, ROOT, True),  # root ignores the bits
        (0o000, 0, 0, ROOT, True),
        (0o700, 0, 0, NOBODY, False),
        (0o777, 0, 0, NOBODY, True),
        (0o775, 0, 0, NOBODY, False),  # other is r-x: no write
        (0o770, 0, 27, USER, True),  # a supplementary group
        (0o770, 0, 1000, USER, True),  # the primary group
        (0o770, 0, 5, USER, False),
        (0o077, 1000, 1000, USER, False),  # the owner's bits win, even if others allow
        (0o200, 1000, 0, USER, True),
    ],
)
def test_write_permission_by_mode_bits(
    mode: int, owner: int, group: int, who: Identity, expected: bool
) -> None:
    assert may_access(stat.S_IFSOCK | mode, owner, group, who, 2) is expected


def test_permission_class_order() -> None:
    assert permission_class(1000, 27, USER) == "owner"
    assert permission_class(0, 27, USER) == "group"
    assert permission_class(0, 0, USER) == "other"


@pytest.fixture
def world_tmp() -> Iterator[Path]:
    """A temporary directory every uid may search (pytest's own is private to root)."""
    path = world_dir(Path(tempfile.mkdtemp(prefix="doctor-unit-")))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_mode_0700_socket_is_judged_for_another_uid(world_tmp: Path) -> None:
    path = stale_socket(world_tmp / "aesm.socket")
    path.chmod(0o700)
    refused = check_socket(str(path), NOBODY, mount_points=frozenset())
    assert refused.status is CheckStatus.FAIL
    assert "uid 65534" in refused.summary
    assert "the other bits lack write (w) permission" in refused.summary
    assert [code.hex for code in refused.codes] == ["0x4001", "0xE040"]
    assert refused.details["connectable"] is False

    allowed = check_socket(str(path), ROOT, mount_points=frozenset())
    assert allowed.status is CheckStatus.PASS
    assert "permission bits do not apply" in allowed.details["notes"][0]


def test_group_connectable_socket(world_tmp: Path) -> None:
    path = stale_socket(world_tmp / "aesm.socket")
    path.chmod(0o660)  # owner root:root
    member = Identity(1000, 1000, frozenset({0}))
    assert check_socket(str(path), member, mount_points=frozenset()).status is CheckStatus.PASS
    assert check_socket(str(path), USER, mount_points=frozenset()).status is CheckStatus.FAIL


def test_unsearchable_directory_is_named(world_tmp: Path) -> None:
    inner = world_tmp / "private"
    inner.mkdir()
    inner.chmod(0o750)
    path = stale_socket(inner / "aesm.socket")
    result = check_socket(str(path), NOBODY, mount_points=frozenset())
    assert result.status is CheckStatus.FAIL
    assert f"directory {inner} (mode 0750, owner 0:0) is not searchable" in result.summary
    assert result.details["blocked_directory"] == str(inner)


def test_mounted_socket_file_is_a_warning(world_tmp: Path) -> None:
    path = stale_socket(world_tmp / "aesm.socket")
    result = check_socket(str(path), ROOT, mount_points=frozenset({str(path)}))
    assert result.status is CheckStatus.WARN
    assert "the socket file itself is a mount point" in result.summary
    assert any("never the socket file" in fix for fix in result.fix)
    assert result.details["socket_is_mount"] is True


# ---- mountinfo and build info --------------------------------------------------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
98 22 0:45 /var/run/aesmd /run/aesmd rw,nosuid shared:2 - tmpfs tmpfs rw
99 22 0:46 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_mount_points_are_unescaped() -> None:
    assert parse_mount_points(MOUNTINFO) == frozenset({"/", "/run/aesmd", "/mnt/with space"})
    assert parse_mount_points("") == frozenset()


@given(st.text())
def test_mountinfo_and_metrics_parsers_take_any_text(text: str) -> None:
    assert isinstance(parse_mount_points(text), frozenset)
    assert parse_build_info(text) is None or isinstance(parse_build_info(text), dict)


def test_build_info_from_metrics() -> None:
    text = (
        "# HELP sgx_quote_helper_build_info Daemon release and hosted enclaves\n"
        "# TYPE sgx_quote_helper_build_info gauge\n"
        'sgx_quote_helper_build_info{backend="sim",pce_svn="13",qe_svn="10",'
        'simulated="true",version="0.1.0"} 1.0\n'
        "sgx_quote_helper_requests_total 3.0\n"
    )
    assert parse_build_info(text) == {
        "backend": "sim",
        "pce_svn": "13",
        "qe_svn": "10",
        "simulated": "true",
        "version": "0.1.0",
    }
    assert parse_build_info('sgx_quote_helper_build_info{version="a\\"b"} 1') == {"version": 'a"b'}
    assert parse_build_info("other_metric 1\n") is None


# ---- SGX_AESM_ADDR -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "status", "socket", "phrase"),
    [
        ({}, CheckStatus.WARN, "/var/run/aesmd/aesm.socket", "quote in process"),
        ({"SGX_AESM_ADDR": ""}, CheckStatus.PASS, "/var/run/aesmd/aesm.socket", "out-of-process"),
        ({"SGX_AESM_ADDR": "1"}, CheckStatus.PASS, "/var/run/aesmd/aesm.socket", "Intel's"),
        (
            {"SGX_AESM_ADDR": "unix:/var/run/aesmd/aesm.socket"},
            CheckStatus.PASS,
            "/var/run/aesmd/aesm.socket",
            "out-of-process",
        ),
        (
            {"SGX_AESM_ADDR": "/run/qh/aesm.socket"},
            CheckStatus.WARN,
            "/run/qh/aesm.socket",
            "ignore the value and always connect to /var/run/aesmd/aesm.socket",
        ),
        (
            {"SGX_AESM_ADDR": "unix:aesm.socket"},
            CheckStatus.WARN,
            "/var/run/aesmd/aesm.socket",
            "not an absolute path",
        ),
    ],
)
def test_environment_modes(
    environ: dict[str, str], status: CheckStatus, socket: str, phrase: str
) -> None:
    result, chosen = check_environment(environ)
    assert result.status is status
    assert chosen == socket
    assert phrase in result.summary
    if status is CheckStatus.WARN:
        assert result.fix


def test_environment_socket_override_and_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sgx_quote_helper.doctor._local._LIBRARY_DIRS", ())
    (tmp_path / "libsgx_quote_ex.so.1").write_bytes(b"")
    environ = {"SGX_AESM_ADDR": "1", "LD_LIBRARY_PATH": str(tmp_path)}
    result, chosen = check_environment(environ, "/tmp/other.socket")
    assert chosen == "/tmp/other.socket"
    assert result.details["intel_quote_ex_library"] == str(tmp_path / "libsgx_quote_ex.so.1")
    assert any("/tmp/other.socket (--socket)" in note for note in result.details["notes"])
    missing, _ = check_environment({"SGX_AESM_ADDR": "1"})
    assert missing.details["intel_quote_ex_library"] is None
    assert any("libsgx_quote_ex.so.1 was not found" in n for n in missing.details["notes"])
    in_process, _ = check_environment({})
    assert in_process.details["notes"] == []  # in process the library is not used


# ---- collateral validity -------------------------------------------------------------------

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def item(name: str, issued_days: float, next_days: float) -> ValidityItem:
    return ValidityItem(
        name,
        NOW + timedelta(days=issued_days),
        NOW + timedelta(days=next_days),
        Quote3Error.SGX_TCB_INFO_EXPIRED,
    )


def test_validity_verdicts() -> None:
    week = timedelta(days=7)
    fine = assess_validity([item("TCB Info", -1, 29)], NOW, week)
    assert fine[0] is CheckStatus.PASS
    assert fine[1] == []

    soon = assess_validity([item("TCB Info", -25, 3)], NOW, week)
    assert soon[0] is CheckStatus.WARN
    assert soon[1] == ["TCB Info expires in 3.0 days (nextUpdate 2026-01-13T00:00:00Z)"]

    expired = assess_validity([item("TCB Info", -31, -1), item("QE", -1, 3)], NOW, week)
    assert expired[0] is CheckStatus.FAIL
    assert expired[1] == ["TCB Info expired: nextUpdate 2026-01-09T00:00:00Z (1.0 days ago)"]
    assert [code.label() for code in expired[2]] == ["SGX_QL_SGX_TCB_INFO_EXPIRED 0xE02C"]

    future = assess_validity([item("TCB Info", 0.5, 30)], NOW, week)
    assert future[0] is CheckStatus.FAIL
    assert "not valid yet" in future[1][0]


# ---- results and the report ------------------------------------------------------------------


def test_status_codes_name_value_and_meaning() -> None:
    aesm = StatusCode.of(AesmError.NETWORK_ERROR)
    assert aesm.label() == "AESM_NETWORK_ERROR 12"
    sgx = StatusCode.of(SgxStatus.ERROR_SERVICE_TIMEOUT)
    assert sgx.label() == "SGX_ERROR_SERVICE_TIMEOUT 0x4002"
    assert sgx.meaning
    both = codes_of(SgxStatus.ERROR_UNEXPECTED, None, SgxStatus.ERROR_UNEXPECTED)
    assert [c.name for c in both] == ["SGX_ERROR_UNEXPECTED"]


def _result(name: str, status: CheckStatus) -> CheckResult:
    return CheckResult.make(name, status, f"{name} {status.value}")


@pytest.mark.parametrize(
    ("statuses", "overall", "code"),
    [
        ([CheckStatus.PASS, CheckStatus.SKIP], CheckStatus.PASS, 0),
        ([CheckStatus.PASS, CheckStatus.WARN, CheckStatus.SKIP], CheckStatus.WARN, 0),
        ([CheckStatus.WARN, CheckStatus.FAIL], CheckStatus.FAIL, 1),
        ([CheckStatus.SKIP], CheckStatus.PASS, 0),
    ],
)
def test_overall_and_exit_code(
    statuses: list[CheckStatus], overall: CheckStatus, code: int
) -> None:
    report = DoctorReport(tuple(_result(f"c{i}", s) for i, s in enumerate(statuses)))
    assert report.overall is overall
    assert report.exit_code == code
    assert report.to_dict()["overall"] == overall.value


def test_rendered_failure_names_codes_meaning_and_fix() -> None:
    failed = CheckResult.make(
        "socket",
        CheckStatus.FAIL,
        "no socket at /x",
        fix=["start the daemon"],
        codes=codes_of(SgxStatus.ERROR_SERVICE_UNAVAILABLE),
    )
    text = render(DoctorReport((failed, _result("daemon", CheckStatus.SKIP))))
    lines = text.splitlines()
    assert lines[1] == "[FAIL] socket: no socket at /x [SGX_ERROR_SERVICE_UNAVAILABLE 0x4001]"
    assert lines[2].startswith("       means: SGX_ERROR_SERVICE_UNAVAILABLE 0x4001: ")
    assert "       fix: start the daemon" in lines
    assert "[skip] daemon: daemon skip" in lines
    assert lines[-1] == "overall: FAIL (0 passed, 0 warned, 1 failed, 1 skipped)"


@pytest.mark.parametrize("field", ["pccs_url", "admin_url"])
@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:\udcff", "http://h:1?x=1"])
def test_a_malformed_url_is_refused_before_any_check(field: str, url: str) -> None:
    # Was "[FAIL] pccs: ... served collateral that cannot be read (SGX_QL_MESSAGE_ERROR)"
    # for a PCCS never asked, and a ValueError from the daemon check's admin URL.
    flag = "--" + field.replace("_", "-")
    with pytest.raises(UsageError, match=f"^{flag} .* is not a usable base URL"):
        DoctorOptions(**{field: url})  # type: ignore[arg-type]


def test_build_info_refuses_a_malformed_admin_url() -> None:
    with pytest.raises(UsageError, match="without its partner"):
        fetch_build_info("http://[::1", 1.0)


# Regressions: a plain httpx.get read any body whole and bounded each read only, so a
# dripping or 1 GB admin endpoint hung doctor or took ~1 GB.


def _metrics_drip(path: str, out: BufferedIOBase) -> None:
    out.write(head(200, {"Content-Length": "200"}))
    for _ in range(200):  # 10 s at most
        out.write(b"#")
        out.flush()
        time.sleep(0.05)


def _metrics_huge(path: str, out: BufferedIOBase) -> None:
    out.write(head(200, {"Transfer-Encoding": "chunked"}))
    line = b'sgx_quote_helper_build_info{version="x"} 1\n' * 25_000
    for _ in range(MAX_METRICS_SIZE // len(line) + 2):
        out.write(b"%x\r\n" % len(line) + line + b"\r\n")
    out.write(b"0\r\n\r\n")


def test_build_info_fetch_has_a_total_deadline() -> None:
    with HostileHttpServer(_metrics_drip) as server, pytest.raises(ConnectionError) as info:
        fetch_build_info(server.url, 0.5)
    assert "no complete answer from" in str(info.value)
    assert "within 0.5s" in str(info.value)


def test_build_info_fetch_refuses_a_huge_page() -> None:
    with HostileHttpServer(_metrics_huge) as server, pytest.raises(ConnectionError) as info:
        fetch_build_info(server.url, 5.0)
    assert f"{MAX_METRICS_SIZE}-byte limit" in str(info.value)
