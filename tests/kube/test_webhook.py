"""The admission webhook: AdmissionReview fixtures through the pure function, then over real TLS.

Expected mutations follow spec kubernetes.md section 3.4 (Intel's webhook) and
the mutated aesmd pod shown in intel IDP #1098 (limits enclave 1, epc 1Mi,
provision 1; env SGX_AESM_ADDR=1; pod annotation sgx.intel.com/epc: 1Mi).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from kube_support import ExampleCa, admission_review, apply_patch, container, pod
from prometheus_client.parser import text_string_to_metric_families

from sgx_quote_helper._cli import main
from sgx_quote_helper.kube import (
    AdmissionReviewError,
    ResourceNames,
    TlsFiles,
    WebhookMetrics,
    create_webhook_app,
    format_quantity,
    mutate_pod,
    parse_quantity,
    review,
    webhook_in_thread,
)

EPC = "sgx.intel.com__epc"
HOST_AESMD = {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"}
AESMD_MOUNT = {"name": "aesmd-socket", "mountPath": "/var/run/aesmd"}
AESM_ENV = {"name": "SGX_AESM_ADDR", "value": "1"}
ONE = {"sgx.intel.com/enclave": "1"}
BOTH = {"sgx.intel.com/enclave": "1", "sgx.intel.com/provision": "1"}


def mutated(obj: dict[str, Any], names: ResourceNames | None = None) -> dict[str, Any]:
    """The pod as the API server stores it after applying the webhook's answer."""
    outcome = review(json.dumps(admission_review(obj)).encode(), names)
    answer = outcome.response["response"]
    assert answer["allowed"] is True
    if not outcome.patch:
        assert "patch" not in answer
        assert "patchType" not in answer
        return obj
    assert answer["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert patch == outcome.patch
    result: dict[str, Any] = apply_patch(obj, patch)
    return result


def limits(result: dict[str, Any], index: int) -> dict[str, str]:
    limits_: dict[str, str] = result["spec"]["containers"][index]["resources"]["limits"]
    requests = result["spec"]["containers"][index]["resources"].get("requests", {})
    for name, value in requests.items():  # requests and limits agree on what was added
        assert limits_[name] == value
    return limits_


# ---- fixtures through the pure function --------------------------------------------------------


def test_aesmd_annotation_daemonset_mode() -> None:
    original = pod(
        container("app", **{EPC: "512Ki"}), annotations={"sgx.intel.com/quote-provider": "aesmd"}
    )
    result = mutated(original)
    app = result["spec"]["containers"][0]
    assert limits(result, 0) == {"sgx.intel.com/epc": "512Ki", **ONE}
    assert app["resources"]["requests"] == ONE
    assert app["volumeMounts"] == [AESMD_MOUNT]
    assert app["env"] == [AESM_ENV]
    assert result["spec"]["volumes"] == [{"name": "aesmd-socket", "hostPath": HOST_AESMD}]
    assert result["metadata"]["annotations"]["sgx.intel.com/epc"] == "512Ki"


def test_the_aesmd_container_itself_gets_provision() -> None:
    # Intel's demo aesmd DaemonSet pod (spec 3.5), mutated as in intel IDP #1098.
    original = pod(
        container("aesmd", **{EPC: "1Mi"}), annotations={"sgx.intel.com/quote-provider": "aesmd"}
    )
    result = mutated(original)
    assert limits(result, 0) == {"sgx.intel.com/epc": "1Mi", **BOTH}
    assert result["spec"]["containers"][0]["env"] == [AESM_ENV]
    assert result["spec"]["volumes"][0]["hostPath"] == HOST_AESMD
    assert result["metadata"]["annotations"] == {
        "sgx.intel.com/quote-provider": "aesmd",
        "sgx.intel.com/epc": "1Mi",
    }


def test_in_process_quote_provider_names_the_container() -> None:
    original = pod(
        container("app", **{EPC: "10Mi"}),
        container("helper", **{EPC: "1Mi"}),
        annotations={"sgx.intel.com/quote-provider": "app"},
    )
    result = mutated(original)
    assert limits(result, 0) == {"sgx.intel.com/epc": "10Mi", **BOTH}
    assert limits(result, 1) == {"sgx.intel.com/epc": "1Mi", **ONE}  # provision only to "app"
    for index in (0, 1):
        assert "volumeMounts" not in result["spec"]["containers"][index]
        assert "env" not in result["spec"]["containers"][index]
    assert "volumes" not in result["spec"]
    assert result["metadata"]["annotations"]["sgx.intel.com/epc"] == "11Mi"


def test_unannotated_pod_gets_the_enclave_only() -> None:
    result = mutated(pod(container("app", **{EPC: "5Mi"})))
    assert limits(result, 0) == {"sgx.intel.com/epc": "5Mi", **ONE}
    assert result["metadata"]["annotations"] == {"sgx.intel.com/epc": "5Mi"}
    assert "volumes" not in result["spec"]


def test_pod_without_epc_is_left_alone() -> None:
    original = pod(
        container("web", cpu="100m"), annotations={"sgx.intel.com/quote-provider": "aesmd"}
    )
    assert mutated(original) == original
    assert mutate_pod(pod()) == []


def test_several_containers_with_an_aesmd_sidecar() -> None:
    original = pod(
        container("aesmd", **{EPC: "1Mi"}),
        container("web", cpu="100m"),
        container("app", **{EPC: "512Ki"}),
        container("worker", **{EPC: "1.5Mi"}),
        annotations={"sgx.intel.com/quote-provider": "aesmd"},
    )
    result = mutated(original)
    containers = result["spec"]["containers"]
    assert limits(result, 0) == {"sgx.intel.com/epc": "1Mi", **BOTH}
    assert containers[1] == original["spec"]["containers"][1]  # no EPC: untouched
    for index in (2, 3):
        assert "sgx.intel.com/provision" not in limits(result, index)
        assert limits(result, index)["sgx.intel.com/enclave"] == "1"
    for index in (0, 2, 3):
        assert containers[index]["volumeMounts"] == [AESMD_MOUNT]
        assert containers[index]["env"] == [AESM_ENV]
    # Sidecar mode: aesmd and other EPC containers in one pod share memory, not the host.
    assert result["spec"]["volumes"] == [{"name": "aesmd-socket", "emptyDir": {"medium": "Memory"}}]
    assert result["metadata"]["annotations"]["sgx.intel.com/epc"] == "3Mi"


def test_reinvocation_adds_nothing() -> None:
    original = pod(
        container("aesmd", **{EPC: "1Mi"}),
        container("app", **{EPC: "512Ki"}),
        annotations={"sgx.intel.com/quote-provider": "aesmd"},
    )
    once = mutated(original)
    assert mutate_pod(once) == []
    assert mutated(once) == once


def test_existing_mount_and_env_are_kept() -> None:
    app = container("app", **{EPC: "1Mi"})
    app["volumeMounts"] = [{"name": "mine", "mountPath": "/var/run/aesmd", "readOnly": True}]
    app["env"] = [
        {"name": "SGX_AESM_ADDR", "value": "unix:/var/run/aesmd/aesm.socket"},
        {"name": "A", "value": "b"},
    ]
    app["resources"]["limits"]["sgx.intel.com/enclave"] = "2"
    original = pod(app, annotations={"sgx.intel.com/quote-provider": "aesmd"})
    original["spec"]["volumes"] = [{"name": "mine", "hostPath": {"path": "/var/run/aesmd"}}]
    result = mutated(original)
    out = result["spec"]["containers"][0]
    assert out["volumeMounts"] == app["volumeMounts"]
    assert out["env"] == app["env"]
    assert out["resources"]["limits"]["sgx.intel.com/enclave"] == "1"  # as Intel's: exactly one
    assert result["spec"]["volumes"][0] == original["spec"]["volumes"][0]


def test_unknown_fields_are_preserved() -> None:
    app = container("app", **{EPC: "1Mi"})
    app["securityContext"] = {"appArmorProfile": {"type": "RuntimeDefault"}, "x-future": [1, 2]}
    app["resources"]["claims"] = [{"name": "gpu"}]
    original = pod(app, annotations={"sgx.intel.com/quote-provider": "aesmd", "a/b~c": "x"})
    original["spec"]["x-unknown"] = {"kept": True}
    original["spec"]["os"] = {"name": "linux"}
    original["status"] = {"phase": "Pending"}
    original["metadata"]["labels"] = {"app": "demo"}
    patch = mutate_pod(original)
    assert {op["op"] for op in patch} <= {"add", "replace"}
    # Every operation touches a path the webhook models, nothing else.
    modelled = (
        "/spec/containers/0/resources/limits/",
        "/spec/containers/0/resources/requests",
        "/spec/containers/0/volumeMounts",
        "/spec/containers/0/env",
        "/spec/volumes",
        "/metadata/annotations/sgx.intel.com~1epc",
    )
    assert all(op["path"].startswith(modelled) for op in patch), patch
    result = apply_patch(original, patch)
    assert result["spec"]["x-unknown"] == {"kept": True}
    assert result["spec"]["os"] == {"name": "linux"}
    assert result["status"] == {"phase": "Pending"}
    assert result["spec"]["containers"][0]["securityContext"] == app["securityContext"]
    assert result["spec"]["containers"][0]["resources"]["claims"] == [{"name": "gpu"}]
    assert result["metadata"]["annotations"]["a/b~c"] == "x"
    assert result["metadata"]["labels"] == {"app": "demo"}


def test_epc_in_requests_only_and_quantity_forms() -> None:
    app = {"name": "app", "resources": {"requests": {"sgx.intel.com/epc": "1048576"}}}
    result = mutated(pod(app, container("b", **{EPC: "1e3"})))
    assert result["spec"]["containers"][0]["resources"]["requests"]["sgx.intel.com/enclave"] == "1"
    assert result["spec"]["containers"][0]["resources"]["limits"] == ONE
    assert result["metadata"]["annotations"]["sgx.intel.com/epc"] == str(1048576 + 1000)


def test_resource_names_of_another_flavour() -> None:
    names = ResourceNames(
        epc="kubernetes.azure.com/sgx_epc_mem_in_MiB",
        enclave="example.com/enclave",
        provision="example.com/provision",
    )
    app = {
        "name": "aesmd",
        "resources": {"limits": {"kubernetes.azure.com/sgx_epc_mem_in_MiB": "10"}},
    }
    result = mutated(pod(app, annotations={"sgx.intel.com/quote-provider": "aesmd"}), names)
    assert result["spec"]["containers"][0]["resources"]["limits"] == {
        "kubernetes.azure.com/sgx_epc_mem_in_MiB": "10",
        "example.com/enclave": "1",
        "example.com/provision": "1",
    }
    # Intel's names are not looked at under another flavour.
    assert mutate_pod(pod(container("a", **{EPC: "1Mi"})), names) == []


def test_unreadable_epc_quantity_is_refused_with_the_reason() -> None:
    outcome = review(json.dumps(admission_review(pod(container("app", **{EPC: "1 MB"})))).encode())
    answer = outcome.response["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert "sgx.intel.com/epc" in answer["status"]["message"]
    assert "patch" not in answer


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "not an AdmissionReview"),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "no request",
        ),
        (json.dumps(admission_review(pod(), uid="")).encode(), "request.uid"),
        (
            json.dumps(
                {**admission_review(pod()), "request": {"uid": "u", "namespace": ["a"]}}
            ).encode(),
            "request.namespace is a list",
        ),
        (json.dumps(admission_review({"kind": "ConfigMap", "data": {}})).encode(), "not a Pod"),
        (json.dumps(admission_review([1])).encode(), "not a JSON object"),
        (json.dumps(admission_review({"spec": {"containers": [1]}})).encode(), "not a Pod"),
    ],
)
def test_malformed_reviews_raise_a_clear_error(body: bytes, reason: str) -> None:
    with pytest.raises(AdmissionReviewError, match=reason):
        review(body)


