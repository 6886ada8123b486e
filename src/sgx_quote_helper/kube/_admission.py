"""The SGX pod mutation, as a pure function: AdmissionReview JSON in, AdmissionReview out.

Behaviour is Intel's SGX admission webhook for the same annotation (spec
kubernetes.md section 3.4; facts from ``pkg/webhooks/sgx/sgx.go``), with the
resource names of the installed flavour:

1. Every entry of ``spec.containers`` that requests the EPC resource (in limits
   or requests) gets the enclave resource ``1`` in requests and limits.
2. The container named by the ``sgx.intel.com/quote-provider`` annotation also
   gets the provision resource (in-process quoting, or the aesmd container);
   no other container does.
3. With the annotation value ``aesmd``, each EPC container gets a volumeMount
   ``aesmd-socket`` at ``/var/run/aesmd`` (unless something is mounted there)
   and ``SGX_AESM_ADDR="1"`` (unless the variable is set); the pod gets the
   volume ``aesmd-socket``: ``emptyDir {medium: Memory}`` in sidecar mode (a
   container named ``aesmd`` plus another EPC container), otherwise
   ``hostPath /var/run/aesmd`` with type ``DirectoryOrCreate``.
4. The pod gets the annotation ``sgx.intel.com/epc``: the sum of the EPC requests.

Differences from Intel's, on purpose: the result is a JSON Patch of only what
is added or changed, so fields this code does not model are never touched
(Intel's IDP issue #1943: webhooks that re-serialised pods dropped
``appArmorProfile``); re-invocation adds nothing twice (Intel's appends a
second ``SGX_AESM_ADDR``).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sgx_quote_helper.kube._errors import AdmissionReviewError, PodRejectedError
from sgx_quote_helper.kube._names import (
    AESM_ADDR_ENV,
    AESM_ADDR_VALUE,
    AESMD_QUOTE_PROVIDER,
    AESMD_SOCKET_DIR,
    AESMD_VOLUME,
    EPC_ANNOTATION,
    QUOTE_PROVIDER_ANNOTATION,
    ResourceNames,
)
from sgx_quote_helper.kube._quantity import format_quantity, parse_quantity

ADMISSION_API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
_ONE = "1"

JsonPatch = list[dict[str, Any]]


def escape_pointer(token: str | int) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` as ``~0``, ``/`` as ``~1``)."""
    return str(token).replace("~", "~0").replace("/", "~1")


@dataclass
class _PatchBuilder:
    """JSON Patch operations against a working copy of the document, kept in step.

    Intermediate objects that do not exist yet are created by one ``add`` of the
    smallest missing subtree, so the patch applies to the original document.
    """

    document: Any
    ops: JsonPatch = field(default_factory=list)

    def set(self, path: Sequence[str | int], value: Any) -> None:
        """Make ``path`` hold ``value`` (add, or replace a different value)."""
        node = self.document
        for depth, token in enumerate(path[:-1]):
            child = node.get(token) if isinstance(node, dict) else node[token]
            if not isinstance(child, dict | list):
                subtree: Any = value
                for key in reversed(path[depth + 1 :]):
                    subtree = {key: subtree}
                self._emit("replace" if child is not None else "add", path[: depth + 1], subtree)
                node[token] = copy.deepcopy(subtree)
                return
            node = child
        last = path[-1]
        if isinstance(node, dict) and last in node:
            if node[last] == value:
                return
            self._emit("replace", path, value)
        else:
            self._emit("add", path, value)
        node[last] = copy.deepcopy(value)

    def append(self, path: Sequence[str | int], item: Any) -> None:
        """Append ``item`` to the list at ``path`` (creating the list when absent)."""
        parent = self.document
        for token in path[:-1]:
            parent = parent[token]
        current = parent.get(path[-1]) if isinstance(parent, dict) else parent[path[-1]]
        if isinstance(current, list):
            self._emit("add", [*path, "-"], item)
            current.append(copy.deepcopy(item))
        else:
            self._emit("replace" if current is not None else "add", path, [item])
            parent[path[-1]] = [copy.deepcopy(item)]

    def _emit(self, op: str, path: Sequence[str | int], value: Any) -> None:
        pointer = "".join("/" + escape_pointer(token) for token in path)
        self.ops.append({"op": op, "path": pointer, "value": copy.deepcopy(value)})


def _epc_request(container: Mapping[str, Any], epc: str) -> int | None:
    """The container's EPC request in bytes (limits first, as extended resources need them)."""
    resources = container.get("resources") or {}
    if not isinstance(resources, dict):
        raise PodRejectedError(f"container {container.get('name')!r}: resources is not an object")
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, dict):
            raise PodRejectedError(
                f"container {container.get('name')!r}: resources.{section} is not an object"
            )
        if epc in values:
            try:
                return parse_quantity(values[epc])
            except ValueError as exc:
                raise PodRejectedError(
                    f"container {container.get('name')!r}: {epc}: {exc}"
                ) from None
    return None


