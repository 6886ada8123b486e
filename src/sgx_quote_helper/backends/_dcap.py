"""The ``dcap`` backend: Intel's DCAP quote library on SGX hardware, through ctypes.

The daemon loads ``libsgx_dcap_ql.so.1`` in-process (as aesmd's ECDSA bundle
links ``libsgx_qe3_logic.so``) and quotes with the real QE3 and PCE:

=============================== ============================================
backend call                    library call
=============================== ============================================
start-up                        ``sgx_qe_set_enclave_load_policy(PERSISTENT)``,
                                ``sgx_ql_set_path`` for each configured path,
                                a first ``sgx_qe_get_target_info``
``init_quote``                  ``sgx_ql_init_quote`` (QE3 logic library: also
                                returns the ECDSA id), else
                                ``sgx_qe_get_target_info``
``quote_size``                  ``sgx_qe_get_quote_size``
``get_quote`` without           ``sgx_qe_get_quote``
``qe_report_info``
``get_quote`` with              ``sgx_ql_get_quote`` (QE3 logic library); the
``qe_report_info``              wrapper's ``sgx_qe_get_quote`` has no such
                                parameter
``close``                       ``sgx_qe_cleanup_by_policy``,
                                ``sgx_qe_set_enclave_load_policy(EPHEMERAL)``
                                (unloads QE3 and PCE), ``dlclose``
=============================== ============================================

Why the QE3 logic library: ``sgx_qe_get_quote`` (DCAP
``QuoteGeneration/quote_wrapper/ql/sgx_dcap_ql_wrapper.cpp``) calls
``sgx_ql_get_quote(report, NULL, NULL, quote, size)``, dropping the
``qe_report_info`` (nonce and application target info) that quote_ex clients
send. aesmd's ECDSA bundle (linux-sgx ``ecdsa_quote_service_bundle.cpp``)
honours it by calling ``sgx_ql_get_quote`` of ``libsgx_qe3_logic.so``
directly (exported by ``quote_wrapper/quote/linux/qe3_logic.lds``; signature in
``quote_wrapper/quote/inc/sgx_ql_core_wrapper.h``, unchanged since DCAP 1.1).
``libsgx_dcap_ql.so.1`` links that library, so its symbols are found through
the quote library's handle; ``--dcap-qe3-logic-library`` names another file.
Without it, requests carrying ``qe_report_info`` are refused with
``SGX_QL_INTERFACE_UNAVAILABLE`` (0xE00D, AESM 40) and InitQuoteEx replies
carry no ``pub_key_id`` (the wrapper does not return it).

Threading: the quoting enclave is single-threaded. Every library call runs on
one worker thread (:class:`QeCallQueue`), callers queue for it with a bounded
depth and a bounded wait (then AESM_BUSY, 18), and :meth:`DcapBackend.close`
waits for the call in flight before unloading.

``quote3_error_t`` results become :class:`QuoteError` with that code; the
daemon maps them to the AESM codes aesmd sends for the same failure
(``quote3_to_aesm``, the table the ``sim`` backend uses).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import enum
import logging
import os
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sgx_quote_helper._logging import log_event
from sgx_quote_helper.backends._base import (
    BackendCall,
    BackendFactory,
    BackendInfo,
    InitQuoteResult,
    QuoteError,
    QuoteResult,
    quote3_code,
)
from sgx_quote_helper.errors import CodedError
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    AesmError,
    AttKeyId,
    AttKeyIdExt,
    QeReportInfo,
    Quote3Error,
    TargetInfo,
)

_log = logging.getLogger("sgx_quote_helper.backends.dcap")

DEFAULT_LIBRARY = "libsgx_dcap_ql.so.1"
DEFAULT_QUOTE_PROVIDER = "libdcap_quoteprov.so.1"
DEFAULT_ENCLAVE_DEVICE = Path("/dev/sgx_enclave")
DEFAULT_PROVISION_DEVICE = Path("/dev/sgx_provision")
#: Callers that may wait for the QE at once (beyond the one call running).
DEFAULT_QUEUE_DEPTH = 64
#: Seconds a caller waits for its turn at the QE before AESM_BUSY.
DEFAULT_QUEUE_TIMEOUT = 30.0

# ---- C types (DCAP sgx_ql_lib_common.h, sgx_pce.h, sgx_dcap_ql_wrapper.h) ----

#: ``quote3_error_t``: a C enum whose values are all non-negative.
_quote3_error_t = ctypes.c_uint
#: ``sgx_ql_request_policy_t``: SGX_QL_PERSISTENT = 0, SGX_QL_EPHEMERAL = 1.
_sgx_ql_request_policy_t = ctypes.c_int
#: ``sgx_ql_path_type_t``: QE3 = 0, PCE = 1, QPL = 2, IDE = 3.
_sgx_ql_path_type_t = ctypes.c_int

_TargetInfo = ctypes.c_uint8 * 512  # sgx_target_info_t
_Report = ctypes.c_uint8 * 432  # sgx_report_t
_AttKeyId = ctypes.c_uint8 * 158  # sgx_ql_att_key_id_t
_QeReportInfo = ctypes.c_uint8 * 960  # sgx_ql_qe_report_info_t
_PUB_KEY_ID_SIZE = 32  # sizeof(ref_sha256_hash_t)
_QUOTE_SIG_LEN_OFFSET, _QUOTE_FIXED_SIZE = 432, 436  # sgx_quote3_t


class LoadPolicy(enum.IntEnum):
    PERSISTENT = 0
    EPHEMERAL = 1


class PathType(enum.IntEnum):
    QE3 = 0
    PCE = 1
    QPL = 2
    IDE = 3


#: name -> (restype, argtypes), exactly as declared in DCAP's headers.
WRAPPER_FUNCTIONS: dict[str, tuple[Any, list[Any]]] = {
    # quote3_error_t sgx_qe_set_enclave_load_policy(sgx_ql_request_policy_t policy);
    "sgx_qe_set_enclave_load_policy": (_quote3_error_t, [_sgx_ql_request_policy_t]),
    # quote3_error_t sgx_ql_set_path(sgx_ql_path_type_t path_type, const char *p_path);
    "sgx_ql_set_path": (_quote3_error_t, [_sgx_ql_path_type_t, ctypes.c_char_p]),
    # quote3_error_t sgx_qe_get_target_info(sgx_target_info_t *p_qe_target_info);
    "sgx_qe_get_target_info": (_quote3_error_t, [ctypes.POINTER(_TargetInfo)]),
    # quote3_error_t sgx_qe_get_quote_size(uint32_t *p_quote_size);
    "sgx_qe_get_quote_size": (_quote3_error_t, [ctypes.POINTER(ctypes.c_uint32)]),
    # quote3_error_t sgx_qe_get_quote(const sgx_report_t *p_app_report,
    #                                 uint32_t quote_size, uint8_t *p_quote);
    "sgx_qe_get_quote": (
        _quote3_error_t,
        [ctypes.POINTER(_Report), ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint8)],
    ),
    # quote3_error_t sgx_qe_cleanup_by_policy();
    "sgx_qe_cleanup_by_policy": (_quote3_error_t, []),
}

#: The QE3 logic library's entry points (``sgx_ql_core_wrapper.h``).
QE3_LOGIC_FUNCTIONS: dict[str, tuple[Any, list[Any]]] = {
    # quote3_error_t sgx_ql_init_quote(sgx_ql_att_key_id_t *p_att_key_id,
    #     sgx_target_info_t *p_qe_target_info, bool refresh_att_key,
    #     size_t *p_pub_key_id_size, uint8_t *p_pub_key_id);
    "sgx_ql_init_quote": (
        _quote3_error_t,
        [
            ctypes.POINTER(_AttKeyId),
            ctypes.POINTER(_TargetInfo),
            ctypes.c_bool,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_uint8),
        ],
    ),
    # quote3_error_t sgx_ql_get_quote(const sgx_report_t *p_app_report,
    #     sgx_ql_att_key_id_t *p_att_key_id, sgx_ql_qe_report_info_t *p_qe_report_info,
    #     uint8_t *p_quote, uint32_t quote_size);
    "sgx_ql_get_quote": (
        _quote3_error_t,
        [
            ctypes.POINTER(_Report),
            ctypes.POINTER(_AttKeyId),
            ctypes.POINTER(_QeReportInfo),
            ctypes.POINTER(ctypes.c_uint8),
            ctypes.c_uint32,
        ],
    ),
}

#: Failures of a first ``sgx_qe_get_target_info`` that come from the PCCS or
#: the quote provider, not from this node: the daemon starts not-ready and
#: retries (as with the ``sim`` backend and an unreachable PCCS).
TRANSIENT_INIT_FAILURES = frozenset(
    {
        Quote3Error.NETWORK_ERROR,
        Quote3Error.NO_PLATFORM_CERT_DATA,
        Quote3Error.ATT_KEY_CERT_DATA_INVALID,
        Quote3Error.KEY_CERTIFCATION_ERROR,
        Quote3Error.ERROR_BUSY,
        Quote3Error.SERVICE_UNAVAILABLE,
        Quote3Error.NETWORK_FAILURE,
        Quote3Error.SERVICE_TIMEOUT,
    }
)

#: What to do about a library failure at start-up, by code.
_FIXES: dict[int, str] = {
    Quote3Error.ENCLAVE_LOAD_ERROR: "check that the QE3/PCE enclave packages "
    "(libsgx-ae-qe3, libsgx-ae-pce, libsgx-ae-id-enclave) are installed or --dcap-qe3-path/"
    "--dcap-pce-path name them, and that /dev/sgx_enclave is usable",
    Quote3Error.OUT_OF_EPC: "free EPC (other enclaves) or give the pod more sgx.intel.com/epc",
    Quote3Error.INTERFACE_UNAVAILABLE: "the PCE could not be loaded: check the PCE enclave "
    "package (libsgx-ae-pce) and /dev/sgx_provision access",
    Quote3Error.PLATFORM_LIB_UNAVAILABLE: "install a quote provider library "
    "(libsgx-dcap-default-qpl or az-dcap-client) or set --dcap-qpl-path",
    Quote3Error.NO_DEVICE: "pass /dev/sgx_enclave and /dev/sgx_provision to the process",
    Quote3Error.UNSUPPORTED_MODE: "SGX_AESM_ADDR was set when the library was loaded; "
    "unset it in the daemon's environment",
    Quote3Error.NETWORK_ERROR: "check the quote provider's PCCS settings "
    "(/etc/sgx_default_qcnl.conf) and that the PCCS is reachable",
    Quote3Error.NO_PLATFORM_CERT_DATA: "register this platform with the PCCS (PCK "
    "certificates for its FMSPC and TCB)",
}

_T = TypeVar("_T")


def _quote3_label(code: int) -> str:
    try:
        return f"SGX_QL_{Quote3Error(code).name} 0x{code:04X}"
    except ValueError:
        return f"quote3_error_t 0x{code:04X}"


class DcapStartupError(CodedError):
    """A start-up check of the dcap backend failed: which, why, the code, and the fix.

    ``str()`` is one line (the check, the problem and the ``quote3_error_t`` of
    the failing library call, if any); the fix is the hint (``check:``).
    """

    def __init__(self, check: str, problem: str, fix: str, *, code: int | None = None) -> None:
        super().__init__(
            f"dcap backend, {check}: {problem}",
            codes=() if code is None else (quote3_code(code),),
            hints=[fix],
        )
        self.check = check
        self.problem = problem
        self.fix = fix
        self.code = code


@dataclass(frozen=True)
class DcapOptions:
    """Where the dcap backend finds its libraries, enclaves and devices."""

    library: str = DEFAULT_LIBRARY
    #: ``None``: resolve ``sgx_ql_*`` through the quote library (which links
    #: ``libsgx_qe3_logic.so``); ``""``: do not use the QE3 logic library.
    qe3_logic_library: str | None = None
    #: The quote provider library to check (``libdcap_quoteprov.so.1``), unless
    #: ``qpl_path`` names one for the quote library to use.
    quote_provider: str = DEFAULT_QUOTE_PROVIDER
    qe3_path: Path | None = None
    pce_path: Path | None = None
    qpl_path: Path | None = None
    ide_path: Path | None = None
    enclave_device: Path = DEFAULT_ENCLAVE_DEVICE
    provision_device: Path = DEFAULT_PROVISION_DEVICE
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT

    def paths(self) -> list[tuple[PathType, Path]]:
        given = (
            (PathType.QE3, self.qe3_path),
            (PathType.PCE, self.pce_path),
            (PathType.QPL, self.qpl_path),
            (PathType.IDE, self.ide_path),
        )
        return [(kind, path) for kind, path in given if path is not None]


# ---- start-up checks (also run by `doctor`) ----


def unset_aesm_addr(environ: MutableMapping[str, str]) -> bool:
    """Remove ``SGX_AESM_ADDR`` before the library is loaded; True if it was set.

    The library's constructor reads it once at load time; with it set, the
    library would send this daemon's own quote requests back to the daemon
    (aesm-wire.md section 8).
    """
    if "SGX_AESM_ADDR" not in environ:
        return False
    del environ["SGX_AESM_ADDR"]  # os.environ: unsetenv() for the C library too
    return True


def check_devices(enclave: Path, provision: Path) -> list[str]:
    """The SGX device nodes exist and this process may open them read-write.

    Returns the device paths checked; raises :class:`DcapStartupError`.
    """
    for path, group, purpose in (
        (enclave, "sgx", "create enclaves (QE3, PCE)"),
        (provision, "sgx_prv", "use the provisioning key (the PCE)"),
    ):
        # os.stat, not Path.exists: newer Pythons' exists() is False for any
        # OSError, and a permission problem must not read as "does not exist".
        try:
            os.stat(path)
            exists = True
        except (FileNotFoundError, NotADirectoryError):
            exists = False
        except OSError as exc:  # a directory on the way is not searchable
            raise DcapStartupError(
                f"device {path}",
                f"{path} cannot be looked up by uid {os.getuid()} ({exc.strerror})",
                "mount the device nodes where this process can reach them",
            ) from None
        if not exists:
            raise DcapStartupError(
                f"device {path}",
                f"{path} does not exist; the quote helper needs it to {purpose}",
                "run on an SGX node (Linux >= 5.11 with SGX enabled in the firmware) and "
                "give the container the device (the sgx.intel.com/enclave and "
                "sgx.intel.com/provision resources, or a hostPath device mount)",
            )
        if not os.access(path, os.R_OK | os.W_OK):
            raise DcapStartupError(
                f"device {path}",
                f"{path} is not readable and writable by uid {os.getuid()}",
                f"run the daemon in the device's group ({group} on Intel's packaging) or as "
                "root, or fix the device node's mode",
            )
    return [str(enclave), str(provision)]


def library_file(function: Any) -> str | None:
    """The file a loaded function lives in (``dladdr``), symlinks resolved."""

    class _DlInfo(ctypes.Structure):
        _fields_ = (
            ("dli_fname", ctypes.c_char_p),
            ("dli_fbase", ctypes.c_void_p),
            ("dli_sname", ctypes.c_char_p),
            ("dli_saddr", ctypes.c_void_p),
        )

    libc = ctypes.CDLL(None)
    dladdr = libc.dladdr
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    dladdr.restype = ctypes.c_int
    info = _DlInfo()
    if not dladdr(ctypes.cast(function, ctypes.c_void_p), ctypes.byref(info)):
        return None
    if not info.dli_fname:
        return None
    return os.path.realpath(os.fsdecode(info.dli_fname))


def version_from_file(path: str, soname_prefix: str) -> str | None:
    """``1.22.100.3`` from ``.../libsgx_dcap_ql.so.1.22.100.3`` (Intel's packaging)."""
    name = os.path.basename(path)
    marker = soname_prefix.split(".so")[0] + ".so."
    if name.startswith(marker) and len(name) > len(marker):
        return name[len(marker) :]
    return None


def check_quote_provider(options: DcapOptions) -> str:
    """A quote provider library loads and exports ``sgx_ql_get_quote_config``."""
    name = str(options.qpl_path) if options.qpl_path is not None else options.quote_provider
    try:
        provider = ctypes.CDLL(name)
    except OSError as exc:
        raise DcapStartupError(
            "quote provider library",
            f"cannot load {name} ({exc})",
            "install one: Azure's az-dcap-client, or Intel's libsgx-dcap-default-qpl with "
            "/etc/sgx_default_qcnl.conf naming your PCCS (or set --dcap-quote-provider)",
        ) from None
    if not hasattr(provider, "sgx_ql_get_quote_config"):
        raise DcapStartupError(
            "quote provider library",
            f"{name} does not export sgx_ql_get_quote_config",
            "install a DCAP quote provider library (az-dcap-client or libsgx-dcap-default-qpl)",
        )
    return library_file(provider.sgx_ql_get_quote_config) or name


class QuoteLibrary:
    """``libsgx_dcap_ql.so.1`` loaded with ctypes, every function typed."""

    def __init__(self, options: DcapOptions) -> None:
        self.name = options.library
        try:
            self._dll: ctypes.CDLL | None = ctypes.CDLL(options.library)
        except OSError as exc:
            raise DcapStartupError(
                "quote library",
                f"cannot load {options.library} ({exc})",
                "install libsgx-dcap-ql from Intel's SGX package repository "
                "(download.01.org/intel-sgx) or set --dcap-library to its path",
            ) from None
        self._functions: dict[str, Any] = {}
        for name, (restype, argtypes) in WRAPPER_FUNCTIONS.items():
            self._functions[name] = self._bind(self._dll, name, restype, argtypes, options.library)
        self.path = library_file(self._functions["sgx_qe_get_target_info"]) or options.library
        self.version = version_from_file(self.path, DEFAULT_LIBRARY)
        self.qe3_logic = self._bind_qe3_logic(options.qe3_logic_library)

    @staticmethod
    def _bind(dll: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any], file: str) -> Any:
        try:
            function = getattr(dll, name)
        except AttributeError:
            raise DcapStartupError(
                "quote library",
                f"{file} does not export {name}",
                "install Intel's libsgx-dcap-ql (DCAP 1.6 or later) or point --dcap-library at it",
            ) from None
        function.restype = restype
        function.argtypes = argtypes
        return function

    def _bind_qe3_logic(self, library: str | None) -> bool:
        if library == "":
            return False
        try:
            dll = self._dll if library is None else ctypes.CDLL(library)
            assert dll is not None
            for name, (restype, argtypes) in QE3_LOGIC_FUNCTIONS.items():
                function = getattr(dll, name)
                function.restype = restype
                function.argtypes = argtypes
                self._functions[name] = function
        except (OSError, AttributeError) as exc:
            for name in QE3_LOGIC_FUNCTIONS:
                self._functions.pop(name, None)
            log_event(
                _log,
                logging.WARNING,
                "dcap.qe3_logic_unavailable",
                library=library or f"(through {self.name})",
                error=str(exc),
                effect="GetQuoteEx with qe_report_info is refused "
                "(SGX_QL_INTERFACE_UNAVAILABLE 0xE00D); InitQuoteEx replies carry no pub_key_id",
            )
            return False
        return True

    def call(self, name: str, *args: Any) -> int:
        if self._dll is None:
            raise QuoteError(
                Quote3Error.SERVICE_UNAVAILABLE, "the DCAP quote library has been unloaded"
            )
        return int(self._functions[name](*args))

    def unload(self) -> None:
        """``dlclose`` the library; no function may be called afterwards."""
        dll, self._dll = self._dll, None
        self._functions.clear()
        if dll is None:
            return
        libc = ctypes.CDLL(None)
        dlclose = libc.dlclose
        dlclose.argtypes = [ctypes.c_void_p]
        dlclose.restype = ctypes.c_int
        dlclose(dll._handle)


