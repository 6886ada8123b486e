"""``sgx-quote-helper verify FILE``: verify a quote, then appraise it against a policy."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from sgx_quote_helper._cli import _args, exit_status
from sgx_quote_helper._cli._options import add_pccs_client_options
from sgx_quote_helper._fs import read_limited, read_stream_limited
from sgx_quote_helper._time import parse_time as parse_iso_time
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError, UsageError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.pccs import MAX_COLLATERAL_JSON_SIZE, Collateral, PccsClient
from sgx_quote_helper.sgx import MAX_ENCODED_QUOTE_SIZE, decode_binary_input
from sgx_quote_helper.verify import (
    AppraisalError,
    Policy,
    TcbStatus,
    TrustAnchor,
    UnsafeNoAppraisal,
    VerificationError,
    VerificationResult,
    Verifier,
    appraise,
    load_policy,
    policy_from_mapping,
    report_to_dict,
)

#: The earliest verification time: dcap-qvl takes it as unsigned Unix seconds.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_EPILOG = """\
Exit status: 0 when the quote verifies and the policy accepts it; 1 otherwise (the
reason is printed on one line); 2 for wrong arguments.

Without policy options the policy is: status UpToDate only, no debug enclave. Debug
enclaves are refused in any case: dcap-qvl 0.7.0 rejects them during verification, so
there is no --allow-debug. Policy options cannot be combined with --policy FILE (TOML,
see docs/verification.md).

The trust anchor is Intel's SGX root unless --root-ca names another one (e.g. the
simulated manufacturer's DIR/pcs/root-ca.der); results against any other root are
marked "simulated". --cache-dir keeps collateral until its nextUpdate or for an hour,
whichever comes first, so a TCB recovery is seen only after that; omit it to fetch
fresh collateral for every command.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="verify an SGX DCAP quote and appraise it against a policy",
        description="Verify an SGX ECDSA quote (raw, hex or base64) with dcap-qvl against a "
        "trust anchor, using collateral from a PCCS or a file, then appraise the result.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        type=_args.path_text,
        help="the quote: raw, hex or base64; - for stdin",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--pccs-url",
        type=_args.base_url,
        metavar="URL",
        help="fetch collateral from this PCCS v4 (http(s)://HOST[:PORT][/PATH])",
    )
    source.add_argument(
        "--collateral",
        metavar="FILE",
        type=_args.path_text,
        help="collateral as dcap-qvl QuoteCollateralV3 JSON",
    )
    parser.add_argument(
        "--root-ca",
        metavar="FILE",
        type=_args.path_text,
        help="trust anchor (DER or PEM); default: Intel's SGX root",
    )
    parser.add_argument(
        "--at",
        metavar="TIME",
        type=_time_argument,
        help="verify at this time: Unix seconds or ISO 8601 (UTC if no offset); default: now",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=_args.path_text,
        help="cache PCCS collateral here until its nextUpdate (at most an hour)",
    )
    add_pccs_client_options(parser)
    policy = parser.add_argument_group("policy options")
    policy.add_argument("--mrenclave", metavar="HEX", action="append", help="repeatable: any of")
    policy.add_argument("--mrsigner", metavar="HEX", action="append", help="repeatable: any of")
    policy.add_argument("--isv-prod-id", metavar="N", type=_args.u16())
    policy.add_argument("--min-isv-svn", metavar="N", type=_args.u16())
    policy.add_argument("--report-data", metavar="HEX", help="exact, zero-padded to 64 bytes")
    policy.add_argument("--report-data-prefix", metavar="HEX", help="REPORTDATA starts with it")
    policy.add_argument(
        "--accept-status",
        metavar="STATUS",
        action="append",
        help="TCB status to accept, repeatable (default: UpToDate only): "
        + ", ".join(s.value for s in TcbStatus if s is not TcbStatus.REVOKED),
    )
    policy.add_argument("--reject-advisory", metavar="ID", action="append", help="repeatable")
    policy.add_argument(
        "--max-collateral-age",
        metavar="SECONDS",
        type=_args.integer(0, 100 * 365 * 86400),
        help="refuse older collateral",
    )
    policy.add_argument(
        "--policy",
        metavar="FILE",
        type=_args.path_text,
        help="policy file (TOML) instead of options",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_run)


def parse_time(text: str) -> datetime:
    """``--at``: Unix seconds, or ISO 8601 (``Z`` or an offset; none means UTC).

    Times before the Unix epoch are refused like negative Unix seconds: the
    engine takes the verification time as unsigned Unix seconds.
    """
    value = text.strip()
    if re.fullmatch(r"[0-9]+", value):
        try:
            return _args.unix_seconds(value)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--at {exc}") from None
    try:
        moment = parse_iso_time(value, "--at")
    except ParseError:
        moment = None
    if moment is None or moment < _EPOCH:
        raise UsageError(
            f"--at must be Unix seconds or ISO 8601 (e.g. 2025-07-01T00:00:00Z) from "
            f"1970-01-01 to 9999-12-31 UTC, got {text!r}"
        )
    return moment


def _time_argument(text: str) -> datetime:
    try:
        return parse_time(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--at ")) from None


def _read(path: str, what: str, limit: int, holds: str) -> bytes:
    """``path`` (``-``: stdin), at most ``limit`` bytes; ``holds`` says what it should be."""
    if path == "-":
        return read_stream_limited(sys.stdin.buffer, limit, name="stdin", what=holds)
    try:
        return read_limited(path, limit, holds)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path!r}: {exc}") from exc


