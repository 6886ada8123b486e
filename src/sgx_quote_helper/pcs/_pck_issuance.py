"""Issuing PCK certificates to the platforms the manufacturer provisioned.

A provisioned platform holds ``derive_provisioning_secret(master, ppid)``; the
manufacturer recomputes the platform's PCK public key for any TCB from the same secret (the
KDF contract of ``platform._keys``) and certifies it, as Intel does for real
platforms. Every PCK certificate issued is recorded in the store so that a
revoked platform's serials can be listed on the CRL.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery
from sgx_quote_helper.pcs._errors import InvalidRequestError, PlatformNotFoundError
from sgx_quote_helper.pcs._pki import CertificateAuthority, issue_pck_certificate, pck_crl_url
from sgx_quote_helper.pcs._registry import RegisteredPlatform
from sgx_quote_helper.pcs._store import ManufacturerStore, check_ca_type
from sgx_quote_helper.platform import derive_pck_private_key, derive_provisioning_secret

logger = logging.getLogger("sgx_quote_helper.pcs")

# A recorded PCK certificate is reused until this close to its expiry.
_PCK_REUSE_MARGIN = timedelta(days=30)


class PckIssuer:
    """PCK certificates of the manufacturer in ``store``, and its PPID decryption."""

    def __init__(self, store: ManufacturerStore) -> None:
        self._store = store

    @property
    def ppid_encryption_key_pem(self) -> str:
        public_key = self._store.secrets.ppid_key.public_key()
        return public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def pck_issuer_chain_pem(self, ca_type: str) -> str:
        """PCK CA then root: the chain of a PCK CRL and of PCK certificates."""
        check_ca_type(ca_type)
        return self._store.certificate_pem(ca_type) + self._store.certificate_pem("root")

    # -- PCK certificates ----------------------------------------------------------------

    def issue_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        """The PCK certificate of a platform for the queried raw TCB (TCBm = raw).

        The platform is found by QE-ID, else by decrypting ``encrypted_ppid``. Its
        PCK public key is recomputed with the KDF contract (``derive_pck_private_key``
        of its provisioning secret). A certificate issued before for the same TCB is
        returned again while it is valid, so every issued serial is on record.
        """
        _check_query(query)
        platform = self._platform_for(query)
        if query.pce_id != platform.pce_id:
            raise PlatformNotFoundError(
                f"platform {platform.name} has PCE-ID {platform.pce_id.hex().upper()}, "
                f"not {query.pce_id.hex().upper()}"
            )
        tcbm = query.cpu_svn + query.pce_svn.to_bytes(2, "little")
        certificate = self._recorded_or_new(platform, query, tcbm)
        return PckCertificate(
            leaf_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            issuer_chain_pem=self.pck_issuer_chain_pem(platform.ca_type),
            tcbm=tcbm,
            fmspc=platform.fmspc,
            ca_type=platform.ca_type,
        )

    def decrypt_ppid(self, encrypted_ppid: bytes) -> bytes:
        """The PPID from an RSA-3072 OAEP (SHA-256, MGF1-SHA-256) encrypted PPID."""
        try:
            ppid = self._store.secrets.ppid_key.decrypt(
                encrypted_ppid,
                padding.OAEP(
                    mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
                ),
            )
        except ValueError:
            raise InvalidRequestError(
                "the encrypted PPID does not decrypt with this manufacturer's PPID encryption key"
            ) from None
        if len(ppid) != 16:
            raise InvalidRequestError("the encrypted PPID does not hold a 16-byte PPID")
        return ppid

    def _platform_for(self, query: PckCertificateQuery) -> RegisteredPlatform:
        registry = self._store.registry()
        platform = registry.by_qe_id(query.qe_id)
        if platform is None and query.encrypted_ppid is not None:
            platform = registry.by_ppid(self.decrypt_ppid(query.encrypted_ppid))
        if platform is None:
            raise PlatformNotFoundError(
                f"no platform with QE-ID {query.qe_id.hex().upper()} (or that encrypted PPID) "
                "was provisioned by this manufacturer"
            )
        return platform

    def _recorded_or_new(
        self, platform: RegisteredPlatform, query: PckCertificateQuery, tcbm: bytes
    ) -> x509.Certificate:
        """The recorded certificate for this TCB while valid, else a new one, recorded."""
        authority = self._store.secrets.authorities[platform.ca_type]
        path = self._store.pck_record_path(platform, tcbm)
        now = self._store.now()
        certificate = self._reusable(path, authority, now)
        if certificate is not None:
            return certificate
        with self._store.exclusive():
            certificate = self._reusable(path, authority, now)  # another process was faster
            if certificate is not None:
                return certificate
            certificate = self._issue(platform, query, authority, now)
            self._store.write_pck_record(path, certificate)
        logger.info(
            "pck.issued",
            extra={
                "fields": {
                    "platform": platform.name,
                    "serial": f"{certificate.serial_number:X}",
                    "tcbm": tcbm.hex().upper(),
                    "ca": platform.ca_type,
                }
            },
        )
        return certificate

    def _reusable(
        self, path: Path, authority: CertificateAuthority, now: datetime
    ) -> x509.Certificate | None:
        certificate = self._store.read_pck_record(path)
        if certificate is None or certificate.issuer != authority.certificate.subject:
            return None
        if not (
            certificate.not_valid_before_utc <= now
            and now + _PCK_REUSE_MARGIN < certificate.not_valid_after_utc
        ):
            return None
        return certificate

    def _issue(
        self,
        platform: RegisteredPlatform,
        query: PckCertificateQuery,
        authority: CertificateAuthority,
        now: datetime,
    ) -> x509.Certificate:
        pck_key = derive_pck_private_key(
            self.provisioning_secret(platform), query.cpu_svn, query.pce_svn, query.pce_id
        )
        return issue_pck_certificate(
            pck_key.public_key(),
            issuer=authority,
            extension=platform.sgx_extension(query.cpu_svn, query.pce_svn),
            now=now,
            crl_url=pck_crl_url(self._store.pccs_url, platform.ca_type),
        )

    def provisioning_secret(self, platform: RegisteredPlatform) -> bytes:
        """``derive_provisioning_secret(master, ppid)``: what the platform holds."""
        return derive_provisioning_secret(self._store.secrets.master_secret, platform.ppid)


def _check_query(query: PckCertificateQuery) -> None:
    if len(query.cpu_svn) != 16:
        raise InvalidRequestError("CPUSVN must be 16 bytes")
    if len(query.pce_id) != 2:
        raise InvalidRequestError("PCE-ID must be 2 bytes")
    if not 0 <= query.pce_svn <= 0xFFFF:
        raise InvalidRequestError("PCESVN must be a u16")
