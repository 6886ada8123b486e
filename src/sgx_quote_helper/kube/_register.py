"""``sim register-nodes``: one simulated platform per Node, delivered as a Secret.

Only the manufacturer can register a platform, so a bootstrap Job that holds
the manufacturer state (the ``sim init`` directory on a volume) runs this for
every Node: the equivalent of ``sim add-platform DIR NODE`` for a node that has
no platform yet, then Secret ``<prefix><node>`` with ``platform.json``,
``enclave.secret`` and ``provision.secret``, which the node's device plugin
reads. Idempotent: a node with a platform keeps it, a Secret with the right
content is left alone, a missing or different one is created or replaced.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.kube._api import KubernetesApi
from sgx_quote_helper.kube._errors import KubeError, KubernetesApiError
from sgx_quote_helper.kube._node import DEFAULT_SECRET_PREFIX, secret_name
from sgx_quote_helper.kube._platform_files import read_platform_dir, secret_data
from sgx_quote_helper.pcs import Manufacturer, provision_platform

log = logging.getLogger("sgx_quote_helper.kube.register")

#: A Node name is a DNS subdomain (RFC 1123), which is also a safe directory name.
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAX_SECRET_NAME = 253
MANAGED_BY = "sgx-quote-helper"
NODE_ANNOTATION = "sgx-quote-helper.io/node"


@dataclass(frozen=True)
class NodeRegistration:
    """What was done for one Node."""

    node: str
    platform: str  # the platform directory
    platform_created: bool
    secret: str
    secret_action: str  # "created", "updated" or "unchanged"


def platform_secret(name: str, node: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": MANAGED_BY,
                "app.kubernetes.io/component": "sim-platform",
            },
            "annotations": {NODE_ANNOTATION: node},
        },
        "data": secret_data(files),
    }


def register_nodes(
    sim_dir: Path,
    api: KubernetesApi,
    namespace: str,
    *,
    node_selector: str | None = None,
    secret_prefix: str = DEFAULT_SECRET_PREFIX,
) -> Iterator[NodeRegistration]:
    """Give every Node (matching ``node_selector``) a platform and its Secret; yield each."""
    manufacturer = Manufacturer.load(sim_dir)
    for node in api.list_nodes(node_selector):
        name = _metadata(node, "a Node").get("name")
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
            raise KubeError(f"the API listed a Node with an unusable name {name!r}")
        secret = secret_name(secret_prefix, name)
        if len(secret) > _MAX_SECRET_NAME:
            raise KubeError(f"secret name {secret!r} is too long; use a shorter --secret-prefix")
        existing = {p.name: p for p in manufacturer.platforms()}.get(name)
        created = existing is None
        platform = existing or provision_platform(
            manufacturer, name, manufacturer.sim_dir / "platforms" / name
        )
        platform_dir = manufacturer.sim_dir / platform.path
        body = platform_secret(secret, name, read_platform_dir(platform_dir))
        current = api.get_secret(namespace, secret)
        if current is None:
            api.create_secret(namespace, body)
            action = "created"
        elif current.get("data") == body["data"]:
            action = "unchanged"
        else:
            body["metadata"]["resourceVersion"] = _metadata(
                current, f"secret {namespace}/{secret}"
            ).get("resourceVersion")
            api.replace_secret(namespace, body)
            action = "updated"
        log_event(
            log,
            logging.INFO,
            "register.node",
            node=name,
            platform=str(platform_dir),
            platform_created=created,
            secret=f"{namespace}/{secret}",
            action=action,
        )
        yield NodeRegistration(name, str(platform_dir), created, secret, action)


def _metadata(obj: dict[str, Any], what: str) -> dict[str, Any]:
    """``obj``'s metadata; the API server's answer is malformed when it is not an object."""
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise KubernetesApiError(f"the API server's answer for {what} has malformed metadata")
    return metadata
