"""A small client for the few Kubernetes API calls the components make (httpx, no SDK).

In a pod it uses the in-cluster configuration: ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT``, the service account token and CA bundle under
``/var/run/secrets/kubernetes.io/serviceaccount``. The token is re-read for
every request, since the kubelet rotates bound service account tokens. Tests
point ``base_url`` at a stand-in server on loopback.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from sgx_quote_helper._fs import read_limited
from sgx_quote_helper._net import BOUNDED_LIMITS, BodyRefused, get_bounded, http_base_url
from sgx_quote_helper.kube._errors import KubernetesApiError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: Connecting and each read of a write; a GET has its deadline only (``_net.get_bounded``).
DEFAULT_TIMEOUT = 10.0
#: All of one request: a server that sends a byte now and then never trips a read timeout.
DEFAULT_DEADLINE = 60.0
#: The largest answer read. A Secret is at most 1 MiB; a page of _LIST_PAGE Nodes is a few
#: MiB (a Node with its image list is some 10-50 kB), so this leaves a wide margin.
MAX_BODY = 32 * 1024 * 1024
_LIST_PAGE = 500
#: A bound service account token (a JWT) is a few kB.
_MAX_TOKEN = 64 * 1024
#: Characters of the API server's Status message quoted in an error.
_MAX_MESSAGE = 1000
#: Pages of one list: 1000 pages of 500 are far past the largest cluster (5000 nodes).
_MAX_PAGES = 1000


@dataclass(frozen=True)
class ApiConfig:
    """Where the API server is and how to authenticate to it."""

    base_url: str
    token_file: Path | None = None
    ca_file: Path | None = None

    @classmethod
    def in_cluster(
        cls,
        *,
        base_url: str | None = None,
        token_file: Path | None = None,
        ca_file: Path | None = None,
    ) -> ApiConfig:
        """The pod's configuration; each argument given overrides what the pod has."""
        if base_url is None:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise KubernetesApiError(
                    "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset); "
                    "give --api-server URL"
                )
            host = f"[{host}]" if ":" in host else host
            base_url = f"https://{host}:{port}"
        if token_file is None and (SERVICE_ACCOUNT_DIR / "token").is_file():
            token_file = SERVICE_ACCOUNT_DIR / "token"
        if ca_file is None and (SERVICE_ACCOUNT_DIR / "ca.crt").is_file():
            ca_file = SERVICE_ACCOUNT_DIR / "ca.crt"
        return cls(base_url=base_url.rstrip("/"), token_file=token_file, ca_file=ca_file)


