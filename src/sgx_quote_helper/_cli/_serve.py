"""``sgx-quote-helper serve``: the quote helper daemon."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sgx_quote_helper._version import __version__
from sgx_quote_helper.service import ENV_PREFIX, load_config, run_daemon


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the quote helper daemon on the AESM socket",
        description="Serve AESM quote-ex requests on a Unix socket (default "
        "/var/run/aesmd/aesm.socket). Every option can also be given as an environment "
        "variable SGX_QUOTE_HELPER_<OPTION> or in a TOML --config file; flags win, then "
        "the environment, then the file. SIGTERM or SIGINT drains in-flight requests "
        "and exits 0; a second signal exits at once.",
    )
    add = parser.add_argument
    add(
        "--config",
        type=Path,
        help=f"TOML file with settings named like the flags (or ${ENV_PREFIX}CONFIG)",
    )
    add(
        "--version",
        action="store_true",
        help="print the release and the QE/PCE SVNs this configuration hosts, and exit",
    )
    add("--socket", help="Unix socket path (default /var/run/aesmd/aesm.socket)")
    add("--socket-mode", help="octal mode of the socket (default 777, as aesmd)")
    add("--socket-owner", help="user name or uid to own the socket")
    add("--socket-group", help="group name or gid to own the socket")
    add("--allow-uid", action="append", default=[], help="only serve this uid (repeatable)")
    add("--allow-gid", action="append", default=[], help="only serve this gid (repeatable)")
    add(
        "--backend",
        help="sim (default: the simulated platform), dcap (Intel's quote library on an SGX "
        "node) or proxy (an upstream AESM socket)",
    )
    add("--platform", help="simulated platform directory (DIR/platform of `sim init`)")
    add("--pccs-url", help="PCCS base URL for the PCK certificate chain")
    add("--pccs-insecure", action="store_const", const="true", help="do not verify PCCS TLS")
    add("--pccs-ca-file", help="CA bundle to verify the PCCS TLS certificate")
    proxy = parser.add_argument_group(
        "proxy backend", "forward to an upstream AESM socket (see docs/backends.md)"
    )
    proxy.add_argument("--upstream", help="the upstream AESM socket (required)")
    proxy.add_argument(
        "--upstream-timeout",
        help="seconds one upstream exchange may take before the client gets "
        "AESM_SERVICE_UNAVAILABLE (default 10)",
    )
    dcap = parser.add_argument_group(
        "dcap backend", "Intel's DCAP quote library on an SGX node (see docs/backends.md)"
    )
    dcap.add_argument(
        "--dcap-library", help="the quote library (default libsgx_dcap_ql.so.1, from ld.so's path)"
    )
    dcap.add_argument(
        "--dcap-qe3-logic-library",
        help="library with sgx_ql_get_quote, needed for qe_report_info (default: found through "
        "--dcap-library, which links libsgx_qe3_logic.so; empty: do not use)",
    )
    dcap.add_argument(
        "--dcap-quote-provider",
        help="quote provider library to check for (default libdcap_quoteprov.so.1)",
    )
    for enclave, what in (
        ("qe3", "QE3 enclave (libsgx_qe3.signed.so)"),
        ("pce", "PCE enclave (libsgx_pce.signed.so)"),
        ("qpl", "quote provider library the quote library loads"),
        ("ide", "ID enclave (libsgx_id_enclave.signed.so)"),
    ):
        dcap.add_argument(
            f"--dcap-{enclave}-path", help=f"full path of the {what} (sgx_ql_set_path)"
        )
    dcap.add_argument("--sgx-enclave-device", help="default /dev/sgx_enclave")
    dcap.add_argument("--sgx-provision-device", help="default /dev/sgx_provision")
    dcap.add_argument(
        "--dcap-queue-depth",
        help="callers that may wait for the single-threaded QE (default 64); beyond: AESM_BUSY",
    )
    dcap.add_argument(
        "--dcap-queue-timeout",
        help="seconds a caller waits for its turn at the QE (default 30); then AESM_BUSY",
    )
    add("--state-dir", help="directory for the sealed attestation key and caches")
    add("--admin-listen", help="HOST:PORT or unix:PATH for /metrics, /healthz, /readyz")
    add("--log-format", help="text (default) or json")
    add("--log-level", help="debug, info (default), warning or error")
    add("--drain-timeout", help="seconds to finish in-flight requests on SIGTERM")
    add("--read-timeout", help="seconds a client has to send its request")
    add("--max-connections", help="concurrent client connections")
    add("--max-inflight", help="quote requests processed at once")
    add("--qe-svn", help="QE3 ISVSVN this (simulated) release hosts")
    add("--pce-svn", help="PCE ISVSVN this (simulated) release hosts")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    flags = {key: value for key, value in vars(args).items() if key not in ("func", "command")}
    config_file = flags.pop("config")
    if config_file is None and os.environ.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(os.environ[ENV_PREFIX + "CONFIG"])
    if flags.pop("version"):
        # The SVNs after flags, environment and file are merged: what this
        # daemon would host (DESIGN.md section 4, "Versions").
        config = load_config(flags, config_file=config_file, validate=False)
        print(
            f"sgx-quote-helper {__version__} (hosts QE3 ISVSVN {config.qe_svn}, "
            f"PCE ISVSVN {config.pce_svn})"
        )
        return 0
    config = load_config(flags, config_file=config_file)
    return run_daemon(config)
