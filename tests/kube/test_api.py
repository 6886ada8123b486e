"""The small Kubernetes API client: in-cluster configuration, HTTPS with the pod's CA, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kube_support import ExampleCa, RawApi, StandInApi

from sgx_quote_helper._fs import InputTooLargeError
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


# ---- answers the real API server never gives: each is one KubernetesApiError -----------------


def raw_answer(body: bytes, status: int = 200) -> Any:
    return lambda handler, count: handler.send(status, body)


def json_answer(document: Any, status: int = 200) -> Any:
    return raw_answer(json.dumps(document).encode(), status)


def api_error(answer: Any, call: Any, **options: Any) -> str:
    with (
        RawApi(answer) as server,
        KubernetesApi(ApiConfig(server.url), **options) as api,
        pytest.raises(KubernetesApiError) as failed,
    ):
        call(api)
    assert "\n" not in str(failed.value)
    return str(failed.value)


def list_nodes(api: KubernetesApi) -> list[dict[str, Any]]:
    return list(api.list_nodes())


@pytest.mark.parametrize("dripped", ["headers", "body"])
def test_a_slow_answer_is_abandoned_at_the_deadline(dripped: str) -> None:
    # httpx's timeouts are per read: a byte every 50 ms kept the request going for ever.
    body = b" " * 40 + b'{"items": []}'
    head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 40 + b"\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()

    def drip(handler: Any, count: int) -> None:
        for index, byte in enumerate(head + body):
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            if (index < len(head)) == (dripped == "headers"):
                time.sleep(0.05)

    message = api_error(drip, list_nodes, deadline=0.2)
    assert message.startswith("GET nodes: the Kubernetes API at http://127.0.0.1:")
    assert message.endswith(
        "(nodes) did not answer in time (the whole answer took more than 0.2s); check the API "
        "server's load and the network"
    )


def test_an_answer_past_the_size_limit_is_refused() -> None:
    declared = api_error(json_answer({"items": ["x" * 2000]}), list_nodes, max_body=1000)
    assert declared.endswith(
        "(nodes) is refused: the body is 2015 bytes (Content-Length), more than the 1000-byte limit"
    )

    def chunked(handler: Any, count: int) -> None:  # no Content-Length to check first
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"400\r\n" + b" " * 0x400 + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    assert api_error(chunked, list_nodes, max_body=10_000).endswith(
        "(nodes) is refused: the body is larger than the 10000-byte limit"
    )


def test_the_answer_to_a_write_is_bounded_too() -> None:
    def patch(api: KubernetesApi) -> Any:
        return api.patch_node_status("n1", {"status": {}})

    def drip(handler: Any, count: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.05)

    assert api_error(drip, patch, deadline=0.2).endswith(
        "(node n1 status) did not answer in time (the whole answer took more than 0.2s); "
        "check the API server's load and the network"
    )
    assert api_error(json_answer({"x": "y" * 2000}), patch, max_body=1000).endswith(
        "(node n1 status) is refused: the body is larger than the 1000-byte limit"
    )


def test_a_repeated_continue_token_ends_the_list() -> None:
    def same_token(handler: Any, count: int) -> None:
        # The 50th page ends the list, so the test ends even where the client loops.
        metadata = {"continue": "same"} if count < 50 else {}
        handler.send(200, json.dumps({"items": [], "metadata": metadata}).encode())

    assert "repeated a list continue token" in api_error(same_token, list_nodes)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (raw_answer(b"[" * 200_000), "GET nodes: the API server's answer is JSON nested too deep"),
        (raw_answer(b"[" * 200_000, 500), "GET nodes failed: HTTP 500 Internal Server Error"),
        (raw_answer(b"\xff garbage"), "GET nodes: the API server's answer is not JSON"),
        (json_answer({"items": ["x", 1]}), "not a NodeList (items is not a list of objects)"),
        (json_answer({"items": {"a": 1}}), "not a NodeList (items is not a list of objects)"),
        (json_answer({"items": "abc"}), "not a NodeList (items is not a list of objects)"),
        (json_answer({"items": [], "metadata": ["x"]}), "not a NodeList (malformed metadata)"),
        (json_answer({"items": [], "metadata": {"continue": 5}}), "(malformed metadata)"),
        (json_answer({"message": "a\nb" * 1000}, 403), "HTTP 403 a b"),
    ],
)  # fmt: skip
def test_a_malformed_answer_is_one_clear_error(answer: Any, message: str) -> None:
    # Were RecursionError and AttributeError tracebacks.
    assert message in api_error(answer, list_nodes)


@pytest.mark.parametrize(
    "token", [b"\xff\xfe", "t\u00f6ken".encode(), b"abc\ndef", b"abc\x00"], ids=repr
)
def test_a_token_that_is_not_ascii_is_refused(tmp_path: Path, token: bytes) -> None:
    # Were UnicodeDecodeError and UnicodeEncodeError (header encoding) tracebacks.
    (tmp_path / "token").write_bytes(token + b"\n")
    with (
        StandInApi([], token="x") as server,
        KubernetesApi(ApiConfig(server.url, tmp_path / "token")) as api,
        pytest.raises(KubernetesApiError) as refused,
    ):
        api.get_secret("ns", "name")
    assert str(refused.value) == (
        f"token file {tmp_path / 'token'} is not an ASCII token (it holds bytes that are not "
        "printable ASCII); check that it is the service account token"
    )
    assert server.log == []


def test_a_token_file_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"t" * 100_000)
    with (
        KubernetesApi(ApiConfig("http://127.0.0.1:9", tmp_path / "token")) as api,
        pytest.raises(InputTooLargeError, match="a service account token"),
    ):
        api.get_secret("ns", "name")
