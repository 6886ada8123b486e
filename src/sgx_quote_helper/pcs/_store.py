"""The simulated manufacturer's directory: every file it reads and writes.

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
identity and mtime are compared). :meth:`ManufacturerStore.exclusive` serializes
writers: the threads of this process, and processes sharing the directory (an
exclusive ``flock``), so that several PCCS replicas can share one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sgx_quote_helper._fs import atomic_write, make_directory
from sgx_quote_helper._time import Clock, format_time, to_utc_seconds
from sgx_quote_helper.pcs._errors import (
    InvalidRequestError,
    ManufacturerDirectoryError,
    PolicyError,
)
from sgx_quote_helper.pcs._pki import (
    CA_TYPES,
    PLATFORM_CA_CN,
    PROCESSOR_CA_CN,
    CertificateAuthority,
    issue_pck_ca,
    issue_root_ca,
    issue_tcb_signing,
    root_crl_url,
)
from sgx_quote_helper.pcs._policy import TcbPolicy
from sgx_quote_helper.pcs._registry import RegisteredPlatform, Registry

logger = logging.getLogger("sgx_quote_helper.pcs")

MANUFACTURER_FORMAT = 1
PCS_DIRNAME = "pcs"

_MANIFEST = "manufacturer.json"
_POLICY = "policy.json"
_REGISTRY = "registry.json"
_LOCK = ".lock"
_ROOT_CA_DER = "root-ca.der"
_PPID_KEY = "ppid-encryption.key"
_PPID_PUBLIC_KEY = "ppid-encryption.pem"
_MASTER_FILE = "master.secret"
_PUBLIC = 0o644
_SECRET = 0o600

#: The four signing authorities: key file and certificate file of each.
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

Stamp = tuple[int, int, int]
T = TypeVar("T")


@dataclass(frozen=True)
class ManufacturerSecrets:
    """What only the manufacturer holds: its signing authorities and platform roots."""

    authorities: dict[str, CertificateAuthority]
    ppid_key: rsa.RSAPrivateKey
    master_secret: bytes


def check_ca_type(ca_type: str) -> None:
    if ca_type not in CA_TYPES:
        raise InvalidRequestError(f"the PCK CA type is processor or platform, not {ca_type!r}")


def new_secrets(pccs_url: str, now: datetime) -> ManufacturerSecrets:
    """Fresh keys: a root CA, the two PCK CAs and the TCB signer under it, PPID key, master."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in _KEY_FILES}
    root_url = root_crl_url(pccs_url)
    root = CertificateAuthority(
        issue_root_ca(keys["root"], now=now, crl_url=root_url), keys["root"]
    )

    def pck_ca(name: str, common_name: str) -> CertificateAuthority:
        certificate = issue_pck_ca(
            keys[name].public_key(), common_name=common_name, root=root, now=now, crl_url=root_url
        )
        return CertificateAuthority(certificate, keys[name])

    tcb_signing = issue_tcb_signing(
        keys["tcb-signing"].public_key(), root=root, now=now, crl_url=root_url
    )
    return ManufacturerSecrets(
        authorities={
            "root": root,
            "processor": pck_ca("processor", PROCESSOR_CA_CN),
            "platform": pck_ca("platform", PLATFORM_CA_CN),
            "tcb-signing": CertificateAuthority(tcb_signing, keys["tcb-signing"]),
        },
        ppid_key=rsa.generate_private_key(public_exponent=65537, key_size=3072),
        master_secret=os.urandom(32),
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ManufacturerStore:
    """The files of one manufacturer directory (``<sim_dir>/pcs``), read and written safely.

    Use :meth:`create` (a new directory) or :meth:`open` (an existing one).
    ``clock`` gives the current UTC time (tests inject one to move time).
    """

    def __init__(
        self, sim_dir: Path, *, clock: Clock, pccs_url: str, secrets: ManufacturerSecrets
    ) -> None:
        self.sim_dir = sim_dir
        self.pcs_dir = sim_dir / PCS_DIRNAME
        self.pccs_url = pccs_url
        self.secrets = secrets
        self._clock = clock
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._policy = _WatchedFile(self.policy_path, _parse_policy)
        self._registry = _WatchedFile(self.pcs_dir / _REGISTRY, _parse_registry)

    # -- creating and opening ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        sim_dir: Path,
        *,
        pccs_url: str,
        clock: Clock,
        now: datetime,
        secrets: ManufacturerSecrets,
        policy: TcbPolicy,
    ) -> ManufacturerStore:
        """Write a complete manufacturer directory; refuse a directory that holds one."""
        cls.refuse_existing(sim_dir)
        pcs_dir = sim_dir / PCS_DIRNAME
        _make_directory(pcs_dir, sim_dir)
        _write_secrets(pcs_dir, secrets)
        atomic_write(pcs_dir / _POLICY, policy.to_json().encode(), mode=_PUBLIC)
        atomic_write(pcs_dir / _REGISTRY, Registry().to_json().encode(), mode=_PUBLIC)
        for sub in ("pck", "cache"):
            make_directory(pcs_dir / sub, 0o755)
        # Written last: its presence marks a complete manufacturer directory.
        _write_manifest(pcs_dir, pccs_url, now)
        return cls(sim_dir, clock=clock, pccs_url=pccs_url, secrets=secrets)

    @staticmethod
    def refuse_existing(sim_dir: Path) -> None:
        """Fail if ``sim_dir`` already holds a manufacturer (before generating any key)."""
        pcs_dir = sim_dir / PCS_DIRNAME
        if pcs_dir.exists() and any(pcs_dir.iterdir()):
            raise ManufacturerDirectoryError(
                f"{pcs_dir} already holds a manufacturer; choose a new simulation directory"
            )

    @classmethod
    def open(cls, sim_dir: Path, *, clock: Clock) -> ManufacturerStore:
        """The manufacturer directory of ``sim_dir``, with its keys read and checked."""
        pcs_dir = sim_dir / PCS_DIRNAME
        manifest_path = pcs_dir / _MANIFEST
        if not manifest_path.is_file():
            hint = "run `sgx-quote-helper sim init DIR` first"
            if (sim_dir / _MANIFEST).is_file():
                hint = f"pass the simulation directory {sim_dir.parent}, not its pcs/ directory"
            raise ManufacturerDirectoryError(f"no simulated manufacturer in {pcs_dir}: {hint}")
        try:
            manifest = json.loads(manifest_path.read_bytes())
            if manifest.get("format") != MANUFACTURER_FORMAT:
                raise ValueError(f"unsupported format {manifest.get('format')!r}")
            secrets = _read_secrets(pcs_dir)
            pccs_url = str(manifest["pccsUrl"])
        except PermissionError as exc:
            raise ManufacturerDirectoryError(
                f"cannot read the manufacturer's keys in {pcs_dir} ({exc.strerror}): "
                "run as the user that created it"
            ) from None
        except (OSError, ValueError, KeyError) as exc:
            raise ManufacturerDirectoryError(
                f"the manufacturer in {pcs_dir} is incomplete or damaged: {exc}"
            ) from None
        return cls(sim_dir, clock=clock, pccs_url=pccs_url, secrets=secrets)

    # -- time and locking ----------------------------------------------------------------

    def now(self) -> datetime:
        return to_utc_seconds(self._clock())

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
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

    @contextlib.contextmanager
    def thread_lock(self) -> Iterator[None]:
        """This thread only: for in-memory state next to the directory."""
        with self._thread_lock:
            yield

    # -- policy.json and registry.json ---------------------------------------------------

    def policy(self) -> TcbPolicy:
        """The current policy (re-read when ``policy.json`` changed)."""
        with self._thread_lock:
            return self._policy.get()

    def update_policy(self, change: Callable[[TcbPolicy], TcbPolicy]) -> TcbPolicy:
        """Apply ``change`` to the policy on disk, atomically and under the lock."""
        with self.exclusive():
            self._policy.forget()  # re-read under the lock
            new = change(self.policy())
            # Round-trip through the file format so that nothing unwritable is accepted.
            text = new.to_json()
            TcbPolicy.from_json(text)
            atomic_write(self._policy.path, text.encode(), mode=_PUBLIC)
            self._policy.forget()
            return self.policy()

    def registry(self) -> Registry:
        """The provisioned platforms (re-read when ``registry.json`` changed)."""
        with self._thread_lock:
            return self._registry.get()

    def update_registry(self, change: Callable[[Registry], Registry]) -> Registry:
        """Apply ``change`` to the registry on disk, atomically and under the lock."""
        with self.exclusive():
            self._registry.forget()  # re-read under the lock
            new = change(self.registry())
            atomic_write(self._registry.path, new.to_json().encode(), mode=_PUBLIC)
            self._registry.forget()
            return new

    # -- public certificates -------------------------------------------------------------

    def certificate(self, name: str) -> x509.Certificate:
        """``root``, ``processor``, ``platform`` or ``tcb-signing``."""
        return self.secrets.authorities[name].certificate

    def certificate_pem(self, name: str) -> str:
        return self.certificate(name).public_bytes(serialization.Encoding.PEM).decode()

    def tcb_issuer_chain_pem(self) -> str:
        """TCB Signing then root: the chain of TCB Info and QE Identity."""
        return self.certificate_pem("tcb-signing") + self.certificate_pem("root")

    @property
    def policy_path(self) -> Path:
        """``policy.json``: what the ``sim`` commands edit, and people may edit by hand."""
        return self.pcs_dir / _POLICY

    @property
    def root_ca_path(self) -> Path:
        """The trust anchor's DER file (what ``--root-ca`` of verifiers takes)."""
        return self.pcs_dir / _ROOT_CA_DER

    # -- the PCK certificate record (pck/) -----------------------------------------------

    def pck_record_path(self, platform: RegisteredPlatform, tcbm: bytes) -> Path:
        name = f"{tcbm.hex().upper()}-{platform.pce_id.hex().upper()}.pem"
        return self._pck_directory(platform) / name

    def read_pck_record(self, path: Path) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None

    def write_pck_record(self, path: Path, certificate: x509.Certificate) -> None:
        """Record an issued PCK certificate (served anyway when the write fails)."""
        try:
            make_directory(path.parent, 0o755)
            atomic_write(path, certificate.public_bytes(serialization.Encoding.PEM), mode=_PUBLIC)
        except OSError as exc:
            # Without the record, revoking the platform cannot list this serial.
            logger.warning(
                "pck.record_write_failed",
                extra={"fields": {"path": str(path), "error": str(exc)}},
            )

    def issued_pck_certificates(self, platform: RegisteredPlatform) -> list[x509.Certificate]:
        """Every PCK certificate on record for ``platform``."""
        directory = self._pck_directory(platform)
        certificates = []
        for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
            certificate = self.read_pck_record(path)
            if certificate is not None:
                certificates.append(certificate)
        return certificates

    def _pck_directory(self, platform: RegisteredPlatform) -> Path:
        return self.pcs_dir / "pck" / platform.ppid.hex().upper()

    # -- the collateral cache (cache/) ---------------------------------------------------

    def read_cached(self, name: str) -> bytes | None:
        try:
            return (self.pcs_dir / "cache" / f"{name}.json").read_bytes()
        except OSError:
            return None

    def write_cached(self, name: str, document: bytes) -> None:
        """Keep an issued artifact (a read-only directory still serves, from memory)."""
        path = self.pcs_dir / "cache" / f"{name}.json"
        try:
            make_directory(path.parent, 0o755)
            atomic_write(path, document, mode=_PUBLIC)
        except OSError as exc:
            logger.warning(
                "collateral.cache_write_failed",
                extra={"fields": {"artifact": name, "error": str(exc)}},
            )

    # -- paths ---------------------------------------------------------------------------

    def relative(self, path: Path) -> str:
        """``path`` relative to the simulation directory when it is inside it."""
        try:
            return str(path.resolve().relative_to(self.sim_dir.resolve()))
        except ValueError:
            return str(path.resolve())


