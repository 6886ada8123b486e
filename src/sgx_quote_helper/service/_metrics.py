"""Prometheus metrics of the quote helper daemon.

Each daemon instance owns its registry, so several daemons can run in one
process (tests, the demo) without clashing. Labelled children are looked up
once and kept (``labels()`` hashes and locks on every call), and gauges that
mirror state the daemon already holds are computed when scraped, so counting a
request costs one locked increment.
"""

from __future__ import annotations

import time

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from sgx_quote_helper._version import __version__
from sgx_quote_helper.aesm import MessageKind
from sgx_quote_helper.sgx import AesmError

_PREFIX = "sgx_quote_helper"

# Quote latency spans tens of microseconds (simulated QE) to tens of
# milliseconds (a real QE under load); the buckets cover both ends.
_LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1.0,
)


class DaemonMetrics:
    """The daemon's metrics, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info(f"{_PREFIX}_build", "Daemon release and hosted enclaves", registry=r)
        self.requests = Counter(
            f"{_PREFIX}_requests",
            "AESM requests answered, by request type and AESM result code name",
            ["type", "result"],
            registry=r,
        )
        self.dropped = Counter(
            f"{_PREFIX}_dropped_requests",
            "Connections closed without a reply, by reason",
            ["reason"],
            registry=r,
        )
        self.quote_latency = Histogram(
            f"{_PREFIX}_quote_latency_seconds",
            "Time to produce one quote (GetQuoteEx), from decoded request to encoded reply",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.active_connections = Gauge(
            f"{_PREFIX}_active_connections",
            "Client connections open now (accepted, not yet answered and closed)",
            registry=r,
        )
        self.connections = Counter(
            f"{_PREFIX}_connections",
            "Client connections accepted, by peer uid",
            ["uid"],
            registry=r,
        )
        self.rejected_peers = Counter(
            f"{_PREFIX}_rejected_peers",
            "Connections refused before reading a byte, by reason: not_allowed (uid/gid "
            "allow-list), uid_quota (the peer's uid holds its quota of connections, all "
            "with requests), capacity (max connections open, all with requests)",
            ["reason"],
            registry=r,
        )
        self.evicted_connections = Counter(
            f"{_PREFIX}_evicted_connections",
            "Connections without a whole request closed to admit a new one, by reason: "
            "uid_quota (the same uid was at its quota), capacity (max connections open)",
            ["reason"],
            registry=r,
        )
        self.accept_errors = Counter(
            f"{_PREFIX}_accept_errors",
            "accept() failures for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM), "
            "by listener (aesm, admin); the listener pauses for a second after each",
            ["listener"],
            registry=r,
        )
        self.qe_svn = Gauge(f"{_PREFIX}_qe_svn", "ISVSVN of the hosted Quoting Enclave", registry=r)
        self.pce_svn = Gauge(f"{_PREFIX}_pce_svn", "ISVSVN of the hosted PCE", registry=r)
        self.attestation_key_created = Gauge(
            f"{_PREFIX}_attestation_key_created_timestamp_seconds",
            "When the current attestation key was generated (Unix time; 0 before it is ready)",
            registry=r,
        )
        self.attestation_key_age = Gauge(
            f"{_PREFIX}_attestation_key_age_seconds",
            "Age of the current attestation key (0 before it is ready)",
            registry=r,
        )
        self.attestation_key_age.set_function(self._key_age)
        self.ready = Gauge(
            f"{_PREFIX}_ready", "1 when the daemon can produce quotes, else 0", registry=r
        )
        self.pck_fetches = Counter(
            f"{_PREFIX}_pck_chain_fetches",
            "Attempts to fetch the PCK certificate chain, by outcome",
            ["outcome"],
            registry=r,
        )
        self.pck_chain_not_after = Gauge(
            f"{_PREFIX}_pck_chain_not_after_timestamp_seconds",
            "Earliest notAfter of the PCK certificate chain put into quotes "
            "(Unix time; 0 before a chain is loaded)",
            registry=r,
        )
        self.sealed_key_replaced = Counter(
            f"{_PREFIX}_sealed_key_replaced",
            "Sealed attestation keys found corrupt and replaced",
            registry=r,
        )

        self.upstream_failures = Counter(
            f"{_PREFIX}_upstream_failures",
            "Exchanges with the upstream AESM (proxy backend) that gave no usable reply, "
            "by reason (unreachable, timeout, closed, malformed); each cost a client "
            "AESM_SERVICE_UNAVAILABLE",
            ["reason"],
            registry=r,
        )

        self._key_created = 0.0
        self._requests: dict[tuple[int, int], Counter] = {}
        self._dropped: dict[str, Counter] = {}
        self._rejected: dict[str, Counter] = {}
        self._evicted: dict[str, Counter] = {}
        self._connections: dict[int, Counter] = {}

    # -- per request: cached children ------------------------------------------

    def request_answered(self, kind: int, error_code: int) -> None:
        """Count one reply; ``kind`` is a MessageKind, ``error_code`` the AESM code."""
        child = self._requests.get((kind, error_code))
        if child is None:
            child = self.requests.labels(type=_kind_name(kind), result=_result_name(error_code))
            self._requests[kind, error_code] = child
        child.inc()

    def dropped_request(self, reason: str) -> None:
        child = self._dropped.get(reason)
        if child is None:
            child = self._dropped[reason] = self.dropped.labels(reason=reason)
        child.inc()

    def rejected(self, reason: str) -> None:
        child = self._rejected.get(reason)
        if child is None:
            child = self._rejected[reason] = self.rejected_peers.labels(reason=reason)
        child.inc()

    def evicted(self, reason: str) -> None:
        child = self._evicted.get(reason)
        if child is None:
            child = self._evicted[reason] = self.evicted_connections.labels(reason=reason)
        child.inc()

    def connection_from(self, uid: int) -> None:
        child = self._connections.get(uid)
        if child is None:
            child = self._connections[uid] = self.connections.labels(uid=str(uid))
        child.inc()

    def upstream_failed(self, reason: str) -> None:
        self.upstream_failures.labels(reason=reason).inc()

    def key_created(self, timestamp: float) -> None:
        """Record when the attestation key in use was generated (Unix time)."""
        self._key_created = timestamp
        self.attestation_key_created.set(timestamp)

    def pck_chain_loaded(self, chain_pem: str) -> None:
        """Record the PCK chain (leaf, CA, root; PEM) now put into quotes."""
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
        not_after = min(cert.not_valid_after_utc for cert in certificates)
        self.pck_chain_not_after.set(not_after.timestamp())

    def _key_age(self) -> float:
        created = self._key_created
        return max(0.0, time.time() - created) if created else 0.0

    def describe_release(self, backend: str, qe_svn: int, pce_svn: int, simulated: bool) -> None:
        self.build_info.info(
            {
                "version": __version__,
                "backend": backend,
                "qe_svn": str(qe_svn),
                "pce_svn": str(pce_svn),
                "simulated": str(simulated).lower(),
            }
        )
        self.qe_svn.set(qe_svn)
        self.pce_svn.set(pce_svn)


def _kind_name(kind: int) -> str:
    try:
        return MessageKind(kind).name
    except ValueError:
        return str(kind)


def _result_name(code: int) -> str:
    try:
        return AesmError(code).name
    except ValueError:
        return str(code)
