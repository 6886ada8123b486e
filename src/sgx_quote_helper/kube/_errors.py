"""Errors of the Kubernetes components (device plugin, webhook, node registration)."""

from __future__ import annotations

from sgx_quote_helper.errors import SgxQuoteHelperError


class KubeError(SgxQuoteHelperError):
    """A failure of the Kubernetes components (``kube``)."""


class AdmissionReviewError(KubeError):
    """An AdmissionReview that cannot be answered: malformed JSON or not a Pod (HTTP 400)."""


class PodRejectedError(AdmissionReviewError):
    """A well-formed review of a Pod whose SGX resources cannot be read (refused, not 400)."""


class KubernetesApiError(KubeError):
    """The Kubernetes API refused or failed a request; the message names the object and why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DevicePluginError(KubeError):
    """The kubelet refused the device plugin's registration, or its socket is unusable."""
