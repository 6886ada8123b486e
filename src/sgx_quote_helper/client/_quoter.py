"""The quoter: the high-level API in DCAP's shape (target info, quote size, quote).

(Not the ``dcap`` backend: this is a client of any AESM-compatible service.)

``get_target_info``, ``get_quote_size`` and ``get_quote`` do what DCAP's
``sgx_qe_get_target_info``, ``sgx_qe_get_quote_size`` and ``sgx_qe_get_quote``
do out of process (spec aesm-wire.md sections 8 and 9), plus what careful
clients add:

- the two-step init: InitQuoteEx as a size query, ``pub_key_id_size`` must be
  32, then InitQuoteEx with a 32-byte buffer;
- ``ATT_KEY_NOT_INITIALIZED`` (the daemon restarted or rotated its key): init
  again and retry once, as Gramine does (section 6.2);
- ``BUSY``: a few retries with exponential back-off, bounded;
- the quote is trimmed from the zero-padded buffer to its real size;
- optionally, the QE report returned in ``qe_report_info`` is checked to vouch
  for this quote (``report_data[:32] == SHA256(nonce || quote)``).

The flows are sans-I/O and shared by :class:`OutOfProcessQuoter` (blocking)
and :class:`AsyncOutOfProcessQuoter` (asyncio).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeVar, runtime_checkable

from sgx_quote_helper.aesm import PUB_KEY_ID_SIZE, QE_REPORT_INFO_SIZE
from sgx_quote_helper.backends import QuoteResult
from sgx_quote_helper.client._errors import (
    AttestationKeyNotInitializedError,
    InvalidParameterError,
    QeReportVerificationError,
    ReportRejectedError,
    ServiceBusyError,
    UnexpectedError,
)
from sgx_quote_helper.client._mode import Mode, check_mode, fix_mode
from sgx_quote_helper.client._quote_ex import (
    AesmClient,
    AsyncAesmClient,
    AttKeyIdLike,
    bytes_arg,
    get_quote_ex_flow,
    get_quote_size_ex_flow,
    init_quote_ex_flow,
    malformed_quote,
)
from sgx_quote_helper.client._transport import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    Flow,
    Sleep,
    run_flow,
    run_flow_async,
)
from sgx_quote_helper.errors import ParseError, SgxQuoteHelperError
from sgx_quote_helper.platform import EnclaveIdentity, SimulatedCpu
from sgx_quote_helper.sgx import (
    DEFAULT_ECDSA_ATT_KEY_ID,
    QUOTE_MIN_SIZE_V3,
    QeReportInfo,
    QuoteExCall,
    Report,
    SgxStatus,
    TargetInfo,
    encoded_quote_size,
)

T = TypeVar("T")


#: Checks the MAC of the QE's REPORT for the application enclave; raises if bad.
QeReportMacCheck = Callable[[Report], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How the high-level API retries ``SGX_ERROR_BUSY``: bounded exponential back-off.

    With the defaults a call is tried 4 times, sleeping 0.1, 0.2 and 0.4 s
    (0.7 s at most) before giving up with :class:`ServiceBusyError`.
    """

    busy_attempts: int = 4
    busy_initial_delay: float = 0.1
    busy_max_delay: float = 1.0

    def __post_init__(self) -> None:
        attempts, delays = self.busy_attempts, (self.busy_initial_delay, self.busy_max_delay)
        if (
            isinstance(attempts, bool)
            or not isinstance(attempts, int)
            or attempts < 1
            or not all(_is_delay(delay) for delay in delays)
        ):
            raise InvalidParameterError(
                "a RetryPolicy needs an int busy_attempts >= 1 and delays from 0 to "
                f"{MAX_TIMEOUT:.3f} seconds, got {self!r}"
            )


def _is_delay(value: object) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and 0 <= value <= MAX_TIMEOUT  # type: ignore[operator]


# ---- pure helpers ---------------------------------------------------------------------------


def trim_quote(buffer: bytes) -> bytes:
    """The real quote at the start of a zero-padded quote buffer (spec section 6.2).

    Its size comes from the quote's own fixed part (``sgx.encoded_quote_size``),
    as Gramine recomputes it. A size below the smallest ECDSA quote
    (``QUOTE_MIN_SIZE_V3``, 1020 bytes: no signature data fits in less) or
    beyond the buffer is a malformed quote (:class:`UnexpectedError`, 0x0001).
    """
    try:
        size = encoded_quote_size(buffer)
    except ParseError as exc:
        raise malformed_quote(f"no SGX quote this client reads: {exc}") from None
    if size > len(buffer):
        raise malformed_quote(f"the quote claims {size} bytes but the buffer holds {len(buffer)}")
    if size < QUOTE_MIN_SIZE_V3:
        raise malformed_quote(
            f"the quote claims {size} bytes, less than the smallest ECDSA quote "
            f"({QUOTE_MIN_SIZE_V3} bytes)"
        )
    return buffer[:size]


