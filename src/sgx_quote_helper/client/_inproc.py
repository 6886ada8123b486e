"""In-process quoting: the application hosts QE3 and the PCE itself.

This is DCAP's default mode (``SGX_AESM_ADDR`` absent). The process quotes
through the same :class:`~sgx_quote_helper.backends.QuoteBackend` code as the
daemon, with the QE/PCE versions bundled into this library
(``_version.QE_SVN``/``PCE_SVN``, overridable for simulation), which is the
point of the comparison in DESIGN.md section 1: an in-process application
keeps the QE it was built with until it is rebuilt.

It needs what the quote helper needs:

- the platform directory (the simulated ``/dev/sgx_enclave``);
- the provisioning secret (the simulated ``/dev/sgx_provision``), to run the
  PCE; without it :func:`in_process` fails with
  :class:`ProvisioningAccessDeniedError` (``SGX_ERROR_SERVICE_INVALID_PRIVILEGE``
  0x4004, DCAP ``SGX_QL_ERROR_INVALID_PRIVILEGE`` 0xE035) and suggests
  out-of-process quoting;
- a state directory for the sealed attestation key (default: per user,
  ``$XDG_STATE_HOME/sgx-quote-helper/in-process/<platform digest>``, see
  :func:`default_state_dir`);
- a PCK certificate source: a PCCS URL, or the embedded simulated
  manufacturer of the ``sim init`` directory the platform belongs to.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, TypeVar

from sgx_quote_helper._version import PCE_SVN, QE_SVN
from sgx_quote_helper.backends import (
    BackendInfo,
    PckSource,
    QuoteBackend,
    QuoteError,
    QuoteResult,
    create_backend,
    pck_source_for,
)
from sgx_quote_helper.client._errors import (
    AttestationKeyNotInitializedError,
    InvalidParameterError,
    NoDeviceError,
    PlatformCertUnavailableError,
    ProvisioningAccessDeniedError,
    ReportRejectedError,
    error_class_for,
)
from sgx_quote_helper.client._mode import (
    ENV_VAR,
    SOCKET_MOUNT_ADVICE,
    Mode,
    add_reset_hook,
    check_mode,
    fix_mode,
)
from sgx_quote_helper.client._quote_ex import BytesLike, bytes_arg
from sgx_quote_helper.client._quoter import (
    AsyncQuoter,
    QeReportMacCheck,
    Quoter,
    check_quote_args,
)
from sgx_quote_helper.client._quoter import verify_qe_report as _verify_qe_report
from sgx_quote_helper.errors import ParseError, UsageError
from sgx_quote_helper.platform import (
    PROVISIONING_SECRET_FILE,
    Platform,
    PlatformDirectoryError,
    ProvisioningAccessError,
)
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    AttKeyId,
    AttKeyIdExt,
    QeReportInfo,
    Quote3Error,
    QuoteExCall,
    Report,
    TargetInfo,
    aesm_to_sgx,
    quote3_to_aesm,
)

T = TypeVar("T")

_WHERE = "in-process"

_KEY_MADE_HINT = (
    "The attestation key was only initialized by this call: make the REPORT for the target "
    "info get_target_info returns."
)


def default_state_dir(platform_dir: str | os.PathLike[str]) -> Path:
    """Where an in-process QE keeps its sealed attestation key by default.

    Per user, so that an unprivileged application never needs to write into the
    platform directory, and per platform (a digest of its resolved path), so that
    two platforms never share a key: ``$XDG_STATE_HOME/sgx-quote-helper/in-process/
    <digest>`` with ``XDG_STATE_HOME`` defaulting to ``~/.local/state``; without a
    usable home directory, ``<tmp>/sgx-quote-helper-<uid>/in-process/<digest>``.
    It is never the daemon's state directory: two QEs must not share a key file.
    """
    digest = hashlib.sha256(os.fsencode(Path(platform_dir).resolve())).hexdigest()[:16]
    base_text = os.environ.get("XDG_STATE_HOME", "")
    if base_text and os.path.isabs(base_text):
        base = Path(base_text)
    else:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):
            home = None
        if home is None or not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
            base = Path(tempfile.gettempdir()) / f"sgx-quote-helper-{os.getuid()}"
            return base / "in-process" / digest
        base = home / ".local" / "state"
    return base / "sgx-quote-helper" / "in-process" / digest


def _key_base(att_key_id: AttKeyIdExt | BytesLike) -> AttKeyId:
    if isinstance(att_key_id, AttKeyIdExt):
        return att_key_id.base
    raw = bytes_arg(att_key_id, AttKeyIdExt.LAYOUT.size, "att_key_id", QuoteExCall.INIT_QUOTE_EX)
    try:
        return AttKeyIdExt.from_bytes(raw).base
    except ParseError as exc:
        raise InvalidParameterError(f"att_key_id: {exc}") from exc


class InProcessQuoter(Quoter):
    """Quotes with a QE3/PCE hosted in this process (DCAP's in-process mode).

    Usually made by :func:`~sgx_quote_helper.client.in_process`; making one
    fixes the process to in-process quoting. Thread-safe.
    """

    def __init__(
        self,
        backend: QuoteBackend,
        *,
        att_key_id: AttKeyIdExt | bytes = DEFAULT_ECDSA_ATT_KEY_ID,
        description: str = _WHERE,
        _entry_point: str | None = None,
    ) -> None:
        by = _entry_point or "InProcessQuoter()"
        check_mode(Mode.IN_PROCESS, by)
        self.backend = backend
        self._key = _key_base(att_key_id)
        self._description = description
        self._closed = False
        fix_mode(Mode.IN_PROCESS, by)

    @property
    def mode(self) -> Mode:
        return Mode.IN_PROCESS

    @property
    def info(self) -> BackendInfo:
        """The QE/PCE versions this process hosts (bundled into the library)."""
        return self.backend.info()

    @property
    def closed(self) -> bool:
        return self._closed

    def describe(self) -> str:
        info = self.info
        return f"{self._description} (QE3 ISVSVN {info.qe_svn}, PCE ISVSVN {info.pce_svn})"

    def __repr__(self) -> str:
        return f"InProcessQuoter({self._description!r})"

    def _call(self, call: QuoteExCall, action: Callable[[], T]) -> T:
        try:
            return action()
        except QuoteError as exc:
            raise _from_quote_error(exc, call, self.describe()) from exc

    def get_target_info(self) -> TargetInfo:
        """Initialize the attestation key (if needed) and return the QE's target info."""
        return self._call(
            QuoteExCall.INIT_QUOTE_EX, lambda: self.backend.init_quote(self._key).target_info
        )

    def _with_key(self, call: QuoteExCall, action: Callable[[], T], rejected_hint: str = "") -> T:
        """``action``; if the key was not initialized, initialize it and try once more.

        DCAP needs ``sgx_qe_get_target_info`` first; the key is made on demand
        here. A REPORT rejected on the second try gets ``rejected_hint``.
        """
        try:
            return self._call(call, action)
        except AttestationKeyNotInitializedError:
            self.get_target_info()
            try:
                return self._call(call, action)
            except ReportRejectedError as exc:
                if rejected_hint:
                    exc.hints = (rejected_hint, *exc.hints)
                raise

    def get_quote_size(self) -> int:
        return self._with_key(
            QuoteExCall.GET_QUOTE_SIZE_EX, lambda: self.backend.quote_size(self._key)
        )

    def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult:
        """The quote and the filled-in QE report info (when one was given)."""
        info = check_quote_args(qe_report_info, verify_qe_report)
        parsed = _report_arg(report)
        result = self._with_key(
            QuoteExCall.GET_QUOTE_EX,
            lambda: self.backend.get_quote(parsed, self._key, info),
            rejected_hint=_KEY_MADE_HINT,
        )
        if verify_qe_report and info is not None:
            _verify_qe_report(info, result.qe_report_info, result.quote, check_qe_report_mac)
        return result

    def close(self) -> None:
        """Release the hosted enclaves; the sealed attestation key stays on disk."""
        if not self._closed:
            self._closed = True
            self.backend.close()


class AsyncInProcessQuoter(AsyncQuoter):
    """The asyncio face of an :class:`InProcessQuoter`: each call runs in a worker thread."""

    def __init__(self, quoter: InProcessQuoter) -> None:
        self.sync = quoter

    @property
    def mode(self) -> Mode:
        return Mode.IN_PROCESS

    @property
    def info(self) -> BackendInfo:
        return self.sync.info

    def describe(self) -> str:
        return self.sync.describe()

    def __repr__(self) -> str:
        return f"AsyncInProcessQuoter({self.sync!r})"

    async def get_target_info(self) -> TargetInfo:
        return await asyncio.to_thread(self.sync.get_target_info)

    async def get_quote_size(self) -> int:
        return await asyncio.to_thread(self.sync.get_quote_size)

    async def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult:
        return await asyncio.to_thread(
            self.sync.get_quote_result,
            report,
            qe_report_info=qe_report_info,
            verify_qe_report=verify_qe_report,
            check_qe_report_mac=check_qe_report_mac,
        )

    async def aclose(self) -> None:
        """The shared in-process quoter stays open for the rest of the process."""


def _report_arg(report: Report | BytesLike) -> bytes:
    """The raw 432-byte REPORT the backend takes, refusing anything else."""
    if isinstance(report, Report):
        return report.to_bytes()
    # The same check as out of process: any bytes-like of 432 bytes, converted once.
    return bytes_arg(report, Report.LAYOUT.size, "report", QuoteExCall.GET_QUOTE_EX)


def _from_quote_error(exc: QuoteError, call: QuoteExCall, where: str) -> Exception:
    """The client error for a backend failure, with the status out-of-process would give.

    ``sgx_status`` is what the same failure becomes on the wire (``quote3_to_aesm``
    then ``aesm_to_sgx``), so an application sees one status in both modes;
    ``quote3_error`` stays the real DCAP code, as DCAP's in-process library
    returns it.
    """
    try:
        quote3 = Quote3Error(exc.code)
    except ValueError:
        quote3 = Quote3Error.ERROR_UNEXPECTED
    status = aesm_to_sgx(quote3_to_aesm(quote3), call)
    return error_class_for(status)(
        f"the in-process QE3/PCE failed: {exc.detail}",
        sgx_status=status,
        quote3_error=quote3,
        call=call,
        where=where,
        hints=exc.hints,
    )


# ---- in_process(): building and sharing the in-process QE ------------------------------------

_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple[object, ...], InProcessQuoter] = {}


