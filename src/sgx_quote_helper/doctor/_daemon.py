"""Checks 3 and 4: the daemon answers as Intel's client expects; a test quote."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sgx_quote_helper._net import BOUNDED_LIMITS, BodyRefused, get_bounded, http_base_url
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.aesm import PUB_KEY_ID_SIZE
from sgx_quote_helper.client import (
    DEFAULT_TIMEOUT,
    AesmClient,
    QuoteClientError,
    ReportRejectedError,
    ServiceTimeoutError,
    UnexpectedError,
    trim_quote,
)
from sgx_quote_helper.doctor._result import CheckResult, CheckStatus, checks_for, codes_of
from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.pccs import quote_fmspc_and_ca
from sgx_quote_helper.platform import Platform, PlatformError, demo_app_identity
from sgx_quote_helper.sgx import (
    ATT_KEY_ID_MATCH_LEN,
    DEFAULT_ECDSA_ATT_KEY_ID,
    AesmError,
    Quote,
    Quote3Error,
    Report,
    SgxStatus,
    TargetInfo,
)

#: REPORTDATA of the doctor's test quote, so it is recognisable in daemon logs.
TEST_REPORT_DATA = b"sgx-quote-helper doctor test quote".ljust(64, b"\0")


@dataclass(frozen=True)
class DaemonFacts:
    """What the daemon check learnt, for the quote check."""

    socket_path: str
    att_key_id: bytes
    target_info: TargetInfo
    quote_size: int
    build_info: Mapping[str, str] | None = None


#: The largest /metrics page read from an admin listener (the daemon's is a few KiB).
MAX_METRICS_SIZE = 1024 * 1024

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_BUILD_INFO_METRIC = "sgx_quote_helper_build_info"


def parse_build_info(text: str) -> dict[str, str] | None:
    """The labels of ``sgx_quote_helper_build_info`` in Prometheus text, if present."""
    for line in text.splitlines():
        if line.startswith(_BUILD_INFO_METRIC + "{"):
            labels = line[len(_BUILD_INFO_METRIC) + 1 : line.rfind("}")]
            return {
                key: value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                for key, value in _LABEL.findall(labels)
            }
    return None


def fetch_build_info(admin_url: str, timeout: float) -> dict[str, str]:
    """GET the daemon's ``/metrics`` and read its build info.

    The answer is read as the PCCS client reads one (``_net.get_bounded``): at
    most :data:`MAX_METRICS_SIZE` bytes, within ``timeout`` seconds in all.
    Raises :class:`ConnectionError` when the listener cannot be reached, is too
    slow, sends too much or is not a quote helper's, :class:`UsageError` when
    ``admin_url`` is not an ``http(s)://HOST[:PORT]`` URL.
    """
    url = http_base_url(admin_url, what="--admin-url")
    if not url.endswith("/metrics"):
        url += "/metrics"
    try:
        with httpx.Client(limits=BOUNDED_LIMITS) as http:
            response = get_bounded(http, url, timeout=timeout, max_bytes=MAX_METRICS_SIZE)
    except httpx.TimeoutException as exc:
        raise ConnectionError(f"no complete answer from {url} within {timeout:g}s") from exc
    except (httpx.HTTPError, BodyRefused) as exc:
        raise ConnectionError(f"cannot fetch {url}: {exc}") from exc
    if response.status_code != 200:
        raise ConnectionError(f"{url} answered HTTP {response.status_code}")
    info = parse_build_info(response.text)
    if info is None:
        raise ConnectionError(f"{url} has no {_BUILD_INFO_METRIC} (not a quote helper?)")
    return info


def client_failure(name: str, what: str, exc: QuoteClientError) -> CheckResult:
    """A failed quote-ex call as a result, with the codes at every layer."""
    aesm: AesmError | None = None
    if exc.aesm_error is not None:
        try:
            aesm = AesmError(exc.aesm_error)
        except ValueError:
            aesm = None
    summary = f"{what}: {exc.message}"
    if isinstance(exc, ServiceTimeoutError):
        summary = f"{what}: the daemon is hung or overloaded ({exc.message})"
    elif isinstance(exc, UnexpectedError) and "closed the connection" in exc.message:
        summary = (
            f"{what}: {exc.message} (refused by the daemon's allow-list, its connection limit, "
            "or a shutdown)"
        )
    call = exc.call.value if exc.call is not None else None
    return CheckResult.make(
        name,
        CheckStatus.FAIL,
        summary,
        fix=list(exc.hints) or checks_for(exc.sgx_status),
        details={"call": call, "where": exc.where, "aesm_error": exc.aesm_error},
        codes=codes_of(exc.sgx_status, exc.quote3_error, aesm),
    )


def check_daemon(
    socket_path: str, *, timeout: float = DEFAULT_TIMEOUT, admin_url: str | None = None
) -> tuple[CheckResult, DaemonFacts | None]:
    """The calls an application makes before quoting, as Intel's client and DCAP make them.

    GetSupportedAttKeyIDNum and GetSupportedAttKeyIDs (Intel's default ECDSA
    key id must be among them), InitQuoteEx as a size query (32-byte public key
    id, else DCAP fails with 0xE001) and for real (the QE's target info), and
    GetQuoteSizeEx (spec aesm-wire.md sections 8 and 9).
    """
    name = "daemon"
    details: dict[str, Any] = {"socket": socket_path, "timeout": timeout}
    try:
        answers = _ask_daemon(AesmClient(socket_path, timeout=timeout), socket_path, details)
    except QuoteClientError as exc:
        return client_failure(name, f"the daemon on {socket_path} failed", exc), None
    if isinstance(answers, CheckResult):
        return answers, None
    mr_enclave = answers.target_info.mr_enclave.hex()
    details.update(qe_mr_enclave=mr_enclave, quote_size=answers.quote_size)
    summary = (
        f"the daemon on {socket_path} answers: {answers.key_id_count} attestation key id(s) "
        f"including Intel's default ECDSA P-256 id, QE target info (MRENCLAVE "
        f"{mr_enclave[:16]}...), quote size {answers.quote_size} bytes"
    )
    status = CheckStatus.PASS
    fix: list[str] = []
    build: dict[str, str] | None = None
    if admin_url is not None:
        try:
            build = fetch_build_info(admin_url, timeout)
        except ConnectionError as exc:
            status = CheckStatus.WARN
            summary += f"; its admin listener gave no build info ({exc})"
            fix = [
                "Check --admin-url against the daemon's --admin-listen (HOST:PORT); /metrics "
                "carries sgx_quote_helper_build_info with the release and hosted QE/PCE SVNs."
            ]
        else:
            details["build_info"] = build
            summary += (
                f"; release {build.get('version', '?')}, backend {build.get('backend', '?')}, "
                f"hosting QE SVN {build.get('qe_svn', '?')} and PCE SVN "
                f"{build.get('pce_svn', '?')}"
            )
    facts = DaemonFacts(
        socket_path, _DEFAULT_KEY_ID, answers.target_info, answers.quote_size, build
    )
    return CheckResult.make(name, status, summary, fix=fix, details=details), facts


_DEFAULT_KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()


@dataclass(frozen=True)
class _DaemonAnswers:
    key_id_count: int
    target_info: TargetInfo
    quote_size: int


def _ask_daemon(
    aesm: AesmClient, socket_path: str, details: dict[str, Any]
) -> _DaemonAnswers | CheckResult:
    """The four calls in order; the first answer a DCAP client would refuse is the result."""

    def refused(summary: str, fix: str, *codes: SgxStatus | Quote3Error) -> CheckResult:
        return CheckResult.make(
            "daemon", CheckStatus.FAIL, summary, fix=[fix], details=details, codes=codes_of(*codes)
        )

    count = aesm.get_supported_att_key_id_num()
    ids = aesm.get_supported_att_key_ids(count) if count > 0 else []
    prefix = _DEFAULT_KEY_ID[:ATT_KEY_ID_MATCH_LEN]
    has_default = any(key[:ATT_KEY_ID_MATCH_LEN] == prefix for key in ids)
    details.update(att_key_id_num=count, default_ecdsa_key_id=has_default)
    if not has_default:
        return refused(
            f"the daemon on {socket_path} lists {count} attestation key id(s), none of them "
            "Intel's default ECDSA P-256 id that DCAP clients hard-code",
            "Clients ask for the default ECDSA key id (QE3 MRSIGNER, prod id 1, algorithm "
            "2) and get SGX_ERROR_UNSUPPORTED_ATT_KEY_ID: run a daemon with the ECDSA "
            "quoting backend (the quote helper, or aesmd with libsgx-aesm-ecdsa-plugin) "
            "rather than an EPID-only aesmd.",
            SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID,
            Quote3Error.UNSUPPORTED_ATT_KEY_ID,
        )
    size_query = aesm.init_quote_ex(_DEFAULT_KEY_ID, pub_key_id=False)
    details["pub_key_id_size"] = size_query.pub_key_id_size
    if size_query.pub_key_id_size != PUB_KEY_ID_SIZE:
        return refused(
            f"init quote (size query) reports a {size_query.pub_key_id_size}-byte public "
            f"key id; DCAP requires {PUB_KEY_ID_SIZE} for ECDSA and fails the call",
            "The daemon is not AESM-compatible for ECDSA; check its version and log.",
            SgxStatus.ERROR_UNEXPECTED,
            Quote3Error.ERROR_UNEXPECTED,
        )
    init = aesm.init_quote_ex(_DEFAULT_KEY_ID, pub_key_id=True)
    if not any(init.target_info.to_bytes()):
        return refused(
            "init quote returned an all-zero QE target info",
            "The daemon's QE did not initialise; see the daemon's log.",
            SgxStatus.ERROR_UNEXPECTED,
            Quote3Error.ERROR_UNEXPECTED,
        )
    quote_size = aesm.get_quote_size_ex(_DEFAULT_KEY_ID)
    return _DaemonAnswers(count, init.target_info, quote_size)


# ---------------------------------------------------------------------------
# 4. quote
# ---------------------------------------------------------------------------


def check_quote(
    facts: DaemonFacts, platform_dir: str, *, timeout: float = DEFAULT_TIMEOUT
) -> tuple[CheckResult, bytes | None]:
    """A test quote: the demo enclave's REPORT for the QE, made on ``platform_dir``'s CPU."""
    details: dict[str, Any] = {"platform": platform_dir}
    report = _test_report(facts, platform_dir, details)
    if isinstance(report, CheckResult):
        return report, None
    quote = _test_quote(facts, report, platform_dir, details, timeout)
    if isinstance(quote, CheckResult):
        return quote, None
    try:
        parsed = Quote.from_bytes(quote)
    except ParseError as exc:
        return (
            CheckResult.make(
                "quote",
                CheckStatus.FAIL,
                f"the daemon returned a {len(quote)}-byte quote that does not parse: {exc}",
                fix=["The daemon is not DCAP-compatible or has a bug; see its version and log."],
                details=details,
                codes=codes_of(SgxStatus.ERROR_UNEXPECTED, Quote3Error.ERROR_UNEXPECTED),
            ),
            None,
        )
    return _quote_passed(quote, parsed, details), quote


def _test_report(
    facts: DaemonFacts, platform_dir: str, details: dict[str, Any]
) -> Report | CheckResult:
    """The demo enclave's REPORT for the QE, made as an application makes it."""
    try:
        # The application side: only the enclave secret (/dev/sgx_enclave).
        platform = Platform.load(platform_dir, need_provisioning=False)
        return platform.cpu().ereport(demo_app_identity(), facts.target_info, TEST_REPORT_DATA)
    except PlatformError as exc:
        status = exc.sgx_status or SgxStatus.ERROR_NO_DEVICE
        return CheckResult.make(
            "quote",
            CheckStatus.FAIL,
            f"cannot make a REPORT on the platform {platform_dir}: {exc}",
            fix=[
                "--platform names the simulated platform directory (DIR/platform of "
                "`sim init DIR`) whose CPU the daemon serves; the application side needs "
                "read access to its enclave.secret (the simulated /dev/sgx_enclave)."
            ],
            details=details,
            codes=codes_of(status),
        )


def _test_quote(
    facts: DaemonFacts,
    report: Report,
    platform_dir: str,
    details: dict[str, Any],
    timeout: float,
) -> bytes | CheckResult:
    """GetQuoteEx for the test REPORT, trimmed to the quote's size."""
    name = "quote"
    aesm = AesmClient(facts.socket_path, timeout=timeout)
    try:
        buffer = aesm.get_quote_ex(report, facts.att_key_id, facts.quote_size).quote
        return trim_quote(buffer)
    except ReportRejectedError as exc:
        result = client_failure(name, "the QE refused the test REPORT", exc)
        hint = (
            f"The REPORT was made for the QE's target info on {platform_dir}, so the daemon "
            "serves another platform (its REPORT keys differ): pass the --platform the daemon "
            "was started with (serve --platform), or the daemon restarted between the two calls."
        )
        return CheckResult.make(
            name,
            result.status,
            result.summary,
            fix=[hint, *result.fix],
            details={**result.details, **details},
            codes=result.codes,
        )
    except QuoteClientError as exc:
        return client_failure(name, "the daemon failed to quote", exc)


def _quote_passed(quote: bytes, parsed: Quote, details: dict[str, Any]) -> CheckResult:
    """What the test quote shows: its versions, and where its PCK chain points."""
    header = parsed.header
    details.update(
        size=len(quote),
        version=header.version,
        qe_svn=header.qe_svn,
        pce_svn=header.pce_svn,
        has_pck_chain=parsed.has_pck_chain,
        release_qe_svn=QE_SVN,
        release_pce_svn=PCE_SVN,
    )
    summary = (
        f"a {len(quote)}-byte SGX quote v{header.version} for the demo enclave: "
        f"QE SVN {header.qe_svn}, PCE SVN {header.pce_svn}"
    )
    if parsed.has_pck_chain:
        try:
            fmspc, ca = quote_fmspc_and_ca(quote)
        except ParseError:
            summary += ", PCK certificate chain included"
        else:
            details.update(fmspc=fmspc, ca_type=ca)
            summary += f", PCK chain for FMSPC {fmspc} ({ca} CA)"
    else:
        summary += ", no PCK certificate chain (collateral needs the FMSPC from --platform)"
    notes: list[str] = []
    if (header.qe_svn, header.pce_svn) != (QE_SVN, PCE_SVN):
        notes.append(
            f"this release of sgx-quote-helper hosts QE SVN {QE_SVN} and PCE SVN {PCE_SVN}; "
            "the daemon hosts other versions"
        )
    details["notes"] = notes
    return CheckResult.make("quote", CheckStatus.PASS, summary, details=details)
