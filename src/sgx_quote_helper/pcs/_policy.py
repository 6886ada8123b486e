"""The simulated manufacturer's TCB policy, as data (``DIR/pcs/policy.json``).

What Intel decides in its TCB evaluation (which platform TCB levels and which
QE versions are up to date, which advisories apply, which certificates are
revoked) is, for the simulated manufacturer, one JSON document. TCB Info, QE
Identity and the CRLs are *derived* from it (``_collateral.py``, ``_pki.py``),
so that a TCB recovery, a revocation or a status change is an edit of this
file, served by every PCCS replica without a restart.

Every policy value is immutable; a change is a method returning a new policy
(``after_tcb_recovery``, ``with_platform_tcb_status`` ...). Reading a file
validates every field and names the offending one (``PolicyError``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sgx_quote_helper._time import format_time, parse_time, to_utc_seconds
from sgx_quote_helper.pcs._errors import InvalidArgumentError, PolicyError
from sgx_quote_helper.pcs._pki import serial_number_problem
from sgx_quote_helper.sgx import PLATFORM_TCB_STATUSES, QE_TCB_STATUSES, TcbStatus

POLICY_FORMAT = 1

#: Collateral that ``validity.expired`` can name, to be issued already expired.
COLLATERAL_ARTIFACTS = ("tcbInfo", "qeIdentity", "pckCrl", "rootCaCrl")
#: Certificates the root CA CRL can revoke.
CA_CERTIFICATES = ("processor", "platform", "tcb-signing")

COMPONENT_COUNT = 16

# What a TCB recovery makes of the levels it supersedes (Intel's TCB Info uses
# OutOfDateConfigurationNeeded for out-of-date levels that also need configuration).
_DEMOTED: dict[str, TcbStatus] = {
    TcbStatus.UP_TO_DATE: TcbStatus.OUT_OF_DATE,
    TcbStatus.SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE,
    TcbStatus.CONFIGURATION_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
}


@dataclass(frozen=True)
class PlatformTcbLevel:
    """One ``tcbLevels`` entry of TCB Info: 16 component SVNs and a PCESVN."""

    components: tuple[int, ...]
    pce_svn: int
    status: str
    tcb_date: datetime
    advisory_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_components(self.components, "components")
        _check_range(self.pce_svn, "pceSvn", 0xFFFF)
        _check_status(self.status, PLATFORM_TCB_STATUSES)
        _check_advisories(self.advisory_ids)

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        """The order of dcap-quote.md section 10: components lexicographically, then PCESVN."""
        return (self.components, self.pce_svn)


@dataclass(frozen=True)
class QeTcbLevel:
    """One ``tcbLevels`` entry of QE Identity."""

    isv_svn: int
    status: str
    tcb_date: datetime
    advisory_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_range(self.isv_svn, "isvSvn", 0xFFFF)
        _check_status(self.status, QE_TCB_STATUSES)
        _check_advisories(self.advisory_ids)


@dataclass(frozen=True)
class FmspcPolicy:
    """The TCB levels published for one FMSPC (one TCB Info document)."""

    pce_id: bytes
    levels: tuple[PlatformTcbLevel, ...]

    def __post_init__(self) -> None:
        if len(self.pce_id) != 2:
            raise PolicyError("pceId must be 2 bytes (4 hex digits)")
        keys = [level.key for level in self.levels]
        if not keys:
            raise PolicyError("an FMSPC needs at least one TCB level")
        if len(set(keys)) != len(keys):
            raise PolicyError("TCB levels must be unique (components and pceSvn)")
        # Published sorted, highest first, as Intel does (dcap-quote.md section 10).
        object.__setattr__(
            self, "levels", tuple(sorted(self.levels, key=lambda lv: lv.key, reverse=True))
        )


@dataclass(frozen=True)
class Revocation:
    """One revoked thing (a PPID, a certificate serial or a CA name) and since when."""

    subject: str
    date: datetime


@dataclass(frozen=True)
class Revocations:
    #: PPIDs (upper-case hex): every PCK certificate issued to the platform is revoked.
    platforms: tuple[Revocation, ...] = ()
    #: PCK certificate serial numbers (upper-case hex).
    pck_certificates: tuple[Revocation, ...] = ()
    #: ``processor``, ``platform`` and/or ``tcb-signing``: listed on the root CA CRL.
    ca_certificates: tuple[Revocation, ...] = ()

    def revoked_ppids(self) -> dict[bytes, datetime]:
        return {bytes.fromhex(r.subject): r.date for r in self.platforms}


@dataclass(frozen=True)
class Validity:
    """How long issued collateral and CRLs are valid, and when they are re-issued."""

    #: ``nextUpdate - issueDate`` of TCB Info, QE Identity and every CRL.
    days: int = 30
    #: Served collateral older than this is re-issued (Intel re-issues daily).
    refresh_hours: int = 24
    #: Artifacts (``COLLATERAL_ARTIFACTS``) to issue already expired, for tests.
    expired: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _check_range(self.days, "validity.days", 36500, low=1)
        _check_range(self.refresh_hours, "validity.refreshHours", self.days * 24 - 1, low=1)
        unknown = set(self.expired) - set(COLLATERAL_ARTIFACTS)
        if unknown:
            raise PolicyError(
                f"validity.expired: unknown artifact(s) {sorted(unknown)}; "
                f"known: {', '.join(COLLATERAL_ARTIFACTS)}"
            )


@dataclass(frozen=True)
class TcbPolicy:
    """Everything the manufacturer publishes about TCB levels and revocations."""

    tcb_evaluation_data_number: int
    fmspcs: Mapping[bytes, FmspcPolicy]
    qe_levels: tuple[QeTcbLevel, ...]
    validity: Validity = field(default_factory=Validity)
    revocations: Revocations = field(default_factory=Revocations)

    def __post_init__(self) -> None:
        _check_range(self.tcb_evaluation_data_number, "tcbEvaluationDataNumber", 0x7FFFFFFF)
        for fmspc in self.fmspcs:
            if len(fmspc) != 6:
                raise PolicyError("an FMSPC is 6 bytes (12 hex digits)")
        svns = [level.isv_svn for level in self.qe_levels]
        if not svns:
            raise PolicyError("QE Identity needs at least one TCB level")
        if len(set(svns)) != len(svns):
            raise PolicyError("QE TCB levels must have distinct isvSvn values")
        object.__setattr__(self, "fmspcs", dict(sorted(self.fmspcs.items())))
        # QE levels by isvsvn descending: a verifier takes the first level <= the QE's
        # ISVSVN in list order (dcap-quote.md 8.2).
        object.__setattr__(
            self,
            "qe_levels",
            tuple(sorted(self.qe_levels, key=lambda lv: lv.isv_svn, reverse=True)),
        )

    # -- construction -------------------------------------------------------------

    @classmethod
    def initial(cls, *, now: datetime, qe_svn: int) -> TcbPolicy:
        """The policy of a new manufacturer: QE ``qe_svn`` is ``UpToDate``, no FMSPC yet.

        A floor QE level (ISVSVN 0) marks any older QE ``OutOfDate`` rather than
        unsupported, as Intel publishes its oldest QE levels. Platforms add their
        FMSPC with :meth:`with_fmspc` when they are registered.
        """
        return cls(
            tcb_evaluation_data_number=1,
            fmspcs={},
            qe_levels=tuple(_initial_qe_levels(qe_svn, _day(now))),
        )

    def with_fmspc(
        self,
        fmspc: bytes,
        *,
        pce_id: bytes,
        components: Sequence[int],
        pce_svn: int,
        now: datetime,
    ) -> TcbPolicy:
        """Add TCB Info for a new FMSPC (no change if it is published already).

        The given TCB is ``UpToDate``; a floor level (all SVNs 0) marks older
        platforms ``OutOfDate`` rather than unsupported.
        """
        if fmspc in self.fmspcs:
            return self
        day = _day(now)
        levels = [PlatformTcbLevel(tuple(components), pce_svn, TcbStatus.UP_TO_DATE, day)]
        floor = PlatformTcbLevel((0,) * COMPONENT_COUNT, 0, TcbStatus.OUT_OF_DATE, day)
        if floor.key != levels[0].key:
            levels.append(floor)
        return replace(
            self, fmspcs={**self.fmspcs, fmspc: FmspcPolicy(pce_id=pce_id, levels=tuple(levels))}
        )

    def platform_level(
        self, fmspc: bytes, components: Sequence[int], pce_svn: int
    ) -> PlatformTcbLevel | None:
        """The level a verifier picks for a PCK certificate with this TCB (section 10):
        the first, in descending order, whose SVNs the certificate's all reach."""
        entry = self.fmspcs.get(fmspc)
        if entry is None:
            return None
        for level in entry.levels:
            if pce_svn >= level.pce_svn and all(
                have >= need for have, need in zip(components, level.components, strict=True)
            ):
                return level
        return None

    def qe_level(self, isv_svn: int) -> QeTcbLevel | None:
        """The QE Identity level of a QE with this ISVSVN (first with ``isvsvn <=`` it)."""
        return next((level for level in self.qe_levels if level.isv_svn <= isv_svn), None)

    # -- changes --------------------------------------------------------------------

    def after_tcb_recovery(
        self,
        *,
        now: datetime,
        qe_svn: int | None = None,
        pce_svn: int | None = None,
        components: Sequence[int] | None = None,
        fmspcs: Iterable[bytes] | None = None,
        advisory_ids: Sequence[str] = (),
    ) -> TcbPolicy:
        """A TCB recovery: a new evaluation data number, the new levels ``UpToDate``
        and the levels they supersede ``OutOfDate`` (or ``OutOfDateConfigurationNeeded``).

        ``qe_svn`` recovers the QE; ``pce_svn`` and/or ``components`` add a platform
        TCB level to each FMSPC in ``fmspcs`` (default: all), taking the missing part
        from that FMSPC's highest level. ``advisory_ids`` are added to every
        superseded level.
        """
        if qe_svn is None and pce_svn is None and components is None:
            raise PolicyError("a TCB recovery needs a new QE SVN, PCE SVN or TCB components")
        day = _day(now)
        advisories = tuple(advisory_ids)
        qe_levels = self.qe_levels
        if qe_svn is not None:
            highest = max(level.isv_svn for level in qe_levels)
            if qe_svn < highest:
                raise PolicyError(
                    f"a TCB recovery raises the QE SVN: {qe_svn} is below the published {highest}"
                )
            qe_levels = (
                *(_demote_qe(lv, advisories) for lv in qe_levels if lv.isv_svn != qe_svn),
                QeTcbLevel(qe_svn, TcbStatus.UP_TO_DATE, day),
            )
        new_fmspcs = dict(self.fmspcs)
        if pce_svn is not None or components is not None:
            selected = self._selected_fmspcs(fmspcs)
            for fmspc in selected:
                current = new_fmspcs[fmspc]
                top = current.levels[0]
                new_level = PlatformTcbLevel(
                    tuple(components) if components is not None else top.components,
                    pce_svn if pce_svn is not None else top.pce_svn,
                    TcbStatus.UP_TO_DATE,
                    day,
                )
                kept = tuple(
                    _demote_platform(level, advisories)
                    for level in current.levels
                    if level.key != new_level.key
                )
                new_fmspcs[fmspc] = replace(current, levels=(new_level, *kept))
        return replace(
            self,
            tcb_evaluation_data_number=self.tcb_evaluation_data_number + 1,
            qe_levels=qe_levels,
            fmspcs=new_fmspcs,
        )

    def with_platform_tcb_status(
        self,
        *,
        fmspc: bytes,
        components: Sequence[int],
        pce_svn: int,
        status: str,
        advisory_ids: Sequence[str] = (),
        now: datetime,
    ) -> TcbPolicy:
        """Set the status (and advisories) of one platform TCB level, adding it if needed."""
        current = self._fmspc(fmspc)
        level = PlatformTcbLevel(tuple(components), pce_svn, status, _day(now), tuple(advisory_ids))
        levels = []
        for existing in current.levels:
            if existing.key == level.key:
                level = replace(level, tcb_date=existing.tcb_date)
            else:
                levels.append(existing)
        levels.append(level)
        return replace(self, fmspcs={**self.fmspcs, fmspc: replace(current, levels=tuple(levels))})

    def with_qe_tcb_status(
        self, *, isv_svn: int, status: str, advisory_ids: Sequence[str] = (), now: datetime
    ) -> TcbPolicy:
        """Set the status (and advisories) of one QE Identity level, adding it if needed."""
        level = QeTcbLevel(isv_svn, status, _day(now), tuple(advisory_ids))
        levels = []
        for existing in self.qe_levels:
            if existing.isv_svn == isv_svn:
                level = replace(level, tcb_date=existing.tcb_date)
            else:
                levels.append(existing)
        return replace(self, qe_levels=(*levels, level))

    def with_revoked_platform(self, ppid: bytes, *, now: datetime) -> TcbPolicy:
        entry = Revocation(ppid.hex().upper(), to_utc_seconds(now))
        revocations = self.revocations
        if any(r.subject == entry.subject for r in revocations.platforms):
            return self
        return replace(
            self, revocations=replace(revocations, platforms=(*revocations.platforms, entry))
        )

    def with_revoked_serial(self, serial: int, *, now: datetime) -> TcbPolicy:
        problem = serial_number_problem(serial)
        if problem is not None:
            raise InvalidArgumentError(
                f"cannot revoke a PCK certificate: {problem}",
                hints=["give the PCK certificate's serial number in hex, as inspect shows it"],
            )
        entry = Revocation(f"{serial:X}", to_utc_seconds(now))
        revocations = self.revocations
        if any(int(r.subject, 16) == serial for r in revocations.pck_certificates):
            return self
        return replace(
            self,
            revocations=replace(
                revocations, pck_certificates=(*revocations.pck_certificates, entry)
            ),
        )

    def with_revoked_ca(self, ca: str, *, now: datetime) -> TcbPolicy:
        if ca not in CA_CERTIFICATES:
            raise PolicyError(f"unknown CA {ca!r}; known: {', '.join(CA_CERTIFICATES)}")
        revocations = self.revocations
        if any(r.subject == ca for r in revocations.ca_certificates):
            return self
        entry = Revocation(ca, to_utc_seconds(now))
        return replace(
            self,
            revocations=replace(revocations, ca_certificates=(*revocations.ca_certificates, entry)),
        )

    def with_expired(self, artifacts: Iterable[str]) -> TcbPolicy:
        """Issue these artifacts already expired (an empty set restores normal issuance)."""
        return replace(self, validity=replace(self.validity, expired=frozenset(artifacts)))

    def _fmspc(self, fmspc: bytes) -> FmspcPolicy:
        try:
            return self.fmspcs[fmspc]
        except KeyError:
            raise PolicyError(
                f"the policy publishes no TCB Info for FMSPC {fmspc.hex().upper()}"
            ) from None

    def _selected_fmspcs(self, fmspcs: Iterable[bytes] | None) -> list[bytes]:
        if fmspcs is None:
            return list(self.fmspcs)
        selected = list(fmspcs)
        for fmspc in selected:
            self._fmspc(fmspc)
        return selected

    # -- JSON -----------------------------------------------------------------------

    def to_json(self) -> str:
        """The policy file text (stable: the same policy always gives the same text)."""
        document = {
            "format": POLICY_FORMAT,
            "tcbEvaluationDataNumber": self.tcb_evaluation_data_number,
            "validity": {
                "days": self.validity.days,
                "refreshHours": self.validity.refresh_hours,
                "expired": sorted(self.validity.expired),
            },
            "platformTcb": {
                fmspc.hex().upper(): {
                    "pceId": policy.pce_id.hex().upper(),
                    "tcbLevels": [_platform_level_json(level) for level in policy.levels],
                }
                for fmspc, policy in self.fmspcs.items()
            },
            "qeIdentity": {"tcbLevels": [_qe_level_json(level) for level in self.qe_levels]},
            "revocations": {
                "platforms": [
                    {"ppid": r.subject, "date": format_time(r.date)}
                    for r in self.revocations.platforms
                ],
                "pckCertificates": [
                    {"serial": r.subject, "date": format_time(r.date)}
                    for r in self.revocations.pck_certificates
                ],
                "caCertificates": [
                    {"ca": r.subject, "date": format_time(r.date)}
                    for r in self.revocations.ca_certificates
                ],
            },
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> TcbPolicy:
        """Parse and validate a policy file; ``PolicyError`` names the bad field."""
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PolicyError(f"the policy is not valid JSON: {exc}") from None
        try:
            return _policy_from_document(document)
        except PolicyError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"the policy is malformed: {exc}") from None


