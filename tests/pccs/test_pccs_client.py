"""The PCCS v4 client against a tiny in-test PCCS and against scripted failures.

The in-test service serves the real Intel collateral of ``tests/assets`` (see
its README for provenance) the way a PCCS does (dcap-quote.md section 7):
percent-encoded issuer chains, DER or hex CRLs, signed JSON bodies, here
pretty-printed to show that the client keeps the *compact* signed text.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote as percent_encode

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.pccs import (
    AsyncPccsClient,
    Collateral,
    PccsClient,
    PccsError,
    PccsHttpError,
    PccsNotAService,
    PccsNotFound,
    PccsPlatformNotFound,
    PccsResponseError,
    PccsUnreachable,
    PckCertificateQuery,
    normalize_base_url,
    quote_fmspc_and_ca,
)
from sgx_quote_helper.sgx import Quote, Quote3Error

ASSETS = Path(__file__).parent.parent / "assets"
QUOTE = (ASSETS / "intel-sgx-quote-v3.bin").read_bytes()
COLLATERAL = Collateral.from_json((ASSETS / "intel-sgx-quote-v3.collateral.json").read_text())
API = "/sgx/certification/v4"
INTEL_ROOT_CDP = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"


def _chain_header(pem: str) -> str:
    return percent_encode(pem, safe="")


def _leaf_and_chain() -> tuple[str, str]:
    certs = Quote.from_bytes(QUOTE).pck_chain()
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]
    return pems[0], "".join(pems[1:])


class VectorPccs:
    """A PCCS v4 serving the real Intel collateral, recording every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.app = Starlette(
            routes=[
                Route(f"{API}/pckcert", self.pckcert),
                Route(f"{API}/pckcrl", self.pckcrl),
                Route(f"{API}/tcb", self.tcb),
                Route(f"{API}/qe/identity", self.qe_identity),
                Route(f"{API}/rootcacrl", self.rootcacrl),
            ]
        )

    def _record(self, request: Request) -> None:
        self.requests.append((request.url.path, dict(request.query_params)))

    async def pckcert(self, request: Request) -> Response:
        self._record(request)
        leaf, chain = _leaf_and_chain()
        return Response(
            leaf,
            media_type="application/x-pem-file",
            headers={
                "SGX-PCK-Certificate-Issuer-Chain": _chain_header(chain),
                "SGX-TCBm": "0B0B0202FF01000000000000000000000D00",
                "SGX-FMSPC": "00A067110000",
                "SGX-PCK-Certificate-CA-Type": "processor",
            },
        )

    async def pckcrl(self, request: Request) -> Response:
        self._record(request)
        body: bytes | str = COLLATERAL.pck_crl
        if request.query_params.get("encoding") != "der":
            body = COLLATERAL.pck_crl.hex()
        return Response(
            body,
            media_type="application/pkix-crl",
            headers={"SGX-PCK-CRL-Issuer-Chain": _chain_header(COLLATERAL.pck_crl_issuer_chain)},
        )

    async def tcb(self, request: Request) -> Response:
        self._record(request)
        body = {
            "tcbInfo": json.loads(COLLATERAL.tcb_info),
            "signature": COLLATERAL.tcb_info_signature.hex(),
        }
        return Response(
            json.dumps(body, indent=2),
            media_type="application/json",
            headers={"TCB-Info-Issuer-Chain": _chain_header(COLLATERAL.tcb_info_issuer_chain)},
        )

    async def qe_identity(self, request: Request) -> Response:
        self._record(request)
        body = {
            "enclaveIdentity": json.loads(COLLATERAL.qe_identity),
            "signature": COLLATERAL.qe_identity_signature.hex(),
        }
        return Response(
            json.dumps(body, indent=2),
            media_type="application/json",
            headers={
                "SGX-Enclave-Identity-Issuer-Chain": _chain_header(
                    COLLATERAL.qe_identity_issuer_chain
                )
            },
        )

    async def rootcacrl(self, request: Request) -> Response:
        self._record(request)
        return Response(COLLATERAL.root_ca_crl.hex(), media_type="application/pkix-crl")


