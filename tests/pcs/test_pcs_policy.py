"""The TCB policy file: format, validation, and the changes `sim` commands make."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sgx_quote_helper.pcs import (
    PLATFORM_TCB_STATUSES,
    QE_TCB_STATUSES,
    FmspcPolicy,
    PlatformTcbLevel,
    PolicyError,
    QeTcbLevel,
    TcbPolicy,
    Validity,
)

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
DAY = datetime(2031, 3, 4, tzinfo=UTC)
FMSPC = bytes.fromhex("00906ED50000")
COMPONENTS = (11, 11, 2, 2, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _policy() -> TcbPolicy:
    return TcbPolicy.initial(now=NOW, qe_svn=10).with_fmspc(
        FMSPC, pce_id=b"\0\0", components=COMPONENTS, pce_svn=13, now=NOW
    )


def test_initial_policy_makes_exactly_the_given_versions_up_to_date() -> None:
    policy = _policy()
    assert policy.tcb_evaluation_data_number == 1
    assert [(lv.isv_svn, lv.status) for lv in policy.qe_levels] == [
        (10, "UpToDate"),
        (0, "OutOfDate"),
    ]
    levels = policy.fmspcs[FMSPC].levels
    assert [(lv.components, lv.pce_svn, lv.status) for lv in levels] == [
        (COMPONENTS, 13, "UpToDate"),
        ((0,) * 16, 0, "OutOfDate"),
    ]
    assert all(lv.tcb_date == DAY for lv in levels)
    assert policy.validity == Validity(days=30, refresh_hours=24, expired=frozenset())


def test_level_selection_follows_the_verifier_rule() -> None:
    policy = _policy()
    assert policy.platform_level(FMSPC, COMPONENTS, 13).status == "UpToDate"  # type: ignore[union-attr]
    higher = tuple(min(svn + 1, 255) for svn in COMPONENTS)
    assert policy.platform_level(FMSPC, higher, 99).status == "UpToDate"  # type: ignore[union-attr]
    # Component 5 (255) is not reached by 20: the floor level applies.
    assert policy.platform_level(FMSPC, (20,) * 16, 99).status == "OutOfDate"  # type: ignore[union-attr]
    floor = policy.platform_level(FMSPC, COMPONENTS, 12)
    assert floor is not None
    assert (floor.components, floor.status) == ((0,) * 16, "OutOfDate")
    assert policy.platform_level(FMSPC, (11, 10, *COMPONENTS[2:]), 13) == floor
    assert policy.platform_level(b"\1" * 6, COMPONENTS, 13) is None
    assert [policy.qe_level(svn).status for svn in (11, 10, 9, 0)] == [  # type: ignore[union-attr]
        "UpToDate",
        "UpToDate",
        "OutOfDate",
        "OutOfDate",
    ]


def test_file_format_is_documented_json() -> None:
    document = json.loads(_policy().to_json())
    assert list(document) == [
        "format",
        "tcbEvaluationDataNumber",
        "validity",
        "platformTcb",
        "qeIdentity",
        "revocations",
    ]
    assert document["platformTcb"]["00906ED50000"]["tcbLevels"][0] == {
        "components": list(COMPONENTS),
        "pceSvn": 13,
        "status": "UpToDate",
        "tcbDate": "2031-03-04T00:00:00Z",
        "advisoryIds": [],
    }
    assert document["qeIdentity"]["tcbLevels"][0]["isvSvn"] == 10


def test_tcb_recovery_of_the_qe() -> None:
    recovered = _policy().after_tcb_recovery(now=NOW, qe_svn=11, advisory_ids=["SIM-SA-7"])
    assert recovered.tcb_evaluation_data_number == 2
    assert [(lv.isv_svn, lv.status, lv.advisory_ids) for lv in recovered.qe_levels] == [
        (11, "UpToDate", ()),
        (10, "OutOfDate", ("SIM-SA-7",)),
        (0, "OutOfDate", ()),
    ]
    assert recovered.fmspcs == _policy().fmspcs  # the platform TCB is unchanged
    with pytest.raises(PolicyError, match="raises the QE SVN"):
        recovered.after_tcb_recovery(now=NOW, qe_svn=10)
    with pytest.raises(PolicyError, match="needs"):
        recovered.after_tcb_recovery(now=NOW)


def test_tcb_recovery_of_the_platform_demotes_superseded_levels() -> None:
    policy = _policy().with_platform_tcb_status(
        fmspc=FMSPC, components=COMPONENTS, pce_svn=13, status="ConfigurationNeeded", now=NOW
    )
    recovered = policy.after_tcb_recovery(now=NOW, pce_svn=14)
    levels = recovered.fmspcs[FMSPC].levels
    assert [(lv.pce_svn, lv.status) for lv in levels] == [
        (14, "UpToDate"),
        (13, "OutOfDateConfigurationNeeded"),
        (0, "OutOfDate"),
    ]
    assert levels[0].components == COMPONENTS
    newer = (*COMPONENTS[:6], 3, *COMPONENTS[7:])
    again = recovered.after_tcb_recovery(now=NOW, components=newer)
    assert [(lv.components, lv.pce_svn, lv.status) for lv in again.fmspcs[FMSPC].levels][:2] == [
        (newer, 14, "UpToDate"),
        (COMPONENTS, 14, "OutOfDate"),
    ]
    with pytest.raises(PolicyError, match="FMSPC"):
        policy.after_tcb_recovery(now=NOW, pce_svn=14, fmspcs=[b"\1" * 6])


@pytest.mark.parametrize("status", PLATFORM_TCB_STATUSES)
def test_set_platform_tcb_status_replaces_or_adds_a_level(status: str) -> None:
    policy = _policy().with_platform_tcb_status(
        fmspc=FMSPC, components=COMPONENTS, pce_svn=13, status=status, advisory_ids=["A-1"], now=NOW
    )
    top = policy.fmspcs[FMSPC].levels[0]
    assert (top.status, top.advisory_ids, top.tcb_date) == (status, ("A-1",), DAY)
    added = policy.with_platform_tcb_status(
        fmspc=FMSPC, components=(12,) * 16, pce_svn=1, status=status, now=NOW
    )
    assert len(added.fmspcs[FMSPC].levels) == 3
    assert added.fmspcs[FMSPC].levels[0].components == (12,) * 16


def test_round_trip_and_revocations() -> None:
    policy = (
        _policy()
        .with_revoked_platform(b"\xab" * 16, now=NOW)
        .with_revoked_platform(b"\xab" * 16, now=NOW)
        .with_revoked_serial(0x1234ABCD, now=NOW)
        .with_revoked_ca("tcb-signing", now=NOW)
        .with_expired(["tcbInfo"])
        .with_qe_tcb_status(isv_svn=3, status="Revoked", advisory_ids=["X"], now=NOW)
    )
    assert len(policy.revocations.platforms) == 1
    assert policy.revocations.revoked_ppids() == {b"\xab" * 16: NOW}
    text = policy.to_json()
    assert TcbPolicy.from_json(text) == policy
    assert TcbPolicy.from_json(text).to_json() == text
    with pytest.raises(PolicyError, match="unknown CA"):
        policy.with_revoked_ca("root", now=NOW)


def _edit(change: object, *path: str | int) -> str:
    document = json.loads(_policy().to_json())
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = change
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "expected dict"),
        (json.dumps({"format": 2}), "format"),
        (_edit("Fine", "platformTcb", "00906ED50000", "tcbLevels", 0, "status"), "status"),
        (_edit([1, 2], "platformTcb", "00906ED50000", "tcbLevels", 0, "components"), "16 SVNs"),
        (_edit(70000, "platformTcb", "00906ED50000", "tcbLevels", 0, "pceSvn"), "pceSvn"),
        (_edit("yesterday", "platformTcb", "00906ED50000", "tcbLevels", 0, "tcbDate"), "tcbDate"),
        (_edit("SWHardeningNeeded", "qeIdentity", "tcbLevels", 0, "status"), "status"),
        (_edit(0, "validity", "days"), "validity.days"),
        (_edit(["everything"], "validity", "expired"), "unknown artifact"),
        (_edit("ZZ", "platformTcb", "00906ED50000", "pceId"), "pceId"),
        (_edit(["é"], "platformTcb", "00906ED50000", "tcbLevels", 0, "advisoryIds"), "ASCII"),
    ],
)
def test_invalid_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        TcbPolicy.from_json(text)


def test_duplicate_levels_are_refused() -> None:
    document = json.loads(_policy().to_json())
    levels = document["platformTcb"]["00906ED50000"]["tcbLevels"]
    levels.append(dict(levels[0]))
    with pytest.raises(PolicyError, match="unique"):
        TcbPolicy.from_json(json.dumps(document))
    document = json.loads(_policy().to_json())
    document["qeIdentity"]["tcbLevels"].append(document["qeIdentity"]["tcbLevels"][0])
    with pytest.raises(PolicyError, match="distinct"):
        TcbPolicy.from_json(json.dumps(document))


_dates = st.integers(946684800, 4070908800).map(lambda t: datetime.fromtimestamp(t, UTC))
_advisories = st.lists(
    st.integers(0, 99999).map(lambda n: f"SIM-SA-{n:05d}"), max_size=3, unique=True
)
_platform_levels = st.lists(
    st.builds(
        PlatformTcbLevel,
        components=st.binary(min_size=16, max_size=16).map(tuple),
        pce_svn=st.integers(0, 0xFFFF),
        status=st.sampled_from(PLATFORM_TCB_STATUSES),
        tcb_date=_dates,
        advisory_ids=_advisories.map(tuple),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda lv: lv.key,
)
_qe_levels = st.lists(
    st.builds(
        QeTcbLevel,
        isv_svn=st.integers(0, 0xFFFF),
        status=st.sampled_from(QE_TCB_STATUSES),
        tcb_date=_dates,
        advisory_ids=_advisories.map(tuple),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda lv: lv.isv_svn,
)
_policies = st.builds(
    TcbPolicy,
    tcb_evaluation_data_number=st.integers(0, 0x7FFFFFFF),
    fmspcs=st.dictionaries(
        st.binary(min_size=6, max_size=6),
        st.builds(
            FmspcPolicy,
            pce_id=st.binary(min_size=2, max_size=2),
            levels=_platform_levels.map(tuple),
        ),
        max_size=3,
    ),
    qe_levels=_qe_levels.map(tuple),
)


@settings(max_examples=50)
@given(_policies)
def test_any_policy_round_trips_and_is_sorted(policy: TcbPolicy) -> None:
    assert TcbPolicy.from_json(policy.to_json()) == policy
    for entry in policy.fmspcs.values():
        keys = [lv.key for lv in entry.levels]
        assert keys == sorted(keys, reverse=True)
    svns = [lv.isv_svn for lv in policy.qe_levels]
    assert svns == sorted(svns, reverse=True)


def _parse(data: bytes | str) -> TcbPolicy | PolicyError:
    try:
        return TcbPolicy.from_json(data)
    except PolicyError as exc:
        return exc


@settings(max_examples=200)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_raises_only_policy_error(data: bytes | str) -> None:
    outcome = _parse(data)
    assert isinstance(outcome, TcbPolicy) or outcome.diagnostics()


@settings(max_examples=100)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_arbitrary_json_raises_only_policy_error(document: object) -> None:
    outcome = _parse(json.dumps(document))
    assert isinstance(outcome, TcbPolicy) or outcome.diagnostics()
