"""Kubernetes pieces: the simulated SGX device plugin and the SGX admission webhook.

- ``SimulatedDevicePlugin``: SIMULATED SGX devices (enclave, provision) for
  clusters without SGX, over the kubelet device plugin API v1beta1; the node's
  platform comes from a Secret (``wait_for_platform_secret``) or a directory,
  and the Node's EPC capacity is patched like Intel's EPC hook does.
- ``register_nodes``: ``sim register-nodes``, a platform and a Secret per Node.
- ``review``/``mutate_pod``: Intel's SGX pod mutation for the
  ``sgx.intel.com/quote-provider`` annotation as a pure function
  (AdmissionReview in, AdmissionReview with a JSON Patch out);
  ``serve_webhook``/``webhook_in_thread`` serve it over TLS.

Resource names are options (``ResourceNames``); the defaults are Intel's. See
``docs/kube-components.md``. This package sits above ``service``; only the CLI,
``doctor`` and the samples sit above it.
"""

from sgx_quote_helper.kube._admission import (
    ADMISSION_API_VERSIONS,
    AdmissionOutcome,
    JsonPatch,
    escape_pointer,
    mutate_pod,
    review,
)
from sgx_quote_helper.kube._api import SERVICE_ACCOUNT_DIR, ApiConfig, KubernetesApi
from sgx_quote_helper.kube._deviceplugin import (
    API_VERSION,
    DEFAULT_DEVICE_COUNT,
    DEFAULT_HEALTH_INTERVAL,
    DEFAULT_KUBELET_DIR,
    HEALTHY,
    KUBELET_SOCKET,
    UNHEALTHY,
    DevicePluginMetrics,
    SimulatedDevicePlugin,
    SimulatedResource,
    simulated_resources,
)
from sgx_quote_helper.kube._errors import (
    AdmissionReviewError,
    DevicePluginError,
    KubeError,
    KubernetesApiError,
    PodRejectedError,
)
from sgx_quote_helper.kube._names import (
    AESM_ADDR_ENV,
    AESM_ADDR_VALUE,
    AESMD_QUOTE_PROVIDER,
    AESMD_SOCKET_DIR,
    AESMD_VOLUME,
    CONTAINER_PLATFORM_DIR,
    DEFAULT_ENCLAVE_RESOURCE,
    DEFAULT_EPC_RESOURCE,
    DEFAULT_PROVISION_RESOURCE,
    EPC_ANNOTATION,
    PLATFORM_ENV,
    QUOTE_PROVIDER_ANNOTATION,
    ResourceNames,
)
from sgx_quote_helper.kube._node import (
    DEFAULT_EPC_BYTES,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_SECRET_PREFIX,
    epc_patch,
    patch_epc_capacity,
    secret_name,
    wait_for_platform_secret,
)
from sgx_quote_helper.kube._platform_files import (
    ENCLAVE_FILES,
    PLATFORM_FILES,
    PROVISION_FILES,
    files_from_secret,
    install_platform_files,
    read_platform_dir,
    secret_data,
)
from sgx_quote_helper.kube._quantity import format_quantity, parse_quantity
from sgx_quote_helper.kube._register import (
    NodeRegistration,
    platform_secret,
    register_nodes,
)
from sgx_quote_helper.kube._service import (
    DEFAULT_HOST_DIR,
    DevicePluginConfig,
    DevicePluginService,
)
from sgx_quote_helper.kube._webhook import (
    HEALTH_PATH,
    MAX_REVIEW_BYTES,
    METRICS_PATH,
    MUTATE_PATH,
    REVIEW_OUTCOMES,
    RunningWebhook,
    TlsFiles,
    WebhookMetrics,
    create_webhook_app,
    serve_webhook,
    webhook_in_thread,
)

__all__ = [
    "ADMISSION_API_VERSIONS",
    "AESMD_QUOTE_PROVIDER",
    "AESMD_SOCKET_DIR",
    "AESMD_VOLUME",
    "AESM_ADDR_ENV",
    "AESM_ADDR_VALUE",
    "API_VERSION",
    "CONTAINER_PLATFORM_DIR",
    "DEFAULT_DEVICE_COUNT",
    "DEFAULT_ENCLAVE_RESOURCE",
    "DEFAULT_EPC_BYTES",
    "DEFAULT_EPC_RESOURCE",
    "DEFAULT_HEALTH_INTERVAL",
    "DEFAULT_HOST_DIR",
    "DEFAULT_KUBELET_DIR",
    "DEFAULT_PROVISION_RESOURCE",
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_SECRET_PREFIX",
    "ENCLAVE_FILES",
    "EPC_ANNOTATION",
    "HEALTHY",
    "HEALTH_PATH",
    "KUBELET_SOCKET",
    "MAX_REVIEW_BYTES",
    "METRICS_PATH",
    "MUTATE_PATH",
    "PLATFORM_ENV",
    "PLATFORM_FILES",
    "PROVISION_FILES",
    "QUOTE_PROVIDER_ANNOTATION",
    "REVIEW_OUTCOMES",
    "SERVICE_ACCOUNT_DIR",
    "UNHEALTHY",
    "AdmissionOutcome",
    "AdmissionReviewError",
    "ApiConfig",
    "DevicePluginConfig",
    "DevicePluginError",
    "DevicePluginMetrics",
    "DevicePluginService",
    "JsonPatch",
    "KubeError",
    "KubernetesApi",
    "KubernetesApiError",
    "NodeRegistration",
    "PodRejectedError",
    "ResourceNames",
    "RunningWebhook",
    "SimulatedDevicePlugin",
    "SimulatedResource",
    "TlsFiles",
    "WebhookMetrics",
    "create_webhook_app",
    "epc_patch",
    "escape_pointer",
    "files_from_secret",
    "format_quantity",
    "install_platform_files",
    "mutate_pod",
    "parse_quantity",
    "patch_epc_capacity",
    "platform_secret",
    "read_platform_dir",
    "register_nodes",
    "review",
    "secret_data",
    "secret_name",
    "serve_webhook",
    "simulated_resources",
    "wait_for_platform_secret",
    "webhook_in_thread",
]