class ServerThread:
    """uvicorn on 127.0.0.1:0 in a thread; stopped by ``stop``."""

    def __init__(self, app: Any, **options: Any) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="error", lifespan="off", **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> int:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def pccs() -> Iterator[tuple[str, VectorPccs]]:
    service = VectorPccs()
    server = ServerThread(service.app)
    port = server.start()
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        server.stop()


# -- happy paths against the served real collateral ---------------------------


def test_collateral_from_a_quote_is_byte_exact(pccs: tuple[str, VectorPccs]) -> None:
    url, service = pccs
    service.requests.clear()
    with PccsClient(url) as client:
        collateral = client.get_collateral(QUOTE)
    assert collateral == COLLATERAL
    # dcap-qvl's order and parameters (section 11.2).
    assert service.requests == [
        (f"{API}/pckcrl", {"ca": "processor", "encoding": "der"}),
        (f"{API}/tcb", {"fmspc": "00A067110000", "update": "standard"}),
        (f"{API}/qe/identity", {"update": "standard"}),
        (f"{API}/rootcacrl", {}),
    ]


def test_async_client_gives_the_same_collateral(pccs: tuple[str, VectorPccs]) -> None:
    url, _ = pccs

    async def fetch() -> Collateral:
        async with AsyncPccsClient(url + "/sgx/certification/v4/") as client:
            return await client.get_collateral(fmspc="00a067110000", ca="processor")

    assert asyncio.run(fetch()) == COLLATERAL


def test_tcb_info_keeps_the_signed_compact_text(pccs: tuple[str, VectorPccs]) -> None:
    url, service = pccs
    service.requests.clear()
    with PccsClient(url) as client:
        tcb = client.get_tcb_info(bytes.fromhex("00a067110000"), tcb_evaluation_data_number=17)
        qe = client.get_qe_identity(update="early")
    assert tcb.text == COLLATERAL.tcb_info
    assert tcb.signature == COLLATERAL.tcb_info_signature
    assert tcb.issuer_chain_pem == COLLATERAL.tcb_info_issuer_chain
    assert tcb.tcb_evaluation_data_number == 17
    assert tcb.next_update == datetime.datetime(2025, 7, 19, 10, 56, 11, tzinfo=datetime.UTC)
    assert qe.text == COLLATERAL.qe_identity
    assert service.requests == [
        (f"{API}/tcb", {"fmspc": "00A067110000", "tcbEvaluationDataNumber": "17"}),
        (f"{API}/qe/identity", {"update": "early"}),
    ]


def test_pck_crl_in_hex_and_der(pccs: tuple[str, VectorPccs]) -> None:
    url, _ = pccs
    with PccsClient(url) as client:
        assert client.get_pck_crl("processor", der=False).crl == COLLATERAL.pck_crl
        crl = client.get_pck_crl("Processor")
        assert client.get_root_ca_crl() == COLLATERAL.root_ca_crl
    assert crl.crl == COLLATERAL.pck_crl
    assert crl.issuer_chain_pem == COLLATERAL.pck_crl_issuer_chain


def test_pck_certificate_query_encoding(pccs: tuple[str, VectorPccs]) -> None:
    url, service = pccs
    service.requests.clear()
    query = PckCertificateQuery(
        qe_id=bytes.fromhex("3987622ee6968a54977c8626ef471235"),
        cpu_svn=bytes.fromhex("0b0b1a18ffff04000000000000000000"),
        pce_svn=0x010F,
        pce_id=b"\x00\x00",
        encrypted_ppid=b"\xab" * 384,
    )
    with PccsClient(url) as client:
        cert = client.get_pck_certificate(query)
    (path, params), *_ = service.requests
    assert path == f"{API}/pckcert"
    assert params == {
        "encrypted_ppid": "AB" * 384,
        "qeid": "3987622EE6968A54977C8626EF471235",
        "cpusvn": "0B0B1A18FFFF04000000000000000000",
        "pcesvn": "0F01",  # u16 little-endian
        "pceid": "0000",
    }
    leaf, chain = _leaf_and_chain()
    assert cert.leaf_pem == leaf
    assert cert.issuer_chain_pem == chain
    assert cert.tcbm == bytes.fromhex("0b0b0202ff01000000000000000000000d00")
    assert cert.fmspc == bytes.fromhex("00a067110000")
    assert cert.ca_type == "processor"


