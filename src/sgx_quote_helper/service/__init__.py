"""The quote helper daemon: asyncio AESM server, config, metrics, health, access control."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from sgx_quote_helper.service._server import RESTART_SIGNAL, QuoteHelperServer, StartupError
from sgx_quote_helper.service._workers import run_supervisor


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
    state_lock = _take_state_lock(state_dir)
    try:
        return _build_locked(config, metrics, state_dir, state_lock)
    except BaseException:
        state_lock.release()
        raise


def _take_state_lock(state_dir: Path) -> ExclusiveLock:
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
    return state_lock


def build_worker_server(
    config: ServiceConfig, listener: socket.socket, *, key_lock: Path
) -> QuoteHelperServer:
    """A worker of ``--workers``: its own backend, the supervisor's socket and locks."""
    state_dir = config.effective_state_dir()
    return _build_locked(config, DaemonMetrics(), state_dir, None, listener, key_lock)


def _build_locked(
    config: ServiceConfig,
    metrics: DaemonMetrics,
    state_dir: Path,
    state_lock: ExclusiveLock | None,
    listener: socket.socket | None = None,
    key_lock: Path | None = None,
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
        on_close=[source.close] + ([state_lock.release] if state_lock is not None else []),
        listener=listener,
        key_lock=key_lock,
    )


def run_daemon(config: ServiceConfig, *, reread: Callable[[], ServiceConfig] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code.

    SIGHUP drains and stops the same way, then executes this process's own
    command line again (it does not return then): a restart in place, with the
    same pid, that reads a changed configuration file again. ``reread`` loads
    the configuration as a restart would; a SIGHUP while it fails is refused.
    """
    configure_logging(config.log_format, config.log_level)
    # Until the handlers are installed (startup can take a while): a SIGHUP
    # then must not kill the daemon, and a restart's startup must not be
    # interrupted by another.
    signal.signal(RESTART_SIGNAL, signal.SIG_IGN)
    check_restart = None if reread is None else _restart_check(config, reread)
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
    workers = config.effective_workers()
    if workers > 1:
        if _run_supervised(config, workers, check_restart):
            return _restart_in_place()
        return 0
    server = build_server(config)
    server.signals.check_restart = check_restart
    # Everything loaded so far (modules, keys, the backend) lives as long as
    # the process: keep it out of the cyclic collector's full passes, which
    # would otherwise walk it while clients wait.
    gc.collect()
    gc.freeze()

    async def main() -> None:
        server.install_signal_handlers()
        await server.serve()

    asyncio.run(main())
    if server.signals.restart:
        return _restart_in_place()
    return 0


def _restart_check(
    config: ServiceConfig, reread: Callable[[], ServiceConfig]
) -> Callable[[], dict[str, object]]:
    def check() -> dict[str, object]:
        fresh = reread()  # raises ConfigError: the restart is refused
        changed = [
            field.name
            for field in dataclasses.fields(ServiceConfig)
            if getattr(fresh, field.name) != getattr(config, field.name)
        ]
        return {"changed": ",".join(changed) or "none"}

    return check


def _restart_in_place() -> int:
    """Execute this process's command line again (SIGHUP); returns only on failure.

    Everything was released before (socket removed, locks and backend
    closed), so the new image starts as a first start does, with the same pid
    (PID 1 of a container, systemd's main pid). ``sys.orig_argv`` holds the
    interpreter's options and the script or ``-m`` module as started.
    """
    # The event loop's handler is gone: a SIGHUP now must not kill the process
    # between the stop and the exec (the new image ignores it until it serves).
    signal.signal(RESTART_SIGNAL, signal.SIG_IGN)
    log = logging.getLogger("sgx_quote_helper.service")
    argv = [sys.executable, *sys.orig_argv[1:]]
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    try:
        os.execv(sys.executable, argv)  # noqa: S606 (our own command line, as started)
    except OSError as exc:
        log_event(
            log,
            logging.ERROR,
            "daemon.restart_failed",
            executable=sys.executable,
            error=exc.strerror or str(exc),
            hint="the daemon stopped cleanly; start it again (its service manager may)",
        )
    return 1


def _run_supervised(
    config: ServiceConfig,
    workers: int,
    check_restart: Callable[[], dict[str, Any]] | None,
) -> bool:
    """``--workers`` > 1: this process supervises; workers build their own backends.

    ``True`` when SIGHUP asked for a restart in place."""
    state_dir = config.effective_state_dir()
    _check_directories(config, state_dir)
    state_lock = _take_state_lock(state_dir)
    try:
        # Everything that can fail in a worker's build fails here first, once,
        # before the socket exists (the probe backend is closed at once).
        _probe_worker_build(config, state_dir)
    except BaseException:
        state_lock.release()
        raise
    return run_supervisor(config, workers, [state_lock.release], check_restart)


def _probe_worker_build(config: ServiceConfig, state_dir: Path) -> None:
    source = pck_source_for(
        pccs_url=config.pccs_url,
        platform_dir=config.platform,
        cache_dir=state_dir / "pck-cache",
        pccs_insecure=config.pccs_insecure,
        pccs_ca_file=config.pccs_ca_file,
    )
    try:
        options = dataclasses.replace(config.backend_options(), pck_source=source)
        backend_factory(config.backend).create(options).close()
    finally:
        source.close()


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
    "build_worker_server",
    "load_config",
    "run_daemon",
]
