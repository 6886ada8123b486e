"""The simulated SGX manufacturer: its directory, keys, platforms and issuance.

A manufacturer lives in ``DIR/pcs`` of a simulation directory (``sim init DIR``):

====================================  ====  =============================================
file                                  mode  content
====================================  ====  =============================================
``manufacturer.json``                 0644  format, PCCS URL (in the CDPs), creation time
``root-ca.der``, ``root-ca.pem``      0644  the simulated root certificate (trust anchor)
``root-ca.key``                       0600  its P-256 key (PKCS#8 PEM)
``pck-processor-ca.pem`` / ``.key``   0644  PCK Processor CA certificate / 0600 key
``pck-platform-ca.pem`` / ``.key``    0644  PCK Platform CA certificate / 0600 key
``tcb-signing.pem`` / ``.key``        0644  TCB Signing certificate / 0600 key
``ppid-encryption.pem`` / ``.key``    0644  RSA-3072 PPID encryption public key / 0600 key
``master.secret``                     0600  32 bytes: root of every platform's secrets
``policy.json``                       0644  the TCB policy (``_policy.py``), edited by ``sim``
``registry.json``                     0644  the provisioned platforms (``_registry.py``)
``pck/<PPID>/<TCBm>-<PCEID>.pem``     0644  every PCK certificate issued (reused per TCB)
``cache/*.json``                      0644  the last issued TCB Info, QE Identity and CRLs
====================================  ====  =============================================

Everything is written atomically (temporary file, fsync, rename). Changes to
``policy.json`` and ``registry.json`` are picked up on the next call (the file's
identity and mtime are compared), and issued collateral is re-issued when stale
or when its inputs changed, under an exclusive ``flock`` so that several PCCS
replicas can share one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sgx_quote_helper._fs import atomic_write, make_directory
from sgx_quote_helper._time import Clock, format_time, parse_time, to_utc_seconds, utc_now
from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.pccs import SignedCollateral
from sgx_quote_helper.pccs._types import PckCertificate, PckCertificateQuery
from sgx_quote_helper.pcs._collateral import qe_identity_inner, sign_collateral, tcb_info_inner
from sgx_quote_helper.pcs._errors import (
    EvaluationDataNumberNotFoundError,
    FmspcNotFoundError,
    InvalidRequestError,
    ManufacturerDirectoryError,
    PlatformNotFoundError,
    PolicyError,
)
from sgx_quote_helper.pcs._pki import (
    CA_TYPES,
    CLOCK_SKEW,
    PLATFORM_CA_CN,
    PROCESSOR_CA_CN,
    CertificateAuthority,
    issue_crl,
    issue_pck_ca,
    issue_pck_certificate,
    issue_root_ca,
    issue_tcb_signing,
    pck_crl_url,
    root_crl_url,
)
from sgx_quote_helper.pcs._policy import CA_CERTIFICATES, TcbPolicy
from sgx_quote_helper.pcs._registry import RegisteredPlatform, Registry, default_sgx_type
from sgx_quote_helper.platform import derive_pck_private_key, derive_provisioning_secret
from sgx_quote_helper.sgx._pck_extension import PlatformConfiguration

logger = logging.getLogger("sgx_quote_helper.pcs")

MANUFACTURER_FORMAT = 1
PCS_DIRNAME = "pcs"
DEFAULT_PCCS_URL = "http://127.0.0.1:8081"

#: TCB components of a new simulated platform (the shape of Intel's sample platform).
DEFAULT_TCB_COMPONENTS = (11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
DEFAULT_PCE_ID = b"\x00\x00"

_MANIFEST = "manufacturer.json"
_POLICY = "policy.json"
_REGISTRY = "registry.json"
_LOCK = ".lock"
_PUBLIC = 0o644
_SECRET = 0o600

# A cached PCK certificate is reused until this close to its expiry.
_PCK_REUSE_MARGIN = timedelta(days=30)
# An expired artifact expired this long ago.
_EXPIRED_BY = timedelta(days=1)

_KEY_FILES = {
    "root": "root-ca.key",
    "processor": "pck-processor-ca.key",
    "platform": "pck-platform-ca.key",
    "tcb-signing": "tcb-signing.key",
}
_CERT_FILES = {
    "root": "root-ca.pem",
    "processor": "pck-processor-ca.pem",
    "platform": "pck-platform-ca.pem",
    "tcb-signing": "tcb-signing.pem",
}


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


@dataclass(frozen=True)
class _Issued:
    """One issued artifact in ``cache/``: what it was built from, when, and the data."""

    inputs: str
    issued_at: datetime
    number: int
    data: str

    def fresh(self, inputs: str, now: datetime, refresh: timedelta) -> bool:
        return self.inputs == inputs and self.issued_at <= now < self.issued_at + refresh


class Manufacturer:
    """A simulated manufacturer (simulated Intel) stored in ``<sim_dir>/pcs``.

    Use :meth:`create` (what ``sim init`` does) or :meth:`load`. Every method
    sees the current ``policy.json`` and ``registry.json``. ``clock`` gives the
    current UTC time (tests inject one to move time).
    """

    def __init__(
        self,
        sim_dir: Path,
        *,
        clock: Clock,
        pccs_url: str,
        authorities: dict[str, CertificateAuthority],
        ppid_key: rsa.RSAPrivateKey,
        master_secret: bytes,
    ) -> None:
        self.sim_dir = sim_dir
        self.pcs_dir = sim_dir / PCS_DIRNAME
        self.pccs_url = pccs_url
        self._clock = clock
        self._authorities = authorities
        self._ppid_key = ppid_key
        self._master_secret = master_secret
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._policy: TcbPolicy | None = None
        self._policy_stamp: tuple[int, int, int] | None = None
        self._registry: Registry | None = None
        self._registry_stamp: tuple[int, int, int] | None = None
        self._issued: dict[str, _Issued] = {}

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
        sim_path = Path(sim_dir)
        pcs_dir = sim_path / PCS_DIRNAME
        if pcs_dir.exists() and any(pcs_dir.iterdir()):
            raise ManufacturerDirectoryError(
                f"{pcs_dir} already holds a manufacturer; choose a new simulation directory"
            )
        if not pccs_url.startswith(("http://", "https://")):
            raise ManufacturerDirectoryError(f"the PCCS URL must be http(s)://, not {pccs_url!r}")
        pccs_url = pccs_url.rstrip("/")
        now = to_utc_seconds(clock())
        try:
            make_directory(sim_path, 0o755)
            make_directory(pcs_dir, 0o755)
            pcs_dir.chmod(0o755)
        except OSError as exc:
            raise ManufacturerDirectoryError(
                f"cannot create the manufacturer directory {pcs_dir}: "
                f"{exc.strerror or exc}; check that {sim_path} is a directory (or can be "
                "created) and is writable"
            ) from exc

        keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in _KEY_FILES}
        root_url = root_crl_url(pccs_url)
        root = CertificateAuthority(
            issue_root_ca(keys["root"], now=now, crl_url=root_url), keys["root"]
        )
        authorities = {
            "root": root,
            "processor": CertificateAuthority(
                issue_pck_ca(
                    keys["processor"].public_key(),
                    common_name=PROCESSOR_CA_CN,
                    root=root,
                    now=now,
                    crl_url=root_url,
                ),
                keys["processor"],
            ),
            "platform": CertificateAuthority(
                issue_pck_ca(
                    keys["platform"].public_key(),
                    common_name=PLATFORM_CA_CN,
                    root=root,
                    now=now,
                    crl_url=root_url,
                ),
                keys["platform"],
            ),
            "tcb-signing": CertificateAuthority(
                issue_tcb_signing(
                    keys["tcb-signing"].public_key(), root=root, now=now, crl_url=root_url
                ),
                keys["tcb-signing"],
            ),
        }
        ppid_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        master_secret = os.urandom(32)

        for name, authority in authorities.items():
            key_pem = authority.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            atomic_write(pcs_dir / _KEY_FILES[name], key_pem, mode=_SECRET)
            cert_pem = authority.certificate.public_bytes(serialization.Encoding.PEM)
            atomic_write(pcs_dir / _CERT_FILES[name], cert_pem, mode=_PUBLIC)
        atomic_write(
            pcs_dir / "root-ca.der",
            root.certificate.public_bytes(serialization.Encoding.DER),
            mode=_PUBLIC,
        )
        atomic_write(
            pcs_dir / "ppid-encryption.key",
            ppid_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            mode=_SECRET,
        )
        atomic_write(
            pcs_dir / "ppid-encryption.pem",
            ppid_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            mode=_PUBLIC,
        )
        atomic_write(pcs_dir / "master.secret", master_secret, mode=_SECRET)
        policy = TcbPolicy.initial(now=now, qe_svn=qe_svn)
        atomic_write(pcs_dir / _POLICY, policy.to_json().encode(), mode=_PUBLIC)
        atomic_write(pcs_dir / _REGISTRY, Registry().to_json().encode(), mode=_PUBLIC)
        for sub in ("pck", "cache"):
            make_directory(pcs_dir / sub, 0o755)
        manifest = {
            "format": MANUFACTURER_FORMAT,
            "description": "Simulated SGX manufacturer for development and tests. "
            "Not Intel: nothing here is trusted by verifiers unless this root is passed "
            "explicitly.",
            "pccsUrl": pccs_url,
            "created": format_time(now),
        }
        # Written last: its presence marks a complete manufacturer directory.
        atomic_write(
            pcs_dir / _MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), mode=_PUBLIC
        )
        logger.info(
            "manufacturer.created",
            extra={"fields": {"dir": str(pcs_dir), "pccs_url": pccs_url}},
        )
        return cls(
            sim_path,
            clock=clock,
            pccs_url=pccs_url,
            authorities=authorities,
            ppid_key=ppid_key,
            master_secret=master_secret,
        )

    @classmethod
    def load(cls, sim_dir: str | os.PathLike[str], *, clock: Clock = utc_now) -> Manufacturer:
        """The manufacturer of the simulation directory ``sim_dir`` (not ``sim_dir/pcs``)."""
        sim_path = Path(sim_dir)
        pcs_dir = sim_path / PCS_DIRNAME
        manifest_path = pcs_dir / _MANIFEST
        if not manifest_path.is_file():
            hint = "run `sgx-quote-helper sim init DIR` first"
            if (sim_path / _MANIFEST).is_file():
                hint = f"pass the simulation directory {sim_path.parent}, not its pcs/ directory"
            raise ManufacturerDirectoryError(f"no simulated manufacturer in {pcs_dir}: {hint}")
        try:
            manifest = json.loads(manifest_path.read_bytes())
            if manifest.get("format") != MANUFACTURER_FORMAT:
                raise ValueError(f"unsupported format {manifest.get('format')!r}")
            authorities = {}
            for name in _KEY_FILES:
                key = serialization.load_pem_private_key(
                    (pcs_dir / _KEY_FILES[name]).read_bytes(), password=None
                )
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise ValueError(f"{_KEY_FILES[name]} is not an EC key")
                cert = x509.load_pem_x509_certificate((pcs_dir / _CERT_FILES[name]).read_bytes())
                authorities[name] = CertificateAuthority(cert, key)
            ppid_key = serialization.load_pem_private_key(
                (pcs_dir / "ppid-encryption.key").read_bytes(), password=None
            )
            if not isinstance(ppid_key, rsa.RSAPrivateKey):
                raise ValueError("ppid-encryption.key is not an RSA key")
            master_secret = (pcs_dir / "master.secret").read_bytes()
            if len(master_secret) != 32:
                raise ValueError("master.secret is not 32 bytes")
        except PermissionError as exc:
            raise ManufacturerDirectoryError(
                f"cannot read the manufacturer's keys in {pcs_dir} ({exc.strerror}): "
                "run as the user that created it"
            ) from None
        except (OSError, ValueError, KeyError) as exc:
            raise ManufacturerDirectoryError(
                f"the manufacturer in {pcs_dir} is incomplete or damaged: {exc}"
            ) from None
        manufacturer = cls(
            sim_path,
            clock=clock,
            pccs_url=str(manifest["pccsUrl"]),
            authorities=authorities,
            ppid_key=ppid_key,
            master_secret=master_secret,
        )
        manufacturer.policy()  # fail now, not on the first request, if it is invalid
        manufacturer.registry()
        return manufacturer

    # -- public material --------------------------------------------------------------

    @property
    def root_ca_certificate(self) -> x509.Certificate:
        return self._authorities["root"].certificate

    @property
    def root_ca_der(self) -> bytes:
        """The trust anchor to pass to verifiers (``verify_with_root_ca``)."""
        return self.root_ca_certificate.public_bytes(serialization.Encoding.DER)

    @property
    def root_ca_pem(self) -> str:
        return self._pem("root")

    def certificate(self, name: str) -> x509.Certificate:
        """``root``, ``processor``, ``platform`` or ``tcb-signing``."""
        return self._authorities[name].certificate

    @property
    def tcb_signing_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._authorities["tcb-signing"].private_key.public_key()

    @property
    def ppid_encryption_key_pem(self) -> str:
        return (
            self._ppid_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def tcb_issuer_chain_pem(self) -> str:
        """TCB Signing then root: the chain of TCB Info and QE Identity."""
        return self._pem("tcb-signing") + self._pem("root")

    def pck_crl_issuer_chain_pem(self, ca_type: str) -> str:
        """PCK CA then root: the chain of a PCK CRL and of PCK certificates."""
        _check_ca_type(ca_type)
        return self._pem(ca_type) + self._pem("root")

    def _pem(self, name: str) -> str:
        return self._authorities[name].certificate.public_bytes(serialization.Encoding.PEM).decode()

    # -- policy and registry ------------------------------------------------------------

    def now(self) -> datetime:
        return to_utc_seconds(self._clock())

    def policy(self) -> TcbPolicy:
        """The current policy (re-read when ``policy.json`` changed)."""
        with self._thread_lock:
            path = self.pcs_dir / _POLICY
            stamp = _stamp(path)
            if self._policy is None or stamp != self._policy_stamp:
                try:
                    self._policy = TcbPolicy.from_json(path.read_bytes())
                except OSError as exc:
                    raise ManufacturerDirectoryError(f"cannot read {path}: {exc}") from None
                except PolicyError as exc:
                    raise PolicyError(f"{path}: {exc}") from None
                self._policy_stamp = stamp
            return self._policy

    def registry(self) -> Registry:
        """The provisioned platforms (re-read when ``registry.json`` changed)."""
        with self._thread_lock:
            path = self.pcs_dir / _REGISTRY
            stamp = _stamp(path)
            if self._registry is None or stamp != self._registry_stamp:
                try:
                    self._registry = Registry.from_json(path.read_bytes(), source=str(path))
                except OSError as exc:
                    raise ManufacturerDirectoryError(f"cannot read {path}: {exc}") from None
                self._registry_stamp = stamp
            return self._registry

    def platforms(self) -> tuple[RegisteredPlatform, ...]:
        return self.registry().platforms

    def update_policy(self, change: Callable[[TcbPolicy], TcbPolicy]) -> TcbPolicy:
        """Apply ``change`` to the policy on disk, atomically and under the lock."""
        with self._exclusive():
            self._policy = None  # re-read under the lock
            new = change(self.policy())
            # Round-trip through the file format so that nothing unwritable is accepted.
            text = new.to_json()
            TcbPolicy.from_json(text)
            atomic_write(self.pcs_dir / _POLICY, text.encode(), mode=_PUBLIC)
            self._policy = None
            return self.policy()

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
            resolved = candidate.resolve()
            for platform in registry.platforms:
                if (self.sim_dir / platform.path).resolve() == resolved:
                    return platform
            description = candidate / "platform.json"
            if description.is_file():
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    ppid = bytes.fromhex(json.loads(description.read_bytes())["ppid"])
                    found = registry.by_ppid(ppid)
                    if found is not None:
                        return found
        names = ", ".join(p.name for p in registry.platforms) or "none"
        raise PlatformNotFoundError(
            f"no registered platform is named or stored at {text!r} (registered: {names})"
        )

    # -- provisioning -------------------------------------------------------------------

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
        :meth:`register_platform`. ``fmspc`` defaults to the FMSPC of the first
        registered platform, or a random one (``00`` + 3 random bytes + ``0000``).
        """
        _check_ca_type(ca_type)
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
        ppid = os.urandom(16)
        platform = RegisteredPlatform(
            name=name,
            path=self._relative(Path(path)),
            ppid=ppid,
            qe_id=os.urandom(16),
            fmspc=fmspc,
            pce_id=pce_id,
            tcb_components=components,
            ca_type=ca_type,
            registered=self.now(),
            sgx_type=default_sgx_type(ca_type),
            platform_instance_id=os.urandom(16) if ca_type == "platform" else None,
            configuration=PlatformConfiguration(True, True, True)
            if ca_type == "platform"
            else None,
        )
        return PlatformProvisioning(
            platform=platform,
            provisioning_secret=derive_provisioning_secret(self._master_secret, ppid),
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
        with self._exclusive():
            self._registry = None
            registry = self.registry()
            for other in registry.platforms:
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
            atomic_write(
                self.pcs_dir / _REGISTRY,
                registry.with_platform(platform).to_json().encode(),
                mode=_PUBLIC,
            )
            self._registry = None
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

    def _relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.sim_dir.resolve()))
        except ValueError:
            return str(path.resolve())

    # -- PCK certificates ---------------------------------------------------------------

    def issue_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        """The PCK certificate of a platform for the queried raw TCB (TCBm = raw).

        The platform is found by QE-ID, else by decrypting ``encrypted_ppid``. Its
        PCK public key is recomputed with the KDF contract (``derive_pck_private_key``
        of its provisioning secret). A certificate issued before for the same TCB is
        returned again while it is valid, so every issued serial is on record.
        """
        if len(query.cpu_svn) != 16:
            raise InvalidRequestError("CPUSVN must be 16 bytes")
        if len(query.pce_id) != 2:
            raise InvalidRequestError("PCE-ID must be 2 bytes")
        if not 0 <= query.pce_svn <= 0xFFFF:
            raise InvalidRequestError("PCESVN must be a u16")
        platform = self._platform_for(query)
        if query.pce_id != platform.pce_id:
            raise PlatformNotFoundError(
                f"platform {platform.name} has PCE-ID {platform.pce_id.hex().upper()}, "
                f"not {query.pce_id.hex().upper()}"
            )
        authority = self._authorities[platform.ca_type]
        tcbm = query.cpu_svn + query.pce_svn.to_bytes(2, "little")
        path = self._pck_path(platform, tcbm)
        now = self.now()
        certificate = self._reusable_pck(path, authority, now)
        if certificate is None:
            with self._exclusive():
                certificate = self._reusable_pck(path, authority, now)
                if certificate is None:
                    certificate = self._issue_pck(platform, query, authority, now)
                    try:
                        make_directory(path.parent, 0o755)
                        atomic_write(
                            path,
                            certificate.public_bytes(serialization.Encoding.PEM),
                            mode=_PUBLIC,
                        )
                    except OSError as exc:
                        # Served anyway; without the record, revoking the platform
                        # cannot list this serial.
                        logger.warning(
                            "pck.record_write_failed",
                            extra={"fields": {"path": str(path), "error": str(exc)}},
                        )
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
        return PckCertificate(
            leaf_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            issuer_chain_pem=self.pck_crl_issuer_chain_pem(platform.ca_type),
            tcbm=tcbm,
            fmspc=platform.fmspc,
            ca_type=platform.ca_type,
        )

    def _platform_for(self, query: PckCertificateQuery) -> RegisteredPlatform:
        registry = self.registry()
        platform = registry.by_qe_id(query.qe_id)
        if platform is None and query.encrypted_ppid is not None:
            platform = registry.by_ppid(self.decrypt_ppid(query.encrypted_ppid))
        if platform is None:
            raise PlatformNotFoundError(
                f"no platform with QE-ID {query.qe_id.hex().upper()} (or that encrypted PPID) "
                "was provisioned by this manufacturer"
            )
        return platform

    def decrypt_ppid(self, encrypted_ppid: bytes) -> bytes:
        """The PPID from an RSA-3072 OAEP (SHA-256, MGF1-SHA-256) encrypted PPID."""
        try:
            ppid = self._ppid_key.decrypt(
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

    def _pck_path(self, platform: RegisteredPlatform, tcbm: bytes) -> Path:
        name = f"{tcbm.hex().upper()}-{platform.pce_id.hex().upper()}.pem"
        return self.pcs_dir / "pck" / platform.ppid.hex().upper() / name

    def _reusable_pck(
        self, path: Path, authority: CertificateAuthority, now: datetime
    ) -> x509.Certificate | None:
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None
        if certificate.issuer != authority.certificate.subject:
            return None
        if not (
            certificate.not_valid_before_utc <= now
            and now + _PCK_REUSE_MARGIN < certificate.not_valid_after_utc
        ):
            return None
        return certificate

    def _issue_pck(
        self,
        platform: RegisteredPlatform,
        query: PckCertificateQuery,
        authority: CertificateAuthority,
        now: datetime,
    ) -> x509.Certificate:
        provisioning_secret = derive_provisioning_secret(self._master_secret, platform.ppid)
        pck_key = derive_pck_private_key(
            provisioning_secret, query.cpu_svn, query.pce_svn, query.pce_id
        )
        return issue_pck_certificate(
            pck_key.public_key(),
            issuer=authority,
            extension=platform.sgx_extension(query.cpu_svn, query.pce_svn),
            now=now,
            crl_url=pck_crl_url(self.pccs_url, platform.ca_type),
        )

    def issued_pck_certificates(self, platform: RegisteredPlatform) -> list[x509.Certificate]:
        """Every PCK certificate on record for ``platform``."""
        directory = self.pcs_dir / "pck" / platform.ppid.hex().upper()
        certificates = []
        for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                certificates.append(x509.load_pem_x509_certificate(path.read_bytes()))
        return certificates

    # -- collateral ---------------------------------------------------------------------

    def tcb_info(
        self, fmspc: bytes, *, tcb_evaluation_data_number: int | None = None
    ) -> SignedCollateral:
        """Signed TCB Info v3 for ``fmspc`` (re-issued when stale or when the policy changed)."""
        policy = self.policy()
        self._check_evaluation_number(policy, tcb_evaluation_data_number)
        fmspc_policy = policy.fmspcs.get(fmspc)
        if fmspc_policy is None:
            raise FmspcNotFoundError(
                f"no TCB Info for FMSPC {fmspc.hex().upper()}: no platform of this family "
                "was provisioned by this manufacturer"
            )

        def build(issue_date: datetime, next_update: datetime) -> dict[str, Any]:
            return tcb_info_inner(
                fmspc=fmspc,
                policy=fmspc_policy,
                tcb_evaluation_data_number=policy.tcb_evaluation_data_number,
                issue_date=issue_date,
                next_update=next_update,
            )

        return self._signed("tcbInfo", f"tcb-info-{fmspc.hex().upper()}", build)

    def qe_identity(self, *, tcb_evaluation_data_number: int | None = None) -> SignedCollateral:
        """Signed QE Identity v2 of QE3."""
        policy = self.policy()
        self._check_evaluation_number(policy, tcb_evaluation_data_number)

        def build(issue_date: datetime, next_update: datetime) -> dict[str, Any]:
            return qe_identity_inner(
                levels=policy.qe_levels,
                tcb_evaluation_data_number=policy.tcb_evaluation_data_number,
                issue_date=issue_date,
                next_update=next_update,
            )

        return self._signed("qeIdentity", "qe-identity", build)

    def _signed(
        self,
        artifact: str,
        name: str,
        build: Callable[[datetime, datetime], dict[str, Any]],
    ) -> SignedCollateral:
        kind = "tcbInfo" if artifact == "tcbInfo" else "enclaveIdentity"
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        inputs = self._inputs(artifact, build(epoch, epoch), self._cert_id("tcb-signing"))

        def issue(_number: int, issue_date: datetime, next_update: datetime) -> str:
            signed = sign_collateral(
                kind,
                build(issue_date, next_update),
                self._authorities["tcb-signing"].private_key,
                chain,
            )
            return json.dumps({"text": signed.text, "signature": signed.signature.hex()})

        chain = self.tcb_issuer_chain_pem()
        stored = json.loads(self._artifact(artifact, name, inputs, issue).data)
        return SignedCollateral(kind, stored["text"], bytes.fromhex(stored["signature"]), chain)

    @staticmethod
    def _check_evaluation_number(policy: TcbPolicy, number: int | None) -> None:
        if number is not None and number != policy.tcb_evaluation_data_number:
            raise EvaluationDataNumberNotFoundError(
                f"only TCB evaluation data number {policy.tcb_evaluation_data_number} is "
                f"published; {number} is not available"
            )

    # -- CRLs ---------------------------------------------------------------------------

    def pck_crl(self, ca_type: str) -> bytes:
        """DER of the PCK CA's CRL: revoked serials and every PCK of revoked platforms."""
        _check_ca_type(ca_type)
        policy = self.policy()
        authority = self._authorities[ca_type]
        revoked: dict[int, datetime] = {
            int(r.subject, 16): r.date for r in policy.revocations.pck_certificates
        }
        revoked_ppids = policy.revocations.revoked_ppids()
        for platform in self.registry().platforms:
            date = revoked_ppids.get(platform.ppid)
            if date is None:
                continue
            for certificate in self.issued_pck_certificates(platform):
                if certificate.issuer == authority.certificate.subject:
                    revoked.setdefault(certificate.serial_number, date)
        return self._crl("pckCrl", f"pck-crl-{ca_type}", authority, revoked)

    def root_ca_crl(self) -> bytes:
        """DER of the root CA CRL (covers the PCK CAs and the TCB signer)."""
        policy = self.policy()
        revoked = {
            self._authorities[r.subject].certificate.serial_number: r.date
            for r in policy.revocations.ca_certificates
            if r.subject in CA_CERTIFICATES
        }
        return self._crl("rootCaCrl", "root-ca-crl", self._authorities["root"], revoked)

    def _crl(
        self,
        artifact: str,
        name: str,
        authority: CertificateAuthority,
        revoked: dict[int, datetime],
    ) -> bytes:
        entries = sorted((serial, format_time(date)) for serial, date in revoked.items())
        inputs = self._inputs(artifact, entries, f"{authority.certificate.serial_number:X}")

        def issue(number: int, this_update: datetime, next_update: datetime) -> str:
            crl = issue_crl(
                authority,
                number=number,
                this_update=this_update,
                next_update=next_update,
                revoked=revoked.items(),
            )
            return crl.public_bytes(serialization.Encoding.DER).hex()

        return bytes.fromhex(self._artifact(artifact, name, inputs, issue).data)

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
        return self.update_policy(lambda policy: policy.with_revoked_serial(serial, now=self.now()))

    def revoke_ca(self, ca: str) -> TcbPolicy:
        return self.update_policy(lambda policy: policy.with_revoked_ca(ca, now=self.now()))

    def set_expired(self, artifacts: Sequence[str]) -> TcbPolicy:
        """Issue these artifacts already expired from now on (empty: back to normal)."""
        return self.update_policy(lambda policy: policy.with_expired(artifacts))

    # -- issuance cache -------------------------------------------------------------------

    def _cert_id(self, name: str) -> str:
        return f"{self._authorities[name].certificate.serial_number:X}"

    def _inputs(self, artifact: str, content: Any, signer: str) -> str:
        """A digest of everything an artifact is built from, except the time."""
        validity = self.policy().validity
        document = [artifact, content, signer, validity.days, artifact in validity.expired]
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _window(self, artifact: str, now: datetime) -> tuple[datetime, datetime]:
        """``issueDate``/``thisUpdate`` and ``nextUpdate`` of an artifact issued now."""
        validity = self.policy().validity
        lifetime = timedelta(days=validity.days)
        if artifact in validity.expired:
            end = now - _EXPIRED_BY
            return end - lifetime, end
        # Backdated like the certificates: a verifier whose clock is a little
        # behind this one must not see freshly re-issued collateral as "issued
        # in the future" (found with @phala/dcap-qvl, which checks to the second).
        return now - CLOCK_SKEW, now + lifetime

    def _artifact(
        self,
        artifact: str,
        name: str,
        inputs: str,
        issue: Callable[[int, datetime, datetime], str],
    ) -> _Issued:
        now = self.now()
        refresh = timedelta(hours=self.policy().validity.refresh_hours)
        with self._thread_lock:
            cached = self._issued.get(name)
            if cached is not None and cached.fresh(inputs, now, refresh):
                return cached
        with self._exclusive():
            path = self.pcs_dir / "cache" / f"{name}.json"
            stored = _read_issued(path)
            if stored is not None and stored.fresh(inputs, now, refresh):
                self._issued[name] = stored
                return stored
            previous = max(
                (entry.number for entry in (stored, self._issued.get(name)) if entry is not None),
                default=0,
            )
            start, end = self._window(artifact, now)
            entry = _Issued(inputs, now, previous + 1, issue(previous + 1, start, end))
            try:
                make_directory(path.parent, 0o755)
                atomic_write(path, _issued_json(entry), mode=_PUBLIC)
            except OSError as exc:
                # A read-only manufacturer directory still serves (from memory).
                logger.warning(
                    "collateral.cache_write_failed",
                    extra={"fields": {"artifact": name, "error": str(exc)}},
                )
            self._issued[name] = entry
            logger.info(
                "collateral.issued",
                extra={
                    "fields": {
                        "artifact": name,
                        "number": entry.number,
                        "issue_date": format_time(start),
                        "next_update": format_time(end),
                    }
                },
            )
            return entry

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This thread, and this process among processes sharing the directory."""
        with self._thread_lock:
            if self._lock_depth == 0:
                try:
                    fd = os.open(self.pcs_dir / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                except OSError:
                    fd = None  # read-only directory: nothing to serialize on disk
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None


def _check_ca_type(ca_type: str) -> None:
    if ca_type not in CA_TYPES:
        raise InvalidRequestError(f"the PCK CA type is processor or platform, not {ca_type!r}")


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise ManufacturerDirectoryError(f"cannot read {path}: {exc.strerror}") from None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _issued_json(entry: _Issued) -> bytes:
    document = {
        "inputs": entry.inputs,
        "issuedAt": entry.issued_at.isoformat(),
        "number": entry.number,
        "data": entry.data,
    }
    return (json.dumps(document) + "\n").encode()


def _read_issued(path: Path) -> _Issued | None:
    try:
        document = json.loads(path.read_bytes())
        return _Issued(
            inputs=str(document["inputs"]),
            issued_at=parse_time(document["issuedAt"], "issuedAt"),
            number=int(document["number"]),
            data=str(document["data"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
