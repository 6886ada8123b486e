"""Checks 5 and 6: the PCCS and its collateral's validity; the TCB status of the test quote."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from sgx_quote_helper._time import format_time, parse_time
from sgx_quote_helper.doctor._result import (
    CheckResult,
    CheckStatus,
    StatusCode,
    checks_for,
    codes_of,
)
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.pccs import DEFAULT_TIMEOUT as PCCS_DEFAULT_TIMEOUT
from sgx_quote_helper.pccs import (
    Collateral,
    PccsClient,
    PccsError,
    PccsNotFound,
    PccsPlatformNotFound,
    PccsResponseError,
    PccsUnreachable,
    quote_fmspc_and_ca,
)
from sgx_quote_helper.platform import Platform, PlatformError
from sgx_quote_helper.sgx import Quote3Error
from sgx_quote_helper.verify import (
    CollateralExpired,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    VerificationError,
    VerificationResult,
    Verifier,
)

#: Collateral expiring sooner than this is a warning.
DEFAULT_WARN_WITHIN = timedelta(days=7)


@dataclass(frozen=True)
class ValidityItem:
    """One piece of collateral and its validity window."""

    name: str
    issued: datetime
    next_update: datetime
    #: The DCAP code a verifier reports once it has expired.
    expired_code: Quote3Error

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "issued": format_time(self.issued),
            "next_update": format_time(self.next_update),
        }


def _ago(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    if seconds >= 86400:
        amount = f"{seconds / 86400:.1f} days"
    elif seconds >= 3600:
        amount = f"{seconds / 3600:.1f} hours"
    else:
        amount = f"{seconds / 60:.0f} minutes"
    return f"in {amount}" if delta.total_seconds() >= 0 else f"{amount} ago"


def _crl_item(name: str, der: bytes) -> ValidityItem:
    crl = x509.load_der_x509_crl(der)
    next_update = crl.next_update_utc
    if next_update is None:
        raise ParseError(f"{name} has no nextUpdate")
    return ValidityItem(name, crl.last_update_utc, next_update, Quote3Error.SGX_CRL_EXPIRED)


def _signed_item(name: str, document: Mapping[str, Any], code: Quote3Error) -> ValidityItem:
    return ValidityItem(
        name,
        parse_time(document.get("issueDate"), f"{name} issueDate"),
        parse_time(document.get("nextUpdate"), f"{name} nextUpdate"),
        code,
    )


def collateral_items(collateral: Collateral, ca: str) -> list[ValidityItem]:
    """The validity windows of the four pieces of verification collateral."""
    try:
        return [
            _signed_item(
                "TCB Info", collateral.tcb_info_object(), Quote3Error.SGX_TCB_INFO_EXPIRED
            ),
            _signed_item(
                "QE Identity",
                collateral.qe_identity_object(),
                Quote3Error.SGX_ENCLAVE_IDENTITY_EXPIRED,
            ),
            _crl_item(f"PCK CRL ({ca} CA)", collateral.pck_crl),
            _crl_item("root CA CRL", collateral.root_ca_crl),
        ]
    except ValueError as exc:  # ParseError, or a CRL that does not decode
        raise ParseError(f"collateral cannot be read: {exc}") from exc


def assess_validity(
    items: list[ValidityItem], now: datetime, warn_within: timedelta
) -> tuple[CheckStatus, list[str], tuple[StatusCode, ...]]:
    """Expired or not-yet-valid collateral fails; collateral expiring soon warns."""
    problems: list[str] = []
    codes: list[Quote3Error] = []
    status = CheckStatus.PASS
    for item in items:
        if item.next_update <= now:
            status = CheckStatus.FAIL
            problems.append(
                f"{item.name} expired: nextUpdate {format_time(item.next_update)} "
                f"({_ago(item.next_update - now)})"
            )
            codes.append(item.expired_code)
        elif item.issued > now:
            status = CheckStatus.FAIL
            problems.append(
                f"{item.name} is not valid yet: issued {format_time(item.issued)} "
                f"({_ago(item.issued - now)})"
            )
            codes.append(item.expired_code)
    if status is CheckStatus.PASS:
        for item in items:
            if item.next_update - now <= warn_within:
                status = CheckStatus.WARN
                problems.append(
                    f"{item.name} expires {_ago(item.next_update - now)} "
                    f"(nextUpdate {format_time(item.next_update)})"
                )
                codes.append(item.expired_code)
    return status, problems, codes_of(*codes)


_PCCS_FAILURES: dict[type[PccsError], str] = {
    PccsUnreachable: "is unreachable",
    PccsNotFound: "has no collateral for this platform",
    PccsPlatformNotFound: "has no PCK certificate for this platform",
    PccsResponseError: "answered with something that is not PCCS v4",
}


def _pccs_failure(url: str, exc: PccsError) -> CheckResult:
    fix = [*exc.hints, *checks_for(exc.quote3_error)]
    if isinstance(exc, PccsUnreachable):
        fix.append(
            "A quote helper that gets PCK certificates from this PCCS answers init quote with "
            "AESM 12 (SGX_ERROR_NETWORK_FAILURE 0x4007, DCAP 0xE041) until it is reachable; "
            "verifiers cannot fetch collateral either."
        )
    return CheckResult.make(
        "pccs",
        CheckStatus.FAIL,
        f"the PCCS at {url} {_PCCS_FAILURES.get(type(exc), 'failed')}: {exc.message}",
        fix=fix,
        details={"url": url, "error": type(exc).__name__},
        codes=codes_of(exc.quote3_error),
    )


def check_pccs(
    url: str,
    *,
    quote: bytes | None = None,
    platform_dir: str | None = None,
    now: datetime | None = None,
    warn_within: timedelta = DEFAULT_WARN_WITHIN,
    timeout: float = PCCS_DEFAULT_TIMEOUT,
    insecure: bool = False,
    ca_file: str | None = None,
) -> tuple[CheckResult, Collateral | None]:
    """The PCCS answers, and the collateral it serves is within its validity at ``now``.

    The FMSPC and CA type come from the test quote's PCK certificate, else from
    the platform directory; with neither, the TCB Info (per FMSPC) is left out.
    """
    details: dict[str, Any] = {"url": url}
    fmspc, ca = _fmspc_and_ca(quote, platform_dir)
    notes: list[str] = []
    collateral: Collateral | None = None
    try:
        with PccsClient(url, timeout=timeout, verify_tls=not insecure, ca_file=ca_file) as pccs:
            if fmspc is not None:
                collateral = pccs.get_collateral(fmspc=fmspc, ca=ca)
                items = collateral_items(collateral, ca)
                details.update(
                    fmspc=fmspc,
                    ca_type=ca,
                    tcb_evaluation_data_number=collateral.tcb_evaluation_data_number,
                )
            else:
                items = _platform_independent_items(pccs, notes)
    except PccsError as exc:
        return _pccs_failure(url, exc), None
    except (ParseError, ValueError) as exc:
        return _unreadable_collateral(url, exc, details), None
    details["collateral"] = [item.to_dict() for item in items]
    details["notes"] = notes
    if now is None:
        now = datetime.now(UTC)  # after the fetch: the collateral may be issued just now
    target = f" for FMSPC {fmspc} ({ca} CA)" if fmspc else ""
    return _validity_result(url, target, items, now, warn_within, details), collateral


def _fmspc_and_ca(quote: bytes | None, platform_dir: str | None) -> tuple[str | None, str]:
    """The FMSPC (hex) and PCK CA type to ask for: from the quote, else the platform."""
    fmspc: str | None = None
    ca = "processor"
    if quote is not None:
        try:
            fmspc, ca = quote_fmspc_and_ca(quote)
        except ParseError:
            fmspc = None
    if fmspc is None and platform_dir is not None:
        try:
            description = Platform.load(platform_dir, need_provisioning=False).description
            fmspc = description.fmspc.hex().upper()
        except PlatformError:
            fmspc = None
    return fmspc, ca


def _platform_independent_items(pccs: PccsClient, notes: list[str]) -> list[ValidityItem]:
    """Without an FMSPC: QE Identity and the CRLs (TCB Info is per FMSPC)."""
    qe_identity = pccs.get_qe_identity()
    items = [
        _signed_item(
            "QE Identity",
            qe_identity.inner,
            Quote3Error.SGX_ENCLAVE_IDENTITY_EXPIRED,
        ),
        _crl_item("PCK CRL (processor CA)", pccs.get_pck_crl("processor").crl),
    ]
    try:
        items.append(_crl_item("root CA CRL", pccs.get_root_ca_crl()))
    except PccsNotFound:
        notes.append("the PCCS has no /rootcacrl (Intel PCS); root CA CRL not checked")
    notes.append("TCB Info not checked: it is per FMSPC; give --platform")
    return items


def _unreadable_collateral(url: str, exc: Exception, details: dict[str, Any]) -> CheckResult:
    return CheckResult.make(
        "pccs",
        CheckStatus.FAIL,
        f"the PCCS at {url} served collateral that cannot be read: {exc}",
        fix=["Check that the URL is a PCCS v4 and see its log."],
        details=details,
        codes=codes_of(Quote3Error.MESSAGE_ERROR),
    )


def _validity_result(
    url: str,
    target: str,
    items: list[ValidityItem],
    now: datetime,
    warn_within: timedelta,
    details: dict[str, Any],
) -> CheckResult:
    """PASS with the earliest expiry, WARN when some expire soon, FAIL when some are invalid."""
    name = "pccs"
    status, problems, codes = assess_validity(items, now, warn_within)
    earliest = min(items, key=lambda item: item.next_update)
    if status is CheckStatus.PASS:
        summary = (
            f"the PCCS at {url} serves collateral{target}, valid until "
            f"{format_time(earliest.next_update)} "
            f"({earliest.name}, {_ago(earliest.next_update - now)})"
        )
        return CheckResult.make(name, status, summary, details=details)
    if status is CheckStatus.WARN:
        fix = [
            f"Collateral expiring within {warn_within.days} days: make sure the PCCS refreshes "
            "it before then (Intel's PCCS refreshes on its schedule or on an admin refresh "
            "request; a caching verifier keeps a copy until its nextUpdate).",
        ]
        summary = f"the PCCS at {url} serves collateral{target} that expires soon: " + "; ".join(
            problems
        )
        return CheckResult.make(name, status, summary, fix=fix, details=details, codes=codes)
    fix = [
        "Verifiers refuse expired collateral (dcap-qvl fails; Intel's QvE flags "
        "collateral_expiration_status): refresh the PCCS's cache from Intel PCS (Intel's "
        "PCCS: its refresh schedule or the admin refresh request), and check that it can "
        "reach Intel.",
        "Check this machine's clock (and the PCCS host's): a clock far off makes valid "
        "collateral look expired or not yet valid.",
        "In simulation: sgx-quote-helper sim expire DIR --clear restores valid issuance.",
    ]
    summary = f"the PCCS at {url} serves invalid collateral{target}: " + "; ".join(problems)
    return CheckResult.make(name, status, summary, fix=fix, details=details, codes=codes)


# ---------------------------------------------------------------------------
# 6. tcb
# ---------------------------------------------------------------------------

_REFUSED_STATUSES = (TcbStatus.OUT_OF_DATE, TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED)


def _tcb_fix(result: VerificationResult) -> list[str]:
    fix: list[str] = []
    qe_svn = result.qe_report.isv_svn
    if result.qe_tcb.status is not TcbStatus.UP_TO_DATE:
        fix.append(
            f"The QE Identity rates the daemon's QE (ISVSVN {qe_svn}) "
            f"{result.qe_tcb.status.value}: upgrade the quote helper to a release hosting a "
            "newer QE; every out-of-process application moves with the daemon, none needs a "
            "rebuild."
        )
    if result.platform_tcb.status is not TcbStatus.UP_TO_DATE:
        fix.append(
            f"The platform TCB level is {result.platform_tcb.status.value}: update the BIOS / "
            "microcode (CPUSVN) or the PCE, or change the configuration the advisories name "
            "(in simulation the manufacturer's policy decides: sim show DIR)."
        )
    if result.advisory_ids:
        fix.append(f"Advisories: {', '.join(result.advisory_ids)}.")
    fix.append(
        "Relying parties that accept only UpToDate (the verify command's default) refuse "
        "this quote."
    )
    return fix


def check_tcb(
    quote: bytes, collateral: Collateral, root_ca: str, *, now: datetime | None = None
) -> CheckResult:
    """Verify the test quote with the project's verifier; report its TCB status."""
    name = "tcb"
    details: dict[str, Any] = {"root_ca": root_ca}
    try:
        anchor = TrustAnchor.from_file(root_ca)
    except SgxQuoteHelperError as exc:
        return CheckResult.make(
            name,
            CheckStatus.FAIL,
            f"cannot load the trust anchor --root-ca {root_ca}: {exc.diagnostics(guide)}",
            fix=["Pass the root CA certificate (DER or PEM): DIR/pcs/root-ca.der in simulation."],
            details=details,
        )
    try:
        # The checks below judge the status themselves (and say what to do about it).
        result = Verifier(anchor).verify(quote, collateral, policy=UnsafeNoAppraisal(), now=now)
    except VerificationError as exc:
        fix = list(exc.hints)
        if isinstance(exc, CollateralExpired):
            fix.append("See the pccs check: the collateral has to be refreshed.")
        details.update(error=type(exc).__name__, engine_message=exc.engine_message)
        return CheckResult.make(
            name,
            CheckStatus.FAIL,
            f"the test quote does not verify: {exc.message}",
            fix=fix,
            details=details,
            codes=codes_of(exc.qv_result, exc.quote3_error),
        )
    status = result.status
    qv = result.qv_result
    details.update(
        status=status.value,
        qv_result={"value": int(qv), "hex": qv.display_value, "name": qv.c_name},
        platform_tcb=result.platform_tcb.status.value,
        qe_tcb=result.qe_tcb.status.value,
        qe_svn=result.qe_report.isv_svn,
        advisory_ids=list(result.advisory_ids),
        simulated=result.simulated,
        tcb_evaluation_data_number=result.tcb_evaluation_data_number,
    )
    summary = (
        f"the test quote verifies {status.value} ({qv.c_name} {qv.display_value}): platform "
        f"TCB {result.platform_tcb.status.value}, QE TCB {result.qe_tcb.status.value} (QE SVN "
        f"{result.qe_report.isv_svn}), advisories {', '.join(result.advisory_ids) or 'none'}"
    )
    if result.simulated:
        summary += "; trust anchor is not Intel's (simulated)"
    codes = codes_of(qv)
    if status is TcbStatus.UP_TO_DATE:
        return CheckResult.make(name, CheckStatus.PASS, summary, details=details, codes=codes)
    verdict = CheckStatus.FAIL if status in _REFUSED_STATUSES else CheckStatus.WARN
    return CheckResult.make(
        name, verdict, summary, fix=_tcb_fix(result), details=details, codes=codes
    )
