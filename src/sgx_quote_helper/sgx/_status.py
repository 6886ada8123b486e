"""SGX and DCAP status codes, the mappings between them, and ``explain``.

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
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """One reading of a status code: what it means and what to check.

    ``quote_ex`` (AESM codes only) gives the ``sgx_status_t`` each quote-ex call
    turns the code into; ``dcap`` (``sgx_status_t`` codes a quote-ex call can
    return) gives the ``quote3_error_t`` DCAP's out-of-process path reports.
    ``reading`` says how the input was read: ``"decimal"``, ``"hex"``,
    ``"name"`` or ``"value"`` (an integer argument).
    """

    family: str
    value: int
    name: str
    meaning: str
    check: str
    reading: str = "value"
    quote_ex: tuple[tuple[QuoteExCall, SgxStatus], ...] = ()
    dcap: Quote3Error | None = None

    @property
    def hex(self) -> str:
        return f"0x{self.value:04X}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form; optional parts appear only when present."""
        out: dict[str, object] = {
            "family": self.family,
            "value": self.value,
            "hex": self.hex,
            "name": self.name,
            "reading": self.reading,
            "meaning": self.meaning,
            "check": self.check,
        }
        if self.quote_ex:
            out["quote_ex"] = {call.value: _code_dict(sgx) for call, sgx in self.quote_ex}
        if self.dcap is not None:
            out["dcap"] = _code_dict(self.dcap)
        return out


def _code_dict(code: _CodeEnum) -> dict[str, object]:
    return {"value": int(code), "hex": f"0x{code.value:04X}", "name": code.c_name}


_FAMILIES: tuple[type[_CodeEnum], ...] = (SgxStatus, AesmError, Quote3Error, QvResult)

# Statuses a quote-ex call can return, for which DCAP's mapping is worth showing.
_QUOTE_EX_STATUSES: frozenset[SgxStatus] = frozenset(
    [*_AESM_COMMON.values(), *_OAL_TO_SGX.values()]
    + [status for table in _AESM_OVERRIDES.values() for status in table.values()]
)

