"""The Helm chart: every flavour and non-default values render, validate and mean what they say.

Validation is layered as spec kubernetes.md section 7.1 describes: `kubernetes-validate
--strict` (JSON schemas of current Kubernetes, unknown fields rejected), the typed decode of
`kubectl set env|subject --local` (Go API types: catches an unquoted SGX_AESM_ADDR value or a
malformed quantity), and `helm lint --strict` (which enforces values.schema.json).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    CHART,
    WORKLOADS,
    Helm,
    by_kind,
    kubectl_env,
    make_helm,
    named,
    pod_spec,
    pod_template,
    preset,
    require_tool,
    yaml,
)

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is in the `k8s` extra: make k8s-tools"
)


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


@pytest.fixture(scope="module")
def kubectl() -> str:
    return require_tool("kubectl")


Docs = list[dict[str, Any]]

#: name -> (value files, --set items, kube version); the presets, then non-default values.
CASES: dict[str, tuple[tuple[Path, ...], tuple[str, ...], str | None]] = {
    "defaults": ((), (), None),
    "aks": ((preset("aks"),), (), None),
    "intel": ((preset("intel"),), (), None),
    "sim": ((preset("sim"),), (), None),
    "aks-legacy-epc-sample": (
        (preset("aks"),),
        ("legacyEpc.enabled=true", "sample.enabled=true", "daemon.logFormat=text"),
        None,
    ),
    "intel-non-root-pccs": (
        (preset("intel"),),
        (
            "daemon.pccsUrl=https://pccs.example.internal:8081",
            "daemon.podSecurityContext.runAsUser=10001",
            "daemon.podSecurityContext.runAsNonRoot=true",
            "daemon.podSecurityContext.supplementalGroups={996}",
            "daemon.hostDirOwnership=true",
            "daemon.allowUids={1000,1001}",
            "image.registry=registry.example.internal/sgx",
            "image.tag=1.2.3",
            "monitoring.podMonitor.enabled=true",
            "webhook.enabled=true",
            "webhook.tls.issuerRef.kind=ClusterIssuer",
            "webhook.tls.issuerRef.name=internal-ca",
            "sample.enabled=true",
            "sample.image.repository=sgx-sdk-demo",
            "sample.command={/opt/app/ecdsa_quote}",
        ),
        None,
    ),
    "sim-everything": (
        (preset("sim"),),
        (
            "sample.enabled=true",
            "monitoring.serviceMonitor.enabled=true",
            "monitoring.prometheusRule.enabled=true",
            "monitoring.grafanaDashboard.enabled=true",
            "webhook.tls.mode=secret",
            "webhook.tls.secretName=webhook-tls",
            "webhook.tls.caBundle=Q0EK",
            "webhook.url=https://127.0.0.1:8443/mutate",
            "webhook.replicas=1",
            f"image.digest=sha256:{'a' * 64}",
            "fullnameOverride=qh",
            "namespaceOverride=kube-system",
            "simPccs.persistence.accessModes={ReadWriteMany}",
            "simPccs.nodeSelector=sgx-sim=true",
        ),
        None,
    ),
    "sim-kube-1.20": ((preset("sim"),), (), "1.20.2"),
}

#: Kinds whose schemas are CRDs (cert-manager, prometheus-operator), not in kubernetes-validate.
CRD_GROUPS = ("cert-manager.io/", "monitoring.coreos.com/")


@pytest.fixture(scope="module")
def renders(helm: Helm) -> dict[str, Docs]:
    return {
        name: helm.template(values, sets, kube_version)
        for name, (values, sets, kube_version) in CASES.items()
    }


def _is_crd(doc: dict[str, Any]) -> bool:
    return str(doc["apiVersion"]).startswith(CRD_GROUPS)


def _validate(docs: Sequence[dict[str, Any]], version: str) -> list[str]:
    errors = []
    for doc in docs:
        if _is_crd(doc):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
    return errors


@pytest.mark.parametrize("case", [name for name, spec in CASES.items() if spec[2] is None])
def test_renders_pass_kubernetes_validate_strict(renders: dict[str, Docs], case: str) -> None:
    docs = renders[case]
    assert docs
    assert _validate(docs, kubernetes_validate.latest_version()) == []


def test_kube_1_20_render_keeps_fields_it_knows_and_validates(renders: dict[str, Docs]) -> None:
    old, new = renders["sim-kube-1.20"], renders["sim"]
    old_ds = named(old, "DaemonSet", "-daemon")["spec"]["updateStrategy"]["rollingUpdate"]
    new_ds = named(new, "DaemonSet", "-daemon")["spec"]["updateStrategy"]["rollingUpdate"]
    assert old_ds == {"maxUnavailable": 1}  # 1.20 has no DaemonSet maxSurge
    assert new_ds == {"maxUnavailable": 1, "maxSurge": 0}
    assert named(old, "PodDisruptionBudget", "-webhook")["apiVersion"] == "policy/v1beta1"
    assert named(new, "PodDisruptionBudget", "-webhook")["apiVersion"] == "policy/v1"
    assert named(old, "CronJob", "-bootstrap")["apiVersion"] == "batch/v1beta1"
    assert named(new, "CronJob", "-bootstrap")["apiVersion"] == "batch/v1"
    # Everything else is what a current API server accepts too (the oldest bundled schemas).
    rest = [doc for doc in old if doc["kind"] not in ("PodDisruptionBudget", "CronJob")]
    assert _validate(rest, "1.25.0") == []


def _typed_decode(kubectl: str, docs: Sequence[dict[str, Any]], tmp_path: Path) -> None:
    """Decode into the Go API types; fails on what only typed decoding catches."""
    groups = {
        ("set", "env", "CHECK=1"): WORKLOADS,
        ("set", "subject", "--user=check"): ("RoleBinding", "ClusterRoleBinding"),
    }
    for command, kinds in groups.items():
        selected = [doc for doc in docs if doc["kind"] in kinds]
        if not selected:
            continue
        path = tmp_path / f"{command[1]}.yaml"
        path.write_text(yaml.safe_dump_all(selected))
        result = subprocess.run(
            [kubectl, *command[:2], "--local", "-f", str(path), command[2], "-o", "yaml"],
            capture_output=True,
            text=True,
            env=kubectl_env(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert len(list(yaml.safe_load_all(result.stdout))) >= 1


@pytest.mark.parametrize("case", list(CASES))
def test_renders_pass_typed_decode(
    renders: dict[str, Docs], kubectl: str, case: str, tmp_path: Path
) -> None:
    _typed_decode(kubectl, renders[case], tmp_path)


def test_the_aks_documentation_sample_as_published_fails_both_checks(
    renders: dict[str, Docs], kubectl: str, tmp_path: Path
) -> None:
    """The checks can fail: the published sample's unquoted `value: 1` is caught by both."""
    job = named(renders["aks-legacy-epc-sample"], "Job", "-sample")
    env = pod_spec(job)["containers"][0]["env"]
    assert {"name": "SGX_AESM_ADDR", "value": "1"} in env
    published = yaml.safe_load(yaml.safe_dump(job).replace("value: '1'", "value: 1"))
    assert _validate([published], kubernetes_validate.latest_version())
    with pytest.raises(AssertionError, match="cannot unmarshal number"):
        _typed_decode(kubectl, [published], tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_helm_lint_strict(helm: Helm, case: str) -> None:
    values, sets, kube_version = CASES[case]
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    if kube_version:
        args += ["--kube-version", kube_version]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


# -- values.schema.json ---------------------------------------------------------------

BAD_VALUES = {
    "unknown backend": ("daemon.backend=aesmd", "daemon.backend"),
    "DaemonSet surge (two daemons racing for the socket)": (
        "daemon.updateStrategy.rollingUpdate.maxSurge=1",
        "maxSurge",
    ),
    "malformed EPC quantity": ("daemon.epcRequest=1 MB", "epcRequest"),
    "invalid resource name": ("resourceNames.epc=sgx intel epc", "resourceNames.epc"),
    "misspelt key": ("daemon.socketdir=/run/aesmd", "socketdir"),
    "secret TLS without a CA bundle": ("webhook.tls.mode=secret", "caBundle"),
    "legacy EPC without a resource name": ("legacyEpc.enabled=true", "resource"),
    "negative quantity": ("daemon.epcRequest=-1Mi", "epcRequest"),
    "quantity of dots": ("daemon.tmpSizeLimit=...", "tmpSizeLimit"),
    "quantity with two decimal points": ("simPccs.persistence.size=1.2.3", "persistence.size"),
    "lower-case binary unit": ("webhook.resources.limits.memory=64mi", "memory"),
    "namespace that is no DNS label": ("namespaceOverride=My_NS", "namespaceOverride"),
    "env item without a name": ("daemon.extraEnv[0].value=x", "name is required"),
    "unquoted env value": (
        "daemon.extraEnv[0].name=SGX_AESM_ADDR,daemon.extraEnv[0].value=1",
        "extraEnv.0.value",
    ),
}


@pytest.mark.parametrize("bad", list(BAD_VALUES))
def test_values_schema_rejects_bad_values(helm: Helm, bad: str) -> None:
    item, named_in_error = BAD_VALUES[bad]
    result = helm.run("lint", "--strict", str(CHART), "--set", item)
    assert result.returncode != 0
    assert named_in_error in result.stdout + result.stderr


@pytest.mark.parametrize("quantity", ["1", "0", "64Mi", "100m", "0.5", ".5", "1.", "1e3", "2E-1"])
def test_values_schema_accepts_kubernetes_quantities(helm: Helm, quantity: str) -> None:
    result = helm.run(
        "lint", "--strict", str(CHART), "--set-string", f"daemon.tmpSizeLimit={quantity}"
    )
    assert result.returncode == 0, result.stdout + result.stderr


#: Out of range in a values file (where helm reads every number as a float64): key, value.
OUT_OF_RANGE = {
    "EPC above int64": ("devicePlugin", "epcBytes", "9223372036854775808"),
    "provisioning gid above a Kubernetes group id": ("devicePlugin", "provisionGid", "2147483648"),
    "allowed uid above uid_t": ("daemon", "allowUids", "[4294967295]"),
    "allowed gid above uid_t": ("daemon", "allowGids", "[4294967295]"),
    "grace period above int64": ("daemon", "terminationGracePeriodSeconds", "1e19"),
    "drain timeout above the daemon's day": ("daemon", "drainTimeoutSeconds", "86401"),
    "pod uid above a Kubernetes user id": (
        "daemon",
        "podSecurityContext",
        "{runAsUser: 2147483648}",
    ),
    "replicas above int32": ("webhook", "replicas", "2147483648"),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_values_schema_rejects_numbers_out_of_range(helm: Helm, tmp_path: Path, case: str) -> None:
    section, key, value = OUT_OF_RANGE[case]
    values = tmp_path / "values.yaml"
    values.write_text(f"{section}:\n  {key}: {value}\n")
    result = helm.run("template", "r", str(CHART), "--values", str(values))
    assert result.returncode != 0
    assert f"{section}.{key}" in result.stderr
    assert "Must be less than or equal to" in result.stderr


def test_large_numbers_render_as_integers(helm: Helm, tmp_path: Path) -> None:
    """OpenShift-range ids from a values file (float64s in helm) are integers, not 1e+09."""
    values = tmp_path / "values.yaml"
    values.write_text(
        "daemon:\n"
        "  allowUids: [1000680001]\n"
        "  allowGids: [1000680000]\n"
        "  terminationGracePeriodSeconds: 1000000\n"
        "  revisionHistoryLimit: 1000000\n"
        "  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1000000}}\n"
        "  podSecurityContext: {runAsUser: 1000680000, runAsGroup: 1000680000}\n"
        "devicePlugin:\n"
        "  provisionGid: 1000680001\n"
        "  epcBytes: 10000000000\n"
        "simPccs:\n"
        "  bootstrap: {backoffLimit: 1000000}\n"
        "webhook:\n"
        "  replicas: 1000000\n"
    )
    docs = helm.template([preset("sim"), values])
    assert _validate(docs, kubernetes_validate.latest_version()) == []
    ds, spec = _daemon(docs)
    assert ds["spec"]["revisionHistoryLimit"] == 1000000
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1000000
    assert spec["terminationGracePeriodSeconds"] == 1000000
    assert spec["securityContext"]["supplementalGroups"] == [1000680001]
    assert spec["initContainers"][0]["command"][1] == "1000680000:1000680000"
    args = spec["containers"][0]["args"]
    assert "--allow-uid=1000680001" in args
    assert "--allow-gid=1000680000" in args
    plugin_args = pod_spec(named(docs, "DaemonSet", "-device-plugin"))["containers"][0]["args"]
    assert "--provision-gid=1000680001" in plugin_args
    assert "--epc-bytes=10000000000" in plugin_args
    assert named(docs, "Job", "-bootstrap")["spec"]["backoffLimit"] == 1000000
    assert named(docs, "Deployment", "-webhook")["spec"]["replicas"] == 1000000


def test_users_supplemental_groups_join_the_provisioning_group(helm: Helm, tmp_path: Path) -> None:
    """One supplementalGroups key (a second one is a duplicate key the API server rejects)."""
    values = tmp_path / "values.yaml"
    values.write_text("daemon:\n  podSecurityContext:\n    supplementalGroups: [1000680005]\n")
    result = helm.run(
        "template",
        "r",
        str(CHART),
        "--values",
        str(preset("sim")),
        "--values",
        str(values),
        "--show-only",
        "templates/daemonset.yaml",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("supplementalGroups:") == 1
    _, spec = _daemon([doc for doc in yaml.safe_load_all(result.stdout) if doc])
    assert spec["securityContext"]["supplementalGroups"] == [1000680005, 10002]


def test_grace_period_must_exceed_drain_timeout(helm: Helm) -> None:
    result = helm.run(
        "template", "r", str(CHART), "--set", "daemon.drainTimeoutSeconds=60"
    )  # grace period stays 30
    assert result.returncode != 0
    assert "terminationGracePeriodSeconds must be larger" in result.stderr


# -- what the flavours mean -------------------------------------------------------------


def _daemon(docs: Docs) -> tuple[dict[str, Any], dict[str, Any]]:
    ds = named(docs, "DaemonSet", "-daemon")
    spec = pod_spec(ds)
    return ds, spec


def _containers(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            spec = pod_spec(doc)
            for container in spec.get("initContainers", []) + spec["containers"]:
                found.append((doc["metadata"]["name"], container))
    return found


@pytest.mark.parametrize("case", ["aks", "intel", "sim"])
def test_quote_helper_daemonset(renders: dict[str, Docs], case: str) -> None:
    docs = renders[case]
    ds, spec = _daemon(docs)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["aesmd-socket"]["hostPath"] == {
        "path": "/var/run/aesmd",
        "type": "DirectoryOrCreate",
    }
    (container,) = spec["containers"]
    args = container["args"]
    backend = "sim" if case == "sim" else "dcap"
    assert args[:3] == ["serve", f"--backend={backend}", "--socket=/var/run/aesmd/aesm.socket"]
    assert "--admin-listen=0.0.0.0:8090" in args
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["aesmd-socket"] == "/var/run/aesmd"
    if case == "sim":
        # The sealed attestation key and the PCK chain cache survive pod restarts.
        assert "--state-dir=/var/lib/sgx-quote-helper/state" in args
        assert volumes["state"]["hostPath"] == {
            "path": "/var/lib/sgx-quote-helper/state",
            "type": "DirectoryOrCreate",
        }
        assert mounts["state"] == "/var/lib/sgx-quote-helper/state"
    else:
        # Intel's library keeps its key and gets the chain through its quote provider.
        assert not [arg for arg in args if arg.startswith(("--state-dir", "--pccs", "--plat"))]
        assert "state" not in volumes
        assert {"name": "HOME", "value": "/tmp"} in container["env"]
    # Probes: liveness never depends on the PCCS; readiness waits for the PCK chain.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert container["ports"] == [{"name": "admin", "containerPort": 8090, "protocol": "TCP"}]
    # Grace period above the drain timeout.
    drain = next(int(arg.split("=")[1]) for arg in args if arg.startswith("--drain-timeout="))
    assert spec["terminationGracePeriodSeconds"] > drain
    # Tightest security context.
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    if case == "sim":
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["securityContext"]["supplementalGroups"] == [10002]
    # EPC, enclave and provision requested (requests == limits for extended resources).
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert resources[kind]["sgx.intel.com/epc"] == "1Mi"
        assert resources[kind]["sgx.intel.com/enclave"] == "1"
        assert resources[kind]["sgx.intel.com/provision"] == "1"
        assert {"cpu", "memory"} <= resources[kind].keys()


def test_only_the_daemon_requests_the_provisioning_device(renders: dict[str, Docs]) -> None:
    for case in ("sim-everything", "aks-legacy-epc-sample", "intel-non-root-pccs"):
        holders = {
            owner
            for owner, container in _containers(renders[case])
            if "sgx.intel.com/provision" in container.get("resources", {}).get("limits", {})
        }
        assert holders == {next(n for n, _ in _containers(renders[case]) if "daemon" in n)}


def test_sim_flavour_wiring(renders: dict[str, Docs]) -> None:
    docs = renders["sim"]
    _, spec = _daemon(docs)
    args = spec["containers"][0]["args"]
    assert "--platform=/var/run/sgx-sim/platform" in args
    assert "--pccs-url=http://sqh-sgx-quote-helper-pccs.sgx-quote-helper:8081" in args
    init = spec["initContainers"][0]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["command"] == [
        "chown",
        "10001:10001",
        "/var/run/aesmd",
        "/var/lib/sgx-quote-helper/state",
    ]

    plugin = pod_spec(named(docs, "DaemonSet", "-device-plugin"))
    plugin_args = plugin["containers"][0]["args"]
    assert plugin_args[0] == "device-plugin"
    for expected in (
        "--node-name=$(NODE_NAME)",
        "--namespace=sgx-quote-helper",
        "--secret-prefix=sgx-sim-platform-",
        "--host-dir=/var/lib/sgx-quote-helper/sim-devices",
        "--provision-gid=10002",
    ):
        assert expected in plugin_args
    env = plugin["containers"][0]["env"][0]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    host_paths = {v["name"]: v["hostPath"] for v in plugin["volumes"]}
    assert host_paths["sim-devices"]["type"] == "DirectoryOrCreate"

    pccs = pod_spec(named(docs, "Deployment", "-pccs"))
    assert pccs["containers"][0]["args"][:3] == [
        "pccs",
        "--sim=/var/lib/sgx-quote-helper/sim",
        "--listen=0.0.0.0:8081",
    ]
    claim = named(docs, "PersistentVolumeClaim", "-pccs")["metadata"]["name"]
    assert pccs["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim

    job = named(docs, "Job", "-bootstrap")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    job_spec = pod_spec(job)
    cron = named(docs, "CronJob", "-bootstrap")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod_template(cron) == job["spec"]["template"]  # one pod, two triggers
    assert job_spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim
    assert "registry.json" in job_spec["initContainers"][0]["command"][2]
    (sim_init,) = pccs["initContainers"]
    assert "sgx-quote-helper sim init" in sim_init["command"][2]
    assert sim_init["volumeMounts"][0]["mountPath"] == "/var/lib/sgx-quote-helper/sim"
    assert job_spec["containers"][0]["args"][:3] == [
        "sim",
        "register-nodes",
        "/var/lib/sgx-quote-helper/sim",
    ]


def _rules(docs: Docs, kind: str, suffix: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = named(docs, kind, suffix)["rules"]
    return rules


def _bound(docs: Docs, binding_kind: str, suffix: str) -> str:
    binding = named(docs, binding_kind, suffix)
    (subject,) = binding["subjects"]
    name: str = subject["name"]
    return name


def test_rbac_is_exactly_what_each_component_needs(renders: dict[str, Docs]) -> None:
    docs = renders["sim"]
    assert _rules(docs, "Role", "-device-plugin") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]
    assert _rules(docs, "ClusterRole", "-device-plugin") == [
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}
    ]
    assert _rules(docs, "Role", "-bootstrap") == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "update"]}
    ]
    assert _rules(docs, "ClusterRole", "-bootstrap") == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}
    ]
    assert len(by_kind(docs, "Role")) == 2
    assert len(by_kind(docs, "ClusterRole")) == 2
    for component in ("device-plugin", "bootstrap"):
        sa = f"sqh-sgx-quote-helper-{component}"
        assert _bound(docs, "RoleBinding", f"-{component}") == sa
        assert _bound(docs, "ClusterRoleBinding", f"-{component}") == sa
    tokens = {
        (doc["kind"], doc["metadata"]["name"]): pod_spec(doc)["automountServiceAccountToken"]
        for doc in docs
        if doc["kind"] in WORKLOADS
    }
    assert tokens == {
        ("DaemonSet", "sqh-sgx-quote-helper-daemon"): False,
        ("DaemonSet", "sqh-sgx-quote-helper-device-plugin"): True,
        ("Deployment", "sqh-sgx-quote-helper-pccs"): False,
        ("Job", "sqh-sgx-quote-helper-bootstrap"): True,
        ("CronJob", "sqh-sgx-quote-helper-bootstrap"): True,
        ("Deployment", "sqh-sgx-quote-helper-webhook"): False,
    }
    # Real SGX flavours run no component that talks to the API server.
    for case in ("aks", "intel"):
        assert not [d for d in renders[case] if "Role" in d["kind"]]


