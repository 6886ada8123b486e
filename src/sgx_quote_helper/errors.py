"""The package's exception hierarchy: one root, one coded base, typed leaves.

Every error that can reach a user says what happened and what to check. An
error that corresponds to SGX status codes derives from :class:`CodedError`,
which carries them (``sgx_status_t``, ``aesm_error_t``, ``quote3_error_t``,
``sgx_ql_qv_result_t``: whichever apply, in the order the failure crossed the
layers), the hint lines, and the one ``diagnostics()`` format::

    <what happened> [<C name> <value>; <C name> <value>]
      <label>: <context, such as the socket or URL involved>
      check: <what to check, most specific first>

The first line is ``str(error)`` and stands on its own in a log. Hints the
raising code knows (the path, the errno, the peer's uid) travel with the
error. What a *code* means in general (which flag, which mount, which device)
is user guidance that lives in :mod:`sgx_quote_helper.explain`, above the
layers that raise; whoever shows an error to people passes its ``guide`` to
``diagnostics(guide)`` so that an error without hints of its own still says
what to check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol


class ErrorCode(Protocol):
    """One status code: a member of an enum of :mod:`sgx_quote_helper.sgx`.

    Declared structurally so that this module, usable by every layer, imports
    none of them.
    """

    @property
    def c_name(self) -> str:
        """The full C name, e.g. ``SGX_ERROR_MAC_MISMATCH``."""
        ...

    @property
    def display_value(self) -> str:
        """The value as Intel's tools print it (``0x3001``; AESM codes in decimal)."""
        ...

    def __int__(self) -> int: ...


#: What to check for a status code, most specific first (``explain.guide``).
Guide = Callable[[ErrorCode], Sequence[str]]


def code_text(code: ErrorCode) -> str:
    """A code as every error names it: ``SGX_ERROR_MAC_MISMATCH 0x3001``."""
    return f"{code.c_name} {code.display_value}"


class SgxQuoteHelperError(Exception):
    """Root of every error raised by this package."""

    def diagnostics(self, guide: Guide | None = None) -> str:
        """A text for people: what went wrong and what to check."""
        return str(self)


class CodedError(SgxQuoteHelperError):
    """An error naming the status codes it stands for, with what to check.

    ``codes`` lists the codes most relevant first (a leaf may compute them from
    its own attributes by overriding :meth:`codes`); ``hints`` are the lines a
    user can act on, most specific first (a leaf may give class-level ones).
    """

    #: What to check, most specific first; a leaf may set class-level hints.
    hints: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        codes: Sequence[ErrorCode] = (),
        hints: Sequence[str] | None = None,
    ) -> None:
        super().__init__(message)
        #: What happened, without the codes.
        self.message = message
        self._codes = tuple(codes)
        if hints is not None:
            self.hints = tuple(hints)

    def codes(self) -> tuple[ErrorCode, ...]:
        """The status codes this error stands for, most relevant first."""
        return self._codes

    def headline(self) -> str:
        """What happened, as the first line begins (a leaf may prefix context)."""
        return self.message

    def details(self) -> list[tuple[str, str]]:
        """Labelled context lines (the socket, the URL, the codes at each layer)."""
        return []

    def __str__(self) -> str:
        codes = self.codes()
        if not codes:
            return self.headline()
        return f"{self.headline()} [{'; '.join(code_text(code) for code in codes)}]"

    def diagnostics(self, guide: Guide | None = None) -> str:
        """``str(self)``, the context lines, and one ``check:`` line per hint.

        Without hints of its own the error asks ``guide`` (if given) what to
        check for each of its codes.
        """
        lines = [str(self)]
        lines.extend(f"  {label}: {value}" for label, value in self.details())
        hints = list(self.hints)
        if not hints and guide is not None:
            for code in self.codes():
                hints.extend(hint for hint in guide(code) if hint not in hints)
        lines.extend(f"  check: {hint}" for hint in hints)
        return "\n".join(lines)


class ParseError(CodedError, ValueError):
    """Bytes that do not decode as the structure they claim to be.

    This is the only exception any decoder in the package raises on bad input.
    """


class UsageError(CodedError):
    """The caller used an API or command wrongly (no SGX status applies)."""
