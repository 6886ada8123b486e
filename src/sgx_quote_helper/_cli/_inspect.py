"""``sgx-quote-helper inspect FILE [--json]``: decode a quote and show every field.

The file (or stdin, as ``-``) may hold the quote as raw bytes, hex or base64;
the detection rule is in ``sgx_quote_helper.sgx._encoding``: raw if any byte is
not printable ASCII or whitespace, else hex if only hex digits (an even
number, whitespace and a ``0x`` prefix ignored), else base64 (standard or
URL-safe, padded or not). Nothing is verified here; ``verify``
does that.

Exit status: 0 when everything decodes; 1 for damaged input: a file that is
not a quote (nothing printed), or a quote with a PCK certificate field that
does not decode (everything else is printed, that field marked UNREADABLE,
then the error); 2 for a command used wrongly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from sgx_quote_helper._cli import _args
from sgx_quote_helper._fs import read_limited, read_stream_limited
from sgx_quote_helper._time import format_time
from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.sgx import (
    INTEL_QE_VENDOR_ID,
    MAX_ENCODED_QUOTE_SIZE,
    AttKeyAlgorithm,
    InputEncoding,
    OpaqueCertificationData,
    PckCertChain,
    PckLeafCertificate,
    PpidCleartext,
    PpidEncrypted,
    QeReportCertificationData,
    Quote,
    Report2Body,
    ReportBody,
    SgxExtension,
    TeeType,
    certification_data_type_name,
    decode_binary_input,
)

#: Largest input file read: a maximal quote as base64 or hex with line breaks.
MAX_INPUT_FILE_SIZE = MAX_ENCODED_QUOTE_SIZE
_HOLDS = "a quote (raw, hex or base64)"

_LABEL_WIDTH = 18
_HEX_LINE_BYTES = 32


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="decode a quote and print its fields",
        description="Decode an SGX DCAP quote (v3, or v4) given as raw bytes, hex or base64 "
        "and print every field, the PCK certificate chain and its SGX extension. "
        "Nothing is verified. Exit status 1 for damaged input: not a quote, or a PCK "
        "certificate field that does not decode (the rest is printed, that field marked "
        "UNREADABLE).",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        type=_args.path_text,
        help="the quote: raw bytes, hex or base64 ('-' for stdin)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.file == "-":
        path = Path("<stdin>")
        data = read_stream_limited(sys.stdin.buffer, MAX_INPUT_FILE_SIZE, name="stdin", what=_HOLDS)
    else:
        data = read_input_file(path)
    raw, encoding = decode_binary_input(data)
    try:
        quote = Quote.from_bytes(raw)
        extension = pck_extension(quote)
    except ParseError as exc:
        raise ParseError(
            f"{path} (read as {encoding.value}, {len(raw)} bytes) is not a valid quote: {exc}"
        ) from None
    if args.json:
        print(json.dumps(quote_to_json(quote, extension), indent=2))
    else:
        sys.stdout.write(render_quote(quote, extension, encoding=encoding, size=len(raw)))
    problems = certificate_problems(quote)
    if problems:
        # Damaged input, as for a quote that does not decode (exit status 1), but
        # everything that does decode was printed first.
        sys.stdout.flush()
        raise ParseError(
            f"{path}: cannot decode {'; '.join(problems)}; everything else was printed",
            hints=["the quote was damaged after it was made (in storage or in transit)"],
        )
    return 0


def read_input_file(path: Path) -> bytes:
    """The file's bytes, refusing missing, unreadable and oversized files clearly."""
    try:
        return read_limited(path, MAX_INPUT_FILE_SIZE, _HOLDS)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a quote file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def pck_extension(quote: Quote) -> SgxExtension | None:
    """The SGX extension of the quote's PCK leaf, or None if it carries no PCK leaf."""
    if not quote.has_pck_chain:
        return None
    return SgxExtension.from_certificate(quote.pck_chain()[0])


# ---------------------------------------------------------------------------
# JSON


def _report_json(body: ReportBody | Report2Body) -> dict[str, Any]:
    if isinstance(body, Report2Body):
        return {f.name: getattr(body, f.name).hex() for f in Report2Body.LAYOUT.fields}
    return {
        "cpu_svn": body.cpu_svn.hex(),
        "misc_select": body.misc_select,
        "attributes": body.attributes.to_bytes().hex(),
        "mr_enclave": body.mr_enclave.hex(),
        "mr_signer": body.mr_signer.hex(),
        "isv_prod_id": body.isv_prod_id,
        "isv_svn": body.isv_svn,
        "config_svn": body.config_svn,
        "report_data": body.report_data.hex(),
        "debug": body.attributes.debug,
    }


