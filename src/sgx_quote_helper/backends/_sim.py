"""The ``sim`` backend: QE3 and the PCE of a simulated platform.

It plays the part of DCAP's quote library (``qe_logic.cpp``) on top of the
simulated enclaves: ``init_quote`` asks the PCCS (through ``pck_source``) for
the PCK certificate of the platform's raw TCB, checks that the certificate's
key is this platform's PCK key for the certified TCB level (TCBm), and has the
QE generate or load its attestation key and get it certified by the PCE.
Every failure becomes a :class:`QuoteError` with the ``quote3_error_t`` DCAP
returns for it, which the daemon turns into the AESM code (aesm-wire.md 12.4).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends._base import (
    BackendCall,
    BackendFactory,
    BackendInfo,
    BackendOptions,
    InitQuoteResult,
    PckSource,
    QuoteError,
    QuoteResult,
)
from sgx_quote_helper.errors import CodedError, UsageError
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery
from sgx_quote_helper.platform import (
    ATTESTATION_KEY_FILE,
    CertificationDataError,
    CertificationError,
    KeyRequestError,
    PckCertification,
    Platform,
    PlatformError,
    ProvisioningCertificationEnclave,
    QeInitResult,
    QuotingEnclave,
    ReportMacError,
    SealError,
)
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    AttKeyId,
    AttKeyIdExt,
    QeReportInfo,
    Quote3Error,
    SgxStatus,
)

log = logging.getLogger(__name__)

_TCBM_SIZE = 18
#: The one attestation key id (``sgx_ql_att_key_id_t``) the simulated QE3 supports.
_SUPPORTED_KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.base
_SUPPORTED_KEY_ID_RAW = _SUPPORTED_KEY_ID.to_bytes()


class SimBackend:
    """:class:`~sgx_quote_helper.backends.QuoteBackend` over the simulated platform.

    Construction loads the platform with provisioning access (the PCE derives
    the PCK key at once), so a process without it fails at start-up with
    :class:`~sgx_quote_helper.platform.ProvisioningAccessError`. Quoting is
    safe from one asyncio loop and its executor threads: ``init_quote`` swaps
    in a new certified key atomically and ``get_quote`` uses one snapshot.
    """

    def __init__(
        self,
        platform_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        *,
        pck_source: PckSource,
        qe_svn: int = QE_SVN,
        pce_svn: int = PCE_SVN,
    ) -> None:
        platform = Platform.load(platform_dir, need_provisioning=True)
        description = platform.description
        cpu = platform.cpu()
        self._platform = platform
        self._state_dir = Path(state_dir)
        self._pck_source = pck_source
        self._pce = ProvisioningCertificationEnclave(
            cpu,
            pce_id=description.pce_id,
            ppid=description.ppid,
            ppid_encryption_key=description.ppid_encryption_key(),
            pce_svn=pce_svn,
        )
        self._qe = QuotingEnclave(
            cpu, self._pce, qe_id=description.qe_id, state_dir=state_dir, qe_svn=qe_svn
        )
        self._init_lock = threading.Lock()
        self.last_init: QeInitResult | None = None

    # -- QuoteBackend --------------------------------------------------------

    def info(self) -> BackendInfo:
        return BackendInfo(
            name="sim", qe_svn=self._qe.qe_svn, pce_svn=self._pce.pce_svn, simulated=True
        )

    def may_block(self, call: BackendCall) -> bool:
        # Only initialization waits: on the PCK source (a PCCS over the
        # network, or the embedded manufacturer) and on writing the sealed
        # key. Quotes are a CMAC and an ECDSA signature in memory.
        return call is BackendCall.INIT_QUOTE

    def supported_att_key_ids(self) -> list[AttKeyIdExt]:
        return [DEFAULT_ECDSA_ATT_KEY_ID]

    def init_quote(self, att_key_id: AttKeyId) -> InitQuoteResult:
        self._check_key_id(att_key_id)
        with self._init_lock:
            identity = self._qe.platform_identity()
            query = PckCertificateQuery(
                qe_id=identity.qe_id,
                cpu_svn=identity.cpu_svn,
                pce_svn=identity.pce_svn,
                pce_id=identity.pce_id,
                encrypted_ppid=identity.encrypted_ppid,
            )
            certificate = self._fetch_pck_certificate(query)
            certification = self._check_certificate(certificate)
            try:
                result = self._qe.init(certification)
            except CertificationDataError as exc:
                raise QuoteError(Quote3Error.ATT_KEY_CERT_DATA_INVALID, exc.message) from exc
            except (CertificationError, KeyRequestError) as exc:
                raise QuoteError(
                    Quote3Error.KEY_CERTIFCATION_ERROR,
                    f"the PCE could not certify the attestation key: {exc}",
                ) from exc
            except SealError as exc:  # pragma: no cover - a fresh seal cannot fail to unseal
                raise QuoteError(Quote3Error.ATT_KEY_BLOB_ERROR, exc.message) from exc
            except OSError as exc:
                raise QuoteError(
                    Quote3Error.FILE_ACCESS_ERROR,
                    f"cannot read or write the sealed attestation key in the state directory: "
                    f"{exc}; check that it exists and is writable by the quote helper",
                ) from exc
            self.last_init = result
        return InitQuoteResult(
            target_info=result.target_info,
            pub_key_id=result.pub_key_id,
            key_generated=result.key_source != "loaded",
        )

    def quote_size(self, att_key_id: AttKeyId) -> int:
        self._check_key_id(att_key_id)
        try:
            return self._qe.quote_size()
        except PlatformError as exc:
            mapped = _quote_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: QeReportInfo | None
    ) -> QuoteResult:
        self._check_key_id(att_key_id)
        try:
            quote, filled = self._qe.get_quote(report, qe_report_info)
        except PlatformError as exc:
            mapped = _quote_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return QuoteResult(quote=quote, qe_report_info=filled)

    def close(self) -> None:
        """Nothing to release: keys live in this object and the sealed blob persists."""

    # -- extras for the daemon (metrics, health) -------------------------------

    @property
    def initialized(self) -> bool:
        return self._qe.initialized

    @property
    def att_key_blob_errors(self) -> int:
        """Sealed attestation-key blobs found unusable (and replaced) since start."""
        return self._qe.key_blob_errors

    def attestation_key_created(self) -> float | None:
        """The sealed key is written once, when it is generated: its mtime."""
        try:
            return (self._state_dir / ATTESTATION_KEY_FILE).stat().st_mtime
        except OSError:
            return None

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _check_key_id(att_key_id: AttKeyId) -> None:
        # The daemon passes the very object supported_att_key_ids() returned;
        # anything else is compared as the 158 bytes AESM compares.
        if att_key_id is not _SUPPORTED_KEY_ID and att_key_id.to_bytes() != _SUPPORTED_KEY_ID_RAW:
            raise QuoteError(
                Quote3Error.UNSUPPORTED_ATT_KEY_ID,
                "the simulated QE3 supports only Intel's default ECDSA P-256 attestation "
                "key id (QE3 MRSIGNER, prod id 1, algorithm 2)",
            )

    def _fetch_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        try:
            return self._pck_source(query)
        except QuoteError:
            raise
        except Exception as exc:
            # DCAP's quote provider library reports a PCCS it cannot use as a
            # network error, and a PCCS without this platform as "no platform
            # certification data". Sources wrap their causes (a cache in front
            # of a PCCS client), so look down the chain for the PCCS's verdict.
            code = (
                Quote3Error.NO_PLATFORM_CERT_DATA
                if _platform_not_found(exc)
                else Quote3Error.NETWORK_ERROR
            )
            raise QuoteError(
                code,
                f"could not get this platform's PCK certificate ({type(exc).__name__}: {exc}); "
                "check that the PCCS (or the simulated manufacturer) is reachable and knows "
                "this platform",
                hints=exc.hints if isinstance(exc, CodedError) else None,
            ) from exc

    def _check_certificate(self, certificate: PckCertificate) -> PckCertification:
        """The certificate must be for this platform's PCK key at its TCBm level."""
        tcbm = certificate.tcbm
        if len(tcbm) != _TCBM_SIZE:
            raise QuoteError(
                Quote3Error.ATT_KEY_CERT_DATA_INVALID,
                f"the PCK certificate's TCBm is {len(tcbm)} bytes, not {_TCBM_SIZE}",
            )
        cpu_svn, pce_svn = tcbm[:16], int.from_bytes(tcbm[16:], "little")
        try:
            leaf = x509.load_pem_x509_certificate(certificate.leaf_pem.encode("ascii"))
            expected = self._pce.pck_public_key(cpu_svn, pce_svn)
        except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
            raise QuoteError(
                Quote3Error.ATT_KEY_CERT_DATA_INVALID,
                f"the PCK leaf certificate is unreadable: {exc}",
            ) from exc
        except KeyRequestError as exc:
            raise QuoteError(
                Quote3Error.KEY_CERTIFCATION_ERROR,
                f"the PCK certificate's TCB level (TCBm {tcbm.hex()}) is above this "
                f"platform's: {exc}",
            ) from exc
        leaf_key = leaf.public_key()
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey) or _point(leaf_key) != _point(
            expected
        ):
            raise QuoteError(
                Quote3Error.ATT_KEY_CERT_DATA_INVALID,
                "the PCK certificate does not certify this platform's PCK key: the PCCS or "
                "manufacturer serves a different platform (check --platform and the PCCS)",
            )
        return PckCertification(chain_pem=certificate.chain_pem(), cpu_svn=cpu_svn, pce_svn=pce_svn)


