"""Several worker processes accepting on the one AESM socket (``--workers``).

The supervisor (the process ``serve`` started) owns everything node-wide:
the state directory's and the socket's locks, the socket path (bound and
listening once, here), the admin listener. It starts ``N`` workers — fresh
interpreters (``python -c``), not forks, so that no thread or event loop of
the supervisor leaks into them — handing each the listening socket and one end
of a control socketpair. Each worker builds its backend over the same state
directory and serves with :class:`QuoteHelperServer` on the inherited socket;
the kernel spreads the accepts.

- One logical QE: workers initialize under a lock file in the state
  directory, so the first generates and seals the attestation key and the
  others load that sealed key (a backend that is not shareable runs one worker).
- Admission: each worker admits ``floor(limit / N)`` of ``--max-connections``
  and ``--max-connections-per-uid``, so the node-wide totals never exceed them.
- Metrics and readiness: on each scrape the supervisor asks every worker over
  its control socket for its samples and merges them (counters and histograms
  summed, ``active_connections`` summed, ``ready`` the minimum);
  ``/readyz`` is ready when every worker is.
- Lifecycle: SIGTERM/SIGINT to the supervisor unlinks the socket and sends
  SIGTERM to every worker, which drains as the single daemon does; SIGHUP does
  the same and then ``run_daemon`` restarts the command line in place; a worker
  that exits otherwise is logged and restarted with backoff; workers get
  SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``) and ignore SIGINT
  and SIGHUP, which a terminal sends to the whole group: the supervisor decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import gc
import json
import logging
import os
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette

from sgx_quote_helper._logging import RateLimitedLog, configure_logging, log_event
from sgx_quote_helper.service._admin import AdminServer, admin_routes
from sgx_quote_helper.service._config import ServiceConfig
from sgx_quote_helper.service._server import (
    _ACCEPT_EXHAUSTED,
    _BACKLOG,
    _FD_LOG_INTERVAL,
    _RESOURCE_ERRNOS,
    KEY_LOCK,
    RESTART_SIGNAL,
    STOP_SIGNALS,
    UNANNOUNCED_KEY,
    AesmSocket,
    QuoteHelperServer,
    SignalRequests,
    StartupError,
)

_log = logging.getLogger("sgx_quote_helper.service")

_PR_SET_PDEATHSIG = 1
#: Restart delays of a worker that keeps exiting; reset after a worker ran this long.
_RESTART_MIN, _RESTART_MAX, _RESTART_RESET = 0.1, 10.0, 30.0
#: How long a scrape waits for one worker's samples.
_STATUS_TIMEOUT = 5.0
#: Beyond --drain-timeout, how long the supervisor waits before SIGKILL.
_KILL_GRACE = 5.0
_PREFIX = "sgx_quote_helper"


def worker_config(config: ServiceConfig, workers: int) -> ServiceConfig:
    """One worker's share of the node-wide admission limits (rounded down)."""
    return dataclasses.replace(
        config,
        max_connections=max(1, config.max_connections // workers),
        max_connections_per_uid=max(1, config.max_connections_per_uid // workers),
    )


# -- the control channel: length-prefixed JSON ------------------------------------------


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(4), "little")
    return await reader.readexactly(size)


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "little") + payload


def _snapshot(server: QuoteHelperServer, index: int, sequence: int) -> bytes:
    families = []
    for metric in server.metrics.registry.collect():
        families.append(
            {
                "name": metric.name,
                "documentation": metric.documentation,
                "type": metric.type,
                "unit": metric.unit,
                "samples": [[s.name, s.labels, s.value] for s in metric.samples],
            }
        )
    status = {
        "sequence": sequence,
        "index": index,
        "pid": os.getpid(),
        "ready": server.is_ready(),
        "families": families,
    }
    return json.dumps(status).encode()


# -- merging the workers' samples ---------------------------------------------------------

#: Gauges whose node-wide value is the sum over workers; ``ready`` is the
#: minimum; every other gauge (SVNs, key and chain timestamps) the maximum.
_SUMMED_GAUGES = {f"{_PREFIX}_active_connections"}
_MIN_GAUGES = {f"{_PREFIX}_ready"}