def quote_to_json(quote: Quote, extension: SgxExtension | None) -> dict[str, Any]:
    """The ``inspect --json`` object: byte strings as lower-case hex, numbers as integers."""
    header = quote.header
    return {
        "version": header.version,
        "att_key_type": header.att_key_type,
        "tee_type": header.tee_type,
        "qe_svn": header.qe_svn,
        "pce_svn": header.pce_svn,
        "qe_vendor_id": header.qe_vendor_id.hex(),
        "user_data": header.user_data.hex(),
        "report": _report_json(quote.report_body),
        "signature_data_len": quote.signature_data_len,
        "qe_report": _report_json(quote.qe_report),
        "qe_auth_data": quote.qe_auth_data.hex(),
        "certification_data": {
            "type": quote.certification_data.cert_type,
            "size": quote.certification_data.size,
        },
        "pck": None
        if extension is None
        else {
            "fmspc": extension.fmspc.hex(),
            "pce_id": extension.pce_id.hex(),
            "pce_svn": extension.pce_svn,
            "cpu_svn": extension.cpu_svn.hex(),
            "tcb_components": list(extension.tcb_components),
            "ppid": extension.ppid.hex(),
            "sgx_type": extension.sgx_type,
        },
    }


# ---------------------------------------------------------------------------
# Text for people


class _Text:
    """Sections of aligned ``label  value`` lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        if self.lines:
            self.lines.append("")
        self.lines.append(title)

    def row(self, label: str, value: object, indent: int = 2) -> None:
        pad = " " * indent
        text = str(value).split("\n")
        self.lines.append(f"{pad}{label:<{_LABEL_WIDTH}} {text[0]}".rstrip())
        for more in text[1:]:
            self.lines.append(f"{pad}{'':<{_LABEL_WIDTH}} {more}")

    def hex_row(self, label: str, data: bytes, indent: int = 2) -> None:
        if not data:
            self.row(label, "(empty)", indent)
            return
        chunks = [data[i : i + _HEX_LINE_BYTES].hex() for i in range(0, len(data), _HEX_LINE_BYTES)]
        self.row(label, "\n".join(chunks), indent)

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _name_of(enum_type: type[AttKeyAlgorithm] | type[TeeType], value: int) -> str:
    try:
        return enum_type(value).name
    except ValueError:
        return "unknown"


def _sgx_body(out: _Text, body: ReportBody) -> None:
    attrs = body.attributes
    flags = ", ".join(attrs.flag_names()) or "none"
    out.hex_row("cpu_svn", body.cpu_svn)
    out.row("misc_select", f"0x{body.misc_select:08x}")
    out.row("attributes", f"flags 0x{attrs.flags:016x} ({flags})")
    out.row("", f"xfrm  0x{attrs.xfrm:016x}")
    out.row("debug", "YES (DEBUG flag set)" if attrs.debug else "no")
    out.hex_row("mr_enclave", body.mr_enclave)
    out.hex_row("mr_signer", body.mr_signer)
    out.row("isv_prod_id", body.isv_prod_id)
    out.row("isv_svn", body.isv_svn)
    out.row("config_svn", body.config_svn)
    for name in ("isv_ext_prod_id", "config_id", "isv_family_id"):
        value: bytes = getattr(body, name)
        out.row(name, "zero" if not any(value) else value.hex())
    out.hex_row("report_data", body.report_data)


def _tdx_body(out: _Text, body: Report2Body) -> None:
    for f in Report2Body.LAYOUT.fields:
        out.hex_row(f.name, getattr(body, f.name))


_CERTIFICATE_FIELDS: tuple[tuple[str, Callable[[x509.Certificate], str]], ...] = (
    ("subject", lambda cert: cert.subject.rfc4514_string()),
    ("issuer", lambda cert: cert.issuer.rfc4514_string()),
    (
        "valid",
        lambda cert: (
            f"{format_time(cert.not_valid_before_utc)} to {format_time(cert.not_valid_after_utc)}"
        ),
    ),
    ("serial", lambda cert: f"{cert.serial_number:x}"),
)


def _certificate_fields(cert: x509.Certificate) -> list[tuple[str, str, str | None]]:
    """``(field, text, problem)`` for each field shown: its text, or why it cannot be read.

    cryptography decodes some fields (a name) only when asked, so a certificate
    that loaded can still hold a field that does not decode.
    """
    fields: list[tuple[str, str, str | None]] = []
    for name, read in _CERTIFICATE_FIELDS:
        try:
            fields.append((name, read(cert), None))
        except ValueError as exc:
            fields.append((name, f"UNREADABLE: {exc}", str(exc)))
    return fields


def certificate_problems(quote: Quote) -> list[str]:
    """What cannot be read in the quote's PCK certificates (empty when all of it can)."""
    if not quote.has_pck_chain:
        return []
    return [
        f"PCK certificate [{index}] {name} ({problem})"
        for index, cert in enumerate(quote.pck_chain())
        for name, _, problem in _certificate_fields(cert)
        if problem is not None
    ]


def _certificates(out: _Text, certificates: list[x509.Certificate]) -> None:
    for index, cert in enumerate(certificates):
        for position, (name, text, _) in enumerate(_certificate_fields(cert)):
            out.row(f"[{index}] {name}" if position == 0 else f"    {name}", text)


