"""What the daemon answers to each decoded AESM request.

The equivalent of aesmd's ``AESMLogicWrapper`` plus its ECDSA bundle: size and
selection rules from :mod:`sgx_quote_helper.aesm` (spec section 6.2), quoting
through a :class:`~sgx_quote_helper.backends.QuoteBackend`, and the DCAP error
of the backend mapped to the AESM code on the wire (``quote3_to_aesm``,
section 12.4). The reply always has the request's message kind (section 14).
No I/O here: the server adapts sockets to :meth:`AesmLogic.handle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sgx_quote_helper._logging import RateLimitedLog
from sgx_quote_helper.aesm import (
    ATT_KEY_ID_BASE_SIZE,
    PUB_KEY_ID_SIZE,
    TARGET_INFO_SIZE,
    GetQuoteExRequest,
    GetQuoteExResponse,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    GetSupportedAttKeyIDNumRequest,
    GetSupportedAttKeyIDNumResponse,
    GetSupportedAttKeyIDsRequest,
    GetSupportedAttKeyIDsResponse,
    InitQuoteExRequest,
    InitQuoteExResponse,
    LegacyRequest,
    LegacyResponse,
    Request,
    Response,
    SelectAttKeyIDRequest,
    SelectAttKeyIDResponse,
    check_get_quote_ex,
    check_get_quote_size_ex,
    check_get_supported_att_key_id_num,
    check_get_supported_att_key_ids,
    check_init_quote_ex,
    check_select_att_key_id,
    select_att_key_id,
)
from sgx_quote_helper.backends import (
    BackendCall,
    BackendHealth,
    InitQuoteResult,
    QuoteBackend,
    QuoteError,
)
from sgx_quote_helper.sgx import AesmError, AttKeyId, QeReportInfo, Quote3Error, quote3_to_aesm

_log = logging.getLogger("sgx_quote_helper.service")
#: A v3 quote header's QE and PCE ISVSVN, little-endian u16 each (dcap-quote.md section 1).
_SVNS = slice(8, 12)


class AesmLogic:
    """Maps one decoded request to its response using a quoting backend.

    ``is_ready`` tells whether the backend has what quoting needs (the PCK
    chain); until then key-dependent calls answer AESM_NETWORK_ERROR (12), as
    aesmd does while its quote provider library cannot reach the PCCS.

    The attestation key is initialized once, off the request path, by
    :meth:`initialize` (the daemon's readiness task): an InitQuoteEx with
    ``b_pub_key_id = true`` is answered from that result instead of loading,
    unsealing and re-certifying the key for every client (DCAP clients send one
    before every quote). Should the backend later answer
    ATT_KEY_NOT_INITIALIZED (42), the cached result is dropped so that the
    client's next InitQuoteEx initializes again, which is the remedy clients
    apply (aesm-wire.md section 6.2).
    """

    def __init__(
        self,
        backend: QuoteBackend,
        is_ready: Callable[[], bool],
        *,
        log: RateLimitedLog | None = None,
        unannounced_marker: Path | None = None,
        on_quoted_svns: Callable[[int, int], None] | None = None,
    ) -> None:
        """``unannounced_marker``: a file that shares "generated, not yet announced"
        among the workers of one daemon (``--workers``): it exists while the key
        one worker generated at start-up waits for any client's InitQuoteEx.
        ``on_quoted_svns(qe_svn, pce_svn)``: called with the SVNs in the header
        of a served quote whenever they differ from the previous quote's, for a
        backend that cannot say which QE3/PCE it runs (Intel's library, an
        upstream AESM)."""
        self._backend = backend
        self._on_quoted_svns = on_quoted_svns
        self._quoted_svns = b""
        self._marker = unannounced_marker
        self._is_ready = is_ready
        # A client can make every request fail (a forged REPORT): its log
        # lines are rate-limited like every other line a peer can cause.
        self._log = log or RateLimitedLog(_log)
        self._blocking = {call: backend.may_block(call) for call in BackendCall}
        supported = backend.supported_att_key_ids()
        self._supported = [key_id.to_bytes() for key_id in supported]
        # The validators have matched the first 158 bytes against a supported
        # id before a backend call, so parsing is a lookup of the backend's own
        # key id object, done once here.
        self._key_ids = {key_id.base.to_bytes(): key_id.base for key_id in supported}
        self._initialized: dict[bytes, InitQuoteResult] = {}
        # What key-dependent requests answer until the daemon is ready: the
        # code of the last failed initialization (aesmd answers every call
        # with the library's current failure). Before one: a backend behind a
        # dependency that has not answered yet (an upstream AESM) is
        # unavailable; otherwise the PCK chain is missing, which aesmd reports
        # as a network error.
        self._not_ready_aesm = int(
            AesmError.SERVICE_UNAVAILABLE
            if isinstance(backend, BackendHealth)
            else AesmError.NETWORK_ERROR
        )
        # Keys the daemon generated before any client asked for one (see
        # initialize): on a fresh platform Intel's aesmd answers quote-size
        # and quote requests ATT_KEY_NOT_INITIALIZED until a client's
        # InitQuoteEx, because DCAP finds no key blob; so does this daemon.
        self._not_announced: set[bytes] = set()

    def initialize(self, att_key_id: AttKeyId, *, for_client: bool = False) -> InitQuoteResult:
        """Generate or load and certify the attestation key (blocking; may do I/O).

        The daemon calls it at start-up (``for_client=False``) so that it is
        ready before the first client and InitQuoteEx costs nothing; a key it
        generates then stays hidden from GetQuoteSizeEx and GetQuoteEx until a
        client's InitQuoteEx, as on Intel's aesmd. Raises :class:`QuoteError`;
        the daemon retries until it succeeds.
        """
        try:
            result = self._backend.init_quote(att_key_id)
        except QuoteError as exc:
            self._not_ready_aesm = _aesm_for(exc)
            raise
        base = att_key_id.to_bytes()
        first = base not in self._initialized
        self._initialized[base] = result
        marker = self._marker
        if for_client:
            self._announce(base)
        elif result.key_generated:
            self._not_announced.add(base)
            if marker is not None and first:
                marker.touch()
        elif marker is not None and first and marker.exists():
            self._not_announced.add(base)  # another worker generated it just now
        return result

    def _announce(self, base: bytes) -> None:
        self._not_announced.discard(base)
        if self._marker is not None:
            self._marker.unlink(missing_ok=True)

    @property
    def quotes_may_block(self) -> bool:
        """:meth:`may_block` of every GetQuoteEx request."""
        return self._blocking[BackendCall.GET_QUOTE]

    def may_block(self, request: Request) -> bool:
        """Whether answering ``request`` calls the backend in a way that may block.

        What the backend declares (``QuoteBackend.may_block``) for the call the
        request leads to: InitQuoteEx answered from the initialized key, and
        every request that never reaches the backend, do not block.
        """
        match request:
            case GetQuoteExRequest():
                return self._blocking[BackendCall.GET_QUOTE]
            case GetQuoteSizeExRequest():
                return self._blocking[BackendCall.QUOTE_SIZE]
            case InitQuoteExRequest(b_pub_key_id=True):
                return self._blocking[BackendCall.INIT_QUOTE] and (
                    request.att_key_id is None
                    or request.att_key_id[:ATT_KEY_ID_BASE_SIZE] not in self._initialized
                )
        return False

    def handle(self, request: Request) -> Response:
        match request:
            case GetQuoteExRequest():
                return self._get_quote_ex(request)
            case GetQuoteSizeExRequest():
                return self._get_quote_size_ex(request)
            case InitQuoteExRequest():
                return self._init_quote_ex(request)
            case SelectAttKeyIDRequest():
                code = check_select_att_key_id(request, self._supported)
                if code:
                    return SelectAttKeyIDResponse(error_code=code)
                return SelectAttKeyIDResponse(
                    error_code=0, selected_att_key_id=select_att_key_id(request, self._supported)
                )
            case GetSupportedAttKeyIDNumRequest():
                code = check_get_supported_att_key_id_num(len(self._supported))
                return GetSupportedAttKeyIDNumResponse(
                    error_code=code, att_key_id_num=len(self._supported)
                )
            case GetSupportedAttKeyIDsRequest():
                code = check_get_supported_att_key_ids(request, len(self._supported))
                if code:
                    return GetSupportedAttKeyIDsResponse(error_code=code)
                return GetSupportedAttKeyIDsResponse(
                    error_code=0, att_key_ids=b"".join(self._supported)
                )
            case LegacyRequest():
                # EPID and launch services are absent from an ECDSA-only aesmd.
                return LegacyResponse(kind=request.kind, error_code=AesmError.SERVICE_UNAVAILABLE)
        raise AssertionError(f"unhandled request type {type(request).__name__}")

    def _key_id(self, att_key_id: bytes | None) -> AttKeyId:
        return self._key_ids[_base(att_key_id)]

    def _not_announced_code(self, att_key_id: bytes | None) -> int:
        if self._not_announced and _base(att_key_id) in self._not_announced:
            if self._marker is not None and not self._marker.exists():
                self._not_announced.discard(_base(att_key_id))  # another worker announced it
                return 0
            return int(AesmError.ATT_KEY_NOT_INITIALIZED)
        return 0

    def _not_ready_code(self) -> int:
        return self._not_ready_aesm if not self._is_ready() else 0

    def _init_quote_ex(self, request: InitQuoteExRequest) -> InitQuoteExResponse:
        code = check_init_quote_ex(request, self._supported)
        if code:
            return InitQuoteExResponse(error_code=code, pub_key_id_size=PUB_KEY_ID_SIZE)
        if not request.b_pub_key_id:
            # Size query: zero target info, the size of an ECDSA id (section 6.2);
            # buf_size is ignored since DCAP sends garbage there (section 8).
            return InitQuoteExResponse(
                error_code=0, target_info=bytes(TARGET_INFO_SIZE), pub_key_id_size=PUB_KEY_ID_SIZE
            )
        code = self._not_ready_code()
        if code:
            return InitQuoteExResponse(error_code=code, pub_key_id_size=PUB_KEY_ID_SIZE)
        key_id = self._key_id(request.att_key_id)
        result = self._initialized.get(_base(request.att_key_id))
        if result is None:
            try:
                result = self.initialize(key_id, for_client=True)
            except QuoteError as exc:
                return InitQuoteExResponse(
                    error_code=self._aesm_code(exc, "InitQuoteEx"),
                    pub_key_id_size=PUB_KEY_ID_SIZE,
                )
        if self._not_announced:
            self._announce(_base(request.att_key_id))
        return InitQuoteExResponse(
            error_code=0,
            target_info=result.target_info.to_bytes(),
            pub_key_id_size=PUB_KEY_ID_SIZE,
            pub_key_id=result.pub_key_id,
        )

    def _get_quote_size_ex(self, request: GetQuoteSizeExRequest) -> GetQuoteSizeExResponse:
        code = (
            check_get_quote_size_ex(request, self._supported)
            or self._not_ready_code()
            or self._not_announced_code(request.att_key_id)
        )
        if code:
            return GetQuoteSizeExResponse(error_code=code, quote_size=0)
        key_id = self._key_id(request.att_key_id)
        try:
            size = self._backend.quote_size(key_id)
        except QuoteError as exc:
            return GetQuoteSizeExResponse(
                error_code=self._failed(exc, request.att_key_id, "GetQuoteSizeEx"), quote_size=0
            )
        return GetQuoteSizeExResponse(error_code=0, quote_size=size)

    def _get_quote_ex(self, request: GetQuoteExRequest) -> GetQuoteExResponse:
        # The request's qe_report_info is echoed whenever it was sent, even on
        # error (section 6.2); on success it carries the QE report.
        echo = request.qe_report_info
        code = (
            check_get_quote_ex(request, self._supported)
            or self._not_ready_code()
            or self._not_announced_code(request.att_key_id)
        )
        if code:
            return GetQuoteExResponse(error_code=code, qe_report_info=echo)
        qe_report_info = QeReportInfo.from_bytes(echo) if echo is not None else None
        key_id = self._key_id(request.att_key_id)
        try:
            # The buffer is checked before the REPORT, as aesmd with DCAP's
            # quote library does: a too-small buffer is AESM_PARAMETER_ERROR
            # (client: SGX_ERROR_INVALID_PARAMETER 0x0002) even when the
            # REPORT's MAC is wrong too.
            needed = self._backend.quote_size(key_id)
        except QuoteError as exc:
            return GetQuoteExResponse(
                error_code=self._failed(exc, request.att_key_id, "GetQuoteEx"),
                qe_report_info=echo,
            )
        if request.buf_size < needed:
            return GetQuoteExResponse(error_code=AesmError.PARAMETER_ERROR, qe_report_info=echo)
        try:
            result = self._backend.get_quote(request.report, key_id, qe_report_info)
        except QuoteError as exc:
            return GetQuoteExResponse(
                error_code=self._failed(exc, request.att_key_id, "GetQuoteEx"),
                qe_report_info=echo,
            )
        if len(result.quote) > request.buf_size:
            # sgx_ql_get_quote refuses a buffer that is too small.
            return GetQuoteExResponse(error_code=AesmError.PARAMETER_ERROR, qe_report_info=echo)
        # The reply carries the whole zero-padded buffer of buf_size bytes.
        quote = result.quote
        padding = request.buf_size - len(quote)
        if padding:
            quote += bytes(padding)
        filled = result.qe_report_info.to_bytes() if result.qe_report_info is not None else echo
        if self._on_quoted_svns is not None and quote[_SVNS] != self._quoted_svns:
            self._quoted_svns = svns = quote[_SVNS]
            self._on_quoted_svns(
                int.from_bytes(svns[:2], "little"), int.from_bytes(svns[2:], "little")
            )
        return GetQuoteExResponse(error_code=0, quote=quote, qe_report_info=filled)

    def _failed(self, exc: QuoteError, att_key_id: bytes | None, call: str) -> int:
        if exc.code == Quote3Error.ATT_KEY_NOT_INITIALIZED:
            # The client's remedy is a new InitQuoteEx, which must then really
            # initialize instead of answering from the cached result.
            self._initialized.pop(_base(att_key_id), None)
        return self._aesm_code(exc, call)

    def _aesm_code(self, exc: QuoteError, call: str) -> int:
        aesm = _aesm_for(exc)
        level = logging.INFO if exc.code == Quote3Error.INVALID_REPORT else logging.WARNING
        self._log.log(
            level,
            "request.failed",
            type=call,
            quote3_error=f"0x{exc.code:04X}",
            aesm_error=int(aesm),
            detail=exc.detail,
        )
        return int(aesm)


def _aesm_for(exc: QuoteError) -> int:
    """The wire code: the backend's own AESM code if it has one, else Intel's mapping."""
    return exc.aesm_code if exc.aesm_code is not None else int(quote3_to_aesm(exc.code))


def _base(att_key_id: bytes | None) -> bytes:
    """The compared part of a wire key id (``sgx_ql_att_key_id_t``, section 11.2)."""
    assert att_key_id is not None  # checked by the aesm validators
    return att_key_id[:ATT_KEY_ID_BASE_SIZE]
