"""Command-line interface: argument parsing and the only place that exits.

Each subcommand lives in its own ``_cli/_<name>.py`` module exposing
``register(subparsers)``; the module sets ``func`` on its parser with
``set_defaults(func=...)``. A command function returns the process exit code.
Library errors are turned into one clear message here, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.explain import guide

# One entry per command module; each is imported and asked to register itself.
COMMAND_MODULES: tuple[str, ...] = (
    "_serve",
    "_verify",
    "_sim",
    "_pccs",
    "_explain",
    "_inspect",
    "_quote",
    "_doctor",
    "_demo",
    "_kube",
)


def version_text() -> str:
    return f"sgx-quote-helper {__version__} (hosts QE3 ISVSVN {QE_SVN}, PCE ISVSVN {PCE_SVN})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgx-quote-helper",
        description="Out-of-process SGX attestation: quote helper daemon, client, "
        "simulated platform, collateral service and verifier.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"sgx_quote_helper._cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = func(args)
    except SgxQuoteHelperError as exc:
        print(f"sgx-quote-helper: error: {exc.diagnostics(guide)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`inspect q.bin | head`); nothing left to say.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 141
    except OSError as exc:
        # Last resort for a file-system or socket failure no command anticipated:
        # still one line naming the path and the cause, never a traceback.
        where = f": {exc.filename}" if exc.filename is not None else ""
        print(
            f"sgx-quote-helper: error: {exc.strerror or exc}{where}; check that the path "
            "exists, has the expected type and is accessible to this user",
            file=sys.stderr,
        )
        return 1
    return code
