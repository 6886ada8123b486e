"""Test doubles for the client tests, and tests that the doubles behave as stated.

- :class:`FakeAesm`: a scripted AESM server on a temporary Unix socket (one
  thread per connection) that records every request and answers each with an
  :class:`Action`: a typed reply, raw bytes, close without reply, or hang.
- :func:`make_platform`: a simulated platform (``create_platform``) and a PCK
  certificate source that certifies it with a throw-away test chain, so the real
  ``sim`` backend and daemon run without the simulated manufacturer.
- :func:`running_daemon`: the real :class:`QuoteHelperServer` on its own event
  loop thread.
- :func:`run_as_nobody`: runs a check in a forked child as uid/gid 65534 (tests
  run as root, and root ignores file and socket modes).

Other client test modules import these by module name (``tests/client`` is on
``sys.path`` under pytest's default import mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from unprivileged import NOBODY as NOBODY
from unprivileged import run_as_nobody as run_as_nobody

from sgx_quote_helper import client
from sgx_quote_helper.aesm import (
    MAX_REQUEST_BODY_SIZE,
    MAX_RESPONSE_BODY_SIZE,
    CloseWithoutReply,
    DecodedRequest,
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
    Response,
    SelectAttKeyIDRequest,
    SelectAttKeyIDResponse,
    decode_request,
    encode_frame,
    encode_response,
)
from sgx_quote_helper.backends import PckSource, create_backend
from sgx_quote_helper.pccs import PckCertificate, PckCertificateQuery
from sgx_quote_helper.platform import (
    SimulatedCpu,
    create_platform,
    demo_app_identity,
    derive_pck_private_key,
    derive_provisioning_secret,
    quoting_enclave_identity,
)
from sgx_quote_helper.service import QuoteHelperServer, ServiceConfig
from sgx_quote_helper.sgx import DEFAULT_ECDSA_ATT_KEY_ID, QeReportInfo, Report, TargetInfo

KEY_ID = DEFAULT_ECDSA_ATT_KEY_ID.to_bytes()


# ---- the scripted AESM server -----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Answer with this response, framed as the real server would."""

    response: Response


@dataclass(frozen=True)
class Raw:
    """Write these bytes, then close."""

    data: bytes


@dataclass(frozen=True)
class Close:
    """Close the connection without writing anything."""


@dataclass(frozen=True)
class Hang:
    """Keep the connection open and never answer (until the server stops)."""


Action = Reply | Raw | Close | Hang
Handler = Callable[[DecodedRequest], Action]


def framed(response: Response) -> bytes:
    return encode_frame(encode_response(response), max_body_size=MAX_RESPONSE_BODY_SIZE)


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


@dataclass
class FakeAesm:
    """A scripted AESM server; use as a context manager."""

    path: Path
    handler: Handler
    requests: list[DecodedRequest] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _listener: socket.socket | None = None

    def __enter__(self) -> FakeAesm:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(32)
        listener.settimeout(0.05)
        self._listener = listener
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(5)
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def kinds(self) -> list[str]:
        return [type(r).__name__ for r in self.requests]

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            header = _recv_exactly(conn, 4)
            if header is None:
                return
            length = int.from_bytes(header, "little")
            assert length <= MAX_REQUEST_BODY_SIZE
            body = _recv_exactly(conn, length)
            if body is None:
                return
            self.frames.append(header + body)
            request = decode_request(body)
            self.requests.append(request)
            action = self.handler(request)
            match action:
                case Reply(response):
                    conn.sendall(framed(response))
                case Raw(data):
                    conn.sendall(data)
                case Close():
                    pass
                case Hang():
                    self._stop.wait(10)


def fake_aesm(tmp_path: Path, handler: Handler, name: str = "aesm.socket") -> FakeAesm:
    return FakeAesm(tmp_path / name, handler)


# ---- a well-behaved fake: quotes with a made-up but well-formed v3 quote ----------------------

QE_SVN_FAKE = 7
FAKE_SIG_DATA = bytes(range(256)) * 4  # 1024 bytes of "signature data"


def fake_quote(report: bytes) -> bytes:
    """A well-formed v3 quote layout: header, the REPORT body, length, signature data."""
    header = (3).to_bytes(2, "little") + (2).to_bytes(2, "little") + bytes(4)
    header += QE_SVN_FAKE.to_bytes(2, "little") + (13).to_bytes(2, "little") + bytes(36)
    return header + report[:384] + len(FAKE_SIG_DATA).to_bytes(4, "little") + FAKE_SIG_DATA


