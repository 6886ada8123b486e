"""The simulated SGX device plugin: the kubelet device plugin API v1beta1 over gRPC.

SIMULATED devices for clusters without SGX (spec kubernetes.md sections 3.1 and
4): two resources, enclave and provision, each served on its own socket in the
kubelet's device plugin directory and registered on ``kubelet.sock``, as
Intel's plugin does. A device of either resource is a slot on the node's one
simulated platform: Allocate answers with read-only bind mounts of the
platform files in the host directory instead of device nodes:

- enclave: ``platform.json`` and ``enclave.secret`` at ``/var/run/sgx-sim/platform/``
  and ``SGX_QUOTE_HELPER_PLATFORM=/var/run/sgx-sim/platform``;
- provision: ``provision.secret`` in the same directory.

Lifecycle (Intel's ``pkg/deviceplugin/server.go`` does the same):

1. serve each resource on ``<resource with / as ->.sock`` (a stale socket of a
   previous run is removed first), then ``Register`` it with the kubelet;
2. every ``health_interval``: a resource is Healthy while all its backing files
   exist; on a change each open ListAndWatch stream gets the full list again;
3. the kubelet deletes plugin sockets when it restarts and creates a new
   ``kubelet.sock``: when the kubelet socket's inode changes or one of ours
   disappears, serve again and re-register;
4. on stop, end the streams and remove our sockets.

The kubelet refusing a registration is fatal (the API expects the plugin to
exit); a kubelet that is not reachable yet is retried on the next tick.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from sgx_quote_helper._logging import RateLimitedLog, log_event
from sgx_quote_helper.kube import _deviceplugin_pb2 as pb
from sgx_quote_helper.kube import _deviceplugin_pb2_grpc as pb_grpc
from sgx_quote_helper.kube._errors import DevicePluginError
from sgx_quote_helper.kube._names import CONTAINER_PLATFORM_DIR, PLATFORM_ENV, ResourceNames
from sgx_quote_helper.kube._platform_files import ENCLAVE_FILES, PROVISION_FILES

log = logging.getLogger("sgx_quote_helper.kube.deviceplugin")

API_VERSION = "v1beta1"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
KUBELET_SOCKET = "kubelet.sock"
DEFAULT_KUBELET_DIR = Path("/var/lib/kubelet/device-plugins")
#: Intel's default per node: the pod capacity (110), so every pod on a node can get one.
DEFAULT_DEVICE_COUNT = 110
DEFAULT_HEALTH_INTERVAL = 1.0
REGISTER_TIMEOUT = 10.0
_STREAM_POLL = 0.5
_MAX_DEVICE_ID = 63
#: Open ListAndWatch streams per resource. The kubelet holds one; a few more let a debugging
#: client watch too. Each stream holds a worker thread for as long as it is open, so a newer
#: stream past this count ends the oldest one (see :class:`_Streams`).
MAX_STREAMS = 4
#: Worker threads for the unary calls (Allocate, GetDevicePluginOptions...) besides the streams'.
_UNARY_WORKERS = 4
#: Calls in progress or waiting for a worker; gRPC answers RESOURCE_EXHAUSTED past this.
MAX_CONCURRENT_RPCS = MAX_STREAMS + _UNARY_WORKERS + 16
#: Unknown device ids quoted in an Allocate refusal, each cut to _MAX_DEVICE_ID characters.
_QUOTED_IDS = 3


@dataclass(frozen=True)
class SimulatedResource:
    """One advertised resource: its name, device ids and the files behind it."""

    kind: str  # "enclave" or "provision"
    name: str  # the extended resource name, e.g. sgx.intel.com/enclave
    files: tuple[str, ...]
    count: int
    env: tuple[tuple[str, str], ...] = ()

    @property
    def socket_name(self) -> str:
        return self.name.replace("/", "-") + ".sock"

    def device_ids(self) -> list[str]:
        return [f"sgx-{self.kind}-{index}" for index in range(self.count)]


def simulated_resources(
    names: ResourceNames, *, enclave_count: int, provision_count: int
) -> tuple[SimulatedResource, SimulatedResource]:
    """The enclave and provision resources of the contract."""
    for count in (enclave_count, provision_count):
        if count < 1:
            raise DevicePluginError("a resource needs at least one device (--*-limit >= 1)")
    return (
        SimulatedResource(
            "enclave",
            names.enclave,
            ENCLAVE_FILES,
            enclave_count,
            env=((PLATFORM_ENV, CONTAINER_PLATFORM_DIR),),
        ),
        SimulatedResource("provision", names.provision, PROVISION_FILES, provision_count),
    )


class DevicePluginMetrics:
    """The device plugin's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.devices = Gauge(
            "sgx_quote_helper_deviceplugin_devices",
            "Simulated devices advertised to the kubelet, by resource and health",
            ["resource", "health"],
            registry=r,
        )
        self.allocations = Counter(
            "sgx_quote_helper_deviceplugin_allocations_total",
            "Containers given devices by Allocate",
            ["resource"],
            registry=r,
        )
        self.allocation_failures = Counter(
            "sgx_quote_helper_deviceplugin_allocation_failures_total",
            "Allocate requests refused (unknown device ids, unhealthy devices)",
            ["resource", "reason"],
            registry=r,
        )
        self.registrations = Counter(
            "sgx_quote_helper_deviceplugin_registrations_total",
            "Completed registrations with the kubelet (one per start and kubelet restart)",
            registry=r,
        )


