"""Why a remote attestation exchange failed: one root, three leaves."""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError


class ExchangeError(CodedError):
    """The exchange stopped at ``step``; ``reason`` is the cause in words a person can act on.

    ``reason`` is often the ``diagnostics()`` of the error behind it, codes and
    hints included, so this error carries none of its own.
    """

    def __init__(self, step: str, reason: str, *, cause_type: str | None = None) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason
        #: The type name of the error behind it (e.g. ``InvalidSignature``, ``AppraisalError``).
        self.cause_type = cause_type or type(self).__name__

    def headline(self) -> str:
        return f"remote attestation failed at step {self.step!r}: {self.reason}"


class ChannelError(ExchangeError):
    """The connection to the peer failed: closed, timed out, or a malformed frame."""


class PeerRejectedError(ExchangeError):
    """We refused the peer's evidence: its quote did not verify or appraise."""

    def __init__(
        self, step: str, reason: str, *, cause_type: str, status: str | None = None
    ) -> None:
        super().__init__(step, reason, cause_type=cause_type)
        #: The peer's verified TCB status, when verification itself passed.
        self.status = status


class RefusedByPeerError(ExchangeError):
    """The peer refused *our* evidence; ``reason`` is the reason it sent."""
