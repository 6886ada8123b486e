"""Prometheus metrics of the quote helper daemon.

Each daemon instance owns its registry, so several daemons can run in one
process (tests, the demo) without clashing. Labelled children are looked up
once and kept (``labels()`` hashes and locks on every call), and gauges that
mirror state the daemon already holds are computed when scraped.

What every request counts (requests by type and result, connections by uid,
the quote latency histogram) is counted in plain integers on the event loop
and handed to prometheus_client when scraped, through a custom collector (the
library's documented pattern for values kept elsewhere): a locked increment
per metric and request was a measurable part of the daemon's CPU per quote.
The exported families are the library's own: each collector wraps an
unregistered ``Counter`` or ``Histogram`` whose children are created at the
first count, as before, so names, help, labels and ``_created`` samples are
unchanged; only the counted values come from the integers.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

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


_K = TypeVar("_K", bound=Hashable)
_INF = float("inf")


class _LoopCounter(Collector, Generic[_K]):
    """A labelled counter counted in plain integers by one thread (the event loop).

    ``labels_of`` turns a count key into the label values; it runs once per
    key, when the key is first counted, which is also when the wrapped
    counter's child (and so its ``_created`` time) comes to exist.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        labels_of: Callable[[_K], Sequence[str]],
    ) -> None:
        self._counter = Counter(name, documentation, labelnames, registry=None)
        self._labelnames = tuple(labelnames)
        self._labels_of = labels_of
        self._counts: dict[_K, int] = {}
        self._labels: dict[_K, tuple[str, ...]] = {}

    def inc(self, key: _K) -> None:
        try:
            self._counts[key] += 1
        except KeyError:
            self._add(key)

    def _add(self, key: _K) -> None:
        labels = self._labels[key] = tuple(self._labels_of(key))
        self._counter.labels(*labels)  # the child, and its _created time, exist from now
        self._counts[key] = 1

    def describe(self) -> Iterable[Metric]:
        return self._counter.describe()

    def collect(self) -> Iterable[Metric]:
        counts = self._counts.copy()  # one C call: consistent under the GIL
        totals: dict[tuple[str, ...], float] = {}
        for key, count in counts.items():
            labels = self._labels[key]
            totals[labels] = totals.get(labels, 0.0) + count
        names = self._labelnames
        families = self._counter.collect()
        for family in families:
            family.samples = [
                sample._replace(value=totals[tuple(sample.labels[name] for name in names)])
                if sample.name.endswith("_total")
                else sample
                for sample in family.samples
            ]
        return families


class _LoopHistogram(Collector):
    """An unlabelled histogram observed in plain numbers by one thread (the event loop).

    An observation lands in the first bucket whose upper bound is at least the
    value, and the sum adds values in the order observed, as
    ``Histogram.observe`` does.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._histogram = Histogram(name, documentation, buckets=buckets, registry=None)
        bounds = [float(bound) for bound in buckets]
        if bounds[-1] != _INF:
            bounds.append(_INF)  # as Histogram adds it
        self._bounds = tuple(bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self._bounds, value)] += 1
        self._sum += value

    def describe(self) -> Iterable[Metric]:
        return self._histogram.describe()

    def collect(self) -> Iterable[Metric]:
        counts, total = self._counts.copy(), self._sum
        cumulative, running = [], 0
        for count in counts:
            running += count
            cumulative.append(float(running))
        families = self._histogram.collect()
        for family in families:
            samples = []
            buckets = iter(cumulative)
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    sample = sample._replace(value=next(buckets))
                elif sample.name.endswith("_count"):
                    sample = sample._replace(value=float(running))
                elif sample.name.endswith("_sum"):
                    sample = sample._replace(value=total)
                samples.append(sample)
            family.samples = samples
        return families


class DaemonMetrics:
    """The daemon's metrics, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Info(f"{_PREFIX}_build", "Daemon release and hosted enclaves", registry=r)
        # Counted per request: see the module docstring.
        self._requests = _LoopCounter[tuple[int, int]](
            f"{_PREFIX}_requests",
            "AESM requests answered, by request type and AESM result code name",
            ["type", "result"],
            lambda key: (_kind_name(key[0]), _result_name(key[1])),
        )
        r.register(self._requests)
        self.dropped = Counter(
            f"{_PREFIX}_dropped_requests",
            "Connections closed without a reply, by reason",
            ["reason"],
            registry=r,
        )
        self._quote_latency = _LoopHistogram(
            f"{_PREFIX}_quote_latency_seconds",
            "Time to produce one quote (GetQuoteEx), from decoded request to encoded reply",
            _LATENCY_BUCKETS,
        )
        r.register(self._quote_latency)
        self.active_connections = Gauge(
            f"{_PREFIX}_active_connections",
            "Client connections open now (accepted, not yet answered and closed)",
            registry=r,
        )
        self._connections = _LoopCounter[int](
            f"{_PREFIX}_connections",
            "Client connections accepted, by peer uid",
            ["uid"],
            lambda uid: (str(uid),),
        )
        r.register(self._connections)
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
        self._dropped: dict[str, Counter] = {}
        self._rejected: dict[str, Counter] = {}
        self._evicted: dict[str, Counter] = {}

    # -- per request: plain counts on the event loop ---------------------------

    def request_answered(self, kind: int, error_code: int) -> None:
        """Count one reply; ``kind`` is a MessageKind, ``error_code`` the AESM code.

        Called on the event loop only (replies from the worker pool are
        counted back on the loop), like :meth:`quote_served` and
        :meth:`connection_from`.
        """
        self._requests.inc((kind, error_code))

    def quote_served(self, seconds: float) -> None:
        """Observe the latency of one successful GetQuoteEx."""
        self._quote_latency.observe(seconds)

    def connection_from(self, uid: int) -> None:
        self._connections.inc(uid)

    # -- rarer events: cached children -------------------------------------------

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

    def quoted_svns(self, qe_svn: int, pce_svn: int) -> None:
        """The SVNs of the QE3 and PCE that made the latest quote (from its header)."""
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
