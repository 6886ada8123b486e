"""The simulated SGX manufacturer: one object over its store, its PCK issuance and collateral.

:class:`Manufacturer` is what ``sim``, the PCCS application and the embedded
certification source use. It puts together three parts, each in its module:

- ``_store``: the ``DIR/pcs`` directory (keys, certificates, ``policy.json``,
  ``registry.json``, the PCK record and the collateral cache files) and its lock;
- ``_pck_issuance``: issuing PCK certificates to the platforms it provisioned;
- ``_collateral_cache``: signed TCB Info and QE Identity, and the CRLs, re-issued
  when stale or when their inputs changed.

It provisions platforms itself (their identities and registration), and
carries the policy changes the ``sim`` commands make (TCB recovery,
statuses, revocations, expiry), each one edit of ``policy.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._time import Clock, to_utc_seconds, utc_now
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery, SignedCollateral
from sgx_quote_helper.pcs._collateral_cache import IssuedCollateralCache
from sgx_quote_helper.pcs._errors import (
    InvalidArgumentError,
    InvalidRequestError,
    PlatformNotFoundError,
    PolicyError,
)
from sgx_quote_helper.pcs._pck_issuance import PckIssuer
from sgx_quote_helper.pcs._pki import crl_base_url
from sgx_quote_helper.pcs._policy import TcbPolicy
from sgx_quote_helper.pcs._registry import RegisteredPlatform, Registry, default_sgx_type
from sgx_quote_helper.pcs._store import ManufacturerStore, check_ca_type, new_secrets
from sgx_quote_helper.sgx import PlatformConfiguration

logger = logging.getLogger("sgx_quote_helper.pcs")

DEFAULT_PCCS_URL = "http://127.0.0.1:8081"

#: TCB components of a new simulated platform (the shape of Intel's sample platform).
DEFAULT_TCB_COMPONENTS = (11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
DEFAULT_PCE_ID = b"\x00\x00"


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


class Manufacturer:
    """A simulated manufacturer (simulated Intel) stored in ``<sim_dir>/pcs``.

    Use :meth:`create` (what ``sim init`` does) or :meth:`load`. Every method
    sees the current ``policy.json`` and ``registry.json``. ``clock`` gives the
    current UTC time (tests inject one to move time).
    """

    def __init__(self, store: ManufacturerStore) -> None:
        self._store = store
        self._issuer = PckIssuer(store)
        self._collateral = IssuedCollateralCache(store)
        self.sim_dir = store.sim_dir
        self.pcs_dir = store.pcs_dir
        self.pccs_url = store.pccs_url

    # -- creation and loading -------------------------------------------------------

    @classmethod
    def create(
        cls,
        sim_dir: str | os.PathLike[str],
        *,
        pccs_url: str = DEFAULT_PCCS_URL,
        clock: Clock = utc_now,
        qe_svn: int = QE_SVN,
    ) -> Manufacturer:
        """A new manufacturer in ``<sim_dir>/pcs``: fresh keys, certificates and policy.

        The policy makes QE ``qe_svn`` ``UpToDate``; platforms registered later
        add their FMSPC with their TCB and PCE SVN :data:`PCE_SVN` ``UpToDate``.
        """
        if not os.fspath(sim_dir):
            # Path("") is the current directory: never what an empty argument meant.
            raise InvalidArgumentError("the simulation directory is empty; name a directory")
        sim_path = Path(sim_dir)
        pccs_url = crl_base_url(pccs_url)
        ManufacturerStore.refuse_existing(sim_path)
        now = to_utc_seconds(clock())
        store = ManufacturerStore.create(
            sim_path,
            pccs_url=pccs_url,
            clock=clock,
            now=now,
            secrets=new_secrets(pccs_url, now),
            policy=TcbPolicy.initial(now=now, qe_svn=qe_svn),
        )
        logger.info(
            "manufacturer.created",
            extra={"fields": {"dir": str(store.pcs_dir), "pccs_url": pccs_url}},
        )
        return cls(store)

    @classmethod
    def load(cls, sim_dir: str | os.PathLike[str], *, clock: Clock = utc_now) -> Manufacturer:
        """The manufacturer of the simulation directory ``sim_dir`` (not ``sim_dir/pcs``)."""
        manufacturer = cls(ManufacturerStore.open(Path(sim_dir), clock=clock))
        manufacturer.policy()  # fail now, not on the first request, if it is invalid
        manufacturer.registry()
        return manufacturer

    # -- public material --------------------------------------------------------------

    @property
    def root_ca_certificate(self) -> x509.Certificate:
        return self._store.certificate("root")

    @property
    def root_ca_der(self) -> bytes:
        """The trust anchor to pass to verifiers (``verify_with_root_ca``)."""
        return self.root_ca_certificate.public_bytes(serialization.Encoding.DER)

    @property
    def root_ca_path(self) -> Path:
        """The file holding :attr:`root_ca_der` (``DIR/pcs/root-ca.der``)."""
        return self._store.root_ca_path

    @property
    def root_ca_pem(self) -> str:
        return self._store.certificate_pem("root")

    def certificate(self, name: str) -> x509.Certificate:
        """``root``, ``processor``, ``platform`` or ``tcb-signing``."""
        return self._store.certificate(name)

    @property
    def tcb_signing_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._store.secrets.authorities["tcb-signing"].private_key.public_key()

    @property
    def ppid_encryption_key_pem(self) -> str:
        return self._issuer.ppid_encryption_key_pem

    def tcb_issuer_chain_pem(self) -> str:
        """TCB Signing then root: the chain of TCB Info and QE Identity."""
        return self._store.tcb_issuer_chain_pem()

    def pck_crl_issuer_chain_pem(self, ca_type: str) -> str:
        """PCK CA then root: the chain of a PCK CRL and of PCK certificates."""
        return self._issuer.pck_issuer_chain_pem(ca_type)

    # -- policy and registry ------------------------------------------------------------

    def now(self) -> datetime:
        return self._store.now()

    def policy(self) -> TcbPolicy:
        """The current policy (re-read when ``policy.json`` changed)."""
        return self._store.policy()

    def registry(self) -> Registry:
        """The provisioned platforms (re-read when ``registry.json`` changed)."""
        return self._store.registry()

    def platforms(self) -> tuple[RegisteredPlatform, ...]:
        return self.registry().platforms

    def update_policy(self, change: Callable[[TcbPolicy], TcbPolicy]) -> TcbPolicy:
        """Apply ``change`` to the policy on disk, atomically and under the lock."""
        return self._store.update_policy(change)

    def find_platform(self, ref: str | os.PathLike[str]) -> RegisteredPlatform:
        """A registered platform by name, by directory, or by a directory's PPID."""
        registry = self.registry()
        text = os.fspath(ref)
        by_name = registry.by_name(text)
        if by_name is not None:
            return by_name
        candidates = [Path(text)]
        if not Path(text).is_absolute():
            candidates.append(self.sim_dir / text)
        for candidate in candidates:
            found = self._platform_at(registry, candidate)
            if found is not None:
                return found
        names = ", ".join(p.name for p in registry.platforms) or "none"
        raise PlatformNotFoundError(
            f"no registered platform is named or stored at {text!r} (registered: {names})"
        )

    def _platform_at(self, registry: Registry, directory: Path) -> RegisteredPlatform | None:
        """The platform registered at ``directory``, or whose PPID its description holds."""
        resolved = directory.resolve()
        for platform in registry.platforms:
            if (self.sim_dir / platform.path).resolve() == resolved:
                return platform
        description = directory / "platform.json"
        if description.is_file():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                ppid = bytes.fromhex(json.loads(description.read_bytes())["ppid"])
                return registry.by_ppid(ppid)
        return None

    # -- provisioning and PCK certificates ----------------------------------------------

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

        Write the platform directory from the result, then call
        :meth:`register_platform` (``provision_platform`` does both).
        ``fmspc`` defaults to the FMSPC of the first registered platform, or a
        random one (``00`` + 3 random bytes + ``0000``).
        """
        check_ca_type(ca_type)
        components = tuple(tcb_components)
        if len(components) != 16 or not all(0 <= svn <= 255 for svn in components):
            raise InvalidRequestError("TCB components are 16 SVNs in 0..255")
        if len(pce_id) != 2:
            raise InvalidRequestError("a PCE-ID is 2 bytes")
        registry = self.registry()
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
            registered=self.now(),
            sgx_type=default_sgx_type(ca_type),
            platform_instance_id=os.urandom(16) if multi_package else None,
            configuration=PlatformConfiguration(True, True, True) if multi_package else None,
        )
        return PlatformProvisioning(
            platform=platform,
            provisioning_secret=self._issuer.provisioning_secret(platform),
            ppid_encryption_key_pem=self.ppid_encryption_key_pem,
        )

    def register_platform(
        self, provisioning: PlatformProvisioning | RegisteredPlatform
    ) -> RegisteredPlatform:
        """Record a platform; publish TCB Info for its FMSPC if it is new.

        A new FMSPC starts with the platform's TCB and PCE SVN :data:`PCE_SVN`
        ``UpToDate``.
        """
        platform = (
            provisioning.platform
            if isinstance(provisioning, PlatformProvisioning)
            else provisioning
        )
        with self._store.exclusive():
            for other in self.registry().platforms:
                if other.name == platform.name or other.path == platform.path:
                    raise InvalidRequestError(
                        f"platform {platform.name!r} ({platform.path}) is registered already"
                    )
                if other.ppid == platform.ppid or other.qe_id == platform.qe_id:
                    raise InvalidRequestError("PPID and QE-ID must be unique")
            self.update_policy(
                lambda policy: policy.with_fmspc(
                    platform.fmspc,
                    pce_id=platform.pce_id,
                    components=platform.tcb_components,
                    pce_svn=PCE_SVN,
                    now=self.now(),
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

    def issue_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        """The PCK certificate of a platform for the queried raw TCB (TCBm = raw)."""
        return self._issuer.issue_pck_certificate(query)

    def decrypt_ppid(self, encrypted_ppid: bytes) -> bytes:
        """The PPID from an RSA-3072 OAEP (SHA-256, MGF1-SHA-256) encrypted PPID."""
        return self._issuer.decrypt_ppid(encrypted_ppid)

    def issued_pck_certificates(self, platform: RegisteredPlatform) -> list[x509.Certificate]:
        """Every PCK certificate on record for ``platform``."""
        return self._store.issued_pck_certificates(platform)

    # -- collateral and CRLs --------------------------------------------------------------

    def tcb_info(
        self, fmspc: bytes, *, tcb_evaluation_data_number: int | None = None
    ) -> SignedCollateral:
        """Signed TCB Info v3 for ``fmspc`` (re-issued when stale or when the policy changed)."""
        return self._collateral.tcb_info(
            fmspc, tcb_evaluation_data_number=tcb_evaluation_data_number
        )

    def qe_identity(self, *, tcb_evaluation_data_number: int | None = None) -> SignedCollateral:
        """Signed QE Identity v2 of QE3."""
        return self._collateral.qe_identity(tcb_evaluation_data_number=tcb_evaluation_data_number)

    def pck_crl(self, ca_type: str) -> bytes:
        """DER of the PCK CA's CRL: revoked serials and every PCK of revoked platforms."""
        return self._collateral.pck_crl(ca_type)

    def root_ca_crl(self) -> bytes:
        """DER of the root CA CRL (covers the PCK CAs and the TCB signer)."""
        return self._collateral.root_ca_crl()

    # -- policy changes (what the `sim` commands do) --------------------------------------

    def tcb_recovery(
        self,
        *,
        qe_svn: int | None = None,
        pce_svn: int | None = None,
        tcb_components: Sequence[int] | None = None,
        fmspcs: Sequence[bytes] | None = None,
        advisory_ids: Sequence[str] = (),
    ) -> TcbPolicy:
        """A TCB recovery (``TcbPolicy.after_tcb_recovery``), published immediately."""
        return self.update_policy(
            lambda policy: policy.after_tcb_recovery(
                now=self.now(),
                qe_svn=qe_svn,
                pce_svn=pce_svn,
                components=tcb_components,
                fmspcs=fmspcs,
                advisory_ids=advisory_ids,
            )
        )

    def set_platform_tcb_status(
        self,
        status: str,
        *,
        platform: RegisteredPlatform | None = None,
        fmspc: bytes | None = None,
        tcb_components: Sequence[int] | None = None,
        pce_svn: int = PCE_SVN,
        advisory_ids: Sequence[str] = (),
    ) -> TcbPolicy:
        """Set the status of one platform TCB level (default: ``platform``'s own TCB)."""
        if fmspc is None or tcb_components is None:
            if platform is None:
                platforms = self.platforms()
                if not platforms:
                    raise PolicyError("no platform is registered; name an FMSPC and TCB components")
                platform = platforms[0]
            fmspc = platform.fmspc if fmspc is None else fmspc
            tcb_components = platform.tcb_components if tcb_components is None else tcb_components
        chosen_fmspc, components = fmspc, tuple(tcb_components)
        return self.update_policy(
            lambda policy: policy.with_platform_tcb_status(
                fmspc=chosen_fmspc,
                components=components,
                pce_svn=pce_svn,
                status=status,
                advisory_ids=advisory_ids,
                now=self.now(),
            )
        )

    def set_qe_tcb_status(
        self, status: str, *, isv_svn: int, advisory_ids: Sequence[str] = ()
    ) -> TcbPolicy:
        return self.update_policy(
            lambda policy: policy.with_qe_tcb_status(
                isv_svn=isv_svn, status=status, advisory_ids=advisory_ids, now=self.now()
            )
        )

    def revoke_platform(self, platform: RegisteredPlatform) -> TcbPolicy:
        """Revoke every PCK certificate of ``platform``, including ones issued later."""
        return self.update_policy(
            lambda policy: policy.with_revoked_platform(platform.ppid, now=self.now())
        )

    def revoke_serial(self, serial: int) -> TcbPolicy:
        """Put one PCK certificate serial on its CA's CRL.

        Raises :class:`InvalidArgumentError` for a number no certificate can carry
        (not positive, or more than 20 octets): the CRL could not list it.
        """
        return self.update_policy(lambda policy: policy.with_revoked_serial(serial, now=self.now()))

    def revoke_ca(self, ca: str) -> TcbPolicy:
        return self.update_policy(lambda policy: policy.with_revoked_ca(ca, now=self.now()))

    def set_expired(self, artifacts: Sequence[str]) -> TcbPolicy:
        """Issue these artifacts already expired from now on (empty: back to normal)."""
        return self.update_policy(lambda policy: policy.with_expired(artifacts))
