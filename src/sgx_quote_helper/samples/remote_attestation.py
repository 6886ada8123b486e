"""The remote attestation sample: one application enclave process talking to its peer.

Run two of these, one per enclave identity, connected to each other::

    SGX_AESM_ADDR=unix:/tmp/qh/aesm.socket python -m sgx_quote_helper.samples.remote_attestation \\
        --manifest alice.toml --peer-manifest bob.toml --platform SIM/platform \\
        --root-ca SIM/pcs/root-ca.der --pccs-url http://127.0.0.1:8081 --listen 127.0.0.1:7001
    SGX_AESM_ADDR=unix:/tmp/qh/aesm.socket python -m sgx_quote_helper.samples.remote_attestation \\
        --manifest bob.toml --peer-manifest alice.toml ... --connect 127.0.0.1:7001

Each quotes its REPORT (through the quote helper when ``SGX_AESM_ADDR`` is set,
in process otherwise), verifies the other's quote and identity, derives a
session key and exchanges one encrypted message each way (``_party`` has the
steps). Exit status: 0 when the exchange completed, 1 when it failed (the
reason on stderr, or in the last JSON line with ``--json``), 2 for wrong
arguments. See ``docs/demo.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sgx_quote_helper.errors import SgxQuoteHelperError, UsageError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.pccs import normalize_base_url
from sgx_quote_helper.platform import EnclaveIdentity, load_manifest
from sgx_quote_helper.samples._channel import FramedChannel
from sgx_quote_helper.samples._errors import ExchangeError, PeerRejectedError
from sgx_quote_helper.samples._party import Event, PartyConfig, PeerExpectation, run_party
from sgx_quote_helper.verify import TcbStatus

#: The daemon's variable for --platform; the sample honours it as `quote` does.
PLATFORM_ENV = "SGX_QUOTE_HELPER_PLATFORM"
DEFAULT_TIMEOUT = 30.0
#: The longest wait a socket timeout accepts here (a day).
_MAX_TIMEOUT = 86400.0
#: The largest SVN (ISVSVN is 16 bits).
_MAX_SVN = 0xFFFF


def _bounded(kind: type[int] | type[float], low: float, high: float, what: str) -> Any:
    """An argparse type: a finite number of ``kind`` in [low, high], else a usage error."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: {what} from {kind(low)} to {kind(high)}"
            )
        return value

    return parse


def _pccs_url(text: str) -> str:
    """An argparse type: a PCCS base URL, checked before the peer is contacted."""
    try:
        return normalize_base_url(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: How long a closing side waits for the peer's last frames (so none is lost).
_DRAIN_TIMEOUT = 2.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sgx_quote_helper.samples.remote_attestation",
        description="One application enclave of the remote attestation sample: quote, "
        "verify the peer's quote and identity, then exchange an encrypted message.",
    )
    add = parser.add_argument
    add("--manifest", required=True, type=Path, help="this application's enclave manifest")
    add("--name", help="this application's name (default: the manifest's name)")
    add(
        "--peer-manifest",
        type=Path,
        help="the peer's enclave manifest: its MRENCLAVE and MRSIGNER are expected",
    )
    add("--expect-mrenclave", metavar="HEX", help="expected peer MRENCLAVE (overrides manifest)")
    add("--expect-mrsigner", metavar="HEX", help="expected peer MRSIGNER (overrides manifest)")
    add(
        "--accept-status",
        action="append",
        default=[],
        metavar="STATUS",
        help="a TCB status accepted from the peer (repeatable; default UpToDate)",
    )
    add("--platform", type=Path, help=f"the platform directory (default ${PLATFORM_ENV})")
    add("--root-ca", required=True, type=Path, help="trust anchor (DIR/pcs/root-ca.der)")
    add("--pccs-url", required=True, type=_pccs_url, help="PCCS for the peer's collateral")
    add("--message", help="what to send the peer (default: a greeting)")
    add(
        "--timeout",
        type=_bounded(float, 0.001, _MAX_TIMEOUT, "a number of seconds"),
        default=DEFAULT_TIMEOUT,
        help="seconds per network wait",
    )
    add("--json", action="store_true", help="JSON lines on stdout: each step, then the result")
    channel = parser.add_mutually_exclusive_group(required=True)
    channel.add_argument("--listen", metavar="HOST:PORT", help="wait for the peer (port 0: any)")
    channel.add_argument("--connect", metavar="HOST:PORT", help="connect to the peer")
    channel.add_argument(
        "--peer-fd",
        type=_bounded(int, 0, 2**31 - 1, "a file descriptor"),
        metavar="FD",
        help="an inherited connected socket",
    )
    inproc = parser.add_argument_group("in-process mode (SGX_AESM_ADDR unset)")
    inproc.add_argument(
        "--qe-svn",
        type=_bounded(int, 0, _MAX_SVN, "an ISVSVN"),
        help="QE3 ISVSVN bundled into this application",
    )
    inproc.add_argument("--state-dir", type=Path, help="where this application's QE seals its key")
    return parser


