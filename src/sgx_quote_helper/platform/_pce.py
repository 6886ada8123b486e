"""The simulated Provisioning Certification Enclave (PCE).

The PCE is the only enclave that holds PCK private keys. It derives the PCK key
of a TCB level (CPUSVN, PCESVN) from the platform's provisioning root, which
requires the PROVISION_KEY attribute, and signs the REPORT body of an enclave
that wants its attestation key certified (QE3), after checking that REPORT was
made for the PCE (DCAP ``QuoteGeneration/pce``: ``get_pc_info``,
``certify_enclave``).

It also hands out the platform identity a PCCS needs to find the PCK
certificate: the PPID in clear (certification data type 1) or encrypted with
RSA-3072 OAEP (SHA-256) to the manufacturer's PPID encryption key (type 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sgx_quote_helper._version import PCE_SVN
from sgx_quote_helper.platform._cpu import SimulatedCpu
from sgx_quote_helper.platform._enclave import EnclaveIdentity, pce_identity
from sgx_quote_helper.platform._errors import SGX_ERROR_INVALID_ATTRIBUTE, CertificationError
from sgx_quote_helper.sgx import (
    AttributeFlags,
    PpidCleartext,
    PpidEncrypted,
    Report,
    TargetInfo,
    ecdsa_sign_raw,
)

_REPORT_BODY_SIZE = 384


@dataclass(frozen=True)
class PceInfo:
    """What ``get_pce_info`` reports: the PCE's ISVSVN and the platform's PCE-ID."""

    isv_svn: int
    pce_id: bytes  # 2 bytes, as in the quote (little-endian u16)


class ProvisioningCertificationEnclave:
    """PCE hosted by this software release (its ISVSVN is ``pce_svn``)."""

    def __init__(
        self,
        cpu: SimulatedCpu,
        *,
        pce_id: bytes,
        ppid: bytes,
        ppid_encryption_key: rsa.RSAPublicKey,
        pce_svn: int = PCE_SVN,
    ) -> None:
        if len(pce_id) != 2 or len(ppid) != 16:
            raise ValueError("PCE-ID is 2 bytes and PPID 16 bytes")
        self.identity: EnclaveIdentity = pce_identity(pce_svn)
        self._cpu = cpu
        self._pce_id = pce_id
        self._ppid = ppid
        self._ppid_encryption_key = ppid_encryption_key
        self._verifier = cpu.report_verifier(self.identity)
        self._pck_keys: dict[tuple[bytes, int], ec.EllipticCurvePrivateKey] = {}
        self._encrypted_ppid: bytes | None = None
        # Derive the current level's PCK key now: a process without provisioning
        # access fails here, at start-up, not on its first quote.
        self._pck_key(cpu.cpu_svn, pce_svn)

    @property
    def pce_svn(self) -> int:
        return self.identity.isv_svn

    def target_info(self) -> TargetInfo:
        return self.identity.target_info()

    def get_pce_info(self) -> PceInfo:
        return PceInfo(isv_svn=self.identity.isv_svn, pce_id=self._pce_id)

    def _pck_key(self, cpu_svn: bytes, pce_svn: int) -> ec.EllipticCurvePrivateKey:
        level = (bytes(cpu_svn), pce_svn)
        key = self._pck_keys.get(level)
        if key is None:
            key = self._cpu.derive_pck_key(self.identity, level[0], pce_svn, self._pce_id)
            self._pck_keys[level] = key
        return key

    def pck_public_key(
        self, cpu_svn: bytes | None = None, pce_svn: int | None = None
    ) -> ec.EllipticCurvePublicKey:
        """The PCK public key of a TCB level (default: the current one)."""
        return self._pck_key(
            self._cpu.cpu_svn if cpu_svn is None else cpu_svn,
            self.pce_svn if pce_svn is None else pce_svn,
        ).public_key()

    def certify(
        self, report: Report | bytes, *, cpu_svn: bytes | None = None, pce_svn: int | None = None
    ) -> bytes:
        """Sign an enclave's REPORT body with the PCK key of a TCB level.

        The level defaults to the current one; the caller passes the TCBm of
        the PCK certificate it will ship, since the signature must verify with
        that certificate's key. Returns the raw ``r || s`` signature.

        1. The REPORT must verify as targeted at the PCE (REPORT MAC).
        2. The certified enclave must have PROVISION_KEY (only QE-class
           enclaves may have attestation keys certified).
        3. Sign the 384-byte body with ECDSA-P256-SHA256.
        """
        raw = report.to_bytes() if isinstance(report, Report) else bytes(report)
        self._verifier.verify(raw)  # 1
        body = raw[:_REPORT_BODY_SIZE]
        flags = int.from_bytes(body[48:56], "little")
        if not flags & AttributeFlags.PROVISION_KEY:  # 2
            raise CertificationError(
                "the PCE certifies only enclaves with the PROVISION_KEY attribute",
                sgx_status=SGX_ERROR_INVALID_ATTRIBUTE,
            )
        key = self._pck_key(
            self._cpu.cpu_svn if cpu_svn is None else cpu_svn,
            self.pce_svn if pce_svn is None else pce_svn,
        )
        return ecdsa_sign_raw(key, body)  # 3

    # -- platform identity for the PCCS ------------------------------------

    def ppid_cleartext_data(self) -> PpidCleartext:
        """Certification data type 1: PPID ‖ CPUSVN ‖ PCESVN (u16) ‖ PCE-ID (u16)."""
        return PpidCleartext(self._ppid, self._cpu.cpu_svn, self.pce_svn, self._pce_id)

    def encrypted_ppid(self) -> bytes:
        """The PPID under RSA-3072 OAEP (SHA-256, MGF1-SHA-256), 384 bytes.

        OAEP is randomized; like DCAP's quote library (which keeps the first
        answer of ``get_pc_info``), the PCE computes it once per instance so
        that repeated PCCS queries are identical.
        """
        if self._encrypted_ppid is None:
            self._encrypted_ppid = self._ppid_encryption_key.encrypt(
                self._ppid,
                padding.OAEP(
                    mgf=padding.MGF1(algorithm=hashes.SHA256()),
                    algorithm=hashes.SHA256(),
                    label=None,
                ),
            )
        return self._encrypted_ppid

    def ppid_rsa3072_data(self) -> PpidEncrypted:
        """Certification data type 3: enc_ppid[384] ‖ CPUSVN ‖ PCESVN ‖ PCE-ID."""
        return PpidEncrypted(self.encrypted_ppid(), self._cpu.cpu_svn, self.pce_svn, self._pce_id)