def verify_qe_report(
    sent: QeReportInfo,
    returned: QeReportInfo | None,
    quote: bytes,
    check_mac: QeReportMacCheck | None = None,
) -> None:
    """Check that the QE report returned with ``qe_report_info`` vouches for ``quote``.

    1. The service returned the filled-in ``qe_report_info``.
    2. The nonce and the application's target info come back unchanged.
    3. ``report_data`` is ``SHA256(nonce || quote) || 0^32``: the QE made this
       report for this very quote and this request's nonce.
    4. With ``check_mac``: the report's MAC verifies. Only the application
       enclave can do that (``sgx_verify_report``); in simulation the
       platform's CPU can stand in for it.
    """
    where = QuoteExCall.GET_QUOTE_EX

    def fail(message: str, hint: str, status: SgxStatus = SgxStatus.ERROR_UNEXPECTED) -> NoReturn:
        raise QeReportVerificationError(message, sgx_status=status, call=where, hints=[hint])

    if returned is None:  # 1
        fail(
            "the service returned no qe_report_info",
            "Only a service that fills in the QE report can be checked; is it AESM-compatible?",
        )
    if (
        returned.nonce != sent.nonce
        or returned.app_enclave_target_info != sent.app_enclave_target_info
    ):
        fail(  # 2
            "the qe_report_info came back with another nonce or target info",
            "The reply does not belong to this request: check what sits on the socket.",
        )
    report_data = returned.qe_report.body.report_data
    expected = hashlib.sha256(sent.nonce + quote).digest()
    if not hmac.compare_digest(report_data[:32], expected) or any(report_data[32:]):  # 3
        fail(
            "the QE report's report_data is not SHA256(nonce || quote): it does not vouch for "
            "this quote",
            "The quote or the QE report was altered, or they come from different requests; "
            "do not use this quote.",
        )
    if check_mac is not None:  # 4
        try:
            check_mac(returned.qe_report)
        except SgxQuoteHelperError as exc:
            fail(
                f"the QE report's MAC does not verify: {exc}",
                "The QE report was not made by the QE on this platform for this application "
                "enclave's target info (or was altered).",
                SgxStatus.ERROR_MAC_MISMATCH,
            )


def sim_qe_report_mac_check(cpu: SimulatedCpu, app_enclave: EnclaveIdentity) -> QeReportMacCheck:
    """A :data:`QeReportMacCheck` for simulation: the platform's CPU checks the MAC.

    On hardware only the application enclave can do this (``sgx_verify_report``
    inside it); the simulated CPU stands in for the enclave named by
    ``app_enclave``, whose target info must be the one in ``qe_report_info``.
    """
    verifier = cpu.report_verifier(app_enclave)

    def check(report: Report) -> None:
        verifier.verify(report.to_bytes())

    return check


def _qe_report_info_arg(value: QeReportInfo | bytes | None) -> QeReportInfo | None:
    if value is None or isinstance(value, QeReportInfo):
        return value
    raw = bytes_arg(value, QE_REPORT_INFO_SIZE, "qe_report_info", QuoteExCall.GET_QUOTE_EX)
    return QeReportInfo.from_bytes(raw)


def check_quote_args(
    qe_report_info: QeReportInfo | bytes | None, verify_qe_report: bool
) -> QeReportInfo | None:
    """Validate the optional arguments of ``get_quote`` (shared by every quoter)."""
    info = _qe_report_info_arg(qe_report_info)
    if verify_qe_report and info is None:
        raise InvalidParameterError(
            "verify_qe_report needs a qe_report_info (nonce and the application enclave's "
            "target info) to check the QE report against",
            call=QuoteExCall.GET_QUOTE_EX,
        )
    return info


# ---- flows ----------------------------------------------------------------------------------


def _busy_retry(make: Callable[[], Flow[T]], policy: RetryPolicy) -> Flow[T]:
    delay = policy.busy_initial_delay
    for attempt in range(1, policy.busy_attempts + 1):
        try:
            return (yield from make())
        except ServiceBusyError:
            if attempt == policy.busy_attempts:
                raise
        yield Sleep(delay)
        delay = min(delay * 2, policy.busy_max_delay)
    raise AssertionError("unreachable")


