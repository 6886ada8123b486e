"""The client library: what applications use to get their enclave's REPORT quoted.

Two levels, each blocking and asyncio:

- **High level, DCAP's shape** (most applications)::

      from sgx_quote_helper import client

      q = client.quoter(platform_dir=...)    # mode from SGX_AESM_ADDR, read once
      target = q.get_target_info()            # the QE's target info
      report = ...                            # EREPORT in the enclave, for `target`
      quote = q.get_quote(report)             # exactly the quote's bytes

  ``out_of_process()`` and ``in_process()`` choose the mode explicitly; the
  first mode used is the process's mode, and using the other one raises
  :class:`ModeConflictError`.

- **Low level**, one method per ``libsgx_quote_ex`` call with Intel's semantics
  and status mapping: :class:`AesmClient` / :class:`AsyncAesmClient`.

Failures raise :class:`QuoteClientError` leaves carrying the ``sgx_status_t``
and the DCAP ``quote3_error_t``; ``diagnostics()`` says what to check (pass
``sgx_quote_helper.explain.guide`` to get the general advice for the codes of
an error the client has no specific hints for). See ``docs/client.md``.
"""

from sgx_quote_helper.backends import QuoteResult
from sgx_quote_helper.client._entry import (
    async_in_process,
    async_out_of_process,
    async_quoter,
    out_of_process,
    quoter,
)
from sgx_quote_helper.client._errors import (
    AttestationKeyNotInitializedError,
    AttKeyCertificationError,
    InvalidParameterError,
    ModeConflictError,
    NetworkFailureError,
    NoDeviceError,
    PlatformCertUnavailableError,
    ProvisioningAccessDeniedError,
    QeReportVerificationError,
    QuoteClientError,
    ReportRejectedError,
    ServiceBusyError,
    ServiceTimeoutError,
    ServiceUnavailableError,
    UnexpectedError,
    UnsupportedAttKeyIdError,
)
from sgx_quote_helper.client._inproc import (
    AsyncInProcessQuoter,
    InProcessQuoter,
    default_state_dir,
    in_process,
)
from sgx_quote_helper.client._mode import (
    DEFAULT_SOCKET_DIRECTORY,
    DEFAULT_SOCKET_PATH,
    ENV_VAR,
    SOCKET_MOUNT_ADVICE,
    Mode,
    ModeChoice,
    _reset_mode_for_tests,
    choice_from_environ,
    current_mode,
    environment_choice,
    socket_path_from_value,
)
from sgx_quote_helper.client._quote_ex import (
    AesmClient,
    AsyncAesmClient,
    GetQuoteExResult,
    InitQuoteExResult,
)
from sgx_quote_helper.client._quoter import (
    AsyncOutOfProcessQuoter,
    AsyncQuoter,
    OutOfProcessQuoter,
    QeReportMacCheck,
    Quoter,
    RetryPolicy,
    sim_qe_report_mac_check,
    trim_quote,
    verify_qe_report,
)
from sgx_quote_helper.client._transport import DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_SOCKET_DIRECTORY",
    "DEFAULT_SOCKET_PATH",
    "DEFAULT_TIMEOUT",
    "ENV_VAR",
    "SOCKET_MOUNT_ADVICE",
    "AesmClient",
    "AsyncAesmClient",
    "AsyncInProcessQuoter",
    "AsyncOutOfProcessQuoter",
    "AsyncQuoter",
    "AttKeyCertificationError",
    "AttestationKeyNotInitializedError",
    "GetQuoteExResult",
    "InProcessQuoter",
    "InitQuoteExResult",
    "InvalidParameterError",
    "Mode",
    "ModeChoice",
    "ModeConflictError",
    "NetworkFailureError",
    "NoDeviceError",
    "OutOfProcessQuoter",
    "PlatformCertUnavailableError",
    "ProvisioningAccessDeniedError",
    "QeReportMacCheck",
    "QeReportVerificationError",
    "QuoteClientError",
    "QuoteResult",
    "Quoter",
    "ReportRejectedError",
    "RetryPolicy",
    "ServiceBusyError",
    "ServiceTimeoutError",
    "ServiceUnavailableError",
    "UnexpectedError",
    "UnsupportedAttKeyIdError",
    "_reset_mode_for_tests",
    "async_in_process",
    "async_out_of_process",
    "async_quoter",
    "choice_from_environ",
    "current_mode",
    "default_state_dir",
    "environment_choice",
    "in_process",
    "out_of_process",
    "quoter",
    "sim_qe_report_mac_check",
    "socket_path_from_value",
    "trim_quote",
    "verify_qe_report",
]