def test_quote_fmspc_and_ca() -> None:
    assert quote_fmspc_and_ca(QUOTE) == ("00A067110000", "processor")
    with pytest.raises(ParseError):
        quote_fmspc_and_ca(b"\x03\x00" + bytes(100))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://pccs.example:8081", "https://pccs.example:8081"),
        ("https://pccs.example:8081/", "https://pccs.example:8081"),
        ("https://pccs.example:8081/sgx/certification/v4", "https://pccs.example:8081"),
        ("https://pccs.example:8081/sgx/certification/v4/", "https://pccs.example:8081"),
        ("http://127.0.0.1:8081/tdx/certification/v4", "http://127.0.0.1:8081"),
        ("https://host/prefix/", "https://host/prefix"),
    ],
)
def test_base_url_rules(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "pccs.example:8081",
        "ftp://host",
        "https://",
        # Were a ValueError or httpx.InvalidURL (a traceback in every command)...
        "http://[::1",
        "http://127.0.0.1:\udcff",
        # ...or requests to a mangled URL: "...:8081?ca=processor&encoding=der",
        # "...?ca=...#frag/sgx/certification/v4/pckcrl", port 99999 "refused".
        "http://127.0.0.1:8081?x=1",
        "http://127.0.0.1:8081#frag",
        "http://127.0.0.1:99999",
        "https://user:secret@pccs.example",
    ],
)
def test_base_url_must_be_http(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a usable base URL"):
        normalize_base_url(bad)


@pytest.mark.parametrize("bad", ["http://[::1", "http://127.0.0.1:8081?x=1"])
def test_clients_refuse_a_malformed_url_before_any_request(bad: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404)

    with pytest.raises(UsageError, match="PCCS URL"):
        PccsClient(bad, transport=httpx.MockTransport(handler))
    with pytest.raises(UsageError, match="PCCS URL"):
        AsyncPccsClient(bad, transport=httpx.MockTransport(handler))
    assert sent == []


# -- failures, scripted with httpx.MockTransport -------------------------------


def _client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> PccsClient:
    return PccsClient("https://pccs.test", transport=httpx.MockTransport(handler), **kw)


def test_unreachable_pccs_means_sgx_ql_network_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with _client(refuse) as client, pytest.raises(PccsUnreachable) as info:
        client.get_tcb_info("00A067110000")
    assert info.value.quote3_error is Quote3Error.NETWORK_ERROR
    text = info.value.diagnostics()
    assert "SGX_QL_NETWORK_ERROR 0xE019" in text
    assert "Connection refused" in text
    for advice in ("PCCS is down", "proxy", "TLS", "URL"):
        assert advice in text


def test_timeout_is_unreachable() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with _client(slow, timeout=0.5) as client, pytest.raises(PccsUnreachable) as info:
        client.get_qe_identity()
    assert "no answer within 0.5s for QE Identity" in str(info.value)


def test_closed_port_is_unreachable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        PccsClient(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(PccsUnreachable) as info,
    ):
        client.get_root_ca_crl()
    assert f"127.0.0.1:{port}" in str(info.value.url)


#: The header Intel's PCS and this project's PCCS put on every answer.
TAGGED = {"Request-ID": "0123456789abcdef"}


def test_404_on_pckcert_is_an_unknown_platform() -> None:
    with (
        _client(lambda r: httpx.Response(404, headers=TAGGED)) as client,
        pytest.raises(PccsPlatformNotFound) as info,
    ):
        client.get_pck_certificate(PckCertificateQuery(bytes(16), bytes(16), 0, bytes(2)))
    assert info.value.quote3_error is Quote3Error.NO_PLATFORM_CERT_DATA
    assert "register" in info.value.diagnostics()


def test_404_on_tcb_is_an_unpopulated_pccs() -> None:
    with (
        _client(lambda r: httpx.Response(404, headers=TAGGED)) as client,
        pytest.raises(PccsNotFound) as info,
    ):
        client.get_tcb_info("00A067110000")
    assert not isinstance(info.value, PccsPlatformNotFound | PccsNotAService)
    assert "TCB Info for FMSPC 00A067110000" in str(info.value)
    assert "not populated" in info.value.diagnostics()
    assert "SGX_QL_NO_QUOTE_COLLATERAL_DATA 0xE01B" in info.value.diagnostics()


@pytest.mark.parametrize("lookup", ["pckcert", "tcb"])
def test_404_from_a_server_that_is_no_pccs_names_the_url(lookup: str) -> None:
    # Regression (issue 11): a URL of another service (the daemon's admin port)
    # was reported as "the PCCS is not populated".
    with _client(lambda r: httpx.Response(404, text="Not Found")) as client:
        fetch = (
            (
                lambda: client.get_pck_certificate(
                    PckCertificateQuery(bytes(16), bytes(16), 0, b"\0\0")
                )
            )
            if lookup == "pckcert"
            else (lambda: client.get_tcb_info("00A067110000"))
        )
        with pytest.raises(PccsNotAService) as info:
            fetch()
    text = info.value.diagnostics()
    assert "probably not a PCCS v4" in text
    assert "admin listener" in text


def test_other_statuses_quote_error_code_and_message() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, headers={"Error-Code": "NoCacheData", "Error-Message": "Intel PCS unreachable"}
        )

    with _client(fail) as client, pytest.raises(PccsHttpError) as info:
        client.get_pck_crl()
    assert info.value.status_code == 503
    assert info.value.error_code == "NoCacheData"
    assert "Error-Code 'NoCacheData'" in str(info.value)
    assert "Error-Message 'Intel PCS unreachable'" in str(info.value)


