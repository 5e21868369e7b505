"""Kubespray inventories read by Ansible's own inventory, variables, templar and vault: what
`ansible-playbook` would make of them, with only the variables kbootstrap reads evaluated.

The fixtures are ours, shaped like Kubespray's sample (its variable names and expressions are
facts); a last test reads Kubespray's real sample when a checkout of it is on this machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bootstrap.errors import ConfigError
from bootstrap.spec.inventory import load_inventory
from bootstrap.workflow.fleet_spec import fleet_cluster_spec

# Shaped like inventory/sample: all group_vars reference other variables, magic variables, lookups
# and a collection's filters; kbootstrap reads only some of them.
K8S_CLUSTER_VARS = {
    "kube_version": "1.37.2",
    "credentials_dir": "{{ inventory_dir }}/credentials",
    "kube_token_dir": "{{ kube_config_dir }}/tokens",
    "kube_config_dir": "/etc/kubernetes",
    "kube_network_plugin": "kube-router",
    "kube_service_addresses": "10.233.0.0/18",
    "kube_pods_subnet": "10.233.64.0/18",
    "kube_apiserver_ip": "{{ kube_service_addresses | ansible.utils.ipaddr('net') | ansible.utils.ipaddr(1) "
                         "| ansible.utils.ipaddr('address') }}",
    "kubeadm_certificate_key": "{{ lookup('password', credentials_dir + '/kubeadm_certificate_key.creds "
                               "length=64 chars=hexdigits') | lower }}",
    "cluster_name": "cluster.local",
    "dns_domain": "{{ cluster_name }}",
}
INI = """# ours, in the sample's shape: control planes in the order to keep, workers as a range
[kube_control_plane]
node2 ansible_host=192.0.2.12 ip=10.3.0.2 etcd_member_name=etcd2
node1 ansible_host=192.0.2.11 ip=10.3.0.1 etcd_member_name=etcd1

[etcd:children]
kube_control_plane