class QeCallQueue:
    """One call at a time into the QE, on one worker thread; a bounded queue in front.

    ``depth`` callers may wait; a caller that finds the queue full, or whose
    call has not started within ``timeout`` seconds, gets AESM_BUSY (18), which
    Intel's client reports as ``SGX_ERROR_BUSY`` (0x400A). A call that started
    runs to the end (an enclave call cannot be abandoned).
    """

    def __init__(self, depth: int, timeout: float) -> None:
        if depth < 1 or timeout <= 0:
            raise ValueError("the QE queue needs a depth >= 1 and a positive timeout")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="dcap-qe"
        )
        self._slots = threading.BoundedSemaphore(depth + 1)
        self._timeout = timeout
        self._closed = False
        self._lock = threading.Lock()

    def call(self, function: Callable[[], _T]) -> _T:
        if not self._slots.acquire(blocking=False):
            raise _busy("the queue of callers waiting for the quoting enclave is full")
        try:
            with self._lock:
                if self._closed:
                    raise QuoteError(
                        Quote3Error.SERVICE_UNAVAILABLE,
                        "the dcap backend is shutting down",
                        aesm_code=AesmError.SERVICE_UNAVAILABLE,
                    )
                future = self._executor.submit(function)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self._timeout)
        except concurrent.futures.TimeoutError:
            if future.cancel():
                raise _busy(
                    f"the quoting enclave did not become free within {self._timeout:g} s"
                ) from None
            return future.result()  # running: the enclave call completes
        except concurrent.futures.CancelledError:
            raise QuoteError(
                Quote3Error.SERVICE_UNAVAILABLE,
                "the dcap backend shut down before this call reached the quoting enclave",
                aesm_code=AesmError.SERVICE_UNAVAILABLE,
            ) from None

    def close(self, last: Callable[[], None] | None = None) -> None:
        """Refuse new calls, cancel queued ones, wait for the running one, then run ``last``.

        ``last`` (the release of the enclaves) runs on the closing thread once
        the worker has stopped, so nothing can enter the library beside it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)
        if last is not None:
            last()


def _busy(detail: str) -> QuoteError:
    return QuoteError(Quote3Error.ERROR_BUSY, detail, aesm_code=AesmError.BUSY)


class DcapBackend:
    """:class:`~sgx_quote_helper.backends.QuoteBackend` over Intel's DCAP quote library.

    Construction runs the start-up checks in order (environment, devices,
    library, quote provider, load policy and paths, a first target info) and
    raises :class:`DcapStartupError` for the first that fails.
    """

    def __init__(
        self,
        options: DcapOptions | None = None,
        *,
        environ: MutableMapping[str, str] | None = None,
    ) -> None:
        self.options = opts = options or DcapOptions()
        env = os.environ if environ is None else environ
        # 1. SGX_AESM_ADDR must be gone before the library's constructor runs.
        if unset_aesm_addr(env):
            log_event(
                _log,
                logging.INFO,
                "dcap.sgx_aesm_addr_unset",
                reason="the quote library would otherwise call this daemon itself",
            )
        # 2. Devices.
        check_devices(opts.enclave_device, opts.provision_device)
        # 3. The quote library (name, version) and the QE3 logic entry points.
        self._lib = QuoteLibrary(opts)
        # 4. A quote provider library.
        try:
            provider = check_quote_provider(opts)
        except BaseException:
            self._lib.unload()  # nothing was loaded into the enclave yet
            raise
        log_event(
            _log,
            logging.INFO,
            "dcap.library_loaded",
            library=self._lib.path,
            version=self._lib.version or "unknown",
            qe3_logic=self._lib.qe3_logic,
            quote_provider=provider,
        )
        self._queue = QeCallQueue(opts.queue_depth, opts.queue_timeout)
        self._closed = False
        try:
            self._configure()
            # 6. A first target info: the QE and PCE load and the key certifies.
            self._first_target_info()
        except BaseException:
            self.close()
            raise

    # -- QuoteBackend --------------------------------------------------------

    def info(self) -> BackendInfo:
        # The library does not report the QE3/PCE ISVSVNs; they are in every
        # quote's header (qe_svn, pce_svn), which verification reads.
        return BackendInfo(name="dcap", qe_svn=0, pce_svn=0, simulated=False)

    def may_block(self, call: BackendCall) -> bool:
        """Every call enters Intel's library (and waits for the QE): a worker thread."""
        return True

    def supported_att_key_ids(self) -> list[AttKeyIdExt]:
        return [DEFAULT_ECDSA_ATT_KEY_ID]

    @property
    def qe3_logic(self) -> bool:
        """Whether the QE3 logic entry points (qe_report_info, ECDSA id) are in use."""
        return self._lib.qe3_logic

    @property
    def library_version(self) -> str | None:
        return self._lib.version

    def init_quote(self, att_key_id: AttKeyId) -> InitQuoteResult:
        key_id = _key_id(att_key_id)
        if not self._lib.qe3_logic:
            target_info = self._queue.call(self._target_info)
            return InitQuoteResult(target_info=target_info, pub_key_id=None)

        def init() -> InitQuoteResult:
            target_info = _TargetInfo()
            size = ctypes.c_size_t(_PUB_KEY_ID_SIZE)
            pub_key_id = (ctypes.c_uint8 * _PUB_KEY_ID_SIZE)()
            self._check(
                "sgx_ql_init_quote",
                self._lib.call(
                    "sgx_ql_init_quote",
                    key_id,
                    target_info,
                    False,  # refresh_att_key, as aesmd
                    ctypes.byref(size),
                    pub_key_id,
                ),
            )
            if size.value != _PUB_KEY_ID_SIZE:
                raise QuoteError(
                    Quote3Error.ERROR_UNEXPECTED,
                    f"sgx_ql_init_quote returned a {size.value}-byte ECDSA id, not 32",
                )
            return InitQuoteResult(
                target_info=TargetInfo.from_bytes(bytes(target_info)),
                pub_key_id=bytes(pub_key_id),
            )

        return self._queue.call(init)

    def quote_size(self, att_key_id: AttKeyId) -> int:
        _key_id(att_key_id)
        return self._queue.call(self._quote_size)

    def get_quote(
        self, report: bytes, att_key_id: AttKeyId, qe_report_info: QeReportInfo | None
    ) -> QuoteResult:
        key_id = _key_id(att_key_id)
        if len(report) != ctypes.sizeof(_Report):
            raise QuoteError(
                Quote3Error.ERROR_INVALID_PARAMETER, f"a REPORT is 432 bytes, got {len(report)}"
            )
        if qe_report_info is not None and not self._lib.qe3_logic:
            log_event(
                _log,
                logging.WARNING,
                "dcap.qe_report_info_refused",
                reason="sgx_qe_get_quote takes no qe_report_info and the QE3 logic library "
                "(sgx_ql_get_quote) is not available",
            )
            raise QuoteError(
                Quote3Error.INTERFACE_UNAVAILABLE,
                "this request carries qe_report_info, which needs sgx_ql_get_quote of "
                "libsgx_qe3_logic.so; it is not available to the dcap backend (install "
                "libsgx-qe3-logic or set --dcap-qe3-logic-library)",
            )

        def quote() -> QuoteResult:
            size = self._quote_size()
            buffer = (ctypes.c_uint8 * size)()
            c_report = _Report.from_buffer_copy(report)
            if qe_report_info is None:
                code = self._lib.call("sgx_qe_get_quote", c_report, size, buffer)
                self._check("sgx_qe_get_quote", code)
                return QuoteResult(quote=_trim(bytes(buffer)), qe_report_info=None)
            info = _QeReportInfo.from_buffer_copy(qe_report_info.to_bytes())
            code = self._lib.call("sgx_ql_get_quote", c_report, key_id, info, buffer, size)
            self._check("sgx_ql_get_quote", code)
            return QuoteResult(
                quote=_trim(bytes(buffer)), qe_report_info=QeReportInfo.from_bytes(bytes(info))
            )

        return self._queue.call(quote)

    def close(self) -> None:
        """Wait for the call in flight, release the QE (cleanup, EPHEMERAL), unload."""
        if self._closed:
            return
        self._closed = True

        def release() -> None:
            for name, args in (
                ("sgx_qe_cleanup_by_policy", ()),
                ("sgx_qe_set_enclave_load_policy", (LoadPolicy.EPHEMERAL,)),
            ):
                code = self._lib.call(name, *args)
                if code:
                    log_event(
                        _log,
                        logging.WARNING,
                        "dcap.release_failed",
                        call=name,
                        result=_quote3_label(code),
                    )

        self._queue.close(release)
        self._lib.unload()
        log_event(_log, logging.INFO, "dcap.unloaded", library=self._lib.path)

    # -- helpers ---------------------------------------------------------------

    def _configure(self) -> None:
        """5. Load policy and paths: one call each on the QE thread."""

        def configure() -> None:
            code = self._lib.call("sgx_qe_set_enclave_load_policy", LoadPolicy.PERSISTENT)
            if code:
                raise DcapStartupError(
                    "enclave load policy",
                    "sgx_qe_set_enclave_load_policy(SGX_QL_PERSISTENT) failed",
                    _FIXES.get(code, "check the DCAP installation"),
                    code=code,
                )
            for kind, path in self.options.paths():
                if not path.is_file():
                    raise DcapStartupError(
                        f"{kind.name} path",
                        f"{path} is not a file",
                        f"install the package that provides it or fix --dcap-{kind.name.lower()}"
                        "-path",
                    )
                code = self._lib.call("sgx_ql_set_path", kind, os.fsencode(path))
                if code:
                    raise DcapStartupError(
                        f"{kind.name} path",
                        f"sgx_ql_set_path(SGX_QL_{kind.name}_PATH, {path}) failed",
                        _FIXES.get(code, f"check --dcap-{kind.name.lower()}-path"),
                        code=code,
                    )

        self._queue.call(configure)

    def _first_target_info(self) -> None:
        try:
            target_info = self._queue.call(self._target_info)
        except QuoteError as exc:
            if exc.code in TRANSIENT_INIT_FAILURES:
                log_event(
                    _log,
                    logging.WARNING,
                    "dcap.first_target_info_failed",
                    result=_quote3_label(exc.code),
                    effect="starting not ready; the attestation key is retried",
                    fix=_FIXES.get(exc.code, "check the quote provider and the PCCS"),
                )
                return
            raise DcapStartupError(
                "first sgx_qe_get_target_info",
                "the quoting enclave could not be initialized",
                _FIXES.get(exc.code, "check the DCAP installation and the SGX devices"),
                code=exc.code,
            ) from None
        log_event(
            _log,
            logging.INFO,
            "dcap.qe_ready",
            qe_mr_enclave=target_info.mr_enclave.hex(),
        )

    def _target_info(self) -> TargetInfo:
        buffer = _TargetInfo()
        self._check("sgx_qe_get_target_info", self._lib.call("sgx_qe_get_target_info", buffer))
        return TargetInfo.from_bytes(bytes(buffer))

    def _quote_size(self) -> int:
        size = ctypes.c_uint32()
        self._check(
            "sgx_qe_get_quote_size", self._lib.call("sgx_qe_get_quote_size", ctypes.byref(size))
        )
        if size.value < _QUOTE_FIXED_SIZE:
            raise QuoteError(
                Quote3Error.ERROR_UNEXPECTED,
                f"sgx_qe_get_quote_size returned {size.value}, less than a quote's fixed part",
            )
        return size.value

    @staticmethod
    def _check(call: str, code: int) -> None:
        if code:
            raise QuoteError(code, f"{call} failed with {_quote3_label(code)}")