def _certification_data(out: _Text, quote: Quote) -> None:
    data = quote.certification_data
    out.row("type", f"{data.cert_type} ({certification_data_type_name(data.cert_type)})")
    out.row("size", f"{data.size} bytes")
    if isinstance(data, PpidCleartext):
        out.hex_row("ppid", data.ppid)
    elif isinstance(data, PpidEncrypted):
        out.row("enc_ppid", f"{len(data.enc_ppid)} bytes (RSA-{len(data.enc_ppid) * 8})")
    if isinstance(data, (PpidCleartext, PpidEncrypted)):
        out.hex_row("cpu_svn", data.cpu_svn)
        out.row("pce_svn", data.pce_svn)
        out.hex_row("pce_id", data.pce_id)
    elif isinstance(data, PckCertChain):
        out.row("certificates", len(data.pems))
        out.row("trailing NUL", "yes" if data.trailing_nul else "no")
    elif isinstance(data, PckLeafCertificate):
        out.row("trailing NUL", "yes" if data.trailing_nul else "no")
    elif isinstance(data, QeReportCertificationData):
        inner = data.certification_data
        out.row(
            "nested type", f"{inner.cert_type} ({certification_data_type_name(inner.cert_type)})"
        )
    elif isinstance(data, OpaqueCertificationData):
        out.row("content", "not decoded")


def _extension(out: _Text, extension: SgxExtension) -> None:
    form = "Platform CA, 7 entries" if extension.is_platform_ca else "Processor CA, 5 entries"
    out.row("form", form)
    out.hex_row("ppid", extension.ppid)
    out.hex_row("fmspc", extension.fmspc)
    out.hex_row("pce_id", extension.pce_id)
    out.row("pce_svn", extension.pce_svn)
    out.hex_row("cpu_svn", extension.cpu_svn)
    out.row("tcb_components", " ".join(str(svn) for svn in extension.tcb_components))
    if extension.cpu_svn != bytes(extension.tcb_components):
        out.row("", "WARNING: cpu_svn differs from the component SVNs")
    out.row("sgx_type", f"{extension.sgx_type} ({extension.sgx_type_name})")
    if extension.platform_instance_id is not None:
        out.hex_row("platform_instance", extension.platform_instance_id)
    if extension.configuration is not None:
        config = extension.configuration
        for label, flag in (
            ("dynamic_platform", config.dynamic_platform),
            ("cached_keys", config.cached_keys),
            ("smt_enabled", config.smt_enabled),
        ):
            out.row(label, "absent" if flag is None else ("yes" if flag else "no"))


def render_quote(
    quote: Quote, extension: SgxExtension | None, *, encoding: InputEncoding, size: int
) -> str:
    """The human-readable ``inspect`` text."""
    header = quote.header
    out = _Text()
    tee = _name_of(TeeType, header.tee_type)
    out.section(f"Quote v{header.version} ({tee}), {size} bytes, given as {encoding.value}")

    out.section("Header")
    out.row("version", header.version)
    out.row(
        "att_key_type", f"{header.att_key_type} ({_name_of(AttKeyAlgorithm, header.att_key_type)})"
    )
    out.row("tee_type", f"0x{header.tee_type:08x} ({tee})")
    out.row("qe_svn", header.qe_svn)
    out.row("pce_svn", header.pce_svn)
    vendor = "Intel" if header.qe_vendor_id == INTEL_QE_VENDOR_ID else "not Intel's"
    out.row("qe_vendor_id", f"{header.qe_vendor_id.hex()} ({vendor})")
    out.hex_row("user_data", header.user_data)
    out.hex_row("qe_id", quote.qe_id)

    if isinstance(quote.report_body, Report2Body):
        out.section("TD report body")
        _tdx_body(out, quote.report_body)
    else:
        out.section("ISV enclave report body")
        _sgx_body(out, quote.report_body)

    out.section("Signature data")
    out.row("length", f"{quote.signature_data_len} bytes")
    out.hex_row("sig", quote.sig)
    out.hex_row("attest_pub_key", quote.attest_pub_key)
    out.hex_row("qe_report_sig", quote.qe_report_sig)
    out.row("qe_auth_data", f"{len(quote.qe_auth_data)} bytes")
    out.hex_row("", quote.qe_auth_data)

    out.section("QE report body")
    _sgx_body(out, quote.qe_report)

    out.section("Certification data")
    _certification_data(out, quote)

    if quote.has_pck_chain:
        out.section("PCK certificate chain")
        _certificates(out, quote.pck_chain())
    if extension is not None:
        out.section("SGX extension of the PCK leaf (certified TCB level)")
        _extension(out, extension)
    return out.render()


__all__ = [
    "certificate_problems",
    "quote_to_json",
    "read_input_file",
    "register",
    "render_quote",
    "run",
]
