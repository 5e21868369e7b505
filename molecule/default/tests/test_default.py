"""Molecule's verify step: each lab node against the spec, with the checks of `kbootstrap validate`.

testinfra's `host` fixture (Molecule passes its inventory) runs the same NodeCheck list that
`kbootstrap validate` and `init -i` evaluate over their own connections.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# The kbootstrap of this checkout, as the playbooks' action plugin uses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bootstrap.spec.inventory import load_inventory
from bootstrap.validate.fleet import skipped_phases
from bootstrap.validate.nodes import ERROR, FAIL, PASS, node_checks, run_checks
from bootstrap.workflow.fleet_spec import etcd_members, fleet_cluster_spec, node_spec
from bootstrap.workflow.session import bundle_for


def lab_inventory() -> Path:
    lab = os.environ.get("KBOOTSTRAP_MOLECULE_LAB", "kbmol")
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / lab / "hosts.yaml"


def test_node_passes_kbootstrap_validate_checks(host: Any) -> None:
    inv = load_inventory(str(lab_inventory()))
    cluster = fleet_cluster_spec({}, inv)
    node = inv.host(host.backend.get_hostname())
    spec = node_spec(cluster, node, etcd_members(inv))
    checks = node_checks(node, spec, bundle_for(inv, None), skipped_phases(inv, cluster))
    results = run_checks(host, checks, spec)
    bad = [f"{r.check.id}: {r.message}" for r in results if r.status in (FAIL, ERROR)]
    assert not bad, bad
    assert sum(r.status == PASS for r in results) >= 15


def test_etcd_answers_on_members(host: Any) -> None:
    inv = load_inventory(str(lab_inventory()))
    node = inv.host(host.backend.get_hostname())
    if not node.is_etcd:
        return
    pki = "/etc/kubernetes/pki/etcd"
    out = host.run(f"ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/ca.crt "
                   f"--cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key endpoint health")
    assert out.rc == 0 and "is healthy" in out.stdout + out.stderr
