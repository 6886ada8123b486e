"""SGX and DCAP status codes and Intel's mappings between them.

Four C enums meet on the out-of-process quoting path, and a failure changes
name each time it crosses a layer::

    QE3/PCE (quote3_error_t) --daemon--> wire errorCode (aesm_error_t)
        --libsgx_quote_ex--> sgx_status_t --DCAP out-of-proc--> quote3_error_t

and a verifier reports ``sgx_ql_qv_result_t``. The values below are transcribed
from the public headers; names drop the common C prefix, which ``c_name`` puts
back:

- ``sgx_status_t``: linux-sgx ``common/inc/sgx_error.h`` (prefix ``SGX_``).
- ``aesm_error_t``: linux-sgx ``psw/ae/inc/internal/aesm_error.h`` (prefix
  ``AESM_``). Value 27 has no entry in current headers; older ones called it
  ``AESM_SERVICE_NOT_AVAILABLE``.
- ``quote3_error_t``: DCAP ``QuoteGeneration/quote_wrapper/common/inc/
  sgx_ql_lib_common.h`` (prefix ``SGX_QL_``, each with a ``TEE_`` alias), up to
  ``SGX_QL_RESULT_INVALID_SIGNATURE`` (0xE068). Newer DCAP releases add
  ``QAEIDENTITY_MISMATCH``, ``QAE_OUT_OF_DATE``, ``QUOTE_HASH_MISMATCH`` and
  ``REPORT_DATA_MISMATCH`` above that; they are left out until their values are
  transcribed from the header text rather than guessed.
- ``sgx_ql_qv_result_t``: DCAP ``QuoteVerification/QvE/Include/sgx_qve_header.h``
  (prefix ``SGX_QL_QV_RESULT_``, alias ``TEE_QV_RESULT_``).
- ``uae_oal_status_t``: linux-sgx ``common/inc/internal/oal/uae_oal_api.h``.

The mapping functions follow the project spec ``aesm-wire.md`` sections 7.2 and
12.4, which record ``quote3_error_to_aesm_error`` (ECDSA AESM bundle),
``oal_map_status``/``oal_map_result`` and the per-call switches of
``psw/uae_service/sgx_uae_service.cpp``, and DCAP's
``sgx_status_to_quote3_error``. Everything here is pure: no I/O.

Only the codes and Intel's rules live here. What a code means for a person and
what to check (which flag, which mount, which device) is in
:mod:`sgx_quote_helper.explain`, above the layers it talks about.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Self

# ---------------------------------------------------------------------------
# The enums
# ---------------------------------------------------------------------------


class _CodeEnum(enum.IntEnum):
    """Behaviour shared by the four status enums (no members of its own)."""

    @classmethod
    def c_type(cls) -> str:
        """The C type name, e.g. ``"sgx_status_t"``."""
        raise NotImplementedError

    @classmethod
    def c_prefixes(cls) -> tuple[str, ...]:
        """C name prefixes; the first is the canonical one, the rest aliases."""
        raise NotImplementedError

    @property
    def c_name(self) -> str:
        """The full C name, e.g. ``SGX_ERROR_MAC_MISMATCH``."""
        return self.c_prefixes()[0] + self.name

    @property
    def display_value(self) -> str:
        """The value as Intel's tools print it: four hex digits."""
        return f"0x{self.value:04X}"

    @classmethod
    def from_c_name(cls, name: str) -> Self | None:
        """The member whose C name (any prefix, any case) is ``name``, if any."""
        upper = name.strip().upper()
        for prefix in cls.c_prefixes():
            if upper.startswith(prefix):
                member = cls.__members__.get(upper.removeprefix(prefix))
                if member is not None:
                    return member
        return None


