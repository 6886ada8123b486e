"""Quote verification: a genuine quote from a trusted platform, or a typed error."""

from __future__ import annotations

import functools
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from sgx_quote_helper._time import Clock, parse_time, utc_now
from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.pccs import CaType, Collateral, PccsClient, pck_fmspc_and_ca
from sgx_quote_helper.sgx import (
    INTEL_QE_VENDOR_ID,
    PckCertChain,
    Quote,
    QuoteHeader,
    ReportBody,
    TcbStatus,
)
from sgx_quote_helper.verify._anchor import TrustAnchor, root_key_id
from sgx_quote_helper.verify._collateral import (
    DEFAULT_MAX_COLLATERAL_AGE,
    CollateralCache,
    CollateralSource,
    FetchedCollateral,
    PccsCollateralSource,
)
from sgx_quote_helper.verify._engine import make_engine, run_engine, run_verdict
from sgx_quote_helper.verify._errors import (
    MalformedQuote,
    Revoked,
    UnrecognizedEngineError,
    UnsupportedQuote,
    UntrustedRoot,
    VerificationError,
)
from sgx_quote_helper.verify._policy import Policy
from sgx_quote_helper.verify._result import TcbLevelResult, VerificationResult, build_result

#: How many quote headers with certification data a verifier remembers (the oldest
#: is forgotten first): one per QE attestation key it sees.
MAX_REMEMBERED_CERTIFICATIONS = 1024

# An SGX v3 quote (dcap-quote.md section 1): header [0, 48), ISV report body
# [48, 432), signature data length [432, 436), then the signature data, which
# opens with the ISV signature [436, 500) and goes on with the attestation key,
# the QE report, its signature, the QE auth data and the certification data.
_BODY = slice(48, 432)
_SIGNATURE_END = 500

#: Intel's QvE requires exactly leaf, intermediate CA and root (sgx_qve_def.h).
PCK_CHAIN_LENGTH = 3

Timestamp = int | float | datetime


