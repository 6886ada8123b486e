"""The manufacturer's issued collateral: TCB Info, QE Identity and CRLs, kept and re-issued.

Each artifact is built from the current policy and signed; the result is kept in
memory and in the store's ``cache/`` with a digest of its inputs. It is served
again while it is fresh (younger than the policy's refresh interval) and its
inputs are unchanged, and re-issued otherwise, under the store's exclusive lock
so that replicas sharing a directory agree on one artifact and its number.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from sgx_quote_helper._time import format_time, parse_time
from sgx_quote_helper.errors import ParseError
from sgx_quote_helper.pccs import SignedCollateral
from sgx_quote_helper.pcs._collateral import qe_identity_inner, sign_collateral, tcb_info_inner
from sgx_quote_helper.pcs._errors import EvaluationDataNumberNotFoundError, FmspcNotFoundError
from sgx_quote_helper.pcs._pki import (
    CLOCK_SKEW,
    CertificateAuthority,
    issue_crl,
    serial_number_problem,
)
from sgx_quote_helper.pcs._policy import CA_CERTIFICATES, TcbPolicy
from sgx_quote_helper.pcs._store import ManufacturerStore, check_ca_type

logger = logging.getLogger("sgx_quote_helper.pcs")

# An expired artifact expired this long ago.
_EXPIRED_BY = timedelta(days=1)

#: Builds an artifact's data from its number and validity window.
Issue = Callable[[int, datetime, datetime], str]


@dataclass(frozen=True)
class _Issued:
    """One issued artifact: what it was built from, when, its number and its data."""

    inputs: str
    issued_at: datetime
    number: int
    data: str

    def fresh(self, inputs: str, now: datetime, refresh: timedelta) -> bool:
        return self.inputs == inputs and self.issued_at <= now < self.issued_at + refresh

    def to_json(self) -> bytes:
        document = {
            "inputs": self.inputs,
            "issuedAt": self.issued_at.isoformat(),
            "number": self.number,
            "data": self.data,
        }
        return (json.dumps(document) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | None) -> _Issued | None:
        """The stored entry, or ``None`` for a missing or unreadable one (re-issued)."""
        if data is None:
            return None
        try:
            document = json.loads(data)
            return cls(
                inputs=str(document["inputs"]),
                issued_at=parse_time(document["issuedAt"], "issuedAt"),
                number=int(document["number"]),
                data=str(document["data"]),
            )
        except (ParseError, ValueError, KeyError, TypeError):
            return None


class IssuedCollateralCache:
    """Signed collateral and CRLs of the manufacturer in ``store``, issued when needed."""

    def __init__(self, store: ManufacturerStore) -> None:
        self._store = store
        self._issued: dict[str, _Issued] = {}
        # Invalid revoked serials already reported (see _skip_invalid_serial).
        self._warned_serials: set[int] = set()

    # -- signed JSON collateral ------------------------------------------------------------

    def tcb_info(
        self, fmspc: bytes, *, tcb_evaluation_data_number: int | None = None
    ) -> SignedCollateral:
        """Signed TCB Info v3 for ``fmspc`` (re-issued when stale or when the policy changed)."""
        policy = self._store.policy()
        _check_evaluation_number(policy, tcb_evaluation_data_number)
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
        policy = self._store.policy()
        _check_evaluation_number(policy, tcb_evaluation_data_number)

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
        signer = self._store.secrets.authorities["tcb-signing"]
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        inputs = self._inputs(artifact, build(epoch, epoch), _serial(signer))

        chain = self._store.tcb_issuer_chain_pem()

        def issue(_number: int, issue_date: datetime, next_update: datetime) -> str:
            signed = sign_collateral(
                kind, build(issue_date, next_update), signer.private_key, chain
            )
            return json.dumps({"text": signed.text, "signature": signed.signature.hex()})

        stored = json.loads(self._artifact(artifact, name, inputs, issue).data)
        return SignedCollateral(kind, stored["text"], bytes.fromhex(stored["signature"]), chain)

    # -- CRLs ------------------------------------------------------------------------------

    def pck_crl(self, ca_type: str) -> bytes:
        """DER of the PCK CA's CRL: revoked serials and every PCK of revoked platforms."""
        check_ca_type(ca_type)
        policy = self._store.policy()
        authority = self._store.secrets.authorities[ca_type]
        revoked: dict[int, datetime] = {}
        for entry in policy.revocations.pck_certificates:
            serial = int(entry.subject, 16)
            if serial_number_problem(serial) is None:
                revoked[serial] = entry.date
            else:
                self._skip_invalid_serial(serial)
        revoked_ppids = policy.revocations.revoked_ppids()
        for platform in self._store.registry().platforms:
            date = revoked_ppids.get(platform.ppid)
            if date is None:
                continue
            for certificate in self._store.issued_pck_certificates(platform):
                if certificate.issuer == authority.certificate.subject:
                    revoked.setdefault(certificate.serial_number, date)
        return self._crl("pckCrl", f"pck-crl-{ca_type}", authority, revoked)

    def _skip_invalid_serial(self, serial: int) -> None:
        """Leave out a serial no CRL can list, and say so once (older releases stored them).

        Without this, one bad entry in ``policy.json`` would make every PCK CRL
        request fail, and with it every verification against this manufacturer.
        """
        if serial in self._warned_serials:
            return
        self._warned_serials.add(serial)
        logger.warning(
            "crl.invalid_serial_skipped",
            extra={
                "fields": {
                    "serial": f"{serial:X}",
                    "problem": serial_number_problem(serial),
                    "fix": f"remove the entry with this serial from revocations.pckCertificates "
                    f"in {self._store.policy_path}; until then the PCK CRLs leave it out",
                }
            },
        )

    def root_ca_crl(self) -> bytes:
        """DER of the root CA CRL (covers the PCK CAs and the TCB signer)."""
        policy = self._store.policy()
        revoked = {
            self._store.certificate(r.subject).serial_number: r.date
            for r in policy.revocations.ca_certificates
            if r.subject in CA_CERTIFICATES
        }
        return self._crl(
            "rootCaCrl", "root-ca-crl", self._store.secrets.authorities["root"], revoked
        )

    def _crl(
        self,
        artifact: str,
        name: str,
        authority: CertificateAuthority,
        revoked: dict[int, datetime],
    ) -> bytes:
        entries = sorted((serial, format_time(date)) for serial, date in revoked.items())
        inputs = self._inputs(artifact, entries, _serial(authority))

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

    # -- freshness and issuance ------------------------------------------------------------

    def _inputs(self, artifact: str, content: Any, signer: str) -> str:
        """A digest of everything an artifact is built from, except the time."""
        validity = self._store.policy().validity
        document = [artifact, content, signer, validity.days, artifact in validity.expired]
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    def _window(self, artifact: str, now: datetime) -> tuple[datetime, datetime]:
        """``issueDate``/``thisUpdate`` and ``nextUpdate`` of an artifact issued now."""
        validity = self._store.policy().validity
        lifetime = timedelta(days=validity.days)
        if artifact in validity.expired:
            end = now - _EXPIRED_BY
            return end - lifetime, end
        # Backdated like the certificates: a verifier whose clock is a little
        # behind this one must not see freshly re-issued collateral as "issued
        # in the future" (found with @phala/dcap-qvl, which checks to the second).
        return now - CLOCK_SKEW, now + lifetime

    def _artifact(self, artifact: str, name: str, inputs: str, issue: Issue) -> _Issued:
        """The fresh artifact from memory, else from the store, else newly issued."""
        now = self._store.now()
        refresh = timedelta(hours=self._store.policy().validity.refresh_hours)
        with self._store.thread_lock():
            cached = self._issued.get(name)
            if cached is not None and cached.fresh(inputs, now, refresh):
                return cached
        with self._store.exclusive():
            stored = _Issued.from_json(self._store.read_cached(name))
            if stored is not None and stored.fresh(inputs, now, refresh):
                self._issued[name] = stored
                return stored
            previous = max(
                (entry.number for entry in (stored, self._issued.get(name)) if entry is not None),
                default=0,
            )
            entry = self._issue(artifact, name, inputs, issue, previous + 1, now)
            self._issued[name] = entry
            return entry

    def _issue(
        self, artifact: str, name: str, inputs: str, issue: Issue, number: int, now: datetime
    ) -> _Issued:
        start, end = self._window(artifact, now)
        entry = _Issued(inputs, now, number, issue(number, start, end))
        self._store.write_cached(name, entry.to_json())
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


def _serial(authority: CertificateAuthority) -> str:
    return f"{authority.certificate.serial_number:X}"


def _check_evaluation_number(policy: TcbPolicy, number: int | None) -> None:
    if number is not None and number != policy.tcb_evaluation_data_number:
        raise EvaluationDataNumberNotFoundError(
            f"only TCB evaluation data number {policy.tcb_evaluation_data_number} is "
            f"published; {number} is not available"
        )