def _address(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7001")
    return host.strip("[]"), int(port)


def _peer_expectation(args: argparse.Namespace) -> PeerExpectation:
    peer: EnclaveIdentity | None = None
    if args.peer_manifest is not None:
        peer = load_manifest(args.peer_manifest)
    mr_enclave = args.expect_mrenclave or (peer.mr_enclave.hex() if peer else None)
    mr_signer = args.expect_mrsigner or (peer.mr_signer.hex() if peer else None)
    if mr_enclave is None or mr_signer is None:
        raise UsageError(
            "say whom to expect: --peer-manifest FILE, or --expect-mrenclave and --expect-mrsigner"
        )
    try:
        statuses = tuple(TcbStatus.parse(s).value for s in args.accept_status) or ("UpToDate",)
        return PeerExpectation(bytes.fromhex(mr_enclave), bytes.fromhex(mr_signer), statuses)
    except ValueError as exc:
        raise UsageError(f"bad peer expectation: {exc}") from None


def _config(args: argparse.Namespace) -> PartyConfig:
    identity = load_manifest(args.manifest)
    platform_dir = args.platform or os.environ.get(PLATFORM_ENV)
    if not platform_dir:
        raise UsageError(f"give --platform DIR (DIR/platform of `sim init DIR`) or ${PLATFORM_ENV}")
    name = args.name or identity.name
    return PartyConfig(
        name=name,
        identity=identity,
        platform_dir=Path(platform_dir),
        peer=_peer_expectation(args),
        root_ca=args.root_ca,
        pccs_url=args.pccs_url,
        message=args.message
        or f"hello from {name}, attested enclave {identity.mr_enclave.hex()[:16]}",
        qe_svn=args.qe_svn,
        state_dir=args.state_dir,
    )


def _short(value: object) -> str:
    """Long values shortened for people (the JSON lines keep them whole)."""
    text = str(value)
    return text if len(text) <= 40 else text[:32] + "…"


class _Output:
    def __init__(self, name: str, *, as_json: bool) -> None:
        self.name = name
        self.as_json = as_json

    def event(self, event: Event) -> None:
        if self.as_json:
            self._line(event.to_dict())
            return
        detail = ", ".join(f"{key}={_short(value)}" for key, value in event.detail.items())
        mark = "ok" if event.ok else "FAILED"
        print(f"{event.party}: [{event.step}] {mark} {detail}", file=sys.stderr, flush=True)

    def result(self, document: dict[str, Any]) -> None:
        if self.as_json:
            self._line({"party": self.name, "step": "result", **document})
        elif document["ok"]:
            print(
                f"{self.name}: attested {document['peer_name']} ({document['peer_status']}) and "
                f"exchanged encrypted messages; received {document['received']!r}",
                file=sys.stderr,
            )
        else:
            print(f"{self.name}: {document['diagnostics']}", file=sys.stderr)

    @staticmethod
    def _line(document: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
        sys.stdout.flush()


def _connect_channel(args: argparse.Namespace, output: _Output) -> socket.socket:
    timeout: float = args.timeout
    if args.peer_fd is not None:
        try:
            return socket.socket(fileno=args.peer_fd)
        except OSError as exc:
            raise UsageError(f"--peer-fd {args.peer_fd} is not a usable socket: {exc}") from None
    if args.listen is not None:
        host, port = _address(args.listen, "--listen")
        with socket.create_server((host, port)) as server:
            bound = server.getsockname()[1]
            output.event(Event(output.name, "listening", True, {"host": host, "port": bound}))
            server.settimeout(timeout)
            try:
                conn, _ = server.accept()
            except TimeoutError:
                raise ExchangeError(
                    "connect", f"no peer connected to {host}:{bound} within {timeout}s"
                ) from None
            return conn
    host, port = _address(args.connect, "--connect")
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            # The peer may not be listening yet: retry until the timeout.
            if time.monotonic() > deadline:
                raise ExchangeError("connect", f"cannot connect to {host}:{port}: {exc}") from None
            time.sleep(0.1)


def _close_gracefully(sock: socket.socket) -> None:
    """Half-close, then read what the peer still sends, so its last frame is not lost."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(_DRAIN_TIMEOUT)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def _failure(exc: SgxQuoteHelperError) -> dict[str, Any]:
    document: dict[str, Any] = {"ok": False, "diagnostics": exc.diagnostics(guide)}
    if isinstance(exc, ExchangeError):
        document.update(failed_step=exc.step, reason=exc.reason, error=exc.cause_type)
        if isinstance(exc, PeerRejectedError) and exc.status is not None:
            document["peer_status"] = exc.status
    else:
        document.update(failed_step="setup", reason=str(exc), error=type(exc).__name__)
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except SgxQuoteHelperError as exc:  # a bad manifest or option: a usage error
        print(f"{parser.prog}: error: {exc.diagnostics(guide)}", file=sys.stderr)
        return 2
    output = _Output(config.name, as_json=args.json)
    try:
        sock = _connect_channel(args, output)
    except SgxQuoteHelperError as exc:
        output.result(_failure(exc))
        return 2 if isinstance(exc, UsageError) else 1
    channel = FramedChannel(sock, timeout=args.timeout)
    try:
        result = run_party(config, channel, output.event)
    except SgxQuoteHelperError as exc:
        output.result(_failure(exc))
        return 1
    finally:
        _close_gracefully(sock)
    output.result(result.to_dict())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