AESMD = {"sgx.intel.com/quote-provider": "aesmd"}


def aesmd_pod(*, volumes: Any = None, **fields: Any) -> dict[str, Any]:
    """An aesmd-annotated pod with one EPC container that has ``fields``."""
    result = pod({**container("app", **{EPC: "1Mi"}), **fields}, annotations=AESMD)
    if volumes is not None:
        result["spec"]["volumes"] = volumes
    return result


def with_metadata(**fields: Any) -> dict[str, Any]:
    result = pod(container("app", **{EPC: "1Mi"}))
    result["metadata"].update(fields)
    return result


# Fields the mutation reads or patches, with the wrong JSON type. The API server never
# sends these (it decodes pods into their typed form), so each is a bad request (400),
# found before anything is patched; falsy wrong types ([], "", 0) are not taken as absent.
@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (with_metadata(annotations=[]), r"metadata\.annotations is a list, not an object"),
        (with_metadata(annotations=["x"]), r"metadata\.annotations is a list"),
        ({**pod(container("a", **{EPC: "1Mi"})), "metadata": []}, r"metadata is a list"),
        (with_metadata(annotations={"sgx.intel.com/quote-provider": ["aesmd"]}), "quote-provider"),
        (with_metadata(name=None, generateName=5), "metadata.generateName is a number"),
        (aesmd_pod(env="x", volumeMounts=5, volumes="v"), "spec.volumes is a string, not a list"),
        (aesmd_pod(env="x"), r"spec\.containers\[0\]\.env is a string, not a list"),
        (aesmd_pod(volumeMounts=5), r"spec\.containers\[0\]\.volumeMounts is a number"),
        (aesmd_pod(env=[1]), r"spec\.containers\[0\]\.env\[0\] is a number, not an object"),
        (aesmd_pod(volumes=[None]), r"spec\.volumes\[0\] is null, not an object"),
        (aesmd_pod(name=7), r"spec\.containers\[0\]\.name is a number"),
        (aesmd_pod(resources=[]), r"\.resources is a list, not an object"),
        (aesmd_pod(resources={"limits": {EPC: "1Mi"}, "requests": []}), r"resources\.requests"),
        (aesmd_pod(resources={"requests": "x"}), r"resources\.requests is a string"),
    ],
)
def test_wrongly_typed_pod_fields_are_a_bad_request(obj: dict[str, Any], reason: str) -> None:
    with pytest.raises(AdmissionReviewError, match=reason):
        review(json.dumps(admission_review(obj)).encode())