def test_webhook_configuration(renders: dict[str, Docs]) -> None:
    docs = renders["sim"]
    config = by_kind(docs, "MutatingWebhookConfiguration")[0]
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        "sgx-quote-helper/sqh-sgx-quote-helper-webhook"
    )
    (hook,) = config["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hook["failurePolicy"] == "Ignore"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["sideEffects"] == "None"
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["objectSelector"]["matchExpressions"][0]["values"] == ["skip"]
    webhook = pod_spec(named(docs, "Deployment", "-webhook"))
    args = webhook["containers"][0]["args"]
    assert "--epc-resource=sgx.intel.com/epc" in args
    certificate = named(docs, "Certificate", "-webhook")
    secret = webhook["volumes"][0]["secret"]["secretName"]
    assert certificate["spec"]["secretName"] == secret
    # caBundle from values instead, and a URL for an API server on loopback.
    (hook,) = by_kind(renders["sim-everything"], "MutatingWebhookConfiguration")[0]["webhooks"]
    assert hook["clientConfig"] == {"url": "https://127.0.0.1:8443/mutate", "caBundle": "Q0EK"}
    assert not by_kind(renders["sim-everything"], "Certificate")
    # Every pod of the chart is excluded from its own webhook.
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            labels = pod_template(doc)["metadata"]["labels"]
            assert labels["sgx-quote-helper.io/webhook"] == "skip"


def test_sample_job_is_the_corrected_aks_sample(renders: dict[str, Docs]) -> None:
    job = named(renders["sim-everything"], "Job", "-sample")
    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert {"name": "SGX_AESM_ADDR", "value": "1"} in container["env"]
    assert container["resources"]["limits"]["sgx.intel.com/epc"] == "5Mi"
    assert container["resources"]["limits"]["sgx.intel.com/enclave"] == "1"
    assert "sgx.intel.com/provision" not in container["resources"]["limits"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/run/aesmd")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"]["path"] == "/var/run/aesmd"
    assert container["image"].startswith("sgx-quote-helper-sample:")
    # The sample image's own application (its entry point), given the report data.
    assert "command" not in container
    assert "args" not in container
    assert {"name": "SAMPLE_REPORT_DATA", "value": "73616d706c65"} in container["env"]


def test_aks_legacy_epc_resource(renders: dict[str, Docs]) -> None:
    docs = renders["aks-legacy-epc-sample"]
    _, spec = _daemon(docs)
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["kubernetes.azure.com/sgx_epc_mem_in_MiB"] == "1"
    assert "sgx.intel.com/epc" not in limits
    assert limits["sgx.intel.com/enclave"] == "1"  # devices keep Intel's names
    taint = {
        "key": "kubernetes.azure.com/sgx_epc_mem_in_MiB",
        "operator": "Equal",
        "value": "true",
        "effect": "NoSchedule",
    }
    assert taint in spec["tolerations"]
    sample = pod_spec(named(docs, "Job", "-sample"))
    assert sample["containers"][0]["resources"]["limits"][taint["key"]] == "10"
    assert taint in sample["tolerations"]


def test_image_and_monitoring_values(renders: dict[str, Docs]) -> None:
    containers = _containers(renders["intel-non-root-pccs"])
    images = {c["image"] for n, c in containers if "sample" not in n}
    assert images == {"registry.example.internal/sgx/sgx-quote-helper:1.2.3-dcap-intel"}
    (sample,) = [c for n, c in containers if "sample" in n]
    assert sample["image"] == "sgx-sdk-demo:0.1.0"
    assert sample["command"] == ["/opt/app/ecdsa_quote"]
    images = {c["image"] for n, c in _containers(renders["sim-everything"]) if "sample" not in n}
    assert images == {f"sgx-quote-helper@sha256:{'a' * 64}"}
    for case in ("aks", "intel", "sim", "defaults"):
        kinds = {doc["kind"] for doc in renders[case]}
        assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule"}  # off by default
    everything = renders["sim-everything"]
    rule = by_kind(everything, "PrometheusRule")[0]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts >= {
        "SgxQuoteHelperNotReady",
        "SgxQuoteHelperQuoteErrors",
        "SgxQuoteHelperPckChainExpiresSoon",
        "SgxQuoteHelperRefusingPeers",
    }
    monitor = by_kind(everything, "ServiceMonitor")[0]
    assert monitor["spec"]["endpoints"][0]["port"] == "admin"
    dashboard = by_kind(everything, "ConfigMap")[0]["data"]["sgx-quote-helper.json"]
    assert (CHART / "files" / "dashboard.json").read_text().strip() == dashboard.strip()
    pod_monitor = by_kind(renders["intel-non-root-pccs"], "PodMonitor")[0]
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "admin"
    # Non-root dcap: the chown init container comes back with the daemon's uid.
    _, spec = _daemon(renders["intel-non-root-pccs"])
    assert spec["initContainers"][0]["command"][1] == "10001:0"
    assert "--allow-uid=1000" in spec["containers"][0]["args"]
    assert spec["initContainers"][0]["command"] == ["chown", "10001:0", "/var/run/aesmd"]


def test_down_alert_selects_the_monitors_jobs(renders: dict[str, Docs]) -> None:
    """`up` of this release's daemon, as prometheus-operator names the jobs, under any name."""
    docs = renders["sim-everything"]  # fullnameOverride=qh, namespace kube-system
    rule = by_kind(docs, "PrometheusRule")[0]
    (down,) = [
        r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "SgxQuoteHelperDown"
    ]
    match = re.fullmatch(r'up\{job=~"(.+)"\} == 0', down["expr"].strip())
    assert match, down["expr"]
    job = re.compile(match.group(1))  # Prometheus anchors label regexes
    monitor = by_kind(docs, "ServiceMonitor")[0]
    service = monitor["spec"]["selector"]["matchLabels"]
    (metrics,) = [d for d in by_kind(docs, "Service") if d["spec"].get("clusterIP") == "None"]
    assert service.items() <= metrics["spec"]["selector"].items()
    # ServiceMonitor: job = the Service's name; PodMonitor: job = <namespace>/<name>.
    assert job.fullmatch(metrics["metadata"]["name"])
    assert job.fullmatch(f"kube-system/{monitor['metadata']['name']}")
    # Another release's daemon (or anything else) does not count.
    assert not job.fullmatch("kube-system/other-sgx-quote-helper-daemon")
    assert not job.fullmatch("node-exporter")


def _render_notes(helm: Helm, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it (helm template skips it, so render it via tpl)."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ tpl (.Files.Get "notes.txt") . | quote }}}\n'
    )
    args = ["template", "sqh", str(chart), "--namespace", "sgx", "--show-only"]
    args += ["templates/zz-notes.yaml", *[f"--set={item}" for item in sets]]
    result = helm.run(*args)
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_tell_how_to_opt_an_application_in(helm: Helm, tmp_path: Path) -> None:
    notes = _render_notes(helm, tmp_path / "sim", "sample.enabled=true")
    assert "sgx.intel.com/quote-provider: aesmd" in notes  # with the webhook
    assert 'value: "1"' in notes  # by hand, quoted
    assert "path: /var/run/aesmd" in notes
    assert "type: DirectoryOrCreate" in notes
    assert 'sgx.intel.com/enclave: "1"' in notes
    assert "kubectl -n sgx logs job/sqh-sgx-quote-helper-sample" in notes
    assert "cert-manager" in notes
    assert "pod-security.kubernetes.io/enforce=privileged" in notes
    legacy = _render_notes(
        helm,
        tmp_path / "aks",
        "webhook.enabled=false",
        "legacyEpc.enabled=true",
        "legacyEpc.resource=kubernetes.azure.com/sgx_epc_mem_in_MiB",
    )
    assert "quote-provider" not in legacy
    assert 'kubernetes.azure.com/sgx_epc_mem_in_MiB: "10"' in legacy


def test_dcap_quote_provider_configuration(renders: dict[str, Docs]) -> None:
    """intel: sgx_default_qcnl.conf from values, pods roll when it changes; aks: none."""
    docs = renders["intel-non-root-pccs"]
    config = named(docs, "ConfigMap", "-daemon-qcnl")
    conf = json.loads(config["data"]["sgx_default_qcnl.conf"])
    assert conf == {
        "pccs_url": "https://pccs.example.internal:8081/sgx/certification/v4/",
        "use_secure_cert": True,
    }
    ds, spec = _daemon(docs)
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/qcnl"]) == 64
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "qcnl")
    assert mount == {
        "name": "qcnl",
        "mountPath": "/etc/sgx_default_qcnl.conf",
        "subPath": "sgx_default_qcnl.conf",
        "readOnly": True,
    }
    volume = next(v for v in spec["volumes"] if v["name"] == "qcnl")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    _, intel = _daemon(renders["intel"])
    assert (
        next(v for v in intel["volumes"] if v["name"] == "tmp")["emptyDir"]["sizeLimit"] == "64Mi"
    )
    for case in ("aks", "aks-legacy-epc-sample", "sim"):
        assert not [d for d in renders[case] if d["metadata"]["name"].endswith("-qcnl")]


