"""Apply kubeadm's patches (strategic merge, JSON merge, JSON patch) to the objects kubeadm patches.

kubeadm (util/patches) applies every patch set of a target, in file-name order, to the target's
JSON: a static pod, the KubeletConfiguration, the CoreDNS Deployment or the kube-proxy DaemonSet.
The three patch types follow apimachinery's StrategicMergePatch (with the merge keys and strategies
of the Go types, below), RFC 7386 and RFC 6902 as evanphx/json-patch v4 applies them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from bootstrap.errors import ConfigError
from bootstrap.spec.model import PatchSet
from bootstrap.spec.patches import COREDNS_DEPLOYMENT, KUBE_PROXY_DAEMONSET, KUBELET_CONFIGURATION

STRATEGIC, MERGE, JSON_PATCH = "strategic", "merge", "json"
# kubeadm prints the MIME type of the patch type in its messages and errors.
MEDIA_TYPES = {STRATEGIC: "application/strategic-merge-patch+json", MERGE: "application/merge-patch+json",
               JSON_PATCH: "application/json-patch+json"}


# ---- the strategic-merge schema: field -> (type of its value, strategy, merge key) ---------------
# Only fields with a patch strategy, or leading to one, are listed: any other map merges and any
# other list is replaced, which is what the Go structs without patch tags give.
Field = tuple[str | None, str, str]
_CONTAINER: dict[str, Field] = {
    "ports": (None, "merge", "containerPort"),
    "env": (None, "merge", "name"),
    "volumeMounts": (None, "merge", "mountPath"),
    "volumeDevices": (None, "merge", "devicePath"),
}
SCHEMAS: dict[str, dict[str, Field]] = {
    "ObjectMeta": {"ownerReferences": (None, "merge", "uid"), "finalizers": (None, "merge", "")},
    "Container": _CONTAINER,
    "PodSpec": {
        "volumes": (None, "merge,retainKeys", "name"),
        "initContainers": ("Container", "merge", "name"),
        "containers": ("Container", "merge", "name"),
        "ephemeralContainers": ("Container", "merge", "name"),
        "imagePullSecrets": (None, "merge", "name"),
        "hostAliases": (None, "merge", "ip"),
        "topologySpreadConstraints": (None, "merge", "topologyKey"),
        "schedulingGates": (None, "merge", "name"),
        "resourceClaims": (None, "merge,retainKeys", "name"),
    },
    "PodTemplateSpec": {"metadata": ("ObjectMeta", "", ""), "spec": ("PodSpec", "", "")},
    "Pod": {"metadata": ("ObjectMeta", "", ""), "spec": ("PodSpec", "", "")},
    "DeploymentSpec": {"template": ("PodTemplateSpec", "", ""), "strategy": (None, "retainKeys", "")},
    "Deployment": {"metadata": ("ObjectMeta", "", ""), "spec": ("DeploymentSpec", "", "")},
    "DaemonSetSpec": {"template": ("PodTemplateSpec", "", "")},
    "DaemonSet": {"metadata": ("ObjectMeta", "", ""), "spec": ("DaemonSetSpec", "", "")},
    "KubeletConfiguration": {},
}
TARGET_SCHEMA = {KUBELET_CONFIGURATION: "KubeletConfiguration", COREDNS_DEPLOYMENT: "Deployment",
                 KUBE_PROXY_DAEMONSET: "DaemonSet"}  # static pods: "Pod"

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"


class PatchError(ValueError):
    """A patch cannot be applied; the caller names the file and target."""


def apply_patch_sets(obj: dict[str, Any], target: str, sets: Iterable[PatchSet]) -> dict[str, Any]:
    """obj patched by every patch of `target` in `sets`, in order (kubeadm's ApplyPatchesToTarget).
    Raises ConfigError naming the patch file when one does not apply."""
    out = obj
    schema = TARGET_SCHEMA.get(target, "Pod")
    for patch_set in sets:
        if patch_set.target != target:
            continue
        for patch in patch_set.patches:
            try:
                out = apply_patch(out, patch_set.patch_type, patch, schema)
            except PatchError as exc:
                raise ConfigError(f"patches: {patch_set.file}",
                                  f"could not apply a patch of type {MEDIA_TYPES[patch_set.patch_type]!r} "
                                  f"to target {target!r}: {exc}") from None
    return out


def apply_patch(obj: Any, patch_type: str, patch: Any, schema: str = "Pod") -> Any:
    """One patch of one type applied to a copy of obj."""
    doc = copy.deepcopy(obj)
    if patch_type == JSON_PATCH:
        return json_patch(doc, patch)
    if patch_type == MERGE:
        return merge_patch(doc, copy.deepcopy(patch))
    if not isinstance(patch, dict) or not isinstance(doc, dict):
        raise PatchError("a strategic merge patch and its target must be JSON objects")
    return _merge_map(doc, copy.deepcopy(patch), schema)


# ---- RFC 7386 JSON merge patch -------------------------------------------------------------------
def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if not isinstance(doc, dict):
        doc = {}
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = merge_patch(doc.get(key), value)
    return doc


# ---- RFC 6902 JSON patch -------------------------------------------------------------------------
def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch is a list of operations")
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"not a JSON patch operation: {json.dumps(op)}")
        name = op["op"]
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{name} operation has no value")
        path = _pointer(op, "path")
        if name == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif name == "remove":
            doc, _ = _remove(doc, path)
        elif name == "replace":
            doc, _ = _remove(doc, path, replacing=True)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif name == "move":
            source = _pointer(op, "from")
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif name == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, _pointer(op, "from"))))
        elif name == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {'/'.join(['', *path])} failed")
        else:
            raise PatchError(f"unexpected kind of operation {name!r}")
    return doc


def _pointer(op: dict[str, Any], key: str) -> list[str]:
    text = op.get(key)
    if not isinstance(text, str):
        raise PatchError(f"{op.get('op')} operation has no {key!r}")
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"{text!r} is not a JSON pointer")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _index(container: list[Any], part: str, *, adding: bool) -> int:
    if adding and part == "-":
        return len(container)
    if not part.lstrip("-").isdigit():
        raise PatchError(f"{part!r} is not an array index")
    index = int(part)
    if index < 0:
        index += len(container)  # evanphx/json-patch v4 takes negative indices from the end
    if index < 0 or index > len(container) or (index == len(container) and not adding):
        raise PatchError(f"array index {part} out of bounds")
    return index


def _parent(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, adding=False)]
        else:
            raise PatchError(f"the path {'/'.join(['', *path])} does not exist")
    return node


def _get(doc: Any, path: list[str]) -> Any:
    if not path:
        return doc
    parent = _parent(doc, path)
    if isinstance(parent, dict):
        if path[-1] not in parent:
            raise PatchError(f"the path {'/'.join(['', *path])} does not exist")
        return parent[path[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, path[-1], adding=False)]
    raise PatchError(f"the path {'/'.join(['', *path])} does not exist")


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _parent(doc, path)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, path[-1], adding=True), value)
    else:
        raise PatchError(f"the path {'/'.join(['', *path])} does not exist")
    return doc


def _remove(doc: Any, path: list[str], *, replacing: bool = False) -> tuple[Any, Any]:
    if not path:
        return None, doc
    parent = _parent(doc, path)
    what = "replace" if replacing else "remove"
    if isinstance(parent, dict):
        if path[-1] not in parent:
            raise PatchError(f"{what} operation does not apply: doc is missing key: {'/'.join(['', *path])}")
        return doc, parent.pop(path[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, path[-1], adding=False))
    raise PatchError(f"{what} operation does not apply: doc is missing path: {'/'.join(['', *path])}")


# ---- strategic merge patch (apimachinery strategicpatch.StrategicMergePatch) ---------------------
def _field(schema: str | None, key: str) -> Field:
    return SCHEMAS.get(schema or "", {}).get(key, (None, "", ""))


def _kind(value: Any) -> str:
    """Go's reflect kind of a decoded JSON value: numbers are all float64."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: str | None) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            del patch[_DIRECTIVE]
            return patch
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive}")
    if _RETAIN_KEYS in patch:
        keep = patch.pop(_RETAIN_KEYS)
        if not isinstance(keep, list):
            raise PatchError("$retainKeys must be a list")
        for key, value in patch.items():
            if value is not None and not key.startswith((_DELETE_PRIMITIVE, _SET_ORDER)) and key not in keep:
                raise PatchError("the $retainKeys list does not name every field of the patch")
        for key in [k for k in original if k not in keep]:
            del original[key]
    _set_element_orders(original, patch, schema)
    for key, value in list(patch.items()):
        delete_list = key.startswith(_DELETE_PRIMITIVE)
        if delete_list:
            key = key.removeprefix(_DELETE_PRIMITIVE)
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                _store(original, key, value)
            continue
        if _kind(original[key]) != _kind(value):
            if not delete_list:
                _store(original, key, value)
            continue
        sub, strategy, merge_key = _field(schema, key)
        if isinstance(value, dict):
            original[key] = value if "replace" in strategy.split(",") else _merge_map(original[key], value, sub)
        elif isinstance(value, list):
            if "merge" in strategy.split(",") or delete_list:
                original[key] = _merge_slice(original[key], value, sub, merge_key, delete_list)
            else:
                original[key] = value
        else:
            _store(original, key, value)
    return original


