"""Signed TCB Info v3 / QE Identity v2 and their re-issue (dcap-quote.md sections 8 and 9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.pccs import SignedCollateral, signed_text
from sgx_quote_helper.pcs import (
    EvaluationDataNumberNotFoundError,
    FmspcNotFoundError,
    Manufacturer,
    RegisteredPlatform,
)
from sgx_quote_helper.pcs._pki import CLOCK_SKEW

TCB_INFO_KEYS = [
    "id",
    "version",
    "issueDate",
    "nextUpdate",
    "fmspc",
    "pceId",
    "tcbType",
    "tcbEvaluationDataNumber",
    "tcbLevels",
]
QE_IDENTITY_KEYS = [
    "id",
    "version",
    "issueDate",
    "nextUpdate",
    "tcbEvaluationDataNumber",
    "miscselect",
    "miscselectMask",
    "attributes",
    "attributesMask",
    "mrsigner",
    "isvprodid",
    "tcbLevels",
]
START = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


class Clock:
    """An injectable clock that tests move by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RegisteredPlatform]:
    path = tmp_path_factory.mktemp("sim")
    manufacturer = Manufacturer.create(path, clock=Clock(START - timedelta(days=1)))
    platform = manufacturer.register_platform(
        manufacturer.new_platform("default", path / "platform")
    )
    return path, platform


def _fresh_dir(sim: tuple[Path, RegisteredPlatform], tmp_path: Path) -> Path:
    """A private copy of the module's simulation directory (tests below change it)."""
    import shutil

    target = tmp_path / "sim"
    shutil.copytree(sim[0], target)
    return target


def _verify_raw(collateral: SignedCollateral, signer: x509.Certificate) -> None:
    key = signer.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    sig = collateral.signature
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, collateral.text.encode(), ec.ECDSA(hashes.SHA256()))


def _check_signed_document(
    collateral: SignedCollateral, kind: str, signer: x509.Certificate
) -> None:
    # The body is {"<kind>":<exact signed text>,"signature":"<128 lower-case hex>"}.
    assert (
        collateral.body
        == f'{{"{kind}":{collateral.text},"signature":"{collateral.signature.hex()}"}}'
    )
    body = json.loads(collateral.body)
    assert list(body) == [kind, "signature"]
    assert len(body["signature"]) == 128
    assert body["signature"] == body["signature"].lower()
    # Re-serializing the inner object (as verifiers do) reproduces the signed text.
    assert json.dumps(body[kind], separators=(",", ":")) == collateral.text
    assert signed_text(body[kind]) == collateral.text
    assert collateral.text.isascii()
    _verify_raw(collateral, signer)
    assert isinstance(public_key := signer.public_key(), ec.EllipticCurvePublicKey)
    assert collateral.verify(public_key)
    # A re-ordered object no longer verifies: the order is part of what is signed.
    reordered = dict(reversed(list(body[kind].items())))
    tampered = SignedCollateral(
        kind, signed_text(reordered), collateral.signature, collateral.issuer_chain_pem
    )
    assert not tampered.verify(public_key)


def test_tcb_info_v3_exact_text_order_and_signature(
    sim: tuple[Path, RegisteredPlatform],
) -> None:
    path, platform = sim
    manufacturer = Manufacturer.load(path, clock=Clock())
    collateral = manufacturer.tcb_info(platform.fmspc)
    _check_signed_document(collateral, "tcbInfo", manufacturer.certificate("tcb-signing"))
    inner = collateral.inner
    assert list(inner) == TCB_INFO_KEYS
    assert inner["id"] == "SGX"
    assert inner["version"] == 3
    assert inner["tcbType"] == 0
    assert inner["fmspc"] == platform.fmspc.hex().upper()
    assert inner["pceId"] == "0000"
    # Issued an hour in the past (clock-skew margin), valid 30 days from now.
    assert inner["issueDate"] == "2030-01-15T11:00:00Z"
    assert inner["nextUpdate"] == "2030-02-14T12:00:00Z"  # 30 days, the default window
    assert inner["tcbEvaluationDataNumber"] == 1
    top = inner["tcbLevels"][0]
    assert list(top) == ["tcb", "tcbDate", "tcbStatus"]  # no advisories: no advisoryIDs key
    assert list(top["tcb"]) == ["sgxtcbcomponents", "pcesvn"]
    # The initial policy makes the platform's own TCB with this release's PCE UpToDate.
    assert [c["svn"] for c in top["tcb"]["sgxtcbcomponents"]] == list(platform.tcb_components)
    assert top["tcb"]["pcesvn"] == PCE_SVN
    assert top["tcbStatus"] == "UpToDate"
    for level in inner["tcbLevels"]:
        assert len(level["tcb"]["sgxtcbcomponents"]) == 16