def merge(statuses: Iterable[dict[str, Any]]) -> list[Metric]:
    """One family per name, over the workers' snapshots."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for status in statuses:
        for family in status["families"]:
            name = family["name"]
            if name not in merged:
                merged[name] = Metric(name, family["documentation"], family["type"], family["unit"])
                values[name] = {}
            kind = family["type"]
            table = values[name]
            for sample_name, labels, value in family["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                if key not in table:
                    table[key] = value
                elif sample_name.endswith("_created"):
                    table[key] = min(table[key], value)
                elif kind in ("counter", "histogram", "summary") or name in _SUMMED_GAUGES:
                    table[key] += value
                elif name in _MIN_GAUGES:
                    table[key] = min(table[key], value)
                elif kind == "gauge":
                    table[key] = max(table[key], value)
    for name, metric in merged.items():
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


# -- the supervisor -----------------------------------------------------------------------


@dataclasses.dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    control: socket.socket | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    sequence: int = 0

    async def status(self) -> dict[str, Any] | None:
        """The worker's snapshot, or ``None`` when it is not there or does not answer."""
        async with self.lock:
            if self.reader is None or self.writer is None:
                return None
            try:
                self.sequence = (self.sequence + 1) % 2**32
                async with asyncio.timeout(_STATUS_TIMEOUT):
                    self.writer.write(self.sequence.to_bytes(4, "little"))
                    await self.writer.drain()
                    while True:  # a reply to an earlier request that timed out is stale
                        result: dict[str, Any] = json.loads(await _read_message(self.reader))
                        if result["sequence"] == self.sequence:
                            return result
            except (
                OSError,
                EOFError,
                KeyError,
                TimeoutError,
                ValueError,
                asyncio.IncompleteReadError,
            ):
                return None


class _NodeCollector(Collector):
    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return self.families


