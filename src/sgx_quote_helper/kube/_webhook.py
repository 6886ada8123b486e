"""The admission webhook's HTTPS server: ``POST /mutate``, ``GET /healthz``, ``GET /metrics``.

The API server only calls webhooks over TLS. The certificate and key are files
(a Secret mounted into the pod, e.g. written by cert-manager); they are
re-read when they change, so a renewed certificate is served without a restart.
Any request body that is not an AdmissionReview of a Pod gets a 400 with the
reason; nothing a client sends makes the server fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sgx_quote_helper._http import uvicorn_config
from sgx_quote_helper._logging import RateLimitedLog, log_event
from sgx_quote_helper.kube._admission import review
from sgx_quote_helper.kube._errors import AdmissionReviewError, KubeError
from sgx_quote_helper.kube._names import ResourceNames

log = logging.getLogger("sgx_quote_helper.kube.webhook")

MUTATE_PATH = "/mutate"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
#: How a review ended: a patch sent, nothing to change, the pod refused, or a bad request.
REVIEW_OUTCOMES = ("mutated", "unchanged", "refused", "bad_request")
#: An AdmissionReview carries the object (and oldObject); etcd caps objects at 1.5 MiB.
MAX_REVIEW_BYTES = 4 * 1024 * 1024
CERT_RELOAD_INTERVAL = 10.0


class WebhookMetrics:
    """The webhook's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reviews = Counter(
            "sgx_quote_helper_webhook_reviews_total",
            "AdmissionReviews answered, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.outcomes = {outcome: self.reviews.labels(outcome) for outcome in REVIEW_OUTCOMES}
        self.patch_operations = Counter(
            "sgx_quote_helper_webhook_patch_operations_total",
            "JSON Patch operations sent to the API server",
            registry=self.registry,
        )


def create_webhook_app(
    names: ResourceNames | None = None, metrics: WebhookMetrics | None = None
) -> Starlette:
    """The ASGI application (no TLS: the server adds it)."""
    resource_names = names or ResourceNames()
    counters = metrics or WebhookMetrics()
    # Any client that reaches the port can send bad reviews: their lines are rate-limited.
    bad_reviews = RateLimitedLog(log)

    async def mutate(request: Request) -> Response:
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_REVIEW_BYTES:
                    counters.outcomes["bad_request"].inc()
                    return _bad_request(f"the body exceeds {MAX_REVIEW_BYTES} bytes", 413)
        except ClientDisconnect:
            # The client went away mid-body, or sent a body HTTP cannot parse (a bad
            # chunk: answered 400 and logged as http.bad_request below us). Nobody
            # is left to read an answer.
            counters.outcomes["bad_request"].inc()
            return _bad_request("the request body did not arrive", 400)
        try:
            outcome = review(bytes(body), resource_names)
        except AdmissionReviewError as exc:
            counters.outcomes["bad_request"].inc()
            bad_reviews.log(logging.WARNING, "webhook.bad_review", reason=str(exc))
            return _bad_request(str(exc), 400)
        answer = outcome.response["response"]
        if not answer["allowed"]:
            counters.outcomes["refused"].inc()
        elif outcome.patch:
            counters.outcomes["mutated"].inc()
            counters.patch_operations.inc(len(outcome.patch))
        else:
            counters.outcomes["unchanged"].inc()
        log_event(
            log,
            logging.INFO,
            "webhook.reviewed",
            uid=answer["uid"],
            pod=outcome.pod,
            allowed=answer["allowed"],
            operations=len(outcome.patch),
        )
        return JSONResponse(outcome.response)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics_page(_: Request) -> Response:
        return Response(generate_latest(counters.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(MUTATE_PATH, mutate, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            Route(METRICS_PATH, metrics_page, methods=["GET"]),
        ]
    )


def _bad_request(reason: str, status: int) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


@dataclass(frozen=True)
class TlsFiles:
    """The serving certificate chain and key (PEM files)."""

    cert: Path
    key: Path

    def stamp(self) -> tuple[float, ...]:
        return tuple(os.stat(path).st_mtime for path in (self.cert, self.key))


class _CertificateReloader:
    """Loads a changed certificate into the live SSL context (new handshakes use it)."""

    def __init__(self, context: ssl.SSLContext, files: TlsFiles) -> None:
        self.context = context
        self.files = files
        self._stamp = files.stamp()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cert-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> bool:
        """Reload when the files changed; ``True`` when a new certificate was loaded."""
        try:
            stamp = self.files.stamp()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.files.cert, self.files.key)
        except (OSError, ssl.SSLError) as exc:
            # Mid-rotation (one file written, not the other): keep serving the old
            # certificate and try again on the next tick.
            log_event(log, logging.WARNING, "webhook.cert_reload_failed", error=str(exc))
            return False
        self._stamp = stamp
        log_event(log, logging.INFO, "webhook.cert_reloaded", cert=str(self.files.cert))
        return True

    def _run(self) -> None:
        while not self._stop.wait(CERT_RELOAD_INTERVAL):
            self.check()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server whose signal handlers only set the exit flag (exit 0 on SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def _prepare(
    host: str, port: int, tls: TlsFiles, names: ResourceNames | None
) -> tuple[_Server, socket.socket, _CertificateReloader]:
    """Load the certificate and bind: everything that can fail, before serving."""
    config = uvicorn_config(
        create_webhook_app(names),
        "webhook",
        ssl_certfile=str(tls.cert),
        ssl_keyfile=str(tls.key),
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise KubeError(
            f"cannot load the webhook's TLS certificate {tls.cert} / key {tls.key}: {exc}; "
            "check the mounted Secret (tls.crt and tls.key, PEM)"
        ) from None
    assert config.ssl is not None
    try:
        sock = _bind(host, port)
    except OSError as exc:
        raise KubeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return _Server(config), sock, _CertificateReloader(config.ssl, tls)


def serve_webhook(host: str, port: int, tls: TlsFiles, names: ResourceNames | None = None) -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    server, sock, reloader = _prepare(host, port, tls, names)
    bound = sock.getsockname()
    log_event(log, logging.INFO, "webhook.listening", host=bound[0], port=bound[1])
    reloader.start()
    try:
        server.run(sockets=[sock])
    finally:
        reloader.stop()
        sock.close()
    log_event(log, logging.INFO, "webhook.stopped")


@dataclass(frozen=True)
class RunningWebhook:
    url: str
    port: int
    reloader: _CertificateReloader


@contextlib.contextmanager
def webhook_in_thread(
    tls: TlsFiles,
    names: ResourceNames | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> Iterator[RunningWebhook]:
    """The webhook on ``host:port`` (0: ephemeral) in a thread; stopped and joined on exit."""
    server, sock, reloader = _prepare(host, port, tls, names)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="webhook", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise KubeError("the webhook did not start")
            time.sleep(0.01)
        bound_port = sock.getsockname()[1]
        yield RunningWebhook(url=f"https://{host}:{bound_port}", port=bound_port, reloader=reloader)
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