class _Health:
    """Whether a resource's backing files exist, with a version bumped on every change."""

    def __init__(
        self, host_dir: Path, resource: SimulatedResource, metrics: DevicePluginMetrics
    ) -> None:
        self.host_dir = host_dir
        self.resource = resource
        self.metrics = metrics
        self.condition = threading.Condition()
        self.version = 0
        self.healthy = self._probe()
        self.closed = False
        self._export()

    def _export(self) -> None:
        healthy = self.resource.count if self.healthy else 0
        self.metrics.devices.labels(self.resource.name, HEALTHY).set(healthy)
        self.metrics.devices.labels(self.resource.name, UNHEALTHY).set(
            self.resource.count - healthy
        )

    def _probe(self) -> bool:
        return all((self.host_dir / name).is_file() for name in self.resource.files)

    def refresh(self) -> bool:
        """Probe again; ``True`` when the state changed (streams are woken)."""
        healthy = self._probe()
        with self.condition:
            if healthy == self.healthy:
                return False
            self.healthy = healthy
            self.version += 1
            self.condition.notify_all()
        self._export()
        missing = [n for n in self.resource.files if not (self.host_dir / n).is_file()]
        log_event(
            log,
            logging.INFO if healthy else logging.WARNING,
            "deviceplugin.health",
            resource=self.resource.name,
            health=HEALTHY if healthy else UNHEALTHY,
            missing=",".join(missing),
        )
        return True

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def devices(self) -> pb.ListAndWatchResponse:
        health = HEALTHY if self.healthy else UNHEALTHY
        return pb.ListAndWatchResponse(
            devices=[pb.Device(ID=i, health=health) for i in self.resource.device_ids()]
        )


