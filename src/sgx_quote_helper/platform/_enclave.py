"""Simulated enclaves: identities, the TOML manifest, and built-in identities.

An enclave's identity is what EREPORT puts into a REPORT body and what EGETKEY
binds keys to: MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN, CONFIGSVN, MISCSELECT
and ATTRIBUTES (Intel SDM Vol. 3D, "SGX Instruction References", EREPORT).

Nothing here is typed in as a measurement. MRENCLAVE is *derived* from the
declared code, attributes and MISCSELECT, and MRSIGNER from the signer's public
key, so that changing what an enclave is changes who it is, as on hardware.
The manifest format is documented in ``docs/enclave-manifest.md``.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from sgx_quote_helper._fs import MiB, open_regular_limited, parse_toml, read_limited
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform._errors import ManifestError
from sgx_quote_helper.sgx import (
    QE3_MRSIGNER,
    QE3_PROD_ID,
    XFRM_LEGACY,
    AttributeFlags,
    Attributes,
    ReportBody,
    TargetInfo,
)

if TYPE_CHECKING:
    from _hashlib import HASH

_MEASUREMENT_TAG = b"sgx-quote-helper/sim/mrenclave/v1\x00"
_SIGNER_SEED_TAG = b"sgx-quote-helper/sim/signer-seed/v1\x00"

#: The largest manifest read; a real one is a few hundred bytes of TOML.
MAX_MANIFEST_SIZE = 1 * MiB
#: The largest signer key file read; a PEM key is a few KB.
MAX_SIGNER_KEY_SIZE = 1 * MiB
#: The largest code file measured. It is hashed as it is read, never held whole,
#: so the cap can be as large as any enclave image.
MAX_CODE_FILE_SIZE = 1024 * MiB
_CODE_CHUNK_SIZE = 1 * MiB

#: XFRM of Intel's production QE3 and PCE reports (x87, SSE, AVX, AVX-512 state),
#: as in the QE report of the real sample quote (dcap-quote.md section 13).
XFRM_INTEL_AE = 0xE7

#: ATTRIBUTES.FLAGS of Intel's QE3 and PCE: INIT | MODE64BIT | PROVISION_KEY = 0x15.
AE_FLAGS = AttributeFlags.INIT | AttributeFlags.MODE64BIT | AttributeFlags.PROVISION_KEY


@dataclass(frozen=True)
class EnclaveIdentity:
    """Who an enclave is, in the terms EREPORT and EGETKEY use."""

    name: str
    mr_enclave: bytes
    mr_signer: bytes
    attributes: Attributes
    misc_select: int = 0
    isv_prod_id: int = 0
    isv_svn: int = 0
    config_svn: int = 0
    config_id: bytes = field(default=bytes(64))
    isv_ext_prod_id: bytes = field(default=bytes(16))
    isv_family_id: bytes = field(default=bytes(16))

    def __post_init__(self) -> None:
        for label, value, size in (
            ("mr_enclave", self.mr_enclave, 32),
            ("mr_signer", self.mr_signer, 32),
            ("config_id", self.config_id, 64),
            ("isv_ext_prod_id", self.isv_ext_prod_id, 16),
            ("isv_family_id", self.isv_family_id, 16),
        ):
            if len(value) != size:
                raise ValueError(f"{label} must be {size} bytes, got {len(value)}")
        for label, number in (
            ("ISVPRODID", self.isv_prod_id),
            ("ISVSVN", self.isv_svn),
            ("CONFIGSVN", self.config_svn),
        ):
            # 16-bit fields of every SGX structure: say so, not int.to_bytes later.
            if not 0 <= number <= 0xFFFF:
                raise UsageError(f"{label} must be 0..65535, got {number}")

    def has(self, flag: AttributeFlags) -> bool:
        return bool(self.attributes.flags & flag)

    def target_info(self) -> TargetInfo:
        """``sgx_target_info_t`` naming this enclave (what ``sgx_self_target`` returns)."""
        return TargetInfo(
            mr_enclave=self.mr_enclave,
            attributes=self.attributes,
            config_svn=self.config_svn,
            misc_select=self.misc_select,
            config_id=self.config_id,
        )

    def report_body(self, cpu_svn: bytes, report_data: bytes) -> ReportBody:
        """The REPORT body EREPORT fills in for this enclave on a CPU at ``cpu_svn``."""
        return ReportBody(
            cpu_svn=cpu_svn,
            misc_select=self.misc_select,
            isv_ext_prod_id=self.isv_ext_prod_id,
            attributes=self.attributes,
            mr_enclave=self.mr_enclave,
            mr_signer=self.mr_signer,
            config_id=self.config_id,
            isv_prod_id=self.isv_prod_id,
            isv_svn=self.isv_svn,
            config_svn=self.config_svn,
            isv_family_id=self.isv_family_id,
            report_data=report_data,
        )


def measure_enclave(
    code: bytes | CodeMeasurement, attributes: Attributes, misc_select: int
) -> bytes:
    """MRENCLAVE of a simulated enclave.

    SHA-256 over a canonical, length-prefixed encoding (so no two inputs share
    an encoding): a version tag, u64 LE code length, the code, the 16-byte
    ``sgx_attributes_t`` (flags, XFRM) and the u32 LE MISCSELECT. On hardware
    MRENCLAVE is the SHA-256 log of ECREATE/EADD/EEXTEND; here the declared
    code stands in for the loaded pages. A code file is measured as it is read
    (:class:`CodeMeasurement`), so it need not fit in memory.
    """
    if isinstance(code, bytes):
        code = CodeMeasurement.of_bytes(code)
    digest = code.digest.copy()
    digest.update(attributes.to_bytes())
    digest.update(misc_select.to_bytes(4, "little"))
    return digest.digest()


@dataclass(frozen=True)
class CodeMeasurement:
    """The code's part of a measurement: SHA-256 after the tag, the length and the code.

    A code file may be large, so it is hashed as it is read and never held whole
    (:meth:`of_file`); :func:`measure_enclave` adds the attributes and MISCSELECT.
    """

    digest: HASH

    @staticmethod
    def _start(size: int) -> HASH:
        digest = hashlib.sha256(_MEASUREMENT_TAG)
        digest.update(size.to_bytes(8, "little"))
        return digest

    @classmethod
    def of_bytes(cls, code: bytes) -> CodeMeasurement:
        digest = cls._start(len(code))
        digest.update(code)
        return cls(digest)

    @classmethod
    def of_file(cls, handle: BinaryIO, size: int) -> CodeMeasurement | None:
        """The measurement of exactly ``size`` bytes of ``handle``; None if it has more or less."""
        digest = cls._start(size)
        remaining = size
        while remaining and (chunk := handle.read(min(_CODE_CHUNK_SIZE, remaining))):
            digest.update(chunk)
            remaining -= len(chunk)
        if remaining or handle.read(1):
            return None  # the file changed since its size was taken
        return cls(digest)


SignerPublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def signer_public_key_bytes(public_key: SignerPublicKey) -> bytes:
    """The raw public key bytes whose SHA-256 is MRSIGNER.

    RSA: the modulus, little-endian, key-size bytes (what SGX hashes for a real
    SIGSTRUCT signer, so an RSA-3072 key gives the MRSIGNER hardware would);
    EC: the uncompressed point ``x || y`` without the 0x04 prefix; EdDSA: raw.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        n = public_key.public_numbers().n
        return n.to_bytes((public_key.key_size + 7) // 8, "little")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        point = public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return point[1:]
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def mrsigner_from_public_key(public_key: SignerPublicKey) -> bytes:
    return hashlib.sha256(signer_public_key_bytes(public_key)).digest()


def signer_key_from_seed(seed: str) -> ed25519.Ed25519PrivateKey:
    """A deterministic Ed25519 signing key for a textual seed (demos and tests)."""
    scalar_seed = hashlib.sha256(_SIGNER_SEED_TAG + seed.encode("utf-8")).digest()
    return ed25519.Ed25519PrivateKey.from_private_bytes(scalar_seed)


def mrsigner_from_seed(seed: str) -> bytes:
    return mrsigner_from_public_key(signer_key_from_seed(seed).public_key())


def build_identity(
    *,
    name: str,
    code: bytes | CodeMeasurement,
    mr_signer: bytes,
    flags: int,
    xfrm: int = XFRM_LEGACY,
    misc_select: int = 0,
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    config_svn: int = 0,
    config_id: bytes = bytes(64),
) -> EnclaveIdentity:
    """An identity whose MRENCLAVE is measured from ``code``; INIT is always set."""
    attributes = Attributes(flags=flags | AttributeFlags.INIT, xfrm=xfrm)
    return EnclaveIdentity(
        name=name,
        mr_enclave=measure_enclave(code, attributes, misc_select),
        mr_signer=mr_signer,
        attributes=attributes,
        misc_select=misc_select,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        config_svn=config_svn,
        config_id=config_id,
    )


# --- built-in identities ---------------------------------------------------


def quoting_enclave_identity(qe_svn: int) -> EnclaveIdentity:
    """The simulated QE3: Intel's production MRSIGNER, prod id 1, flags 0x15.

    These identity values match what Intel's QE3 reports (aesm-wire.md section
    11.1), so the default attestation key id that clients hard-code matches and
    a QE Identity published for them applies. The MRENCLAVE is our own (derived
    from a code text that names the simulation), so it can never be mistaken for
    Intel's build. It changes with the ISVSVN as a new QE release would.
    """
    code = f"sgx-quote-helper Simulated Quoting Enclave (QE3), ISVSVN {qe_svn}\n".encode()
    return build_identity(
        name="qe3",
        code=code,
        mr_signer=QE3_MRSIGNER,
        flags=AE_FLAGS,
        xfrm=XFRM_INTEL_AE,
        isv_prod_id=QE3_PROD_ID,
        isv_svn=qe_svn,
    )


def pce_identity(pce_svn: int) -> EnclaveIdentity:
    """The simulated Provisioning Certification Enclave (prod id 0, PROVISION_KEY)."""
    code = f"sgx-quote-helper Simulated Provisioning Certification Enclave, ISVSVN {pce_svn}\n"
    return build_identity(
        name="pce",
        code=code.encode(),
        mr_signer=QE3_MRSIGNER,
        flags=AE_FLAGS,
        xfrm=XFRM_INTEL_AE,
        isv_prod_id=0,
        isv_svn=pce_svn,
    )


#: Seed of the demo application enclave's signer key.
DEMO_SIGNER_SEED = "sgx-quote-helper demo enclave signer"


def demo_app_identity() -> EnclaveIdentity:
    """The default application enclave: production mode (no DEBUG), 64-bit."""
    return build_identity(
        name="demo-app",
        code=b"sgx-quote-helper Simulated demo application enclave\n",
        mr_signer=mrsigner_from_seed(DEMO_SIGNER_SEED),
        flags=AttributeFlags.MODE64BIT,
        xfrm=XFRM_LEGACY,
        isv_prod_id=1,
        isv_svn=1,
    )


# --- the manifest ------------------------------------------------------------

_MANIFEST_KEYS = frozenset(
    {
        "name",
        "code",
        "signer",
        "isv_prod_id",
        "isv_svn",
        "config_svn",
        "config_id",
        "misc_select",
        "attributes",
        "xfrm",
    }
)


def load_manifest(path: str | Path) -> EnclaveIdentity:
    """Read an enclave manifest (TOML); relative paths are relative to it."""
    manifest_path = Path(path)
    try:
        data = read_limited(manifest_path, MAX_MANIFEST_SIZE, "an enclave manifest (TOML)")
    except OSError as exc:
        raise ManifestError(f"cannot read enclave manifest {manifest_path}: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest_path}: not valid TOML: {exc}") from None
    return parse_manifest(text, base_dir=manifest_path.parent, source=str(manifest_path))


def parse_manifest(text: str, *, base_dir: Path, source: str = "<manifest>") -> EnclaveIdentity:
    """Parse manifest text into an :class:`EnclaveIdentity`."""
    try:
        doc = parse_toml(text)
    except ValueError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - _MANIFEST_KEYS)
    if unknown:
        raise ManifestError(
            f"{source}: unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_MANIFEST_KEYS))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{source}: 'name' must be a non-empty string")
    code = _manifest_code(doc.get("code"), base_dir, source)
    mr_signer = _manifest_signer(doc.get("signer"), base_dir, source)
    flags = _manifest_flags(doc.get("attributes", ["MODE64BIT"]), source)
    config_id_hex = doc.get("config_id", "")
    if not isinstance(config_id_hex, str):
        raise ManifestError(f"{source}: 'config_id' must be a hex string")
    try:
        config_id = bytes.fromhex(config_id_hex)
    except ValueError as exc:
        raise ManifestError(f"{source}: 'config_id' is not hex: {exc}") from exc
    if len(config_id) > 64:
        raise ManifestError(f"{source}: 'config_id' is at most 64 bytes")
    return build_identity(
        name=name,
        code=code,
        mr_signer=mr_signer,
        flags=flags,
        xfrm=_manifest_int(doc, "xfrm", 8, XFRM_LEGACY, source),
        misc_select=_manifest_int(doc, "misc_select", 4, 0, source),
        isv_prod_id=_manifest_int(doc, "isv_prod_id", 2, 0, source),
        isv_svn=_manifest_int(doc, "isv_svn", 2, 0, source),
        config_svn=_manifest_int(doc, "config_svn", 2, 0, source),
        config_id=config_id.ljust(64, b"\x00"),
    )


