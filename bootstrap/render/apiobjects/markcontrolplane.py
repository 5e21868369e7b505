"""mark-control-plane: two labels and the node's taints on its Node object (kubeadm
phases/markcontrolplane/markcontrolplane.go, applied through apiclient.PatchNode).

kubeadm reads the Node, changes it, and sends the strategic-merge patch between the two versions
(CreateTwoWayMergePatch). It waits until the kubelet has registered the Node with its
kubernetes.io/hostname label first. Node.spec.taints is an atomic list, so a changed list is sent
whole: the taints asked for first, then every taint the Node already had that is not among them.
The same for v1.27 to v1.37.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap.render.apiobjects.common import KubeObject
from bootstrap.spec.model import ClusterSpec, Taint

LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
LABEL_EXCLUDE_FROM_EXTERNAL_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE_LABELS = (LABEL_CONTROL_PLANE, LABEL_EXCLUDE_FROM_EXTERNAL_LB)
LABEL_HOSTNAME = "kubernetes.io/hostname"
# kubeadm's default nodeRegistration.taints for a control plane (constants.ControlPlaneTaint).
CONTROL_PLANE_TAINT = {"key": LABEL_CONTROL_PLANE, "effect": "NoSchedule"}


def _taint(t: Taint) -> dict[str, str]:
    out = {"key": t.key, "effect": t.effect}
    if t.value:
        out["value"] = t.value
    return out


def control_plane_taints(spec: ClusterSpec) -> list[dict[str, str]]:
    """nodeRegistration.taints: unset means kubeadm's control-plane taint; an empty list, none."""
    if spec.node.taints is None:
        return [dict(CONTROL_PLANE_TAINT)]
    return [_taint(t) for t in spec.node.taints]


def taint_text(taint: Mapping[str, str]) -> str:
    """v1.Taint.ToString(): key=value:effect, key:effect, or key when it has neither."""
    text = taint["key"]
    if taint.get("value"):
        text += f"={taint['value']}"
    if taint.get("effect"):
        text += f":{taint['effect']}"
    return text


def node_ready_to_mark(node: Mapping[str, Any]) -> bool:
    """kubeadm patches only once the kubelet has registered the Node with its hostname label."""
    return LABEL_HOSTNAME in ((node.get("metadata") or {}).get("labels") or {})


def mark_control_plane(node: Mapping[str, Any], taints: Sequence[Mapping[str, str]]) -> KubeObject:
    """The Node as kubeadm leaves it (a new dict; `node` is not changed)."""
    out = copy.deepcopy(dict(node))
    labels = out.setdefault("metadata", {}).setdefault("labels", {})
    for label in CONTROL_PLANE_LABELS:
        labels[label] = ""
    wanted = [dict(t) for t in taints]
    existing = (out.get("spec") or {}).get("taints") or []
    merged = wanted + [dict(t) for t in existing if dict(t) not in wanted]
    spec = out.setdefault("spec", {})
    if merged:
        spec["taints"] = merged
    else:
        spec.pop("taints", None)
    return out


def mark_control_plane_patch(node: Mapping[str, Any], taints: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The strategic-merge patch kubeadm sends for `node` ({} when the Node is already marked)."""
    new = mark_control_plane(node, taints)
    old_labels = (node.get("metadata") or {}).get("labels") or {}
    patch: dict[str, Any] = {}
    changed = {k: v for k, v in new["metadata"]["labels"].items() if old_labels.get(k) != v}
    if changed:
        patch["metadata"] = {"labels": changed}
    old_taints = (node.get("spec") or {}).get("taints") or []
    new_taints = new["spec"].get("taints") or []
    if [dict(t) for t in old_taints] != new_taints:
        patch["spec"] = {"taints": new_taints}
    return patch


def mark_control_plane_messages(spec: ClusterSpec) -> list[str]:
    """The lines kubeadm prints before patching."""
    name = spec.node.name
    lines = [f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
             f"[{' '.join(CONTROL_PLANE_LABELS)}]"]
    taints = control_plane_taints(spec)
    if taints:
        lines.append(f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints "
                     f"[{' '.join(taint_text(t) for t in taints)}]")
    return lines
