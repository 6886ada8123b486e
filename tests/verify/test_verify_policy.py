"""Appraisal rules: each passes and fails on a result from the real Intel vector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import Collateral
from sgx_quote_helper.sgx import AttributeFlags, Attributes
from sgx_quote_helper.verify import (
    AcceptStatuses,
    AllOf,
    AnyOf,
    AppraisalError,
    ClaimFailure,
    IsvProdId,
    MaxCollateralAge,
    MinIsvSvn,
    MrEnclave,
    MrSigner,
    NoDebug,
    Policy,
    RejectAdvisories,
    ReportData,
    ReportDataPrefix,
    TcbStatus,
    UnsafeNoAppraisal,
    VerificationResult,
    Verifier,
    appraise,
    load_policy,
    policy_from_mapping,
)

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
RESULT = Verifier().verify(QUOTE, COLLATERAL, now=1751328000, policy=UnsafeNoAppraisal())

MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
OTHER = "ab" * 32
HELLO = b"Hello, world!".hex()
STATUS = "ConfigurationAndSWHardeningNeeded"
# Collateral issued 2025-06-19T10:01:18Z, verified 2025-07-01T00:00:00Z.
AGE = 1751328000 - 1750327278


def _failure(policy: Policy, result: VerificationResult = RESULT) -> ClaimFailure:
    with pytest.raises(AppraisalError) as info:
        policy.appraise(result)
    (failure,) = info.value.failures
    return failure


PASSING: list[Policy] = [
    MrEnclave(MRENCLAVE),
    MrEnclave(OTHER, bytes.fromhex(MRENCLAVE)),
    MrSigner(MRSIGNER),
    IsvProdId(0),
    MinIsvSvn(0),
    ReportData(HELLO),
    ReportData(b"Hello, world!".ljust(64, b"\x00")),
    ReportDataPrefix(HELLO),
    AcceptStatuses(STATUS),
    AcceptStatuses("UpToDate", TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED),
    RejectAdvisories("INTEL-SA-00334"),
    MaxCollateralAge(AGE),
    NoDebug(),
    AllOf(MrEnclave(MRENCLAVE), AcceptStatuses(STATUS)),
    AnyOf(MrEnclave(OTHER), MrSigner(MRSIGNER)),
]


@pytest.mark.parametrize("policy", PASSING, ids=repr)
def test_rule_accepts(policy: Policy) -> None:
    policy.appraise(RESULT)
    assert appraise(RESULT, policy) == ()


@pytest.mark.parametrize(
    ("policy", "claim", "expected", "actual"),
    [
        (MrEnclave(OTHER), "mr_enclave", OTHER, MRENCLAVE),
        (MrSigner(OTHER, "cd" * 32), "mr_signer", f"one of [{OTHER}, {'cd' * 32}]", MRSIGNER),
        (IsvProdId(7), "isv_prod_id", "7", "0"),
        (MinIsvSvn(1), "isv_svn", ">= 1", "0"),
        (ReportData("00"), "report_data", "00" * 64, HELLO + "00" * 51),
        (
            ReportDataPrefix("48656c6c6f2c21"),
            "report_data[0:7]",
            "48656c6c6f2c21",
            "48656c6c6f2c20",
        ),
        (
            AcceptStatuses(),
            "status",
            "UpToDate",
            f"{STATUS} (SGX_QL_QV_RESULT_CONFIG_AND_SW_HARDENING_NEEDED 0xA008; "
            "advisories INTEL-SA-00289, INTEL-SA-00615)",
        ),
        (
            RejectAdvisories("intel-sa-00615", "INTEL-SA-00999"),
            "advisory_ids",
            "none of INTEL-SA-00615, INTEL-SA-00999",
            "INTEL-SA-00615",
        ),
        (MaxCollateralAge(AGE - 1), "collateral_age", f"<= {AGE - 1}s", f"{AGE}s"),
    ],
    ids=lambda v: repr(v) if not isinstance(v, str) else None,
)
def test_rule_rejects_naming_the_claim(
    policy: Policy, claim: str, expected: str, actual: str
) -> None:
    assert _failure(policy) == ClaimFailure(claim, expected, actual)


def test_no_debug_rejects_a_debug_enclave() -> None:
    flags = RESULT.report.attributes.flags | AttributeFlags.DEBUG
    report = dataclasses.replace(
        RESULT.report, attributes=Attributes(flags=flags, xfrm=RESULT.report.attributes.xfrm)
    )
    debug_result = dataclasses.replace(RESULT, report=report)
    assert _failure(NoDebug(), debug_result) == ClaimFailure("debug", "false", "true")


def test_all_of_reports_every_failure() -> None:
    with pytest.raises(AppraisalError) as info:
        AllOf(MrEnclave(OTHER), IsvProdId(0), MinIsvSvn(3)).appraise(RESULT)
    assert [f.claim for f in info.value.failures] == ["mr_enclave", "isv_svn"]
    text = info.value.diagnostics()
    assert text.startswith("appraisal failed: mr_enclave: expected ")
    assert "isv_svn: expected >= 3, got 0" in text


def test_any_of_fails_only_when_every_alternative_fails() -> None:
    with pytest.raises(AppraisalError) as info:
        AnyOf(MrEnclave(OTHER), AllOf(MrSigner(MRSIGNER), IsvProdId(2))).appraise(RESULT)
    assert [f.claim for f in info.value.failures] == ["mr_enclave", "isv_prod_id"]
    assert "none of 2 alternatives accepted the quote" in str(info.value)


def test_empty_compositions_are_refused() -> None:
    with pytest.raises(UsageError, match="empty AllOf would accept every quote"):
        AllOf()
    with pytest.raises(UsageError):
        AnyOf()


@pytest.mark.parametrize(
    "make",
    [
        lambda: MrEnclave(),
        lambda: MrEnclave("abcd"),
        lambda: MrSigner("zz" * 32),
        lambda: IsvProdId(-1),
        lambda: MinIsvSvn(0x10000),
        lambda: ReportData("00" * 65),
        lambda: ReportDataPrefix(""),
        lambda: AcceptStatuses("Fine"),
        lambda: RejectAdvisories(),
        lambda: MaxCollateralAge(-5),
    ],
)
def test_bad_rule_arguments_are_usage_errors(make: object) -> None:
    with pytest.raises(UsageError):
        make()  # type: ignore[operator]


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        f"""
# The enclave we deploy, on platforms whose known issues we accepted.
mrsigner = "{MRSIGNER}"
isv_prod_id = 0
min_isv_svn = 0
report_data_prefix = "{HELLO}"
accept_statuses = ["UpToDate", "{STATUS}"]
reject_advisories = ["INTEL-SA-00334"]
max_collateral_age = 2592000

