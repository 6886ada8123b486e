"""The container images, built and run for real with podman.

``tools/container-images.sh build`` builds both images (layers are cached, so
an unchanged tree rebuilds in seconds). Then, as on a node: the simulated
PCCS and the quote helper daemon run from the daemon image, the daemon with a
host directory as ``/var/run/aesmd``; the sample application container mounts
the same directory, sets ``SGX_AESM_ADDR="1"`` and gets only the enclave half
of the platform (no provisioning secret), and its quote verifies on the host
against the simulated root. Daemon and application run as the chart runs them:
read-only root filesystem, no capabilities, no privilege gain.

Without podman (or where it cannot run containers) every test here is skipped
with the reason; ``.ci/run`` installs podman first (``tools/container-images.sh
setup``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from daemon_support import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "container-images.sh"
TAG = "test"
DAEMON_IMAGE = f"localhost/sgx-quote-helper:{TAG}"
SAMPLE_IMAGE = f"localhost/sgx-quote-helper-sample:{TAG}"
IMAGE_UID = 10001
#: Where the simulated device plugin mounts a node's platform (docs/kubernetes.md).
PLATFORM_MOUNT = "/var/run/sgx-sim/platform"
REPORT_DATA = b"sgx-quote-helper sample".hex()
#: The chart's container security context: read-only root, no capabilities, no privilege gain.
RESTRICTED = ("--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges")
CLI = (sys.executable, "-m", "sgx_quote_helper")

pytestmark = [pytest.mark.containers, pytest.mark.slow]


def _podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "deploy" / "docker" / "containers.conf"))
    return env


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=_podman_env(), capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="module")
def images() -> None:
    """Both images, freshly built from this tree; skips where podman cannot work."""
    if shutil.which("bash") is None:
        pytest.skip("bash is needed for tools/container-images.sh")
    probe = subprocess.run(
        ["bash", str(SCRIPT), "check"], env=_podman_env(), capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"container images not testable here: {probe.stdout.strip()}")
    build = subprocess.run(
        ["bash", str(SCRIPT), "build"],
        env={**_podman_env(), "IMAGE_TAG": TAG},
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"image build failed:\n{build.stderr[-4000:]}"


@dataclass
class Node:
    """Host directories of one simulated node, as its pods would see them."""

    sim: Path
    aesmd: Path
    state: Path
    out: Path
    pccs_url: str
    admin_port: int


def _own(*paths: Path) -> None:
    """Hand directories to the images' uid: without user-namespace remapping it is the host's."""
    for top in paths:
        for path in [top, *top.rglob("*")]:
            os.chown(path, IMAGE_UID, IMAGE_UID)


@pytest.fixture(scope="module")
def node(images: None, tmp_path_factory: pytest.TempPathFactory) -> Node:
    base = tmp_path_factory.mktemp("images")
    port = free_port()
    pccs_url = f"http://127.0.0.1:{port}"
    subprocess.run(
        [*CLI, "sim", "init", str(base / "sim"), "--pccs-url", pccs_url],
        check=True,
        capture_output=True,
    )
    found = Node(
        sim=base / "sim",
        aesmd=base / "aesmd",
        state=base / "state",
        out=base / "out",
        pccs_url=pccs_url,
        admin_port=free_port(),
    )
    for path in (found.aesmd, found.state, found.out):
        path.mkdir()
    _own(found.sim, found.aesmd, found.state, found.out)
    return found


class Containers:
    """Detached containers started by one test, always removed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def start(self, *args: str) -> str:
        name = f"sqh-test-{uuid.uuid4().hex[:10]}"
        podman("run", "-d", "--pull=never", "--name", name, *args)
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        for name in self.names:
            podman("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def containers() -> Iterator[Containers]:
    started = Containers()
    yield started
    started.remove_all()


def _wait_for(path: Path, name: str, what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            logs = podman("logs", name, check=False)
            pytest.fail(f"{what} did not come up ({state}):\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)


def _start_pccs_and_daemon(containers: Containers, node: Node) -> str:
    containers.start(
        "--network", "host", "-v", f"{node.sim}:/sim", DAEMON_IMAGE,
        "pccs", "--sim", "/sim", "--listen", node.pccs_url.removeprefix("http://"),
    )  # fmt: skip
    daemon = containers.start(
        *RESTRICTED,
        "--network", "host",
        "-v", f"{node.sim / 'platform'}:/platform:ro",
        "-v", f"{node.aesmd}:/var/run/aesmd",
        "-v", f"{node.state}:/var/lib/sgx-quote-helper/state",
        DAEMON_IMAGE,
        "serve", "--platform", "/platform", "--pccs-url", node.pccs_url,
        "--admin-listen", f"127.0.0.1:{node.admin_port}",
    )  # fmt: skip
    _wait_for(node.aesmd / "aesm.socket", daemon, "the daemon's socket")
    _wait_ready(node, daemon)
    return daemon


def _wait_ready(node: Node, name: str) -> None:
    """Until ``/readyz`` says the daemon can quote (its PCK chain fetched from the PCCS
    container), as a readiness probe would: the socket is bound before that."""
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if (
                httpx.get(f"http://127.0.0.1:{node.admin_port}/readyz", timeout=2).status_code
                == 200
            ):
                return
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            logs = podman("logs", name, check=False)
            pytest.fail(f"the daemon did not become ready ({state}):\n{logs.stdout}{logs.stderr}")
        time.sleep(0.2)


def test_sample_application_quotes_through_the_daemon_container(
    containers: Containers, node: Node
) -> None:
    daemon = _start_pccs_and_daemon(containers, node)
    platform = node.sim / "platform"
    sample = podman(
        "run", "--rm", "--pull=never", "--network", "none", *RESTRICTED,
        "-v", f"{node.aesmd}:/var/run/aesmd",
        # The enclave device's mounts only: no provisioning secret in the application.
        "-v", f"{platform / 'platform.json'}:{PLATFORM_MOUNT}/platform.json:ro",
        "-v", f"{platform / 'enclave.secret'}:{PLATFORM_MOUNT}/enclave.secret:ro",
        "-v", f"{node.out}:/out",
        "-e", "SGX_AESM_ADDR=1",
        "-e", f"SGX_QUOTE_HELPER_PLATFORM={PLATFORM_MOUNT}",
        "-e", "SAMPLE_QUOTE_OUT=/out/quote.bin",
        SAMPLE_IMAGE,
        check=False,
    )  # fmt: skip
    assert sample.returncode == 0, sample.stderr + sample.stdout
    assert "mode=out-of-process" in sample.stderr
    assert "via /var/run/aesmd/aesm.socket" in sample.stderr
    assert "quote (base64):" in sample.stdout

    verified = subprocess.run(
        [
            *CLI, "verify", str(node.out / "quote.bin"),
            "--pccs-url", node.pccs_url,
            "--root-ca", str(node.sim / "pcs" / "root-ca.der"),
            "--report-data-prefix", REPORT_DATA,
            "--json",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    result = json.loads(verified.stdout)
    assert result["verified"] is True
    assert result["status"] == "UpToDate"
    assert result["simulated"] is True

    # The daemon sealed its attestation key into the state directory, as uid 10001.
    sealed = list(node.state.iterdir())
    assert sealed, "the daemon wrote nothing to its state directory"
    assert all(path.stat().st_uid == IMAGE_UID for path in sealed)
    assert (node.aesmd / "aesm.socket").stat().st_uid == IMAGE_UID

    # SIGTERM as PID 1, no --init: the daemon drains and exits 0 itself; a
    # container killed after the grace period would exit 137.
    podman("stop", "-t", "30", daemon)
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", daemon).stdout.strip()
    logs = podman("logs", daemon).stderr
    assert exit_code == "0", logs
    assert "signal=SIGTERM" in logs
    assert "daemon.stopped" in logs


#: What the chart runs from the daemon image.
COMPONENTS = ("serve", "pccs", "device-plugin", "webhook", "sim")


def _commands(help_text: str) -> list[str]:
    return re.findall(r"^    ([a-z][a-z-]*)\b", help_text, re.MULTILINE)


def test_daemon_image_runs_every_component(images: None) -> None:
    host = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    image = podman("run", "--rm", "--pull=never", "--network", "none", DAEMON_IMAGE, "--help")
    # The image's CLI is this tree's: the same commands (its Python formats help its own way).
    assert _commands(image.stdout) == _commands(host)
    present = [name for name in COMPONENTS if name in _commands(host)]
    assert {"serve", "pccs", "sim"} <= set(present)
    for name in present:
        run = podman(
            "run", "--rm", "--pull=never", "--network", "none", DAEMON_IMAGE, name, "--help",
            check=False,
        )  # fmt: skip
        assert run.returncode == 0, f"{name}: {run.stderr}"


def test_sample_without_sgx_aesm_addr_says_what_to_set(images: None) -> None:
    sample = podman("run", "--rm", "--pull=never", "--network", "none", SAMPLE_IMAGE, check=False)
    assert sample.returncode == 2
    assert 'set it to "1" and mount /var/run/aesmd' in sample.stderr


@pytest.mark.parametrize("image", [DAEMON_IMAGE, SAMPLE_IMAGE])
def test_image_is_non_root_without_build_tools_or_build_secrets(images: None, image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert not any(var.startswith(("PIP_CERT=", "SSL_CERT_FILE=")) for var in config["Env"])
    probe = podman(
        "run", "--rm", "--pull=never", "--network", "none", "--entrypoint", "sh", image, "-c",
        "id -u; for tool in pip pip3 gcc cc make; do command -v $tool; done;"
        " ls /run/secrets /wheels /src 2>/dev/null; true",
    )  # fmt: skip
    assert probe.stdout.split() == [str(IMAGE_UID)]


def test_daemon_image_refuses_a_socket_directory_it_cannot_write(
    images: None, node: Node, tmp_path: Path
) -> None:
    root_owned = tmp_path / "aesmd-root"
    root_owned.mkdir()
    run = podman(
        "run", "--rm", "--pull=never", "--network", "none",
        "-v", f"{node.sim / 'platform'}:/platform:ro",
        "-v", f"{root_owned}:/var/run/aesmd",
        "-v", f"{node.state}:/var/lib/sgx-quote-helper/state",
        DAEMON_IMAGE, "serve", "--platform", "/platform", "--pccs-url", node.pccs_url,
        check=False,
    )  # fmt: skip
    assert run.returncode != 0
    message = run.stderr.strip().splitlines()[-1]
    assert "/var/run/aesmd" in message, run.stderr
    assert "Traceback" not in run.stderr