_HEX = re.compile(r"0x([0-9a-f]+)", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")
_BARE_HEX = re.compile(r"[0-9a-f]+", re.IGNORECASE)


def explain(value: int | str) -> list[Explanation]:
    """Every reading of ``value`` as a status code, with what to check.

    ``value`` is an integer, ``0x``-prefixed hex, bare digits (read both as
    decimal and as hex: "12" is AESM 12 and also 0x12), bare hex such as
    ``e019``, or a C name in any case (``SGX_QL_NETWORK_ERROR``, ``aesm_busy``,
    ``TEE_...`` aliases, or the name without its prefix). A value that exists in
    several families gives one entry per family. Unknown input gives ``[]``.
    """
    if isinstance(value, int):
        readings = [(value, "value")]
    else:
        text = value.strip()
        if named := _named_members(text):
            return _dedupe([_describe(member, "name") for member in named])
        readings = _numeric_readings(text)
    found: list[Explanation] = []
    for number, how in readings:
        for family in _FAMILIES:
            try:
                member = family(number)
            except ValueError:
                continue
            found.append(_describe(member, how))
    return _dedupe(found)


def _numeric_readings(text: str) -> list[tuple[int, str]]:
    if match := _HEX.fullmatch(text):
        return [(int(match.group(1), 16), "hex")]
    if _DIGITS.fullmatch(text):
        decimal, hexadecimal = int(text, 10), int(text, 16)
        if decimal == hexadecimal:
            return [(decimal, "decimal")]
        return [(decimal, "decimal"), (hexadecimal, "hex")]
    if _BARE_HEX.fullmatch(text):
        # "e019" as pasted from logs that print codes without 0x.
        return [(int(text, 16), "hex")]
    return []


def _named_members(text: str) -> list[_CodeEnum]:
    upper = text.upper()
    members: list[_CodeEnum] = []
    for family in _FAMILIES:
        # Explicit None checks: SUCCESS and OK are falsy (value 0).
        member = family.from_c_name(upper)
        if member is None:
            member = family.__members__.get(upper)
        if member is not None:
            members.append(member)
    return members


def _dedupe(items: list[Explanation]) -> list[Explanation]:
    seen: set[tuple[str, int]] = set()
    unique: list[Explanation] = []
    for item in items:
        if (item.family, item.value) not in seen:
            seen.add((item.family, item.value))
            unique.append(item)
    return unique


def _describe(member: _CodeEnum, reading: str) -> Explanation:
    meaning, check = _guide(member)
    quote_ex: tuple[tuple[QuoteExCall, SgxStatus], ...] = ()
    dcap: Quote3Error | None = None
    if isinstance(member, AesmError):
        quote_ex = tuple((call, aesm_to_sgx(member, call)) for call in QuoteExCall)
    elif isinstance(member, SgxStatus) and member in _QUOTE_EX_STATUSES:
        dcap = sgx_to_quote3(member)
    return Explanation(
        family=member.c_type(),
        value=int(member),
        name=member.c_name,
        meaning=meaning,
        check=check,
        reading=reading,
        quote_ex=quote_ex,
        dcap=dcap,
    )


def _guide(member: _CodeEnum) -> tuple[str, str]:
    # One table per family: IntEnum members of different families compare
    # equal when their values do, so they cannot share a dict.
    if isinstance(member, SgxStatus):
        return _SGX_GUIDE.get(member) or _generic_sgx(member)
    if isinstance(member, AesmError):
        return _AESM_GUIDE.get(member) or _generic_aesm(member)
    if isinstance(member, Quote3Error):
        return _QUOTE3_GUIDE.get(member) or _generic_quote3(member)
    assert isinstance(member, QvResult)
    return _QV_GUIDE[member]


def _words(name: str) -> str:
    return name.removeprefix("ERROR_").removesuffix("_ERROR").replace("_", " ").lower()


def _generic_sgx(status: SgxStatus) -> tuple[str, str]:
    meaning = f"The SGX SDK or PSW reported '{_words(status.name)}'."
    area = status.value >> 12
    check = {
        0x0: "A general SDK status; the log of the program that received it says which call.",
        0x1: "An enclave runtime error (ECALL, OCALL or TCS) inside the application; it does "
        "not come from quoting.",
        0x2: "Enclave creation failed; check the enclave file and its signature, the SGX "
        "driver (/dev/sgx_enclave) and that the SDK and PSW versions match.",
        0x3: "A key, REPORT or sealing check failed inside an enclave; check the enclave's "
        "identity and the data it was given.",
        0x4: "A platform-services or EPID code from Intel's AESM; the ECDSA quote-ex path "
        "does not return it.",
        0x5: "The process lacks a privilege the operation needs; compare its user, groups and "
        "device access with what the operation requires.",
        0x6: "A Protected Code Loader (encrypted enclave) error; it does not come from quoting.",
        0x7: "An Intel Protected File System error; it does not come from quoting.",
        0x8: "A quoting-infrastructure error; re-run init quote and check the daemon log.",
        0x9: "An RA-TLS certificate error in the application's TLS library.",
    }.get(area, "An internal SDK error; retrying the operation is the usual remedy.")
    return meaning, check


# EPID and platform-services codes that only Intel's legacy AESM paths produce.
_AESM_LEGACY = frozenset(
    {
        AesmError.EPIDBLOB_ERROR,
        AesmError.EPID_REVOKED_ERROR,
        AesmError.GET_LICENSETOKEN_ERROR,
        AesmError.SESSION_INVALID,
        AesmError.MAX_NUM_SESSION_REACHED,
        AesmError.PSDA_UNAVAILABLE,
        AesmError.EPH_SESSION_FAILED,
        AesmError.LONG_TERM_PAIRING_FAILED,
        AesmError.SGX_DEVICE_NOT_AVAILABLE,
        AesmError.ENABLE_SGX_DEVICE_FAILED,
        AesmError.PLATFORM_INFO_BLOB_INVALID_SIG,
        AesmError.KDF_MISMATCH,
        AesmError.UNRECOGNIZED_PLATFORM,
        AesmError.CONFIG_UNSUPPORTED,
    }
)


def _generic_aesm(code: AesmError) -> tuple[str, str]:
    meaning = f"The AESM service reported '{_words(code.name)}'."
    if code in _AESM_LEGACY:
        return meaning, (
            "An EPID, launch or platform-services code from Intel's aesmd; the ECDSA "
            "quote-ex requests the quote helper serves never return it."
        )
    return meaning, "Read the daemon's log for the request; it names the failing step."


_VERIFY_CHECK = (
    "A quote-verification result: check the quote and the collateral given to the "
    "verifier (PCK chain, CRLs, TCB info, QE identity), their expiry, and that they "
    "chain to the expected root CA."
)
_CACHE_CHECK = (
    "A collateral-service (PCCS or QPL cache) error: check the PCCS URL and the "
    "service's logs, and that the platform is registered there."
)


def _generic_quote3(code: Quote3Error) -> tuple[str, str]:
    meaning = f"The DCAP quote library reported '{_words(code.name)}'."
    if Quote3Error.NO_QUOTE_COLLATERAL_DATA <= code.value <= Quote3Error.RESULT_INVALID_SIGNATURE:
        if Quote3Error.UNKNOWN_MESSAGE_RESPONSE <= code.value <= Quote3Error.CERTS_UNAVAILABLE:
            return meaning, _CACHE_CHECK
        return meaning, _VERIFY_CHECK
    return meaning, (
        "A quote-generation error from the QE/PCE layer; the quote helper's log shows "
        "the failing step."
    )


_REINIT = (
    "Call init quote again (sgx_init_quote_ex, or DCAP's sgx_qe_get_target_info), "
    "build a new REPORT for the returned target info and retry; the key is dropped "
    "when the daemon restarts, upgrades or rotates it."
)
_PCCS_NETWORK = (
    "Check the PCCS URL the quote helper uses (--pccs-url, or pccs_url in "
    "/etc/sgx_default_qcnl.conf), that the PCCS is up and reachable from the node or "
    "pod, that its TLS certificate is trusted (a self-signed PCCS needs "
    "use_secure_cert false or its CA installed), and the proxy settings (HTTPS_PROXY, "
    "NO_PROXY); a JSON typo in the QCNL config fails the same way."
)
_SOCKET = (
    "Is the quote helper (or aesmd) running on the node, and is the host directory "
    "/var/run/aesmd mounted into the container (the directory, not the socket file, "
    "which changes on restart)? Does /var/run/aesmd/aesm.socket (not aesm.sock) exist, "
    "is it the path given to serve --socket, is SGX_AESM_ADDR set for DCAP's "
    "out-of-process mode, and may this uid connect (socket mode, --allow-uid/--allow-gid)?"
)
_PROVISION = (
    "Give the quote helper, and only it, access to /dev/sgx_provision: the device in "
    "its container and the device's group (often sgx_prv) among its groups; "
    "'Failed to load QE3: 0x4004' in an aesmd log is this case."
)
_ATT_KEY_ID = (
    "Ask the service which key ids it supports (sgx_select_att_key_id with no list, "
    "or sgx_get_supported_att_key_ids) and use the ECDSA-P256 one; with Intel's aesmd "
    "this can also mean the ECDSA plugins (libsgx-aesm-ecdsa-plugin, "
    "libsgx-aesm-quote-ex-plugin) are missing, and on OpenShift it has accompanied a "
    "PCCS answering 404 for the platform."
)
_BAD_REPORT = (
    "Build the REPORT with EREPORT against the target info that init quote returned on "
    "this same node, after the latest daemon restart or upgrade; a REPORT from another "
    "machine, aimed at another enclave, or altered in transit is refused."
)
_NO_PCK = (
    "Is the platform registered with the PCCS (a PCK certificate cached for its FMSPC, "
    "CPUSVN and PCESVN) and can the quote helper reach it? For a simulated platform, "
    "point serve --pccs-url at 'pccs --sim DIR' for the same sim init directory."
)
_EPC = (
    "Check EPC use on the node (other enclaves, sgx.intel.com/epc requests); the quote "
    "helper needs one QE3 and one PCE per node, so restarting it or freeing EPC helps."
)
_BUSY = (
    "Retry with back-off; if it persists, check the quote helper's concurrency limit "
    "and queue metrics, or the PCCS if the daemon is waiting on collateral."
)
_NO_DEVICE = (
    "Is /dev/sgx_enclave present in the container (SGX device plugin resource "
    "sgx.intel.com/enclave or the admission webhook), is SGX enabled in the BIOS, and "
    "does the kernel have the in-tree SGX driver (Linux 5.11 or later)?"
)
_SEALED_KEY = (
    "The sealed attestation key in the quote helper's --state-dir is unreadable or "
    "belongs to another platform or QE version; remove it so that init quote "
    "generates and certifies a new one."
)
_TIMEOUT = (
    "Check that the quote helper is not stuck or overloaded (/readyz, request-latency "
    "metrics, logs) and that a slow PCCS is not stalling the first init after start; "
    "a new process succeeding is a symptom, not a fix."
)

_SGX_GUIDE: Mapping[SgxStatus, tuple[str, str]] = MappingProxyType(
    {
        SgxStatus.SUCCESS: ("The call succeeded.", "Nothing to fix."),
        SgxStatus.ERROR_UNEXPECTED: (
            "An unspecified failure; from a quote-ex call it also means the connection "
            "closed without a complete reply, or an AESM code with no closer mapping.",
            "Read the quote helper's log for the request, which records the AESM and "
            "quote3 codes; it also closes without replying to malformed or oversized "
            "requests.",
        ),
        SgxStatus.ERROR_INVALID_PARAMETER: (
            "An argument was rejected, by the client's own checks or by the daemon (AESM 3).",
            "Check buffer sizes: REPORT 432 bytes, att_key_id 256, qe_report_info 960, "
            "and the quote buffer as large as sgx_get_quote_size_ex said.",
        ),
        SgxStatus.ERROR_OUT_OF_MEMORY: (
            "Memory ran out in the caller or in the daemon (AESM 21).",
            "Check the memory limits of the application and of the quote helper's pod.",
        ),
        SgxStatus.ERROR_ENCLAVE_LOST: (
            "The enclave was lost after a power transition or used in a fork()ed child.",
            "Destroy and re-create the enclave; never use an enclave across fork().",
        ),
        SgxStatus.ERROR_OUT_OF_EPC: (
            "Not enough EPC to load an enclave; from quote-ex, the QE3 or PCE could not "
            "be loaded (AESM 29).",
            _EPC,
        ),
        SgxStatus.ERROR_NO_DEVICE: (
            "The SGX device could not be opened (from quote-ex: by the daemon, AESM 2).",
            _NO_DEVICE,
        ),
        SgxStatus.ERROR_MAC_MISMATCH: (
            "A MAC did not verify; from sgx_get_quote_ex it means the QE refused the "
            "application's REPORT (AESM 45 or 47; there is no SGX_ERROR_INVALID_REPORT).",
            _BAD_REPORT,
        ),
        SgxStatus.ERROR_INVALID_ATTRIBUTE: (
            "The enclave asked for an attribute it may not have (such as launch key "
            "access without flexible launch control).",
            "Check the enclave's signed attributes and the platform's launch control.",
        ),
        SgxStatus.ERROR_SERVICE_UNAVAILABLE: (
            "The AESM socket could not be reached (connect() failed), or the daemon "
            "could not run its enclaves (AESM 17, 30, 46 or 48).",
            _SOCKET,
        ),
        SgxStatus.ERROR_SERVICE_TIMEOUT: (
            "The daemon accepted the connection but did not answer within the client's "
            "15-second budget for one read or write.",
            _TIMEOUT,
        ),
        SgxStatus.ERROR_AE_INVALID_EPIDBLOB: (
            "The EPID blob failed verification (EPID only).",
            "EPID attestation is retired; use ECDSA (DCAP) quoting.",
        ),
        SgxStatus.ERROR_SERVICE_INVALID_PRIVILEGE: (
            "An enclave was not authorised to run, typically the PCE or QE3 hosted by a "
            "process without access to /dev/sgx_provision.",
            _PROVISION,
        ),
        SgxStatus.ERROR_EPID_MEMBER_REVOKED: (
            "The EPID group membership is revoked (EPID only).",
            "EPID attestation is retired; use ECDSA (DCAP) quoting.",
        ),
        SgxStatus.ERROR_UPDATE_NEEDED: (
            "The daemon reports that a platform software or firmware update is needed (AESM 20).",
            "Update the SGX/DCAP packages or the quote helper release, and the BIOS and microcode.",
        ),
        SgxStatus.ERROR_NETWORK_FAILURE: (
            "The daemon hit a network error (AESM 12, 13 or 14); for ECDSA quoting, while "
            "fetching the PCK certificate from the PCCS.",
            _PCCS_NETWORK,
        ),
        SgxStatus.ERROR_BUSY: (
            "The service is temporarily busy (AESM 18, or 19 during init or get quote).",
            _BUSY,
        ),
        SgxStatus.ERROR_UNRECOGNIZED_PLATFORM: (
            "EPID provisioning did not recognise the platform (AESM 31).",
            "EPID attestation is retired; use ECDSA (DCAP) quoting.",
        ),
        SgxStatus.ERROR_NO_PRIVILEGE: (
            "The caller lacks the privilege the operation needs.",
            "Compare the process's user, groups and device access with what the "
            "operation requires.",
        ),
        SgxStatus.ERROR_UNSUPPORTED_ATT_KEY_ID: (
            "The quoting service does not support the attestation key id asked for (AESM 38).",
            _ATT_KEY_ID,
        ),
        SgxStatus.ERROR_ATT_KEY_CERTIFICATION_FAILURE: (
            "The QE could not have its attestation key certified by the PCE (AESM 50), "
            "e.g. the PCK TCB supplied is higher than the platform's.",
            "Check that the PCCS returns the PCK certificate for this platform's own "
            "CPUSVN and PCESVN, then run init again; DCAP reports this as 0xE010.",
        ),
        SgxStatus.ERROR_ATT_KEY_UNINITIALIZED: (
            "No attestation key is ready for quoting (AESM 42).",
            _REINIT,
        ),
        SgxStatus.ERROR_INVALID_ATT_KEY_CERT_DATA: (
            "The certification data from the platform library (sgx_ql_get_quote_config) "
            "is invalid.",
            "Check the PCK certificate chain the PCCS serves for this platform.",
        ),
        SgxStatus.ERROR_PLATFORM_CERT_UNAVAILABLE: (
            "The platform's PCK certificate is not available (AESM 44).",
            _NO_PCK,
        ),
    }
)

_AESM_GUIDE: Mapping[AesmError, tuple[str, str]] = MappingProxyType(
    {
        AesmError.SUCCESS: ("The request succeeded.", "Nothing to fix."),
        AesmError.UNEXPECTED_ERROR: (
            "The daemon failed in an unspecified way; a reply without an errorCode also "
            "reads as 1.",
            "Read the daemon's log for the request; QE-layer codes with no AESM "
            "equivalent (verification and cache codes from 0xE01B on) are sent as 1.",
        ),
        AesmError.NO_DEVICE_ERROR: (
            "The daemon could not open the SGX device.",
            "Does the quote helper's container have /dev/sgx_enclave and "
            "/dev/sgx_provision, and is SGX enabled on the node?",
        ),
        AesmError.PARAMETER_ERROR: (
            "The daemon rejected a field of the request.",
            "Check sizes: report 432 bytes, att_key_id 256, qe_report_info 960, and "
            "buf_size 32 when a public key id is requested.",
        ),
        AesmError.NETWORK_ERROR: (
            "The daemon could not fetch data it needs over the network; for ECDSA, the "
            "PCK certificate from the PCCS.",
            _PCCS_NETWORK,
        ),
        AesmError.NETWORK_BUSY_ERROR: (
            "A backend the daemon contacted was busy or unreachable.",
            _PCCS_NETWORK,
        ),
        AesmError.PROXY_SETTING_ASSIST: (
            "The daemon's network access needs proxy settings.",
            _PCCS_NETWORK,
        ),
        AesmError.FILE_ACCESS_ERROR: (
            "The daemon could not read or write a file it needs, such as the sealed "
            "attestation key.",
            "Check that the quote helper's --state-dir exists, is writable by it and "
            "has free space.",
        ),
        AesmError.SGX_PROVISION_FAILED: (
            "Provisioning of the platform failed.",
            _PROVISION,
        ),
        AesmError.SERVICE_STOPPED: (
            "The daemon is stopping or stopped.",
            "Retry once it is back; if it keeps stopping, read its log for the cause.",
        ),
        AesmError.BUSY: ("The daemon is busy.", _BUSY),
        AesmError.BACKEND_SERVER_BUSY: (
            "A backend server the daemon depends on is busy.",
            _BUSY,
        ),
        AesmError.UPDATE_AVAILABLE: (
            "A platform software or firmware update is available or needed.",
            "Update the SGX/DCAP packages or the quote helper release, and the BIOS and microcode.",
        ),
        AesmError.OUT_OF_MEMORY_ERROR: (
            "The daemon ran out of memory.",
            "Raise the quote helper's memory limit and check for a request flood.",
        ),
        AesmError.MSG_ERROR: (
            "A message from a backend could not be used; for ECDSA, the PCCS reply.",
            "Check that --pccs-url points at a PCCS v4 API and that the reply is not an "
            "error or proxy page.",
        ),
        AesmError.THREAD_ERROR: (
            "The daemon could not start a worker thread.",
            "Check the quote helper's process and thread limits.",
        ),
        AesmError.OUT_OF_EPC: (
            "The daemon could not load the QE3 or PCE for lack of EPC.",
            _EPC,
        ),
        AesmError.SERVICE_UNAVAILABLE: (
            "The daemon cannot provide the service asked for.",
            "With Intel's aesmd, install the ECDSA plugins (libsgx-aesm-ecdsa-plugin, "
            "libsgx-aesm-quote-ex-plugin); with the quote helper, check that its backend "
            "started (/readyz and the log).",
        ),
        AesmError.ECDSA_ID_MISMATCH: (
            "The sealed attestation key belongs to a different ECDSA id.",
            _SEALED_KEY,
        ),
        AesmError.PATHNAME_BUFFER_OVERFLOW_ERROR: (
            "The path of the sealed attestation key is too long.",
            "Use a shorter --state-dir path.",
        ),
        AesmError.ERROR_STORED_KEY: ("The sealed attestation key is invalid.", _SEALED_KEY),
        AesmError.PUB_KEY_ID_MISMATCH: (
            "The sealed attestation key does not match the key id requested.",
            _SEALED_KEY,
        ),
        AesmError.INVALID_PCE_SIG_SCHEME: (
            "The PCE used a signature scheme the QE does not accept.",
            "The QE and PCE versions do not match; install them from one release.",
        ),
        AesmError.ATT_KEY_BLOB_ERROR: (
            "The attestation key blob is damaged.",
            _SEALED_KEY,
        ),
        AesmError.UNSUPPORTED_ATT_KEY_ID: (
            "The daemon does not support the attestation key id asked for.",
            _ATT_KEY_ID,
        ),
        AesmError.UNSUPPORTED_LOADING_POLICY: (
            "The enclave loading policy asked for is not supported.",
            "Out of process only the persistent policy exists; stop setting a policy.",
        ),
        AesmError.INTERFACE_UNAVAILABLE: (
            "The daemon could not load the QE3 or PCE.",
            "Read the daemon's log; check the enclave files and access to "
            "/dev/sgx_enclave and /dev/sgx_provision.",
        ),
        AesmError.PLATFORM_LIB_UNAVAILABLE: (
            "The platform quote provider library (QPL, libdcap_quoteprov.so.1) could not "
            "be loaded.",
            "Install a QPL beside the daemon: Intel's libsgx-dcap-default-qpl, or "
            "Azure's DCAP client on AKS.",
        ),
        AesmError.ATT_KEY_NOT_INITIALIZED: (
            "No attestation key is ready for quoting.",
            _REINIT,
        ),
        AesmError.ATT_KEY_CERT_DATA_INVALID: (
            "The certification data for the attestation key is invalid.",
            "Check the PCK certificate chain the PCCS serves for this platform, then run "
            "init again.",
        ),
        AesmError.NO_PLATFORM_CERT_DATA: (
            "The daemon has no PCK certificate for this platform.",
            _NO_PCK,
        ),
        AesmError.ERROR_REPORT: (
            "The QE could not verify the application's REPORT; clients see SGX_ERROR_MAC_MISMATCH.",
            _BAD_REPORT,
        ),
        AesmError.ENCLAVE_LOST: (
            "The daemon lost its QE3 or PCE (power transition).",
            "Retry; the daemon reloads its enclaves.",
        ),
        AesmError.INVALID_REPORT: (
            "The application's REPORT is invalid; clients see SGX_ERROR_MAC_MISMATCH.",
            _BAD_REPORT,
        ),
        AesmError.ENCLAVE_LOAD_ERROR: (
            "The daemon could not load the QE3 or PCE.",
            "Read the daemon's log: 0x4004 there means no access to /dev/sgx_provision, "
            "0x2006 no /dev/sgx_enclave, 0x2005 no EPC.",
        ),
        AesmError.UNABLE_TO_GENERATE_QE_REPORT: (
            "The QE could not produce its own report for the qe_report_info given.",
            "Check the target info inside qe_report_info, or call without qe_report_info.",
        ),
        AesmError.KEY_CERTIFICATION_ERROR: (
            "The attestation key could not be certified, e.g. the PCK TCB supplied is "
            "higher than the platform's.",
            "Check that the PCCS returns the PCK certificate for this platform's own "
            "CPUSVN and PCESVN, then run init again.",
        ),
    }
)

_QUOTE3_GUIDE: Mapping[Quote3Error, tuple[str, str]] = MappingProxyType(
    {
        Quote3Error.SUCCESS: ("The call succeeded.", "Nothing to fix."),
        Quote3Error.ERROR_UNEXPECTED: (
            "An unspecified failure; out of process, DCAP also reports every quote-ex "
            "status without a closer mapping this way, MAC_MISMATCH and OUT_OF_EPC "
            "included, and a failure to load libsgx_quote_ex.so.1.",
            "With SGX_AESM_ADDR set, check that libsgx_quote_ex.so.1 is installed and read "
            "the quote helper's log for the real status; in process, check that "
            "/dev/sgx_enclave and /dev/sgx_provision are in the container (device plugin "
            "or webhook).",
        ),
        Quote3Error.ERROR_INVALID_PARAMETER: (
            "An argument was rejected.",
            "Check the buffers and sizes passed to the quote library.",
        ),
        Quote3Error.ERROR_OUT_OF_MEMORY: (
            "Memory ran out in the library or an enclave.",
            "Check the memory limits of the process (and of the quote helper's pod).",
        ),
        Quote3Error.ERROR_ECDSA_ID_MISMATCH: (
            "The sealed attestation key belongs to a different ECDSA id.",
            _SEALED_KEY,
        ),
        Quote3Error.FILE_ACCESS_ERROR: (
            "The sealed attestation key file could not be accessed.",
            "Check that the state directory exists and is writable.",
        ),
        Quote3Error.ERROR_STORED_KEY: ("The sealed attestation key is invalid.", _SEALED_KEY),
        Quote3Error.ATT_KEY_BLOB_ERROR: ("The attestation key blob is damaged.", _SEALED_KEY),
        Quote3Error.UNSUPPORTED_ATT_KEY_ID: (
            "The quoting service does not support the attestation key id asked for (AESM 38).",
            _ATT_KEY_ID,
        ),
        Quote3Error.INTERFACE_UNAVAILABLE: (
            "The QE3 or PCE could not be loaded.",
            "Check the enclave files and access to /dev/sgx_enclave and /dev/sgx_provision.",
        ),
        Quote3Error.PLATFORM_LIB_UNAVAILABLE: (
            "The platform quote provider library (QPL) could not be found; not fatal if "
            "certification data is available another way.",
            "Install a QPL (Intel's libsgx-dcap-default-qpl, or Azure's DCAP client on "
            "AKS) and check its configuration.",
        ),
        Quote3Error.ATT_KEY_NOT_INITIALIZED: (
            "No attestation key is ready for quoting (AESM 42, SGX 0x8003).",
            _REINIT,
        ),
        Quote3Error.ATT_KEY_CERT_DATA_INVALID: (
            "The certification data is invalid; out of process this is also DCAP's name "
            "for SGX_ERROR_ATT_KEY_CERTIFICATION_FAILURE (0x8002).",
            "Check the PCK certificate chain the PCCS serves for this platform, then run "
            "init again.",
        ),
        Quote3Error.NO_PLATFORM_CERT_DATA: (
            "The quote provider library has no PCK certificate data for this platform.",
            _NO_PCK,
        ),
        Quote3Error.OUT_OF_EPC: ("Not enough EPC to load the QE3 or PCE.", _EPC),
        Quote3Error.ERROR_REPORT: (
            "An SGX REPORT failed verification.",
            _BAD_REPORT,
        ),
        Quote3Error.ENCLAVE_LOST: (
            "An enclave was lost after a power transition.",
            "Retry; the library reloads its enclaves.",
        ),
        Quote3Error.INVALID_REPORT: (
            "The application enclave's REPORT failed verification.",
            _BAD_REPORT,
        ),
        Quote3Error.ENCLAVE_LOAD_ERROR: (
            "The quoting enclaves could not be loaded (file I/O, loader, or no SGX).",
            "Check that SGX is enabled, /dev/sgx_enclave is accessible and the enclave "
            "files are installed.",
        ),
        Quote3Error.UNABLE_TO_GENERATE_QE_REPORT: (
            "The QE could not produce its report for the qe_report_info given.",
            "Check the target info inside qe_report_info, or call without it.",
        ),
        Quote3Error.KEY_CERTIFCATION_ERROR: (
            "The provider library returned a PCK TCB the PCE cannot certify (too high).",
            "Check that the PCCS returns the PCK certificate for this platform's own "
            "CPUSVN and PCESVN.",
        ),
        Quote3Error.NETWORK_ERROR: (
            "The PCK certificate could not be fetched: the PCCS is unreachable (AESM 12).",
            _PCCS_NETWORK,
        ),
        Quote3Error.MESSAGE_ERROR: (
            "The PCCS answered, but its reply to the PCK certificate request was unusable.",
            "Check that the PCCS URL points at a PCCS v4 API and that the platform is "
            "registered there.",
        ),
        Quote3Error.NO_QUOTE_COLLATERAL_DATA: (
            "No verification collateral is available for the quote.",
            "Check that the verifier can reach the PCCS and that it has TCB info and QE "
            "identity for the quote's FMSPC.",
        ),
        Quote3Error.PCK_CERT_CHAIN_ERROR: (
            "The PCK certificate chain did not verify.",
            "Usually the quote helper's PCCS or QPL served a PCK certificate from another "
            "PCK certificate API version or CA than the verifier's collateral (on AKS, "
            "mismatched Azure DCAP client versions); compare issuers and root, and for "
            "simulated quotes pass the simulated root with --root-ca.",
        ),
        Quote3Error.TCB_OUT_OF_DATE: (
            "The platform's TCB level is out of date.",
            "Update BIOS and microcode; see sgx_ql_qv_result_t 0xA002.",
        ),
        Quote3Error.PCK_REVOKED: (
            "The PCK certificate is revoked.",
            "Reject the quote; the platform must be updated and re-provisioned.",
        ),
        Quote3Error.TCB_REVOKED: (
            "The platform's TCB level is revoked.",
            "Reject the quote; the platform must be updated.",
        ),
        Quote3Error.UNABLE_TO_GET_COLLATERAL: (
            "The verifier could not fetch collateral.",
            "Check the verifier's PCCS URL, network and TLS settings.",
        ),
        Quote3Error.ERROR_INVALID_PRIVILEGE: (
            "Not enough privilege, typically no access to /dev/sgx_provision.",
            _PROVISION,
        ),
        Quote3Error.UNSUPPORTED_MODE: (
            "The call is not supported in this mode, e.g. setting an enclave loading "
            "policy out of process.",
            "Drop the call, or unset SGX_AESM_ADDR to quote in process.",
        ),
        Quote3Error.NO_DEVICE: (
            "The quote helper could not open the SGX device (SGX 0x2006 via DCAP).",
            _NO_DEVICE,
        ),
        Quote3Error.SERVICE_UNAVAILABLE: (
            "The AESM socket could not be reached (SGX 0x4001 via DCAP).",
            _SOCKET,
        ),
        Quote3Error.NETWORK_FAILURE: (
            "The quote helper could not reach the PCCS (SGX 0x4007 via DCAP).",
            _PCCS_NETWORK,
        ),
        Quote3Error.SERVICE_TIMEOUT: (
            "The quote helper did not answer in time (SGX 0x4002 via DCAP).",
            _TIMEOUT,
        ),
        Quote3Error.ERROR_BUSY: ("The quoting service is busy (SGX 0x400A via DCAP).", _BUSY),
        Quote3Error.ERROR_MESSAGE_PARSING_ERROR: (
            "The quote provider library could not parse the collateral service's reply.",
            "The QPL and the service do not match: with the AKS quote helper use Azure's "
            "QPL (Azure DCAP client), not Intel's default QPL; otherwise check that the "
            "PCCS URL is a PCCS v4 API and the reply is not an error or proxy page.",
        ),
        Quote3Error.PLATFORM_UNKNOWN: (
            "The collateral cache does not know this platform.",
            "Register the platform with the PCCS (PCK certificates for its PPID, FMSPC "
            "and CPUSVN).",
        ),
        Quote3Error.PSW_NOT_AVAILABLE: (
            "The SGX PSW libraries could not be loaded.",
            "Install the SGX runtime (libsgx-urts, libsgx-enclave-common).",
        ),
        Quote3Error.ROOT_CA_UNTRUSTED: (
            "The TLS certificate of the collateral service is not trusted.",
            "Install the PCCS's CA certificate, or set use_secure_cert false for a "
            "self-signed test PCCS.",
        ),
        Quote3Error.TCB_NOT_SUPPORTED: (
            "No level in the TCB info matches the platform's TCB.",
            "Check that the TCB info is for the quote's FMSPC and current; for a simulated "
            "platform, re-run sim init so that its TCB policy covers the hosted QE/PCE.",
        ),
        Quote3Error.CONFIG_INVALID_JSON: (
            "The quote provider library's JSON configuration has a syntax error.",
            "Fix /etc/sgx_default_qcnl.conf (or the file named by QCNL_CONF_PATH).",
        ),
        Quote3Error.RESULT_INVALID_SIGNATURE: (
            "A signature failed during quote verification.",
            "Reject the quote; if unexpected, check that quote and collateral were not "
            "altered and come from the expected root.",
        ),
        Quote3Error.ERROR_MAX: (
            "The upper bound of the quote3_error_t range, not a status a call returns.",
            "Something printed an uninitialised or corrupted status; look at the caller.",
        ),
    }
)

_QV_GUIDE: Mapping[QvResult, tuple[str, str]] = MappingProxyType(
    {
        QvResult.OK: (
            "The quote verified and the platform's TCB is up to date.",
            "Accept, subject to your enclave policy (MRENCLAVE or MRSIGNER, ISV SVN, "
            "debug flag, report data).",
        ),
        QvResult.CONFIG_NEEDED: (
            "The quote verified and the platform is patched, but its configuration (BIOS "
            "settings) may need changes to be fully protected.",
            "Relying party: accept only if your policy allows ConfigurationNeeded for the "
            "advisory IDs returned; operator: apply the configuration they name.",
        ),
        QvResult.OUT_OF_DATE: (
            "The quote verified, but the platform's TCB or the QE that signed it predates "
            "the latest TCB recovery, so published vulnerabilities apply.",
            "Relying party: reject unless your policy tolerates OutOfDate for a grace "
            "period; operator: update BIOS and microcode, and the quote helper (which "
            "hosts QE3/PCE), since in-process applications with an old QE stay OutOfDate "
            "until rebuilt.",
        ),
        QvResult.OUT_OF_DATE_CONFIG_NEEDED: (
            "The quote verified, but the platform is both out of date and needs "
            "configuration changes.",
            "Relying party: reject unless your policy explicitly allows it; operator: "
            "update firmware and the quote helper, then apply the configuration.",
        ),
        QvResult.INVALID_SIGNATURE: (
            "A signature over the quote, the QE report, a CRL or the collateral did not verify.",
            "Reject the quote; if unexpected, check that it was not altered in transit "
            "and that the collateral is genuine.",
        ),
        QvResult.REVOKED: (
            "The TCB level, the PCK certificate, an intermediate CA or the collateral "
            "signer is revoked.",
            "Reject the quote; the platform must be updated or re-provisioned.",
        ),
        QvResult.UNSPECIFIED: (
            "Verification failed for a reason with no more specific result (malformed "
            "input, no matching TCB level, an unknown status).",
            "Reject the quote; the verifier's quote3_error_t or log gives the cause.",
        ),
        QvResult.SW_HARDENING_NEEDED: (
            "The platform is up to date, but the advisories listed need software "
            "mitigations inside the enclave.",
            "Relying party: accept only if the enclave was built with the mitigations the "
            "advisory IDs name, and your policy allows SWHardeningNeeded.",
        ),
        QvResult.CONFIG_AND_SW_HARDENING_NEEDED: (
            "The platform is up to date, but needs configuration changes and the enclave "
            "needs software mitigations.",
            "Relying party: accept only if your policy allows both for the advisory IDs "
            "returned; operator: apply the configuration they name.",
        ),
        QvResult.TD_RELAUNCH_ADVISED: (
            "TDX only: the TD's TCB is current, but it ran for a while on an out-of-date "
            "TDX module.",
            "Relaunch or re-provision the TD; an SGX quote should never produce this.",
        ),
        QvResult.TD_RELAUNCH_ADVISED_CONFIG_NEEDED: (
            "TDX only: relaunch advised, and the platform also needs configuration changes.",
            "Relaunch the TD and apply the configuration; an SGX quote should never produce this.",
        ),
        QvResult.MAX: (
            "The upper bound of the sgx_ql_qv_result_t range, not a result a verifier returns.",
            "Something printed an uninitialised or corrupted result; look at the caller.",
        ),
    }
)