def _make_directory(pcs_dir: Path, sim_dir: Path) -> None:
    try:
        make_directory(sim_dir, 0o755)
        make_directory(pcs_dir, 0o755)
        pcs_dir.chmod(0o755)
    except OSError as exc:
        raise ManufacturerDirectoryError(
            f"cannot create the manufacturer directory {pcs_dir}: "
            f"{exc.strerror or exc}; check that {sim_dir} is a directory (or can be "
            "created) and is writable"
        ) from exc


def _write_secrets(pcs_dir: Path, secrets: ManufacturerSecrets) -> None:
    for name, authority in secrets.authorities.items():
        atomic_write(pcs_dir / _KEY_FILES[name], _pkcs8(authority.private_key), mode=_SECRET)
        cert_pem = authority.certificate.public_bytes(serialization.Encoding.PEM)
        atomic_write(pcs_dir / _CERT_FILES[name], cert_pem, mode=_PUBLIC)
    root_der = secrets.authorities["root"].certificate.public_bytes(serialization.Encoding.DER)
    atomic_write(pcs_dir / _ROOT_CA_DER, root_der, mode=_PUBLIC)
    atomic_write(pcs_dir / _PPID_KEY, _pkcs8(secrets.ppid_key), mode=_SECRET)
    ppid_public = secrets.ppid_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(pcs_dir / _PPID_PUBLIC_KEY, ppid_public, mode=_PUBLIC)
    atomic_write(pcs_dir / _MASTER_FILE, secrets.master_secret, mode=_SECRET)