def test_qcnl_follows_values(helm: Helm) -> None:
    before = helm.template([preset("intel")], ["daemon.pccsUrl=https://a.example:8081"])
    after = helm.template(
        [preset("intel")],
        [
            "daemon.pccsUrl=https://b.example:8081/",
            "daemon.pccsInsecure=true",
            "daemon.qcnl.extra.retry_times=6",
        ],
    )
    conf = json.loads(named(after, "ConfigMap", "-qcnl")["data"]["sgx_default_qcnl.conf"])
    assert conf == {
        "pccs_url": "https://b.example:8081/sgx/certification/v4/",
        "use_secure_cert": False,
        "retry_times": 6,
    }

    def checksum(docs: Docs) -> str:
        value: str = _daemon(docs)[0]["spec"]["template"]["metadata"]["annotations"][
            "checksum/qcnl"
        ]
        return value

    assert checksum(before) != checksum(after)


# -- names ------------------------------------------------------------------------------

#: Every component and every object the chart can render.
EVERYTHING = (
    "sample.enabled=true",
    "monitoring.podMonitor.enabled=true",
    "monitoring.serviceMonitor.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.grafanaDashboard.enabled=true",
)


def _names_are_unique_dns_labels(docs: Docs) -> None:
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in docs]
    duplicates = {item for item in names if names.count(item) > 1}
    assert not duplicates
    too_long = [(kind, name) for kind, name in names if len(name) > 63]
    assert not too_long
    for _, name in names:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name