class SgxStatus(_CodeEnum):
    """``sgx_status_t``, complete (linux-sgx ``common/inc/sgx_error.h``)."""

    @classmethod
    def c_type(cls) -> str:
        return "sgx_status_t"

    @classmethod
    def c_prefixes(cls) -> tuple[str, ...]:
        return ("SGX_",)

    SUCCESS = 0x0000
    ERROR_UNEXPECTED = 0x0001
    ERROR_INVALID_PARAMETER = 0x0002
    ERROR_OUT_OF_MEMORY = 0x0003
    ERROR_ENCLAVE_LOST = 0x0004
    ERROR_INVALID_STATE = 0x0005
    ERROR_FEATURE_NOT_SUPPORTED = 0x0008
    PTHREAD_EXIT = 0x0009  # C name SGX_PTHREAD_EXIT: not an ERROR_ name in the header
    ERROR_MEMORY_MAP_FAILURE = 0x000A

    ERROR_INVALID_FUNCTION = 0x1001
    ERROR_OUT_OF_TCS = 0x1003
    ERROR_ENCLAVE_CRASHED = 0x1006
    ERROR_ECALL_NOT_ALLOWED = 0x1007
    ERROR_OCALL_NOT_ALLOWED = 0x1008
    ERROR_STACK_OVERRUN = 0x1009

    ERROR_UNDEFINED_SYMBOL = 0x2000
    ERROR_INVALID_ENCLAVE = 0x2001
    ERROR_INVALID_ENCLAVE_ID = 0x2002
    ERROR_INVALID_SIGNATURE = 0x2003
    ERROR_NDEBUG_ENCLAVE = 0x2004
    ERROR_OUT_OF_EPC = 0x2005
    ERROR_NO_DEVICE = 0x2006
    ERROR_MEMORY_MAP_CONFLICT = 0x2007
    ERROR_INVALID_METADATA = 0x2009
    ERROR_DEVICE_BUSY = 0x200C
    ERROR_INVALID_VERSION = 0x200D
    ERROR_MODE_INCOMPATIBLE = 0x200E
    ERROR_ENCLAVE_FILE_ACCESS = 0x200F
    ERROR_INVALID_MISC = 0x2010
    ERROR_INVALID_LAUNCH_TOKEN = 0x2011

    ERROR_MAC_MISMATCH = 0x3001
    ERROR_INVALID_ATTRIBUTE = 0x3002
    ERROR_INVALID_CPUSVN = 0x3003
    ERROR_INVALID_ISVSVN = 0x3004
    ERROR_INVALID_KEYNAME = 0x3005

    ERROR_SERVICE_UNAVAILABLE = 0x4001
    ERROR_SERVICE_TIMEOUT = 0x4002
    ERROR_AE_INVALID_EPIDBLOB = 0x4003
    ERROR_SERVICE_INVALID_PRIVILEGE = 0x4004
    ERROR_EPID_MEMBER_REVOKED = 0x4005
    ERROR_UPDATE_NEEDED = 0x4006
    ERROR_NETWORK_FAILURE = 0x4007
    ERROR_AE_SESSION_INVALID = 0x4008
    ERROR_BUSY = 0x400A
    ERROR_MC_NOT_FOUND = 0x400C
    ERROR_MC_NO_ACCESS_RIGHT = 0x400D
    ERROR_MC_USED_UP = 0x400E
    ERROR_MC_OVER_QUOTA = 0x400F
    ERROR_KDF_MISMATCH = 0x4011
    ERROR_UNRECOGNIZED_PLATFORM = 0x4012
    ERROR_UNSUPPORTED_CONFIG = 0x4013

    ERROR_NO_PRIVILEGE = 0x5002

    ERROR_PCL_ENCRYPTED = 0x6001
    ERROR_PCL_NOT_ENCRYPTED = 0x6002
    ERROR_PCL_MAC_MISMATCH = 0x6003
    ERROR_PCL_SHA_MISMATCH = 0x6004
    ERROR_PCL_GUID_MISMATCH = 0x6005

    ERROR_FILE_BAD_STATUS = 0x7001
    ERROR_FILE_NO_KEY_ID = 0x7002
    ERROR_FILE_NAME_MISMATCH = 0x7003
    ERROR_FILE_NOT_SGX_FILE = 0x7004
    ERROR_FILE_CANT_OPEN_RECOVERY_FILE = 0x7005
    ERROR_FILE_CANT_WRITE_RECOVERY_FILE = 0x7006
    ERROR_FILE_RECOVERY_NEEDED = 0x7007
    ERROR_FILE_FLUSH_FAILED = 0x7008
    ERROR_FILE_CLOSE_FAILED = 0x7009

    ERROR_UNSUPPORTED_ATT_KEY_ID = 0x8001
    ERROR_ATT_KEY_CERTIFICATION_FAILURE = 0x8002
    ERROR_ATT_KEY_UNINITIALIZED = 0x8003
    ERROR_INVALID_ATT_KEY_CERT_DATA = 0x8004
    ERROR_PLATFORM_CERT_UNAVAILABLE = 0x8005

    ERROR_TLS_X509_INVALID_EXTENSION = 0x9001
    INTERNAL_ERROR_ENCLAVE_CREATE_INTERRUPTED = 0xF001