def mutate_pod(pod: object, names: ResourceNames | None = None) -> JsonPatch:
    """The JSON Patch that gives ``pod`` its SGX resources (empty when nothing to add).

    ``pod`` is not modified. Raises :class:`AdmissionReviewError` when it is not
    shaped like a Pod or an EPC quantity is unreadable.
    """
    names = names or ResourceNames()
    if not isinstance(pod, dict):
        raise AdmissionReviewError("request.object is not a JSON object")
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise AdmissionReviewError("request.object is not a Pod: no spec.containers list")
    metadata = pod.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise AdmissionReviewError("request.object.metadata is not an object")
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise AdmissionReviewError("metadata.annotations is not an object")
    quote_provider = annotations.get(QUOTE_PROVIDER_ANNOTATION)

    patch = _PatchBuilder(copy.deepcopy(dict(pod)))
    total_epc = 0
    epc_users = 0
    aesmd_present = False
    for index, container in enumerate(containers):
        epc = _epc_request(container, names.epc)
        if epc is None:
            continue
        total_epc += epc
        epc_users += 1
        base: list[str | int] = ["spec", "containers", index]
        resources = [*base, "resources"]
        granted = [names.enclave]
        if quote_provider == container.get("name"):
            granted.append(names.provision)
        for resource in granted:
            patch.set([*resources, "limits", resource], _ONE)
            patch.set([*resources, "requests", resource], _ONE)
        if quote_provider != AESMD_QUOTE_PROVIDER:
            continue
        if container.get("name") == AESMD_QUOTE_PROVIDER:
            aesmd_present = True
        mounts = container.get("volumeMounts") or []
        if not any(isinstance(m, dict) and m.get("mountPath") == AESMD_SOCKET_DIR for m in mounts):
            patch.append(
                [*base, "volumeMounts"], {"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR}
            )
        env = container.get("env") or []
        if not any(isinstance(e, dict) and e.get("name") == AESM_ADDR_ENV for e in env):
            # A string: EnvVar.value is a string in the API (an unquoted 1 is rejected).
            patch.append([*base, "env"], {"name": AESM_ADDR_ENV, "value": AESM_ADDR_VALUE})

    if quote_provider == AESMD_QUOTE_PROVIDER and epc_users:
        volumes = pod["spec"].get("volumes") or []
        if not any(isinstance(v, dict) and v.get("name") == AESMD_VOLUME for v in volumes):
            patch.append(
                ["spec", "volumes"], _aesmd_volume(sidecar=aesmd_present and epc_users > 1)
            )
    if epc_users:
        patch.set(["metadata", "annotations", EPC_ANNOTATION], format_quantity(total_epc))
    return patch.ops


def _aesmd_volume(*, sidecar: bool) -> dict[str, Any]:
    if sidecar:  # aesmd runs in this pod: the socket directory is shared memory
        return {"name": AESMD_VOLUME, "emptyDir": {"medium": "Memory"}}
    return {
        "name": AESMD_VOLUME,
        "hostPath": {"path": AESMD_SOCKET_DIR, "type": "DirectoryOrCreate"},
    }


@dataclass(frozen=True)
class AdmissionOutcome:
    """The answer to one review, and what to log about it."""

    response: dict[str, Any]
    patch: JsonPatch
    pod: str


def review(body: bytes, names: ResourceNames | None = None) -> AdmissionOutcome:
    """Answer an AdmissionReview (the request body) with an AdmissionReview response.

    Raises :class:`AdmissionReviewError` (HTTP 400) for a body that is not an
    AdmissionReview of a Pod. A pod whose EPC quantity cannot be read is
    refused (``allowed: false``, code 400) with the reason.
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdmissionReviewError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise AdmissionReviewError("the body is not a JSON object")
    api_version = document.get("apiVersion")
    if api_version not in ADMISSION_API_VERSIONS or document.get("kind") != "AdmissionReview":
        raise AdmissionReviewError(
            f"not an AdmissionReview (apiVersion {api_version!r}, kind "
            f"{document.get('kind')!r}); expected {ADMISSION_API_VERSIONS[0]} AdmissionReview"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise AdmissionReviewError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AdmissionReviewError("request.uid is missing")
    pod = request.get("object")
    label = _pod_label(request, pod)
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    try:
        patch = mutate_pod(pod, names)
    except PodRejectedError as exc:
        answer = {"uid": uid, "allowed": False, "status": {"code": 400, "message": str(exc)}}
        patch = []
    if patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode("ascii")
    response = {"apiVersion": api_version, "kind": "AdmissionReview", "response": answer}
    return AdmissionOutcome(response=response, patch=patch, pod=label)


def _pod_label(request: Mapping[str, Any], pod: object) -> str:
    namespace = request.get("namespace") or ""
    name = ""
    if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
        metadata = pod["metadata"]
        name = metadata.get("name") or (metadata.get("generateName") or "") + "*"
    return f"{namespace}/{name}" if namespace else str(name)
