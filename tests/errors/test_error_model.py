"""The one error model: every error under the root, one coded base, one format."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import sgx_quote_helper
from sgx_quote_helper.aesm import AesmProtocolError
from sgx_quote_helper.backends import QuoteError
from sgx_quote_helper.client import QuoteClientError
from sgx_quote_helper.errors import CodedError, ParseError, SgxQuoteHelperError, UsageError
from sgx_quote_helper.pccs import PccsError
from sgx_quote_helper.pcs import PcsError
from sgx_quote_helper.platform import PlatformError
from sgx_quote_helper.sgx import AesmError, Quote3Error, SgxStatus
from sgx_quote_helper.verify import AppraisalError, VerificationError


def _package_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(sgx_quote_helper.__path__, "sgx_quote_helper."):
        if info.name.endswith(("__main__", "_pb2")):
            continue
        module = importlib.import_module(info.name)
        for _name, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == info.name:
                found.append(value)
    return found


CLASSES = _package_exception_classes()


def test_the_walk_finds_the_package_errors() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"PlatformError", "QuoteClientError", "KeyAgreementError", "DemoError"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=[f"{c.__module__}.{c.__name__}" for c in CLASSES])
def test_every_exception_class_derives_from_the_root(cls: type[BaseException]) -> None:
    assert issubclass(cls, SgxQuoteHelperError)


def test_attestation_key_not_initialized_is_defined_once() -> None:
    defined = [cls for cls in CLASSES if cls.__name__ == "AttestationKeyNotInitializedError"]
    assert len(defined) == 1
    assert issubclass(defined[0], QuoteClientError)


@pytest.mark.parametrize(
    "family",
    [
        PlatformError,
        AesmProtocolError,
        PccsError,
        PcsError,
        QuoteError,
        VerificationError,
        AppraisalError,
        QuoteClientError,
        ParseError,
        UsageError,
    ],
)
def test_the_coded_families_share_one_base(family: type[CodedError]) -> None:
    assert issubclass(family, CodedError)
    assert family.diagnostics is CodedError.diagnostics
    assert family.__str__ is CodedError.__str__


def test_the_one_format() -> None:
    class Leaf(CodedError):
        hints = ("the class-level hint",)

        def details(self) -> list[tuple[str, str]]:
            return [("socket", "/run/x.socket")]

    error = Leaf("it failed", codes=(SgxStatus.ERROR_BUSY, Quote3Error.ERROR_BUSY, AesmError.BUSY))
    assert str(error) == "it failed [SGX_ERROR_BUSY 0x400A; SGX_QL_ERROR_BUSY 0xE043; AESM_BUSY 18]"
    assert error.diagnostics().splitlines() == [
        str(error),
        "  socket: /run/x.socket",
        "  check: the class-level hint",
    ]
    # Hints given per instance replace the class's; no codes means no brackets.
    plain = Leaf("plain", hints=["first", "second"])
    assert plain.diagnostics().splitlines() == [
        "plain",
        "  socket: /run/x.socket",
        "  check: first",
        "  check: second",
    ]


def test_an_unknown_quote3_value_is_still_named() -> None:
    assert str(QuoteError(0xE0FE, "newer DCAP")) == "newer DCAP [unknown quote3_error_t 0xE0FE]"