def to_datetime(value: Timestamp | None) -> datetime:
    """A verification time: Unix seconds or an aware datetime; ``None`` is now."""
    if value is None:
        return datetime.fromtimestamp(int(time.time()), UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError("the verification time must be timezone-aware (e.g. UTC)")
        try:
            moment = value.astimezone(UTC)
        except OverflowError:
            moment = None
    else:
        try:
            moment = datetime.fromtimestamp(int(value), UTC)
        except (OverflowError, OSError, ValueError):
            moment = None
    # dcap-qvl takes the time as unsigned Unix seconds: nothing before the epoch.
    if moment is None or moment.timestamp() < 0:
        raise UsageError(
            f"the verification time must be from 1970-01-01 to 9999-12-31 UTC, got {value!r}"
        )
    return moment


class Verifier:
    """Verifies SGX DCAP quotes against one trust anchor, with dcap-qvl as the engine.

    ``Verifier()`` trusts Intel's SGX root only. A simulated or private root is
    trusted only when passed explicitly (``Verifier(TrustAnchor.from_file(...))``)
    and every result then says ``simulated``. Collateral is passed to
    :meth:`verify`, or fetched from ``pccs`` (a URL or a
    :class:`~sgx_quote_helper.pccs.PccsClient`). Fetched collateral the engine
    accepted is kept by this instance, in memory and in ``cache_dir`` if given,
    until its ``nextUpdate`` or ``max_collateral_age`` after the fetch, whichever
    comes first (``timedelta(0)``: fetch for every verification); concurrent
    verifications that need the same collateral share one fetch. One instance
    may serve many threads at once. A new instance starts with nothing kept, so
    it sees the PCCS's current collateral (a TCB recovery) at once.
    """

    def __init__(
        self,
        trust_anchor: TrustAnchor | None = None,
        *,
        pccs: PccsClient | str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        collateral_source: CollateralSource | None = None,
        max_collateral_age: timedelta = DEFAULT_MAX_COLLATERAL_AGE,
        clock: Clock = utc_now,
    ) -> None:
        if trust_anchor is not None and not isinstance(trust_anchor, TrustAnchor):
            raise UsageError(
                "trust_anchor must be a TrustAnchor (TrustAnchor.from_file(...)), got "
                f"{type(trust_anchor).__name__}"
            )
        if pccs is not None and not isinstance(pccs, str | PccsClient):
            raise UsageError(
                f"pccs must be a PCCS URL (str) or a PccsClient, got {type(pccs).__name__}"
            )
        if cache_dir is not None and not isinstance(cache_dir, str | os.PathLike):
            raise UsageError(f"cache_dir must be a path, got {type(cache_dir).__name__}")
        if not isinstance(max_collateral_age, timedelta):
            raise UsageError(
                "max_collateral_age must be a datetime.timedelta, got "
                f"{type(max_collateral_age).__name__}"
            )
        self.trust_anchor = trust_anchor if trust_anchor is not None else TrustAnchor.intel()
        if collateral_source is not None and (pccs is not None or cache_dir is not None):
            raise UsageError("pass collateral_source, or pccs (and cache_dir), not both")
        self._owned_client: PccsClient | None = None
        if collateral_source is None and pccs is not None:
            if isinstance(pccs, str):
                client = self._owned_client = PccsClient(pccs)
            else:
                client = pccs
            cache = CollateralCache(cache_dir) if cache_dir is not None else None
            collateral_source = PccsCollateralSource(
                client, cache=cache, max_age=max_collateral_age, clock=clock
            )
        elif cache_dir is not None:
            raise UsageError("cache_dir needs a PCCS to fetch from")
        self.collateral_source = collateral_source
        self._engine = make_engine(self.trust_anchor)
        # Keyed by attestation key; read without the lock (one dict lookup).
        self._certified: dict[bytes, _Certified] = {}
        self._certified_lock = threading.Lock()

    def _decode_certified(self, raw: bytes) -> tuple[_Certified, ReportBody]:
        """Steps 1 and 2: the quote's header and certification data, and its report body.

        What the header and certification data establish (they decode, the
        chain ends at the trust anchor, the QE report, the leaf) is remembered
        with every byte of the quote except the ISV report body and the ISV
        signature, found by the attestation key. A quote that has all those
        bytes differs from one that decoded in exactly those two fixed-size
        fields, so it decodes the same way with its own body: only the body
        (384 bytes) is decoded again. dcap-qvl checks everything, signatures
        included, on every verification.
        """
        known = self._certified.get(raw[_SIGNATURE_END : _SIGNATURE_END + 64])
        if known is not None and known.certifies(raw):
            return known, ReportBody.from_bytes(raw[_BODY])
        # 1.
        parsed, report = _decode(raw)
        chain = _pck_chain(parsed)
        # 2.
        _check_root(chain, self.trust_anchor)
        known = _Certified(raw, parsed.header, parsed.qe_report, chain[0])
        with self._certified_lock:
            if len(self._certified) >= MAX_REMEMBERED_CERTIFICATIONS:
                del self._certified[next(iter(self._certified))]
            self._certified[parsed.attest_pub_key] = known
        return known, report

    def _claims(
        self, raw: bytes, known: _Certified, collateral: Collateral, now: int
    ) -> _EngineClaims:
        """Step 4: dcap-qvl's verification at ``now``, and its claims.

        The claims this verifier uses (TCB levels, PCK identity, CRL numbers,
        collateral expiry) are a function of the header and certification data,
        the collateral and the anchor (dcap-qvl 0.7.0 ``QuoteVerificationResult``;
        for SGX the ISV report body does not enter the TCB match). They are
        remembered with the certification data for the collateral they came
        from; then the one-shot verification, which runs the same checks, gives
        the verdict, and the remembered claims are used only if that verdict
        (converged status, advisories, PPID) is theirs.
        """
        remembered = known.claims
        if remembered is not None:
            kept, claims = remembered
            kept_collateral = kept()
            if kept_collateral is collateral or kept_collateral == collateral:
                verdict = run_verdict(raw, collateral, self.trust_anchor, now)
                if (
                    verdict.status == claims.status
                    and verdict.advisory_ids == claims.advisory_ids
                    and verdict.ppid == claims.ppid
                ):
                    return claims
        engine = run_engine(raw, collateral, self.trust_anchor, now, engine=self._engine)
        claims = _engine_claims(engine)
        known.claims = (weakref.ref(collateral), claims)
        return claims

    def _target(self, known: _Certified) -> tuple[str, CaType]:
        """FMSPC and PCK CA type of the quote's PCK leaf, remembered with it.

        Reading the SGX extension costs about a tenth of a verification; a
        verifier sees the same few platforms (leaf certificates) again and again.
        """
        target = known.target
        if target is None:
            try:
                target = known.target = pck_fmspc_and_ca(known.leaf)
            except ParseError as exc:
                raise MalformedQuote(str(exc)) from exc
        return target

    def close(self) -> None:
        """Close the PCCS client the verifier made from a URL (not one passed in)."""
        if self._owned_client is not None:
            self._owned_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def verify(
        self,
        quote: bytes | bytearray | memoryview,
        collateral: Collateral | None = None,
        *,
        policy: Policy,
        now: Timestamp | None = None,
    ) -> VerificationResult:
        """Verify ``quote`` at ``now`` (default: the current time), then appraise it.

        ``policy`` is required: what the relying party accepts (for instance
        ``AllOf(MrSigner(...), AcceptStatuses(), NoDebug())``). A caller that
        wants only the verdict passes :class:`UnsafeNoAppraisal` and says so.

        Raises a :class:`VerificationError` leaf when the quote is not genuine or
        not current enough to be judged, :class:`AppraisalError` when ``policy``
        rejects it, :class:`~sgx_quote_helper.pccs.PccsError` when collateral
        cannot be fetched.
        """
        # Verification steps (dcap-quote.md sections 2, 10 and 11):
        #  1. Decode the quote: an SGX ECDSA-P256 quote from Intel's QE vendor id,
        #     certification data type 5 with exactly leaf, PCK CA and root.
        #  2. The chain's root is the trust anchor, byte for byte (QvE pins its
        #     root the same way, section 11.1).
        #     Steps 1 and 2 are remembered per attestation key: a quote that
        #     differs from a remembered one only in its ISV report body and
        #     signature has only its body decoded.
        #  3. Obtain collateral: as given, else from the cache while before its
        #     nextUpdate, else from the PCCS.
        #  4. Run the engine at `now` against the trust anchor: TCB Info and QE
        #     Identity signatures and chains, PCK chain with both CRLs, QE report
        #     signature, report-data binding, QE Identity match, quote signature,
        #     validity times of all collateral, platform TCB level, QE/platform
        #     convergence (section 2 steps 1-9). A refusal becomes a typed error.
        #     Every verification runs all of it; the engine's claims (TCB levels,
        #     PCK identity) are remembered with the certification data and the
        #     collateral they came from, and then the one-shot verification,
        #     without claims, gives the verdict (see _claims).
        #  5. A Revoked status is terminal (section 10: 0xA005).
        #  6. Keep freshly fetched collateral the engine accepted (cache).
        #  7. Build the result: status and its sgx_ql_qv_result_t, advisories,
        #     both TCB levels, collateral validity, the enclave report.
        #  8. Appraise the result with the relying party's policy.
        # An explicit time is used throughout; "now" is read when it is needed, so
        # collateral a PCCS issues during the fetch is not "issued in the future".
        # The arguments are checked first, before anything is copied or fetched.
        raw = _quote_bytes(quote)
        if collateral is not None and not isinstance(collateral, Collateral):
            raise UsageError(
                f"collateral must be a Collateral or None, got {type(collateral).__name__}"
            )
        if not callable(getattr(policy, "appraise", None)):
            raise UsageError(
                f"policy must be a Policy (an object with appraise(result)), got "
                f"{type(policy).__name__}; pass UnsafeNoAppraisal() to accept any genuine quote"
            )
        fixed = to_datetime(now) if now is not None else None
        anchor = self.trust_anchor

        # 1. and 2. (remembered per header and certification data)
        known, report = self._decode_certified(raw)

        # 3.
        current = fixed or to_datetime(None)
        if collateral is not None:
            fetched = FetchedCollateral(collateral)
        elif isinstance(self.collateral_source, PccsCollateralSource):
            # The chain is parsed already: no second parse of the quote for its FMSPC.
            fetched = self.collateral_source.collateral_for(
                raw, anchor=anchor, now=current, target=self._target(known)
            )
        elif self.collateral_source is not None:
            fetched = self.collateral_source.collateral_for(raw, anchor=anchor, now=current)
        else:
            raise UsageError("no collateral given and no PCCS to fetch it from")

        # 4. (after a fetch, the time is read again)
        fetched_now = collateral is None and not fetched.from_cache
        at = to_datetime(None) if fixed is None and fetched_now else current
        try:
            claims = self._claims(raw, known, fetched.collateral, int(at.timestamp()))
        except VerificationError as exc:
            # 6. (early) The engine judged the quote after accepting the collateral.
            if not exc.collateral_fault and self.collateral_source is not None:
                self.collateral_source.keep(fetched)
            raise

        # 5.
        if claims.status is TcbStatus.REVOKED:
            if self.collateral_source is not None:  # 6. (early) as above
                self.collateral_source.keep(fetched)
            raise Revoked(
                "the platform's TCB level (or the QE's) is revoked",
                status=claims.status.value,
            )

        # 6.
        if self.collateral_source is not None:
            self.collateral_source.keep(fetched)

        # 7.
        result = build_result(
            status=claims.status,
            qv_result=claims.status.qv_result,
            advisory_ids=claims.advisory_ids,
            platform_tcb=claims.platform_tcb,
            qe_tcb=claims.qe_tcb,
            report=report,
            header=known.header,
            qe_report=known.qe_report,
            fmspc=claims.fmspc,
            ca_type=known.ca_type or _ca_type(known),
            ppid=claims.ppid,
            pck_cpu_svn=claims.pck_cpu_svn,
            pck_pce_svn=claims.pck_pce_svn,
            pce_id=claims.pce_id,
            tcb_evaluation_data_number=claims.tcb_evaluation_data_number,
            collateral_issued=fetched.collateral.issue_date,
            collateral_expires=claims.collateral_expires,
            verified_at=at,
            root_key_id=claims.root_key_id,
            trust_anchor=anchor,
            pck_crl_number=claims.pck_crl_number,
            root_ca_crl_number=claims.root_ca_crl_number,
        )

        # 8.
        policy.appraise(result)
        return result


def _quote_bytes(quote: object) -> bytes:
    """The quote as ``bytes``, from any bytes-like object; anything else is refused
    before it is converted (``bytes(10**9)`` would allocate a gigabyte)."""
    if isinstance(quote, bytes):
        return quote
    if isinstance(quote, bytearray | memoryview):
        return bytes(quote)
    raise UsageError(
        f"quote must be bytes (or a bytearray or memoryview), got {type(quote).__name__}"
    )


class _Certified:
    """What a quote's header and certification data established (steps 1 and 2).

    ``ca_type``, ``target`` and ``claims`` are filled in when first needed; each
    is one attribute assignment, so concurrent verifications see the old value
    or the new one.
    """

    __slots__ = (
        "ca_type",
        "claims",
        "header",
        "leaf",
        "length_field",
        "prefix",
        "qe_report",
        "size",
        "suffix",
        "target",
    )

    def __init__(
        self, raw: bytes, header: QuoteHeader, qe_report: ReportBody, leaf: x509.Certificate
    ) -> None:
        # The bytes besides the ISV report body and signature (see certifies).
        self.size = len(raw)
        self.prefix = raw[: _BODY.start]
        self.length_field = raw[_BODY.stop : _BODY.stop + 4]
        self.suffix = raw[_SIGNATURE_END:]
        self.header = header
        self.qe_report = qe_report
        self.leaf = leaf
        self.ca_type: str | None = None
        self.target: tuple[str, CaType] | None = None
        #: The claims of the last verification and the collateral they came from.
        self.claims: tuple[weakref.ref[Collateral], _EngineClaims] | None = None

    def certifies(self, raw: bytes) -> bool:
        """Whether ``raw`` differs from the quote this came from only in the ISV
        report body and signature."""
        return (
            len(raw) == self.size
            and raw.endswith(self.suffix)
            and raw.startswith(self.prefix)
            and raw[_BODY.stop : _BODY.stop + 4] == self.length_field
        )


@dataclass(frozen=True)
class _EngineClaims:
    """dcap-qvl's claims, as the result has them (all but the quote's own fields)."""

    status: TcbStatus
    advisory_ids: tuple[str, ...]
    platform_tcb: TcbLevelResult
    qe_tcb: TcbLevelResult
    fmspc: str
    ppid: bytes
    pck_cpu_svn: bytes
    pck_pce_svn: int
    pce_id: bytes
    tcb_evaluation_data_number: int
    collateral_expires: datetime
    root_key_id: bytes
    pck_crl_number: int | None
    root_ca_crl_number: int | None


def _decode(raw: bytes) -> tuple[Quote, ReportBody]:
    try:
        parsed = Quote.from_bytes(raw)
    except ParseError as exc:
        raise MalformedQuote(f"the quote does not decode: {exc}") from exc
    if parsed.is_tdx or parsed.version != 3:
        raise UnsupportedQuote(
            f"quote version {parsed.version} (TEE type 0x{parsed.tee_type:x}): SGX quotes "
            "are verified as version 3 only"
        )
    if parsed.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise MalformedQuote(
            f"QE vendor id {parsed.header.qe_vendor_id.hex()} is not Intel's QE3 "
            f"({INTEL_QE_VENDOR_ID.hex()})"
        )
    if not isinstance(parsed.certification_data, PckCertChain):
        raise UnsupportedQuote(
            f"certification data type {parsed.certification_data.cert_type} does not carry "
            "the PCK certificate chain (type 5)"
        )
    if not isinstance(parsed.report_body, ReportBody):
        raise UnsupportedQuote("the quote does not carry an SGX enclave report body")
    return parsed, parsed.report_body


def _pck_chain(parsed: Quote) -> list[x509.Certificate]:
    try:
        return parsed.pck_chain()
    except ParseError as exc:
        raise MalformedQuote(f"the quote's PCK chain does not decode: {exc}") from exc


def _check_root(chain: list[x509.Certificate], anchor: TrustAnchor) -> None:
    if len(chain) != PCK_CHAIN_LENGTH:
        raise MalformedQuote(
            f"the quote's PCK chain has {len(chain)} certificates, not leaf, PCK CA and root"
        )
    root = chain[-1]
    if not anchor.is_certificate(_der(root)):
        # Two simulated manufacturers have the same root DN: only the keys tell
        # them apart, so both key ids are named.
        raise UntrustedRoot(
            f"the quote's PCK chain ends at {_subject(root)!r} [key id "
            f"{_key_id_text(root)}], which is not the trust anchor {anchor.describe()}"
        )


def _key_id_text(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return "<no EC public key>"
    return f"{root_key_id(key).hex()[:16]}..."


# Certificates parsed from the same PEM are the same objects (sgx._quote keeps
# recent ones), so these per-certificate answers are remembered as well.
@functools.lru_cache(maxsize=1024)
def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _ca_type(known: _Certified) -> str:
    # dcap-qvl's rule: the PCK CA named in the leaf's issuer (section 5). Read
    # after the engine accepted the chain: a damaged name raises when read.
    known.ca_type = "platform" if "Platform" in known.leaf.issuer.rfc4514_string() else "processor"
    return known.ca_type


def _subject(cert: x509.Certificate) -> str:
    # cryptography decodes names lazily; a damaged one raises only when read.
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<undecodable subject>"


def _bytes(value: Any) -> bytes:
    if isinstance(value, list):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value)
    return b""


def _level(level: Any) -> TcbLevelResult:
    if not isinstance(level, dict):
        raise UnrecognizedEngineError("dcap-qvl claims carry no TCB level")
    date = level.get("tcbDate")
    return TcbLevelResult(
        status=TcbStatus.parse(str(level.get("tcbStatus"))),
        advisory_ids=tuple(str(a) for a in level.get("advisoryIDs") or ()),
        tcb_date=parse_time(date, "tcbDate") if isinstance(date, str) else None,
    )


def _engine_claims(claims: dict[str, Any]) -> _EngineClaims:
    try:
        status = TcbStatus.parse(str(claims["tcb"]["status"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UnrecognizedEngineError(f"dcap-qvl claims carry no known TCB status: {exc}") from exc
    try:
        platform = claims["platform"]
        pck = platform["pck"]
        return _EngineClaims(
            status=status,
            advisory_ids=tuple(str(a) for a in claims["tcb"].get("advisory_ids") or ()),
            platform_tcb=_level(platform["tcb_level"]),
            qe_tcb=_level(claims["qe"]["tcb_level"]),
            fmspc=_bytes(pck["fmspc"]).hex().upper(),
            ppid=_bytes(pck["ppid"]),
            pck_cpu_svn=_bytes(pck["cpu_svn"]),
            pck_pce_svn=int(pck["pce_svn"]),
            pce_id=_bytes(pck["pce_id"]),
            tcb_evaluation_data_number=int(claims["tcb"]["eval_data_number"]),
            collateral_expires=datetime.fromtimestamp(int(claims["earliest_expiration_date"]), UTC),
            root_key_id=_bytes(platform["root_key_id"]),
            pck_crl_number=platform.get("pck_crl_num"),
            root_ca_crl_number=platform.get("root_ca_crl_num"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UnrecognizedEngineError(f"dcap-qvl claims lack an expected field: {exc}") from exc