class _Servicer:
    """The DevicePlugin service of one resource (gRPC calls it from its worker threads)."""

    def __init__(self, resource: SimulatedResource, host_dir: Path, health: _Health) -> None:
        self.resource = resource
        self.host_dir = host_dir
        self.health = health
        self.known = frozenset(resource.device_ids())
        self.streams = _Streams(health.condition)
        # Every call is the peer's doing: a client calling in a loop must not flood the log.
        self.peer_log = RateLimitedLog(log)

    def GetDevicePluginOptions(self, request: pb.Empty, context: Any) -> pb.DevicePluginOptions:
        return pb.DevicePluginOptions(
            pre_start_required=False, get_preferred_allocation_available=False
        )

    def ListAndWatch(self, request: pb.Empty, context: Any) -> Iterator[pb.ListAndWatchResponse]:
        health = self.health
        stream = self.streams.open()
        try:
            with health.condition:
                seen = health.version
                answer = health.devices()
            self.peer_log.log(logging.INFO, "deviceplugin.list", resource=self.resource.name)
            yield answer
            while True:
                with health.condition:
                    while (
                        health.version == seen
                        and not health.closed
                        and not stream.replaced
                        and context.is_active()
                    ):
                        health.condition.wait(_STREAM_POLL)
                    if health.closed or not context.is_active():
                        return
                    if stream.replaced:
                        break
                    seen = health.version
                    answer = health.devices()
                yield answer
        finally:
            self.streams.close(stream)
        self.peer_log.log(
            logging.WARNING,
            "deviceplugin.stream_replaced",
            resource=self.resource.name,
            streams=MAX_STREAMS,
        )
        context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{self.resource.name}: more than {MAX_STREAMS} ListAndWatch streams were opened; "
            "this one, the oldest, was closed for a newer one",
        )

    def GetPreferredAllocation(
        self, request: pb.PreferredAllocationRequest, context: Any
    ) -> pb.PreferredAllocationResponse:
        responses = []
        for ask in request.container_requests:
            chosen = list(ask.must_include_deviceIDs)
            for device in ask.available_deviceIDs:
                if len(chosen) >= ask.allocation_size:
                    break
                if device not in chosen:
                    chosen.append(device)
            responses.append(pb.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return pb.PreferredAllocationResponse(container_responses=responses)

    def Allocate(self, request: pb.AllocateRequest, context: Any) -> pb.AllocateResponse:
        responses = []
        for ask in request.container_requests:
            unknown = [d for d in ask.devices_ids if d not in self.known]
            if unknown or not ask.devices_ids:
                self._refused(
                    "unknown_device",
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    (f"{self.resource.name}: {_unknown_ids(unknown)}"),
                )
            if not self.health.healthy:
                # The stream already told the kubelet (step 2); the API wants Allocate to fail.
                self._refused(
                    "unhealthy",
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    (
                        f"{self.resource.name}: the simulated platform files are missing from "
                        f"{self.host_dir}; the device is unhealthy"
                    ),
                )
            responses.append(self.container_response())
        self.health.metrics.allocations.labels(self.resource.name).inc(len(responses))
        self.peer_log.log(
            logging.INFO,
            "deviceplugin.allocate",
            resource=self.resource.name,
            containers=len(responses),
        )
        return pb.AllocateResponse(container_responses=responses)

    def _refused(self, reason: str, context: Any, code: grpc.StatusCode, message: str) -> None:
        """Count and log the refusal, then end the call with ``code`` (raises)."""
        self.health.metrics.allocation_failures.labels(self.resource.name, reason).inc()
        self.peer_log.log(
            logging.WARNING,
            "deviceplugin.allocate_refused",
            resource=self.resource.name,
            reason=reason,
            detail=message,
        )
        context.abort(code, message)

    def container_response(self) -> pb.ContainerAllocateResponse:
        """The mounts and environment of one container (several ids share one platform)."""
        mounts = [
            pb.Mount(
                container_path=f"{CONTAINER_PLATFORM_DIR}/{name}",
                host_path=str(self.host_dir / name),
                read_only=True,
            )
            for name in self.resource.files
        ]
        return pb.ContainerAllocateResponse(envs=dict(self.resource.env), mounts=mounts)

    def PreStartContainer(
        self, request: pb.PreStartContainerRequest, context: Any
    ) -> pb.PreStartContainerResponse:
        return pb.PreStartContainerResponse()


def _unknown_ids(unknown: Sequence[str]) -> str:
    """The refusal of unknown ids: how many and the first few, each cut short.

    The kubelet sends ids it got from ListAndWatch, so this is a client's
    mistake; quoting thousands of ids (or one of megabytes) would make a
    message larger than gRPC passes, and the client would see RESOURCE_EXHAUSTED.
    """
    if not unknown:
        return "no device ids requested"
    quoted = [
        repr(d if len(d) <= _MAX_DEVICE_ID else d[:_MAX_DEVICE_ID] + "...")
        for d in unknown[:_QUOTED_IDS]
    ]
    more = f" and {len(unknown) - _QUOTED_IDS} more" if len(unknown) > _QUOTED_IDS else ""
    return f"{len(unknown)} unknown device id(s): {', '.join(quoted)}{more}"


class _Stream:
    """One open ListAndWatch stream; ``replaced`` once a newer stream took its place."""

    def __init__(self) -> None:
        self.replaced = False


class _Streams:
    """The open ListAndWatch streams of one resource, at most :data:`MAX_STREAMS`.

    A stream occupies a worker thread while it is open. Past the limit the
    newest stream replaces the oldest rather than being refused: the kubelet
    holds one stream per registration and opens a new one after it restarts, so
    the newest stream is the one most likely to matter, and an abandoned or
    stuck client must not lock the kubelet out (a refused kubelet stream means
    the node advertises no devices until the plugin registers again). Unary
    calls have workers of their own (:data:`_UNARY_WORKERS`).
    """

    def __init__(self, condition: threading.Condition) -> None:
        self._condition = condition  # the health condition the streams wait on
        self._open: list[_Stream] = []

    def open(self) -> _Stream:
        stream = _Stream()
        with self._condition:
            self._open.append(stream)
            while len(self._open) > MAX_STREAMS:
                self._open.pop(0).replaced = True
            self._condition.notify_all()
        return stream

    def close(self, stream: _Stream) -> None:
        with self._condition:
            if stream in self._open:
                self._open.remove(stream)

    def __len__(self) -> int:
        with self._condition:
            return len(self._open)


class _Endpoint:
    """One resource's gRPC server on its socket."""

    def __init__(self, resource: SimulatedResource, socket: Path, servicer: _Servicer) -> None:
        self.resource = resource
        self.socket = socket
        self.servicer = servicer
        self.server: Any = None
        self.identity: tuple[int, int, int] | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()  # a previous run's socket: nobody serves it any more
        # Streams and unary calls have workers of their own (see _Streams), and calls
        # beyond MAX_CONCURRENT_RPCS are refused (RESOURCE_EXHAUSTED) instead of queued.
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=MAX_STREAMS + _UNARY_WORKERS, thread_name_prefix=self.resource.kind
            ),
            maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
        )
        pb_grpc.add_DevicePluginServicer_to_server(self.servicer, server)
        if server.add_insecure_port(f"unix:{self.socket}") == 0:
            raise DevicePluginError(f"cannot listen on {self.socket}")
        server.start()
        self.server = server
        self.identity = _socket_identity(self.socket)

    def alive(self) -> bool:
        """Our socket is still there (the kubelet removes it when it restarts)."""
        return self.identity is not None and _socket_identity(self.socket) == self.identity

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=1.0).wait()
            self.server = None
        if self.alive():
            with contextlib.suppress(FileNotFoundError):
                self.socket.unlink()
        self.identity = None


