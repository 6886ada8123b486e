"""The ``dcap`` backend against a C stand-in for Intel's quote library.

``dcap_shim/dcap_ql_shim.c`` exports the symbols of ``libsgx_dcap_ql.so.1``
and ``libsgx_qe3_logic.so`` with DCAP's C signatures, records every call with
its arguments and returns scripted results. The backend loads it through the
same code path as the real library (``DcapOptions.library``), so these tests
check the marshalling, the sizes, the error mapping, the start-up checks, the
one-call-at-a-time discipline and the shutdown; what only hardware can show is
listed in docs/backends.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dcap_shim import SHIM_VERSION, ShimControl, Shims, build, compiler
from unprivileged import run_as_nobody

from sgx_quote_helper.backends import QuoteError
from sgx_quote_helper.backends._dcap import (
    DcapBackend,
    DcapOptions,
    DcapStartupError,
    check_devices,
)
from sgx_quote_helper.doctor import CheckStatus, check_node
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, QeReportInfo, TargetInfo
from sgx_quote_helper.sgx._status import AesmError, Quote3Error, quote3_to_aesm

KEY = DEFAULT_ECDSA_ATT_KEY_ID.base
KEY_HEX = KEY.to_bytes().hex()
# What the shim writes (see the comment at the top of dcap_ql_shim.c).
SHIM_TARGET_INFO = bytes(0x40 + i for i in range(64)) + bytes(448)
SHIM_PUB_KEY_ID = bytes(0xC0 + i for i in range(32))
REPORT = bytes((i * 5 + 3) & 0xFF for i in range(432))


@pytest.fixture(scope="session")
def shims(tmp_path_factory: pytest.TempPathFactory) -> Shims:
    if compiler() is None:
        pytest.skip("no C compiler (cc) to build the DCAP quote library stand-in")
    return build(tmp_path_factory.mktemp("dcap-shim"))


@pytest.fixture
def devices(tmp_path: Path) -> tuple[Path, Path]:
    enclave, provision = tmp_path / "sgx_enclave", tmp_path / "sgx_provision"
    for path in (enclave, provision):
        path.write_bytes(b"")
        path.chmod(0o660)
    return enclave, provision


@pytest.fixture
def options(shims: Shims, devices: tuple[Path, Path]) -> DcapOptions:
    return DcapOptions(
        library=str(shims.library),
        quote_provider=str(shims.quote_provider),
        enclave_device=devices[0],
        provision_device=devices[1],
    )


@pytest.fixture
def shim(shims: Shims) -> Iterator[ShimControl]:
    control = ShimControl(shims.library)
    control.reset()
    yield control
    control.reset()


@pytest.fixture
def backend(options: DcapOptions, shim: ShimControl) -> Iterator[DcapBackend]:
    made = DcapBackend(options, environ={})
    try:
        yield made
    finally:
        made.close()


# ---- start-up ----


def test_startup_sets_policy_paths_and_asks_for_target_info(
    shims: Shims, devices: tuple[Path, Path], shim: ShimControl, tmp_path: Path
) -> None:
    enclaves = {}
    for name in ("qe3", "pce", "qpl", "ide"):
        enclaves[name] = tmp_path / f"{name}.signed.so"
        enclaves[name].write_bytes(b"\x7fELF")
    backend = DcapBackend(
        DcapOptions(
            library=str(shims.library),
            quote_provider=str(shims.quote_provider),
            enclave_device=devices[0],
            provision_device=devices[1],
            qe3_path=enclaves["qe3"],
            pce_path=enclaves["pce"],
            qpl_path=shims.quote_provider,
            ide_path=enclaves["ide"],
        ),
        environ={},
    )
    try:
        assert backend.library_version == SHIM_VERSION
        assert backend.qe3_logic
        assert shim.calls() == [
            "sgx_qe_set_enclave_load_policy policy=0",  # SGX_QL_PERSISTENT
            f"sgx_ql_set_path type=0 path={enclaves['qe3']}",
            f"sgx_ql_set_path type=1 path={enclaves['pce']}",
            f"sgx_ql_set_path type=2 path={shims.quote_provider}",
            f"sgx_ql_set_path type=3 path={enclaves['ide']}",
            "sgx_qe_get_target_info out=buffer",
        ]
    finally:
        backend.close()
    assert shim.calls()[-2:] == [
        "sgx_qe_cleanup_by_policy",
        "sgx_qe_set_enclave_load_policy policy=1",  # SGX_QL_EPHEMERAL: unload QE3/PCE
    ]


def test_the_library_name_and_version_are_logged(
    options: DcapOptions, shim: ShimControl, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="sgx_quote_helper"):
        DcapBackend(options, environ={}).close()
    loaded = next(r for r in caplog.records if r.getMessage() == "dcap.library_loaded")
    fields: dict[str, Any] = loaded.__dict__["fields"]
    assert fields["version"] == SHIM_VERSION
    assert fields["library"].endswith(f"libsgx_dcap_ql.so.{SHIM_VERSION}")


@pytest.mark.parametrize(
    ("function", "code", "check"),
    [
        ("sgx_qe_set_enclave_load_policy", 0xE001, "enclave load policy"),
        ("sgx_ql_set_path", 0xE002, "QE3 path"),
        ("sgx_qe_get_target_info", 0xE016, "first sgx_qe_get_target_info"),
        ("sgx_qe_get_target_info", 0xE012, "first sgx_qe_get_target_info"),
        ("sgx_qe_get_target_info", 0xE00D, "first sgx_qe_get_target_info"),
    ],
)
def test_a_failing_startup_call_is_one_line_naming_the_code_and_fix(
    options: DcapOptions, shim: ShimControl, tmp_path: Path, function: str, code: int, check: str
) -> None:
    qe3 = tmp_path / "libsgx_qe3.signed.so"
    qe3.write_bytes(b"")
    shim.script(function, code)
    with pytest.raises(DcapStartupError) as caught:
        DcapBackend(DcapOptions(**{**options.__dict__, "qe3_path": qe3}), environ={})
    line = str(caught.value)  # one line: the check, the problem, the code
    assert "\n" not in line
    assert check in line
    assert f"SGX_QL_{Quote3Error(code).name} 0x{code:04X}" in line
    assert "\n  check: " in caught.value.diagnostics()  # the fix
    # Whatever was loaded is released again.
    assert shim.calls()[-1] == "sgx_qe_set_enclave_load_policy policy=1"


def test_a_pccs_failure_at_startup_starts_not_ready(
    options: DcapOptions, shim: ShimControl, caplog: pytest.LogCaptureFixture
) -> None:
    shim.script("sgx_qe_get_target_info", Quote3Error.NETWORK_ERROR)
    with caplog.at_level("WARNING", logger="sgx_quote_helper"):
        backend = DcapBackend(options, environ={})
    backend.close()
    assert "dcap.first_target_info_failed" in caplog.messages


def test_missing_devices_and_libraries_are_named(
    options: DcapOptions, shims: Shims, tmp_path: Path
) -> None:
    cases: list[tuple[DcapOptions, str]] = [
        (
            DcapOptions(**{**options.__dict__, "enclave_device": tmp_path / "none"}),
            "does not exist",
        ),
        (
            DcapOptions(**{**options.__dict__, "provision_device": tmp_path / "none"}),
            "does not exist",
        ),
        (
            DcapOptions(**{**options.__dict__, "library": str(tmp_path / "libnone.so.1")}),
            "cannot load",
        ),
        (
            # A library without DCAP's symbols.
            DcapOptions(**{**options.__dict__, "library": str(shims.quote_provider)}),
            "does not export sgx_qe_",
        ),
        (
            DcapOptions(**{**options.__dict__, "quote_provider": str(tmp_path / "libqpl.so")}),
            "quote provider library",
        ),
        (
            DcapOptions(**{**options.__dict__, "pce_path": tmp_path / "no-pce.signed.so"}),
            "is not a file",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(DcapStartupError, match=message) as caught:
            DcapBackend(bad, environ={})
        assert "\n  check: " in caught.value.diagnostics()


def test_devices_must_be_accessible_to_the_daemons_user(run_dir: Path) -> None:
    enclave, provision = run_dir / "sgx_enclave", run_dir / "sgx_provision"
    for path in (enclave, provision):
        path.write_bytes(b"")
    enclave.chmod(0o666)
    provision.chmod(0o600)  # root only, like /dev/sgx_provision without the group

    def as_nobody() -> dict[str, Any]:
        try:
            check_devices(enclave, provision)
        except DcapStartupError as exc:
            return {"error": exc.diagnostics()}
        return {"error": None}

    result = run_as_nobody(as_nobody)
    assert result["error"] is not None
    assert f"{provision} is not readable and writable by uid 65534" in result["error"]
    provision.chmod(0o666)
    assert run_as_nobody(as_nobody) == {"error": None}


def test_a_device_behind_an_unsearchable_directory_is_not_called_missing(
    run_dir: Path,
) -> None:
    hidden = run_dir / "dev"
    hidden.mkdir()
    enclave, provision = hidden / "sgx_enclave", hidden / "sgx_provision"
    for path in (enclave, provision):
        path.write_bytes(b"")
        path.chmod(0o666)
    hidden.chmod(0o700)  # root only: nobody cannot look inside

    def as_nobody() -> dict[str, Any]:
        try:
            check_devices(enclave, provision)
        except DcapStartupError as exc:
            return {"error": str(exc)}
        return {"error": None}

    error = run_as_nobody(as_nobody)["error"]
    assert error is not None
    assert f"{enclave} cannot be looked up by uid 65534 (Permission denied)" in error
    assert "does not exist" not in error


def test_a_quote_provider_without_its_entry_point_is_named(
    options: DcapOptions, shims: Shims
) -> None:
    # The quote library stand-in loads but is no quote provider.
    bad = DcapOptions(**{**options.__dict__, "quote_provider": str(shims.library)})
    with pytest.raises(DcapStartupError) as caught:
        DcapBackend(bad, environ={})
    assert "does not export sgx_ql_get_quote_config" in str(caught.value)
    assert "az-dcap-client" in caught.value.diagnostics()


def test_sgx_aesm_addr_is_unset_before_the_library_loads(
    options: DcapOptions, tmp_path: Path
) -> None:
    # A fresh process, since the library's constructor runs once per process.
    program = f"""