# -- helpers --------------------------------------------------------------------------


def _day(moment: datetime) -> datetime:
    return to_utc_seconds(moment).replace(hour=0, minute=0, second=0)


def _initial_qe_levels(qe_svn: int, day: datetime) -> list[QeTcbLevel]:
    levels = [QeTcbLevel(qe_svn, TcbStatus.UP_TO_DATE, day)]
    if qe_svn > 0:
        levels.append(QeTcbLevel(0, TcbStatus.OUT_OF_DATE, day))
    return levels


def _merge(existing: tuple[str, ...], added: tuple[str, ...]) -> tuple[str, ...]:
    return existing + tuple(a for a in added if a not in existing)


def _demote_qe(level: QeTcbLevel, advisories: tuple[str, ...]) -> QeTcbLevel:
    if level.status != TcbStatus.UP_TO_DATE:
        return level
    return replace(
        level, status=TcbStatus.OUT_OF_DATE, advisory_ids=_merge(level.advisory_ids, advisories)
    )


def _demote_platform(level: PlatformTcbLevel, advisories: tuple[str, ...]) -> PlatformTcbLevel:
    demoted = _DEMOTED.get(level.status)
    if demoted is None:
        return level
    return replace(level, status=demoted, advisory_ids=_merge(level.advisory_ids, advisories))


