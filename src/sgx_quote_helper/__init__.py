"""sgx-quote-helper: out-of-process attestation for Intel SGX.

The package layers (imports point down only) are described in the project's
README and ``docs/architecture.md``.
"""

from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError, UsageError

__all__ = [
    "PCE_SVN",
    "QE_SVN",
    "ParseError",
    "SgxQuoteHelperError",
    "UsageError",
    "__version__",
]