def test_qe_identity_v2_exact_text_order_and_signature(
    sim: tuple[Path, RegisteredPlatform],
) -> None:
    manufacturer = Manufacturer.load(sim[0], clock=Clock())
    collateral = manufacturer.qe_identity()
    _check_signed_document(collateral, "enclaveIdentity", manufacturer.certificate("tcb-signing"))
    inner = collateral.inner
    assert list(inner) == QE_IDENTITY_KEYS
    assert inner["id"] == "QE"
    assert inner["version"] == 2
    assert inner["miscselect"] == "00000000"
    assert inner["miscselectMask"] == "FFFFFFFF"
    assert inner["attributes"] == "11000000000000000000000000000000"
    assert inner["attributesMask"] == "FBFFFFFFFFFFFFFF0000000000000000"
    assert inner["mrsigner"] == "8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF"
    assert inner["isvprodid"] == 1
    assert inner["tcbLevels"][0] == {
        "tcb": {"isvsvn": QE_SVN},
        "tcbDate": "2030-01-14T00:00:00Z",
        "tcbStatus": "UpToDate",
    }
    assert [lv["tcb"]["isvsvn"] for lv in inner["tcbLevels"]] == [QE_SVN, 0]


def test_levels_are_published_sorted_and_with_advisories(
    sim: tuple[Path, RegisteredPlatform], tmp_path: Path
) -> None:
    path = _fresh_dir(sim, tmp_path)
    platform = sim[1]
    manufacturer = Manufacturer.load(path, clock=Clock())
    low = (1,) * 16
    high = (*platform.tcb_components[:6], 12, *platform.tcb_components[7:])
    for components, status in ((low, "OutOfDate"), (high, "SWHardeningNeeded")):
        manufacturer.set_platform_tcb_status(
            status, fmspc=platform.fmspc, tcb_components=components, advisory_ids=["SIM-SA-1"]
        )
    manufacturer.set_qe_tcb_status("OutOfDate", isv_svn=QE_SVN - 2, advisory_ids=["SIM-SA-2"])
    levels = manufacturer.tcb_info(platform.fmspc).inner["tcbLevels"]
    keys = [
        ([c["svn"] for c in lv["tcb"]["sgxtcbcomponents"]], lv["tcb"]["pcesvn"]) for lv in levels
    ]
    assert keys == sorted(keys, reverse=True)
    assert len(set(map(str, keys))) == len(keys)
    assert levels[0]["tcbStatus"] == "SWHardeningNeeded"
    assert levels[0]["advisoryIDs"] == ["SIM-SA-1"]
    assert list(levels[0]) == ["tcb", "tcbDate", "tcbStatus", "advisoryIDs"]
    qe_levels = manufacturer.qe_identity().inner["tcbLevels"]
    assert [lv["tcb"]["isvsvn"] for lv in qe_levels] == [QE_SVN, QE_SVN - 2, 0]