def test_deeply_nested_json_is_a_bad_request() -> None:
    with pytest.raises(AdmissionReviewError, match="nested too deeply"):
        review(b"[" * 100_000 + b"]" * 100_000)
    inner = b"[" * 5000 + b"]" * 5000
    body = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":'
    with pytest.raises(AdmissionReviewError, match="nested too deeply"):
        review(body + b'{"uid":"u","object":' + inner + b"}}")
    # A value that is not a string is named by its type, never printed (it may be huge).
    with pytest.raises(AdmissionReviewError, match="apiVersion a list"):
        review(json.dumps({"apiVersion": [[[]]] * 1000, "kind": "AdmissionReview"}).encode())


def test_deep_unmodelled_fields_are_left_alone() -> None:
    # Deep enough to pass the JSON decoder but not a walk of the whole document.
    deep = json.loads("[" * 600 + "]" * 600)
    original = pod(container("app", **{EPC: "1Mi"}), annotations=AESMD)
    original["spec"]["containers"][0]["x-deep"] = deep
    original["spec"]["x-deep"] = deep
    patch = review(json.dumps(admission_review(original)).encode()).patch
    shallow = pod(container("app", **{EPC: "1Mi"}), annotations=AESMD)
    assert patch == mutate_pod(shallow)  # the same patch as without the deep fields
    assert apply_patch(shallow, patch)["spec"]["containers"][0]["env"] == [AESM_ENV]


