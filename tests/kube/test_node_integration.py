"""One node without Kubernetes: pods get exactly what the device plugin and the webhook give them.

The chain, as on a simulated cluster (docs/kube-components.md):

1. ``sim register-nodes`` makes the node's platform and its Secret (stand-in API);
2. the device plugin reads the Secret, writes the platform files into its host
   directory (``provision.secret`` 0640, group PROVISION_GID) and registers with
   a stand-in kubelet;
3. the pods, as their authors write them: the quote helper daemon requests the
   enclave and provision devices; two applications written for Intel's webhook
   (annotation ``sgx.intel.com/quote-provider: aesmd``, an EPC limit) go
   through the webhook, whose JSON Patch is applied;
4. the "kubelet": for each container, ``Allocate`` on the plugin's sockets for
   the devices its (mutated) resources ask for, plus its volumes and env;
5. each container is a directory holding only what it was given: the files of
   Allocate's mounts (hard links: the same inode, as a bind mount), hostPath
   volumes (symlinks to the node's directories), and its image content;
6. the daemon runs as uid 10001 with the provisioning group (the chart's
   supplementalGroups), the applications as ``nobody``; the applications
   attest each other through the daemon, and cannot read the provisioning
   secret.

Without a chroot, a process cannot see its container's paths at ``/``: container
paths in arguments and environment values are mapped into the container's
directory (``Container.host``). ``SGX_AESM_ADDR="1"`` means Intel's default
socket, ``/var/run/aesmd/aesm.socket`` in the container, so it maps to that
socket under the container's directory, named as this project's clients accept
it (``unix:PATH``). That is the only translation.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from daemon_support import short_dir
from kube_support import StandInApi, StandInKubelet, admission_review, apply_patch

from sgx_quote_helper._cli import main
from sgx_quote_helper.kube import (
    AESM_ADDR_ENV,
    CONTAINER_PLATFORM_DIR,
    PLATFORM_ENV,
    ApiConfig,
    KubernetesApi,
    ResourceNames,
    SimulatedDevicePlugin,
    install_platform_files,
    register_nodes,
    review,
    simulated_resources,
    wait_for_platform_secret,
)
from sgx_quote_helper.kube import _deviceplugin_pb2 as pb
from sgx_quote_helper.kube import _deviceplugin_pb2_grpc as pb_grpc
from sgx_quote_helper.pcs import serve_in_thread
from sgx_quote_helper.samples import REMOTE_ATTESTATION_MODULE, write_manifests

NOBODY = 65534
DAEMON_UID = 10001
PROVISION_GID = 4242
NAMESPACE = "sgx"
NODE = "node-1"
HOST_DEVICE_DIR = "/var/lib/sgx-quote-helper/sim-devices"
DEFAULT_AESM_SOCKET = "/var/run/aesmd/aesm.socket"
NAMES = ResourceNames()

# A container runtime's last step: become the container's user, then run its entrypoint.
# Modules are imported first because the interpreter's own files may not be readable by
# that user (the venv's base interpreter can live under /root, mode 0700).
LAUNCHER = r"""
import importlib, json, os, sys
spec = json.loads(sys.argv[1])
import pkgutil
import sgx_quote_helper
for info in pkgutil.walk_packages(sgx_quote_helper.__path__, "sgx_quote_helper."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
for name in spec["preload"]:
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
        if info.name.endswith(("__main__", ".tool")):
            continue  # command-line entry points, not libraries
        try:
            importlib.import_module(info.name)
        except Exception:  # another platform's module (asyncio.windows_events, ...)
            pass
import httpx
httpx.Client().close()  # loads the CA bundle through importlib.resources
module = importlib.import_module(spec["module"]) if spec["module"] != "probe" else None
os.setgroups(spec["groups"])
os.setgid(spec["gid"])
os.setuid(spec["uid"])
if module is None:
    result = {}
    for path in spec["argv"]:
        try:
            open(path, "rb").close()
            result[path] = "readable"
        except PermissionError:
            result[path] = "permission denied"
        except FileNotFoundError:
            result[path] = "absent"
    print(json.dumps(result))
    sys.exit(0)
sys.exit(module.main(spec["argv"]))
"""
#: Packages whose modules load lazily at run time (stdlib first): imported whole beforehand.
PRELOAD = [
    "asyncio",
    "concurrent",
    "email",
    "encodings",
    "importlib",
    "json",
    "http",
    "urllib",
    "logging",
    "certifi",
    "uvicorn",
]


def launch(
    module: str,
    argv: list[str],
    *,
    uid: int,
    gid: int,
    groups: list[int],
    env: Mapping[str, str],
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    spec = {"module": module, "argv": argv, "uid": uid, "gid": gid, "groups": groups}
    spec["preload"] = PRELOAD
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        pass_fds=pass_fds,
    )


# ---- the node's file system and its containers --------------------------------------------------


@dataclass
class NodeFs:
    """The node's root: host paths of the pod specs live under it."""

    root: Path

    def host(self, path: str) -> Path:
        return self.root / "node" / path.lstrip("/")


@dataclass
class Container:
    """A container as a directory: only what its pod spec and Allocate gave it."""

    name: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    def host(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def bind_file(self, container_path: str, host_path: Path) -> None:
        target = self.host(container_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(host_path, target)  # the same inode, as a bind mount of the file

    def bind_dir(self, container_path: str, host_path: Path) -> None:
        target = self.host(container_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(host_path, target_is_directory=True)

    def process_env(self) -> dict[str, str]:
        """The container's environment, container paths mapped into its directory."""
        env = {"PATH": "/usr/bin:/bin"}
        for name, value in self.env.items():
            if name == AESM_ADDR_ENV and not value.startswith(("/", "unix:")):
                env[name] = f"unix:{self.host(DEFAULT_AESM_SOCKET)}"
            elif value.startswith("/"):
                env[name] = str(self.host(value))
            else:
                env[name] = value
        return env


class Kubelet:
    """What the kubelet does for a container: Allocate its devices, mount its volumes."""

    def __init__(self, node: NodeFs, kubelet_dir: Path) -> None:
        self.node = node
        self.kubelet_dir = kubelet_dir
        self.free: dict[str, list[str]] = {}
        self.allocations: dict[str, list[Any]] = {}

    def devices(self, resource: str) -> list[str]:
        if resource not in self.free:
            with self._stub(resource) as stub:
                first = next(iter(stub.ListAndWatch(pb.Empty(), timeout=10)))
            self.free[resource] = [d.ID for d in first.devices if d.health == "Healthy"]
        return self.free[resource]

    @contextlib.contextmanager
    def _stub(self, resource: str) -> Iterator[Any]:
        path = self.kubelet_dir / (resource.replace("/", "-") + ".sock")
        with grpc.insecure_channel(f"unix:{path}") as channel:
            yield pb_grpc.DevicePluginStub(channel)

    def start_container(self, pod: dict[str, Any], index: int, root: Path) -> Container:
        spec = pod["spec"]["containers"][index]
        container = Container(spec["name"], root)
        root.mkdir(mode=0o755)
        limits = (spec.get("resources") or {}).get("limits") or {}
        for resource in (NAMES.enclave, NAMES.provision):
            count = int(limits.get(resource, 0))
            if not count:
                continue
            free = self.devices(resource)
            ids, free[:] = free[:count], free[count:]
            with self._stub(resource) as stub:
                answer = stub.Allocate(
                    pb.AllocateRequest(
                        container_requests=[pb.ContainerAllocateRequest(devices_ids=ids)]
                    ),
                    timeout=10,
                )
            (response,) = answer.container_responses
            self.allocations.setdefault(spec["name"], []).append(response)
            for mount in response.mounts:
                assert mount.read_only
                container.bind_file(mount.container_path, Path(mount.host_path))
            container.env.update(response.envs)
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for mount in spec.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert volume["hostPath"]["type"] == "DirectoryOrCreate"
            host = self.node.host(volume["hostPath"]["path"])
            host.mkdir(parents=True, exist_ok=True)
            container.bind_dir(mount["mountPath"], host)
        for variable in spec.get("env", []):
            container.env[variable["name"]] = variable["value"]
        return container


def through_webhook(pod: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(admission_review(pod)).encode()
    outcome = review(body, NAMES)
    assert outcome.response["response"]["allowed"]
    mutated: dict[str, Any] = apply_patch(pod, outcome.patch)
    return mutated


def daemon_pod() -> dict[str, Any]:
    """The quote helper DaemonSet's pod as the K8s contract describes it (sim flavour)."""
    limits = {NAMES.epc: "1Mi", NAMES.enclave: "1", NAMES.provision: "1"}
    return {
        "metadata": {"name": "sgx-quote-helper-x1", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {
                    "name": "quote-helper",
                    "resources": {"limits": limits, "requests": limits},
                    "volumeMounts": [
                        {"name": "aesmd", "mountPath": "/var/run/aesmd"},
                        {"name": "state", "mountPath": "/var/lib/sgx-quote-helper/state"},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "aesmd",
                    "hostPath": {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"},
                },
                {
                    "name": "state",
                    "hostPath": {
                        "path": "/var/lib/sgx-quote-helper/state",
                        "type": "DirectoryOrCreate",
                    },
                },
            ],
        },
    }


def application_pod(name: str) -> dict[str, Any]:
    """An application written for Intel's webhook: the annotation and an EPC limit, nothing else."""
    return {
        "metadata": {
            "name": name,
            "namespace": "apps",
            "annotations": {"sgx.intel.com/quote-provider": "aesmd"},
        },
        "spec": {
            "containers": [
                {"name": name, "image": "sample-app", "resources": {"limits": {NAMES.epc: "512Ki"}}}
            ]
        },
    }


# ---- the test -----------------------------------------------------------------------------------


@pytest.fixture
def work() -> Iterator[Path]:
    yield from short_dir()


@pytest.mark.usefixtures("keep_logging")
@pytest.mark.skipif(
    os.geteuid() != 0, reason="the pods run as uids 10001 and 65534: needs root (CI runs as root)"
)
def test_pods_on_one_node_attest_each_other(work: Path) -> None:
    node = NodeFs(work)
    sim = work / "manufacturer" / "sim"
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    port = hold.getsockname()[1]
    pccs_url = f"http://127.0.0.1:{port}"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sim", "init", str(sim), "--pccs-url", pccs_url]) == 0

    # 1-2. register-nodes, then the device plugin on the node reading its Secret.
    kubelet_dir = work / "dp"
    kubelet_dir.mkdir()
    host_devices = node.host(HOST_DEVICE_DIR)
    with StandInApi([NODE]) as api_server, KubernetesApi(ApiConfig(api_server.url)) as api:
        [registered] = register_nodes(sim, api, NAMESPACE)
        assert registered.platform_created
        files = wait_for_platform_secret(api, NAMESPACE, f"sgx-sim-platform-{NODE}")
        assert files is not None
    install_platform_files(files, host_devices, PROVISION_GID)
    kubelet = StandInKubelet(kubelet_dir).start()
    plugin = SimulatedDevicePlugin(
        simulated_resources(NAMES, enclave_count=10, provision_count=10),
        host_dir=host_devices,
        kubelet_dir=kubelet_dir,
        health_interval=0.1,
    )
    plugin_thread = threading.Thread(target=plugin.run, daemon=True)
    plugin_thread.start()
    processes: list[subprocess.Popen[bytes]] = []
    stack = contextlib.ExitStack()
    try:
        kubelet.wait_for(2)
        node_kubelet = Kubelet(node, kubelet_dir)

        # 3-5. The pods, mutated and started as directories.
        daemon_spec = through_webhook(daemon_pod())
        assert "env" not in daemon_spec["spec"]["containers"][0]  # no annotation: no SGX_AESM_ADDR
        daemon = node_kubelet.start_container(daemon_spec, 0, work / "c-daemon")
        apps = {}
        for name in ("alice", "bob"):
            spec = through_webhook(application_pod(name))
            app = spec["spec"]["containers"][0]
            assert app["env"] == [{"name": "SGX_AESM_ADDR", "value": "1"}]
            assert app["resources"]["limits"] == {NAMES.epc: "512Ki", NAMES.enclave: "1"}
            apps[name] = node_kubelet.start_container(spec, 0, work / f"c-{name}")
            write_manifests(apps[name].host("/app"))  # the image's content
            os.link(sim / "pcs" / "root-ca.der", apps[name].host("/app/root-ca.der"))

        # What each container holds, and the environment the pod gives it.
        platform_files = sorted(p.name for p in daemon.host(CONTAINER_PLATFORM_DIR).iterdir())
        assert platform_files == ["enclave.secret", "platform.json", "provision.secret"]
        assert daemon.env == {PLATFORM_ENV: CONTAINER_PLATFORM_DIR}
        for app_container in apps.values():
            view = sorted(p.name for p in app_container.host(CONTAINER_PLATFORM_DIR).iterdir())
            assert view == ["enclave.secret", "platform.json"]
            assert app_container.env == {PLATFORM_ENV: CONTAINER_PLATFORM_DIR, AESM_ADDR_ENV: "1"}

        # 6. The daemon: uid 10001 in the provisioning group, owning its host directories.
        for path in (node.host("/var/run/aesmd"), node.host("/var/lib/sgx-quote-helper/state")):
            os.chown(path, DAEMON_UID, DAEMON_UID)
        (work / "admin").mkdir()
        os.chown(work / "admin", DAEMON_UID, DAEMON_UID)
        admin = work / "admin" / "admin.socket"  # the admin endpoint, outside any app's view
        serve = [
            "serve", "--backend", "sim",
            "--platform", str(daemon.host(CONTAINER_PLATFORM_DIR)),
            "--socket", str(daemon.host(DEFAULT_AESM_SOCKET)),
            "--pccs-url", pccs_url,
            "--state-dir", str(daemon.host("/var/lib/sgx-quote-helper/state")),
            "--admin-listen", f"unix:{admin}",
            # One process: the launcher starts the interpreter as root and then
            # drops to the daemon's uid, which cannot exec this machine's
            # interpreter for a worker (tests/deploy/test_images.py runs the
            # default workers in the real image).
            "--workers", "1",
        ]  # fmt: skip
        hold.close()
        with serve_in_thread(sim, port=port):
            daemon_log = stack.enter_context((work / "daemon.log").open("wb"))
            processes.append(
                launch(
                    "sgx_quote_helper._cli",
                    serve,
                    uid=DAEMON_UID,
                    gid=DAEMON_UID,
                    groups=[PROVISION_GID],
                    env=daemon.process_env(),
                    stdout=daemon_log,
                    stderr=subprocess.STDOUT,
                )
            )
            wait_ready(processes[0], admin, work / "daemon.log")

            # The applications as nobody: each quotes through the daemon and verifies the other.
            ends = dict(zip(apps, socket.socketpair(), strict=True))
            peers = {"alice": "bob", "bob": "alice"}
            runs = {}
            for name, app_container in apps.items():
                argv = [
                    "--manifest", str(app_container.host(f"/app/{name}.toml")),
                    "--peer-manifest", str(app_container.host(f"/app/{peers[name]}.toml")),
                    "--root-ca", str(app_container.host("/app/root-ca.der")),
                    "--pccs-url", pccs_url,
                    "--peer-fd", str(ends[name].fileno()),
                    "--name", name, "--json", "--timeout", "30",
                ]  # fmt: skip
                runs[name] = launch(
                    REMOTE_ATTESTATION_MODULE,
                    argv,
                    uid=NOBODY,
                    gid=NOBODY,
                    groups=[],
                    env=app_container.process_env(),
                    pass_fds=(ends[name].fileno(),),
                )
                processes.append(runs[name])
                ends[name].close()
            outcomes: dict[str, tuple[int | None, list[dict[str, Any]], str]] = {}
            for name, run in runs.items():
                out, err = run.communicate(timeout=90)
                lines = [
                    json.loads(line) for line in out.decode().splitlines() if line.startswith("{")
                ]
                outcomes[name] = (run.returncode, lines, err.decode())
            probe = launch(
                "probe",
                [
                    str(host_devices / "provision.secret"),
                    str(apps["alice"].host(f"{CONTAINER_PLATFORM_DIR}/provision.secret")),
                    str(apps["alice"].host(f"{CONTAINER_PLATFORM_DIR}/enclave.secret")),
                ],
                uid=NOBODY,
                gid=NOBODY,
                groups=[],
                env={"PATH": "/usr/bin:/bin"},
            )
            probe_out, probe_err = probe.communicate(timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        plugin.stop()
        plugin_thread.join(timeout=20)
        kubelet.stop()
        stack.close()

    daemon_text = (work / "daemon.log").read_text(errors="replace")
    assert processes[0].returncode == 0, daemon_text
    for name, (code, lines, stderr) in outcomes.items():
        events = {line["step"]: line for line in lines}
        assert code == 0, f"{name}: {stderr}\n{lines}\ndaemon:\n{daemon_text[-3000:]}"
        assert events["result"]["ok"] is True
        assert events["quote"]["mode"] == "out-of-process"
        assert str(apps[name].host(DEFAULT_AESM_SOCKET)) in events["quote"]["via"]
        assert events["platform"]["provisioning_secret"] == "absent"
        assert events["platform"]["loaded_provisioning_secret"] is False
        assert events["verify_peer"]["status"] == "UpToDate"
    assert outcomes["alice"][1][-1]["key_fingerprint"] == outcomes["bob"][1][-1]["key_fingerprint"]
    # The applications cannot read the provisioning secret: not in their view, and the
    # node's file is closed to their uid; the daemon's group could read it.
    assert json.loads(probe_out) == {
        str(host_devices / "provision.secret"): "permission denied",
        str(apps["alice"].host(f"{CONTAINER_PLATFORM_DIR}/provision.secret")): "absent",
        str(apps["alice"].host(f"{CONTAINER_PLATFORM_DIR}/enclave.secret")): "readable",
    }, probe_err
    info = (host_devices / "provision.secret").stat()
    assert (info.st_mode & 0o777, info.st_gid) == (0o640, PROVISION_GID)


def wait_ready(daemon: subprocess.Popen[bytes], admin: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert daemon.poll() is None, log.read_text(errors="replace")
        if admin.exists():
            try:
                with httpx.Client(transport=httpx.HTTPTransport(uds=str(admin)), timeout=2) as http:
                    if http.get("http://daemon/readyz").status_code == 200:
                        return
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the daemon was not ready in time:\n{log.read_text(errors='replace')}")
