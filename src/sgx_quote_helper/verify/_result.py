"""The value a successful verification returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sgx_quote_helper.sgx import QuoteHeader, QvResult, ReportBody, TcbStatus
from sgx_quote_helper.verify._anchor import TrustAnchor


@dataclass(frozen=True)
class TcbLevelResult:
    """The TCB level that matched (platform or QE), with its status and advisories."""

    status: TcbStatus
    advisory_ids: tuple[str, ...]
    tcb_date: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "advisory_ids": list(self.advisory_ids),
            "tcb_date": _iso(self.tcb_date),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_to_dict(report: ReportBody) -> dict[str, Any]:
    """The ISV enclave report fields a relying party appraises, hex lower-case."""
    return {
        "mr_enclave": report.mr_enclave.hex(),
        "mr_signer": report.mr_signer.hex(),
        "isv_prod_id": report.isv_prod_id,
        "isv_svn": report.isv_svn,
        "attributes": report.attributes.to_bytes().hex(),
        "flags": report.attributes.flag_names(),
        "xfrm": f"0x{report.attributes.xfrm:x}",
        "debug": report.attributes.debug,
        "misc_select": report.misc_select,
        "cpu_svn": report.cpu_svn.hex(),
        "config_svn": report.config_svn,
        "config_id": report.config_id.hex(),
        "isv_ext_prod_id": report.isv_ext_prod_id.hex(),
        "isv_family_id": report.isv_family_id.hex(),
        "report_data": report.report_data.hex(),
    }


@dataclass(frozen=True)
class VerificationResult:
    """A quote that verified: who made it, on what platform, how current that platform is.

    ``status`` is the platform and QE status converged (dcap-quote.md section
    10); ``qv_result`` is what Intel's ``sgx_qv_verify_quote`` would report for it.
    A result against a root that is not Intel's has ``simulated`` set: it proves
    nothing about real SGX hardware.
    """

    status: TcbStatus
    qv_result: QvResult
    #: Union of the platform's and the QE's advisory IDs.
    advisory_ids: tuple[str, ...]
    platform_tcb: TcbLevelResult
    qe_tcb: TcbLevelResult
    #: The attested (ISV) enclave's report body.
    report: ReportBody
    header: QuoteHeader
    #: The QE's report body (its ISVSVN decides the QE TCB level).
    qe_report: ReportBody
    #: FMSPC from the PCK certificate, 12 upper-case hex characters.
    fmspc: str
    #: ``processor`` or ``platform``: which PCK CA issued the PCK certificate.
    ca_type: str
    ppid: bytes
    #: The certified TCB (TCBm) of the PCK certificate.
    pck_cpu_svn: bytes
    pck_pce_svn: int
    pce_id: bytes
    tcb_evaluation_data_number: int
    #: The older of the TCB Info and QE Identity issue dates.
    collateral_issued: datetime
    #: The earliest nextUpdate/notAfter of all collateral: refetch before this.
    collateral_expires: datetime
    verified_at: datetime
    #: SHA-384 of the root public key (supplemental data ``root_key_id``).
    root_key_id: bytes
    trust_anchor: TrustAnchor
    pck_crl_number: int | None = None
    root_ca_crl_number: int | None = None

    @property
    def simulated(self) -> bool:
        """True when the trust anchor is not Intel's SGX root."""
        return self.trust_anchor.simulated

    @property
    def collateral_age_seconds(self) -> int:
        """Seconds between the collateral's issue date and the verification time."""
        return int((self.verified_at - self.collateral_issued).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``verify --json`` object, without the appraisal)."""
        return {
            "status": self.status.value,
            "qv_result": {"value": int(self.qv_result), "name": self.qv_result.c_name},
            "advisory_ids": list(self.advisory_ids),
            "simulated": self.simulated,
            "trust_anchor": {
                "subject": self.trust_anchor.subject,
                "intel": self.trust_anchor.is_intel,
                "certificate_sha256": self.trust_anchor.certificate_sha256.hex(),
            },
            "root_key_id": self.root_key_id.hex(),
            "platform_tcb": self.platform_tcb.to_dict(),
            "qe_tcb": {**self.qe_tcb.to_dict(), "isv_svn": self.qe_report.isv_svn},
            "report": report_to_dict(self.report),
            "quote": {
                "version": self.header.version,
                "qe_svn": self.header.qe_svn,
                "pce_svn": self.header.pce_svn,
                "qe_vendor_id": self.header.qe_vendor_id.hex(),
            },
            "fmspc": self.fmspc,
            "ca_type": self.ca_type,
            "ppid": self.ppid.hex(),
            "pce_id": self.pce_id.hex(),
            "pck_tcb": {"cpu_svn": self.pck_cpu_svn.hex(), "pce_svn": self.pck_pce_svn},
            "tcb_evaluation_data_number": self.tcb_evaluation_data_number,
            "collateral_issued": _iso(self.collateral_issued),
            "collateral_expires": _iso(self.collateral_expires),
            "verified_at": _iso(self.verified_at),
            "pck_crl_number": self.pck_crl_number,
            "root_ca_crl_number": self.root_ca_crl_number,
        }


_RESULT_FIELDS = frozenset(f.name for f in dataclasses.fields(VerificationResult))


def build_result(**fields: Any) -> VerificationResult:
    """A :class:`VerificationResult` from every one of its fields, bypassing ``__init__``.

    A frozen dataclass's ``__init__`` sets each of the 24 fields through
    ``object.__setattr__``: ~40k instructions, a third of what a warm
    verification spends in Python (``docs/performance.md``). Filling the new
    instance's dictionary at once is how ``copy`` and ``pickle`` restore a
    frozen dataclass. Every field must be given, none other (``TypeError``).
    """
    if fields.keys() != _RESULT_FIELDS:
        missing = sorted(_RESULT_FIELDS - fields.keys())
        unknown = sorted(fields.keys() - _RESULT_FIELDS)
        raise TypeError(f"VerificationResult fields missing {missing}, unknown {unknown}")
    result = object.__new__(VerificationResult)
    result.__dict__.update(fields)
    return result
