"""The simulated Quoting Enclave (QE3).

Behaviour follows DCAP's reference QE3 (``QuoteGeneration/quote_wrapper/quote/
enclave/quoting_enclave_3.cpp``) and its untrusted half (``qe_logic.cpp``):

* the attestation key is ECDSA P-256, kept sealed to the QE (MRSIGNER policy)
  in the state directory, and reloaded after a restart;
* ``ECDSA_ID = SHA-256(attest_pub_key || auth_data)`` is the QE report's
  REPORTDATA (first 32 bytes, rest zero) and the ``pub_key_id`` that
  ``sgx_ql_init_quote`` returns; the QE report is targeted at the PCE, which
  signs it with the PCK key (``qe_report_sig``);
* a quote is a v3 ECDSA quote: the application REPORT must verify as targeted
  at the QE, the attestation key signs header || ISV report body, and the
  certification data is type 5 (PCK chain, trailing NUL) (dcap-quote.md
  sections 1, 2 and 12).

A quote costs one AES-CMAC (the REPORT check, with the QE's REPORT key
precomputed), one ECDSA signature and a concatenation: everything else in the
quote is constant between two ``init`` calls and is assembled once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._fs import atomic_write, make_directory
from sgx_quote_helper._version import QE_SVN
from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.platform._cpu import ReportVerifier, SimulatedCpu
from sgx_quote_helper.platform._enclave import EnclaveIdentity, quoting_enclave_identity
from sgx_quote_helper.platform._errors import (
    SGX_ERROR_ATT_KEY_UNINITIALIZED,
    PlatformError,
    SealError,
)
from sgx_quote_helper.platform._pce import ProvisioningCertificationEnclave
from sgx_quote_helper.platform._sealing import MAX_SEALED_SIZE, seal, unseal
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    INTEL_QE_VENDOR_ID,
    AttKeyAlgorithm,
    AttKeyIdExt,
    PckCertChain,
    QeReportInfo,
    QuoteHeader,
    Report,
    TargetInfo,
    ec_public_key_to_raw,
    ecdsa_sign_raw,
)

log = logging.getLogger(__name__)

#: QE authentication data: 32 bytes 00..1F, as Intel's QE3 emits and as
#: dcap-qvl requires (dcap-quote.md section 2).
QE_AUTH_DATA = bytes(range(32))
#: DCAP's upper bound on certification data (``MAX_CERT_DATA_SIZE`` in qe_logic.cpp).
MAX_CERT_DATA_SIZE = 4098 * 3
#: File in the state directory holding the sealed attestation key.
ATTESTATION_KEY_FILE = "qe3-attestation-key.sealed"

_QUOTE_VERSION = 3
_PCK_CHAIN_LENGTH = 3
_REPORT_SIZE = 432
_REPORT_BODY_SIZE = 384
_KEY_BLOB_TAG = b"sgx-quote-helper/qe3-attestation-key/v1\x00"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class CertificationDataError(PlatformError):
    """The PCK certification data handed to the QE is unusable."""


@dataclass(frozen=True)
class PlatformIdentity:
    """What the QE's platform library sends to a PCCS to find the PCK certificate."""

    qe_id: bytes  # 16 bytes
    cpu_svn: bytes  # raw CPUSVN, 16 bytes
    pce_svn: int  # raw PCE ISVSVN
    pce_id: bytes  # 2 bytes
    encrypted_ppid: bytes  # 384 bytes, RSA-3072 OAEP to the manufacturer


@dataclass(frozen=True)
class PckCertification:
    """A PCK certificate chain and the TCB level (TCBm) it certifies."""

    chain_pem: str  # PCK leaf, PCK CA, root, PEM with "\n" line ends
    cpu_svn: bytes  # the certified CPUSVN (TCBm), 16 bytes
    pce_svn: int  # the certified PCESVN (TCBm)

    def certification_data(self) -> PckCertChain:
        """Certification data type 5 as Intel emits it: three PEM blocks and one NUL.

        Raises :class:`CertificationDataError` unless the chain is exactly three
        PEM certificates (QvE's ``EXPECTED_CERTIFICATE_COUNT_IN_PCK_CHAIN``).
        """
        text = self.chain_pem if self.chain_pem.endswith("\n") else self.chain_pem + "\n"
        try:
            chain = PckCertChain.parse_payload(text.encode("ascii") + b"\x00")
        except (ParseError, UnicodeEncodeError) as exc:
            raise CertificationDataError(f"the PCK certificate chain is not PEM: {exc}") from None
        if len(chain.pems) != _PCK_CHAIN_LENGTH:
            raise CertificationDataError(
                f"the PCK certificate chain holds {len(chain.pems)} certificates; quotes carry "
                "exactly 3 (PCK leaf, PCK CA, root CA)"
            )
        return chain


