"""The `sim` flavour's command lines, run as processes on one simulated node.

No kubelet here, so the test plays its part: each container's command (taken from the
chart's render, not retyped) runs with the container paths mapped to temporary host
directories. The PCCS pod's init creates the manufacturer (twice: the second run must
leave it alone), `sim add-platform` stands in for `sim register-nodes` (which needs an API
server), the device plugin's Allocate is played by copying the platform files, the daemon
becomes ready through its readiness probe, the sample Job's application quotes through the
socket with only the enclave files, and the quote verifies against the manufacturer's root.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from daemon_support import free_port, metric_value, short_dir, wait_for
from deploy_support import SAMPLE_APP, WORKLOADS, Helm, make_helm, named, pod_spec, preset

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    helm: Helm = make_helm(tmp_path_factory)
    docs = helm.template([preset("sim")], ["sample.enabled=true"])
    return [doc for doc in docs if doc["kind"] in WORKLOADS]


@pytest.fixture
def node() -> Iterator[Path]:
    yield from short_dir()


def _container(docs: list[dict[str, Any]], kind: str, suffix: str, name: str) -> dict[str, Any]:
    spec = pod_spec(named(docs, kind, suffix))
    container: dict[str, Any] = next(
        c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name
    )
    return container


def _mapped(text: str, paths: dict[str, str]) -> str:
    """Container paths and addresses to this node's, in one pass (longest match first)."""
    pattern = "|".join(re.escape(key) for key in sorted(paths, key=len, reverse=True))
    return re.sub(pattern, lambda match: paths[match.group(0)], text)


def _env(container: dict[str, Any], paths: dict[str, str]) -> dict[str, str]:
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root")}
    for item in container.get("env", []):
        env[item["name"]] = _mapped(item.get("value", ""), paths)
    return env


def _run(container: dict[str, Any], paths: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A container's command (a shell line) or args (sgx-quote-helper ARGS), paths mapped."""
    if "command" in container:
        argv = [_mapped(part, paths) for part in container["command"]]
    else:
        argv = [str(BIN / "sgx-quote-helper"), *(_mapped(a, paths) for a in container["args"])]
    return subprocess.run(
        argv, env=_env(container, paths), capture_output=True, text=True, check=False
    )


@contextlib.contextmanager
def _serving(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_sim_flavour_command_lines_quote_on_one_node(
    render: list[dict[str, Any]], node: Path
) -> None:
    pccs_port, admin_port = free_port(), free_port()
    pccs_url = f"http://127.0.0.1:{pccs_port}"
    claim, devices, app_platform = node / "claim", node / "sim-devices", node / "app-platform"
    paths = {
        "/var/lib/sgx-quote-helper/sim": str(claim),
        "/var/run/aesmd": str(node / "aesmd"),
        "/var/lib/sgx-quote-helper/state": str(node / "state"),
        "/var/run/sgx-sim/platform": str(devices),
        "/tmp": str(node / "tmp"),
        "http://sqh-sgx-quote-helper-pccs.sgx-quote-helper:8081": pccs_url,
        "0.0.0.0:8081": f"127.0.0.1:{pccs_port}",
        "0.0.0.0:8090": f"127.0.0.1:{admin_port}",
    }
    for directory in (claim, node / "aesmd", node / "state", node / "tmp", app_platform):
        directory.mkdir()

    # The PCCS pod: init creates the manufacturer once; a second run changes nothing.
    sim_init = _container(render, "Deployment", "-pccs", "sim-init")
    assert _run(sim_init, paths).returncode == 0
    registry = (claim / "pcs" / "registry.json").read_bytes()
    rerun = _run(sim_init, paths)
    assert rerun.returncode == 0, rerun.stderr
    assert (claim / "pcs" / "registry.json").read_bytes() == registry
    # What register-nodes does for this node, and the device plugin's host files.
    added = subprocess.run(
        [BIN / "sgx-quote-helper", "sim", "add-platform", str(claim), "node-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    devices.mkdir()
    for name in ("platform.json", "enclave.secret", "provision.secret"):
        shutil.copy(claim / "platforms" / "node-1" / name, devices / name)
    for name in ("platform.json", "enclave.secret"):  # an application gets only these
        shutil.copy(devices / name, app_platform / name)

    pccs = _container(render, "Deployment", "-pccs", "pccs")
    pccs_argv = [str(BIN / "sgx-quote-helper"), *(_mapped(a, paths) for a in pccs["args"])]
    daemon = _container(render, "DaemonSet", "-daemon", "quote-helper")
    daemon_argv = [str(BIN / "sgx-quote-helper"), *(_mapped(a, paths) for a in daemon["args"])]
    readyz = daemon["readinessProbe"]["httpGet"]["path"]
    healthz = daemon["livenessProbe"]["httpGet"]["path"]
    admin = f"http://127.0.0.1:{admin_port}"
    with (
        _serving(pccs_argv, node / "pccs.log"),
        _serving(daemon_argv, node / "daemon.log") as process,
    ):

        def ready() -> bool:
            assert process.poll() is None, (node / "daemon.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(admin + readyz, timeout=2).status_code == 200
            return False

        wait_for(ready, 60, "the daemon to pass its readiness probe")
        assert httpx.get(admin + healthz, timeout=5).status_code == 200
        assert (node / "aesmd" / "aesm.socket").is_socket()

        # The sample Job: the sample image's entry point, as an application with only the
        # enclave files.
        sample = _container(render, "Job", "-sample", "sgx-test")
        assert "command" not in sample
        app_paths = dict(paths, **{"/var/run/sgx-sim/platform": str(app_platform)})
        env = _env(sample, app_paths)
        assert env["SGX_AESM_ADDR"] == "1"
        env["SGX_AESM_ADDR"] = str(node / "aesmd" / "aesm.socket")  # not the host's path
        env["SGX_QUOTE_HELPER_PLATFORM"] = str(app_platform)  # what Allocate sets
        env["SAMPLE_QUOTE_OUT"] = _mapped("/tmp/quote.bin", app_paths)  # the script's default
        quoted = subprocess.run(
            ["sh", str(SAMPLE_APP)], env=env, capture_output=True, text=True, check=False
        )
        assert quoted.returncode == 0, quoted.stdout + quoted.stderr
        assert "quote (base64):" in quoted.stdout
        metrics = httpx.get(f"{admin}/metrics", timeout=5).text
        assert (
            metric_value(
                metrics, "sgx_quote_helper_requests_total", type="GET_QUOTE_EX", result="SUCCESS"
            )
            == 1
        )
        assert metric_value(metrics, "sgx_quote_helper_pck_chain_not_after_timestamp_seconds") > 0

        verified = subprocess.run(
            [
                BIN / "sgx-quote-helper",
                "verify",
                str(node / "tmp" / "quote.bin"),
                "--pccs-url",
                pccs_url,
                "--root-ca",
                str(claim / "pcs" / "root-ca.der"),
                "--report-data-prefix",
                env["SAMPLE_REPORT_DATA"],
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=daemon_grace(render)) == 0
    assert not (node / "aesmd" / "aesm.socket").exists()


def daemon_grace(render: list[dict[str, Any]]) -> int:
    grace: int = pod_spec(named(render, "DaemonSet", "-daemon"))["terminationGracePeriodSeconds"]
    return grace