def _ok(
    body: bytes | str, headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    content = body.encode() if isinstance(body, str) else body
    return lambda request: httpx.Response(200, content=content, headers=headers or {})


TCB_HEADERS = {"TCB-Info-Issuer-Chain": _chain_header(COLLATERAL.tcb_info_issuer_chain)}
GOOD_TCB = json.dumps({"tcbInfo": json.loads(COLLATERAL.tcb_info), "signature": "00" * 64})


@pytest.mark.parametrize(
    ("handler", "detail"),
    [
        (_ok("not json", TCB_HEADERS), "not JSON"),
        (_ok('{"signature": "00"}', TCB_HEADERS), "no 'tcbInfo' object"),
        (_ok('{"tcbInfo": {}, "signature": "zz"}', TCB_HEADERS), "signature is not hex"),
        (_ok('{"tcbInfo": {}, "signature": "0000"}', TCB_HEADERS), "2 bytes, not 64"),
        (_ok(GOOD_TCB), "missing header TCB-Info-Issuer-Chain or SGX-TCB-Info-Issuer-Chain"),
        (_ok(GOOD_TCB, {"TCB-Info-Issuer-Chain": "garbage"}), "is not a PEM chain"),
        (_ok(b"\xff\xfe", TCB_HEADERS), "not UTF-8"),
        # Regressions: these escaped as RecursionError and ValueError.
        (_ok('{"tcbInfo": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}", TCB_HEADERS), "deeply"),
        (_ok('{"tcbInfo": {"a": ' + "9" * 5000 + "}}", TCB_HEADERS), "not usable JSON"),
    ],
)
def test_malformed_tcb_info_is_a_parse_error(
    handler: Callable[[httpx.Request], httpx.Response], detail: str
) -> None:
    with _client(handler) as client, pytest.raises(PccsResponseError) as info:
        client.get_tcb_info("00A067110000")
    assert isinstance(info.value, ParseError)
    assert detail in str(info.value)


def test_v3_tcb_info_header_name_is_accepted() -> None:
    headers = {"SGX-TCB-Info-Issuer-Chain": _chain_header(COLLATERAL.tcb_info_issuer_chain)}
    with _client(_ok(GOOD_TCB, headers)) as client:
        assert client.get_tcb_info("00A067110000").text == COLLATERAL.tcb_info


def test_malformed_crl_is_a_parse_error() -> None:
    headers = {"SGX-PCK-CRL-Issuer-Chain": _chain_header(COLLATERAL.pck_crl_issuer_chain)}
    with _client(_ok("nothex!", headers)) as client, pytest.raises(PccsResponseError):
        client.get_pck_crl()
    with (
        _client(_ok(b"\x30\x03\x02\x01\x00", headers)) as client,
        pytest.raises(PccsResponseError, match="not a DER CRL"),
    ):
        client.get_pck_crl()


def test_pem_crl_body_is_accepted() -> None:
    pem = x509.load_der_x509_crl(COLLATERAL.pck_crl).public_bytes(serialization.Encoding.PEM)
    headers = {"SGX-PCK-CRL-Issuer-Chain": _chain_header(COLLATERAL.pck_crl_issuer_chain)}
    with _client(_ok(pem, headers)) as client:
        assert client.get_pck_crl(der=False).crl == COLLATERAL.pck_crl


def test_pckcert_needs_its_headers() -> None:
    leaf, chain = _leaf_and_chain()
    headers = {"SGX-PCK-Certificate-Issuer-Chain": _chain_header(chain), "SGX-TCBm": "00"}
    query = PckCertificateQuery(bytes(16), bytes(16), 0, bytes(2))
    with _client(_ok(leaf, headers)) as client, pytest.raises(PccsResponseError, match="SGX-TCBm"):
        client.get_pck_certificate(query)
    with (
        _client(_ok("not a certificate", headers)) as client,
        pytest.raises(PccsResponseError, match="not a PEM certificate"),
    ):
        client.get_pck_certificate(query)


def _collateral_router(
    root_crl: Callable[[httpx.Request], httpx.Response],
    qe_identity_chain: str = COLLATERAL.qe_identity_issuer_chain,
) -> Callable[[httpx.Request], httpx.Response]:
    def route(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if str(request.url) == INTEL_ROOT_CDP or path.endswith("/rootcacrl"):
            return root_crl(request)
        if path.endswith("/pckcrl"):
            return httpx.Response(
                200,
                content=COLLATERAL.pck_crl,
                headers={
                    "SGX-PCK-CRL-Issuer-Chain": _chain_header(COLLATERAL.pck_crl_issuer_chain)
                },
            )
        if path.endswith("/tcb"):
            body = {
                "tcbInfo": json.loads(COLLATERAL.tcb_info),
                "signature": COLLATERAL.tcb_info_signature.hex(),
            }
            return httpx.Response(200, json=body, headers=TCB_HEADERS)
        body = {
            "enclaveIdentity": json.loads(COLLATERAL.qe_identity),
            "signature": COLLATERAL.qe_identity_signature.hex(),
        }
        headers = {"SGX-Enclave-Identity-Issuer-Chain": _chain_header(qe_identity_chain)}
        return httpx.Response(200, json=body, headers=headers)

    return route


def test_root_crl_falls_back_to_the_roots_distribution_point() -> None:
    seen: list[str] = []

    def root_crl(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path.endswith("/rootcacrl"):
            return httpx.Response(404)
        return httpx.Response(200, content=COLLATERAL.root_ca_crl)

    with _client(_collateral_router(root_crl)) as client:
        assert client.get_collateral(QUOTE) == COLLATERAL
    assert seen == [f"https://pccs.test{API}/rootcacrl", INTEL_ROOT_CDP]


def test_intel_pcs_root_crl_comes_from_the_distribution_point() -> None:
    seen: list[str] = []

    def root_crl(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=COLLATERAL.root_ca_crl)

    transport = httpx.MockTransport(_collateral_router(root_crl))
    with PccsClient("https://api.trustedservices.intel.com", transport=transport) as client:
        assert client.get_collateral(fmspc="00A067110000", ca="processor") == COLLATERAL
    assert seen == [INTEL_ROOT_CDP]


def _root_naming(cdp: str) -> tuple[str, bytes]:
    """A self-signed root whose CRL distribution point is ``cdp``: (PEM, its public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX Root CA")])
    now = datetime.datetime.now(datetime.UTC)
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(cdp)], None, None, None)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.CRLDistributionPoints([point]), critical=False)
        .sign(key, hashes.SHA256())
    )
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), raw


def test_distribution_point_of_a_root_that_is_not_the_anchor_is_not_fetched() -> None:
    # Regression: on a 404 from /rootcacrl the client fetched whatever URL the root of
    # the (unverified) QE Identity chain named: a PCCS could make it request any URL.
    probe = "http://169.254.169.254/latest/meta-data/"
    evil_root, _ = _root_naming(probe)
    seen: list[str] = []

    def root_crl(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(404, headers=TAGGED)

    router = _collateral_router(root_crl, qe_identity_chain=evil_root)
    with _client(router) as client, pytest.raises(PccsNotFound) as info:
        client.get_collateral(QUOTE)
    assert seen == [f"https://pccs.test{API}/rootcacrl"]
    assert "is not the trust anchor" in str(info.value)


def test_distribution_point_of_the_anchor_root_is_fetched() -> None:
    root, public_key = _root_naming("https://crl.test/rootcacrl")
    seen: list[str] = []

    def root_crl(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "pccs.test":
            return httpx.Response(404, headers=TAGGED)
        return httpx.Response(200, content=COLLATERAL.root_ca_crl)

    router = _collateral_router(root_crl, qe_identity_chain=root)
    with _client(router) as client:
        collateral = client.get_collateral(QUOTE, root_public_key=public_key)
    assert collateral.root_ca_crl == COLLATERAL.root_ca_crl
    assert seen == [f"https://pccs.test{API}/rootcacrl", "https://crl.test/rootcacrl"]


def test_a_malformed_distribution_point_is_a_pccs_error() -> None:
    # Regression: httpx.InvalidURL (not an httpx.HTTPError) escaped the client.
    root, public_key = _root_naming("http://[::1")

    def root_crl(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, headers=TAGGED)

    router = _collateral_router(root_crl, qe_identity_chain=root)
    with _client(router) as client, pytest.raises(PccsError) as info:
        client.get_collateral(QUOTE, root_public_key=public_key)
    assert "root CA CRL (from the root's CRL distribution point)" in str(info.value)


def test_api_key_goes_to_the_service_only() -> None:
    # Regression: the subscription key was a client-wide header, so it was also
    # sent to the CRL distribution point named by the (unverified) root certificate.
    keys: dict[str, str | None] = {}

    def root_crl(request: httpx.Request) -> httpx.Response:
        keys[str(request.url)] = request.headers.get("Ocp-Apim-Subscription-Key")
        if request.url.path.endswith("/rootcacrl"):
            return httpx.Response(404)
        return httpx.Response(200, content=COLLATERAL.root_ca_crl)

    with _client(_collateral_router(root_crl), api_key="secret-key") as client:
        assert client.get_collateral(QUOTE) == COLLATERAL
    assert keys == {f"https://pccs.test{API}/rootcacrl": "secret-key", INTEL_ROOT_CDP: None}


def test_get_collateral_arguments() -> None:
    with _client(lambda r: httpx.Response(500)) as client:
        with pytest.raises(UsageError):
            client.get_collateral()
        with pytest.raises(UsageError):
            client.get_collateral(QUOTE, fmspc="00A067110000")
        with pytest.raises(UsageError):
            client.get_collateral(fmspc="00A0671100")
        with pytest.raises(UsageError):
            client.get_collateral(fmspc="00A067110000", ca="other")
        with pytest.raises(UsageError):
            client.get_tcb_info("00A067110000", update="late")  # type: ignore[arg-type]


def test_every_client_error_is_a_pccs_error() -> None:
    for cls in (
        PccsUnreachable,
        PccsNotFound,
        PccsPlatformNotFound,
        PccsHttpError,
        PccsResponseError,
    ):
        assert issubclass(cls, PccsError)


# -- TLS ----------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_verification_options(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server = ServerThread(VectorPccs().app, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path))
    port = server.start()
    url = f"https://127.0.0.1:{port}"
    try:
        with PccsClient(url) as client, pytest.raises(PccsUnreachable) as info:
            client.get_root_ca_crl()
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        with PccsClient(url, ca_file=cert_path) as client:
            assert client.get_root_ca_crl() == COLLATERAL.root_ca_crl
        with PccsClient(url, verify_tls=False) as client:
            assert client.get_root_ca_crl() == COLLATERAL.root_ca_crl
    finally:
        server.stop()


def test_tls_option_misuse(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="CA file"):
        PccsClient("https://pccs.test", ca_file=tmp_path / "missing.pem")
    with pytest.raises(UsageError):
        PccsClient("https://pccs.test", verify_tls=False, ca_file=tmp_path / "x.pem")
    assert isinstance(ssl.create_default_context(), ssl.SSLContext)
