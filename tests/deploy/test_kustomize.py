"""The committed kustomize bases are the chart's current render and build with kustomize."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import (
    FLAVOURS,
    KUSTOMIZE,
    ROOT,
    Helm,
    kubectl_env,
    make_helm,
    require_tool,
    yaml,
)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


@pytest.fixture(scope="module")
def kubectl() -> str:
    return require_tool("kubectl")


def test_bases_are_not_stale(helm: Helm, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "render_manifests.py"),
            "--helm",
            helm.binary,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for flavour in FLAVOURS:
        fresh, committed = tmp_path / flavour, KUSTOMIZE / flavour
        comparison = filecmp.dircmp(fresh, committed)
        assert not comparison.left_only, flavour
        assert not comparison.right_only, flavour
        _, mismatch, errors = filecmp.cmpfiles(
            fresh, committed, comparison.common_files, shallow=False
        )
        assert not errors, errors
        assert not mismatch, (
            f"deploy/kustomize/{flavour}/{mismatch} differ from the chart's render: "
            "run `make manifests` and commit the result"
        )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_bases_build_and_validate(kubectl: str, flavour: str) -> None:
    result = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE / flavour)],
        capture_output=True,
        text=True,
        env=kubectl_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {"Namespace", "DaemonSet", "ServiceAccount"} <= {doc["kind"] for doc in docs}
    # The command-line tool, as a user would run it on the kustomize output.
    validate = require_tool("kubernetes-validate")
    checked = subprocess.run(
        [validate, "--strict", "-"],
        input=result.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("passed") == len(
        [doc for doc in docs if not doc["apiVersion"].startswith("cert-manager.io/")]
    )
