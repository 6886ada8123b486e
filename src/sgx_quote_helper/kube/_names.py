"""Names shared by the device plugin, the webhook and the chart (the K8s contract).

Resource names default to Intel's (spec kubernetes.md sections 3.1-3.2), which the
current AKS add-on uses too; every component takes them as options so that a
flavour can change them. The container paths are where the simulated devices
appear inside a pod (docs/kube-components.md).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_EPC_RESOURCE = "sgx.intel.com/epc"
DEFAULT_ENCLAVE_RESOURCE = "sgx.intel.com/enclave"
DEFAULT_PROVISION_RESOURCE = "sgx.intel.com/provision"

#: Intel's pod annotation: ``aesmd`` (out of process) or the name of the container
#: that quotes in process (it gets the provisioning device).
QUOTE_PROVIDER_ANNOTATION = "sgx.intel.com/quote-provider"
#: Intel's pod annotation with the pod's total EPC request (Kata sizes virtual EPC by it).
EPC_ANNOTATION = "sgx.intel.com/epc"
AESMD_QUOTE_PROVIDER = "aesmd"
AESMD_SOCKET_DIR = "/var/run/aesmd"
AESMD_VOLUME = "aesmd-socket"
#: Presence selects out-of-process quoting (DCAP semantics); Intel's webhook sets "1".
AESM_ADDR_ENV = "SGX_AESM_ADDR"
AESM_ADDR_VALUE = "1"

#: Where the simulated platform appears in a container (read-only bind mounts).
CONTAINER_PLATFORM_DIR = "/var/run/sgx-sim/platform"
#: Points the sample applications, ``quote`` and ``doctor`` at the platform directory.
PLATFORM_ENV = "SGX_QUOTE_HELPER_PLATFORM"


@dataclass(frozen=True)
class ResourceNames:
    """The extended resource names of one flavour."""

    epc: str = DEFAULT_EPC_RESOURCE
    enclave: str = DEFAULT_ENCLAVE_RESOURCE
    provision: str = DEFAULT_PROVISION_RESOURCE
