"""Certificate and CRL profiles of the simulated PCK PKI (dcap-quote.md sections 4 to 6).

The profiles are Intel's, byte for byte where verifiers look: P-256 keys and
``ecdsa-with-SHA256``; KeyUsage and BasicConstraints critical (path length 1 on
the root, 0 on the PCK CAs, CA:FALSE on PCK leaves and on the TCB signer, which
the root issues directly); AKI, SKI and a CRL distribution point on every
certificate (QVL's ``REQUIRED_X509_EXTENSIONS``); v2 CRLs with CRL Number and
AKI whose issuer is the signer's subject. The *names* are honest: organisation
"Simulated SGX Manufacturer" and common names that say "Simulated" while
containing the substrings verifiers match ("SGX Root CA", "SGX PCK Certificate",
"SGX TCB Signing", and "Processor"/"Platform" for dcap-qvl's CA type).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sgx_quote_helper._time import to_utc_seconds
from sgx_quote_helper.sgx import SgxExtension

MANUFACTURER_ORGANIZATION = "Simulated SGX Manufacturer"
ROOT_CA_CN = "Simulated SGX Root CA"
PROCESSOR_CA_CN = "Simulated SGX PCK Processor CA"
PLATFORM_CA_CN = "Simulated SGX PCK Platform CA"
PCK_CERTIFICATE_CN = "Simulated SGX PCK Certificate"
TCB_SIGNING_CN = "Simulated SGX TCB Signing"

#: CA types of PCK certificates, as ``/pckcrl?ca=`` and ``SGX-PCK-Certificate-CA-Type`` name them.
CA_TYPES = ("processor", "platform")

# Certificates start an hour in the past so that a verifier whose clock is
# slightly behind still accepts a certificate issued just now.
CLOCK_SKEW = timedelta(hours=1)
ROOT_CA_LIFETIME = timedelta(days=25 * 365)
PCK_CA_LIFETIME = timedelta(days=15 * 365)
TCB_SIGNING_LIFETIME = timedelta(days=7 * 365)
PCK_CERTIFICATE_LIFETIME = timedelta(days=7 * 365)


def simulated_name(common_name: str) -> x509.Name:
    """A DN with the five attributes QVL compares, none of them Intel's.

    ``C=ZZ`` is an ISO 3166 user-assigned code: no real country.
    """
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, MANUFACTURER_ORGANIZATION),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Simulated"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Simulated"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A signing certificate and its private key."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def root_crl_url(pccs_url: str) -> str:
    """Where the root CA CRL is served as DER (the CDP of the root, CAs and TCB signer).

    Not ``/rootcacrl``: PCCS serves that one as hex, which no CDP consumer reads.
    """
    return f"{pccs_url.rstrip('/')}/sim/root-ca.crl"


def pck_crl_url(pccs_url: str, ca_type: str) -> str:
    """Where a PCK CA's CRL is served as DER (the CDP of its PCK certificates)."""
    return f"{pccs_url.rstrip('/')}/sgx/certification/v4/pckcrl?ca={ca_type}&encoding=der"


def _cdp(url: str) -> x509.CRLDistributionPoints:
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def _builder(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
    crl_url: str,
    ca_path_length: int | None,
) -> x509.CertificateBuilder:
    """A builder with every extension QVL requires; ``ca_path_length`` None means CA:FALSE."""
    is_ca = ca_path_length is not None
    key_usage = x509.KeyUsage(
        digital_signature=not is_ca,
        content_commitment=not is_ca,  # nonRepudiation
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_cdp(crl_url), critical=False)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
    )


def _validity(
    now: datetime, lifetime: timedelta, issuer_not_after: datetime | None
) -> tuple[datetime, datetime]:
    start = to_utc_seconds(now) - CLOCK_SKEW
    end = to_utc_seconds(now) + lifetime
    if issuer_not_after is not None:
        end = min(end, issuer_not_after)
    return start, end


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def issue_root_ca(
    private_key: ec.EllipticCurvePrivateKey, *, now: datetime, crl_url: str
) -> x509.Certificate:
    """The self-signed root: keyCertSign+cRLSign, CA path length 1."""
    start, end = _validity(now, ROOT_CA_LIFETIME, None)
    name = simulated_name(ROOT_CA_CN)
    builder = _builder(
        subject=name,
        issuer=name,
        public_key=private_key.public_key(),
        issuer_public_key=private_key.public_key(),
        not_before=start,
        not_after=end,
        crl_url=crl_url,
        ca_path_length=1,
    )
    return _sign(builder, private_key)


def _issued_by(
    issuer: CertificateAuthority,
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    lifetime: timedelta,
    ca_path_length: int | None,
    now: datetime,
    crl_url: str,
) -> x509.CertificateBuilder:
    """A certificate under ``issuer`` with the common profile, not yet signed."""
    start, end = _validity(now, lifetime, issuer.certificate.not_valid_after_utc)
    return _builder(
        subject=simulated_name(common_name),
        issuer=issuer.certificate.subject,
        public_key=public_key,
        issuer_public_key=issuer.private_key.public_key(),
        not_before=start,
        not_after=end,
        crl_url=crl_url,
        ca_path_length=ca_path_length,
    )


def issue_pck_ca(
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    root: CertificateAuthority,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """A PCK Processor or Platform CA: issued by the root, CA path length 0."""
    builder = _issued_by(
        root,
        public_key,
        common_name=common_name,
        lifetime=PCK_CA_LIFETIME,
        ca_path_length=0,
        now=now,
        crl_url=crl_url,
    )
    return _sign(builder, root.private_key)


def issue_tcb_signing(
    public_key: ec.EllipticCurvePublicKey,
    *,
    root: CertificateAuthority,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """The TCB Signing certificate: an end entity issued directly by the root."""
    builder = _issued_by(
        root,
        public_key,
        common_name=TCB_SIGNING_CN,
        lifetime=TCB_SIGNING_LIFETIME,
        ca_path_length=None,
        now=now,
        crl_url=crl_url,
    )
    return _sign(builder, root.private_key)


def issue_pck_certificate(
    public_key: ec.EllipticCurvePublicKey,
    *,
    issuer: CertificateAuthority,
    extension: SgxExtension,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """A PCK leaf with the SGX extension (``sgx._pck_extension``), issued by a PCK CA."""
    builder = _issued_by(
        issuer,
        public_key,
        common_name=PCK_CERTIFICATE_CN,
        lifetime=PCK_CERTIFICATE_LIFETIME,
        ca_path_length=None,
        now=now,
        crl_url=crl_url,
    ).add_extension(extension.to_x509_extension(), critical=False)
    return _sign(builder, issuer.private_key)


def issue_crl(
    issuer: CertificateAuthority,
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    revoked: Iterable[tuple[int, datetime]] = (),
) -> x509.CertificateRevocationList:
    """A v2 CRL with CRL Number and AKI; its issuer is the signer's subject, as encoded there."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(to_utc_seconds(this_update))
        .next_update(to_utc_seconds(next_update))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    )
    for serial, date in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(to_utc_seconds(date))
            .build()
        )
    return builder.sign(issuer.private_key, hashes.SHA256())
