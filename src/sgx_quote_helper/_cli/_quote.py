"""``sgx-quote-helper quote``: one quote through the client library.

It plays a simulated application enclave: get the QE's target info from
whichever quoting mode ``SGX_AESM_ADDR`` selects (out of process through the
quote helper when it is set, in process otherwise), make the enclave's REPORT
for it with the given report data (EREPORT on the simulated CPU), have it
quoted, and write the quote. A one-line summary goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from sgx_quote_helper import client
from sgx_quote_helper._cli import _args
from sgx_quote_helper._cli._options import (
    PLATFORM_ENV,
    add_enclave_option,
    add_report_data_and_output,
    enclave_identity,
    report_data_argument,
    write_output,
)
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform import Platform
from sgx_quote_helper.sgx import QuoteHeader


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quote",
        help="quote a simulated enclave's REPORT through the client library",
        description="Make a simulated application enclave's REPORT for the QE's target info "
        "and get it quoted, out of process through the quote helper when SGX_AESM_ADDR is "
        "set (its value may name the socket: an absolute path or unix:PATH), in process "
        "otherwise (this process hosts QE3/PCE and needs the provisioning secret).",
    )
    parser.add_argument(
        "--platform",
        metavar="DIR",
        type=_args.path_text,
        help="the simulated platform directory (DIR/platform of `sim init DIR`); "
        f"default ${PLATFORM_ENV}",
    )
    add_enclave_option(parser)
    add_report_data_and_output(parser, "quote")
    _add_mode_options(parser)
    parser.set_defaults(func=run_quote)


def _add_mode_options(parser: argparse.ArgumentParser) -> None:
    """Options that apply to one mode only, in a group each."""
    inproc = parser.add_argument_group("in-process mode (SGX_AESM_ADDR unset)")
    inproc.add_argument(
        "--qe-svn",
        type=_args.u16(),
        metavar="N",
        help="QE3 ISVSVN bundled into this library (simulation; default the release's)",
    )
    inproc.add_argument(
        "--pce-svn", type=_args.u16(), metavar="N", help="PCE ISVSVN bundled (simulation)"
    )
    inproc.add_argument(
        "--state-dir",
        metavar="DIR",
        type=_args.path_text,
        help="where the in-process QE keeps its sealed key (default: per user, "
        "$XDG_STATE_HOME/sgx-quote-helper/in-process/...)",
    )
    inproc.add_argument(
        "--pccs-url",
        type=_args.base_url,
        metavar="URL",
        help="PCCS for the PCK certificate (default: the embedded manufacturer of the "
        "`sim init` directory)",
    )
    outproc = parser.add_argument_group("out-of-process mode (SGX_AESM_ADDR set)")
    outproc.add_argument(
        "--timeout",
        type=_args.seconds(),
        default=client.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="per read/write timeout on the AESM socket (default 15, as Intel's client)",
    )


def run_quote(args: argparse.Namespace) -> int:
    report_data = report_data_argument(args.report_data)
    platform_dir = args.platform or os.environ.get(PLATFORM_ENV)
    if not platform_dir:
        raise UsageError(
            "give --platform DIR (the `platform` directory of `sim init DIR`) or set "
            f"{PLATFORM_ENV}: the simulated enclave makes its REPORT on that platform's CPU"
        )
    identity = enclave_identity(args.enclave)
    # The application side only reads the enclave secret (like /dev/sgx_enclave).
    platform = Platform.load(platform_dir, need_provisioning=False)

    inproc_options = {
        key: value
        for key, value in (("qe_svn", args.qe_svn), ("pce_svn", args.pce_svn))
        if value is not None
    }
    quoter = client.quoter(
        platform_dir=platform_dir,
        state_dir=args.state_dir,
        pccs_url=args.pccs_url,
        timeout=args.timeout,
        **inproc_options,
    )
    if quoter.mode is client.Mode.OUT_OF_PROCESS and (inproc_options or args.state_dir):
        print(
            "sgx-quote-helper: note: --qe-svn, --pce-svn and --state-dir apply to in-process "
            "mode; the quote helper hosts its own QE/PCE",
            file=sys.stderr,
        )

    target = quoter.get_target_info()
    report = platform.cpu().ereport(identity, target, report_data)
    quote = quoter.get_quote(report)

    write_output(args.output, quote, "quote")
    header = QuoteHeader.from_bytes(quote[: QuoteHeader.LAYOUT.size])
    print(
        f"quote: mode={quoter.mode.value} size={len(quote)} qe_svn={header.qe_svn} "
        f"pce_svn={header.pce_svn} "
        f"enclave={identity.name} -> {args.output} [{quoter.describe()}]",
        file=sys.stderr,
    )
    return 0