def _references_resolve(docs: Docs) -> None:
    """Every name an object refers to is the name of an object of the render."""
    have = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            spec = pod_spec(doc)
            assert ("ServiceAccount", spec.get("serviceAccountName", "default")) in have or (
                "serviceAccountName" not in spec
            )
            for volume in spec["volumes"]:
                if "persistentVolumeClaim" in volume:
                    claim = volume["persistentVolumeClaim"]["claimName"]
                    assert ("PersistentVolumeClaim", claim) in have
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in have
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert (doc["roleRef"]["kind"], doc["roleRef"]["name"]) in have
            for subject in doc["subjects"]:
                assert ("ServiceAccount", subject["name"]) in have
        if doc["kind"] == "MutatingWebhookConfiguration":
            service = doc["webhooks"][0]["clientConfig"]["service"]["name"]
            assert ("Service", service) in have
            assert ("Certificate", service) in have


@pytest.mark.parametrize(
    ("release", "sets"),
    [
        ("r" * 53, ()),  # the longest release name helm allows
        ("r" * 45, ()),
        ("sqh", ("fullnameOverride=" + "f" * 60,)),
        ("sqh", ("fullnameOverride=" + "f" * 70,)),
    ],
    ids=["release-53", "release-45", "fullname-60", "fullname-70"],
)
def test_long_names_stay_unique_and_short(helm: Helm, release: str, sets: tuple[str, ...]) -> None:
    docs = helm.template([preset("sim")], [*EVERYTHING, *sets], release=release)
    _names_are_unique_dns_labels(docs)
    _references_resolve(docs)
    assert _validate(docs, kubernetes_validate.latest_version()) == []
    # The component stays readable at the end of a cut name.
    assert named(docs, "DaemonSet", "-daemon")
    assert named(docs, "Service", "-daemon-metrics")
    # The down alert still selects the monitors' jobs (see test_down_alert_selects_...).
    rule = by_kind(docs, "PrometheusRule")[0]
    (down,) = [
        r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "SgxQuoteHelperDown"
    ]
    match = re.fullmatch(r'up\{job=~"(.+)"\} == 0', down["expr"].strip())
    assert match, down["expr"]
    job = re.compile(match.group(1))
    assert job.fullmatch(named(docs, "Service", "-daemon-metrics")["metadata"]["name"])
    assert job.fullmatch(f"sgx-quote-helper/{by_kind(docs, 'PodMonitor')[0]['metadata']['name']}")


def test_cluster_scoped_names_differ_between_namespaces_with_a_common_prefix(helm: Helm) -> None:
    prefix = "n" * 60
    kinds = ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration")

    def cluster_names(namespace: str) -> set[tuple[str, str]]:
        docs = helm.template([preset("sim")], namespace=namespace)
        _names_are_unique_dns_labels(docs)
        return {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in kinds}

    first, second = cluster_names(prefix + "-a"), cluster_names(prefix + "-b")
    assert len(first) == len(second) == 5
    assert not first & second


def test_short_names_are_unchanged(renders: dict[str, Docs]) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in renders["sim"]}
    assert ("ClusterRole", "sgx-quote-helper-sqh-sgx-quote-helper-bootstrap") in names
    assert (
        "MutatingWebhookConfiguration",
        "sgx-quote-helper-sqh-sgx-quote-helper-webhook",
    ) in names
    assert ("ServiceAccount", "sqh-sgx-quote-helper-device-plugin") in names
    metrics = {(d["kind"], d["metadata"]["name"]) for d in renders["sim-everything"]}
    assert ("Service", "qh-daemon-metrics") in metrics
    assert ("ConfigMap", "qh-daemon-dashboard") in metrics