def _store(original: dict[str, Any], key: str, value: Any) -> None:
    _discard_nulls(value)
    kept, keep = _remove_directives(value)
    if keep:
        original[key] = kept
    else:
        original.pop(key, None)


def _discard_nulls(value: Any) -> None:
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None]:
            del value[key]
        for v in value.values():
            _discard_nulls(v)
    elif isinstance(value, list):
        for v in value:
            _discard_nulls(v)


def _remove_directives(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if _DIRECTIVE in value:
            return None, False
        for key in list(value):
            kept, keep = _remove_directives(value[key])
            if keep:
                value[key] = kept
            else:
                del value[key]
        return value, True
    if isinstance(value, list):
        out = []
        for item in value:
            kept, keep = _remove_directives(item)
            if keep:
                out.append(kept)
        return out, True
    return value, True


def _merge_slice(original: list[Any], patch: list[Any], schema: str | None, merge_key: str,
                 delete_list: bool) -> list[Any]:
    if not original and not patch:
        return original
    maps = _element_kind(original, patch) == "dict"
    if not maps:
        if delete_list:
            return [v for v in original if v not in patch]
        merged: list[Any] = []
        for v in [*original, *patch]:
            if v not in merged:
                merged.append(v)
        patch_items = [v for v in merged if v in patch]
        server_only = [v for v in merged if v not in patch]
        return _normalize_order(patch_items, server_only, patch, original, "")
    if not merge_key:
        raise PatchError("cannot merge lists without merge key")
    original, patch = _special_elements(original, patch, merge_key)
    merged = list(original)  # the order of `original` (before appending) is the server's order
    for item in patch:
        if merge_key not in item:
            raise PatchError(f"map {json.dumps(item)} does not contain declared merge key {merge_key!r}")
        found = _find(merged, merge_key, item[merge_key])
        if found is None:
            merged.append(item)
        else:
            merged[found] = _merge_map(merged[found], item, schema)
    in_patch = {json.dumps(i[merge_key]) for i in patch}
    patch_items = [v for v in merged if json.dumps(v.get(merge_key)) in in_patch]
    server_only = [v for v in merged if json.dumps(v.get(merge_key)) not in in_patch]
    return _normalize_order(patch_items, server_only, patch, original, merge_key)


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_kind(v) for items in lists for v in items}
    if len(kinds) > 1 or "list" in kinds:
        raise PatchError("a merged list must hold values of one type, and not lists")
    return kinds.pop()


