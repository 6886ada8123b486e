"""The simulated SGX manufacturer and its PCCS v4 collateral service.

A stand-in for Intel in simulation (DESIGN.md section 3): a root CA, PCK
Processor and Platform CAs, a TCB signing key and a master secret from which
every simulated platform's provisioning secret derives, so that the
manufacturer can certify any platform's PCK keys. TCB levels, QE levels and
revocations are a policy file; TCB Info, QE Identity and CRLs are derived from
it, signed, and re-issued when stale. Everything is named "Simulated": nothing
here chains to Intel's root.

The manufacturer is three parts behind one object: its directory
(``_store``), PCK issuance (``_pck_issuance``) and
the issued collateral (``_collateral_cache``).

Typical use::

    simulation = create_simulation(sim_dir)         # what `sim init` does
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
    InvalidArgumentError,
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
    crl_base_url,
    serial_number_problem,
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
from sgx_quote_helper.pcs._simulation import (
    FIRST_PLATFORM,
    MORE_PLATFORMS,
    Simulation,
    create_simulation,
    provision_platform,
)
from sgx_quote_helper.sgx import PLATFORM_TCB_STATUSES, QE_TCB_STATUSES

__all__ = [
    "CA_CERTIFICATES",
    "CA_TYPES",
    "COLLATERAL_ARTIFACTS",
    "DEFAULT_PCCS_URL",
    "DEFAULT_TCB_COMPONENTS",
    "FIRST_PLATFORM",
    "MANUFACTURER_ORGANIZATION",
    "MORE_PLATFORMS",
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
    "InvalidArgumentError",
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
    "Simulation",
    "TcbPolicy",
    "Validity",
    "create_app",
    "create_simulation",
    "crl_base_url",
    "percent_encode",
    "provision_platform",
    "serial_number_problem",
    "serve",
    "serve_in_thread",
    "utc_now",
]