def _manifest_int(doc: dict[str, Any], key: str, width: int, default: int, source: str) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << (8 * width):
        raise ManifestError(f"{source}: '{key}' must be an integer in [0, 2^{8 * width})")
    return value


def _one_of(value: object, keys: tuple[str, str], what: str, source: str) -> tuple[str, str]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in keys:
        raise ManifestError(
            f"{source}: '{what}' must be a table with exactly one of "
            f"'{keys[0]}' or '{keys[1]}', e.g. {what} = {{ {keys[0]} = \"...\" }}"
        )
    key, item = next(iter(value.items()))
    if not isinstance(item, str):
        raise ManifestError(f"{source}: '{what}.{key}' must be a string")
    return key, item


def _manifest_code(value: object, base_dir: Path, source: str) -> bytes | CodeMeasurement:
    kind, item = _one_of(value, ("file", "text"), "code", source)
    if kind == "text":
        return item.encode("utf-8")
    path = base_dir / item
    try:
        with open_regular_limited(path, MAX_CODE_FILE_SIZE, "an enclave's code") as (handle, size):
            code = CodeMeasurement.of_file(handle, size)
    except OSError as exc:
        raise ManifestError(f"{source}: cannot read code file {path}: {exc}") from exc
    if code is None:
        raise ManifestError(f"{source}: code file {path} changed while it was read; try again")
    return code


