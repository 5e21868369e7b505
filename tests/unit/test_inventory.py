"""Kubespray inventories (YAML, INI, old group names, group_vars) and k0sctl.yaml into our model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bootstrap.errors import ConfigError
from bootstrap.spec.inventory import load_inventory
from bootstrap.spec.load import build_spec

SAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "sample"


@pytest.mark.parametrize("name", ["hosts.yaml", "inventory.ini"])
def test_sample_inventories_agree(name: str) -> None:
    inv = load_inventory(str(SAMPLE / name))
    assert [h.name for h in inv.hosts] == ["node1", "node2", "node3", "node4"]
    assert [h.name for h in inv.control_planes()] == ["node1", "node2", "node3"]
    n1 = inv.host("node1")
    assert n1.address == "192.0.2.11" and n1.ip == "10.3.0.1" and n1.is_etcd and not n1.is_worker
    assert n1.etcd_member_name == "etcd1" and n1.user == "root"
    assert inv.host("node4").roles == frozenset({"kube_node"})
    values = {k: v for k, (v, _) in inv.cluster_values.items()}
    assert values["kubernetes_version"] == "v1.34.0"
    assert values["networking.service_subnet"] == "10.233.0.0/18"
    assert values["networking.dns_domain"] == "cluster.local"  # resolved from {{ cluster_name }}
    assert values["etcd_mode"] == "host"
    assert values["api_server.cert_sans"] == ["k8s.example.com"]


def test_old_group_names_are_normalised(tmp_path: Path) -> None:
    p = tmp_path / "inv.ini"
    p.write_text(
        "[kube-master]\ncp ansible_host=10.0.0.1\n[etcd]\ncp\n[kube-node]\nw1 ansible_host=10.0.0.2\n"
        "[k8s-cluster:children]\nkube-master\nkube-node\n[calico-rr]\nrr1 ansible_host=10.0.0.9\n"
    )
    inv = load_inventory(str(p))
    assert [h.name for h in inv.hosts] == ["cp", "w1"]  # calico_rr-only hosts are not nodes
    assert inv.host("cp").is_control_plane and inv.host("cp").is_etcd
    assert inv.host("w1").ip == "10.0.0.2"


def test_loadbalancer_apiserver_becomes_the_endpoint(tmp_path: Path) -> None:
    p = tmp_path / "hosts.yaml"
    p.write_text(
        "all:\n  vars:\n    loadbalancer_apiserver: {address: 10.0.0.100, port: 8443}\n"
        "  hosts: {a: {ip: 10.0.0.1}}\n  children:\n    kube_control_plane: {hosts: {a: {}}}\n    etcd: {hosts: {a: {}}}\n"
    )
    inv = load_inventory(str(p))
    spec = build_spec({"apiserver_advertise_address": "10.0.0.1", "node_name": "a"}, defaults=inv.cluster_values)
    assert spec.control_plane_url == "https://10.0.0.100:8443"


def test_k0sctl_yaml(tmp_path: Path) -> None:
    p = tmp_path / "k0sctl.yaml"
    p.write_text("""apiVersion: k0sctl.k0sproject.io/v1beta1
kind: Cluster
metadata: {name: c}
spec:
  hosts:
  - role: controller
    ssh: {address: 10.0.0.1, user: admin, keyPath: /k}
  - role: worker
    ssh: {address: 10.0.0.2}
  k0s:
    config:
      spec:
        api: {externalAddress: 10.0.0.50, sans: [10.0.0.50]}
        network: {podCIDR: 10.244.0.0/16, serviceCIDR: 10.96.0.0/12}
