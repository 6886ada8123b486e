"""``sgx-quote-helper serve``: the quote helper daemon."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sgx_quote_helper._cli import _args
from sgx_quote_helper._version import __version__
from sgx_quote_helper.service import (
    CONFIG_FILE_ENV,
    CONFIG_FILE_FLAG,
    CONFIG_FILE_HELP,
    DEFAULT_SOCKET,
    OPTIONS,
    load_config,
    run_daemon,
)

#: The settings' metavars that name a file, directory or socket (service._config kinds).
_PATH_METAVARS = frozenset({"DIR", "FILE", "PATH"})

_GROUP_HELP = {
    "sim": "the simulated QE3/PCE of a `sim init` platform (docs/backends.md)",
    "dcap": "Intel's DCAP quote library on an SGX node (docs/backends.md)",
    "proxy": "forward to an upstream AESM socket (docs/backends.md)",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the quote helper daemon on the AESM socket",
        description=f"Serve AESM quote-ex requests on a Unix socket (default {DEFAULT_SOCKET}). "
        "Every option can also be given as an environment variable "
        "SGX_QUOTE_HELPER_<OPTION> or in a TOML --config file; flags win, then "
        "the environment, then the file. SIGTERM or SIGINT drains in-flight requests "
        "and exits 0; a second signal exits at once. SIGHUP drains the same way and "
        "restarts the daemon in place (same pid), reading the configuration again.",
    )
    parser.add_argument(
        CONFIG_FILE_FLAG,
        dest="config_file",
        metavar="FILE",
        type=_args.path,
        help=f"{CONFIG_FILE_HELP} (or ${CONFIG_FILE_ENV})",
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the release and the QE/PCE SVNs this configuration hosts, and exit",
    )
    # One flag per setting of the daemon's configuration table; values stay
    # text here and are converted and checked with the environment's and the file's.
    # A backend's own settings are listed under its name.
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        entry = option.setting
        target: argparse._ActionsContainer = parser
        if entry.group:
            if entry.group not in groups:
                groups[entry.group] = parser.add_argument_group(
                    f"{entry.group} backend", _GROUP_HELP.get(entry.group)
                )
            target = groups[entry.group]
        repeatable = " (repeatable)" if entry.repeatable else ""
        text = f"{option.help}{repeatable} [default: {entry.default_text}; ${option.env}]"
        text = text.replace("%", "%%")  # argparse formats help with %
        if entry.switch:
            target.add_argument(
                option.flag, dest=option.name, action="store_const", const="true", help=text
            )
        else:
            target.add_argument(
                option.flag,
                dest=option.name,
                metavar=entry.metavar,
                # An empty path flag is a mistake (an unset shell variable), not
                # "the default" as an empty environment variable is.
                type=_args.path_text if entry.metavar in _PATH_METAVARS else str,
                action="append" if entry.repeatable else "store",
                help=text,
            )
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    flags = {option.name: getattr(args, option.name) for option in OPTIONS}
    config_file: Path | None = args.config_file
    if config_file is None and os.environ.get(CONFIG_FILE_ENV):
        config_file = Path(os.environ[CONFIG_FILE_ENV])
    if args.version:
        # The SVNs after flags, environment and file are merged: what this
        # daemon would host (DESIGN.md section 4, "Versions").
        config = load_config(flags, config_file=config_file, validate=False)
        print(
            f"sgx-quote-helper {__version__} (hosts QE3 ISVSVN {config.qe_svn}, "
            f"PCE ISVSVN {config.pce_svn})"
        )
        return 0
    config = load_config(flags, config_file=config_file)
    # SIGHUP re-reads the configuration as a restart would, and refuses to
    # restart into one that no longer loads.
    return run_daemon(config, reread=lambda: load_config(flags, config_file=config_file))
