"""The package's exception hierarchy: one root, typed leaves.

Every error that can reach a user says what happened and what to check. Leaves
that correspond to an SGX status carry it, so callers and the CLI can name the
code (hex and name) as Intel's tools do.
"""

from __future__ import annotations


class SgxQuoteHelperError(Exception):
    """Root of every error raised by this package."""

    def diagnostics(self) -> str:
        """A text for people: what went wrong and what to check."""
        return str(self)


class ParseError(SgxQuoteHelperError, ValueError):
    """Bytes that do not decode as the structure they claim to be.

    This is the only exception any decoder in the package raises on bad input.
    """


class UsageError(SgxQuoteHelperError):
    """The caller used an API or command wrongly (no SGX status applies)."""