def test_collateral_is_reissued_when_stale_and_persisted(
    sim: tuple[Path, RegisteredPlatform], tmp_path: Path
) -> None:
    path = _fresh_dir(sim, tmp_path)
    fmspc = sim[1].fmspc
    clock = Clock()
    manufacturer = Manufacturer.load(path, clock=clock)
    first = manufacturer.tcb_info(fmspc)
    first_crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))

    clock.advance(timedelta(hours=23))
    assert manufacturer.tcb_info(fmspc) == first  # still fresh: the same document
    # Another replica sharing the directory serves what was persisted.
    replica = Manufacturer.load(path, clock=clock)
    assert replica.tcb_info(fmspc) == first

    clock.advance(timedelta(hours=2))  # past the daily refresh
    second = manufacturer.tcb_info(fmspc)
    assert second.inner["issueDate"] == "2030-01-16T12:00:00Z"
    assert second.inner["nextUpdate"] == "2030-02-15T13:00:00Z"
    assert second.verify(manufacturer.tcb_signing_public_key)
    assert Manufacturer.load(path, clock=clock).tcb_info(fmspc) == second
    stored = json.loads(
        (path / "pcs" / "cache" / f"tcb-info-{fmspc.hex().upper()}.json").read_text()
    )
    assert json.loads(stored["data"])["text"] == second.text

    crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))
    assert crl.last_update_utc == clock.now - CLOCK_SKEW
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    first_number = first_crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == first_number + 1

    # Months later the directory still serves valid collateral, under valid certificates.
    clock.advance(timedelta(days=120))
    later = manufacturer.qe_identity().inner
    assert later["issueDate"] == "2030-05-16T12:00:00Z"
    assert manufacturer.certificate("tcb-signing").not_valid_after_utc > clock.now


def test_policy_changes_are_seen_without_reloading(
    sim: tuple[Path, RegisteredPlatform], tmp_path: Path
) -> None:
    path = _fresh_dir(sim, tmp_path)
    clock = Clock()
    serving = Manufacturer.load(path, clock=clock)
    assert serving.qe_identity().inner["tcbEvaluationDataNumber"] == 1
    Manufacturer.load(path, clock=clock).tcb_recovery(qe_svn=QE_SVN + 1)
    inner = serving.qe_identity().inner
    assert inner["tcbEvaluationDataNumber"] == 2
    assert [(lv["tcb"]["isvsvn"], lv["tcbStatus"]) for lv in inner["tcbLevels"]] == [
        (QE_SVN + 1, "UpToDate"),
        (QE_SVN, "OutOfDate"),
        (0, "OutOfDate"),
    ]
    assert serving.tcb_info(sim[1].fmspc).inner["tcbEvaluationDataNumber"] == 2
    assert serving.tcb_info(sim[1].fmspc, tcb_evaluation_data_number=2).inner
    with pytest.raises(EvaluationDataNumberNotFoundError):
        serving.tcb_info(sim[1].fmspc, tcb_evaluation_data_number=1)


def test_expired_collateral_on_request(
    sim: tuple[Path, RegisteredPlatform], tmp_path: Path
) -> None:
    path = _fresh_dir(sim, tmp_path)
    clock = Clock()
    manufacturer = Manufacturer.load(path, clock=clock)
    manufacturer.set_expired(["tcbInfo", "pckCrl"])
    inner = manufacturer.tcb_info(sim[1].fmspc).inner
    assert inner["nextUpdate"] == "2030-01-14T12:00:00Z"  # a day before now
    assert inner["issueDate"] == "2029-12-15T12:00:00Z"
    crl = x509.load_der_x509_crl(manufacturer.pck_crl("processor"))
    assert crl.next_update_utc is not None
    assert crl.next_update_utc < clock.now
    assert manufacturer.qe_identity().inner["nextUpdate"] > "2030-01-15"  # not named: valid
    manufacturer.set_expired([])
    assert manufacturer.tcb_info(sim[1].fmspc).inner["nextUpdate"] == "2030-02-14T12:00:00Z"


def test_unknown_fmspc(sim: tuple[Path, RegisteredPlatform]) -> None:
    with pytest.raises(FmspcNotFoundError, match="FFFFFFFFFFFF"):
        Manufacturer.load(sim[0]).tcb_info(b"\xff" * 6)