[kube_node]
node-[3:4] ansible_ssh_user=vagrant ansible_ssh_port=2222
"""


RANGE_IPS = {"node-3": {"ip": "10.3.0.3", "ansible_host": "192.0.2.13"},
             "node-4": {"ip": "10.3.0.4", "ansible_host": "192.0.2.14"}}


def write(tmp_path: Path, ini: str = INI, k8s_cluster: dict[str, object] | None = None,
          host_vars: dict[str, dict[str, object]] | None = None) -> Path:
    gv = tmp_path / "group_vars" / "k8s_cluster"
    gv.mkdir(parents=True)
    (gv / "k8s-cluster.yml").write_text(yaml.safe_dump(K8S_CLUSTER_VARS if k8s_cluster is None else k8s_cluster))
    (tmp_path / "group_vars" / "all").mkdir()
    (tmp_path / "group_vars" / "all" / "all.yml").write_text("loadbalancer_apiserver_port: 6443\n")
    for name, body in {**RANGE_IPS, **(host_vars or {})}.items():
        (tmp_path / "host_vars").mkdir(exist_ok=True)
        (tmp_path / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(body))
    p = tmp_path / "inventory.ini"
    p.write_text(ini)
    return p


def test_a_sample_shaped_inventory_loads_and_only_what_is_read_is_evaluated(tmp_path: Path) -> None:
    inv = load_inventory(str(write(tmp_path)))
    # k8s_cluster is not a group of this inventory: Kubespray's playbooks make it, and so do we.
    values = {k: v for k, (v, _) in inv.cluster_values.items()}
    assert values["kubernetes_version"] == "1.37.2" and values["networking.dns_domain"] == "cluster.local"
    assert inv.vars["credentials_dir"] == f"{tmp_path}/credentials"  # inventory_dir, as Ansible sets it
    assert inv.vars["kube_token_dir"] == "/etc/kubernetes/tokens"
    with pytest.raises(ConfigError) as exc:  # read, it is one line naming the variable and its file
        inv.vars["kube_apiserver_ip"]
    assert "k8s-cluster.yml" in exc.value.one_line() and "kube_apiserver_ip: cannot be evaluated" in exc.value.one_line()
    assert not (tmp_path / "credentials").exists()  # the password lookup never ran


def test_host_order_as_written_ranges_and_the_legacy_ssh_names(tmp_path: Path) -> None:
    inv = load_inventory(str(write(tmp_path)))
    assert [h.name for h in inv.hosts] == ["node2", "node1", "node-3", "node-4"]
    assert [h.name for h in inv.control_planes()] == ["node2", "node1"]  # the first one stays first
    w = inv.host("node-4")
    assert (w.user, w.port, w.roles) == ("vagrant", 2222, frozenset({"kube_node"}))
    assert inv.host("node1").etcd_member_name == "etcd1" and inv.host("node1").is_etcd


def test_ansible_ssh_host_is_where_ssh_goes(tmp_path: Path) -> None:
    ini = ("[kube_control_plane]\ncp ansible_ssh_host=127.0.0.1 ansible_ssh_port=2200 ip=192.168.56.10\n"
           "[etcd:children]\nkube_control_plane\n")
    cp = load_inventory(str(write(tmp_path, ini))).host("cp")
    assert (cp.address, cp.port, cp.ip) == ("127.0.0.1", 2200, "192.168.56.10")


def test_precedence_host_vars_over_groups_as_ansible(tmp_path: Path) -> None:
    p = write(tmp_path, host_vars={"node2": {"kube_network_plugin": "none"}, "node-3": {"ip": "10.3.0.33"}})
    inv = load_inventory(str(p))
    assert inv.host("node-3").ip == "10.3.0.33"
    assert inv.vars["kube_network_plugin"] == "none"  # the first control plane's view of the cluster


VAULT_PASSWORD = "correct horse battery staple"


def vault_inventory(tmp_path: Path) -> Path:
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt("v1.37.2").decode()
    body = "\n".join("      " + line for line in secret.splitlines())
    p = tmp_path / "hosts.yaml"
    p.write_text(
        "all:\n  vars:\n    kube_version: !vault |\n" + body + "\n"
        "    unused_secret: !vault |\n" + body + "\n"
        "  hosts:\n    cp: {ansible_host: 10.0.0.1}\n"
        "  children:\n    kube_control_plane: {hosts: {cp: {}}}\n    etcd: {hosts: {cp: {}}}\n")
    return p


def test_a_vault_value_is_decrypted_with_the_password_file(tmp_path: Path) -> None:
    p = vault_inventory(tmp_path)
    pw = tmp_path / "vault-pass"
    pw.write_text(VAULT_PASSWORD + "\n")
    inv = load_inventory(str(p), vault_password_file=str(pw))
    assert inv.cluster_values["kubernetes_version"][0] == "v1.37.2"


def test_a_vault_value_without_the_password_is_refused_by_name(tmp_path: Path) -> None:
    os.environ.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(vault_inventory(tmp_path)))
    line = exc.value.one_line()
    assert "kube_version: cannot be evaluated" in line and "--vault-password-file" in line
    assert "unused_secret" not in line


def test_a_broken_ini_names_the_plugins_problem(tmp_path: Path) -> None:
    p = tmp_path / "inventory.ini"
    p.write_text("[kube_control_plane\ncp ansible_host=10.0.0.1\n")
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(p))
    assert "not a valid INI inventory" in exc.value.one_line()


def test_old_group_names_keep_their_group_vars(tmp_path: Path) -> None:
    p = tmp_path / "inventory.ini"
    p.write_text("[kube-master]\ncp ansible_host=10.0.0.1\n[etcd]\ncp\n[kube-node]\nw ansible_host=10.0.0.2\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "kube-master.yml").write_text("kube_proxy_mode: nftables\n")
    inv = load_inventory(str(p))
    assert [h.name for h in inv.control_planes()] == ["cp"] and inv.host("w").is_worker
    assert inv.cluster_values["kube_proxy_configuration.mode"][0] == "nftables"
    assert any("group names" in w for w in inv.warnings)  # Ansible's own warning, kept, not printed


def kubespray_sample() -> Path | None:
    """Kubespray's inventory/sample from a local checkout (KBOOTSTRAP_KUBESPRAY, or the search tool's
    fetched mirror), extracted to a temp dir; never committed."""
    for git_dir in filter(None, (os.environ.get("KBOOTSTRAP_KUBESPRAY"),
                                 "/work/.mirror/kubernetes-sigs+kubespray/repo")):
        if Path(git_dir).is_dir():
            return Path(git_dir)
    return None


def test_kubesprays_own_sample_loads_unchanged(tmp_path: Path) -> None:
    repo = kubespray_sample()
    if repo is None:
        pytest.skip("Kubespray's own sample is not on this machine (set KBOOTSTRAP_KUBESPRAY to a checkout)")
    archive = subprocess.run(["git", "--git-dir", str(repo), "archive", "HEAD", "inventory/sample"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    sample = tmp_path / "inventory" / "sample"
    # Its inventory.ini has every host commented out; the hosts are the user's, the group_vars theirs.
    (sample / "inventory.ini").write_text(
        (sample / "inventory.ini").read_text()
        + "\n[kube_control_plane]\nnode1 ansible_host=10.3.0.1\n[kube_node]\nnode4 ansible_host=10.3.0.4\n")
    # Its one choice kbootstrap cannot honour here is Calico (not built with the components): refused
    # by name, never swapped for another network.
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(sample / "inventory.ini"))
    assert "kube_network_plugin: 'calico' is not supported" in exc.value.one_line()
    assert "kube-router" in exc.value.one_line()  # and says which are
    # The one line a user adds (a later file in the same group wins, as in Ansible) and it loads.
    (sample / "group_vars" / "k8s_cluster" / "zz-kbootstrap.yml").write_text("kube_network_plugin: kube-router\n")
    inv = load_inventory(str(sample / "inventory.ini"))
    assert inv.vars["credentials_dir"] == f"{sample}/credentials"
    assert inv.cluster_values["networking.service_subnet"][0] == inv.vars["kube_service_addresses"]
    assert [h.name for h in inv.hosts] == ["node1", "node4"]
    fleet_cluster_spec({}, inv)  # the cluster spec builds from it, as `init -i` does


def test_variables_that_change_the_cluster_are_honoured_or_named(tmp_path: Path) -> None:
    from bootstrap.render.manifests import apiserver_command

    p = write(tmp_path, k8s_cluster={
        **K8S_CLUSTER_VARS, "cluster_name": "prod.example", "kubelet_max_pods": 250,
        "kube_kubeadm_apiserver_extra_args": {"anonymous-auth": False, "max-requests-inflight": 800},
        "enable_nodelocaldns": True, "ipv6_stack": False, "kube_encrypt_secret_data": True})
    inv = load_inventory(str(p))
    spec = fleet_cluster_spec({}, inv)
    assert spec.cluster_name == "prod.example" and spec.networking.dns_domain == "prod.example"
    assert spec.kubelet_configuration["maxPods"] == 250
    command = apiserver_command(spec)
    assert "--anonymous-auth=false" in command and "--max-requests-inflight=800" in command
    named = [w.split(":")[0] for w in inv.warnings]
    # ipv6_stack: false changes nothing; the sample's etcd1.. names are not the hosts' names.
    assert named == ["enable_nodelocaldns", "kube_encrypt_secret_data", "etcd_member_name (node2, node1)"]


def test_inventory_warnings_come_first_on_stderr(tmp_path: Path) -> None:
    import sys

    p = write(tmp_path, k8s_cluster={**K8S_CLUSTER_VARS, "enable_nodelocaldns": True})
    out = tmp_path / "rootfs"
    proc = subprocess.run([sys.executable, "-m", "bootstrap.cli", "init", "-i", str(p), "--rootfs", str(out),
                           "--pki-dir", str(tmp_path / "pki"), "-o", "json"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("warning: enable_nodelocaldns: not honoured")


def test_ansible_connection_local_is_this_machine(tmp_path: Path) -> None:
    from bootstrap.transport.local import LocalTarget
    from bootstrap.workflow.options import FleetOptions
    from bootstrap.workflow.session import close, connect

    ini = "[kube_control_plane]\ncp ansible_connection=local ip=10.0.0.1\n[etcd:children]\nkube_control_plane\n"
    inv = load_inventory(str(write(tmp_path, ini)))
    assert inv.host("cp").connection == "local"
    conns = connect(inv, ["cp"], FleetOptions(inventory=str(tmp_path / "inventory.ini")))
    try:
        target = conns["cp"]
        assert isinstance(getattr(target, "inner", target), LocalTarget)
        assert target.run("uname -s").stdout.strip() == "Linux"  # type: ignore[union-attr]
    finally:
        close(conns)


@pytest.mark.parametrize(("ini", "message"), [
    ("[kube_control_plane]\ncp ansible_host=10.0.0.1 ansible_connection=winrm\n[etcd:children]\nkube_control_plane\n",
     "cp.ansible_connection: 'winrm' is not supported"),
    ("[bastion]\nbastion ansible_host=198.51.100.1\n[kube_control_plane]\ncp ansible_host=10.0.0.1\n"
     "[etcd:children]\nkube_control_plane\n", "bastion: jump hosts (bastion) are not supported yet"),
])
def test_connections_kbootstrap_cannot_make_are_refused(tmp_path: Path, ini: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_inventory(str(write(tmp_path, ini)))
    assert message in exc.value.one_line()


def test_inventory_show_says_what_a_run_would_read(tmp_path: Path) -> None:
    import json
    import sys

    p = write(tmp_path)
    run = [sys.executable, "-m", "bootstrap.cli", "inventory", "show", "-i", str(p)]
    data = json.loads(subprocess.run([*run, "-o", "json"], capture_output=True, text=True, check=True).stdout)
    assert data["cluster"]["kubernetes_version"] == "v1.37.2" and data["cluster"]["etcd"] == "host"
    assert [(h["name"], h["roles"]) for h in data["hosts"]] == [
        ("node2", ["control-plane", "etcd"]), ("node1", ["control-plane", "etcd"]),
        ("node-3", ["worker"]), ("node-4", ["worker"])]
    assert data["hosts"][2]["user"] == "vagrant" and data["hosts"][2]["port"] == 2222
    text = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "node-3: worker; ip 10.3.0.3; via vagrant@192.0.2.13:2222" in text
    bad = subprocess.run([*run[:-1], str(tmp_path / "missing.ini")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: -i: inventory") and "Traceback" not in bad.stderr