import json, os
from sgx_quote_helper.backends._dcap import DcapBackend, DcapOptions
from pathlib import Path
options = DcapOptions(library={options.library!r}, quote_provider={options.quote_provider!r},
                      enclave_device=Path({str(options.enclave_device)!r}),
                      provision_device=Path({str(options.provision_device)!r}))
backend = DcapBackend(options)
import ctypes
shim = ctypes.CDLL({options.library!r})
shim.shim_log.restype = ctypes.c_char_p
print(json.dumps({{"log": shim.shim_log().decode(), "env": os.environ.get("SGX_AESM_ADDR")}}))
backend.close()
"""
    env = {**os.environ, "SGX_AESM_ADDR": ""}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["env"] is None
    assert result["log"].splitlines()[0] == "load out_of_proc=0"
    assert "exit sgx_qe_get_target_info 0x0000" in result["log"]

    # Control: loaded with the variable set, the library is in out-of-process
    # mode and refuses the set-up calls.
    control = f"""
import ctypes
shim = ctypes.CDLL({options.library!r})
shim.sgx_qe_set_enclave_load_policy.argtypes = [ctypes.c_int]
shim.sgx_qe_set_enclave_load_policy.restype = ctypes.c_uint
print(hex(shim.sgx_qe_set_enclave_load_policy(0)))
"""
    done = subprocess.run(
        [sys.executable, "-c", control], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == hex(Quote3Error.UNSUPPORTED_MODE)


# ---- marshalling and sizes ----


def test_init_quote_through_the_qe3_logic_library(backend: DcapBackend, shim: ShimControl) -> None:
    result = backend.init_quote(KEY)
    assert result.target_info.to_bytes() == SHIM_TARGET_INFO
    assert result.pub_key_id == SHIM_PUB_KEY_ID
    assert shim.calls()[-1] == (
        f"sgx_ql_init_quote key_id={KEY_HEX} target_info=buffer refresh=0 size=32 pub_key_id=buffer"
    )


def test_quote_size_and_quote_without_qe_report_info(
    backend: DcapBackend, shim: ShimControl
) -> None:
    assert backend.quote_size(KEY) == 1500
    shim.set_quote_size(2345)
    assert backend.quote_size(KEY) == 2345
    result = backend.get_quote(REPORT, KEY, None)
    quote = result.quote
    assert len(quote) == 2345
    assert result.qe_report_info is None
    assert int.from_bytes(quote[0:2], "little") == 3
    assert quote[48:432] == REPORT[:384]  # the REPORT body went in intact
    assert int.from_bytes(quote[432:436], "little") == 2345 - 436
    assert shim.calls()[-2:] == [
        "sgx_qe_get_quote_size out=buffer",
        f"sgx_qe_get_quote report={REPORT.hex()} size=2345",
    ]


def test_quote_with_qe_report_info_through_sgx_ql_get_quote(
    backend: DcapBackend, shim: ShimControl
) -> None:
    nonce = bytes(range(16))
    app_target = TargetInfo(mr_enclave=bytes([9]) * 32)
    info = QeReportInfo(nonce=nonce, app_enclave_target_info=app_target)
    result = backend.get_quote(REPORT, KEY, info)
    assert result.quote[48:432] == REPORT[:384]
    filled = result.qe_report_info
    assert filled is not None
    assert filled.nonce == nonce
    assert filled.app_enclave_target_info == app_target
    # The shim's QE report carries the nonce and the target's MRENCLAVE.
    assert filled.qe_report.body.report_data[:48] == nonce + bytes([9]) * 32
    assert shim.calls()[-1] == (
        f"sgx_ql_get_quote report={REPORT.hex()} key_id={KEY_HEX} "
        f"qe_report_info={info.to_bytes().hex()} size=1500"
    )


def test_without_the_qe3_logic_library(
    shims: Shims, devices: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    shim = ShimControl(shims.library_without_qe3_logic)
    shim.reset()
    with caplog.at_level("WARNING", logger="sgx_quote_helper"):
        backend = DcapBackend(
            DcapOptions(
                library=str(shims.library_without_qe3_logic),
                quote_provider=str(shims.quote_provider),
                enclave_device=devices[0],
                provision_device=devices[1],
            ),
            environ={},
        )
    try:
        assert "dcap.qe3_logic_unavailable" in caplog.messages
        assert not backend.qe3_logic
        result = backend.init_quote(KEY)
        assert result.target_info.to_bytes() == SHIM_TARGET_INFO
        assert result.pub_key_id is None
        assert len(backend.get_quote(REPORT, KEY, None).quote) == 1500
        info = QeReportInfo(nonce=bytes(16), app_enclave_target_info=TargetInfo())
        with pytest.raises(QuoteError) as caught:
            backend.get_quote(REPORT, KEY, info)
        assert caught.value.code == Quote3Error.INTERFACE_UNAVAILABLE
        assert quote3_to_aesm(caught.value.code) == AesmError.INTERFACE_UNAVAILABLE
        assert "dcap.qe_report_info_refused" in caplog.messages
    finally:
        backend.close()


def test_only_the_default_ecdsa_key_id(backend: DcapBackend) -> None:
    from dataclasses import replace

    other = replace(KEY, prod_id=2)
    for call in (
        lambda: backend.init_quote(other),
        lambda: backend.quote_size(other),
        lambda: backend.get_quote(REPORT, other, None),
    ):
        with pytest.raises(QuoteError) as caught:
            call()
        assert caught.value.code == Quote3Error.UNSUPPORTED_ATT_KEY_ID


def test_bad_sizes_are_refused_before_or_after_the_library(
    backend: DcapBackend, shim: ShimControl
) -> None:
    # A REPORT of the wrong size never reaches the library.
    before = len(shim.calls())
    with pytest.raises(QuoteError) as caught:
        backend.get_quote(REPORT[:100], KEY, None)
    assert caught.value.code == Quote3Error.ERROR_INVALID_PARAMETER
    assert len(shim.calls()) == before
    # A quote size smaller than a quote's fixed part is the library's error.
    shim.set_quote_size(100)
    for call in (lambda: backend.quote_size(KEY), lambda: backend.get_quote(REPORT, KEY, None)):
        with pytest.raises(QuoteError, match="less than a quote's fixed part") as caught:
            call()
        assert caught.value.code == Quote3Error.ERROR_UNEXPECTED
    assert not any(c.startswith("sgx_qe_get_quote ") for c in shim.calls())


def test_a_library_answer_that_does_not_fit_is_an_unexpected_error(
    backend: DcapBackend, shim: ShimControl
) -> None:
    # An ECDSA id of another size than the 32 bytes of a SHA-256.
    shim.misbehave(pub_key_id_size=20)
    with pytest.raises(QuoteError, match="20-byte ECDSA id, not 32") as caught:
        backend.init_quote(KEY)
    assert caught.value.code == Quote3Error.ERROR_UNEXPECTED
    # A quote whose signature length runs past the buffer the library was given.
    shim.misbehave(sig_len_excess=1)
    with pytest.raises(QuoteError, match="claims 1501 bytes in a 1500-byte buffer") as caught:
        backend.get_quote(REPORT, KEY, None)
    assert caught.value.code == Quote3Error.ERROR_UNEXPECTED
    shim.misbehave()
    assert len(backend.get_quote(REPORT, KEY, None).quote) == 1500


# ---- error mapping: every call's failure carries the library's code ----


@pytest.mark.parametrize(
    ("function", "code", "aesm"),
    [
        ("sgx_ql_init_quote", 0xE019, AesmError.NETWORK_ERROR),
        ("sgx_ql_init_quote", 0xE011, AesmError.NO_PLATFORM_CERT_DATA),
        ("sgx_ql_init_quote", 0xE018, AesmError.KEY_CERTIFICATION_ERROR),
        ("sgx_qe_get_quote_size", 0xE00F, AesmError.ATT_KEY_NOT_INITIALIZED),
        ("sgx_qe_get_quote_size", 0xE010, AesmError.ATT_KEY_CERT_DATA_INVALID),
        ("sgx_qe_get_quote", 0xE015, AesmError.INVALID_REPORT),
        ("sgx_qe_get_quote", 0xE013, AesmError.ERROR_REPORT),
        ("sgx_qe_get_quote", 0xE014, AesmError.ENCLAVE_LOST),
        ("sgx_qe_get_quote", 0xE012, AesmError.OUT_OF_EPC),
        ("sgx_qe_get_quote", 0xE016, AesmError.ENCLAVE_LOAD_ERROR),
        ("sgx_qe_get_quote", 0xE00F, AesmError.ATT_KEY_NOT_INITIALIZED),
        ("sgx_ql_get_quote", 0xE015, AesmError.INVALID_REPORT),
        ("sgx_ql_get_quote", 0xE017, AesmError.UNABLE_TO_GENERATE_QE_REPORT),
        ("sgx_qe_get_quote", 0xE040, AesmError.UNEXPECTED_ERROR),  # not in Intel's table
    ],
)
def test_library_failures_map_to_aesmd_codes(
    backend: DcapBackend, shim: ShimControl, function: str, code: int, aesm: AesmError
) -> None:
    shim.script(function, code)
    info = QeReportInfo(nonce=bytes(16), app_enclave_target_info=TargetInfo())
    calls: dict[str, Callable[[], object]] = {
        "sgx_ql_init_quote": lambda: backend.init_quote(KEY),
        "sgx_qe_get_quote_size": lambda: backend.quote_size(KEY),
        "sgx_qe_get_quote": lambda: backend.get_quote(REPORT, KEY, None),
        "sgx_ql_get_quote": lambda: backend.get_quote(REPORT, KEY, info),
    }
    call = calls[function]
    with pytest.raises(QuoteError) as caught:
        call()
    assert caught.value.code == code
    assert caught.value.aesm_code is None  # the daemon applies Intel's table
    assert quote3_to_aesm(caught.value.code) == aesm
    assert f"0x{code:04X}" in caught.value.diagnostics()
    # The next call succeeds: a failure is per call.
    call()


def test_a_failing_release_is_logged_not_raised(
    options: DcapOptions, shim: ShimControl, caplog: pytest.LogCaptureFixture
) -> None:
    backend = DcapBackend(options, environ={})
    shim.script("sgx_qe_cleanup_by_policy", 0xE001)
    with caplog.at_level("WARNING", logger="sgx_quote_helper"):
        backend.close()
    assert "dcap.release_failed" in caplog.messages


# ---- thread discipline and shutdown ----


def test_never_two_calls_inside_the_library_at_once(
    backend: DcapBackend, shim: ShimControl
) -> None:
    shim.delay(10)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(3):
                backend.quote_size(KEY)
                backend.get_quote(REPORT, KEY, None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert shim.max_active() == 1
    assert len([c for c in shim.calls() if c.startswith("sgx_qe_get_quote ")]) == 18


def test_callers_beyond_the_queue_get_busy(options: DcapOptions, shim: ShimControl) -> None:
    backend = DcapBackend(
        DcapOptions(**{**options.__dict__, "queue_depth": 1, "queue_timeout": 0.2}), environ={}
    )
    try:
        shim.delay(1000)
        outcomes: list[int] = []
        lock = threading.Lock()

        def client() -> None:
            try:
                backend.quote_size(KEY)
                code = 0
            except QuoteError as exc:
                code = -1 if exc.aesm_code is None else exc.aesm_code
            with lock:
                outcomes.append(code)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes)[0] == 0  # the call that reached the QE completed
        assert AesmError.BUSY in outcomes
        assert shim.max_active() == 1
    finally:
        shim.delay(0)
        backend.close()


def test_close_waits_for_the_call_in_flight(options: DcapOptions, shim: ShimControl) -> None:
    backend = DcapBackend(options, environ={})
    shim.delay(300)
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(len(backend.get_quote(REPORT, KEY, None).quote))
    )
    worker.start()
    deadline = time.monotonic() + 30
    while not any(c.startswith("sgx_qe_get_quote ") for c in shim.calls()):
        assert time.monotonic() < deadline, "the quote never reached the library"
        time.sleep(0.005)
    backend.close()
    worker.join(timeout=30)
    assert result == [1500]
    log = shim.log()
    assert log.index("exit sgx_qe_get_quote 0x0000") < log.index("enter sgx_qe_cleanup_by_policy")
    # After close, calls are refused without touching the library.
    with pytest.raises(QuoteError) as caught:
        backend.quote_size(KEY)
    assert caught.value.aesm_code == AesmError.SERVICE_UNAVAILABLE


def test_a_caller_that_waits_too_long_gets_busy_and_never_reaches_the_library(
    options: DcapOptions, shim: ShimControl
) -> None:
    backend = DcapBackend(
        DcapOptions(**{**options.__dict__, "queue_depth": 4, "queue_timeout": 0.2}), environ={}
    )
    try:
        shim.delay(1000)
        first = threading.Thread(target=lambda: backend.quote_size(KEY))
        first.start()
        deadline = time.monotonic() + 30
        while not any(c.startswith("sgx_qe_get_quote_size") for c in shim.calls()):
            assert time.monotonic() < deadline, "the first call never reached the library"
            time.sleep(0.005)
        with pytest.raises(QuoteError, match=r"did not become free within 0\.2 s") as caught:
            backend.quote_size(KEY)
        assert caught.value.aesm_code == AesmError.BUSY
        first.join(timeout=30)
        # Only the first call entered the library; the timed-out one was withdrawn.
        assert len([c for c in shim.calls() if c.startswith("sgx_qe_get_quote_size")]) == 1
    finally:
        shim.delay(0)
        backend.close()


def test_close_turns_away_queued_callers_with_service_unavailable(
    options: DcapOptions, shim: ShimControl
) -> None:
    backend = DcapBackend(options, environ={})
    # Long enough for three threads to queue behind the running call even on
    # a busy machine; the queued ones are turned away, so only one call waits.
    shim.delay(4000)
    outcomes: list[object] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            result: object = backend.quote_size(KEY)
        except QuoteError as exc:
            result = exc.aesm_code
        with lock:
            outcomes.append(result)

    running = threading.Thread(target=client)
    running.start()
    deadline = time.monotonic() + 30
    while not any(c.startswith("sgx_qe_get_quote_size") for c in shim.calls()):
        assert time.monotonic() < deadline, "the first call never reached the library"
        time.sleep(0.005)
    queued = [threading.Thread(target=client) for _ in range(3)]
    for thread in queued:
        thread.start()
    work = backend._queue._executor._work_queue  # the callers queued for the QE thread
    while work.qsize() < len(queued):
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.005)
    backend.close()
    for thread in (running, *queued):
        thread.join(timeout=30)
    # The running call completed; every other one was either served before the
    # close or turned away with AESM_SERVICE_UNAVAILABLE, none entered the
    # library after the release.
    assert 1500 in outcomes
    assert AesmError.SERVICE_UNAVAILABLE in outcomes
    assert set(outcomes) <= {1500, AesmError.SERVICE_UNAVAILABLE}
    log = shim.log()
    release = next(i for i, line in enumerate(log) if line.startswith("enter sgx_qe_cleanup"))
    assert not any(line.startswith("enter sgx_qe_get_quote_size") for line in log[release:])


# ---- doctor's node check: the same start-up checks ----


def test_doctor_node_check_on_a_working_node(options: DcapOptions, shim: ShimControl) -> None:
    result = check_node(options, {})
    assert result.status is CheckStatus.PASS, result.to_dict()
    assert result.details["library_version"] == SHIM_VERSION
    assert result.details["qe_mr_enclave"] == SHIM_TARGET_INFO[:32].hex()
    assert SHIM_VERSION in result.summary
    # The QE was released again.
    assert shim.calls()[-1] == "sgx_qe_set_enclave_load_policy policy=1"


def test_doctor_node_check_names_what_is_missing(
    options: DcapOptions, shim: ShimControl, tmp_path: Path
) -> None:
    no_provision = DcapOptions(**{**options.__dict__, "provision_device": tmp_path / "none"})
    result = check_node(no_provision, {})
    assert result.status is CheckStatus.FAIL
    assert "does not exist" in result.summary
    assert "sgx.intel.com/provision" in result.fix[0]

    shim.script("sgx_qe_get_target_info", Quote3Error.ENCLAVE_LOAD_ERROR)
    result = check_node(options, {})
    assert result.status is CheckStatus.FAIL
    assert [code.label() for code in result.codes] == ["SGX_QL_ENCLAVE_LOAD_ERROR 0xE016"]
    assert "libsgx-ae-qe3" in result.fix[0]


def test_doctor_node_check_is_skipped_without_sgx(tmp_path: Path) -> None:
    result = check_node(
        DcapOptions(
            library=str(tmp_path / "libsgx_dcap_ql.so.1"), enclave_device=tmp_path / "none"
        ),
        {},
    )
    assert result.status is CheckStatus.SKIP
    assert "not an SGX node" in result.summary


def test_doctor_node_check_in_an_out_of_process_container(
    options: DcapOptions, shim: ShimControl
) -> None:
    result = check_node(options, {"SGX_AESM_ADDR": ""})
    assert result.status is CheckStatus.PASS
    assert "SGX_AESM_ADDR is set" in result.summary
    assert not any(call.startswith("sgx_qe_get_target_info") for call in shim.calls())