@dataclass(frozen=True)
class QeInitResult:
    """The outcome of :meth:`QuotingEnclave.init`."""

    target_info: TargetInfo
    #: ECDSA_ID = SHA-256(attest_pub_key || auth_data), the ``pub_key_id``.
    pub_key_id: bytes
    #: ``generated``, ``loaded`` or ``replaced`` (a bad blob was replaced).
    key_source: str
    #: Why the stored blob was not used, when ``key_source == "replaced"``.
    blob_error: str | None = None


@dataclass(frozen=True)
class _QuoteTemplate:
    """Everything in a quote that does not depend on the application REPORT."""

    private_key: ec.EllipticCurvePrivateKey
    header: bytes  # 48 bytes
    sig_data_len: bytes  # u32 LE
    tail: bytes  # attest_pub_key || qe_report || qe_report_sig || auth data || cert data
    pub_key_id: bytes
    quote_size: int  # header || ISV report body || sig_data_len || signature || tail


class QuotingEnclave:
    """QE3 hosted by this software release (its ISVSVN is ``qe_svn``)."""

    def __init__(
        self,
        cpu: SimulatedCpu,
        pce: ProvisioningCertificationEnclave,
        *,
        qe_id: bytes,
        state_dir: str | os.PathLike[str],
        qe_svn: int = QE_SVN,
    ) -> None:
        if len(qe_id) != 16:
            raise ValueError("QE_ID is 16 bytes")
        self.identity: EnclaveIdentity = quoting_enclave_identity(qe_svn)
        self._cpu = cpu
        self._pce = pce
        self._qe_id = qe_id
        self._state_dir = Path(state_dir)
        self._verifier: ReportVerifier = cpu.report_verifier(self.identity)
        self._template: _QuoteTemplate | None = None
        self._lock = threading.Lock()
        #: Sealed key blobs found unusable and replaced since start (for metrics).
        self.key_blob_errors = 0

    # -- identity ------------------------------------------------------------

    @property
    def qe_svn(self) -> int:
        return self.identity.isv_svn

    @property
    def pce_svn(self) -> int:
        return self._pce.pce_svn

    @property
    def att_key_id(self) -> AttKeyIdExt:
        """Intel's default ECDSA P-256 key id, which clients hard-code."""
        return DEFAULT_ECDSA_ATT_KEY_ID

    @property
    def vendor_id(self) -> bytes:
        return INTEL_QE_VENDOR_ID

    @property
    def initialized(self) -> bool:
        return self._template is not None

    def target_info(self) -> TargetInfo:
        return self.identity.target_info()

    def platform_identity(self) -> PlatformIdentity:
        """The raw TCB and encrypted PPID to look the PCK certificate up with."""
        info = self._pce.get_pce_info()
        return PlatformIdentity(
            qe_id=self._qe_id,
            cpu_svn=self._cpu.cpu_svn,
            pce_svn=info.isv_svn,
            pce_id=info.pce_id,
            encrypted_ppid=self._pce.encrypted_ppid(),
        )

    # -- init ------------------------------------------------------------------

    def init(self, certification: PckCertification) -> QeInitResult:
        """Load or generate the attestation key, have the PCE certify it, and
        precompute the constant part of every quote.
        """
        chain = certification.certification_data()
        if chain.size > MAX_CERT_DATA_SIZE:
            raise CertificationDataError(
                f"PCK certification data is {chain.size} bytes, above DCAP's "
                f"{MAX_CERT_DATA_SIZE}-byte limit"
            )
        with self._lock:
            private_key, source, blob_error = self._load_or_generate_key()
            attest_pub_key = ec_public_key_to_raw(private_key.public_key())
            ecdsa_id = hashlib.sha256(attest_pub_key + QE_AUTH_DATA).digest()
            # The QE report binds the key: REPORTDATA = ECDSA_ID || 0^32, for the PCE.
            qe_report = self._cpu.ereport(
                self.identity, self._pce.target_info(), ecdsa_id + bytes(32)
            )
            qe_report_sig = self._pce.certify(
                qe_report, cpu_svn=certification.cpu_svn, pce_svn=certification.pce_svn
            )
            tail = (
                attest_pub_key
                + qe_report.body.to_bytes()
                + qe_report_sig
                + len(QE_AUTH_DATA).to_bytes(2, "little")
                + QE_AUTH_DATA
                + chain.to_bytes()  # u16 type 5 || u32 size || PEM chain || NUL
            )
            header = QuoteHeader(
                version=_QUOTE_VERSION,
                att_key_type=AttKeyAlgorithm.ECDSA_P256,
                tee_type=0,
                qe_svn=self.qe_svn,
                # The PCE currently hosted: lets a verifier see that the PCE was
                # updated after a TCB recovery (quoting_enclave_3.cpp gen_quote).
                pce_svn=self.pce_svn,
                qe_vendor_id=INTEL_QE_VENDOR_ID,
                user_data=self._qe_id + bytes(4),
            ).to_bytes()
            self._template = _QuoteTemplate(
                private_key=private_key,
                header=header,
                sig_data_len=(64 + len(tail)).to_bytes(4, "little"),
                tail=tail,
                pub_key_id=ecdsa_id,
                quote_size=len(header) + _REPORT_BODY_SIZE + 4 + 64 + len(tail),
            )
        return QeInitResult(
            target_info=self.target_info(),
            pub_key_id=ecdsa_id,
            key_source=source,
            blob_error=blob_error,
        )

    def _key_path(self) -> Path:
        return self._state_dir / ATTESTATION_KEY_FILE

    def _load_or_generate_key(self) -> tuple[ec.EllipticCurvePrivateKey, str, str | None]:
        path = self._key_path()
        try:
            blob = _read_limited(path)
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            self._store_key(key)
            log.info("generated a new QE3 attestation key (no sealed key at %s)", path)
            return key, "generated", None
        try:
            return self._unseal_key(blob), "loaded", None
        except SealError as exc:
            reason = str(exc)
        # Never use a blob that fails to unseal: keep it for inspection, count
        # it, and replace it with a fresh key (DCAP regenerates on a bad blob).
        self.key_blob_errors += 1
        corrupt = path.with_name(path.name + ".corrupt")
        os.replace(path, corrupt)
        log.warning(
            "QE3 attestation key blob %s is unusable (%s); moved it to %s and generated "
            "a new key, so the attestation public key changes",
            path,
            reason,
            corrupt,
        )
        key = ec.generate_private_key(ec.SECP256R1())
        self._store_key(key)
        return key, "replaced", reason

    def _unseal_key(self, blob: bytes) -> ec.EllipticCurvePrivateKey:
        secret, additional_data = unseal(self._cpu, self.identity, blob)
        if not additional_data.startswith(_KEY_BLOB_TAG) or len(secret) != 32:
            raise SealError("sealed blob is not a QE3 attestation key")
        scalar = int.from_bytes(secret, "big")
        if not 0 < scalar < _P256_ORDER:
            raise SealError("sealed attestation key is not a valid P-256 scalar")
        key = ec.derive_private_key(scalar, ec.SECP256R1())
        stored_pub = additional_data[len(_KEY_BLOB_TAG) :]
        if ec_public_key_to_raw(key.public_key()) != stored_pub:
            raise SealError("sealed attestation key does not match its stored public key")
        return key

    def _store_key(self, key: ec.EllipticCurvePrivateKey) -> None:
        scalar = key.private_numbers().private_value.to_bytes(32, "big")
        blob = seal(
            self._cpu,
            self.identity,
            scalar,
            additional_data=_KEY_BLOB_TAG + ec_public_key_to_raw(key.public_key()),
        )
        make_directory(self._state_dir, 0o700)  # not from the umask (docs/security.md)
        atomic_write(self._key_path(), blob, mode=0o600)

    # -- quoting -----------------------------------------------------------

    def quote_size(self) -> int:
        return self._require_template().quote_size

    @property
    def pub_key_id(self) -> bytes:
        return self._require_template().pub_key_id

    def _require_template(self) -> _QuoteTemplate:
        template = self._template
        if template is None:
            # The client library's AttestationKeyNotInitializedError is what
            # this becomes for an application (through the backend's 0xE00F).
            raise PlatformError(
                "the QE3 attestation key is not initialized: call init_quote first",
                sgx_status=SGX_ERROR_ATT_KEY_UNINITIALIZED,
            )
        return template

    def get_quote(
        self, report: Report | bytes, qe_report_info: QeReportInfo | None = None
    ) -> tuple[bytes, QeReportInfo | None]:
        """Quote an application REPORT targeted at this QE.

        1. The REPORT MAC must verify with the QE's REPORT key
           (:class:`~sgx_quote_helper.platform.ReportMacError` otherwise).
        2. Sign header || ISV report body with the attestation key.
        3. Append the precomputed signature data.
        4. With ``qe_report_info``: a QE REPORT for the application enclave,
           REPORTDATA = SHA-256(nonce || quote) || 0^32.
        """
        template = self._require_template()  # one snapshot for the whole quote
        raw = report.to_bytes() if isinstance(report, Report) else bytes(report)
        self._verifier.verify(raw)  # 1
        signed = template.header + raw[:_REPORT_BODY_SIZE]
        signature = ecdsa_sign_raw(template.private_key, signed)  # 2
        quote = b"".join((signed, template.sig_data_len, signature, template.tail))  # 3
        if qe_report_info is None:
            return quote, None
        report_data = hashlib.sha256(qe_report_info.nonce + quote).digest() + bytes(32)  # 4
        qe_report = self._cpu.ereport(
            self.identity, qe_report_info.app_enclave_target_info, report_data
        )
        return quote, qe_report_info.replace(qe_report=qe_report)


def _read_limited(path: Path) -> bytes:
    # Read at most one byte past the limit: unseal refuses anything that large.
    with path.open("rb") as handle:
        return handle.read(MAX_SEALED_SIZE + 1)
