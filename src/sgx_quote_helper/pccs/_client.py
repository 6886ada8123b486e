"""Client for any PCCS v4 service (ours, Intel's PCCS, a cloud provider's) or Intel PCS.

dcap-quote.md section 7 gives the endpoints, query parameters, header names and
body encodings; section 9 the rule for keeping the signed JSON text.

The protocol part is sans-I/O: each operation is a *plan*, a generator that
yields the HTTP requests it needs and receives the responses, then returns a
typed value. :class:`PccsClient` (``httpx.Client``) and
:class:`AsyncPccsClient` (``httpx.AsyncClient``) only move bytes, so both share
every rule about URLs, headers and bodies.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import ssl
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Literal, Self, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper._net import (
    BOUNDED_LIMITS,
    BodyRefused,
    aget_bounded,
    get_bounded,
    http_base_url,
)
from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.pccs._collateral import Collateral
from sgx_quote_helper.pccs._errors import (
    PccsBusy,
    PccsError,
    PccsHttpError,
    PccsNotAService,
    PccsNotFound,
    PccsPlatformNotFound,
    PccsResponseError,
    PccsUnreachable,
)
from sgx_quote_helper.pccs._signed import SignedCollateral, signed_text
from sgx_quote_helper.pccs._types import PckCertificate, PckCertificateQuery
from sgx_quote_helper.sgx import Quote, SgxExtension

#: Seconds for a whole request (connect, send, answer); a PCCS that forwards to Intel
#: may be slow.
DEFAULT_TIMEOUT = 10.0
#: The largest response body read from a PCCS. TCB Info, QE Identity and the
#: certificates are a few KiB; a PCK CRL grows with its revocations (about 40
#: bytes each), so 8 MiB leaves room for some 200,000 revoked PCK certificates.
MAX_RESPONSE_SIZE = 8 * 1024 * 1024
#: The path prefix of every SGX endpoint of API v4.
API_PREFIX = "/sgx/certification/v4"
INTEL_PCS_URL = "https://api.trustedservices.intel.com"
#: Intel SGX Root CA public key, uncompressed SEC1 (``INTEL_ROOT_PUB_KEY`` in QvE).
INTEL_ROOT_PUBLIC_KEY = bytes.fromhex(
    "040ba9c4c0c0c86193a3fe23d6b02cda10a8bbd4e88e48b4458561a36e705525f5"
    "67918e2edc88e40d860bd0cc4ee26aacc988e505a953558c453f6b0904ae7394"
)
_INTEL_PCS_HOST = "api.trustedservices.intel.com"

CaType = Literal["processor", "platform"]
UpdateType = Literal["standard", "early"]

_T = TypeVar("_T")
_TransportT = TypeVar("_TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
_HttpT = TypeVar("_HttpT", httpx.Client, httpx.AsyncClient)


# -- values ------------------------------------------------------------------


@dataclass(frozen=True)
class PckCrl:
    """A PCK CA CRL (``/pckcrl``) as DER, with its ``SGX-PCK-CRL-Issuer-Chain``."""

    crl: bytes
    issuer_chain_pem: str


# -- URL rules ---------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """The service base URL, as dcap-qvl forms it.

    Strips a trailing ``/`` and a trailing ``/sgx/certification/v4`` (or
    ``/tdx/...``), so ``https://pccs:8081``, ``https://pccs:8081/`` and
    ``https://pccs:8081/sgx/certification/v4/`` all name the same service.
    Anything else than ``http(s)://HOST[:PORT][/PATH]`` (no host, a port outside
    1..65535, a query, a fragment, ``user:password@``) raises
    :class:`~sgx_quote_helper.errors.UsageError` saying what is wrong.
    """
    base = http_base_url(url, what="PCCS URL")
    for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):
        if base.endswith(suffix):
            base = base[: -len(suffix)].rstrip("/")
    return base


def _is_intel_pcs(base_url: str) -> bool:
    return urlsplit(base_url).hostname == _INTEL_PCS_HOST


def _hex_param(value: bytes) -> str:
    """PCCS upper-cases every hex parameter (``routes/index.js``); send them so."""
    return value.hex().upper()


def _normalize_fmspc(fmspc: bytes | str) -> str:
    if isinstance(fmspc, bytes):
        raw = fmspc
    else:
        try:
            raw = bytes.fromhex(fmspc)
        except ValueError as exc:
            raise UsageError(f"FMSPC must be 12 hex characters, got {fmspc!r}") from exc
    if len(raw) != 6:
        raise UsageError(f"FMSPC must be 6 bytes (12 hex characters), got {len(raw)} bytes")
    return _hex_param(raw)


def _normalize_ca(ca: str) -> CaType:
    value = ca.lower()
    if value == "processor":
        return "processor"
    if value == "platform":
        return "platform"
    raise UsageError(f"PCK CA type must be 'processor' or 'platform', got {ca!r}")


# -- sans-I/O requests and responses ---------------------------------------


@dataclass(frozen=True)
class _Request:
    """One GET: ``path`` under the API prefix, or an absolute ``url``."""

    what: str
    path: str = ""
    params: tuple[tuple[str, str], ...] = ()
    url: str | None = None
    #: A 404 here means the PCCS knows no PCK certificate for the platform.
    platform_lookup: bool = False


_Plan = Generator[_Request, httpx.Response, _T]


def _response_url(response: httpx.Response) -> str | None:
    try:
        return str(response.request.url)
    except RuntimeError:
        return None


def _looks_like_pcs(response: httpx.Response) -> bool:
    """Whether a 404 came from a PCCS/PCS, which tags every answer, or some other server."""
    headers = response.headers
    return any(name in headers for name in ("Request-ID", "Error-Code", "Error-Message"))


#: How much of a Retry-After header an error repeats (an HTTP date is 29 characters).
_MAX_RETRY_AFTER_CHARS = 64


def _check_status(request: _Request, response: httpx.Response) -> None:
    if response.status_code == 200:
        return
    url = _response_url(response)
    if response.status_code == 404:
        if not _looks_like_pcs(response):
            raise PccsNotAService(
                f"the server answered HTTP 404 for {request.what} without the Request-ID or "
                "Error-Code header every PCCS and Intel PCS answer carries",
                url=url,
            )
        if request.platform_lookup:
            raise PccsPlatformNotFound(
                f"PCCS has no {request.what} for this platform (HTTP 404)", url=url
            )
        raise PccsNotFound(f"PCCS has no {request.what} (HTTP 404)", url=url)
    error_code = response.headers.get("Error-Code")
    error_message = response.headers.get("Error-Message")
    retry_after = response.headers.get("Retry-After")
    detail = ""
    if error_code or error_message:
        detail = f": Error-Code {error_code!r}, Error-Message {error_message!r}"
    if retry_after is not None:
        retry_after = retry_after[:_MAX_RETRY_AFTER_CHARS]
        detail += f" (Retry-After: {retry_after!r})"
    busy = response.status_code in (429, 503)
    raise (PccsBusy if busy else PccsHttpError)(
        f"PCCS answered HTTP {response.status_code} {response.reason_phrase} "
        f"for {request.what}{detail}",
        url=url,
        status_code=response.status_code,
        error_code=error_code,
        error_message=error_message,
        retry_after=retry_after,
    )


def _malformed(request: _Request, response: httpx.Response, detail: str) -> PccsResponseError:
    return PccsResponseError(
        f"malformed {request.what} response: {detail}", url=_response_url(response)
    )


def _issuer_chain(request: _Request, response: httpx.Response, *names: str) -> str:
    """Decode a percent-encoded concatenated-PEM issuer chain header."""
    for name in names:
        raw = response.headers.get(name)
        if raw is not None:
            break
    else:
        raise _malformed(request, response, f"missing header {' or '.join(names)}")
    chain = unquote(raw)
    try:
        certs = x509.load_pem_x509_certificates(chain.encode("ascii"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise _malformed(request, response, f"{name} is not a PEM chain: {exc}") from exc
    if not certs:
        raise _malformed(request, response, f"{name} holds no certificate")
    return chain


def _text(request: _Request, response: httpx.Response) -> str:
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(request, response, "body is not UTF-8") from exc


def _decode_crl_body(request: _Request, response: httpx.Response) -> bytes:
    """A CRL body as DER, whichever form the service chose.

    PCS sends DER (``encoding=der``) or PEM; PCCS sends DER for ``encoding=der``
    and otherwise a hex string, also for ``/rootcacrl``.
    """
    body = response.content
    if body[:1] == b"\x30":
        der = body
    else:
        text = body.decode("ascii", errors="replace").strip()
        if text.startswith("-----BEGIN X509 CRL-----"):
            try:
                der = x509.load_pem_x509_crl(text.encode("ascii")).public_bytes(
                    serialization.Encoding.DER
                )
            except ValueError as exc:
                raise _malformed(request, response, f"bad PEM CRL: {exc}") from exc
        else:
            try:
                der = bytes.fromhex(text)
            except ValueError as exc:
                raise _malformed(request, response, "body is neither DER, PEM nor hex") from exc
    try:
        x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise _malformed(request, response, f"not a DER CRL: {exc}") from exc
    return der


def _signed_body(request: _Request, response: httpx.Response, key: str) -> tuple[str, bytes]:
    """``{"<key>": {...}, "signature": "<hex>"}`` -> (signed compact text, signature)."""
    try:
        body = json.loads(_text(request, response))
    except json.JSONDecodeError as exc:
        raise _malformed(request, response, f"body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise _malformed(request, response, "body is JSON nested too deeply") from exc
    except ValueError as exc:  # a number of more digits than int() converts
        raise _malformed(request, response, f"body is not usable JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise _malformed(request, response, f"body has no {key!r} object")
    signature_hex = body.get("signature")
    if not isinstance(signature_hex, str):
        raise _malformed(request, response, "body has no 'signature' string")
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError as exc:
        raise _malformed(request, response, "signature is not hex") from exc
    if len(signature) != 64:
        raise _malformed(request, response, f"signature is {len(signature)} bytes, not 64")
    # Section 9: the signature covers the compact serialization in document order.
    try:
        return signed_text(body[key]), signature
    except (RecursionError, ValueError) as exc:
        raise _malformed(request, response, f"{key!r} cannot be serialised: {exc}") from exc


def _hex_header(request: _Request, response: httpx.Response, name: str, size: int) -> bytes:
    value = response.headers.get(name)
    if value is None:
        raise _malformed(request, response, f"missing header {name}")
    try:
        raw = bytes.fromhex(unquote(value))
    except ValueError as exc:
        raise _malformed(request, response, f"{name} is not hex: {value!r}") from exc
    if len(raw) != size:
        raise _malformed(request, response, f"{name} is {len(raw)} bytes, not {size}")
    return raw


def _pck_certificate_plan(query: PckCertificateQuery) -> _Plan[PckCertificate]:
    params = [
        ("qeid", _hex_param(query.qe_id)),
        ("cpusvn", _hex_param(query.cpu_svn)),
        # u16 little-endian as 4 hex characters, like the PCE ID (section 7).
        ("pcesvn", _hex_param(query.pce_svn.to_bytes(2, "little"))),
        ("pceid", _hex_param(query.pce_id)),
    ]
    if query.encrypted_ppid is not None:
        params.insert(0, ("encrypted_ppid", _hex_param(query.encrypted_ppid)))
    request = _Request("PCK certificate", "/pckcert", tuple(params), platform_lookup=True)
    response = yield request
    _check_status(request, response)
    leaf_pem = _text(request, response)
    try:
        x509.load_pem_x509_certificate(leaf_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion) as exc:
        raise _malformed(request, response, f"body is not a PEM certificate: {exc}") from exc
    chain = _issuer_chain(request, response, "SGX-PCK-Certificate-Issuer-Chain")
    tcbm = _hex_header(request, response, "SGX-TCBm", 18)
    fmspc = _hex_header(request, response, "SGX-FMSPC", 6)
    ca_type = unquote(response.headers.get("SGX-PCK-Certificate-CA-Type", "")).lower()
    if ca_type not in ("processor", "platform"):
        raise _malformed(request, response, f"SGX-PCK-Certificate-CA-Type is {ca_type!r}")
    return PckCertificate(
        leaf_pem=leaf_pem, issuer_chain_pem=chain, tcbm=tcbm, fmspc=fmspc, ca_type=ca_type
    )


def _pck_crl_plan(ca: str, der: bool) -> _Plan[PckCrl]:
    params: list[tuple[str, str]] = [("ca", _normalize_ca(ca))]
    if der:
        params.append(("encoding", "der"))
    request = _Request(f"PCK CRL (ca={params[0][1]})", "/pckcrl", tuple(params))
    response = yield request
    _check_status(request, response)
    chain = _issuer_chain(request, response, "SGX-PCK-CRL-Issuer-Chain")
    return PckCrl(crl=_decode_crl_body(request, response), issuer_chain_pem=chain)


def _evaluation_params(
    update: UpdateType | None, tcb_evaluation_data_number: int | None
) -> list[tuple[str, str]]:
    if tcb_evaluation_data_number is not None:
        # PCS refuses update and tcbEvaluationDataNumber together.
        return [("tcbEvaluationDataNumber", str(tcb_evaluation_data_number))]
    if update is None:
        return []
    if update not in ("standard", "early"):
        raise UsageError(f"update must be 'standard' or 'early', got {update!r}")
    return [("update", update)]


def _tcb_info_plan(
    fmspc: bytes | str, update: UpdateType | None, tcb_evaluation_data_number: int | None
) -> _Plan[SignedCollateral]:
    fmspc_hex = _normalize_fmspc(fmspc)
    params = [("fmspc", fmspc_hex), *_evaluation_params(update, tcb_evaluation_data_number)]
    request = _Request(f"TCB Info for FMSPC {fmspc_hex}", "/tcb", tuple(params))
    response = yield request
    _check_status(request, response)
    # API v4 names the header TCB-Info-Issuer-Chain, v3 SGX-TCB-Info-Issuer-Chain.
    chain = _issuer_chain(request, response, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
    text, signature = _signed_body(request, response, "tcbInfo")
    return SignedCollateral("tcbInfo", text, signature, issuer_chain_pem=chain)


def _qe_identity_plan(
    update: UpdateType | None, tcb_evaluation_data_number: int | None
) -> _Plan[SignedCollateral]:
    params = _evaluation_params(update, tcb_evaluation_data_number)
    request = _Request("QE Identity", "/qe/identity", tuple(params))
    response = yield request
    _check_status(request, response)
    chain = _issuer_chain(request, response, "SGX-Enclave-Identity-Issuer-Chain")
    text, signature = _signed_body(request, response, "enclaveIdentity")
    return SignedCollateral("enclaveIdentity", text, signature, issuer_chain_pem=chain)


def _root_ca_crl_plan() -> _Plan[bytes]:
    request = _Request("root CA CRL", "/rootcacrl")
    response = yield request
    _check_status(request, response)
    return _decode_crl_body(request, response)


def _is_the_root(cert: x509.Certificate, root_public_key: bytes) -> bool:
    """Whether ``cert`` is a root signed by the key verification trusts.

    Its key must be ``root_public_key`` and its self-signature valid: only the
    trusted root's owner can then have written its CRL distribution point.
    """
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    if not hmac.compare_digest(raw, root_public_key):
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _crl_distribution_point(chain_pem: str, root_public_key: bytes) -> str:
    """The CRL distribution point of the last (root) certificate of a chain.

    Used only if that root is the trust anchor (:func:`_is_the_root`): the chain
    comes from the PCCS and is not verified yet, so otherwise the PCCS would
    choose a URL this client fetches (a cloud metadata address, say).
    """
    root = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))[-1]
    if not _is_the_root(root, root_public_key):
        raise PccsNotFound(
            "root CA CRL: the PCCS has none, and the root certificate of the QE Identity "
            "issuer chain is not the trust anchor, so its CRL distribution point is not used"
        )
    try:
        cdp = root.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except (x509.ExtensionNotFound, ValueError):
        cdp = None
    for point in cdp.value if cdp is not None else ():
        for name in point.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    raise PccsNotFound("root CA CRL: the root certificate names no CRL distribution point")


def _root_ca_crl_from_cdp_plan(chain_pem: str, root_public_key: bytes) -> _Plan[bytes]:
    url = _crl_distribution_point(chain_pem, root_public_key)
    request = _Request("root CA CRL (from the root's CRL distribution point)", url=url)
    response = yield request
    _check_status(request, response)
    return _decode_crl_body(request, response)


def quote_fmspc_and_ca(quote: bytes) -> tuple[str, CaType]:
    """FMSPC and PCK CA type of a quote that carries its PCK certificate (type 4 or 5).

    The FMSPC is the PCK certificate's SGX extension (dcap-quote.md section 4);
    the CA type follows dcap-qvl: ``platform`` if the leaf's issuer names a
    Platform CA, else ``processor`` (section 5).
    """
    try:
        leaf = Quote.from_bytes(quote).pck_chain()[0]
    except (ParseError, ValueError) as exc:
        raise ParseError(
            f"cannot read FMSPC and CA type from the quote's PCK certificate: {exc}; "
            "pass fmspc= and ca= explicitly"
        ) from exc
    return pck_fmspc_and_ca(leaf)


def pck_fmspc_and_ca(leaf: x509.Certificate) -> tuple[str, CaType]:
    """FMSPC and PCK CA type of a PCK leaf certificate, as :func:`quote_fmspc_and_ca`."""
    try:
        fmspc = SgxExtension.from_certificate(leaf).fmspc
        issuer = leaf.issuer.rfc4514_string()
    except (ParseError, ValueError) as exc:
        raise ParseError(
            f"cannot read FMSPC and CA type from the quote's PCK certificate: {exc}; "
            "pass fmspc= and ca= explicitly"
        ) from exc
    return _normalize_fmspc(fmspc), "platform" if "Platform" in issuer else "processor"


def _collateral_plan(
    base_url: str,
    fmspc: bytes | str,
    ca: str,
    update: UpdateType | None,
    tcb_evaluation_data_number: int | None,
    root_public_key: bytes,
) -> _Plan[Collateral]:
    # The same four requests, in the same order, as dcap-qvl's get_collateral.
    pck_crl = yield from _pck_crl_plan(ca, der=True)
    tcb_info = yield from _tcb_info_plan(fmspc, update, tcb_evaluation_data_number)
    qe_identity = yield from _qe_identity_plan(update, tcb_evaluation_data_number)
    if _is_intel_pcs(base_url):
        # Intel PCS has no /rootcacrl; the root names where its CRL lives.
        root_ca_crl = yield from _root_ca_crl_from_cdp_plan(
            qe_identity.issuer_chain_pem, root_public_key
        )
    else:
        try:
            root_ca_crl = yield from _root_ca_crl_plan()
        except PccsNotFound:
            root_ca_crl = yield from _root_ca_crl_from_cdp_plan(
                qe_identity.issuer_chain_pem, root_public_key
            )
    return Collateral(
        pck_crl_issuer_chain=pck_crl.issuer_chain_pem,
        root_ca_crl=root_ca_crl,
        pck_crl=pck_crl.crl,
        tcb_info_issuer_chain=tcb_info.issuer_chain_pem,
        tcb_info=tcb_info.text,
        tcb_info_signature=tcb_info.signature,
        qe_identity_issuer_chain=qe_identity.issuer_chain_pem,
        qe_identity=qe_identity.text,
        qe_identity_signature=qe_identity.signature,
    )


# -- transports ------------------------------------------------------------------


def _tls_verify(verify_tls: bool, ca_file: str | os.PathLike[str] | None) -> bool | ssl.SSLContext:
    if ca_file is not None:
        if not verify_tls:
            raise UsageError("a CA file makes no sense with TLS verification off")
        try:
            return ssl.create_default_context(cafile=os.fspath(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the PCCS CA file {os.fspath(ca_file)!r}: {exc}") from exc
    return verify_tls


def _transport_error(
    request: _Request,
    exc: httpx.HTTPError | httpx.InvalidURL | BodyRefused,
    timeout: float,
    url: str,
) -> PccsError:
    if isinstance(exc, BodyRefused):
        return PccsResponseError(f"refused the {request.what} response: {exc}", url=url)
    if isinstance(exc, httpx.InvalidURL):  # a URL a certificate names, not a user's
        return PccsResponseError(f"cannot request {request.what}: {exc}", url=url)
    with contextlib.suppress(RuntimeError):
        url = str(exc.request.url)
    if isinstance(exc, httpx.TimeoutException):
        return PccsUnreachable(
            f"no answer within {timeout:g}s for {request.what} ({type(exc).__name__})", url=url
        )
    if isinstance(exc, httpx.TransportError):
        reason = str(exc) or type(exc).__name__
        return PccsUnreachable(f"cannot reach the PCCS for {request.what}: {reason}", url=url)
    return PccsError(f"request for {request.what} failed: {exc}", url=url)


class _ClientBase(Generic[_TransportT, _HttpT]):
    """What the sync and async clients share; each opens its own httpx client."""

    _client: _HttpT

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify_tls: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
        transport: _TransportT | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self._verify = _tls_verify(verify_tls, ca_file)
        self._headers: dict[str, str] = {"Accept": "*/*"}
        # Intel PCS wants a subscription key on /pckcert(s). It goes only to the
        # service itself, never to a CRL distribution point named by a (not yet
        # verified) certificate, so it is added per request, not client-wide.
        self._service_headers: dict[str, str] = (
            {"Ocp-Apim-Subscription-Key": api_key} if api_key else {}
        )
        self._client = self._open(transport)

    def _open(self, transport: _TransportT | None) -> _HttpT:
        raise NotImplementedError

    def _url(self, request: _Request) -> str:
        if request.url is not None:
            return request.url
        return f"{self.base_url}{API_PREFIX}{request.path}"

    def _request_headers(self, request: _Request) -> dict[str, str]:
        return {} if request.url is not None else self._service_headers


class PccsClient(_ClientBase[httpx.BaseTransport, httpx.Client]):
    """Synchronous client of a PCCS v4 service (or Intel PCS).

    ``base_url`` follows dcap-qvl's rules (:func:`normalize_base_url`). TLS is
    verified against the system CAs, or ``ca_file``; ``verify_tls=False`` accepts
    any certificate (Intel's PCCS ships a self-signed one) and is insecure.
    Every failure raises a :class:`PccsError` leaf.
    """

    def _open(self, transport: httpx.BaseTransport | None) -> httpx.Client:
        return httpx.Client(
            timeout=self.timeout,
            verify=self._verify,
            transport=transport,
            headers=self._headers,
            limits=BOUNDED_LIMITS,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, plan: _Plan[_T]) -> _T:
        request = next(plan)
        while True:
            try:
                response = get_bounded(
                    self._client,
                    self._url(request),
                    timeout=self.timeout,
                    max_bytes=MAX_RESPONSE_SIZE,
                    params=request.params,
                    headers=self._request_headers(request),
                )
            except (httpx.HTTPError, httpx.InvalidURL, BodyRefused) as exc:
                raise _transport_error(request, exc, self.timeout, self._url(request)) from exc
            try:
                request = plan.send(response)
            except StopIteration as stop:
                result: _T = stop.value
                return result

    def get_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        """``GET /pckcert``: the PCK leaf certified for the platform's raw TCB."""
        return self._run(_pck_certificate_plan(query))

    def get_pck_crl(self, ca: str = "processor", *, der: bool = True) -> PckCrl:
        """``GET /pckcrl?ca=``: the CRL of the PCK Processor or Platform CA, as DER."""
        return self._run(_pck_crl_plan(ca, der))

    def get_tcb_info(
        self,
        fmspc: bytes | str,
        *,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
    ) -> SignedCollateral:
        """``GET /tcb?fmspc=``: the signed TCB Info of a platform family."""
        return self._run(_tcb_info_plan(fmspc, update, tcb_evaluation_data_number))

    def get_qe_identity(
        self,
        *,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
    ) -> SignedCollateral:
        """``GET /qe/identity``: the signed identity and TCB levels of QE3."""
        return self._run(_qe_identity_plan(update, tcb_evaluation_data_number))

    def get_root_ca_crl(self) -> bytes:
        """``GET /rootcacrl`` (PCCS only): the root CA CRL as DER."""
        return self._run(_root_ca_crl_plan())

    def get_collateral(
        self,
        quote: bytes | None = None,
        *,
        fmspc: bytes | str | None = None,
        ca: str | None = None,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
        root_public_key: bytes = INTEL_ROOT_PUBLIC_KEY,
    ) -> Collateral:
        """All collateral for a quote, or for an explicit FMSPC and PCK CA type.

        ``root_public_key`` (uncompressed SEC1) is the trust anchor's: the root
        CA CRL is fetched from the root's CRL distribution point only if the
        root of the QE Identity issuer chain has this key.
        """
        fmspc, ca = _collateral_target(quote, fmspc, ca)
        return self._run(
            _collateral_plan(
                self.base_url, fmspc, ca, update, tcb_evaluation_data_number, root_public_key
            )
        )


class AsyncPccsClient(_ClientBase[httpx.AsyncBaseTransport, httpx.AsyncClient]):
    """The asynchronous twin of :class:`PccsClient` (``httpx.AsyncClient``)."""

    def _open(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout, verify=self._verify, transport=transport, headers=self._headers
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, plan: _Plan[_T]) -> _T:
        request = next(plan)
        while True:
            try:
                response = await aget_bounded(
                    self._client,
                    self._url(request),
                    timeout=self.timeout,
                    max_bytes=MAX_RESPONSE_SIZE,
                    params=request.params,
                    headers=self._request_headers(request),
                )
            except (httpx.HTTPError, httpx.InvalidURL, BodyRefused) as exc:
                raise _transport_error(request, exc, self.timeout, self._url(request)) from exc
            try:
                request = plan.send(response)
            except StopIteration as stop:
                result: _T = stop.value
                return result

    async def get_pck_certificate(self, query: PckCertificateQuery) -> PckCertificate:
        return await self._run(_pck_certificate_plan(query))

    async def get_pck_crl(self, ca: str = "processor", *, der: bool = True) -> PckCrl:
        return await self._run(_pck_crl_plan(ca, der))

    async def get_tcb_info(
        self,
        fmspc: bytes | str,
        *,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
    ) -> SignedCollateral:
        return await self._run(_tcb_info_plan(fmspc, update, tcb_evaluation_data_number))

    async def get_qe_identity(
        self,
        *,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
    ) -> SignedCollateral:
        return await self._run(_qe_identity_plan(update, tcb_evaluation_data_number))

    async def get_root_ca_crl(self) -> bytes:
        return await self._run(_root_ca_crl_plan())

    async def get_collateral(
        self,
        quote: bytes | None = None,
        *,
        fmspc: bytes | str | None = None,
        ca: str | None = None,
        update: UpdateType | None = "standard",
        tcb_evaluation_data_number: int | None = None,
        root_public_key: bytes = INTEL_ROOT_PUBLIC_KEY,
    ) -> Collateral:
        fmspc, ca = _collateral_target(quote, fmspc, ca)
        return await self._run(
            _collateral_plan(
                self.base_url, fmspc, ca, update, tcb_evaluation_data_number, root_public_key
            )
        )


def _collateral_target(
    quote: bytes | None, fmspc: bytes | str | None, ca: str | None
) -> tuple[str, CaType]:
    if quote is not None:
        if fmspc is not None or ca is not None:
            raise UsageError("pass either a quote or fmspc= and ca=, not both")
        return quote_fmspc_and_ca(quote)
    if fmspc is None:
        raise UsageError("get_collateral needs a quote or an FMSPC")
    return _normalize_fmspc(fmspc), _normalize_ca(ca or "processor")


__all__ = [
    "API_PREFIX",
    "DEFAULT_TIMEOUT",
    "INTEL_PCS_URL",
    "INTEL_ROOT_PUBLIC_KEY",
    "MAX_RESPONSE_SIZE",
    "AsyncPccsClient",
    "CaType",
    "PccsClient",
    "PckCrl",
    "SignedCollateral",
    "UpdateType",
    "normalize_base_url",
    "pck_fmspc_and_ca",
    "quote_fmspc_and_ca",
]