@dataclass
class HonestAesm:
    """Handler that behaves like a working quote helper (with a fake quote).

    ``cpu`` makes the QE report for ``qe_report_info`` so that the application
    can check its MAC; ``tamper`` corrupts that report's binding.
    """

    cpu: SimulatedCpu = field(
        default_factory=lambda: SimulatedCpu(bytes(range(32)), bytes(16), None)
    )
    pub_key_id_size: int = 32
    tamper: bool = False
    script: dict[str, list[Action]] = field(default_factory=dict)

    @property
    def qe_target(self) -> TargetInfo:
        return quoting_enclave_identity(QE_SVN_FAKE).target_info()

    def quote_size(self) -> int:
        return len(fake_quote(bytes(432)))

    def __call__(self, request: DecodedRequest) -> Action:
        queued = self.script.get(type(request).__name__)
        if queued:
            return queued.pop(0)
        match request:
            case InitQuoteExRequest(b_pub_key_id=False):
                return Reply(
                    InitQuoteExResponse(
                        0, target_info=bytes(512), pub_key_id_size=self.pub_key_id_size
                    )
                )
            case InitQuoteExRequest():
                return Reply(
                    InitQuoteExResponse(
                        0,
                        target_info=self.qe_target.to_bytes(),
                        pub_key_id_size=32,
                        pub_key_id=b"\x11" * 32,
                    )
                )
            case GetQuoteSizeExRequest():
                return Reply(GetQuoteSizeExResponse(0, quote_size=self.quote_size()))
            case GetQuoteExRequest():
                quote = fake_quote(request.report)
                info = request.qe_report_info
                if info is not None:
                    sent = QeReportInfo.from_bytes(info)
                    data = hashlib.sha256(sent.nonce + quote).digest() + bytes(32)
                    if self.tamper:
                        data = bytes(64)
                    qe_report = self.cpu.ereport(
                        quoting_enclave_identity(QE_SVN_FAKE), sent.app_enclave_target_info, data
                    )
                    info = sent.replace(qe_report=qe_report).to_bytes()
                padded = quote + bytes(request.buf_size - len(quote))
                return Reply(GetQuoteExResponse(0, quote=padded, qe_report_info=info))
            case SelectAttKeyIDRequest():
                return Reply(SelectAttKeyIDResponse(0, selected_att_key_id=KEY_ID))
            case GetSupportedAttKeyIDNumRequest():
                return Reply(GetSupportedAttKeyIDNumResponse(0, att_key_id_num=1))
            case GetSupportedAttKeyIDsRequest():
                return Reply(GetSupportedAttKeyIDsResponse(0, att_key_ids=KEY_ID))
            case CloseWithoutReply():
                return Close()
        return Close()


def app_report(cpu: SimulatedCpu, target: TargetInfo, data: bytes = b"") -> Report:
    return cpu.ereport(demo_app_identity(), target, data.ljust(64, b"\0"))


# ---- a real simulated platform, certified by a throw-away test chain --------------------------

PPID = bytes(range(16))
MASTER = b"client-tests-master-secret-32byt"
TCB_COMPONENTS = [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]


