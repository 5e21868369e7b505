"""Inventory rendering, known_hosts format, group_vars merge, mirror detection."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
import yaml
from click.testing import CliRunner

from bootstrap.lab import inventory, keys, plan, rootfs
from bootstrap.lab.cli import lab
from bootstrap.lab.state import LabState, Machine


def make_state(tmp_path: Path, cps: int, workers: int) -> LabState:
    _, ips = plan.addresses(plan.parse_subnet("10.9.9.0/24"), cps + workers)
    ms = [Machine(p.name, p.role, p.ip, p.netns, p.veth) for p in plan.plan_machines("dev", cps, workers, ips)]
    return LabState(name="dev", subnet="10.9.9.0/24", bridge="kb-x", bridge_ip="10.9.9.1", domain="dev.lab",
                    rootfs="/nonexistent", inventory_dir=str(tmp_path / "inv" / "dev"), machines=ms)


def test_hosts_yaml_kubespray_shape(tmp_path: Path) -> None:
    st = make_state(tmp_path, 1, 2)
    doc = inventory.render_hosts(st)["all"]
    assert doc["hosts"]["dev-w1"] == {
        "ansible_host": "10.9.9.11", "ip": "10.9.9.11", "ansible_user": "root",
        "ansible_ssh_private_key_file": str(st.key_path),
    }
    ch = doc["children"]
    assert list(ch["kube_control_plane"]["hosts"]) == ["dev-cp1"] == list(ch["etcd"]["hosts"])
    assert list(ch["kube_node"]["hosts"]) == ["dev-w1", "dev-w2"]
    assert ch["k8s_cluster"] == {"children": {"kube_control_plane": {}, "kube_node": {}}}


def test_no_workers_means_control_planes_are_nodes(tmp_path: Path) -> None:
    doc = inventory.render_hosts(make_state(tmp_path, 3, 0))["all"]
    assert list(doc["children"]["kube_node"]["hosts"]) == ["dev-cp1", "dev-cp2", "dev-cp3"]


def test_write_known_hosts_and_merge_vars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_state(tmp_path, 1, 1)
    host_keys = {m.name: " ".join(keys.generate("x")[1].split()[:2]) for m in st.machines}
    gv = Path(st.inventory_dir) / "group_vars/all/lab.yml"
    gv.parent.mkdir(parents=True)
    gv.write_text("someone_else: 1\nlab_name: stale\n")
    st_dir = tmp_path / "state"
    import bootstrap.lab.state as state_mod
    monkeypatch.setattr(state_mod, "lab_root", lambda: st_dir)
    inventory.write(st, host_keys)
    # hosts.yaml loads; empty group members render as `name:` like Kubespray's samples
    text = (Path(st.inventory_dir) / "hosts.yaml").read_text()
    assert "dev-cp1:\n" in text and "null" not in text
    assert yaml.safe_load(text)["all"]["hosts"]["dev-cp1"]["ip"] == "10.9.9.10"
    hk = paramiko.HostKeys(str(Path(st.inventory_dir) / "known_hosts"))
    for m in st.machines:
        for alias in (m.name, m.ip, f"{m.name}.dev.lab"):
            assert hk.lookup(alias) is not None, alias
            assert hk.lookup(alias)["ssh-ed25519"].get_base64() == host_keys[m.name].split()[1]
    merged = yaml.safe_load(gv.read_text())
    assert merged["someone_else"] == 1 and merged["lab_name"] == "dev"
    inventory.remove(st)
    assert not (Path(st.inventory_dir) / "hosts.yaml").exists()
    assert yaml.safe_load(gv.read_text()) == {"someone_else": 1}  # others' vars stay, ours go


def test_generated_keys_are_openssh_ed25519(tmp_path: Path) -> None:
    pub = keys.write_pair(tmp_path / "id", "c")
    assert pub.startswith("ssh-ed25519 ") and (tmp_path / "id").stat().st_mode & 0o777 == 0o600
    k = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "id"))
    assert k.get_base64() == pub.split()[1]
    assert keys.generate("c")[1] != keys.generate("c")[1]


def test_host_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KBOOTSTRAP_DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n")
    assert rootfs.host_mirror([deb822]) == "http://mirror.example/debian"
    one = tmp_path / "sources.list"
    one.write_text("# c\ndeb [arch=amd64] http://one.example/debian bookworm main\n")
    assert rootfs.host_mirror([one]) == "http://one.example/debian"
    assert rootfs.host_mirror([tmp_path / "missing"]) == "http://deb.debian.org/debian"


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["up", "--help"], ["down", "--help"], ["status", "--help"], ["list", "--help"],
                 ["ssh", "--help"], ["stop", "--help"], ["start", "--help"], ["block", "--help"],
                 ["heal", "--help"], ["dns", "--help"], ["dns", "add", "--help"], ["dns", "remove", "--help"]):
        result = runner.invoke(lab, args)
        assert result.exit_code == 0 and "Usage" in result.output, args


def test_bad_name_is_one_line_usage_error() -> None:
    result = CliRunner().invoke(lab, ["up", "--name", "Bad_Name"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "invalid lab name" in result.output
