"""Verification of the real Intel quote and collateral of ``tests/assets``.

Expected values are those of ``tests/assets/README.md`` (dcap-qvl 0.7.0 and the
Intel rules of dcap-quote.md section 10). The collateral's validity window is
in the past, so every test passes an explicit time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import Collateral
from sgx_quote_helper.sgx import Quote, Quote3Error, QvResult
from sgx_quote_helper.verify import (
    INTEL_ROOT_PUBLIC_KEY,
    CertificateChainError,
    CollateralExpired,
    CollateralNotYetValid,
    CrlExpired,
    InvalidCollateral,
    InvalidSignature,
    MalformedQuote,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    UntrustedRoot,
    ValidityPeriodError,
    VerificationError,
    Verifier,
)

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
JULY_1 = 1751328000  # 2025-07-01T00:00:00Z
WINDOW_START = 1750330571  # TCB Info issueDate
WINDOW_END = 1752919278  # QE Identity nextUpdate
LATE_2026 = 1790000000


def _intel_root_der() -> bytes:
    return Quote.from_bytes(QUOTE).pck_chain()[-1].public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("now", [JULY_1, WINDOW_START, WINDOW_END])
def test_real_quote_verifies_inside_the_window(now: int) -> None:
    result = Verifier().verify(QUOTE, COLLATERAL, now=now, policy=UnsafeNoAppraisal())
    assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert result.qv_result is QvResult.CONFIG_AND_SW_HARDENING_NEEDED
    assert int(result.qv_result) == 0xA008
    assert result.advisory_ids == ("INTEL-SA-00289", "INTEL-SA-00615")


def test_result_fields() -> None:
    result = Verifier().verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    assert result.platform_tcb.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
    assert result.platform_tcb.tcb_date == datetime(2024, 3, 13, tzinfo=UTC)
    assert result.qe_tcb.status is TcbStatus.UP_TO_DATE
    assert result.qe_tcb.advisory_ids == ()
    assert result.qe_report.isv_svn == 10
    report = result.report
    assert report.mr_enclave.hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert report.mr_signer.hex() == (
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    )
    assert (report.isv_prod_id, report.isv_svn) == (0, 0)
    assert report.report_data == b"Hello, world!".ljust(64, b"\x00")
    assert not report.attributes.debug
    assert result.header.qe_svn == 10
    assert result.header.pce_svn == 15
    assert result.fmspc == "00A067110000"
    assert result.ca_type == "processor"
    assert result.ppid.hex() == "d04ec06d4e6d92dc90d0ad3cf5ee2ddf"
    assert result.pck_cpu_svn.hex() == "0b0b0202ff0100000000000000000000"
    assert result.pck_pce_svn == 13
    assert result.pce_id == b"\x00\x00"
    assert result.tcb_evaluation_data_number == 17
    assert result.collateral_expires == datetime.fromtimestamp(WINDOW_END, UTC)
    assert result.collateral_issued == datetime(2025, 6, 19, 10, 1, 18, tzinfo=UTC)
    assert result.verified_at == datetime.fromtimestamp(JULY_1, UTC)
    # Supplemental data's root_key_id: SHA-384 of Intel's root public key.
    assert result.root_key_id == hashlib.sha384(INTEL_ROOT_PUBLIC_KEY).digest()
    assert result.root_key_id == TrustAnchor.intel().key_id
    assert result.simulated is False
    assert result.pck_crl_number == 1
    assert result.root_ca_crl_number == 1


def test_result_json_form() -> None:
    data = Verifier().verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal()).to_dict()
    assert data["status"] == "ConfigurationAndSWHardeningNeeded"
    assert data["qv_result"] == {
        "value": 0xA008,
        "name": "SGX_QL_QV_RESULT_CONFIG_AND_SW_HARDENING_NEEDED",
    }
    assert data["simulated"] is False
    assert data["collateral_expires"] == "2025-07-19T10:01:18Z"
    assert data["qe_tcb"]["status"] == "UpToDate"
    assert data["report"]["debug"] is False
    assert data["root_key_id"].startswith("46e403bd")


def test_explicit_intel_root_is_not_simulated() -> None:
    anchor = TrustAnchor.from_bytes(_intel_root_der())
    assert anchor.is_intel
    assert anchor.certificate_sha256 == TrustAnchor.intel().certificate_sha256
    result = Verifier(anchor).verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    assert result.simulated is False
    assert result.status is TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED


def test_time_as_datetime() -> None:
    at = datetime(2025, 7, 1, tzinfo=UTC)
    assert (
        Verifier().verify(QUOTE, COLLATERAL, now=at, policy=UnsafeNoAppraisal()).verified_at == at
    )
    with pytest.raises(UsageError):
        Verifier().verify(QUOTE, COLLATERAL, now=datetime(2025, 7, 1), policy=UnsafeNoAppraisal())


@pytest.mark.parametrize(
    "now",
    [
        -1,
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # before year 1 in UTC
        10**20,
        float("inf"),
        float("nan"),
    ],
    ids=["-1", "1969", "year-0-in-utc", "1e20", "inf", "nan"],
)
def test_a_time_the_engine_cannot_take_is_a_usage_error(now: int | float | datetime) -> None:
    # Before the epoch or beyond datetime: dcap-qvl takes unsigned Unix seconds.
    with pytest.raises(UsageError, match="from 1970-01-01 to 9999-12-31 UTC"):
        Verifier().verify(QUOTE, COLLATERAL, now=now, policy=UnsafeNoAppraisal())


@pytest.mark.parametrize(
    ("now", "error", "code"),
    [
        (WINDOW_START - 1, CollateralNotYetValid, Quote3Error.SGX_TCB_INFO_EXPIRED),
        (WINDOW_END + 1, CollateralExpired, Quote3Error.SGX_ENCLAVE_IDENTITY_EXPIRED),
        (LATE_2026, CrlExpired, Quote3Error.SGX_CRL_EXPIRED),
    ],
)
def test_outside_the_window(now: int, error: type[VerificationError], code: Quote3Error) -> None:
    with pytest.raises(error) as info:
        Verifier().verify(QUOTE, COLLATERAL, now=now, policy=UnsafeNoAppraisal())
    assert isinstance(info.value, ValidityPeriodError)
    assert info.value.quote3_error is code
    assert info.value.qv_result is QvResult.UNSPECIFIED
    assert "fetch fresh collateral" in info.value.diagnostics()


def _other_root() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test SGX Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_intel_quote_against_another_root_is_refused() -> None:
    anchor = TrustAnchor.from_bytes(_other_root())
    assert anchor.simulated
    with pytest.raises(UntrustedRoot) as info:
        Verifier(anchor).verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    assert isinstance(info.value, CertificateChainError)
    assert "Intel SGX Root CA" in str(info.value)
    assert "SGX_QL_PCK_CERT_CHAIN_ERROR 0xE022" in info.value.diagnostics()


def test_trust_anchor_must_be_a_self_signed_p256_root() -> None:
    chain = Quote.from_bytes(QUOTE).pck_chain()
    with pytest.raises(UsageError, match="self-signed"):
        TrustAnchor.from_certificate(chain[1])
    with pytest.raises(UsageError):
        TrustAnchor.from_bytes(b"not a certificate")
    pem = chain[-1].public_bytes(serialization.Encoding.PEM)
    assert TrustAnchor.from_bytes(pem).is_intel


def test_unparsable_trust_anchor_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "not-a-root.json"
    path.write_text("{}")
    with pytest.raises(UsageError, match=r"root CA certificate '.*not-a-root\.json': not a DER"):
        TrustAnchor.from_file(path)


# -- tampering with any signed byte -------------------------------------------

CERT_DATA = 1052
_PEM = QUOTE[CERT_DATA:-1]
_LEAF_END = CERT_DATA + _PEM.index(b"-----END CERTIFICATE-----\n") + 26
_CA_END = _LEAF_END + _PEM[_LEAF_END - CERT_DATA :].index(b"-----END CERTIFICATE-----\n") + 26

#: Quote regions (dcap-quote.md section 1): (start, end) byte offsets.
REGIONS = {
    "header": (0, 48),
    "isv_report_body": (48, 432),
    "signature_data_len": (432, 436),
    "quote_signature": (436, 500),
    "attest_pub_key": (500, 564),
    "qe_report": (564, 948),
    "qe_report_signature": (948, 1012),
    "qe_auth_data_size": (1012, 1014),
    "qe_auth_data": (1014, 1046),
    "cert_data_type_and_size": (1046, 1052),
    "pck_leaf_certificate": (CERT_DATA + 100, _LEAF_END - 30),
    "pck_ca_certificate": (_LEAF_END + 40, _CA_END - 30),
    "root_ca_certificate": (_CA_END + 40, len(QUOTE) - 30),
    "certification_data_framing": (len(QUOTE) - 27, len(QUOTE)),
}


def _positions(start: int, end: int) -> list[int]:
    """A few positions spread over the region, always its first and last byte."""
    step = max(1, (end - start) // 4)
    return sorted({start, *range(start, end, step), end - 1})


@pytest.mark.parametrize(
    ("region", "position"),
    [(name, pos) for name, (start, end) in REGIONS.items() for pos in _positions(start, end)],
)
def test_tampered_quote_is_refused(region: str, position: int) -> None:
    tampered = bytearray(QUOTE)
    tampered[position] ^= 0x01
    with pytest.raises(VerificationError):
        Verifier().verify(bytes(tampered), COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())


def test_every_single_bit_flip_is_refused() -> None:
    verifier = Verifier()
    accepted = []
    for position in range(len(QUOTE)):
        tampered = bytearray(QUOTE)
        tampered[position] ^= 0x01
        try:
            verifier.verify(bytes(tampered), COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
        except VerificationError:
            continue
        accepted.append(position)
    assert accepted == []


def test_truncated_or_extended_quote_is_malformed() -> None:
    for data in (QUOTE[:-1], QUOTE + b"\x00", QUOTE[:1000], b""):
        with pytest.raises(MalformedQuote):
            Verifier().verify(data, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())


def _flip_hex(value: bytes) -> bytes:
    flipped = bytearray(value)
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("tcb_info_signature", InvalidSignature),
        ("qe_identity_signature", InvalidSignature),
        ("root_ca_crl", InvalidSignature),
        ("pck_crl", InvalidCollateral),
    ],
)
def test_tampered_collateral_is_refused(field: str, error: type[VerificationError]) -> None:
    changes: dict[str, bytes] = {field: _flip_hex(getattr(COLLATERAL, field))}
    collateral = dataclasses.replace(COLLATERAL, **changes)  # type: ignore[arg-type]
    with pytest.raises(error) as info:
        Verifier().verify(QUOTE, collateral, now=JULY_1, policy=UnsafeNoAppraisal())
    assert info.value.collateral_fault


def test_reordered_signed_text_is_refused() -> None:
    text = COLLATERAL.tcb_info.replace('"id":"SGX","version":3', '"version":3,"id":"SGX"')
    assert text != COLLATERAL.tcb_info
    with pytest.raises(InvalidSignature) as info:
        Verifier().verify(
            QUOTE,
            dataclasses.replace(COLLATERAL, tcb_info=text),
            now=JULY_1,
            policy=UnsafeNoAppraisal(),
        )
    assert info.value.qv_result is QvResult.INVALID_SIGNATURE


def test_no_collateral_and_no_pccs() -> None:
    with pytest.raises(UsageError):
        Verifier().verify(QUOTE, now=JULY_1, policy=UnsafeNoAppraisal())
    with pytest.raises(UsageError):
        Verifier(cache_dir="/tmp/x")


def test_a_bytes_like_quote_verifies_as_bytes() -> None:
    expected = Verifier().verify(QUOTE, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
    for quote in (bytearray(QUOTE), memoryview(QUOTE)):
        result = Verifier().verify(quote, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())
        assert result == expected


@pytest.mark.parametrize(
    "quote",
    # 10**11 would be a 100 GB bytes() (MemoryError) if it were converted first.
    [10**11, QUOTE.hex(), None, [1, 2, 3]],
    ids=["int", "str", "None", "list"],
)
def test_a_quote_that_is_not_bytes_like_is_a_usage_error(quote: object) -> None:
    with pytest.raises(UsageError, match=r"quote must be bytes .* got") as info:
        Verifier().verify(quote, COLLATERAL, now=JULY_1, policy=UnsafeNoAppraisal())  # type: ignore[arg-type]
    assert type(quote).__name__ in str(info.value)


@pytest.mark.parametrize("policy", [None, "UpToDate", object()], ids=["None", "str", "object"])
def test_a_policy_that_is_not_a_policy_is_a_usage_error(policy: object) -> None:
    # Checked before the quote is verified: a bad policy never surfaces as an
    # AttributeError after the work, whatever the quote.
    for quote in (QUOTE, b"not a quote"):
        with pytest.raises(UsageError, match="policy must be a Policy"):
            Verifier().verify(quote, COLLATERAL, now=JULY_1, policy=policy)  # type: ignore[arg-type]


def test_collateral_that_is_not_collateral_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="collateral must be a Collateral"):
        Verifier().verify(QUOTE, {"tcb_info": "{}"}, now=JULY_1, policy=UnsafeNoAppraisal())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pccs": 5}, "pccs must be a PCCS URL"),
        ({"pccs": b"https://pccs"}, "pccs must be a PCCS URL"),
        ({"pccs": "https://pccs.example", "cache_dir": 5}, "cache_dir must be a path"),
        ({"pccs": "https://pccs.example", "max_collateral_age": 60}, "must be a datetime"),
    ],
)
def test_verifier_arguments_of_the_wrong_type_are_usage_errors(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        Verifier(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="trust_anchor must be a TrustAnchor"):
        Verifier(_intel_root_der())  # type: ignore[arg-type]
