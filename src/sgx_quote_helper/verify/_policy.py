"""Appraisal: does a *genuine* quote attest what the relying party accepts?

Verification says the quote came from a real (or, with a simulated root,
simulated) SGX platform and how current that platform is. Appraisal then applies
the relying party's own rules: which enclave (MRENCLAVE/MRSIGNER, product,
minimum SVN), what it must have put in REPORTDATA, which TCB statuses and
advisories are tolerable, how old collateral may be, no debug enclaves.

Each rule is a small object with ``appraise(result)`` that returns nothing or
raises :class:`AppraisalError` naming the claim, what was expected and what the
quote has. :class:`AllOf` and :class:`AnyOf` compose them; an empty ``AllOf`` is
refused because it would accept every quote.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sgx_quote_helper._fs import MiB, parse_toml, read_limited
from sgx_quote_helper.errors import CodedError, UsageError
from sgx_quote_helper.sgx import REPORT_DATA_SIZE, TcbStatus
from sgx_quote_helper.verify._result import VerificationResult

MEASUREMENT_SIZE = 32


@dataclass(frozen=True)
class ClaimFailure:
    """One claim of the quote that the policy does not accept."""

    claim: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.claim}: expected {self.expected}, got {self.actual}"

    def to_dict(self) -> dict[str, str]:
        return {"claim": self.claim, "expected": self.expected, "actual": self.actual}


class AppraisalError(CodedError):
    """The quote verified, but the appraisal policy rejects what it attests.

    No status code applies, and the failed claims in the one line (what was
    expected, what the quote has) say what to change, so it carries no hints.
    """

    def __init__(self, failures: Sequence[ClaimFailure], *, summary: str | None = None) -> None:
        self.failures = tuple(failures)
        self.summary = summary
        body = "; ".join(str(f) for f in self.failures) or "no claim failed"
        super().__init__(f"{summary}: {body}" if summary else body)

    def headline(self) -> str:
        return (
            f"appraisal failed: {self.message} (the quote is genuine, but the policy does "
            "not accept it)"
        )


class Policy(Protocol):
    """An appraisal rule: returns if ``result`` is acceptable, else raises AppraisalError."""

    def appraise(self, result: VerificationResult) -> None: ...


def _fail(claim: str, expected: str, actual: str) -> AppraisalError:
    return AppraisalError([ClaimFailure(claim, expected, actual)])


def _hex_value(value: bytes | str, what: str, *, size: int | None = None) -> bytes:
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise UsageError(f"{what} must be hex, got {value!r}") from exc
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise UsageError(f"{what} must be hex text or bytes, got {type(value).__name__}")
    if size is not None and len(raw) != size:
        raise UsageError(f"{what} must be {size} bytes ({2 * size} hex), got {len(raw)} bytes")
    return raw


def _one_of(values: Sequence[bytes]) -> str:
    if len(values) == 1:
        return values[0].hex()
    return "one of [" + ", ".join(v.hex() for v in values) + "]"


def _non_negative(value: int, what: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise UsageError(f"{what} must be an integer 0..{limit}, got {value!r}")
    return value


class _Measurement:
    claim = ""
    what = ""

    def __init__(self, *values: bytes | str) -> None:
        if not values:
            raise UsageError(f"{type(self).__name__} needs at least one {self.what}")
        self.values = tuple(_hex_value(v, self.what, size=MEASUREMENT_SIZE) for v in values)

    def _actual(self, result: VerificationResult) -> bytes:
        raise NotImplementedError

    def appraise(self, result: VerificationResult) -> None:
        actual = self._actual(result)
        if not any(hmac.compare_digest(actual, v) for v in self.values):
            raise _fail(self.claim, _one_of(self.values), actual.hex())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(v.hex()) for v in self.values)})"


class MrEnclave(_Measurement):
    """The enclave's MRENCLAVE (its code and initial data) is one of ``values``."""

    claim = "mr_enclave"
    what = "MRENCLAVE"

    def _actual(self, result: VerificationResult) -> bytes:
        return result.report.mr_enclave


