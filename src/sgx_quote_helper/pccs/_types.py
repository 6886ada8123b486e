"""Values exchanged with a PCCS v4 service (dcap-quote.md section 7)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PckCertificateQuery:
    """The platform identity a ``/pckcert`` request names.

    PCCS requires ``qeid``, ``cpusvn``, ``pcesvn`` and ``pceid``;
    ``encrypted_ppid`` is optional (required by Intel's PCS).
    """

    qe_id: bytes  # 16 bytes (sgx_ql_qe3_id_t)
    cpu_svn: bytes  # 16 bytes, the raw CPUSVN
    pce_svn: int  # u16, the raw PCE ISVSVN
    pce_id: bytes  # 2 bytes, as in the quote (little-endian u16)
    encrypted_ppid: bytes | None = None  # 384 bytes, RSA-3072 OAEP


@dataclass(frozen=True)
class PckCertificate:
    """A PCK leaf and what the PCCS says about it (response headers)."""

    leaf_pem: str
    #: ``SGX-PCK-Certificate-Issuer-Chain``: PCK CA then root, PEM.
    issuer_chain_pem: str
    #: ``SGX-TCBm``: the certified CPUSVN (16) and PCESVN (u16 LE), 18 bytes.
    tcbm: bytes
    fmspc: bytes  # 6 bytes
    #: ``processor`` or ``platform``.
    ca_type: str

    def chain_pem(self) -> str:
        """Leaf, intermediate and root, in the order of certification data type 5."""
        leaf = self.leaf_pem if self.leaf_pem.endswith("\n") else self.leaf_pem + "\n"
        return leaf + self.issuer_chain_pem
