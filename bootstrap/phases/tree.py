"""The phase trees: what `init`, `join` and `reset` do, in order, and on which hosts.

One tree per workflow drives everything: `kbootstrap init` (single node: the tree without the
fleet-only phases; `-i`: the whole tree), `init phase NAME [-i]`, `--skip-phases` checking, the help
text, `join -i` (init's tree with three edits) and `reset`. The Ansible roles are checked against
INIT by a test (tests/unit/test_phase_tree.py).
"""

from __future__ import annotations

from dataclasses import replace

from bootstrap.engine.phase import ALL, CONTROL_PLANES, Tree
from bootstrap.phases import (
    addons,
    bootstrap_token,
    certs,
    cluster_ready,
    control_plane,
    etcd,
    join,
    kubeconfig,
    kubelet,
    kubelet_finalize,
    loadbalancer,
    mark_control_plane,
    network,
    node,
    preflight,
    show_join,
    upload_certs,
    upload_config,
    wait_control_plane,
    worker_join,
)
from bootstrap.phases import validate as validate_phase
from bootstrap.phases.reset import RESET

KUBELET_START = kubelet.PHASE.with_hosts(CONTROL_PLANES)
# kubeadm's phases that talk to a running kube-apiserver, in kubeadm's order.
API_PHASES = (
    wait_control_plane.PHASE,
    upload_config.PHASE,
    upload_certs.PHASE,
    mark_control_plane.PHASE,
    bootstrap_token.PHASE,
    kubelet_finalize.PHASE,
    addons.PHASE,
)

# Node preparation comes first: kubeadm's preflight checks (CRI answering, ip_forward, iptables)
# describe a node ready for kubeadm, which is what these phases make. The load balancer goes
# between control-plane (static pods written) and kubelet-start. kubelet-start is the control
# planes' (as `kubeadm init` on each); kubeadm's API phases follow, then the pod network, then the
# workers join through TLS bootstrap with the token bootstrap-token made (as `kubeadm join`), and
# show-join-command closes as in kubeadm.
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
        KUBELET_START,
        *API_PHASES,
        network.PHASE,
        worker_join.PHASE,
        cluster_ready.PHASE,
        show_join.PHASE,
        validate_phase.PHASE,
    )
)

# `join -i --limit NEW`: no super-admin.conf, etcd members join one at a time as learners; new
# control planes start their kubelet and are marked; workers join through TLS bootstrap; none of
# init's cluster-wide API phases (the cluster runs), no fleet validation.
JOIN = (
    INIT.replace("certs", replace(certs.PHASE, before=join.prepare_shared_for_join))
    .replace("kubeconfig", kubeconfig.JOIN)
    .replace("cluster-ready", cluster_ready.PHASE.with_hosts(ALL))
    .replace("etcd", join.ETCD_JOIN)
    .without(
        upload_config.PHASE.name, upload_certs.PHASE.name, bootstrap_token.PHASE.name, addons.PHASE.name,
        network.PHASE.name, show_join.PHASE.name, validate_phase.PHASE.name,
    )
)

# Every phase of every workflow: what a skip list written for the cluster's whole life is checked against.
ALL_TREES = Tree(tuple({p.name: p for t in (INIT, JOIN, RESET) for p in t}.values()))

__all__ = ["ALL_TREES", "INIT", "JOIN", "RESET"]
