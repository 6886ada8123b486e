"""Errors of the simulated manufacturer and its collateral service.

The HTTP application maps them to PCCS status codes in one place
(``_app.py``): a bad request is 400, something the manufacturer does not know
is 404, and nothing a client sends can cause a 500.
"""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError, UsageError


class PcsError(CodedError):
    """A failure of the simulated manufacturer (``pcs``)."""


class ManufacturerDirectoryError(PcsError):
    """The manufacturer directory (``DIR/pcs``) is missing, incomplete or malformed."""


class PolicyError(PcsError):
    """The TCB policy file or a requested policy change is invalid."""


class InvalidArgumentError(PcsError, UsageError):
    """A caller passed a value the manufacturer can never use (a usage error, exit status 2).

    A serial number no X.509 certificate can carry, a PCCS URL that is not one.
    """


class InvalidRequestError(PcsError):
    """A request names values of the wrong size or range (HTTP 400)."""


class NotFoundError(PcsError):
    """The manufacturer has nothing for this request (HTTP 404)."""


class PlatformNotFoundError(NotFoundError):
    """No registered platform matches the QE-ID / encrypted PPID of a request."""


class FmspcNotFoundError(NotFoundError):
    """No TCB information exists for this FMSPC."""


class EvaluationDataNumberNotFoundError(NotFoundError):
    """Collateral for this TCB evaluation data number is not available."""