def _manifest_signer(value: object, base_dir: Path, source: str) -> bytes:
    kind, item = _one_of(value, ("seed", "key"), "signer", source)
    if kind == "seed":
        return mrsigner_from_seed(item)
    path = base_dir / item
    try:
        pem = read_limited(path, MAX_SIGNER_KEY_SIZE, "a PEM signer key")
    except OSError as exc:
        raise ManifestError(f"{source}: cannot read signer key {path}: {exc}") from exc
    public_key: object
    try:
        # Loading a DSA key warns that cryptography deprecates DSA; the key is
        # refused just below with our own message, so the warning (and the
        # source line Python prints with it) must not reach the user.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            if b"PRIVATE KEY" in pem:
                public_key = serialization.load_pem_private_key(pem, password=None).public_key()
            else:
                public_key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ManifestError(f"{source}: signer key {path} is not a PEM key: {exc}") from exc
    if not isinstance(
        public_key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        kind = _UNSUPPORTED_SIGNERS.get(
            type(public_key).__name__, "a kind of key MRSIGNER is not defined for"
        )
        raise ManifestError(
            f"{source}: signer key {path} is {kind}; use an RSA (as SGX's SIGSTRUCT), EC "
            "or EdDSA key (docs/enclave-manifest.md, MRSIGNER)"
        )
    return mrsigner_from_public_key(public_key)


#: Keys that load but cannot sign an enclave here, by class name, for the error (by
#: name: even naming cryptography's DSA and DH classes warns that they are deprecated).
_UNSUPPORTED_SIGNERS = {
    "DSAPublicKey": "a DSA key",
    "DHPublicKey": "a Diffie-Hellman key (key agreement, not signing)",
    "X25519PublicKey": "an X25519 key (key agreement, not signing)",
    "X448PublicKey": "an X448 key (key agreement, not signing)",
}


def _manifest_flags(value: object, source: str) -> int:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{source}: 'attributes' must be a list of flag names")
    flags = int(AttributeFlags.INIT)
    allowed = [f.name for f in AttributeFlags if f.name]
    for flag_name in value:
        try:
            flags |= AttributeFlags[flag_name.upper()]
        except KeyError:
            raise ManifestError(
                f"{source}: unknown attribute {flag_name!r}; allowed: {', '.join(allowed)}"
            ) from None
    return flags