def target_info_flow(key: AttKeyIdLike, policy: RetryPolicy, timeout: int) -> Flow[TargetInfo]:
    """DCAP's ``sgx_qe_get_target_info`` out of process: the two-step InitQuoteEx."""
    size_query = yield from _busy_retry(
        lambda: init_quote_ex_flow(key, pub_key_id=False, timeout=timeout), policy
    )
    if size_query.pub_key_id_size != PUB_KEY_ID_SIZE:
        raise UnexpectedError(
            f"the service announced a {size_query.pub_key_id_size}-byte pub_key_id; an ECDSA "
            f"attestation key id is {PUB_KEY_ID_SIZE} (DCAP refuses the same way)",
            call=QuoteExCall.INIT_QUOTE_EX,
        )
    real = yield from _busy_retry(
        lambda: init_quote_ex_flow(
            key, pub_key_id=True, pub_key_id_size=PUB_KEY_ID_SIZE, timeout=timeout
        ),
        policy,
    )
    return real.target_info


def _size_flow(key: AttKeyIdLike, policy: RetryPolicy, timeout: int) -> Flow[int]:
    size = yield from _busy_retry(lambda: get_quote_size_ex_flow(key, timeout=timeout), policy)
    if size == 0:
        raise UnexpectedError(
            "the service reported a quote size of 0", call=QuoteExCall.GET_QUOTE_SIZE_EX
        )
    return size


def quote_size_flow(key: AttKeyIdLike, policy: RetryPolicy, timeout: int) -> Flow[int]:
    """``sgx_qe_get_quote_size``, re-initializing once if the key is gone."""
    try:
        return (yield from _size_flow(key, policy, timeout))
    except AttestationKeyNotInitializedError:
        yield from target_info_flow(key, policy, timeout)
        return (yield from _size_flow(key, policy, timeout))


_REINIT_HINT = (
    "The service had lost its attestation key during this call and it was initialized "
    "again; if the daemon was upgraded meanwhile, its QE's target info changed: call "
    "get_target_info, make a new REPORT for it and quote that."
)


def quote_flow(
    report: Report | bytes,
    key: AttKeyIdLike,
    qe_report_info: QeReportInfo | None,
    verify: bool,
    check_mac: QeReportMacCheck | None,
    policy: RetryPolicy,
    timeout: int,
) -> Flow[QuoteResult]:
    """``sgx_qe_get_quote`` plus the retries, trimming and QE report check."""

    def attempt(size: int) -> Flow[QuoteResult]:
        result = yield from _busy_retry(
            lambda: get_quote_ex_flow(report, key, size, qe_report_info, timeout=timeout), policy
        )
        info = None
        if result.qe_report_info is not None:
            info = QeReportInfo.from_bytes(result.qe_report_info)
        return QuoteResult(trim_quote(result.quote), info)

    size = yield from quote_size_flow(key, policy, timeout)
    try:
        outcome = yield from attempt(size)
    except AttestationKeyNotInitializedError:
        yield from target_info_flow(key, policy, timeout)
        size = yield from _size_flow(key, policy, timeout)
        try:
            outcome = yield from attempt(size)
        except ReportRejectedError as exc:
            exc.hints = (_REINIT_HINT, *exc.hints)
            raise
    if verify and qe_report_info is not None:
        verify_qe_report(qe_report_info, outcome.qe_report_info, outcome.quote, check_mac)
    return outcome


# ---- the quoter interface --------------------------------------------------------------------


