"""``make e2e-k8s``: the ``sim`` flavour on a real Kubernetes 1.20 API server.

No kubelet and no container runtime: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler (built by ``build.sh`` from Debian's source package) run on
loopback with certificates made here. The run then

1. creates two Node objects and marks them Ready, with the SGX resources a
   device plugin would advertise through their kubelet;
2. renders the chart with the ``sim`` preset for ``--kube-version 1.20.2`` and
   applies it server-side (kinds whose CRDs are absent, such as cert-manager's,
   are listed and left out);
3. runs the project's webhook process on loopback with a certificate made here,
   registers it through the chart (``webhook.url`` + ``webhook.tls.caBundle``)
   and checks what the API server stored for Pods created through it;
4. plays the kubelet's part for the status only: a loop marks scheduled pods
   Running and Ready, and the DaemonSets must roll out onto both nodes;
5. checks RBAC with ``kubectl auth can-i --as=system:serviceaccount:NS:SA``:
   each component may do what it needs and nothing next to it; then runs the
   bootstrap (``sim register-nodes``) and the device plugin's node-status
   update as the real processes with their service accounts' tokens, where the
   installed package has them.

Every check prints ``ok`` or ``FAIL``; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "sgx-quote-helper"
SIM_PRESET = REPO / "deploy" / "helm" / "presets" / "sim.yaml"
RELEASE = "sgx-quote-helper"
NAMESPACE = "sgx-quote-helper"
APPS_NAMESPACE = "e2e-apps"
WEBHOOK_TLS = "sgx-quote-helper-webhook-tls"
PLATFORM_PREFIX = "sgx-sim-platform-"
NODES = ("sgx-node-a", "sgx-node-b")
K8S_VERSION = "1.20.2"
EPC = "sgx.intel.com/epc"
ENCLAVE = "sgx.intel.com/enclave"
PROVISION = "sgx.intel.com/provision"
#: What the kubelet advertises once the device plugin registered its devices. EPC
#: is not among them: the simulated device plugin patches it into the Node status
#: itself (as Intel's EPC hook does), and pods requesting EPC wait for that.
NODE_RESOURCES = {
    "cpu": "4",
    "memory": "8Gi",
    "pods": "110",
    ENCLAVE: "110",
    PROVISION: "110",
}


def default_state_dir() -> Path:
    explicit = os.environ.get("SQH_E2E_K8S_DIR")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sgx-quote-helper" / "e2e-k8s"


# ---------------------------------------------------------------- reporting


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    passed: int = 0
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"  ok    {what}", flush=True)
        else:
            self.failures.append(what)
            print(f"  FAIL  {what}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def step(self, title: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {title}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note  {text}", flush=True)


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class Pki:
    """A throw-away CA and the certificates the control plane and the webhook need."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e-k8s CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._ca_name = name
        self._ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca = self.dir / "ca.crt"
        self.ca.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def ca_bundle_b64(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode()

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: Sequence[str] = (),
        server_ips: Sequence[str] = (),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        now = datetime.datetime.now(datetime.UTC)
        server = bool(server_names or server_ips)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self._ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH]
                    if server
                    else [ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            alt: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self._ca_key, hashes.SHA256())
        issued = Issued(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        issued.key.chmod(0o600)
        return issued

    def service_account_keys(self) -> tuple[Path, Path]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = self.dir / "sa.key"
        public = self.dir / "sa.pub"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private, public


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Processes:
    """Every process this run started; all stopped at the end, whatever happened."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        self._procs.append((name, proc))

    def check_alive(self) -> None:
        for name, proc in self._procs:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop_all(self) -> None:
        for _, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in reversed(self._procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(what: str, probe: Callable[[], bool], timeout: float, procs: Processes) -> None:
    deadline = time.monotonic() + timeout
    while True:
        procs.check_alive()
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


# ---------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    url: str
    api: httpx.Client
    kubeconfig: Path
    kubectl: Path

    def kubectl_run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def get(self, path: str) -> Any:
        response = self.api.get(path)
        response.raise_for_status()
        return response.json()

    def send(self, method: str, path: str, body: Any, content_type: str) -> Any:
        response = self.api.request(
            method, path, content=json.dumps(body), headers={"Content-Type": content_type}
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def create(self, path: str, body: Any) -> Any:
        return self.send("POST", path, body, "application/json")

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.send("PATCH", path, body, "application/merge-patch+json")


def write_kubeconfig(path: Path, url: str, ca: Path, client: Issued) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [
            {
                "name": "user",
                "user": {"client-certificate": str(client.cert), "client-key": str(client.key)},
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "user"}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=2))


@contextmanager
def control_plane(state: Path, work: Path, report: Report) -> Iterator[tuple[Cluster, Pki]]:
    bin_dir = state / "bin"
    rootfs = state / "root"
    for needed in (
        bin_dir / "kube-apiserver",
        bin_dir / "kube-controller-manager",
        bin_dir / "kube-scheduler",
        rootfs / "usr/bin/etcd",
        rootfs / "usr/bin/kubectl",
    ):
        if not needed.is_file():
            raise RuntimeError(f"{needed} is missing: run tools/e2e-k8s/build.sh first")

    pki = Pki(work / "pki")
    apiserver_port, etcd_port, etcd_peer = free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{apiserver_port}"
    serving = pki.issue(
        "apiserver",
        "kube-apiserver",
        server_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        server_ips=["127.0.0.1", "10.0.0.1"],
    )
    admin = pki.issue("admin", "e2e-admin", organization="system:masters")
    kcm = pki.issue("kcm", "system:kube-controller-manager")
    scheduler = pki.issue("scheduler", "system:kube-scheduler")
    sa_key, sa_pub = pki.service_account_keys()
    kubeconfigs = {}
    for name, client in (("admin", admin), ("kcm", kcm), ("scheduler", scheduler)):
        kubeconfigs[name] = work / f"{name}.kubeconfig"
        write_kubeconfig(kubeconfigs[name], url, pki.ca, client)

    procs = Processes(work / "logs")
    try:
        report.step("control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler")
        started = time.monotonic()
        procs.start(
            "etcd",
            [
                str(rootfs / "usr/bin/etcd"),
                "--data-dir", str(work / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
                "--log-level", "warn",
            ],
        )  # fmt: skip
        procs.start(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={apiserver_port}",
                "--insecure-port=0",
                f"--cert-dir={work / 'apiserver-certs'}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={pki.ca}",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--v=1",
            ],
        )
        tls = ssl.create_default_context(cafile=str(pki.ca))
        tls.load_cert_chain(str(admin.cert), str(admin.key))
        api = httpx.Client(base_url=url, verify=tls, timeout=30)
        wait_until(
            "the API server's /readyz",
            lambda: api.get("/readyz").status_code == 200,
            120,
            procs,
        )
        report.note(f"API server ready in {time.monotonic() - started:.1f} s at {url}")
        procs.start(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfigs['kcm']}",
                f"--authentication-kubeconfig={kubeconfigs['kcm']}",
                f"--authorization-kubeconfig={kubeconfigs['kcm']}",
                "--controllers=*,-nodelifecycle",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={pki.ca}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--port=0",
                f"--secure-port={free_port()}",
                f"--cert-dir={work / 'kcm-certs'}",
            ],
        )
        procs.start(
            "kube-scheduler",
            [
                str(bin_dir / "kube-scheduler"),
                f"--kubeconfig={kubeconfigs['scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--port=0",
                f"--secure-port={free_port()}",
                f"--cert-dir={work / 'scheduler-certs'}",
            ],
        )
        cluster = Cluster(url, api, kubeconfigs["admin"], rootfs / "usr/bin/kubectl")
        version = cluster.get("/version")
        report.check(
            version.get("gitVersion") == f"v{K8S_VERSION}",
            f"/version is v{K8S_VERSION}",
            str(version.get("gitVersion")),
        )
        yield cluster, pki
        procs.check_alive()
    finally:
        procs.stop_all()


# ---------------------------------------------------------------- nodes and pods


def create_nodes(cluster: Cluster, report: Report) -> None:
    report.step(f"nodes: {', '.join(NODES)} (Ready, SGX resources advertised)")
    for name in NODES:
        cluster.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                },
            },
        )
        # Created nodes carry node.kubernetes.io/not-ready:NoSchedule until a
        # kubelet reports Ready; the node lifecycle controller is off, so drop it.
        cluster.merge_patch(f"/api/v1/nodes/{name}", {"spec": {"taints": None}})
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cluster.merge_patch(
            f"/api/v1/nodes/{name}/status",
            {
                "status": {
                    "capacity": NODE_RESOURCES,
                    "allocatable": NODE_RESOURCES,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "message": "e2e-k8s: a stand-in for the kubelet",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                    ],
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                }
            },
        )
    ready = [
        node["metadata"]["name"]
        for node in cluster.get("/api/v1/nodes")["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        and not node["spec"].get("taints")
    ]
    report.check(sorted(ready) == sorted(NODES), "both nodes Ready and untainted", str(ready))


class PodStatusLoop:
    """The kubelet's part, status only: scheduled pods become Running and Ready."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-status", daemon=True)
        self.marked = 0
        self.errors: list[str] = []

    def __enter__(self) -> PodStatusLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._tick()
            except (httpx.HTTPError, RuntimeError) as exc:
                self.errors.append(str(exc))

    def _tick(self) -> None:
        pods = self.cluster.get("/api/v1/pods")["items"]
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for pod in pods:
            spec, status = pod["spec"], pod.get("status", {})
            if not spec.get("nodeName") or status.get("phase") == "Running":
                continue
            if pod["metadata"].get("deletionTimestamp"):
                continue
            containers = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in spec["containers"]
            ]
            conditions = [
                {"type": kind, "status": "True", "lastTransitionTime": now}
                for kind in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
            ]
            meta = pod["metadata"]
            self.cluster.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {
                    "status": {
                        "phase": "Running",
                        "conditions": conditions,
                        "containerStatuses": containers,
                        "hostIP": "127.0.0.1",
                        "podIP": "127.0.0.1",
                        "startTime": now,
                    }
                },
            )
            self.marked += 1


