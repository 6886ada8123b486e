"""Fuzz targets: one function of bytes per decoder, and the property they share.

Property: whatever the bytes, a target returns or raises the project's own
error (:class:`SgxQuoteHelperError`); any other exception is a finding. Hangs
are findings too (atheris's ``-timeout``; the mutation engine reports the
slowest input). Each target also names its seeds: real messages (the Intel
quote and collateral of ``tests/assets``, frames of every AESM request type
as Intel's client writes them, PCCS queries of a registered platform).

The targets need a simulated platform for the daemon logic and the PCCS; it
is created once per process in a temporary directory (``sim init``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sgx_quote_helper.errors import SgxQuoteHelperError

ASSETS = Path(__file__).resolve().parent.parent / "tests" / "assets"
INTEL_QUOTE = ASSETS / "intel-sgx-quote-v3.bin"
INTEL_COLLATERAL = ASSETS / "intel-sgx-quote-v3.collateral.json"
#: Inside the validity window of the asset collateral.
VERIFY_AT = datetime(2025, 7, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    run: Callable[[bytes], None]
    seeds: Callable[[], Sequence[bytes]]
    #: The longest input worth generating (atheris ``-max_len``): what the code
    #: under test can receive through its real front end.
    max_len: int = 65536


# ---- shared fixtures, built once per process ----


@functools.cache
def sim_dir() -> Path:
    """A `sim init` directory for the process (removed with the temp dir at exit)."""
    from sgx_quote_helper._cli import main

    holder = tempfile.TemporaryDirectory(prefix="sqh-fuzz-")
    _keep.append(holder)
    path = Path(holder.name) / "sim"
    with contextlib.redirect_stdout(io.StringIO()):
        if main(["sim", "init", str(path)]) != 0:
            raise RuntimeError("sim init failed")
    return path


_keep: list[Any] = []


@functools.cache
def _logic() -> Any:
    """The daemon's request logic over a ready simulated backend."""
    from sgx_quote_helper.backends import SimBackend, pck_source_for
    from sgx_quote_helper.service._logic import AesmLogic
    from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID

    platform = sim_dir() / "platform"
    source = pck_source_for(pccs_url=None, platform_dir=platform, cache_dir=None)
    backend = SimBackend(platform, sim_dir() / "state", pck_source=source)
    logic = AesmLogic(backend, lambda: True)
    logic.initialize(DEFAULT_ECDSA_ATT_KEY_ID.base)
    return logic


# ---- 1. AESM frames: decoder, request decoding, the daemon's logic, the reply ----


def aesm_frames(data: bytes) -> None:
    from sgx_quote_helper.aesm import (
        MAX_REQUEST_BODY_SIZE,
        CloseWithoutReply,
        ConnectionClosed,
        FrameDecoder,
        MissingRequiredField,
        NeedData,
        decode_request,
        error_response,
        frame_response,
    )
    from sgx_quote_helper.sgx import AesmError

    decoder = FrameDecoder(max_body_size=MAX_REQUEST_BODY_SIZE)
    chunks = _cut(data)
    logic = _logic()
    try:
        for chunk in chunks:
            decoder.receive_data(chunk)
            while True:
                event = decoder.next_frame()
                if isinstance(event, NeedData | ConnectionClosed):
                    break
                request = decode_request(event)
                if isinstance(request, CloseWithoutReply):
                    return
                if isinstance(request, MissingRequiredField):
                    frame_response(
                        error_response(request.kind, AesmError.UNEXPECTED_ERROR), request=request
                    )
                    continue
                frame_response(logic.handle(request), request=request)
        decoder.receive_data(b"")
        decoder.next_frame()
    except SgxQuoteHelperError:
        pass


#: How many leading bytes :func:`_cut` delivers in pieces of 1 to 7 bytes.
_FINE_CUT = 64
#: At most this many further pieces for the rest of the stream.
_COARSE_PIECES = 32