@functools.cache
def _ppid_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _cert(
    subject: str, issuer: str, key: ec.EllipticCurvePublicKey, signer: ec.EllipticCurvePrivateKey
) -> str:
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(signer, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class TestPlatform:
    """A platform directory and a PCK source that certifies it (test-only chain)."""

    __test__ = False  # not a test class

    path: Path
    pck_source: PckSource
    fetches: list[PckCertificateQuery]

    def cpu(self) -> SimulatedCpu:
        from sgx_quote_helper.platform import Platform

        return Platform.load(self.path, need_provisioning=False).cpu()


def make_platform(root: Path) -> TestPlatform:
    """``root/platform`` (mode 0755, provisioning secret 0600) and its PCK source."""
    path = root / "platform"
    secret = derive_provisioning_secret(MASTER, PPID)
    create_platform(
        path,
        ppid=PPID,
        qe_id=bytes(range(16, 32)),
        fmspc=bytes.fromhex("00906ed50000"),
        pce_id=b"\x00\x00",
        tcb_components=TCB_COMPONENTS,
        provisioning_secret=secret,
        ppid_encryption_key_pem=_ppid_key_pem(),
    )
    root_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer_chain = _cert("Test PCK CA", "Test Root CA", ca_key.public_key(), root_key) + _cert(
        "Test Root CA", "Test Root CA", root_key.public_key(), root_key
    )
    fetches: list[PckCertificateQuery] = []

    def source(query: PckCertificateQuery) -> PckCertificate:
        fetches.append(query)
        pck = derive_pck_private_key(secret, query.cpu_svn, query.pce_svn, query.pce_id)
        leaf = _cert("Test PCK Certificate", "Test PCK CA", pck.public_key(), ca_key)
        return PckCertificate(
            leaf_pem=leaf,
            issuer_chain_pem=issuer_chain,
            tcbm=query.cpu_svn + query.pce_svn.to_bytes(2, "little"),
            fmspc=bytes.fromhex("00906ed50000"),
            ca_type="processor",
        )

    return TestPlatform(path, source, fetches)


@contextlib.contextmanager
def shared_tmp() -> Iterator[Path]:
    """A temporary directory other users can traverse (mkdtemp makes 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sqh-client-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- the real daemon ------------------------------------------------------------------------


@dataclass
class Daemon:
    server: QuoteHelperServer
    socket: Path


@contextlib.contextmanager
def running_server(
    make: Callable[[], QuoteHelperServer], *, wait_ready: bool = True
) -> Iterator[QuoteHelperServer]:
    """Run the server ``make`` builds on an event loop in a thread, then stop it."""
    loop = asyncio.new_event_loop()
    holder: dict[str, QuoteHelperServer] = {}
    failure: list[BaseException] = []

    async def main() -> None:
        server = make()  # built on the loop: its asyncio primitives belong there
        holder["server"] = server
        await server.serve()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not failure:
        server = holder.get("server")
        if server is not None and server.started.is_set() and (server.ready or not wait_ready):
            break
        time.sleep(0.01)
    else:
        raise AssertionError(f"the daemon did not start: {failure}")
    server = holder["server"]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(server.request_exit)
        thread.join(15)
        assert not failure, failure


def running_daemon(
    socket_path: Path,
    platform: TestPlatform,
    state_dir: Path,
    *,
    qe_svn: int = 10,
    pck_source: PckSource | None = None,
    wait_ready: bool = True,
    allow_uid: tuple[int, ...] = (),
) -> contextlib.AbstractContextManager[QuoteHelperServer]:
    """The real daemon over ``platform`` (certified by the test chain)."""

    def make() -> QuoteHelperServer:
        backend = create_backend(
            "sim",
            platform_dir=platform.path,
            state_dir=state_dir,
            pck_source=pck_source or platform.pck_source,
            qe_svn=qe_svn,
        )
        settings = ServiceConfig(
            socket=socket_path,
            platform=platform.path,
            state_dir=state_dir,
            qe_svn=qe_svn,
            allow_uid=allow_uid,
        )
        return QuoteHelperServer(settings, backend)

    return running_server(make, wait_ready=wait_ready)


def error_facts(exc: client.QuoteClientError) -> dict[str, object]:
    """The parts of a client error the tests compare, JSON-ready."""
    return {
        "type": type(exc).__name__,
        "sgx_status": int(exc.sgx_status),
        "quote3_error": int(exc.quote3_error),
        "diagnostics": exc.diagnostics(),
    }


@pytest.fixture(autouse=True)
def _fresh_mode() -> Iterator[None]:
    client._reset_mode_for_tests()
    yield
    client._reset_mode_for_tests()


# ---- tests of the doubles themselves ----------------------------------------------------------


def test_fake_aesm_records_requests_and_replies_as_scripted(tmp_path: Path) -> None:
    reply = GetQuoteSizeExResponse(0, quote_size=1234)
    with fake_aesm(tmp_path, lambda request: Reply(reply)) as server:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(server.path))
        body = bytes.fromhex("8201 00".replace(" ", ""))
        sock.sendall(len(body).to_bytes(4, "little") + body)
        answer = _recv_exactly(sock, len(framed(reply)))
        sock.close()
    assert answer == framed(reply)
    assert server.connections == 1
    assert server.requests == [GetQuoteSizeExRequest(att_key_id=None, timeout=None)]


def test_test_platform_pck_source_certifies_the_platform(tmp_path: Path) -> None:
    platform = make_platform(tmp_path)
    backend = create_backend(
        "sim",
        platform_dir=platform.path,
        state_dir=tmp_path / "state",
        pck_source=platform.pck_source,
    )
    result = backend.init_quote(DEFAULT_ECDSA_ATT_KEY_ID.base)
    assert result.pub_key_id is not None
    assert len(result.pub_key_id) == 32
    assert platform.fetches, "the backend asked the PCK source"
    assert (platform.path / "provision.secret").stat().st_mode & 0o777 == 0o600