def _clear_cache() -> None:
    with _CACHE_LOCK:
        quoters = list(_CACHE.values())
        _CACHE.clear()
    for quoter in quoters:
        quoter.close()


add_reset_hook(_clear_cache)


def _provisioning_refused(platform_dir: Path) -> Exception:
    secret = platform_dir / PROVISIONING_SECRET_FILE
    return ProvisioningAccessDeniedError(
        f"in-process quoting needs provisioning access, and this process (uid {os.getuid()}, "
        f"gid {os.getgid()}) has none: it cannot read {secret}, the simulated "
        "/dev/sgx_provision that the PCE needs to derive the PCK key",
        where=_WHERE,
        hints=[
            "Provisioning access belongs to the quote helper only. Quote out of process "
            f"instead: start the application with {ENV_VAR}=1 (or {ENV_VAR}=unix:/path/to/"
            "aesm.socket) and run the quote helper (sgx-quote-helper serve) on the node.",
            SOCKET_MOUNT_ADVICE,
            "To quote in process anyway, give this process read access to the provisioning "
            "secret, as /dev/sgx_provision access would be granted (its owner, or its "
            "provisioning group with mode 0640).",
        ],
    )


def _platform_unusable(platform_dir: Path, exc: PlatformDirectoryError) -> Exception:
    return NoDeviceError(
        f"the simulated SGX platform at {platform_dir} is unusable: {exc}",
        where=_WHERE,
        hints=[
            "In-process quoting needs the platform directory (the simulated /dev/sgx_enclave "
            "and /dev/sgx_provision): pass the `platform` directory inside a `sim init` "
            "directory, or create one with `sgx-quote-helper sim init DIR`."
        ],
    )


