"""Tools and helpers shared by the deployment tests.

helm, kubectl and promtool are found beside the venv's python (where `make k8s-tools`, a
prerequisite of `make test`, puts them) or on PATH; kubernetes-validate is the `k8s` extra.
A missing tool skips its tests with the reason and the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "sgx-quote-helper"
PRESETS = ROOT / "deploy" / "helm" / "presets"
#: The sample image's entry point (the project's sample application).
SAMPLE_APP = ROOT / "deploy" / "docker" / "sample-app.sh"
KUSTOMIZE = ROOT / "deploy" / "kustomize"
FLAVOURS = ("aks", "intel", "sim")

yaml = pytest.importorskip("yaml", reason="PyYAML is in the `k8s` extra: make k8s-tools")


def find_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make k8s-tools installs it)")
    return path


@dataclass
class Helm:
    binary: str
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], capture_output=True, text=True, env=self.env, check=False
        )

    def template(
        self,
        values: Sequence[Path] = (),
        sets: Sequence[str] = (),
        kube_version: str | None = None,
        release: str = "sqh",
        namespace: str = "sgx-quote-helper",
    ) -> list[dict[str, Any]]:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if kube_version:
            args += ["--kube-version", kube_version]
        for path in values:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def make_helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm with fresh, private cache/config/data directories (works offline)."""
    binary = require_tool("helm")
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(home / name.lower())
    return Helm(binary, env)


def kubectl_env() -> dict[str, str]:
    """No API server: kubectl must work offline (--local, kustomize)."""
    env = dict(os.environ)
    env["KUBECONFIG"] = os.devnull
    return env


def preset(name: str) -> Path:
    return PRESETS / f"{name}.yaml"


def by_kind(docs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: Sequence[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    matches = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"].endswith(suffix)]
    assert len(matches) == 1, f"expected one {kind} named *{suffix}, got {len(matches)}"
    return matches[0]


WORKLOADS = ("DaemonSet", "Deployment", "Job", "CronJob")


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = pod_template(workload)["spec"]
    return spec