def _write_manifest(pcs_dir: Path, pccs_url: str, now: datetime) -> None:
    manifest = {
        "format": MANUFACTURER_FORMAT,
        "description": "Simulated SGX manufacturer for development and tests. "
        "Not Intel: nothing here is trusted by verifiers unless this root is passed "
        "explicitly.",
        "pccsUrl": pccs_url,
        "created": format_time(now),
    }
    atomic_write(
        pcs_dir / _MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), mode=_PUBLIC
    )


def _read_secrets(pcs_dir: Path) -> ManufacturerSecrets:
    authorities = {}
    for name, key_file in _KEY_FILES.items():
        key = serialization.load_pem_private_key((pcs_dir / key_file).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file} is not an EC key")
        cert = x509.load_pem_x509_certificate((pcs_dir / _CERT_FILES[name]).read_bytes())
        authorities[name] = CertificateAuthority(cert, key)
    ppid_key = serialization.load_pem_private_key((pcs_dir / _PPID_KEY).read_bytes(), password=None)
    if not isinstance(ppid_key, rsa.RSAPrivateKey):
        raise ValueError(f"{_PPID_KEY} is not an RSA key")
    master_secret = (pcs_dir / _MASTER_FILE).read_bytes()
    if len(master_secret) != 32:
        raise ValueError(f"{_MASTER_FILE} is not 32 bytes")
    return ManufacturerSecrets(authorities, ppid_key, master_secret)


class _WatchedFile(Generic[T]):
    """A file of the store, parsed again only when it changed (identity, mtime and size)."""

    def __init__(self, path: Path, parse: Callable[[bytes, Path], T]) -> None:
        self.path = path
        self._parse = parse
        self._value: T | None = None
        self._stamp: Stamp | None = None

    def get(self) -> T:
        stamp = _stamp(self.path)
        if self._value is None or stamp != self._stamp:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise ManufacturerDirectoryError(f"cannot read {self.path}: {exc}") from None
            self._value = self._parse(data, self.path)
            self._stamp = stamp
        return self._value

    def forget(self) -> None:
        self._value = None


def _parse_policy(data: bytes, path: Path) -> TcbPolicy:
    try:
        return TcbPolicy.from_json(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def _parse_registry(data: bytes, path: Path) -> Registry:
    return Registry.from_json(data, source=str(path))


def _stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError as exc:
        raise ManufacturerDirectoryError(f"cannot read {path}: {exc.strerror}") from None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