class MrSigner(_Measurement):
    """The enclave's MRSIGNER (hash of its signing key) is one of ``values``."""

    claim = "mr_signer"
    what = "MRSIGNER"

    def _actual(self, result: VerificationResult) -> bytes:
        return result.report.mr_signer


class IsvProdId:
    """The enclave's ISVPRODID equals ``value``."""

    def __init__(self, value: int) -> None:
        self.value = _non_negative(value, "ISVPRODID", 0xFFFF)

    def appraise(self, result: VerificationResult) -> None:
        if result.report.isv_prod_id != self.value:
            raise _fail("isv_prod_id", str(self.value), str(result.report.isv_prod_id))

    def __repr__(self) -> str:
        return f"IsvProdId({self.value})"


class MinIsvSvn:
    """The enclave's ISVSVN is at least ``value`` (refuses older, vulnerable builds)."""

    def __init__(self, value: int) -> None:
        self.value = _non_negative(value, "ISVSVN", 0xFFFF)

    def appraise(self, result: VerificationResult) -> None:
        if result.report.isv_svn < self.value:
            raise _fail("isv_svn", f">= {self.value}", str(result.report.isv_svn))

    def __repr__(self) -> str:
        return f"MinIsvSvn({self.value})"


class ReportData:
    """REPORTDATA equals ``value``, zero-padded to 64 bytes (as SGX stores shorter data)."""

    def __init__(self, value: bytes | str) -> None:
        raw = _hex_value(value, "report data")
        if len(raw) > REPORT_DATA_SIZE:
            raise UsageError(f"report data is at most {REPORT_DATA_SIZE} bytes, got {len(raw)}")
        self.value = raw.ljust(REPORT_DATA_SIZE, b"\x00")

    def appraise(self, result: VerificationResult) -> None:
        actual = result.report.report_data
        if not hmac.compare_digest(actual, self.value):
            raise _fail("report_data", self.value.hex(), actual.hex())

    def __repr__(self) -> str:
        return f"ReportData({self.value.hex()!r})"


class ReportDataPrefix:
    """REPORTDATA starts with ``value`` (e.g. a 32-byte hash; the rest is not judged)."""

    def __init__(self, value: bytes | str) -> None:
        raw = _hex_value(value, "report data prefix")
        if not 1 <= len(raw) <= REPORT_DATA_SIZE:
            raise UsageError(f"report data prefix must be 1..{REPORT_DATA_SIZE} bytes")
        self.value = raw

    def appraise(self, result: VerificationResult) -> None:
        actual = result.report.report_data[: len(self.value)]
        if not hmac.compare_digest(actual, self.value):
            raise _fail(f"report_data[0:{len(self.value)}]", self.value.hex(), actual.hex())

    def __repr__(self) -> str:
        return f"ReportDataPrefix({self.value.hex()!r})"


class AcceptStatuses:
    """The converged TCB status is one of ``statuses`` (default: ``UpToDate`` only).

    Anything but ``UpToDate`` means known vulnerabilities apply to the platform;
    accept them only for the advisories you have judged (see RejectAdvisories).
    """

    def __init__(self, *statuses: TcbStatus | str) -> None:
        try:
            parsed = tuple(TcbStatus.parse(str(s)) for s in statuses)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        self.statuses = parsed or (TcbStatus.UP_TO_DATE,)

    def appraise(self, result: VerificationResult) -> None:
        if result.status not in self.statuses:
            expected = " or ".join(s.value for s in self.statuses)
            raise _fail(
                "status",
                expected,
                f"{result.status.value} ({result.qv_result.c_name} "
                f"{result.qv_result.display_value}; advisories "
                f"{', '.join(result.advisory_ids) or 'none'})",
            )

    def __repr__(self) -> str:
        return f"AcceptStatuses({', '.join(repr(s.value) for s in self.statuses)})"


class RejectAdvisories:
    """None of the advisory IDs ``ids`` (e.g. ``INTEL-SA-00615``) applies to the platform."""

    def __init__(self, *ids: str) -> None:
        if not ids:
            raise UsageError("RejectAdvisories needs at least one advisory id")
        self.ids = tuple(i.strip().upper() for i in ids)

    def appraise(self, result: VerificationResult) -> None:
        present = [a for a in result.advisory_ids if a.upper() in self.ids]
        if present:
            raise _fail("advisory_ids", f"none of {', '.join(self.ids)}", ", ".join(present))

    def __repr__(self) -> str:
        return f"RejectAdvisories({', '.join(map(repr, self.ids))})"


