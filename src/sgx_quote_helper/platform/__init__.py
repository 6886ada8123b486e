"""The simulated SGX platform: CPU keys (EREPORT/EGETKEY), enclaves, PCE, QE3, sealing.

A platform is a directory (``create_platform``/``Platform.load``); its CPU
(``Platform.cpu()``) makes and checks REPORTs and derives keys; the PCE and QE3
built on it certify an attestation key and sign quotes. Simulation only: see
DESIGN.md section 3 for the trust model. This package never imports the
simulated manufacturer (``pcs``); both share ``platform._keys``.
"""

from sgx_quote_helper.platform._cpu import (
    DEFAULT_ATTRIBUTE_MASK,
    DEFAULT_MISC_MASK,
    KeyName,
    KeyPolicy,
    KeyRequest,
    ReportVerifier,
    SimulatedCpu,
)
from sgx_quote_helper.platform._enclave import (
    DEMO_SIGNER_SEED,
    EnclaveIdentity,
    build_identity,
    demo_app_identity,
    load_manifest,
    measure_enclave,
    mrsigner_from_public_key,
    mrsigner_from_seed,
    parse_manifest,
    pce_identity,
    quoting_enclave_identity,
)
from sgx_quote_helper.platform._errors import (
    CertificationError,
    KeyRequestError,
    ManifestError,
    PlatformDirectoryError,
    PlatformError,
    ProvisioningAccessError,
    ReportMacError,
    SealError,
)
from sgx_quote_helper.platform._keys import derive_pck_private_key, derive_provisioning_secret
from sgx_quote_helper.platform._pce import PceInfo, ProvisioningCertificationEnclave
from sgx_quote_helper.platform._platform import (
    DESCRIPTION_FILE,
    ENCLAVE_SECRET_FILE,
    PROVISIONING_SECRET_FILE,
    Platform,
    PlatformDescription,
    application_view,
    create_platform,
)
from sgx_quote_helper.platform._qe import (
    ATTESTATION_KEY_FILE,
    QE_AUTH_DATA,
    CertificationDataError,
    PckCertification,
    PlatformIdentity,
    QeInitResult,
    QuotingEnclave,
)
from sgx_quote_helper.platform._sealing import seal, unseal

__all__ = [
    "ATTESTATION_KEY_FILE",
    "DEFAULT_ATTRIBUTE_MASK",
    "DEFAULT_MISC_MASK",
    "DEMO_SIGNER_SEED",
    "DESCRIPTION_FILE",
    "ENCLAVE_SECRET_FILE",
    "PROVISIONING_SECRET_FILE",
    "QE_AUTH_DATA",
    "CertificationDataError",
    "CertificationError",
    "EnclaveIdentity",
    "KeyName",
    "KeyPolicy",
    "KeyRequest",
    "KeyRequestError",
    "ManifestError",
    "PceInfo",
    "PckCertification",
    "Platform",
    "PlatformDescription",
    "PlatformDirectoryError",
    "PlatformError",
    "PlatformIdentity",
    "ProvisioningAccessError",
    "ProvisioningCertificationEnclave",
    "QeInitResult",
    "QuotingEnclave",
    "ReportMacError",
    "ReportVerifier",
    "SealError",
    "SimulatedCpu",
    "application_view",
    "build_identity",
    "create_platform",
    "demo_app_identity",
    "derive_pck_private_key",
    "derive_provisioning_secret",
    "load_manifest",
    "measure_enclave",
    "mrsigner_from_public_key",
    "mrsigner_from_seed",
    "parse_manifest",
    "pce_identity",
    "quoting_enclave_identity",
    "seal",
    "unseal",
]