def _check_range(value: object, name: str, high: int, *, low: int = 0) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PolicyError(f"{name} must be an integer in {low}..{high}, not {value!r}")


def _check_components(components: object, name: str) -> None:
    if not isinstance(components, tuple) or len(components) != COMPONENT_COUNT:
        raise PolicyError(f"{name} must be {COMPONENT_COUNT} SVNs")
    for index, svn in enumerate(components):
        _check_range(svn, f"{name}[{index}]", 0xFF)


def _check_status(status: object, allowed: tuple[TcbStatus, ...]) -> None:
    if status not in allowed:
        raise PolicyError(f"status {status!r} is not one of {', '.join(allowed)}")


def _check_advisories(advisory_ids: object) -> None:
    if not isinstance(advisory_ids, tuple):
        raise PolicyError("advisory IDs must be a list of strings")
    for advisory in advisory_ids:
        # Collateral text must stay ASCII so that re-serialization reproduces it (section 9).
        if not isinstance(advisory, str) or not advisory or not advisory.isascii():
            raise PolicyError(f"advisory ID {advisory!r} must be a non-empty ASCII string")
        if not advisory.isprintable() or '"' in advisory or "\\" in advisory:
            raise PolicyError(f"advisory ID {advisory!r} must be printable, without quotes")


