"""One side of the remote attestation sample: attest, verify the peer, talk privately.

Each application enclave (simulated) runs the same steps against its peer:

 1. ``platform``: load the platform as an application does, *without* the
    provisioning secret (only the enclave secret, like ``/dev/sgx_enclave``).
 2. ``key``: a fresh ECDH P-256 key pair; REPORTDATA binds its public key.
 3. ``quote``: the QE's target info from the client library, EREPORT for it,
    the quote (out of process through the quote helper when ``SGX_AESM_ADDR``
    is set, in process otherwise: the application code is the same).
 4. ``send_evidence`` / 5. ``receive_evidence``: quote and public key, both ways.
 6. ``verify_peer``: the project's verifier with the trust anchor passed in
    explicitly and fresh collateral from the PCCS, then appraisal: the peer's
    expected MRENCLAVE and MRSIGNER, REPORTDATA = the binding of the public key
    it sent, an accepted TCB status, no debug enclave. The verdict goes back.
 7. ``peer_verdict``: the peer's verdict on our evidence.
 8. ``session_key``: ECDH, then HKDF-SHA256 over both public keys.
 9. ``send_message`` / 10. ``receive_message``: one AES-256-GCM message each way.

Every step reports an :class:`Event`; a failure raises an :class:`ExchangeError`
leaf and, where the channel still works, tells the peer why, so both sides stop
with a clear reason.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from sgx_quote_helper import client
from sgx_quote_helper.errors import SgxQuoteHelperError
from sgx_quote_helper.explain import guide
from sgx_quote_helper.platform import PROVISIONING_SECRET_FILE, EnclaveIdentity, Platform
from sgx_quote_helper.samples import _crypto
from sgx_quote_helper.samples._channel import FramedChannel
from sgx_quote_helper.samples._errors import (
    ChannelError,
    ExchangeError,
    PeerRejectedError,
    RefusedByPeerError,
)
from sgx_quote_helper.sgx import Quote
from sgx_quote_helper.verify import (
    AcceptStatuses,
    AllOf,
    MrEnclave,
    MrSigner,
    NoDebug,
    ReportData,
    TrustAnchor,
    UnsafeNoAppraisal,
    VerificationResult,
    Verifier,
)

#: Step names, in order (the ``step`` of every :class:`Event`).
STEPS = (
    "platform",
    "key",
    "quote",
    "send_evidence",
    "receive_evidence",
    "verify_peer",
    "peer_verdict",
    "session_key",
    "send_message",
    "receive_message",
)


@dataclass(frozen=True)
class PeerExpectation:
    """What this application accepts from its peer."""

    mr_enclave: bytes
    mr_signer: bytes
    accept_statuses: tuple[str, ...] = ("UpToDate",)

    @classmethod
    def from_identity(
        cls, identity: EnclaveIdentity, accept_statuses: tuple[str, ...] = ("UpToDate",)
    ) -> PeerExpectation:
        return cls(identity.mr_enclave, identity.mr_signer, accept_statuses)


@dataclass(frozen=True)
class PartyConfig:
    name: str
    identity: EnclaveIdentity
    platform_dir: Path
    peer: PeerExpectation
    #: The trust anchor, passed explicitly (the simulated root: ``DIR/pcs/root-ca.der``).
    root_ca: Path
    #: The PCCS for the peer's collateral (and, in process, our PCK certificate).
    pccs_url: str
    message: str
    #: In-process mode only: the QE3 ISVSVN bundled into this application.
    qe_svn: int | None = None
    #: In-process mode only: where this application's own QE keeps its sealed key.
    state_dir: Path | None = None


@dataclass(frozen=True)
class Event:
    party: str
    step: str
    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"party": self.party, "step": self.step, "ok": self.ok, **self.detail}


@dataclass(frozen=True)
class ExchangeResult:
    """A completed exchange: both sides attested and one message went each way."""

    name: str
    peer_name: str
    mode: str
    where: str
    mr_enclave: str
    mr_signer: str
    qe_svn: int
    pce_svn: int
    peer_status: str
    peer_qv_result: str
    peer_qe_svn: int
    peer_mr_enclave: str
    key_fingerprint: str
    sent: str
    received: str

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, **asdict(self)}


EventSink = Callable[[Event], None]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _untrusted(value: object, limit: int) -> str:
    """Text the peer sent, made safe to print: printable characters only, bounded."""
    text = "".join(ch for ch in str(value) if ch.isprintable())
    return text if len(text) <= limit else text[:limit] + "…"


def _provisioning_view(platform_dir: Path) -> str:
    secret = platform_dir / PROVISIONING_SECRET_FILE
    if not secret.exists():
        return "absent"
    return "readable, not used" if os.access(secret, os.R_OK) else "not readable"


@dataclass(frozen=True)
class _Quoted:
    """How our quote was made: the mode, where, and the QE and PCE that made it."""

    mode: str
    where: str
    qe_svn: int
    pce_svn: int


class _Party:
    def __init__(self, config: PartyConfig, channel: FramedChannel, sink: EventSink) -> None:
        self.config = config
        self.channel = channel
        self.sink = sink
        self.peer_name = "peer"

    def emit(self, step: str, ok: bool = True, **detail: Any) -> None:
        self.sink(Event(self.config.name, step, ok, detail))

    def run(self) -> ExchangeResult:
        try:
            return self._run()
        except ExchangeError as exc:
            self._tell_peer(exc)
            raise

    def _tell_peer(self, exc: ExchangeError) -> None:
        """Best effort: a peer waiting on us learns why we stopped, instead of timing out."""
        if isinstance(exc, ChannelError | RefusedByPeerError | PeerRejectedError):
            return  # the channel is gone, the peer stopped first, or the verdict was sent
        with contextlib.suppress(ChannelError):
            self.channel.send({"type": "abort", "reason": exc.diagnostics(guide)}, step=exc.step)

    def _run(self) -> ExchangeResult:
        config = self.config
        platform = self._load_platform()  # 1
        key, public, report_data = self._new_key()  # 2
        quote, quoted = self._quote(platform, report_data)  # 3
        peer_public, peer_quote = self._exchange_evidence(public, quote)  # 4, 5
        result = self._verify_peer(peer_quote, peer_public)  # 6: the verdict goes to the peer
        self._await_verdict()  # 7
        session_key = self._session_key(key, public, peer_public)  # 8
        plaintext = self._exchange_messages(session_key, public, peer_public)  # 9, 10
        identity = config.identity
        return ExchangeResult(
            name=config.name,
            peer_name=self.peer_name,
            mode=quoted.mode,
            where=quoted.where,
            mr_enclave=identity.mr_enclave.hex(),
            mr_signer=identity.mr_signer.hex(),
            qe_svn=quoted.qe_svn,
            pce_svn=quoted.pce_svn,
            peer_status=result.status.value,
            peer_qv_result=result.qv_result.c_name,
            peer_qe_svn=result.header.qe_svn,
            peer_mr_enclave=result.report.mr_enclave.hex(),
            key_fingerprint=_crypto.key_fingerprint(session_key),
            sent=config.message,
            received=plaintext,
        )

    def _load_platform(self) -> Platform:
        """1. The platform as an application sees it: no provisioning secret."""
        config, identity = self.config, self.config.identity
        try:
            platform = Platform.load(config.platform_dir, need_provisioning=False)
        except SgxQuoteHelperError as exc:
            raise ExchangeError(
                "platform", exc.diagnostics(guide), cause_type=type(exc).__name__
            ) from exc
        self.emit(
            "platform",
            platform=str(config.platform_dir),
            enclave=identity.name,
            mr_enclave=identity.mr_enclave.hex(),
            mr_signer=identity.mr_signer.hex(),
            loaded_provisioning_secret=platform.has_provisioning_access,
            provisioning_secret=_provisioning_view(config.platform_dir),
        )
        return platform

    def _new_key(self) -> tuple[ec.EllipticCurvePrivateKey, bytes, bytes]:
        """2. A fresh key pair, bound into REPORTDATA."""
        key = _crypto.generate_key()
        public = _crypto.public_bytes(key)
        report_data = _crypto.report_data_for(public)
        self.emit("key", public_key_sha256=_sha256(public), report_data=report_data.hex())
        return key, public, report_data

    def _quote(self, platform: Platform, report_data: bytes) -> tuple[bytes, _Quoted]:
        """3. The quote, through whichever mode ``SGX_AESM_ADDR`` selects."""
        config = self.config
        options: dict[str, Any] = {"pccs_url": config.pccs_url}
        if config.qe_svn is not None:
            options["qe_svn"] = config.qe_svn
        if config.state_dir is not None:
            options["state_dir"] = config.state_dir
        try:
            quoter = client.quoter(platform_dir=config.platform_dir, **options)
            target = quoter.get_target_info()
            report = platform.cpu().ereport(config.identity, target, report_data)
            quote = quoter.get_quote(report)
        except SgxQuoteHelperError as exc:
            raise ExchangeError(
                "quote", exc.diagnostics(guide), cause_type=type(exc).__name__
            ) from exc
        header = Quote.from_bytes(quote).header
        quoted = _Quoted(quoter.mode.value, quoter.describe(), header.qe_svn, header.pce_svn)
        self.emit(
            "quote",
            mode=quoted.mode,
            via=quoted.where,
            qe_svn=quoted.qe_svn,
            pce_svn=quoted.pce_svn,
            size=len(quote),
        )
        return quote, quoted

    def _exchange_evidence(self, public: bytes, quote: bytes) -> tuple[bytes, bytes]:
        """4. Send our quote and public key; 5. receive the peer's."""
        evidence = {
            "type": "evidence",
            "name": self.config.name,
            "public_key": public.hex(),
            "quote": base64.b64encode(quote).decode(),
        }
        self.channel.send(evidence, step="send_evidence")
        self.emit("send_evidence", quote_size=len(quote))
        message = self._receive("receive_evidence", "evidence")
        peer_public, peer_quote = self._parse_evidence(message)
        self.emit(
            "receive_evidence",
            peer=self.peer_name,
            public_key_sha256=_sha256(peer_public),
            quote_size=len(peer_quote),
        )
        return peer_public, peer_quote

    def _await_verdict(self) -> None:
        """7. The peer's verdict on our evidence; a refusal stops us with its reason."""
        verdict = self._receive("peer_verdict", "verdict")
        if verdict.get("accepted") is not True:
            reason = _untrusted(verdict.get("reason", "no reason given"), 2000)
            self.emit("peer_verdict", ok=False, accepted=False, reason=reason)
            raise RefusedByPeerError(
                "peer_verdict",
                f"{self.peer_name} refused our evidence: {reason}",
                cause_type=_untrusted(verdict.get("error", "RefusedByPeerError"), 64),
            )
        self.emit("peer_verdict", accepted=True, our_status=_untrusted(verdict.get("status"), 64))

    def _session_key(
        self, key: ec.EllipticCurvePrivateKey, public: bytes, peer_public: bytes
    ) -> bytes:
        """8. ECDH with the peer's attested key, then HKDF-SHA256 over both public keys."""
        try:
            session_key = _crypto.derive_session_key(key, public, peer_public)
        except _crypto.KeyAgreementError as exc:
            raise ExchangeError("session_key", str(exc), cause_type=type(exc).__name__) from exc
        fingerprint = _crypto.key_fingerprint(session_key)
        self.emit("session_key", kdf="HKDF-SHA256", cipher="AES-256-GCM", fingerprint=fingerprint)
        return session_key

    def _exchange_messages(self, session_key: bytes, public: bytes, peer_public: bytes) -> str:
        """9. One AES-256-GCM message to the peer; 10. one from it, opened."""
        config = self.config
        nonce, ciphertext = _crypto.seal(session_key, config.message.encode(), public)
        sealed = {"type": "message", "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}
        self.channel.send(sealed, step="send_message")
        self.emit("send_message", plaintext=config.message, ciphertext_size=len(ciphertext))
        received = self._receive("receive_message", "message")
        try:
            plaintext = _crypto.open_sealed(
                session_key,
                bytes.fromhex(str(received.get("nonce", ""))),
                bytes.fromhex(str(received.get("ciphertext", ""))),
                peer_public,
            ).decode()
        except (ValueError, _crypto.KeyAgreementError) as exc:
            raise ExchangeError("receive_message", str(exc), cause_type=type(exc).__name__) from exc
        self.emit("receive_message", plaintext=plaintext)
        return plaintext

    def _receive(self, step: str, expected: str) -> dict[str, Any]:
        message = self.channel.receive(step=step)
        kind = message["type"]
        if kind == "abort":
            reason = _untrusted(message.get("reason", "no reason given"), 2000)
            self.emit(step, ok=False, reason=f"{self.peer_name} stopped: {reason}")
            raise RefusedByPeerError(step, f"{self.peer_name} stopped: {reason}")
        if kind != expected:
            raise ChannelError(step, f"expected a {expected!r} message, got {kind!r}")
        return message

    def _parse_evidence(self, message: dict[str, Any]) -> tuple[bytes, bytes]:
        self.peer_name = _untrusted(message.get("name", ""), 64) or "peer"
        try:
            public = bytes.fromhex(str(message["public_key"]))
            quote = base64.b64decode(str(message["quote"]), validate=True)
        except (KeyError, ValueError, binascii.Error) as exc:
            reason = f"the evidence of {self.peer_name} is malformed: {exc!r}"
            self._refuse("receive_evidence", reason, "MalformedEvidence")
            raise PeerRejectedError(
                "receive_evidence", reason, cause_type="MalformedEvidence"
            ) from None
        return public, quote

    def _refuse(self, step: str, reason: str, error: str) -> None:
        """Tell the peer we refuse its evidence; best effort (it may have gone already)."""
        with contextlib.suppress(ChannelError):
            self.channel.send(
                {"type": "verdict", "accepted": False, "reason": reason, "error": error},
                step=step,
            )

    def _verify_peer(self, peer_quote: bytes, peer_public: bytes) -> VerificationResult:
        config = self.config
        expected = config.peer
        policy = AllOf(
            MrEnclave(expected.mr_enclave),
            MrSigner(expected.mr_signer),
            ReportData(_crypto.report_data_for(peer_public)),
            AcceptStatuses(*expected.accept_statuses),
            NoDebug(),
        )
        status: str | None = None
        try:
            # A new verifier without a cache: collateral is fetched now, so a TCB
            # recovery published a moment ago is what the verdict reflects.
            # Verify first without appraising, so a refusal can name the peer's status.
            with Verifier(TrustAnchor.from_file(config.root_ca), pccs=config.pccs_url) as verifier:
                result = verifier.verify(peer_quote, policy=UnsafeNoAppraisal())
            status = result.status.value
            policy.appraise(result)
        except SgxQuoteHelperError as exc:
            reason = exc.diagnostics(guide)
            error = type(exc).__name__
            detail: dict[str, Any] = {"error": error, "reason": reason}
            if status is not None:
                detail["status"] = status
            self.emit("verify_peer", ok=False, **detail)
            self._refuse("verify_peer", reason, error)
            raise PeerRejectedError(
                "verify_peer",
                f"the evidence of {self.peer_name} is not accepted: {reason}",
                cause_type=error,
                status=status,
            ) from exc
        self.channel.send(
            {"type": "verdict", "accepted": True, "status": status}, step="verify_peer"
        )
        self.emit(
            "verify_peer",
            status=result.status.value,
            qv_result=result.qv_result.c_name,
            advisories=list(result.advisory_ids),
            simulated=result.simulated,
            peer_qe_svn=result.header.qe_svn,
            mr_enclave=result.report.mr_enclave.hex(),
            mr_signer=result.report.mr_signer.hex(),
            report_data_binding="ok",
            tcb_evaluation_data_number=result.tcb_evaluation_data_number,
            policy=repr(policy),
        )
        return result


def run_party(config: PartyConfig, channel: FramedChannel, sink: EventSink) -> ExchangeResult:
    """Run one side of the exchange over a connected ``channel``.

    Returns the result when both sides attested and exchanged a message; raises
    an :class:`ExchangeError` leaf otherwise (after telling the peer why).
    """
    return _Party(config, channel, sink).run()
