"""The checks ``doctor`` runs, in order, each returning a :class:`CheckResult`.

The order follows the path of a quote (docs/doctor.md):

1. ``environment``: ``SGX_AESM_ADDR`` and the mode and socket it selects.
2. ``socket``: the socket file, its directory, mounts and permissions.
3. ``daemon``: the daemon answers the quote-ex calls an application makes.
4. ``quote``: a test quote for a simulated enclave (needs ``--platform``).
5. ``pccs``: the PCCS answers and its collateral is within its validity.
6. ``tcb``: the TCB status the test quote gets (needs the quote, the
   collateral and ``--root-ca``).
7. ``node``: on SGX hardware, what the ``dcap`` backend needs (devices,
   Intel's quote library, a quote provider, a first QE target info); skipped
   elsewhere.

A check whose input was not given is skipped, and so is a check whose input
comes from a check that failed (the first failure is the cause to fix). No check
raises for what it diagnoses: failures of the layers below (client, PCCS,
verifier, platform) become results naming their SGX status codes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sgx_quote_helper._net import http_base_url
from sgx_quote_helper.backends import DcapOptions
from sgx_quote_helper.client import DEFAULT_TIMEOUT
from sgx_quote_helper.doctor._collateral import DEFAULT_WARN_WITHIN, check_pccs, check_tcb
from sgx_quote_helper.doctor._daemon import DaemonFacts, check_daemon, check_quote
from sgx_quote_helper.doctor._fs import Identity
from sgx_quote_helper.doctor._local import check_environment, check_socket
from sgx_quote_helper.doctor._node import check_node
from sgx_quote_helper.doctor._result import CheckResult, DoctorReport, skipped
from sgx_quote_helper.pccs import DEFAULT_TIMEOUT as PCCS_DEFAULT_TIMEOUT
from sgx_quote_helper.pccs import Collateral

#: The checks, in the order they run.
CHECK_NAMES = ("environment", "socket", "daemon", "quote", "pccs", "tcb", "node")


@dataclass(frozen=True)
class DoctorOptions:
    """The inputs of a doctor run; ``None`` means not given (the check is skipped)."""

    #: The socket to check; default: what ``SGX_AESM_ADDR`` selects.
    socket_path: str | None = None
    #: A simulated platform directory, to make a test REPORT for the QE.
    platform_dir: str | None = None
    pccs_url: str | None = None
    #: The trust anchor for the TCB check (``DIR/pcs/root-ca.der`` in simulation).
    root_ca: str | None = None
    #: The daemon's admin listener (``http://HOST:PORT``), for its build info.
    admin_url: str | None = None
    #: Per read/write budget on the AESM socket (Intel's client: 15 s).
    timeout: float = DEFAULT_TIMEOUT
    pccs_timeout: float = PCCS_DEFAULT_TIMEOUT
    pccs_insecure: bool = False
    pccs_ca_file: str | None = None
    warn_within: timedelta = DEFAULT_WARN_WITHIN
    #: The environment read for ``SGX_AESM_ADDR``; default ``os.environ``.
    environ: Mapping[str, str] | None = None
    #: Whose permissions the socket check judges; default this process's.
    identity: Identity | None = None
    #: The time collateral validity is judged at; default now.
    now: datetime | None = None
    #: Where the node check looks for Intel's libraries and the SGX devices.
    node: DcapOptions | None = None

    def __post_init__(self) -> None:
        # A malformed URL is the caller's mistake, refused before any check runs
        # (not a "pccs" or "daemon" finding about a service that was never asked).
        if self.pccs_url is not None:
            http_base_url(self.pccs_url, what="--pccs-url")
        if self.admin_url is not None:
            http_base_url(self.admin_url, what="--admin-url")


def run_doctor(options: DoctorOptions | None = None) -> DoctorReport:
    """Run every check in order and return the report (never raises for a finding)."""
    opts = options or DoctorOptions()
    environ = os.environ if opts.environ is None else opts.environ
    who = opts.identity or Identity.current()
    now = opts.now  # None: the time of each check
    results: list[CheckResult] = []
    run = results.append

    environment, socket_path = check_environment(environ, opts.socket_path)
    socket_result = check_socket(socket_path, who, environ=environ)
    run(environment)
    run(socket_result)

    facts: DaemonFacts | None = None
    if socket_result.failed:
        run(skipped("daemon", "the socket is not usable (see socket)"))
    else:
        daemon, facts = check_daemon(socket_path, timeout=opts.timeout, admin_url=opts.admin_url)
        run(daemon)

    quote: bytes | None = None
    if opts.platform_dir is None:
        run(
            skipped(
                "quote",
                "no --platform (a simulated platform directory, to make a test REPORT for the QE)",
            )
        )
    elif facts is None:
        run(skipped("quote", "needs a daemon that answers (see daemon)"))
    else:
        result, quote = check_quote(facts, opts.platform_dir, timeout=opts.timeout)
        run(result)

    collateral: Collateral | None = None
    if opts.pccs_url is None:
        run(skipped("pccs", "no --pccs-url"))
    else:
        result, collateral = check_pccs(
            opts.pccs_url,
            quote=quote,
            platform_dir=opts.platform_dir,
            now=now,
            warn_within=opts.warn_within,
            timeout=opts.pccs_timeout,
            insecure=opts.pccs_insecure,
            ca_file=opts.pccs_ca_file,
        )
        run(result)

    missing = [
        flag
        for flag, value in (
            ("--platform", opts.platform_dir),
            ("--pccs-url", opts.pccs_url),
            ("--root-ca", opts.root_ca),
        )
        if value is None
    ]
    if missing:
        run(skipped("tcb", f"needs {', '.join(missing)}"))
    elif quote is None:
        run(skipped("tcb", "no test quote (see quote)"))
    elif collateral is None:
        run(skipped("tcb", "no collateral for the quote (see pccs)"))
    else:
        assert opts.root_ca is not None
        run(check_tcb(quote, collateral, opts.root_ca, now=now))
    run(check_node(opts.node or DcapOptions(), environ))
    return DoctorReport(tuple(results))
