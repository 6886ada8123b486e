"""Check 7: the SGX node under a ``dcap`` daemon (devices, Intel's libraries, the QE).

The same start-up checks the ``dcap`` backend runs (``backends.DcapBackend``),
in the same order, reported as one result: the SGX device nodes, Intel's quote
library (name and version), a quote provider library, and a first
``sgx_qe_get_target_info`` (QE3 and PCE load, the attestation key certifies).

On a machine without SGX (no ``/dev/sgx_enclave`` and no quote library) the
check is skipped, not failed. In a process that has ``SGX_AESM_ADDR`` set (an
application container) the library would quote through the daemon, so the
last step is skipped there: the ``daemon`` check covers it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

from sgx_quote_helper.backends import (
    DcapBackend,
    DcapOptions,
    DcapStartupError,
    QuoteError,
    check_dcap_devices,
    check_quote_provider,
)
from sgx_quote_helper.doctor._result import CheckResult, CheckStatus, codes_of, skipped
from sgx_quote_helper.sgx import Quote3Error


def _library_present(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def _quote3(code: int | None) -> Quote3Error | None:
    if code is None:
        return None
    try:
        return Quote3Error(code)
    except ValueError:
        return None


def check_node(options: DcapOptions, environ: Mapping[str, str]) -> CheckResult:
    """The dcap backend's start-up checks, as a doctor result."""
    name = "node"
    device = options.enclave_device
    if not device.exists() and not _library_present(options.library):
        return skipped(
            name,
            f"not an SGX node ({device} and {options.library} are both absent); the dcap "
            "backend's checks apply only on SGX hardware",
        )
    details: dict[str, Any] = {}
    try:
        details["devices"] = check_dcap_devices(options.enclave_device, options.provision_device)
        details["quote_provider"] = check_quote_provider(options)
        if "SGX_AESM_ADDR" in environ:
            return CheckResult.make(
                name,
                CheckStatus.PASS,
                "SGX devices usable, quote provider library present; QE not loaded here "
                "(SGX_AESM_ADDR is set: this process quotes through the daemon)",
                details=details,
            )
        # A private copy of the environment: the backend removes SGX_AESM_ADDR
        # from what it is given, and doctor's own mode must not change.
        backend = DcapBackend(options, environ=dict(environ))
        try:
            details["library_version"] = backend.library_version
            details["qe3_logic"] = backend.qe3_logic
            target_info = backend.init_quote(backend.supported_att_key_ids()[0].base).target_info
            details["qe_mr_enclave"] = target_info.mr_enclave.hex()
        finally:
            backend.close()
    except DcapStartupError as exc:
        return CheckResult.make(
            name,
            CheckStatus.FAIL,
            f"{exc.check}: {exc.problem}",
            fix=[exc.fix],
            details=details,
            codes=codes_of(_quote3(exc.code)),
        )
    except QuoteError as exc:
        return CheckResult.make(
            name,
            CheckStatus.FAIL,
            f"the quoting enclave could not produce its target info: {exc.detail}",
            fix=[
                "check the quote provider's PCCS configuration and that this platform is "
                "registered there (docs/backends.md)"
            ],
            details=details,
            codes=codes_of(_quote3(exc.code)),
        )
    version = details.get("library_version") or "unknown version"
    return CheckResult.make(
        name,
        CheckStatus.PASS,
        f"SGX devices usable, {options.library} ({version}) loaded, quote provider present, "
        "QE3 target info obtained",
        details=details,
    )