class AesmError(_CodeEnum):
    """``aesm_error_t``: the wire ``errorCode`` (linux-sgx ``aesm_error.h``).

    The codes are small decimal numbers in Intel's logs ("AESM service returned
    error 12"), so ``display_value`` is decimal here.
    """

    @classmethod
    def c_type(cls) -> str:
        return "aesm_error_t"

    @classmethod
    def c_prefixes(cls) -> tuple[str, ...]:
        return ("AESM_",)

    @property
    def display_value(self) -> str:
        return str(self.value)

    SUCCESS = 0
    UNEXPECTED_ERROR = 1
    NO_DEVICE_ERROR = 2
    PARAMETER_ERROR = 3
    EPIDBLOB_ERROR = 4
    EPID_REVOKED_ERROR = 5
    GET_LICENSETOKEN_ERROR = 6
    SESSION_INVALID = 7
    MAX_NUM_SESSION_REACHED = 8
    PSDA_UNAVAILABLE = 9
    EPH_SESSION_FAILED = 10
    LONG_TERM_PAIRING_FAILED = 11
    NETWORK_ERROR = 12
    NETWORK_BUSY_ERROR = 13
    PROXY_SETTING_ASSIST = 14
    FILE_ACCESS_ERROR = 15
    SGX_PROVISION_FAILED = 16
    SERVICE_STOPPED = 17
    BUSY = 18
    BACKEND_SERVER_BUSY = 19
    UPDATE_AVAILABLE = 20
    OUT_OF_MEMORY_ERROR = 21
    MSG_ERROR = 22
    THREAD_ERROR = 23
    SGX_DEVICE_NOT_AVAILABLE = 24
    ENABLE_SGX_DEVICE_FAILED = 25
    PLATFORM_INFO_BLOB_INVALID_SIG = 26
    # 27: no entry in the current header.
    KDF_MISMATCH = 28
    OUT_OF_EPC = 29
    SERVICE_UNAVAILABLE = 30
    UNRECOGNIZED_PLATFORM = 31
    ECDSA_ID_MISMATCH = 32
    PATHNAME_BUFFER_OVERFLOW_ERROR = 33
    ERROR_STORED_KEY = 34
    PUB_KEY_ID_MISMATCH = 35
    INVALID_PCE_SIG_SCHEME = 36
    ATT_KEY_BLOB_ERROR = 37
    UNSUPPORTED_ATT_KEY_ID = 38
    UNSUPPORTED_LOADING_POLICY = 39
    INTERFACE_UNAVAILABLE = 40
    PLATFORM_LIB_UNAVAILABLE = 41
    ATT_KEY_NOT_INITIALIZED = 42
    ATT_KEY_CERT_DATA_INVALID = 43
    NO_PLATFORM_CERT_DATA = 44
    ERROR_REPORT = 45
    ENCLAVE_LOST = 46
    INVALID_REPORT = 47
    ENCLAVE_LOAD_ERROR = 48
    UNABLE_TO_GENERATE_QE_REPORT = 49
    KEY_CERTIFICATION_ERROR = 50
    CONFIG_UNSUPPORTED = 51


