"""What a check returns: a status, one line of summary, the fix, the SGX codes, details."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sgx_quote_helper.explain import explain, guide
from sgx_quote_helper.sgx import AesmError, Quote3Error, QvResult, SgxStatus


class CheckStatus(enum.StrEnum):
    """The outcome of one check. Only ``FAIL`` makes ``doctor`` exit non-zero."""

    PASS = "pass"  # noqa: S105 (a check outcome, not a password)
    WARN = "warn"
    FAIL = "fail"
    #: The check's input was not given, or a check it depends on failed.
    SKIP = "skip"


@dataclass(frozen=True)
class StatusCode:
    """An SGX/AESM/DCAP status code named in a result, with what it means (``explain``)."""

    family: str
    value: int
    name: str
    meaning: str

    @property
    def hex(self) -> str:
        """As Intel's tools print it (``0x4001``); AESM codes are decimal on the wire."""
        if self.family == "aesm_error_t":
            return str(self.value)
        return f"0x{self.value:04X}"

    def label(self) -> str:
        """``SGX_ERROR_SERVICE_UNAVAILABLE 0x4001``."""
        return f"{self.name} {self.hex}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "value": self.value,
            "hex": self.hex,
            "name": self.name,
            "meaning": self.meaning,
        }

    @classmethod
    def of(cls, member: SgxStatus | AesmError | Quote3Error | QvResult) -> StatusCode:
        """The code of an enum member, with ``explain``'s meaning for its family."""
        family = member.c_type()
        meaning = next(
            (e.meaning for e in explain(int(member)) if e.family == family),
            "",
        )
        return cls(family=family, value=int(member), name=member.c_name, meaning=meaning)


def codes_of(
    *members: SgxStatus | AesmError | Quote3Error | QvResult | None,
) -> tuple[StatusCode, ...]:
    """The codes of the members given (``None`` skipped, duplicates dropped), in order."""
    seen: set[tuple[str, int]] = set()
    codes: list[StatusCode] = []
    for member in members:
        if member is None:
            continue
        code = StatusCode.of(member)
        if (code.family, code.value) not in seen:
            seen.add((code.family, code.value))
            codes.append(code)
    return tuple(codes)


def _frozen(details: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(details or {}))


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome.

    ``summary`` is one line; ``fix`` says what to do (empty on a pass or skip);
    ``codes`` are the SGX status codes that apply (the ``sgx_status_t`` and the
    DCAP ``quote3_error_t`` an application would see, the daemon's AESM code, a
    verifier's ``sgx_ql_qv_result_t``); ``details`` are JSON-ready facts.
    """

    name: str
    status: CheckStatus
    summary: str
    fix: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))
    codes: tuple[StatusCode, ...] = ()

    @classmethod
    def make(
        cls,
        name: str,
        status: CheckStatus,
        summary: str,
        *,
        fix: Iterable[str] = (),
        details: Mapping[str, Any] | None = None,
        codes: Iterable[StatusCode] = (),
    ) -> CheckResult:
        return cls(name, status, summary, tuple(fix), _frozen(details), tuple(codes))

    @property
    def failed(self) -> bool:
        return self.status is CheckStatus.FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "fix": list(self.fix),
            "codes": [code.to_dict() for code in self.codes],
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DoctorReport:
    """Every check, in order, and the overall verdict."""

    checks: tuple[CheckResult, ...]

    @property
    def overall(self) -> CheckStatus:
        """``fail`` if any check failed, else ``warn`` if any warned, else ``pass``."""
        statuses = {check.status for check in self.checks}
        if CheckStatus.FAIL in statuses:
            return CheckStatus.FAIL
        if CheckStatus.WARN in statuses:
            return CheckStatus.WARN
        return CheckStatus.PASS

    @property
    def exit_code(self) -> int:
        """1 when a check failed; skips and warnings do not fail."""
        return 1 if self.overall is CheckStatus.FAIL else 0

    def check(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {
            status.value: sum(c.status is status for c in self.checks) for status in CheckStatus
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.value,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "checks": [check.to_dict() for check in self.checks],
        }


def checks_for(member: SgxStatus | Quote3Error | QvResult) -> list[str]:
    """``explain``'s "what to check" for a code, in its own family."""
    return guide(member)


def skipped(name: str, reason: str) -> CheckResult:
    """A check not run: its input was not given, or a check it needs failed."""
    return CheckResult.make(name, CheckStatus.SKIP, reason)