# ---------------------------------------------------------------- the chart


def render_chart(helm: Path, work: Path, extra: Sequence[str]) -> list[dict[str, Any]]:
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = tempfile.mkdtemp(prefix="helm-", dir=work)
    rendered = subprocess.run(
        [
            str(helm), "template", RELEASE, str(CHART),
            "--namespace", NAMESPACE,
            "--kube-version", K8S_VERSION,
            "-f", str(SIM_PRESET),
            *extra,
        ],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if rendered.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{rendered.stderr}")
    (work / "rendered.yaml").write_text(rendered.stdout)
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def served_kinds(cluster: Cluster) -> set[tuple[str, str]]:
    """(apiVersion, kind) pairs the API server serves."""
    kinds: set[tuple[str, str]] = set()
    for resource in cluster.get("/api/v1")["resources"]:
        kinds.add(("v1", resource["kind"]))
    for group in cluster.get("/apis")["groups"]:
        for version in group["versions"]:
            group_version = version["groupVersion"]
            for resource in cluster.get(f"/apis/{group_version}")["resources"]:
                kinds.add((group_version, resource["kind"]))
    return kinds


def apply_chart(
    cluster: Cluster, docs: list[dict[str, Any]], work: Path, report: Report
) -> list[dict[str, Any]]:
    served = served_kinds(cluster)
    applied = [d for d in docs if (d["apiVersion"], d["kind"]) in served]
    left_out = sorted({f"{d['apiVersion']}/{d['kind']}" for d in docs if d not in applied})
    if left_out:
        report.note(f"left out (no such API on this server): {', '.join(left_out)}")
    manifest = work / "applied.yaml"
    manifest.write_text(yaml.safe_dump_all(applied, sort_keys=False))
    result = cluster.kubectl_run(
        "apply", "--server-side", "--field-manager=e2e-k8s", "-f", str(manifest), check=False
    )
    report.check(
        result.returncode == 0,
        f"server-side apply of {len(applied)} objects of the sim flavour",
        result.stderr.strip(),
    )

    if result.returncode == 0:
        kinds: dict[str, int] = {}
        for doc in applied:
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        print("        " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    return applied


def check_reapply(cluster: Cluster, work: Path, report: Report) -> None:
    """Server-side apply is declarative: the same manifest again changes no object."""
    manifest = work / "applied.yaml"

    def versions() -> dict[str, str]:
        listed = json.loads(cluster.kubectl_run("get", "-f", str(manifest), "-o", "json").stdout)
        # Everything but status (controllers keep updating it) and the bookkeeping
        # of writes (resourceVersion, managedFields).
        found = {}
        for item in listed["items"]:
            item.pop("status", None)
            for key in ("resourceVersion", "managedFields"):
                item["metadata"].pop(key, None)
            found[f"{item['kind']}/{item['metadata']['name']}"] = json.dumps(item, sort_keys=True)
        return found

    before = versions()
    again = cluster.kubectl_run(
        "apply", "--server-side", "--field-manager=e2e-k8s", "-f", str(manifest), check=False
    )
    changed = sorted(k for k, v in versions().items() if before.get(k) != v)
    report.check(
        again.returncode == 0 and not changed,
        "applying the flavour again is accepted and changes no object",
        again.stderr.strip() or f"changed: {changed}",
    )


def provide_pccs_volume(cluster: Cluster, docs: list[dict[str, Any]], work: Path) -> None:
    """A hostPath PersistentVolume for each claim of the chart (no provisioner here)."""
    for doc in docs:
        if doc["kind"] != "PersistentVolumeClaim":
            continue
        spec = doc["spec"]
        cluster.create(
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"e2e-{doc['metadata']['name']}"},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec["accessModes"],
                    "storageClassName": spec.get("storageClassName") or "",
                    "hostPath": {"path": str(work / "pv" / doc["metadata"]["name"])},
                    "claimRef": {"namespace": NAMESPACE, "name": doc["metadata"]["name"]},
                },
            },
        )