class InProcessOptions(TypedDict, total=False):
    """The keyword options of :func:`in_process`, which the other entry points pass on.

    Their meanings and defaults are :func:`in_process`'s.
    """

    state_dir: str | os.PathLike[str] | None
    pccs_url: str | None
    pccs_insecure: bool
    pccs_ca_file: str | os.PathLike[str] | None
    pck_source: PckSource | None
    qe_svn: int
    pce_svn: int


def in_process(
    platform_dir: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    pccs_url: str | None = None,
    pccs_insecure: bool = False,
    pccs_ca_file: str | os.PathLike[str] | None = None,
    pck_source: PckSource | None = None,
    qe_svn: int = QE_SVN,
    pce_svn: int = PCE_SVN,
    _entry_point: str = "in_process()",
) -> InProcessQuoter:
    """The process's in-process quoter for ``platform_dir`` (made once, then shared).

    Fixes the process to in-process quoting on success; raises
    :class:`ModeConflictError` if it already quotes out of process, and
    :class:`ProvisioningAccessDeniedError` if it may not read the provisioning
    secret. ``qe_svn``/``pce_svn`` are the QE/PCE versions bundled into this
    library; simulation may override them. The PCK certificate comes from
    ``pck_source``, else the PCCS at ``pccs_url``, else the embedded simulated
    manufacturer of the ``sim init`` directory around ``platform_dir``.
    """
    check_mode(Mode.IN_PROCESS, _entry_point)
    platform_path = Path(platform_dir)
    state = Path(state_dir) if state_dir is not None else default_state_dir(platform_path)
    key = (
        str(platform_path.resolve()),
        str(state),
        pccs_url,
        id(pck_source) if pck_source is not None else None,
        qe_svn,
        pce_svn,
    )
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and not cached.closed:
            return cached

    _check_platform(platform_path)  # 1. with provisioning access: fail before anything else
    if pck_source is None:  # 2. where the PCK certificate comes from
        pck_source = _pck_source(platform_path, state, pccs_url, pccs_insecure, pccs_ca_file)
    # 3. The QE3 and PCE, hosted here through the daemon's backend code.
    try:
        backend = create_backend(
            "sim",
            platform_dir=platform_path,
            state_dir=state,
            pck_source=pck_source,
            qe_svn=qe_svn,
            pce_svn=pce_svn,
        )
    except ProvisioningAccessError as exc:
        raise _provisioning_refused(platform_path) from exc
    except PlatformDirectoryError as exc:
        raise _platform_unusable(platform_path, exc) from exc
    quoter = InProcessQuoter(
        backend, description=f"in-process on platform {platform_path}", _entry_point=_entry_point
    )
    with _CACHE_LOCK:
        existing = _CACHE.get(key)
        if existing is not None and not existing.closed:
            backend.close()
            return existing
        _CACHE[key] = quoter
    return quoter


