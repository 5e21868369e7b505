"""The phase trees: what `init`, `join` and `reset` do, in order, and on which hosts.

One tree per workflow drives everything: `kbootstrap init` (single node: the tree without the
fleet-only phases; `-i`: the whole tree), `init phase NAME [-i]`, `--skip-phases` checking, the help
text, `join -i` (init's tree with three edits) and `reset`. The Ansible roles are checked against
INIT by a test (tests/unit/test_phase_tree.py).
"""

from __future__ import annotations

from bootstrap.engine.phase import Phase, Tree
from bootstrap.phases import certs, control_plane, etcd, join, kubeconfig, kubelet, loadbalancer, node, preflight
from bootstrap.phases import validate as validate_phase
from bootstrap.phases.reset import RESET

# kubeadm's phases that talk to a running kube-apiserver (kubeadm.md section 10).
API_PHASES = tuple(
    Phase(name, help_text, needs_api_server=True)
    for name, help_text in (
        ("wait-control-plane", "Wait for the control plane to start"),
        ("upload-config", "Upload the kubeadm and kubelet configuration to a ConfigMap"),
        ("upload-certs", "Upload certificates to kubeadm-certs"),
        ("mark-control-plane", "Mark a node as a control-plane"),
        ("bootstrap-token", "Generate bootstrap tokens used to join a node to a cluster"),
        ("kubelet-finalize", "Update settings relevant to the kubelet after TLS bootstrap"),
        ("addon", "Install required addons for passing conformance tests"),
        ("show-join-command", "Show the join command for control-plane and worker node"),
    )
)

# Node preparation comes first: kubeadm's preflight checks (CRI answering, ip_forward, iptables)
# describe a node ready for kubeadm, which is what these phases make. The load balancer goes
# between control-plane (static pods written) and kubelet-start.
INIT = Tree(
    (
        node.KERNEL,
        node.CONTAINER_RUNTIME,
        node.BINARIES,
        preflight.PHASE,
        certs.PHASE,
        kubeconfig.PHASE,
        etcd.PHASE,
        control_plane.PHASE,
        loadbalancer.PHASE,
        kubelet.PHASE,
        *API_PHASES,
        validate_phase.PHASE,
    )
)

# `join -i --limit NEW`: no super-admin.conf, etcd members join one at a time as learners, workers
# get a bootstrap token; no API-server phases of init (the cluster runs), no fleet validation.
JOIN = (
    INIT.replace("kubeconfig", kubeconfig.JOIN)
    .replace("etcd", join.ETCD_JOIN)
    .insert_before("kubelet-start", join.TLS_BOOTSTRAP_PHASE)
    .without(*(p.name for p in API_PHASES), validate_phase.PHASE.name)
)

# Every phase of every workflow: what a skip list written for the cluster's whole life is checked against.
ALL_TREES = Tree(tuple({p.name: p for t in (INIT, JOIN, RESET) for p in t}.values()))

__all__ = ["ALL_TREES", "INIT", "JOIN", "RESET"]
