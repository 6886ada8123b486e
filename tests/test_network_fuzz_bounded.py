"""The bounded part of the network fuzzer and the soak (``fuzz/network.py``).

A live daemon process gets random and mutated frames, oversized headers, half
frames and stalled clients on many concurrent connections while quote clients
ask for quotes: every quote must succeed and check out (a sample is fully
verified), and the daemon must keep running with bounded memory.
"""

from __future__ import annotations

from pathlib import Path

from fuzz.network import run


def test_hostile_connections_do_not_break_valid_quotes(tmp_path: Path) -> None:
    figures = run(
        quotes=300, quote_clients=4, hostile_clients=12, verify_every=100, seed=7, work=tmp_path
    )
    assert figures.failures == []
    assert figures.quotes_ok == 300
    assert figures.quotes_verified == 3
    assert figures.garbage_sent >= 12
    assert figures.daemon_exit is None  # still running when the clients were done
    assert figures.rss_end_kb < 2 * figures.rss_warm_kb


def test_soak_with_a_fault_every_few_requests(tmp_path: Path) -> None:
    figures = run(
        quotes=400,
        quote_clients=8,
        hostile_clients=0,
        fault_every=20,
        verify_every=200,
        seed=3,
        work=tmp_path,
    )
    assert figures.failures == []
    assert figures.quotes_ok == 400
    assert sum(figures.faults.values()) == 20
    assert figures.daemon_exit is None
