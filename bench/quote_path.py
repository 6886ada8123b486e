"""``python -m bench.quote_path``: CPU time of each piece of the daemon's quote path, in process.

No sockets and no event loop: a simulated platform, the daemon's
``AesmLogic`` over the simulated QE, and one real GetQuoteEx request frame.
Each piece runs in a hot loop; the figure is the best of five rounds of
``time.process_time`` per call, so that other jobs on a shared machine
inflate it as little as possible:

- ``framing``: the request body out of the frame the way the daemon takes it
  when one read holds the whole frame (``whole_frame``);
- ``decode_request``: the body to a ``GetQuoteExRequest``;
- ``logic.handle``: ``AesmLogic.handle`` of it (checks, the simulated QE's
  REPORT MAC check, quote assembly and ECDSA signature);
- ``backend.get_quote``: the simulated backend's part of that;
- ``signature DER to raw``: ``ecdsa_signature_to_raw`` of one signature;
- ``frame_response``: the reply to bytes on the wire;
- ``metrics``: what the daemon counts per quote (reply, latency, connection);
- ``full``: all of the above for one request.

The floor is an ECDSA P-256 signature and an AES-CMAC over a REPORT
(``python -m bench`` reports it as ``raw_crypto_us_per_quote``).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.daemon import quote_request
from sgx_quote_helper._cli import main as cli_main
from sgx_quote_helper.aesm import (
    MAX_REQUEST_BODY_SIZE,
    GetQuoteExRequest,
    GetQuoteSizeExRequest,
    GetQuoteSizeExResponse,
    MessageKind,
    decode_request,
    frame_request,
    frame_response,
    whole_frame,
)
from sgx_quote_helper.backends import SimBackend, pck_source_for
from sgx_quote_helper.service import DaemonMetrics
from sgx_quote_helper.service._logic import AesmLogic
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, ecdsa_signature_to_raw
from sgx_quote_helper.sgx._ecdsa import _ECDSA_SHA256


def _best_us(function: Callable[[], object], calls: int, rounds: int = 5) -> float:
    function()
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(calls):
            function()
        best = min(best, time.process_time() - began)
    return best / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quote_path", description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="calls per round of each piece")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sqh-quote-path-"))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            cli_main(["sim", "init", str(work / "sim")])
        platform = work / "sim" / "platform"
        source = pck_source_for(pccs_url=None, platform_dir=platform, cache_dir=None)
        backend = SimBackend(platform, work / "state", pck_source=source)
        logic = AesmLogic(backend, lambda: True)
        key_id = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()
        key = logic._key_id(key_id)
        init = logic.initialize(key, for_client=True)
        size = logic.handle(GetQuoteSizeExRequest(att_key_id=key_id, timeout=15000))
        assert isinstance(size, GetQuoteSizeExResponse)
        assert size.quote_size
        request = quote_request(platform, init.target_info, size.quote_size)
        frame = frame_request(request)
        body = frame[4:]
        reply = logic.handle(request)
        if reply.error_code:
            raise RuntimeError(f"the simulated QE does not quote: {reply}")
        metrics = DaemonMetrics()
        der = backend._qe._template.private_key.sign(bytes(432), _ECDSA_SHA256)  # type: ignore[union-attr]

        def count() -> None:
            metrics.request_answered(MessageKind.GET_QUOTE_EX, 0)
            metrics.quote_served(0.0003)
            metrics.connection_from(0)

        def full() -> bytes:
            whole = whole_frame(frame, max_body_size=MAX_REQUEST_BODY_SIZE)
            assert whole is not None
            event = decode_request(whole)
            assert isinstance(event, GetQuoteExRequest)
            response = logic.handle(event)
            count()
            return frame_response(response, request=event)

        pieces: list[tuple[str, Callable[[], object], int]] = [
            ("framing", lambda: whole_frame(frame, max_body_size=MAX_REQUEST_BODY_SIZE), 10),
            ("decode_request", lambda: decode_request(body), 10),
            ("logic.handle", lambda: logic.handle(request), 1),
            ("backend.get_quote", lambda: backend.get_quote(request.report, key, None), 1),
            ("signature DER to raw", lambda: ecdsa_signature_to_raw(der), 10),
            ("frame_response", lambda: frame_response(reply, request=request), 10),
            ("metrics", count, 10),
            ("full", full, 1),
        ]
        for name, function, factor in pieces:
            print(f"{name:22s} {_best_us(function, args.calls * factor):7.2f} us")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
