"""The demo's one error."""

from __future__ import annotations

from sgx_quote_helper.errors import CodedError


class DemoError(CodedError):
    """A demo step did not show what it should; the message says what happened."""
