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
    """JSON Patch operations against a working view of the document, kept in step.

    The view shares the original's subtrees: an object or list is copied, one
    level, the first time a change goes below it, so the original is never
    modified and a large or deeply nested pod is never walked as a whole.
    Intermediate objects that do not exist yet (absent or ``null``) are created
    by one ``add`` of the smallest missing subtree, so the patch applies to the
    original document. The caller has checked the shape of every path first
    (:func:`_pod_shape`): each step is an object, a list, ``null`` or absent.
    """

    document: dict[str, Any]
    ops: JsonPatch = field(default_factory=list)
    _copies: set[int] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.document = dict(self.document)
        self._copies.add(id(self.document))

    def _child(self, node: Any, token: str | int) -> Any:
        """``node[token]`` (``None`` when absent), as a copy of its own if a container."""
        child = node.get(token) if isinstance(node, dict) else node[token]
        if isinstance(child, dict | list) and id(child) not in self._copies:
            child = copy.copy(child)
            node[token] = child
            self._copies.add(id(child))
        return child

    def set(self, path: Sequence[str | int], value: Any) -> None:
        """Make ``path`` hold ``value`` (add, or replace a different value)."""
        node: Any = self.document
        for depth, token in enumerate(path[:-1]):
            child = self._child(node, token)
            if child is None:
                subtree: Any = value
                for key in reversed(path[depth + 1 :]):
                    subtree = {key: subtree}
                self._emit("add", path[: depth + 1], subtree)
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
        parent: Any = self.document
        for token in path[:-1]:
            parent = self._child(parent, token)
        current = self._child(parent, path[-1])
        if isinstance(current, list):
            self._emit("add", [*path, "-"], item)
            current.append(copy.deepcopy(item))
        else:
            self._emit("add", path, [item])
            parent[path[-1]] = [copy.deepcopy(item)]

    def _emit(self, op: str, path: Sequence[str | int], value: Any) -> None:
        pointer = "".join("/" + escape_pointer(token) for token in path)
        self.ops.append({"op": op, "path": pointer, "value": copy.deepcopy(value)})


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}