def _policy(args: argparse.Namespace) -> Policy:
    options: dict[str, Any] = {}
    for key, value in (
        ("mrenclave", args.mrenclave),
        ("mrsigner", args.mrsigner),
        ("isv_prod_id", args.isv_prod_id),
        ("min_isv_svn", args.min_isv_svn),
        ("report_data", args.report_data),
        ("report_data_prefix", args.report_data_prefix),
        ("accept_statuses", args.accept_status),
        ("reject_advisories", args.reject_advisory),
        ("max_collateral_age", args.max_collateral_age),
    ):
        if value is not None:
            options[key] = value
    if args.policy is not None:
        if options:
            raise UsageError("policy options cannot be combined with --policy FILE")
        return load_policy(args.policy)
    return policy_from_mapping(options)


def _verifier(args: argparse.Namespace, stack: contextlib.ExitStack) -> Verifier:
    anchor = TrustAnchor.from_file(args.root_ca) if args.root_ca else TrustAnchor.intel()
    if args.pccs_url is None:
        if args.cache_dir or args.pccs_ca_file or args.pccs_insecure:
            raise UsageError("--cache-dir and --pccs-* options need --pccs-url")
        return Verifier(anchor)
    client = stack.enter_context(
        PccsClient(
            args.pccs_url,
            timeout=args.pccs_timeout,
            verify_tls=not args.pccs_insecure,
            ca_file=args.pccs_ca_file,
        )
    )
    return Verifier(anchor, pccs=client, cache_dir=args.cache_dir)


def _run(args: argparse.Namespace) -> int:
    try:
        return _verify(args)
    except SgxQuoteHelperError as exc:
        if not args.json:
            raise
        print(json.dumps({"verified": False, "error": _error_dict(exc)}, indent=2))
        print(f"sgx-quote-helper: error: {exc.diagnostics(guide)}", file=sys.stderr)
        return exit_status(exc)


def _verify(args: argparse.Namespace) -> int:
    policy = _policy(args)
    at: datetime | None = args.at
    quote_file = _read(args.file, "quote", MAX_ENCODED_QUOTE_SIZE, "a quote (raw, hex or base64)")
    quote, _encoding = decode_binary_input(quote_file)
    collateral = None
    if args.collateral is not None:
        collateral_json = _read(
            args.collateral,
            "collateral",
            MAX_COLLATERAL_JSON_SIZE,
            "collateral (QuoteCollateralV3 JSON)",
        )
        collateral = Collateral.from_json(collateral_json)
    with contextlib.ExitStack() as stack:
        # Appraised below, so that a refused quote's verified claims are still shown.
        result = _verifier(args, stack).verify(
            quote, collateral, policy=UnsafeNoAppraisal(), now=at
        )
    failures = appraise(result, policy)
    if args.json:
        data = {"verified": True, **result.to_dict()}
        data["appraisal"] = {
            "passed": not failures,
            "failures": [f.to_dict() for f in failures],
            "policy": repr(policy),
        }
        print(json.dumps(data, indent=2))
    else:
        print(_human(result, passed=not failures))
    if failures:
        print(f"sgx-quote-helper: error: {AppraisalError(failures).diagnostics()}", file=sys.stderr)
        return 1
    return 0


def _human(result: VerificationResult, *, passed: bool) -> str:
    report = report_to_dict(result.report)
    anchor = result.trust_anchor
    lines = [
        f"verified: {result.status.value} ({result.qv_result.c_name} "
        f"{result.qv_result.display_value})",
        f"  advisories:      {', '.join(result.advisory_ids) or 'none'}",
        f"  platform TCB:    {result.platform_tcb.status.value}; QE TCB: "
        f"{result.qe_tcb.status.value} (QE ISVSVN {result.qe_report.isv_svn})",
        f"  trust anchor:    {anchor.subject}",
        f"  root key id:     {result.root_key_id.hex()}",
        f"  mr_enclave:      {report['mr_enclave']}",
        f"  mr_signer:       {report['mr_signer']}",
        f"  isv_prod_id/svn: {report['isv_prod_id']} / {report['isv_svn']}",
        f"  debug:           {str(report['debug']).lower()}",
        f"  report_data:     {report['report_data']}",
        f"  fmspc:           {result.fmspc} ({result.ca_type} CA), TCB evaluation data number "
        f"{result.tcb_evaluation_data_number}",
        f"  collateral:      issued {result.collateral_issued:%Y-%m-%dT%H:%M:%SZ}, expires "
        f"{result.collateral_expires:%Y-%m-%dT%H:%M:%SZ}",
        f"appraisal: {'passed' if passed else 'FAILED'}",
    ]
    if result.simulated:
        lines.insert(
            1,
            "  SIMULATED: the trust anchor is not Intel's SGX root; this proves nothing about "
            "real SGX hardware",
        )
    return "\n".join(lines)


def _error_dict(exc: SgxQuoteHelperError) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(exc).__name__, "message": exc.diagnostics(guide)}
    if isinstance(exc, VerificationError):
        data["qv_result"] = {"value": int(exc.qv_result), "name": exc.qv_result.c_name}
        if exc.quote3_error is not None:
            data["quote3_error"] = {
                "value": int(exc.quote3_error),
                "name": exc.quote3_error.c_name,
            }
        data["status"] = exc.status
        data["engine_message"] = exc.engine_message
    if isinstance(exc, AppraisalError):
        data["failures"] = [f.to_dict() for f in exc.failures]
    return data