class Quote3Error(_CodeEnum):
    """``quote3_error_t`` (DCAP ``sgx_ql_lib_common.h``), ``0xE000 | x``.

    ``KEY_CERTIFCATION_ERROR`` keeps Intel's spelling; ``KEY_CERTIFICATION_ERROR``
    is an alias for it, as ``ERROR_MIN`` is for ``ERROR_UNEXPECTED``.
    """

    @classmethod
    def c_type(cls) -> str:
        return "quote3_error_t"

    @classmethod
    def c_prefixes(cls) -> tuple[str, ...]:
        return ("SGX_QL_", "TEE_")

    SUCCESS = 0x0000
    ERROR_UNEXPECTED = 0xE001
    ERROR_MIN = 0xE001  # alias, as in the header
    ERROR_INVALID_PARAMETER = 0xE002
    ERROR_OUT_OF_MEMORY = 0xE003
    ERROR_ECDSA_ID_MISMATCH = 0xE004
    PATHNAME_BUFFER_OVERFLOW_ERROR = 0xE005
    FILE_ACCESS_ERROR = 0xE006
    ERROR_STORED_KEY = 0xE007
    ERROR_PUB_KEY_ID_MISMATCH = 0xE008
    ERROR_INVALID_PCE_SIG_SCHEME = 0xE009
    ATT_KEY_BLOB_ERROR = 0xE00A
    UNSUPPORTED_ATT_KEY_ID = 0xE00B
    UNSUPPORTED_LOADING_POLICY = 0xE00C
    INTERFACE_UNAVAILABLE = 0xE00D
    PLATFORM_LIB_UNAVAILABLE = 0xE00E
    ATT_KEY_NOT_INITIALIZED = 0xE00F
    ATT_KEY_CERT_DATA_INVALID = 0xE010
    NO_PLATFORM_CERT_DATA = 0xE011
    OUT_OF_EPC = 0xE012
    ERROR_REPORT = 0xE013
    ENCLAVE_LOST = 0xE014
    INVALID_REPORT = 0xE015
    ENCLAVE_LOAD_ERROR = 0xE016
    UNABLE_TO_GENERATE_QE_REPORT = 0xE017
    KEY_CERTIFCATION_ERROR = 0xE018  # sic
    KEY_CERTIFICATION_ERROR = 0xE018  # alias with the spelling fixed
    NETWORK_ERROR = 0xE019
    MESSAGE_ERROR = 0xE01A

    # Verification side (QVL/QvE).
    NO_QUOTE_COLLATERAL_DATA = 0xE01B
    QUOTE_CERTIFICATION_DATA_UNSUPPORTED = 0xE01C
    QUOTE_FORMAT_UNSUPPORTED = 0xE01D
    UNABLE_TO_GENERATE_REPORT = 0xE01E
    QE_REPORT_INVALID_SIGNATURE = 0xE01F
    QE_REPORT_UNSUPPORTED_FORMAT = 0xE020
    PCK_CERT_UNSUPPORTED_FORMAT = 0xE021
    PCK_CERT_CHAIN_ERROR = 0xE022
    TCBINFO_UNSUPPORTED_FORMAT = 0xE023
    TCBINFO_MISMATCH = 0xE024
    QEIDENTITY_UNSUPPORTED_FORMAT = 0xE025
    QEIDENTITY_MISMATCH = 0xE026
    TCB_OUT_OF_DATE = 0xE027
    TCB_OUT_OF_DATE_CONFIGURATION_NEEDED = 0xE028
    SGX_ENCLAVE_IDENTITY_OUT_OF_DATE = 0xE029
    SGX_ENCLAVE_REPORT_ISVSVN_OUT_OF_DATE = 0xE02A
    QE_IDENTITY_OUT_OF_DATE = 0xE02B
    SGX_TCB_INFO_EXPIRED = 0xE02C
    SGX_PCK_CERT_CHAIN_EXPIRED = 0xE02D
    SGX_CRL_EXPIRED = 0xE02E
    SGX_SIGNING_CERT_CHAIN_EXPIRED = 0xE02F
    SGX_ENCLAVE_IDENTITY_EXPIRED = 0xE030
    PCK_REVOKED = 0xE031
    TCB_REVOKED = 0xE032
    TCB_CONFIGURATION_NEEDED = 0xE033
    UNABLE_TO_GET_COLLATERAL = 0xE034
    ERROR_INVALID_PRIVILEGE = 0xE035
    # 0xE036: no entry.
    NO_QVE_IDENTITY_DATA = 0xE037
    CRL_UNSUPPORTED_FORMAT = 0xE038
    QEIDENTITY_CHAIN_ERROR = 0xE039
    TCBINFO_CHAIN_ERROR = 0xE03A
    ERROR_QVL_QVE_MISMATCH = 0xE03B
    TCB_SW_HARDENING_NEEDED = 0xE03C
    TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED = 0xE03D

    # Quote-ex path in DCAP's out-of-process mode (from sgx_status_t).
    UNSUPPORTED_MODE = 0xE03E
    NO_DEVICE = 0xE03F
    SERVICE_UNAVAILABLE = 0xE040
    NETWORK_FAILURE = 0xE041
    SERVICE_TIMEOUT = 0xE042
    ERROR_BUSY = 0xE043

    # Collateral cache service (QPL/QCNL and PCCS).
    UNKNOWN_MESSAGE_RESPONSE = 0xE044
    PERSISTENT_STORAGE_ERROR = 0xE045
    ERROR_MESSAGE_PARSING_ERROR = 0xE046
    PLATFORM_UNKNOWN = 0xE047
    UNKNOWN_API_VERSION = 0xE048
    CERTS_UNAVAILABLE = 0xE049

    QVEIDENTITY_MISMATCH = 0xE050
    QVE_OUT_OF_DATE = 0xE051
    PSW_NOT_AVAILABLE = 0xE052
    COLLATERAL_VERSION_NOT_SUPPORTED = 0xE053
    TDX_MODULE_MISMATCH = 0xE060
    QEIDENTITY_NOT_FOUND = 0xE061
    TCBINFO_NOT_FOUND = 0xE062
    INTERNAL_SERVER_ERROR = 0xE063
    SUPPLEMENTAL_DATA_VERSION_NOT_SUPPORTED = 0xE064
    ROOT_CA_UNTRUSTED = 0xE065
    TCB_NOT_SUPPORTED = 0xE066
    CONFIG_INVALID_JSON = 0xE067
    RESULT_INVALID_SIGNATURE = 0xE068

    ERROR_MAX = 0xE0FF