def _member(parent: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``parent[key]`` if it is a ``kind`` (``None`` when absent or null); else a 400."""
    value = parent.get(key)
    if value is not None and not isinstance(value, kind):
        raise AdmissionReviewError(
            f"request.object is not a Pod: {_field(where, key)} is {_json_type(value)}, "
            f"not {_KINDS[kind]}"
        )
    return value


def _field(where: str, key: str) -> str:
    """``where`` + ``key`` for a message: ``spec.volumes``, ``metadata.annotations["a/b"]``."""
    return f"{where}{key}" if key.isidentifier() else f"{where.rstrip('.')}[{json.dumps(key)}]"


def _objects(parent: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """``parent[key]`` as a list of objects (empty when absent or null); else a 400."""
    items: list[Any] = _member(parent, key, list, where) or []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AdmissionReviewError(
                f"request.object is not a Pod: {where}{key}[{index}] is {_json_type(item)}, "
                "not an object"
            )
    return items


def _json_type(value: object) -> str:
    """What a JSON value is, for a message (never its text: it may be huge or deep)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _KINDS.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class _PodShape:
    """What the mutation reads from a pod whose shape has been checked."""

    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    quote_provider: str | None


def _pod_shape(pod: object) -> _PodShape:
    """Check every field the mutation reads or patches before anything is patched.

    The API server decodes a pod into its typed form before it calls a webhook,
    so a field of the wrong JSON type (annotations as a list, ``env: "x"``)
    means the body is not a Pod from an API server: it is a bad request (HTTP
    400), like a review without ``spec.containers``. Absent and ``null`` fields
    are fine; the mutation creates them.
    """
    if not isinstance(pod, dict):
        raise AdmissionReviewError("request.object is not a JSON object")
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        raise AdmissionReviewError("request.object is not a Pod: no spec.containers list")
    assert isinstance(spec, dict)
    containers = _objects(spec, "containers", "spec.")
    volumes = _objects(spec, "volumes", "spec.")
    metadata = _member(pod, "metadata", dict, "") or {}
    for key in ("name", "generateName"):
        _member(metadata, key, str, "metadata.")
    annotations = _member(metadata, "annotations", dict, "metadata.") or {}
    quote_provider = _member(annotations, QUOTE_PROVIDER_ANNOTATION, str, "metadata.annotations.")
    for index, container in enumerate(containers):
        where = f"spec.containers[{index}]."
        _member(container, "name", str, where)
        _objects(container, "env", where)
        _objects(container, "volumeMounts", where)
        resources = _member(container, "resources", dict, where) or {}
        for section in ("limits", "requests"):
            _member(resources, section, dict, f"{where}resources.")
    return _PodShape(containers=containers, volumes=volumes, quote_provider=quote_provider)


def _epc_request(container: Mapping[str, Any], epc: str) -> int | None:
    """The container's EPC request in bytes (limits first, as extended resources need them)."""
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
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
    shaped like a Pod (checked before anything is patched), and
    :class:`PodRejectedError` when an EPC quantity is unreadable.
    """
    names = names or ResourceNames()
    shape = _pod_shape(pod)
    assert isinstance(pod, dict)
    quote_provider = shape.quote_provider

    patch = _PatchBuilder(pod)
    total_epc = 0
    epc_users = 0
    aesmd_present = False
    for index, container in enumerate(shape.containers):
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
        if not any(m.get("mountPath") == AESMD_SOCKET_DIR for m in mounts):
            patch.append(
                [*base, "volumeMounts"], {"name": AESMD_VOLUME, "mountPath": AESMD_SOCKET_DIR}
            )
        env = container.get("env") or []
        if not any(e.get("name") == AESM_ADDR_ENV for e in env):
            # A string: EnvVar.value is a string in the API (an unquoted 1 is rejected).
            patch.append([*base, "env"], {"name": AESM_ADDR_ENV, "value": AESM_ADDR_VALUE})

    has_volume = any(v.get("name") == AESMD_VOLUME for v in shape.volumes)
    if quote_provider == AESMD_QUOTE_PROVIDER and epc_users and not has_volume:
        patch.append(["spec", "volumes"], _aesmd_volume(sidecar=aesmd_present and epc_users > 1))
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
    except RecursionError:
        # The decoder recurses once per level; no Kubernetes object nests this deep.
        raise AdmissionReviewError(
            "the body is not an AdmissionReview: its JSON is nested too deeply"
        ) from None
    if not isinstance(document, dict):
        raise AdmissionReviewError("the body is not a JSON object")
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if api_version not in ADMISSION_API_VERSIONS or kind != "AdmissionReview":
        raise AdmissionReviewError(
            f"not an AdmissionReview (apiVersion {_shown(api_version)}, kind {_shown(kind)}); "
            f"expected {ADMISSION_API_VERSIONS[0]} AdmissionReview"
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise AdmissionReviewError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AdmissionReviewError("request.uid is missing")
    namespace = request.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise AdmissionReviewError(f"request.namespace is {_json_type(namespace)}, not a string")
    pod = request.get("object")
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    try:
        patch = mutate_pod(pod, names)
    except PodRejectedError as exc:
        answer = {"uid": uid, "allowed": False, "status": {"code": 400, "message": str(exc)}}
        patch = []
    assert isinstance(pod, dict)  # mutate_pod checked its shape
    label = _pod_label(namespace, pod)
    if patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode("ascii")
    response = {"apiVersion": api_version, "kind": "AdmissionReview", "response": answer}
    return AdmissionOutcome(response=response, patch=patch, pod=label)


def _pod_label(namespace: str | None, pod: Mapping[str, Any]) -> str:
    """``namespace/name`` of a pod whose shape has been checked (``name*`` if generated)."""
    metadata = pod.get("metadata") or {}
    name = metadata.get("name") or (metadata.get("generateName") or "") + "*"
    return f"{namespace}/{name}" if namespace else str(name)


def _shown(value: object) -> str:
    """A short string as its repr; anything else by its JSON type (it may be huge or deep)."""
    if isinstance(value, str) and len(value) <= 100:
        return repr(value)
    return _json_type(value)