def _check_platform(platform_path: Path) -> None:
    try:
        Platform.load(platform_path, need_provisioning=True)
    except ProvisioningAccessError as exc:
        raise _provisioning_refused(platform_path) from exc
    except PlatformDirectoryError as exc:
        raise _platform_unusable(platform_path, exc) from exc


def _pck_source(
    platform_path: Path,
    state: Path,
    pccs_url: str | None,
    pccs_insecure: bool,
    pccs_ca_file: str | os.PathLike[str] | None,
) -> PckSource:
    """A PCCS at ``pccs_url``, else the embedded manufacturer around ``platform_path``."""
    try:
        return pck_source_for(
            pccs_url=pccs_url,
            platform_dir=platform_path,
            cache_dir=state / "pck-cache",
            pccs_insecure=pccs_insecure,
            pccs_ca_file=Path(pccs_ca_file) if pccs_ca_file is not None else None,
        )
    except UsageError as exc:
        raise UsageError(
            "in-process quoting needs a PCK certificate source: pass pccs_url= (CLI "
            "--pccs-url), or use a platform directory inside a `sim init` directory "
            f"(its manufacturer in DIR/pcs). {exc}"
        ) from exc
    except OSError as exc:
        raise PlatformCertUnavailableError(
            f"cannot load the embedded simulated manufacturer for {platform_path}: {exc}",
            where=_WHERE,
            hints=["Pass pccs_url= to get the PCK certificate from a PCCS instead."],
        ) from exc
