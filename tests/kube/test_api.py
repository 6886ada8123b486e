"""The small Kubernetes API client: in-cluster configuration, HTTPS with the pod's CA, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_support import ExampleCa, StandInApi

from sgx_quote_helper.errors import UsageError
from sgx_quote_helper.kube import ApiConfig, KubernetesApi, KubernetesApiError, epc_patch


def test_in_cluster_configuration_over_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = ExampleCa("test cluster CA")
    cert, key = ca.issue(tmp_path / "apiserver")
    (tmp_path / "ca.crt").write_bytes(ca.pem())
    token = tmp_path / "token"
    token.write_text("first\n")
    with StandInApi(["n1"], token="first", tls=(cert, key)) as server:
        port = server.url.rsplit(":", 1)[1]
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
        config = ApiConfig.in_cluster(token_file=token, ca_file=tmp_path / "ca.crt")
        assert config.base_url == f"https://127.0.0.1:{port}"
        with KubernetesApi(config) as api:
            assert [node["metadata"]["name"] for node in api.list_nodes()] == ["n1"]
            assert api.get_secret("ns", "absent") is None
            node = api.patch_node_status("n1", epc_patch("sgx.intel.com/epc", 1024))
            assert node["status"]["capacity"]["sgx.intel.com/epc"] == "1024"
            # The kubelet rotates the token file: every request reads it again.
            server.token = "second"
            token.write_text("second\n")
            assert api.get_secret("ns", "absent") is None
            with pytest.raises(KubernetesApiError, match="not found") as missing:
                api.patch_node_status("n2", epc_patch("sgx.intel.com/epc", 1))
            assert missing.value.status == 404

        # The pod's CA is what the server is checked against.
        other = ExampleCa("another CA")
        (tmp_path / "other.crt").write_bytes(other.pem())
        with (
            KubernetesApi(ApiConfig(server.url, token, tmp_path / "other.crt")) as api,
            pytest.raises(
                KubernetesApiError, match=r"cannot reach the Kubernetes API.*CERTIFICATE"
            ),
        ):
            api.get_secret("ns", "x")


def test_not_in_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(
        KubernetesApiError, match=r"KUBERNETES_SERVICE_HOST is unset\); give --api-server"
    ):
        ApiConfig.in_cluster()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    assert ApiConfig.in_cluster().base_url == "https://[fd00::1]:6443"


def test_refusals_name_the_object_and_the_rbac_fix(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("nope")
    with (
        StandInApi([], token="yes") as server,
        KubernetesApi(ApiConfig(server.url, tmp_path / "token")) as api,
    ):
        with pytest.raises(KubernetesApiError) as refused:
            api.get_secret("sgx", "sgx-sim-platform-a")
        assert refused.value.status == 401
        message = str(refused.value)
        assert message.startswith("GET secret sgx/sgx-sim-platform-a failed: HTTP 401 Unauthorized")
        assert "get secrets" in message
    with pytest.raises(KubernetesApiError, match="cannot read the service account token"):
        KubernetesApi(ApiConfig("http://127.0.0.1:9", tmp_path / "missing")).get_secret("a", "b")


@pytest.mark.parametrize("url", ["http://[::1", "https://127.0.0.1:99999", "https://k8s?x=1"])
def test_a_malformed_api_server_url_is_a_usage_error(url: str) -> None:
    # Was a ValueError/httpx.InvalidURL traceback from httpx.Client(base_url=...).
    with pytest.raises(UsageError, match=r"Kubernetes API server URL .* is not a usable base URL"):
        KubernetesApi(ApiConfig(url))
