"""Options that several commands share: the platform variable, REPORTDATA, output, PCCS."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sgx_quote_helper._cli import _args
from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.pccs import DEFAULT_TIMEOUT
from sgx_quote_helper.platform import EnclaveIdentity, demo_app_identity, load_manifest
from sgx_quote_helper.service import OPTIONS
from sgx_quote_helper.sgx import REPORT_DATA_SIZE

#: The daemon's environment variable for ``--platform``; ``quote`` and ``doctor`` honour it.
PLATFORM_ENV = next(option.env for option in OPTIONS if option.name == "platform")


def add_pccs_client_options(parser: argparse.ArgumentParser) -> None:
    # For the commands that fetch from a PCCS as a client (``verify``, ``doctor``).
    """``--pccs-ca-file``, ``--pccs-insecure`` and ``--pccs-timeout`` (next to ``--pccs-url``)."""
    parser.add_argument(
        "--pccs-ca-file",
        metavar="FILE",
        type=_args.path_text,
        help="CA certificate(s) for PCCS TLS",
    )
    parser.add_argument(
        "--pccs-insecure",
        action="store_true",
        help="do not verify the PCCS TLS certificate (self-signed PCCS; insecure)",
    )
    parser.add_argument(
        "--pccs-timeout",
        metavar="SECONDS",
        type=_args.seconds(),
        default=DEFAULT_TIMEOUT,
        help=f"default: {DEFAULT_TIMEOUT:g}",
    )


def add_enclave_option(parser: argparse.ArgumentParser) -> None:
    """``--enclave FILE``: the simulated application enclave that makes the REPORT."""
    parser.add_argument(
        "--enclave",
        metavar="FILE",
        type=_args.path_text,
        help="enclave manifest (TOML, see docs/enclave-manifest.md); default: the built-in "
        "demo application enclave",
    )


def enclave_identity(manifest: str | None) -> EnclaveIdentity:
    """The identity ``--enclave`` names, or the built-in demo application enclave's."""
    return demo_app_identity() if manifest is None else load_manifest(manifest)


def add_report_data_and_output(parser: argparse.ArgumentParser, what: str) -> None:
    """``--report-data HEX`` and ``-o/--output OUT`` of the commands that make ``what``."""
    parser.add_argument(
        "--report-data",
        required=True,
        metavar="HEX",
        help=f"REPORTDATA, up to {REPORT_DATA_SIZE} bytes as hex (zero-padded to "
        f"{REPORT_DATA_SIZE})",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        type=_args.path_text,
        help=f"where to write the {what} ('-': stdout)",
    )


def hex_argument(value: str, option: str) -> bytes:
    """The bytes of a hex option value (whitespace and a ``0x`` prefix allowed)."""
    text = "".join(value.split()).removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{option} must be hex (e.g. 00ff...), got {value[:40]!r}") from None


def report_data_argument(value: str) -> bytes:
    """``--report-data``: at most 64 bytes of hex, zero-padded to 64."""
    data = hex_argument(value, "--report-data")
    if len(data) > REPORT_DATA_SIZE:
        raise UsageError(f"--report-data is at most {REPORT_DATA_SIZE} bytes, got {len(data)}")
    return data.ljust(REPORT_DATA_SIZE, b"\0")


def write_output(output: str, data: bytes, what: str) -> None:
    """``data`` to the ``--output`` file, or to stdout for ``-``."""
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        Path(output).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {output}: {exc}") from exc
