"""Provisioning simulated platforms and issuing their PCK certificates.

The manufacturer gives a new platform its identities (PPID, QE-ID, FMSPC) and
its provisioning secret, ``derive_provisioning_secret(master, ppid)``; later it
recomputes the platform's PCK public key for any TCB from the same secret (the
KDF contract of ``platform._keys``) and certifies it, as Intel does for real
platforms. Every PCK certificate issued is recorded in the store so that a
revoked platform's serials can be listed on the CRL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from sgx_quote_helper._version import PCE_SVN
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery
from sgx_quote_helper.pcs._errors import InvalidRequestError, PlatformNotFoundError
from sgx_quote_helper.pcs._pki import CertificateAuthority, issue_pck_certificate, pck_crl_url
from sgx_quote_helper.pcs._registry import RegisteredPlatform, default_sgx_type
from sgx_quote_helper.pcs._store import ManufacturerStore, check_ca_type
from sgx_quote_helper.platform import derive_pck_private_key, derive_provisioning_secret
from sgx_quote_helper.sgx import PlatformConfiguration

logger = logging.getLogger("sgx_quote_helper.pcs")

#: TCB components of a new simulated platform (the shape of Intel's sample platform).
DEFAULT_TCB_COMPONENTS = (11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
DEFAULT_PCE_ID = b"\x00\x00"

# A recorded PCK certificate is reused until this close to its expiry.
_PCK_REUSE_MARGIN = timedelta(days=30)


@dataclass(frozen=True)
class PlatformProvisioning:
    """What a new platform directory needs (the arguments of ``create_platform``).

    The provisioning secret is ``derive_provisioning_secret(master, ppid)``: the
    manufacturer can always recompute it, which is how it certifies PCK keys.
    """

    platform: RegisteredPlatform
    provisioning_secret: bytes
    #: The manufacturer's RSA-3072 PPID encryption public key (PEM).
    ppid_encryption_key_pem: str


class PckIssuer:
    """Platform provisioning and PCK certificates of the manufacturer in ``store``."""

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

    # -- provisioning ------------------------------------------------------------------

    def new_platform(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        fmspc: bytes | None = None,
        tcb_components: Sequence[int] = DEFAULT_TCB_COMPONENTS,
        pce_id: bytes = DEFAULT_PCE_ID,
        ca_type: str = "processor",
    ) -> PlatformProvisioning:
        """Identities and secrets for a new platform (not registered yet).

        ``fmspc`` defaults to the FMSPC of the first registered platform, or a
        random one (``00`` + 3 random bytes + ``0000``).
        """
        check_ca_type(ca_type)
        components = tuple(tcb_components)
        if len(components) != 16 or not all(0 <= svn <= 255 for svn in components):
            raise InvalidRequestError("TCB components are 16 SVNs in 0..255")
        if len(pce_id) != 2:
            raise InvalidRequestError("a PCE-ID is 2 bytes")
        registry = self._store.registry()
        if not name or registry.by_name(name) is not None:
            raise InvalidRequestError(f"a platform named {name!r} exists already; choose another")
        if fmspc is None:
            fmspc = (
                registry.platforms[0].fmspc
                if registry.platforms
                else b"\x00" + os.urandom(3) + b"\x00\x00"
            )
        if len(fmspc) != 6:
            raise InvalidRequestError("an FMSPC is 6 bytes")
        multi_package = ca_type == "platform"
        platform = RegisteredPlatform(
            name=name,
            path=self._store.relative(Path(path)),
            ppid=os.urandom(16),
            qe_id=os.urandom(16),
            fmspc=fmspc,
            pce_id=pce_id,
            tcb_components=components,
            ca_type=ca_type,
            registered=self._store.now(),
            sgx_type=default_sgx_type(ca_type),
            platform_instance_id=os.urandom(16) if multi_package else None,
            configuration=PlatformConfiguration(True, True, True) if multi_package else None,
        )
        return PlatformProvisioning(
            platform=platform,
            provisioning_secret=self._provisioning_secret(platform),
            ppid_encryption_key_pem=self.ppid_encryption_key_pem,
        )

    def register_platform(self, platform: RegisteredPlatform) -> RegisteredPlatform:
        """Record a platform; publish TCB Info for its FMSPC if it is new.

        A new FMSPC starts with the platform's TCB and PCE SVN :data:`PCE_SVN`
        ``UpToDate``.
        """
        with self._store.exclusive():
            for other in self._store.registry().platforms:
                if other.name == platform.name or other.path == platform.path:
                    raise InvalidRequestError(
                        f"platform {platform.name!r} ({platform.path}) is registered already"
                    )
                if other.ppid == platform.ppid or other.qe_id == platform.qe_id:
                    raise InvalidRequestError("PPID and QE-ID must be unique")
            self._store.update_policy(
                lambda policy: policy.with_fmspc(
                    platform.fmspc,
                    pce_id=platform.pce_id,
                    components=platform.tcb_components,
                    pce_svn=PCE_SVN,
                    now=self._store.now(),
                )
            )
            self._store.update_registry(lambda registry: registry.with_platform(platform))
        logger.info(
            "platform.registered",
            extra={
                "fields": {
                    "name": platform.name,
                    "qe_id": platform.qe_id.hex(),
                    "fmspc": platform.fmspc.hex().upper(),
                    "ca": platform.ca_type,
                }
            },
        )
        return platform

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
            self._provisioning_secret(platform), query.cpu_svn, query.pce_svn, query.pce_id
        )
        return issue_pck_certificate(
            pck_key.public_key(),
            issuer=authority,
            extension=platform.sgx_extension(query.cpu_svn, query.pce_svn),
            now=now,
            crl_url=pck_crl_url(self._store.pccs_url, platform.ca_type),
        )

    def _provisioning_secret(self, platform: RegisteredPlatform) -> bytes:
        return derive_provisioning_secret(self._store.secrets.master_secret, platform.ppid)


def _check_query(query: PckCertificateQuery) -> None:
    if len(query.cpu_svn) != 16:
        raise InvalidRequestError("CPUSVN must be 16 bytes")
    if len(query.pce_id) != 2:
        raise InvalidRequestError("PCE-ID must be 2 bytes")
    if not 0 <= query.pce_svn <= 0xFFFF:
        raise InvalidRequestError("PCESVN must be a u16")
