"""The per-request metrics, counted in plain integers, export what prometheus_client would.

``DaemonMetrics`` counts replies, connections and quote latencies without
prometheus_client's locked increments and hands the values over at scrape
time. The exposition must be exactly what the library's own ``Counter`` and
``Histogram`` give for the same events (names, help, labels, bucket edges,
sums), ``_created`` timestamps aside, which differ by construction time.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from sgx_quote_helper.aesm import MessageKind
from sgx_quote_helper.service import DaemonMetrics
from sgx_quote_helper.service._metrics import _LATENCY_BUCKETS
from sgx_quote_helper.sgx import AesmError

_PER_REQUEST = ("sgx_quote_helper_requests", "sgx_quote_helper_connections")
_HISTOGRAM = "sgx_quote_helper_quote_latency_seconds"

# Replies: message kinds (known and not) with AESM codes (known and not).
_REPLIES = st.lists(
    st.tuples(
        st.sampled_from([int(MessageKind.GET_QUOTE_EX), int(MessageKind.INIT_QUOTE_EX), 99]),
        st.sampled_from([0, int(AesmError.PARAMETER_ERROR), int(AesmError.NETWORK_ERROR), 4242]),
    ),
    max_size=30,
)
# Latencies on and around every bucket edge, and beyond the last one.
_EDGES = [0.0, *_LATENCY_BUCKETS, 3.5]
_LATENCIES = st.lists(
    st.one_of(
        st.sampled_from(_EDGES),
        st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
    ),
    max_size=30,
)


def _name(enumeration: type[MessageKind] | type[AesmError], value: int) -> str:
    try:
        return enumeration(value).name
    except ValueError:
        return str(value)


def _reference(
    replies: list[tuple[int, int]], uids: list[int], latencies: list[float]
) -> CollectorRegistry:
    """The same events through prometheus_client's own metric classes."""
    registry = CollectorRegistry()
    requests = Counter(
        "sgx_quote_helper_requests",
        "AESM requests answered, by request type and AESM result code name",
        ["type", "result"],
        registry=registry,
    )
    latency = Histogram(
        _HISTOGRAM,
        "Time to produce one quote (GetQuoteEx), from decoded request to encoded reply",
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    connections = Counter(
        "sgx_quote_helper_connections",
        "Client connections accepted, by peer uid",
        ["uid"],
        registry=registry,
    )
    for kind, code in replies:
        requests.labels(type=_name(MessageKind, kind), result=_name(AesmError, code)).inc()
    for uid in uids:
        connections.labels(uid=str(uid)).inc()
    for value in latencies:
        latency.observe(value)
    return registry


def _exposition(registry: CollectorRegistry, names: tuple[str, ...]) -> list[str]:
    """The text lines of the named families, without ``_created`` values."""
    lines = []
    for line in generate_latest(registry).decode().splitlines():
        sample = line.split(" ", 3)[2] if line.startswith("#") else line
        if not sample.startswith(names):
            continue
        lines.append(re.sub(r"^(\S+_created(\{[^}]*\})?) \S+$", r"\1 <time>", line))
    return lines


@given(
    replies=_REPLIES,
    uids=st.lists(st.sampled_from([0, 65534, 1000]), max_size=10),
    latencies=_LATENCIES,
)
def test_exports_what_prometheus_client_would(
    replies: list[tuple[int, int]], uids: list[int], latencies: list[float]
) -> None:
    metrics = DaemonMetrics()
    for kind, code in replies:
        metrics.request_answered(kind, code)
    for uid in uids:
        metrics.connection_from(uid)
    for value in latencies:
        metrics.quote_served(value)
    names = (*_PER_REQUEST, _HISTOGRAM)
    expected = _exposition(_reference(replies, uids, latencies), names)
    assert _exposition(metrics.registry, names) == expected
    # Scraping does not change what is counted.
    assert _exposition(metrics.registry, names) == expected


def test_counts_go_on_after_a_scrape() -> None:
    metrics = DaemonMetrics()
    metrics.request_answered(MessageKind.GET_QUOTE_EX, 0)
    metrics.quote_served(0.0003)
    generate_latest(metrics.registry)
    metrics.request_answered(MessageKind.GET_QUOTE_EX, 0)
    metrics.quote_served(0.0003)
    text = generate_latest(metrics.registry).decode()
    assert 'sgx_quote_helper_requests_total{result="SUCCESS",type="GET_QUOTE_EX"} 2.0' in text
    assert "sgx_quote_helper_quote_latency_seconds_count 2.0" in text
    assert 'sgx_quote_helper_quote_latency_seconds_bucket{le="0.0005"} 2.0' in text
    assert 'sgx_quote_helper_quote_latency_seconds_bucket{le="0.00025"} 0.0' in text