def webhook_secret(cluster: Cluster, pki: Pki) -> None:
    """The webhook Deployment's TLS Secret (what cert-manager or the user provides)."""
    issued = pki.issue(
        "webhook-service",
        "sgx-quote-helper-webhook",
        server_names=[
            f"sgx-quote-helper-webhook.{NAMESPACE}.svc",
        ],
    )
    cluster.create(
        f"/api/v1/namespaces/{NAMESPACE}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": WEBHOOK_TLS},
            "data": {
                "tls.crt": base64.b64encode(issued.cert.read_bytes()).decode(),
                "tls.key": base64.b64encode(issued.key.read_bytes()).decode(),
            },
        },
    )


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("DaemonSet", "Deployment", "Job")]


def subcommand(workload: dict[str, Any]) -> str:
    """The sgx-quote-helper command a workload's main container runs (``sim X`` as ``X``)."""
    words = [a for a in main_args(workload) if not a.startswith("-")]
    if words[:1] == ["sim"] and len(words) > 1:
        return words[1]
    return words[0] if words else "?"


def main_args(workload: dict[str, Any]) -> list[str]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    return [*container.get("command", []), *container.get("args", [])]


# ---------------------------------------------------------------- checks


def check_rollout(cluster: Cluster, docs: list[dict[str, Any]], report: Report) -> None:
    report.step("rollout onto the fake nodes (pod status loop plays the kubelet)")
    for doc in docs:
        if doc["kind"] not in ("DaemonSet", "Deployment"):
            continue
        name = doc["metadata"]["name"]
        group = "apps/v1"
        path = f"/apis/{group}/namespaces/{NAMESPACE}/{doc['kind'].lower()}s/{name}"
        deadline = time.monotonic() + 120
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = cluster.get(path).get("status", {})
            if doc["kind"] == "DaemonSet":
                done = status.get("desiredNumberScheduled") == len(NODES) and status.get(
                    "numberReady"
                ) == len(NODES)
            else:
                want = doc["spec"].get("replicas", 1)
                done = status.get("readyReplicas") == want
            if done:
                break
            time.sleep(1)
        if doc["kind"] == "DaemonSet":
            report.check(
                status.get("numberReady") == len(NODES),
                f"DaemonSet {name} ready on {status.get('numberReady')}/{len(NODES)} nodes",
                json.dumps(status),
            )
            pods = cluster.get(
                f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector="
                + ",".join(f"{k}={v}" for k, v in doc["spec"]["selector"]["matchLabels"].items())
            )["items"]
            placed = sorted(p["spec"].get("nodeName", "") for p in pods)
            report.check(placed == sorted(NODES), f"  one {name} pod per node", str(placed))
        else:
            want = doc["spec"].get("replicas", 1)
            report.check(
                status.get("readyReplicas") == want,
                f"Deployment {name} {status.get('readyReplicas')}/{want} ready",
                json.dumps(status),
            )


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == name)