def test_quantities() -> None:
    assert parse_quantity("5Mi") == 5 * 2**20
    assert parse_quantity("512Ki") == 512 * 1024
    assert parse_quantity("1.5Gi") == 3 * 2**29
    assert parse_quantity("98566144") == 98566144
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("1M") == 10**6
    assert parse_quantity("100m") == 1  # rounded up, as Quantity.Value()
    assert parse_quantity(7) == 7
    for bad in ("1 MB", "Mi", "", "1Mb", True, None, "1e99"):
        with pytest.raises(ValueError):
            parse_quantity(bad)
    assert format_quantity(2**20) == "1Mi"
    assert format_quantity(98566144) == "94Mi"
    assert format_quantity(1536) == "1536"
    assert format_quantity(1536 * 1024) == "1536Ki"
    # Kubernetes' BinarySI form: no decimal suffix from 1024 on, decimal SI below it.
    assert format_quantity(10**6) == "1000000"
    assert format_quantity(2000) == "2000"
    assert format_quantity(1000) == "1k"
    assert format_quantity(999) == "999"
    assert format_quantity(0) == "0"


def test_an_unreadable_quantity_is_named_not_repeated() -> None:
    # The refusal goes back to the client and into the log: a list is named by
    # its type and a long string cut, whatever the review carried.
    with pytest.raises(ValueError, match=r"^a list is not a quantity"):
        parse_quantity([[1]] * 10_000)
    with pytest.raises(ValueError) as long:
        parse_quantity("9" * 10_000 + "x")
    assert len(str(long.value)) < 200


