"""What each status code means for a person, and what to check.

The tables follow Intel's headers and the project spec (aesm-wire.md section
12, dcap-quote.md section 10) for the meaning, and this project's deployment
(the quote helper's flags, the AESM socket and its mount, the Kubernetes
resources) for what to check. They sit above the layers they talk about:
``sgx`` keeps the codes and Intel's mapping rules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeAlias

from sgx_quote_helper.client import DEFAULT_SOCKET_PATH, SOCKET_MOUNT_ADVICE
from sgx_quote_helper.sgx import AesmError, Quote3Error, QvResult, SgxStatus

#: A member of one of the four status enums.
Code: TypeAlias = SgxStatus | AesmError | Quote3Error | QvResult


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
    f"Is the quote helper (or aesmd) running on the node? {SOCKET_MOUNT_ADVICE} Does "
    f"{DEFAULT_SOCKET_PATH} (not aesm.sock) exist, is it the path given to serve --socket, "
    "is SGX_AESM_ADDR set for DCAP's out-of-process mode, and may this uid connect "
    "(socket mode, --allow-uid/--allow-gid)?"
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


def meaning_and_check(member: Code) -> tuple[str, str]:
    """What ``member`` means and what to check, from its family's table or rule."""
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