def check_webhook(cluster: Cluster, report: Report) -> None:
    report.step("webhook: pods created through the API server, stored pods checked")
    base = f"/api/v1/namespaces/{APPS_NAMESPACE}/pods"

    def pod(name: str, annotations: dict[str, str], containers: list[dict[str, Any]]) -> Any:
        return cluster.create(
            base,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"containers": containers, "nodeName": NODES[0]},
            },
        )

    def app(name: str, epc: str | None, **extra: Any) -> dict[str, Any]:
        container: dict[str, Any] = {"name": name, "image": "sgx-quote-helper-sample:0.1.0"}
        if epc:
            container["resources"] = {"limits": {EPC: epc}}
        container.update(extra)
        return container

    # 1. Intel's annotation in DaemonSet mode: enclave device, socket dir, SGX_AESM_ADDR.
    pod(
        "annotated",
        {"sgx.intel.com/quote-provider": "aesmd"},
        [
            app("app", "512Ki", env=[{"name": "KEEP", "value": "me"}]),
            app("sidecar", None),
        ],
    )
    stored = cluster.get(f"{base}/annotated")
    main = _container(stored, "app")
    limits = main.get("resources", {}).get("limits", {})
    requests = main.get("resources", {}).get("requests", {})
    report.check(
        limits.get(ENCLAVE) == "1" and requests.get(ENCLAVE, "1") == "1",
        f"annotated pod: {ENCLAVE}: 1 added to the EPC container",
        json.dumps(main.get("resources")),
    )
    report.check(PROVISION not in limits, f"annotated pod: no {PROVISION} for the application")
    env = {e["name"]: e.get("value") for e in main.get("env", [])}
    report.check(
        env.get("SGX_AESM_ADDR") == "1" and env.get("KEEP") == "me",
        'annotated pod: env SGX_AESM_ADDR="1" added, existing env kept',
        json.dumps(main.get("env")),
    )
    mounts = {m["mountPath"]: m["name"] for m in main.get("volumeMounts", [])}
    volume_name = mounts.get("/var/run/aesmd")
    volumes = {v["name"]: v for v in stored["spec"].get("volumes", [])}
    host_path = volumes.get(volume_name or "", {}).get("hostPath", {})
    report.check(
        host_path == {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"},
        "annotated pod: /var/run/aesmd mounted from hostPath DirectoryOrCreate (the directory)",
        json.dumps({"mounts": mounts, "volumes": list(volumes.values())}),
    )
    sidecar = _container(stored, "sidecar")
    report.check(
        ENCLAVE not in sidecar.get("resources", {}).get("limits", {}),
        "annotated pod: the container without EPC gets no enclave device",
        json.dumps(sidecar),
    )
    report.check(
        stored["metadata"]["annotations"].get(EPC) == "512Ki",
        f"annotated pod: annotation {EPC}: 512Ki (sum of EPC requests)",
        json.dumps(stored["metadata"]["annotations"]),
    )

    # 2. EPC without the annotation: only the enclave device.
    pod("epc-only", {}, [app("app", "1Mi")])
    stored = cluster.get(f"{base}/epc-only")
    main = _container(stored, "app")
    report.check(
        main["resources"]["limits"].get(ENCLAVE) == "1"
        and "env" not in main
        and not main.get("volumeMounts"),
        "EPC without annotation: enclave device only, no socket mount or env",
        json.dumps(main),
    )

    # 3. A container named by the annotation quotes in-process: provision only for it.
    pod(
        "in-process",
        {"sgx.intel.com/quote-provider": "quoter"},
        [app("quoter", "1Mi"), app("other", "1Mi")],
    )
    stored = cluster.get(f"{base}/in-process")
    quoter = _container(stored, "quoter")["resources"]["limits"]
    other = _container(stored, "other")["resources"]["limits"]
    report.check(
        quoter.get(PROVISION) == "1" and PROVISION not in other,
        "annotation naming a container: provision device for that container only",
        json.dumps({"quoter": quoter, "other": other}),
    )

    # 4. Neither: untouched.
    pod("plain", {}, [app("app", None)])
    stored = cluster.get(f"{base}/plain")
    main = _container(stored, "app")
    report.check(
        "resources" not in main or not main["resources"],
        "pod without EPC or annotation: unchanged",
        json.dumps(main),
    )

    # 5. An opted-out namespace is not touched.
    cluster.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": "e2e-opted-out",
                "labels": {
                    "kubernetes.io/metadata.name": "e2e-opted-out",
                    "sgx-quote-helper.io/webhook": "disabled",
                },
            },
        },
    )
    cluster.create(
        "/api/v1/namespaces/e2e-opted-out/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "skipped",
                "annotations": {"sgx.intel.com/quote-provider": "aesmd"},
            },
            "spec": {"containers": [app("app", "1Mi")], "nodeName": NODES[0]},
        },
    )
    stored = cluster.get("/api/v1/namespaces/e2e-opted-out/pods/skipped")
    report.check(
        ENCLAVE not in _container(stored, "app")["resources"]["limits"],
        "namespace labelled sgx-quote-helper.io/webhook=disabled: not mutated",
    )


