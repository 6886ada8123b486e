"""``sim register-nodes`` against a stand-in API server: a platform and a Secret per Node."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from kube_support import StandInApi

from sgx_quote_helper._cli import main
from sgx_quote_helper.kube import files_from_secret, read_platform_dir
from sgx_quote_helper.pcs import Manufacturer
from sgx_quote_helper.platform import Platform


def run(
    sim: Path, api: StandInApi, capsys: pytest.CaptureFixture[str], *extra: str
) -> list[dict[str, object]]:
    base = ["sim", "register-nodes", str(sim), "--namespace", "sgx", "--api-server", api.url]
    code = main([*base, "--json", *extra])
    assert code == 0
    outcome: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return outcome


@pytest.mark.usefixtures("keep_logging")
def test_register_nodes_is_idempotent(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with StandInApi(["node-a", "node-b.example"]) as api:
        first = run(sim, api, capsys)
        assert [(o["node"], o["platform_created"], o["secret_action"]) for o in first] == [
            ("node-a", True, "created"),
            ("node-b.example", True, "created"),
        ]
        manufacturer = Manufacturer.load(sim)
        assert {p.name for p in manufacturer.platforms()} == {"default", "node-a", "node-b.example"}
        for node in ("node-a", "node-b.example"):
            secret = api.secrets[("sgx", f"sgx-sim-platform-{node}")]
            assert secret["type"] == "Opaque"
            assert secret["metadata"]["annotations"] == {"sgx-quote-helper.io/node": node}
            assert sorted(secret["data"]) == ["enclave.secret", "platform.json", "provision.secret"]
            platform_dir = sim / "platforms" / node
            assert files_from_secret(secret, node) == read_platform_dir(platform_dir)
            # A complete platform that the quote helper can load (with provisioning access).
            assert Platform.load(platform_dir, need_provisioning=True).has_provisioning_access
        a = base64.b64decode(
            api.secrets[("sgx", "sgx-sim-platform-node-a")]["data"]["platform.json"]
        )
        b = base64.b64decode(
            api.secrets[("sgx", "sgx-sim-platform-node-b.example")]["data"]["platform.json"]
        )
        assert json.loads(a)["ppid"] != json.loads(b)["ppid"]  # one platform per node

        # Again: nothing new. Then a Secret that drifted is put back, a new node gets its own.
        again = run(sim, api, capsys)
        assert [(o["platform_created"], o["secret_action"]) for o in again] == [
            (False, "unchanged")
        ] * 2
        api.secrets[("sgx", "sgx-sim-platform-node-a")]["data"]["enclave.secret"] = "AAAA"
        api.nodes["node-c"] = {"metadata": {"name": "node-c"}, "status": {}}
        third = run(sim, api, capsys, "--node-selector", "sgx=yes", "--secret-prefix", "p-")
        assert [(o["node"], o["platform_created"], o["secret_action"]) for o in third] == [
            ("node-a", False, "created"),  # another prefix: another Secret, same platform
            ("node-b.example", False, "created"),
            ("node-c", True, "created"),
        ]
        assert {"labelSelector": ["sgx=yes"], "limit": ["500"]} in api.queries
        fourth = run(sim, api, capsys)
        assert [(o["node"], o["secret_action"]) for o in fourth] == [
            ("node-a", "updated"),
            ("node-b.example", "unchanged"),
            ("node-c", "created"),
        ]
        assert files_from_secret(
            api.secrets[("sgx", "sgx-sim-platform-node-a")], "a"
        ) == read_platform_dir(sim / "platforms" / "node-a")
        assert len(Manufacturer.load(sim).platforms()) == 4


@pytest.mark.usefixtures("keep_logging")
def test_register_nodes_reports_api_refusals(
    sim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("wrong")
    with StandInApi(["node-a"], token="right") as api:
        base = ["sim", "register-nodes", str(sim), "--namespace", "sgx", "--api-server", api.url]
        code = main([*base, "--api-token-file", str(tmp_path / "token")])
    assert code == 1
    err = capsys.readouterr().err
    assert "GET nodes failed: HTTP 401 Unauthorized" in err
    assert (
        main(
            [
                "sim",
                "register-nodes",
                str(sim),
                "--namespace",
                "sgx",
                "--api-server",
                "http://127.0.0.1:9",
            ]
        )
        == 1
    )
    assert "cannot reach the Kubernetes API" in capsys.readouterr().err


@pytest.mark.usefixtures("keep_logging")
def test_register_nodes_reports_malformed_objects(
    sim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Were AttributeError tracebacks.
    with StandInApi(["node-a"]) as api:
        base = ["sim", "register-nodes", str(sim), "--namespace", "sgx", "--api-server", api.url]
        api.secrets[("sgx", "sgx-sim-platform-node-a")] = {"metadata": ["x"], "data": {}}
        assert main(base) == 1
        assert capsys.readouterr().err == (
            "sgx-quote-helper: error: the API server's answer for secret "
            "sgx/sgx-sim-platform-node-a has malformed metadata\n"
        )
        api.nodes["node-a"]["metadata"] = "node-a"
        assert main(base) == 1
        assert capsys.readouterr().err == (
            "sgx-quote-helper: error: the API server's answer for a Node has malformed metadata\n"
        )
