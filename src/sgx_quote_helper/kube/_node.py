"""What the device plugin does for its node through the API: read its platform, report EPC."""

from __future__ import annotations

import logging
import threading

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.kube._api import KubernetesApi
from sgx_quote_helper.kube._errors import KubernetesApiError
from sgx_quote_helper.kube._platform_files import files_from_secret

log = logging.getLogger("sgx_quote_helper.kube.node")

DEFAULT_SECRET_PREFIX = "sgx-sim-platform-"  # noqa: S105 (a name prefix)
#: The EPC of the example node in Intel's plugin README (94 MiB), as bytes.
DEFAULT_EPC_BYTES = 98566144
DEFAULT_RETRY_INTERVAL = 5.0


def secret_name(prefix: str, node: str) -> str:
    return f"{prefix}{node}"


def wait_for_platform_secret(
    api: KubernetesApi,
    namespace: str,
    name: str,
    *,
    retry_interval: float = DEFAULT_RETRY_INTERVAL,
    stop: threading.Event | None = None,
) -> dict[str, bytes] | None:
    """The platform files from Secret ``namespace/name``, waiting while it does not exist.

    The bootstrap Job (``sim register-nodes``) may run after this pod starts, so a
    missing Secret or an unreachable API is logged and retried; a refusal (RBAC)
    or a malformed Secret is an error at once. ``None`` when ``stop`` was set while waiting.
    """
    stop = stop or threading.Event()
    where = f"{namespace}/{name}"
    while True:
        try:
            secret = api.get_secret(namespace, name)
        except KubernetesApiError as exc:
            if exc.status is not None:
                raise
            log_event(log, logging.WARNING, "deviceplugin.api_unreachable", error=str(exc))
            secret = None
        else:
            if secret is not None:
                files = files_from_secret(secret, where)
                log_event(log, logging.INFO, "deviceplugin.platform_secret", secret=where)
                return files
            log_event(
                log,
                logging.INFO,
                "deviceplugin.waiting_for_secret",
                secret=where,
                hint="run `sgx-quote-helper sim register-nodes` (the chart's bootstrap Job)",
            )
        if stop.wait(retry_interval):
            return None


def epc_patch(resource: str, epc_bytes: int) -> dict[str, object]:
    """The merge patch of a Node's status that advertises ``epc_bytes`` of EPC.

    Capacity, as Intel's EPC hook writes it; allocatable too, which a kubelet
    recomputes from capacity anyway and which a node without a kubelet (an API
    server test bed) would otherwise never get.
    """
    quantity = str(epc_bytes)
    return {"status": {"capacity": {resource: quantity}, "allocatable": {resource: quantity}}}


def patch_epc_capacity(api: KubernetesApi, node: str, resource: str, epc_bytes: int) -> None:
    api.patch_node_status(node, epc_patch(resource, epc_bytes))
    log_event(
        log,
        logging.INFO,
        "deviceplugin.epc_capacity",
        node=node,
        resource=resource,
        bytes=epc_bytes,
    )
