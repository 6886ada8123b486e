"""The benchmark harness works: a bounded ``python -m bench --smoke`` run.

No timing is asserted (the machine running the tests is shared); the run must
finish, every key the full run reports must be there, and no request may fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.floor import native_available

ROOT = Path(__file__).parent.parent.parent


def test_smoke_run_reports_every_key_and_no_failed_request(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    results = json.loads(out.read_text())
    for key in (
        "raw_crypto_us_per_quote",
        "limit_qps",
        "throughput_fraction",
        "cpu_ratio",
        "server_cpu_us_per_quote",
        "loadgen_cpu_us_per_request",
        "inproc_first_quote_ms",
        "outproc_first_quote_ms",
        "epc_bytes",
        "verify_qps",
        "verify_ratio",
        "pccs_get_ms",
        "machine",
    ):
        assert results[key] is not None, key
    assert [row["clients"] for row in results["load"]] == [1, 4]
    for row in results["load"]:
        assert row["errors"] == 0, row
        assert row["quotes"] > 0, row
        for key in ("p50_ms", "p99_ms", "p999_ms", "peak_rss_mib", "server_processes"):
            assert row[key] is not None, (key, row)
    assert results["epc_bytes"]["100"]["inproc"] == 100 * results["epc_bytes"]["1"]["outproc"]
    assert set(results["pccs_get_ms"]) == {"project_client", "urllib"}
    assert results["machine"]["load_before"]
    assert results["machine"]["load_after"]


def test_floor_breakdown_runs_every_server_without_a_failed_request(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    command = [sys.executable, "-m", "bench.floor", "--duration", "0.3", "--clients", "2"]
    subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    results = json.loads(out.read_text())
    servers = {"daemon", "asyncio", "blocking", "asyncio+codec", "asyncio+quote", "blocking+quote"}
    if native_available():  # a C compiler and OpenSSL 3's headers
        servers.add("native")
    assert servers <= set(results)
    for server in servers:
        (row,) = results[server]
        assert row["clients"] == 2
        assert row["errors"] == 0, (server, row)
        assert row["requests"] > 0, (server, row)
        assert row["server_cpu_us_per_request"] is not None, (server, row)
