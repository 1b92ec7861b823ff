"""The three PATCH content types kube-apiserver accepts for built-in kinds, on plain JSON values.

https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (the API server answers 422 or 400)."""


# Strategic merge patch:
# https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md
# Lists whose Go field carries `patchStrategy:"merge" patchMergeKey:...` in k8s.io/api (core/v1, apps/v1,
# meta/v1), keyed here by JSON field name: the fields of the objects this project reads and writes.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",  # PodSpec.Containers: patchMergeKey=name
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",  # Container.Ports
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",  # Deployment/Pod status conditions
    "ownerReferences": "uid",
}
# Lists of scalars with patchStrategy=merge: the patch's items are added to the existing ones.
MERGE_SCALARS = frozenset({"finalizers"})


def strategic_merge(original: Any, patch: Any) -> Any:
    """``patch`` applied to ``original`` as kube-apiserver's strategic merge does, for the fields
    in MERGE_KEYS; other lists are replaced, ``null`` deletes a key, ``$patch: replace|delete``
    directives are honoured and ``$setElementOrder``/``$retainKeys`` directives dropped."""
    return _merge_map(copy.deepcopy(original) if isinstance(original, dict) else {}, patch)


def _merge_map(original: dict[str, Any], patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder/..., $retainKeys, $deleteFromPrimitiveList/...: ordering/pruning hints
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(copy.deepcopy(original.get(key)) if isinstance(original.get(key), dict) else {}, value)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list) and key in MERGE_KEYS:
            original[key] = _merge_list(original.get(key) or [], value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGE_SCALARS:
            existing = list(original.get(key) or [])
            original[key] = existing + [v for v in value if v not in existing]
        else:
            original[key] = copy.deepcopy(value)
    return original


def _merge_list(original: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in original]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"a merge list item needs its merge key {key!r}")
        index = next((i for i, existing in enumerate(merged) if existing.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_merge_map({}, item))
        else:
            merged[index] = _merge_map(merged[index], item)
    return merged


def merge_patch(original: Any, patch: Any) -> Any:
    """JSON merge patch, RFC 7386 (https://www.rfc-editor.org/rfc/rfc7386): objects merge, null
    deletes, anything else (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(original: Any, operations: Any) -> Any:
    """JSON patch, RFC 6902 (https://www.rfc-editor.org/rfc/rfc6902): add, remove, replace, move,
    copy and test, with RFC 6901 pointers."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a JSON array of operations")
    document = copy.deepcopy(original)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}")
        op, path = operation["op"], operation["path"]
        if op == "test":
            if _get(document, path) != operation.get("value"):
                raise PatchError(f"test operation failed at {path}")
        elif op == "remove":
            document = _remove(document, path)
        elif op in ("add", "replace"):
            if op == "replace":
                _get(document, path)  # replace requires the target to exist
            document = _add(document, path, copy.deepcopy(operation.get("value")), replace=op == "replace")
        elif op in ("move", "copy"):
            value = copy.deepcopy(_get(document, operation.get("from", "")))
            if op == "move":
                document = _remove(document, operation["from"])
            document = _add(document, path, value, replace=False)
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return document


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, append: bool = False) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit():
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (not append and index == len(container)):
        raise PatchError(f"array index {index} out of range")
    return index


def _get(document: Any, pointer: str) -> Any:
    node = document
    for token in _tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path {pointer} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token)]
        else:
            raise PatchError(f"path {pointer} does not exist")
    return node


def _parent(document: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    if not tokens:
        raise PatchError("the whole document cannot be the target")
    parent_pointer = "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
    return _get(document, parent_pointer), tokens[-1]


def _add(document: Any, pointer: str, value: Any, *, replace: bool) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(document, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        index = _index(parent, token, append=not replace)
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    else:
        raise PatchError(f"path {pointer} does not exist")
    return document


def _remove(document: Any, pointer: str) -> Any:
    parent, token = _parent(document, pointer)
    _get(document, pointer)
    if isinstance(parent, dict):
        del parent[token]
    else:
        del parent[_index(parent, token)]
    return document
