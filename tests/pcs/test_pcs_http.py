"""The PCCS v4 service, started for real (uvicorn on an ephemeral loopback port)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.pccs import SignedCollateral
from sgx_quote_helper.pcs import (
    Manufacturer,
    RegisteredPlatform,
    RunningService,
    serve_in_thread,
)

V4 = "/sgx/certification/v4"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RegisteredPlatform]:
    path = tmp_path_factory.mktemp("sim")
    manufacturer = Manufacturer.create(path)
    platform = manufacturer.register_platform(
        manufacturer.new_platform("default", path / "platform")
    )
    manufacturer.register_platform(
        manufacturer.new_platform("multi", path / "platforms" / "multi", ca_type="platform")
    )
    return path, platform


@pytest.fixture(scope="module")
def service(sim: tuple[Path, RegisteredPlatform]) -> Iterator[RunningService]:
    with serve_in_thread(sim[0]) as running:
        yield running


@pytest.fixture
def client(service: RunningService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=10) as http:
        yield http


def _pckcert_params(platform: RegisteredPlatform, *, lower: bool = False) -> dict[str, str]:
    params = {
        "qeid": platform.qe_id.hex().upper(),
        "cpusvn": platform.cpu_svn.hex().upper(),
        "pcesvn": PCE_SVN.to_bytes(2, "little").hex().upper(),
        "pceid": platform.pce_id.hex().upper(),
    }
    return {k: v.lower() for k, v in params.items()} if lower else params


def _chain(response: httpx.Response, header: str) -> list[x509.Certificate]:
    raw = response.headers[header]
    # Percent-encoded: no raw whitespace, and '+', '/' and '=' of base64 escaped too.
    assert raw.startswith("-----BEGIN%20CERTIFICATE-----%0A")
    assert not any(c in raw for c in " \n+/=")
    return x509.load_pem_x509_certificates(unquote(raw).encode())


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Error-Code"] == code
    message = response.headers["Error-Message"]
    assert message
    assert message.isascii()
    assert response.headers["Request-ID"]


@pytest.mark.parametrize("lower", [False, True])
def test_pckcert(
    client: httpx.Client, service: RunningService, sim: tuple[Path, RegisteredPlatform], lower: bool
) -> None:
    platform = sim[1]
    response = client.get(f"{V4}/pckcert", params=_pckcert_params(platform, lower=lower))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-pem-file"
    leaf = x509.load_pem_x509_certificate(response.content)
    chain = _chain(response, "SGX-PCK-Certificate-Issuer-Chain")
    assert chain == [
        service.manufacturer.certificate("processor"),
        service.manufacturer.certificate("root"),
    ]
    leaf.verify_directly_issued_by(chain[0])
    assert (
        response.headers["SGX-TCBm"]
        == (platform.cpu_svn + PCE_SVN.to_bytes(2, "little")).hex().upper()
    )
    assert response.headers["SGX-FMSPC"] == platform.fmspc.hex().upper()
    assert response.headers["SGX-PCK-Certificate-CA-Type"] == "processor"


def test_pckcert_platform_ca_and_encrypted_ppid(
    client: httpx.Client, service: RunningService
) -> None:
    multi = service.manufacturer.find_platform("multi")
    key = serialization.load_pem_public_key(service.manufacturer.ppid_encryption_key_pem.encode())
    encrypted = key.encrypt(  # type: ignore[union-attr]
        multi.ppid,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    params = _pckcert_params(multi)
    params["qeid"] = "00" * 16  # unknown: the encrypted PPID finds the platform
    params["encrypted_ppid"] = encrypted.hex()
    response = client.get(f"{V4}/pckcert", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["SGX-PCK-Certificate-CA-Type"] == "platform"
    chain = _chain(response, "SGX-PCK-Certificate-Issuer-Chain")
    assert chain[0] == service.manufacturer.certificate("platform")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"qeid": "00" * 16}, 404, "NotFound"),
        ({"pceid": "0100"}, 404, "NotFound"),
        ({"qeid": None}, 400, "InvalidRequestSyntax"),
        ({"cpusvn": "00"}, 400, "InvalidRequestSyntax"),
        ({"cpusvn": "zz" * 16}, 400, "InvalidRequestSyntax"),
        ({"qeid": "abc"}, 400, "InvalidRequestSyntax"),
        ({"qeid": "00" * 131}, 400, "InvalidRequestSyntax"),
        ({"qeid": "\u00e9\n"}, 400, "InvalidRequestSyntax"),
        ({"pcesvn": "0d"}, 400, "InvalidRequestSyntax"),
        ({"encrypted_ppid": "00" * 384}, 400, "InvalidRequestSyntax"),
        ({"encrypted_ppid": "00" * 10}, 400, "InvalidRequestSyntax"),
    ],
)
def test_pckcert_errors(
    client: httpx.Client,
    sim: tuple[Path, RegisteredPlatform],
    change: dict[str, str | None],
    status: int,
    code: str,
) -> None:
    params: dict[str, str] = _pckcert_params(sim[1])
    for key, value in change.items():
        if value is None:
            del params[key]
        else:
            params[key] = value
    if "encrypted_ppid" in change:
        params["qeid"] = "11" * 16
    _assert_error(client.get(f"{V4}/pckcert", params=params), status, code)


@pytest.mark.parametrize("ca", ["processor", "platform", "PLATFORM"])
def test_pckcrl_der_and_hex(client: httpx.Client, service: RunningService, ca: str) -> None:
    issuer = service.manufacturer.certificate(ca.lower())
    der = client.get(f"{V4}/pckcrl", params={"ca": ca, "encoding": "der"})
    assert der.status_code == 200
    assert der.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(der.content)
    assert crl.issuer == issuer.subject
    assert _chain(der, "SGX-PCK-CRL-Issuer-Chain") == [
        issuer,
        service.manufacturer.certificate("root"),
    ]
    for params in ({"ca": ca}, {"ca": ca, "encoding": "pem"}):
        text = client.get(f"{V4}/pckcrl", params=params)
        assert text.status_code == 200
        assert bytes.fromhex(text.text) == der.content
        assert "SGX-PCK-CRL-Issuer-Chain" in text.headers


def test_pckcrl_is_served_when_the_policy_holds_a_serial_no_crl_can_list(
    tmp_path: Path,
) -> None:
    # Older releases stored `sim revoke --serial 00`; the CRL endpoint must still serve.
    manufacturer = Manufacturer.create(tmp_path)
    manufacturer.revoke_serial(0x1234)
    policy_path = tmp_path / "pcs" / "policy.json"
    document = json.loads(policy_path.read_text())
    entries = document["revocations"]["pckCertificates"]
    entries.append({"serial": "0", "date": entries[0]["date"]})
    policy_path.write_text(json.dumps(document))
    with serve_in_thread(tmp_path) as running, httpx.Client(base_url=running.url) as http:
        response = http.get(f"{V4}/pckcrl", params={"ca": "processor", "encoding": "der"})
    assert response.status_code == 200, response.text
    crl = x509.load_der_x509_crl(response.content)
    assert [entry.serial_number for entry in crl] == [0x1234]


@pytest.mark.parametrize("params", [{}, {"ca": "root"}, {"ca": "processor", "encoding": "base64"}])
def test_pckcrl_errors(client: httpx.Client, params: dict[str, str]) -> None:
    _assert_error(client.get(f"{V4}/pckcrl", params=params), 400, "InvalidRequestSyntax")


@pytest.mark.parametrize(
    "extra", [{}, {"update": "standard"}, {"update": "early"}, {"tcbEvaluationDataNumber": "1"}]
)
def test_tcb_info(
    client: httpx.Client,
    service: RunningService,
    sim: tuple[Path, RegisteredPlatform],
    extra: dict[str, str],
) -> None:
    fmspc = sim[1].fmspc.hex()
    responses = [
        client.get(f"{V4}/tcb", params={"fmspc": value, **extra})
        for value in (fmspc.lower(), fmspc.upper())
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        v4 = _chain(response, "TCB-Info-Issuer-Chain")
        assert v4 == _chain(response, "SGX-TCB-Info-Issuer-Chain")
        assert v4 == [
            service.manufacturer.certificate("tcb-signing"),
            service.manufacturer.certificate("root"),
        ]
        body = json.loads(response.content)
        text = json.dumps(body["tcbInfo"], separators=(",", ":"))
        chain = service.manufacturer.tcb_issuer_chain_pem()
        signed = SignedCollateral("tcbInfo", text, bytes.fromhex(body["signature"]), chain)
        assert signed.verify(service.manufacturer.tcb_signing_public_key)
        assert body["tcbInfo"]["fmspc"] == fmspc.upper()


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"fmspc": "FFFFFFFFFFFF"}, 404),
        ({"fmspc": "00"}, 400),
        ({}, 400),
        ({"fmspc": "00906ED50000", "update": "later"}, 400),
        ({"fmspc": "00906ED50000", "update": "early", "tcbEvaluationDataNumber": "1"}, 400),
        ({"fmspc": "00906ED50000", "tcbEvaluationDataNumber": "-1"}, 400),
        ({"fmspc": "00906ED50000", "tcbEvaluationDataNumber": "99999999999"}, 400),
    ],
)
def test_tcb_info_errors(client: httpx.Client, params: dict[str, str], status: int) -> None:
    code = "NotFound" if status == 404 else "InvalidRequestSyntax"
    _assert_error(client.get(f"{V4}/tcb", params=params), status, code)


def test_unpublished_evaluation_number_is_not_found(
    client: httpx.Client, sim: tuple[Path, RegisteredPlatform]
) -> None:
    params = {"fmspc": sim[1].fmspc.hex(), "tcbEvaluationDataNumber": "4242"}
    _assert_error(client.get(f"{V4}/tcb", params=params), 404, "NotFound")
    _assert_error(
        client.get(f"{V4}/qe/identity", params={"tcbEvaluationDataNumber": "4242"}),
        404,
        "NotFound",
    )


def test_qe_identity(client: httpx.Client, service: RunningService) -> None:
    response = client.get(f"{V4}/qe/identity", params={"update": "standard"})
    assert response.status_code == 200
    assert _chain(response, "SGX-Enclave-Identity-Issuer-Chain")[0] == (
        service.manufacturer.certificate("tcb-signing")
    )
    body = json.loads(response.content)
    assert list(body) == ["enclaveIdentity", "signature"]
    assert body["enclaveIdentity"]["id"] == "QE"


def test_root_ca_crl_hex_and_der_at_the_cdp(client: httpx.Client, service: RunningService) -> None:
    hex_body = client.get(f"{V4}/rootcacrl")
    assert hex_body.status_code == 200
    der = bytes.fromhex(hex_body.text)
    root = service.manufacturer.certificate("root")
    cdp = root.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = httpx.URL(str(cdp[0].full_name[0].value))
    at_cdp = client.get(url.path)
    assert at_cdp.status_code == 200
    assert at_cdp.headers["content-type"] == "application/pkix-crl"
    assert at_cdp.content == der
    assert x509.load_der_x509_crl(der).issuer == root.subject


@pytest.mark.parametrize(
    "path",
    [
        "/tdx/certification/v4/tcb?fmspc=00906ED50000",
        "/tdx/certification/v4/qe/identity",
        f"{V4}/qve/identity",
        "/no/such/thing",
    ],
)
def test_unknown_paths_are_clean_404s(client: httpx.Client, path: str) -> None:
    _assert_error(client.get(path), 404, "NotFound")


def test_wrong_method(client: httpx.Client) -> None:
    response = client.post(f"{V4}/tcb")
    _assert_error(response, 405, "MethodNotAllowed")
    assert "GET" in response.headers["Allow"]


def test_openapi_document_lists_the_served_operations(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {f"{V4}/pckcert", f"{V4}/pckcrl", f"{V4}/tcb", f"{V4}/qe/identity"} <= set(
        document["paths"]
    )
    assert client.get("/healthz").text == "ok\n"


def test_changes_in_the_directory_are_served_without_restart(
    client: httpx.Client, sim: tuple[Path, RegisteredPlatform]
) -> None:
    before = client.get(f"{V4}/qe/identity").json()["enclaveIdentity"]
    # Another process (here: another Manufacturer instance) publishes a recovery.
    Manufacturer.load(sim[0]).tcb_recovery(qe_svn=QE_SVN + 1)
    after = client.get(f"{V4}/qe/identity").json()["enclaveIdentity"]
    assert after["tcbEvaluationDataNumber"] == before["tcbEvaluationDataNumber"] + 1
    assert after["tcbLevels"][0]["tcb"] == {"isvsvn": QE_SVN + 1}
    tcb = client.get(f"{V4}/tcb", params={"fmspc": sim[1].fmspc.hex()}).json()["tcbInfo"]
    assert tcb["tcbEvaluationDataNumber"] == after["tcbEvaluationDataNumber"]


def _request_log_lines(
    caplog: pytest.LogCaptureFixture, request_id: str
) -> list[logging.LogRecord]:
    """The ``pccs.request`` lines of one request, waited for: the server writes
    the line once the response has been sent."""
    deadline = time.monotonic() + 5
    records: list[logging.LogRecord] = []
    while not records and time.monotonic() < deadline:
        records = [
            r
            for r in caplog.records
            if r.getMessage() == "pccs.request"
            and getattr(r, "fields", {}).get("request_id") == request_id
        ]
        time.sleep(0.01)
    assert records, "no log line for the request"
    return records


def test_each_request_is_logged_with_structured_fields(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper.pcs.http"):
        response = client.get(f"{V4}/pckcrl", params={"ca": "nope"})
        request_id = response.headers["Request-ID"]
        records = _request_log_lines(caplog, request_id)
    fields = records[0].fields  # type: ignore[attr-defined]
    assert fields["status"] == 400
    assert fields["path"] == f"{V4}/pckcrl"
    assert fields["method"] == "GET"
    assert fields["query"] == "ca=nope"
    assert fields["duration_ms"] >= 0


def test_long_query_is_logged_cut_and_printable(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    # 9 KiB once percent-encoded (the server takes request heads up to 16 KiB).
    with caplog.at_level(logging.INFO, logger="sgx_quote_helper.pcs.http"):
        response = client.get(f"{V4}/pckcrl", params={"ca": "\x01\u00e9" * 1000})
        request_id = response.headers["Request-ID"]
        records = _request_log_lines(caplog, request_id)
    logged = records[0].fields["query"]  # type: ignore[attr-defined]
    assert len(logged) == 300
    assert logged.startswith("ca=%01%C3%A9")
    assert all(" " <= c <= "~" for c in logged)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("pckcrl", {"ca": "processor", "encoding": "der"}),
        ("pckcrl", {"ca": "platform"}),
        ("pckcrl", {"ca": "nope"}),
        ("tcb", {"fmspc": "zz"}),
        ("qe/identity", {}),
        ("qe/identity", {"update": "early", "tcbEvaluationDataNumber": "1"}),
        ("rootcacrl", {}),
        ("pckcerts", {}),
    ],
)
def test_inline_application_answers_as_the_served_one(
    client: httpx.Client,
    sim: tuple[Path, RegisteredPlatform],
    path: str,
    params: dict[str, str],
) -> None:
    # create_app(offload=False) (the fuzzer's) calls the manufacturer on the event
    # loop's thread: the same answers as the served application, which offloads.
    import asyncio

    from sgx_quote_helper.pcs import create_app

    async def inline() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(sim[0], offload=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://pccs.test") as http:
            return await http.get(f"{V4}/{path}", params=params)

    served = client.get(f"{V4}/{path}", params=params)
    answered = asyncio.run(inline())
    assert answered.status_code == served.status_code
    assert answered.content == served.content
    for header in ("Error-Code", "Content-Type", "SGX-PCK-CRL-Issuer-Chain"):
        assert answered.headers.get(header) == served.headers.get(header)
