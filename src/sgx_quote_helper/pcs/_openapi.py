"""The OpenAPI 3.0 document of the simulated PCCS (served at ``/openapi.json``).

Written by hand to describe exactly what ``_app.py`` serves: the PCCS v4
subset that DCAP clients and dcap-qvl use (dcap-quote.md section 7), plus the
DER CRL distribution point and a health probe. A property-based test runs this
document against the running service.
"""

from __future__ import annotations

from typing import Any

from sgx_quote_helper._version import __version__
from sgx_quote_helper.sgx import PLATFORM_TCB_STATUSES, QE_TCB_STATUSES

_HEX = "^[0-9A-Fa-f]"
_CHAIN_DESCRIPTION = "Percent-encoded PEM: the issuer certificate, then the root."


def _string(pattern: str | None = None, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = pattern
    if description is not None:
        schema["description"] = description
    return schema


def _header(description: str, pattern: str | None = None) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": _string(pattern)}


def _query(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


_ERROR_HEADERS = {
    "Error-Code": _header("A short error code (InvalidRequestSyntax, NotFound)."),
    "Error-Message": _header("What was wrong with the request, for people."),
    "Request-ID": _header("Identifies the request in the service's log."),
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _ERROR_HEADERS,
        "content": {"text/plain": {"schema": _string()}},
    }


_BAD_REQUEST = _error("A parameter is missing or malformed.")
_NOT_FOUND = _error("The simulated manufacturer has no such platform, FMSPC or collateral.")
_REQUEST_ID = {"Request-ID": _header("Identifies the request in the service's log.")}

_UPDATE = _query(
    "update",
    {"type": "string", "enum": ["standard", "early"]},
    "Update type; the simulated manufacturer publishes one set of collateral for both.",
)
_EVALUATION_NUMBER = _query(
    "tcbEvaluationDataNumber",
    {"type": "integer", "minimum": 0, "maximum": 2147483647},
    "TCB evaluation data number. Only the current one is available (else 404). "
    "Not together with `update`.",
)

_TCB_LEVEL = {
    "type": "object",
    "required": ["tcb", "tcbDate", "tcbStatus"],
    "properties": {
        "tcb": {
            "type": "object",
            "required": ["sgxtcbcomponents", "pcesvn"],
            "properties": {
                "sgxtcbcomponents": {
                    "type": "array",
                    "minItems": 16,
                    "maxItems": 16,
                    "items": {
                        "type": "object",
                        "required": ["svn"],
                        "properties": {"svn": {"type": "integer", "minimum": 0, "maximum": 255}},
                    },
                },
                "pcesvn": {"type": "integer", "minimum": 0, "maximum": 65535},
            },
        },
        "tcbDate": {"type": "string"},
        "tcbStatus": {
            "type": "string",
            "enum": [status.value for status in PLATFORM_TCB_STATUSES],
        },
        "advisoryIDs": {"type": "array", "items": {"type": "string"}},
    },
}

_TCB_INFO = {
    "type": "object",
    "required": ["tcbInfo", "signature"],
    "properties": {
        "tcbInfo": {
            "type": "object",
            "description": "TCB Info v3; the signature is over its compact JSON text.",
            "required": [
                "id",
                "version",
                "issueDate",
                "nextUpdate",
                "fmspc",
                "pceId",
                "tcbType",
                "tcbEvaluationDataNumber",
                "tcbLevels",
            ],
            "properties": {
                "id": {"type": "string", "enum": ["SGX"]},
                "version": {"type": "integer", "enum": [3]},
                "issueDate": {"type": "string"},
                "nextUpdate": {"type": "string"},
                "fmspc": _string(f"{_HEX}{{12}}$"),
                "pceId": _string(f"{_HEX}{{4}}$"),
                "tcbType": {"type": "integer", "enum": [0]},
                "tcbEvaluationDataNumber": {"type": "integer", "minimum": 0},
                "tcbLevels": {"type": "array", "minItems": 1, "items": _TCB_LEVEL},
            },
        },
        "signature": _string("^[0-9a-f]{128}$", "Raw r||s ECDSA-P256-SHA256, hex."),
    },
}

_QE_IDENTITY = {
    "type": "object",
    "required": ["enclaveIdentity", "signature"],
    "properties": {
        "enclaveIdentity": {
            "type": "object",
            "description": "QE Identity v2; the signature is over its compact JSON text.",
            "required": [
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
            ],
            "properties": {
                "id": {"type": "string", "enum": ["QE"]},
                "version": {"type": "integer", "enum": [2]},
                "issueDate": {"type": "string"},
                "nextUpdate": {"type": "string"},
                "tcbEvaluationDataNumber": {"type": "integer", "minimum": 0},
                "miscselect": _string(f"{_HEX}{{8}}$"),
                "miscselectMask": _string(f"{_HEX}{{8}}$"),
                "attributes": _string(f"{_HEX}{{32}}$"),
                "attributesMask": _string(f"{_HEX}{{32}}$"),
                "mrsigner": _string(f"{_HEX}{{64}}$"),
                "isvprodid": {"type": "integer"},
                "tcbLevels": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["tcb", "tcbDate", "tcbStatus"],
                        "properties": {
                            "tcb": {
                                "type": "object",
                                "required": ["isvsvn"],
                                "properties": {"isvsvn": {"type": "integer"}},
                            },
                            "tcbDate": {"type": "string"},
                            "tcbStatus": {
                                "type": "string",
                                "enum": [status.value for status in QE_TCB_STATUSES],
                            },
                            "advisoryIDs": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "signature": _string("^[0-9a-f]{128}$", "Raw r||s ECDSA-P256-SHA256, hex."),
    },
}

_HEX_CRL = {"text/plain": {"schema": _string("^[0-9a-f]+$", "The CRL's DER, hex-encoded.")}}
_DER_CRL = {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}}}


_V4 = "/sgx/certification/v4"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 description of the service."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "sgx-quote-helper simulated PCCS",
            "version": __version__,
            "description": "A PCCS v4-compatible collateral service for a SIMULATED SGX "
            "manufacturer. Nothing it serves chains to Intel's root; verifiers accept it "
            "only when the simulated root CA is passed to them explicitly.",
        },
        "paths": {
            f"{_V4}/pckcert": _pck_certificate_operation(),
            f"{_V4}/pckcrl": _pck_crl_operation(),
            f"{_V4}/tcb": _tcb_info_operation(),
            f"{_V4}/qe/identity": _qe_identity_operation(),
            **_root_ca_crl_operations(),
            **_tdx_operations(),
            "/healthz": _health_operation(),
        },
    }


def _get(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A path item with one GET operation."""
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters is not None:
        operation["parameters"] = parameters
    operation["responses"] = responses
    return {"get": operation}


def _pck_certificate_operation() -> dict[str, Any]:
    parameters = [
        _query(
            "qeid",
            _string("^([0-9A-Fa-f]{2}){1,130}$"),
            "QE-ID (hex, any case, even length, at most 260 digits).",
            required=True,
        ),
        _query("cpusvn", _string(f"{_HEX}{{32}}$"), "Raw CPUSVN.", required=True),
        _query("pcesvn", _string(f"{_HEX}{{4}}$"), "PCESVN, u16 LE.", required=True),
        _query("pceid", _string(f"{_HEX}{{4}}$"), "PCE-ID, u16 LE.", required=True),
        _query(
            "encrypted_ppid",
            _string(f"{_HEX}{{768}}$"),
            "PPID encrypted with the manufacturer's RSA-3072 key (OAEP SHA-256).",
        ),
    ]
    certificate = {
        "description": "The PCK certificate (PEM).",
        "headers": {
            "SGX-PCK-Certificate-Issuer-Chain": _header(_CHAIN_DESCRIPTION),
            "SGX-TCBm": _header("Certified CPUSVN and PCESVN (u16 LE), hex.", f"{_HEX}{{36}}$"),
            "SGX-FMSPC": _header("The platform's FMSPC.", f"{_HEX}{{12}}$"),
            "SGX-PCK-Certificate-CA-Type": _header(
                "processor or platform.", "^(processor|platform)$"
            ),
            **_REQUEST_ID,
        },
        "content": {"application/x-pem-file": {"schema": _string()}},
    }
    return _get(
        "getPckCertificate",
        "The PCK certificate of a provisioned platform for a raw TCB.",
        {"200": certificate, "400": _BAD_REQUEST, "404": _NOT_FOUND},
        parameters,
    )


def _pck_crl_operation() -> dict[str, Any]:
    parameters = [
        _query(
            "ca",
            {"type": "string", "enum": ["processor", "platform"]},
            "Which PCK CA (case-insensitive).",
            required=True,
        ),
        _query(
            "encoding",
            {"type": "string", "enum": ["der", "pem"]},
            "der: DER body; otherwise hex of the DER, as PCCS does.",
        ),
    ]
    crl = {
        "description": "The CRL: DER with encoding=der, else hex.",
        "headers": {"SGX-PCK-CRL-Issuer-Chain": _header(_CHAIN_DESCRIPTION), **_REQUEST_ID},
        "content": {**_DER_CRL, **_HEX_CRL},
    }
    return _get("getPckCrl", "The CRL of a PCK CA.", {"200": crl, "400": _BAD_REQUEST}, parameters)


def _tcb_info_operation() -> dict[str, Any]:
    parameters = [
        _query("fmspc", _string(f"{_HEX}{{12}}$"), "FMSPC (hex, any case).", required=True),
        _UPDATE,
        _EVALUATION_NUMBER,
    ]
    tcb_info = {
        "description": "TCB Info and its signature.",
        "headers": {
            "TCB-Info-Issuer-Chain": _header(_CHAIN_DESCRIPTION),
            "SGX-TCB-Info-Issuer-Chain": _header(_CHAIN_DESCRIPTION + " (API v3 name)"),
            **_REQUEST_ID,
        },
        "content": {"application/json": {"schema": _TCB_INFO}},
    }
    return _get(
        "getTcbInfo",
        "Signed TCB Info v3 of an FMSPC.",
        {"200": tcb_info, "400": _BAD_REQUEST, "404": _NOT_FOUND},
        parameters,
    )


def _qe_identity_operation() -> dict[str, Any]:
    qe_identity = {
        "description": "QE Identity and its signature.",
        "headers": {
            "SGX-Enclave-Identity-Issuer-Chain": _header(_CHAIN_DESCRIPTION),
            **_REQUEST_ID,
        },
        "content": {"application/json": {"schema": _QE_IDENTITY}},
    }
    return _get(
        "getQeIdentity",
        "Signed QE Identity v2 of QE3.",
        {"200": qe_identity, "400": _BAD_REQUEST, "404": _NOT_FOUND},
        [_UPDATE, _EVALUATION_NUMBER],
    )


def _root_ca_crl_operations() -> dict[str, Any]:
    """The root CA CRL as PCCS serves it (hex), and as DER at its distribution point."""
    hex_crl = {
        "description": "Hex of the root CA CRL.",
        "headers": _REQUEST_ID,
        "content": _HEX_CRL,
    }
    der_crl = {
        "description": "DER of the root CA CRL.",
        "headers": _REQUEST_ID,
        "content": _DER_CRL,
    }
    return {
        f"{_V4}/rootcacrl": _get(
            "getRootCaCrl",
            "The root CA CRL, hex-encoded DER (as PCCS serves it).",
            {"200": hex_crl},
        ),
        "/sim/root-ca.crl": _get(
            "getRootCaCrlDer",
            "The root CA CRL as DER: the CRL distribution point of the "
            "root, the PCK CAs and the TCB Signing certificate.",
            {"200": der_crl},
        ),
    }


def _tdx_operations() -> dict[str, Any]:
    not_simulated = "TDX is not simulated: always 404."
    return {
        "/tdx/certification/v4/tcb": _get("getTdxTcbInfo", not_simulated, {"404": _NOT_FOUND}),
        "/tdx/certification/v4/qe/identity": _get(
            "getTdxQeIdentity", not_simulated, {"404": _NOT_FOUND}
        ),
    }


def _health_operation() -> dict[str, Any]:
    healthy = {
        "description": "Healthy.",
        "headers": _REQUEST_ID,
        "content": {"text/plain": {"schema": _string()}},
    }
    return _get(
        "getHealth",
        "Liveness: the manufacturer directory is readable.",
        {"200": healthy, "503": _error("The manufacturer directory cannot be read.")},
    )
