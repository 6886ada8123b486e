"""The quote helper daemon: asyncio AESM server, config, metrics, health, access control."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import tempfile
from pathlib import Path

from sgx_quote_helper._fs import make_directory
from sgx_quote_helper._logging import configure_logging, log_event
from sgx_quote_helper.backends import backend_factory, pck_source_for
from sgx_quote_helper.platform import Platform
from sgx_quote_helper.service._config import (
    CONFIG_FILE_ENV,
    CONFIG_FILE_FLAG,
    CONFIG_FILE_HELP,
    DEFAULT_SOCKET,
    ENV_PREFIX,
    OPTIONS,
    ConfigError,
    Option,
    ServiceConfig,
    Setting,
    load_config,
)
from sgx_quote_helper.service._connection import PeerCredentials
from sgx_quote_helper.service._lock import ExclusiveLock, LockHeldError
from sgx_quote_helper.service._metrics import DaemonMetrics
from sgx_quote_helper.service._server import QuoteHelperServer, StartupError


def _check_directories(config: ServiceConfig, state_dir: Path) -> None:
    """Fail before binding when the platform or the state directory is unusable."""
    if config.platform is not None and not config.platform.is_dir():
        raise StartupError(
            f"the platform directory {config.platform} does not exist or is not a "
            "directory (create one with `sgx-quote-helper sim init DIR` and pass DIR/platform)"
        )
    if config.platform is not None:
        # A malformed platform.json is named as such here, before the PCK
        # source is chosen: otherwise the error would blame the PCK source.
        Platform.load(config.platform, need_provisioning=False)
    try:
        # 0700 whatever the umask: in simulation anyone who reads enclave.secret
        # can seal with the QE's key, so a state directory others can write to
        # would let them plant an attestation key they know (docs/security.md).
        make_directory(state_dir, 0o700)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"the state directory {state_dir} is not usable ({exc.strerror}): the sealed "
            "attestation key and the PCK chain cache live there; check --state-dir, its "
            "owner and its mode"
        ) from None


def build_server(config: ServiceConfig) -> QuoteHelperServer:
    """Everything that can fail before binding: directories, PCK source, backend, metrics."""
    metrics = DaemonMetrics()
    factory = backend_factory(config.backend)
    options = dataclasses.replace(
        config.backend_options(), on_upstream_failure=metrics.upstream_failed
    )
    if not factory.uses_pck_source:
        # Intel's library (through its quote provider) and an upstream AESM
        # get the PCK chain themselves: no PCK source, no state directory.
        return QuoteHelperServer(config, factory.create(options), metrics=metrics)
    state_dir = config.effective_state_dir()
    _check_directories(config, state_dir)
    # Held while the daemon runs: a second daemon on this state directory
    # would race this one on the attestation key.
    state_lock = ExclusiveLock(
        state_dir / "daemon.lock",
        f"the state directory {state_dir}",
        "two daemons must never share one (they would race on the attestation key): stop "
        "it first, or give this one another --state-dir",
    )
    try:
        state_lock.acquire()
    except LockHeldError as exc:
        raise StartupError(str(exc)) from None
    try:
        return _build_locked(config, metrics, state_dir, state_lock)
    except BaseException:
        state_lock.release()
        raise


def _build_locked(
    config: ServiceConfig, metrics: DaemonMetrics, state_dir: Path, state_lock: ExclusiveLock
) -> QuoteHelperServer:

    def count(outcome: str) -> None:
        metrics.pck_fetches.labels(outcome=outcome).inc()

    source = pck_source_for(
        pccs_url=config.pccs_url,
        platform_dir=config.platform,
        cache_dir=state_dir / "pck-cache",
        pccs_insecure=config.pccs_insecure,
        pccs_ca_file=config.pccs_ca_file,
        on_outcome=count,
        on_chain=lambda certificate: metrics.pck_chain_loaded(certificate.chain_pem()),
    )
    try:
        options = dataclasses.replace(config.backend_options(), pck_source=source)
        backend = backend_factory(config.backend).create(options)
    except BaseException:
        source.close()
        raise
    # The source's PCCS client (if any) is closed when the daemon stops.
    return QuoteHelperServer(
        config,
        backend,
        metrics=metrics,
        refresh_pck=source.refresh_all,
        on_close=[source.close, state_lock.release],
    )


def run_daemon(config: ServiceConfig) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code."""
    configure_logging(config.log_format, config.log_level)
    # A webhook may inject SGX_AESM_ADDR into every container, this one
    # included; with it set, Intel's quote library (dcap backend) would send
    # this daemon's quote requests back to the daemon.
    if os.environ.pop("SGX_AESM_ADDR", None) is not None:
        log_event(
            logging.getLogger("sgx_quote_helper.service"),
            logging.INFO,
            "daemon.sgx_aesm_addr_unset",
            reason="this daemon quotes in-process; the variable is for its clients",
        )
    server = build_server(config)
    # Everything loaded so far (modules, keys, the backend) lives as long as
    # the process: keep it out of the cyclic collector's full passes, which
    # would otherwise walk it while clients wait.
    gc.collect()
    gc.freeze()

    async def main() -> None:
        server.install_signal_handlers()
        await server.serve()

    asyncio.run(main())
    return 0


__all__ = [
    "CONFIG_FILE_ENV",
    "CONFIG_FILE_FLAG",
    "CONFIG_FILE_HELP",
    "DEFAULT_SOCKET",
    "ENV_PREFIX",
    "OPTIONS",
    "ConfigError",
    "DaemonMetrics",
    "Option",
    "PeerCredentials",
    "QuoteHelperServer",
    "ServiceConfig",
    "Setting",
    "StartupError",
    "build_server",
    "load_config",
    "run_daemon",
]