class QvResult(_CodeEnum):
    """``sgx_ql_qv_result_t`` (DCAP ``sgx_qve_header.h``), ``0xA000 | x``."""

    @classmethod
    def c_type(cls) -> str:
        return "sgx_ql_qv_result_t"

    @classmethod
    def c_prefixes(cls) -> tuple[str, ...]:
        return ("SGX_QL_QV_RESULT_", "TEE_QV_RESULT_")

    OK = 0x0000
    CONFIG_NEEDED = 0xA001
    MIN = 0xA001  # alias, as in the header
    OUT_OF_DATE = 0xA002
    OUT_OF_DATE_CONFIG_NEEDED = 0xA003
    INVALID_SIGNATURE = 0xA004
    REVOKED = 0xA005
    UNSPECIFIED = 0xA006
    SW_HARDENING_NEEDED = 0xA007
    CONFIG_AND_SW_HARDENING_NEEDED = 0xA008
    TD_RELAUNCH_ADVISED = 0xA009
    TD_RELAUNCH_ADVISED_CONFIG_NEEDED = 0xA00A
    MAX = 0xA0FF


class OalStatus(enum.IntEnum):
    """``uae_oal_status_t``: how the client's transport call ended (spec 7.2)."""

    SUCCESS = 0
    ERROR_UNEXPECTED = 1  # EOF or short read, including a close without reply
    ERROR_AESM_UNAVAILABLE = 2  # connect() failed
    ERROR_TIMEOUT = 3  # a read or write exceeded the per-call timeout
    ERROR_INVALID = 4  # the client's own request check failed


class QuoteExCall(enum.Enum):
    """The six ``libsgx_quote_ex`` functions; the value is the C function name."""

    SELECT_ATT_KEY_ID = "sgx_select_att_key_id"
    INIT_QUOTE_EX = "sgx_init_quote_ex"
    GET_QUOTE_SIZE_EX = "sgx_get_quote_size_ex"
    GET_QUOTE_EX = "sgx_get_quote_ex"
    GET_SUPPORTED_ATT_KEY_ID_NUM = "sgx_get_supported_att_key_id_num"
    GET_SUPPORTED_ATT_KEY_IDS = "sgx_get_supported_att_key_ids"


# ---------------------------------------------------------------------------
# Mappings between them (spec aesm-wire.md 7.2 and 12.4)
# ---------------------------------------------------------------------------

# quote3_error_to_aesm_error: one-to-one by name for 0xE001..0xE01A.
_QUOTE3_TO_AESM: Mapping[Quote3Error, AesmError] = MappingProxyType(
    {
        Quote3Error.SUCCESS: AesmError.SUCCESS,
        Quote3Error.ERROR_UNEXPECTED: AesmError.UNEXPECTED_ERROR,
        Quote3Error.ERROR_INVALID_PARAMETER: AesmError.PARAMETER_ERROR,
        Quote3Error.ERROR_OUT_OF_MEMORY: AesmError.OUT_OF_MEMORY_ERROR,
        Quote3Error.ERROR_ECDSA_ID_MISMATCH: AesmError.ECDSA_ID_MISMATCH,
        Quote3Error.PATHNAME_BUFFER_OVERFLOW_ERROR: AesmError.PATHNAME_BUFFER_OVERFLOW_ERROR,
        Quote3Error.FILE_ACCESS_ERROR: AesmError.FILE_ACCESS_ERROR,
        Quote3Error.ERROR_STORED_KEY: AesmError.ERROR_STORED_KEY,
        Quote3Error.ERROR_PUB_KEY_ID_MISMATCH: AesmError.PUB_KEY_ID_MISMATCH,
        Quote3Error.ERROR_INVALID_PCE_SIG_SCHEME: AesmError.INVALID_PCE_SIG_SCHEME,
        Quote3Error.ATT_KEY_BLOB_ERROR: AesmError.ATT_KEY_BLOB_ERROR,
        Quote3Error.UNSUPPORTED_ATT_KEY_ID: AesmError.UNSUPPORTED_ATT_KEY_ID,
        Quote3Error.UNSUPPORTED_LOADING_POLICY: AesmError.UNSUPPORTED_LOADING_POLICY,
        Quote3Error.INTERFACE_UNAVAILABLE: AesmError.INTERFACE_UNAVAILABLE,
        Quote3Error.PLATFORM_LIB_UNAVAILABLE: AesmError.PLATFORM_LIB_UNAVAILABLE,
        Quote3Error.ATT_KEY_NOT_INITIALIZED: AesmError.ATT_KEY_NOT_INITIALIZED,
        Quote3Error.ATT_KEY_CERT_DATA_INVALID: AesmError.ATT_KEY_CERT_DATA_INVALID,
        Quote3Error.NO_PLATFORM_CERT_DATA: AesmError.NO_PLATFORM_CERT_DATA,
        Quote3Error.OUT_OF_EPC: AesmError.OUT_OF_EPC,
        Quote3Error.ERROR_REPORT: AesmError.ERROR_REPORT,
        Quote3Error.ENCLAVE_LOST: AesmError.ENCLAVE_LOST,
        Quote3Error.INVALID_REPORT: AesmError.INVALID_REPORT,
        Quote3Error.ENCLAVE_LOAD_ERROR: AesmError.ENCLAVE_LOAD_ERROR,
        Quote3Error.UNABLE_TO_GENERATE_QE_REPORT: AesmError.UNABLE_TO_GENERATE_QE_REPORT,
        Quote3Error.KEY_CERTIFCATION_ERROR: AesmError.KEY_CERTIFICATION_ERROR,
        Quote3Error.NETWORK_ERROR: AesmError.NETWORK_ERROR,
        Quote3Error.MESSAGE_ERROR: AesmError.MSG_ERROR,
    }
)

