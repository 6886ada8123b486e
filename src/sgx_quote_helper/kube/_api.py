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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from sgx_quote_helper._net import http_base_url
from sgx_quote_helper.kube._errors import KubernetesApiError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_TIMEOUT = 10.0
_LIST_PAGE = 500


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

    def __init__(self, config: ApiConfig, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Raises :class:`UsageError` if ``config.base_url`` is not ``http(s)://HOST[:PORT][/PATH]``."""
        base_url = http_base_url(config.base_url, what="Kubernetes API server URL")
        self.config = config
        verify: ssl.SSLContext | bool = True
        if config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(config.ca_file))
        self._http = httpx.Client(base_url=base_url, verify=verify, timeout=timeout)

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
        while True:
            page = self._must("GET", "/api/v1/nodes", "nodes", params=params)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return
            params["continue"] = token

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
        try:
            response = self._http.request(
                method, path, headers=headers, content=content, params=params
            )
        except httpx.HTTPError as exc:
            raise KubernetesApiError(
                f"cannot reach the Kubernetes API at {self.config.base_url} ({what}): {exc}"
            ) from None
        if response.status_code == 404 and method == "GET":
            return None
        if response.status_code >= 400:
            raise KubernetesApiError(_failure(method, what, response), status=response.status_code)
        try:
            document = response.json()
        except ValueError:
            raise KubernetesApiError(
                f"{method} {what}: the API server's answer is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise KubernetesApiError(f"{method} {what}: the API server's answer is not an object")
        return document

    def _token(self) -> str | None:
        if self.config.token_file is None:
            return None
        try:
            return self.config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KubernetesApiError(
                f"cannot read the service account token {self.config.token_file}: {exc}"
            ) from None


def _secrets_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets"


def _secret_path(namespace: str, name: str) -> str:
    return f"{_secrets_path(namespace)}/{quote(name, safe='')}"


def _failure(method: str, what: str, response: httpx.Response) -> str:
    message = response.reason_phrase
    try:
        status = response.json()
        if isinstance(status, dict) and status.get("message"):
            message = str(status["message"])
    except ValueError:
        pass
    hint = ""
    if response.status_code in (401, 403):
        hint = (
            "; check the pod's ServiceAccount and that its Role/ClusterRole allows this "
            "(device plugin: get secrets, patch nodes/status; register-nodes: list nodes, "
            "get/create/update secrets)"
        )
    return f"{method} {what} failed: HTTP {response.status_code} {message}{hint}"