def _key_id(att_key_id: AttKeyId) -> Any:
    """The 158-byte key id, which must be Intel's default ECDSA one (as QE3 supports)."""
    raw = att_key_id.to_bytes()
    if raw != DEFAULT_ECDSA_ATT_KEY_ID.base.to_bytes():
        raise QuoteError(
            Quote3Error.UNSUPPORTED_ATT_KEY_ID,
            "Intel's QE3 supports only the default ECDSA P-256 attestation key id",
        )
    return _AttKeyId.from_buffer_copy(raw)


def _trim(quote: bytes) -> bytes:
    """The quote without the buffer's padding (``436 + signature_data_len``)."""
    length = _QUOTE_FIXED_SIZE + int.from_bytes(
        quote[_QUOTE_SIG_LEN_OFFSET:_QUOTE_FIXED_SIZE], "little"
    )
    if length > len(quote):
        raise QuoteError(
            Quote3Error.ERROR_UNEXPECTED,
            f"the library's quote claims {length} bytes in a {len(quote)}-byte buffer",
        )
    return quote[:length]


DCAP_BACKEND = BackendFactory(
    name="dcap",
    summary="Intel's DCAP quote library (libsgx_dcap_ql.so.1) on SGX hardware",
    missing_options=lambda options: [],
    create=lambda options: DcapBackend(options.dcap),
)

__all__ = [
    "DCAP_BACKEND",
    "DEFAULT_ENCLAVE_DEVICE",
    "DEFAULT_LIBRARY",
    "DEFAULT_PROVISION_DEVICE",
    "DEFAULT_QUEUE_DEPTH",
    "DEFAULT_QUEUE_TIMEOUT",
    "DEFAULT_QUOTE_PROVIDER",
    "DcapBackend",
    "DcapOptions",
    "DcapStartupError",
    "QeCallQueue",
]