@runtime_checkable
class Quoter(Protocol):
    """What every blocking quoter offers, in process or out of process."""

    @property
    def mode(self) -> Mode: ...

    def describe(self) -> str:
        """One line for logs: the mode and where quoting happens."""
        ...

    def get_target_info(self) -> TargetInfo: ...

    def get_quote_size(self) -> int: ...

    def get_quote(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> bytes:
        """The quote of ``report`` (a REPORT targeted at the QE), exactly its size.

        Quoters that subclass this protocol inherit this: the quote of
        :meth:`get_quote_result`.
        """
        return self.get_quote_result(
            report,
            qe_report_info=qe_report_info,
            verify_qe_report=verify_qe_report,
            check_qe_report_mac=check_qe_report_mac,
        ).quote

    def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult: ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncQuoter(Protocol):
    """The asyncio counterpart of :class:`Quoter`."""

    @property
    def mode(self) -> Mode: ...

    def describe(self) -> str: ...

    async def get_target_info(self) -> TargetInfo: ...

    async def get_quote_size(self) -> int: ...

    async def get_quote(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> bytes:
        """The quote of :meth:`get_quote_result` (inherited by subclasses)."""
        result = await self.get_quote_result(
            report,
            qe_report_info=qe_report_info,
            verify_qe_report=verify_qe_report,
            check_qe_report_mac=check_qe_report_mac,
        )
        return result.quote

    async def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult: ...

    async def aclose(self) -> None: ...


class _OutOfProcessBase:
    """What the blocking and asyncio out-of-process quoters share; they only add the I/O."""

    _entry_point = "OutOfProcessQuoter()"
    client: AesmClient | AsyncAesmClient

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        att_key_id: AttKeyIdLike = DEFAULT_ECDSA_ATT_KEY_ID,
        retry: RetryPolicy | None = None,
        _entry_point: str | None = None,
    ) -> None:
        by = _entry_point or self._entry_point
        check_mode(Mode.OUT_OF_PROCESS, by)
        self._key = att_key_id
        self._retry = retry or RetryPolicy()
        self._make_client(socket_path, timeout)
        fix_mode(Mode.OUT_OF_PROCESS, by)

    def _make_client(self, socket_path: str | os.PathLike[str] | None, timeout: float) -> None:
        raise NotImplementedError

    @property
    def mode(self) -> Mode:
        return Mode.OUT_OF_PROCESS

    @property
    def socket_path(self) -> str:
        return self.client.socket_path

    def describe(self) -> str:
        return f"out-of-process via {self.client.socket_path}"

    # The flows each call runs; the subclasses carry them out with their I/O.

    def _target_info_flow(self) -> Flow[TargetInfo]:
        return target_info_flow(self._key, self._retry, self.client.timeout_ms)

    def _quote_size_flow(self) -> Flow[int]:
        return quote_size_flow(self._key, self._retry, self.client.timeout_ms)

    def _quote_flow(
        self,
        report: Report | bytes,
        qe_report_info: QeReportInfo | bytes | None,
        verify_qe_report: bool,
        check_qe_report_mac: QeReportMacCheck | None,
    ) -> Flow[QuoteResult]:
        info = check_quote_args(qe_report_info, verify_qe_report)
        return quote_flow(
            report,
            self._key,
            info,
            verify_qe_report,
            check_qe_report_mac,
            self._retry,
            self.client.timeout_ms,
        )


class OutOfProcessQuoter(_OutOfProcessBase, Quoter):
    """Quotes through the quote helper (or aesmd) on the AESM socket, blocking.

    Making one fixes the process to out-of-process quoting (see
    :func:`~sgx_quote_helper.client.out_of_process`).
    """

    client: AesmClient

    def _make_client(self, socket_path: str | os.PathLike[str] | None, timeout: float) -> None:
        self.client = AesmClient(socket_path, timeout)

    def __repr__(self) -> str:
        return f"OutOfProcessQuoter({self.client.socket_path!r})"

    def _run(self, flow: Flow[T]) -> T:
        return run_flow(flow, self.client.transport)

    def get_target_info(self) -> TargetInfo:
        """The QE's target info, to make the application REPORT for (EREPORT)."""
        return self._run(self._target_info_flow())

    def get_quote_size(self) -> int:
        return self._run(self._quote_size_flow())

    def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult:
        """The quote and, if ``qe_report_info`` was given, the filled-in QE report info."""
        flow = self._quote_flow(report, qe_report_info, verify_qe_report, check_qe_report_mac)
        return self._run(flow)

    def close(self) -> None:
        """Nothing to release: every call uses its own connection."""


class AsyncOutOfProcessQuoter(_OutOfProcessBase, AsyncQuoter):
    """The asyncio twin of :class:`OutOfProcessQuoter`."""

    _entry_point = "AsyncOutOfProcessQuoter()"
    client: AsyncAesmClient

    def _make_client(self, socket_path: str | os.PathLike[str] | None, timeout: float) -> None:
        self.client = AsyncAesmClient(socket_path, timeout)

    def __repr__(self) -> str:
        return f"AsyncOutOfProcessQuoter({self.client.socket_path!r})"

    async def _run(self, flow: Flow[T]) -> T:
        return await run_flow_async(flow, self.client.transport)

    async def get_target_info(self) -> TargetInfo:
        return await self._run(self._target_info_flow())

    async def get_quote_size(self) -> int:
        return await self._run(self._quote_size_flow())

    async def get_quote_result(
        self,
        report: Report | bytes,
        *,
        qe_report_info: QeReportInfo | bytes | None = None,
        verify_qe_report: bool = False,
        check_qe_report_mac: QeReportMacCheck | None = None,
    ) -> QuoteResult:
        flow = self._quote_flow(report, qe_report_info, verify_qe_report, check_qe_report_mac)
        return await self._run(flow)

    async def aclose(self) -> None:
        """Nothing to release: every call uses its own connection."""
