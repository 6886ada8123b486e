"""The platform directory: one simulated SGX CPU package per directory.

Layout and modes (``docs/contracts.md``, "Platform directory")::

    platform.json      0644  description (PPID, QE_ID, FMSPC, PCE-ID, TCB components,
                             the manufacturer's PPID encryption key)
    enclave.secret     0644  root of REPORT and seal keys (like /dev/sgx_enclave)
    provision.secret   0600  root of PCK keys (like /dev/sgx_provision);
                             0640 and group-owned when a provisioning group is given

File modes are the access control: an application process can make REPORTs
(it reads ``enclave.secret``) but cannot derive PCK keys, exactly as an
application container gets ``/dev/sgx_enclave`` but not ``/dev/sgx_provision``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sgx_quote_helper._fs import atomic_write, make_directory
from sgx_quote_helper.platform._cpu import SimulatedCpu
from sgx_quote_helper.platform._errors import PlatformDirectoryError, ProvisioningAccessError

log = logging.getLogger(__name__)

DESCRIPTION_FILE = "platform.json"
ENCLAVE_SECRET_FILE = "enclave.secret"  # noqa: S105 (a file name)
PROVISIONING_SECRET_FILE = "provision.secret"  # noqa: S105 (a file name)

DIRECTORY_MODE = 0o755
DESCRIPTION_MODE = 0o644
ENCLAVE_SECRET_MODE = 0o644
PROVISIONING_SECRET_MODE = 0o600
PROVISIONING_SECRET_GROUP_MODE = 0o640

_SECRET_SIZE = 32


@dataclass(frozen=True)
class PlatformDescription:
    """The public facts of a platform (``platform.json``)."""

    ppid: bytes  # 16 bytes
    qe_id: bytes  # 16 bytes
    fmspc: bytes  # 6 bytes
    pce_id: bytes  # 2 bytes, as in the quote (little-endian u16)
    tcb_components: tuple[int, ...]  # 16 SGX TCB component SVNs
    ppid_encryption_key_pem: str  # the manufacturer's RSA-3072 public key

    def __post_init__(self) -> None:
        for label, value, size in (
            ("ppid", self.ppid, 16),
            ("qe_id", self.qe_id, 16),
            ("fmspc", self.fmspc, 6),
            ("pce_id", self.pce_id, 2),
        ):
            if len(value) != size:
                raise ValueError(f"{label} must be {size} bytes, got {len(value)}")
        if len(self.tcb_components) != 16 or not all(0 <= c <= 255 for c in self.tcb_components):
            raise ValueError("tcb_components must be 16 integers in [0, 255]")

    @property
    def cpu_svn(self) -> bytes:
        """CPUSVN = the 16 component SVNs as bytes (the simulated encoding)."""
        return bytes(self.tcb_components)

    def ppid_encryption_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(self.ppid_encryption_key_pem.encode("ascii"))
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 3072:
            raise ValueError("the PPID encryption key must be an RSA-3072 public key")
        return key

    def to_json(self) -> dict[str, Any]:
        return {
            "ppid": self.ppid.hex(),
            "qe_id": self.qe_id.hex(),
            "fmspc": self.fmspc.hex(),
            "pce_id": self.pce_id.hex(),
            "tcb_components": list(self.tcb_components),
            "ppid_encryption_key": self.ppid_encryption_key_pem,
        }

    @classmethod
    def from_json(cls, doc: object) -> PlatformDescription:
        if not isinstance(doc, dict):
            raise ValueError("the description must be a JSON object")
        components = doc["tcb_components"]
        if not isinstance(components, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in components
        ):
            raise ValueError("tcb_components must be a list of integers")
        pem = doc["ppid_encryption_key"]
        if not isinstance(pem, str):
            raise ValueError("ppid_encryption_key must be a PEM string")
        return cls(
            ppid=bytes.fromhex(doc["ppid"]),
            qe_id=bytes.fromhex(doc["qe_id"]),
            fmspc=bytes.fromhex(doc["fmspc"]),
            pce_id=bytes.fromhex(doc["pce_id"]),
            tcb_components=tuple(components),
            ppid_encryption_key_pem=pem,
        )


class Platform:
    """A loaded platform directory. Use :meth:`load` or :func:`create_platform`."""

    def __init__(
        self,
        path: Path,
        description: PlatformDescription,
        enclave_secret: bytes,
        provisioning_secret: bytes | None,
    ) -> None:
        self.path = path
        self.description = description
        self._enclave_secret = enclave_secret
        self._provisioning_secret = provisioning_secret

    def __repr__(self) -> str:  # never print secrets
        return f"Platform({str(self.path)!r}, provisioning={self.has_provisioning_access})"

    @property
    def has_provisioning_access(self) -> bool:
        return self._provisioning_secret is not None

    def cpu(self) -> SimulatedCpu:
        """The platform's simulated CPU (EREPORT/EGETKEY)."""
        return SimulatedCpu(
            self._enclave_secret, self.description.cpu_svn, self._provisioning_secret
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, need_provisioning: bool) -> Platform:
        """Load a platform directory.

        ``need_provisioning`` (the quote helper) also reads the provisioning
        secret and raises :class:`ProvisioningAccessError` when this process may
        not; applications pass ``False`` and never touch it.
        """
        root = Path(path)
        if not root.is_dir():
            raise PlatformDirectoryError(
                f"no platform directory at {root}; create one with "
                "`sgx-quote-helper sim init DIR` and pass DIR/platform"
            )
        description_path = root / DESCRIPTION_FILE
        try:
            description = PlatformDescription.from_json(
                json.loads(description_path.read_text(encoding="utf-8"))
            )
            description.ppid_encryption_key()  # a bad key fails here, not in the PCE
        except FileNotFoundError:
            raise PlatformDirectoryError(
                f"{root} is not a platform directory (no {DESCRIPTION_FILE}); "
                "pass the `platform` directory inside the `sim init` directory"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PlatformDirectoryError(
                f"{description_path} is unreadable or malformed: {exc}"
            ) from exc
        enclave_secret = _read_secret(root / ENCLAVE_SECRET_FILE)
        provisioning_secret = None
        if need_provisioning:
            provisioning_secret = _read_provisioning_secret(root / PROVISIONING_SECRET_FILE)
        return cls(root, description, enclave_secret, provisioning_secret)


def _missing(path: Path) -> PlatformDirectoryError:
    return PlatformDirectoryError(
        f"{path} is missing; the platform directory is incomplete (re-run `sim init`)"
    )


def _sized(path: Path, data: bytes) -> bytes:
    """``data``, a platform secret read from ``path``, if it has the secret's size."""
    if len(data) != _SECRET_SIZE:
        raise PlatformDirectoryError(f"{path} must hold {_SECRET_SIZE} bytes, has {len(data)}")
    return data


def _read_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except PermissionError:
        raise PlatformDirectoryError(
            f"cannot read {path} (permission denied): every enclave process needs it, "
            f"as it needs /dev/sgx_enclave; its mode should be {ENCLAVE_SECRET_MODE:04o}"
        ) from None
    return _sized(path, data)


def _read_provisioning_secret(path: Path) -> bytes:
    try:
        info = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise _missing(path) from None
    except PermissionError:
        raise ProvisioningAccessError(
            f"no provisioning access: this process (uid {os.getuid()}) cannot read {path}, "
            "the simulated /dev/sgx_provision. Only the quote helper needs it: run it as "
            "the file's owner or in its provisioning group, or use the out-of-process "
            "quote helper (SGX_AESM_ADDR) instead of in-process quoting"
        ) from None
    if info.st_mode & stat.S_IROTH:
        log.warning(
            "provisioning secret %s is world-readable (mode %04o): any process can derive "
            "this platform's PCK keys; chmod 600 (or 640 with a provisioning group)",
            path,
            stat.S_IMODE(info.st_mode),
        )
    return _sized(path, data)


def create_platform(
    path: str | os.PathLike[str],
    *,
    ppid: bytes,
    qe_id: bytes,
    fmspc: bytes,
    pce_id: bytes,
    tcb_components: list[int] | tuple[int, ...],
    provisioning_secret: bytes,
    ppid_encryption_key_pem: str,
    provisioning_gid: int | None = None,
) -> Platform:
    """Create a platform directory (what the manufacturer's ``sim init`` calls).

    ``provisioning_secret`` comes from the manufacturer
    (``derive_provisioning_secret(master, ppid)``); the enclave secret is drawn
    here and never leaves the platform. An existing platform is not replaced.
    """
    root = Path(path)
    if len(provisioning_secret) != _SECRET_SIZE:
        raise ValueError(f"the provisioning secret is {_SECRET_SIZE} bytes")
    description = PlatformDescription(
        ppid=ppid,
        qe_id=qe_id,
        fmspc=fmspc,
        pce_id=pce_id,
        tcb_components=tuple(tcb_components),
        ppid_encryption_key_pem=ppid_encryption_key_pem,
    )
    description.ppid_encryption_key()  # validate before writing anything
    if (root / DESCRIPTION_FILE).exists():
        raise PlatformDirectoryError(
            f"{root} already holds a platform; remove it first to create a new one"
        )
    make_directory(root, DIRECTORY_MODE)  # parents too (DIR/platforms), whatever the umask
    os.chmod(root, DIRECTORY_MODE)
    enclave_secret = os.urandom(_SECRET_SIZE)
    if provisioning_gid is None:
        atomic_write(
            root / PROVISIONING_SECRET_FILE, provisioning_secret, mode=PROVISIONING_SECRET_MODE
        )
    else:
        atomic_write(
            root / PROVISIONING_SECRET_FILE,
            provisioning_secret,
            mode=PROVISIONING_SECRET_GROUP_MODE,
            gid=provisioning_gid,
        )
    atomic_write(root / ENCLAVE_SECRET_FILE, enclave_secret, mode=ENCLAVE_SECRET_MODE)
    text = json.dumps(description.to_json(), indent=2) + "\n"
    # The description last: its presence marks a complete platform directory.
    atomic_write(root / DESCRIPTION_FILE, text.encode("utf-8"), mode=DESCRIPTION_MODE)
    return Platform(root, description, enclave_secret, provisioning_secret)


def application_view(platform_dir: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """What an application container sees of a platform, written to ``target``.

    The description and the enclave secret, not the provisioning secret: the
    container mounts ``/dev/sgx_enclave`` but not ``/dev/sgx_provision``, so it
    can make REPORTs but quotes only through the quote helper.
    """
    source, view = Path(platform_dir), Path(target)
    view.mkdir(mode=DIRECTORY_MODE, parents=True)
    for name, mode in (
        (DESCRIPTION_FILE, DESCRIPTION_MODE),
        (ENCLAVE_SECRET_FILE, ENCLAVE_SECRET_MODE),
    ):
        atomic_write(view / name, (source / name).read_bytes(), mode=mode)
    return view
