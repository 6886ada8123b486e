"""The daemon with ``--backend dcap`` over the C stand-in of Intel's quote library.

On the wire the daemon must answer like aesmd over the same library: the QE's
target info and ECDSA id, the library's quote padded to ``buf_size``, the
``qe_report_info`` filled in, and a library failure as the AESM code aesmd
sends for it. Options come from flags, ``SGX_QUOTE_HELPER_*`` or TOML like
every other option, and a start-up failure is one line naming the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_support import (
    get_quote_ex,
    get_quote_size_ex,
    init_quote_ex,
    intel_client,
    response_fields,
    run_daemon,
)
from dcap_shim import ShimControl, Shims, build, compiler

from sgx_quote_helper.service import ServiceConfig, load_config

REPORT = bytes((i * 3 + 1) & 0xFF for i in range(432))
SHIM_TARGET_INFO = bytes(0x40 + i for i in range(64)) + bytes(448)
SHIM_PUB_KEY_ID = bytes(0xC0 + i for i in range(32))


@pytest.fixture(scope="module")
def shims(tmp_path_factory: pytest.TempPathFactory) -> Shims:
    if compiler() is None:
        pytest.skip("no C compiler (cc) to build the DCAP quote library stand-in")
    return build(tmp_path_factory.mktemp("dcap-shim"))


@pytest.fixture
def shim(shims: Shims) -> Iterator[ShimControl]:
    control = ShimControl(shims.library)
    control.reset()
    yield control
    control.reset()


@pytest.fixture
def device_flags(tmp_path: Path) -> dict[str, str]:
    flags = {}
    for name in ("enclave", "provision"):
        path = tmp_path / f"sgx_{name}"
        path.write_bytes(b"")
        flags[f"sgx_{name}_device"] = str(path)
    return flags


def dcap_config(
    shims: Shims, run_dir: Path, device_flags: dict[str, str], **extra: Any
) -> ServiceConfig:
    flags: dict[str, Any] = {
        "backend": "dcap",
        "dcap_library": str(shims.library),
        "dcap_quote_provider": str(shims.quote_provider),
        "socket": str(run_dir / "aesm.socket"),
        "admin_listen": "127.0.0.1:0",
        **device_flags,
        **extra,
    }
    return load_config(flags, environ={})


def _fields(reply: bytes | None, kind: int) -> dict[int, int | bytes]:
    assert reply is not None, "closed without a reply"
    return response_fields(reply, kind)


def test_the_daemon_quotes_through_the_library(
    shims: Shims, shim: ShimControl, run_dir: Path, device_flags: dict[str, str]
) -> None:
    with run_daemon(dcap_config(shims, run_dir, device_flags)) as daemon:
        assert daemon.server.backend.info().name == "dcap"
        init = _fields(intel_client(daemon.socket, init_quote_ex(True, 32)), 15)
        assert init == {1: 0, 2: SHIM_TARGET_INFO, 3: 32, 4: SHIM_PUB_KEY_ID}
        assert _fields(intel_client(daemon.socket, get_quote_size_ex()), 16) == {1: 0, 2: 1500}

        info = bytes(range(16)) + bytes([4]) * 32 + bytes(480 + 432)
        reply = _fields(
            intel_client(daemon.socket, get_quote_ex(REPORT, 2000, qe_report_info=info)), 17
        )
        assert reply[1] == 0
        quote, filled = reply[2], reply[3]
        assert isinstance(quote, bytes)
        assert isinstance(filled, bytes)
        assert len(quote) == 2000  # the client's buf_size, zero-padded
        assert quote[48:432] == REPORT[:384]
        assert quote[1500:] == bytes(500)
        assert filled[:528] == info[:528]
        assert filled[528 + 320 : 528 + 368] == info[:16] + bytes([4]) * 32

        # The library's failure, as aesmd reports it (section 12.4), with the
        # qe_report_info echoed.
        shim.script("sgx_ql_get_quote", 0xE015)  # SGX_QL_INVALID_REPORT
        reply = _fields(
            intel_client(daemon.socket, get_quote_ex(REPORT, 2000, qe_report_info=info)), 17
        )
        assert reply == {1: 47, 3: info}
        shim.script("sgx_qe_get_quote", 0xE00F)  # SGX_QL_ATT_KEY_NOT_INITIALIZED
        assert _fields(intel_client(daemon.socket, get_quote_ex(REPORT, 2000)), 17) == {1: 42}
        shim.script("sgx_qe_get_quote_size", 0xE016)  # SGX_QL_ENCLAVE_LOAD_ERROR
        assert _fields(intel_client(daemon.socket, get_quote_size_ex()), 16) == {1: 48, 2: 0}
        assert (
            daemon.metric(
                "sgx_quote_helper_requests_total", type="GET_QUOTE_EX", result="INVALID_REPORT"
            )
            == 1
        )
    # Stopping the daemon released the enclaves after the last call.
    assert shim.calls()[-2:] == [
        "sgx_qe_cleanup_by_policy",
        "sgx_qe_set_enclave_load_policy policy=1",
    ]
    assert shim.max_active() == 1


def test_a_pccs_side_failure_at_start_up_is_not_ready_then_ready(
    shims: Shims, shim: ShimControl, run_dir: Path, device_flags: dict[str, str]
) -> None:
    # The quote provider cannot reach the PCCS: the first target info at
    # start-up and the daemon's first InitQuoteEx fail with NETWORK_ERROR.
    shim.script("sgx_qe_get_target_info", 0xE019)
    shim.script("sgx_ql_init_quote", 0xE019)
    with run_daemon(dcap_config(shims, run_dir, device_flags), ready=False) as daemon:
        # The daemon bound its socket and retries; once the library answers
        # (the scripted failures are used up) it becomes ready by itself.
        daemon.wait_ready()
        assert daemon.metric("sgx_quote_helper_ready") == 1
        init = _fields(intel_client(daemon.socket, init_quote_ex(True, 32)), 15)
        assert init[1] == 0
    # The daemon's first attempt failed, a later one succeeded.
    log = shim.log()
    assert "exit sgx_ql_init_quote 0xe019" in log
    assert log.index("exit sgx_ql_init_quote 0xe019") < log.index("exit sgx_ql_init_quote 0x0000")


def _serve(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sgx_quote_helper", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_startup_failures_are_one_line_with_the_fix(
    shims: Shims, run_dir: Path, device_flags: dict[str, str], tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SGX_")}
    # Options from the environment and from TOML, like every daemon option.
    env["SGX_QUOTE_HELPER_DCAP_LIBRARY"] = str(shims.library)
    config = tmp_path / "serve.toml"
    config.write_text(
        f'dcap-quote-provider = "{shims.quote_provider}"\n'
        f'sgx-enclave-device = "{tmp_path / "no-such-device"}"\n'
        f'sgx-provision-device = "{device_flags["sgx_provision_device"]}"\n'
    )
    done = _serve(
        "--backend",
        "dcap",
        "--socket",
        str(run_dir / "aesm.socket"),
        "--config",
        str(config),
        env=env,
    )
    assert done.returncode == 1
    # One line saying what failed, then what to do.
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith("sgx-quote-helper: error: dcap backend, device ")
    assert "no-such-device does not exist" in lines[0]
    assert lines[1].startswith("  check: run on an SGX node")
    assert not (run_dir / "aesm.socket").exists()

    done = _serve(
        "--backend",
        "dcap",
        "--socket",
        str(run_dir / "aesm.socket"),
        "--dcap-library",
        str(tmp_path / "libsgx_dcap_ql.so.1"),
        "--sgx-enclave-device",
        device_flags["sgx_enclave_device"],
        "--sgx-provision-device",
        device_flags["sgx_provision_device"],
        env={**env, "SGX_AESM_ADDR": ""},
    )
    assert done.returncode == 1
    assert "cannot load" in done.stderr
    assert "install libsgx-dcap-ql" in done.stderr
    # The variable was removed (and said so) before the library was loaded.
    assert "daemon.sgx_aesm_addr_unset" in done.stderr
