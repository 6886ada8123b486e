"""The device plugin command's lifecycle: platform files, EPC capacity, then serve until stopped.

One readable sequence, as uvicorn's ``Server.serve``:

1. startup: the metrics endpoint (if asked for), the node's platform (its Secret,
   waiting while it does not exist, or a directory), the files on the host, the
   Node's EPC capacity (at once: the kubelet need not be up, as with Intel's EPC
   hook in an init container);
2. serve: :class:`SimulatedDevicePlugin` registers and watches; after every
   registration the EPC capacity is written again (a restarted kubelet rewrites
   the Node status);
3. shutdown (:meth:`DevicePluginService.stop`, e.g. from a signal handler, which
   only sets flags): streams end, sockets and the metrics endpoint are released.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.kube._api import KubernetesApi
from sgx_quote_helper.kube._deviceplugin import (
    DEFAULT_DEVICE_COUNT,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_KUBELET_DIR,
    DevicePluginMetrics,
    SimulatedDevicePlugin,
    simulated_resources,
)
from sgx_quote_helper.kube._errors import KubeError, KubernetesApiError
from sgx_quote_helper.kube._names import ResourceNames
from sgx_quote_helper.kube._node import (
    DEFAULT_EPC_BYTES,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_SECRET_PREFIX,
    patch_epc_capacity,
    secret_name,
    wait_for_platform_secret,
)
from sgx_quote_helper.kube._platform_files import install_platform_files, read_platform_dir

log = logging.getLogger("sgx_quote_helper.kube.deviceplugin")

DEFAULT_HOST_DIR = Path("/var/lib/sgx-quote-helper/sim-devices")


@dataclass(frozen=True)
class DevicePluginConfig:
    """What ``sgx-quote-helper device-plugin`` is told (docs/kube-components.md)."""

    node_name: str | None = None
    namespace: str | None = None
    secret_prefix: str = DEFAULT_SECRET_PREFIX
    platform_dir: Path | None = None
    host_dir: Path = DEFAULT_HOST_DIR
    provision_gid: int = 0
    kubelet_dir: Path = DEFAULT_KUBELET_DIR
    names: ResourceNames = field(default_factory=ResourceNames)
    enclave_limit: int = DEFAULT_DEVICE_COUNT
    provision_limit: int = DEFAULT_DEVICE_COUNT
    epc_bytes: int = DEFAULT_EPC_BYTES
    health_interval: float = DEFAULT_HEALTH_INTERVAL
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    metrics_address: tuple[str, int] | None = None

    def check(self) -> None:
        """Refuse settings that cannot work, before anything starts."""
        if self.platform_dir is None and not (self.node_name and self.namespace):
            raise KubeError(
                "give --node-name (or NODE_NAME) and --namespace of the platform Secret, "
                "or --platform-dir"
            )
        if self.epc_bytes < 0 or self.health_interval <= 0 or self.retry_interval <= 0:
            raise KubeError("--epc-bytes must be >= 0, --health-interval and --retry-interval > 0")
        simulated_resources(
            self.names, enclave_count=self.enclave_limit, provision_count=self.provision_limit
        )

    @property
    def needs_api(self) -> bool:
        return self.platform_dir is None


class DevicePluginService:
    """The device plugin with its platform source and the Node's EPC capacity.

    ``api`` is needed to read the Secret, and used (when given, with a node name
    and ``epc_bytes`` > 0) to patch the Node status.
    """

    def __init__(self, config: DevicePluginConfig, api: KubernetesApi | None = None) -> None:
        config.check()
        if config.needs_api and api is None:
            raise KubeError("reading the platform Secret needs the Kubernetes API")
        self.config = config
        self.api = api
        self.metrics = DevicePluginMetrics()
        self.plugin = SimulatedDevicePlugin(
            simulated_resources(
                config.names,
                enclave_count=config.enclave_limit,
                provision_count=config.provision_limit,
            ),
            host_dir=config.host_dir,
            kubelet_dir=config.kubelet_dir,
            health_interval=config.health_interval,
            on_registered=self.report_epc,
            metrics=self.metrics,
        )
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the service to finish (safe from a signal handler)."""
        self._stop.set()
        self.plugin.stop()

    def run(self) -> None:
        """Steps 1-3 of the module docstring; returns when stopped."""
        config = self.config
        self.plugin.check_kubelet_dir()  # fail at once, not after waiting for the Secret
        metrics_server: Any = None
        try:
            if config.metrics_address is not None:
                host, port = config.metrics_address
                try:
                    metrics_server, _ = start_http_server(
                        port, addr=host, registry=self.metrics.registry
                    )
                except OSError as exc:
                    raise KubeError(
                        f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
                    ) from None
            files = self._platform_files()
            if files is None:
                return  # stopped while waiting for the Secret
            install_platform_files(files, config.host_dir, config.provision_gid)
            self.report_epc()
            if not self._stop.is_set():
                self.plugin.run()
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()

    def _platform_files(self) -> dict[str, bytes] | None:
        config = self.config
        if config.platform_dir is not None:
            return read_platform_dir(config.platform_dir)
        # Checked in __init__: without a platform directory, an API, node and namespace.
        assert self.api is not None
        assert config.namespace
        assert config.node_name
        return wait_for_platform_secret(
            self.api,
            config.namespace,
            secret_name(config.secret_prefix, config.node_name),
            retry_interval=config.retry_interval,
            stop=self._stop,
        )

    def report_epc(self) -> None:
        """Write the EPC capacity into the Node status; a failure is logged, not fatal."""
        config = self.config
        if self.api is None or not config.node_name or config.epc_bytes == 0:
            return
        try:
            patch_epc_capacity(self.api, config.node_name, config.names.epc, config.epc_bytes)
        except KubernetesApiError as exc:
            # The devices work without it; pods that request EPC stay Pending.
            log_event(log, logging.WARNING, "deviceplugin.epc_patch_failed", error=str(exc))
