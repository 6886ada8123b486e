"""``sgx-quote-helper sim report``: a simulated EREPORT, written as 432 bytes.

It lets any AESM client be tested against the daemon: make a REPORT for the
QE's target info (from InitQuoteEx) as an application enclave would, then send
it with GetQuoteEx. It reads only the platform's enclave secret, never the
provisioning secret, exactly like an application process.

The ``sim`` command group lives in ``_cli/_sim.py``, which calls
:func:`add_report_command` with its subparsers.
"""

from __future__ import annotations

import argparse

from sgx_quote_helper._cli import _args
from sgx_quote_helper._cli._options import (
    add_enclave_option,
    add_report_data_and_output,
    enclave_identity,
    hex_argument,
    report_data_argument,
    write_output,
)
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform import Platform
from sgx_quote_helper.sgx import TargetInfo


def add_report_command(sim_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the ``sim`` command group."""
    parser = sim_subparsers.add_parser(
        "report",
        help="make a simulated EREPORT (432 bytes) targeted at an enclave",
        description="Make a REPORT as a simulated application enclave would (EREPORT), "
        "MACed for the enclave named by --target-info (usually the QE's target info from "
        "InitQuoteEx), and write its 432 bytes to OUT.",
    )
    parser.add_argument(
        "--platform",
        required=True,
        metavar="DIR",
        type=_args.path_text,
        help="the platform directory (DIR/platform of `sim init DIR`)",
    )
    add_enclave_option(parser)
    parser.add_argument(
        "--target-info",
        required=True,
        metavar="HEX",
        help="the 512-byte sgx_target_info_t of the enclave the REPORT is for, as hex",
    )
    add_report_data_and_output(parser, "REPORT")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    target_raw = hex_argument(args.target_info, "--target-info")
    if len(target_raw) != TargetInfo.LAYOUT.size:
        raise UsageError(
            f"--target-info must be {TargetInfo.LAYOUT.size} bytes "
            f"({2 * TargetInfo.LAYOUT.size} hex digits), got {len(target_raw)} bytes"
        )
    report_data = report_data_argument(args.report_data)
    identity = enclave_identity(args.enclave)
    platform = Platform.load(args.platform, need_provisioning=False)
    report = platform.cpu().ereport(identity, TargetInfo.from_bytes(target_raw), report_data)
    write_output(args.output, report.to_bytes(), "REPORT")
    return 0
