"""``doctor``: check a node's out-of-process attestation set-up, one step at a time.

Each check is a function returning a typed :class:`CheckResult` (pass, warn,
fail or skip, a one-line summary, the fix, the SGX status codes that apply and
JSON-ready details); :func:`run_doctor` runs them in order and returns a
:class:`DoctorReport`. The library never exits and never raises for what it
diagnoses; the ``doctor`` command prints the report. See ``docs/doctor.md``.

Layering: above ``client``, ``verify``, ``pccs`` and ``platform``; below the CLI.
"""

from sgx_quote_helper.doctor._collateral import (
    DEFAULT_WARN_WITHIN,
    ValidityItem,
    assess_validity,
    check_pccs,
    check_tcb,
    collateral_items,
)
from sgx_quote_helper.doctor._daemon import (
    TEST_REPORT_DATA,
    DaemonFacts,
    check_daemon,
    check_quote,
    fetch_build_info,
    parse_build_info,
)
from sgx_quote_helper.doctor._fs import (
    Identity,
    may_access,
    parse_mount_points,
    permission_class,
)
from sgx_quote_helper.doctor._local import check_environment, check_socket
from sgx_quote_helper.doctor._node import check_node
from sgx_quote_helper.doctor._result import (
    CheckResult,
    CheckStatus,
    DoctorReport,
    StatusCode,
    codes_of,
)
from sgx_quote_helper.doctor._run import CHECK_NAMES, DoctorOptions, run_doctor

__all__ = [
    "CHECK_NAMES",
    "DEFAULT_WARN_WITHIN",
    "TEST_REPORT_DATA",
    "CheckResult",
    "CheckStatus",
    "DaemonFacts",
    "DoctorOptions",
    "DoctorReport",
    "Identity",
    "StatusCode",
    "ValidityItem",
    "assess_validity",
    "check_daemon",
    "check_environment",
    "check_node",
    "check_pccs",
    "check_quote",
    "check_socket",
    "check_tcb",
    "codes_of",
    "collateral_items",
    "fetch_build_info",
    "may_access",
    "parse_build_info",
    "parse_mount_points",
    "permission_class",
    "run_doctor",
]