#: (verb, resource, namespace or None for cluster scope, expected) per component.
RBAC_EXPECTATIONS: dict[str, list[tuple[str, str, str | None, bool]]] = {
    "register-nodes": [
        ("list", "nodes", None, True),
        ("get", "secrets", NAMESPACE, True),
        ("create", "secrets", NAMESPACE, True),
        ("update", "secrets", NAMESPACE, True),
        ("delete", "secrets", NAMESPACE, False),
        ("get", "secrets", "kube-system", False),
        ("create", "secrets", "default", False),
        ("patch", "nodes", None, False),
        ("delete", "nodes", None, False),
        ("list", "pods", NAMESPACE, False),
    ],
    "device-plugin": [
        ("get", "secrets", NAMESPACE, True),
        ("patch", "nodes/status", None, True),
        ("create", "secrets", NAMESPACE, False),
        ("update", "secrets", NAMESPACE, False),
        ("delete", "secrets", NAMESPACE, False),
        ("get", "secrets", "kube-system", False),
        ("patch", "nodes", None, False),
        ("delete", "nodes", None, False),
        ("list", "pods", None, False),
    ],
    "serve": [
        ("get", "secrets", NAMESPACE, False),
        ("list", "secrets", NAMESPACE, False),
        ("list", "pods", None, False),
        ("get", "nodes", None, False),
        ("patch", "nodes/status", None, False),
    ],
    "pccs": [
        ("get", "secrets", NAMESPACE, False),
        ("list", "nodes", None, False),
        ("create", "pods", NAMESPACE, False),
    ],
    "webhook": [
        ("get", "secrets", NAMESPACE, False),
        ("list", "pods", None, False),
        ("patch", "mutatingwebhookconfigurations", None, False),
    ],
}


#: Components that never call the API server: their pods get no token at all.
NEEDS_NO_API = ("serve", "pccs", "webhook")


