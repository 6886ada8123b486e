"""Options that several commands share: the daemon's platform variable, the PCCS client."""

from __future__ import annotations

import argparse

from sgx_quote_helper.pccs import DEFAULT_TIMEOUT
from sgx_quote_helper.service import OPTIONS

#: The daemon's environment variable for ``--platform``; ``quote`` and ``doctor`` honour it.
PLATFORM_ENV = next(option.env for option in OPTIONS if option.name == "platform")


def add_pccs_client_options(parser: argparse.ArgumentParser) -> None:
    # For the commands that fetch from a PCCS as a client (``verify``, ``doctor``).
    """``--pccs-ca-file``, ``--pccs-insecure`` and ``--pccs-timeout`` (next to ``--pccs-url``)."""
    parser.add_argument("--pccs-ca-file", metavar="FILE", help="CA certificate(s) for PCCS TLS")
    parser.add_argument(
        "--pccs-insecure",
        action="store_true",
        help="do not verify the PCCS TLS certificate (self-signed PCCS; insecure)",
    )
    parser.add_argument(
        "--pccs-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"default: {DEFAULT_TIMEOUT:g}",
    )
