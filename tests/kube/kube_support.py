"""Helpers for the kube tests: an independent JSON Patch applier, a test CA, pod builders."""

from __future__ import annotations

import contextlib
import copy
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import urllib.parse
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from http_support import ServedInThread

from sgx_quote_helper.kube import _deviceplugin_pb2 as pb
from sgx_quote_helper.kube import _deviceplugin_pb2_grpc as pb_grpc


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document: Any, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902 ``add``/``replace`` (what the webhook may emit); anything else fails the test."""
    result = copy.deepcopy(document)
    for op in patch:
        assert op["op"] in ("add", "replace"), op
        tokens = [_unescape(t) for t in op["path"].split("/")[1:]]
        parent = result
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last = tokens[-1]
        if isinstance(parent, list):
            if last == "-":
                assert op["op"] == "add"
                parent.append(copy.deepcopy(op["value"]))
            elif op["op"] == "add":
                parent.insert(int(last), copy.deepcopy(op["value"]))
            else:
                parent[int(last)] = copy.deepcopy(op["value"])
        else:
            if op["op"] == "replace":
                assert last in parent, f"replace of a missing member: {op}"
            parent[last] = copy.deepcopy(op["value"])
    return result


def container(name: str, **resources: str) -> dict[str, Any]:
    """A container whose limits are ``resources`` (names with ``__`` for ``/``)."""
    limits = {key.replace("__", "/"): value for key, value in resources.items()}
    body: dict[str, Any] = {"name": name, "image": f"example/{name}:1"}
    if limits:
        body["resources"] = {"limits": limits}
    return body


def pod(*containers: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "namespace": "apps"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": list(containers)},
    }


def admission_review(obj: Any, uid: str = "11111111-2222-3333-4444-555555555555") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "apps",
            "operation": "CREATE",
            "object": obj,
        },
    }


class ExampleCa:
    """A CA (EC P-256) issuing serving certificates, as cert-manager would."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path, *, host: str = "127.0.0.1") -> tuple[Path, Path]:
        """``tls.crt`` and ``tls.key`` in ``directory`` for ``host`` (an IP SAN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook")]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "tls.crt", directory / "tls.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


# ---- a stand-in kubelet: the Registration service on kubelet.sock ------------------------------


class StandInKubelet:
    """The kubelet's side of device plugin registration, on ``DIR/kubelet.sock``.

    Records every RegisterRequest; ``refuse`` makes it answer as a kubelet that
    rejects the plugin (an unsupported version, a resource taken).
    """

    def __init__(self, directory: Path, *, refuse: str | None = None) -> None:
        self.socket = directory / "kubelet.sock"
        self.requests: list[Any] = []
        self.refuse = refuse
        self.changed = threading.Condition()
        self.server: Any = None

    def Register(self, request: Any, context: Any) -> Any:
        if self.refuse is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.refuse)
        with self.changed:
            self.requests.append(request)
            self.changed.notify_all()
        return pb.Empty()

    def start(self) -> StandInKubelet:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_RegistrationServicer_to_server(self, self.server)
        assert self.server.add_insecure_port(f"unix:{self.socket}") != 0
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove kubelet.sock, as a kubelet going down does."""
        self.server.stop(grace=None).wait()
        self.socket.unlink(missing_ok=True)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"{len(self.requests)} registrations, expected {count}"
            )
            return list(self.requests)


# ---- a stand-in Kubernetes API server on loopback ----------------------------------------------


class StandInApi(ServedInThread):
    """Nodes, node status patches and Secrets, as the API server answers them (plain HTTP).

    ``secret_misses`` makes the first N GETs of a Secret answer 404 even when it
    exists (the device plugin starting before the bootstrap Job ran).
    """

    def __init__(
        self, nodes: list[str], *, token: str | None = None, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.nodes: dict[str, dict[str, Any]] = {
            name: {
                "metadata": {"name": name, "labels": {"sgx": "yes"}},
                "status": {"capacity": {"cpu": "2"}},
            }
            for name in nodes
        }
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.patches: list[tuple[str, str, Any]] = []
        self.log: list[tuple[str, str]] = []
        self.queries: list[dict[str, list[str]]] = []
        self.token = token
        self.secret_misses = 0
        self.version = 0
        self.lock = threading.Lock()
        super().__init__(http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler()))
        self.scheme = "http"
        if tls is not None:  # HTTPS, as the real API server serves
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length", "0"))
                return json.loads(self.rfile.read(length))

            def _route(self, method: str) -> None:
                path = urllib.parse.urlsplit(self.path)
                with api.lock:
                    api.log.append((method, path.path))
                    api.queries.append(urllib.parse.parse_qs(path.query))
                if (
                    api.token is not None
                    and self.headers.get("Authorization") != f"Bearer {api.token}"
                ):
                    self._reply(401, {"kind": "Status", "message": "Unauthorized"})
                    return
                parts = path.path.strip("/").split("/")
                with api.lock:
                    status, body = api.handle(
                        method,
                        parts,
                        self.headers.get("Content-Type", ""),
                        self._body if method in ("POST", "PUT", "PATCH") else None,
                    )
                self._reply(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        return Handler

    def handle(
        self, method: str, parts: list[str], content_type: str, body: Any
    ) -> tuple[int, Any]:
        not_found = (404, {"kind": "Status", "message": "not found", "code": 404})
        if parts[:3] == ["api", "v1", "nodes"]:
            if len(parts) == 3 and method == "GET":
                return 200, {"kind": "NodeList", "metadata": {}, "items": list(self.nodes.values())}
            if len(parts) == 5 and parts[4] == "status" and method == "PATCH":
                node = self.nodes.get(parts[3])
                if node is None:
                    return not_found
                patch = body()
                self.patches.append((parts[3], content_type, patch))
                for section, values in patch["status"].items():
                    node["status"].setdefault(section, {}).update(values)
                return 200, node
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "secrets":
            namespace = parts[3]
            if len(parts) == 5 and method == "POST":
                secret = body()
                key = (namespace, secret["metadata"]["name"])
                if key in self.secrets:
                    return 409, {"kind": "Status", "message": "already exists"}
                self.version += 1
                secret["metadata"]["resourceVersion"] = str(self.version)
                self.secrets[key] = secret
                return 201, secret
            key = (namespace, parts[5])
            if method == "GET":
                if self.secret_misses > 0:
                    self.secret_misses -= 1
                    return not_found
                return (200, self.secrets[key]) if key in self.secrets else not_found
            if method == "PUT":
                secret = body()
                if key not in self.secrets:
                    return not_found
                if (
                    secret["metadata"].get("resourceVersion")
                    != self.secrets[key]["metadata"]["resourceVersion"]
                ):
                    return 409, {"kind": "Status", "message": "conflict"}
                self.version += 1
                secret["metadata"]["resourceVersion"] = str(self.version)
                self.secrets[key] = secret
                return 200, secret
        return not_found


class RawApi(ServedInThread):
    """An API server that answers every request with ``answer(handler, count)``.

    For answers the real one never gives (malformed, huge, slow); ``count`` is
    the number of the request, from 1.
    """

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.count = 0
        raw = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                raw.count += 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with contextlib.suppress(OSError):  # the client may hang up first
                    raw.answer(self, raw.count)

            do_POST = do_PUT = do_PATCH = do_GET

            def send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a handler may still be writing to a client gone
        super().__init__(httpd)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
