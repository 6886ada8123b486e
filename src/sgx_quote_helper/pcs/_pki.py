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

from sgx_quote_helper._net import http_base_url
from sgx_quote_helper._time import to_utc_seconds
from sgx_quote_helper.pcs._errors import InvalidArgumentError
from sgx_quote_helper.sgx import SgxExtension

MANUFACTURER_ORGANIZATION = "Simulated SGX Manufacturer"
ROOT_CA_CN = "Simulated SGX Root CA"
PROCESSOR_CA_CN = "Simulated SGX PCK Processor CA"
PLATFORM_CA_CN = "Simulated SGX PCK Platform CA"
PCK_CERTIFICATE_CN = "Simulated SGX PCK Certificate"
TCB_SIGNING_CN = "Simulated SGX TCB Signing"

#: RFC 5280 4.1.2.2: a serial number is a positive INTEGER of at most 20 octets, so
#: at most 159 bits; cryptography refuses anything else in a certificate or a CRL.
MAX_SERIAL_NUMBER_BITS = 159

#: CA types of PCK certificates, as ``/pckcrl?ca=`` and ``SGX-PCK-Certificate-CA-Type`` name them.
CA_TYPES = ("processor", "platform")

# Certificates start an hour in the past so that a verifier whose clock is
# slightly behind still accepts a certificate issued just now.
CLOCK_SKEW = timedelta(hours=1)
ROOT_CA_LIFETIME = timedelta(days=25 * 365)
PCK_CA_LIFETIME = timedelta(days=15 * 365)
TCB_SIGNING_LIFETIME = timedelta(days=7 * 365)
PCK_CERTIFICATE_LIFETIME = timedelta(days=7 * 365)


def serial_number_problem(serial: int) -> str | None:
    """Why ``serial`` cannot be an X.509 serial number, or ``None`` if it can."""
    if serial <= 0:
        return f"serial number {serial:X} is not positive, as X.509 serial numbers are"
    if serial.bit_length() > MAX_SERIAL_NUMBER_BITS:
        return (
            f"serial number {serial:X} has {serial.bit_length()} bits; X.509 serial numbers "
            f"have at most {MAX_SERIAL_NUMBER_BITS} (20 octets, RFC 5280 section 4.1.2.2)"
        )
    return None


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


def crl_base_url(url: str) -> str:
    """``url`` checked as the base of the CRL distribution points, without trailing ``/``.

    Every certificate the manufacturer issues carries a CDP built from it: the
    shared check of service base URLs (``_net.http_base_url``: http(s), a host, a
    valid port, no query, fragment or credentials), and ASCII only, as a CDP is an
    IA5String. Raises :class:`UsageError`.
    """
    base = http_base_url(url, what="PCCS URL")
    if not base.isascii():
        raise InvalidArgumentError(
            f"PCCS URL {url!r} is not ASCII, as CRL distribution points must be: write an "
            "international host name in its xn-- form"
        )
    return base


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


def _issue(
    issuer: CertificateAuthority,
    public_key: ec.EllipticCurvePublicKey,
    profile: tuple[str, timedelta, int | None],
    *,
    now: datetime,
    crl_url: str,
    extension: x509.ExtensionType | None = None,
) -> x509.Certificate:
    """A certificate under ``issuer`` with the common profile, signed by it.

    ``profile`` is the subject's common name, the lifetime and the CA path
    length (``None``: an end entity); ``extension`` is added last, not critical.
    """
    common_name, lifetime, ca_path_length = profile
    start, end = _validity(now, lifetime, issuer.certificate.not_valid_after_utc)
    builder = _builder(
        subject=simulated_name(common_name),
        issuer=issuer.certificate.subject,
        public_key=public_key,
        issuer_public_key=issuer.private_key.public_key(),
        not_before=start,
        not_after=end,
        crl_url=crl_url,
        ca_path_length=ca_path_length,
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=False)
    return _sign(builder, issuer.private_key)


def issue_pck_ca(
    public_key: ec.EllipticCurvePublicKey,
    *,
    common_name: str,
    root: CertificateAuthority,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """A PCK Processor or Platform CA: issued by the root, CA path length 0."""
    profile = (common_name, PCK_CA_LIFETIME, 0)
    return _issue(root, public_key, profile, now=now, crl_url=crl_url)


def issue_tcb_signing(
    public_key: ec.EllipticCurvePublicKey,
    *,
    root: CertificateAuthority,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """The TCB Signing certificate: an end entity issued directly by the root."""
    profile = (TCB_SIGNING_CN, TCB_SIGNING_LIFETIME, None)
    return _issue(root, public_key, profile, now=now, crl_url=crl_url)


def issue_pck_certificate(
    public_key: ec.EllipticCurvePublicKey,
    *,
    issuer: CertificateAuthority,
    extension: SgxExtension,
    now: datetime,
    crl_url: str,
) -> x509.Certificate:
    """A PCK leaf with the SGX extension (``sgx._pck_extension``), issued by a PCK CA."""
    profile = (PCK_CERTIFICATE_CN, PCK_CERTIFICATE_LIFETIME, None)
    return _issue(
        issuer,
        public_key,
        profile,
        now=now,
        crl_url=crl_url,
        extension=extension.to_x509_extension(),
    )


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