def _quote_error(exc: PlatformError) -> QuoteError | None:
    """What DCAP's QE3 returns for a simulated-QE failure while quoting, if it maps."""
    if isinstance(exc, ReportMacError):
        return QuoteError(Quote3Error.INVALID_REPORT, exc.message)
    if exc.sgx_status is SgxStatus.ERROR_ATT_KEY_UNINITIALIZED:
        return QuoteError(Quote3Error.ATT_KEY_NOT_INITIALIZED, exc.message)
    return None


def _platform_not_found(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "quote3_error", None) == Quote3Error.NO_PLATFORM_CERT_DATA:
            return True
        current = current.__cause__ or current.__context__
    return False


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _missing_options(options: BackendOptions) -> list[str]:
    if options.platform_dir is None:
        return ["--platform DIR (a directory from `sim init`)"]
    return []


def _create(options: BackendOptions) -> SimBackend:
    platform_dir, state_dir, pck_source = (
        options.platform_dir,
        options.state_dir,
        options.pck_source,
    )
    if platform_dir is None or state_dir is None or pck_source is None:
        missing = _missing_options(options)
        if state_dir is None:
            missing.append("--state-dir")
        if pck_source is None:
            missing.append("a PCK certificate source (--pccs-url or an embedded manufacturer)")
        raise UsageError(f"the sim backend needs {', '.join(missing)}")
    return SimBackend(
        platform_dir,
        state_dir,
        pck_source=pck_source,
        qe_svn=options.qe_svn,
        pce_svn=options.pce_svn,
    )


SIM_BACKEND = BackendFactory(
    name="sim",
    summary="the simulated SGX platform of `sim init` (needs --platform)",
    missing_options=_missing_options,
    create=_create,
    shareable=True,
    uses_pck_source=True,
)
