"""Hostile traffic against a live daemon process, with valid quotes that must all succeed.

``python -m fuzz.network`` (part of ``make fuzz``) and ``python -m fuzz.soak``
(``make soak``) share this harness. It creates a simulated platform, starts
``sgx-quote-helper serve`` as a real process on a temporary socket, then runs
at once:

* quote clients: each connects, sends a GetQuoteEx frame for a fresh REPORT
  (report data unique per request), and checks the answer: success, a quote
  that parses, carries that report data and the daemon's one attestation key,
  and (for a sample) verifies against the simulated root with collateral from
  a simulated PCCS;
* hostile clients: random bytes, mutated valid frames, oversized length
  headers, half frames then a disconnect, and clients that stall after one
  byte.

Everything else counts as an unexpected error. The daemon's RSS (its worker
processes included) is sampled after a warm-up and at the end. The process is
always stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.daemon import wait_ready
from fuzz.engine import mutate
from sgx_quote_helper.aesm import (
    GetQuoteExRequest,
    InitQuoteExRequest,
    MessageKind,
    decode_response,
    frame_request,
)
from sgx_quote_helper.platform import Platform, demo_app_identity
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, Quote, TargetInfo

KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()
#: Per-read timeout of the quote clients: a reply later than this is a failure.
CLIENT_TIMEOUT = 60.0


@dataclass
class Figures:
    quotes_ok: int = 0
    quotes_verified: int = 0
    garbage_sent: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    rss_warm_kb: int = 0
    rss_end_kb: int = 0
    seconds: float = 0.0
    daemon_exit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "quotes_ok": self.quotes_ok,
            "quotes_verified": self.quotes_verified,
            "garbage_sent": self.garbage_sent,
            "faults": self.faults,
            "failures": len(self.failures),
            "first_failures": self.failures[:5],
            "rss_warm_kb": self.rss_warm_kb,
            "rss_end_kb": self.rss_end_kb,
            "rss_growth_percent": round(100 * (self.rss_end_kb / self.rss_warm_kb - 1), 1)
            if self.rss_warm_kb
            else None,
            "seconds": round(self.seconds, 1),
            "quotes_per_second": round(self.quotes_ok / self.seconds) if self.seconds else 0,
        }


def _rss_kb(pid: int) -> int:
    """VmRSS of the daemon and of its worker processes (its children), summed."""
    total = 0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for process in [pid, *map(int, children)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _read_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("closed by the daemon")
            chunks += chunk
        return bytes(chunks)

    return exactly(int.from_bytes(exactly(4), "little"))


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    socket: Path
    admin: str
    sim: Path


@contextlib.contextmanager
def running_daemon(work: Path, *extra: str) -> Iterator[Daemon]:
    """`sim init` in ``work`` and the daemon on it as a process; stopped on exit."""
    from sgx_quote_helper._cli import main

    sim = work / "sim"
    if not sim.exists():
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["sim", "init", str(sim)]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        admin = f"127.0.0.1:{probe.getsockname()[1]}"
    path = work / "aesm.socket"
    command = [sys.executable, "-m", "sgx_quote_helper", "serve", "--platform"]
    command += [str(sim / "platform"), "--socket", str(path), "--admin-listen", admin]
    command += ["--state-dir", str(work / "state"), *extra]
    log = (work / "daemon.log").open("ab")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            wait_ready(process, f"http://{admin}", timeout=120)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(work / 'daemon.log').read_text()}") from exc
        yield Daemon(process, path, admin, sim)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


class QuoteChecker:
    """What every received quote must satisfy, and full verification for a sample."""

    def __init__(self, daemon: Daemon) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(CLIENT_TIMEOUT)
            sock.connect(str(daemon.socket))
            init = InitQuoteExRequest(att_key_id=KEY_ID, b_pub_key_id=True, buf_size=32)
            sock.sendall(frame_request(init))
            reply = decode_response(_read_frame(sock), MessageKind.INIT_QUOTE_EX)
        assert reply.error_code == 0
        assert reply.target_info is not None
        self.target = TargetInfo.from_bytes(reply.target_info)
        self.cpu = Platform.load(daemon.sim / "platform", need_provisioning=False).cpu()
        self.identity = demo_app_identity()
        self.attestation_key: bytes | None = None
        self.sim = daemon.sim
        self._lock = threading.Lock()

    def request(self, report_data: bytes) -> bytes:
        report = self.cpu.ereport(self.identity, self.target, report_data)
        return frame_request(
            GetQuoteExRequest(
                report=report.to_bytes(), att_key_id=KEY_ID, qe_report_info=None, buf_size=8192
            )
        )

    def check(self, reply_body: bytes, report_data: bytes) -> bytes:
        """The quote, or AssertionError saying what is wrong with the answer."""
        reply = decode_response(reply_body, MessageKind.GET_QUOTE_EX)
        if reply.error_code != 0 or reply.quote is None:
            raise AssertionError(f"GetQuoteEx answered error {reply.error_code}")
        padded = reply.quote
        raw = padded[: 436 + int.from_bytes(padded[432:436], "little")]
        quote = Quote.from_bytes(raw)
        if quote.report_body.report_data != report_data:
            raise AssertionError("the quote carries another request's report data")
        key = quote.signature_data()[64:128]
        with self._lock:
            if self.attestation_key is None:
                self.attestation_key = key
            elif key != self.attestation_key:
                raise AssertionError("the attestation key changed")
        return raw


def verify_quotes(sim: Path, quotes: list[bytes]) -> int:
    """Full verification (simulated root, collateral from a simulated PCCS): how many passed."""
    from sgx_quote_helper.pcs import serve_in_thread
    from sgx_quote_helper.verify import TrustAnchor, Verifier

    anchor = TrustAnchor.from_file(sim / "pcs" / "root-ca.der")
    import sgx_quote_helper.verify as verify

    policy = getattr(verify, "UnsafeNoAppraisal", None)
    extra = {} if policy is None else {"policy": policy()}
    with serve_in_thread(sim) as service, Verifier(anchor, pccs=service.url) as verifier:
        for raw in quotes:
            verifier.verify(raw, **extra)  # raises on any defect
    return len(quotes)


def _hostile(
    rng: random.Random, path: Path, seeds: list[bytes], figures: Figures, lock: threading.Lock
) -> str:
    """One hostile connection; returns its kind."""
    kind = rng.choice(("random", "mutated", "oversized", "half", "mutated", "stall"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        try:
            sock.connect(str(path))
            if kind == "random":
                sock.sendall(rng.randbytes(rng.randint(1, 512)))
            elif kind == "mutated":
                sock.sendall(mutate(rng, rng.choice(seeds), seeds))
            elif kind == "oversized":
                sock.sendall(rng.randint(1 << 20, (1 << 32) - 1).to_bytes(4, "little") + b"x")
            elif kind == "half":
                frame = rng.choice(seeds)
                sock.sendall(frame[: rng.randint(1, len(frame) - 1)])
            else:  # stall after one byte, for a while
                sock.sendall(b"\x10")
                time.sleep(rng.uniform(0.5, 3))
            if rng.random() < 0.5:
                sock.settimeout(1)  # the daemon may wait for the rest of a frame
                with contextlib.suppress(OSError):
                    sock.recv(65536)  # whatever the daemon answers, or its close
        except OSError:
            pass  # refused or reset: the daemon may shed such peers
    with lock:
        figures.garbage_sent += 1
        figures.faults[kind] = figures.faults.get(kind, 0) + 1
    return kind


def run(
    *,
    quotes: int,
    quote_clients: int,
    hostile_clients: int,
    fault_every: int = 0,
    verify_every: int = 500,
    seed: int = 0,
    work: Path | None = None,
) -> Figures:
    """``quotes`` valid quotes from ``quote_clients`` threads among hostile traffic.

    With ``fault_every`` (soak), hostile connections are spread one per
    ``fault_every`` quotes; otherwise ``hostile_clients`` threads send them
    continuously until the quotes are done.
    """
    figures = Figures()
    lock = threading.Lock()
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sqh-net-")))
        daemon = stack.enter_context(running_daemon(work))
        checker = QuoteChecker(daemon)
        seeds = [checker.request(bytes(64)), *_seed_frames(checker)]
        sample: list[bytes] = []
        counter = iter(range(quotes))
        done = threading.Event()
        faults: list[threading.Thread] = []
        warm_at = min(quotes // 10, 20000)

        def quote_client(index: int) -> None:
            # One connection per request, as Intel's client does (the daemon
            # closes after its answer, like aesmd).
            rng = random.Random(seed * 1000 + index)
            while True:
                with lock:
                    number = next(counter, None)
                if number is None:
                    break
                if number == warm_at:
                    figures.rss_warm_kb = _rss_kb(daemon.process.pid)
                data = number.to_bytes(8, "little") + rng.randbytes(56)
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                        sock.settimeout(CLIENT_TIMEOUT)
                        sock.connect(str(daemon.socket))
                        sock.sendall(checker.request(data))
                        raw = checker.check(_read_frame(sock), data)
                except (OSError, AssertionError, ValueError) as exc:
                    with lock:
                        figures.failures.append(f"quote {number}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    figures.quotes_ok += 1
                    if verify_every and number % verify_every == 0:
                        sample.append(raw)
                if fault_every and number % fault_every == fault_every - 1:
                    fault = threading.Thread(
                        target=_hostile,
                        args=(random.Random(number), daemon.socket, seeds, figures, lock),
                    )
                    fault.start()
                    with lock:
                        faults.append(fault)

        def hostile_client(index: int) -> None:
            rng = random.Random(seed * 1000 + 500 + index)
            while not done.is_set():
                _hostile(rng, daemon.socket, seeds, figures, lock)

        started = time.monotonic()
        threads = [threading.Thread(target=quote_client, args=(i,)) for i in range(quote_clients)]
        hostile = [
            threading.Thread(target=hostile_client, args=(i,))
            for i in range(0 if fault_every else hostile_clients)
        ]
        for thread in threads + hostile:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        for thread in hostile + faults:
            thread.join()
        figures.seconds = time.monotonic() - started
        figures.rss_end_kb = _rss_kb(daemon.process.pid)
        if not figures.rss_warm_kb:
            figures.rss_warm_kb = figures.rss_end_kb
        figures.daemon_exit = daemon.process.poll()
        try:
            figures.quotes_verified = verify_quotes(daemon.sim, sample)
        except Exception as exc:  # a verification failure is a finding, not a crash here
            figures.failures.append(f"verification: {type(exc).__name__}: {exc}")
    return figures


def _seed_frames(checker: QuoteChecker) -> list[bytes]:
    init = InitQuoteExRequest(att_key_id=KEY_ID, b_pub_key_id=True, buf_size=32)
    size_query = InitQuoteExRequest(att_key_id=KEY_ID, b_pub_key_id=False, buf_size=0)
    return [frame_request(init), frame_request(size_query), checker.request(b"\x01" * 64)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.network", description=__doc__)
    parser.add_argument("--quotes", type=int, default=20000, help="valid quotes to get")
    parser.add_argument("--clients", type=int, default=8, help="quote client threads")
    parser.add_argument("--connections", type=int, default=32, help="hostile client threads")
    parser.add_argument("--garbage-frames", type=int, default=0, help="(informational)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    figures = run(
        quotes=args.quotes,
        quote_clients=args.clients,
        hostile_clients=args.connections,
        seed=args.seed,
    )
    print(json.dumps(figures.as_dict(), indent=2))
    return 1 if figures.failures or figures.daemon_exit is not None else 0


if __name__ == "__main__":
    sys.exit(main())
