"""The simulated SGX device plugin end to end against a stand-in kubelet on temporary sockets.

The stand-in serves the kubelet's ``Registration`` service on ``kubelet.sock``;
the test then talks to the plugin's own sockets as the kubelet does
(``/v1beta1.DevicePlugin/...``). Contents are checked against the K8s contract:
resource names, container paths, environment, read-only mounts.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from daemon_support import short_dir
from google.protobuf.descriptor import FieldDescriptor
from kube_support import RawApi, StandInApi, StandInKubelet
from prometheus_client.parser import text_string_to_metric_families

from sgx_quote_helper._cli import main
from sgx_quote_helper.kube import (
    ApiConfig,
    DevicePluginError,
    KubernetesApi,
    ResourceNames,
    SimulatedDevicePlugin,
    install_platform_files,
    platform_secret,
    read_platform_dir,
    simulated_resources,
    wait_for_platform_secret,
)
from sgx_quote_helper.kube import _deviceplugin_pb2 as pb
from sgx_quote_helper.kube import _deviceplugin_pb2_grpc as pb_grpc
from sgx_quote_helper.kube._deviceplugin import MAX_CONCURRENT_RPCS, MAX_STREAMS, _Servicer

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "src" / "sgx_quote_helper" / "kube"
GENERATOR = ROOT / "tools" / "gen_deviceplugin_proto.py"
PLATFORM = "/var/run/sgx-sim/platform"

# ---- the schema ----------------------------------------------------------------------------------


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("_deviceplugin_pb2.py", "_deviceplugin_pb2.pyi", "_deviceplugin_pb2_grpc.py"):
        fresh = (tmp_path / name).read_bytes()
        assert fresh == (PACKAGE_DIR / name).read_bytes(), (
            f"{name} is stale: run python tools/gen_deviceplugin_proto.py"
        )


def test_schema_matches_the_kubelet_api() -> None:
    # Spec kubernetes.md section 4: package v1beta1, so method paths match the kubelet's.
    assert pb.DESCRIPTOR.package == "v1beta1"
    services = {
        s.full_name: [m.name for m in s.methods] for s in pb.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "v1beta1.Registration": ["Register"],
        "v1beta1.DevicePlugin": [
            "GetDevicePluginOptions",
            "ListAndWatch",
            "GetPreferredAllocation",
            "Allocate",
            "PreStartContainer",
        ],
    }
    assert (
        pb.DESCRIPTOR.services_by_name["DevicePlugin"]
        .methods_by_name["ListAndWatch"]
        .server_streaming
    )
    s, b, m = FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_MESSAGE
    tables: dict[str, dict[int, tuple[str, int]]] = {
        "RegisterRequest": {
            1: ("version", s), 2: ("endpoint", s), 3: ("resource_name", s), 4: ("options", m),
        },
        "DevicePluginOptions": {
            1: ("pre_start_required", b), 2: ("get_preferred_allocation_available", b),
        },
        "Device": {1: ("ID", s), 2: ("health", s), 3: ("topology", m)},
        "ContainerPreferredAllocationRequest": {
            1: ("available_deviceIDs", s),
            2: ("must_include_deviceIDs", s),
            3: ("allocation_size", FieldDescriptor.TYPE_INT32),
        },
        "ContainerAllocateResponse": {
            1: ("envs", m), 2: ("mounts", m), 3: ("devices", m), 4: ("annotations", m),
            5: ("cdi_devices", m),
        },
        "Mount": {1: ("container_path", s), 2: ("host_path", s), 3: ("read_only", b)},
        "DeviceSpec": {1: ("container_path", s), 2: ("host_path", s), 3: ("permissions", s)},
        "NUMANode": {1: ("ID", FieldDescriptor.TYPE_INT64)},
    }  # fmt: skip
    for message, fields in tables.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        assert {f.number: (f.name, f.type) for f in descriptor.fields} == fields, message


# ---- a node: platform files, the stand-in kubelet, the plugin in a thread ----------------------


class Node:
    def __init__(self, root: Path, platform_files: dict[str, bytes]) -> None:
        self.kubelet_dir = root / "dp"
        self.kubelet_dir.mkdir()
        self.host_dir = root / "host"
        install_platform_files(platform_files, self.host_dir, provision_gid=0)
        self.kubelet = StandInKubelet(self.kubelet_dir).start()
        self.plugin = SimulatedDevicePlugin(
            simulated_resources(ResourceNames(), enclave_count=3, provision_count=2),
            host_dir=self.host_dir,
            kubelet_dir=self.kubelet_dir,
            health_interval=0.05,
        )
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.plugin.run()
        except BaseException as exc:
            self.errors.append(exc)

    @contextlib.contextmanager
    def stub(self, endpoint: str) -> Iterator[Any]:
        with grpc.insecure_channel(f"unix:{self.kubelet_dir / endpoint}") as channel:
            yield pb_grpc.DevicePluginStub(channel)


@pytest.fixture(scope="module")
def platform_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    sim = tmp_path_factory.mktemp("dp-sim") / "sim"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "init", str(sim)]) == 0
    return read_platform_dir(sim / "platform")


@pytest.fixture
def node(platform_files: dict[str, bytes]) -> Iterator[Node]:
    for root in short_dir():
        node = Node(root, platform_files)
        node.thread.start()
        try:
            yield node
        finally:
            node.plugin.stop()
            node.thread.join(timeout=20)
            node.kubelet.stop()
        assert not node.thread.is_alive()
        assert node.errors == []
        # On stop the plugin removed its sockets.
        assert sorted(p.name for p in node.kubelet_dir.iterdir()) == []


def stream(stub: Any) -> tuple[Any, queue.Queue[Any]]:
    """ListAndWatch in a thread: each response lands in the queue."""
    call = stub.ListAndWatch(pb.Empty())
    responses: queue.Queue[Any] = queue.Queue()

    def pump() -> None:
        with contextlib.suppress(grpc.RpcError):
            for response in call:
                responses.put(response)

    threading.Thread(target=pump, daemon=True).start()
    return call, responses


def health(response: Any) -> dict[str, str]:
    return {device.ID: device.health for device in response.devices}


def test_registration_request_contents(node: Node) -> None:
    requests = node.kubelet.wait_for(2)
    assert [(r.version, r.endpoint, r.resource_name) for r in requests] == [
        ("v1beta1", "sgx.intel.com-enclave.sock", "sgx.intel.com/enclave"),
        ("v1beta1", "sgx.intel.com-provision.sock", "sgx.intel.com/provision"),
    ]
    for request in requests:
        assert request.HasField("options")
        assert not request.options.pre_start_required
        assert not request.options.get_preferred_allocation_available
        assert (node.kubelet_dir / request.endpoint).is_socket()


def test_list_and_watch_and_allocate(node: Node) -> None:
    node.kubelet.wait_for(2)
    with node.stub("sgx.intel.com-enclave.sock") as enclave:
        options = enclave.GetDevicePluginOptions(pb.Empty(), timeout=10)
        assert not options.pre_start_required
        call, responses = stream(enclave)
        assert health(responses.get(timeout=10)) == {
            "sgx-enclave-0": "Healthy",
            "sgx-enclave-1": "Healthy",
            "sgx-enclave-2": "Healthy",
        }
        reply = enclave.Allocate(
            pb.AllocateRequest(
                container_requests=[
                    pb.ContainerAllocateRequest(devices_ids=["sgx-enclave-0"]),
                    pb.ContainerAllocateRequest(devices_ids=["sgx-enclave-1", "sgx-enclave-2"]),
                ]
            ),
            timeout=10,
        )
        assert len(reply.container_responses) == 2
        for container in reply.container_responses:
            assert dict(container.envs) == {"SGX_QUOTE_HELPER_PLATFORM": PLATFORM}
            assert [(m.container_path, m.host_path, m.read_only) for m in container.mounts] == [
                (f"{PLATFORM}/platform.json", str(node.host_dir / "platform.json"), True),
                (f"{PLATFORM}/enclave.secret", str(node.host_dir / "enclave.secret"), True),
            ]
            assert list(container.devices) == []
        with pytest.raises(grpc.RpcError) as unknown:
            enclave.Allocate(
                pb.AllocateRequest(
                    container_requests=[pb.ContainerAllocateRequest(devices_ids=["gpu-0"])]
                ),
                timeout=10,
            )
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        preferred = enclave.GetPreferredAllocation(
            pb.PreferredAllocationRequest(
                container_requests=[
                    pb.ContainerPreferredAllocationRequest(
                        available_deviceIDs=["sgx-enclave-0", "sgx-enclave-1", "sgx-enclave-2"],
                        must_include_deviceIDs=["sgx-enclave-2"],
                        allocation_size=2,
                    )
                ]
            ),
            timeout=10,
        )
        assert list(preferred.container_responses[0].deviceIDs) == [
            "sgx-enclave-2",
            "sgx-enclave-0",
        ]
        assert (
            enclave.PreStartContainer(pb.PreStartContainerRequest(), timeout=10)
            == pb.PreStartContainerResponse()
        )
        call.cancel()

    with node.stub("sgx.intel.com-provision.sock") as provision:
        reply = provision.Allocate(
            pb.AllocateRequest(
                container_requests=[pb.ContainerAllocateRequest(devices_ids=["sgx-provision-1"])]
            ),
            timeout=10,
        )
        (container,) = reply.container_responses
        assert dict(container.envs) == {}
        assert [(m.container_path, m.host_path, m.read_only) for m in container.mounts] == [
            (f"{PLATFORM}/provision.secret", str(node.host_dir / "provision.secret"), True)
        ]


def test_device_unhealthy_when_its_backing_file_disappears(node: Node) -> None:
    node.kubelet.wait_for(2)
    with (
        node.stub("sgx.intel.com-enclave.sock") as enclave,
        node.stub("sgx.intel.com-provision.sock") as provision,
    ):
        enclave_call, enclave_updates = stream(enclave)
        provision_call, provision_updates = stream(provision)
        assert set(health(enclave_updates.get(timeout=10)).values()) == {"Healthy"}
        assert set(health(provision_updates.get(timeout=10)).values()) == {"Healthy"}

        saved = (node.host_dir / "enclave.secret").read_bytes()
        (node.host_dir / "enclave.secret").unlink()
        update = enclave_updates.get(timeout=10)
        assert health(update) == {f"sgx-enclave-{i}": "Unhealthy" for i in range(3)}
        with pytest.raises(grpc.RpcError) as refused:
            enclave.Allocate(
                pb.AllocateRequest(
                    container_requests=[pb.ContainerAllocateRequest(devices_ids=["sgx-enclave-0"])]
                ),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "unhealthy" in (refused.value.details() or "")
        sample = node.plugin.metrics.registry.get_sample_value
        devices = "sgx_quote_helper_deviceplugin_devices"
        enclave_name = {"resource": "sgx.intel.com/enclave"}
        assert sample(devices, {**enclave_name, "health": "Unhealthy"}) == 3
        assert sample(devices, {**enclave_name, "health": "Healthy"}) == 0
        failures = "sgx_quote_helper_deviceplugin_allocation_failures_total"
        assert sample(failures, {**enclave_name, "reason": "unhealthy"}) == 1
        # The provisioning device does not depend on that file.
        assert provision_updates.empty()
        provision.Allocate(
            pb.AllocateRequest(
                container_requests=[pb.ContainerAllocateRequest(devices_ids=["sgx-provision-0"])]
            ),
            timeout=10,
        )

        (node.host_dir / "enclave.secret").write_bytes(saved)
        assert set(health(enclave_updates.get(timeout=10)).values()) == {"Healthy"}
        enclave_call.cancel()
        provision_call.cancel()


def allocate_one(stub: Any, *ids: str) -> Any:
    request = pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)])
    return stub.Allocate(request, timeout=10)


def test_open_streams_do_not_starve_other_calls(node: Node) -> None:
    # Eight streams held every worker thread: Allocate, GetDevicePluginOptions and the
    # stream of a restarted kubelet waited for a worker until their deadline.
    node.kubelet.wait_for(2)
    with node.stub("sgx.intel.com-enclave.sock") as enclave:
        calls = []
        for _ in range(2 * MAX_STREAMS):
            call = enclave.ListAndWatch(pb.Empty(), timeout=30)
            assert len(next(call).devices) == 3
            calls.append(call)
        assert len(allocate_one(enclave, "sgx-enclave-0").container_responses) == 1
        assert not enclave.GetDevicePluginOptions(pb.Empty(), timeout=10).pre_start_required
        newest = enclave.ListAndWatch(pb.Empty(), timeout=30)
        assert len(next(newest).devices) == 3
        # The oldest streams made way, with a status that says why.
        for call in calls[: MAX_STREAMS + 1]:
            with pytest.raises(grpc.RpcError) as replaced:
                next(call)
            assert replaced.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "closed for a newer one" in (replaced.value.details() or "")
        for call in [*calls[MAX_STREAMS + 1 :], newest]:
            assert call.is_active()
            call.cancel()


def test_calls_beyond_the_limit_are_refused_not_queued(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls waiting for a worker used to queue without limit.
    node.kubelet.wait_for(2)
    release = threading.Event()
    plain = _Servicer.GetPreferredAllocation

    def stuck(self: _Servicer, request: Any, context: Any) -> Any:
        release.wait(30)
        return plain(self, request, context)

    # gRPC binds the handlers when it serves: remove the socket to make the plugin serve again.
    monkeypatch.setattr(_Servicer, "GetPreferredAllocation", stuck)
    (node.kubelet_dir / "sgx.intel.com-enclave.sock").unlink()
    node.kubelet.wait_for(4)
    extra = 5
    finished: queue.Queue[Any] = queue.Queue()
    try:
        with node.stub("sgx.intel.com-enclave.sock") as enclave:
            for _ in range(MAX_CONCURRENT_RPCS + extra):
                future = enclave.GetPreferredAllocation.future(
                    pb.PreferredAllocationRequest(), timeout=60
                )
                future.add_done_callback(finished.put)
            # Nothing can finish while the admitted calls are stuck: only refusals come back.
            refused = [finished.get(timeout=30) for _ in range(extra)]
            assert {f.code() for f in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert finished.empty()
            release.set()
            done = [finished.get(timeout=30) for _ in range(MAX_CONCURRENT_RPCS)]
            assert {f.code() for f in done} == {grpc.StatusCode.OK}
    finally:
        release.set()


def test_allocate_refusal_quotes_a_few_ids_and_is_logged(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    node.kubelet.wait_for(2)
    caplog.set_level(logging.INFO, "sgx_quote_helper.kube.deviceplugin")
    with node.stub("sgx.intel.com-enclave.sock") as enclave:
        ids = ["x" * 100_000, *(f"gpu-{i}" for i in range(5000))]
        with pytest.raises(grpc.RpcError) as refused:
            allocate_one(enclave, *ids)
        # Every id was quoted: a message past gRPC's metadata limit, so RESOURCE_EXHAUSTED.
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = refused.value.details() or ""
        assert details.startswith("sgx.intel.com/enclave: 5001 unknown device id(s): 'xxx")
        assert details.endswith(", 'gpu-0', 'gpu-1' and 4998 more")
        assert len(details) < 300
        for _ in range(30):
            allocate_one(enclave, "sgx-enclave-0")
    events = [r.getMessage() for r in caplog.records]
    assert events.count("deviceplugin.allocate_refused") == 1
    # Every call used to log a line: a peer calling in a loop flooded the log.
    assert events.count("deviceplugin.allocate") == 10
    node.plugin.stop()
    node.thread.join(timeout=20)
    suppressed = [r for r in caplog.records if r.getMessage() == "log.suppressed"]
    assert [r.fields for r in suppressed] == [  # type: ignore[attr-defined]
        {"event": "deviceplugin.allocate", "suppressed": 20, "interval": "10s"}
    ]


def wait_registrations(node: Node, count: int) -> None:
    """Until the plugin has seen ``count`` complete registration rounds (replies included)."""
    deadline = time.monotonic() + 20
    while node.plugin.registrations < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node.plugin.registrations == count


def test_reregisters_when_the_kubelet_restarts(node: Node) -> None:
    node.kubelet.wait_for(2)
    wait_registrations(node, 1)
    # A kubelet restart: it goes away, removes the plugin sockets, comes back on a new socket.
    node.kubelet.stop()
    for plugin_socket in node.kubelet_dir.glob("sgx.intel.com-*.sock"):
        plugin_socket.unlink()
    time.sleep(0.2)  # let the plugin see a node without a kubelet for a few ticks
    node.kubelet = StandInKubelet(node.kubelet_dir).start()
    requests = node.kubelet.wait_for(2)
    assert {r.resource_name for r in requests} == {
        "sgx.intel.com/enclave",
        "sgx.intel.com/provision",
    }
    # Served again on fresh sockets (the test removed the old ones).
    assert (node.kubelet_dir / "sgx.intel.com-enclave.sock").is_socket()
    with node.stub("sgx.intel.com-enclave.sock") as enclave:
        _, responses = stream(enclave)
        assert len(responses.get(timeout=10).devices) == 3
    wait_registrations(node, 2)

    # Only kubelet.sock recreated (plugin sockets left in place): registered again too.
    node.kubelet.stop()
    node.kubelet = StandInKubelet(node.kubelet_dir).start()
    assert len(node.kubelet.wait_for(2)) == 2
    wait_registrations(node, 3)  # once at start, once per kubelet restart


def test_refused_registration_is_fatal(platform_files: dict[str, bytes]) -> None:
    for root in short_dir():
        (root / "dp").mkdir()
        install_platform_files(platform_files, root / "host", provision_gid=0)
        kubelet = StandInKubelet(root / "dp", refuse="resource already registered").start()
        plugin = SimulatedDevicePlugin(
            simulated_resources(ResourceNames(), enclave_count=1, provision_count=1),
            host_dir=root / "host",
            kubelet_dir=root / "dp",
            health_interval=0.05,
        )
        try:
            with pytest.raises(
                DevicePluginError,
                match=r"refused to register sgx\.intel\.com/enclave.*INVALID_ARGUMENT",
            ):
                plugin.run()
        finally:
            kubelet.stop()
        assert list((root / "dp").iterdir()) == []  # its sockets were removed on the way out


def test_missing_kubelet_dir_is_a_clear_error(tmp_path: Path) -> None:
    plugin = SimulatedDevicePlugin(
        simulated_resources(ResourceNames(), enclave_count=1, provision_count=1),
        host_dir=tmp_path,
        kubelet_dir=tmp_path / "nope",
    )
    with pytest.raises(DevicePluginError, match="no kubelet device plugin directory"):
        plugin.run()
    with pytest.raises(DevicePluginError, match="at least one device"):
        simulated_resources(ResourceNames(), enclave_count=0, provision_count=1)


# ---- the command: Secret from the API, files on the host, EPC capacity, SIGTERM ---------------


def test_device_plugin_command_against_api_and_kubelet(platform_files: dict[str, bytes]) -> None:
    for root in short_dir():
        (root / "dp").mkdir()
        kubelet = StandInKubelet(root / "dp")  # started later: the node's kubelet is slow
        token = root / "token"
        token.write_text("t0ken\n")
        with StandInApi(["node-a"], token="t0ken") as api:
            api.secret_misses = 2  # the bootstrap Job has not run yet: the plugin waits
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                metrics_port = probe.getsockname()[1]
            api.secrets[("sgx", "sgx-sim-platform-node-a")] = platform_secret(
                "sgx-sim-platform-node-a", "node-a", platform_files
            ) | {"metadata": {"name": "sgx-sim-platform-node-a", "resourceVersion": "1"}}
            command = [
                sys.executable, "-m", "sgx_quote_helper", "device-plugin",
                "--node-name", "node-a", "--namespace", "sgx",
                "--host-dir", str(root / "host"), "--kubelet-dir", str(root / "dp"),
                "--provision-gid", "65534", "--epc-bytes", "67108864",
                "--enclave-limit", "4", "--provision-limit", "2", "--health-interval", "0.1",
                "--retry-interval", "0.2",
                "--api-server", api.url, "--api-token-file", str(token),
                "--metrics-listen", f"127.0.0.1:{metrics_port}",
                "--log-format", "json",
            ]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
            process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
            try:
                # EPC first, without a kubelet (as Intel's EPC hook in an init container).
                wait_patches(api, 1)
                kubelet.start()
                requests = kubelet.wait_for(2)
                assert {r.resource_name for r in requests} == {
                    "sgx.intel.com/enclave",
                    "sgx.intel.com/provision",
                }
                wait_patches(api, 2)  # again once registered
                scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
                values = {
                    (s.name, s.labels.get("resource"), s.labels.get("health")): s.value
                    for family in text_string_to_metric_families(scraped)
                    for s in family.samples
                }
                devices = "sgx_quote_helper_deviceplugin_devices"
                assert values[(devices, "sgx.intel.com/enclave", "Healthy")] == 4
                assert values[(devices, "sgx.intel.com/provision", "Healthy")] == 2
                assert (
                    values[("sgx_quote_helper_deviceplugin_registrations_total", None, None)] >= 1
                )
                # A kubelet restart: registered again, and the EPC capacity patched again.
                before = len(api.patches)
                kubelet.stop()
                kubelet = StandInKubelet(root / "dp").start()
                assert len(kubelet.wait_for(2)) == 2
                wait_patches(api, before + 1)
            finally:
                process.terminate()
                _, stderr = process.communicate(timeout=20)
            assert process.returncode == 0, stderr.decode()
            assert b"deviceplugin.waiting_for_secret" in stderr
            # Like Intel's EPC hook: the Node's status capacity (a merge patch of nodes/status).
            assert api.patches[0] == (
                "node-a",
                "application/merge-patch+json",
                {
                    "status": {
                        "capacity": {"sgx.intel.com/epc": "67108864"},
                        "allocatable": {"sgx.intel.com/epc": "67108864"},
                    }
                },
            )
            assert api.nodes["node-a"]["status"]["capacity"] == {
                "cpu": "2",
                "sgx.intel.com/epc": "67108864",
            }
            assert ("GET", "/api/v1/namespaces/sgx/secrets/sgx-sim-platform-node-a") in api.log
        kubelet.stop()
        # The files on the host, with the modes of the contract.
        host = root / "host"
        for name, mode, gid in (
            ("platform.json", 0o644, 0),
            ("enclave.secret", 0o644, 0),
            ("provision.secret", 0o640, 65534),
        ):
            info = (host / name).stat()
            assert (stat.S_IMODE(info.st_mode), info.st_gid) == (mode, gid), name
            assert (host / name).read_bytes() == platform_files[name]
        assert list((root / "dp").iterdir()) == []


def wait_patches(api: StandInApi, count: int) -> None:
    """Until the Node status was patched at least ``count`` times, all with the same patch."""
    deadline = time.monotonic() + 20
    while len(api.patches) < count:
        assert time.monotonic() < deadline, api.patches
        time.sleep(0.05)
    assert all(patch == api.patches[0] for patch in api.patches)


@pytest.mark.usefixtures("keep_logging")
def test_device_plugin_command_refused_by_rbac(capsys: pytest.CaptureFixture[str]) -> None:
    for root in short_dir():
        with StandInApi(["node-a"], token="right") as api:
            (root / "token").write_text("wrong")
            code = main([
                "device-plugin", "--node-name", "node-a", "--namespace", "sgx",
                "--host-dir", str(root / "host"), "--kubelet-dir", str(root),
                "--api-server", api.url, "--api-token-file", str(root / "token"),
            ])  # fmt: skip
        assert code == 1
        err = capsys.readouterr().err
        assert "HTTP 401" in err
        assert "ServiceAccount" in err


def test_device_plugin_command_from_a_platform_dir(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    sim = tmp_path_factory.mktemp("dp-dir") / "sim"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "init", str(sim)]) == 0
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    for root in short_dir():
        (root / "dp").mkdir()
        kubelet = StandInKubelet(root / "dp").start()
        command = [
            sys.executable, "-m", "sgx_quote_helper", "device-plugin",
            "--platform-dir", str(sim / "platform"), "--host-dir", str(root / "host"),
            "--kubelet-dir", str(root / "dp"), "--health-interval", "0.1",
        ]  # fmt: skip
        process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
        try:
            assert len(kubelet.wait_for(2)) == 2
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=20)
            kubelet.stop()
        assert process.returncode == 0, stderr.decode()
        assert read_platform_dir(root / "host") == read_platform_dir(sim / "platform")
        assert b"epc" not in stderr  # no API: no Node to patch


def test_device_plugin_command_stops_cleanly_while_waiting_for_its_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    for root in short_dir():
        with StandInApi(["node-a"]) as api:
            command = [
                sys.executable, "-m", "sgx_quote_helper", "device-plugin",
                "--node-name", "node-a", "--namespace", "sgx", "--api-server", api.url,
                "--host-dir", str(root / "host"), "--kubelet-dir", str(root),
                "--retry-interval", "0.1",
            ]  # fmt: skip
            process = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
            try:
                deadline = time.monotonic() + 30
                while sum(1 for _, path in api.log if "secrets" in path) < 2:
                    assert time.monotonic() < deadline
                    assert process.poll() is None
                    time.sleep(0.05)
            finally:
                process.terminate()
                _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr.decode()
        assert b"deviceplugin.waiting_for_secret" in stderr
        assert b"sgx-quote-helper sim register-nodes" in stderr
        assert not (root / "host").exists()


def test_secret_wait_survives_a_malformed_answer(
    platform_files: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    # JSON nested too deeply was a RecursionError that ended the device plugin.
    secret = json.dumps(platform_secret("sgx-sim-platform-a", "a", platform_files)).encode()

    def answer(handler: Any, count: int) -> None:
        handler.send(200, b"[" * 200_000 if count == 1 else secret)

    with RawApi(answer) as server, KubernetesApi(ApiConfig(server.url)) as api:
        files = wait_for_platform_secret(api, "sgx", "sgx-sim-platform-a", retry_interval=0.01)
    assert files == platform_files
    (warning,) = [r for r in caplog.records if r.getMessage() == "deviceplugin.api_unreachable"]
    assert warning.fields == {  # type: ignore[attr-defined]
        "error": "GET secret sgx/sgx-sim-platform-a: the API server's answer is JSON nested "
        "too deeply"
    }