def check_rbac(cluster: Cluster, docs: list[dict[str, Any]], report: Report) -> None:
    report.step("RBAC: kubectl auth can-i --as=system:serviceaccount:NS:SA")
    seen: set[str] = set()
    for workload in workloads(docs):
        component = subcommand(workload)
        account = workload["spec"]["template"]["spec"].get("serviceAccountName", "default")
        if component in seen:
            continue
        seen.add(component)
        expectations = RBAC_EXPECTATIONS.get(component)
        if expectations is None:
            report.note(f"no RBAC expectations for {workload['metadata']['name']} ({component})")
            continue
        subject = f"system:serviceaccount:{NAMESPACE}:{account}"
        for verb, resource, namespace, expected in expectations:
            scope = ["-n", namespace] if namespace else []
            kind, _, sub = resource.partition("/")
            if sub:
                scope.append(f"--subresource={sub}")
            answer = cluster.kubectl_run(
                "auth", "can-i", verb, kind, *scope, f"--as={subject}", check=False
            ).stdout.strip()
            where = f" in {namespace}" if namespace else ""
            report.check(
                (answer == "yes") == expected,
                f"{account} ({component}) {'may' if expected else 'may not'} "
                f"{verb} {resource}{where}",
                f"kubectl says {answer!r}",
            )
    for workload in workloads(docs):
        component = subcommand(workload)
        if component in NEEDS_NO_API:
            kind = workload["kind"].lower() + "s"
            group = "batch/v1" if kind == "jobs" else "apps/v1"
            stored = cluster.get(
                f"/apis/{group}/namespaces/{NAMESPACE}/{kind}/{workload['metadata']['name']}"
            )
            report.check(
                stored["spec"]["template"]["spec"].get("automountServiceAccountToken") is False,
                f"{workload['metadata']['name']} ({component}) mounts no service account token",
            )
    missing = set(RBAC_EXPECTATIONS) - seen
    if missing:
        report.note(f"components not in the rendered chart: {', '.join(sorted(missing))}")


def service_account_token(cluster: Cluster, account: str, work: Path) -> Path:
    token = cluster.create(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )["status"]["token"]
    path = work / f"{account}.token"
    path.write_text(token)
    path.chmod(0o600)
    return path


def api_flags(cluster: Cluster, pki: Pki, token: Path) -> list[str]:
    """Where a component finds the API server outside a pod (inside: in-cluster config)."""
    return [
        f"--api-server={cluster.url}",
        f"--api-token-file={token}",
        f"--api-ca-file={pki.ca}",
    ]


def run_bootstrap(
    cluster: Cluster, pki: Pki, docs: list[dict[str, Any]], cli: Path, work: Path, report: Report
) -> bool:
    """The bootstrap Job's command line as a host process with its service account's token."""
    report.step("bootstrap: the Job's `sim register-nodes` as its service account")
    help_text = subprocess.run([str(cli), "sim", "--help"], capture_output=True, text=True).stdout
    jobs = [w for w in workloads(docs) if subcommand(w) == "register-nodes"]
    if "register-nodes" not in help_text or not jobs:
        report.note("no `sim register-nodes` in this build or chart; bootstrap left out")
        return False
    job = jobs[0]
    account = job["spec"]["template"]["spec"]["serviceAccountName"]
    token = service_account_token(cluster, account, work)
    sim_dir = work / "sim"
    # What the PCCS pod does on its claim before the bootstrap runs.
    subprocess.run(
        [str(cli), "sim", "init", str(sim_dir), "--pccs-url", "http://127.0.0.1:8081"],
        capture_output=True,
        check=True,
    )
    # The Job's own command line, with the claim's mount point replaced by the directory.
    args = main_args(job)
    args = [str(sim_dir) if a.startswith("/") else a for a in args[args.index("sim") :]]
    argv = [str(cli), *args, *api_flags(cluster, pki, token)]
    report.note("ran: sgx-quote-helper " + " ".join(args))
    first = subprocess.run(argv, capture_output=True, text=True)
    report.check(first.returncode == 0, "register-nodes exits 0", first.stderr.strip()[-2000:])
    secrets = {
        s["metadata"]["name"]: s
        for s in cluster.get(f"/api/v1/namespaces/{NAMESPACE}/secrets")["items"]
    }
    for node in NODES:
        keys = sorted(secrets.get(PLATFORM_PREFIX + node, {}).get("data", {}))
        report.check(
            keys == ["enclave.secret", "platform.json", "provision.secret"],
            f"Secret {PLATFORM_PREFIX}{node} with platform.json, enclave.secret, provision.secret",
            str(keys),
        )
    versions = {n: secrets.get(PLATFORM_PREFIX + n, {}).get("metadata", {}) for n in NODES}
    again = subprocess.run(argv, capture_output=True, text=True)
    after = {
        n: cluster.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{PLATFORM_PREFIX}{n}")["metadata"]
        for n in NODES
    }
    report.check(
        again.returncode == 0
        and all(after[n]["resourceVersion"] == versions[n].get("resourceVersion") for n in NODES),
        "register-nodes again: exits 0 and rewrites no Secret (idempotent)",
        again.stderr.strip()[-2000:],
    )
    return True