class Supervisor:
    """Runs ``workers`` worker processes on one socket until SIGTERM/SIGINT/SIGHUP."""

    def __init__(self, config: ServiceConfig, workers: int, on_close: list[Any]) -> None:
        self.config = config
        self.count = workers
        self._worker_config = worker_config(config, workers)
        self._on_close = on_close
        self._socket = AesmSocket(config)
        self._listener: socket.socket | None = None
        self._workers = [_Worker(index) for index in range(workers)]
        self._stopping = False
        self.should_exit = asyncio.Event()
        self.signals = SignalRequests(self.should_exit)
        self._restarts = 0
        self._collector = _NodeCollector()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)
        #: accept() on the admin listener failing for lack of descriptors.
        self._admin_accept_errors = 0
        self._fd_log = RateLimitedLog(_log, burst=1, interval=_FD_LOG_INTERVAL)

    # -- admin ------------------------------------------------------------------

    async def _statuses(self) -> list[dict[str, Any] | None]:
        return list(await asyncio.gather(*(worker.status() for worker in self._workers)))

    def _admin_app(self) -> Starlette:
        async def metrics_body() -> bytes:
            statuses = [status for status in await self._statuses() if status is not None]
            families = merge(statuses)
            for family in families:
                if family.name == f"{_PREFIX}_accept_errors":
                    family.add_sample(
                        f"{_PREFIX}_accept_errors_total",
                        {"listener": "admin"},
                        self._admin_accept_errors,
                    )
            per_worker = CounterMetricFamily(
                f"{_PREFIX}_worker_connections",
                "Client connections accepted, by worker index and pid",
                labels=["worker", "pid"],
            )
            for status in statuses:
                accepted = sum(
                    value
                    for family in status["families"]
                    if family["name"] == f"{_PREFIX}_connections"
                    for name, _labels, value in family["samples"]
                    if name.endswith("_total")
                )
                per_worker.add_metric([str(status["index"]), str(status["pid"])], accepted)
            families.append(per_worker)
            restarts = CounterMetricFamily(
                f"{_PREFIX}_worker_restarts", "Worker processes restarted after they exited"
            )
            restarts.add_metric([], self._restarts)
            families.append(restarts)
            workers = Metric(f"{_PREFIX}_workers", "Worker processes answering now", "gauge")
            workers.add_sample(f"{_PREFIX}_workers", {}, len(statuses))
            families.append(workers)
            self._collector.families = families
            return generate_latest(self._registry)

        async def not_ready() -> str | None:
            statuses = await self._statuses()
            ready = sum(1 for status in statuses if status is not None and status["ready"])
            if ready == self.count:
                return None
            return (
                f"{ready} of {self.count} workers can quote (no PCK certificate "
                "chain yet, or a worker is restarting)"
            )

        return admin_routes(metrics_body, not_ready)

    # -- lifecycle --------------------------------------------------------------

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._on_loop_exception)
        admin: AdminServer | None = None
        # Before anything is bound: a signal during startup then stops (or
        # restarts) it cleanly instead of killing it with the socket in place.
        for signum in (*STOP_SIGNALS, RESTART_SIGNAL):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            self._socket.prepare()
            admin_address = self.config.admin_address()
            if admin_address is not None:
                admin = AdminServer(admin_address, app=self._admin_app())
                try:
                    await admin.start()
                except OSError as exc:
                    raise StartupError(
                        f"cannot listen on --admin-listen {self.config.admin_listen}: "
                        f"{exc.strerror or exc}"
                    ) from None
            # Left by a run that stopped before a client announced its key: a
            # key now on disk is loaded, and a loaded key is visible at once.
            (self.config.effective_state_dir() / UNANNOUNCED_KEY).unlink(missing_ok=True)
            if admin is not None:  # the workers name it in their logs
                self._worker_config = dataclasses.replace(
                    self._worker_config, admin_listen=admin.address
                )
            self._listener = self._socket.bind()
            self._listener.listen(_BACKLOG)
            log_event(
                _log,
                logging.INFO,
                "supervisor.started",
                socket=str(self.config.socket),
                workers=self.count,
                max_connections_per_worker=self._worker_config.max_connections,
                max_connections_per_uid_per_worker=self._worker_config.max_connections_per_uid,
                admin=admin.address if admin is not None else "off",
                pid=os.getpid(),
            )
            tasks = [asyncio.create_task(self._keep(worker)) for worker in self._workers]
            await self.should_exit.wait()
            await self._stop(tasks)
        finally:
            if admin is not None:
                await admin.stop()
            if self._listener is not None:
                self._listener.close()
            self._socket.remove()
            self._socket.release()
            for close in self._on_close:
                close()
            self._fd_log.flush(force=True)
        log_event(_log, logging.INFO, "daemon.stopped")

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The admin listener running out of descriptors: counted, said once a minute."""
        exc = context.get("exception")
        if (
            context.get("message") == _ACCEPT_EXHAUSTED
            and isinstance(exc, OSError)
            and exc.errno in _RESOURCE_ERRNOS
        ):
            self._admin_accept_errors += 1
            self._fd_log.log(
                logging.ERROR,
                "accept.out_of_resources.admin",
                error=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
                detail=exc.strerror,
                hint="raise the daemon's open-files limit (ulimit -n / LimitNOFILE)",
            )
            self._fd_log.flush()
            return
        loop.default_exception_handler(context)

    def _on_signal(self, signum: int) -> None:
        if self.signals.receive(signum):
            for worker in self._workers:
                if worker.process is not None and worker.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            self._socket.remove()
            os._exit(1)

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        log_event(_log, logging.INFO, "daemon.stopping", workers=self.count)
        # New clients fail to connect; the workers take in what is queued and drain.
        self._socket.remove()
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.config.drain_timeout + _KILL_GRACE):
                await asyncio.gather(*tasks, return_exceptions=True)
        except TimeoutError:
            for worker in self._workers:
                if worker.process is not None and worker.process.returncode is None:
                    log_event(_log, logging.WARNING, "worker.killed", worker=worker.index)
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, worker: _Worker) -> None:
        """Run one worker slot: start, wait, restart with backoff until stopping."""
        delay = _RESTART_MIN
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._start(worker)
            except OSError as exc:
                log_event(
                    _log, logging.ERROR, "worker.start_failed", worker=worker.index, error=exc
                )
            else:
                assert worker.process is not None
                code = await worker.process.wait()
                self._close_control(worker)
                if self._stopping:
                    log_event(_log, logging.INFO, "worker.stopped", worker=worker.index, code=code)
                    return
                log_event(
                    _log,
                    logging.ERROR,
                    "worker.exited",
                    worker=worker.index,
                    pid=worker.process.pid,
                    code=code if code >= 0 else signal.Signals(-code).name,
                    restart_in=f"{delay:.1f}s",
                )
            if time.monotonic() - started > _RESTART_RESET:
                delay = _RESTART_MIN
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.should_exit.wait()
            delay = min(delay * 2, _RESTART_MAX)
            if not self._stopping:
                self._restarts += 1

    async def _start(self, worker: _Worker) -> None:
        assert self._listener is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener_fd, control_fd = self._listener.fileno(), theirs.fileno()
            code = "from sgx_quote_helper.service._workers import worker_main; worker_main()"
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                str(listener_fd),
                str(control_fd),
                str(worker.index),
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(listener_fd, control_fd),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.sendall(_frame(pickle.dumps(self._worker_config)))
        worker.control = ours
        worker.reader, worker.writer = await asyncio.open_connection(sock=ours)

    @staticmethod
    def _close_control(worker: _Worker) -> None:
        if worker.writer is not None:
            worker.writer.close()
        worker.reader = worker.writer = None
        worker.control = None


def run_supervisor(
    config: ServiceConfig,
    workers: int,
    on_close: list[Any],
    check_restart: Callable[[], dict[str, Any]] | None = None,
) -> bool:
    """Supervise until a signal; ``True`` when SIGHUP asked for a restart in place."""
    supervisor = Supervisor(config, workers, on_close)
    supervisor.signals.check_restart = check_restart
    asyncio.run(supervisor.serve())
    return supervisor.signals.restart


# -- a worker -----------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before prctl
        os._exit(1)


def worker_main() -> None:
    """Entry point of a worker process (argv: listener fd, control fd, index, parent pid)."""
    listener_fd, control_fd, index, parent = map(int, sys.argv[1:5])
    _die_with_parent(parent)
    # Ctrl-C, and SIGHUP from a closing terminal, reach the whole process
    # group; only the supervisor decides (it stops the workers with SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(RESTART_SIGNAL, signal.SIG_IGN)
    control = socket.socket(fileno=control_fd)
    size = int.from_bytes(_recv_exactly(control, 4), "little")
    # From the supervisor, our parent, over a socketpair only the two hold.
    config: ServiceConfig = pickle.loads(_recv_exactly(control, size))  # noqa: S301
    os.environ.pop("SGX_AESM_ADDR", None)
    configure_logging(config.log_format, config.log_level)
    listener = socket.socket(fileno=listener_fd)
    # Imported here: the package's __init__ imports this module.
    from sgx_quote_helper.service import build_worker_server

    try:
        server = build_worker_server(
            config, listener, key_lock=config.effective_state_dir() / KEY_LOCK
        )
    except Exception as exc:
        log_event(_log, logging.ERROR, "worker.startup_failed", worker=index, error=str(exc))
        sys.exit(1)
    gc.collect()
    gc.freeze()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server._on_signal, signal.SIGTERM)
        loop.add_signal_handler(RESTART_SIGNAL, _ignore_restart, index, parent)
        serving = asyncio.create_task(server.serve())
        started = asyncio.create_task(server.started.wait())
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
        answering = asyncio.create_task(_answer(control, server, index))
        try:
            await serving
        finally:
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)

    asyncio.run(main())


def _ignore_restart(index: int, supervisor: int) -> None:
    log_event(
        _log,
        logging.WARNING,
        "daemon.signal_ignored",
        signal=RESTART_SIGNAL.name,
        worker=index,
        reason=f"sent to a worker; send it to the supervisor, pid {supervisor}",
    )


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SystemExit("the supervisor closed the control socket")
        data += chunk
    return bytes(data)


async def _answer(control: socket.socket, server: QuoteHelperServer, index: int) -> None:
    reader, writer = await asyncio.open_connection(sock=control)
    try:
        while True:
            sequence = int.from_bytes(await reader.readexactly(4), "little")
            writer.write(_frame(_snapshot(server, index, sequence)))
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


__all__ = ["Supervisor", "merge", "run_supervisor", "worker_config"]
