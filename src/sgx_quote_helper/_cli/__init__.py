"""Command-line interface: argument parsing and the only place that exits.

Each subcommand lives in its own ``_cli/_<name>.py`` module exposing
``register(subparsers)``; the module sets ``func`` on its parser with
``set_defaults(func=...)``. A command function returns the process exit code.
Library errors are turned into one clear message here, never a traceback.

Exit status, the same in every command: 0 success, 1 the operation failed (a
quote rejected, a service unreachable, a file unusable), 2 the command was
used wrongly (argparse's own errors, and every :class:`UsageError` such as a
bad hex string, an out-of-range number or an unusable URL).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from collections.abc import Sequence

from sgx_quote_helper._logging import cli_logging
from sgx_quote_helper._version import PCE_SVN, QE_SVN, __version__
from sgx_quote_helper.client import QuoteClientError
from sgx_quote_helper.errors import SgxQuoteHelperError, UsageError
from sgx_quote_helper.explain import guide

#: Exit status for a command used wrongly, as argparse exits on its own errors.
EXIT_USAGE = 2

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


class OutputClosedError(SgxQuoteHelperError):
    """The command has something to write on stdout, and stdout was closed (``>&-``)."""


class _ClosedOutput(io.RawIOBase):
    """``sys.stdout``'s bytes when the process started without a standard output."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OutputClosedError(
            "standard output is closed (the command was started with >&- or without a "
            "stdout), so there is nowhere to write the result; redirect it to a file "
            "(> FILE), or give -o FILE where the command has it"
        )


def _guard_standard_streams() -> None:
    """Make a closed stdout fail with one clear error, and a closed stderr silent.

    Python sets ``sys.stdout``/``sys.stderr`` to ``None`` when descriptor 1 or
    2 is closed at startup, and a write then dies with an ``AttributeError``.
    The descriptor is also held on ``/dev/null``, so that no file or socket
    opened later becomes this process's (or a child's) stdout or stderr.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None or _is_open(fd):
            continue
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedOutput(), write_through=True)
    if sys.stderr is None:
        # Nobody reads it: error messages are dropped, the exit status remains.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the process's lifetime)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def exit_status(exc: SgxQuoteHelperError) -> int:
    """2 for a usage error, 1 for every other failure.

    A quote helper answering ``SGX_ERROR_INVALID_PARAMETER`` is a failed
    operation, not this command's misuse, although its error is a usage error
    of the client API.
    """
    if isinstance(exc, UsageError) and not isinstance(exc, QuoteClientError):
        return EXIT_USAGE
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    _guard_standard_streams()
    with cli_logging("sgx-quote-helper"):
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # --help and --version write to stdout
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        code: int = func(args)
    except SgxQuoteHelperError as exc:
        print(f"sgx-quote-helper: error: {exc.diagnostics(guide)}", file=sys.stderr)
        return exit_status(exc)
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