[[any_of]]
mrenclave = "{OTHER}"

[[any_of]]
mrenclave = ["{MRENCLAVE}"]
"""
    )
    policy = load_policy(path)
    policy.appraise(RESULT)
    assert "NoDebug()" in repr(policy)

    path.write_text(f'mrenclave = "{MRENCLAVE}"\n')
    with pytest.raises(AppraisalError) as info:
        load_policy(path).appraise(RESULT)
    # accept_statuses defaults to UpToDate only.
    assert [f.claim for f in info.value.failures] == ["status"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mrenclav = 'x'", "unknown policy keys"),
        ("mrenclave = 3", "must be a string"),
        ("allow_debug = 'yes'", "allow_debug"),
        ("any_of = 'x'", "array of tables"),
        ("[[any_of]]\n", "empty alternative"),
        ("[[any_of]]\nallow_debug = true\n", "unknown policy keys"),
        ("mrenclave = ", "not valid TOML"),
    ],
)
def test_policy_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_policy(path)


def test_policy_file_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.toml")


def test_allow_debug_drops_the_no_debug_rule() -> None:
    assert "NoDebug" not in repr(policy_from_mapping({"allow_debug": True}))
    assert "NoDebug" in repr(policy_from_mapping({}))


def test_verifier_applies_the_policy() -> None:
    with pytest.raises(AppraisalError):
        Verifier().verify(QUOTE, COLLATERAL, now=1751328000, policy=AcceptStatuses())
    result = Verifier().verify(
        QUOTE, COLLATERAL, now=1751328000, policy=AllOf(AcceptStatuses(STATUS), NoDebug())
    )
    assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED


def test_verify_without_a_policy_is_a_type_error() -> None:
    # Safe by default: forgetting the policy must not accept any genuine quote.
    with pytest.raises(TypeError, match="policy"):
        Verifier().verify(QUOTE, COLLATERAL, now=1751328000)  # type: ignore[call-arg]


def test_unsafe_no_appraisal_is_the_named_opt_out() -> None:
    # The vector's status is ConfigurationAndSWHardeningNeeded, which the default
    # AcceptStatuses() refuses; the explicit opt-out returns the verdict as it is.
    result = Verifier().verify(QUOTE, COLLATERAL, now=1751328000, policy=UnsafeNoAppraisal())
    assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert appraise(result, UnsafeNoAppraisal()) == ()
    assert repr(UnsafeNoAppraisal()) == "UnsafeNoAppraisal()"