# ---- over TLS ----------------------------------------------------------------------------------


def client_context(ca: ExampleCa) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.pem().decode())


def test_over_tls_with_a_verifying_client(tmp_path: Path) -> None:
    ca = ExampleCa("test webhook CA")
    cert, key = ca.issue(tmp_path / "tls")
    body = admission_review(
        pod(container("app", **{EPC: "1Mi"}), annotations={"sgx.intel.com/quote-provider": "aesmd"})
    )
    with (
        webhook_in_thread(TlsFiles(cert, key)) as hook,
        httpx.Client(verify=client_context(ca), timeout=10.0) as http,
    ):
        assert http.get(f"{hook.url}/healthz").text == "ok\n"
        reply = http.post(f"{hook.url}/mutate", json=body)
        assert reply.status_code == 200
        answer = reply.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == body["request"]["uid"]
        patch = json.loads(base64.b64decode(answer["response"]["patch"]))
        result = apply_patch(body["request"]["object"], patch)
        assert result["spec"]["containers"][0]["env"] == [AESM_ENV]

        # Malformed input: a clear 400, and the server keeps serving.
        bad = http.post(f"{hook.url}/mutate", content=b"{oops")
        assert bad.status_code == 400
        assert "not JSON" in bad.json()["error"]
        huge = http.post(f"{hook.url}/mutate", content=b" " * (4 * 1024 * 1024 + 10))
        assert huge.status_code == 413
        assert http.post(f"{hook.url}/mutate", json=body).status_code == 200
        assert http.get(f"{hook.url}/mutate").status_code == 405
        refused = admission_review(pod(container("app", **{EPC: "1 MB"})))
        assert http.post(f"{hook.url}/mutate", json=refused).json()["response"]["allowed"] is False
        assert http.post(f"{hook.url}/mutate", json=admission_review(pod())).status_code == 200
        # Wrongly typed fields and deep JSON: the same clean 400, never a 500.
        for malformed in (
            json.dumps(admission_review(with_metadata(annotations=[]))).encode(),
            json.dumps(admission_review(aesmd_pod(env="x", volumeMounts=5, volumes="v"))).encode(),
            b"[" * 100_000 + b"]" * 100_000,
        ):
            reply = http.post(f"{hook.url}/mutate", content=malformed)
            assert reply.status_code == 400, reply.text
            assert "error" in reply.json()
        metrics = {
            (sample.name, sample.labels.get("outcome")): sample.value
            for family in text_string_to_metric_families(http.get(f"{hook.url}/metrics").text)
            for sample in family.samples
        }
        reviews = "sgx_quote_helper_webhook_reviews_total"
        assert metrics[(reviews, "mutated")] == 2
        assert metrics[(reviews, "unchanged")] == 1
        assert metrics[(reviews, "refused")] == 1
        assert metrics[(reviews, "bad_request")] == 5
        assert metrics[("sgx_quote_helper_webhook_patch_operations_total", None)] == 2 * len(patch)

    # A client that trusts another CA refuses the certificate.
    other = ExampleCa("another CA")
    with (
        webhook_in_thread(TlsFiles(cert, key)) as hook,
        httpx.Client(verify=client_context(other), timeout=10.0) as http,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        http.get(f"{hook.url}/healthz")


def test_a_malformed_chunked_body_is_a_400_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The head of POST /mutate is fine, so the handler starts reading the body;
    # h11 then refuses the chunk. Before, the handler failed (ClientDisconnect) and
    # uvicorn logged "Exception in ASGI application" with a traceback.
    ca = ExampleCa("test webhook CA")
    cert, key = ca.issue(tmp_path / "tls")
    request = b"POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"
    with (
        caplog.at_level(logging.INFO, logger="sgx_quote_helper"),
        webhook_in_thread(TlsFiles(cert, key)) as hook,
    ):
        raw = socket.create_connection(("127.0.0.1", hook.port), timeout=30)
        with client_context(ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            reply = b""
            while chunk := tls.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 ")
        with httpx.Client(verify=client_context(ca), timeout=10.0) as http:
            metrics = http.get(f"{hook.url}/metrics").text
        assert 'sgx_quote_helper_webhook_reviews_total{outcome="bad_request"} 1.0' in metrics
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["http.bad_request"]
    assert not any(r.exc_info for r in caplog.records)


def test_bad_review_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    # Anyone who reaches the port can send bad reviews; the counter counts them all.
    metrics = WebhookMetrics()

    async def send_bad_reviews() -> list[int]:
        transport = httpx.ASGITransport(app=create_webhook_app(metrics=metrics))
        async with httpx.AsyncClient(transport=transport, base_url="http://hook.test") as http:
            return [(await http.post("/mutate", content=b"{oops")).status_code for _ in range(25)]

    with caplog.at_level(logging.INFO, logger="sgx_quote_helper"):
        assert asyncio.run(send_bad_reviews()) == [400] * 25
    lines = [r for r in caplog.records if r.getMessage() == "webhook.bad_review"]
    assert 0 < len(lines) < 25
    counted = metrics.registry.get_sample_value(
        "sgx_quote_helper_webhook_reviews_total", {"outcome": "bad_request"}
    )
    assert counted == 25


def test_renewed_certificate_is_served_without_restart(tmp_path: Path) -> None:
    first, second = ExampleCa("first CA"), ExampleCa("second CA")
    cert, key = first.issue(tmp_path / "tls")
    with webhook_in_thread(TlsFiles(cert, key)) as hook:
        with httpx.Client(verify=client_context(first), timeout=10.0) as http:
            assert http.get(f"{hook.url}/healthz").status_code == 200
        assert hook.reloader.check() is False  # unchanged files: nothing to do
        second.issue(tmp_path / "tls")  # what cert-manager does to the mounted Secret
        new_stamp = tuple(p.stat().st_mtime + 1 for p in (cert, key))
        for path, stamp in zip((cert, key), new_stamp, strict=True):
            os.utime(path, (stamp, stamp))
        assert hook.reloader.check() is True
        with httpx.Client(verify=client_context(second), timeout=10.0) as http:
            assert http.get(f"{hook.url}/healthz").status_code == 200


@pytest.mark.usefixtures("keep_logging")  # the command configures the package logger
def test_cli_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Usage errors exit 2 in every command (issue 11).
    assert main(["webhook", "--tls-cert", "c", "--tls-key", "k", "--listen", "nope"]) == 2
    assert "--listen 'nope'" in capsys.readouterr().err
    assert main(["webhook", "--tls-cert", "c", "--tls-key", "k", "--enclave-resource", "x"]) == 2
    assert "not an extended resource name" in capsys.readouterr().err
    missing = tmp_path / "missing.crt"
    assert (
        main(
            [
                "webhook",
                "--tls-cert",
                str(missing),
                "--tls-key",
                str(missing),
                "--listen",
                "127.0.0.1:0",
            ]
        )
        == 1
    )
    assert "cannot load the webhook's TLS certificate" in capsys.readouterr().err
