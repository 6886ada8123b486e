"""The simulated SGX manufacturer and its PCCS v4 collateral service.

A stand-in for Intel in simulation (DESIGN.md section 3): a root CA, PCK
Processor and Platform CAs, a TCB signing key and a master secret from which
every simulated platform's provisioning secret derives, so that the
manufacturer can certify any platform's PCK keys. TCB levels, QE levels and
revocations are a policy file; TCB Info, QE Identity and CRLs are derived from
it, signed, and re-issued when stale. Everything is named "Simulated": nothing
here chains to Intel's root.

Typical use::

    manufacturer = Manufacturer.load(sim_dir)       # the `sim init` directory
    manufacturer.issue_pck_certificate(query)        # -> PckCertificate
    manufacturer.tcb_info(fmspc).body                # signed TCB Info JSON
    with serve_in_thread(sim_dir) as service:        # PCCS v4 on an ephemeral port
        ...  # service.url
"""

from sgx_quote_helper._time import Clock, utc_now
from sgx_quote_helper.pcs._app import (
    RunningService,
    create_app,
    percent_encode,
    serve,
    serve_in_thread,
)
from sgx_quote_helper.pcs._errors import (
    EvaluationDataNumberNotFoundError,
    FmspcNotFoundError,
    InvalidRequestError,
    ManufacturerDirectoryError,
    NotFoundError,
    PcsError,
    PlatformNotFoundError,
    PolicyError,
)
from sgx_quote_helper.pcs._manufacturer import (
    DEFAULT_PCCS_URL,
    DEFAULT_TCB_COMPONENTS,
    Manufacturer,
    PlatformProvisioning,
)
from sgx_quote_helper.pcs._pki import (
    CA_TYPES,
    MANUFACTURER_ORGANIZATION,
    PCK_CERTIFICATE_CN,
    PLATFORM_CA_CN,
    PROCESSOR_CA_CN,
    ROOT_CA_CN,
    TCB_SIGNING_CN,
)
from sgx_quote_helper.pcs._policy import (
    CA_CERTIFICATES,
    COLLATERAL_ARTIFACTS,
    FmspcPolicy,
    PlatformTcbLevel,
    QeTcbLevel,
    Revocation,
    Revocations,
    TcbPolicy,
    Validity,
)
from sgx_quote_helper.pcs._registry import RegisteredPlatform, Registry
from sgx_quote_helper.sgx import PLATFORM_TCB_STATUSES, QE_TCB_STATUSES

__all__ = [
    "CA_CERTIFICATES",
    "CA_TYPES",
    "COLLATERAL_ARTIFACTS",
    "DEFAULT_PCCS_URL",
    "DEFAULT_TCB_COMPONENTS",
    "MANUFACTURER_ORGANIZATION",
    "PCK_CERTIFICATE_CN",
    "PLATFORM_CA_CN",
    "PLATFORM_TCB_STATUSES",
    "PROCESSOR_CA_CN",
    "QE_TCB_STATUSES",
    "ROOT_CA_CN",
    "TCB_SIGNING_CN",
    "Clock",
    "EvaluationDataNumberNotFoundError",
    "FmspcNotFoundError",
    "FmspcPolicy",
    "InvalidRequestError",
    "Manufacturer",
    "ManufacturerDirectoryError",
    "NotFoundError",
    "PcsError",
    "PlatformNotFoundError",
    "PlatformProvisioning",
    "PlatformTcbLevel",
    "PolicyError",
    "QeTcbLevel",
    "RegisteredPlatform",
    "Registry",
    "Revocation",
    "Revocations",
    "RunningService",
    "TcbPolicy",
    "Validity",
    "create_app",
    "percent_encode",
    "serve",
    "serve_in_thread",
    "utc_now",
]