class KubernetesApi:
    """Secrets in a namespace, Nodes and Node status: what the SGX components touch."""

    def __init__(
        self,
        config: ApiConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_body: int = MAX_BODY,
    ) -> None:
        """Raises :class:`UsageError` if ``config.base_url`` is not ``http(s)://HOST[:PORT][/PATH]``.

        ``timeout`` bounds connecting and each read of a write, ``deadline`` a whole request
        (answer included), ``max_body`` the size of an answer.
        """
        base_url = http_base_url(config.base_url, what="Kubernetes API server URL")
        self.config = config
        self.deadline = deadline
        self.max_body = max_body
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        # BOUNDED_LIMITS: each request on a connection of its own, which the deadline can close.
        self._http = httpx.Client(
            base_url=base_url, verify=verify, timeout=timeout, limits=BOUNDED_LIMITS
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KubernetesApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls ----------------------------------------------------------------------------

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret, or ``None`` when it does not exist."""
        return self._request(
            "GET", _secret_path(namespace, name), what=f"secret {namespace}/{name}"
        )

    def create_secret(self, namespace: str, secret: Mapping[str, Any]) -> dict[str, Any]:
        name = secret["metadata"]["name"]
        return self._must(
            "POST", _secrets_path(namespace), f"secret {namespace}/{name}", body=secret
        )

    def replace_secret(self, namespace: str, secret: Mapping[str, Any]) -> dict[str, Any]:
        name = secret["metadata"]["name"]
        return self._must(
            "PUT", _secret_path(namespace, name), f"secret {namespace}/{name}", body=secret
        )

    def list_nodes(self, label_selector: str | None = None) -> Iterator[dict[str, Any]]:
        """Every Node (matching the selector), following the list's continue tokens."""
        params: dict[str, str] = {"limit": str(_LIST_PAGE)}
        if label_selector:
            params["labelSelector"] = label_selector
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            page = self._must("GET", "/api/v1/nodes", "nodes", params=params)
            items = page.get("items") or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise KubernetesApiError(
                    "GET nodes: the API server's answer is not a NodeList (items is not a list "
                    "of objects)"
                )
            yield from items
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") if isinstance(metadata, dict) else None
            if not isinstance(metadata, dict) or not isinstance(token, str | None):
                raise KubernetesApiError(
                    "GET nodes: the API server's answer is not a NodeList (malformed metadata)"
                )
            if not token:
                return
            if token in seen:
                # Following it again would loop for ever.
                raise KubernetesApiError(
                    "GET nodes: the API server repeated a list continue token; the list "
                    "cannot be completed (check the API server or the proxy in front of it)"
                )
            seen.add(token)
            params["continue"] = token
        raise KubernetesApiError(f"GET nodes: the list did not end after {_MAX_PAGES} pages")

    def patch_node_status(self, node: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of ``/api/v1/nodes/NODE/status`` (RBAC: patch nodes/status)."""
        return self._must(
            "PATCH",
            f"/api/v1/nodes/{quote(node, safe='')}/status",
            f"node {node} status",
            body=patch,
            content_type="application/merge-patch+json",
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _must(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        reply = self._request(method, path, what=what, **kwargs)
        if reply is None:
            raise KubernetesApiError(f"{what} not found (HTTP 404)", status=404)
        return reply

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            headers["Content-Type"] = content_type
            content = json.dumps(body).encode()
        status, reason, data = self._exchange(method, path, what, headers, content, params)
        if status == 404 and method == "GET":
            return None
        if status >= 400:
            raise KubernetesApiError(_failure(method, what, status, reason, data), status=status)
        document = _parse(data)
        if isinstance(document, str):
            raise KubernetesApiError(f"{method} {what}: the API server's answer {document}")
        if not isinstance(document, dict):
            raise KubernetesApiError(f"{method} {what}: the API server's answer is not an object")
        return document

    def _exchange(
        self,
        method: str,
        path: str,
        what: str,
        headers: dict[str, str],
        content: bytes | None,
        params: Mapping[str, str] | None,
    ) -> tuple[int, str, bytes]:
        """Status, reason and body, read within the deadline and the size limit."""
        where = f"the Kubernetes API at {self.config.base_url} ({what})"
        try:
            if method == "GET":  # the reads, whose answers can be large: lists, Secrets
                response = get_bounded(
                    self._http,
                    path,
                    timeout=self.deadline,
                    max_bytes=self.max_body,
                    params=tuple((params or {}).items()),
                    headers=headers,
                )
                return response.status_code, response.reason_phrase, response.content
            return self._write(method, path, headers, content)
        except BodyRefused as exc:
            raise KubernetesApiError(
                f"{method} {what}: the answer of {where} is refused: {exc}"
            ) from None
        except httpx.TimeoutException as exc:
            raise KubernetesApiError(
                f"{method} {what}: {where} did not answer in time ({exc}); check the API "
                "server's load and the network"
            ) from None
        except httpx.HTTPError as exc:
            raise KubernetesApiError(f"cannot reach {where}: {exc}") from None

    def _write(
        self, method: str, path: str, headers: dict[str, str], content: bytes | None
    ) -> tuple[int, str, bytes]:
        """A write: its answer is the object written (a Secret or a Node), read whole."""
        end = time.monotonic() + self.deadline
        headers = {**headers, "Accept-Encoding": "identity"}
        with self._http.stream(method, path, headers=headers, content=content) as response:
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > self.max_body:
                    raise BodyRefused(f"the body is larger than the {self.max_body}-byte limit")
                if time.monotonic() > end:
                    raise httpx.ReadTimeout(
                        f"the whole answer took more than {self.deadline:g}s",
                        request=response.request,
                    )
            return response.status_code, response.reason_phrase, bytes(body)

    def _token(self) -> str | None:
        if self.config.token_file is None:
            return None
        try:
            data = read_limited(self.config.token_file, _MAX_TOKEN, "a service account token")
        except OSError as exc:
            raise KubernetesApiError(
                f"cannot read the service account token {self.config.token_file}: {exc}"
            ) from None
        token = data.strip()
        # A bearer token is printable ASCII (RFC 6750 b64token); anything else cannot go
        # into an HTTP header.
        if not all(0x21 <= byte <= 0x7E for byte in token):
            raise KubernetesApiError(
                f"token file {self.config.token_file} is not an ASCII token (it holds bytes "
                "that are not printable ASCII); check that it is the service account token"
            )
        return token.decode("ascii")


def _parse(data: bytes) -> Any:
    """The JSON document, or a string that says why ``data`` is not one."""
    try:
        return json.loads(data)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError
        return "is not JSON"
    except RecursionError:
        # The decoder recurses once per level; no Kubernetes object nests this deep.
        return "is JSON nested too deeply"


def _secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"


def _secret_path(namespace: str, name: str) -> str:
    return f"{_secrets_path(namespace)}/{quote(name, safe='')}"


def _failure(method: str, what: str, code: int, reason: str, data: bytes) -> str:
    message = reason
    status = _parse(data)
    if isinstance(status, dict) and isinstance(status.get("message"), str) and status["message"]:
        message = " ".join(status["message"][:_MAX_MESSAGE].split())  # one line
    hint = ""
    if code in (401, 403):
        hint = (
            "; check the pod's ServiceAccount and that its Role/ClusterRole allows this "
            "(device plugin: get secrets, patch nodes/status; register-nodes: list nodes, "
            "get/create/update secrets)"
        )
    return f"{method} {what} failed: HTTP {code} {message}{hint}"