""")
    inv = load_inventory(str(p))
    assert [(h.name, h.user, h.is_control_plane) for h in inv.hosts] == [
        ("10.0.0.1", "admin", True),
        ("10.0.0.2", "root", False),
    ]
    assert inv.cluster_values["control_plane_endpoint"][0] == "10.0.0.50:6443"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "all:\n  hosts: {a: {ip: nope}}\n  children: {kube_control_plane: {hosts: {a: {}}}}\n",
            "a.ip: 'nope' is not an IP",
        ),
        (
            "all:\n  hosts: {a: {ip: 10.0.0.1}}\n  children: {kube_node: {hosts: {a: {}}}}\n",
            "no host in kube_control_plane",
        ),
        ("all:\n  hostz: {}\n", "unknown key in a group"),
        ("nodes: []\n", "not a Kubespray inventory"),
        (
            "all:\n  vars: {etcd_deployment_type: docker}\n  hosts: {a: {ip: 10.0.0.1}}\n"
            "  children: {kube_control_plane: {hosts: {a: {}}}}\n",
            "etcd_deployment_type: 'docker' is not supported",
        ),
        (
            "all:\n  vars: {dns_domain: '{{ nope }}'}\n  hosts: {a: {ip: 10.0.0.1}}\n"
            "  children: {kube_control_plane: {hosts: {a: {}}}}\n",
            "hosts.yaml:2: dns_domain: cannot be evaluated: 'nope' is undefined",
        ),
        (
            "all:\n  hosts: {a: {ip: 10.0.0.1}, b: {ip: 10.0.0.1}}\n"
            "  children: {kube_control_plane: {hosts: {a: {}, b: {}}}}\n",
            "10.0.0.1 is also the ip of a",
        ),
    ],
)
def test_malformed_inventories(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "hosts.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(p))
    assert message in exc.value.one_line()
    assert exc.value.exit_code == 2


def test_ansible_become_is_read_as_ansible_reads_booleans(tmp_path: Path) -> None:
    """A quoted "false" (or one from a template) does not turn sudo on."""
    inv = tmp_path / "hosts.yaml"
    inv.write_text(yaml.safe_dump({"all": {
        "hosts": {"cp1": {"ansible_host": "10.0.0.1", "ansible_become": "false"},
                  "w1": {"ansible_host": "10.0.0.2", "ansible_become": "yes"}},
        "children": {"kube_control_plane": {"hosts": {"cp1": None}}, "etcd": {"hosts": {"cp1": None}},
                     "kube_node": {"hosts": {"w1": None}}}}}))
    loaded = load_inventory(str(inv))
    assert loaded.host("cp1").become is False
    assert loaded.host("w1").become is True


def test_ini_without_suffix_with_ungrouped_host_lines(tmp_path: Path) -> None:
    """What Vagrant's ansible provisioner writes: no suffix, a comment first, each host's connection
    vars on an ungrouped line, then groups that only name the hosts."""
    inv = tmp_path / "vagrant_ansible_inventory"
    inv.write_text(
        "# Generated by Vagrant\n\n"
        "kb-cp1 ansible_host=127.0.0.1 ansible_port=2222 ansible_user='vagrant' ip=192.168.56.11\n"
        "kb-w1 ansible_host=127.0.0.1 ansible_port=2200 ansible_user='vagrant' ip=192.168.56.12\n\n"
        "[kube_control_plane]\nkb-cp1\n\n[etcd]\nkb-cp1\n\n[kube_node]\nkb-w1\n\n"
        "[k8s_cluster:children]\nkube_control_plane\nkube_node\n"
    )
    loaded = load_inventory(str(inv))
    assert {h.name: (h.ip, h.port, h.user) for h in loaded.hosts} == {
        "kb-cp1": ("192.168.56.11", 2222, "vagrant"),
        "kb-w1": ("192.168.56.12", 2200, "vagrant"),
    }
    assert loaded.host("kb-cp1").is_control_plane and loaded.host("kb-w1").is_worker


def _eviction_inventory(tmp_path: Path, group_vars: dict[str, object]) -> Path:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "all.yml").write_text(yaml.safe_dump(group_vars))
    p = tmp_path / "inventory.ini"
    p.write_text("[kube_control_plane]\ncp ansible_host=10.0.0.1\n[etcd]\ncp\n[kube_node]\nw1 ansible_host=10.0.0.2\n")
    return p


def test_eviction_hard_per_role_as_kubesprays_kubelet_template(tmp_path: Path) -> None:
    from bootstrap.render.kubelet import kubelet_config
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs

    inv = load_inventory(str(_eviction_inventory(tmp_path, {
        "eviction_hard": {"memory.available": "200Mi", "nodefs.available": "5%"},
        "eviction_hard_control_plane": {"memory.available": "500Mi"}})))
    specs = node_specs(fleet_cluster_spec({}, inv), inv)
    assert kubelet_config(specs["cp"])[0]["evictionHard"] == {"memory.available": "500Mi"}
    assert kubelet_config(specs["w1"])[0]["evictionHard"] == {"memory.available": "200Mi", "nodefs.available": "5%"}


def test_eviction_hard_only_for_workers_leaves_control_planes_at_the_kubelets_defaults(tmp_path: Path) -> None:
    from bootstrap.render.kubelet import kubelet_config
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs

    inv = load_inventory(str(_eviction_inventory(tmp_path, {"eviction_hard": {"memory.available": "1Gi"}})))
    specs = node_specs(fleet_cluster_spec({}, inv), inv)
    assert "evictionHard" not in kubelet_config(specs["cp"])[0]


@pytest.mark.parametrize(("value", "message"), [
    ({"disk.available": "1Gi"}, "eviction_hard.disk.available: is not a kubelet eviction signal"),
    ({"memory.available": "lots"}, "eviction_hard.memory.available: 'lots' is not a quantity or a percentage"),
    ("100Mi", "eviction_hard: must be a mapping of eviction signal to threshold"),
])
def test_bad_eviction_thresholds_are_named(tmp_path: Path, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(_eviction_inventory(tmp_path, {"eviction_hard": value})))
    assert message in str(exc.value)


def test_an_empty_etcd_group_as_kubespray_reads_it(tmp_path: Path) -> None:
    """kubeadm's etcd (etcd_deployment_type: kubeadm) runs on every control plane; etcd on hosts of
    its own (the default) cannot have none."""
    p = tmp_path / "inventory.ini"
    p.write_text("[kube_control_plane]\ncp1 ansible_host=10.0.0.1\ncp2 ansible_host=10.0.0.2\n[etcd]\n"
                 "[kube_node]\nw1 ansible_host=10.0.0.3\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(p))
    assert "etcd: the group is empty" in exc.value.one_line() and "etcd_deployment_type: kubeadm" in exc.value.one_line()
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("etcd_deployment_type: kubeadm\n")
    inv = load_inventory(str(p))
    assert [h.name for h in inv.hosts if h.is_etcd] == ["cp1", "cp2"] and not inv.host("w1").is_etcd


def test_etcd_on_hosts_of_its_own_is_where_the_api_servers_go(tmp_path: Path) -> None:
    from bootstrap.render.manifests import apiserver_command
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec, node_specs

    p = tmp_path / "inventory.ini"
    p.write_text("[kube_control_plane]\ncp1 ansible_host=10.0.0.1\n[etcd]\ne1 ansible_host=10.0.0.11\n"
                 "e2 ansible_host=10.0.0.12\ne3 ansible_host=10.0.0.13\n[kube_node]\nw1 ansible_host=10.0.0.2\n")
    inv = load_inventory(str(p))
    command = apiserver_command(node_specs(fleet_cluster_spec({}, inv), inv)["cp1"])
    assert "--etcd-servers=https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379" in command


K0SCTL = """apiVersion: k0sctl.k0sproject.io/v1beta1
kind: cluster
metadata: {name: k0s-cluster}
spec:
  hosts:
  - role: controller
    openSSH: {address: 10.0.0.1, user: admin}
  - role: worker
    ssh: {address: 10.0.0.2, port: 2222}
  k0s:
    version: v1.37.2+k0s.0
    config:
      spec:
        api: {port: 6444, externalAddress: 10.0.0.50}
        network: {clusterDomain: k0s.example}
        storage:
          type: etcd
          etcd:
            externalCluster:
              endpoints: [https://10.0.0.9:2379]
              caFile: /etc/etcd/ca.crt
              clientCertFile: /etc/etcd/client.crt
              clientKeyFile: /etc/etcd/client.key
---
# k0sctl's apply takes more documents after the cluster: read the cluster, leave the rest.
apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
"""


def test_k0sctl_multi_document_lowercase_kind_openssh_version_port_domain_and_external_etcd(tmp_path: Path) -> None:
    p = tmp_path / "k0sctl.yaml"
    p.write_text(K0SCTL)
    inv = load_inventory(str(p))
    cp, w = inv.hosts
    assert (cp.address, cp.user, cp.become) == ("10.0.0.1", "admin", True)  # k0sctl's sudo for a non-root user
    assert (w.address, w.port, w.become) == ("10.0.0.2", 2222, False)
    values = {k: v for k, (v, _) in inv.cluster_values.items()}
    assert values["kubernetes_version"] == "v1.37.2"  # k0s's build of v1.37.2, never our default
    assert values["bind_port"] == 6444 and values["control_plane_endpoint"] == "10.0.0.50:6444"
    assert values["networking.dns_domain"] == "k0s.example"
    assert values["etcd_external"]["endpoints"] == ["https://10.0.0.9:2379"]


@pytest.mark.parametrize(("change", "message"), [
    (("v1.37.2+k0s.0", "v1.20.15+k0s.0"), "spec.k0s.version: v1.20.15 is not supported"),
    (("type: etcd", "type: kine"), "storage.type: 'kine' is not supported"),
    (("openSSH: {address: 10.0.0.1, user: admin}", "ssh: {address: 10.0.0.1, bastion: {address: 10.0.0.100}}"),
     "ssh.bastion: jump hosts are not supported yet"),
])
def test_k0sctl_what_cannot_be_honoured_is_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec

    p = tmp_path / "k0sctl.yaml"
    p.write_text(K0SCTL.replace(*change))
    with pytest.raises(ConfigError) as exc:
        fleet_cluster_spec({}, load_inventory(str(p)))
    assert message in exc.value.one_line()


@pytest.mark.parametrize(("endpoints", "message"), [
    (["10.0.0.9:2379"], "the URL without scheme is not allowed"),
    (["http://10.0.0.9:2379"], "the URL must be using the HTTPS scheme"),
])
def test_external_etcd_endpoints_as_kubeadm_validates_them(tmp_path: Path, endpoints: list[str], message: str) -> None:
    from bootstrap.workflow.fleet_spec import fleet_cluster_spec

    p = tmp_path / "k0sctl.yaml"
    p.write_text(K0SCTL.replace("[https://10.0.0.9:2379]", "[" + ", ".join(endpoints) + "]"))
    with pytest.raises(ConfigError) as exc:
        fleet_cluster_spec({}, load_inventory(str(p)))
    assert message in exc.value.one_line()
