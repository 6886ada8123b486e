"""``sgx-quote-helper doctor``: check this node's out-of-process attestation set-up."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from datetime import timedelta

from sgx_quote_helper import client
from sgx_quote_helper._cli import _args
from sgx_quote_helper._cli._options import PLATFORM_ENV, add_pccs_client_options
from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.backends import DcapOptions
from sgx_quote_helper.doctor import (
    CheckResult,
    CheckStatus,
    DoctorOptions,
    DoctorReport,
    run_doctor,
)
from sgx_quote_helper.errors import UsageError

_EPILOG = """\
Checks, in order: environment (SGX_AESM_ADDR and the mode), socket (exists, is a
socket, directory mounted, connectable by this uid/gid), daemon (key ids, QE target
info, quote size), quote (a test quote; needs --platform), pccs (reachability and
collateral validity; needs --pccs-url), tcb (the TCB status of the test quote; needs
--platform, --pccs-url and --root-ca), node (on SGX hardware, what `serve --backend
dcap` needs: the SGX devices, Intel's quote library and its version, a quote provider
library, a first QE target info; skipped on machines without SGX). A check whose
input is not given is skipped.

Exit status: 0 when no check failed (warnings and skips do not fail); 1 when one
did; 2 for usage errors (unknown, out-of-range or contradicting options). See
docs/doctor.md.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the out-of-process attestation set-up of this node or container",
        description="Check SGX_AESM_ADDR, the AESM socket, the quote helper daemon, a test "
        "quote, the PCCS and its collateral, the TCB status a quote gets, and on SGX "
        "hardware what the dcap backend needs; print each "
        "check with the fix for a failure.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--platform",
        metavar="DIR",
        type=_args.path_text,
        help="simulated platform directory (DIR/platform of `sim init DIR`) for a test quote; "
        f"default ${PLATFORM_ENV}",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        type=_args.path_text,
        help="the AESM socket to check (default: what SGX_AESM_ADDR selects, "
        f"else {client.DEFAULT_SOCKET_PATH})",
    )
    parser.add_argument("--pccs-url", type=_args.base_url, metavar="URL", help="PCCS to check")
    parser.add_argument(
        "--root-ca",
        metavar="FILE",
        type=_args.path_text,
        help="trust anchor for the TCB check (DER or PEM; DIR/pcs/root-ca.der in simulation)",
    )
    parser.add_argument(
        "--admin-url",
        type=_args.base_url,
        metavar="URL",
        help="the daemon's admin listener (http://HOST:PORT), for its release and QE/PCE SVNs",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_args.seconds(),
        default=client.DEFAULT_TIMEOUT,
        help="per read/write timeout on the socket (default 15, as Intel's client)",
    )
    add_pccs_client_options(parser)
    parser.add_argument(
        "--warn-days",
        metavar="DAYS",
        type=_args.number(0, 3650),
        default=7.0,
        help="warn when collateral expires within this many days (default 7)",
    )
    node = parser.add_argument_group(
        "node check", "on SGX hardware: what `serve --backend dcap` needs (docs/backends.md)"
    )
    node.add_argument(
        "--dcap-library",
        metavar="LIB",
        default=DcapOptions.library,
        help="Intel's quote library, as `serve --dcap-library` (default %(default)s)",
    )
    node.add_argument(
        "--dcap-quote-provider",
        metavar="LIB",
        default=DcapOptions.quote_provider,
        help="the quote provider library, as `serve --dcap-quote-provider` (default %(default)s)",
    )
    node.add_argument(
        "--sgx-enclave-device",
        metavar="PATH",
        type=_args.path,
        default=DcapOptions.enclave_device,
        help="the SGX enclave device (default %(default)s)",
    )
    node.add_argument(
        "--sgx-provision-device",
        metavar="PATH",
        type=_args.path,
        default=DcapOptions.provision_device,
        help="the SGX provisioning device (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace) -> DoctorOptions:
    if args.timeout <= 0 or args.pccs_timeout <= 0:
        raise UsageError("--timeout and --pccs-timeout must be positive")
    if args.warn_days < 0:
        raise UsageError("--warn-days must not be negative")
    if (args.pccs_ca_file or args.pccs_insecure) and args.pccs_url is None:
        raise UsageError("--pccs-ca-file and --pccs-insecure need --pccs-url")
    if args.pccs_ca_file and args.pccs_insecure:
        raise UsageError("--pccs-ca-file makes no sense with --pccs-insecure")
    return DoctorOptions(
        socket_path=args.socket,
        platform_dir=args.platform or os.environ.get(PLATFORM_ENV) or None,
        pccs_url=args.pccs_url,
        root_ca=args.root_ca,
        admin_url=args.admin_url,
        timeout=args.timeout,
        pccs_timeout=args.pccs_timeout,
        pccs_insecure=args.pccs_insecure,
        pccs_ca_file=args.pccs_ca_file,
        warn_within=timedelta(days=args.warn_days),
        node=DcapOptions(
            library=args.dcap_library,
            quote_provider=args.dcap_quote_provider,
            enclave_device=args.sgx_enclave_device,
            provision_device=args.sgx_provision_device,
        ),
    )


def run(args: argparse.Namespace) -> int:
    report = run_doctor(_options(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(render(report))
    return report.exit_code


_MARK = {
    CheckStatus.PASS: "pass",
    CheckStatus.WARN: "WARN",
    CheckStatus.FAIL: "FAIL",
    CheckStatus.SKIP: "skip",
}
_INDENT = " " * 7


def _wrap(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=100,
        initial_indent=f"{_INDENT}{label} ",
        subsequent_indent=_INDENT + " " * (len(label) + 1),
        break_on_hyphens=False,
        break_long_words=False,
    )


def render_check(check: CheckResult) -> list[str]:
    """One check: ``[FAIL] name: summary [codes]``, then what the codes mean and the fix."""
    line = f"[{_MARK[check.status]}] {check.name}: {check.summary}"
    if check.codes:
        line += " [" + "; ".join(code.label() for code in check.codes) + "]"
    lines = [line]
    if check.status in (CheckStatus.FAIL, CheckStatus.WARN):
        for code in check.codes:
            if code.meaning:
                lines += _wrap("means:", f"{code.label()}: {code.meaning}")
        for fix in check.fix:
            lines += _wrap("fix:", fix)
    for note in check.details.get("notes", ()):
        lines += _wrap("note:", str(note))
    return lines


def render(report: DoctorReport) -> str:
    lines = [
        f"sgx-quote-helper doctor {__version__} (hosts QE3 ISVSVN {QE_SVN}, PCE ISVSVN {PCE_SVN})"
    ]
    for check in report.checks:
        lines += render_check(check)
    counts = report.counts()
    lines.append(
        f"overall: {_MARK[report.overall]} ({counts['pass']} passed, {counts['warn']} warned, "
        f"{counts['fail']} failed, {counts['skip']} skipped)"
    )
    return "\n".join(lines)