def _platform_level_json(level: PlatformTcbLevel) -> dict[str, Any]:
    return {
        "components": list(level.components),
        "pceSvn": level.pce_svn,
        "status": level.status,
        "tcbDate": format_time(level.tcb_date),
        "advisoryIds": list(level.advisory_ids),
    }


def _qe_level_json(level: QeTcbLevel) -> dict[str, Any]:
    return {
        "isvSvn": level.isv_svn,
        "status": level.status,
        "tcbDate": format_time(level.tcb_date),
        "advisoryIds": list(level.advisory_ids),
    }


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PolicyError(f"{where}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _hex(value: Any, size: int, where: str) -> bytes:
    text = _expect(value, str, where)
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise PolicyError(f"{where}: {text!r} is not hex") from None
    if len(raw) != size or len(text) != 2 * size:
        raise PolicyError(f"{where}: expected {size} bytes ({2 * size} hex digits)")
    return raw


def _date(value: Any, where: str) -> datetime:
    text = _expect(value, str, where)
    try:
        return parse_time(text)
    except ValueError:
        raise PolicyError(f"{where}: {text!r} is not a time like 2025-01-31T00:00:00Z") from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = _expect(value, list, where)
    return tuple(_expect(item, str, f"{where}[{i}]") for i, item in enumerate(items))


def _revocations(document: dict[str, Any], key: str, subject_key: str) -> tuple[Revocation, ...]:
    entries = _expect(document.get(key, []), list, f"revocations.{key}")
    result = []
    for index, entry in enumerate(entries):
        where = f"revocations.{key}[{index}]"
        entry = _expect(entry, dict, where)
        subject = _expect(entry[subject_key], str, f"{where}.{subject_key}")
        if subject_key == "ppid":
            subject = _hex(subject, 16, f"{where}.ppid").hex().upper()
        elif subject_key == "serial":
            try:
                subject = f"{int(subject, 16):X}"
            except ValueError:
                raise PolicyError(f"{where}.serial: {subject!r} is not hex") from None
        elif subject not in CA_CERTIFICATES:
            raise PolicyError(f"{where}.ca: {subject!r} is not one of {CA_CERTIFICATES}")
        result.append(Revocation(subject, _date(entry["date"], f"{where}.date")))
    return tuple(result)


def _policy_from_document(document: Any) -> TcbPolicy:
    document = _expect(document, dict, "policy")
    if document.get("format") != POLICY_FORMAT:
        raise PolicyError(f"format: expected {POLICY_FORMAT}, got {document.get('format')!r}")
    # In the order of the file, so that the first problem is the one reported.
    validity = _validity_from(_expect(document.get("validity", {}), dict, "validity"))
    fmspcs = _fmspcs_from(_expect(document["platformTcb"], dict, "platformTcb"))
    qe_levels = _qe_levels_from(_expect(document["qeIdentity"], dict, "qeIdentity"))
    revocations_doc = _expect(document.get("revocations", {}), dict, "revocations")
    revocations = Revocations(
        platforms=_revocations(revocations_doc, "platforms", "ppid"),
        pck_certificates=_revocations(revocations_doc, "pckCertificates", "serial"),
        ca_certificates=_revocations(revocations_doc, "caCertificates", "ca"),
    )
    return TcbPolicy(
        tcb_evaluation_data_number=document["tcbEvaluationDataNumber"],
        fmspcs=fmspcs,
        qe_levels=qe_levels,
        validity=validity,
        revocations=revocations,
    )


def _validity_from(validity_doc: dict[str, Any]) -> Validity:
    return Validity(
        days=_expect(validity_doc.get("days", 30), int, "validity.days"),
        refresh_hours=_expect(validity_doc.get("refreshHours", 24), int, "validity.refreshHours"),
        expired=frozenset(_strings(validity_doc.get("expired", []), "validity.expired")),
    )


def _fmspcs_from(platform_tcb: dict[str, Any]) -> dict[bytes, FmspcPolicy]:
    fmspcs: dict[bytes, FmspcPolicy] = {}
    for fmspc_hex, entry in platform_tcb.items():
        where = f"platformTcb.{fmspc_hex}"
        fmspc = _hex(fmspc_hex, 6, where)
        entry = _expect(entry, dict, where)
        levels = tuple(
            _platform_level_from(level, f"{where}.tcbLevels[{index}]")
            for index, level in enumerate(_expect(entry["tcbLevels"], list, f"{where}.tcbLevels"))
        )
        with _located(where):
            fmspcs[fmspc] = FmspcPolicy(
                pce_id=_hex(entry["pceId"], 2, f"{where}.pceId"), levels=levels
            )
    return fmspcs


def _platform_level_from(level: Any, at: str) -> PlatformTcbLevel:
    level = _expect(level, dict, at)
    components = tuple(_expect(level["components"], list, f"{at}.components"))
    with _located(at):
        return PlatformTcbLevel(
            components=components,
            pce_svn=level["pceSvn"],
            status=level["status"],
            tcb_date=_date(level["tcbDate"], f"{at}.tcbDate"),
            advisory_ids=_strings(level.get("advisoryIds", []), f"{at}.advisoryIds"),
        )


def _qe_levels_from(qe_doc: dict[str, Any]) -> tuple[QeTcbLevel, ...]:
    qe_levels = []
    for index, level in enumerate(_expect(qe_doc["tcbLevels"], list, "qeIdentity.tcbLevels")):
        at = f"qeIdentity.tcbLevels[{index}]"
        level = _expect(level, dict, at)
        with _located(at):
            qe_levels.append(
                QeTcbLevel(
                    isv_svn=level["isvSvn"],
                    status=level["status"],
                    tcb_date=_date(level["tcbDate"], f"{at}.tcbDate"),
                    advisory_ids=_strings(level.get("advisoryIds", []), f"{at}.advisoryIds"),
                )
            )
    return tuple(qe_levels)


@contextlib.contextmanager
def _located(where: str) -> Iterator[None]:
    """Prefix a :class:`PolicyError` raised inside with ``where`` in the document."""
    try:
        yield
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
