"""The quote helper daemon: asyncio AESM server, config, metrics, health, access control."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
from pathlib import Path

from sgx_quote_helper._logging import configure_logging, log_event
from sgx_quote_helper.backends import DcapOptions, create_backend
from sgx_quote_helper.backends._certification import pck_source_for
from sgx_quote_helper.service._config import (
    DEFAULT_SOCKET,
    ENV_PREFIX,
    ConfigError,
    ServiceConfig,
    load_config,
)
from sgx_quote_helper.service._metrics import DaemonMetrics
from sgx_quote_helper.service._server import PeerCredentials, QuoteHelperServer, StartupError


def _check_directories(config: ServiceConfig, state_dir: Path) -> None:
    """Fail before binding when the platform or the state directory is unusable."""
    if config.platform is not None and not config.platform.is_dir():
        raise StartupError(
            f"the platform directory {config.platform} does not exist or is not a "
            "directory (create one with `sgx-quote-helper sim init DIR` and pass DIR/platform)"
        )
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"the state directory {state_dir} is not usable ({exc.strerror}): the sealed "
            "attestation key and the PCK chain cache live there; check --state-dir, its "
            "owner and its mode"
        ) from None


def dcap_options(config: ServiceConfig) -> DcapOptions:
    """The dcap backend's options from the daemon's configuration."""
    return DcapOptions(
        library=config.dcap_library,
        qe3_logic_library=config.dcap_qe3_logic_library,
        quote_provider=config.dcap_quote_provider,
        qe3_path=config.dcap_qe3_path,
        pce_path=config.dcap_pce_path,
        qpl_path=config.dcap_qpl_path,
        ide_path=config.dcap_ide_path,
        enclave_device=config.sgx_enclave_device,
        provision_device=config.sgx_provision_device,
        queue_depth=config.dcap_queue_depth,
        queue_timeout=config.dcap_queue_timeout,
    )


def build_server(config: ServiceConfig) -> QuoteHelperServer:
    """Everything that can fail before binding: directories, PCK source, backend, metrics."""
    metrics = DaemonMetrics()
    if config.backend == "proxy":
        # Quoting happens upstream: no platform, PCK source or state here.
        assert config.upstream is not None  # checked by the config
        backend = create_backend(
            "proxy",
            upstream=config.upstream,
            upstream_timeout=config.upstream_timeout,
            on_upstream_failure=metrics.upstream_failed,
        )
        return QuoteHelperServer(config, backend, metrics=metrics)
    if config.backend == "dcap":
        # Intel's library keeps its own state (the attestation key) and gets
        # the PCK chain through its quote provider library.
        backend = create_backend("dcap", dcap=dcap_options(config))
        return QuoteHelperServer(config, backend, metrics=metrics)
    state_dir = config.effective_state_dir()
    _check_directories(config, state_dir)

    def count(outcome: str) -> None:
        metrics.pck_fetches.labels(outcome=outcome).inc()

    source = pck_source_for(
        pccs_url=config.pccs_url,
        platform_dir=config.platform,
        cache_dir=state_dir / "pck-cache",
        pccs_insecure=config.pccs_insecure,
        pccs_ca_file=config.pccs_ca_file,
        on_outcome=count,
    )
    try:
        backend = create_backend(
            config.backend,
            platform_dir=config.platform,
            state_dir=state_dir,
            pck_source=source,
            qe_svn=config.qe_svn,
            pce_svn=config.pce_svn,
            upstream=config.upstream,
        )
    except BaseException:
        source.close()
        raise
    # The source's PCCS client (if any) is closed when the daemon stops.
    return QuoteHelperServer(
        config, backend, metrics=metrics, refresh_pck=source.refresh_all, on_close=[source.close]
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
    "DEFAULT_SOCKET",
    "ENV_PREFIX",
    "ConfigError",
    "DaemonMetrics",
    "PeerCredentials",
    "QuoteHelperServer",
    "ServiceConfig",
    "StartupError",
    "build_server",
    "load_config",
    "run_daemon",
]
