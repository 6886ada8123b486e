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
import sys
from pathlib import Path

from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.platform import Platform, demo_app_identity, load_manifest
from sgx_quote_helper.sgx import TargetInfo

_REPORT_DATA_SIZE = 64


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
        help="the platform directory (DIR/platform of `sim init DIR`)",
    )
    parser.add_argument(
        "--enclave",
        metavar="FILE",
        help="enclave manifest (TOML, see docs/enclave-manifest.md); default: the built-in "
        "demo application enclave",
    )
    parser.add_argument(
        "--target-info",
        required=True,
        metavar="HEX",
        help="the 512-byte sgx_target_info_t of the enclave the REPORT is for, as hex",
    )
    parser.add_argument(
        "--report-data",
        required=True,
        metavar="HEX",
        help="REPORTDATA, up to 64 bytes as hex (zero-padded to 64)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="where to write the REPORT ('-': stdout)",
    )
    parser.set_defaults(func=run_report)


def _hex_argument(value: str, option: str) -> bytes:
    text = "".join(value.split()).removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{option} must be hex (e.g. 00ff...), got {value[:40]!r}") from None


def run_report(args: argparse.Namespace) -> int:
    target_raw = _hex_argument(args.target_info, "--target-info")
    if len(target_raw) != TargetInfo.LAYOUT.size:
        raise UsageError(
            f"--target-info must be {TargetInfo.LAYOUT.size} bytes "
            f"({2 * TargetInfo.LAYOUT.size} hex digits), got {len(target_raw)} bytes"
        )
    report_data = _hex_argument(args.report_data, "--report-data")
    if len(report_data) > _REPORT_DATA_SIZE:
        raise UsageError(
            f"--report-data is at most {_REPORT_DATA_SIZE} bytes, got {len(report_data)}"
        )
    identity = demo_app_identity() if args.enclave is None else load_manifest(args.enclave)
    platform = Platform.load(args.platform, need_provisioning=False)
    report = platform.cpu().ereport(
        identity, TargetInfo.from_bytes(target_raw), report_data.ljust(_REPORT_DATA_SIZE, b"\0")
    )
    data = report.to_bytes()
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            Path(args.output).write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write the REPORT to {args.output}: {exc}") from exc
    return 0