class MaxCollateralAge:
    """The collateral was issued at most ``seconds`` before the verification time.

    The age counts from the older of the TCB Info and QE Identity issue dates,
    so it bounds how stale the TCB evaluation may be (e.g. from a cache).
    """

    def __init__(self, seconds: int) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise UsageError(f"MaxCollateralAge needs a non-negative integer, got {seconds!r}")
        self.seconds = seconds

    def appraise(self, result: VerificationResult) -> None:
        age = result.collateral_age_seconds
        if age > self.seconds:
            raise _fail("collateral_age", f"<= {self.seconds}s", f"{age}s")

    def __repr__(self) -> str:
        return f"MaxCollateralAge({self.seconds})"


class NoDebug:
    """The enclave is not a debug enclave (ATTRIBUTES.DEBUG clear).

    dcap-qvl 0.7.0 already refuses debug enclaves during verification; this rule
    states the requirement explicitly and holds whatever the engine does.
    """

    def appraise(self, result: VerificationResult) -> None:
        if result.report.attributes.debug:
            raise _fail("debug", "false", "true")

    def __repr__(self) -> str:
        return "NoDebug()"


class UnsafeNoAppraisal:
    """Accept every quote that verifies, whatever it attests: the explicit opt-out.

    :meth:`Verifier.verify` requires a policy, so that forgetting one is a type
    error rather than an accepted ``OutOfDate`` quote from any enclave. This
    policy checks nothing: not the enclave's identity (MRENCLAVE, MRSIGNER), not
    its report data, not the debug flag, and not the TCB status (a quote from an
    out-of-date or misconfigured platform is accepted). Verification itself still
    runs in full: the quote is genuine, chains to the trust anchor, its
    collateral is current, and a revoked platform is still refused.

    Use it only where the caller appraises the result itself, or only reports the
    verdict (``doctor``, the ``verify`` command, which applies its own policy
    afterwards). The name says "Unsafe" so that a review sees it.
    """

    def appraise(self, result: VerificationResult) -> None:
        return None

    def __repr__(self) -> str:
        return "UnsafeNoAppraisal()"


def _child_failures(
    policies: Sequence[Policy], result: VerificationResult
) -> Iterator[tuple[ClaimFailure, ...] | None]:
    """Each child policy's verdict in order: ``None`` where it accepts, else its failures."""
    for policy in policies:
        try:
            policy.appraise(result)
        except AppraisalError as exc:
            yield exc.failures
        else:
            yield None


class _Combination:
    """Child policies combined; ``_empty_message`` says why none is refused."""

    _empty_message = ""

    def __init__(self, *policies: Policy) -> None:
        if not policies:
            raise UsageError(self._empty_message)
        self.policies = policies

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.policies))})"


class AllOf(_Combination):
    """Every child policy accepts; all failures are reported, not just the first."""

    _empty_message = "an empty AllOf would accept every quote; give it at least one rule"

    def appraise(self, result: VerificationResult) -> None:
        failures = [
            failure
            for verdict in _child_failures(self.policies, result)
            for failure in verdict or ()
        ]
        if failures:
            raise AppraisalError(failures)


class AnyOf(_Combination):
    """At least one child policy accepts (e.g. old or new MRENCLAVE during a rollout)."""

    _empty_message = "an empty AnyOf can accept nothing; give it at least one rule"

    def appraise(self, result: VerificationResult) -> None:
        failures: list[ClaimFailure] = []
        for verdict in _child_failures(self.policies, result):
            if verdict is None:
                return
            failures.extend(verdict)
        raise AppraisalError(
            failures, summary=f"none of {len(self.policies)} alternatives accepted the quote"
        )


# -- policy files ------------------------------------------------------------

