"""The quote helper daemon: an AESM-compatible server on a Unix socket.

The lifecycle reads like uvicorn's ``Server.serve``:

1. startup — everything that can fail does so before the socket exists: the
   backend is ready (platform and keys loaded) when the server is built and
   holds the state directory's lock, a live daemon on the socket (or one
   holding its lock) makes startup fail, a stale socket from a crash is
   replaced, and the admin listener is bound before the AESM socket;
2. serve — ``loop.create_unix_server`` accepts, and each connection is an
   :class:`~sgx_quote_helper.service._connection.AesmConnection` that reads
   one request, as Intel's aesmd (aesm-wire.md section 3), admitted and
   answered by the :class:`~sgx_quote_helper.service._connection.ConnectionHub`;
   quoting readiness (the PCK chain) comes from a background task, so a first
   start while the PCCS is down binds, stays not-ready and answers
   AESM_NETWORK_ERROR instead of crash-looping;
3. shutdown — stop accepting (unlink the socket, take in what the kernel
   already queued, close the listener), drain open connections within
   ``drain_timeout``, abort the rest, release the backend and the locks.

Signal handlers only set flags (:class:`SignalRequests`): SIGTERM and SIGINT
stop, SIGHUP stops the same way and asks ``run_daemon`` to start the daemon's
own command line again (a restart in place, as aesmd reloads on SIGHUP); a
second stopping signal forces exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import select
import signal
import socket
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sgx_quote_helper._logging import RateLimitedLog, log_event
from sgx_quote_helper.backends import AttestationKeyStatus, BackendHealth, QuoteBackend
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.service._admin import AdminServer
from sgx_quote_helper.service._config import ServiceConfig
from sgx_quote_helper.service._connection import (
    AdmissionLimits,
    ConnectionHub,
)
from sgx_quote_helper.service._lock import ExclusiveLock, LockHeldError
from sgx_quote_helper.service._logic import AesmLogic
from sgx_quote_helper.service._metrics import DaemonMetrics
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, AttKeyId

_log = logging.getLogger("sgx_quote_helper.service")

#: Listen backlog, aesmd's. Clients beyond it wait in connect() (Intel's
#: client and ours connect in blocking mode), in turn, rather than in the
#: queue: a tenant that floods connections then holds at most the queue
#: ahead of another tenant's request, not 128 of its own (under the attack
#: benchmark, quote p99 40-70 ms instead of 150-280 ms with 128). asyncio
#: also accepts up to this many connections per readiness callback.
_BACKLOG = 32
#: File descriptors kept free for everything but client connections (the
#: admin listener and its clients, the PCCS client, the state directory).
_RESERVED_FDS = 64
#: Seconds between attempts to get quoting ready (PCK chain) while it fails.
#: A client's quoting request while not ready wakes the task early, at most
#: once per ``_READY_RETRY_MIN``.
_READY_RETRY_MIN, _READY_RETRY_MAX = 0.5, 30.0
#: Seconds between probes of an unhealthy backend's dependency (an upstream
#: AESM), so that readiness comes back without client traffic.
HEALTH_PROBE_INTERVAL = 2.0
#: How often the PCK chain is re-fetched (and the key re-certified with it)
#: once the daemon is ready.
PCK_REFRESH_INTERVAL = 3600.0
#: Lines of one log event a peer can cause per interval; the rest are counted.
_LOG_BURST, _LOG_INTERVAL = 10, 10.0
_FD_LOG_INTERVAL = 60.0
#: The message asyncio's accept loop reports EMFILE and the like with.
_ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


#: Files in the state directory shared by the workers of ``--workers``: the
#: lock held around key initialization and the "generated, not yet announced" mark.
KEY_LOCK, UNANNOUNCED_KEY = "attestation-key.lock", "attestation-key.unannounced"


class StartupError(SgxQuoteHelperError):
    """The daemon cannot start; nothing was left bound."""


#: The signals the daemon (and the supervisor of ``--workers``) acts on.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESTART_SIGNAL = signal.SIGHUP


class SignalRequests:
    """What the signals received so far ask for; the handlers only set these flags.

    - SIGTERM or SIGINT: stop (``should_exit``): drain, release, exit 0.
    - SIGHUP: restart in place, as Intel's aesmd does on SIGHUP (its main loop
      shuts the server down and starts it again): the same drain and release,
      then ``restart`` tells ``run_daemon`` to execute the daemon's own command
      line again, so that a changed ``--config`` file (or platform, or release)
      is taken up without leaving the socket behind. ``check_restart``
      re-reads the configuration first: one that no longer loads refuses the
      restart (``daemon.restart_refused``) and the daemon serves on, rather
      than draining into a start that would fail.
    - SIGHUP while already stopping is ignored; SIGTERM/SIGINT during a
      restart's drain turns it into a plain stop; a second stopping signal
      forces exit (:meth:`receive` returns ``True``).
    """

    def __init__(self, should_exit: asyncio.Event) -> None:
        self.should_exit = should_exit
        self.restart = False
        #: Re-reads the configuration; raises when it no longer loads, else
        #: returns fields for the ``daemon.restarting`` log line.
        self.check_restart: Callable[[], dict[str, Any]] | None = None

    def receive(self, signum: int) -> bool:
        """Act on one signal; ``True`` when the caller must exit at once."""
        name = signal.Signals(signum).name
        stopping = self.should_exit.is_set()
        if signum == RESTART_SIGNAL:
            if stopping:
                log_event(
                    _log, logging.INFO, "daemon.signal_ignored", signal=name, reason="stopping"
                )
                return False
            fields: dict[str, Any] = {}
            if self.check_restart is not None:
                try:
                    fields = self.check_restart()
                except SgxQuoteHelperError as exc:
                    log_event(
                        _log,
                        logging.ERROR,
                        "daemon.restart_refused",
                        signal=name,
                        reason=str(exc),
                        hint="fix the configuration and send SIGHUP again; the daemon "
                        "serves on with the configuration it started with",
                    )
                    return False
            log_event(_log, logging.INFO, "daemon.signal", signal=name, action="restart")
            log_event(_log, logging.INFO, "daemon.restarting", pid=os.getpid(), **fields)
            self.restart = True
            self.should_exit.set()
            return False
        if stopping and self.restart:
            # A stop asked for while a restart drains: drain, then exit.
            self.restart = False
            log_event(_log, logging.INFO, "daemon.signal", signal=name, action="stop")
            return False
        if stopping:
            log_event(_log, logging.WARNING, "daemon.forced_exit", signal=name)
            return True
        log_event(_log, logging.INFO, "daemon.signal", signal=name, action="stop")
        self.should_exit.set()
        return False


class QuoteHelperServer:
    """The daemon. ``await serve()`` runs it until a signal or :meth:`request_exit`."""

    def __init__(
        self,
        config: ServiceConfig,
        backend: QuoteBackend,
        *,
        metrics: DaemonMetrics | None = None,
        refresh_pck: Callable[[], None] | None = None,
        on_close: Sequence[Callable[[], None]] = (),
        listener: socket.socket | None = None,
        key_lock: Path | None = None,
    ) -> None:
        """``listener``: a worker's inherited, bound AESM socket (the supervisor owns
        the path, its lock and the admin listener); ``key_lock``: a file locked
        around key initialization, so that one of several workers generates and
        seals the attestation key and the others load it."""
        self.config = config
        self._inherited = listener
        self._key_lock = key_lock
        self._on_close = tuple(on_close)
        self._released = False
        self.backend = backend
        self.metrics = metrics or DaemonMetrics()
        self._refresh_pck = refresh_pck
        self.should_exit = asyncio.Event()
        self.signals = SignalRequests(self.should_exit)
        self.ready = False
        self.started = asyncio.Event()
        #: Log lines a peer can cause (refusals, evictions, bad frames) are rate-limited.
        self.peer_log = RateLimitedLog(_log, burst=_LOG_BURST, interval=_LOG_INTERVAL)
        #: Running out of descriptors is said once a minute per listener.
        self._fd_log = RateLimitedLog(_log, burst=1, interval=_FD_LOG_INTERVAL)
        info = backend.info()
        self._logic = AesmLogic(
            backend,
            self._is_ready,
            log=self.peer_log,
            unannounced_marker=None if key_lock is None else key_lock.with_name(UNANNOUNCED_KEY),
            # Intel's library and an upstream AESM do not say which QE3/PCE
            # they run: the qe_svn/pce_svn gauges follow the served quotes.
            on_quoted_svns=self.metrics.quoted_svns if not (info.qe_svn or info.pce_svn) else None,
        )
        # Backend calls that may block (QuoteBackend.may_block) run here.
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_inflight, thread_name_prefix="sgx-quote-helper-backend"
        )
        self._ready_wakeup = asyncio.Event()
        self.hub = ConnectionHub(
            self._logic,
            AdmissionLimits(
                allow_uid=config.allow_uid,
                allow_gid=config.allow_gid,
                max_connections=config.max_connections,
                max_connections_per_uid=config.max_connections_per_uid,
                request_timeout=config.read_timeout,
            ),
            self.metrics,
            self._pool,
            log=self.peer_log,
            on_not_ready=self._ready_wakeup.set,
            is_ready=self._is_ready,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._listener_fd: int | None = None
        self._admin: AdminServer | None = None
        self._background: list[asyncio.Task[None]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._previous_handler: Any = None
        self._socket = AesmSocket(config)
        self._blob_errors_counted = 0
        self._health = backend if isinstance(backend, BackendHealth) else None
        self.metrics.ready.set_function(lambda: 1.0 if self._is_ready() else 0.0)

    @property
    def admin_port(self) -> int | None:
        """The TCP port of the admin listener (useful with ``--admin-listen HOST:0``)."""
        return self._admin.bound_port if self._admin is not None else None

    # -- lifecycle -------------------------------------------------------------

    async def serve(self) -> None:
        try:
            await self.startup()
        except BaseException:
            self._release()
            raise
        try:
            await self.should_exit.wait()
        finally:
            await self.shutdown()

    def request_exit(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self.should_exit.set()

    async def startup(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        info = self.backend.info()
        self.metrics.describe_release(info.name, info.qe_svn, info.pce_svn, info.simulated)
        self._fit_connections_to_fd_limit()
        path = self.config.socket
        if self._inherited is None:
            self._socket.prepare()
        # asyncio reports accept() running out of descriptors through the
        # loop's exception handler: logged once per interval instead of a
        # traceback for every failed accept (see _on_loop_exception).
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        try:
            admin_address = self.config.admin_address()
            if admin_address is not None and self._inherited is None:
                self._admin = AdminServer(admin_address, self.metrics, self._is_ready)
                try:
                    await self._admin.start()
                except OSError as exc:
                    raise StartupError(
                        f"cannot listen on --admin-listen {self.config.admin_listen}: "
                        f"{exc.strerror or exc}"
                    ) from None
            if self._inherited is not None:
                # A worker joining others (or replacing one) accepts once it can
                # quote, unless its first attempt fails (a PCCS down at the first
                # start): then it answers AESM_NETWORK_ERROR like the others.
                await self._try_initialize()
            listener = self._inherited or self._socket.bind()
            self._listener_fd = listener.fileno()
            try:
                self._server = await loop.create_unix_server(
                    self.hub.protocol, sock=listener, backlog=_BACKLOG
                )
            except BaseException:
                listener.close()
                self._socket.remove()
                raise
        except BaseException:
            await self._release_admin()
            loop.set_exception_handler(self._previous_handler)
            raise
        self._background.append(asyncio.create_task(self._become_ready()))
        self._flush_timer = loop.call_later(_LOG_INTERVAL, self._flush_log)
        admin_shown = self.config.admin_listen if self._inherited is not None else None
        admin_shown = admin_shown or "off"
        log_event(
            _log,
            logging.INFO,
            "daemon.started",
            socket=str(path),
            backend=info.name,
            qe_svn=info.qe_svn,
            pce_svn=info.pce_svn,
            simulated=info.simulated,
            admin=self._admin.address if self._admin is not None else admin_shown,
            max_connections=self.hub.limits.max_connections,
            pid=os.getpid(),
        )
        self.started.set()

    async def shutdown(self) -> None:
        hub = self.hub
        log_event(_log, logging.INFO, "daemon.stopping", open_connections=len(hub.open))
        await self._stop_accepting()
        for task in self._background:
            task.cancel()
        if hub.open:
            try:
                async with asyncio.timeout(self.config.drain_timeout):
                    await hub.idle.wait()
            except TimeoutError:
                log_event(_log, logging.WARNING, "daemon.drain_timeout", aborted=len(hub.open))
                hub.abort_all("drain_timeout")
        hub.close()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._release_admin()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self.peer_log.flush(force=True)
        self._fd_log.flush(force=True)
        if self._loop is not None:
            self._loop.set_exception_handler(self._previous_handler)
        self._release()
        log_event(_log, logging.INFO, "daemon.stopped")

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (*STOP_SIGNALS, RESTART_SIGNAL):
            loop.add_signal_handler(signum, self._on_signal, signum)
        # aesmd ignores SIGPIPE; so does Python, whose writes raise instead.

    def _on_signal(self, signum: int) -> None:
        if self.signals.receive(signum):
            self._socket.remove()
            os._exit(1)

    def _release(self) -> None:
        """Release the backend, the workers, what was opened for them and the locks, once."""
        if self._released:
            return
        self._released = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.backend.close()
        for close in self._on_close:
            close()
        self._socket.release()

    def _flush_log(self) -> None:
        self.peer_log.flush()
        self._fd_log.flush()
        assert self._loop is not None
        self._flush_timer = self._loop.call_later(_LOG_INTERVAL, self._flush_log)

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if (
            context.get("message") == _ACCEPT_EXHAUSTED
            and isinstance(exc, OSError)
            and exc.errno in _RESOURCE_ERRNOS
        ):
            # asyncio pauses that listener for a second and retries.
            sock = context.get("socket")
            fd = sock.fileno() if sock is not None else -1
            listener = "aesm" if fd == self._listener_fd else "admin"
            self.metrics.accept_errors.labels(listener=listener).inc()
            self._fd_log.log(
                logging.ERROR,
                f"accept.out_of_resources.{listener}",
                error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                detail=exc.strerror,
                hint="raise the daemon's open-files limit (ulimit -n / LimitNOFILE) "
                "or lower --max-connections",
            )
            return
        callback = getattr(context.get("handle"), "_callback", None)
        if getattr(callback, "__name__", "") == "_start_serving" and isinstance(
            exc, (ValueError, OSError)
        ):
            # A retry asyncio scheduled after such a failure ran after its
            # listener was closed (at shutdown): nothing is left to resume.
            log_event(_log, logging.DEBUG, "accept.retry_after_close", error=str(exc))
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _fit_connections_to_fd_limit(self) -> None:
        """Keep client connections from using the descriptors everything else needs."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        reserve = min(_RESERVED_FDS, soft // 2)
        fitting = max(1, soft - reserve)
        limits = self.hub.limits
        if limits.max_connections > fitting:
            log_event(
                _log,
                logging.WARNING,
                "daemon.max_connections_lowered",
                max_connections=fitting,
                configured=limits.max_connections,
                open_files_limit=soft,
            )
            self.hub.limits = limits._replace(
                max_connections=fitting,
                max_connections_per_uid=min(limits.max_connections_per_uid, fitting),
            )

    async def _release_admin(self) -> None:
        if self._admin is not None:
            await self._admin.stop()
            self._admin = None

    def is_ready(self) -> bool:
        """What ``/readyz`` says (a worker reports it to its supervisor)."""
        return self._is_ready()

    def _is_ready(self) -> bool:
        """Ready to quote: initialized, and the backend's dependency (if any) answers."""
        return self.ready and (self._health is None or self._health.healthy())

    async def _stop_accepting(self) -> None:
        """Unlink the socket, take in connections the kernel already queued, close."""
        self._socket.remove()
        server, fd = self._server, self._listener_fd
        if server is None or fd is None:
            return
        # New clients now fail to connect (no socket file); those already in
        # the backlog completed connect() and may have sent their request, so
        # let asyncio accept them rather than resetting them with the listener.
        for _ in range(1000):
            readable, _, _ = select.select([fd], [], [], 0)
            if not readable:
                break
            await asyncio.sleep(0)
        for _ in range(3):  # connection_made of the last ones accepted
            await asyncio.sleep(0)
        # Not wait_closed(): from Python 3.12 on it also waits for every open
        # connection, which the drain below bounds instead.
        server.close()
        self._server = None
        self._listener_fd = None

    # -- readiness -------------------------------------------------------------

    async def _try_initialize(self) -> None:
        try:
            await self._in_worker(self._initialize, DEFAULT_ECDSA_ATT_KEY_ID.base)
        except Exception:  # _become_ready retries and logs why
            return
        self._now_ready()

    def _now_ready(self) -> None:
        self._key_initialized()
        self.ready = True
        log_event(_log, logging.INFO, "daemon.ready")
        if self._health is not None:
            self._background.append(asyncio.create_task(self._watch_health(self._health)))

    async def _become_ready(self) -> None:
        delay = _READY_RETRY_MIN
        key_id = DEFAULT_ECDSA_ATT_KEY_ID.base
        while not self.ready:
            attempted = time.monotonic()
            try:
                await self._in_worker(self._initialize, key_id)
            except Exception as exc:
                reason = exc.diagnostics() if isinstance(exc, SgxQuoteHelperError) else repr(exc)
                log_event(
                    _log,
                    logging.WARNING,
                    "daemon.not_ready",
                    reason=reason,
                    retry_in=f"{delay:.1f}s",
                )
                self._ready_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._ready_wakeup.wait()
                # A client asking for quotes may wake this early, but attempts
                # stay at least _READY_RETRY_MIN apart.
                pause = _READY_RETRY_MIN - (time.monotonic() - attempted)
                if pause > 0:
                    await asyncio.sleep(pause)
                delay = min(delay * 2, _READY_RETRY_MAX)
                continue
            self._now_ready()
        while self._refresh_pck is not None:
            await asyncio.sleep(PCK_REFRESH_INTERVAL)
            try:
                await self._in_worker(self._refresh_pck)
                # Re-certify with the chain just fetched (a TCB recovery may
                # have brought a new PCK certificate); quotes keep flowing
                # from the current key meanwhile.
                await self._in_worker(self._initialize, key_id)
                self._key_initialized()
            except Exception as exc:
                reason = exc.diagnostics() if isinstance(exc, SgxQuoteHelperError) else repr(exc)
                log_event(_log, logging.WARNING, "pck_chain.refresh_failed", reason=reason)

    def _initialize(self, key_id: AttKeyId) -> None:
        if self._key_lock is None:
            self._logic.initialize(key_id)
            return
        fd = os.open(self._key_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocking: the first worker generates
            self._logic.initialize(key_id)
        finally:
            os.close(fd)

    async def _watch_health(self, health: BackendHealth) -> None:
        """Probe an unhealthy backend's dependency until it answers again."""
        while True:
            await asyncio.sleep(HEALTH_PROBE_INTERVAL)
            if health.healthy():
                continue
            try:
                await self._in_worker(health.probe)
            except Exception:  # a probe must never end the watch
                _log.exception("backend.probe_failed")

    async def _in_worker(self, function: Callable[..., Any], *args: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._pool, function, *args)

    def _key_initialized(self) -> None:
        created: float | None = None
        backend = self.backend
        if isinstance(backend, AttestationKeyStatus):
            created = backend.attestation_key_created()
        self.metrics.key_created(created if created is not None else time.time())
        if isinstance(backend, AttestationKeyStatus):
            replaced = backend.att_key_blob_errors
            if replaced > self._blob_errors_counted:
                self.metrics.sealed_key_replaced.inc(replaced - self._blob_errors_counted)
                self._blob_errors_counted = replaced


class AesmSocket:
    """The AESM socket's path: its lock, a stale socket replaced, the bind, the unlink."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._inode: int | None = None
        self._lock = ExclusiveLock(
            config.socket.with_name(config.socket.name + ".lock"),
            f"the socket {config.socket}",
            "two daemons must never share one socket: stop it first, or give this one "
            "another --socket",
        )

    def release(self) -> None:
        self._lock.release()

    def prepare(self) -> None:
        """Take the socket's lock and clear a stale socket, or raise StartupError."""
        path = self.config.socket
        self._make_directory(path.parent)
        # The lock closes the window in which a daemon that has bound but not
        # yet listened looks stale to a second one probing the socket.
        try:
            self._lock.acquire()
        except LockHeldError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(
                f"cannot create the lock file {self._lock.path}: {exc.strerror}; "
                "the socket's directory must be writable by the quote helper"
            ) from None
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise StartupError(
                f"{path} exists and is not a socket; refusing to replace it "
                "(check --socket, or remove the file)"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            # Left behind by a daemon that crashed: nobody accepts on it.
            log_event(_log, logging.WARNING, "socket.stale_replaced", socket=str(path))
            path.unlink(missing_ok=True)
            return
        except OSError as exc:
            raise StartupError(f"cannot probe the existing socket {path}: {exc}") from None
        finally:
            probe.close()
        raise StartupError(
            f"another quote helper is already serving on {path}; stop it first "
            "(two daemons must never share one socket)"
        )

    @staticmethod
    def _make_directory(directory: Path) -> None:
        missing: list[Path] = []
        current = directory
        while not current.exists() and current != current.parent:
            missing.append(current)
            current = current.parent
        for created in reversed(missing):
            try:
                created.mkdir(mode=0o755)
                # mkdir's mode is filtered by the umask; containers bind-mount
                # this directory, so it must be traversable by everyone (0755,
                # as Intel's installer makes /var/run/aesmd).
                created.chmod(0o755)
            except FileExistsError:
                continue
            except OSError as exc:
                raise StartupError(
                    f"cannot create the socket directory {created}: {exc.strerror}"
                ) from None

    def bind(self) -> socket.socket:
        """Bind the socket with its mode and owner (not listening yet)."""
        path = self.config.socket
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(str(path))
                self._inode = path.stat().st_ino
            except OSError as exc:
                raise StartupError(
                    f"cannot bind the AESM socket {path}: {exc.strerror or exc}"
                ) from None
            try:
                # Mode and owner are set before listen(), so no client can
                # connect through a looser mode in between (aesmd: bind, chmod,
                # listen).
                os.chmod(path, self.config.socket_mode)
                if self.config.socket_owner is not None or self.config.socket_group is not None:
                    os.chown(
                        path,
                        -1 if self.config.socket_owner is None else self.config.socket_owner,
                        -1 if self.config.socket_group is None else self.config.socket_group,
                    )
            except OSError as exc:
                path.unlink(missing_ok=True)
                raise StartupError(
                    f"cannot set owner/mode of {path}: {exc.strerror}; check --socket-owner, "
                    "--socket-group and --socket-mode"
                ) from None
            # create_unix_server listens, after the mode is set.
        except BaseException:
            sock.close()
            raise
        return sock

    def remove(self) -> None:
        path = self.config.socket
        with contextlib.suppress(OSError):
            # Only remove our own socket, not one a successor already created.
            if self._inode is not None and path.lstat().st_ino == self._inode:
                path.unlink()
