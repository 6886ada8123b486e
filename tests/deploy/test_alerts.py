"""Alert rules and dashboard: promtool unit tests, and only series the daemon really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from deploy_support import CHART, require_tool, yaml
from prometheus_client import CollectorRegistry

from sgx_quote_helper.service import DaemonMetrics

ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")


def _exported(registry: CollectorRegistry) -> set[str]:
    """Every sample name the daemon's registry can produce (counters as _total, ...)."""
    names = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def _used(text: str) -> set[str]:
    """Series names of the daemon (job names such as sgx-quote-helper-daemon do not count)."""
    return set(re.findall(r"\bsgx_quote_helper_[a-z_]+", text))


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = require_tool("promtool")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(UNIT_TESTS)]):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, check=False, cwd=UNIT_TESTS.parent
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_alerts_and_dashboard_use_only_exported_series() -> None:
    exported = _exported(DaemonMetrics().registry)
    rules = yaml.safe_load(ALERTS.read_text())
    expressions = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    dashboard = json.loads(DASHBOARD.read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    tests = UNIT_TESTS.read_text()
    for source, text in (("alerts", expressions), ("dashboard", queries), ("tests", tests)):
        used = _used(text)
        assert used, source
        assert used <= exported, f"{source} uses series the daemon does not export"
    # What the brief asks to see and alert on.
    for name in (
        "sgx_quote_helper_requests_total",
        "sgx_quote_helper_quote_latency_seconds_bucket",
        "sgx_quote_helper_active_connections",
        "sgx_quote_helper_rejected_peers_total",
    ):
        assert name in queries
    assert 'up{job=~".*sgx-quote-helper-daemon.*"}' in expressions
    for name in (
        "sgx_quote_helper_ready",
        "sgx_quote_helper_pck_chain_not_after_timestamp_seconds",
        "sgx_quote_helper_rejected_peers_total",
    ):
        assert name in expressions