def _cut(data: bytes) -> list[bytes]:
    """The stream after the first byte, cut as TCP may cut it.

    The first byte chooses a step of 1 to 7 bytes. The first 64 bytes or so (the first
    frame header and the start of its body, or several short frames) arrive in
    pieces of that step; the rest in at most 32 equal pieces, no smaller than the
    step, so later headers and bodies are still split at arbitrary offsets. (Cutting
    a 64 KiB stream into single bytes took 65,536 decoder calls per input and made
    this target several times slower than the others without reaching other code.)
    """
    step = (data[0] % 7 + 1) if data else 1
    stream = data[1:]
    fine_end = -(-_FINE_CUT // step) * step  # the first cut at or after 64 bytes
    chunks = [stream[i : i + step] for i in range(0, min(len(stream), fine_end), step)]
    rest = stream[fine_end:]
    if rest:
        coarse = max(step, -(-len(rest) // _COARSE_PIECES))
        chunks += [rest[i : i + coarse] for i in range(0, len(rest), coarse)]
    return chunks or [b""]


def _aesm_seeds() -> list[bytes]:
    from sgx_quote_helper.aesm import (
        GetQuoteExRequest,
        GetQuoteSizeExRequest,
        GetSupportedAttKeyIDNumRequest,
        GetSupportedAttKeyIDsRequest,
        InitQuoteExRequest,
        Request,
        SelectAttKeyIDRequest,
        frame_request,
    )
    from sgx_quote_helper.platform import Platform, demo_app_identity
    from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, TargetInfo

    key_id = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()
    init = _logic().handle(InitQuoteExRequest(att_key_id=key_id, b_pub_key_id=True, buf_size=32))
    cpu = Platform.load(sim_dir() / "platform", need_provisioning=False).cpu()
    report = cpu.ereport(
        demo_app_identity(), TargetInfo.from_bytes(init.target_info), b"\x42" * 64
    ).to_bytes()
    requests: list[Request] = [
        InitQuoteExRequest(att_key_id=key_id, b_pub_key_id=False, buf_size=0, timeout=15000),
        InitQuoteExRequest(att_key_id=key_id, b_pub_key_id=True, buf_size=32, timeout=15000),
        GetQuoteSizeExRequest(att_key_id=key_id, timeout=15000),
        GetQuoteExRequest(
            report=report, att_key_id=key_id, qe_report_info=None, buf_size=8192, timeout=15000
        ),
        GetQuoteExRequest(
            report=report, att_key_id=key_id, qe_report_info=bytes(576), buf_size=8192
        ),
        SelectAttKeyIDRequest(att_key_id_list=key_id, timeout=15000),
        GetSupportedAttKeyIDNumRequest(timeout=15000),
        GetSupportedAttKeyIDsRequest(buf_size=158, timeout=15000),
    ]
    frames = [b"\x00" + frame_request(request) for request in requests]
    # Two requests back to back on one connection.
    frames.append(b"\x03" + frame_request(requests[2]) + frame_request(requests[3]))
    return frames


# ---- 2. the quote parser ----


def quote(data: bytes) -> None:
    from sgx_quote_helper.sgx import Quote

    try:
        parsed = Quote.from_bytes(data)
        parsed.to_bytes()
        parsed.pck_chain()
    except SgxQuoteHelperError:
        pass


def _quote_seeds() -> list[bytes]:
    from sgx_quote_helper.aesm import GetQuoteExRequest, InitQuoteExRequest
    from sgx_quote_helper.platform import Platform, demo_app_identity
    from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, TargetInfo

    key_id = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()
    init = _logic().handle(InitQuoteExRequest(att_key_id=key_id, b_pub_key_id=True, buf_size=32))
    cpu = Platform.load(sim_dir() / "platform", need_provisioning=False).cpu()
    report = cpu.ereport(demo_app_identity(), TargetInfo.from_bytes(init.target_info), bytes(64))
    reply = _logic().handle(
        GetQuoteExRequest(
            report=report.to_bytes(), att_key_id=key_id, qe_report_info=None, buf_size=8192
        )
    )
    padded = bytes(reply.quote)  # the daemon's buffer: the quote, then zeros
    size = 436 + int.from_bytes(padded[432:436], "little")  # header, body, sig length
    return [INTEL_QUOTE.read_bytes(), padded[:size]]


# ---- 3. the PCK certificate's SGX extension ----


def pck_extension(data: bytes) -> None:
    from sgx_quote_helper.sgx import SgxExtension

    with contextlib.suppress(SgxQuoteHelperError):
        SgxExtension.from_bytes(data).to_bytes()


def _pck_extension_seeds() -> list[bytes]:
    from sgx_quote_helper.sgx import SGX_EXTENSION_OID, Quote

    seeds = []
    for raw in _quote_seeds():
        leaf = Quote.from_bytes(raw).pck_chain()[0]
        for extension in leaf.extensions:
            if extension.oid.dotted_string == SGX_EXTENSION_OID:
                seeds.append(extension.value.public_bytes())
    return seeds


# ---- 4. collateral JSON, CRLs and chains through verification ----


def collateral(data: bytes) -> None:
    from sgx_quote_helper.pccs import Collateral
    from sgx_quote_helper.verify import TrustAnchor, Verifier

    try:
        parsed = Collateral.from_json(data)
        Verifier(TrustAnchor.intel()).verify(
            _intel_quote(), parsed, now=VERIFY_AT, **_no_appraisal()
        )
    except SgxQuoteHelperError:
        pass


@functools.cache
def _no_appraisal() -> dict[str, Any]:
    """The verdict only: ``policy=UnsafeNoAppraisal()`` where ``verify`` requires a policy."""
    import sgx_quote_helper.verify as verify

    policy = getattr(verify, "UnsafeNoAppraisal", None)
    return {} if policy is None else {"policy": policy()}


@functools.cache
def _intel_quote() -> bytes:
    return INTEL_QUOTE.read_bytes()


def _collateral_seeds() -> list[bytes]:
    text = INTEL_COLLATERAL.read_bytes()
    compact = json.dumps(json.loads(text), separators=(",", ":")).encode()
    return [text, compact]


# ---- 5. PCCS query parsing, through the service's ASGI application ----

_PCCS_PATHS = (
    "/sgx/certification/v4/pckcert",
    "/sgx/certification/v4/pckcrl",
    "/sgx/certification/v4/tcb",
    "/sgx/certification/v4/qe/identity",
    "/sgx/certification/v4/rootcacrl",
    "/sgx/certification/v4/pckcerts",  # not served: 404
)


@functools.cache
def _pccs_app() -> tuple[Any, Any]:
    """The PCCS ASGI application and one event loop to call it on (no HTTP, no thread).

    Built once per process. The manufacturer's calls run inline (``offload=False``):
    one request at a time needs no worker thread, whose hop per request cost more
    than the request (and made the rate depend on how busy the other core was).
    """
    import asyncio

    from sgx_quote_helper.pcs import create_app

    return create_app(sim_dir(), offload=False), asyncio.new_event_loop()


#: h11's default ``max_incomplete_event_size``, which uvicorn keeps: the longest
#: request line plus headers the PCCS's HTTP server accepts.
_MAX_HTTP_HEAD = 16 * 1024


class UnexpectedStatus(AssertionError):
    """The PCCS answered a query with a status outside 200/400/404 (a crash is 500)."""


def pccs_query(data: bytes) -> None:
    """One GET with the fuzzed query string, through the whole ASGI application."""
    path = _PCCS_PATHS[data[0] % len(_PCCS_PATHS)] if data else _PCCS_PATHS[0]
    app, loop = _pccs_app()
    statuses: list[int] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": data[1:],
        "root_path": "",
        "headers": [(b"host", b"pccs.test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8081),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    loop.run_until_complete(app(scope, receive, send))
    if statuses not in ([200], [400], [404]):
        raise UnexpectedStatus(f"{path}?{data[1:]!r}: HTTP {statuses}")


def _pccs_seeds() -> list[bytes]:
    from sgx_quote_helper._version import PCE_SVN
    from sgx_quote_helper.pcs import Manufacturer

    manufacturer = Manufacturer.load(sim_dir())
    platform = manufacturer.platforms()[0]
    pck = (
        f"qeid={platform.qe_id.hex()}&cpusvn={platform.cpu_svn.hex()}"
        f"&pcesvn={PCE_SVN.to_bytes(2, 'little').hex()}&pceid={platform.pce_id.hex()}"
    )
    fmspc = platform.fmspc.hex().upper()
    return [
        b"\x00" + pck.encode(),
        b"\x01ca=processor&encoding=der",
        b"\x01ca=platform",
        b"\x02fmspc=" + fmspc.encode(),
        b"\x02fmspc=" + fmspc.encode() + b"&update=early",
        b"\x02fmspc=" + fmspc.encode() + b"&tcbEvaluationDataNumber=1",
        b"\x03",
        b"\x04",
        b"\x03update=standard",
    ]


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "aesm-frames", "frame decoder, request decoding, daemon logic", aesm_frames, _aesm_seeds
        ),
        Target("quote", "quote parser and PCK chain", quote, _quote_seeds),
        Target(
            "pck-extension",
            "PCK certificate SGX extension decoder",
            pck_extension,
            _pck_extension_seeds,
        ),
        Target(
            "collateral",
            "collateral JSON, CRLs and chains in verification",
            collateral,
            _collateral_seeds,
        ),
        Target(
            "pccs-query",
            "PCCS v4 query parsing (ASGI app)",
            pccs_query,
            _pccs_seeds,
            # uvicorn (h11) refuses a request head over 16 KiB before the application
            # sees it: a longer query string cannot reach the code under test.
            max_len=_MAX_HTTP_HEAD,
        ),
    )
}