def _special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    plain, replace = [], False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"map {json.dumps(item)} does not contain declared merge key {merge_key!r}")
            original = [o for o in original if o.get(merge_key) != item[merge_key]]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {directive}")
    return (plain, []) if replace else (original, plain)


def _find(items: list[Any], merge_key: str, value: Any) -> int | None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PatchError(f"value for key {i} is not a map")
        if item.get(merge_key) == value:
            return i
    return None


def _position(order: list[Any], item: Any, merge_key: str) -> int:
    for i, v in enumerate(order):
        if (v.get(merge_key) if merge_key and isinstance(v, dict) else v) == (
                item.get(merge_key) if merge_key and isinstance(item, dict) else item):
            return i
    return -1


def _sort_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    """Go's sort.SliceStable (an insertion sort for short lists) with strategicpatch's comparison."""
    out = [v for v in items if not (merge_key and isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")]
    deleted = [v for v in items if v not in out]

    def less(a: Any, b: Any) -> bool:
        ia, ib = _position(order, a, merge_key), _position(order, b, merge_key)
        return ia < ib if ia >= 0 and ib >= 0 else True

    for i in range(1, len(out)):
        j = i
        while j > 0 and less(out[j], out[j - 1]):
            out[j], out[j - 1] = out[j - 1], out[j]
            j -= 1
    return out + deleted


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str) -> list[Any]:
    """Patch items in the patch's order, the others in the original's, interleaved as Go does."""
    right = _sort_by(patch_items, patch_order, merge_key)
    left = _sort_by(server_only, server_order, merge_key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = _position(server_order, left[i], merge_key), _position(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _set_element_orders(original: dict[str, Any], patch: dict[str, Any], schema: str | None) -> None:
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise PatchError(f"{key} must be a list")
        field = key.removeprefix(_SET_ORDER)
        sub, strategy, merge_key = _field(schema, field)
        have, given = field in original, field in patch
        server_order = list(original.get(field) or [])
        if have and not given:
            merged = original[field]
        elif given and not have:
            merged, _ = _remove_directives(patch[field])
        elif have and given:
            merged = (_merge_slice(original[field], patch[field], sub, merge_key, False)
                      if "merge" in strategy.split(",") else patch[field])
        else:
            continue
        in_order = [v for v in merged if _position(order, v, merge_key) >= 0]
        rest = [v for v in merged if _position(order, v, merge_key) < 0]
        original[field] = _normalize_order(in_order, rest, order, server_order, merge_key)
        patch.pop(field, None)