class StandInKubelet:
    """The kubelet's device plugin Registration service on a Unix socket (records requests)."""

    def __init__(self, directory: Path) -> None:
        self.requests: list[bytes] = []
        self.socket = directory / "kubelet.sock"

        def register(request: bytes, context: Any) -> bytes:
            self.requests.append(request)
            return b""  # google.protobuf.Empty

        handler = grpc.method_handlers_generic_handler(
            "v1beta1.Registration",
            {
                "Register": grpc.unary_unary_rpc_method_handler(
                    register,
                    request_deserializer=lambda raw: raw,
                    response_serializer=lambda raw: raw,
                )
            },
        )
        self._server = grpc.server(ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        self._server.add_insecure_port(f"unix://{self.socket}")
        self._server.start()

    def registered(self) -> set[str]:
        names = set()
        for raw in self.requests:
            for name in (ENCLAVE, PROVISION):
                if name.encode() in raw:
                    names.add(name)
        return names

    def stop(self) -> None:
        self._server.stop(grace=None)


def check_waiting_for_epc(cluster: Cluster, docs: list[dict[str, Any]], report: Report) -> None:
    """Before any device plugin ran, the daemon's pods (which request EPC) cannot schedule."""
    daemon = next((w for w in workloads(docs) if subcommand(w) == "serve"), None)
    if daemon is None:
        return
    selector = ",".join(f"{k}={v}" for k, v in daemon["spec"]["selector"]["matchLabels"].items())
    path = f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}"
    messages: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = cluster.get(path)["items"]
        messages = [
            condition.get("message", "")
            for pod in pods
            for condition in pod.get("status", {}).get("conditions", [])
            if condition["type"] == "PodScheduled" and condition["status"] == "False"
        ]
        if len(messages) == len(NODES) and all(f"Insufficient {EPC}" in m for m in messages):
            break
        time.sleep(1)
    report.check(
        len(messages) == len(NODES) and all(f"Insufficient {EPC}" in m for m in messages),
        f"daemon pods wait (Unschedulable: Insufficient {EPC}) while no node has EPC",
        str(messages),
    )


LISTEN_FLAGS = ("--metrics-listen=", "--admin-listen=", "--listen=")


def run_device_plugins(
    cluster: Cluster, pki: Pki, docs: list[dict[str, Any]], cli: Path, work: Path, report: Report
) -> bool:
    """The device plugin DaemonSet's command line, once per node, as its service account."""
    report.step("device plugin per node as its service account, with a stand-in kubelet")
    plugins = [w for w in workloads(docs) if subcommand(w) == "device-plugin"]
    if not plugins:
        report.note("no device plugin in the chart; EPC capacity left out")
        return False
    daemonset = plugins[0]
    account = daemonset["spec"]["template"]["spec"]["serviceAccountName"]
    token = service_account_token(cluster, account, work)
    chart_args = main_args(daemonset)
    epc_bytes = next(a.split("=", 1)[1] for a in chart_args if a.startswith("--epc-bytes="))
    replaced = ("--node-name", "--host-dir", "--kubelet-dir")
    kept = [a for a in chart_args if not a.startswith(replaced)]
    procs = Processes(work / "logs")
    kubelets: dict[str, StandInKubelet] = {}
    try:
        for node in NODES:
            node_dir = work / "nodes" / node
            (node_dir / "kubelet").mkdir(parents=True)
            kubelets[node] = StandInKubelet(node_dir / "kubelet")
            # Listeners (metrics) on a port of their own: two "nodes" share loopback.
            own = [
                f"{a.split('=', 1)[0]}=127.0.0.1:{free_port()}" if a.startswith(LISTEN_FLAGS) else a
                for a in kept[kept.index("device-plugin") :]
            ]
            procs.start(
                f"device-plugin-{node}",
                [
                    str(cli), *own,
                    f"--node-name={node}",
                    f"--host-dir={node_dir / 'host'}",
                    f"--kubelet-dir={node_dir / 'kubelet'}",
                    *api_flags(cluster, pki, token),
                ],
            )  # fmt: skip
        report.note(
            "ran per node: sgx-quote-helper " + " ".join(kept[kept.index("device-plugin") :])
        )

        def epc_of(node: str) -> str | None:
            status = cluster.get(f"/api/v1/nodes/{node}")["status"]
            value: str | None = status.get("capacity", {}).get(EPC)
            return value

        wait_until(
            "both plugins registering and patching EPC",
            lambda: all(
                kubelets[n].registered() == {ENCLAVE, PROVISION} and epc_of(n) is not None
                for n in NODES
            ),
            90,
            procs,
        )
        for node in NODES:
            report.check(
                kubelets[node].registered() == {ENCLAVE, PROVISION},
                f"{node}: plugin registered {ENCLAVE} and {PROVISION} with the kubelet",
            )
            report.check(
                epc_of(node) == epc_bytes,
                f"{node}: Node status.capacity {EPC} = {epc_bytes} (patched by the plugin)",
                str(epc_of(node)),
            )
            host = work / "nodes" / node / "host"
            modes = {f.name: oct(f.stat().st_mode & 0o777) for f in host.iterdir() if f.is_file()}
            report.check(
                modes.get("platform.json") == "0o644"
                and modes.get("enclave.secret") == "0o644"
                and modes.get("provision.secret") == "0o640",
                f"{node}: platform files on the host (provision.secret 0640)",
                str(modes),
            )
        procs.check_alive()
    finally:
        procs.stop_all()
        for kubelet in kubelets.values():
            kubelet.stop()
    return True


