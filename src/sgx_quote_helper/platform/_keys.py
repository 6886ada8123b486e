"""Key derivation shared by the simulated CPU and the simulated manufacturer.

The simulated trust model (DESIGN.md section 3) mirrors what Intel can and
cannot compute:

* the *provisioning secret* of a platform derives from the manufacturer's master
  secret and the platform's PPID, so the manufacturer can recompute every
  platform's PCK keys and certify them, as Intel does from the fused root
  provisioning key;
* the *enclave secret* (root of REPORT and seal keys) is random per platform and
  never leaves it, as the root seal key never leaves the CPU.

A PCK private key depends on the TCB level (CPUSVN, PCESVN) it is derived for,
as the PCE derives it from the provisioning key of that TCB level.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_SIZE = 32

# Order of the NIST P-256 group (SEC 2, section 2.4.2).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def derive_provisioning_secret(master_secret: bytes, ppid: bytes) -> bytes:
    """The platform's provisioning secret, from the manufacturer's master secret."""
    if len(ppid) != 16:
        raise ValueError("PPID must be 16 bytes")
    return _hkdf(master_secret, b"sgx-quote-helper/sim/provisioning-secret/v1" + ppid, SECRET_SIZE)


def derive_pck_private_key(
    provisioning_secret: bytes, cpu_svn: bytes, pce_svn: int, pce_id: bytes
) -> ec.EllipticCurvePrivateKey:
    """The PCK private key of one TCB level (CPUSVN, PCESVN) of a platform.

    The scalar is reduced from 48 bytes of HKDF output (FIPS 186-5 A.4.1 style,
    the bias is negligible) into ``[1, n-1]``.
    """
    if len(cpu_svn) != 16 or len(pce_id) != 2 or not 0 <= pce_svn <= 0xFFFF:
        raise ValueError("CPUSVN is 16 bytes, PCE-ID 2 bytes and PCESVN a u16")
    info = b"sgx-quote-helper/sim/pck-key/v1" + cpu_svn + pce_svn.to_bytes(2, "little") + pce_id
    seed = int.from_bytes(_hkdf(provisioning_secret, info, 48), "big")
    scalar = seed % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())
