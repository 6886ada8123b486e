"""Properties of the pod mutation on generated pods: it applies, is idempotent, only adds."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from kube_support import admission_review, apply_patch

from sgx_quote_helper.kube import (
    AdmissionReviewError,
    ResourceNames,
    format_quantity,
    mutate_pod,
    parse_quantity,
    review,
)

NAMES = ResourceNames()
quantities = st.one_of(
    st.integers(0, 2**40).map(str),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(0, 4096),
        st.sampled_from(["Ki", "Mi", "Gi", "k", "M"]),
    ),
)
resource_names = st.sampled_from(
    [NAMES.epc, NAMES.enclave, NAMES.provision, "cpu", "memory", "a/b~c"]
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
unknown = st.dictionaries(st.text(min_size=1, max_size=6), json_leaf, max_size=3)


@st.composite
def containers(draw: st.DrawFn, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, **{f"x-{k}": v for k, v in draw(unknown).items()}}
    resources: dict[str, Any] = {}
    for section in ("limits", "requests"):
        values = draw(st.dictionaries(resource_names, quantities, max_size=3))
        if draw(st.booleans()) or values:
            resources[section] = values
    if draw(st.booleans()) or resources:
        container["resources"] = resources
    if draw(st.booleans()):
        container["env"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["A", "SGX_AESM_ADDR", "B"]),
                        "value": st.text(max_size=8),
                    }
                ),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        container["volumeMounts"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["data", "aesmd-socket"]),
                        "mountPath": st.sampled_from(["/data", "/var/run/aesmd", "/tmp"]),
                    }
                ),
                max_size=2,
            )
        )
    return container


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(
            st.sampled_from(["aesmd", "app", "web", "worker"]), min_size=1, max_size=4, unique=True
        )
    )
    metadata: dict[str, Any] = {"name": "p", **{f"x-{k}": v for k, v in draw(unknown).items()}}
    provider = draw(st.sampled_from([None, "aesmd", "app", "nobody"]))
    if provider is not None or draw(st.booleans()):
        annotations = draw(
            st.dictionaries(st.sampled_from(["a", "sgx.intel.com/epc", "k/x"]), st.text(max_size=4))
        )
        if provider is not None:
            annotations["sgx.intel.com/quote-provider"] = provider
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {"containers": [draw(containers(name)) for name in names]}
    if draw(st.booleans()):
        spec["volumes"] = [
            {"name": draw(st.sampled_from(["data", "aesmd-socket"])), "emptyDir": {}}
        ]
    spec.update({f"x-{k}": v for k, v in draw(unknown).items()})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def without_modelled(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod minus everything the webhook may add or change."""
    pod = copy.deepcopy(pod)
    pod["metadata"].get("annotations", {}).pop("sgx.intel.com/epc", None)
    if pod["metadata"].get("annotations") == {}:
        del pod["metadata"]["annotations"]
    pod["spec"].pop("volumes", None)
    for container in pod["spec"]["containers"]:
        for key in ("env", "volumeMounts"):
            container.pop(key, None)
        for section in (container.get("resources") or {}).values():
            if isinstance(section, dict):
                section.pop(NAMES.enclave, None)
                section.pop(NAMES.provision, None)
        resources = container.get("resources")
        if isinstance(resources, dict):
            for section in ("limits", "requests"):
                if resources.get(section) == {}:
                    del resources[section]
            if resources == {}:
                del container["resources"]
    return pod


@given(pods())
def test_patch_applies_adds_only_and_is_idempotent(pod: dict[str, Any]) -> None:
    original = copy.deepcopy(pod)
    patch = mutate_pod(pod)
    assert pod == original  # the input is not modified
    mutated = apply_patch(pod, patch)
    assert mutate_pod(mutated) == []  # re-invocation: nothing more
    assert without_modelled(mutated) == without_modelled(original)
    # Lists the webhook appends to keep their original entries, in order, first.
    for before, after in zip(
        original["spec"]["containers"], mutated["spec"]["containers"], strict=True
    ):
        for key in ("env", "volumeMounts"):
            assert after.get(key, [])[: len(before.get(key) or [])] == (before.get(key) or [])
    answer = review(json.dumps(admission_review(pod)).encode()).response["response"]
    assert answer["allowed"] is True
    assert ("patch" in answer) == bool(patch)


any_json = st.recursive(
    json_leaf | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
#: Where the mutation reads or writes: the pod, and (with ``*``) every container.
MODELLED = [
    ("metadata",),
    ("metadata", "name"),
    ("metadata", "generateName"),
    ("metadata", "annotations"),
    ("metadata", "annotations", "sgx.intel.com/quote-provider"),
    ("metadata", "annotations", "sgx.intel.com/epc"),
    ("spec",),
    ("spec", "containers"),
    ("spec", "volumes"),
    ("spec", "volumes", 0),
    ("spec", "containers", "*"),
    ("spec", "containers", "*", "name"),
    ("spec", "containers", "*", "resources"),
    ("spec", "containers", "*", "resources", "limits"),
    ("spec", "containers", "*", "resources", "requests"),
    ("spec", "containers", "*", "resources", "limits", NAMES.epc),
    ("spec", "containers", "*", "resources", "requests", NAMES.enclave),
    ("spec", "containers", "*", "env"),
    ("spec", "containers", "*", "env", 0),
    ("spec", "containers", "*", "volumeMounts"),
    ("spec", "containers", "*", "volumeMounts", 0),
]


@given(pods(), st.sampled_from(MODELLED), any_json, st.data())
def test_any_json_in_a_modelled_field_is_answered_or_a_bad_request(
    pod: dict[str, Any], where: tuple[str | int, ...], value: Any, data: st.DataObject
) -> None:
    """A value of any JSON type anywhere the mutation looks: an answer or a 400, no crash."""
    node: Any = pod
    for depth, token in enumerate(where[:-1]):
        if token == "*":
            token = data.draw(st.integers(0, len(node) - 1))
        if isinstance(node, list):
            if not isinstance(token, int) or token >= len(node):
                return  # nothing there to replace
        elif not isinstance(node.get(token), dict | list):
            node[token] = [{}] if isinstance(where[depth + 1], int) else {}
        node = node[token]
    last = where[-1]
    if isinstance(node, list) and (not isinstance(last, int) or last >= len(node)):
        return
    node[last] = value
    body = json.dumps(admission_review(pod)).encode()
    try:
        answer = review(body).response["response"]
    except AdmissionReviewError:
        return  # the clean 400
    assert isinstance(answer["allowed"], bool)


@given(st.integers(-(2**62), 2**62))
def test_quantity_format_round_trips(value: int) -> None:
    assert parse_quantity(format_quantity(value)) == value
