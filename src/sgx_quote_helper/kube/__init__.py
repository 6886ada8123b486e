"""Kubernetes pieces: the simulated SGX device plugin and the SGX admission webhook.

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
from sgx_quote_helper.kube._quantity import format_quantity, parse_quantity
from sgx_quote_helper.kube._webhook import (
    HEALTH_PATH,
    MAX_REVIEW_BYTES,
    MUTATE_PATH,
    RunningWebhook,
    TlsFiles,
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
    "CONTAINER_PLATFORM_DIR",
    "DEFAULT_ENCLAVE_RESOURCE",
    "DEFAULT_EPC_RESOURCE",
    "DEFAULT_PROVISION_RESOURCE",
    "EPC_ANNOTATION",
    "HEALTH_PATH",
    "MAX_REVIEW_BYTES",
    "MUTATE_PATH",
    "PLATFORM_ENV",
    "QUOTE_PROVIDER_ANNOTATION",
    "AdmissionOutcome",
    "AdmissionReviewError",
    "DevicePluginError",
    "JsonPatch",
    "KubeError",
    "KubernetesApiError",
    "PodRejectedError",
    "ResourceNames",
    "RunningWebhook",
    "TlsFiles",
    "create_webhook_app",
    "escape_pointer",
    "format_quantity",
    "mutate_pod",
    "parse_quantity",
    "review",
    "serve_webhook",
    "webhook_in_thread",
]