# oal_map_status: transport outcome, checked before the reply's errorCode.
_OAL_TO_SGX: Mapping[OalStatus, SgxStatus] = MappingProxyType(
    {
        OalStatus.SUCCESS: SgxStatus.SUCCESS,
        OalStatus.ERROR_UNEXPECTED: SgxStatus.ERROR_UNEXPECTED,
        OalStatus.ERROR_AESM_UNAVAILABLE: SgxStatus.ERROR_SERVICE_UNAVAILABLE,
        OalStatus.ERROR_TIMEOUT: SgxStatus.ERROR_SERVICE_TIMEOUT,
        OalStatus.ERROR_INVALID: SgxStatus.ERROR_INVALID_PARAMETER,
    }
)

# oal_map_result: the table every quote-ex call applies first.
_AESM_COMMON: Mapping[AesmError, SgxStatus] = MappingProxyType(
    {
        AesmError.SUCCESS: SgxStatus.SUCCESS,
        AesmError.UPDATE_AVAILABLE: SgxStatus.ERROR_UPDATE_NEEDED,
        AesmError.UNEXPECTED_ERROR: SgxStatus.ERROR_UNEXPECTED,
        AesmError.PARAMETER_ERROR: SgxStatus.ERROR_INVALID_PARAMETER,
        AesmError.SERVICE_STOPPED: SgxStatus.ERROR_SERVICE_UNAVAILABLE,
        AesmError.SERVICE_UNAVAILABLE: SgxStatus.ERROR_SERVICE_UNAVAILABLE,
        AesmError.ENCLAVE_LOAD_ERROR: SgxStatus.ERROR_SERVICE_UNAVAILABLE,
        AesmError.ENCLAVE_LOST: SgxStatus.ERROR_SERVICE_UNAVAILABLE,
        AesmError.OUT_OF_MEMORY_ERROR: SgxStatus.ERROR_OUT_OF_MEMORY,
        AesmError.BUSY: SgxStatus.ERROR_BUSY,
        AesmError.UNRECOGNIZED_PLATFORM: SgxStatus.ERROR_UNRECOGNIZED_PLATFORM,
        AesmError.NETWORK_ERROR: SgxStatus.ERROR_NETWORK_FAILURE,
        AesmError.NETWORK_BUSY_ERROR: SgxStatus.ERROR_NETWORK_FAILURE,
        AesmError.PROXY_SETTING_ASSIST: SgxStatus.ERROR_NETWORK_FAILURE,
        AesmError.NO_DEVICE_ERROR: SgxStatus.ERROR_NO_DEVICE,
    }
)

# EPID and provisioning overrides shared by init and get-quote. The EPID rows are
# dead for ECDSA quoting but still in the client, so they are kept.
_AESM_PROVISIONING: Mapping[AesmError, SgxStatus] = MappingProxyType(
    {
        AesmError.EPIDBLOB_ERROR: SgxStatus.ERROR_AE_INVALID_EPIDBLOB,
        AesmError.EPID_REVOKED_ERROR: SgxStatus.ERROR_EPID_MEMBER_REVOKED,
        AesmError.BACKEND_SERVER_BUSY: SgxStatus.ERROR_BUSY,
        AesmError.SGX_PROVISION_FAILED: SgxStatus.ERROR_UNEXPECTED,
        AesmError.OUT_OF_EPC: SgxStatus.ERROR_OUT_OF_EPC,
    }
)