# ---------------------------------------------------------------- main


@contextmanager
def webhook_process(cli: Path, pki: Pki, work: Path, args: list[str]) -> Iterator[str]:
    port = free_port()
    serving = pki.issue("webhook", "e2e webhook", server_ips=["127.0.0.1"])
    procs = Processes(work / "logs")
    procs.start(
        "webhook",
        [
            str(cli), "webhook", f"--listen=127.0.0.1:{port}",
            f"--tls-cert={serving.cert}", f"--tls-key={serving.key}", *args,
        ],
    )  # fmt: skip
    try:
        with httpx.Client(
            verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=5
        ) as client:
            wait_until(
                "the webhook's /healthz",
                lambda: client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200,
                60,
                procs,
            )
        yield f"https://127.0.0.1:{port}/mutate"
        procs.check_alive()
    finally:
        procs.stop_all()


def webhook_args(docs: list[dict[str, Any]]) -> list[str]:
    """The chart's webhook flags other than where it listens and its certificate."""
    deployment = next(w for w in workloads(docs) if subcommand(w) == "webhook")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return [
        a
        for a in container.get("args", [])
        if a.startswith("--") and not a.startswith(("--listen", "--tls-"))
    ]


def run(args: argparse.Namespace) -> int:
    report = Report()
    state: Path = args.state_dir
    work = state / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cli = Path(args.venv_bin) / "sgx-quote-helper"
    helm = Path(args.helm)
    print(f"e2e-k8s: Kubernetes v{K8S_VERSION} from {state}; logs in {work / 'logs'}")
    with control_plane(state, work, report) as (cluster, pki):
        create_nodes(cluster, report)
        for name in (NAMESPACE, APPS_NAMESPACE):
            # 1.20 does not label namespaces with their name yet; selectors may use it.
            cluster.create(
                "/api/v1/namespaces",
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": name,
                        "labels": {"kubernetes.io/metadata.name": name},
                    },
                },
            )
        first = render_chart(helm, work, [])
        webhook_flags = webhook_args(first)
        with webhook_process(cli, pki, work, webhook_flags) as webhook_url:
            report.note(f"webhook process on {webhook_url} with {' '.join(webhook_flags)}")
            report.step("render (--kube-version 1.20.2, sim preset) and apply server-side")
            docs = render_chart(
                helm,
                work,
                [
                    "--set", f"webhook.url={webhook_url}",
                    "--set", "webhook.tls.mode=secret",
                    "--set", f"webhook.tls.secretName={WEBHOOK_TLS}",
                    "--set", f"webhook.tls.caBundle={pki.ca_bundle_b64()}",
                ],
            )  # fmt: skip
            provide_pccs_volume(cluster, docs, work)
            webhook_secret(cluster, pki)
            applied = apply_chart(cluster, docs, work, report)
            with PodStatusLoop(cluster) as loop:
                check_webhook(cluster, report)
                check_waiting_for_epc(cluster, applied, report)
                bootstrapped = run_bootstrap(cluster, pki, applied, cli, work, report)
                if not (
                    bootstrapped and run_device_plugins(cluster, pki, applied, cli, work, report)
                ):
                    epc = {
                        "status": {"capacity": {EPC: "98566144"}, "allocatable": {EPC: "98566144"}}
                    }
                    for node in NODES:
                        cluster.merge_patch(f"/api/v1/nodes/{node}/status", epc)
                    report.note(f"{EPC} patched by this script (no device plugin run)")
                check_rollout(cluster, applied, report)
                report.note(f"pod status loop marked {loop.marked} pods Running")
                if loop.errors:
                    report.note(f"pod status loop errors: {loop.errors[:3]}")
            check_rbac(cluster, applied, report)
            check_reapply(cluster, work, report)
    elapsed = time.monotonic() - report.started
    print(
        f"\ne2e-k8s: {report.passed} passed, {len(report.failures)} failed "
        f"in {elapsed:.0f} s (Kubernetes v{K8S_VERSION})"
    )
    for failure in report.failures:
        print(f"  failed: {failure}")
    return 1 if report.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument(
        "--venv-bin",
        default=str(Path(sys.executable).parent),
        help="directory with the sgx-quote-helper command (default: this Python's)",
    )
    parser.add_argument("--helm", default=shutil.which("helm") or "helm")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RuntimeError as exc:
        print(f"e2e-k8s: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
