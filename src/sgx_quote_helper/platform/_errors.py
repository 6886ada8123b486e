"""Errors of the simulated platform, each naming the SGX status it stands for.

The simulated CPU and enclaves fail where real ones fail, and with the
``sgx_status_t`` the real SDK would return (linux-sgx ``common/inc/sgx_error.h``),
so that a message can name the code a user would search for.
"""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError, ErrorCode
from sgx_quote_helper.sgx import SgxStatus

# The sgx_status_t values the simulated platform fails with.
SGX_ERROR_MAC_MISMATCH = SgxStatus.ERROR_MAC_MISMATCH
SGX_ERROR_INVALID_ATTRIBUTE = SgxStatus.ERROR_INVALID_ATTRIBUTE
SGX_ERROR_INVALID_CPUSVN = SgxStatus.ERROR_INVALID_CPUSVN
SGX_ERROR_INVALID_ISVSVN = SgxStatus.ERROR_INVALID_ISVSVN
SGX_ERROR_INVALID_KEYNAME = SgxStatus.ERROR_INVALID_KEYNAME
SGX_ERROR_SERVICE_INVALID_PRIVILEGE = SgxStatus.ERROR_SERVICE_INVALID_PRIVILEGE
SGX_ERROR_ATT_KEY_UNINITIALIZED = SgxStatus.ERROR_ATT_KEY_UNINITIALIZED


class PlatformError(CodedError):
    """A simulated-platform failure; ``sgx_status`` is set where SGX has a code."""

    sgx_status: SgxStatus | None = None

    def __init__(
        self,
        message: str,
        *,
        sgx_status: SgxStatus | None = None,
        hints: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(message, hints=hints)
        if sgx_status is not None:
            self.sgx_status = sgx_status

    def codes(self) -> tuple[ErrorCode, ...]:
        return () if self.sgx_status is None else (self.sgx_status,)


class PlatformDirectoryError(PlatformError):
    """The platform directory is missing, incomplete or malformed."""


class ProvisioningAccessError(PlatformError):
    """This process may not read the platform's provisioning secret.

    The simulated counterpart of lacking access to ``/dev/sgx_provision``: only
    the quote helper (the process hosting the PCE) may derive PCK keys.
    """

    sgx_status = SGX_ERROR_SERVICE_INVALID_PRIVILEGE


class KeyRequestError(PlatformError):
    """EGETKEY refused a key request (attribute, SVN or key name not allowed)."""


class ReportMacError(PlatformError):
    """A REPORT's MAC does not verify for this enclave (forged or mis-targeted)."""

    sgx_status = SGX_ERROR_MAC_MISMATCH


class SealError(PlatformError):
    """A sealed blob is corrupted, truncated, or sealed for another enclave."""

    sgx_status = SGX_ERROR_MAC_MISMATCH


class ManifestError(PlatformError):
    """An enclave manifest is malformed; the message names the offending key."""


class CertificationError(PlatformError):
    """The PCE refused to certify an enclave (it lacks PROVISION_KEY, or bad TCB)."""