# The per-call switches, consulted only when the common table said UNEXPECTED
# for a code other than AESM 1.
_AESM_OVERRIDES: Mapping[QuoteExCall, Mapping[AesmError, SgxStatus]] = MappingProxyType(
    {
        QuoteExCall.SELECT_ATT_KEY_ID: MappingProxyType(
            {AesmError.UNSUPPORTED_ATT_KEY_ID: SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID}
        ),
        QuoteExCall.INIT_QUOTE_EX: MappingProxyType(
            {
                AesmError.UNSUPPORTED_ATT_KEY_ID: SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID,
                AesmError.KEY_CERTIFICATION_ERROR: SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE,
                AesmError.NO_PLATFORM_CERT_DATA: SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE,
                **_AESM_PROVISIONING,
            }
        ),
        QuoteExCall.GET_QUOTE_SIZE_EX: MappingProxyType(
            {
                AesmError.ATT_KEY_NOT_INITIALIZED: SgxStatus.ERROR_ATT_KEY_UNINITIALIZED,
                AesmError.ATT_KEY_CERT_DATA_INVALID: SgxStatus.ERROR_UNEXPECTED,
                AesmError.UNSUPPORTED_ATT_KEY_ID: SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID,
            }
        ),
        QuoteExCall.GET_QUOTE_EX: MappingProxyType(
            {
                AesmError.ATT_KEY_NOT_INITIALIZED: SgxStatus.ERROR_ATT_KEY_UNINITIALIZED,
                AesmError.ATT_KEY_CERT_DATA_INVALID: SgxStatus.ERROR_UNEXPECTED,
                AesmError.UNSUPPORTED_ATT_KEY_ID: SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID,
                # A bad application REPORT surfaces as a MAC failure: there is no
                # SGX_ERROR_INVALID_REPORT (spec 12.1).
                AesmError.ERROR_REPORT: SgxStatus.ERROR_MAC_MISMATCH,
                AesmError.INVALID_REPORT: SgxStatus.ERROR_MAC_MISMATCH,
                AesmError.UNABLE_TO_GENERATE_QE_REPORT: SgxStatus.ERROR_UNEXPECTED,
                **_AESM_PROVISIONING,
            }
        ),
        QuoteExCall.GET_SUPPORTED_ATT_KEY_ID_NUM: MappingProxyType({}),
        QuoteExCall.GET_SUPPORTED_ATT_KEY_IDS: MappingProxyType({}),
    }
)

# sgx_status_to_quote3_error in DCAP's out-of-process path. Everything else,
# MAC_MISMATCH and OUT_OF_EPC included, collapses to ERROR_UNEXPECTED.
_SGX_TO_QUOTE3: Mapping[SgxStatus, Quote3Error] = MappingProxyType(
    {
        SgxStatus.SUCCESS: Quote3Error.SUCCESS,
        SgxStatus.ERROR_UNEXPECTED: Quote3Error.ERROR_UNEXPECTED,
        SgxStatus.ERROR_INVALID_PARAMETER: Quote3Error.ERROR_INVALID_PARAMETER,
        SgxStatus.ERROR_OUT_OF_MEMORY: Quote3Error.ERROR_OUT_OF_MEMORY,
        SgxStatus.ERROR_NO_DEVICE: Quote3Error.NO_DEVICE,
        SgxStatus.ERROR_SERVICE_UNAVAILABLE: Quote3Error.SERVICE_UNAVAILABLE,
        SgxStatus.ERROR_NETWORK_FAILURE: Quote3Error.NETWORK_FAILURE,
        SgxStatus.ERROR_SERVICE_TIMEOUT: Quote3Error.SERVICE_TIMEOUT,
        SgxStatus.ERROR_BUSY: Quote3Error.ERROR_BUSY,
        SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID: Quote3Error.UNSUPPORTED_ATT_KEY_ID,
        # Not NO_PLATFORM_CERT_DATA or KEY_CERTIFCATION_ERROR: DCAP maps the
        # certification failure to "cert data invalid".
        SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE: Quote3Error.ATT_KEY_CERT_DATA_INVALID,
        SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE: Quote3Error.NO_PLATFORM_CERT_DATA,
        SgxStatus.ERROR_ATT_KEY_UNINITIALIZED: Quote3Error.ATT_KEY_NOT_INITIALIZED,
    }
)


def quote3_to_aesm(status: Quote3Error | int) -> AesmError:
    """The wire ``errorCode`` the daemon sends for a QE/PCE-layer status.

    Codes outside 0xE001..0xE01A (verification, cache or unknown values) become
    ``UNEXPECTED_ERROR``, as in Intel's ECDSA bundle.
    """
    try:
        return _QUOTE3_TO_AESM.get(Quote3Error(status), AesmError.UNEXPECTED_ERROR)
    except ValueError:
        return AesmError.UNEXPECTED_ERROR