def _socket_identity(path: Path) -> tuple[int, int, int] | None:
    """Which file ``path`` is: a recreated socket differs even when its inode is reused."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns


class SimulatedDevicePlugin:
    """Both resources, registered with the kubelet and kept registered.

    ``on_registered`` (if given) is called after every successful registration
    round, e.g. to patch the Node's EPC capacity again after a kubelet restart.
    """

    def __init__(
        self,
        resources: Sequence[SimulatedResource],
        *,
        host_dir: Path,
        kubelet_dir: Path = DEFAULT_KUBELET_DIR,
        health_interval: float = DEFAULT_HEALTH_INTERVAL,
        on_registered: Callable[[], None] | None = None,
        metrics: DevicePluginMetrics | None = None,
    ) -> None:
        self.kubelet_dir = kubelet_dir
        self.kubelet_socket = kubelet_dir / KUBELET_SOCKET
        self.host_dir = host_dir
        self.health_interval = health_interval
        self.on_registered = on_registered
        self.metrics = metrics or DevicePluginMetrics()
        self.healths = [_Health(host_dir, resource, self.metrics) for resource in resources]
        self.endpoints = [
            _Endpoint(
                h.resource, kubelet_dir / h.resource.socket_name, _Servicer(h.resource, host_dir, h)
            )
            for h in self.healths
        ]
        for endpoint in self.endpoints:
            if len(endpoint.socket.name) > 100 or len(str(endpoint.socket)) > 107:
                raise DevicePluginError(
                    f"socket path too long for a Unix socket: {endpoint.socket}"
                )
            for device in endpoint.resource.device_ids():
                if len(device) > _MAX_DEVICE_ID:
                    raise DevicePluginError(f"device id {device!r} exceeds 63 characters")
        self._registered_with: tuple[int, int, int] | None = None
        self._stop = threading.Event()
        self.registrations = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def check_kubelet_dir(self) -> None:
        if not self.kubelet_dir.is_dir():
            raise DevicePluginError(
                f"no kubelet device plugin directory at {self.kubelet_dir}; mount the host's "
                "/var/lib/kubelet/device-plugins (or give --kubelet-dir)"
            )

    def run(self) -> None:
        """Serve, register and watch until :meth:`stop` (steps 1-4 of the module docstring)."""
        self.check_kubelet_dir()
        try:
            self._serve_all()
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(self.health_interval)
        finally:
            for health in self.healths:
                health.close()
            for endpoint in self.endpoints:
                endpoint.stop()
                endpoint.servicer.peer_log.flush(force=True)
            log_event(log, logging.INFO, "deviceplugin.stopped")

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """One round of watching: health, then the kubelet's and our sockets."""
        for health in self.healths:
            health.refresh()
        for endpoint in self.endpoints:
            endpoint.servicer.peer_log.flush()  # say how many lines were suppressed
        kubelet = _socket_identity(self.kubelet_socket)
        if kubelet is None:
            if self._registered_with is not None:
                log_event(log, logging.WARNING, "deviceplugin.kubelet_gone")
                self._registered_with = None
            return
        lost = [e.resource.name for e in self.endpoints if not e.alive()]
        if lost:
            log_event(log, logging.WARNING, "deviceplugin.socket_removed", resources=",".join(lost))
            self._serve_all()
        elif kubelet == self._registered_with:
            return
        self._register_all(kubelet)

    def _serve_all(self) -> None:
        for endpoint in self.endpoints:
            endpoint.stop()
            endpoint.start()
            log_event(
                log,
                logging.INFO,
                "deviceplugin.serving",
                resource=endpoint.resource.name,
                socket=str(endpoint.socket),
                devices=endpoint.resource.count,
            )
        self._registered_with = None

    def _register_all(self, kubelet: tuple[int, int, int]) -> None:
        target = f"unix:{self.kubelet_socket}"
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.RegistrationStub(channel)
            for endpoint in self.endpoints:
                request = pb.RegisterRequest(
                    version=API_VERSION,
                    endpoint=endpoint.socket.name,
                    resource_name=endpoint.resource.name,
                    options=pb.DevicePluginOptions(
                        pre_start_required=False, get_preferred_allocation_available=False
                    ),
                )
                try:
                    stub.Register(request, timeout=REGISTER_TIMEOUT, wait_for_ready=True)
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        log_event(
                            log,
                            logging.WARNING,
                            "deviceplugin.kubelet_unavailable",
                            resource=endpoint.resource.name,
                            detail=exc.details(),
                        )
                        return  # the next tick tries again
                    raise DevicePluginError(
                        f"the kubelet refused to register {endpoint.resource.name}: "
                        f"{code.name} {exc.details()}; check that no other device plugin "
                        "advertises this resource and that the kubelet supports v1beta1"
                    ) from None
                log_event(
                    log,
                    logging.INFO,
                    "deviceplugin.registered",
                    resource=endpoint.resource.name,
                    endpoint=endpoint.socket.name,
                )
        self._registered_with = kubelet
        self.registrations += 1
        self.metrics.registrations.inc()
        if self.on_registered is not None:
            self.on_registered()
