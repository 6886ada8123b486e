"""The AESM layer's remote error.

Errors are split as in h11: a *remote* error (the peer sent bytes that are not a
valid frame or message) is :class:`AesmProtocolError`; a *local* error (the
caller misused this API, for instance a value out of range or a reply of the
wrong type) is :class:`sgx_quote_helper.errors.UsageError`.
"""

from __future__ import annotations

from sgx_quote_helper.errors import ErrorCode, ParseError
from sgx_quote_helper.sgx import SgxStatus


class AesmProtocolError(ParseError):
    """The peer on the AESM socket sent something that is not valid protocol.

    Intel's client reports every such failure (a reply that does not parse, a
    reply without the expected response field, EOF inside a frame) as
    ``SGX_ERROR_UNEXPECTED`` (0x0001); see spec/aesm-wire.md section 7.2.
    """

    #: ``sgx_status_t`` Intel's client returns for a malformed exchange (section 7.2).
    sgx_status = SgxStatus.ERROR_UNEXPECTED
    hints = (
        "The other end of the AESM socket does not speak the AESM protocol as Intel's "
        "aesmd does: check that the socket belongs to an AESM-compatible service and that "
        "neither side was stopped in the middle of an exchange.",
    )

    def codes(self) -> tuple[ErrorCode, ...]:
        return (self.sgx_status,)