_RULE_KEYS = frozenset(
    {
        "mrenclave",
        "mrsigner",
        "isv_prod_id",
        "min_isv_svn",
        "report_data",
        "report_data_prefix",
        "accept_statuses",
        "reject_advisories",
        "max_collateral_age",
        "any_of",
    }
)
_TOP_KEYS = _RULE_KEYS | {"allow_debug"}


def _strings(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"policy key {key!r} must be a string or a non-empty list of strings")


def _rules(data: Mapping[str, Any], where: str) -> list[Policy]:
    rules: list[Policy] = []
    if "mrenclave" in data:
        rules.append(MrEnclave(*_strings(data["mrenclave"], "mrenclave")))
    if "mrsigner" in data:
        rules.append(MrSigner(*_strings(data["mrsigner"], "mrsigner")))
    if "isv_prod_id" in data:
        rules.append(IsvProdId(data["isv_prod_id"]))
    if "min_isv_svn" in data:
        rules.append(MinIsvSvn(data["min_isv_svn"]))
    if "report_data" in data:
        rules.append(ReportData(_strings(data["report_data"], "report_data")[0]))
    if "report_data_prefix" in data:
        rules.append(
            ReportDataPrefix(_strings(data["report_data_prefix"], "report_data_prefix")[0])
        )
    if "accept_statuses" in data:
        rules.append(AcceptStatuses(*_strings(data["accept_statuses"], "accept_statuses")))
    if "reject_advisories" in data:
        rules.append(RejectAdvisories(*_strings(data["reject_advisories"], "reject_advisories")))
    if "max_collateral_age" in data:
        rules.append(MaxCollateralAge(data["max_collateral_age"]))
    if "any_of" in data:
        alternatives = data["any_of"]
        if not isinstance(alternatives, list) or not all(isinstance(a, dict) for a in alternatives):
            raise UsageError(f"{where}: 'any_of' must be an array of tables ([[any_of]])")
        rules.append(
            AnyOf(*(_alternative(a, f"{where}.any_of[{i}]") for i, a in enumerate(alternatives)))
        )
    return rules


def _alternative(data: Mapping[str, Any], where: str) -> Policy:
    unknown = sorted(set(data) - _RULE_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown policy keys {unknown} (known: {sorted(_RULE_KEYS)})")
    rules = _rules(data, where)
    if not rules:
        raise UsageError(f"{where}: an empty alternative would accept every quote")
    return rules[0] if len(rules) == 1 else AllOf(*rules)


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """The policy a TOML document (or the CLI options) describe; see docs/verification.md.

    Top-level rules must all hold. Unless given, ``accept_statuses`` is
    ``["UpToDate"]``, and debug enclaves are refused unless ``allow_debug = true``.
    """
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise UsageError(f"unknown policy keys {unknown} (known: {sorted(_TOP_KEYS)})")
    rules = _rules(data, "policy")
    if "accept_statuses" not in data:
        rules.append(AcceptStatuses())
    allow_debug = data.get("allow_debug", False)
    if not isinstance(allow_debug, bool):
        raise UsageError("policy key 'allow_debug' must be true or false")
    if not allow_debug:
        rules.append(NoDebug())
    return AllOf(*rules)


#: The largest policy file read; a real one is a few hundred bytes of TOML.
MAX_POLICY_FILE_SIZE = 1 * MiB


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read an appraisal policy from a TOML file (UTF-8, at most MAX_POLICY_FILE_SIZE)."""
    name = os.fspath(path)
    try:
        data = parse_toml(read_limited(path, MAX_POLICY_FILE_SIZE, "an appraisal policy (TOML)"))
    except OSError as exc:
        raise UsageError(f"cannot read policy file {name!r}: {exc}") from exc
    except ValueError as exc:
        raise UsageError(f"policy file {name!r} is not valid TOML: {exc}") from exc
    return policy_from_mapping(data)


def appraise(result: VerificationResult, policy: Policy) -> tuple[ClaimFailure, ...]:
    """Apply ``policy``; the failures (empty when it accepts). Never raises AppraisalError."""
    try:
        policy.appraise(result)
    except AppraisalError as exc:
        return exc.failures or (ClaimFailure("policy", "accept", "rejected"),)
    return ()