def oal_to_sgx(status: OalStatus | int) -> SgxStatus:
    """The ``sgx_status_t`` for a transport outcome (``oal_map_status``)."""
    try:
        return _OAL_TO_SGX[OalStatus(status)]
    except ValueError:
        return SgxStatus.ERROR_UNEXPECTED


def aesm_to_sgx(code: AesmError | int, call: QuoteExCall) -> SgxStatus:
    """The ``sgx_status_t`` that ``call`` returns for a reply's ``errorCode``.

    This is the reply half of ``libsgx_quote_ex``: the caller checks the
    transport first (:func:`oal_to_sgx`). An integer that is no ``aesm_error_t``
    (27, or anything a broken server sends) is ``ERROR_UNEXPECTED``, never an
    exception.
    """
    try:
        aesm = AesmError(code)
    except ValueError:
        return SgxStatus.ERROR_UNEXPECTED
    common = _AESM_COMMON.get(aesm, SgxStatus.ERROR_UNEXPECTED)
    if common is not SgxStatus.ERROR_UNEXPECTED or aesm is AesmError.UNEXPECTED_ERROR:
        return common
    return _AESM_OVERRIDES[call].get(aesm, SgxStatus.ERROR_UNEXPECTED)


def sgx_to_quote3(status: SgxStatus | int) -> Quote3Error:
    """What DCAP's out-of-process path reports for a quote-ex ``sgx_status_t``."""
    try:
        return _SGX_TO_QUOTE3.get(SgxStatus(status), Quote3Error.ERROR_UNEXPECTED)
    except ValueError:
        return Quote3Error.ERROR_UNEXPECTED


class TcbStatus(enum.StrEnum):
    """``tcbStatus`` of TCB Info v3 and QE Identity v2 (dcap-quote.md 8.1 and 8.2).

    The values are the case-sensitive JSON strings; a member compares equal to
    its string.
    """

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"

    @classmethod
    def parse(cls, value: str) -> TcbStatus:
        """The status named ``value`` (exact JSON spelling, or any case)."""
        for member in cls:
            if value == member.value or value.lower() == member.value.lower():
                return member
        names = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown TCB status {value!r} (one of {names})")

    @property
    def qv_result(self) -> QvResult:
        """``sgx_ql_qv_result_t`` for this status (dcap-quote.md section 10)."""
        return TCB_STATUS_QV_RESULT[self]


#: The statuses a platform TCB level of TCB Info can have (all of them).
PLATFORM_TCB_STATUSES: tuple[TcbStatus, ...] = tuple(TcbStatus)
#: The statuses a QE Identity TCB level can have (dcap-quote.md 8.2).
QE_TCB_STATUSES: tuple[TcbStatus, ...] = (
    TcbStatus.UP_TO_DATE,
    TcbStatus.OUT_OF_DATE,
    TcbStatus.REVOKED,
)

#: TCB status to the verifier's result (spec dcap-quote.md section 10).
TCB_STATUS_QV_RESULT: Mapping[TcbStatus, QvResult] = MappingProxyType(
    {
        TcbStatus.UP_TO_DATE: QvResult.OK,
        TcbStatus.SW_HARDENING_NEEDED: QvResult.SW_HARDENING_NEEDED,
        TcbStatus.CONFIGURATION_NEEDED: QvResult.CONFIG_NEEDED,
        TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: QvResult.CONFIG_AND_SW_HARDENING_NEEDED,
        TcbStatus.OUT_OF_DATE: QvResult.OUT_OF_DATE,
        TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED: QvResult.OUT_OF_DATE_CONFIG_NEEDED,
        TcbStatus.REVOKED: QvResult.REVOKED,
    }
)


def qv_result_for_tcb_status(status: str) -> QvResult:
    """The ``sgx_ql_qv_result_t`` for a TCB status string; unknown ones fail closed.

    An unrecognised status is ``UNSPECIFIED`` (a terminal failure), never OK.
    """
    try:
        return TCB_STATUS_QV_RESULT[TcbStatus(status)]
    except ValueError:
        return QvResult.UNSPECIFIED


#: The ``sgx_status_t`` values a quote-ex call can return: the transport
#: outcomes and every row of the reply tables (spec 7.2).
QUOTE_EX_STATUSES: frozenset[SgxStatus] = frozenset(
    [*_AESM_COMMON.values(), *_OAL_TO_SGX.values()]
    + [status for table in _AESM_OVERRIDES.values() for status in table.values()]
)
